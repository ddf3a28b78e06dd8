//! The receiving walk that routes a package's large stored members to staged writes as they
//! arrive (`MemberStream`): on packages recorded from real 3.9.5 nodes and on ours, fed in
//! pieces of any size, it finds each member where the ZIP reader does, hands exactly the
//! members' bytes to their writes and everything else to the package file, and checks CRCs.

use std::collections::BTreeMap;
use std::io::Cursor;

use proptest::prelude::*;
use wazuh_cluster_sync::integrity::apply::may_stream_member;
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader, is_package_name};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::staged_package::StagedPackage;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp, WriteId};
use wazuh_cluster_sync::integrity::streamed_members::{MemberStream, Span, StreamedMember};
use wazuh_cluster_testkit::install_path as p;

const NOW: Timestamp = Timestamp::from_secs(1_562_000_000);

/// What a walk did with a package: the bytes it sent to the package file, each streamed
/// member's bytes, and the members.
struct Walked {
    package: Vec<u8>,
    streamed: BTreeMap<WriteId, Vec<u8>>,
    members: Vec<StreamedMember>,
}

/// Feeds `zip` to a walk streaming members of `min` bytes or more, in pieces of `step` bytes;
/// `accept` says which keys may be streamed.
fn walk(zip: &[u8], min: u64, step: usize, accept: impl Fn(&InstallPath) -> bool) -> Walked {
    let mut stream = MemberStream::with_min_size(min);
    let mut next = 0;
    let mut out = Walked {
        package: Vec::new(),
        streamed: BTreeMap::new(),
        members: Vec::new(),
    };
    for piece in zip.chunks(step) {
        let spans = stream.feed(piece, &mut |key, _| {
            accept(key).then(|| {
                next += 1;
                WriteId(next)
            })
        });
        let mut covered = 0;
        for span in spans {
            match span {
                Span::Package(range) => {
                    assert_eq!(range.start, covered, "spans in order, without gaps");
                    covered = range.end;
                    out.package.extend_from_slice(&piece[range]);
                }
                Span::Member(id, range) => {
                    assert_eq!(range.start, covered, "spans in order, without gaps");
                    covered = range.end;
                    out.streamed
                        .entry(id)
                        .or_default()
                        .extend_from_slice(&piece[range]);
                }
            }
        }
        assert_eq!(covered, piece.len(), "every byte goes somewhere");
    }
    out.members = stream.finish();
    out
}

/// A package of ours: a small member, two large ones, a merged-style entry, the control.
fn our_package() -> Vec<u8> {
    let mut s = MemoryStorage::new();
    let files = [
        ("/etc/rules/a.xml", 10_000usize),
        ("/etc/rules/b.xml", 300),
        ("/etc/shared/default/c.bin", 20_001),
    ];
    for (i, (path, len)) in files.iter().enumerate() {
        let data: Vec<u8> = (0..*len).map(|b| (b * 31 + i) as u8).collect();
        s.add_file(&p(path), data, NOW, 0o660).unwrap();
    }
    s.create_dir_all(&p("/queue/cluster/w1"), 0o770).unwrap();
    let path = p("/queue/cluster/w1/out.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    for (file, _) in files {
        package.add_member_from_storage(&mut s, &p(file)).unwrap();
    }
    package
        .add_member(
            &mut s,
            &p("/queue/agent-groups/001"),
            NOW,
            0o660,
            b"default\n",
        )
        .unwrap();
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: None,
    };
    package.finish(&mut s, b"{}", NOW, &attrs).unwrap();
    s.read(&path, u64::MAX).unwrap()
}

/// Checks a walk of `zip` against the ZIP reader: each streamed member where the reader puts
/// it, its bytes the reader's, the package file's bytes `zip` without them.
fn check_against_reader(zip: &[u8], walked: &Walked) {
    let mut reader =
        PackageReader::open(Cursor::new(zip.to_vec()), PackageLimits::default()).unwrap();
    let mut rebuilt = walked.package.clone();
    let mut members: Vec<&StreamedMember> = walked.members.iter().collect();
    members.sort_by_key(|m| m.data_at);
    for member in members {
        let listed = reader
            .member(&member.key)
            .expect("a member the reader lists");
        assert_eq!(
            (listed.local_at, listed.size, listed.crc, listed.stored),
            (member.local_at, member.size, member.crc, true),
            "{}",
            member.key
        );
        assert!(member.crc_ok, "{}", member.key);
        let bytes = &walked.streamed[&member.write];
        assert!(*bytes == reader.read_member(&member.key, u64::MAX).unwrap());
        let at = member.data_at as usize;
        rebuilt.splice(at..at, bytes.iter().copied());
    }
    assert!(
        rebuilt == zip,
        "the package file and the members make the package"
    );
}

#[test]
fn members_of_a_recorded_upstream_package_are_found_where_the_reader_finds_them() {
    let zip = wazuh_cluster_vectors::read("v3.9/integrity_master_to_worker.zip");
    let reader = PackageReader::open(Cursor::new(zip.clone()), PackageLimits::default()).unwrap();
    let stored = reader
        .members()
        .iter()
        .filter(|m| m.stored && m.size > 0)
        .count();
    assert!(stored > 0, "the recording has stored members");
    for step in [1, 13, 4096, zip.len()] {
        // The control document is never one the apply writes (the node's caller refuses it).
        let walked = walk(&zip, 1, step, |key| key.as_str() != "/cluster_control.json");
        assert_eq!(walked.members.len(), stored.min(16), "pieces of {step}");
        check_against_reader(&zip, &walked);
    }
}

