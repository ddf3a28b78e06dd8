//! The `cluster.json` model: which directories are integrity items, how files in them are chosen
//! and written, and every interval the roles run on.
//!
//! The document is read into these typed values once, by [`crate::config::cluster_json`]
//! ([`ClusterItems::defaults_3_9`], [`ClusterItems::from_json_3_9`]), which refuses a wrong key or
//! value by name; this module is what the integrity code and the roles then query: which item a
//! path belongs to, which names a walk skips, which files an item selects.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::path::InstallPath;

/// The node type an item is synchronised from (`source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemSource {
    /// The master owns these files; workers receive them.
    Master,
    /// Workers own these files (agent-info) and send them to the master.
    Worker,
    /// Either side.
    All,
}

/// Which side of the cluster a scan runs for (3.9.5 `get_files_status(node_type)`).
///
/// Upstream's integrity check computes the status with `Master` on both nodes (only master-owned
/// items are compared); the agent-info flow uses `Worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeType {
    /// Master-owned items (`source` `master` or `all`).
    Master,
    /// Worker-owned items (`source` `worker` or `all`), with the 30-minute age filter.
    Worker,
}

impl ItemSource {
    /// True when a scan for `node_type` walks items of this source (3.9.5:
    /// `item['source'] == node_type or item['source'] == 'all'`).
    pub fn applies_to(self, node_type: NodeType) -> bool {
        matches!(
            (self, node_type),
            (ItemSource::All, _)
                | (ItemSource::Master, NodeType::Master)
                | (ItemSource::Worker, NodeType::Worker)
        )
    }
}

/// Which files of an item's directory belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSelection {
    /// `"files": ["all"]`: every file (minus the exclusions).
    All,
    /// Only files with one of these names.
    Names(BTreeSet<String>),
}

impl FileSelection {
    /// True when a file called `name` is selected (exclusions are checked separately).
    pub fn selects(&self, name: &str) -> bool {
        match self {
            FileSelection::All => true,
            FileSelection::Names(names) => names.contains(name),
        }
    }
}

/// A cluster.json item key such as `/etc/shared/`: a rooted directory path written with a trailing
/// `/`, exactly as metadata entries carry it in `cluster_item_key`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    key: String,
    dir: InstallPath,
}

impl ItemKey {
    /// Validates `text` (`/etc/shared/`). The install root itself is refused: an item must not
    /// cover the whole installation.
    pub fn new(text: &str) -> Option<Self> {
        if !text.ends_with('/') || text == "/" {
            return None;
        }
        let dir = InstallPath::new(text).ok()?;
        Some(ItemKey {
            key: text.to_owned(),
            dir,
        })
    }

    /// The key as written in cluster.json and metadata (`/etc/shared/`).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The directory the key names (`/etc/shared`).
    pub fn dir(&self) -> &InstallPath {
        &self.dir
    }
}

impl fmt::Debug for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemKey({:?})", self.key)
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// One entry of cluster.json `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityItem {
    /// The directory key (`/etc/shared/`).
    pub key: ItemKey,
    /// Permission bits files of this item are written with (`"0o660"` → `0o660`).
    pub permissions: u32,
    /// Which node type owns the files.
    pub source: ItemSource,
    /// Which file names are taken.
    pub files: FileSelection,
    /// Whether subdirectories are walked.
    pub recursive: bool,
    /// Whether a change needs a restart of the manager (not read by the 3.9.5 cluster code).
    pub restart: bool,
    /// Whether directories left empty by removing `extra` files are removed.
    pub remove_subdirs_if_empty: bool,
    /// Whether files found only on a worker are sent to the master instead of removed.
    pub extra_valid: bool,
    /// Free text (not read by any cluster code).
    pub description: Option<String>,
}

impl IntegrityItem {
    /// True when `path` lies where this item's walk could find it: directly in the item's
    /// directory, or anywhere below it when the item is recursive. (Name selection and exclusions
    /// are not checked here.)
    pub fn covers(&self, path: &InstallPath) -> bool {
        let dir = self.key.dir();
        if path == dir || !path.starts_with(dir) {
            return false;
        }
        self.recursive || path.parent().as_ref() == Some(dir)
    }
}

/// `intervals.worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerIntervals {
    /// Period of the integrity task (`sync_integrity`, 9 s).
    pub sync_integrity: Duration,
    /// Period of the agent-info task (`sync_files`, 10 s).
    pub sync_files: Duration,
    /// Period of `echo-c` keepalives (`keep_alive`, 60 s).
    pub keep_alive: Duration,
    /// Delay before reconnecting (`connection_retry`, 10 s).
    pub connection_retry: Duration,
    /// Keepalives that may fail before the worker gives up the connection (2).
    pub max_failed_keepalive_attempts: u32,
}

