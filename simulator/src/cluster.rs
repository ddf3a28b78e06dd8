//! The scenario API: a master and N workers built from install trees, and the checks tests ask
//! most (are the workers' integrity files the master's?).
//!
//! ```no_run
//! use std::time::Duration;
//! use wazuh_cluster_sim::cluster::ClusterBuilder;
//! use wazuh_cluster_sim::clock::VirtualTime;
//! use wazuh_cluster_sim::sim::SimConfig;
//! use wazuh_cluster_sync::integrity::memory::MemoryStorage;
//!
//! let mut cluster = ClusterBuilder::new(SimConfig::default())
//!     .master("master01", MemoryStorage::new())
//!     .worker("worker1", MemoryStorage::new())
//!     .configure(|c| c.items.intervals.worker.sync_integrity = Duration::from_secs(3))
//!     .build()
//!     .unwrap();
//! let at = cluster.run_until_converged(VirtualTime::from_secs(60)).unwrap();
//! println!("converged at {at}");
//! ```

use std::collections::BTreeMap;

use wazuh_cluster_sync::integrity::memory::{FileView, MemoryStorage};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::FileStat;
use wazuh_cluster_sync::roles::{NodeConfig, NodeType};

use crate::clock::VirtualTime;
use crate::sim::{NodeIdx, RunError, SetupError, Sim, SimConfig};
use crate::tree::{diff_of, integrity_diff, owned_files, owned_stats_pruned, same_content};

type Tune = Box<dyn Fn(&mut NodeConfig)>;

/// Builds a [`Cluster`]: one master, any number of workers, one configuration hook.
pub struct ClusterBuilder {
    config: SimConfig,
    master: Option<(String, MemoryStorage)>,
    workers: Vec<(String, MemoryStorage)>,
    tune: Vec<Tune>,
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("master", &self.master.as_ref().map(|m| &m.0))
            .field(
                "workers",
                &self.workers.iter().map(|w| &w.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// A builder for a run with `config`.
    pub fn new(config: SimConfig) -> ClusterBuilder {
        ClusterBuilder {
            config,
            master: None,
            workers: Vec::new(),
            tune: Vec::new(),
        }
    }

    /// The master, named `name`, over `storage` (default: `master01`, empty).
    pub fn master(mut self, name: &str, storage: MemoryStorage) -> ClusterBuilder {
        self.master = Some((name.to_owned(), storage));
        self
    }

    /// Adds a worker named `name` over `storage`.
    pub fn worker(mut self, name: &str, storage: MemoryStorage) -> ClusterBuilder {
        self.workers.push((name.to_owned(), storage));
        self
    }

    /// A hook applied to every node's configuration (intervals, limits), after the simulator's
    /// own settings; several hooks run in order. The node type tells master from worker.
    pub fn configure<F: Fn(&mut NodeConfig) + 'static>(mut self, f: F) -> ClusterBuilder {
        self.tune.push(Box::new(f));
        self
    }

    /// Starts every node at virtual time zero, master first.
    ///
    /// # Errors
    /// See [`SetupError`].
    pub fn build(self) -> Result<Cluster, SetupError> {
        let mut sim = Sim::new(self.config)?;
        let (master_name, master_storage) = self
            .master
            .unwrap_or_else(|| ("master01".to_owned(), MemoryStorage::new()));
        let mut config = sim.node_config(NodeType::Master, &master_name);
        for t in &self.tune {
            t(&mut config);
        }
        let master = sim.add_node(config, master_storage)?;
        let mut workers = Vec::new();
        for (name, storage) in self.workers {
            let mut config = sim.node_config(NodeType::Worker, &name);
            config.master_addr = Sim::master_addr(&master_name);
            for t in &self.tune {
                t(&mut config);
            }
            workers.push(sim.add_node(config, storage)?);
        }
        Ok(Cluster {
            sim,
            master,
            workers,
        })
    }
}

/// A running cluster: the simulation and who is who.
#[derive(Debug)]
pub struct Cluster {
    /// The simulation (run it, inspect it, inject faults).
    pub sim: Sim,
    /// The master's index.
    pub master: NodeIdx,
    /// The workers' indexes, in the order they were added.
    pub workers: Vec<NodeIdx>,
}

impl Cluster {
    /// Files of node `n` owned by the master's integrity items (what workers must mirror).
    pub fn master_owned(&self, n: NodeIdx) -> BTreeMap<InstallPath, FileView> {
        let items = &self.sim.node(n).config().items;
        owned_files(self.sim.storage(n), items, NodeType::Master)
    }

