//! The `Storage` seam: every disk operation the engine needs, behind one trait.
//!
//! The engine never touches `std::fs`. It describes disk work as calls on a `Storage`, which is
//! implemented three times: in memory with crash semantics (tests, fuzzing, the simulator), on the
//! real file system confined to one install root (`wazuh-cluster-fs`), and by whatever a third-party
//! adapter brings.
//!
//! Contract for implementations:
//! * Paths are [`InstallPath`]s (already validated: rooted, no `..`). An implementation must still
//!   refuse to follow a symlink out of the install root, and `stat` / `list_dir` report symlinks as
//!   [`EntryKind::Symlink`] without following them.
//! * Writes are staged: [`Storage::begin_write`] opens a temporary file in the *same directory* as
//!   the target, [`Storage::append`] adds bytes, [`Storage::commit_write`] makes the content durable
//!   (fsync) and renames it over the target, then syncs the directory. A crash at any point leaves
//!   the target either old or new, never torn; an uncommitted staged write simply disappears.
//! * Batches: [`Storage::commit_write_deferred`] ends a staged write like `commit_write` but may
//!   put it in place later, at the latest when [`Storage::sync_deferred`] returns. Why: a durable
//!   replace costs an fsync of the file and one of its directory, and each fsync is a journal
//!   commit; an apply of 1,000 files paid 2,000 of them. Deferred, the data of the whole batch is
//!   flushed together, renamed, and each touched directory synced once. The crash contract stays
//!   per file: before `sync_deferred` returns, a crash leaves every deferred target old or new,
//!   never torn (a deferred commit is durable only once `sync_deferred` has returned `Ok`); after
//!   it, every deferred target is new. Until then the target reads old or new content, so a
//!   caller syncs before it lists, removes or rewrites a deferred target or its directory.
//!   Removals batch the same way: [`Storage::remove_file_deferred`] removes at once but may leave
//!   the removal's durability (the directory sync) to `sync_deferred`, which makes every deferred
//!   removal durable before it puts any deferred commit in place (an apply removes the files of
//!   dropped agents before the `client.keys` that drops them lands).
//! * Scratch files: [`Storage::commit_write_volatile`] puts a staged write in place at once and
//!   makes nothing durable: after a crash its target may be missing, old, or torn. It is for the
//!   files nobody reads after a restart (the node's packages and what peers send into
//!   `queue/cluster/`, which the node empties at start): a durable commit of a 500 MiB package
//!   costs a flush of 500 MiB to the disk for a file deleted seconds later, and left unsynced
//!   the package is usually deleted before the kernel writes it back at all.
//! * A staged write may be patched in place ([`Storage::write_at`]) before it is committed, so a
//!   writer that learns a header field only after the data (a ZIP member's CRC) streams the data
//!   once.
//! * `list_dir` returns entries sorted by name, so every walk is deterministic.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use super::path::InstallPath;

#[cfg(feature = "testing")]
pub mod contract;

/// A point in time as the file system records it: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp from whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    /// The value as a float of seconds, as Python's `os.stat().st_mtime` gives it.
    pub fn as_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }
}

/// What a directory entry is. Symlinks are reported, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else: socket, FIFO, device.
    Other,
}

/// One entry of [`Storage::list_dir`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// The entry's name inside its directory.
    pub name: String,
    /// What the entry is.
    pub kind: EntryKind,
}

/// What [`Storage::stat`] reports (lstat semantics: a symlink is described, not its target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// What the entry is.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories on the in-memory storage).
    pub size: u64,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Permission bits (`0o640`, ...).
    pub mode: u32,
}

/// Attributes applied when a write is committed or by [`Storage::set_attrs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    /// Permission bits of the file (`0o660` for most integrity items).
    pub mode: u32,
    /// Modification (and access) time to set; `None` leaves what the write produced.
    pub mtime: Option<Timestamp>,
}

/// Handle of a staged write opened by [`Storage::begin_write`]. A storage never hands out the
/// same handle twice: dropping a handle that was committed already
/// ([`Storage::abort_write`] then fails with `UnknownWrite`) touches no other write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);

/// What went wrong in a storage operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The path (or a parent directory) does not exist.
    NotFound,
    /// A directory was expected and something else is there, or the other way round.
    WrongKind,
    /// The operation would leave the install root (a symlink on the way, for instance).
    OutsideRoot,
    /// The operating system refused access.
    PermissionDenied,
    /// A read would return more than the caller's limit.
    TooLarge,
    /// The write handle is unknown (already committed or aborted).
    UnknownWrite,
    /// The storage stopped working (the in-memory storage models a crash this way).
    Crashed,
    /// Any other I/O failure.
    Io,
}

