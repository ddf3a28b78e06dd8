//! The [`Storage`] contract as one test suite, run against every implementation (the in-memory
//! storage here, the real file system in `wazuh-cluster-fs`), so both keep the same semantics.
//!
//! Enabled by the `testing` cargo feature. Each check panics with a message naming the broken
//! clause; none depends on timing.

use super::{EntryKind, FileAttrs, Storage, StorageError, StorageErrorKind, Timestamp};
use crate::integrity::path::InstallPath;

fn p(text: &str) -> InstallPath {
    match InstallPath::new(text) {
        Ok(path) => path,
        Err(e) => panic!("bad test path {text}: {e}"),
    }
}

fn ok<T>(result: Result<T, StorageError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

fn kind<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) -> StorageErrorKind {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(e) => e.kind,
    }
}

const T1: Timestamp = Timestamp {
    secs: 1_562_000_000,
    nanos: 250_000_000,
};
const T2: Timestamp = Timestamp {
    secs: 1_600_000_000,
    nanos: 0,
};

/// Runs every clause of the contract on fresh storages from `make` (each must be empty).
pub fn storage_contract_suite<S: Storage>(make: impl Fn() -> S) {
    writes_are_atomic_and_carry_attributes(&mut make());
    staged_writes_stay_invisible_until_commit(&mut make());
    patches_and_volatile_commits(&mut make());
    deferred_commits_land_at_sync(&mut make());
    deferred_removals_are_seen_at_once(&mut make());
    listing_and_stat(&mut make());
    directories(&mut make());
    removals(&mut make());
    reads_are_bounded(&mut make());
    opened_readers_outlive_their_path(&mut make());
    writing_behind_changes_nothing_seen(&mut make());
    write_handles_are_never_reused(&mut make());
}

/// Symlink clauses: `add_symlink(storage, path, target)` creates a symlink (outside the trait).
/// `outside` is a target that leaves the install root.
pub fn symlink_contract_suite<S: Storage>(
    make: impl Fn() -> S,
    add_symlink: impl Fn(&mut S, &InstallPath, &str),
    outside: &str,
) {
    let mut s = make();
    ok(s.create_dir_all(&p("/etc"), 0o750), "create /etc");
    add_symlink(&mut s, &p("/etc/shared"), outside);
    add_symlink(&mut s, &p("/etc/link.conf"), outside);
    let entries = ok(s.list_dir(&p("/etc")), "list /etc");
    let kinds: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("link.conf", EntryKind::Symlink),
            ("shared", EntryKind::Symlink)
        ]
    );
    // Never through the link: it stays, and so does its target.
    assert!(!matches!(s.remove_empty_dir(&p("/etc/shared")), Ok(true)));
    let stat = ok(s.stat(&p("/etc/shared")), "stat symlink");
    assert_eq!(
        stat.map(|st| st.kind),
        Some(EntryKind::Symlink),
        "stat must not follow"
    );
    let through = p("/etc/shared/default/merged.mg");
    assert_eq!(
        kind(s.begin_write(&through), "write through a symlink"),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(
            s.write_atomic(&p("/etc/shared/x"), b"x", &attrs(0o660)),
            "write through a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(
            s.create_dir_all(&p("/etc/shared/default"), 0o770),
            "mkdir through a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(s.list_dir(&p("/etc/shared")), "list a symlink"),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(s.stat(&through), "stat through a symlink"),
        StorageErrorKind::OutsideRoot
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        kind(
            s.read_at(&p("/etc/link.conf"), 0, &mut buf),
            "read a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(s.read_at(&through, 0, &mut buf), "read through a symlink"),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(
            s.open_reader(&p("/etc/link.conf")).map(|_| ()),
            "open a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(
            s.open_reader(&through).map(|_| ()),
            "open through a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(
            s.set_attrs(&p("/etc/link.conf"), &attrs(0o600)),
            "chmod a symlink"
        ),
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        kind(s.remove_dir_all(&p("/etc/shared")), "rmtree a symlink"),
        StorageErrorKind::OutsideRoot
    );
    // The link itself can be removed (never its target).
    assert!(ok(s.remove_file(&p("/etc/link.conf")), "remove a symlink"));
    assert_eq!(ok(s.stat(&p("/etc/link.conf")), "stat removed link"), None);
    // remove_dir_all of a directory holding a symlink removes the link, not what it points to.
    ok(s.create_dir_all(&p("/etc/rules/sub"), 0o750), "mkdir");
    add_symlink(&mut s, &p("/etc/rules/sub/out"), outside);
    assert!(ok(
        s.remove_dir_all(&p("/etc/rules")),
        "rmtree with a link inside"
    ));
}

