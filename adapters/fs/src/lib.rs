//! The real [`Storage`]: files under one install root, every path confined to it, atomic writes
//! (temporary file, fsync, rename, fsync of the directory).
//!
//! ```text
//!   wazuh-cluster-sync (sans-IO engine) ── Storage trait ──► FsStorage (this crate) ──► kernel
//!                                          MemoryStorage (tests, simulator)
//! ```
//!
//! # Confinement
//!
//! [`FsStorage::new`] opens the install root once and keeps its directory descriptor. Every
//! operation then resolves its [`InstallPath`] *from that descriptor*, one component at a time,
//! with `openat(…, O_DIRECTORY | O_NOFOLLOW)`, and acts on the last component with the `*at`
//! system calls (`statat(AT_SYMLINK_NOFOLLOW)`, `openat(O_NOFOLLOW)`, `renameat`, `unlinkat`,
//! `mkdirat`). So:
//! * no path can name anything outside the root: `InstallPath` has no `..`, and absolute paths are
//!   always taken relative to the root descriptor;
//! * no symlink is ever traversed, wherever it sits: a symlink as a directory component fails the
//!   walk with [`StorageErrorKind::OutsideRoot`], a symlink as the final component is reported by
//!   `stat`/`list_dir` and refused by `read_at`/`set_attrs` (`OutsideRoot`); `remove_file` removes
//!   the link itself, and a write replaces the link by a regular file (`renameat` never follows);
//! * there is no check-then-use window for symlinks: the check *is* the open, so a component
//!   swapped for a symlink between two operations makes the second one fail instead of escaping.
//!
//! The walk itself is one room (`confine.rs`), which also refuses any component that is not one
//! plain name (`..`, an absolute or empty name) before a system call sees it.
//!
//! What this does not defend against: a process that can write inside the install tree *and*
//! outside it moving (renaming) a directory out of the root while an operation holds its
//! descriptor; such a process already has the daemon's privileges over both places.
//!
//! # Atomic writes
//!
//! [`Storage::begin_write`] creates `.<name>.<pid>.<n>.tmp` in the target's directory with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` (the `.tmp` suffix is in every profile's excluded extensions, so
//! integrity walks never list a staged file); [`Storage::commit_write`] sets the permission bits and
//! the times on the open file, `fsync`s it, `renameat`s it over the target and `fsync`s the
//! directory. A crash leaves the target old or new; a staged file left by a crash is invisible to
//! the walks, and [`FsStorage::remove_stale_staged`] removes it at start-up.
//!
//! [`Storage::commit_write_volatile`] (the node's packages and the files peers send, all under
//! `queue/cluster/`, which the node empties at start) sets the attributes and renames, nothing
//! more: a package is read back at once from the page cache and deleted within seconds, usually
//! before the kernel writes it back, so the disk sees only the files the apply puts in place.
//!
//! # Batches
//!
//! A durable replace costs an `fsync` of the file (data, inode, a cache flush of the device) and
//! one of its directory; one after the other, 1,000 files of 4 KiB took 6 to 7 s here
//! (`examples/apply_batch.rs`). [`Storage::commit_write_deferred`] sets the attributes and hands
//! the open staged file to the batch's [`SYNC_THREADS`] sync threads, which `fsync` the files side
//! by side as they come (at most [`SYNC_QUEUED`] waiting, each holding its descriptor until
//! synced), while the effect thread stages the next ones: concurrent `fsync`s share the device's
//! flushes and, on a journalled file system, the journal commit, and their waits overlap the
//! staging instead of following it. [`Storage::sync_deferred`] waits for the last of them (a file
//! no thread took is reopened by name from its directory descriptor, `O_NOFOLLOW`, and synced
//! then). A batch of many files skips the threads when the system has little else unwritten:
//! its files are closed, and one `syncfs` of each file system they are on makes them all
//! durable at the barrier (one device flush instead of one per file: 1,000 files of 4 KiB
//! ~17 ms instead of ~75 ms here); the apply tells the batch's size up front
//! ([`Storage::expect_deferred`]), so the choice is made at its first file ([`BatchBarrier`],
//! the rule and the figures in [`batch_barrier`]). Only then are the files renamed, in commit order, and each
//! directory `fsync`ed once.
//! No file is renamed before its data is durable, so a crash still leaves every target old or
//! new. At most [`MAX_DEFERRED`] commits wait; the next one syncs the batch first. A storage
//! dropped with deferred commits leaves their targets old and their staged files behind, for
//! [`FsStorage::remove_stale_staged`] at the next start.
//!
//! Why the creates of a batch can get slower file after file on ext4 *without a journal* (this
//! machine's `/`): its inode allocator skips every free inode of the group deleted less than
//! 60 s ago (300 s more while the inode table block is dirty), checking each one's on-disk
//! `dtime` (`find_inode_bit` → `recently_deleted` in `perf`), so creating files in a directory
//! whose group just saw thousands of deletions (a previous run's tree) costs 0.5 ms per file
//! instead of 15 µs. A journalled ext4 does not do this.
//!
//! # Ownership
//!
//! With an [`Owner`] ([`FsStorage::set_owner`]), every committed file is `fchown`ed on its open
//! staged file, before the mode is set (a `chown` clears set-id bits) and before the rename, so
//! it never appears with another owner; [`Storage::set_attrs`] applies it too. Directories are
//! created as upstream's `mkdir_with_mode` creates them (each missing component, then `chmod` to
//! the exact mode, since `mkdir` is filtered by the umask), and with the owner, which upstream's
//! directories get from the user its daemon runs as. Each is prepared under a staged name
//! (`.<name>.<pid>.<n>.tmp`: `mkdir`, `fchown`, `fchmod`, `fsync`) and renamed into place without
//! replacing anything (`RENAME_NOREPLACE`), so a directory too never appears with the wrong owner
//! or mode, even after a crash; an empty staged directory left by a crash is removed by
//! [`FsStorage::remove_stale_staged`]. A failed `chown` is a [`StorageError`] with the path
//! (`PermissionDenied` for `EPERM`: only root may give a file away) and leaves nothing behind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::Write;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{Advice, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

