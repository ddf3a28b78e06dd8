//! `FsStorage` on real temporary directories: the shared contract suite, symlink escapes, and
//! permissions and times as the kernel reports them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use wazuh_cluster_fs::{
    BatchBarrier, BatchDurability, FsStorage, Owner, SYNC_QUEUED, WHOLE_FS_FROM,
};
use wazuh_cluster_sync::integrity::storage::contract::{
    deferred_failure_suite, storage_contract_suite, symlink_contract_suite,
};
use wazuh_cluster_sync::integrity::storage::{
    FileAttrs, Storage, StorageError, StorageErrorKind, Timestamp,
};
use wazuh_cluster_testkit::ScratchDir;
use wazuh_cluster_testkit::install_path as p;

#[test]
fn fs_storage_keeps_the_storage_contract() {
    let roots = std::cell::RefCell::new(Vec::new());
    storage_contract_suite(|| {
        let root = ScratchDir::new("fs-storage");
        let storage = FsStorage::new(root.path()).unwrap();
        roots.borrow_mut().push(root);
        storage
    });
}

#[test]
fn fs_storage_fails_a_deferred_commit_that_cannot_land() {
    let root = ScratchDir::new("fs-storage");
    deferred_failure_suite(|| FsStorage::new(root.path()).unwrap());
    // The same with the batches' files past the first ones made durable by one `syncfs`.
    deferred_failure_suite(|| {
        let mut storage = FsStorage::new(root.path()).unwrap();
        storage.set_batch_barrier(BatchBarrier::WholeFs);
        storage
    });
}

#[test]
fn fs_storage_never_follows_symlinks() {
    let outside = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(outside.path().join("default")).unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    let root = ScratchDir::new("fs-storage");
    let base = root.path().to_path_buf();
    symlink_contract_suite(
        || FsStorage::new(&base).unwrap(),
        |_, path, target| std::os::unix::fs::symlink(target, base.join(path.relative())).unwrap(),
        outside.path().to_str().unwrap(),
    );
    // Nothing was created or changed outside.
    let mut names: Vec<String> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["default", "secret"]);
    assert!(
        std::fs::read_dir(outside.path().join("default"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"outside"
    );
}

#[test]
fn member_written_through_a_symlinked_item_directory_is_refused() {
    // etc/shared -> /tmp/elsewhere, then a package member etc/shared/default/merged.mg.
    let elsewhere = ScratchDir::new("fs-storage");
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("etc/shared")).unwrap();
    let mut storage = FsStorage::new(root.path()).unwrap();
    let target = p("/etc/shared/default/merged.mg");
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: None,
    };
    let err = storage
        .create_dir_all(&target.parent().unwrap(), 0o770)
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::OutsideRoot);
    let err = storage
        .write_atomic(&p("/etc/shared/merged.mg"), b"evil", &attrs)
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::OutsideRoot);
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "something escaped"
    );
    // A final-component symlink is replaced by the file, never written through.
    std::fs::write(elsewhere.path().join("target"), b"outside").unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("target"),
        root.path().join("etc/client.keys"),
    )
    .unwrap();
    storage
        .write_atomic(&p("/etc/client.keys"), b"inside", &attrs)
        .unwrap();
    assert_eq!(
        std::fs::read(elsewhere.path().join("target")).unwrap(),
        b"outside"
    );
    let meta = std::fs::symlink_metadata(root.path().join("etc/client.keys")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        std::fs::read(root.path().join("etc/client.keys")).unwrap(),
        b"inside"
    );
}

#[test]
fn permissions_and_times_reach_the_disk() {
    let root = ScratchDir::new("fs-storage");
    let mut storage = FsStorage::new(root.path()).unwrap();
    storage
        .create_dir_all(&p("/etc/lists/amazon"), 0o770)
        .unwrap();
    let t = Timestamp {
        secs: 1_562_000_000,
        nanos: 123_456_789,
    };
    storage
        .write_atomic(
            &p("/etc/lists/amazon/aws-eventnames"),
            b"data",
            &FileAttrs {
                mode: 0o640,
                mtime: Some(t),
            },
        )
        .unwrap();
    let meta = std::fs::metadata(root.path().join("etc/lists/amazon/aws-eventnames")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_562_000_000, 123_456_789)
    );
    assert_eq!(
        (meta.atime(), meta.atime_nsec()),
        (1_562_000_000, 123_456_789),
        "atime = mtime, as upstream's utime"
    );
    let dir = std::fs::metadata(root.path().join("etc/lists/amazon")).unwrap();
    assert_eq!(
        dir.permissions().mode() & 0o7777,
        0o770,
        "directory mode exact despite the umask"
    );
    // Nothing staged is left in the directory.
    let names: Vec<_> = std::fs::read_dir(root.path().join("etc/lists/amazon"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["aws-eventnames"]);
}

