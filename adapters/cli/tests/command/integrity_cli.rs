//! `wazuh-cluster integrity scan|compare` run as a process on trees and documents from the
//! upstream 3.9.5 recordings.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use wazuh_cluster_testkit::ScratchDir;
use wazuh_cluster_vectors::{INTEGRITY_TREES, recorded_tree};

fn wazuh_cluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary with `args`, checks that it exits with `code`, and answers its stderr.
fn fails(args: &[&str], code: i32) -> String {
    let output = wazuh_cluster(args);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_json(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Writes `tree` of `integrity_trees.json` under `root` with the recorded mtimes.
fn write_tree(root: &Path, tree: &str) {
    for file in recorded_tree(INTEGRITY_TREES, tree) {
        let path = root.join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file.data).unwrap();
        let mtime = UNIX_EPOCH + Duration::from_secs_f64(file.mtime);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

#[test]
fn scan_of_the_recorded_master_tree_matches_upstream() {
    let scratch = ScratchDir::new("integrity-scan");
    write_tree(&scratch, "master_tree");
    // A symlink inside an item is skipped, never followed.
    std::os::unix::fs::symlink("/etc/passwd", scratch.join("etc/rules/passwd.xml")).unwrap();
    let output = wazuh_cluster(&[
        "integrity",
        "scan",
        "--wazuh-path",
        scratch.to_str().unwrap(),
    ]);
    let recorded = wazuh_cluster_vectors::json("v3.9/integrity.json");
    assert_eq!(stdout_json(&output), recorded["master_files_status"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("skipped 1 symlink(s)"), "{stderr}");
}

#[test]
fn compare_of_the_recorded_documents_matches_upstream() {
    let scratch = ScratchDir::new("integrity-compare");
    let recorded = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let master = scratch.file(
        "master.json",
        recorded["master_files_status"].to_string().as_bytes(),
    );
    let worker = scratch.file(
        "worker.json",
        recorded["worker_files_status_sent_in_sync_i_w_m"]
            .to_string()
            .as_bytes(),
    );
    let output = wazuh_cluster(&[
        "integrity",
        "compare",
        master.to_str().unwrap(),
        worker.to_str().unwrap(),
        "--worker",
        "worker1",
    ]);
    assert_eq!(
        stdout_json(&output),
        recorded["compare_files_master_vs_worker"]
    );
}

#[test]
fn errors_are_clear_and_have_exit_codes() {
    let scratch = ScratchDir::new("integrity-errors");
    let missing = scratch.join("absent.json");
    let good = scratch.file("good.json", b"{}");
    let compare = |master: &Path, worker: &Path, name: &str, code: i32| {
        let (master, worker) = (master.to_str().unwrap(), worker.to_str().unwrap());
        fails(
            &["integrity", "compare", master, worker, "--worker", name],
            code,
        )
    };
    let stderr = compare(&missing, &good, "w1", 2);
    assert!(stderr.contains("cannot read"), "{stderr}");

    let not_json = scratch.file("bad.json", b"not json");
    let stderr = compare(&not_json, &good, "w1", 1);
    assert!(stderr.contains("malformed"), "{stderr}");

    let escaping = scratch.file(
        "escape.json",
        br#"{"/etc/../x": {"cluster_item_key": "/etc/", "merged": false}}"#,
    );
    compare(&escaping, &good, "w1", 1);

    compare(&good, &good, "../w", 2);

    let root = scratch.display().to_string();
    let stderr = fails(
        &[
            "integrity",
            "scan",
            "--wazuh-path",
            &root,
            "--node-type",
            "boss",
        ],
        2,
    );
    assert!(stderr.contains("boss"), "{stderr}");

    let stderr = fails(
        &[
            "integrity",
            "scan",
            "--wazuh-path",
            missing.to_str().unwrap(),
        ],
        2,
    );
    assert!(stderr.contains("absent.json"), "{stderr}");
}

#[test]
fn scan_of_an_empty_tree_is_an_empty_document() {
    let scratch = ScratchDir::new("integrity-empty");
    let output = wazuh_cluster(&[
        "integrity",
        "scan",
        "--wazuh-path",
        scratch.to_str().unwrap(),
    ]);
    assert_eq!(output.stdout, b"{}\n");
}
