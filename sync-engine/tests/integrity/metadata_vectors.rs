//! The metadata document against what real 3.9.5 nodes computed (vectors/v3.9/integrity.json),
//! the byte-exact `json.dumps` form, `mod_time` formatting and the incremental scanner.

use crate::recorded_zip::zip_member;
use crate::trees;
use proptest::prelude::*;
use serde_json::Value;
use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::scan::{ScanRequest, hash_file};
use wazuh_cluster_sync::integrity::metadata::{
    IntegrityMetadata, MetadataScanner, format_mod_time, parse_mod_time, py_st_mtime,
};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_testkit::install_path as p;

/// Recording time of the vectors (the trees' config files carry it); far after 1562000000.
const NOW: Timestamp = Timestamp {
    secs: 1_795_682_700,
    nanos: 0,
};

fn master_scan(storage: &MemoryStorage, items: &ClusterItems) -> IntegrityMetadata {
    let request = scan_request(NodeType::Master, "master01");
    let out = MetadataScanner::new()
        .scan(storage, items, &request)
        .unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    std::sync::Arc::unwrap_or_clone(out.metadata)
}

/// A scan at [`NOW`] by a `node_type` node called `node_name`.
fn scan_request(node_type: NodeType, node_name: &str) -> ScanRequest<'_> {
    ScanRequest {
        node_type,
        node_name,
        now: NOW,
    }
}

/// Adds a plain file (mode 0o660) to `storage`.
fn add(storage: &mut MemoryStorage, path: &str, data: &[u8], mtime: Timestamp) {
    storage
        .add_file(&p(path), data.to_vec(), mtime, 0o660)
        .unwrap();
}

/// How many files one scan with `scanner` had to hash.
fn hashed(
    scanner: &mut MetadataScanner,
    storage: &MemoryStorage,
    items: &ClusterItems,
    request: &ScanRequest<'_>,
) -> u64 {
    scanner
        .scan(storage, items, request)
        .unwrap()
        .stats
        .files_hashed
}

fn as_value(metadata: &IntegrityMetadata) -> Value {
    serde_json::from_str(&metadata.to_upstream_json()).unwrap()
}

#[test]
fn master_files_status_matches_upstream() {
    let vectors = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let ours = master_scan(&trees::load("master_tree"), &ClusterItems::defaults_3_9());
    assert_eq!(as_value(&ours), vectors["master_files_status"]);
    assert_eq!(ours.len(), 11);
}

#[test]
fn worker_status_sent_in_sync_i_w_m_matches_upstream() {
    let vectors = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let ours = master_scan(&trees::load("worker_tree"), &ClusterItems::defaults_3_9());
    assert_eq!(
        as_value(&ours),
        vectors["worker_files_status_sent_in_sync_i_w_m"]
    );
}

#[test]
fn walk_dir_etc_lists_matches_upstream() {
    // walk_dir of one item: a cluster.json whose only item is /etc/lists/ (the exclusions stay).
    let items = ClusterItems::from_json_3_9(
        br#"{"files": {"/etc/lists/": {"permissions": "0o660", "source": "master", "files": ["all"],
             "recursive": true, "restart": true, "remove_subdirs_if_empty": false, "extra_valid": false}}}"#,
    )
    .unwrap();
    let vectors = wazuh_cluster_vectors::json("v3.9/integrity.json");
    let ours = master_scan(&trees::load("master_tree"), &items);
    // ignored.swp is excluded by extension.
    assert_eq!(as_value(&ours), vectors["walk_dir_etc_lists"]);
}

/// Keys of a recorded JSON object in document order (serde_json's Map sorts them).
fn recorded_key_order(text: &str, doc: &Value) -> Vec<InstallPath> {
    let mut keys: Vec<(usize, &String)> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (text.find(&format!("\"{k}\": {{")).unwrap(), k))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| p(k)).collect()
}

