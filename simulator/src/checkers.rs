//! Safety checkers run after every event of a randomized run, and the violations they report.
//!
//! What is checked, and why each is cheap enough to run after every event:
//!
//! * **Bounds** (every node, every event): the bytes a node yielded for a peer and not yet
//!   written stay within `max_queued_output` plus one chunk and the small frames it still sends
//!   above it; the effects a node counts in flight are exactly the ones the simulator holds for
//!   it (none lost, none answered twice).
//! * **Disk** (a node whose storage saw an operation since the last check): no file appears
//!   outside what the node may write (its starting tree, the files the integrity items select,
//!   the staging directory `queue/cluster/`, what the run's operator wrote); every master-owned
//!   file on a worker holds a content the master held at some point, or the worker's own
//!   starting copy (a torn, mixed or invented file fails this); the master-owned files one event
//!   changed on a worker (one apply: an apply is one effect) are all from one version of the
//!   master's tree, so a package never mixes versions; the master's agent-info files only move
//!   forward (an accepted file is never lost or replaced by an older one: newer wins).
//! * **At the end** ([`Checker::watch_release`]): every sync lock the master holds for a worker
//!   and every request pending on a connection is seen released at least once over a window
//!   longer than their timeouts (a leaked lock or a request never answered nor failed is held
//!   the whole window).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use bytes::Bytes;

use wazuh_cluster_sync::integrity::items::NodeType;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::SyncKind;

use crate::sim::{NodeIdx, Sim};
use crate::trace::digest as content_hash;
use crate::tree::{is_owned, owned_among, owned_files};

/// Frames a node still yields for a peer above `max_queued_output` (keepalives, replies) while
/// it holds one chunk back: generous, a real leak grows without end.
const QUEUED_OUTPUT_SLACK: usize = 1 << 20;

/// What a checker found wrong.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A file the node has no business writing.
    Confinement {
        /// The node.
        node: String,
        /// The file.
        path: InstallPath,
    },
    /// A worker holds a master-owned file whose content the master never had (torn, mixed or
    /// invented).
    ForeignContent {
        /// The worker.
        worker: String,
        /// The file.
        path: InstallPath,
    },
    /// One apply on a worker wrote master-owned files from versions of the master's tree that
    /// never existed together.
    MixedVersions {
        /// The worker.
        worker: String,
        /// The files the apply changed.
        paths: Vec<InstallPath>,
    },
    /// An agent-info file the master had accepted is gone or older.
    AgentInfoLost {
        /// The file on the master.
        path: InstallPath,
        /// The mtime the master had accepted.
        accepted: Timestamp,
        /// What it has now (`None`: gone).
        now: Option<Timestamp>,
    },
    /// A node holds more unwritten output for a peer than its bound.
    QueuedOutput {
        /// The node.
        node: String,
        /// Bytes queued.
        queued: usize,
        /// The bound (with the slack of one chunk and small frames).
        bound: usize,
    },
    /// A node's count of effects in flight differs from what the simulator holds for it.
    EffectsInFlight {
        /// The node.
        node: String,
        /// What the node counts.
        counted: usize,
        /// What is queued for it.
        queued: usize,
    },
    /// A sync lock of a worker was never seen free over the whole release window.
    LockLeaked {
        /// The worker.
        worker: String,
        /// The lock.
        kind: SyncKind,
    },
    /// A connection had a request pending over the whole release window.
    RequestStuck {
        /// The node.
        node: String,
    },
    /// After healing, a worker did not converge within the bound.
    NotConverged {
        /// The worker.
        worker: String,
        /// Master-owned files that differ from the master's.
        differing: Vec<InstallPath>,
        /// The worker's agent-info files the master lacks (or holds older).
        agent_info_missing: Vec<InstallPath>,
        /// The bound, in virtual seconds after healing.
        bound_secs: u64,
    },
    /// The run's cluster could not be built from its options.
    SetUp {
        /// Why.
        detail: String,
    },
    /// A node's timer kept firing at one instant.
    Livelock {
        /// What the simulator said.
        detail: String,
    },
}

