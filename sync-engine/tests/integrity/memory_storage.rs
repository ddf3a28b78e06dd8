//! The Storage contract on MemoryStorage, and its crash model.

use std::collections::BTreeMap;

use wazuh_cluster_sync::integrity::memory::{MemoryStorage, SnapshotEntry, StorageFault};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{
    DirEntry, EntryKind, FileAttrs, FileStat, Storage, StorageError, StorageErrorKind, Timestamp,
    WriteId,
};
use wazuh_cluster_testkit::install_path as p;

const T1: Timestamp = Timestamp {
    secs: 1_562_000_000,
    nanos: 250_000_000,
};

fn attrs(mode: u32) -> FileAttrs {
    FileAttrs {
        mode,
        mtime: Some(T1),
    }
}

fn sample() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    s.add_file(&p("/etc/client.keys"), b"keys".to_vec(), T1, 0o640)
        .unwrap();
    s.add_file(
        &p("/etc/shared/default/merged.mg"),
        b"mg".to_vec(),
        T1,
        0o660,
    )
    .unwrap();
    s.add_file(&p("/etc/b"), b"".to_vec(), T1, 0o600).unwrap();
    s.add_symlink(&p("/etc/link"), "/etc/client.keys").unwrap();
    s.add_symlink(&p("/etc/dirlink"), "/etc/shared").unwrap();
    s.add_special(&p("/etc/fifo")).unwrap();
    s
}