#[test]
fn cluster_control_json_is_byte_identical_to_upstream_json_dumps() {
    let recorded = zip_member(
        "v3.9/integrity_worker_to_master.zip",
        "cluster_control.json",
    );
    let doc: Value = serde_json::from_str(&recorded).unwrap();
    let ours = master_scan(&trees::load("worker_tree"), &ClusterItems::defaults_3_9());
    // Upstream's dict keeps os.listdir order; ours is path order. With the same order, the bytes
    // must be identical.
    let order = recorded_key_order(&recorded, &doc);
    assert_eq!(ours.to_upstream_json_ordered(&order), recorded);
    assert_eq!(recorded.len(), 1639);
    // In path order the document is the same JSON value.
    assert_eq!(
        serde_json::from_str::<Value>(&ours.to_upstream_json()).unwrap(),
        doc
    );
}

#[test]
fn peer_documents_parse_and_bad_paths_are_refused() {
    let recorded = zip_member(
        "v3.9/integrity_worker_to_master.zip",
        "cluster_control.json",
    );
    let parsed = IntegrityMetadata::from_json(recorded.as_bytes(), 1000).unwrap();
    let ours = master_scan(&trees::load("worker_tree"), &ClusterItems::defaults_3_9());
    assert_eq!(parsed, ours);
    use wazuh_cluster_sync::integrity::metadata::MetadataError;
    let bad = br#"{"/etc/../../x": {"cluster_item_key": "/etc/", "merged": false}}"#;
    assert_eq!(
        IntegrityMetadata::from_json(bad, 10),
        Err(MetadataError::BadPath("/etc/../../x".into()))
    );
    let rel = br#"{"etc/x": {"cluster_item_key": "/etc/", "merged": false}}"#;
    assert_eq!(
        IntegrityMetadata::from_json(rel, 10),
        Err(MetadataError::BadPath("etc/x".into()))
    );
    assert_eq!(
        IntegrityMetadata::from_json(recorded.as_bytes(), 9),
        Err(MetadataError::TooManyEntries(9))
    );
    assert!(matches!(
        IntegrityMetadata::from_json(b"[1]", 10),
        Err(MetadataError::Malformed(_))
    ));
}

#[test]
fn mod_time_edge_cases() {
    let t = |secs, nanos| format_mod_time(Timestamp { secs, nanos });
    assert_eq!(t(1_562_000_000, 0), "2019-07-01 16:53:20");
    assert_eq!(t(1_562_000_000, 250_000_000), "2019-07-01 16:53:20.250000");
    assert_eq!(t(0, 0), "1970-01-01 00:00:00");
    assert_eq!(t(-1, 0), "1969-12-31 23:59:59");
    assert_eq!(t(951_782_400, 0), "2000-02-29 00:00:00");
    // Below half a microsecond rounds away, above rounds up (to the float's precision).
    assert_eq!(t(0, 400), "1970-01-01 00:00:00");
    assert_eq!(t(0, 600), "1970-01-01 00:00:00.000001");
    // Not an exact half: 500 ns becomes 0.5000000000000001 µs in the float, so it rounds up.
    assert_eq!(t(0, 500), "1970-01-01 00:00:00.000001");
    // Exact halves in the float (found with CPython 3.11, same algorithm as 3.7): half-even.
    assert_eq!(t(0, 1_500), "1970-01-01 00:00:00.000002");
    assert_eq!(t(0, 2_500), "1970-01-01 00:00:00.000002");
    assert_eq!(t(0, 4_500), "1970-01-01 00:00:00.000004");
    assert_eq!(t(1, 735_500), "1970-01-01 00:00:01.000736");
    assert_eq!(t(1, 2_206_500), "1970-01-01 00:00:01.002206");
    assert_eq!(t(1_562_000_000, 7_812_500), "2019-07-01 16:53:20.007812");
    // Float precision: 1 s + 1500 ns lands below 1.5 µs.
    assert_eq!(t(1, 1_500), "1970-01-01 00:00:01.000001");
    // Carry into the next second: 0.9999996 s rounds to 1.000000.
    assert_eq!(t(59, 999_999_600), "1970-01-01 00:01:00");
    // Upstream's recorded 1795682683.0121198 (float) keeps its float artefact.
    let recorded =
        wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float(1_795_682_683.012_119_8);
    assert_eq!(format_mod_time(recorded), "2026-11-26 08:44:43.012120");
}

