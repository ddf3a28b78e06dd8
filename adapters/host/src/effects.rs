//! What an adapter's effect thread runs: the node's one [`EffectExecutor`] over the confined
//! [`FsStorage`] ([`EffectWorker`]). Effects of one node run one at a time and in the order the
//! node asked for them (the executor keeps the scanner cache and the staged writes between
//! effects, so it is never shared); the adapter runs them off its event loop, so keepalives and
//! replies go out while a large package is applied.
//!
//! Before the first effect, [`EffectWorker::open`] removes the staged files (`.<name>.<pid>.<n>.tmp`) that a
//! crash, a kill, or a transfer cut by a shutdown left where the node writes: nothing else would
//! (the walks never list them), and each holds disk space until removed. Then it empties
//! `queue/cluster/` but for the local socket ([`remove_cluster_leftovers`], as upstream's
//! `clean_up()` at start): what is there belonged to the previous run's tasks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use wazuh_cluster_fs::{FsStorage, Owner};
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::StorageError;
use wazuh_cluster_sync::roles::{
    Effect, EffectExecutor, EffectResult, NodeConfig, NodeType, remove_cluster_leftovers,
};

use crate::os::unix_time_at;

/// The directories where this node stages writes, each with whether to look below it: the
/// integrity items' directories (applies write there; below them for recursive items) and
/// `queue/cluster/`, where received files and the node's packages are staged.
fn staging_dirs(items: &ClusterItems) -> BTreeMap<InstallPath, bool> {
    let mut dirs = BTreeMap::new();
    if let Ok(queue) = InstallPath::new("/queue/cluster") {
        dirs.insert(queue, true);
    }
    for item in items.items() {
        let recursive = dirs.entry(item.key.dir().clone()).or_insert(false);
        *recursive |= item.recursive;
    }
    // A directory already walked from a recursive ancestor needs no walk of its own.
    let walked: Vec<InstallPath> = dirs
        .iter()
        .filter(|(_, recursive)| **recursive)
        .map(|(dir, _)| dir.clone())
        .collect();
    dirs.retain(|dir, _| !walked.iter().any(|top| top != dir && dir.starts_with(top)));
    dirs
}

/// Removes the staged files left by an earlier run in the [`staging_dirs`] and logs how many.
/// A directory that cannot be cleaned is logged and skipped: a stale staged file harms nothing
/// but disk space, so it never stops a node from starting. Returns how many were removed.
fn remove_stale_staged(storage: &mut FsStorage, items: &ClusterItems) -> usize {
    let mut removed = 0;
    for (dir, recursive) in staging_dirs(items) {
        match storage.remove_stale_staged(&dir, recursive) {
            Ok(n) => removed += n,
            Err(e) => tracing::warn!("Could not remove the staged files left in {dir}: {e}"),
        }
    }
    if removed > 0 {
        tracing::info!("Removed {removed} staged file(s) left by an interrupted run");
    } else {
        tracing::debug!("No staged file left by an earlier run");
    }
    removed
}

/// Empties `queue/cluster/` of what an earlier run left (see the module docs) and logs it.
/// An entry that cannot be removed is logged and skipped: it never stops a node from starting.
fn remove_leftovers(storage: &mut FsStorage) -> usize {
    let sweep = remove_cluster_leftovers(storage);
    for e in &sweep.failed {
        tracing::warn!("Could not remove what an earlier run left in queue/cluster: {e}");
    }
    if !sweep.removed.is_empty() {
        tracing::info!(
            "Removed {} entr{} left in queue/cluster by an earlier run",
            sweep.removed.len(),
            if sweep.removed.len() == 1 { "y" } else { "ies" }
        );
    }
    sweep.removed.len()
}

/// The node's one effect executor over its confined storage, opened and cleaned up: what an
/// adapter's effect thread owns. It is not `Send` once opened (the file-system storage keeps
/// per-thread state), so the thread that runs the effects opens it.
pub struct EffectWorker {
    executor: EffectExecutor<FsStorage>,
    clock: WallClock,
}

impl std::fmt::Debug for EffectWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectWorker").finish_non_exhaustive()
    }
}

impl EffectWorker {
    /// Opens the storage under `install_root` with `owner` for what it writes and removes the
    /// staged files and the `queue/cluster/` leftovers an earlier run left (see the module docs). The clean-up's lines are logged
    /// inside the node's span, so they name the node.
    ///
    /// # Errors
    /// The install root cannot be opened.
    pub fn open(
        install_root: &Path,
        owner: Option<Owner>,
        config: &NodeConfig,
    ) -> Result<EffectWorker, StorageError> {
        let mut storage = FsStorage::new(install_root)?;
        storage.set_owner(owner);
        node_span(config).in_scope(|| {
            remove_stale_staged(&mut storage, &config.items);
            remove_leftovers(&mut storage);
        });
        Ok(EffectWorker {
            executor: EffectExecutor::new(storage, config),
            clock: config.connection.wall_clock,
        })
    }

