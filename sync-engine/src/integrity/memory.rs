//! An in-memory [`Storage`] with a crash model, for tests, fuzzing and the simulator.
//!
//! It implements the whole contract of [`super::storage`]: listings sorted by name, `stat` with
//! lstat semantics, symlinks reported and never followed (an operation that would traverse one
//! fails with `OutsideRoot`), staged writes that are invisible until committed, permission bits
//! and mtimes.
//!
//! Crash model. Every trait call is one *operation* and is counted ([`MemoryStorage::operations`]).
//! An operation that returns `Ok` is durable: a committed write is atomic (old or new content,
//! never torn) and directory changes happen at once — this models the fs adapter, which fsyncs the
//! file and its directory before returning. What is *not* durable is a staged write, and a
//! deferred commit ([`Storage::commit_write_deferred`]) until [`Storage::sync_deferred`] puts it
//! in place: the fs adapter renames a deferred file only after the batch's data is flushed, and
//! the rename is durable only once the directory is synced, so until then the model shows the
//! old content and a crash loses the commit. `sync_deferred` is one operation per deferred commit
//! it puts in place (one when there is none), in commit order, so a crash can also land in the
//! middle of a batch: the commits put in place before it stay, the others are lost. A deferred
//! removal ([`Storage::remove_file_deferred`]) is gone at once but comes back on
//! [`MemoryStorage::recover`] until `sync_deferred` has made it durable (one operation per
//! removal, before the commits). A volatile commit ([`Storage::commit_write_volatile`]) is in
//! place at once and is torn by `recover` (half its bytes kept) unless replaced since: what a
//! scratch file may look like after a real crash, so a test sees it if anything trusted one.
//! [`MemoryStorage::crash_after`]`(n)` lets `n` more operations succeed and makes every later one
//! fail with [`StorageErrorKind::Crashed`] without effect; [`MemoryStorage::recover`] then returns
//! to the durable state, dropping every staged write and every deferred commit. A test can
//! therefore run a workload once to count its operations, then re-run it with a crash after each
//! single operation and check that no file is torn or lost.
//!
//! Transient faults. [`MemoryStorage::inject_fault`]`(n, fault)` lets `n` more operations succeed
//! and then fails, without effect and with [`StorageErrorKind::Io`], every later operation
//! ([`StorageFault::Errors`]) or only the ones that need room ([`StorageFault::DiskFull`]:
//! `begin_write`, `append`, `create_dir_all`), until [`MemoryStorage::clear_fault`]. Unlike a
//! crash, nothing is lost: staged writes and deferred commits stay, as on a real disk that
//! refuses one call and serves the next. The simulator arms one around an effect to see the node
//! handle a storage error in the middle of its work.
//!
//! Set-up helpers ([`MemoryStorage::add_file`], [`MemoryStorage::add_symlink`],
//! [`MemoryStorage::add_special`], [`MemoryStorage::from_files`]) are not operations: they neither
//! count nor crash. The storage has no clock: writes committed without an explicit mtime get the
//! time set with [`MemoryStorage::set_now`].

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::path::InstallPath;
use super::storage::{
    DirEntry, EntryKind, FileAttrs, FileReader, FileStat, READ_PIECE, Storage, StorageError,
    StorageErrorKind, Timestamp, WriteId, too_large,
};

/// Mode given to directories created by the set-up helpers.
pub const DEFAULT_DIR_MODE: u32 = 0o750;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File {
        /// Shared, not copied: a clone of the storage, a reader opened on the file and every
        /// storage a [`ContentPool`] gave the same content to hold one copy of the bytes.
        data: Bytes,
        mode: u32,
        mtime: Timestamp,
        /// Put in place by [`Storage::commit_write_volatile`] and not replaced since: torn by
        /// [`MemoryStorage::recover`].
        volatile: bool,
    },
    Dir {
        entries: BTreeMap<String, Node>,
        mode: u32,
        mtime: Timestamp,
    },
    Symlink {
        target: String,
        mtime: Timestamp,
    },
    Other {
        mtime: Timestamp,
    },
}

impl Node {
    fn empty_dir(mode: u32, mtime: Timestamp) -> Node {
        Node::Dir {
            entries: BTreeMap::new(),
            mode,
            mtime,
        }
    }

    fn kind(&self) -> EntryKind {
        match self {
            Node::File { .. } => EntryKind::File,
            Node::Dir { .. } => EntryKind::Dir,
            Node::Symlink { .. } => EntryKind::Symlink,
            Node::Other { .. } => EntryKind::Other,
        }
    }