impl Violation {
    /// A short stable name of the invariant (for one-line reports and scenario files).
    pub fn invariant(&self) -> &'static str {
        match self {
            Violation::Confinement { .. } => "confinement",
            Violation::ForeignContent { .. } => "consistent-content",
            Violation::MixedVersions { .. } => "one-version-per-apply",
            Violation::AgentInfoLost { .. } => "agent-info-newer-wins",
            Violation::QueuedOutput { .. } => "queued-output-bound",
            Violation::EffectsInFlight { .. } => "effects-in-flight",
            Violation::LockLeaked { .. } => "locks-released",
            Violation::RequestStuck { .. } => "requests-answered",
            Violation::NotConverged { .. } => "liveness",
            Violation::SetUp { .. } => "set-up",
            Violation::Livelock { .. } => "livelock",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Confinement { node, path } => {
                write!(f, "{node} wrote {path}, outside what it may write")
            }
            Violation::ForeignContent { worker, path } => write!(
                f,
                "{worker} holds {path} with a content the master never had (torn or mixed)"
            ),
            Violation::MixedVersions { worker, paths } => write!(
                f,
                "{worker} changed {paths:?} in one apply, with contents of the master's that \
                 never existed together"
            ),
            Violation::AgentInfoLost {
                path,
                accepted,
                now,
            } => write!(
                f,
                "the master accepted {path} at mtime {}.{:09}s and now has {}",
                accepted.secs,
                accepted.nanos,
                now.map_or("nothing".to_owned(), |t| format!(
                    "mtime {}.{:09}s",
                    t.secs, t.nanos
                ))
            ),
            Violation::QueuedOutput {
                node,
                queued,
                bound,
            } => write!(
                f,
                "{node} holds {queued} unwritten bytes for a peer (bound {bound})"
            ),
            Violation::EffectsInFlight {
                node,
                counted,
                queued,
            } => write!(
                f,
                "{node} counts {counted} effects in flight, {queued} are queued for it"
            ),
            Violation::LockLeaked { worker, kind } => write!(
                f,
                "the master's {kind:?} lock of {worker} was never free over the release window"
            ),
            Violation::RequestStuck { node } => write!(
                f,
                "{node} had a request pending on a connection over the whole release window"
            ),
            Violation::NotConverged {
                worker,
                differing,
                agent_info_missing,
                bound_secs,
            } => write!(
                f,
                "{worker} did not converge within {bound_secs}s of healing: differing {differing:?}, \
                 agent-info missing on the master {agent_info_missing:?}"
            ),
            Violation::SetUp { detail } | Violation::Livelock { detail } => write!(f, "{detail}"),
        }
    }
}

/// Content hashes by allocation: nodes share one copy of each content (the storages'
/// `ContentPool`) and keep it while the file is unchanged, so a content hashed once is known by
/// its address after that. Each entry holds a reference to the bytes it hashed, so the address
/// cannot be reused by another content while the entry lives.
#[derive(Debug, Default)]
struct ContentHashes(HashMap<(usize, usize), (Bytes, u64)>);

impl ContentHashes {
    /// Entries kept before the memory starts over (a run rewrites files many times).
    const MAX_ENTRIES: usize = 1 << 14;

    fn of(&mut self, data: &Bytes) -> u64 {
        let key = (data.as_ptr() as usize, data.len());
        if let Some((_, hash)) = self.0.get(&key) {
            return *hash;
        }
        if self.0.len() >= Self::MAX_ENTRIES {
            self.0.clear();
        }
        let hash = content_hash(data);
        self.0.insert(key, (data.clone(), hash));
        hash
    }
}

/// The checkers' memory of a run. See the [module documentation](self).
#[derive(Debug)]
pub struct Checker {
    master: NodeIdx,
    workers: Vec<NodeIdx>,
    /// Per node: paths it may hold whatever the items say (its starting tree, operator writes).
    allowed: Vec<BTreeSet<InstallPath>>,
    /// Every content hash each master-owned file had on the master, with the versions of the
    /// master's tree it had it in (inclusive ranges, oldest first).
    versions: BTreeMap<InstallPath, BTreeMap<u64, Vec<(u32, u32)>>>,
    /// The master's master-owned files at its latest version, and that version's number.
    master_tree: BTreeMap<InstallPath, u64>,
    version: u32,
    /// Per node: the content hash of each master-owned file at the last disk check (`None`:
    /// not checked since it started or restarted, so there is no "before" to diff with).
    last_owned: Vec<Option<BTreeMap<InstallPath, u64>>>,
    /// Per node: the starting content hash of each file.
    initial: Vec<BTreeMap<InstallPath, u64>>,
    /// The newest mtime of each agent-info file the master accepted.
    accepted: BTreeMap<InstallPath, Timestamp>,
    /// Per node: its storage's operation count at the last disk check.
    seen_ops: Vec<Option<u64>>,
    /// Release window: `(worker, kind)` pairs and nodes with pending requests never seen free.
    held_locks: BTreeSet<(String, SyncKind)>,
    held_requests: BTreeSet<NodeIdx>,
    hashes: ContentHashes,
}

