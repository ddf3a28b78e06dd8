//! A crash after any single storage operation of an apply leaves every file old or new (never
//! torn, no staged file visible), and running the apply again converges to the full result.

mod apply_support;

use std::collections::BTreeMap;
use std::io::Cursor;

use apply_support::tree_storage;
use wazuh_cluster_sync::integrity::apply::{
    ApplyError, ApplyLimits, ApplyReport, KnownAgents, apply_master_package, apply_worker_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::{MergedLimits, merge_from_storage};
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{StorageErrorKind, Timestamp};

type Apply = fn(&[u8], &mut MemoryStorage) -> Result<ApplyReport, ApplyError>;

fn on_worker(zip: &[u8], storage: &mut MemoryStorage) -> Result<ApplyReport, ApplyError> {
    let mut reader = PackageReader::open(Cursor::new(zip.to_vec()), PackageLimits::default())?;
    apply_master_package(
        &mut reader,
        storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &ApplyLimits::default(),
    )
}

fn on_master(zip: &[u8], storage: &mut MemoryStorage) -> Result<ApplyReport, ApplyError> {
    let agents = KnownAgents::from_client_keys(
        b"001 agent-one any k\n002 agent-two any k\n004 agent-four any k\n",
    );
    let mut reader = PackageReader::open(Cursor::new(zip.to_vec()), PackageLimits::default())?;
    apply_worker_package(
        &mut reader,
        storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &agents,
        &ApplyLimits::default(),
    )
}

/// Runs `apply` with a crash after each operation in turn and checks the invariants.
fn crash_everywhere(zip: &[u8], initial: &MemoryStorage, apply: Apply) -> u64 {
    let old = initial.files();
    let mut full = initial.clone();
    let start = full.operations();
    apply(zip, &mut full).unwrap();
    let total = full.operations() - start;
    let new = full.files();
    assert_ne!(old, new, "the workload must change something");

    for n in 0..total {
        let mut storage = initial.clone();
        storage.crash_after(n);
        let result = apply(zip, &mut storage);
        assert!(
            matches!(&result, Err(ApplyError::Storage(e)) if e.kind == StorageErrorKind::Crashed),
            "crash after {n} of {total} operations: {result:?}"
        );
        storage.recover();
        let after: BTreeMap<InstallPath, Vec<u8>> = storage.files();
        for (path, data) in &after {
            let is_old = old.get(path) == Some(data);
            let is_new = new.get(path) == Some(data);
            assert!(
                is_old || is_new,
                "crash after {n}: {path} is neither old nor new (torn or stray)"
            );
        }
        for path in old.keys() {
            // An existing file may be missing only if the apply removes it.
            assert!(
                after.contains_key(path) || !new.contains_key(path),
                "crash after {n}: {path} lost"
            );
        }
        // Restart: the same package converges.
        apply(zip, &mut storage).unwrap();
        assert_eq!(
            storage.files(),
            new,
            "re-run after a crash after {n} operations did not converge"
        );
    }
    total
}

#[test]
fn master_package_survives_a_crash_after_any_operation() {
    let zip = wazuh_cluster_vectors::read("v3.9/integrity_master_to_worker.zip");
    let ops = crash_everywhere(&zip, &tree_storage("worker_tree"), on_worker);
    assert!(ops > 20, "only {ops} operations");
}

#[test]
fn worker_package_survives_a_crash_after_any_operation() {
    let worker = tree_storage("worker_tree");
    let info: Vec<InstallPath> = [
        "agent-four-10.0.0.4",
        "agent-one-10.0.0.1",
        "ghost-10.9.9.9",
        "agent-two-10.0.0.2",
    ]
    .iter()
    .map(|n| InstallPath::new(&format!("/queue/agent-info/{n}")).unwrap())
    .collect();
    let merged = merge_from_storage(&worker, &info, None, &MergedLimits::default()).unwrap();
    let key = InstallPath::new("/queue/cluster/worker1/agent-info.merged").unwrap();
    let control = format!(
        r#"{{"{key}": {{"mod_time": "2026-11-26 08:48:44.403126", "cluster_item_key": "/queue/agent-info/", "merged": true, "merge_type": "agent-info", "merge_name": "{key}"}}}}"#
    );
    let now = Timestamp::from_secs(1_795_682_924);
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    builder.add_member(&key, now, 0o660, &merged.bytes).unwrap();
    let zip = builder
        .finish(control.as_bytes(), now)
        .unwrap()
        .into_inner();
    let ops = crash_everywhere(&zip, &tree_storage("master_tree"), on_master);
    assert!(ops >= 6, "only {ops} operations");
}
