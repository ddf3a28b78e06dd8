//! Scan → compare → package → read → apply, on the recorded trees and on random ones.

use std::collections::BTreeMap;
use std::io::Cursor;

use crate::trees::load as tree_storage;
use proptest::prelude::*;
use wazuh_cluster_sync::integrity::agents::AgentCleanup;
use wazuh_cluster_sync::integrity::apply::{
    ApplyLimits, ApplyReport, KnownAgents, SkipReason, apply_master_package, apply_worker_package,
};
use wazuh_cluster_sync::integrity::compare::SyncPlan;
use wazuh_cluster_sync::integrity::items::{ClusterItems, ItemSource, NodeType};
use wazuh_cluster_sync::integrity::memory::{MemoryStorage, SnapshotEntry};
use wazuh_cluster_sync::integrity::merged::{MergedLimits, merge_from_storage};
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::metadata::{
    FileMetadata, IntegrityMetadata, MergeType, MetadataScanner,
};
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::staged_package::{PackageTarget, build_master_package};
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};
use wazuh_cluster_testkit::install_path as p;

const NOW: Timestamp = Timestamp {
    secs: 1_800_000_000,
    nanos: 0,
};

fn scan(storage: &MemoryStorage, items: &ClusterItems, node: &str) -> IntegrityMetadata {
    let request = ScanRequest {
        node_type: NodeType::Master,
        node_name: node,
        now: NOW,
    };
    let output = MetadataScanner::new()
        .scan(storage, items, &request)
        .unwrap();
    std::sync::Arc::unwrap_or_clone(output.metadata)
}

/// Files of master-sourced items only (what integrity keeps equal).
fn master_files(storage: &MemoryStorage, items: &ClusterItems) -> BTreeMap<InstallPath, Vec<u8>> {
    scan(storage, items, "n")
        .0
        .keys()
        .map(|k| (k.clone(), storage.read(k, u64::MAX).unwrap()))
        .collect()
}

/// The master side of one integrity round for `worker`: compare and build the package.
fn master_round(
    master: &MemoryStorage,
    worker: &MemoryStorage,
    items: &ClusterItems,
    name: &str,
) -> (SyncPlan, Vec<u8>) {
    let plan = SyncPlan::compare(
        &scan(master, items, "master"),
        &scan(worker, items, name),
        items,
        name,
    )
    .unwrap();
    // Built into the master's storage (a copy: the callers keep theirs), then read back.
    let mut out = master.clone();
    let path = p(&format!("/queue/cluster/{name}/package.zip"));
    out.create_dir_all(&p(&format!("/queue/cluster/{name}")), 0o770)
        .unwrap();
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: None,
    };
    let target = PackageTarget {
        path: &path,
        limit: 1 << 30,
        attrs: &attrs,
        splices: 0,
    };
    let size = build_master_package(&mut out, target, &plan, &MergedLimits::default(), NOW)
        .unwrap()
        .size;
    let zip = out.read(&path, u64::MAX).unwrap();
    assert_eq!(zip.len() as u64, size);
    (plan, zip)
}

fn apply_on_worker(
    zip: Vec<u8>,
    worker: &mut MemoryStorage,
    items: &ClusterItems,
    name: &str,
) -> ApplyReport {
    let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
    apply_master_package(&mut reader, worker, items, name, &ApplyLimits::default()).unwrap()
}

/// The worker → master package of merged `merge_type` files `sources` (3.9.5 `sync_extra_valid`
/// / `sync_agent_info`).
fn worker_merged_package(
    worker: &MemoryStorage,
    name: &str,
    merge_type: MergeType,
    sources: &[InstallPath],
) -> Vec<u8> {
    let merged = merge_from_storage(worker, sources, None, &MergedLimits::default()).unwrap();
    let file = format!("{}.merged", merge_type.as_str());
    let key = p(&format!("/queue/cluster/{name}/{file}"));
    let item = format!("/queue/{}/", merge_type.as_str());
    let meta = FileMetadata {
        mod_time: None,
        cluster_item_key: item,
        merged: true,
        merge_type: Some(merge_type),
        merge_name: Some(key.as_str().to_owned()),
        merge_type_hyphen: None,
        md5: None,
    };
    let control = IntegrityMetadata([(key.clone(), meta)].into_iter().collect()).to_upstream_json();
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    builder.add_member(&key, NOW, 0o660, &merged.bytes).unwrap();
    builder
        .finish(control.as_bytes(), NOW)
        .unwrap()
        .into_inner()
}

fn apply_on_master(
    zip: Vec<u8>,
    master: &mut MemoryStorage,
    items: &ClusterItems,
    name: &str,
) -> ApplyReport {
    let keys = master.read(&p("/etc/client.keys"), 1 << 20).unwrap();
    let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
    apply_worker_package(
        &mut reader,
        master,
        items,
        name,
        &KnownAgents::from_client_keys(&keys),
        &ApplyLimits::default(),
    )
    .unwrap()
}