#[test]
fn parse_mod_time_accepts_both_upstream_formats() {
    assert_eq!(
        parse_mod_time("2019-07-01 16:53:20"),
        Some(Timestamp {
            secs: 1_562_000_000,
            nanos: 0
        })
    );
    assert_eq!(
        parse_mod_time("2019-07-01 16:53:20.250000"),
        Some(Timestamp {
            secs: 1_562_000_000,
            nanos: 250_000_000
        })
    );
    assert_eq!(
        parse_mod_time("2019-07-01 16:53:20.25"),
        Some(Timestamp {
            secs: 1_562_000_000,
            nanos: 250_000_000
        })
    );
    for bad in [
        "x",
        "",
        "2019-02-29 00:00:00",
        "2019-07-01T16:53:20",
        "2019-07-01 16:53:20.",
        "2019-07-01 24:00:00",
    ] {
        assert_eq!(parse_mod_time(bad), None, "{bad:?}");
    }
}

/// Python's algorithm written independently over integers where possible: the float is built
/// the same way, then the microseconds are taken with exact decimal rounding of the float's value.
fn reference_micros(t: Timestamp) -> (i64, u32) {
    let d = py_st_mtime(t);
    let int_part = d.trunc();
    let scaled = (d - int_part) * 1e6;
    let floor = scaled.floor();
    let diff = scaled - floor;
    let mut us = if diff > 0.5 || (diff == 0.5 && (floor as i64) % 2 == 1) {
        floor + 1.0
    } else {
        floor
    };
    let mut secs = int_part as i64;
    if us >= 1e6 {
        us -= 1e6;
        secs += 1;
    }
    (secs, us as u32)
}

proptest! {
    #[test]
    fn mod_time_round_trips_through_parse(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
        let t = Timestamp { secs, nanos };
        let text = format_mod_time(t);
        let parsed = parse_mod_time(&text).unwrap();
        let (ref_secs, ref_micros) = reference_micros(t);
        prop_assert_eq!(parsed, Timestamp { secs: ref_secs, nanos: ref_micros * 1000 });
        // The fraction is printed only when the microseconds are non-zero.
        prop_assert_eq!(text.len(), if ref_micros == 0 { 19 } else { 26 });
    }
}

#[test]
fn incremental_rescan_hashes_only_what_changed() {
    let items = ClusterItems::defaults_3_9();
    let mut storage = trees::load("master_tree");
    let request = scan_request(NodeType::Master, "master01");
    let mut scanner = MetadataScanner::new();
    let cold = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(
        (
            cold.stats.files,
            cold.stats.files_hashed,
            cold.stats.files_reused
        ),
        (11, 11, 0)
    );
    // Sum of the 11 files' sizes in the recorded master tree.
    assert_eq!(cold.stats.bytes_hashed, 1637);

    let warm = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(
        (
            warm.stats.files_hashed,
            warm.stats.files_reused,
            warm.stats.bytes_hashed
        ),
        (0, 11, 0)
    );
    assert_eq!(warm.metadata, cold.metadata);
    // Nothing changed: the previous document itself is handed back, not rebuilt.
    assert!(std::sync::Arc::ptr_eq(&warm.metadata, &cold.metadata));

    // Same size, new mtime → rehashed; new size, same mtime → rehashed; a new file; a removal.
    let mtime = Timestamp::from_secs(1_562_000_000);
    add(
        &mut storage,
        "/etc/rules/local_rules.xml",
        &[b'x'; 201],
        Timestamp::from_secs(1_600_000_000),
    );
    add(
        &mut storage,
        "/queue/agent-groups/001",
        b"default,x\n",
        mtime,
    );
    add(&mut storage, "/etc/decoders/new.xml", b"<d/>", mtime);
    assert!(storage.remove_file(&p("/etc/lists/audit-keys")).unwrap());
    let after = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(
        (
            after.stats.files,
            after.stats.files_hashed,
            after.stats.files_reused
        ),
        (11, 3, 8)
    );
    assert_eq!(after.stats.bytes_hashed, 201 + 10 + 4);
    assert!(!after.metadata.0.contains_key(&p("/etc/lists/audit-keys")));
    let rules = &after.metadata.0[&p("/etc/rules/local_rules.xml")];
    assert_eq!(rules.md5.as_deref(), Some(hex_md5(&[b'x'; 201]).as_str()));
    assert_eq!(rules.mod_time.as_deref(), Some("2020-09-13 12:26:40"));

    // Nothing changed since: nothing hashed.
    let again = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(again.stats.files_hashed, 0);
    assert_eq!(again.metadata, after.metadata);
}