/// `intervals.master`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterIntervals {
    /// Period of the master's own integrity recalculation (`recalculate_integrity`, 8 s).
    pub recalculate_integrity: Duration,
    /// Period of the last-keepalive check (`check_worker_lastkeepalive`, 60 s).
    pub check_worker_lastkeepalive: Duration,
    /// Silence after which a worker is dropped (`max_allowed_time_without_keepalive`, 120 s).
    pub max_allowed_time_without_keepalive: Duration,
}

/// `intervals.communication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunicationIntervals {
    /// Wait for the answer of every request (`timeout_cluster_request`, 20 s).
    pub timeout_cluster_request: Duration,
    /// Wait for a distributed API answer (`timeout_api_request`, 200 s).
    pub timeout_api_request: Duration,
    /// Local distributed API execution limit (`timeout_api_exe`, 10 s).
    pub timeout_api_exe: Duration,
    /// Wait for the `_e` message of a file transfer (`timeout_receiving_file`, 120 s).
    pub timeout_receiving_file: Duration,
}

/// `intervals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// Worker periods.
    pub worker: WorkerIntervals,
    /// Master periods.
    pub master: MasterIntervals,
    /// Request and transfer timeouts.
    pub communication: CommunicationIntervals,
}

/// `sync_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Agent-info files older than this are not merged (`get_agentinfo_newer_than`, 1800 s).
    pub get_agentinfo_newer_than: Duration,
}

/// The whole typed cluster.json (profile 3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterItems {
    items: Vec<IntegrityItem>,
    /// File (and directory) names never synchronised (`files.excluded_files`).
    pub excluded_files: Vec<String>,
    /// Name endings never synchronised (`files.excluded_extensions`).
    pub excluded_extensions: Vec<String>,
    /// Periods and timeouts.
    pub intervals: Intervals,
    /// Agent-info options.
    pub sync_options: SyncOptions,
    /// `distributed_api.enabled`.
    pub distributed_api_enabled: bool,
}

impl ClusterItems {
    /// A document of `items` (sorted here by key, as [`ClusterItems::items`] lists them) and the
    /// other values as given. Only the cluster.json reader builds documents: everything else
    /// starts from [`ClusterItems::defaults_3_9`] or [`ClusterItems::from_json_3_9`].
    pub(crate) fn new(
        items: Vec<IntegrityItem>,
        excluded_files: Vec<String>,
        excluded_extensions: Vec<String>,
        intervals: Intervals,
        sync_options: SyncOptions,
        distributed_api_enabled: bool,
    ) -> Self {
        let mut out = ClusterItems {
            items: Vec::new(),
            excluded_files,
            excluded_extensions,
            intervals,
            sync_options,
            distributed_api_enabled,
        };
        out.replace_items(items);
        out
    }

    /// Replaces the whole item list (cluster.json's `files` is the complete list), sorted by key.
    pub(crate) fn replace_items(&mut self, mut items: Vec<IntegrityItem>) {
        items.sort_by(|a, b| a.key.cmp(&b.key));
        self.items = items;
    }

    /// Every integrity item, sorted by key.
    pub fn items(&self) -> &[IntegrityItem] {
        &self.items
    }

    /// The item with key `key` (`/etc/shared/`).
    pub fn item(&self, key: &str) -> Option<&IntegrityItem> {
        self.items.iter().find(|item| item.key.as_str() == key)
    }

    /// The item `path` belongs to: the one with the longest directory key that [covers]
    /// (`IntegrityItem::covers`) it (`/etc/shared/default/merged.mg` → `/etc/shared/`, not `/etc/`;
    /// `/etc/rules/x.xml` → `/etc/rules/`; `/etc/a/b` → none, since `/etc/` is not recursive).
    ///
    /// [covers]: IntegrityItem::covers
    pub fn item_for_path(&self, path: &InstallPath) -> Option<&IntegrityItem> {
        self.items
            .iter()
            .filter(|item| path.starts_with(item.key.dir()) && path != item.key.dir())
            .max_by_key(|item| item.key.dir().as_str().len())
            .filter(|item| item.covers(path))
    }

    /// True when a directory entry called `name` is skipped by every walk (3.9.5 `walk_dir`:
    /// `entry in excluded_files` or the name ends with one of `excluded_extensions`).
    pub fn is_excluded(&self, name: &str) -> bool {
        self.excluded_files.iter().any(|f| f == name)
            || self
                .excluded_extensions
                .iter()
                .any(|ext| name.ends_with(ext.as_str()))
    }
}
