//! The 3.9 ZIP package against the real upstream packages recorded in
//! `vectors/v3.9/integrity_*.zip`, and our packages against Python's `zipfile` (upstream's reader).

use std::io::{Cursor, Write};
use std::process::{Command, Stdio};

use serde_json::Value;
use wazuh_cluster_sync::integrity::package::{
    CONTROL_MEMBER, PackageBuilder, PackageLimits, PackageReader,
};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_vectors::{INTEGRITY_TREES, recorded_file};

/// Content of `path` (relative, no leading `/`) in one of the recorded trees.
fn tree_file(tree: &str, path: &str) -> Vec<u8> {
    recorded_file(INTEGRITY_TREES, tree, path)
}

fn recorded_member_names(which: &str) -> Vec<String> {
    let integrity = wazuh_cluster_vectors::json("v3.9/integrity.json");
    integrity[which]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .filter(|n| n != CONTROL_MEMBER)
        .collect()
}

fn open(bytes: Vec<u8>) -> PackageReader<Cursor<Vec<u8>>> {
    PackageReader::open(Cursor::new(bytes), PackageLimits::default()).unwrap()
}

#[test]
fn reads_upstream_master_to_worker_package() {
    let mut reader = open(wazuh_cluster_vectors::read(
        "v3.9/integrity_master_to_worker.zip",
    ));
    let names: Vec<String> = reader
        .members()
        .iter()
        .map(|m| m.key.relative().to_owned())
        .collect();
    assert_eq!(names, recorded_member_names("zip_master_to_worker"));

    let integrity = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let control: Value = serde_json::from_slice(reader.control_json()).unwrap();
    assert_eq!(
        control,
        integrity["compare_files_master_vs_worker"]["files"]
    );

    let merged = wazuh_cluster_vectors::unhex(
        integrity["agent_groups_shared_merged_hex"]
            .as_str()
            .unwrap(),
    );
    for name in names {
        let key = InstallPath::new(&format!("/{name}")).unwrap();
        let content = reader.read_member(&key, u64::MAX).unwrap();
        if name == "queue/cluster/worker1/agent-groups-shared.merged" {
            assert_eq!(content, merged);
        } else {
            assert_eq!(content, tree_file("master_tree", &name), "{name}");
        }
    }
    reader.verify_all().unwrap();
    // The member list is exactly what the control JSON ships (missing + shared).
    let files = &control;
    let shipped: Vec<InstallPath> = ["missing", "shared"]
        .iter()
        .flat_map(|g| files[g].as_object().unwrap().keys())
        .map(|k| InstallPath::new(k).unwrap())
        .collect();
    reader.check_members(&shipped).unwrap();
}

#[test]
fn reads_upstream_worker_to_master_package() {
    let reader = open(wazuh_cluster_vectors::read(
        "v3.9/integrity_worker_to_master.zip",
    ));
    assert!(reader.members().is_empty());
    let integrity = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let control: Value = serde_json::from_slice(reader.control_json()).unwrap();
    assert_eq!(control, integrity["worker_files_status_sent_in_sync_i_w_m"]);
    reader.check_members(&[]).unwrap();
}

/// Rebuilds the master→worker package of the recording with our builder: same member names in
/// the same order, same contents, and Python's `zipfile` (upstream's reader) agrees.
#[test]
fn our_package_of_the_recorded_plan_matches_upstream_members() {
    let integrity = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let merged = wazuh_cluster_vectors::unhex(
        integrity["agent_groups_shared_merged_hex"]
            .as_str()
            .unwrap(),
    );
    let names = recorded_member_names("zip_master_to_worker");
    let control =
        serde_json::to_vec(&integrity["compare_files_master_vs_worker"]["files"]).unwrap();
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    let mtime = Timestamp::from_secs(1_562_000_000);
    for name in &names {
        let key = InstallPath::new(&format!("/{name}")).unwrap();
        let content = if name.ends_with(".merged") {
            merged.clone()
        } else {
            tree_file("master_tree", name)
        };
        // Stream in two pieces to exercise the incremental path.
        builder.start_member(&key, mtime, 0o660).unwrap();
        let half = content.len() / 2;
        builder.write_chunk(&content[..half]).unwrap();
        builder.write_chunk(&content[half..]).unwrap();
    }
    let ours = builder.finish(&control, mtime).unwrap().into_inner();

    let mut reader = open(ours.clone());
    let ours_names: Vec<String> = reader
        .members()
        .iter()
        .map(|m| m.key.relative().to_owned())
        .collect();
    assert_eq!(ours_names, names);
    assert_eq!(reader.control_json(), control.as_slice());
    let mut upstream = open(wazuh_cluster_vectors::read(
        "v3.9/integrity_master_to_worker.zip",
    ));
    for member in upstream.members().to_vec() {
        assert_eq!(
            reader.read_member(&member.key, u64::MAX).unwrap(),
            upstream.read_member(&member.key, u64::MAX).unwrap()
        );
    }

    // Upstream's reader: Python's zipfile lists the same names, sizes, CRCs, DOS times and modes.
    let listing = python_zip_listing(&ours);
    let recorded = integrity["zip_master_to_worker"]["members"]
        .as_array()
        .unwrap();
    assert_eq!(listing.len(), recorded.len());
    for (got, want) in listing.iter().zip(recorded) {
        assert_eq!(got["name"], want["name"]);
        assert_eq!(got["compress_type"], want["compress_type"]);
        if got["name"] != CONTROL_MEMBER {
            assert_eq!(got["file_size"], want["file_size"]);
            assert_eq!(got["CRC"], want["CRC"], "{}", want["name"]);
            assert_eq!(got["testzip"], Value::Null);
        }
        if !got["name"].as_str().unwrap().ends_with(".merged") && got["name"] != CONTROL_MEMBER {
            assert_eq!(got["date_time"], want["date_time"]);
            assert_eq!(got["mode"], 0o100660);
        }
    }
}