#[test]
fn files_modified_within_the_racy_window_are_rehashed_next_time() {
    let items = ClusterItems::defaults_3_9();
    let mut storage = MemoryStorage::new();
    add(&mut storage, "/etc/rules/a.xml", b"a", NOW);
    add(
        &mut storage,
        "/etc/rules/b.xml",
        b"b",
        Timestamp::from_secs(NOW.secs - 10),
    );
    let request = scan_request(NodeType::Master, "m");
    let mut scanner = MetadataScanner::new();
    assert_eq!(hashed(&mut scanner, &storage, &items, &request), 2);
    // a.xml has an mtime equal to "now": it could still change within the same tick.
    assert_eq!(hashed(&mut scanner, &storage, &items, &request), 1);
    let later = ScanRequest {
        now: Timestamp::from_secs(NOW.secs + 60),
        ..request
    };
    assert_eq!(hashed(&mut scanner, &storage, &items, &later), 1);
    assert_eq!(hashed(&mut scanner, &storage, &items, &later), 0);
}

#[test]
fn symlinks_and_special_files_are_skipped() {
    let items = ClusterItems::defaults_3_9();
    let mut storage = MemoryStorage::new();
    add(
        &mut storage,
        "/etc/rules/a.xml",
        b"a",
        Timestamp::from_secs(1),
    );
    storage
        .add_symlink(&p("/etc/rules/link.xml"), "/etc/shadow")
        .unwrap();
    storage.add_symlink(&p("/etc/rules/dirlink"), "/").unwrap();
    storage.add_special(&p("/etc/rules/fifo")).unwrap();
    add(
        &mut storage,
        "/etc/rules/sub/b.xml~",
        b"x",
        Timestamp::from_secs(1),
    );
    add(
        &mut storage,
        "/etc/rules/x.tmp/c.xml",
        b"x",
        Timestamp::from_secs(1),
    );
    let request = scan_request(NodeType::Master, "m");
    let out = MetadataScanner::new()
        .scan(&storage, &items, &request)
        .unwrap();
    let keys: Vec<&str> = out.metadata.0.keys().map(InstallPath::as_str).collect();
    assert_eq!(keys, ["/etc/rules/a.xml"]);
    assert_eq!(
        (out.stats.skipped_symlinks, out.stats.skipped_special),
        (2, 1)
    );
    // x.tmp is an excluded name: not even listed. Listed: /etc (item /etc/), /etc/rules, its sub.
    assert_eq!(out.stats.dirs_listed, 3);
}

#[test]
fn split_hashing_gives_the_same_document() {
    // The adapter may hash the jobs on several threads, in any order.
    let items = ClusterItems::defaults_3_9();
    let storage = trees::load("master_tree");
    let request = scan_request(NodeType::Master, "master01");
    let mut scanner = MetadataScanner::new();
    let plan = scanner.plan(&storage, &items, &request).unwrap();
    assert_eq!(plan.jobs().len(), 11);
    let mut buf = vec![0u8; 7]; // a tiny buffer exercises the block loop
    let mut results: Vec<_> = plan
        .jobs()
        .iter()
        .map(|j| (j.index, hash_file(&storage, &j.path, &mut buf)))
        .collect();
    results.reverse();
    let out = scanner.finish(plan, results).unwrap();
    assert_eq!(*out.metadata, master_scan(&storage, &items));
    assert_eq!(out.stats.files_hashed, 11);
}

#[test]
fn finish_refuses_incomplete_or_foreign_results() {
    use wazuh_cluster_sync::integrity::metadata::ScanError;
    let items = ClusterItems::defaults_3_9();
    let storage = trees::load("master_tree");
    let request = scan_request(NodeType::Master, "master01");
    let mut scanner = MetadataScanner::new();
    let plan = scanner.plan(&storage, &items, &request).unwrap();
    let first = plan.jobs()[0].path.clone();
    assert_eq!(
        scanner.clone().finish(plan.clone(), Vec::new()),
        Err(ScanError::MissingHash(first))
    );
    assert_eq!(
        scanner.finish(plan, vec![(99, Ok(([0; 16], 0)))]),
        Err(ScanError::UnknownJob(99))
    );
}