#[test]
fn listings_are_sorted_and_describe_without_following() {
    let s = sample();
    let names: Vec<DirEntry> = s.list_dir(&p("/etc")).unwrap();
    let expected = [
        ("b", EntryKind::File),
        ("client.keys", EntryKind::File),
        ("dirlink", EntryKind::Symlink),
        ("fifo", EntryKind::Other),
        ("link", EntryKind::Symlink),
        ("shared", EntryKind::Dir),
    ];
    assert_eq!(
        names,
        expected.map(|(n, k)| DirEntry {
            name: n.into(),
            kind: k
        })
    );
    assert_eq!(
        s.list_dir(&p("/nope")).unwrap_err().kind,
        StorageErrorKind::NotFound
    );
    assert_eq!(
        s.list_dir(&p("/etc/b")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.list_dir(&p("/etc/dirlink")).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.stat(&p("/etc/client.keys")).unwrap(),
        Some(FileStat {
            kind: EntryKind::File,
            size: 4,
            mtime: T1,
            mode: 0o640
        })
    );
    assert_eq!(
        s.stat(&p("/etc/link")).unwrap().unwrap().kind,
        EntryKind::Symlink
    );
    assert_eq!(s.stat(&p("/etc/none")).unwrap(), None);
    assert_eq!(s.stat(&p("/none/deeper")).unwrap(), None);
    // Going through a symlinked directory is refused, never followed.
    assert_eq!(
        s.stat(&p("/etc/dirlink/default")).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.stat(&p("/etc/b/x")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
}

#[test]
fn reads_are_positional_and_refuse_non_files() {
    let s = sample();
    let mut buf = [0u8; 3];
    assert_eq!(s.read_at(&p("/etc/client.keys"), 0, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"key");
    assert_eq!(s.read_at(&p("/etc/client.keys"), 3, &mut buf).unwrap(), 1);
    assert_eq!(buf[0], b's');
    assert_eq!(s.read_at(&p("/etc/client.keys"), 4, &mut buf).unwrap(), 0);
    assert_eq!(
        s.read_at(&p("/etc/client.keys"), u64::MAX, &mut buf)
            .unwrap(),
        0
    );
    assert_eq!(s.read(&p("/etc/client.keys"), 4).unwrap(), b"keys");
    assert_eq!(
        s.read(&p("/etc/client.keys"), 3).unwrap_err().kind,
        StorageErrorKind::TooLarge
    );
    assert_eq!(
        s.read_at(&p("/etc/link"), 0, &mut buf).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.read_at(&p("/etc/shared"), 0, &mut buf).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.read_at(&p("/etc/fifo"), 0, &mut buf).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.read_at(&p("/etc/none"), 0, &mut buf).unwrap_err().kind,
        StorageErrorKind::NotFound
    );
}

#[test]
fn staged_writes_are_invisible_until_committed() {
    let mut s = sample();
    let id = s.begin_write(&p("/etc/client.keys")).unwrap();
    s.append(id, b"new ").unwrap();
    s.append(id, b"keys").unwrap();
    assert_eq!(s.read(&p("/etc/client.keys"), 100).unwrap(), b"keys");
    assert_eq!(s.staged_writes(), 1);
    s.commit_write(id, &attrs(0o640)).unwrap();
    assert_eq!(s.read(&p("/etc/client.keys"), 100).unwrap(), b"new keys");
    assert_eq!(s.staged_writes(), 0);
    assert_eq!(
        s.commit_write(id, &attrs(0o640)).unwrap_err().kind,
        StorageErrorKind::UnknownWrite
    );
    assert_eq!(
        s.append(WriteId(99), b"x").unwrap_err().kind,
        StorageErrorKind::UnknownWrite
    );

    let id = s.begin_write(&p("/etc/new")).unwrap();
    s.append(id, b"x").unwrap();
    s.abort_write(id).unwrap();
    assert_eq!(s.stat(&p("/etc/new")).unwrap(), None);
    assert_eq!(
        s.abort_write(id).unwrap_err().kind,
        StorageErrorKind::UnknownWrite
    );

    assert_eq!(
        s.begin_write(&p("/nodir/x")).unwrap_err().kind,
        StorageErrorKind::NotFound
    );
    assert_eq!(
        s.begin_write(&p("/etc/shared")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.begin_write(&p("/etc/dirlink/x")).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );

    // Committing without an mtime uses the storage's "now".
    s.set_now(Timestamp::from_secs(7));
    s.write_atomic(
        &p("/etc/t"),
        b"t",
        &FileAttrs {
            mode: 0o600,
            mtime: None,
        },
    )
    .unwrap();
    assert_eq!(
        s.stat(&p("/etc/t")).unwrap().unwrap().mtime,
        Timestamp::from_secs(7)
    );
    // A write replaces a symlink itself (rename semantics), never its target.
    s.write_atomic(&p("/etc/link"), b"L", &attrs(0o600))
        .unwrap();
    assert_eq!(s.read(&p("/etc/link"), 10).unwrap(), b"L");
    assert_eq!(s.read(&p("/etc/client.keys"), 100).unwrap(), b"new keys");
}

#[test]
fn directories_removal_and_attributes() {
    let mut s = sample();
    s.create_dir_all(&p("/queue/cluster/worker1"), 0o770)
        .unwrap();
    assert_eq!(s.stat(&p("/queue/cluster")).unwrap().unwrap().mode, 0o770);
    s.create_dir_all(&p("/queue/cluster/worker1"), 0o700)
        .unwrap();
    assert_eq!(
        s.create_dir_all(&p("/etc/b/x"), 0o770).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.create_dir_all(&p("/etc/dirlink/x"), 0o770)
            .unwrap_err()
            .kind,
        StorageErrorKind::OutsideRoot
    );

    assert!(s.remove_file(&p("/etc/link")).unwrap());
    assert!(!s.remove_file(&p("/etc/link")).unwrap());
    assert!(!s.remove_file(&p("/nodir/x")).unwrap());
    assert_eq!(
        s.remove_file(&p("/etc/shared")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.stat(&p("/etc/client.keys")).unwrap().unwrap().kind,
        EntryKind::File
    );

    assert!(s.remove_dir_all(&p("/etc/shared")).unwrap());
    assert_eq!(s.stat(&p("/etc/shared/default/merged.mg")).unwrap(), None);
    assert!(!s.remove_dir_all(&p("/etc/shared")).unwrap());
    assert_eq!(
        s.remove_dir_all(&p("/etc/b")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.remove_dir_all(&p("/etc/dirlink")).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.remove_dir_all(&InstallPath::root()).unwrap_err().kind,
        StorageErrorKind::PermissionDenied
    );

    s.set_attrs(
        &p("/etc/b"),
        &FileAttrs {
            mode: 0o644,
            mtime: Some(Timestamp::from_secs(5)),
        },
    )
    .unwrap();
    assert_eq!(
        s.stat(&p("/etc/b")).unwrap().unwrap(),
        FileStat {
            kind: EntryKind::File,
            size: 0,
            mtime: Timestamp::from_secs(5),
            mode: 0o644
        }
    );
    s.set_attrs(
        &p("/etc/b"),
        &FileAttrs {
            mode: 0o600,
            mtime: None,
        },
    )
    .unwrap();
    assert_eq!(
        s.stat(&p("/etc/b")).unwrap().unwrap().mtime,
        Timestamp::from_secs(5)
    );
    assert_eq!(
        s.set_attrs(&p("/etc/dirlink"), &attrs(0o600))
            .unwrap_err()
            .kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.set_attrs(&p("/etc/none"), &attrs(0o600))
            .unwrap_err()
            .kind,
        StorageErrorKind::NotFound
    );
}

#[test]
fn snapshot_lists_everything_with_modes_and_times() {
    let s = sample();
    let snap = s.snapshot();
    assert_eq!(snap.len(), 9);
    assert_eq!(snap[&p("/etc")], SnapshotEntry::Dir { mode: 0o750 });
    assert_eq!(
        snap[&p("/etc/client.keys")],
        SnapshotEntry::File {
            data: b"keys".to_vec(),
            mode: 0o640,
            mtime: T1
        }
    );
    assert_eq!(
        snap[&p("/etc/link")],
        SnapshotEntry::Symlink {
            target: "/etc/client.keys".into()
        }
    );
    assert_eq!(snap[&p("/etc/fifo")], SnapshotEntry::Other);
    assert_eq!(
        s.files()
            .keys()
            .map(InstallPath::as_str)
            .collect::<Vec<_>>(),
        [
            "/etc/b",
            "/etc/client.keys",
            "/etc/shared/default/merged.mg"
        ]
    );
}

type Workload = fn(&mut MemoryStorage) -> Result<(), StorageError>;

/// Runs `workload` on a copy of `base` to count its operations, then once more per crash point
/// (a crash after 0, 1, … all of them): the run fails with `Crashed` exactly when the crash
/// comes before its end, and every later operation fails too; after `recover`, nothing is staged
/// or deferred, operations work again, and `check(n, files)` judges what survived a crash after
/// `n`. Returns the operation count.
fn crash_after_each(
    base: &MemoryStorage,
    workload: Workload,
    check: impl Fn(u64, &BTreeMap<InstallPath, Vec<u8>>),
) -> u64 {
    let mut full = base.clone();
    let before = full.operations();
    workload(&mut full).unwrap();
    let ops = full.operations() - before;
    for n in 0..=ops {
        let mut s = base.clone();
        s.crash_after(n);
        let result = workload(&mut s);
        assert_eq!(result.is_ok(), n == ops, "crash after {n}");
        if n < ops {
            assert_eq!(result.unwrap_err().kind, StorageErrorKind::Crashed);
            assert!(s.is_crashed());
            // Still crashed: every operation fails, reads too.
            assert_eq!(
                s.stat(&p("/etc")).unwrap_err().kind,
                StorageErrorKind::Crashed
            );
        }
        s.recover();
        assert_eq!((s.staged_writes(), s.deferred_commits()), (0, 0));
        check(n, &s.files());
        // Recovered: operations work again.
        assert!(s.stat(&p("/etc")).unwrap().is_some());
    }
    ops
}

/// A small sync-like workload: replace a file, create one in a new directory, remove one.
fn workload(s: &mut MemoryStorage) -> Result<(), StorageError> {
    s.write_atomic(&p("/etc/client.keys"), b"NEW KEYS", &attrs(0o640))?;
    s.create_dir_all(&p("/etc/shared/group2"), 0o770)?;
    let id = s.begin_write(&p("/etc/shared/group2/merged.mg"))?;
    s.append(id, b"part one, ")?;
    s.append(id, b"part two")?;
    s.commit_write(id, &attrs(0o660))?;
    s.remove_file(&p("/etc/shared/default/merged.mg"))?;
    Ok(())
}

#[test]
fn a_crash_after_any_operation_never_tears_a_file() {
    let ops = crash_after_each(&sample(), workload, |n, files| {
        // Each file is either entirely old or entirely new.
        let keys = &files[&p("/etc/client.keys")];
        assert!(
            keys == b"keys" || keys == b"NEW KEYS",
            "torn client.keys after {n}"
        );
        match files.get(&p("/etc/shared/group2/merged.mg")) {
            None => assert!(n < 8, "merged.mg missing after {n}"),
            Some(_) if n < 8 => panic!("merged.mg visible before its commit ({n})"),
            Some(data) => assert_eq!(data, b"part one, part two"),
        }
        assert_eq!(
            files.contains_key(&p("/etc/shared/default/merged.mg")),
            n < 9
        );
    });
    // write_atomic = begin + append + commit (3), mkdir (1), begin + 2 appends + commit (4), remove (1).
    assert_eq!(ops, 9);
}

/// A package committed volatile, patched before its commit, then a durable write over a second
/// volatile file: a crash tears every volatile file not replaced since (what a real disk may
/// leave of a file renamed before its data was flushed), never a durable one.
fn volatile_workload(s: &mut MemoryStorage) -> Result<(), StorageError> {
    s.create_dir_all(&p("/queue/cluster/w1"), 0o770)?;
    for name in ["a.zip", "b.zip"] {
        let id = s.begin_write(&p(&format!("/queue/cluster/w1/{name}")))?;
        s.append(id, b"PK....package")?;
        s.write_at(id, 2, b"\x03\x04")?;
        s.commit_write_volatile(id, &attrs(0o660))?;
    }
    s.write_atomic(&p("/queue/cluster/w1/b.zip"), b"durable", &attrs(0o660))
}

#[test]
fn volatile_commits_are_seen_at_once_and_torn_by_a_crash() {
    let ops = crash_after_each(&sample(), volatile_workload, |n, files| {
        // mkdir (1); per package begin, append, patch, commit (4); write_atomic (3).
        let a = files.get(&p("/queue/cluster/w1/a.zip")).map(Vec::as_slice);
        let b = files.get(&p("/queue/cluster/w1/b.zip")).map(Vec::as_slice);
        let torn: &[u8] = b"PK\x03\x04..";
        assert_eq!(a, (n >= 5).then_some(torn), "a.zip after a crash after {n}");
        let b_expected: Option<&[u8]> = match n {
            0..9 => None,
            9..12 => Some(torn),
            _ => Some(b"durable"),
        };
        assert_eq!(b, b_expected, "b.zip after a crash after {n}");
    });
    assert_eq!(ops, 12);
    // Without a crash, both read whole at once.
    let mut s = sample();
    volatile_workload(&mut s).unwrap();
    assert_eq!(
        s.read(&p("/queue/cluster/w1/a.zip"), 100).unwrap(),
        b"PK\x03\x04..package"
    );
    // A recover without a crash tears them too: nothing made them durable.
    s.recover();
    assert_eq!(
        s.read(&p("/queue/cluster/w1/a.zip"), 100).unwrap(),
        b"PK\x03\x04.."
    );
    assert_eq!(
        s.read(&p("/queue/cluster/w1/b.zip"), 100).unwrap(),
        b"durable"
    );
}

/// Two deferred commits and their sync: a deferred commit shows and survives only once the sync
/// put it in place, and a crash inside the sync keeps the commits before it.
fn deferred_workload(s: &mut MemoryStorage) -> Result<(), StorageError> {
    for (path, data) in [
        ("/etc/client.keys", b"NEW KEYS".as_slice()),
        ("/etc/new", b"N"),
    ] {
        let id = s.begin_write(&p(path))?;
        s.append(id, data)?;
        s.commit_write_deferred(id, &attrs(0o640))?;
    }
    s.sync_deferred()
}

#[test]
fn deferred_commits_are_durable_only_once_synced() {
    let base = sample();
    let ops = crash_after_each(&base, deferred_workload, |n, files| {
        let keys: &[u8] = &files[&p("/etc/client.keys")];
        let expected: &[u8] = if n >= 7 { b"NEW KEYS" } else { b"keys" };
        assert_eq!(keys, expected, "client.keys after a crash after {n}");
        assert_eq!(
            files.contains_key(&p("/etc/new")),
            n == 8,
            "crash after {n}"
        );
    });
    // Two × (begin, append, deferred commit), then one operation per commit put in place.
    assert_eq!(ops, 8);
    // Before the sync, the deferred target still reads the old content.
    let mut s = base.clone();
    let id = s.begin_write(&p("/etc/client.keys")).unwrap();
    s.append(id, b"NEW KEYS").unwrap();
    s.commit_write_deferred(id, &attrs(0o640)).unwrap();
    assert_eq!(s.deferred_commits(), 1);
    assert_eq!(s.read(&p("/etc/client.keys"), 100).unwrap(), b"keys");
    let before = s.operations();
    s.sync_deferred().unwrap();
    assert_eq!(s.operations(), before + 1);
    assert_eq!(s.read(&p("/etc/client.keys"), 100).unwrap(), b"NEW KEYS");
    // Nothing pending: the sync is still one operation.
    let before = s.operations();
    s.sync_deferred().unwrap();
    assert_eq!(s.operations(), before + 1);
}

/// Two deferred removals, then a deferred commit and the sync: a removal shows at once but is
/// durable only once the sync made it so, and every removal is durable before any commit lands.
fn deferred_removal_workload(s: &mut MemoryStorage) -> Result<(), StorageError> {
    s.remove_file_deferred(&p("/etc/shared/default/merged.mg"))?;
    s.remove_file_deferred(&p("/etc/b"))?;
    let id = s.begin_write(&p("/etc/client.keys"))?;
    s.append(id, b"NEW KEYS")?;
    s.commit_write_deferred(id, &attrs(0o640))?;
    s.sync_deferred()
}

#[test]
fn deferred_removals_are_durable_only_once_synced() {
    let base = sample();
    let ops = crash_after_each(&base, deferred_removal_workload, |n, files| {
        // Two removals (2), begin + append + deferred commit (3), then the sync: one operation
        // per removal (6, 7), one per commit (8).
        let merged_gone = !files.contains_key(&p("/etc/shared/default/merged.mg"));
        let b_gone = !files.contains_key(&p("/etc/b"));
        let keys_new = files[&p("/etc/client.keys")] == b"NEW KEYS";
        assert_eq!(
            (merged_gone, b_gone, keys_new),
            (n >= 6, n >= 7, n >= 8),
            "crash after {n}"
        );
    });
    assert_eq!(ops, 8);
    // Gone for readers at once, before the sync.
    let mut s = base.clone();
    assert!(s.remove_file_deferred(&p("/etc/b")).unwrap());
    assert_eq!(s.stat(&p("/etc/b")).unwrap(), None);
    assert!(!s.remove_file_deferred(&p("/etc/b")).unwrap());
}

#[test]
fn list_dir_stat_agrees_with_list_then_stat() {
    let s = sample();
    let dir = p("/etc");
    let expected: Vec<_> = s
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| {
            let stat = s.stat(&dir.join(&e.name).unwrap()).unwrap();
            (e, stat)
        })
        .collect();
    let before = s.operations();
    assert_eq!(s.list_dir_stat(&dir).unwrap(), expected);
    // One operation for the whole directory.
    assert_eq!(s.operations(), before + 1);
    assert_eq!(
        s.list_dir_stat(&p("/etc/dirlink")).unwrap_err().kind,
        StorageErrorKind::OutsideRoot
    );
    assert_eq!(
        s.list_dir_stat(&p("/etc/b")).unwrap_err().kind,
        StorageErrorKind::WrongKind
    );
    assert_eq!(
        s.list_dir_stat(&p("/none")).unwrap_err().kind,
        StorageErrorKind::NotFound
    );
}

#[test]
fn an_injected_io_fault_refuses_every_operation_without_effect_and_loses_nothing() {
    let mut s = sample();
    let staged = s.begin_write(&p("/etc/new.xml")).unwrap();
    s.append(staged, b"half").unwrap();
    let before = s.snapshot();
    s.inject_fault(1, StorageFault::Errors);
    // One more operation works, then every one fails with an I/O error.
    assert!(s.stat(&p("/etc/client.keys")).unwrap().is_some());
    let e = s.stat(&p("/etc/client.keys")).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Io);
    assert!(e.message.contains("input/output error"), "{e}");
    assert_eq!(
        s.remove_file(&p("/etc/client.keys")).unwrap_err().kind,
        StorageErrorKind::Io
    );
    assert_eq!(s.snapshot(), before);
    // Cleared: the staged write is still there and commits (a fault is not a crash).
    s.clear_fault();
    assert!(!s.is_crashed());
    s.append(staged, b" and the rest").unwrap();
    s.commit_write(staged, &attrs(0o660)).unwrap();
    assert_eq!(s.files()[&p("/etc/new.xml")], b"half and the rest".to_vec());
}

#[test]
fn a_full_disk_refuses_what_needs_room_and_serves_reads_and_removals() {
    let mut s = sample();
    let staged = s.begin_write(&p("/etc/new.xml")).unwrap();
    s.inject_fault(0, StorageFault::DiskFull);
    for e in [
        s.append(staged, b"more").unwrap_err(),
        s.begin_write(&p("/etc/other")).unwrap_err(),
        s.create_dir_all(&p("/var/new"), 0o750).unwrap_err(),
    ] {
        assert_eq!(e.kind, StorageErrorKind::Io);
        assert!(e.message.contains("no space left"), "{e}");
    }
    assert!(s.stat(&p("/etc/client.keys")).unwrap().is_some());
    s.abort_write(staged).unwrap();
    assert!(s.remove_file(&p("/etc/client.keys")).unwrap());
    assert_eq!(s.staged_writes(), 0);
}

#[test]
fn storages_sharing_a_content_pool_hold_one_copy_and_stay_independent() {
    use wazuh_cluster_sync::integrity::memory::ContentPool;
    let keys = vec![b'k'; 4096];
    let mut pool = ContentPool::new();
    let mut a = MemoryStorage::new();
    let mut b = MemoryStorage::new();
    a.add_file(&p("/etc/client.keys"), keys.clone(), T1, 0o640)
        .unwrap();
    b.add_file(&p("/etc/client.keys"), keys.clone(), T1, 0o640)
        .unwrap();
    b.add_file(&p("/etc/rules/own.xml"), b"<own/>".to_vec(), T1, 0o660)
        .unwrap();
    b.add_file(&p("/queue/other"), keys.clone(), T1, 0o660)
        .unwrap();
    let etc = p("/etc");
    let keys_path = p("/etc/client.keys");
    // Equal contents in two buffers: equal, but not known so without comparing them.
    assert!(!a.shares_bytes_with(&b, &keys_path));
    a.share_contents(&etc, &mut pool);
    b.share_contents(&etc, &mut pool);
    assert!(a.shares_bytes_with(&b, &keys_path));
    assert!(!a.shares_bytes_with(&b, &p("/etc/rules/own.xml")));
    // Twice changes nothing: the shared file is recognised without comparing it again.
    b.share_contents(&etc, &mut pool);
    assert_eq!((pool.len(), pool.bytes()), (2, 4096 + 6));
    // Outside the directory nothing was pooled, and nothing observable changed.
    assert_eq!(b.files()[&p("/queue/other")], keys);
    assert_eq!(a.files()[&p("/etc/client.keys")], keys);
    assert_eq!(b.files()[&p("/etc/client.keys")], keys);
    // A write on one storage leaves the other's copy as it was.
    let id = a.begin_write(&p("/etc/client.keys")).unwrap();
    a.append(id, b"new").unwrap();
    a.commit_write(id, &attrs(0o640)).unwrap();
    assert_eq!(a.files()[&p("/etc/client.keys")], b"new");
    assert_eq!(b.files()[&p("/etc/client.keys")], keys);
    assert!(!a.shares_bytes_with(&b, &keys_path));
    // A missing directory shares nothing.
    MemoryStorage::new().share_contents(&etc, &mut pool);
    assert_eq!(pool.len(), 2);
    // Contents a storage still holds stay; one no storage holds any more goes (b's own.xml, and
    // the old client.keys once b's copy is removed too).
    pool.release_unused();
    assert_eq!((pool.len(), pool.bytes()), (2, 4096 + 6));
    assert!(b.remove_file(&p("/etc/rules/own.xml")).unwrap());
    pool.release_unused();
    assert_eq!((pool.len(), pool.bytes()), (1, 4096));
    assert!(b.remove_file(&p("/etc/client.keys")).unwrap());
    pool.release_unused();
    assert!(pool.is_empty());
    // Once forgotten, the same content is pooled again when it comes back.
    b.add_file(&p("/etc/client.keys"), keys.clone(), T1, 0o640)
        .unwrap();
    b.share_contents(&etc, &mut pool);
    assert_eq!((pool.len(), pool.bytes()), (1, 4096));
    assert_eq!(b.files()[&p("/etc/client.keys")], keys);
}

#[test]
fn storages_receiving_the_same_chunks_share_them_and_the_pool_lets_go_of_what_nobody_holds() {
    use wazuh_cluster_sync::integrity::memory::ContentPool;
    let chunk: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let package = [&chunk[..], b"end"].concat();
    let path = p("/queue/cluster/master01/package.zip");
    let mut pool = ContentPool::new();
    let mut a = MemoryStorage::new();
    let mut b = MemoryStorage::new();
    let mut ids = Vec::new();
    for s in [&mut a, &mut b] {
        s.create_dir_all(&p("/queue/cluster/master01"), 0o770)
            .unwrap();
        let id = s.begin_write(&path).unwrap();
        s.append(id, &chunk).unwrap();
        s.append(id, b"end").unwrap();
        s.share_staged(&mut pool);
        ids.push(id);
    }
    // The big chunk is held once; the short piece still grows on its own in each write.
    assert_eq!((pool.len(), pool.bytes()), (1, chunk.len() as u64));
    for (s, id) in [&mut a, &mut b].into_iter().zip(ids) {
        s.commit_write(id, &attrs(0o660)).unwrap();
        s.share_contents(&p("/queue/cluster"), &mut pool);
        assert_eq!(s.files()[&path], package);
    }
    // The committed packages are one content; the chunk, which no write holds any more, goes.
    assert_eq!(pool.release_unused(), 1);
    assert_eq!((pool.len(), pool.bytes()), (1, package.len() as u64));
    assert!(a.remove_file(&path).unwrap());
    assert_eq!(pool.release_unused(), 0, "b still holds the package");
    assert!(b.remove_file(&path).unwrap());
    assert_eq!(pool.release_unused(), 1);
    assert!(pool.is_empty());
}

#[test]
fn a_whole_read_counts_one_operation_per_piece_as_the_default_read_does() {
    use wazuh_cluster_sync::integrity::storage::READ_PIECE;
    let path = p("/queue/agent-info/a");
    for len in [0, 1, READ_PIECE, READ_PIECE + 1, 200_000] {
        let data: Vec<u8> = (0..=255u8).cycle().take(len).collect();
        let mut s = MemoryStorage::new();
        s.add_file(&path, data.clone(), T1, 0o660).unwrap();
        let before = s.operations();
        assert_eq!(s.read(&path, u64::MAX).unwrap(), data);
        // One per piece, and the one that finds the end: what the crash model expects.
        assert_eq!(s.operations() - before, len.div_ceil(READ_PIECE) as u64 + 1);
    }
    let mut s = MemoryStorage::new();
    s.add_file(&path, vec![7u8; 200_000], T1, 0o660).unwrap();
    // Refused at the piece that goes past the limit, with the default's words.
    let before = s.operations();
    let e = s.read(&path, 70_000).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::TooLarge);
    assert!(
        e.message.contains("larger than the limit of 70000 bytes"),
        "{e}"
    );
    assert_eq!(s.operations() - before, 2);
    // A crash between two pieces fails the read.
    s.crash_after(1);
    assert_eq!(
        s.read(&path, u64::MAX).unwrap_err().kind,
        StorageErrorKind::Crashed
    );
}
