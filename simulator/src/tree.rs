//! Install trees for scenarios: building a [`MemoryStorage`] from (path, bytes, mtime, mode)
//! lists, and reading back the files a side owns, for convergence checks.

use std::collections::BTreeMap;

use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::memory::{FileView, MemoryStorage};
use wazuh_cluster_sync::integrity::path::{InstallPath, PathError};
use wazuh_cluster_sync::integrity::storage::{
    EntryKind, FileStat, Storage, StorageError, Timestamp,
};

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Install path (`/etc/client.keys`).
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Permission bits.
    pub mode: u32,
}

impl TreeFile {
    /// A file with mode `0o660` (what upstream gives most integrity files).
    pub fn new(path: &str, data: impl Into<Vec<u8>>, mtime: Timestamp) -> TreeFile {
        TreeFile {
            path: path.to_owned(),
            data: data.into(),
            mtime,
            mode: 0o660,
        }
    }
}

/// Why a tree could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A path is not a valid install path.
    #[error("bad path in tree: {0}")]
    Path(#[from] PathError),
    /// The storage refused the file (a file where a directory is needed, ...).
    #[error("storage refused tree entry: {0}")]
    Storage(#[from] StorageError),
}

/// A storage holding `files` (parent directories created).
pub fn storage_from<I: IntoIterator<Item = TreeFile>>(
    files: I,
) -> Result<MemoryStorage, TreeError> {
    let mut storage = MemoryStorage::new();
    for f in files {
        let path = InstallPath::new(&f.path)?;
        storage.add_file(&path, f.data, f.mtime, f.mode)?;
    }
    Ok(storage)
}

/// The regular files of `storage` that integrity items owned by `side` select, with their
/// lstat, by path: for `NodeType::Master`, what the master keeps equal on workers (item source,
/// file names, exclusions). Worker-owned items name their merged file (`agent-info.merged`), not
/// the files in their directory, so for `NodeType::Worker` every non-excluded file below such an
/// item counts.
///
/// Walks the storage through the [`Storage`] trait and reads no content, so a convergence check
/// on a node holding a 200 MiB file costs a walk, not a copy.
pub fn owned_stats<S: Storage>(
    storage: &S,
    items: &ClusterItems,
    side: NodeType,
) -> BTreeMap<InstallPath, FileStat> {
    walk_owned(storage, items, side, false)
}

/// [`owned_stats`] without entering the directories that cannot hold such files (those that
/// neither lead to an item's directory nor lie in a recursive item's walk), for the convergence
/// polls of big clusters.
pub fn owned_stats_pruned<S: Storage>(
    storage: &S,
    items: &ClusterItems,
    side: NodeType,
) -> BTreeMap<InstallPath, FileStat> {
    walk_owned(storage, items, side, true)
}

fn walk_owned<S: Storage>(
    storage: &S,
    items: &ClusterItems,
    side: NodeType,
    prune: bool,
) -> BTreeMap<InstallPath, FileStat> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![InstallPath::root()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = storage.list_dir_stat(&dir) else {
            continue;
        };
        for (entry, stat) in entries {
            let Ok(path) = dir.join(&entry.name) else {
                continue;
            };
            match (entry.kind, stat) {
                (EntryKind::Dir, _) if !prune || may_hold_owned(&path, items, side) => {
                    dirs.push(path);
                }
                (EntryKind::File, Some(stat)) if is_owned(&path, items, side) => {
                    out.insert(path, stat);
                }
                _ => {}
            }
        }
    }
    out
}

/// The files [`owned_stats`] selects with their content, seen through
/// [`MemoryStorage::file_views`]: the bytes shared with the storage, not copied, and no
/// operation counted, so the checkers that call it after every event cost no copy and do not
/// move the operation count a simulated crash or disk fault is scheduled by.
pub fn owned_files(
    storage: &MemoryStorage,
    items: &ClusterItems,
    side: NodeType,
) -> BTreeMap<InstallPath, FileView> {
    owned_among(&storage.file_views(), items, side)
}

/// The entries of `files` (a [`MemoryStorage::file_views`]) that items owned by `side` select.
pub fn owned_among(
    files: &BTreeMap<InstallPath, FileView>,
    items: &ClusterItems,
    side: NodeType,
) -> BTreeMap<InstallPath, FileView> {
    files
        .iter()
        .filter(|(path, _)| is_owned(path, items, side))
        .map(|(path, file)| (path.clone(), file.clone()))
        .collect()
}

/// True when `path` has the same content on both storages, compared 64 KiB at a time (no copy
/// of the whole file).
pub fn same_content<A: Storage, B: Storage>(a: &A, b: &B, path: &InstallPath) -> bool {
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut offset = 0u64;
    loop {
        let (Ok(n), Ok(m)) = (
            a.read_at(path, offset, &mut x),
            b.read_at(path, offset, &mut y),
        ) else {
            return false;
        };
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
        offset += n as u64;
    }
}