#[test]
fn recorded_package_brings_the_recorded_worker_to_the_master() {
    let items = ClusterItems::defaults_3_9();
    let master = tree_storage("master_tree");
    let mut worker = tree_storage("worker_tree");
    let zip = wazuh_cluster_vectors::read("v3.9/integrity_master_to_worker.zip");
    let report = apply_on_worker(zip, &mut worker, &items, "worker1");
    // 4 missing + 3 plain shared + 1 part of agent-groups-shared.merged; 2 extra; oldgroup/ emptied.
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

    let mut expected = master_files(&master, &items);
    // 004 exists on the worker only (extra-valid: it travels the other way).
    expected.insert(p("/queue/agent-groups/004"), b"group2\n".to_vec());
    assert_eq!(master_files(&worker, &items), expected);
    let snapshot = worker.snapshot();
    assert!(!snapshot.contains_key(&p("/etc/shared/oldgroup")));
    assert!(
        snapshot.contains_key(&p("/etc/ossec.conf")),
        "files outside the items stay"
    );
    // Item permissions and the master's mtime (parsed back from mod_time).
    let Some(SnapshotEntry::File { mode, mtime, .. }) = snapshot.get(&p("/etc/client.keys")) else {
        panic!()
    };
    assert_eq!(
        (*mode, *mtime),
        (0o640, Timestamp::from_secs(1_562_000_000))
    );
    let Some(SnapshotEntry::File { mode, .. }) =
        snapshot.get(&p("/etc/lists/amazon/aws-eventnames"))
    else {
        panic!()
    };
    assert_eq!(*mode, 0o660);
    let Some(SnapshotEntry::Dir { mode }) = snapshot.get(&p("/etc/lists/amazon")) else {
        panic!()
    };
    assert_eq!(*mode, 0o770);

    // The next round only has the extra-valid file left.
    let plan = SyncPlan::compare(
        &scan(&master, &items, "master01"),
        &scan(&worker, &items, "worker1"),
        &items,
        "worker1",
    )
    .unwrap();
    assert!(plan.missing.is_empty() && plan.shared.is_empty() && plan.extra.is_empty());
    assert_eq!(
        plan.extra_valid.0.keys().collect::<Vec<_>>(),
        [&p("/queue/agent-groups/004")]
    );
}

#[test]
fn our_package_of_the_recorded_trees_has_upstream_members() {
    let items = ClusterItems::defaults_3_9();
    let master = tree_storage("master_tree");
    let worker = tree_storage("worker_tree");
    let (_, ours) = master_round(&master, &worker, &items, "worker1");
    let mut ours = PackageReader::open(Cursor::new(ours), PackageLimits::default()).unwrap();
    let mut upstream = PackageReader::open(
        Cursor::new(wazuh_cluster_vectors::read(
            "v3.9/integrity_master_to_worker.zip",
        )),
        PackageLimits::default(),
    )
    .unwrap();
    let names = |r: &PackageReader<Cursor<Vec<u8>>>| {
        let mut v: Vec<InstallPath> = r.members().iter().map(|m| m.key.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&ours), names(&upstream));
    for key in names(&upstream) {
        assert_eq!(
            ours.read_member(&key, u64::MAX).unwrap(),
            upstream.read_member(&key, u64::MAX).unwrap(),
            "{key}"
        );
    }
    let control: serde_json::Value = serde_json::from_slice(ours.control_json()).unwrap();
    let recorded = wazuh_cluster_vectors::json("v3.9/integrity.json");
    assert_eq!(control, recorded["compare_files_master_vs_worker"]["files"]);
}

#[test]
fn extra_valid_and_agent_info_come_back_to_the_master() {
    let items = ClusterItems::defaults_3_9();
    let mut master = tree_storage("master_tree");
    let worker = tree_storage("worker_tree");
    let groups = worker_merged_package(
        &worker,
        "worker1",
        MergeType::AgentGroups,
        &[p("/queue/agent-groups/004")],
    );
    let report = apply_on_master(groups, &mut master, &items, "worker1");
    assert_eq!(
        report,
        ApplyReport {
            written: 1,
            ..ApplyReport::default()
        }
    );
    assert_eq!(
        master.read(&p("/queue/agent-groups/004"), 100).unwrap(),
        b"group2\n"
    );

    let info: Vec<InstallPath> = [
        "agent-four-10.0.0.4",
        "agent-one-10.0.0.1",
        "ghost-10.9.9.9",
        "agent-two-10.0.0.2",
    ]
    .iter()
    .map(|n| p(&format!("/queue/agent-info/{n}")))
    .collect();
    let zip = worker_merged_package(&worker, "worker1", MergeType::AgentInfo, &info);
    let report = apply_on_master(zip, &mut master, &items, "worker1");
    assert_eq!(report.written, 3);
    assert_eq!(
        report.skipped,
        vec![(
            p("/queue/agent-info/ghost-10.9.9.9"),
            SkipReason::UnknownAgent
        )]
    );
    let snapshot = master.snapshot();
    let Some(SnapshotEntry::File { mtime, mode, .. }) =
        snapshot.get(&p("/queue/agent-info/agent-two-10.0.0.2"))
    else {
        panic!()
    };
    assert_eq!(
        (*mtime, *mode),
        (
            Timestamp {
                secs: 1_562_000_000,
                nanos: 250_000_000
            },
            0o660
        )
    );

    // Newer wins: the master's copy is now newer than the worker's header time.
    let newer = Timestamp::from_secs(1_562_000_100);
    master
        .add_file(
            &p("/queue/agent-info/agent-one-10.0.0.1"),
            b"master".to_vec(),
            newer,
            0o660,
        )
        .unwrap();
    // Same second as the header (truncated): the worker's copy is taken.
    let same = Timestamp {
        secs: 1_562_000_000,
        nanos: 900_000_000,
    };
    master
        .add_file(
            &p("/queue/agent-info/agent-four-10.0.0.4"),
            b"master".to_vec(),
            same,
            0o660,
        )
        .unwrap();
    let zip = worker_merged_package(&worker, "worker1", MergeType::AgentInfo, &info);
    let report = apply_on_master(zip, &mut master, &items, "worker1");
    assert_eq!(report.written, 2);
    assert_eq!(report.skipped_for(SkipReason::LocalNewer), 1);
    assert_eq!(
        master
            .read(&p("/queue/agent-info/agent-one-10.0.0.1"), 100)
            .unwrap(),
        b"master"
    );
    assert_ne!(
        master
            .read(&p("/queue/agent-info/agent-four-10.0.0.4"), 1000)
            .unwrap(),
        b"master"
    );
}