#[test]
fn special_files_are_reported_and_never_opened_for_reading() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc/rules")).unwrap();
    let fifo = root.path().join("etc/rules/fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let storage = FsStorage::new(root.path()).unwrap();
    let entries = storage.list_dir(&p("/etc/rules")).unwrap();
    assert_eq!(
        entries[0].kind,
        wazuh_cluster_sync::integrity::storage::EntryKind::Other
    );
    let mut buf = [0u8; 4];
    // Would block forever if opened without O_NONBLOCK.
    assert_eq!(
        storage
            .read_at(&p("/etc/rules/fifo"), 0, &mut buf)
            .unwrap_err()
            .kind,
        StorageErrorKind::WrongKind
    );
}

/// Names in `dir` (relative to `root`), sorted.
fn names_in(root: &Path, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn stale_staged_files_are_cleaned() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc/shared/default")).unwrap();
    for (name, data) in [
        ("etc/.client.keys.999.1.tmp", "half"),
        ("etc/client.keys", "keys"),
        ("etc/.notes.tmp", "an operator's file"),
        ("etc/.client.keys.x.1.tmp", "not ours"),
        ("etc/shared/default/.merged.mg.12.3.tmp", "half"),
    ] {
        std::fs::write(root.path().join(name), data).unwrap();
    }
    let mut storage = FsStorage::new(root.path()).unwrap();
    // One of our own staged writes, open: never stale.
    let open = storage.begin_write(&p("/etc/client.keys")).unwrap();
    assert_eq!(storage.remove_stale_staged(&p("/etc"), false).unwrap(), 1);
    let ours = format!(".client.keys.{}.1.tmp", std::process::id());
    assert_eq!(
        names_in(root.path(), "etc"),
        [
            &ours,
            ".client.keys.x.1.tmp",
            ".notes.tmp",
            "client.keys",
            "shared"
        ]
    );
    assert_eq!(
        names_in(root.path(), "etc/shared/default"),
        [".merged.mg.12.3.tmp"]
    );
    assert_eq!(storage.remove_stale_staged(&p("/etc"), true).unwrap(), 1);
    assert!(names_in(root.path(), "etc/shared/default").is_empty());
    assert_eq!(
        storage.remove_stale_staged(&p("/var/none"), true).unwrap(),
        0
    );
    storage.abort_write(open).unwrap();
    assert_eq!(
        names_in(root.path(), "etc"),
        [
            ".client.keys.x.1.tmp",
            ".notes.tmp",
            "client.keys",
            "shared"
        ]
    );
}

/// More deferred commits than the bound: the one over it syncs the batch before it (so at most
/// that many wait), and the final sync lands the rest. 300 is more than the sync threads' queue
/// ([`SYNC_QUEUED`]): commits past it wait for room, and the batch synced in the middle ends its
/// threads and the next one starts its own.
#[test]
fn deferred_commits_are_synced_in_bounded_batches() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc/lists")).unwrap();
    let mut storage = FsStorage::new(root.path()).unwrap();
    let bound = 300;
    assert!(bound > SYNC_QUEUED);
    storage.set_max_deferred(bound);
    let total = bound + 44;
    let attrs = FileAttrs {
        mode: 0o640,
        mtime: Some(Timestamp::from_secs(1_600_000_000)),
    };
    for i in 0..total {
        let id = storage
            .begin_write(&p(&format!("/etc/lists/l{i:04}")))
            .unwrap();
        storage.append(id, format!("list {i}").as_bytes()).unwrap();
        storage.commit_write_deferred(id, &attrs).unwrap();
    }
    let names = names_in(root.path(), "etc/lists");
    let staged = names.iter().filter(|n| n.ends_with(".tmp")).count();
    assert_eq!((names.len() - staged, staged), (bound, 44));
    storage.sync_deferred().unwrap();
    let names = names_in(root.path(), "etc/lists");
    assert_eq!(names.len(), total);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("l{i:04}"));
        let path = root.path().join("etc/lists").join(name);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            format!("list {i}").as_bytes()
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o640, 1_600_000_000));
    }
}

