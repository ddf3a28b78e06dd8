//! Packages written straight into a staged write (`StagedPackage`, CRC first, append only): what
//! they hold reads back through our reader and the `zip` crate, ZIP64 end records past 65,535
//! members, the size limit refused before it is passed, and nothing left behind by a failure.

use std::io::Cursor;

use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::package::{PackageError, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::staged_package::StagedPackage;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, StorageErrorKind, Timestamp};
use wazuh_cluster_testkit::install_path as p;

const NOW: Timestamp = Timestamp::from_secs(1_562_000_000);
const ATTRS: FileAttrs = FileAttrs {
    mode: 0o660,
    mtime: None,
};

fn storage() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    s.add_file(
        &p("/etc/client.keys"),
        b"001 a any k\n".to_vec(),
        Timestamp::from_secs(1_561_000_000),
        0o640,
    )
    .unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    s.add_file(
        &p("/etc/rules/big.xml"),
        big,
        Timestamp::from_secs(1_561_000_002),
        0o660,
    )
    .unwrap();
    s.create_dir_all(&p("/queue/cluster/w1"), 0o770).unwrap();
    s
}

#[test]
fn members_read_back_with_their_content_mode_and_time() {
    let mut s = storage();
    let path = p("/queue/cluster/w1/out.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    package
        .add_member_from_storage(&mut s, &p("/etc/client.keys"))
        .unwrap();
    assert_eq!(
        package
            .add_member_from_storage(&mut s, &p("/etc/rules/big.xml"))
            .unwrap(),
        300_000
    );
    package
        .add_member(
            &mut s,
            &p("/queue/agent-groups/ü"),
            NOW,
            0o660,
            b"default\n",
        )
        .unwrap();
    // Invisible until finished.
    assert_eq!(s.stat(&path).unwrap(), None);
    let size = package
        .finish(&mut s, br#"{"missing": {}}"#, NOW, &ATTRS)
        .unwrap()
        .size;
    let zip = s.read(&path, u64::MAX).unwrap();
    assert_eq!(zip.len() as u64, size);

    let mut reader =
        PackageReader::open(Cursor::new(zip.clone()), PackageLimits::default()).unwrap();
    assert_eq!(reader.control_json(), br#"{"missing": {}}"#);
    reader.verify_all().unwrap();
    assert_eq!(
        reader
            .read_member(&p("/etc/rules/big.xml"), u64::MAX)
            .unwrap(),
        s.read(&p("/etc/rules/big.xml"), u64::MAX).unwrap()
    );
    assert_eq!(
        reader
            .read_member(&p("/queue/agent-groups/ü"), u64::MAX)
            .unwrap(),
        b"default\n"
    );
    // What a reader takes from the headers: Unix mode bits, the DOS time, UTF-8 names.
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let keys = archive.by_name("etc/client.keys").unwrap();
    assert_eq!(keys.unix_mode(), Some(0o100_640));
    let t = keys.last_modified().unwrap();
    // 1_561_000_000 = 2019-06-20 03:06:40 UTC.
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        (2019, 6, 20, 3, 6, 40)
    );
    drop(keys);
    assert!(archive.by_name("queue/agent-groups/ü").is_ok());
}

#[test]
fn more_than_65535_members_get_zip64_end_records() {
    let mut s = storage();
    let path = p("/queue/cluster/w1/many.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    let count = 65_536;
    for i in 0..count {
        package
            .add_member(&mut s, &p(&format!("/etc/rules/r{i}")), NOW, 0o660, b"x")
            .unwrap();
    }
    package.finish(&mut s, b"{}", NOW, &ATTRS).unwrap();
    let zip = s.read(&path, u64::MAX).unwrap();
    let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
    assert_eq!(reader.members().len(), count);
    assert_eq!(
        reader
            .read_member(&p("/etc/rules/r65535"), u64::MAX)
            .unwrap(),
        b"x"
    );
}

#[test]
fn a_package_over_its_limit_is_refused_and_leaves_nothing() {
    let mut s = storage();
    let path = p("/queue/cluster/w1/limited.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 100_000).unwrap();
    package
        .add_member_from_storage(&mut s, &p("/etc/client.keys"))
        .unwrap();
    assert_eq!(
        package.add_member_from_storage(&mut s, &p("/etc/rules/big.xml")),
        Err(PackageError::TotalTooLarge { limit: 100_000 })
    );
    // Refused before a byte of the member was written.
    assert!(package.written() < 200);
    package.abort(&mut s);
    assert_eq!(s.staged_writes(), 0);
    assert_eq!(s.stat(&path).unwrap(), None);
}

#[test]
fn a_vanished_file_or_a_duplicate_fails_the_member() {
    let mut s = storage();
    let path = p("/queue/cluster/w1/bad.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    assert!(matches!(
        package.add_member_from_storage(&mut s, &p("/etc/rules/gone.xml")),
        Err(PackageError::Storage(e)) if e.kind == StorageErrorKind::NotFound
    ));
    package
        .add_member_from_storage(&mut s, &p("/etc/client.keys"))
        .unwrap();
    assert_eq!(
        package.add_member_from_storage(&mut s, &p("/etc/client.keys")),
        Err(PackageError::DuplicateMember("etc/client.keys".into()))
    );
    package.abort(&mut s);
    assert_eq!(s.stat(&path).unwrap(), None);
}

#[test]
fn a_package_that_would_fill_the_disk_stops_before_the_member_that_would() {
    let mut s = storage();
    s.set_available_space(Some(200_000));
    let path = p("/queue/cluster/w1/full.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    package
        .add_member_from_storage(&mut s, &p("/etc/client.keys"))
        .unwrap();
    let error = package
        .add_member_from_storage(&mut s, &p("/etc/rules/big.xml"))
        .unwrap_err();
    assert!(
        matches!(error, PackageError::NoSpace { needed, available: 200_000 } if needed > 300_000),
        "{error}"
    );
    assert!(package.written() < 200);
    package.abort(&mut s);
    assert_eq!(s.stat(&path).unwrap(), None);
}

/// Headers and small members are gathered into writes of 64 KiB: 200 files of 1 KiB cost a
/// handful of storage operations beyond their own reads, not a write, a data write and a CRC
/// patch each, and read back whole.
#[test]
fn small_members_are_gathered_into_few_writes() {
    let mut s = storage();
    let keys: Vec<_> = (0..200)
        .map(|i| p(&format!("/etc/lists/l{i:03}")))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        s.add_file(key, vec![i as u8; 1024], NOW, 0o660).unwrap();
    }
    let path = p("/queue/cluster/w1/small.zip");
    let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
    let before = s.operations();
    for key in &keys {
        package.add_member_from_storage(&mut s, key).unwrap();
    }
    let size = package
        .finish(&mut s, br#"{"missing": {}}"#, NOW, &ATTRS)
        .unwrap()
        .size;
    // Per member a stat and an open (reads of an opened file are not operations); then about
    // 200 KiB of package in whole 64 KiB writes, a CRC patch in the file for a header that went
    // out with one of them before its member was read (at most one per write), and the commit.
    let writes = (s.operations() - before).saturating_sub(2 * 200);
    assert!(writes <= 9, "{writes} write operations");
    let zip = s.read(&path, u64::MAX).unwrap();
    assert_eq!(zip.len() as u64, size);
    let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
    reader.verify_all().unwrap();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(reader.read_member(key, 2048).unwrap(), vec![i as u8; 1024]);
    }
}

/// A member's CRC is patched wherever its header is: already in the staged write, still
/// gathered in memory, or across the boundary between the two (a first member sized so that the
/// second one's CRC field lands before, on and after the first 64 KiB write).
#[test]
fn crcs_are_patched_on_both_sides_of_a_gathered_write() {
    for first in 65_470..65_490usize {
        let mut s = storage();
        let path = p("/queue/cluster/w1/edge.zip");
        let mut package = StagedPackage::begin(&mut s, &path, 1 << 30).unwrap();
        package
            .add_member(&mut s, &p("/etc/lists/a"), NOW, 0o660, &vec![7u8; first])
            .unwrap();
        package
            .add_member_from_storage(&mut s, &p("/etc/client.keys"))
            .unwrap();
        package
            .add_member_from_storage(&mut s, &p("/etc/rules/big.xml"))
            .unwrap();
        package.finish(&mut s, b"{}", NOW, &ATTRS).unwrap();
        let zip = s.read(&path, u64::MAX).unwrap();
        let mut reader = PackageReader::open(Cursor::new(zip), PackageLimits::default()).unwrap();
        reader
            .verify_all()
            .unwrap_or_else(|e| panic!("first member {first}: {e}"));
        assert_eq!(
            reader.read_member(&p("/etc/client.keys"), 100).unwrap(),
            b"001 a any k\n"
        );
    }
}

/// Builds a package of `keys` (from `s`) at `path`, letting `splices` large members stay in
/// their files; the package's bytes read back in reads of `step` bytes, and how many members
/// stayed out.
fn built_and_read(
    s: &mut MemoryStorage,
    path: &InstallPath,
    keys: &[InstallPath],
    splices: usize,
    step: usize,
) -> (Vec<u8>, usize) {
    let mut package = StagedPackage::begin(s, path, 1 << 30).unwrap();
    package.allow_splices(splices);
    for key in keys {
        package.add_member_from_storage(s, key).unwrap();
    }
    package
        .add_member(s, &p("/queue/agent-groups/001"), NOW, 0o660, b"default\n")
        .unwrap();
    let built = package
        .finish(s, br#"{"missing": {}}"#, NOW, &ATTRS)
        .unwrap();
    let Some(spliced) = built.spliced else {
        return (s.read(path, u64::MAX).unwrap(), 0);
    };
    assert_eq!(spliced.size(), built.size);
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        let at = out.len() as u64;
        let n = spliced
            .read_at(at, &mut buf, |at, buf| s.read_at(path, at, buf))
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (out, spliced.len())
}

/// Members left in their own files read back as the very bytes of the package with every
/// member copied, whatever the reads' length (across member edges, headers and the central
/// directory), and no more of them than allowed.
#[test]
fn members_left_in_their_files_read_as_the_package_built_whole() {
    let mut s = storage();
    let large = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32)
            .map(|b| (b.wrapping_mul(31) ^ seed) as u8)
            .collect()
    };
    let keys = [
        p("/etc/rules/a-large.xml"),
        p("/etc/client.keys"),
        p("/etc/rules/b-large.xml"),
        p("/etc/rules/big.xml"),
        p("/etc/rules/c-large.xml"),
    ];
    s.add_file(&keys[0], large((1 << 20) + 5, 1), NOW, 0o640)
        .unwrap();
    s.add_file(&keys[2], large(1 << 20, 2), NOW, 0o600).unwrap();
    s.add_file(&keys[4], large(3_000_001, 3), NOW, 0o660)
        .unwrap();
    let (whole, none) = built_and_read(&mut s, &p("/queue/cluster/w1/whole.zip"), &keys, 0, 1);
    assert_eq!(none, 0);
    for step in [7, 4096, 65_537, 5 << 20] {
        let path = p(&format!("/queue/cluster/w1/spliced-{step}.zip"));
        let (read, spliced) = built_and_read(&mut s, &path, &keys, 2, step);
        assert_eq!(spliced, 2, "two allowed, three large");
        assert!(
            read == whole,
            "reads of {step} bytes differ from the whole package"
        );
        let compact = s.stat(&path).unwrap().unwrap().size;
        assert_eq!(compact, whole.len() as u64 - (1 << 20) - 5 - (1 << 20));
    }
    let mut reader = PackageReader::open(Cursor::new(whole), PackageLimits::default()).unwrap();
    reader.verify_all().unwrap();
}