impl Checker {
    /// Starts watching `sim` (its trees as they are now count as legitimate).
    pub fn new(sim: &Sim, master: NodeIdx, workers: &[NodeIdx]) -> Checker {
        let n = sim.len();
        let initial: Vec<BTreeMap<InstallPath, u64>> = (0..n)
            .map(|i| {
                sim.storage(i)
                    .files()
                    .into_iter()
                    .map(|(p, d)| (p, content_hash(&d)))
                    .collect()
            })
            .collect();
        let mut checker = Checker {
            master,
            workers: workers.to_vec(),
            allowed: initial
                .iter()
                .map(|m| m.keys().cloned().collect())
                .collect(),
            versions: BTreeMap::new(),
            master_tree: BTreeMap::new(),
            version: 0,
            last_owned: vec![None; n],
            initial,
            accepted: BTreeMap::new(),
            seen_ops: vec![None; n],
            held_locks: BTreeSet::new(),
            held_requests: BTreeSet::new(),
            hashes: ContentHashes::default(),
        };
        // Nothing is accepted yet, so only the versions are recorded here.
        checker.accepted = owned_files(
            sim.storage(master),
            &sim.node(master).config().items,
            NodeType::Worker,
        )
        .into_iter()
        .map(|(p, s)| (p, s.mtime))
        .collect();
        checker.record_versions(sim);
        checker
    }

    /// The run itself (an operator, an agent) wrote `path` on `node`: legitimate there.
    pub fn allow(&mut self, node: NodeIdx, path: InstallPath) {
        self.allowed[node].insert(path);
    }

    /// Records the master's current master-owned contents as versions workers may hold, and
    /// checks and records its agent-info (call it after changing the master's disk by hand).
    ///
    /// # Errors
    /// [`Violation::AgentInfoLost`].
    pub fn record_master(&mut self, sim: &Sim) -> Result<(), Violation> {
        if sim.is_down(self.master) {
            // Its storage may be crashed (every read fails): checked again once it restarts,
            // when its operation count has moved.
            return Ok(());
        }
        self.record_versions(sim);
        let m = self.master;
        let items = &sim.node(m).config().items;
        let agent_info = owned_files(sim.storage(m), items, NodeType::Worker);
        for (path, accepted) in &self.accepted {
            let now = agent_info.get(path).map(|s| s.mtime);
            // Newer wins at the protocol's precision: 3.9.5 keeps the local file only when its
            // mtime truncated to whole seconds is newer than the incoming one (integrity/apply.rs
            // does the same), so within one second the last file received wins, whatever its
            // fraction (scenario seed-7443).
            if now.is_none_or(|t| t.secs < accepted.secs) {
                return Err(Violation::AgentInfoLost {
                    path: path.clone(),
                    accepted: *accepted,
                    now,
                });
            }
        }
        for (path, state) in agent_info {
            let newest = self.accepted.entry(path).or_insert(state.mtime);
            *newest = (*newest).max(state.mtime);
        }
        Ok(())
    }