#[test]
fn only_large_accepted_members_are_streamed_at_most_sixteen() {
    let zip = our_package();
    let walked = walk(&zip, 10_000, 777, |key| key.as_str() != "/etc/rules/b.xml");
    let keys: Vec<&str> = walked.members.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["/etc/rules/a.xml", "/etc/shared/default/c.bin"]);
    check_against_reader(&zip, &walked);
    // Refused by the caller: in the package file.
    let walked = walk(&zip, 1, 777, |key| key.as_str() == "/etc/rules/b.xml");
    assert_eq!(walked.members.len(), 1);
    check_against_reader(&zip, &walked);
}

#[test]
fn an_altered_or_cut_member_is_not_crc_ok() {
    let mut zip = our_package();
    let clean = walk(&zip, 10_000, 4096, |_| true);
    let first = clean.members[0].clone();
    zip[first.data_at as usize + 5] ^= 1;
    let altered = walk(&zip, 10_000, 4096, |_| true);
    assert_eq!(altered.members.len(), 2);
    assert!(!altered.members[0].crc_ok && altered.members[1].crc_ok);
    let cut = walk(&zip[..first.data_at as usize + 100], 10_000, 4096, |_| true);
    assert_eq!(cut.members.len(), 1);
    assert!(!cut.members[0].crc_ok);
}

#[test]
fn what_is_not_a_local_header_ends_the_walk() {
    // Not a ZIP at all, and a member with a data descriptor (its end unknown up front).
    let text = b"hello, this is not a package at all".repeat(100);
    let walked = walk(&text, 1, 64, |_| true);
    assert!(walked.members.is_empty() && walked.package == text);
    let mut zip = our_package();
    zip[6] |= 1 << 3;
    zip[18..22].copy_from_slice(&0u32.to_le_bytes());
    let walked = walk(&zip, 1, 64, |_| true);
    assert!(walked.members.is_empty() && walked.package == zip);
}

proptest! {
    /// Any cutting of the package into pieces routes the same bytes to the same places.
    #[test]
    fn any_cutting_routes_the_same(cuts in proptest::collection::vec(1usize..5000, 1..40)) {
        let zip = our_package();
        let whole = walk(&zip, 1000, zip.len(), |_| true);
        let mut stream = MemberStream::with_min_size(1000);
        let mut package = Vec::new();
        let mut streamed: BTreeMap<WriteId, Vec<u8>> = BTreeMap::new();
        let mut next = 0;
        let mut at = 0;
        let mut cuts = cuts.into_iter().cycle();
        while at < zip.len() {
            let end = (at + cuts.next().unwrap_or(1)).min(zip.len());
            let piece = &zip[at..end];
            for span in stream.feed(piece, &mut |_, _| { next += 1; Some(WriteId(next)) }) {
                match span {
                    Span::Package(r) => package.extend_from_slice(&piece[r]),
                    Span::Member(id, r) => streamed.entry(id).or_default().extend_from_slice(&piece[r]),
                }
            }
            at = end;
        }
        prop_assert_eq!(stream.finish(), whole.members);
        prop_assert!(package == whole.package);
        prop_assert!(streamed == whole.streamed);
    }
}

/// The node streams only members the apply writes as they are: files of items the master may
/// write, at paths they select; never `client.keys` (read to find removed agents) nor a merged
/// file (split), nor a path no item covers.
#[test]
fn only_files_the_apply_writes_as_they_are_may_be_streamed() {
    let items = ClusterItems::defaults_3_9();
    for streamed in [
        "/etc/shared/default/merged.mg",
        "/etc/rules/local_rules.xml",
    ] {
        assert!(may_stream_member(&items, &p(streamed)), "{streamed}");
    }
    for refused in [
        // `etc/shared/` syncs only `merged.mg`.
        "/etc/shared/default/agent.conf",
        "/etc/client.keys",
        "/queue/cluster/worker1/agent-groups-shared.merged",
        "/queue/agent-info/worker1-any",
        "/etc/ossec.conf",
        "/cluster_control.json",
        "/var/db/global.db",
    ] {
        assert!(!may_stream_member(&items, &p(refused)), "{refused}");
    }
}

/// A file is taken for the package a worker waits for only when named as one for it: ours and
/// 3.9.5's `<worker>-<time>-<digits>.zip`, with or without the leading slash.
#[test]
fn package_names_are_the_workers() {
    for named in [
        b"/queue/cluster/worker1/worker1-1795682923.4069414-8123.zip".as_slice(),
        b"queue/cluster/worker1/worker1-1.0-1.zip",
        b"worker1-x.zip",
    ] {
        assert!(is_package_name(named, "worker1"), "{named:?}");
    }
    for other in [
        b"/queue/cluster/worker1/worker10-1.0-1.zip".as_slice(),
        b"/queue/cluster/worker1/rules.zip",
        b"/queue/cluster/worker1/worker1-1.0-1.json",
        b"worker1-.zip",
        b"worker1.zip",
        b"",
    ] {
        assert!(!is_package_name(other, "worker1"), "{other:?}");
    }
}
