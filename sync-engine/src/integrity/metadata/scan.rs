//! Scanning integrity items into an [`IntegrityMetadata`] document, incrementally.
//!
//! The scan is pure computation over a [`Storage`]: no clock (the wall time comes in as `now`),
//! no threads. It has three steps so that an adapter can run it as an effect off its main loop and
//! even spread the hashing over several cores:
//!
//! 1. [`MetadataScanner::plan`] walks the items (list + lstat only) and decides, per file, whether
//!    the previous scan's MD5 can be reused (same size and mtime) or the file must be hashed;
//! 2. [`hash_file`] hashes one file through `Storage::read_at` in 64 KiB blocks (never the whole
//!    file in memory); [`ScanPlan::jobs`] lists the files to hash — split that list across threads,
//!    each with its own buffer, if one core is not enough;
//! 3. [`MetadataScanner::finish`] takes the plan and the hash results (any order) and builds the
//!    document, refreshing the cache for the next scan.
//!
//! [`MetadataScanner::scan`] runs the three in sequence on the calling thread.
//!
//! Walk rules (3.9.5 `get_files_status` + `walk_dir`, PROTOCOL.md §9.1): items whose `source` is
//! the requested node type or `all`; entries named in `excluded_files` or ending with an
//! `excluded_extensions` suffix are skipped (directories too, so they are not descended); a file is
//! taken if the item selects its name (or `all`); directories are descended when the item is
//! recursive. Differences from upstream, on purpose:
//! * symlinks and special files are skipped and counted (upstream follows symlinks with `isdir` /
//!   `open`, which lets a link pull a file from outside the item into the cluster);
//! * where two items cover the same file, the longer key wins (upstream: whichever item comes last
//!   in the dict);
//! * a file that vanishes between listing and hashing is silently dropped; another per-file error
//!   is reported in [`ScanOutput::failures`] and the file left out (upstream logs and goes on); a
//!   `Crashed` storage aborts the scan.
//!
//! Node type `Worker` (3.9.5's agent-info status): no MD5 (`get_md5=False`), files older than 30
//! minutes before `now` skipped, and an item whose `files` name `agent-info.merged` is walked in
//! `/queue/cluster/<node_name>/` (where the caller has written the merged file with
//! [`crate::integrity::merged`]) instead of its own directory, like upstream.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use md5::{Digest, Md5};

use super::{FileMetadata, IntegrityMetadata, MergeType, format_mod_time};
use crate::integrity::items::{ClusterItems, FileSelection, IntegrityItem, NodeType};
use crate::integrity::path::InstallPath;
use crate::integrity::storage::{
    EntryKind, FileStat, Storage, StorageError, StorageErrorKind, Timestamp,
};

/// Size of the read buffer used by [`hash_file`] (upstream reads 4096 bytes at a time).
pub const HASH_BLOCK: usize = 64 * 1024;

/// Age beyond which 3.9.5's worker walk skips a file (hard-coded 30 minutes in `walk_dir`).
pub const WORKER_MAX_AGE_SECS: i64 = 30 * 60;

/// A file whose mtime is this close to `now` (or later) is hashed but not cached: it may still be
/// written within the same timestamp tick without changing size or mtime (git's "racy" files).
pub const RACY_WINDOW_SECS: i64 = 2;

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The storage is gone (`Crashed`): nothing more can be read.
    #[error("storage failed during the scan: {0}")]
    Storage(StorageError),
    /// [`MetadataScanner::finish`] got a result for a job index the plan does not have.
    #[error("hash result for unknown job {0}")]
    UnknownJob(usize),
    /// The node name cannot be a directory name (`/queue/cluster/<node_name>/`).
    #[error("node name is not a valid directory name: {0}")]
    BadNodeName(String),
    /// [`MetadataScanner::finish`] did not get a result for every job of the plan.
    #[error("no hash result for {0}")]
    MissingHash(InstallPath),
}

/// Request describing which scan to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRequest<'a> {
    /// Which items (`source`) and which rules apply.
    pub node_type: NodeType,
    /// This node's name (only used to find `/queue/cluster/<node_name>/agent-info.merged`).
    pub node_name: &'a str,
    /// Current wall time (for the worker's 30-minute filter and the racy-file window).
    pub now: Timestamp,
}

/// Counters of one scan, so tests and logs can see what the scan cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Directories listed.
    pub dirs_listed: u64,
    /// Files that went into the document.
    pub files: u64,
    /// Files whose content was hashed in this scan.
    pub files_hashed: u64,
    /// Bytes read to hash them.
    pub bytes_hashed: u64,
    /// Files whose MD5 was reused from the previous scan (same size and mtime).
    pub files_reused: u64,
    /// Symlinks skipped.
    pub skipped_symlinks: u64,
    /// Sockets, FIFOs and devices skipped.
    pub skipped_special: u64,
    /// Files skipped by the worker's 30-minute age filter.
    pub skipped_old: u64,
}

