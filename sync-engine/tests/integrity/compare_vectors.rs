//! `SyncPlan::compare` against the real 3.9.5 `compare_files` (vectors/v3.9/integrity.json,
//! compare_files_synthetic.json and the master→worker package), plus our refusal rules.

use std::collections::BTreeMap;

use crate::recorded_zip::zip_member;
use crate::trees;
use proptest::prelude::*;
use serde_json::Value;
use wazuh_cluster_sync::integrity::compare::{Rejection, SyncCounts, SyncPlan};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::merged::{MergedLimits, merge_from_storage};
use wazuh_cluster_sync::integrity::metadata::{FileMetadata, IntegrityMetadata};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_testkit::install_path as p;

fn metadata(value: &Value) -> IntegrityMetadata {
    IntegrityMetadata::from_json(value.to_string().as_bytes(), 1_000_000).unwrap()
}

fn files_and_count(plan: &SyncPlan) -> Value {
    serde_json::json!({
        "files": serde_json::from_str::<Value>(&plan.to_upstream_json()).unwrap(),
        "count": serde_json::from_str::<Value>(&plan.counts_upstream_json()).unwrap(),
    })
}

fn recorded_plan() -> SyncPlan {
    let v = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let master = metadata(&v["master_files_status"]);
    let worker = metadata(&v["worker_files_status_sent_in_sync_i_w_m"]);
    SyncPlan::compare(&master, &worker, &ClusterItems::defaults_3_9(), "worker1").unwrap()
}

/// The package the recorded master sent to worker1.
const MASTER_TO_WORKER: &str = "v3.9/integrity_master_to_worker.zip";

#[test]
fn compare_files_master_vs_worker_matches_upstream() {
    let v = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let plan = recorded_plan();
    assert_eq!(files_and_count(&plan), v["compare_files_master_vs_worker"]);
    assert_eq!(
        plan.counts(),
        SyncCounts {
            missing: 4,
            extra: 2,
            extra_valid: 1,
            shared: 4
        }
    );
    assert_eq!(
        plan.shared_merged,
        Some(p("/queue/cluster/worker1/agent-groups-shared.merged"))
    );
    // 001 has the same MD5 on both sides; only 002 changed.
    assert_eq!(plan.shared_merged_sources, [p("/queue/agent-groups/002")]);
    assert!(plan.rejected.is_empty());
    assert!(!plan.is_empty());
}

#[test]
fn agent_groups_shared_merged_is_built_from_the_master_files() {
    let v = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let plan = recorded_plan();
    let storage = trees::load("master_tree");
    let merged = merge_from_storage(
        &storage,
        &plan.shared_merged_sources,
        None,
        &MergedLimits::default(),
    )
    .unwrap();
    assert_eq!(
        merged.bytes,
        wazuh_cluster_vectors::unhex(v["agent_groups_shared_merged_hex"].as_str().unwrap())
    );
    assert_eq!(merged.parts, 1);
    // And it is what the real master put in its package.
    assert_eq!(
        merged.bytes,
        zip_member(
            MASTER_TO_WORKER,
            "queue/cluster/worker1/agent-groups-shared.merged"
        )
        .into_bytes()
    );
}