    /// Records the master's tree as a new version when it changed.
    fn record_versions(&mut self, sim: &Sim) {
        let m = self.master;
        let items = &sim.node(m).config().items;
        let tree: BTreeMap<InstallPath, u64> = owned_files(sim.storage(m), items, NodeType::Master)
            .into_iter()
            .map(|(p, s)| (p, self.hashes.of(&s.data)))
            .collect();
        if tree == self.master_tree && !self.versions.is_empty() {
            return;
        }
        self.version += 1;
        let v = self.version;
        for (path, hash) in &tree {
            let ranges = self
                .versions
                .entry(path.clone())
                .or_default()
                .entry(*hash)
                .or_default();
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == v => *last = v,
                _ => ranges.push((v, v)),
            }
        }
        self.master_tree = tree;
    }

    /// True when some version of the master's tree held every `(path, hash)` of `files`.
    fn one_version(&self, files: &BTreeMap<InstallPath, u64>) -> bool {
        let mut common = vec![(1, self.version)];
        for (path, hash) in files {
            let Some(ranges) = self.versions.get(path).and_then(|h| h.get(hash)) else {
                return false;
            };
            common = common
                .iter()
                .flat_map(|&(a, b)| {
                    ranges
                        .iter()
                        .map(move |&(c, d)| (a.max(c), b.min(d)))
                        .filter(|(lo, hi)| lo <= hi)
                })
                .collect();
            if common.is_empty() {
                return false;
            }
        }
        true
    }

    /// Every check that runs after an event.
    ///
    /// # Errors
    /// The first violation found.
    pub fn after_event(&mut self, sim: &Sim) -> Result<(), Violation> {
        if let Some(e) = sim.livelock() {
            return Err(Violation::Livelock {
                detail: e.to_string(),
            });
        }
        for n in 0..sim.len() {
            if sim.is_down(n) {
                // A restart recovers its disk (removals not yet durable come back): no diff
                // across that is one apply's.
                self.last_owned[n] = None;
                continue;
            }
            self.check_bounds(sim, n)?;
            if self.seen_ops[n] != Some(sim.storage(n).operations()) {
                self.check_disk(sim, n)?;
                // After the check: its own reads count as operations.
                self.seen_ops[n] = Some(sim.storage(n).operations());
            }
        }
        Ok(())
    }

    fn check_bounds(&self, sim: &Sim, n: NodeIdx) -> Result<(), Violation> {
        let node = sim.node(n);
        let limits = &node.config().limits;
        let bound = limits.max_queued_output + limits.read_chunk + QUEUED_OUTPUT_SLACK;
        for peer in node.peers() {
            let queued = node.queued_output(peer);
            if queued > bound {
                return Err(Violation::QueuedOutput {
                    node: sim.name(n).to_owned(),
                    queued,
                    bound,
                });
            }
        }
        let (counted, queued) = (node.effects_in_flight(), sim.effects_queued(n));
        if counted != queued {
            return Err(Violation::EffectsInFlight {
                node: sim.name(n).to_owned(),
                counted,
                queued,
            });
        }
        Ok(())
    }

    fn check_disk(&mut self, sim: &Sim, n: NodeIdx) -> Result<(), Violation> {
        let items = &sim.node(n).config().items;
        let files = sim.storage(n).file_views();
        let staging = InstallPath::new("/queue/cluster").ok();
        let master_owned = owned_among(&files, items, NodeType::Master);
        for path in files.keys() {
            let legitimate = self.allowed[n].contains(path)
                || master_owned.contains_key(path)
                || is_owned(path, items, NodeType::Worker)
                || staging.as_ref().is_some_and(|s| path.starts_with(s));
            if !legitimate {
                return Err(Violation::Confinement {
                    node: sim.name(n).to_owned(),
                    path: path.clone(),
                });
            }
        }
        if n == self.master {
            return self.record_master(sim);
        }
        if self.workers.contains(&n) {
            let owned: BTreeMap<InstallPath, u64> = master_owned
                .into_iter()
                .map(|(p, s)| (p, self.hashes.of(&s.data)))
                .collect();
            for (path, hash) in &owned {
                let known = self
                    .versions
                    .get(path)
                    .is_some_and(|v| v.contains_key(hash))
                    || self.initial[n].get(path) == Some(hash);
                if !known {
                    return Err(Violation::ForeignContent {
                        worker: sim.name(n).to_owned(),
                        path: path.clone(),
                    });
                }
            }
            // What this event changed (one apply at most: an apply is one effect, one event).
            let changed: BTreeMap<InstallPath, u64> = match &self.last_owned[n] {
                Some(before) => owned
                    .iter()
                    .filter(|(p, h)| before.get(*p) != Some(*h))
                    .map(|(p, h)| (p.clone(), *h))
                    .collect(),
                None => BTreeMap::new(),
            };
            self.last_owned[n] = Some(owned);
            if !self.one_version(&changed) {
                return Err(Violation::MixedVersions {
                    worker: sim.name(n).to_owned(),
                    paths: changed.into_keys().collect(),
                });
            }
        }
        Ok(())
    }

    /// Opens the release window: every lock the master holds now and every node with a request
    /// pending is suspect until [`Checker::watch_release`] sees it free.
    pub fn open_release_window(&mut self, sim: &Sim) {
        let m = self.master;
        self.held_locks = sim
            .node(m)
            .workers()
            .into_iter()
            .flat_map(|w| SyncKind::ALL.map(|k| (w.clone(), k)))
            .collect();
        self.held_requests = (0..sim.len()).collect();
        self.watch_release(sim);
    }

    /// Clears from the window what is free now.
    pub fn watch_release(&mut self, sim: &Sim) {
        let master = sim.node(self.master);
        self.held_locks
            .retain(|(w, k)| master.lock_free(w, *k) == Some(false));
        self.held_requests.retain(|&n| {
            let node = sim.node(n);
            node.peers()
                .any(|p| node.connection(p).is_some_and(|c| c.pending_requests() > 0))
        });
    }

    /// Closes the window.
    ///
    /// # Errors
    /// [`Violation::LockLeaked`], [`Violation::RequestStuck`] for what was never seen free.
    pub fn close_release_window(&self, sim: &Sim) -> Result<(), Violation> {
        if let Some((worker, kind)) = self.held_locks.first() {
            return Err(Violation::LockLeaked {
                worker: worker.clone(),
                kind: *kind,
            });
        }
        if let Some(&n) = self.held_requests.first() {
            return Err(Violation::RequestStuck {
                node: sim.name(n).to_owned(),
            });
        }
        Ok(())
    }
}