/// What a scan produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutput {
    /// The metadata document. Shared with the scanner: when nothing changed since the previous
    /// scan, this is the previous document itself (no rebuild, no copy).
    pub metadata: Arc<IntegrityMetadata>,
    /// What the scan cost.
    pub stats: ScanStats,
    /// Files (or directories) left out because reading them failed.
    pub failures: Vec<(InstallPath, StorageError)>,
}

/// One file found by the walk. Its path is only built when needed (to hash it, or to rebuild
/// the document): an unchanged rescan allocates no path per file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedFile {
    /// Index into [`ScanPlan::dirs`].
    dir: usize,
    /// The name inside that directory (moved out of the listing).
    name: String,
    /// Index into [`ScanPlan::item_keys`].
    item: usize,
    stat: FileStat,
    /// Where the MD5 comes from: `None` when no MD5 is wanted.
    md5: Option<Md5Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Md5Source {
    Cached([u8; 16]),
    Job(usize),
}

/// A file to hash: pass `path` to [`hash_file`] and the result, with `index`, to
/// [`MetadataScanner::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashJob {
    /// Index to give back with the result.
    pub index: usize,
    /// The file to hash.
    pub path: InstallPath,
    /// Its size when listed (for balancing the jobs between threads).
    pub size: u64,
}

/// The result of one [`HashJob`]: the digest and the number of bytes hashed.
pub type HashResult = Result<([u8; 16], u64), StorageError>;

/// The walk's result: what to hash and what can be reused. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPlan {
    files: Vec<PlannedFile>,
    /// Every directory listed, in walk order.
    dirs: Vec<InstallPath>,
    /// Upstream's `dirname` for the top directory of each item walk, by index into `dirs` (below
    /// the top it is the directory's path): what `merge_name` is built from.
    top_dirnames: BTreeMap<usize, String>,
    item_keys: Vec<String>,
    jobs: Vec<HashJob>,
    stats: ScanStats,
    failures: Vec<(InstallPath, StorageError)>,
    now: Timestamp,
    /// Same files, items, sizes and mtimes as the scanner's previous document.
    unchanged: bool,
}

impl ScanPlan {
    /// Files that must be hashed (their MD5 is not in the cache or they changed).
    pub fn jobs(&self) -> &[HashJob] {
        &self.jobs
    }