/// Batches in two directories, with each barrier: every file lands with its content and mode,
/// no staged file is left, and the storage says how each file was made durable. Forced to
/// `syncfs`, a batch of unknown size gives its first [`WHOLE_FS_FROM`] files an `fsync` each and
/// the rest wait for the `syncfs`; one whose size was told up front (as the apply does) waits
/// whole; a batch smaller than [`WHOLE_FS_FROM`] never takes the `syncfs`.
#[test]
fn large_batches_land_whole_with_either_barrier() {
    for barrier in [BatchBarrier::WholeFs, BatchBarrier::PerFile] {
        let root = ScratchDir::new("fs-storage");
        for dir in ["etc/lists", "etc/rules"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let mut storage = FsStorage::new(root.path()).unwrap();
        storage.set_batch_barrier(barrier);
        let mut written = 0;
        let mut batch = |storage: &mut FsStorage, files: usize, told: bool| {
            if told {
                storage.expect_deferred(files);
            }
            for _ in 0..files {
                let dir = if written % 2 == 0 { "lists" } else { "rules" };
                let path = format!("/etc/{dir}/l{written:04}");
                let id = storage.begin_write(&p(&path)).unwrap();
                storage.append(id, path.as_bytes()).unwrap();
                storage.commit_write_deferred(id, &attrs(0o640)).unwrap();
                written += 1;
            }
            storage.sync_deferred().unwrap();
            storage.last_batch_durability().unwrap()
        };
        let whole = barrier == BatchBarrier::WholeFs;
        let durability = |fsynced: usize, by_syncfs: usize| BatchDurability { fsynced, by_syncfs };
        let small = WHOLE_FS_FROM - 1;
        assert_eq!(batch(&mut storage, small, true), durability(small, 0));
        assert_eq!(batch(&mut storage, small, false), durability(small, 0));
        let large = 3 * WHOLE_FS_FROM;
        assert_eq!(
            batch(&mut storage, large, false),
            if whole {
                durability(WHOLE_FS_FROM, large - WHOLE_FS_FROM)
            } else {
                durability(large, 0)
            },
            "{barrier:?}, size unknown"
        );
        assert_eq!(
            batch(&mut storage, large, true),
            if whole {
                durability(0, large)
            } else {
                durability(large, 0)
            },
            "{barrier:?}, size told"
        );
        let lists = names_in(root.path(), "etc/lists");
        let rules = names_in(root.path(), "etc/rules");
        assert_eq!(lists.len() + rules.len(), written);
        for (dir, name) in lists
            .iter()
            .map(|n| ("lists", n))
            .chain(rules.iter().map(|n| ("rules", n)))
        {
            assert!(!name.ends_with(".tmp"), "{name} left staged");
            let path = format!("/etc/{dir}/{name}");
            let file = root.path().join(&path[1..]);
            assert_eq!(std::fs::read(&file).unwrap(), path.as_bytes());
            assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o640);
        }
    }
}

/// A size told for commits that never came (an apply with nothing to write) is forgotten at the
/// sync: the next batch, of one file, gets its own `fsync`.
#[test]
fn a_size_told_for_nothing_is_not_the_next_batchs() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let mut storage = FsStorage::new(root.path()).unwrap();
    storage.set_batch_barrier(BatchBarrier::WholeFs);
    storage.expect_deferred(1_000);
    storage.sync_deferred().unwrap();
    let id = storage.begin_write(&p("/etc/one")).unwrap();
    storage.append(id, b"1").unwrap();
    storage.commit_write_deferred(id, &attrs(0o640)).unwrap();
    storage.sync_deferred().unwrap();
    assert_eq!(
        storage.last_batch_durability(),
        Some(BatchDurability {
            fsynced: 1,
            by_syncfs: 0
        })
    );
}