#[test]
fn master_to_worker_cluster_control_json_matches_upstream() {
    let recorded = zip_member(MASTER_TO_WORKER, "cluster_control.json");
    let plan = recorded_plan();
    let ours = plan.to_upstream_json();
    assert_eq!(
        serde_json::from_str::<Value>(&ours).unwrap(),
        serde_json::from_str::<Value>(&recorded).unwrap()
    );
    // Upstream's group order is set order (not reproducible); every entry, written on its own, is
    // byte-identical, and the document has the same length.
    assert_eq!(ours.len(), recorded.len());
    for group in [&plan.missing, &plan.extra, &plan.shared, &plan.extra_valid] {
        for (path, meta) in &group.0 {
            let mut one = IntegrityMetadata::new();
            one.0.insert(path.clone(), meta.clone());
            let fragment = one.to_upstream_json();
            let fragment = &fragment[1..fragment.len() - 1];
            assert!(
                recorded.contains(fragment),
                "{fragment} not in the recorded document"
            );
        }
    }
    // The merged entry comes first in "shared", as upstream's itertools.chain puts it.
    assert!(ours.contains(r#""shared": {"/queue/cluster/worker1/agent-groups-shared.merged": {"cluster_item_key": "/queue/agent-groups/", "merged": true, "merge-type": "agent-groups"}, "#));
}

#[test]
fn worker_parses_the_recorded_plan() {
    let recorded = zip_member(MASTER_TO_WORKER, "cluster_control.json");
    let parsed = SyncPlan::from_upstream_json(recorded.as_bytes(), 1000).unwrap();
    let ours = recorded_plan();
    assert_eq!(parsed.missing, ours.missing);
    assert_eq!(parsed.extra, ours.extra);
    assert_eq!(parsed.shared, ours.shared);
    assert_eq!(parsed.extra_valid, ours.extra_valid);
    assert_eq!(parsed.shared_merged, ours.shared_merged);
    assert!(parsed.shared_merged_sources.is_empty());
    use wazuh_cluster_sync::integrity::metadata::MetadataError;
    assert_eq!(
        SyncPlan::from_upstream_json(recorded.as_bytes(), 10),
        Err(MetadataError::TooManyEntries(10))
    );
    let escape = br#"{"missing": {"/../etc/passwd": {"cluster_item_key": "/etc/", "merged": false}}, "extra": {}, "shared": {}, "extra_valid": {}}"#;
    assert_eq!(
        SyncPlan::from_upstream_json(escape, 10),
        Err(MetadataError::BadPath("/../etc/passwd".into()))
    );
    let missing_group = br#"{"missing": {}, "extra": {}, "shared": {}}"#;
    assert!(matches!(
        SyncPlan::from_upstream_json(missing_group, 10),
        Err(MetadataError::Malformed(_))
    ));
}

#[test]
fn compare_files_synthetic_matches_upstream() {
    let v = wazuh_cluster_vectors::json("v3.9/compare_files_synthetic.json");
    let plan = SyncPlan::compare(
        &metadata(&v["good_master"]),
        &metadata(&v["check_worker"]),
        &ClusterItems::defaults_3_9(),
        "worker1",
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plan.to_upstream_json()).unwrap(),
        v["result"]
    );
    assert_eq!(
        serde_json::from_str::<Value>(&plan.counts_upstream_json()).unwrap(),
        v["count"]
    );
}

fn entry(key: &str, md5: &str) -> FileMetadata {
    FileMetadata::plain("2019-07-01 16:53:20".into(), key, Some(md5.into()))
}

#[test]
fn worker_entries_outside_their_item_are_rejected_not_deleted() {
    let items = ClusterItems::defaults_3_9();
    let mut worker = IntegrityMetadata::new();
    let cases = [
        (
            "/etc/ossec.conf",
            "/etc/",
            Rejection::NotSelected("/etc/".into()),
        ),
        (
            "/etc/rules/ar.conf",
            "/etc/rules/",
            Rejection::NotSelected("/etc/rules/".into()),
        ),
        (
            "/etc/rules/x.swp",
            "/etc/rules/",
            Rejection::NotSelected("/etc/rules/".into()),
        ),
        (
            "/etc/rules/old.tmp/r.xml",
            "/etc/rules/",
            Rejection::NotSelected("/etc/rules/".into()),
        ),
        (
            "/etc/passwd",
            "/etc/rules/",
            Rejection::OutsideItem("/etc/rules/".into()),
        ),
        (
            "/etc/sub/client.keys",
            "/etc/",
            Rejection::OutsideItem("/etc/".into()),
        ),
        (
            "/var/db/global.db",
            "/var/db/",
            Rejection::UnknownItem("/var/db/".into()),
        ),
        (
            "/queue/agent-info/a-1.2.3.4",
            "/queue/agent-info/",
            Rejection::NotMasterItem("/queue/agent-info/".into()),
        ),
    ];
    for (path, key, _) in &cases {
        worker
            .0
            .insert(p(path), entry(key, "00000000000000000000000000000000"));
    }
    worker.0.insert(
        p("/etc/rules/sub/ok.xml"),
        entry("/etc/rules/", "00000000000000000000000000000000"),
    );
    let plan = SyncPlan::compare(&IntegrityMetadata::new(), &worker, &items, "worker1").unwrap();
    let expected: BTreeMap<InstallPath, Rejection> =
        cases.into_iter().map(|(path, _, r)| (p(path), r)).collect();
    assert_eq!(plan.rejected, expected);
    assert_eq!(
        plan.extra.0.keys().collect::<Vec<_>>(),
        [&p("/etc/rules/sub/ok.xml")]
    );
    assert!(plan.extra_valid.is_empty() && plan.missing.is_empty() && plan.shared.is_empty());
}

#[test]
fn identical_sides_give_an_empty_plan_and_a_bad_worker_name_is_refused() {
    let v = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let master = metadata(&v["master_files_status"]);
    let items = ClusterItems::defaults_3_9();
    let plan = SyncPlan::compare(&master, &master, &items, "worker1").unwrap();
    assert!(plan.is_empty());
    assert_eq!(
        plan.to_upstream_json(),
        r#"{"missing": {}, "extra": {}, "shared": {}, "extra_valid": {}}"#
    );
    use wazuh_cluster_sync::integrity::compare::CompareError;
    assert_eq!(
        SyncPlan::compare(&master, &master, &items, ".."),
        Err(CompareError::BadWorkerName("..".into()))
    );
    assert_eq!(
        SyncPlan::compare(&master, &master, &items, "a/b"),
        Err(CompareError::BadWorkerName("a/b".into()))
    );
}

/// Metadata maps over a small key space so that collisions (shared keys) are frequent.
fn arb_side() -> impl Strategy<Value = BTreeMap<u8, u8>> {
    proptest::collection::btree_map(0u8..40, 0u8..3, 0..40)
}

fn side(entries: &BTreeMap<u8, u8>) -> IntegrityMetadata {
    IntegrityMetadata(
        entries
            .iter()
            .map(|(k, h)| {
                // Even keys: rules (plain); odd keys: agent-groups (extra-valid).
                let (path, key) = if k % 2 == 0 {
                    (format!("/etc/rules/r{k}"), "/etc/rules/")
                } else {
                    (
                        format!("/queue/agent-groups/{k:03}"),
                        "/queue/agent-groups/",
                    )
                };
                (p(&path), entry(key, &format!("{h:032x}")))
            })
            .collect(),
    )
}

proptest! {
    #[test]
    fn every_key_lands_in_exactly_the_group_upstream_puts_it(m in arb_side(), w in arb_side()) {
        let plan = SyncPlan::compare(&side(&m), &side(&w), &ClusterItems::defaults_3_9(), "w").unwrap();
        let mut merged = Vec::new();
        for k in 0u8..40 {
            let path = if k % 2 == 0 { format!("/etc/rules/r{k}") } else { format!("/queue/agent-groups/{k:03}") };
            let path = p(&path);
            let group = (plan.missing.0.contains_key(&path), plan.extra.0.contains_key(&path),
                plan.extra_valid.0.contains_key(&path), plan.shared.0.contains_key(&path));
            let expected = match (m.get(&k), w.get(&k)) {
                (Some(_), None) => (true, false, false, false),
                (None, Some(_)) => (false, k % 2 == 0, k % 2 == 1, false),
                (Some(a), Some(b)) if a != b && k % 2 == 1 => { merged.push(path.clone()); (false, false, false, false) }
                (Some(a), Some(b)) if a != b => (false, false, false, true),
                _ => (false, false, false, false),
            };
            prop_assert_eq!(group, expected, "key {}", k);
        }
        prop_assert_eq!(&plan.shared_merged_sources, &merged);
        prop_assert_eq!(plan.shared_merged.is_some(), !merged.is_empty());
        let round = SyncPlan::from_upstream_json(plan.to_upstream_json().as_bytes(), 1000).unwrap();
        prop_assert_eq!(round.shared, plan.shared);
        prop_assert_eq!(round.missing, plan.missing);
    }
}