    fn stat(&self) -> FileStat {
        match self {
            Node::File {
                data, mode, mtime, ..
            } => FileStat {
                kind: EntryKind::File,
                size: data.len() as u64,
                mtime: *mtime,
                mode: *mode,
            },
            Node::Dir { mode, mtime, .. } => FileStat {
                kind: EntryKind::Dir,
                size: 0,
                mtime: *mtime,
                mode: *mode,
            },
            Node::Symlink { target, mtime } => FileStat {
                kind: EntryKind::Symlink,
                size: target.len() as u64,
                mtime: *mtime,
                mode: 0o777,
            },
            Node::Other { mtime } => FileStat {
                kind: EntryKind::Other,
                size: 0,
                mtime: *mtime,
                mode: 0o600,
            },
        }
    }
}

/// A regular file as [`MemoryStorage::file_views`] shows it: its bytes shared with the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    /// Content (a reference to the storage's copy).
    pub data: Bytes,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: Timestamp,
}

/// One entry of a [`MemoryStorage::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEntry {
    /// A regular file.
    File {
        /// Content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime: Timestamp,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points (never followed).
        target: String,
    },
    /// A socket, FIFO or device.
    Other,
}

/// Appends at least this long are kept as a segment of their own; shorter ones gather in the
/// tail until it is this long.
const SEGMENT: usize = 64 * 1024;

/// A staged write's content: sealed segments, then a tail still growing. Why segments: the
/// simulator shares equal segments between storages ([`MemoryStorage::share_staged`]), so a
/// hundred workers receiving the same package chunk by chunk hold one copy of each chunk, not a
/// hundred growing copies of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Staged {
    path: InstallPath,
    segments: Vec<Bytes>,
    tail: Vec<u8>,
}

impl Staged {
    fn new(path: InstallPath) -> Staged {
        Staged {
            path,
            segments: Vec::new(),
            tail: Vec::new(),
        }
    }

    fn append(&mut self, data: &[u8]) {
        if data.len() >= SEGMENT {
            self.seal();
            self.segments.push(Bytes::copy_from_slice(data));
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() >= SEGMENT {
                self.seal();
            }
        }
    }

    fn len(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    /// Overwrites the bytes at `offset` with `data` (a sealed segment it touches is copied:
    /// other storages may share it); false, and nothing changed, when they were not all
    /// written yet.
    fn patch(&mut self, offset: usize, data: &[u8]) -> bool {
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > self.len())
        {
            return false;
        }
        let (mut at, mut rest) = (offset, data);
        let mut start = 0;
        for segment in &mut self.segments {
            let end = start + segment.len();
            if !rest.is_empty() && at < end {
                let n = (end - at).min(rest.len());
                let mut copy = segment.to_vec();
                copy[at - start..at - start + n].copy_from_slice(&rest[..n]);
                *segment = Bytes::from(copy);
                (at, rest) = (at + n, &rest[n..]);
            }
            start = end;
        }
        if !rest.is_empty() {
            self.tail[at - start..at - start + rest.len()].copy_from_slice(rest);
        }
        true
    }

    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.segments.push(Bytes::from(tail));
        }
    }

    /// The whole content, in one buffer of exactly its length.
    fn into_bytes(mut self) -> Bytes {
        self.seal();
        if self.segments.len() == 1 {
            return self.segments.pop().unwrap_or_default();
        }
        let len = self.segments.iter().map(Bytes::len).sum();
        let mut data = Vec::with_capacity(len);
        for segment in &self.segments {
            data.extend_from_slice(segment);
        }
        Bytes::from(data)
    }
}

/// A file opened by [`Storage::open_reader`]: its content as it was then.
struct OpenedFile(Bytes);

impl FileReader for OpenedFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        Ok(copy_at(&self.0, offset, buf))
    }
}

/// Copies what `data` holds from `offset` into `buf`; how many bytes.
fn copy_at(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// What a crash does to the files put in place by [`Storage::commit_write_volatile`] and not
/// replaced since: each keeps only the first half of its bytes, neither old nor new, the worst a
/// real file system may leave of a file renamed before its data was flushed.
fn tear_volatile(node: &mut Node) {
    match node {
        Node::File { data, volatile, .. } if *volatile => {
            data.truncate(data.len() / 2);
            *volatile = false;
        }
        Node::Dir { entries, .. } => entries.values_mut().for_each(tear_volatile),
        Node::File { .. } | Node::Symlink { .. } | Node::Other { .. } => {}
    }
}

/// The in-memory storage. See the module docs.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    root: Node,
    staged: BTreeMap<u64, Staged>,
    /// Deferred commits not yet put in place, in commit order.
    deferred: Vec<(Staged, FileAttrs)>,
    /// Files removed by deferred removals not yet made durable, in removal order: a crash brings
    /// them back.
    removed_unsynced: Vec<(InstallPath, Node)>,
    next_write: u64,
    now: Timestamp,
    operations: Cell<u64>,
    crash_at: Option<u64>,
    crashed: Cell<bool>,
    /// The armed transient fault: from which operation count on, and which.
    fault: Option<(u64, StorageFault)>,
    /// What [`Storage::available_space`] answers (`None`: cannot tell).
    available: Option<u64>,
}