    /// Runs one effect now.
    pub fn execute(&mut self, effect: &Effect) -> EffectResult {
        self.executor
            .execute(effect, unix_time_at(&self.clock, Instant::now()))
    }
}

/// The `node` span of the node `config` describes (name and `Master`/`Worker` tag), for the
/// threads that work for it: tasks and threads do not inherit the span of their starter.
pub fn node_span(config: &NodeConfig) -> tracing::Span {
    let tag = match config.node_type {
        NodeType::Master => "Master",
        NodeType::Worker => "Worker",
    };
    tracing::info_span!("node", name = %config.node_name, tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazuh_cluster_testkit::install_path as p;

    #[test]
    fn staging_dirs_are_the_items_and_queue_cluster_once_each() {
        let dirs = staging_dirs(&ClusterItems::defaults_3_9());
        let listed: Vec<(&str, bool)> = dirs.iter().map(|(d, r)| (d.as_str(), *r)).collect();
        assert_eq!(
            listed,
            [
                ("/etc", false),
                ("/etc/decoders", true),
                ("/etc/lists", true),
                ("/etc/rules", true),
                ("/etc/shared", true),
                ("/queue/agent-groups", true),
                ("/queue/agent-info", false),
                ("/queue/cluster", true),
                ("/var/multigroups", true),
            ]
        );
        assert!(!dirs.contains_key(&p("/queue/cluster/worker1")));
    }

    /// A tree with staged files of ours where the node writes, and look-alikes and a staged file
    /// elsewhere that must stay.
    fn stale_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (rel, data) in [
            ("etc/rules/.local_rules.xml.4242.7.tmp", "half"),
            ("etc/shared/default/.merged.mg.1.2.tmp", "half"),
            ("queue/cluster/worker1/.worker1-1.zip.99.3.tmp", "half"),
            ("etc/rules/local_rules.xml", "rules"),
            ("etc/rules/.notes.tmp", "an operator's"),
            ("etc/rules/.x.12.tmp", "not ours either"),
            ("etc/rules/.local_rules.xml.pid.7.tmp", "nor this"),
            ("logs/.ossec.log.1.2.tmp", "not a directory we write"),
            // Complete files nobody claimed (a worker's package, a name's merged file).
            (
                "queue/cluster/worker1/worker1-1795682923.4-48.zip",
                "unclaimed",
            ),
            ("queue/cluster/hello-name-9/agent-info.merged", "unclaimed"),
        ] {
            let path = root.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        root
    }

    /// What [`stale_tree`] must hold after the clean-up.
    const KEPT: [&str; 5] = [
        "etc/rules/.local_rules.xml.pid.7.tmp",
        "etc/rules/.notes.tmp",
        "etc/rules/.x.12.tmp",
        "etc/rules/local_rules.xml",
        "logs/.ossec.log.1.2.tmp",
    ];

    /// Every regular file below `root`, relative, sorted.
    fn files_below(root: &std::path::Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.is_file() {
                    files.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        files
    }

    /// The complete files [`stale_tree`] leaves in `queue/cluster/`.
    const LEFTOVERS: [&str; 2] = [
        "queue/cluster/hello-name-9/agent-info.merged",
        "queue/cluster/worker1/worker1-1795682923.4-48.zip",
    ];

    #[test]
    fn stale_staged_files_are_removed_where_the_node_writes() {
        let root = stale_tree();
        let mut storage = FsStorage::new(root.path()).unwrap();
        let removed = remove_stale_staged(&mut storage, &ClusterItems::defaults_3_9());
        assert_eq!(removed, 3);
        let mut kept: Vec<&str> = KEPT.iter().chain(&LEFTOVERS).copied().collect();
        kept.sort();
        assert_eq!(files_below(root.path()), kept);
        // Then the leftovers of queue/cluster go, directories included.
        assert_eq!(remove_leftovers(&mut storage), 2);
        assert_eq!(files_below(root.path()), KEPT);
        let left: Vec<_> = std::fs::read_dir(root.path().join("queue/cluster"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn opening_the_effect_worker_removes_the_stale_staged_files_and_the_leftovers() {
        let root = stale_tree();
        let config = NodeConfig::new(NodeType::Master, "master01", None, crate::wall_clock_now());
        let worker = EffectWorker::open(root.path(), None, &config).unwrap();
        assert_eq!(files_below(root.path()), KEPT);
        drop(worker);
    }
}