pub mod batch_barrier;
mod confine;
mod errno;
pub mod global_db;
pub mod owner;
mod sync_pool;

pub use batch_barrier::{
    BatchBarrier, BatchDurability, FOREIGN_BASE, FOREIGN_PER_FILE, WHOLE_FS_FROM,
};
pub use owner::Owner;

use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{
    DirEntry, EntryKind, FileAttrs, FileReader, FileStat, Storage, StorageError, StorageErrorKind,
    Timestamp, WriteId,
};

use crate::batch_barrier::{BatchMode, WholeFsPart, unwritten_bytes};
use crate::confine::{ConfinedRoot, dir_flags, open_child_dir};
use crate::errno::{error, io_error};

fn unknown_write() -> StorageError {
    StorageError::new(
        StorageErrorKind::UnknownWrite,
        InstallPath::root(),
        "unknown write handle",
    )
}

/// Suffix of staged files (excluded from every integrity walk).
pub const STAGED_SUFFIX: &str = ".tmp";

/// Most deferred commits kept waiting for [`Storage::sync_deferred`] (a name and a shared
/// directory descriptor each, no open file): bounds the memory of a batch and the work a crash
/// loses. The commit that would exceed it syncs the batch first.
pub const MAX_DEFERRED: usize = 16_384;

/// How many bytes a staged write asked to write behind ([`Storage::write_behind`]) gathers
/// before handing them to the disk: large enough that a file of a few MiB never is (its
/// commit's flush costs little), small enough that a large file's flush at its commit waits
/// for only the last few. The pages of what was handed over a step earlier are dropped from
/// the page cache (written by then), so a large file does not fill it.
pub const WRITE_BEHIND: u64 = 8 << 20;

use sync_pool::SyncPool;
pub use sync_pool::{QUEUED as SYNC_QUEUED, SYNC_THREADS};

/// True when `name` is one of our staged files: `.<name>.<pid>.<n>.tmp`, `pid` and `n` decimal.
fn is_staged_name(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(STAGED_SUFFIX))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match inner.rsplit_once('.') {
        Some((rest, n)) if digits(n) => {
            matches!(rest.rsplit_once('.'), Some((target, pid)) if !target.is_empty() && digits(pid))
        }
        _ => false,
    }
}

fn kind_of(file_type: FileType) -> EntryKind {
    match file_type {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    }
}

fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    FileStat {
        kind: kind_of(FileType::from_raw_mode(st.st_mode)),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: Timestamp {
            secs: st.st_mtime,
            nanos: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        },
        mode: st.st_mode & 0o7777,
    }
}

/// One staged write: the open temporary file and where it goes.
#[derive(Debug)]
struct Staged {
    name: StagedName,
    file: File,
    /// Bytes appended so far: the end no patch may pass.
    written: u64,
    /// Asked to write behind ([`Storage::write_behind`]): the bytes before this offset were
    /// handed to the disk already.
    written_behind: Option<u64>,
}

/// A staged file by name: its target, the target's directory and the temporary name beside it.
/// Alone, it is a deferred commit (closed with its attributes set, waiting for
/// [`Storage::sync_deferred`]).
#[derive(Debug)]
struct StagedName {
    path: InstallPath,
    dir: Rc<OwnedFd>,
    temp_name: String,
    name: String,
}

impl StagedName {
    /// What a thread needs to make its data durable (`Rc` stays on this thread).
    fn sync_job(&self) -> SyncJob<'_> {
        SyncJob {
            dir: self.dir.as_fd(),
            temp_name: &self.temp_name,
            path: &self.path,
        }
    }

    /// Moves it over its target.
    fn rename_into_place(&self) -> Result<(), StorageError> {
        rustix::fs::renameat(
            &*self.dir,
            self.temp_name.as_str(),
            &*self.dir,
            self.name.as_str(),
        )
        .map_err(|e| error(e, &self.path, "renaming the staged file into place"))
    }

    /// Removes the staged file of a commit that will not be put in place.
    fn discard(&self) {
        let _ = rustix::fs::unlinkat(&*self.dir, self.temp_name.as_str(), AtFlags::empty());
    }
}

/// One staged file to make durable, borrowed from its [`StagedName`] for a sync thread.
struct SyncJob<'a> {
    dir: BorrowedFd<'a>,
    temp_name: &'a str,
    path: &'a InstallPath,
}

impl SyncJob<'_> {
    /// Reopens the staged file by name (never through a symlink) and makes its data durable.
    fn fsync(&self) -> Result<(), StorageError> {
        let fd = rustix::fs::openat(
            self.dir,
            self.temp_name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| error(e, self.path, "reopening the staged file"))?;
        rustix::fs::fsync(&fd).map_err(|e| error(e, self.path, "fsync"))
    }
}