fn attrs(mode: u32) -> FileAttrs {
    FileAttrs { mode, mtime: None }
}

fn writes_are_atomic_and_carry_attributes<S: Storage>(s: &mut S) {
    let file = p("/etc/client.keys");
    assert_eq!(
        kind(
            s.write_atomic(&file, b"x", &attrs(0o640)),
            "write without parent"
        ),
        StorageErrorKind::NotFound
    );
    ok(s.create_dir_all(&p("/etc"), 0o750), "mkdir /etc");
    ok(
        s.write_atomic(
            &file,
            b"first",
            &FileAttrs {
                mode: 0o640,
                mtime: Some(T1),
            },
        ),
        "first write",
    );
    assert_eq!(ok(s.read(&file, 100), "read"), b"first");
    let st = ok(s.stat(&file), "stat").unwrap_or_else(|| panic!("written file missing"));
    assert_eq!(
        (st.kind, st.size, st.mode, st.mtime),
        (EntryKind::File, 5, 0o640, T1)
    );
    // Replacing: new content, new attributes, atomically.
    ok(
        s.write_atomic(
            &file,
            b"second version",
            &FileAttrs {
                mode: 0o660,
                mtime: Some(T2),
            },
        ),
        "replace",
    );
    assert_eq!(ok(s.read(&file, 100), "read"), b"second version");
    let st = ok(s.stat(&file), "stat").unwrap_or_else(|| panic!("replaced file missing"));
    assert_eq!((st.size, st.mode, st.mtime), (14, 0o660, T2));
    // set_attrs on an existing file.
    ok(
        s.set_attrs(
            &file,
            &FileAttrs {
                mode: 0o600,
                mtime: Some(T1),
            },
        ),
        "set_attrs",
    );
    let st = ok(s.stat(&file), "stat").unwrap_or_else(|| panic!("file missing"));
    assert_eq!((st.mode, st.mtime), (0o600, T1));
    assert_eq!(
        kind(
            s.set_attrs(&p("/etc/none"), &attrs(0o600)),
            "set_attrs missing"
        ),
        StorageErrorKind::NotFound
    );
    // A directory cannot be replaced by a file.
    assert_eq!(
        kind(
            s.write_atomic(&p("/etc"), b"x", &attrs(0o600)),
            "write over a directory"
        ),
        StorageErrorKind::WrongKind
    );
    // The root is not a file.
    assert_eq!(
        kind(s.begin_write(&InstallPath::root()), "write the root"),
        StorageErrorKind::WrongKind
    );
}