    /// Files of node `n` owned by workers' items (agent-info).
    pub fn worker_owned(&self, n: NodeIdx) -> BTreeMap<InstallPath, FileView> {
        let items = &self.sim.node(n).config().items;
        owned_files(self.sim.storage(n), items, NodeType::Worker)
    }

    /// Paths whose content differs between the master and worker `w` among master-owned files
    /// (missing on either side included), sorted.
    pub fn integrity_diff(&self, w: NodeIdx) -> Vec<InstallPath> {
        let items = &self.sim.node(self.master).config().items;
        integrity_diff(self.sim.storage(self.master), self.sim.storage(w), items)
    }

    /// True when every worker's master-owned files have the master's content.
    pub fn integrity_converged(&self) -> bool {
        converged(&self.sim, self.master, &self.workers)
    }

    /// Runs until [`Cluster::integrity_converged`] or `deadline`.
    ///
    /// # Errors
    /// See [`RunError`].
    pub fn run_until_converged(&mut self, deadline: VirtualTime) -> Result<VirtualTime, RunError> {
        let master = self.master;
        let workers = self.workers.clone();
        self.sim
            .run_until(deadline, |sim| converged(sim, master, &workers))
    }
}

/// [`converged`] polled many times over a run: a worker seen converged is compared again only
/// once its disk or the master's has changed ([`Sim::disk_generation`]), so polling costs the
/// files that changed, not every worker's whole tree at every poll; it walks only the
/// directories that can hold master-owned files, and a file sharing the master's bytes
/// ([`MemoryStorage::shares_bytes_with`]) is not read. Its walks and reads count as storage
/// operations, so it is not for runs that arm storage crashes (it would move where a crash armed
/// after `k` operations lands); the checkers look through [`MemoryStorage::file_views`].
#[derive(Debug, Default)]
pub struct ConvergenceWatch {
    /// Per worker: the (master, worker) disk generations it was last seen converged at.
    seen: BTreeMap<NodeIdx, (u64, u64)>,
    /// The master's walked files and the generation they were walked at.
    master: Option<(u64, BTreeMap<InstallPath, FileStat>)>,
}

impl ConvergenceWatch {
    /// True when every worker holds the master's integrity files (as [`converged`]).
    pub fn converged(&mut self, sim: &Sim, master: NodeIdx, workers: &[NodeIdx]) -> bool {
        workers
            .iter()
            .all(|&w| self.worker_converged(sim, master, w))
    }

    /// How many of `workers` hold the master's integrity files (for progress reports: unlike
    /// [`ConvergenceWatch::converged`] it looks at every worker).
    pub fn converged_count(&mut self, sim: &Sim, master: NodeIdx, workers: &[NodeIdx]) -> usize {
        workers
            .iter()
            .filter(|&&w| self.worker_converged(sim, master, w))
            .count()
    }

    fn worker_converged(&mut self, sim: &Sim, master: NodeIdx, w: NodeIdx) -> bool {
        let items = &sim.node(master).config().items;
        let gm = sim.disk_generation(master);
        let at = (gm, sim.disk_generation(w));
        if self.seen.get(&w) == Some(&at) {
            return true;
        }
        let (ms, ws) = (sim.storage(master), sim.storage(w));
        let stats = match self.master.take() {
            Some((g, stats)) if g == gm => stats,
            _ => owned_stats_pruned(ms, items, NodeType::Master),
        };
        let stats = &self.master.insert((gm, stats)).1;
        let worker_stats = owned_stats_pruned(ws, items, NodeType::Master);
        // A file sharing the master's bytes is equal without reading 100 MB of each.
        let same = diff_of(stats, &worker_stats, |p| {
            ms.shares_bytes_with(ws, p) || same_content(ms, ws, p)
        })
        .is_empty();
        if same {
            self.seen.insert(w, at);
        }
        same
    }
}

/// [`Cluster::integrity_converged`] on a bare simulation.
pub fn converged(sim: &Sim, master: NodeIdx, workers: &[NodeIdx]) -> bool {
    let items = &sim.node(master).config().items;
    workers
        .iter()
        .all(|&w| integrity_diff(sim.storage(master), sim.storage(w), items).is_empty())
}