/// Paths owned by the master's items whose content differs between `master` and `worker`
/// (missing on either side included), sorted.
pub fn integrity_diff<A: Storage, B: Storage>(
    master: &A,
    worker: &B,
    items: &ClusterItems,
) -> Vec<InstallPath> {
    let m = owned_stats(master, items, NodeType::Master);
    let w = owned_stats(worker, items, NodeType::Master);
    diff_of(&m, &w, |p| same_content(master, worker, p))
}

/// Paths of `m` (the master's files) and `w` (a worker's) that are missing on one side or differ
/// in size, or whose content `same` says differs, sorted.
pub fn diff_of(
    m: &BTreeMap<InstallPath, FileStat>,
    w: &BTreeMap<InstallPath, FileStat>,
    same: impl Fn(&InstallPath) -> bool,
) -> Vec<InstallPath> {
    let mut diff: Vec<InstallPath> = m
        .iter()
        .filter(|(p, st)| !w.get(*p).is_some_and(|ws| ws.size == st.size && same(p)))
        .map(|(p, _)| p.clone())
        .collect();
    diff.extend(w.keys().filter(|p| !m.contains_key(*p)).cloned());
    diff.sort();
    diff
}

/// Whether directory `dir` can hold files owned by `side`'s items: it leads to an item's
/// directory or lies in one's walk. Why: a master's `queue/agent-info/` (a worker item) holds a
/// million files at the 1,000,000-agent scale, and the convergence poll walked it at every
/// change of the master's disk.
fn may_hold_owned(dir: &InstallPath, items: &ClusterItems, side: NodeType) -> bool {
    items.items().iter().any(|item| {
        let top = item.key.dir();
        item.source.applies_to(side)
            && (top.starts_with(dir) || (item.recursive && dir.starts_with(top)))
    })
}

/// True when `path` is a file that integrity items owned by `side` select (see [`owned_stats`]).
pub fn is_owned(path: &InstallPath, items: &ClusterItems, side: NodeType) -> bool {
    let Some(item) = items.item_for_path(path) else {
        return false;
    };
    let Some(name) = path.file_name() else {
        return false;
    };
    let below_item = path
        .relative()
        .strip_prefix(item.key.dir().relative())
        .unwrap_or("");
    let selected = match side {
        NodeType::Master => item.files.selects(name),
        NodeType::Worker => true,
    };
    item.source.applies_to(side)
        && selected
        && !below_item
            .split('/')
            .filter(|c| !c.is_empty())
            .any(|c| items.is_excluded(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_files_follow_items_and_exclusions() {
        let t = Timestamp::from_secs(1_562_000_000);
        let storage = storage_from([
            TreeFile::new("/etc/client.keys", "001 a any k\n", t),
            TreeFile::new("/etc/rules/local_rules.xml", "<r/>", t),
            TreeFile::new("/etc/lists/ignored.swp", "x", t),
            TreeFile::new("/etc/ossec.conf", "<ossec_config/>", t),
            TreeFile::new("/queue/agent-info/a-10.0.0.1", "info", t),
        ])
        .unwrap();
        let items = ClusterItems::defaults_3_9();
        let master: Vec<String> = owned_files(&storage, &items, NodeType::Master)
            .keys()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(master, ["/etc/client.keys", "/etc/rules/local_rules.xml"]);
        let worker: Vec<String> = owned_files(&storage, &items, NodeType::Worker)
            .keys()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(worker, ["/queue/agent-info/a-10.0.0.1"]);
    }

    #[test]
    fn the_pruned_walk_finds_the_same_files_without_entering_other_directories() {
        let t = Timestamp::from_secs(1_562_000_000);
        let mut files = vec![
            TreeFile::new("/etc/client.keys", "001 a any k\n", t),
            TreeFile::new("/etc/shared/default/agent.conf", "<agent_config/>", t),
            TreeFile::new("/etc/rules/local_rules.xml", "<r/>", t),
            TreeFile::new("/var/multigroups/e4f9f5fa/merged.mg", "#m", t),
        ];
        for i in 0..50 {
            files.push(TreeFile::new(
                &format!("/queue/agent-info/a{i}-any"),
                "info",
                t,
            ));
            files.push(TreeFile::new(&format!("/logs/{i}/ossec.log"), "log", t));
        }
        let storage = storage_from(files).unwrap();
        let items = ClusterItems::defaults_3_9();
        for side in [NodeType::Master, NodeType::Worker] {
            let before = storage.operations();
            let all = owned_stats(&storage, &items, side);
            let walked = storage.operations() - before;
            let before = storage.operations();
            assert_eq!(owned_stats_pruned(&storage, &items, side), all, "{side:?}");
            // The 50 log directories (and, for the master, agent-info) are not listed.
            assert!(storage.operations() - before + 50 <= walked, "{side:?}");
        }
    }
}