/// `fsync`s every file of `jobs`, [`SYNC_THREADS`] at a time; the result of each, in order.
fn fsync_all(jobs: &[SyncJob<'_>]) -> Vec<Result<(), StorageError>> {
    if jobs.len() <= 1 {
        return jobs.iter().map(SyncJob::fsync).collect();
    }
    let per_thread = jobs.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = jobs
            .chunks(per_thread)
            .map(|chunk| scope.spawn(|| chunk.iter().map(SyncJob::fsync).collect::<Vec<_>>()))
            .collect();
        let mut results = Vec::with_capacity(jobs.len());
        for (worker, chunk) in workers.into_iter().zip(jobs.chunks(per_thread)) {
            match worker.join() {
                Ok(done) => results.extend(done),
                // A worker that panicked proved nothing durable: its files fail.
                Err(_) => results.extend(chunk.iter().map(|job| {
                    Err(StorageError::new(
                        StorageErrorKind::Io,
                        job.path,
                        "the fsync thread failed",
                    ))
                })),
            }
        }
        results
    })
}

/// A file opened by [`Storage::open_reader`]: its own descriptor, read with `pread`.
struct OpenedFile {
    path: InstallPath,
    fd: OwnedFd,
    size: u64,
}

impl FileReader for OpenedFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        loop {
            match rustix::io::pread(&self.fd, &mut *buf, offset) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(error(e, &self.path, "read")),
            }
        }
    }
}

/// A sequentially read file kept open between `read_at` calls (offset > 0 continues it).
#[derive(Debug)]
struct OpenRead {
    path: InstallPath,
    fd: OwnedFd,
    /// Where the last read found the end of the file (it returned less than asked), so that the
    /// read that continues there answers 0 without a system call: hashing a small file is one
    /// `pread`, not two.
    end: Option<u64>,
}

/// The real storage, confined to one install root. See the crate docs.
#[derive(Debug)]
pub struct FsStorage {
    /// The install root and the walk that confines every path to it.
    root: ConfinedRoot,
    staged: BTreeMap<u64, Staged>,
    /// Deferred commits (attributes set, file closed or handed to `pool`), in commit order.
    deferred: Vec<StagedName>,
    /// The threads syncing the deferred batch's files as they are committed (started with the
    /// batch's first commit, ended by its sync).
    pool: Option<SyncPool>,
    /// How batches are made durable ([`BatchBarrier::Auto`] by default).
    barrier: BatchBarrier,
    /// How the deferred batch being staged will be made durable.
    batch_mode: BatchMode,
    /// Files the next batch will have ([`Storage::expect_deferred`]).
    expected: Option<usize>,
    /// How the last batch's files were made durable.
    last_durability: Option<BatchDurability>,
    /// Directories that deferred removals changed (one path inside each, for messages), to sync
    /// in [`Storage::sync_deferred`].
    removed_dirs: BTreeMap<InstallPath, (InstallPath, Rc<OwnedFd>)>,
    /// Most deferred commits before the next one syncs the batch ([`MAX_DEFERRED`] by default).
    max_deferred: usize,
    next_write: u64,
    last_read: RefCell<Option<OpenRead>>,
    /// Given to committed files and created directories (see the crate docs); `None` leaves
    /// them this process's.
    owner: Option<Owner>,
}

impl FsStorage {
    /// Opens `install_root` (which must be a directory; the operator's path is followed, symlinks
    /// included, once, here). Everything afterwards happens inside it.
    pub fn new(install_root: impl AsRef<Path>) -> Result<FsStorage, StorageError> {
        let root = ConfinedRoot::open(install_root.as_ref())?;
        Ok(FsStorage {
            root,
            staged: BTreeMap::new(),
            deferred: Vec::new(),
            pool: None,
            barrier: BatchBarrier::Auto,
            batch_mode: BatchMode::Undecided,
            expected: None,
            last_durability: None,
            removed_dirs: BTreeMap::new(),
            max_deferred: MAX_DEFERRED,
            next_write: 1,
            last_read: RefCell::new(None),
            owner: None,
        })
    }

    /// Gives every file committed and every directory created from now on to `owner` (`None`:
    /// this process's user and group, no `chown`). Files and directories already there keep
    /// theirs.
    pub fn set_owner(&mut self, owner: Option<Owner>) {
        self.owner = owner;
    }

    /// Lets at most `max` deferred commits wait (at least 1; [`MAX_DEFERRED`] by default): a
    /// smaller batch bounds what a crash loses, a larger one saves barriers.
    pub fn set_max_deferred(&mut self, max: usize) {
        self.max_deferred = max.max(1);
    }

    /// Sets how deferred batches are made durable ([`BatchBarrier::Auto`] by default; see the
    /// crate docs).
    pub fn set_batch_barrier(&mut self, barrier: BatchBarrier) {
        self.barrier = barrier;
    }

    /// How the files of the last deferred batch were made durable; `None` before any.
    pub fn last_batch_durability(&self) -> Option<BatchDurability> {
        self.last_durability
    }

