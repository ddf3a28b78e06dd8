//! Hostile packages are refused as a whole, with the exact error, and nothing is written.

use std::io::{Cursor, Write};

use crate::trees::load as tree_storage;
use wazuh_cluster_sync::integrity::apply::{
    ApplyError, ApplyLimits, ApplyReport, KnownAgents, PathRefusal, SkipReason,
    apply_master_package, apply_worker_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::MergedError;
use wazuh_cluster_sync::integrity::package::{
    NameProblem, PackageError, PackageLimits, PackageReader,
};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const GOOD: &str = "/etc/rules/local_rules.xml";

/// A master → worker control document shipping `missing` entries `(key, item)`.
fn control(missing: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<u8> {
    let entry = |(k, item): &(&str, &str)| {
        format!(
            r#""{k}": {{"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "{item}", "merged": false, "md5": "00000000000000000000000000000000"}}"#
        )
    };
    let group = |g: &[(&str, &str)]| g.iter().map(entry).collect::<Vec<_>>().join(", ");
    format!(
        r#"{{"missing": {{{}}}, "extra": {{{}}}, "shared": {{}}, "extra_valid": {{}}}}"#,
        group(missing),
        group(extra)
    )
    .into_bytes()
}

/// Opens and applies `zip` as a master package on the recorded worker tree; returns the error and
/// checks that the storage did not change at all.
fn refuse_on_worker(zip: Vec<u8>, limits: PackageLimits) -> ApplyError {
    let mut storage = tree_storage("worker_tree");
    let before = storage.snapshot();
    let error = apply_on_worker(zip, limits, &mut storage).expect_err("hostile package accepted");
    assert_eq!(
        storage.snapshot(),
        before,
        "storage changed by a refused package ({error})"
    );
    assert_eq!(storage.staged_writes(), 0);
    error
}

/// Opens `zip` with `limits` and applies it as worker1 would a master package.
fn apply_on_worker(
    zip: Vec<u8>,
    limits: PackageLimits,
    storage: &mut MemoryStorage,
) -> Result<ApplyReport, ApplyError> {
    PackageReader::open(Cursor::new(zip), limits)
        .map_err(ApplyError::from)
        .and_then(|mut reader| {
            apply_master_package(
                &mut reader,
                storage,
                &ClusterItems::defaults_3_9(),
                "worker1",
                &ApplyLimits::default(),
            )
        })
}

fn refuse(zip: Vec<u8>) -> ApplyError {
    refuse_on_worker(zip, PackageLimits::default())
}

fn bad_name(name: &str, problem: NameProblem) -> ApplyError {
    ApplyError::Package(PackageError::BadMemberName {
        name: name.to_owned(),
        problem,
    })
}

fn path_refused(path: &str, item_key: &str, reason: PathRefusal) -> ApplyError {
    ApplyError::PathRefused {
        path: path.to_owned(),
        item_key: item_key.to_owned(),
        reason,
    }
}

/// A master package with the good rules file and one more member `name` (content `evil`), its
/// control document declaring the good file and `declared` (`(metadata key, item)`).
fn beside_good(name: &str, declared: &[(&str, &str)]) -> Vec<u8> {
    let members = [
        ("etc/rules/local_rules.xml", &b"ok"[..]),
        (name, &b"evil"[..]),
    ];
    let mut missing = vec![(GOOD, "/etc/rules/")];
    missing.extend_from_slice(declared);
    raw_zip(&stored(&members), &control(&missing, &[]))
}

/// Applies [`beside_good`] with member `path` (without its `/`) declared under `item`: the
/// package is refused as `path_refused(path, item, reason)`.
fn assert_declared_refused(path: &str, item: &str, reason: PathRefusal) {
    let zip = beside_good(&path[1..], &[(path, item)]);
    assert_eq!(
        refuse(zip),
        path_refused(path, item, reason),
        "{path} declared under {item}"
    );
}

#[test]
fn dot_dot_member_name_is_refused() {
    let zip = beside_good("etc/rules/../../../x", &[]);
    assert_eq!(
        refuse(zip),
        bad_name("etc/rules/../../../x", NameProblem::DotComponent)
    );
}

#[test]
fn absolute_member_name_is_refused() {
    let zip = beside_good("/tmp/evil", &[]);
    assert_eq!(refuse(zip), bad_name("/tmp/evil", NameProblem::Absolute));
}

#[test]
fn backslash_member_name_is_refused() {
    let members = [("etc\\rules\\x", &b"evil"[..])];
    let zip = raw_zip(&stored(&members), &control(&[], &[]));
    assert_eq!(
        refuse(zip),
        bad_name("etc\\rules\\x", NameProblem::Backslash)
    );
}

#[test]
fn file_outside_its_item_selection_is_refused() {
    // `/etc/` only selects client.keys: a master may not overwrite the worker's ossec.conf.
    assert_declared_refused("/etc/ossec.conf", "/etc/", PathRefusal::NotSelected);
}

#[test]
fn file_claimed_by_another_item_is_refused() {
    assert_declared_refused(
        "/etc/shared/default/agent.conf",
        "/etc/rules/",
        PathRefusal::OutsideItem,
    );
}

#[test]
fn worker_only_item_is_refused_from_the_master() {
    assert_declared_refused(
        "/queue/agent-info/agent-one-10.0.0.1",
        "/queue/agent-info/",
        PathRefusal::ItemNotAllowed,
    );
}

#[test]
fn metadata_key_outside_every_item_is_refused() {
    assert_declared_refused("/var/db/global.db", "/etc/", PathRefusal::OutsideItem);
    assert_declared_refused("/var/db/global.db", "/var/db/", PathRefusal::UnknownItem);
}

#[test]
fn extra_outside_every_item_is_refused() {
    // A forged `extra` would make the worker delete any file.
    let members = [("etc/rules/local_rules.xml", &b"ok"[..])];
    let zip = raw_zip(
        &stored(&members),
        &control(&[(GOOD, "/etc/rules/")], &[("/etc/ossec.conf", "/etc/")]),
    );
    assert_eq!(
        refuse(zip),
        path_refused("/etc/ossec.conf", "/etc/", PathRefusal::NotSelected)
    );
}

#[test]
fn dot_dot_metadata_key_is_refused() {
    let members = [("etc/rules/local_rules.xml", &b"ok"[..])];
    let zip = raw_zip(
        &stored(&members),
        &control(
            &[(GOOD, "/etc/rules/"), ("/etc/rules/../../x", "/etc/rules/")],
            &[],
        ),
    );
    assert!(matches!(refuse(zip), ApplyError::Control(_)));
}

#[test]
fn symlink_entry_is_refused() {
    let members = [
        ("etc/rules/local_rules.xml", &b"ok"[..]),
        ("etc/rules/link.xml", &b"/etc/passwd"[..]),
    ];
    let mut zip = raw_zip(&stored(&members), &control(&[(GOOD, "/etc/rules/")], &[]));
    set_unix_mode(&mut zip, "etc/rules/link.xml", 0o120777);
    assert_eq!(
        refuse(zip),
        ApplyError::Package(PackageError::NotARegularFile {
            name: "etc/rules/link.xml".into(),
            mode: 0o120777
        })
    );
}

#[test]
fn special_file_entries_are_refused() {
    for mode in [0o010644, 0o020644, 0o060644, 0o140644, 0o040755] {
        let members = [("etc/rules/odd.xml", &b""[..])];
        let mut zip = raw_zip(&stored(&members), &control(&[], &[]));
        set_unix_mode(&mut zip, "etc/rules/odd.xml", mode);
        assert_eq!(
            refuse(zip),
            ApplyError::Package(PackageError::NotARegularFile {
                name: "etc/rules/odd.xml".into(),
                mode
            })
        );
    }
}

#[test]
fn directory_entry_is_refused() {
    let members = [("etc/rules/sub/", &b""[..])];
    let zip = raw_zip(&stored(&members), &control(&[], &[]));
    assert_eq!(
        refuse(zip),
        bad_name("etc/rules/sub/", NameProblem::Directory)
    );
}

/// 64 MiB of zeros deflates to about 64 KiB.
fn bomb() -> Vec<u8> {
    vec![0u8; 64 << 20]
}

#[test]
fn deflate_bomb_is_refused_by_its_declared_size() {
    let data = bomb();
    let members = [RawMember {
        name: "etc/rules/local_rules.xml",
        data: &data,
        deflate: true,
    }];
    let zip = raw_zip(&members, &control(&[(GOOD, "/etc/rules/")], &[]));
    assert!(zip.len() < 1 << 20);
    let limits = PackageLimits {
        max_member_size: 1 << 20,
        ..PackageLimits::default()
    };
    assert_eq!(
        refuse_on_worker(zip, limits),
        ApplyError::Package(PackageError::MemberTooLarge {
            name: "etc/rules/local_rules.xml".into(),
            limit: 1 << 20
        })
    );
}

#[test]
fn deflate_bomb_lying_about_its_size_stops_at_the_declared_size() {
    let data = bomb();
    let members = [RawMember {
        name: "etc/rules/local_rules.xml",
        data: &data,
        deflate: true,
    }];
    let mut zip = raw_zip(&members, &control(&[(GOOD, "/etc/rules/")], &[]));
    set_declared_size(&mut zip, "etc/rules/local_rules.xml", 1000);
    let error = refuse(zip);
    // Said as what it is (it was "larger than the limit of 1000 bytes": no such limit).
    assert_eq!(
        error,
        ApplyError::Package(PackageError::InflatesBeyondDeclared {
            name: "etc/rules/local_rules.xml".into(),
            declared: 1000
        })
    );
}

#[test]
fn too_many_members_are_refused_before_reading_the_directory() {
    let names: Vec<String> = (0..20).map(|i| format!("etc/rules/r{i}.xml")).collect();
    let members: Vec<RawMember<'_>> = names
        .iter()
        .map(|n| RawMember {
            name: n,
            data: b"x",
            deflate: false,
        })
        .collect();
    let zip = raw_zip(&members, &control(&[], &[]));
    let limits = PackageLimits {
        max_members: 10,
        ..PackageLimits::default()
    };
    assert_eq!(
        refuse_on_worker(zip, limits),
        ApplyError::Package(PackageError::TooManyMembers {
            count: 20,
            limit: 10
        })
    );
    // The text counts what the limit counts (it said "lists 11 members, more than the limit of
    // 11": the control member in one, not in the other).
    assert_eq!(
        PackageError::TooManyMembers {
            count: 20,
            limit: 10
        }
        .to_string(),
        "package lists 20 file members, more than the limit of 10"
    );
}

#[test]
fn total_size_is_capped() {
    let big = vec![7u8; 600];
    let members = [("etc/rules/a.xml", &big[..]), ("etc/rules/b.xml", &big[..])];
    let zip = raw_zip(&stored(&members), &control(&[], &[]));
    let limits = PackageLimits {
        max_total_size: 1000,
        ..PackageLimits::default()
    };
    assert_eq!(
        refuse_on_worker(zip, limits),
        ApplyError::Package(PackageError::TotalTooLarge { limit: 1000 })
    );
}

#[test]
fn duplicate_member_names_are_refused() {
    let members = [
        ("etc/rules/aa.xml", &b"first"[..]),
        ("etc/rules/ab.xml", &b"second"[..]),
    ];
    let mut zip = raw_zip(
        &stored(&members),
        &control(&[("/etc/rules/aa.xml", "/etc/rules/")], &[]),
    );
    patch(&mut zip, b"etc/rules/ab.xml", b"etc/rules/aa.xml");
    assert_eq!(
        refuse(zip),
        ApplyError::Package(PackageError::DuplicateMembers {
            listed: 3,
            distinct: 2
        })
    );
}

#[test]
fn member_list_must_match_the_control_document() {
    let members = [
        ("etc/rules/local_rules.xml", &b"ok"[..]),
        ("etc/rules/smuggled.xml", &b"x"[..]),
    ];
    let zip = raw_zip(&stored(&members), &control(&[(GOOD, "/etc/rules/")], &[]));
    assert_eq!(
        refuse(zip),
        ApplyError::Package(PackageError::UnexpectedMember(
            "etc/rules/smuggled.xml".into()
        ))
    );
    let members = [("etc/rules/local_rules.xml", &b"ok"[..])];
    let zip = raw_zip(
        &stored(&members),
        &control(
            &[
                (GOOD, "/etc/rules/"),
                ("/etc/rules/gone.xml", "/etc/rules/"),
            ],
            &[],
        ),
    );
    assert_eq!(
        refuse(zip),
        ApplyError::Package(PackageError::MissingMember("etc/rules/gone.xml".into()))
    );
}

#[test]
fn missing_control_member_is_refused() {
    let mut zip = raw_zip(&[], b"{}");
    patch(&mut zip, b"cluster_control.json", b"cluster_control.jsoo");
    assert_eq!(
        refuse(zip),
        ApplyError::Package(PackageError::MissingControl)
    );
}

#[test]
fn corrupt_member_is_refused_before_anything_is_written() {
    let members = [
        ("etc/rules/local_rules.xml", &b"ok"[..]),
        ("etc/rules/z.xml", &b"original"[..]),
    ];
    let mut zip = raw_zip(
        &stored(&members),
        &control(
            &[(GOOD, "/etc/rules/"), ("/etc/rules/z.xml", "/etc/rules/")],
            &[],
        ),
    );
    patch(&mut zip, b"original", b"tampered");
    assert!(
        matches!(refuse(zip), ApplyError::Package(PackageError::Corrupt { name, .. }) if name == "etc/rules/z.xml")
    );
}

/// A master package with the good rules file and the merged file `merged` under metadata key
/// `key`, declared as shared agent-groups.
fn merged_package(key: &str, merged: &[u8]) -> Vec<u8> {
    let members = [
        ("etc/rules/local_rules.xml", &b"ok"[..]),
        (&key[1..], merged),
    ];
    raw_zip(&stored(&members), &merged_control(key))
}

fn merged_control(key: &str) -> Vec<u8> {
    format!(
        r#"{{"missing": {{}}, "extra": {{}}, "shared": {{"{key}": {{"cluster_item_key": "/queue/agent-groups/", "merged": true, "merge-type": "agent-groups"}}, "{GOOD}": {{"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/rules/", "merged": false, "md5": "00000000000000000000000000000000"}}}}, "extra_valid": {{}}}}"#
    )
    .into_bytes()
}

#[test]
fn merged_part_named_dot_dot_is_refused() {
    let merged = b"15 002 2019-07-01 16:53:20\ndefault,group2\n4 ../x 2019-07-01 16:53:20\nevil";
    let key = "/queue/cluster/worker1/agent-groups-shared.merged";
    let zip = merged_package(key, merged);
    assert_eq!(
        refuse(zip),
        ApplyError::Merged {
            path: key.into(),
            error: MergedError::BadName {
                offset: 42,
                name: "../x".into()
            }
        }
    );
}

#[test]
fn merged_entry_for_another_worker_is_refused() {
    let key = "/queue/cluster/worker2/agent-groups-shared.merged";
    let merged = b"15 002 2019-07-01 16:53:20\ndefault,group2\n";
    let zip = merged_package(key, merged);
    assert_eq!(
        refuse(zip),
        path_refused(key, "/queue/agent-groups/", PathRefusal::UnexpectedMerged)
    );
}

// ---- worker → master ----

const KEYS: &[u8] =
    b"001 agent-one 10.0.0.1 k\n002 agent-two 10.0.0.2 k\n004 agent-four 10.0.0.4 k\n";

/// Opens `zip` (which must open) and applies it as the master would worker1's package.
fn apply_on_master(zip: Vec<u8>, storage: &mut MemoryStorage) -> Result<ApplyReport, ApplyError> {
    let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
    apply_worker_package(
        &mut reader,
        storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &KnownAgents::from_client_keys(KEYS),
        &ApplyLimits::default(),
    )
}

fn refuse_on_master(zip: Vec<u8>) -> ApplyError {
    let mut storage = tree_storage("master_tree");
    let before = storage.snapshot();
    let error = apply_on_master(zip, &mut storage).expect_err("hostile worker package accepted");
    assert_eq!(storage.snapshot(), before);
    error
}

fn worker_control(key: &str, merge_type: &str, item: &str) -> Vec<u8> {
    format!(r#"{{"{key}": {{"merged": true, "merge_type": "{merge_type}", "merge_name": "{key}", "cluster_item_key": "{item}"}}}}"#)
        .into_bytes()
}

#[test]
fn worker_cannot_send_plain_files() {
    let members = [("etc/rules/local_rules.xml", &b"evil"[..])];
    let control = br#"{"/etc/rules/local_rules.xml": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/rules/", "merged": false, "md5": "00000000000000000000000000000000"}}"#;
    let zip = raw_zip(&stored(&members), control);
    assert_eq!(
        refuse_on_master(zip),
        path_refused(
            "/etc/rules/local_rules.xml",
            "/etc/rules/",
            PathRefusal::NotMerged
        )
    );
}

#[test]
fn worker_merged_file_must_target_its_own_item() {
    let cases = [
        // agent-groups content declared as agent-info,
        (
            "/queue/cluster/worker1/agent-groups.merged",
            "agent-info",
            "/queue/agent-info/",
        ),
        // a merged file named for another worker,
        (
            "/queue/cluster/worker9/agent-groups.merged",
            "agent-groups",
            "/queue/agent-groups/",
        ),
        // agent-groups into a non extra-valid item.
        (
            "/queue/cluster/worker1/agent-groups.merged",
            "agent-groups",
            "/etc/shared/",
        ),
    ];
    for (key, merge_type, item) in cases {
        let members = [(&key[1..], &b"7 004 2019-07-01 16:53:20\ngroup2\n"[..])];
        let zip = raw_zip(&stored(&members), &worker_control(key, merge_type, item));
        assert_eq!(
            refuse_on_master(zip),
            path_refused(key, item, PathRefusal::UnexpectedMerged),
            "{key} as {merge_type} under {item}"
        );
    }
}

#[test]
fn worker_merged_part_named_dot_dot_is_refused() {
    let key = "/queue/cluster/worker1/agent-info.merged";
    let merged = b"3 agent-one-10.0.0.1 2019-07-01 16:53:20\nabc4 ../../etc/client.keys 2019-07-01 16:53:20\nevil";
    let members = [(&key[1..], &merged[..])];
    let zip = raw_zip(
        &stored(&members),
        &worker_control(key, "agent-info", "/queue/agent-info/"),
    );
    assert_eq!(
        refuse_on_master(zip),
        ApplyError::Merged {
            path: key.into(),
            error: MergedError::BadName {
                offset: 44,
                name: "../../etc/client.keys".into()
            }
        }
    );
}

#[test]
fn client_keys_from_a_worker_is_skipped_and_nothing_else_changes() {
    let mut storage = tree_storage("master_tree");
    let before = storage.snapshot();
    let control = br#"{"/etc/client.keys": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/", "merged": false, "md5": "00000000000000000000000000000000"}}"#;
    let zip = raw_zip(
        &stored(&[("etc/client.keys", b"001 evil any k\n")]),
        control,
    );
    let report = apply_on_master(zip, &mut storage).unwrap();
    assert_eq!(report.written, 0);
    assert_eq!(report.skipped_for(SkipReason::ClientKeysFromWorker), 1);
    assert_eq!(storage.snapshot(), before);
}

// ---- random damage ----

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Any damage to the recorded upstream package (flipped bytes, truncation) either still
    /// applies or is refused with nothing written: never a panic, never half an apply.
    #[test]
    fn damaged_packages_are_refused_whole(
        flips in proptest::collection::vec((0usize..4568, 1u8..=255), 0..4),
        cut in proptest::option::of(0usize..4568),
    ) {
        let mut zip = wazuh_cluster_vectors::read("v3.9/integrity_master_to_worker.zip");
        for (at, xor) in &flips {
            let at = at % zip.len();
            zip[at] ^= xor;
        }
        if let Some(cut) = cut {
            zip.truncate(cut);
        }
        let mut storage = tree_storage("worker_tree");
        let before = storage.snapshot();
        let result = apply_on_worker(zip, PackageLimits::default(), &mut storage);
        if result.is_err() {
            proptest::prop_assert_eq!(storage.snapshot(), before);
        }
        proptest::prop_assert_eq!(storage.staged_writes(), 0);
    }
}

// ---- forging ZIPs (our builder refuses these names, so they are written raw) ----

/// One member of a forged ZIP.
pub struct RawMember<'a> {
    /// The name exactly as stored.
    pub name: &'a str,
    /// Content.
    pub data: &'a [u8],
    /// Deflate instead of store.
    pub deflate: bool,
}

/// A ZIP with `members` then `cluster_control.json` = `control`, names taken verbatim.
pub fn raw_zip(members: &[RawMember<'_>], control: &[u8]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for m in members {
        let method = if m.deflate {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(m.data.len() > (1 << 31));
        zip.start_file(m.name, options).unwrap();
        zip.write_all(m.data).unwrap();
    }
    zip.start_file(
        "cluster_control.json",
        SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
    )
    .unwrap();
    zip.write_all(control).unwrap();
    zip.finish().unwrap().into_inner()
}

/// Stored members from `(name, data)` pairs.
pub fn stored<'a>(members: &'a [(&'a str, &'a [u8])]) -> Vec<RawMember<'a>> {
    members
        .iter()
        .map(|(name, data)| RawMember {
            name,
            data,
            deflate: false,
        })
        .collect()
}

/// Replaces every occurrence of `from` by `to` (same length) in `bytes`: renames members in
/// both the local and the central headers.
pub fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "pattern not found");
}

/// Central directory record of member `name`: its offset in `bytes`.
fn central_record(bytes: &[u8], name: &str) -> usize {
    (0..bytes.len() - 46)
        .find(|&i| {
            bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && {
                let len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
                bytes.get(i + 46..i + 46 + len) == Some(name.as_bytes())
            }
        })
        .expect("member in central directory")
}

/// Sets the Unix mode (high half of the external attributes, "made by Unix") of member `name`.
pub fn set_unix_mode(bytes: &mut [u8], name: &str, mode: u32) {
    let at = central_record(bytes, name);
    bytes[at + 5] = 3; // version made by: Unix
    bytes[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
}

/// Sets the declared uncompressed size of member `name` in both headers.
pub fn set_declared_size(bytes: &mut [u8], name: &str, size: u32) {
    let at = central_record(bytes, name);
    bytes[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    let local = u32::from_le_bytes(bytes[at + 42..at + 46].try_into().unwrap()) as usize;
    bytes[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
}