/// Contents shared between storages ([`MemoryStorage::share_contents`],
/// [`MemoryStorage::share_staged`]): one copy of each.
///
/// It keeps every content it was given until [`ContentPool::release_unused`] drops the ones no
/// storage holds any more: without it, it is meant for the files that are the same on many nodes
/// for a whole run (the master's integrity files); with it, for ones that come and go (packages
/// and the chunks of packages being received).
#[derive(Debug, Default)]
pub struct ContentPool {
    /// Each content once, ordered by its bytes.
    contents: BTreeSet<Bytes>,
    /// Where each pooled content lives (address, length): a file already sharing one is
    /// recognised without comparing its bytes.
    shared: BTreeSet<(usize, usize)>,
}

impl ContentPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct contents held.
    pub fn len(&self) -> usize {
        self.contents.len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
    }

    /// Bytes held (each distinct content once).
    pub fn bytes(&self) -> u64 {
        self.contents.iter().map(|c| c.len() as u64).sum()
    }

    /// Drops the contents only the pool still holds (every storage that shared one has let it
    /// go); returns how many.
    pub fn release_unused(&mut self) -> usize {
        let before = self.contents.len();
        let shared = &mut self.shared;
        self.contents.retain(|c| {
            let unused = c.is_unique();
            if unused {
                shared.remove(&(c.as_ptr() as usize, c.len()));
            }
            !unused
        });
        before - self.contents.len()
    }

    /// Points `data` at the pool's copy of its content, adding it when new.
    fn share(&mut self, data: &mut Bytes) {
        if self.shared.contains(&(data.as_ptr() as usize, data.len())) {
            return;
        }
        match self.contents.get(&*data) {
            Some(pooled) => *data = pooled.clone(),
            None => {
                self.shared.insert((data.as_ptr() as usize, data.len()));
                self.contents.insert(data.clone());
            }
        }
    }
}

/// A transient fault of [`MemoryStorage::inject_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// Every operation fails (an I/O error).
    Errors,
    /// Operations that need room fail (no space left on device); reads and removals work.
    DiskFull,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// What a path resolution found.
enum Lookup<'a> {
    Found(&'a Node),
    Missing,
}

fn err(kind: StorageErrorKind, path: &InstallPath, message: &str) -> StorageError {
    StorageError::new(kind, path, message)
}

impl MemoryStorage {
    /// An empty install root (mode [`DEFAULT_DIR_MODE`]).
    pub fn new() -> Self {
        MemoryStorage {
            root: Node::empty_dir(DEFAULT_DIR_MODE, Timestamp::default()),
            staged: BTreeMap::new(),
            deferred: Vec::new(),
            removed_unsynced: Vec::new(),
            next_write: 1,
            now: Timestamp::default(),
            operations: Cell::new(0),
            crash_at: None,
            crashed: Cell::new(false),
            fault: None,
            available: None,
        }
    }

    /// A storage holding `files` (path, content, mtime, mode), parents created with
    /// [`DEFAULT_DIR_MODE`].
    pub fn from_files<I>(files: I) -> Result<Self, StorageError>
    where
        I: IntoIterator<Item = (InstallPath, Vec<u8>, Timestamp, u32)>,
    {
        let mut storage = Self::new();
        for (path, data, mtime, mode) in files {
            storage.add_file(&path, data, mtime, mode)?;
        }
        Ok(storage)
    }

    /// Set-up: creates or replaces a regular file (and its missing parents). Not an operation.
    pub fn add_file(
        &mut self,
        path: &InstallPath,
        data: impl Into<Bytes>,
        mtime: Timestamp,
        mode: u32,
    ) -> Result<(), StorageError> {
        let data = data.into();
        self.insert_node(
            path,
            Node::File {
                data,
                mode,
                mtime,
                volatile: false,
            },
        )
    }

