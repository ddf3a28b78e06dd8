//! A crash after any single storage operation of an apply leaves every file old or new (never
//! torn, no staged file visible), and running the apply again converges to the full result.
//!
//! The apply commits its files as one deferred batch; `MemoryStorage` shows a deferred commit
//! only once `sync_deferred` puts it in place (a crash before loses it), so the full run is also
//! checked against the package itself: every file it carries must have landed, which fails if the
//! batch were never synced.
//!
//! A package carrying a `client.keys` that drops agents removes their files before anything is
//! written: a crash in between leaves the old `client.keys`, so the re-run finds the same agents
//! again and removes what is left of their files; after the new one is in place, nothing.

use std::collections::BTreeMap;
use std::io::Cursor;

use crate::agents_support::{
    AGENT_FILES, NEW_KEYS, OLD_KEYS, REMOVED, agents_tree, keys_package, on_worker,
};
use crate::trees::load as tree_storage;
use wazuh_cluster_sync::integrity::agents::AgentCleanup;
use wazuh_cluster_sync::integrity::apply::{
    ApplyError, ApplyLimits, ApplyReport, KnownAgents, apply_worker_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::{MergedLimits, merge_from_storage};
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{StorageErrorKind, Timestamp};
use wazuh_cluster_testkit::install_path as p;

type Apply = fn(&[u8], &mut MemoryStorage) -> Result<ApplyReport, ApplyError>;

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

/// Runs `apply` with a crash after each operation in turn and checks the invariants; `landed`
/// checks the full run's result against the package, `rerun` each re-run's report against the
/// files the crash left. Returns the full run's operation count.
fn crash_everywhere(
    zip: &[u8],
    initial: &MemoryStorage,
    apply: Apply,
    landed: impl Fn(&ApplyReport, &BTreeMap<InstallPath, Vec<u8>>),
    rerun: impl Fn(&BTreeMap<InstallPath, Vec<u8>>, &ApplyReport),
) -> u64 {
    let old = initial.files();
    let mut full = initial.clone();
    let start = full.operations();
    let report = apply(zip, &mut full).unwrap();
    let total = full.operations() - start;
    let new = full.files();
    assert_ne!(old, new, "the workload must change something");
    assert_eq!(full.deferred_commits(), 0, "the apply left commits pending");
    assert_eq!(full.staged_writes(), 0, "the apply left staged writes");
    landed(&report, &new);

    for n in 0..total {
        let mut storage = initial.clone();
        storage.crash_after(n);
        let result = apply(zip, &mut storage);
        assert!(
            matches!(&result, Err(ApplyError::Storage(e)) if e.kind == StorageErrorKind::Crashed),
            "crash after {n} of {total} operations: {result:?}"
        );
        storage.recover();
        assert_eq!(storage.deferred_commits(), 0);
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
        let report = apply(zip, &mut storage).unwrap();
        rerun(&after, &report);
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
    let mut reader =
        PackageReader::open(Cursor::new(zip.clone()), PackageLimits::default()).unwrap();
    let keys: Vec<InstallPath> = reader.members().iter().map(|m| m.key.clone()).collect();
    // Every plain member lands with its bytes (the merged one is split into agent-groups files).
    let members: BTreeMap<InstallPath, Vec<u8>> = keys
        .into_iter()
        .filter(|k| !k.as_str().ends_with(".merged"))
        .map(|k| {
            let data = reader.read_member(&k, u64::MAX).unwrap();
            (k, data)
        })
        .collect();
    assert!(members.len() >= 5, "only {} plain members", members.len());
    let landed = |report: &ApplyReport, new: &BTreeMap<InstallPath, Vec<u8>>| {
        assert!(report.written >= members.len(), "{report:?}");
        for (key, data) in &members {
            assert_eq!(new.get(key), Some(data), "{key} did not land");
        }
    };
    let no_agents = |_: &BTreeMap<InstallPath, Vec<u8>>, report: &ApplyReport| {
        assert_eq!(report.agents, AgentCleanup::default());
    };
    let ops = crash_everywhere(
        &zip,
        &tree_storage("worker_tree"),
        on_worker,
        landed,
        no_agents,
    );
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
    // Every part not skipped lands with the worker's content.
    let landed = |report: &ApplyReport, new: &BTreeMap<InstallPath, Vec<u8>>| {
        let skipped: Vec<&InstallPath> = report.skipped.iter().map(|(p, _)| p).collect();
        let written: Vec<&InstallPath> = info.iter().filter(|p| !skipped.contains(p)).collect();
        assert_eq!(report.written, written.len(), "{report:?}");
        assert!(!written.is_empty(), "{report:?}");
        for path in written {
            assert_eq!(
                new.get(path),
                worker.files().get(path),
                "{path} did not land"
            );
        }
    };
    let ops = crash_everywhere(
        &zip,
        &tree_storage("master_tree"),
        on_master,
        landed,
        |_, _| {},
    );
    assert!(ops >= 6, "only {ops} operations");
}

#[test]
fn client_keys_package_removes_agent_files_first_and_survives_a_crash_after_any_operation() {
    let zip = keys_package(NEW_KEYS, "shared");
    let initial = agents_tree(OLD_KEYS, AGENT_FILES);
    let keys = p("/etc/client.keys");
    let gone = |files: &BTreeMap<InstallPath, Vec<u8>>, path: &str| {
        !files.keys().any(|f| f.starts_with(&p(path)))
    };
    let landed = |report: &ApplyReport, new: &BTreeMap<InstallPath, Vec<u8>>| {
        assert_eq!(new.get(&keys).map(Vec::as_slice), Some(NEW_KEYS));
        let removed: Vec<&str> = report.agents.removed.iter().map(|r| r.as_str()).collect();
        assert_eq!(removed, REMOVED);
        assert!(REMOVED.iter().all(|r| gone(new, r)));
    };
    // Files of the removed agents still there.
    let left = |files: &BTreeMap<InstallPath, Vec<u8>>| -> Vec<&str> {
        REMOVED
            .iter()
            .copied()
            .filter(|r| !gone(files, r))
            .collect()
    };
    let rerun = |crashed: &BTreeMap<InstallPath, Vec<u8>>, report: &ApplyReport| {
        let ids: Vec<&str> = report.agents.agents.iter().map(|a| a.id.as_str()).collect();
        if crashed.get(&keys).map(Vec::as_slice) == Some(NEW_KEYS) {
            // The new client.keys landed, so every removal before it did.
            let left = left(crashed);
            assert!(left.is_empty(), "client.keys replaced, {left:?} left");
            assert!(ids.is_empty(), "{ids:?}");
        } else {
            // Still the old one: the same agents, and the files the crash left are removed now.
            assert_eq!(crashed.get(&keys).map(Vec::as_slice), Some(OLD_KEYS));
            assert_eq!(ids, ["002", "004"]);
            let removed: Vec<&str> = report.agents.removed.iter().map(|r| r.as_str()).collect();
            assert_eq!(removed, left(crashed));
        }
    };
    let ops = crash_everywhere(&zip, &initial, on_worker, landed, rerun);
    // Reading both client.keys, listing agent-info, a stat and a removal per target, then the
    // write of the new client.keys.
    assert!(ops > 2 * REMOVED.len() as u64, "only {ops} operations");
}
