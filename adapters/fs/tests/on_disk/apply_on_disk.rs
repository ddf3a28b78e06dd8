//! The recorded upstream master → worker package applied through `FsStorage` on the recorded
//! worker tree written to a real directory, the package streamed from a file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::agents::AgentCleanup;
use wazuh_cluster_sync::integrity::apply::{ApplyLimits, ApplyReport, apply_master_package};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader};
use wazuh_cluster_testkit::ScratchDir;
use wazuh_cluster_vectors::{INTEGRITY_TREES, recorded_file, recorded_tree};

fn all_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            all_files(&entry.path(), base, out);
        } else {
            out.push(
                entry
                    .path()
                    .strip_prefix(base)
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
    }
}

#[test]
fn recorded_package_applies_on_a_real_tree() {
    let root = ScratchDir::new("apply-disk");
    for file in recorded_tree(INTEGRITY_TREES, "worker_tree") {
        let full = root.path().join(&file.path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, file.data).unwrap();
    }
    let mut storage = FsStorage::new(root.path()).unwrap();
    let file = std::fs::File::open(wazuh_cluster_vectors::path(
        "v3.9/integrity_master_to_worker.zip",
    ))
    .unwrap();
    let mut reader = PackageReader::open(file, PackageLimits::default()).unwrap();
    let report = apply_master_package(
        &mut reader,
        &mut storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &ApplyLimits::default(),
    )
    .unwrap();
    assert_eq!(
        report,
        ApplyReport {
            written: 8,
            removed: 2,
            dirs_removed: 1,
            skipped: vec![],
            agents: AgentCleanup::default(),
        }
    );

    for path in [
        "etc/client.keys",
        "etc/shared/default/merged.mg",
        "etc/shared/group2/merged.mg",
        "etc/lists/amazon/aws-eventnames",
        "etc/lists/audit-keys.cdb",
        "etc/rules/local_rules.xml",
        "var/multigroups/e4f9f5fa/merged.mg",
        "queue/agent-groups/002",
    ] {
        let want = recorded_file(INTEGRITY_TREES, "master_tree", path);
        assert_eq!(
            std::fs::read(root.path().join(path)).unwrap(),
            want,
            "{path}"
        );
    }
    let mode = |p: &str| {
        std::fs::metadata(root.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("etc/client.keys"), 0o640);
    assert_eq!(mode("etc/rules/local_rules.xml"), 0o660);
    assert_eq!(mode("var/multigroups/e4f9f5fa"), 0o770);
    assert!(!root.path().join("etc/shared/oldgroup").exists());
    assert!(!root.path().join("etc/rules/worker_only_rules.xml").exists());
    let mut files = Vec::new();
    all_files(root.path(), root.path(), &mut files);
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")),
        "staged files left: {files:?}"
    );
    assert_eq!(
        std::fs::read(root.path().join("etc/ossec.conf")).unwrap(),
        recorded_file(INTEGRITY_TREES, "worker_tree", "etc/ossec.conf")
    );
}

/// A master package whose only file is `etc/client.keys` = `keys` (differing on the worker).
fn keys_package(keys: &[u8]) -> Vec<u8> {
    let t = wazuh_cluster_sync::integrity::storage::Timestamp::from_secs(1_562_000_000);
    let key = wazuh_cluster_sync::integrity::path::InstallPath::new("/etc/client.keys").unwrap();
    let control = br#"{"missing": {}, "shared": {"/etc/client.keys": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/", "merged": false, "md5": "00000000000000000000000000000000"}}, "extra": {}, "extra_valid": {}}"#;
    let mut builder = wazuh_cluster_sync::integrity::package::PackageBuilder::new(
        std::io::Cursor::new(Vec::new()),
    );
    builder.add_member(&key, t, 0o640, keys).unwrap();
    builder.finish(control, t).unwrap().into_inner()
}

/// A removed agent's files on a real tree: its `queue/diff/<name>` directory goes with
/// everything below it; where a file or that directory is a symlink out of the install root, the
/// link goes and what it points to stays.
#[test]
fn removed_agent_files_go_on_disk_and_symlinks_out_are_not_followed() {
    let base = ScratchDir::new("agents-disk");
    let root = base.path().join("ossec");
    let outside = base.path().join("outside");
    for dir in [
        "etc",
        "queue/diff/web/local",
        "queue/diff",
        "queue/rids",
        "queue/agent-groups",
        "var/db/agents",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), "keep me").unwrap();
    let files = [
        (
            "etc/client.keys",
            "001 db any k1\n002 web any k2\n003 mail any k3\n",
        ),
        ("queue/diff/web/local/last-entry", "diff"),
        ("queue/agent-groups/002", "default"),
        ("var/db/agents/web-002.db", "db"),
        ("queue/rids/001", "1"),
    ];
    for (path, data) in files {
        std::fs::write(root.join(path), data).unwrap();
    }
    std::os::unix::fs::symlink(&outside, root.join("queue/diff/mail")).unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), root.join("queue/rids/003")).unwrap();

    let mut storage = FsStorage::new(&root).unwrap();
    let new_keys = b"001 db any k1\n";
    let mut reader = PackageReader::open(
        std::io::Cursor::new(keys_package(new_keys)),
        PackageLimits::default(),
    )
    .unwrap();
    let report = apply_master_package(
        &mut reader,
        &mut storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &ApplyLimits::default(),
    )
    .unwrap();
    let removed: Vec<&str> = report.agents.removed.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        removed,
        [
            "/queue/agent-groups/002",
            "/queue/diff/mail",
            "/queue/diff/web",
            "/queue/rids/003",
            "/var/db/agents/web-002.db",
        ]
    );
    assert_eq!(
        std::fs::read(root.join("etc/client.keys")).unwrap(),
        new_keys
    );
    for gone in [
        "queue/diff/web",
        "queue/diff/mail",
        "queue/rids/003",
        "queue/agent-groups/002",
    ] {
        assert!(
            std::fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone}"
        );
    }
    assert_eq!(std::fs::read(root.join("queue/rids/001")).unwrap(), b"1");
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep me");
}