/// While a deferred removal waits for its directory sync, no deferred commit is put in place,
/// however many of them the sync threads have made durable meanwhile: the removal must be durable
/// before any of them lands (the files of dropped agents before the `client.keys` dropping
/// them). The sync then lands both.
#[test]
fn no_deferred_commit_lands_before_a_pending_removal_is_durable() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc/lists")).unwrap();
    std::fs::create_dir_all(root.path().join("queue/agent-info")).unwrap();
    std::fs::write(root.path().join("queue/agent-info/gone-any"), b"x").unwrap();
    let mut storage = FsStorage::new(root.path()).unwrap();
    assert!(
        storage
            .remove_file_deferred(&p("/queue/agent-info/gone-any"))
            .unwrap()
    );
    // More than the threads' queue, so that results come back while the batch is staged.
    let total = 2 * SYNC_QUEUED;
    for i in 0..total {
        let id = storage
            .begin_write(&p(&format!("/etc/lists/l{i:04}")))
            .unwrap();
        storage.append(id, format!("list {i}").as_bytes()).unwrap();
        storage.commit_write_deferred(id, &attrs(0o640)).unwrap();
    }
    let names = names_in(root.path(), "etc/lists");
    assert_eq!(names.len(), total);
    assert!(names.iter().all(|n| n.ends_with(".tmp")), "{names:?}");
    storage.sync_deferred().unwrap();
    let names = names_in(root.path(), "etc/lists");
    assert_eq!(names.len(), total);
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(names_in(root.path(), "queue/agent-info").is_empty());
}

/// The read that continues where the last one met the end of the file answers 0 from what that
/// read saw (no second `pread` per hashed file); a read from offset 0 sees the file as it is now.
#[test]
fn a_read_at_the_end_seen_answers_without_rereading() {
    use std::io::Write;
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let file = root.path().join("etc/client.keys");
    std::fs::write(&file, b"12345").unwrap();
    let storage = FsStorage::new(root.path()).unwrap();
    let path = p("/etc/client.keys");
    let mut buf = [0u8; 64];
    assert_eq!(storage.read_at(&path, 0, &mut buf).unwrap(), 5);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"678")
        .unwrap();
    assert_eq!(storage.read_at(&path, 5, &mut buf).unwrap(), 0);
    assert_eq!(storage.read_at(&path, 0, &mut buf).unwrap(), 8);
    assert_eq!(&buf[..8], b"12345678");
    // A full buffer is not an end: the next read asks the file.
    let mut small = [0u8; 4];
    assert_eq!(storage.read_at(&path, 0, &mut small).unwrap(), 4);
    assert_eq!(storage.read_at(&path, 4, &mut small).unwrap(), 4);
    assert_eq!(storage.read_at(&path, 8, &mut small).unwrap(), 0);
}

/// Owner, mode and the absence of staged names, as the kernel reports them.
fn owner_mode(root: &Path, path: &str) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(root.join(path)).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn attrs(mode: u32) -> FileAttrs {
    FileAttrs { mode, mtime: None }
}