#[test]
fn worker_agent_info_status_has_no_md5_and_respects_the_age_filter() {
    use wazuh_cluster_sync::integrity::storage::FileAttrs;
    let items = ClusterItems::defaults_3_9();
    let mut storage = trees::load("worker_tree");
    let merged = p("/queue/cluster/worker1/agent-info.merged");
    storage
        .create_dir_all(&merged.parent().unwrap(), 0o770)
        .unwrap();
    storage
        .write_atomic(
            &merged,
            b"x",
            &FileAttrs {
                mode: 0o660,
                mtime: Some(NOW),
            },
        )
        .unwrap();
    let request = scan_request(NodeType::Worker, "worker1");
    let out = MetadataScanner::new()
        .scan(&storage, &items, &request)
        .unwrap();
    let expected: Value = serde_json::json!({"/queue/cluster/worker1/agent-info.merged": {
        "mod_time": "2026-11-26 08:45:00", "cluster_item_key": "/queue/agent-info/", "merged": true,
        "merge_type": "agent-info", "merge_name": "/queue/cluster/worker1/agent-info.merged"}});
    assert_eq!(as_value(&out.metadata), expected);
    assert_eq!(out.stats.files_hashed, 0);
    // 31 minutes later the merged file is too old for upstream's worker walk.
    let later = ScanRequest {
        now: Timestamp::from_secs(NOW.secs + 31 * 60),
        ..request
    };
    let out = MetadataScanner::new()
        .scan(&storage, &items, &later)
        .unwrap();
    assert!(out.metadata.is_empty());
    assert_eq!(out.stats.skipped_old, 1);
}

/// 3.9.5's `walk_dir` sets `merge_name` to `dirname + '/' + entry`, `dirname` being the string
/// it was called with: the item key itself (`/etc/lists/`, trailing `/` included) for the files
/// directly in the item's folder, `os.path.join(dirname, entry)` for a subfolder's. So a merged
/// file directly in an item folder gets a double slash and one in a subfolder does not (the
/// worker's agent-info walk starts at `/queue/cluster/<node>`, without the slash: see
/// `worker_agent_info_status_has_no_md5_and_respects_the_age_filter`).
#[test]
fn merge_name_is_walk_dirs_concatenation() {
    let items = ClusterItems::defaults_3_9();
    let mut storage = MemoryStorage::new();
    let old = Timestamp::from_secs(1_562_000_000);
    add(&mut storage, "/etc/lists/extra.merged", b"a", old);
    add(&mut storage, "/etc/lists/amazon/deep.merged", b"b", old);
    let metadata = master_scan(&storage, &items);
    let names: Vec<(&str, Option<&str>)> = metadata
        .0
        .iter()
        .map(|(path, meta)| (path.as_str(), meta.merge_name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "/etc/lists/amazon/deep.merged",
                Some("/etc/lists/amazon/deep.merged")
            ),
            ("/etc/lists/extra.merged", Some("/etc/lists//extra.merged")),
        ]
    );
    assert!(
        metadata
            .to_upstream_json()
            .contains(r#""merge_name": "/etc/lists//extra.merged""#)
    );
}