fn staged_writes_stay_invisible_until_commit<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/rules"), 0o750), "mkdir");
    let file = p("/etc/rules/local_rules.xml");
    ok(s.write_atomic(&file, b"old", &attrs(0o660)), "write");
    let id = ok(s.begin_write(&file), "begin");
    ok(s.append(id, b"new "), "append");
    ok(s.append(id, b"content"), "append");
    assert_eq!(
        ok(s.read(&file, 100), "read during staging"),
        b"old",
        "a staged write is visible"
    );
    ok(s.commit_write(id, &attrs(0o660)), "commit");
    assert_eq!(ok(s.read(&file, 100), "read"), b"new content");
    assert_eq!(
        kind(s.commit_write(id, &attrs(0o660)), "commit twice"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        kind(s.append(id, b"x"), "append after commit"),
        StorageErrorKind::UnknownWrite
    );

    let id = ok(s.begin_write(&file), "begin");
    ok(s.append(id, b"discarded"), "append");
    ok(s.abort_write(id), "abort");
    assert_eq!(ok(s.read(&file, 100), "read after abort"), b"new content");
    assert_eq!(
        kind(s.abort_write(id), "abort twice"),
        StorageErrorKind::UnknownWrite
    );
    // Nothing staged is left behind under a name a walk would take.
    let names: Vec<String> = ok(s.list_dir(&p("/etc/rules")), "list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["local_rules.xml"]);

    // Two staged writes of one directory at once.
    let a = ok(s.begin_write(&p("/etc/rules/a.xml")), "begin a");
    let b = ok(s.begin_write(&p("/etc/rules/b.xml")), "begin b");
    ok(s.append(b, b"B"), "append b");
    ok(s.append(a, b"A"), "append a");
    ok(s.commit_write(b, &attrs(0o660)), "commit b");
    ok(s.commit_write(a, &attrs(0o660)), "commit a");
    assert_eq!(ok(s.read(&p("/etc/rules/a.xml"), 10), "read a"), b"A");
    assert_eq!(ok(s.read(&p("/etc/rules/b.xml"), 10), "read b"), b"B");
}

/// A staged write is patched only over bytes already written; a volatile commit is in place at
/// once, with its attributes, exactly as a durable one (what a crash does to it is the
/// implementation's crash model).
fn patches_and_volatile_commits<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/queue/cluster/w1"), 0o770), "mkdir");
    let file = p("/queue/cluster/w1/p.zip");
    let id = ok(s.begin_write(&file), "begin");
    ok(s.append(id, b"header:????;"), "append");
    ok(s.append(id, b"data"), "append");
    ok(s.write_at(id, 7, b"CRC!"), "patch inside");
    ok(s.write_at(id, 12, b"DATA"), "patch up to the end");
    assert_eq!(
        kind(s.write_at(id, 13, b"DATA"), "patch past the end"),
        StorageErrorKind::Io
    );
    assert_eq!(
        kind(
            s.write_at(id, u64::MAX, b"x"),
            "patch at an offset that overflows"
        ),
        StorageErrorKind::Io
    );
    assert_eq!(
        s.stat(&file).map(|st| st.is_some()).ok(),
        Some(false),
        "a patched staged write is visible"
    );
    let volatile = FileAttrs {
        mode: 0o640,
        mtime: Some(T2),
    };
    ok(s.commit_write_volatile(id, &volatile), "volatile commit");
    assert_eq!(ok(s.read(&file, 100), "read"), b"header:CRC!;DATA");
    let st = ok(s.stat(&file), "stat").map(|st| (st.mode, st.mtime, st.size));
    assert_eq!(st, Some((0o640, T2, 16)));
    assert_eq!(
        kind(s.write_at(id, 0, b"x"), "patch after commit"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        kind(s.commit_write_volatile(id, &volatile), "commit twice"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(names(s, "/queue/cluster/w1"), ["p.zip"]);
}

fn names<S: Storage>(s: &S, dir: &str) -> Vec<String> {
    ok(s.list_dir(&p(dir)), "list")
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Stages `data` for `path` and commits it deferred.
fn defer<S: Storage>(s: &mut S, path: &InstallPath, data: &[u8], attrs: &FileAttrs) {
    let id = ok(s.begin_write(path), "begin");
    ok(s.append(id, data), "append");
    ok(s.commit_write_deferred(id, attrs), "deferred commit");
    assert_eq!(
        kind(s.append(id, b"x"), "append after a deferred commit"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        kind(s.commit_write(id, attrs), "commit after a deferred commit"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        kind(s.commit_write_deferred(id, attrs), "deferred commit twice"),
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        kind(s.abort_write(id), "abort after a deferred commit"),
        StorageErrorKind::UnknownWrite
    );
}

/// A committed write's handle names nothing afterwards: aborting it fails and leaves the writes
/// begun since alone.
fn write_handles_are_never_reused<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/rules"), 0o750), "mkdir");
    let first = ok(s.begin_write(&p("/etc/rules/a.xml")), "begin");
    ok(s.append(first, b"a"), "append");
    ok(s.commit_write(first, &attrs(0o640)), "commit");
    let second = ok(s.begin_write(&p("/etc/rules/a.xml")), "begin again");
    assert_ne!(first, second);
    assert!(s.abort_write(first).is_err(), "a committed handle aborted");
    ok(s.append(second, b"b"), "the later write is still open");
    ok(s.commit_write(second, &attrs(0o640)), "commit");
    assert_eq!(ok(s.read(&p("/etc/rules/a.xml"), 10), "read"), b"b");
}

/// [`Storage::write_behind`] is a hint: a large staged write asked to write behind still takes
/// patches anywhere in what it holds (also bytes already handed to the disk), lands whole at
/// the sync, and leaves nothing when aborted.
fn writing_behind_changes_nothing_seen<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/shared/default"), 0o770), "mkdir");
    let target = p("/etc/shared/default/large.bin");
    let piece: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut expected = Vec::new();
    let id = ok(s.begin_write(&target), "begin");
    s.write_behind(id);
    for _ in 0..20 {
        ok(s.append(id, &piece), "append");
        expected.extend_from_slice(&piece);
    }
    ok(s.write_at(id, 3, b"patched"), "patch what went behind");
    expected[3..10].copy_from_slice(b"patched");
    ok(s.commit_write_deferred(id, &attrs(0o640)), "commit");
    ok(s.sync_deferred(), "sync");
    assert!(ok(s.read(&target, u64::MAX), "read") == expected, "content");

    let aborted = p("/etc/shared/default/aborted.bin");
    let id = ok(s.begin_write(&aborted), "begin");
    s.write_behind(id);
    for _ in 0..10 {
        ok(s.append(id, &piece), "append");
    }
    ok(s.abort_write(id), "abort");
    assert_eq!(ok(s.stat(&aborted), "stat"), None);
    assert_eq!(names(s, "/etc/shared/default"), ["large.bin"]);
}

fn deferred_commits_land_at_sync<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/rules"), 0o750), "mkdir");
    ok(s.create_dir_all(&p("/etc/shared/default"), 0o770), "mkdir");
    let rules = p("/etc/rules/local_rules.xml");
    ok(s.write_atomic(&rules, b"old", &attrs(0o660)), "write");
    ok(s.sync_deferred(), "sync with nothing deferred");

    // A batch over two directories, one replacing a file.
    let batch = [
        (rules.clone(), b"new rules".as_slice(), T1),
        (p("/etc/rules/b.xml"), b"B", T2),
        (p("/etc/shared/default/merged.mg"), b"M", T1),
    ];
    for (path, data, mtime) in &batch {
        let attrs = FileAttrs {
            mode: 0o640,
            mtime: Some(*mtime),
        };
        defer(s, path, data, &attrs);
    }
    let before = ok(s.read(&rules, 100), "read before the sync");
    assert!(
        before == b"old" || before == b"new rules",
        "a deferred target reads neither old nor new: {before:?}"
    );
    ok(s.sync_deferred(), "sync");
    for (path, data, mtime) in &batch {
        assert_eq!(
            ok(s.read(path, 100), "read after the sync"),
            *data,
            "{path}"
        );
        let st = ok(s.stat(path), "stat").unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!((st.mode, st.mtime), (0o640, *mtime), "{path}");
    }
    assert_eq!(names(s, "/etc/rules"), ["b.xml", "local_rules.xml"]);
    assert_eq!(names(s, "/etc/shared/default"), ["merged.mg"]);
    ok(s.sync_deferred(), "a second sync has nothing to do");
    assert_eq!(ok(s.read(&rules, 100), "read"), b"new rules");

    // A target deferred twice takes the later content.
    let twice = p("/etc/rules/b.xml");
    defer(s, &twice, b"first", &attrs(0o660));
    defer(s, &twice, b"second", &attrs(0o660));
    ok(s.sync_deferred(), "sync");
    assert_eq!(ok(s.read(&twice, 100), "read"), b"second");
    assert_eq!(names(s, "/etc/rules"), ["b.xml", "local_rules.xml"]);
}

fn deferred_removals_are_seen_at_once<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/queue/agent-info"), 0o750), "mkdir");
    ok(s.create_dir_all(&p("/etc/rules"), 0o750), "mkdir");
    for path in [
        "/queue/agent-info/a-any",
        "/queue/agent-info/b-any",
        "/etc/rules/x.xml",
    ] {
        ok(s.write_atomic(&p(path), b"data", &attrs(0o660)), "write");
    }
    assert!(ok(
        s.remove_file_deferred(&p("/queue/agent-info/a-any")),
        "deferred removal"
    ));
    assert!(ok(
        s.remove_file_deferred(&p("/etc/rules/x.xml")),
        "deferred removal in another directory"
    ));
    assert!(
        !ok(
            s.remove_file_deferred(&p("/queue/agent-info/none")),
            "deferred removal of nothing"
        ),
        "a deferred removal of a missing file reports false"
    );
    assert!(
        !ok(
            s.remove_file_deferred(&p("/var/none/x")),
            "deferred removal in a missing directory"
        ),
        "a deferred removal in a missing directory reports false"
    );
    ok(
        s.create_dir_all(&p("/queue/agent-info/dir"), 0o750),
        "mkdir",
    );
    assert_eq!(
        kind(
            s.remove_file_deferred(&p("/queue/agent-info/dir")),
            "deferred removal of a directory"
        ),
        StorageErrorKind::WrongKind
    );
    // Gone at once for every reader, before the sync.
    assert_eq!(ok(s.stat(&p("/queue/agent-info/a-any")), "stat"), None);
    assert_eq!(names(s, "/queue/agent-info"), ["b-any", "dir"]);
    assert_eq!(names(s, "/etc/rules"), Vec::<String>::new());
    // A commit deferred in the same batch lands with it.
    defer(s, &p("/etc/rules/y.xml"), b"Y", &attrs(0o660));
    ok(s.sync_deferred(), "sync");
    assert_eq!(names(s, "/queue/agent-info"), ["b-any", "dir"]);
    assert_eq!(names(s, "/etc/rules"), ["y.xml"]);
    ok(s.sync_deferred(), "a second sync has nothing to do");
}

/// For implementations that really defer (not the trait's defaults, which commit at once): a
/// deferred commit that cannot land (its directory went away before the sync) fails the sync with
/// `NotFound`; the others land and nothing stays pending.
pub fn deferred_failure_suite<S: Storage>(make: impl Fn() -> S) {
    let mut s = make();
    ok(s.create_dir_all(&p("/etc/rules"), 0o750), "mkdir");
    ok(s.create_dir_all(&p("/var/gone"), 0o750), "mkdir");
    defer(&mut s, &p("/var/gone/f"), b"lost", &attrs(0o660));
    defer(&mut s, &p("/etc/rules/c.xml"), b"C", &attrs(0o660));
    assert!(ok(s.remove_dir_all(&p("/var/gone")), "rmtree"));
    assert_eq!(
        kind(s.sync_deferred(), "sync into a removed directory"),
        StorageErrorKind::NotFound
    );
    assert_eq!(ok(s.read(&p("/etc/rules/c.xml"), 10), "read"), b"C");
    assert_eq!(ok(s.stat(&p("/var/gone")), "stat"), None);
    ok(s.sync_deferred(), "nothing left after a failed sync");
    assert_eq!(names(&s, "/etc/rules"), ["c.xml"]);
}

fn listing_and_stat<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/shared/default"), 0o770), "mkdir");
    for name in ["zeta", "alpha", "Mid", "beta.tmp"] {
        ok(
            s.write_atomic(
                &p(&format!("/etc/shared/{name}")),
                name.as_bytes(),
                &attrs(0o660),
            ),
            "write",
        );
    }
    let entries = ok(s.list_dir(&p("/etc/shared")), "list");
    let listed: Vec<(&str, EntryKind)> =
        entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        listed,
        [
            ("Mid", EntryKind::File),
            ("alpha", EntryKind::File),
            ("beta.tmp", EntryKind::File),
            ("default", EntryKind::Dir),
            ("zeta", EntryKind::File)
        ],
        "list_dir must be sorted by name (bytewise)"
    );
    assert_eq!(
        kind(s.list_dir(&p("/nope")), "list missing"),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.list_dir(&p("/etc/shared/zeta")), "list a file"),
        StorageErrorKind::WrongKind
    );
    assert_eq!(ok(s.stat(&p("/etc/shared/none")), "stat missing"), None);
    assert_eq!(
        ok(s.stat(&p("/no/parent/here")), "stat missing parent"),
        None
    );
    let dir =
        ok(s.stat(&p("/etc/shared/default")), "stat dir").unwrap_or_else(|| panic!("dir missing"));
    assert_eq!((dir.kind, dir.mode), (EntryKind::Dir, 0o770));
    assert_eq!(
        kind(s.stat(&p("/etc/shared/zeta/below")), "stat below a file"),
        StorageErrorKind::WrongKind
    );
}