    /// The mode of a batch starting now: decided from its size when it was told, and from what
    /// else is unwritten.
    fn new_batch_mode(&mut self) -> BatchMode {
        let Some(files) = self.expected.take() else {
            return BatchMode::Undecided;
        };
        let part = WholeFsPart::starting_at(0);
        let pays = match self.barrier {
            BatchBarrier::PerFile => false,
            BatchBarrier::WholeFs => files >= WHOLE_FS_FROM,
            BatchBarrier::Auto => {
                files >= WHOLE_FS_FROM
                    && unwritten_bytes().is_some_and(|unwritten| part.pays(files, unwritten))
            }
        };
        if pays {
            BatchMode::WholeFs(part)
        } else {
            BatchMode::Pool
        }
    }

    /// The owner given to what this storage writes (see [`FsStorage::set_owner`]).
    pub fn owner(&self) -> Option<Owner> {
        self.owner
    }

    /// The install root as given to [`FsStorage::new`] (for messages).
    pub fn root_path(&self) -> &Path {
        self.root.path()
    }

    /// Opens regular file `path` for reading without following a final symlink and without
    /// blocking on a FIFO.
    fn open_file(&self, path: &InstallPath, write: bool) -> Result<OwnedFd, StorageError> {
        let (dir, name) = self.root.open_parent(path)?;
        let access = if write {
            OFlags::WRONLY
        } else {
            OFlags::RDONLY
        };
        let fd = rustix::fs::openat(
            &dir,
            name,
            access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => StorageError::new(
                StorageErrorKind::OutsideRoot,
                path,
                "is a symlink; symlinks are never followed",
            ),
            e => error(e, path, "opening file"),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| error(e, path, "fstat"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(StorageError::new(
                StorageErrorKind::WrongKind,
                path,
                "not a regular file",
            ));
        }
        Ok(fd)
    }

    /// Gives open file or directory `fd` the storage's owner, if any.
    fn chown_fd(&self, fd: impl AsFd, path: &InstallPath) -> Result<(), StorageError> {
        match self.owner {
            Some(owner) => rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(owner.uid)),
                Some(rustix::fs::Gid::from_raw(owner.gid)),
            )
            .map_err(|e| error(e, path, &format!("chown to {owner}"))),
            None => Ok(()),
        }
    }

    /// Owner (first: a `chown` clears set-id bits), mode and times of open file `fd`.
    fn set_fd_attrs(
        &self,
        fd: impl AsFd,
        path: &InstallPath,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.chown_fd(&fd, path)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(attrs.mode & 0o7777))
            .map_err(|e| error(e, path, "chmod"))?;
        if let Some(t) = attrs.mtime {
            let times = Timestamps {
                last_access: timespec(t),
                last_modification: timespec(t),
            };
            rustix::fs::futimens(&fd, &times).map_err(|e| error(e, path, "setting times"))?;
        }
        Ok(())
    }

    /// Unlinks regular file (or symlink) `path`; the directory it was removed from, `None` when
    /// nothing was there.
    fn unlink_file(&mut self, path: &InstallPath) -> Result<Option<Rc<OwnedFd>>, StorageError> {
        self.forget_read();
        let (dir, name) = match self.root.open_parent(path) {
            Ok(found) => found,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&*dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(error(e, path, "stat")),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(StorageError::new(
                    StorageErrorKind::WrongKind,
                    path,
                    "is a directory",
                ));
            }
            Ok(_) => {}
        }
        match rustix::fs::unlinkat(&*dir, name, AtFlags::empty()) {
            Ok(()) => Ok(Some(dir)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(error(e, path, "remove")),
        }
    }

    /// Waits for the sync threads of `batch`; each file's `fsync` result, `None` for the files
    /// no thread synced.
    fn finish_pool(&mut self, batch: &[StagedName]) -> Vec<Option<Result<(), StorageError>>> {
        let mut synced: Vec<Option<Result<(), StorageError>>> = vec![None; batch.len()];
        for (index, result) in self.pool.take().map(SyncPool::finish).unwrap_or_default() {
            if let (Some(slot), Some(deferred)) = (synced.get_mut(index), batch.get(index)) {
                *slot = Some(result.map_err(|e| io_error(&e, &deferred.path, "fsync")));
            }
        }
        synced
    }

    fn forget_read(&self) {
        self.last_read.borrow_mut().take();
        self.root.forget_dir();
    }

    /// Removes the staged files (`.<name>.<pid>.<n>.tmp`) that a crash or an interrupted
    /// transfer left in `dir`, and in every directory below it when `recursive` (never through a
    /// symlink), and the empty staged directories an interrupted directory creation left (see
    /// the crate docs). Returns how many. A missing `dir` has none; the staged files of this
    /// storage's own open and deferred writes are kept; a name that merely looks alike
    /// (`.notes.tmp`) is not ours and stays, as does a staged-looking directory that is not empty
    /// (ours never hold anything).
    pub fn remove_stale_staged(
        &mut self,
        dir: &InstallPath,
        recursive: bool,
    ) -> Result<usize, StorageError> {
        self.forget_read();
        let fd = match self.root.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let ours: Vec<&str> = (self.staged.values().map(|s| s.name.temp_name.as_str()))
            .chain(self.deferred.iter().map(|d| d.temp_name.as_str()))
            .collect();
        let mut removed = 0;
        // An explicit stack: a hostile tree's depth must not exhaust ours.
        let mut stack = vec![(dir.clone(), fd)];
        while let Some((path, fd)) = stack.pop() {
            for (name, kind) in Self::read_names(&fd, &path)? {
                if kind == EntryKind::Dir && is_staged_name(&name) {
                    match rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::REMOVEDIR) {
                        Ok(()) => removed += 1,
                        Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => {}
                        Err(e) => return Err(error(e, &path, "removing a stale staged directory")),
                    }
                } else if kind == EntryKind::Dir && recursive {
                    // A name that cannot be an install path component holds nothing of ours.
                    if let Ok(child) = path.join(&name) {
                        let child_fd = open_child_dir(&fd, &name, &child)?;
                        stack.push((child, child_fd));
                    }
                } else if kind == EntryKind::File
                    && is_staged_name(&name)
                    && !ours.contains(&name.as_str())
                {
                    match rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::empty()) {
                        Ok(()) => removed += 1,
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(error(e, &path, "removing a stale staged file")),
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Creates a new staged name for target `name` (`.<name>.<pid>.<n>.tmp`, `name` cut to 200
    /// characters) with `create`, which must fail with `EEXIST` when the name is taken: the next
    /// number is then tried (a few times: a name left by an earlier process with our pid).
    fn create_staged<T>(
        &mut self,
        name: &str,
        mut create: impl FnMut(&str) -> Result<T, Errno>,
    ) -> Result<(String, T), Errno> {
        let pid = std::process::id();
        let truncated: String = name.chars().take(200).collect();
        let mut attempt = 0u32;
        loop {
            let n = self.next_write;
            self.next_write += 1;
            let temp_name = format!(".{truncated}.{pid}.{n}{STAGED_SUFFIX}");
            match create(&temp_name) {
                Ok(made) => return Ok((temp_name, made)),
                Err(Errno::EXIST) if attempt < 64 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates directory `name` in `parent` (for `path`) with exactly `mode` and the storage's
    /// owner, and opens it: prepared under a staged name, then renamed without replacing
    /// anything (see the crate docs). A directory that appeared there meanwhile is used as it is.
    fn make_dir(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        path: &InstallPath,
        mode: u32,
    ) -> Result<OwnedFd, StorageError> {
        let (temp, ()) = self
            .create_staged(name, |temp| {
                rustix::fs::mkdirat(parent, temp, Mode::from_raw_mode(0o700))
            })
            .map_err(|e| error(e, path, "mkdir"))?;
        let remove_temp = || {
            let _ = rustix::fs::unlinkat(parent, temp.as_str(), AtFlags::REMOVEDIR);
        };
        let prepared = (|| {
            let fd = rustix::fs::openat(parent, temp.as_str(), dir_flags(), Mode::empty())
                .map_err(|e| error(e, path, "opening the new directory"))?;
            self.chown_fd(&fd, path)?;
            // mkdir's mode is filtered by the umask; the item's mode is meant exactly.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| error(e, path, "chmod"))?;
            rustix::fs::fsync(&fd).map_err(|e| error(e, path, "fsync of the new directory"))?;
            Ok(fd)
        })();
        let fd = prepared.inspect_err(|_| remove_temp())?;
        let renamed = match rustix::fs::renameat_with(
            parent,
            temp.as_str(),
            parent,
            name,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            // A file system without RENAME_NOREPLACE: a plain rename, which replaces nothing
            // but an empty directory.
            Err(Errno::INVAL | Errno::NOSYS) => {
                rustix::fs::renameat(parent, temp.as_str(), parent, name)
            }
            other => other,
        };
        match renamed {
            Ok(()) => {
                rustix::fs::fsync(parent).map_err(|e| error(e, path, "fsync of the directory"))?;
                Ok(fd)
            }
            Err(Errno::EXIST | Errno::NOTEMPTY) => {
                remove_temp();
                open_child_dir(parent, name, path)
            }
            Err(e) => {
                remove_temp();
                Err(error(e, path, "renaming the new directory into place"))
            }
        }
    }

    /// Ends staged write `id` (the handle is consumed).
    fn take_staged(&mut self, id: WriteId) -> Result<Staged, StorageError> {
        self.staged.remove(&id.0).ok_or_else(unknown_write)
    }

    /// Staged write `id`, still open.
    fn staged_mut(&mut self, id: WriteId) -> Result<&mut Staged, StorageError> {
        self.staged.get_mut(&id.0).ok_or_else(unknown_write)
    }

    /// Ends staged write `id` and puts it in place with `attrs`; `durable`: its data before the
    /// rename and its directory after it are synced, so that a crash leaves the target old or
    /// new (otherwise anything, see [`Storage::commit_write_volatile`]).
    fn commit_staged(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
        durable: bool,
    ) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        self.forget_read();
        let result = (|| {
            self.set_fd_attrs(&staged.file, &staged.name.path, attrs)?;
            if durable {
                staged
                    .file
                    .sync_all()
                    .map_err(|e| io_error(&e, &staged.name.path, "fsync"))?;
            }
            staged.name.rename_into_place()?;
            if durable {
                rustix::fs::fsync(&*staged.name.dir)
                    .map_err(|e| error(e, &staged.name.path, "fsync of the directory"))?;
            }
            Ok(())
        })();
        if result.is_err() {
            staged.name.discard();
        }
        result
    }

    /// Removes everything inside directory `fd` (never following symlinks), then nothing else.
    fn empty_dir(fd: &OwnedFd, path: &InstallPath) -> Result<(), StorageError> {
        let names = Self::read_names(fd, path)?;
        for (name, kind) in names {
            if kind == EntryKind::Dir {
                let child = rustix::fs::openat(fd, name.as_str(), dir_flags(), Mode::empty())
                    .map_err(|e| error(e, path, "opening a directory to remove"))?;
                Self::empty_dir(&child, path)?;
                rustix::fs::unlinkat(fd, name.as_str(), AtFlags::REMOVEDIR)
                    .map_err(|e| error(e, path, "removing a directory"))?;
            } else {
                rustix::fs::unlinkat(fd, name.as_str(), AtFlags::empty())
                    .map_err(|e| error(e, path, "removing a file"))?;
            }
        }
        Ok(())
    }

    /// Entries of open directory `fd` (names that are not UTF-8 are left out: they cannot be
    /// install paths), sorted by name.
    fn read_names(
        fd: &OwnedFd,
        path: &InstallPath,
    ) -> Result<Vec<(String, EntryKind)>, StorageError> {
        let mut dir = rustix::fs::Dir::read_from(fd).map_err(|e| error(e, path, "listing"))?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| error(e, path, "listing"))?;
            let name: &CStr = entry.file_name();
            let Ok(name) = name.to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| kind_of(FileType::from_raw_mode(st.st_mode)))
                    .map_err(|e| error(e, path, "stat while listing"))?,
                other => kind_of(other),
            };
            out.push((name.to_owned(), kind));
        }
        out.sort();
        Ok(out)
    }
}

impl Storage for FsStorage {
    fn list_dir(&self, dir: &InstallPath) -> Result<Vec<DirEntry>, StorageError> {
        // Always a fresh walk (a listing must see the directory now at `dir`); its descriptor then
        // serves the entries' stats and reads.
        let fd = self.root.open_listed_dir(dir)?;
        Ok(Self::read_names(&fd, dir)?
            .into_iter()
            .map(|(name, kind)| DirEntry { name, kind })
            .collect())
    }

    fn list_dir_stat(
        &self,
        dir: &InstallPath,
    ) -> Result<Vec<(DirEntry, Option<FileStat>)>, StorageError> {
        let fd = self.root.open_listed_dir(dir)?;
        let names = Self::read_names(&fd, dir)?;
        let mut out = Vec::with_capacity(names.len());
        for (name, kind) in names {
            let stat = match rustix::fs::statat(&*fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(file_stat(&st)),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(error(e, dir, &format!("stat of {name:?}"))),
            };
            out.push((DirEntry { name, kind }, stat));
        }
        Ok(out)
    }

    fn stat(&self, path: &InstallPath) -> Result<Option<FileStat>, StorageError> {
        let st = if path.is_root() {
            rustix::fs::fstat(self.root.fd()).map_err(|e| error(e, path, "stat"))?
        } else {
            let (dir, name) = match self.root.open_parent(path) {
                Ok(found) => found,
                Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(error(e, path, "stat")),
            }
        };
        Ok(Some(file_stat(&st)))
    }

    fn read_at(
        &self,
        path: &InstallPath,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StorageError> {
        let mut cache = self.last_read.borrow_mut();
        // A read from offset 0 always reopens, so a file replaced since the last read is seen.
        let reuse = offset > 0 && cache.as_ref().is_some_and(|open| &open.path == path);
        if !reuse {
            *cache = Some(OpenRead {
                path: path.clone(),
                fd: self.open_file(path, false)?,
                end: None,
            });
        }
        let Some(open) = cache.as_mut() else {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                path,
                "read cache lost",
            ));
        };
        // The read continuing where the last one met the end (a file that grew since is seen by
        // the next read from offset 0, and the scanner notices the change by its size).
        if open.end.is_some_and(|end| offset >= end) {
            return Ok(0);
        }
        loop {
            match rustix::io::pread(&open.fd, &mut *buf, offset) {
                Ok(n) => {
                    if n < buf.len() {
                        open.end = Some(offset + n as u64);
                    }
                    return Ok(n);
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(error(e, path, "read")),
            }
        }
    }

    fn available_space(&self, dir: &InstallPath) -> Result<Option<u64>, StorageError> {
        let fd = self.root.open_dir(dir)?;
        let st = rustix::fs::fstatvfs(&fd).map_err(|e| error(e, dir, "statvfs"))?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }

    fn open_reader(&self, path: &InstallPath) -> Result<Box<dyn FileReader>, StorageError> {
        let fd = self.open_file(path, false)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| error(e, path, "fstat"))?;
        Ok(Box::new(OpenedFile {
            path: path.clone(),
            fd,
            size: u64::try_from(st.st_size).unwrap_or(0),
        }))
    }

    fn begin_write(&mut self, path: &InstallPath) -> Result<WriteId, StorageError> {
        let (dir, name) = self.root.open_parent(path)?;
        if let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        {
            return Err(StorageError::new(
                StorageErrorKind::WrongKind,
                path,
                "is a directory",
            ));
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (temp_name, fd) = self
            .create_staged(name, |temp| {
                rustix::fs::openat(&*dir, temp, flags, Mode::from_raw_mode(0o600))
            })
            .map_err(|e| error(e, path, "creating the staged file"))?;
        let id = self.next_write;
        self.next_write += 1;
        self.staged.insert(
            id,
            Staged {
                name: StagedName {
                    path: path.clone(),
                    dir,
                    temp_name,
                    name: name.to_owned(),
                },
                file: File::from(fd),
                written: 0,
                written_behind: None,
            },
        );
        Ok(WriteId(id))
    }

    fn append(&mut self, id: WriteId, data: &[u8]) -> Result<(), StorageError> {
        let staged = self.staged_mut(id)?;
        staged
            .file
            .write_all(data)
            .map_err(|e| io_error(&e, &staged.name.path, "writing the staged file"))?;
        staged.written += data.len() as u64;
        if let Some(from) = staged.written_behind
            && let Some(len) = NonZeroU64::new(staged.written - from)
            && len.get() >= WRITE_BEHIND
        {
            // POSIX_FADV_DONTNEED starts the writeback of the range's dirty pages without
            // waiting for it (and drops only pages already clean): the data goes to the disk
            // while the rest is appended. Only hints: their failure changes nothing.
            let _ = rustix::fs::fadvise(&staged.file, from, Some(len), Advice::DontNeed);
            // What was handed to the disk a step before that is written by now: its pages are
            // dropped, and the next appends reuse them instead of taking fresh ones (which cost
            // the most on a virtual machine: 0.87 s of a worker's 2.2 s CPU for a 500 MiB file
            // went to copying into fresh page-cache pages). Nothing reads the file back soon.
            // The whole prefix, not only the last step: pages still under writeback at the
            // previous call were kept then; dropped pages cost the kernel nothing to skip.
            if let Some(behind) = NonZeroU64::new(from.saturating_sub(WRITE_BEHIND)) {
                let _ = rustix::fs::fadvise(&staged.file, 0, Some(behind), Advice::DontNeed);
            }
            staged.written_behind = Some(staged.written);
        }
        Ok(())
    }

    fn write_behind(&mut self, id: WriteId) {
        if let Ok(staged) = self.staged_mut(id) {
            staged.written_behind.get_or_insert(staged.written);
        }
    }

    fn write_at(&mut self, id: WriteId, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let staged = self.staged_mut(id)?;
        let path = &staged.name.path;
        if offset.saturating_add(data.len() as u64) > staged.written {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                path,
                "patch beyond the bytes written",
            ));
        }
        staged
            .file
            .write_all_at(data, offset)
            .map_err(|e| io_error(&e, path, "patching the staged file"))
    }

    fn commit_write(&mut self, id: WriteId, attrs: &FileAttrs) -> Result<(), StorageError> {
        self.commit_staged(id, attrs, true)
    }

    /// Attributes, then the rename: no `fsync` of the file or of its directory (see
    /// [`Storage::commit_write_volatile`]).
    fn commit_write_volatile(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.commit_staged(id, attrs, false)
    }

    fn commit_write_deferred(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        if let Err(e) = self.set_fd_attrs(&staged.file, &staged.name.path, attrs) {
            staged.name.discard();
            return Err(e);
        }
        let Staged {
            name: deferred,
            file,
            written,
            ..
        } = staged;
        if self.deferred.len() >= self.max_deferred
            && let Err(e) = self.sync_deferred()
        {
            deferred.discard();
            return Err(e);
        }
        if self.deferred.is_empty() {
            self.pool = Some(SyncPool::start());
            self.batch_mode = self.new_batch_mode();
        }
        let index = self.deferred.len();
        if matches!(self.batch_mode, BatchMode::Undecided)
            && self.barrier != BatchBarrier::PerFile
            && index >= WHOLE_FS_FROM
        {
            self.batch_mode = BatchMode::WholeFs(WholeFsPart::starting_at(index));
        }
        if let BatchMode::WholeFs(part) = &mut self.batch_mode {
            // Closed now (the data stays in the page cache); the batch's barrier makes it
            // durable: a `syncfs` of its file system, or an `fsync` by name.
            let dev = match rustix::fs::fstat(&file) {
                Ok(st) => st.st_dev,
                Err(e) => {
                    deferred.discard();
                    return Err(error(e, &deferred.path, "fstat"));
                }
            };
            part.add(dev, &deferred.dir, written);
        } else if let Some(pool) = &mut self.pool
            && let Err(file) = pool.submit(index, file)
        {
            // Its fsync starts now, on the batch's sync threads, while the next files are
            // staged. Without threads it is closed and `sync_deferred` reopens it by name.
            drop(file);
        }
        self.deferred.push(deferred);
        Ok(())
    }

    fn expect_deferred(&mut self, files: usize) {
        self.expected = Some(files);
    }

    fn sync_deferred(&mut self) -> Result<(), StorageError> {
        // A size told for commits that never came is not the next batch's.
        self.expected = None;
        // 0. The removals, each directory once, before any rename (the files of dropped agents
        //    must be gone for good before the `client.keys` that drops them lands).
        for (path, dir) in std::mem::take(&mut self.removed_dirs).values() {
            if let Err(e) = rustix::fs::fsync(&**dir) {
                // Not known removed for good: nothing of the batch may land after it.
                let batch = std::mem::take(&mut self.deferred);
                self.finish_pool(&batch);
                self.batch_mode = BatchMode::Undecided;
                for deferred in batch {
                    deferred.discard();
                }
                return Err(error(e, path, "fsync of the directory"));
            }
        }
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.forget_read();
        let batch = std::mem::take(&mut self.deferred);
        let mut first_error = None;
        // 1. The data of every file, side by side, before any rename: a renamed file must never
        //    be torn. Most were synced by the pool while the batch was staged; the others (no
        //    thread took them) are reopened by name and synced now.
        //    The files waiting for the barrier: one `syncfs` per file system when it still
        //    pays (see `batch_barrier`), else by name with the others.
        let mut synced = self.finish_pool(&batch);
        let mode = std::mem::take(&mut self.batch_mode);
        let whole_fs = match mode {
            BatchMode::WholeFs(part) => Some(part),
            BatchMode::Undecided | BatchMode::Pool => None,
        }
        .filter(|part| {
            let files = batch.len() - part.from;
            self.barrier == BatchBarrier::WholeFs
                || unwritten_bytes().is_some_and(|unwritten| part.pays(files, unwritten))
        });
        let mut durability = BatchDurability::default();
        if let Some(part) = &whole_fs {
            let result = part
                .file_systems
                .values()
                .try_for_each(|dir| rustix::fs::syncfs(&**dir))
                .map_err(|e| error(e, &batch[part.from].path, "syncfs"));
            for slot in &mut synced[part.from..] {
                *slot = Some(result.clone());
            }
            durability.by_syncfs = batch.len() - part.from;
        }
        durability.fsynced = batch.len() - durability.by_syncfs;
        self.last_durability = Some(durability);
        let left: Vec<usize> = (0..batch.len()).filter(|&i| synced[i].is_none()).collect();
        let jobs: Vec<SyncJob<'_>> = left.iter().map(|&i| batch[i].sync_job()).collect();
        for (i, result) in left.iter().zip(fsync_all(&jobs)) {
            synced[*i] = Some(result);
        }
        let synced = synced.into_iter().map(|r| {
            r.unwrap_or_else(|| {
                Err(StorageError::new(
                    StorageErrorKind::Io,
                    InstallPath::root(),
                    "fsync result lost",
                ))
            })
        });
        // 2. The renames, in commit order (a target committed twice gets the later content).
        let mut dirs: BTreeMap<InstallPath, (InstallPath, Rc<OwnedFd>)> = BTreeMap::new();
        for (deferred, synced) in batch.iter().zip(synced) {
            match synced.and_then(|()| deferred.rename_into_place()) {
                Ok(()) => {
                    let parent = deferred.path.parent().unwrap_or_else(InstallPath::root);
                    dirs.entry(parent)
                        .or_insert_with(|| (deferred.path.clone(), Rc::clone(&deferred.dir)));
                }
                Err(e) => {
                    deferred.discard();
                    first_error.get_or_insert(e);
                }
            }
        }
        // 3. Each directory once: the renames are durable when this returns.
        for (path, dir) in dirs.values() {
            if let Err(e) = rustix::fs::fsync(&**dir) {
                first_error.get_or_insert(error(e, path, "fsync of the directory"));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn abort_write(&mut self, id: WriteId) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        let name = &staged.name;
        match rustix::fs::unlinkat(&*name.dir, name.temp_name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(error(e, &name.path, "removing the staged file")),
        }
    }

    fn remove_file(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        let Some(dir) = self.unlink_file(path)? else {
            return Ok(false);
        };
        rustix::fs::fsync(&*dir).map_err(|e| error(e, path, "fsync of the directory"))?;
        Ok(true)
    }

    fn remove_file_deferred(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        let Some(dir) = self.unlink_file(path)? else {
            return Ok(false);
        };
        let parent = path.parent().unwrap_or_else(InstallPath::root);
        self.removed_dirs
            .entry(parent)
            .or_insert_with(|| (path.clone(), dir));
        Ok(true)
    }

    fn create_dir_all(&mut self, path: &InstallPath, mode: u32) -> Result<(), StorageError> {
        self.forget_read();
        let mut current = self.root.open_root_dir(path)?;
        for component in path.components() {
            current = match open_child_dir(&current, component, path) {
                Ok(fd) => fd,
                Err(e) if e.kind == StorageErrorKind::NotFound => {
                    self.make_dir(&current, component, path, mode)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(())
    }

    fn remove_dir_all(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.forget_read();
        if path.is_root() {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                path,
                "refusing to remove the install root",
            ));
        }
        let (parent, name) = match self.root.open_parent(path) {
            Ok(found) => found,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let fd = match open_child_dir(&parent, name, path) {
            Ok(fd) => fd,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        Self::empty_dir(&fd, path)?;
        rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)
            .map_err(|e| error(e, path, "rmdir"))?;
        rustix::fs::fsync(&parent).map_err(|e| error(e, path, "fsync of the directory"))?;
        Ok(true)
    }

    /// One `rmdir` relative to the open parent: atomic against a writer putting a file in it
    /// (that makes it not empty), never through a symlink (`ENOTDIR`).
    fn remove_empty_dir(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.forget_read();
        if path.is_root() {
            return Ok(false);
        }
        let (parent, name) = match self.root.open_parent(path) {
            Ok(found) => found,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
            Ok(()) => {}
            Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => return Ok(false),
            Err(e) => return Err(error(e, path, "rmdir")),
        }
        rustix::fs::fsync(&parent).map_err(|e| error(e, path, "fsync of the directory"))?;
        Ok(true)
    }

    fn set_attrs(&mut self, path: &InstallPath, attrs: &FileAttrs) -> Result<(), StorageError> {
        let fd = match self.open_file(path, false) {
            Ok(fd) => fd,
            Err(e) if e.kind == StorageErrorKind::WrongKind => {
                // Directories take attributes too (the in-memory storage allows it).
                self.root.open_dir(path)?
            }
            Err(e) => return Err(e),
        };
        self.set_fd_attrs(&fd, path, attrs)
    }
}