fn hex_md5(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn overlapping_items_give_the_file_to_the_longer_key() {
    let items = ClusterItems::from_json_3_9(
        br#"{"files": {
            "/etc/": {"permissions": "0o640", "source": "master", "files": ["all"], "recursive": true},
            "/etc/rules/": {"permissions": "0o660", "source": "master", "files": ["all"], "recursive": true}}}"#,
    )
    .unwrap();
    let mut storage = MemoryStorage::new();
    let old = Timestamp::from_secs(1_562_000_000);
    storage
        .add_file(&p("/etc/client.keys"), b"k".to_vec(), old, 0o640)
        .unwrap();
    add(&mut storage, "/etc/rules/a.xml", b"a", old);
    add(&mut storage, "/etc/rules/sub/b.xml", b"b", old);
    let request = scan_request(NodeType::Master, "m");
    let mut scanner = MetadataScanner::new();
    for round in 0..2 {
        let out = scanner.scan(&storage, &items, &request).unwrap();
        let keys: Vec<(&str, &str)> = out
            .metadata
            .0
            .iter()
            .map(|(p, m)| (p.as_str(), m.cluster_item_key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("/etc/client.keys", "/etc/"),
                ("/etc/rules/a.xml", "/etc/rules/"),
                ("/etc/rules/sub/b.xml", "/etc/rules/")
            ]
        );
        // Files under /etc/rules are found by both items: hashed once per find on the first round
        // (overlapping items are not a 3.9.5 default), reused afterwards.
        assert_eq!(out.stats.files_hashed, if round == 0 { 5 } else { 0 });
    }
}

#[test]
fn extreme_times_do_not_panic() {
    for secs in [
        i64::MIN,
        i64::MIN + 1,
        -62_135_596_800,
        253_402_300_799,
        i64::MAX,
    ] {
        for nanos in [0, 999_999_999] {
            let text = format_mod_time(Timestamp { secs, nanos });
            assert!(text.len() >= 19, "{text}");
        }
    }
    // Python's datetime range ends: 0001-01-01 and 9999-12-31 23:59:59.
    assert_eq!(
        format_mod_time(Timestamp::from_secs(-62_135_596_800)),
        "0001-01-01 00:00:00"
    );
    assert_eq!(
        format_mod_time(Timestamp::from_secs(253_402_300_799)),
        "9999-12-31 23:59:59"
    );
    use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
    assert_eq!(timestamp_from_py_float(f64::NAN), Timestamp::default());
    assert_eq!(timestamp_from_py_float(1e300).secs, i64::MAX);
    assert_eq!(
        timestamp_from_py_float(1_562_000_000.25),
        Timestamp {
            secs: 1_562_000_000,
            nanos: 250_000_000
        }
    );
}

proptest! {
    #[test]
    fn peer_metadata_keys_are_accepted_only_as_valid_install_paths(key in "[/a.\\\\]{0,8}") {
        let doc = serde_json::json!({ key.clone(): {"cluster_item_key": "/etc/", "merged": false} });
        let parsed = IntegrityMetadata::from_json(doc.to_string().as_bytes(), 10);
        match InstallPath::new(&key) {
            Ok(path) => prop_assert_eq!(parsed.unwrap().0.into_keys().collect::<Vec<_>>(), vec![path]),
            Err(_) => prop_assert_eq!(
                parsed,
                Err(wazuh_cluster_sync::integrity::metadata::MetadataError::BadPath(key))
            ),
        }
    }
}

#[test]
fn forget_makes_a_same_size_same_mtime_replacement_visible() {
    use wazuh_cluster_sync::integrity::storage::FileAttrs;
    let items = ClusterItems::defaults_3_9();
    let mut storage = trees::load("master_tree");
    let request = scan_request(NodeType::Master, "m");
    let mut scanner = MetadataScanner::new();
    let before = scanner.scan(&storage, &items, &request).unwrap();
    // An apply writes the peer's content with the peer's mtime: same size, same mtime.
    let path = p("/queue/agent-groups/001");
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: Some(Timestamp::from_secs(1_562_000_000)),
    };
    storage.write_atomic(&path, b"group2\n\0", &attrs).unwrap();
    let stale = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(stale.stats.files_hashed, 0);
    assert_eq!(stale.metadata.0[&path].md5, before.metadata.0[&path].md5);
    scanner.forget(&path);
    let fresh = scanner.scan(&storage, &items, &request).unwrap();
    assert_eq!(fresh.stats.files_hashed, 1);
    assert_eq!(
        fresh.metadata.0[&path].md5.as_deref(),
        Some(hex_md5(b"group2\n\0").as_str())
    );
    // Forgetting a path the scanner never saw is harmless.
    scanner.forget(&p("/etc/none"));
    assert_eq!(hashed(&mut scanner, &storage, &items, &request), 0);
}