fn directories<S: Storage>(s: &mut S) {
    let deep = p("/var/multigroups/e4f9f5fa/x");
    ok(s.create_dir_all(&deep, 0o770), "mkdir -p");
    ok(s.create_dir_all(&deep, 0o770), "mkdir -p again");
    for dir in [
        "/var",
        "/var/multigroups",
        "/var/multigroups/e4f9f5fa",
        "/var/multigroups/e4f9f5fa/x",
    ] {
        let st = ok(s.stat(&p(dir)), "stat").unwrap_or_else(|| panic!("{dir} missing"));
        assert_eq!((st.kind, st.mode), (EntryKind::Dir, 0o770), "{dir}");
    }
    ok(s.write_atomic(&p("/var/f"), b"f", &attrs(0o660)), "write");
    assert_eq!(
        kind(
            s.create_dir_all(&p("/var/f/sub"), 0o770),
            "mkdir below a file"
        ),
        StorageErrorKind::WrongKind
    );
}

fn removals<S: Storage>(s: &mut S) {
    ok(
        s.create_dir_all(&p("/etc/shared/old/deeper"), 0o770),
        "mkdir",
    );
    ok(
        s.write_atomic(&p("/etc/shared/old/merged.mg"), b"m", &attrs(0o660)),
        "write",
    );
    ok(
        s.write_atomic(&p("/etc/shared/old/deeper/f"), b"f", &attrs(0o660)),
        "write",
    );
    assert!(ok(s.remove_file(&p("/etc/shared/old/merged.mg")), "remove"));
    assert!(!ok(
        s.remove_file(&p("/etc/shared/old/merged.mg")),
        "remove again"
    ));
    assert!(!ok(
        s.remove_file(&p("/no/such/dir/file")),
        "remove below a missing dir"
    ));
    assert_eq!(
        kind(s.remove_file(&p("/etc/shared/old")), "remove_file on a dir"),
        StorageErrorKind::WrongKind
    );
    assert!(ok(s.remove_dir_all(&p("/etc/shared/old")), "rmtree"));
    assert!(!ok(s.remove_dir_all(&p("/etc/shared/old")), "rmtree again"));
    assert_eq!(
        ok(s.stat(&p("/etc/shared/old/deeper/f")), "stat removed"),
        None
    );
    let names: Vec<String> = ok(s.list_dir(&p("/etc/shared")), "list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.is_empty(), "left: {names:?}");
    assert_eq!(
        kind(s.remove_dir_all(&InstallPath::root()), "rmtree the root"),
        StorageErrorKind::PermissionDenied
    );
    // A directory goes only when empty; missing is no error.
    ok(s.create_dir_all(&p("/queue/cluster/w1"), 0o770), "mkdir");
    ok(
        s.write_atomic(&p("/queue/cluster/w1/a.zip"), b"a", &attrs(0o640)),
        "write",
    );
    assert!(!ok(
        s.remove_empty_dir(&p("/queue/cluster/w1")),
        "rmdir a directory with a file"
    ));
    assert!(ok(s.remove_file(&p("/queue/cluster/w1/a.zip")), "remove"));
    assert!(ok(
        s.remove_empty_dir(&p("/queue/cluster/w1")),
        "rmdir an empty directory"
    ));
    assert_eq!(
        ok(s.stat(&p("/queue/cluster/w1")), "stat removed dir"),
        None
    );
    assert!(!ok(
        s.remove_empty_dir(&p("/queue/cluster/w1")),
        "rmdir a missing directory"
    ));
    assert!(!ok(
        s.remove_empty_dir(&p("/no/such/dir")),
        "rmdir below a missing parent"
    ));
}

fn opened_readers_outlive_their_path<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/queue/cluster/w1"), 0o770), "mkdir");
    let path = p("/queue/cluster/w1/package.zip");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    ok(s.write_atomic(&path, &data, &attrs(0o660)), "write");
    let file = ok(s.open_reader(&path), "open_reader");
    assert_eq!(file.size(), 100_000);
    let mut buf = [0u8; 10];
    assert_eq!(ok(file.read_at(99_995, &mut buf), "read_at the end"), 5);
    assert_eq!(&buf[..5], &data[99_995..]);
    assert_eq!(ok(file.read_at(200_000, &mut buf), "read past the end"), 0);
    // Replaced, then removed: the open file still reads what it held when opened.
    ok(s.write_atomic(&path, b"other", &attrs(0o660)), "replace");
    assert!(ok(s.remove_file(&path), "remove"));
    let mut reader = super::PositionalReader::new(file);
    let mut all = Vec::new();
    ok(
        std::io::Read::read_to_end(&mut reader, &mut all)
            .map_err(|e| StorageError::new(StorageErrorKind::Io, &path, e.to_string())),
        "read the opened file to its end",
    );
    assert_eq!(all, data, "an opened file reads what it held when opened");
    assert_eq!(
        kind(s.open_reader(&path).map(|_| ()), "open a missing file"),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(
            s.open_reader(&p("/queue/cluster/w1")).map(|_| ()),
            "open a directory"
        ),
        StorageErrorKind::WrongKind
    );
}