    /// Number of files the document will hold (before hash failures).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// Hashes regular file `path` with MD5, reading `buf.len()` bytes at a time through
/// `Storage::read_at`. Returns the digest and the number of bytes read.
pub fn hash_file<S: Storage + ?Sized>(
    storage: &S,
    path: &InstallPath,
    buf: &mut [u8],
) -> HashResult {
    let mut hasher = Md5::new();
    let mut offset = 0u64;
    loop {
        let n = storage.read_at(path, offset, buf)?;
        if n == 0 {
            return Ok((hasher.finalize().into(), offset));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}

/// Lowercase hex of a digest.
pub fn md5_hex(digest: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// What the previous scan saw of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    name: String,
    /// Index into [`MetadataScanner::item_keys`] (an integer compare, not a string one per file).
    item: usize,
    size: u64,
    mtime: Timestamp,
    /// `None` when no digest was wanted.
    md5: Option<[u8; 16]>,
    /// The digest can be reused (not racy, not changed while it was read).
    settled: bool,
}

/// Scans integrity items and remembers what it saw, so that the next scan hashes only files whose
/// size or mtime changed (the master rescans every 8 s) and, when nothing changed at all, hands
/// back the previous document without rebuilding it.
///
/// The memory is kept per directory (names in listing order), so a rescan looks each directory
/// up once and then merges two sorted name lists: no per-file path is built or compared.
#[derive(Debug, Clone, Default)]
pub struct MetadataScanner {
    known: BTreeMap<InstallPath, Vec<Known>>,
    /// Item keys of the previous scan, indexed by [`Known::item`].
    item_keys: Vec<String>,
    known_files: usize,
    document: Arc<IntegrityMetadata>,
}

impl MetadataScanner {
    /// A scanner with an empty cache (the first scan hashes everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of reusable cached digests.
    pub fn cached(&self) -> usize {
        self.known
            .values()
            .flatten()
            .filter(|k| k.settled && k.md5.is_some())
            .count()
    }

    /// Forgets every cached digest and the previous document.
    pub fn clear_cache(&mut self) {
        *self = Self::default();
    }

    /// Makes the next scan hash `path` again even if its size and mtime look unchanged.
    ///
    /// Call it for every file an apply wrote: the writer gives the file the peer's mtime, so a
    /// same-size replacement is invisible to the (size, mtime) check — cheaper than
    /// [`MetadataScanner::clear_cache`], which rehashes everything.
    pub fn forget(&mut self, path: &InstallPath) {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if let Some(list) = self.known.get_mut(&dir)
            && let Ok(i) = list.binary_search_by(|k| k.name.as_str().cmp(name))
        {
            list[i].settled = false;
        }
    }

    /// Walk, hash what changed, build the document — all on the calling thread.
    pub fn scan<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
        items: &ClusterItems,
        request: &ScanRequest<'_>,
    ) -> Result<ScanOutput, ScanError> {
        let plan = self.plan(storage, items, request)?;
        let mut buf = vec![0u8; HASH_BLOCK];
        let results: Vec<(usize, HashResult)> = plan
            .jobs
            .iter()
            .map(|job| (job.index, hash_file(storage, &job.path, &mut buf)))
            .collect();
        self.finish(plan, results)
    }

    /// Step 1: walk the items and decide what must be hashed. Reads no file content.
    pub fn plan<S: Storage + ?Sized>(
        &self,
        storage: &S,
        items: &ClusterItems,
        request: &ScanRequest<'_>,
    ) -> Result<ScanPlan, ScanError> {
        // Shorter keys first so that, for a file two items find, the longer (more specific) key
        // comes last and wins when the document is built.
        let mut selected: Vec<&IntegrityItem> = items
            .items()
            .iter()
            .filter(|item| item.source.applies_to(request.node_type))
            .collect();
        selected.sort_by_key(|item| item.key.as_str().len());
        let item_keys: Vec<String> = selected.iter().map(|i| i.key.as_str().to_owned()).collect();
        let mut walk = Walk {
            storage,
            items,
            request,
            known: &self.known,
            same_items: self.item_keys == item_keys,
            want_md5: request.node_type == NodeType::Master,
            stats: ScanStats::default(),
            failures: Vec::new(),
            dirs: Vec::new(),
            top_dirnames: BTreeMap::new(),
            files: Vec::new(),
            jobs: Vec::new(),
            matched: 0,
            unchanged: true,
        };
        for (index, item) in selected.iter().enumerate() {
            // Where upstream's `get_files_status` starts `walk_dir`, spelled as it passes it:
            // `path.dirname(merged_path)` (no trailing `/`) for the worker's agent-info, else the
            // item key itself (`/etc/shared/`).
            let (dir, dirname) = if request.node_type == NodeType::Worker
                && item.files.selects("agent-info.merged")
                && matches!(item.files, FileSelection::Names(_))
            {
                let dir = InstallPath::new("/queue/cluster")
                    .and_then(|q| q.join(request.node_name))
                    .map_err(|e| ScanError::BadNodeName(e.to_string()))?;
                let dirname = dir.as_str().to_owned();
                (dir, dirname)
            } else {
                (item.key.dir().clone(), item.key.as_str().to_owned())
            };
            walk.walk_item(item, index, &dir, dirname)?;
        }
        let unchanged = walk.unchanged && walk.matched == self.known_files;
        let Walk {
            files,
            dirs,
            top_dirnames,
            jobs,
            stats,
            failures,
            ..
        } = walk;
        Ok(ScanPlan {
            files,
            dirs,
            top_dirnames,
            item_keys,
            jobs,
            stats,
            failures,
            now: request.now,
            unchanged,
        })
    }

    /// Step 3: build the document from the plan and the hash results (one per job, any order),
    /// and remember what this scan saw for the next one.
    pub fn finish(
        &mut self,
        plan: ScanPlan,
        results: impl IntoIterator<Item = (usize, HashResult)>,
    ) -> Result<ScanOutput, ScanError> {
        let ScanPlan {
            files,
            dirs,
            top_dirnames,
            item_keys,
            jobs,
            mut stats,
            mut failures,
            now,
            unchanged,
        } = plan;
        let mut hashed: Vec<Option<HashResult>> = Vec::new();
        if !jobs.is_empty() {
            hashed.resize(files.len(), None);
        }
        for (index, result) in results {
            let slot = hashed.get_mut(index).ok_or(ScanError::UnknownJob(index))?;
            *slot = Some(result);
        }
        if unchanged && jobs.is_empty() {
            stats.files = self.document.len() as u64;
            return Ok(ScanOutput {
                metadata: Arc::clone(&self.document),
                stats,
                failures,
            });
        }
        let mut known: BTreeMap<InstallPath, Vec<Known>> = BTreeMap::new();
        let mut entries = Vec::with_capacity(files.len());
        let mut current: Option<(usize, Vec<Known>)> = None;
        for (index, file) in files.into_iter().enumerate() {
            let Ok(path) = dirs[file.dir].join(&file.name) else {
                continue;
            };
            let mut settled = file.stat.mtime.secs < now.secs.saturating_sub(RACY_WINDOW_SECS);
            let digest = match file.md5 {
                None => None,
                Some(Md5Source::Cached(d)) => Some(d),
                Some(Md5Source::Job(_)) => match hashed[index].take() {
                    None => return Err(ScanError::MissingHash(path)),
                    Some(Ok((digest, bytes))) => {
                        stats.files_hashed += 1;
                        stats.bytes_hashed += bytes;
                        // Read at another length than listed: the file changed under us. Keep the
                        // digest for this document but do not trust it next time.
                        settled &= bytes == file.stat.size;
                        Some(digest)
                    }
                    Some(Err(e)) if e.kind == StorageErrorKind::Crashed => {
                        return Err(ScanError::Storage(e));
                    }
                    Some(Err(e)) if e.kind == StorageErrorKind::NotFound => continue,
                    Some(Err(e)) => {
                        failures.push((path, e));
                        continue;
                    }
                },
            };
            let item_key = &item_keys[file.item];
            let dirname = top_dirnames
                .get(&file.dir)
                .map_or(dirs[file.dir].as_str(), String::as_str);
            entries.push((
                path,
                entry_for(dirname, &file.name, file.stat.mtime, item_key, digest),
            ));
            // Files arrive grouped by directory (one listing each): group the memory the same way.
            if current.as_ref().is_none_or(|(dir, _)| *dir != file.dir) {
                if let Some((dir, list)) = current.take() {
                    known.entry(dirs[dir].clone()).or_default().extend(list);
                }
                current = Some((file.dir, Vec::new()));
            }
            if let Some((_, list)) = current.as_mut() {
                list.push(Known {
                    name: file.name,
                    item: file.item,
                    size: file.stat.size,
                    mtime: file.stat.mtime,
                    md5: digest,
                    settled,
                });
            }
        }
        if let Some((dir, list)) = current.take() {
            known.entry(dirs[dir].clone()).or_default().extend(list);
        }
        // A directory walked by two overlapping items holds names twice: keep the last (the
        // longer item key), in name order.
        for list in known.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
            list.dedup_by(|later, earlier| {
                if later.name == earlier.name {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        self.known_files = known.values().map(Vec::len).sum();
        self.known = known;
        self.item_keys = item_keys;
        // The collect sorts by path (stable) and keeps the last of equal paths: the longer key.
        let document: BTreeMap<_, _> = entries.into_iter().collect();
        stats.files = document.len() as u64;
        self.document = Arc::new(IntegrityMetadata(document));
        Ok(ScanOutput {
            metadata: Arc::clone(&self.document),
            stats,
            failures,
        })
    }
}

/// The `walk_dir` metadata dict of file `name` found in the directory upstream calls `dirname`.
fn entry_for(
    dirname: &str,
    name: &str,
    mtime: Timestamp,
    item_key: &str,
    digest: Option<[u8; 16]>,
) -> FileMetadata {
    let mut meta = FileMetadata::plain(
        format_mod_time(mtime),
        item_key,
        digest.as_ref().map(md5_hex),
    );
    if name.contains(".merged") {
        meta.merged = true;
        meta.merge_type = Some(MergeType::from_file_name(name));
        // `dirname + '/' + entry`, a plain concatenation: an item key's trailing '/' stays, so a
        // merged file directly in an item folder is `/etc/lists//x.merged`, as upstream sends it.
        meta.merge_name = Some(format!("{dirname}/{name}"));
    }
    meta
}

struct Walk<'a, S: ?Sized> {
    storage: &'a S,
    items: &'a ClusterItems,
    request: &'a ScanRequest<'a>,
    known: &'a BTreeMap<InstallPath, Vec<Known>>,
    /// The selected items are the previous scan's, in the same order.
    same_items: bool,
    want_md5: bool,
    stats: ScanStats,
    failures: Vec<(InstallPath, StorageError)>,
    dirs: Vec<InstallPath>,
    /// Upstream's `dirname` for the top directory of each item walk, by index into `dirs`: the
    /// string `walk_dir` was first called with. Below the top, `walk_dir` recurses with
    /// `os.path.join(dirname, entry)`, which is the directory's path itself.
    top_dirnames: BTreeMap<usize, String>,
    files: Vec<PlannedFile>,
    jobs: Vec<HashJob>,
    /// Files that matched the previous scan exactly.
    matched: usize,
    /// No file so far differs from the previous scan.
    unchanged: bool,
}

impl<S: Storage + ?Sized> Walk<'_, S> {
    fn walk_item(
        &mut self,
        item: &IntegrityItem,
        index: usize,
        root: &InstallPath,
        root_dirname: String,
    ) -> Result<(), ScanError> {
        let mut stack = vec![root.clone()];
        // The first directory popped is the root.
        let mut top_dirname = Some(root_dirname);
        while let Some(dir) = stack.pop() {
            let dirname = top_dirname.take();
            let entries = match self.storage.list_dir_stat(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind == StorageErrorKind::Crashed => return Err(ScanError::Storage(e)),
                // A missing item directory is normal (upstream: a warning); a missing subdirectory
                // vanished since it was listed.
                Err(e) if e.kind == StorageErrorKind::NotFound => continue,
                Err(e) => {
                    self.failures.push((dir, e));
                    continue;
                }
            };
            self.stats.dirs_listed += 1;
            let dir_index = self.dirs.len();
            if let Some(dirname) = dirname {
                self.top_dirnames.insert(dir_index, dirname);
            }
            // What the previous scan saw here, merged by name with this listing (both sorted).
            let mut known = self
                .known
                .get(&dir)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .peekable();
            let mut subdirs = Vec::new();
            for (entry, stat) in entries {
                if self.items.is_excluded(&entry.name) {
                    continue;
                }
                match entry.kind {
                    EntryKind::Dir if item.recursive => {
                        if let Ok(path) = dir.join(&entry.name) {
                            subdirs.push(path);
                        }
                    }
                    EntryKind::Dir => {}
                    EntryKind::Symlink => self.stats.skipped_symlinks += 1,
                    EntryKind::Other => self.stats.skipped_special += 1,
                    EntryKind::File => {
                        let Some(stat) = stat else { continue };
                        if !item.files.selects(&entry.name) || !self.keep(stat) {
                            continue;
                        }
                        let mut previous = None;
                        while let Some(k) = known.peek() {
                            match k.name.as_str().cmp(entry.name.as_str()) {
                                Ordering::Less => {
                                    known.next();
                                }
                                Ordering::Equal => {
                                    previous = known.next();
                                    break;
                                }
                                Ordering::Greater => break,
                            }
                        }
                        self.plan_file(&dir, dir_index, entry.name, index, stat, previous);
                    }
                }
            }
            self.dirs.push(dir);
            // Depth-first in name order, like upstream's recursion.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Whether a listed regular file goes into the document (kind re-checked from the stat, which
    /// may be newer than the listing; the worker's age filter).
    fn keep(&mut self, stat: FileStat) -> bool {
        match stat.kind {
            EntryKind::File => {}
            EntryKind::Symlink => {
                self.stats.skipped_symlinks += 1;
                return false;
            }
            _ => {
                self.stats.skipped_special += 1;
                return false;
            }
        }
        let now = self.request.now;
        let oldest = Timestamp {
            secs: now.secs.saturating_sub(WORKER_MAX_AGE_SECS),
            nanos: now.nanos,
        };
        if self.request.node_type == NodeType::Worker && stat.mtime < oldest {
            self.stats.skipped_old += 1;
            return false;
        }
        true
    }

    fn plan_file(
        &mut self,
        dir: &InstallPath,
        dir_index: usize,
        name: String,
        item: usize,
        stat: FileStat,
        previous: Option<&Known>,
    ) {
        let previous = previous.filter(|k| k.size == stat.size && k.mtime == stat.mtime);
        let exact = previous.is_some_and(|k| {
            k.settled && self.same_items && k.item == item && k.md5.is_some() == self.want_md5
        });
        if exact {
            self.matched += 1;
        } else {
            self.unchanged = false;
        }
        let md5 = if !self.want_md5 {
            None
        } else if let Some(digest) = previous.filter(|k| k.settled).and_then(|k| k.md5) {
            self.stats.files_reused += 1;
            Some(Md5Source::Cached(digest))
        } else {
            let index = self.files.len();
            match dir.join(&name) {
                Ok(path) => self.jobs.push(HashJob {
                    index,
                    path,
                    size: stat.size,
                }),
                Err(_) => return,
            }
            Some(Md5Source::Job(index))
        };
        self.files.push(PlannedFile {
            dir: dir_index,
            name,
            item,
            stat,
            md5,
        });
    }
}