/// Paths a random tree draws from: every master item, nested directories, names outside the
/// item selections, and agent-groups ids (known agents 001-003 on the master).
const UNIVERSE: &[&str] = &[
    "/etc/client.keys",
    "/etc/ossec.conf",
    "/etc/shared/default/merged.mg",
    "/etc/shared/default/agent.conf",
    "/etc/shared/g1/merged.mg",
    "/etc/shared/g2/merged.mg",
    "/etc/rules/a.xml",
    "/etc/rules/b.xml",
    "/etc/rules/sub/c.xml",
    "/etc/decoders/d.xml",
    "/etc/lists/l1",
    "/etc/lists/x/y/l2",
    "/var/multigroups/h1/merged.mg",
    "/var/multigroups/h2/merged.mg",
    "/queue/agent-groups/001",
    "/queue/agent-groups/002",
    "/queue/agent-groups/003",
];

const CLIENT_KEYS: &[u8] = b"001 agent-one any k1\n002 agent-two any k2\n003 agent-three any k3\n";

fn tree_strategy() -> impl Strategy<Value = Vec<(usize, u8, i64)>> {
    proptest::collection::vec(
        (0..UNIVERSE.len(), 0u8..4, 1_500_000_000i64..1_700_000_000),
        0..UNIVERSE.len(),
    )
}

fn build_tree(files: &[(usize, u8, i64)], master: bool) -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    for (i, content, mtime) in files {
        let path = p(UNIVERSE[*i]);
        let data = format!("{} v{content}\n", UNIVERSE[*i])
            .repeat(usize::from(*content) + 1)
            .into_bytes();
        storage
            .add_file(&path, data, Timestamp::from_secs(*mtime), 0o640)
            .unwrap();
    }
    if master {
        storage
            .add_file(
                &p("/etc/client.keys"),
                CLIENT_KEYS.to_vec(),
                Timestamp::from_secs(1_600_000_000),
                0o640,
            )
            .unwrap();
    }
    storage
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One full round makes the worker's master-sourced files byte-equal to the master's, brings
    /// the worker-only agent-groups files to the master, and the next round finds nothing to do.
    #[test]
    fn one_round_converges(master_files_in in tree_strategy(), worker_files_in in tree_strategy()) {
        let items = ClusterItems::defaults_3_9();
        let mut master = build_tree(&master_files_in, true);
        let mut worker = build_tree(&worker_files_in, false);
        let original_worker = worker.files();

        let (plan, zip) = master_round(&master, &worker, &items, "w1");
        apply_on_worker(zip, &mut worker, &items, "w1");

        // Worker → master: the extra-valid files (agent-groups the master does not have).
        let extra_valid: Vec<InstallPath> = plan.extra_valid.0.keys().cloned().collect();
        if !extra_valid.is_empty() {
            let zip = worker_merged_package(&worker, "w1", MergeType::AgentGroups, &extra_valid);
            let report = apply_on_master(zip, &mut master, &items, "w1");
            prop_assert_eq!(report.written, extra_valid.len());
        }
        for path in &extra_valid {
            prop_assert_eq!(master.read(path, 1 << 20).unwrap(), original_worker[path].clone());
        }

        // The worker's master-sourced files equal the master's.
        prop_assert_eq!(master_files(&worker, &items), master_files(&master, &items));
        // Files outside every item are untouched on the worker.
        for (path, data) in &original_worker {
            if items.item_for_path(path).is_none_or(|i| i.source != ItemSource::Master) || path.as_str() == "/etc/ossec.conf" {
                prop_assert_eq!(worker.read(path, 1 << 20).ok(), Some(data.clone()));
            }
        }
        let (again, _) = master_round(&master, &worker, &items, "w1");
        prop_assert!(again.is_empty(), "second round not empty: {:?}", again.counts());
    }
}