fn reads_are_bounded<S: Storage>(s: &mut S) {
    ok(s.create_dir_all(&p("/etc/lists"), 0o770), "mkdir");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ok(
        s.write_atomic(&p("/etc/lists/big"), &data, &attrs(0o660)),
        "write",
    );
    assert_eq!(
        ok(s.read(&p("/etc/lists/big"), 200_000), "read at the limit"),
        data
    );
    assert_eq!(
        kind(s.read(&p("/etc/lists/big"), 199_999), "read over the limit"),
        StorageErrorKind::TooLarge
    );
    let mut buf = [0u8; 10];
    assert_eq!(
        ok(
            s.read_at(&p("/etc/lists/big"), 199_995, &mut buf),
            "read_at the end"
        ),
        5
    );
    assert_eq!(&buf[..5], &data[199_995..]);
    assert_eq!(
        ok(
            s.read_at(&p("/etc/lists/big"), 500_000, &mut buf),
            "read_at past the end"
        ),
        0
    );
    assert_eq!(
        kind(
            s.read_at(&p("/etc/lists/none"), 0, &mut buf),
            "read missing"
        ),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.read_at(&p("/etc/lists"), 0, &mut buf), "read a directory"),
        StorageErrorKind::WrongKind
    );
    // A replaced file is read anew from offset 0.
    ok(
        s.write_atomic(&p("/etc/lists/big"), b"short", &attrs(0o660)),
        "replace",
    );
    assert_eq!(
        ok(s.read(&p("/etc/lists/big"), 100), "read replaced"),
        b"short"
    );
}