/// As root (this machine), files committed every way and directories created get the owner
/// (ids that exist nowhere: what `--owner 54321:54322` asks) with their exact mode, while what
/// was already there keeps its owner. Not as root (CI), giving a file away is refused with the
/// typed error and nothing is left behind, neither the target nor a staged name.
#[test]
fn written_files_and_created_directories_get_the_owner() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("queue")).unwrap();
    std::fs::write(root.path().join("queue/old"), "old").unwrap();
    let euid = wazuh_cluster_fs::owner::effective_uid();
    let mut storage = FsStorage::new(root.path()).unwrap();
    if euid == 0 {
        let owner = Owner {
            uid: 54321,
            gid: 54322,
        };
        storage.set_owner(Some(owner));
        assert_eq!(storage.owner(), Some(owner));
        storage.create_dir_all(&p("/queue/a/b"), 0o750).unwrap();
        storage
            .write_atomic(&p("/queue/a/b/plain"), b"plain", &attrs(0o640))
            .unwrap();
        let id = storage.begin_write(&p("/queue/a/deferred")).unwrap();
        storage.append(id, b"deferred").unwrap();
        storage.commit_write_deferred(id, &attrs(0o660)).unwrap();
        storage.sync_deferred().unwrap();
        storage.set_attrs(&p("/queue/old"), &attrs(0o600)).unwrap();
        for (path, mode) in [
            ("queue/a", 0o750),
            ("queue/a/b", 0o750),
            ("queue/a/b/plain", 0o640),
            ("queue/a/deferred", 0o660),
            ("queue/old", 0o600),
        ] {
            assert_eq!(
                owner_mode(root.path(), path),
                (54321, 54322, mode),
                "{path}"
            );
        }
        // An existing directory is not given away.
        assert_eq!(owner_mode(root.path(), "queue").0, 0);
        assert_eq!(names_in(root.path(), "queue"), ["a", "old"]);
        assert_eq!(names_in(root.path(), "queue/a"), ["b", "deferred"]);
        assert_eq!(names_in(root.path(), "queue/a/b"), ["plain"]);
    } else {
        let owner = Owner { uid: 0, gid: 0 };
        storage.set_owner(Some(owner));
        let refused = |path: &str| StorageError {
            kind: StorageErrorKind::PermissionDenied,
            path: path.to_owned(),
            message: "chown to 0:0: Operation not permitted (os error 1)".to_owned(),
        };
        assert_eq!(
            storage.write_atomic(&p("/queue/plain"), b"plain", &attrs(0o640)),
            Err(refused("/queue/plain"))
        );
        let id = storage.begin_write(&p("/queue/deferred")).unwrap();
        assert_eq!(
            storage.commit_write_deferred(id, &attrs(0o660)),
            Err(refused("/queue/deferred"))
        );
        assert_eq!(
            storage.create_dir_all(&p("/queue/a/b"), 0o750),
            Err(refused("/queue/a/b"))
        );
        assert_eq!(
            storage.set_attrs(&p("/queue/old"), &attrs(0o600)),
            Err(refused("/queue/old"))
        );
        assert_eq!(names_in(root.path(), "queue"), ["old"]);
    }
}

/// Without an owner nothing is given away: files and directories belong to this process.
#[test]
fn without_an_owner_what_is_written_keeps_the_process_owner() {
    let root = ScratchDir::new("fs-storage");
    let mut storage = FsStorage::new(root.path()).unwrap();
    assert_eq!(storage.owner(), None);
    storage.create_dir_all(&p("/etc/shared"), 0o770).unwrap();
    storage
        .write_atomic(&p("/etc/shared/f"), b"f", &attrs(0o660))
        .unwrap();
    let euid = wazuh_cluster_fs::owner::effective_uid();
    assert_eq!(owner_mode(root.path(), "etc").0, euid);
    assert_eq!(
        owner_mode(root.path(), "etc/shared"),
        (euid, std::fs::metadata(root.path()).unwrap().gid(), 0o770)
    );
    assert_eq!(owner_mode(root.path(), "etc/shared/f").0, euid);
    assert_eq!(names_in(root.path(), "etc"), ["shared"]);
}

/// A directory creation cut by a crash leaves an empty staged directory: removed at start-up,
/// unlike a look-alike or one that holds something (not ours).
#[test]
fn stale_staged_directories_are_cleaned() {
    let root = ScratchDir::new("fs-storage");
    for dir in [
        "etc/.shared.77.5.tmp",
        "etc/.kept.77.6.tmp",
        "etc/.notes.tmp",
        "etc/rules/.local.77.7.tmp",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("etc/.kept.77.6.tmp/file"), "x").unwrap();
    let mut storage = FsStorage::new(root.path()).unwrap();
    assert_eq!(storage.remove_stale_staged(&p("/etc"), false).unwrap(), 1);
    assert_eq!(
        names_in(root.path(), "etc"),
        [".kept.77.6.tmp", ".notes.tmp", "rules"]
    );
    assert_eq!(storage.remove_stale_staged(&p("/etc"), true).unwrap(), 1);
    assert!(names_in(root.path(), "etc/rules").is_empty());
}

/// The free space a package is checked against: the file system's, for any directory inside the
/// root; a missing directory is NotFound.
#[test]
fn available_space_is_the_file_systems() {
    let root = ScratchDir::new("fs-storage");
    std::fs::create_dir_all(root.path().join("queue/cluster")).unwrap();
    let storage = FsStorage::new(root.path()).unwrap();
    let free = storage
        .available_space(&p("/queue/cluster"))
        .unwrap()
        .expect("a real file system tells its free space");
    assert!(free > 0);
    assert_eq!(
        storage.available_space(&p("/queue/none")).unwrap_err().kind,
        StorageErrorKind::NotFound
    );
}