/// A failed storage operation: what, on which path, and the system's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} on {path}: {message}")]
pub struct StorageError {
    /// The class of failure.
    pub kind: StorageErrorKind,
    /// The install path involved.
    pub path: String,
    /// Human-readable detail (the OS error text on the real file system).
    pub message: String,
}

impl StorageError {
    /// Builds an error for `path`.
    pub fn new(
        kind: StorageErrorKind,
        path: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        StorageError {
            kind,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// A regular file opened by [`Storage::open_reader`]: read by position, owned (it borrows nothing
/// of the storage, so a package can be read while the storage writes what it carries), and
/// still readable after its path is removed or replaced.
pub trait FileReader {
    /// The file's size when it was opened.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes from `offset`; how many were read (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError>;
}

/// `Read + Seek` over a [`FileReader`]: what the ZIP reader needs to read a package entry by
/// entry from its file, never whole in memory.
///
/// Small reads are served from one read-ahead window of [`READ_AHEAD`] bytes: the ZIP reader
/// reads a central directory entry and its name in two reads of a few dozen bytes, and a local
/// header before each member's data, so a package of 1,000 small files cost over 8,000 system
/// calls to open and check (350 ms under `strace`); through the window, a few hundred. Reads as
/// large as the window go straight to the file. The file must not change while it is read (a
/// received package, removed from its directory once opened).
pub struct PositionalReader {
    file: Box<dyn FileReader>,
    pos: u64,
    /// Bytes of the file from `window_at` on (empty: none read yet).
    window: Vec<u8>,
    window_at: u64,
}

/// Size of the [`PositionalReader`]'s read-ahead window.
pub const READ_AHEAD: usize = 64 * 1024;

impl PositionalReader {
    /// A reader at the start of `file`.
    pub fn new(file: Box<dyn FileReader>) -> Self {
        PositionalReader {
            file,
            pos: 0,
            window: Vec::new(),
            window_at: 0,
        }
    }

    /// The window's bytes from the current position on, refilled there when the position is
    /// outside it (empty at the end of the file).
    fn windowed(&mut self) -> Result<&[u8], StorageError> {
        let inside = self
            .pos
            .checked_sub(self.window_at)
            .and_then(|skip| usize::try_from(skip).ok())
            .filter(|&skip| skip < self.window.len());
        let skip = match inside {
            Some(skip) => skip,
            None => {
                self.window.resize(READ_AHEAD, 0);
                let n = self.file.read_at(self.pos, &mut self.window)?;
                self.window.truncate(n);
                self.window_at = self.pos;
                0
            }
        };
        Ok(&self.window[skip..])
    }

    /// The file's size when it was opened.
    pub fn size(&self) -> u64 {
        self.file.size()
    }
}

impl fmt::Debug for PositionalReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PositionalReader")
            .field("size", &self.file.size())
            .field("pos", &self.pos)
            .finish()
    }
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if buf.len() >= READ_AHEAD {
            self.file.read_at(self.pos, buf)
        } else {
            self.windowed().map(|ahead| {
                let n = ahead.len().min(buf.len());
                buf[..n].copy_from_slice(&ahead[..n]);
                n
            })
        }
        .map_err(|e| io::Error::other(e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PositionalReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.file.size().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

/// Bytes [`Storage::read`] asks of [`Storage::read_at`] at a time (by default).
pub const READ_PIECE: usize = 64 * 1024;

/// The error of a [`Storage::read`] of a file longer than its `limit`.
pub fn too_large(path: &InstallPath, limit: u64) -> StorageError {
    StorageError::new(
        StorageErrorKind::TooLarge,
        path,
        format!("file is larger than the limit of {limit} bytes"),
    )
}

/// Every disk operation the engine needs. See the module docs for the contract.
pub trait Storage {
    /// Entries of directory `dir`, sorted by name. `NotFound` when it does not exist,
    /// `WrongKind` when it is not a directory.
    fn list_dir(&self, dir: &InstallPath) -> Result<Vec<DirEntry>, StorageError>;

    /// Describes `path` without following a final symlink; `Ok(None)` when nothing is there.
    fn stat(&self, path: &InstallPath) -> Result<Option<FileStat>, StorageError>;

    /// Entries of directory `dir` with what [`Storage::stat`] says of each (`None` for an entry
    /// that vanished in between), sorted by name: what a metadata scan needs, in one call.
    ///
    /// The default lists, then stats every entry. Implementations can do much better (one
    /// directory lookup in memory; `fstatat` relative to the open directory on a real file system
    /// instead of resolving every path from the root), which is what makes an unchanged rescan
    /// cheap.
    fn list_dir_stat(
        &self,
        dir: &InstallPath,
    ) -> Result<Vec<(DirEntry, Option<FileStat>)>, StorageError> {
        let entries = self.list_dir(dir)?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let stat = match dir.join(&entry.name) {
                Ok(path) => self.stat(&path)?,
                Err(_) => None,
            };
            out.push((entry, stat));
        }
        Ok(out)
    }

    /// Reads up to `buf.len()` bytes of regular file `path` from `offset`; returns how many were
    /// read (0 at end of file).
    fn read_at(
        &self,
        path: &InstallPath,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StorageError>;

    /// Opens regular file `path` for positional reads that outlive the call (see [`FileReader`]).
    /// `NotFound` when nothing is there, `WrongKind` when it is not a regular file, `OutsideRoot`
    /// for a symlink (never followed).
    fn open_reader(&self, path: &InstallPath) -> Result<Box<dyn FileReader>, StorageError>;

    /// Bytes that writes under directory `dir` can still take (the free space of its file system
    /// available to this process); `None` when the storage cannot tell. A package is checked
    /// against it before it is built.
    ///
    /// The default cannot tell.
    fn available_space(&self, dir: &InstallPath) -> Result<Option<u64>, StorageError> {
        let _ = dir;
        Ok(None)
    }

    /// Reads the whole regular file `path`, refusing (`TooLarge`) one longer than `limit` bytes.
    /// The default reads [`READ_PIECE`] bytes a call.
    fn read(&self, path: &InstallPath, limit: u64) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; READ_PIECE];
        loop {
            let n = self.read_at(path, out.len() as u64, &mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            if (out.len() + n) as u64 > limit {
                return Err(too_large(path, limit));
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Opens a staged write that will replace (or create) `path` when committed. The parent
    /// directory must exist.
    fn begin_write(&mut self, path: &InstallPath) -> Result<WriteId, StorageError>;

    /// Appends bytes to a staged write.
    fn append(&mut self, id: WriteId, data: &[u8]) -> Result<(), StorageError>;

    /// Overwrites bytes of a staged write at `offset` with `data`; every byte must have been
    /// appended already (`offset + data.len()` at most the bytes written), so a patch never
    /// grows the write. Refused with [`StorageErrorKind::Io`] otherwise.
    fn write_at(&mut self, id: WriteId, offset: u64, data: &[u8]) -> Result<(), StorageError>;

    /// Makes a staged write durable and atomically puts it in place with `attrs`.
    fn commit_write(&mut self, id: WriteId, attrs: &FileAttrs) -> Result<(), StorageError>;

    /// Ends a staged write like [`Storage::commit_write`] (the handle is consumed, the target
    /// reads the new content when it returns) without making anything durable: after a crash the
    /// target may be missing, hold its old content, or be torn. Only for scratch files that
    /// nothing trusts after a restart (see the module docs).
    ///
    /// The default commits durably, which keeps that contract trivially.
    fn commit_write_volatile(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.commit_write(id, attrs)
    }

    /// Ends a staged write like [`Storage::commit_write`] (the handle is consumed), but the write
    /// may be put in place later: at the latest when [`Storage::sync_deferred`] returns. Until
    /// then the target reads its old or its new content, and a crash leaves it old or new.
    ///
    /// The default commits at once, which keeps that contract trivially.
    fn commit_write_deferred(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.commit_write(id, attrs)
    }

    /// A hint that staged write `id` will be committed durable ([`Storage::commit_write`] or
    /// [`Storage::commit_write_deferred`]) and is not read back soon, so its data may start going
    /// to the disk while more is still appended (the flush the commit then waits for is mostly
    /// done), and leave the cache once there. Changes nothing a caller can observe; the default
    /// ignores it.
    fn write_behind(&mut self, id: WriteId) {
        let _ = id;
    }

    /// A hint that about `files` deferred commits follow before the next
    /// [`Storage::sync_deferred`], so that a storage can choose from the first one how to make
    /// them durable together (one barrier for many files, or a sync each). Changes nothing a
    /// caller can observe; the default ignores it.
    fn expect_deferred(&mut self, files: usize) {
        let _ = files;
    }

    /// Makes every deferred removal durable, then puts every deferred commit in place, in the
    /// order they were made, and makes them durable (file data and directory entries): once it
    /// returns `Ok`, every deferred target holds its new content and every deferred removal stays
    /// removed through a crash. On an error, each deferred target holds old or
    /// new content (the ones that failed, old), nothing stays pending, and the first error is
    /// returned.
    ///
    /// The default has nothing to do (the default [`Storage::commit_write_deferred`] defers
    /// nothing).
    fn sync_deferred(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Drops a staged write; the target is left untouched.
    fn abort_write(&mut self, id: WriteId) -> Result<(), StorageError>;

    /// Replaces (or creates) `path` with `data` atomically: begin, append, commit.
    fn write_atomic(
        &mut self,
        path: &InstallPath,
        data: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        let id = self.begin_write(path)?;
        if let Err(e) = self.append(id, data) {
            let _ = self.abort_write(id);
            return Err(e);
        }
        self.commit_write(id, attrs)
    }

    /// Removes regular file (or symlink) `path`; `Ok(false)` when nothing was there.
    fn remove_file(&mut self, path: &InstallPath) -> Result<bool, StorageError>;

    /// Removes `path` like [`Storage::remove_file`] (gone from listings and `stat` at once), but
    /// the removal may become durable later: at the latest when [`Storage::sync_deferred`]
    /// returns. Until then a crash leaves the file removed or still there. Why: a durable removal
    /// costs a sync of its directory, and an apply removing 1,000 files paid 1,000 of them.
    ///
    /// The default removes durably at once.
    fn remove_file_deferred(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.remove_file(path)
    }

    /// Creates directory `path` and any missing parents with permission bits `mode`.
    fn create_dir_all(&mut self, path: &InstallPath, mode: u32) -> Result<(), StorageError>;

    /// Removes directory `path` and everything below it; `Ok(false)` when nothing was there.
    fn remove_dir_all(&mut self, path: &InstallPath) -> Result<bool, StorageError>;

    /// Removes directory `path` if it is empty; `Ok(false)` when nothing was there or it is not
    /// empty (a directory another writer just used stays).
    ///
    /// The default lists it, then removes it: right for a storage with one writer at a time.
    fn remove_empty_dir(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        match self.list_dir(path) {
            Ok(entries) if entries.is_empty() => self.remove_dir_all(path),
            Ok(_) => Ok(false),
            Err(e) if e.kind == StorageErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets permission bits and, when given, the modification time of an existing file.
    fn set_attrs(&mut self, path: &InstallPath, attrs: &FileAttrs) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Cursor;
    use std::rc::Rc;

    use super::*;

    /// A file in memory that counts the reads it serves.
    struct Counted {
        data: Vec<u8>,
        reads: Rc<Cell<usize>>,
    }

    impl FileReader for Counted {
        fn size(&self) -> u64 {
            self.data.len() as u64
        }

        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
            self.reads.set(self.reads.get() + 1);
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(self.data.len());
            let n = buf.len().min(self.data.len() - start);
            buf[..n].copy_from_slice(&self.data[start..start + n]);
            Ok(n)
        }
    }

    /// Reads until `buf` is full or the end (a read may stop at the window's end).
    fn fill(reader: &mut impl Read, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        filled
    }

    /// Seeks and reads of every size, anywhere (past the end too), give the bytes a plain
    /// cursor gives, and small sequential reads cost one file read per window.
    #[test]
    fn positional_reads_through_the_window_match_the_file() {
        let data: Vec<u8> = (0..3 * READ_AHEAD + 123)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let reads = Rc::new(Cell::new(0));
        let mut windowed = PositionalReader::new(Box::new(Counted {
            data: data.clone(),
            reads: Rc::clone(&reads),
        }));
        let mut plain = Cursor::new(data.clone());
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(5) {
                let to = state % (data.len() as u64 + 100);
                assert_eq!(
                    windowed.seek(SeekFrom::Start(to)).unwrap(),
                    plain.seek(SeekFrom::Start(to)).unwrap()
                );
            }
            let len = match state % 3 {
                0 => (state >> 8) as usize % 64,
                1 => (state >> 8) as usize % 5_000,
                _ => READ_AHEAD + (state >> 8) as usize % 1_000,
            };
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            let n = fill(&mut windowed, &mut a);
            assert_eq!(n, fill(&mut plain, &mut b), "read of {len}");
            assert_eq!(a[..n], b[..n]);
        }
        // A central directory's pattern: 46 bytes then a name, over and over.
        windowed.seek(SeekFrom::Start(0)).unwrap();
        reads.set(0);
        let mut entry = [0u8; 46 + 27];
        for _ in 0..READ_AHEAD / entry.len() * 2 {
            windowed.read_exact(&mut entry[..46]).unwrap();
            windowed.read_exact(&mut entry[46..]).unwrap();
        }
        assert!(reads.get() <= 3, "{} file reads", reads.get());
    }
}