    /// Makes the regular files below `dir` share their bytes with every other storage `pool`
    /// served: a content `pool` holds already replaces this storage's copy, a new one is added
    /// to it. Not an operation (nothing observable changes, only where the bytes live). Why: a
    /// simulation of a thousand workers holds a thousand equal copies of the master's files, and
    /// this keeps one. A missing `dir` shares nothing.
    pub fn share_contents(&mut self, dir: &InstallPath, pool: &mut ContentPool) {
        let mut node = &mut self.root;
        for component in dir.components() {
            let Node::Dir { entries, .. } = node else {
                return;
            };
            let Some(child) = entries.get_mut(component) else {
                return;
            };
            node = child;
        }
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            match node {
                Node::File { data, .. } => pool.share(data),
                Node::Dir { entries, .. } => stack.extend(entries.values_mut()),
                Node::Symlink { .. } | Node::Other { .. } => {}
            }
        }
    }

    /// True when `path` is a regular file in both storages backed by the very same bytes (a
    /// content a [`ContentPool`] gave both, or a clone's): equal without comparing them. False
    /// says nothing. Not an operation.
    pub fn shares_bytes_with(&self, other: &MemoryStorage, path: &InstallPath) -> bool {
        match (self.lookup(path), other.lookup(path)) {
            (
                Ok(Lookup::Found(Node::File { data: a, .. })),
                Ok(Lookup::Found(Node::File { data: b, .. })),
            ) => a.as_ptr() == b.as_ptr() && a.len() == b.len(),
            _ => false,
        }
    }

    /// Makes the sealed segments of the staged writes share their bytes with every other storage
    /// `pool` served, as [`MemoryStorage::share_contents`] does for files. Not an operation.
    pub fn share_staged(&mut self, pool: &mut ContentPool) {
        for staged in self.staged.values_mut() {
            for segment in &mut staged.segments {
                pool.share(segment);
            }
        }
    }

    /// Set-up: creates a symbolic link at `path` pointing to `target` (never followed).
    pub fn add_symlink(&mut self, path: &InstallPath, target: &str) -> Result<(), StorageError> {
        let mtime = self.now;
        self.insert_node(
            path,
            Node::Symlink {
                target: target.to_owned(),
                mtime,
            },
        )
    }

    /// Set-up: creates a special file (FIFO, socket or device) at `path`.
    pub fn add_special(&mut self, path: &InstallPath) -> Result<(), StorageError> {
        let mtime = self.now;
        self.insert_node(path, Node::Other { mtime })
    }

    fn insert_node(&mut self, path: &InstallPath, node: Node) -> Result<(), StorageError> {
        let parent = path
            .parent()
            .ok_or_else(|| err(StorageErrorKind::WrongKind, path, "the root is a directory"))?;
        let name = path.file_name().unwrap_or_default().to_owned();
        let now = self.now;
        let dir = Self::dir_mut_creating(&mut self.root, &parent, DEFAULT_DIR_MODE, now)?;
        dir.insert(name, node);
        Ok(())
    }

    /// Sets the time given to writes committed without an explicit mtime, and to set-up entries.
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// Number of operations performed so far (every trait call counts, failed ones included).
    pub fn operations(&self) -> u64 {
        self.operations.get()
    }

    /// Lets `n` more operations succeed; every later one fails with `Crashed` until
    /// [`MemoryStorage::recover`].
    pub fn crash_after(&mut self, n: u64) {
        self.crash_at = Some(self.operations.get().saturating_add(n));
    }

    /// Lets `n` more operations succeed; later ones fail as `fault` says until
    /// [`MemoryStorage::clear_fault`] (see the module docs).
    pub fn inject_fault(&mut self, n: u64, fault: StorageFault) {
        self.fault = Some((self.operations.get().saturating_add(n), fault));
    }

    /// Disarms the fault of [`MemoryStorage::inject_fault`]; nothing else changes.
    pub fn clear_fault(&mut self) {
        self.fault = None;
    }

    /// True once an operation has failed because of [`MemoryStorage::crash_after`].
    pub fn is_crashed(&self) -> bool {
        self.crashed.get()
    }

    /// Restart after a crash: staged writes and deferred commits are lost, volatile commits
    /// torn, the durable state stays, operations work again.
    pub fn recover(&mut self) {
        self.staged.clear();
        self.deferred.clear();
        // Latest first, so a path removed twice gets its oldest durable content back; a name
        // taken since (only by a durable write) keeps what is there.
        for (path, node) in std::mem::take(&mut self.removed_unsynced).into_iter().rev() {
            if let Ok((parent, name)) = Self::parent_and_name(&path)
                && let Ok(entries) = Self::dir_mut(&mut self.root, &parent)
            {
                entries.entry(name.to_owned()).or_insert(node);
            }
        }
        tear_volatile(&mut self.root);
        self.crash_at = None;
        self.crashed.set(false);
    }

    /// Number of staged (begun, not yet committed or aborted) writes.
    pub fn staged_writes(&self) -> usize {
        self.staged.len()
    }

    /// Sets what [`Storage::available_space`] answers, for every directory (a full disk in a
    /// test); `None`, the default, cannot tell.
    pub fn set_available_space(&mut self, available: Option<u64>) {
        self.available = available;
    }

    /// Number of deferred commits waiting for [`Storage::sync_deferred`].
    pub fn deferred_commits(&self) -> usize {
        self.deferred.len()
    }

    /// Every entry below the root (the root itself excluded), by path.
    pub fn snapshot(&self) -> BTreeMap<InstallPath, SnapshotEntry> {
        let mut out = BTreeMap::new();
        self.walk(|path, node| {
            let entry = match node {
                Node::File {
                    data, mode, mtime, ..
                } => SnapshotEntry::File {
                    data: data.to_vec(),
                    mode: *mode,
                    mtime: *mtime,
                },
                Node::Dir { mode, .. } => SnapshotEntry::Dir { mode: *mode },
                Node::Symlink { target, .. } => SnapshotEntry::Symlink {
                    target: target.clone(),
                },
                Node::Other { .. } => SnapshotEntry::Other,
            };
            out.insert(path, entry);
        });
        out
    }

    /// Regular files only, by path, sharing their bytes with the storage (no copy), and without
    /// counting as operations: for observers such as a simulation's checkers, which run after
    /// every event and must neither cost a copy of every file nor move the operation count that
    /// [`MemoryStorage::crash_after`] and the storage faults count (an observer that did would
    /// change when the crash or fault it watches for happens).
    pub fn file_views(&self) -> BTreeMap<InstallPath, FileView> {
        let mut out = BTreeMap::new();
        self.walk(|path, node| {
            if let Node::File {
                data, mode, mtime, ..
            } = node
            {
                out.insert(
                    path,
                    FileView {
                        data: data.clone(),
                        mode: *mode,
                        mtime: *mtime,
                    },
                );
            }
        });
        out
    }

    /// Calls `visit` with every entry below the root and its path, parents before children.
    fn walk(&self, mut visit: impl FnMut(InstallPath, &Node)) {
        let mut stack = vec![(InstallPath::root(), &self.root)];
        while let Some((path, node)) = stack.pop() {
            let Node::Dir { entries, .. } = node else {
                continue;
            };
            for (name, child) in entries {
                let Ok(child_path) = path.join(name) else {
                    continue;
                };
                if matches!(child, Node::Dir { .. }) {
                    stack.push((child_path.clone(), child));
                }
                visit(child_path, child);
            }
        }
    }

    /// Regular files only: path → content (a compact view for equality checks).
    pub fn files(&self) -> BTreeMap<InstallPath, Vec<u8>> {
        self.snapshot()
            .into_iter()
            .filter_map(|(p, e)| match e {
                SnapshotEntry::File { data, .. } => Some((p, data)),
                _ => None,
            })
            .collect()
    }

    /// Counts one operation and fails it if the storage has crashed.
    fn operation(&self, path: &InstallPath) -> Result<(), StorageError> {
        let n = self.operations.get() + 1;
        self.operations.set(n);
        if self.crash_at.is_some_and(|limit| n > limit) {
            self.crashed.set(true);
        }
        if self.crashed.get() {
            return Err(err(
                StorageErrorKind::Crashed,
                path,
                "storage crashed (simulated)",
            ));
        }
        match self.fault {
            Some((limit, StorageFault::Errors)) if n > limit => Err(err(
                StorageErrorKind::Io,
                path,
                "input/output error (simulated)",
            )),
            _ => Ok(()),
        }
    }

    /// An operation that needs room: counted as [`MemoryStorage::operation`], and refused while a
    /// [`StorageFault::DiskFull`] is armed and due.
    fn growing_operation(&self, path: &InstallPath) -> Result<(), StorageError> {
        self.operation(path)?;
        match self.fault {
            Some((limit, StorageFault::DiskFull)) if self.operations.get() > limit => Err(err(
                StorageErrorKind::Io,
                path,
                "no space left on device (simulated)",
            )),
            _ => Ok(()),
        }
    }

    /// One operation: the content of regular file `path`.
    fn file_data(&self, path: &InstallPath) -> Result<&Bytes, StorageError> {
        self.operation(path)?;
        match self.lookup(path)? {
            Lookup::Found(Node::File { data, .. }) => Ok(data),
            Lookup::Found(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, path, "is a symlink"))
            }
            Lookup::Found(_) => Err(err(StorageErrorKind::WrongKind, path, "not a regular file")),
            Lookup::Missing => Err(err(StorageErrorKind::NotFound, path, "no such file")),
        }
    }

    /// Resolves `path` without following a final symlink; intermediate symlinks are refused.
    fn lookup(&self, path: &InstallPath) -> Result<Lookup<'_>, StorageError> {
        let mut node = &self.root;
        for component in path.components() {
            match node {
                Node::Dir { entries, .. } => match entries.get(component) {
                    Some(child) => node = child,
                    None => return Ok(Lookup::Missing),
                },
                Node::Symlink { .. } => {
                    return Err(err(
                        StorageErrorKind::OutsideRoot,
                        path,
                        "a parent is a symlink",
                    ));
                }
                _ => {
                    return Err(err(
                        StorageErrorKind::WrongKind,
                        path,
                        "a parent is not a directory",
                    ));
                }
            }
        }
        Ok(Lookup::Found(node))
    }

    /// The entries of existing directory `dir`, for modification.
    fn dir_mut<'a>(
        root: &'a mut Node,
        dir: &InstallPath,
    ) -> Result<&'a mut BTreeMap<String, Node>, StorageError> {
        Self::walk_dir_mut(root, dir, None)
    }

    /// Like [`Self::dir_mut`], creating missing directories with `mode`.
    fn dir_mut_creating<'a>(
        root: &'a mut Node,
        dir: &InstallPath,
        mode: u32,
        now: Timestamp,
    ) -> Result<&'a mut BTreeMap<String, Node>, StorageError> {
        Self::walk_dir_mut(root, dir, Some((mode, now)))
    }

    /// Walks down to directory `dir`; a missing component is created with `create`'s mode and time
    /// when given, else it is `NotFound`. A symlink on the way is `OutsideRoot`, as on disk.
    fn walk_dir_mut<'a>(
        root: &'a mut Node,
        dir: &InstallPath,
        create: Option<(u32, Timestamp)>,
    ) -> Result<&'a mut BTreeMap<String, Node>, StorageError> {
        let mut node = root;
        for component in dir.components() {
            node = match node {
                Node::Dir { entries, .. } => match create {
                    Some((mode, now)) => entries
                        .entry(component.to_owned())
                        .or_insert_with(|| Node::empty_dir(mode, now)),
                    None => entries
                        .get_mut(component)
                        .ok_or_else(|| err(StorageErrorKind::NotFound, dir, "no such directory"))?,
                },
                Node::Symlink { .. } => {
                    return Err(err(
                        StorageErrorKind::OutsideRoot,
                        dir,
                        "a parent is a symlink",
                    ));
                }
                _ => {
                    return Err(err(
                        StorageErrorKind::WrongKind,
                        dir,
                        "a parent is not a directory",
                    ));
                }
            };
        }
        match node {
            Node::Dir { entries, .. } => Ok(entries),
            Node::Symlink { .. } => Err(err(StorageErrorKind::OutsideRoot, dir, "is a symlink")),
            _ => Err(err(StorageErrorKind::WrongKind, dir, "not a directory")),
        }
    }

    /// One operation on staged write `id` (`growing`: one that needs room), which must be open.
    fn staged_operation(
        &mut self,
        id: WriteId,
        growing: bool,
    ) -> Result<&mut Staged, StorageError> {
        let path = self
            .staged
            .get(&id.0)
            .map_or_else(InstallPath::root, |s| s.path.clone());
        if growing {
            self.growing_operation(&path)?;
        } else {
            self.operation(&path)?;
        }
        self.staged.get_mut(&id.0).ok_or_else(|| {
            err(
                StorageErrorKind::UnknownWrite,
                &path,
                "unknown write handle",
            )
        })
    }

    /// Ends staged write `id`: the staged content and where it goes (the handle is consumed).
    fn take_staged(&mut self, id: WriteId) -> Result<Staged, StorageError> {
        let path = self
            .staged
            .get(&id.0)
            .map_or_else(InstallPath::root, |s| s.path.clone());
        self.operation(&path)?;
        self.staged.remove(&id.0).ok_or_else(|| {
            err(
                StorageErrorKind::UnknownWrite,
                &path,
                "unknown write handle",
            )
        })
    }

    /// Replaces (or creates) the staged write's target with its content: the rename.
    /// Takes file (or symlink, or special file) `path` out of the tree; `None` when nothing was
    /// there, `WrongKind` for a directory.
    fn take_file(&mut self, path: &InstallPath) -> Result<Option<Node>, StorageError> {
        let (parent, name) = Self::parent_and_name(path)?;
        let entries = match Self::dir_mut(&mut self.root, &parent) {
            Ok(entries) => entries,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match entries.get(name) {
            None => Ok(None),
            Some(Node::Dir { .. }) => Err(err(StorageErrorKind::WrongKind, path, "is a directory")),
            Some(_) => Ok(entries.remove(name)),
        }
    }

    fn put_in_place(
        &mut self,
        staged: Staged,
        attrs: &FileAttrs,
        volatile: bool,
    ) -> Result<(), StorageError> {
        let (parent, name) = Self::parent_and_name(&staged.path)?;
        let entries = Self::dir_mut(&mut self.root, &parent)?;
        if matches!(entries.get(name), Some(Node::Dir { .. })) {
            return Err(err(
                StorageErrorKind::WrongKind,
                &staged.path,
                "is a directory",
            ));
        }
        let mtime = attrs.mtime.unwrap_or(self.now);
        entries.insert(
            name.to_owned(),
            Node::File {
                data: staged.into_bytes(),
                mode: attrs.mode,
                mtime,
                volatile,
            },
        );
        Ok(())
    }

    fn parent_and_name(path: &InstallPath) -> Result<(InstallPath, &str), StorageError> {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok((parent, name)),
            _ => Err(err(
                StorageErrorKind::WrongKind,
                path,
                "the root is a directory",
            )),
        }
    }
}