/// Runs python3's `zipfile` over `zip` (fed on stdin) and returns one JSON object per member.
fn python_zip_listing(zip: &[u8]) -> Vec<Value> {
    let script = r#"
import io, json, sys, zipfile
z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
bad = z.testzip()
out = []
for i in z.infolist():
    data = z.read(i.filename)
    out.append({"name": i.filename, "file_size": i.file_size, "compress_type": i.compress_type,
                "CRC": i.CRC, "date_time": list(i.date_time), "mode": i.external_attr >> 16,
                "len": len(data), "testzip": bad})
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    child.stdin.take().unwrap().write_all(zip).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python zipfile refused our package: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

#[test]
fn worker_integrity_package_yields_the_worker_metadata() {
    use wazuh_cluster_sync::integrity::apply::{ApplyLimits, worker_metadata_from_package};
    let reader = open(wazuh_cluster_vectors::read(
        "v3.9/integrity_worker_to_master.zip",
    ));
    let metadata = worker_metadata_from_package(&reader, &ApplyLimits::default()).unwrap();
    let integrity = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let expected = integrity["worker_files_status_sent_in_sync_i_w_m"]
        .as_object()
        .unwrap();
    assert_eq!(metadata.len(), expected.len());
    assert!(
        expected
            .keys()
            .all(|k| metadata.0.contains_key(&InstallPath::new(k).unwrap()))
    );

    // The same flow with a file smuggled in is refused.
    let key = InstallPath::new("/etc/client.keys").unwrap();
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    builder
        .add_member(&key, Timestamp::from_secs(0), 0o640, b"x")
        .unwrap();
    let zip = builder
        .finish(b"{}", Timestamp::from_secs(0))
        .unwrap()
        .into_inner();
    let reader = open(zip);
    assert_eq!(
        worker_metadata_from_package(&reader, &ApplyLimits::default()),
        Err(wazuh_cluster_sync::integrity::apply::ApplyError::Package(
            wazuh_cluster_sync::integrity::package::PackageError::UnexpectedMember(
                "etc/client.keys".into()
            )
        ))
    );
}

/// More than 65,535 members: the archive needs ZIP64 end records, which the member-count check
/// reads; Python's zipfile reads it too.
#[test]
fn zip64_member_counts_are_read_and_bounded() {
    let keys: Vec<InstallPath> = (0..70_000)
        .map(|i| InstallPath::new(&format!("/etc/lists/d{:02}/f{i:05}", i / 1000)).unwrap())
        .collect();
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    for key in &keys {
        builder
            .add_member(
                key,
                Timestamp::from_secs(1_562_000_000),
                0o660,
                key.as_str().as_bytes(),
            )
            .unwrap();
    }
    let zip = builder
        .finish(b"{}", Timestamp::from_secs(1_562_000_000))
        .unwrap()
        .into_inner();
    let mut reader = open(zip.clone());
    assert_eq!(reader.members().len(), 70_000);
    assert_eq!(
        reader.read_member(&keys[69_999], u64::MAX).unwrap(),
        b"/etc/lists/d69/f69999"
    );
    let limits = PackageLimits {
        max_members: 69_999,
        ..PackageLimits::default()
    };
    assert_eq!(
        PackageReader::open(Cursor::new(zip.clone()), limits).unwrap_err(),
        wazuh_cluster_sync::integrity::package::PackageError::TooManyMembers {
            count: 70_000,
            limit: 69_999
        }
    );
    assert_eq!(python_zip_listing(&zip).len(), 70_001);
}