impl Storage for MemoryStorage {
    fn list_dir(&self, dir: &InstallPath) -> Result<Vec<DirEntry>, StorageError> {
        self.operation(dir)?;
        match self.lookup(dir)? {
            Lookup::Found(Node::Dir { entries, .. }) => Ok(entries
                .iter()
                .map(|(name, node)| DirEntry {
                    name: name.clone(),
                    kind: node.kind(),
                })
                .collect()),
            Lookup::Found(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, dir, "is a symlink"))
            }
            Lookup::Found(_) => Err(err(StorageErrorKind::WrongKind, dir, "not a directory")),
            Lookup::Missing => Err(err(StorageErrorKind::NotFound, dir, "no such directory")),
        }
    }

    fn list_dir_stat(
        &self,
        dir: &InstallPath,
    ) -> Result<Vec<(DirEntry, Option<FileStat>)>, StorageError> {
        self.operation(dir)?;
        match self.lookup(dir)? {
            Lookup::Found(Node::Dir { entries, .. }) => Ok(entries
                .iter()
                .map(|(name, node)| {
                    let entry = DirEntry {
                        name: name.clone(),
                        kind: node.kind(),
                    };
                    (entry, Some(node.stat()))
                })
                .collect()),
            Lookup::Found(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, dir, "is a symlink"))
            }
            Lookup::Found(_) => Err(err(StorageErrorKind::WrongKind, dir, "not a directory")),
            Lookup::Missing => Err(err(StorageErrorKind::NotFound, dir, "no such directory")),
        }
    }

    fn stat(&self, path: &InstallPath) -> Result<Option<FileStat>, StorageError> {
        self.operation(path)?;
        match self.lookup(path)? {
            Lookup::Found(node) => Ok(Some(node.stat())),
            Lookup::Missing => Ok(None),
        }
    }

    fn read_at(
        &self,
        path: &InstallPath,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StorageError> {
        Ok(copy_at(self.file_data(path)?, offset, buf))
    }

    /// The default's calls, one operation per [`READ_PIECE`] as there (the crash model counts
    /// them), without its zeroed buffer per call and the copy through it: a worker merging its
    /// 10,000 agent-info files zeroed 640 MB a round (5 % of a 1,000,000-agent run).
    fn read(&self, path: &InstallPath, limit: u64) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        loop {
            let data = self.file_data(path)?;
            let start = out.len().min(data.len());
            let n = READ_PIECE.min(data.len() - start);
            if n == 0 {
                return Ok(out);
            }
            if (start + n) as u64 > limit {
                return Err(too_large(path, limit));
            }
            if out.is_empty() {
                out.reserve_exact(data.len().min(usize::try_from(limit).unwrap_or(usize::MAX)));
            }
            out.extend_from_slice(&data[start..start + n]);
        }
    }

    fn available_space(&self, dir: &InstallPath) -> Result<Option<u64>, StorageError> {
        self.operation(dir)?;
        // An armed and due full disk has no room, whatever was set.
        match self.fault {
            Some((limit, StorageFault::DiskFull)) if self.operations.get() > limit => Ok(Some(0)),
            _ => Ok(self.available),
        }
    }

    fn open_reader(&self, path: &InstallPath) -> Result<Box<dyn FileReader>, StorageError> {
        self.operation(path)?;
        match self.lookup(path)? {
            // A copy: what an open descriptor gives on disk (the content as opened, whatever
            // happens to the path afterwards).
            Lookup::Found(Node::File { data, .. }) => Ok(Box::new(OpenedFile(data.clone()))),
            Lookup::Found(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, path, "is a symlink"))
            }
            Lookup::Found(_) => Err(err(StorageErrorKind::WrongKind, path, "not a regular file")),
            Lookup::Missing => Err(err(StorageErrorKind::NotFound, path, "no such file")),
        }
    }

    fn begin_write(&mut self, path: &InstallPath) -> Result<WriteId, StorageError> {
        self.growing_operation(path)?;
        let (parent, name) = Self::parent_and_name(path)?;
        let entries = Self::dir_mut(&mut self.root, &parent)?;
        if matches!(entries.get(name), Some(Node::Dir { .. })) {
            return Err(err(StorageErrorKind::WrongKind, path, "is a directory"));
        }
        let id = self.next_write;
        self.next_write += 1;
        self.staged.insert(id, Staged::new(path.clone()));
        Ok(WriteId(id))
    }

    fn append(&mut self, id: WriteId, data: &[u8]) -> Result<(), StorageError> {
        self.staged_operation(id, true)?.append(data);
        Ok(())
    }

    fn commit_write(&mut self, id: WriteId, attrs: &FileAttrs) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        self.put_in_place(staged, attrs, false)
    }

    fn commit_write_volatile(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        self.put_in_place(staged, attrs, true)
    }

    fn write_at(&mut self, id: WriteId, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let staged = self.staged_operation(id, false)?;
        match usize::try_from(offset) {
            Ok(offset) if staged.patch(offset, data) => Ok(()),
            _ => Err(err(
                StorageErrorKind::Io,
                &staged.path,
                "patch beyond the bytes written",
            )),
        }
    }

    fn commit_write_deferred(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        let staged = self.take_staged(id)?;
        self.deferred.push((staged, *attrs));
        Ok(())
    }

    fn sync_deferred(&mut self) -> Result<(), StorageError> {
        if self.deferred.is_empty() && self.removed_unsynced.is_empty() {
            return self.operation(&InstallPath::root());
        }
        // Removals first, one operation each: a crash between two keeps the first removed (the
        // others come back on `recover`), and loses every commit (their targets stay old).
        let mut durable = 0;
        let mut crashed = None;
        for (path, _) in &self.removed_unsynced {
            if let Err(e) = self.operation(path) {
                crashed = Some(e);
                break;
            }
            durable += 1;
        }
        self.removed_unsynced.drain(..durable);
        if let Some(e) = crashed {
            self.deferred.clear();
            return Err(e);
        }
        let mut first_error = None;
        for (staged, attrs) in std::mem::take(&mut self.deferred) {
            // One operation per commit: a crash between two of them keeps the first only.
            let result = self
                .operation(&staged.path)
                .and_then(|()| self.put_in_place(staged, &attrs, false));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn abort_write(&mut self, id: WriteId) -> Result<(), StorageError> {
        self.take_staged(id).map(|_| ())
    }

    fn remove_file(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.operation(path)?;
        Ok(self.take_file(path)?.is_some())
    }

    fn remove_file_deferred(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.operation(path)?;
        let removed = self.take_file(path)?;
        let found = removed.is_some();
        if let Some(node) = removed {
            self.removed_unsynced.push((path.clone(), node));
        }
        Ok(found)
    }

    fn create_dir_all(&mut self, path: &InstallPath, mode: u32) -> Result<(), StorageError> {
        self.growing_operation(path)?;
        let now = self.now;
        Self::dir_mut_creating(&mut self.root, path, mode, now).map(|_| ())
    }

    fn remove_dir_all(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.operation(path)?;
        let (parent, name) = match Self::parent_and_name(path) {
            Ok(pn) => pn,
            Err(_) => {
                return Err(err(
                    StorageErrorKind::PermissionDenied,
                    path,
                    "refusing to remove the install root",
                ));
            }
        };
        let entries = match Self::dir_mut(&mut self.root, &parent) {
            Ok(entries) => entries,
            Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match entries.get(name) {
            None => Ok(false),
            Some(Node::Dir { .. }) => {
                entries.remove(name);
                Ok(true)
            }
            Some(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, path, "is a symlink"))
            }
            Some(_) => Err(err(StorageErrorKind::WrongKind, path, "not a directory")),
        }
    }

    fn set_attrs(&mut self, path: &InstallPath, attrs: &FileAttrs) -> Result<(), StorageError> {
        self.operation(path)?;
        let (parent, name) = Self::parent_and_name(path)?;
        let entries = Self::dir_mut(&mut self.root, &parent)?;
        match entries.get_mut(name) {
            Some(Node::File { mode, mtime, .. }) | Some(Node::Dir { mode, mtime, .. }) => {
                *mode = attrs.mode;
                if let Some(t) = attrs.mtime {
                    *mtime = t;
                }
                Ok(())
            }
            Some(Node::Symlink { .. }) => {
                Err(err(StorageErrorKind::OutsideRoot, path, "is a symlink"))
            }
            Some(Node::Other { .. }) => {
                Err(err(StorageErrorKind::WrongKind, path, "not a regular file"))
            }
            None => Err(err(StorageErrorKind::NotFound, path, "no such file")),
        }
    }
}
