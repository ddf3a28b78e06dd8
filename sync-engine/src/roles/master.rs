//! The master's side: `hello` checks and registration, per-worker synchronisation locks with
//! deadlines, the integrity comparison and the package back, applying worker packages (newer
//! wins) and the agent → worker routing table, the keepalive check and the periodic, incremental
//! recalculation of its own integrity metadata.
//!
//! Upstream's shape kept on the wire (PROTOCOL.md §4.4, §7, §9.2, §11.1): the same commands,
//! payloads and texts, in the same order. Changed on purpose:
//! * a worker is registered only after every `hello` check passed (upstream registers first and
//!   may leave a refused worker in its table), and its name must follow our rule
//!   ([`valid_node_name`]);
//! * a `hello` carrying the name of a registered worker *from the same host* replaces the stale
//!   session (the worker restarted or lost its link; upstream refused it with `Client already
//!   present` until the master restarted); from another host it is refused as upstream does;
//! * every lock has a deadline (`timeout_receiving_file` for the worker's file) and is released
//!   on completion, on error, on connection loss and at that deadline: it can never stay stuck;
//! * a `sync_*_w_m` task request while that lock is held is refused (upstream started a second
//!   task); a well-behaved worker asks permission first and never sees it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Hello;

use super::config::{NodeConfig, valid_node_name};
use super::effects::{Effect, EffectOutput, EffectResult};
use super::health::{WorkerHealth, health_json, nodes_json};
use super::node::{Ended, IncomingState, Job, Node, Peer, Pending, Role, Session, Step};
use super::output::{CloseReason, LockRelease, NodeEvent, PeerId, SyncKind};
use crate::integrity::compare::{SyncCounts, SyncPlan};
use crate::integrity::metadata::IntegrityMetadata;
use crate::integrity::path::InstallPath;

/// Commands the master answers itself (the connection answers the common layer).
pub(super) const CLAIMED: &[&str] = &[
    "hello",
    "sync_i_w_m_p",
    "sync_e_w_m_p",
    "sync_a_w_m_p",
    "sync_i_w_m",
    "sync_e_w_m",
    "sync_a_w_m",
    "sync_i_w_m_e",
    "sync_e_w_m_e",
    "sync_a_w_m_e",
    "sync_i_w_m_r",
    "sync_e_w_m_r",
    "sync_a_w_m_r",
    "get_nodes",
    "get_health",
];

/// Upstream 3.9.5 `hello` refusal texts, and ours.
pub mod hello_text {
    /// Name of a registered worker (from another host).
    pub const ALREADY_PRESENT: &str = "Client already present";
    /// The master's own name.
    pub const SAME_AS_MASTER: &str = "Same name as master";
    /// Another cluster name.
    pub const OTHER_CLUSTER: &str = "Worker does not belong to the same cluster";
    /// Another version string.
    pub const OTHER_VERSION: &str = "Worker and master versions are not the same";
    /// Ours: the node-name rule.
    pub const BAD_NAME: &str =
        "Invalid node name: use 1 to 64 of [A-Za-z0-9_.-], not starting with '.'";
    /// Ours: `max_workers` reached.
    pub const TOO_MANY: &str = "Too many workers connected";
}

/// Upstream 3.9.5 texts of the synchronisation commands.
pub mod sync_text {
    /// Reply to `_e`.
    pub const FILE_RECEIVED: &str = "File correctly received";
    /// `_e` without a space.
    pub const TASK_NOT_RECEIVED: &str = "Task name not received correctly";
    /// `_e` naming no running task.
    pub const TASK_UNKNOWN: &str = "Task name doesnt exist";
    /// Reply to `_r`.
    pub const ERROR_RECEIVED: &str = "Error received";
    /// Ours: a task request while that synchronisation runs.
    pub const BUSY: &str = "Synchronization already in progress";
    /// Worker's reply to `sync_m_c_ok`.
    pub const THANKS: &str = "Thanks";
}

/// Where a worker's synchronisation task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the worker's file and `_e` (the deadline runs).
    AwaitFile,
    /// `_e` came before the file's commit finished.
    AwaitCommit(Bytes),
    /// Reading the package / applying it.
    Processing,
    /// Integrity: the worker's metadata waits for the master's first scan.
    AwaitScan(Box<IntegrityMetadata>),
    /// Integrity: building the package for the worker at `path`.
    Building {
        path: InstallPath,
        counts: SyncCounts,
    },
    /// Integrity: `sync_m_c` sent.
    AskingTask {
        path: InstallPath,
        size: u64,
        counts: SyncCounts,
    },
    /// Integrity: the package is on its way.
    Sending {
        path: InstallPath,
        task: String,
        counts: SyncCounts,
    },
}

/// A running synchronisation of one worker (the lock is held while it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Task {
    pub(super) id: String,
    pub(super) deadline: Option<Instant>,
    pub(super) phase: Phase,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WorkerInfo {
    pub(super) name: String,
    pub(super) node_type: String,
    pub(super) version: String,
    pub(super) joined: Instant,
    pub(super) join_seq: u64,
    pub(super) locks: [Option<Task>; 3],
    pub(super) health: WorkerHealth,
}

/// Master-side session of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct MasterPeer {
    /// Set once `hello` passed every check.
    pub(super) worker: Option<Box<WorkerInfo>>,
}

impl MasterPeer {
    /// Package files of this worker's running tasks (built, being built, or on their way).
    pub(super) fn packages(&self) -> Vec<InstallPath> {
        let Some(w) = &self.worker else {
            return Vec::new();
        };
        w.locks
            .iter()
            .flatten()
            .filter_map(|t| match &t.phase {
                Phase::Building { path, .. }
                | Phase::AskingTask { path, .. }
                | Phase::Sending { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The master's own state.
#[derive(Debug)]
pub(super) struct MasterState {
    pub(super) metadata: Option<Arc<IntegrityMetadata>>,
    pub(super) scan_in_flight: bool,
    pub(super) next_recalc: Option<Instant>,
    pub(super) next_keepalive_check: Instant,
    /// Registered workers by name.
    pub(super) workers: BTreeMap<String, PeerId>,
    pub(super) join_seq: u64,
    /// Agent name → the worker it reports to (from applied agent-info).
    pub(super) routes: BTreeMap<String, String>,
}

impl MasterState {
    pub(super) fn new(now: Instant, config: &NodeConfig) -> Self {
        MasterState {
            metadata: None,
            scan_in_flight: false,
            next_recalc: Some(now),
            next_keepalive_check: now + config.items.intervals.master.check_worker_lastkeepalive,
            workers: BTreeMap::new(),
            join_seq: 0,
            routes: BTreeMap::new(),
        }
    }

    pub(super) fn next_timeout<'a>(
        &self,
        peers: impl Iterator<Item = &'a Peer>,
    ) -> Option<Instant> {
        let locks = peers.filter_map(|p| match &p.session {
            Session::Master(MasterPeer { worker: Some(w) }) => {
                w.locks.iter().flatten().filter_map(|t| t.deadline).min()
            }
            _ => None,
        });
        let recalc = if self.scan_in_flight {
            None
        } else {
            self.next_recalc
        };
        locks.chain(recalc).chain([self.next_keepalive_check]).min()
    }
}

impl Node {
    fn master(&self) -> Option<&MasterState> {
        match &self.role {
            Role::Master(m) => Some(m),
            Role::Worker(_) => None,
        }
    }

    fn master_mut(&mut self) -> Option<&mut MasterState> {
        match &mut self.role {
            Role::Master(m) => Some(m),
            Role::Worker(_) => None,
        }
    }

    pub(super) fn worker_info(&self, peer: PeerId) -> Option<&WorkerInfo> {
        match &self.peers.get(&peer)?.session {
            Session::Master(m) => m.worker.as_deref(),
            Session::Worker | Session::Local => None,
        }
    }

    fn worker_info_mut(&mut self, peer: PeerId) -> Option<&mut WorkerInfo> {
        match &mut self.peers.get_mut(&peer)?.session {
            Session::Master(m) => m.worker.as_deref_mut(),
            Session::Worker | Session::Local => None,
        }
    }

    /// Master: the registered workers, by name.
    pub fn workers(&self) -> Vec<String> {
        self.master()
            .map(|m| m.workers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Master: the connection of worker `name`.
    pub fn worker_peer(&self, name: &str) -> Option<PeerId> {
        self.master()?.workers.get(name).copied()
    }

    /// Master: whether the `kind` lock of worker `name` is free (`None`: no such worker).
    pub fn lock_free(&self, name: &str, kind: SyncKind) -> Option<bool> {
        let peer = self.worker_peer(name)?;
        Some(self.worker_info(peer)?.locks[kind.index()].is_none())
    }

    /// Master: agent name → the worker it reports to, from the agent-info applied.
    pub fn agent_routes(&self) -> BTreeMap<String, String> {
        self.master().map(|m| m.routes.clone()).unwrap_or_default()
    }

    /// Master: its latest integrity metadata (`None` before the first scan finished).
    pub fn master_metadata(&self) -> Option<&IntegrityMetadata> {
        self.master()?.metadata.as_deref()
    }

    /// Master: the `get_health` document for `filter` (`None` = every node), as JSON text in
    /// 3.9.5's shape (PROTOCOL.md §14.2).
    pub fn health(&self, now: Instant, filter: Option<&[String]>) -> String {
        health_json(self, now, filter)
    }

    pub(super) fn master_start(&mut self, now: Instant) {
        self.master_timeout(now);
    }

    pub(super) fn master_timeout(&mut self, now: Instant) {
        let Some(m) = self.master_mut() else { return };
        if !m.scan_in_flight && m.next_recalc.is_some_and(|at| at <= now) {
            m.scan_in_flight = true;
            m.next_recalc = None;
            self.emit_effect(Effect::ScanIntegrity, Job::Scan);
        }
        let intervals = self.config.items.intervals.master;
        if let Some(m) = self.master_mut()
            && m.next_keepalive_check <= now
        {
            m.next_keepalive_check = now + intervals.check_worker_lastkeepalive;
            let silent: Vec<PeerId> = self
                .peers
                .iter()
                .filter_map(|(id, p)| {
                    let Session::Master(MasterPeer { worker: Some(w) }) = &p.session else {
                        return None;
                    };
                    let last = p.conn.last_keepalive().unwrap_or(w.joined).max(w.joined);
                    (now.saturating_duration_since(last)
                        > intervals.max_allowed_time_without_keepalive)
                        .then_some(*id)
                })
                .collect();
            for peer in silent {
                self.remove_peer(now, peer, CloseReason::KeepaliveTimeout, true);
            }
        }
        let expired: Vec<(PeerId, SyncKind)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| match &p.session {
                Session::Master(MasterPeer { worker: Some(w) }) => Some((*id, w)),
                _ => None,
            })
            .flat_map(|(id, w)| {
                SyncKind::ALL.into_iter().filter_map(move |kind| {
                    let task = w.locks[kind.index()].as_ref()?;
                    task.deadline
                        .is_some_and(|d| d <= now)
                        .then_some((id, kind))
                })
            })
            .collect();
        for (peer, kind) in expired {
            let error = "timeout receiving the worker's file".to_owned();
            self.release(now, peer, kind, LockRelease::TimedOut, error);
        }
    }

    pub(super) fn master_scan_done(&mut self, now: Instant, result: EffectResult) {
        let recalc = self.config.items.intervals.master.recalculate_integrity;
        let Some(m) = self.master_mut() else { return };
        m.scan_in_flight = false;
        m.next_recalc = Some(now + recalc);
        match result {
            Ok(EffectOutput::Scanned { metadata, stats }) => {
                let files = metadata.len();
                m.metadata = Some(metadata);
                self.event(NodeEvent::IntegrityRecalculated {
                    files,
                    hashed: stats.files_hashed,
                });
                // Comparisons that waited for the first scan.
                let waiting: Vec<(PeerId, IntegrityMetadata)> = self
                    .peers
                    .iter_mut()
                    .filter_map(|(id, p)| {
                        let Session::Master(MasterPeer { worker: Some(w) }) = &mut p.session else {
                            return None;
                        };
                        let task = w.locks[SyncKind::Integrity.index()].as_mut()?;
                        if !matches!(task.phase, Phase::AwaitScan(_)) {
                            return None;
                        }
                        let Phase::AwaitScan(meta) =
                            std::mem::replace(&mut task.phase, Phase::Processing)
                        else {
                            return None;
                        };
                        Some((*id, *meta))
                    })
                    .collect();
                for (peer, meta) in waiting {
                    self.master_compare(now, peer, meta);
                    self.pump(now, peer);
                }
            }
            Ok(other) => {
                let message = format!("unexpected scan result {other:?}");
                self.event(NodeEvent::Error {
                    peer: None,
                    message,
                });
            }
            Err(error) => {
                let message = format!("integrity recalculation failed: {error}");
                self.event(NodeEvent::Error {
                    peer: None,
                    message,
                });
            }
        }
    }

    pub(super) fn master_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        let name = String::from_utf8_lossy(command.name()).into_owned();
        if name == "hello" {
            return self.master_hello(now, peer, counter, &payload);
        }
        if name == "get_nodes" || name == "get_health" {
            let reply = match name.as_str() {
                "get_nodes" => nodes_json(self, &payload),
                _ => Ok(health_from_payload(self, now, &payload)),
            };
            match reply {
                Ok(json) => self.reply(now, peer, counter, true, json.as_bytes()),
                Err(text) => self.reply(now, peer, counter, false, text.as_bytes()),
            }
            return;
        }
        let Some(kind) = SyncKind::ALL
            .into_iter()
            .find(|k| name.starts_with(k.command()))
        else {
            let _ = self
                .peers
                .get_mut(&peer)
                .map(|p| p.conn.reply_unknown_command(now, counter, command));
            return;
        };
        let suffix = &name[kind.command().len()..];
        if self.worker_info(peer).is_none() {
            // The hello gate lets nothing else through before `set_authenticated`.
            let _ = self
                .peers
                .get_mut(&peer)
                .map(|p| p.conn.reply_unknown_command(now, counter, command));
            return;
        }
        match suffix {
            "_p" => {
                let free = self
                    .worker_info(peer)
                    .is_some_and(|w| w.locks[kind.index()].is_none());
                self.reply(
                    now,
                    peer,
                    counter,
                    true,
                    if free { b"True" } else { b"False" },
                );
            }
            "" => self.master_task(now, peer, counter, kind),
            "_e" => self.master_end(now, peer, counter, kind, &payload),
            "_r" => {
                self.reply(
                    now,
                    peer,
                    counter,
                    true,
                    sync_text::ERROR_RECEIVED.as_bytes(),
                );
                let held = self
                    .worker_info(peer)
                    .is_some_and(|w| w.locks[kind.index()].is_some());
                if held {
                    let error = format!("worker reported: {}", String::from_utf8_lossy(&payload));
                    self.fail(now, peer, kind, error);
                }
            }
            _ => {
                let _ = self
                    .peers
                    .get_mut(&peer)
                    .map(|p| p.conn.reply_unknown_command(now, counter, command));
            }
        }
    }

    fn master_hello(&mut self, now: Instant, peer: PeerId, counter: u32, payload: &Bytes) {
        let refuse = |node: &mut Node, text: String| {
            node.reply(now, peer, counter, false, text.as_bytes());
            node.event(NodeEvent::HelloRefused { peer, reply: text });
        };
        let hello = match Hello::parse(payload) {
            Ok(hello) => hello,
            Err(text) => return refuse(self, String::from_utf8_lossy(&text).into_owned()),
        };
        if !valid_node_name(&hello.name) {
            return refuse(self, hello_text::BAD_NAME.to_owned());
        }
        let name = String::from_utf8_lossy(&hello.name).into_owned();
        let addr = self
            .peers
            .get(&peer)
            .map(|p| p.addr.clone())
            .unwrap_or_default();
        let existing = self.master().and_then(|m| m.workers.get(&name).copied());
        let replaces = existing.filter(|old| {
            *old != peer
                && self
                    .peers
                    .get(old)
                    .is_some_and(|p| same_host(&p.addr, &addr))
        });
        // Upstream's checks in its order; the cluster and version checks overwrite the result of
        // the name checks (3.9.5 `MasterHandler.hello`).
        let mut result: Option<&str> = None;
        if existing.is_some() && replaces.is_none() {
            result = Some(hello_text::ALREADY_PRESENT);
        } else if name == self.config.node_name {
            result = Some(hello_text::SAME_AS_MASTER);
        }
        if hello.cluster[..] != *self.config.cluster_name.as_bytes() {
            result = Some(hello_text::OTHER_CLUSTER);
        } else if hello.version[..] != *self.config.version.as_bytes() {
            result = Some(hello_text::OTHER_VERSION);
        }
        let registered = self.master().map_or(0, |m| m.workers.len());
        if result.is_none() && replaces.is_none() && registered >= self.config.limits.max_workers {
            result = Some(hello_text::TOO_MANY);
        }
        if let Some(text) = result {
            return refuse(self, text.to_owned());
        }
        if let Some(old) = replaces {
            self.remove_peer(now, old, CloseReason::Replaced, true);
        }
        let Some(m) = self.master_mut() else { return };
        m.join_seq += 1;
        let join_seq = m.join_seq;
        m.workers.insert(name.clone(), peer);
        let info = WorkerInfo {
            name: name.clone(),
            node_type: String::from_utf8_lossy(&hello.node_type).into_owned(),
            version: String::from_utf8_lossy(&hello.version).into_owned(),
            joined: now,
            join_seq,
            locks: [None, None, None],
            health: WorkerHealth::default(),
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session = Session::Master(MasterPeer {
                worker: Some(Box::new(info)),
            });
            p.conn.set_authenticated(now);
        }
        self.reply(
            now,
            peer,
            counter,
            true,
            format!("Client {name} added").as_bytes(),
        );
        if let Ok(dir) = InstallPath::new("/queue/cluster").and_then(|q| q.join(&name)) {
            self.queue_disk(peer, Effect::CreateDir { path: dir }, Step::Quiet);
        }
        self.event(NodeEvent::WorkerJoined { name, addr });
    }

    fn master_task(&mut self, now: Instant, peer: PeerId, counter: u32, kind: SyncKind) {
        let limit = self.config.limits.max_tasks_per_worker;
        let deadline = now + self.config.timeout_receiving_file();
        let Some(w) = self.worker_info(peer) else {
            return;
        };
        let running = w.locks.iter().flatten().count();
        if w.locks[kind.index()].is_some() || running >= limit {
            return self.reply(now, peer, counter, false, sync_text::BUSY.as_bytes());
        }
        let id = self.new_task_id();
        let date = super::health::date(self.unix_time(now));
        let Some(w) = self.worker_info_mut(peer) else {
            return;
        };
        w.locks[kind.index()] = Some(Task {
            id: id.clone(),
            deadline: Some(deadline),
            phase: Phase::AwaitFile,
        });
        w.health.started(kind, date);
        let worker = w.name.clone();
        self.reply(now, peer, counter, true, id.as_bytes());
        self.event(NodeEvent::SyncStarted { kind, worker });
    }

    fn master_end(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        kind: SyncKind,
        payload: &Bytes,
    ) {
        let known = |node: &Node, task: &[u8]| {
            node.worker_info(peer)
                .and_then(|w| w.locks[kind.index()].as_ref())
                .is_some_and(|t| t.id.as_bytes() == task && t.phase == Phase::AwaitFile)
        };
        let Some(ended) = self.end_receiving_file(now, peer, counter, payload, known) else {
            return;
        };
        if let Some(t) = self
            .worker_info_mut(peer)
            .and_then(|w| w.locks[kind.index()].as_mut())
        {
            t.deadline = None;
        }
        match ended {
            Ended::Ready(file) => self.master_process(now, peer, kind, &file),
            Ended::Committing(file) => {
                if let Some(t) = self
                    .worker_info_mut(peer)
                    .and_then(|w| w.locks[kind.index()].as_mut())
                {
                    t.phase = Phase::AwaitCommit(file);
                }
            }
            Ended::Error => {
                let error = "worker files weren't correctly received".to_owned();
                self.fail(now, peer, kind, error);
            }
            Ended::Missing(file) => {
                let error = format!("file {:?} was not received", String::from_utf8_lossy(&file));
                self.fail(now, peer, kind, error);
            }
        }
    }

    pub(super) fn master_file_committed(&mut self, now: Instant, peer: PeerId, wire: &Bytes) {
        for kind in SyncKind::ALL {
            let waiting = self
                .worker_info(peer)
                .and_then(|w| w.locks[kind.index()].as_ref())
                .is_some_and(|t| t.phase == Phase::AwaitCommit(wire.clone()));
            if waiting {
                self.master_process(now, peer, kind, wire);
            }
        }
    }

    fn master_process(&mut self, now: Instant, peer: PeerId, kind: SyncKind, wire: &Bytes) {
        let file = self
            .peers
            .get(&peer)
            .and_then(|p| p.incoming.get(wire))
            .cloned();
        let Some(target) = file
            .filter(|f| f.state == IncomingState::Committed)
            .and_then(|f| f.target)
        else {
            let error = "the worker's file is not on disk".to_owned();
            return self.fail(now, peer, kind, error);
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.incoming.remove(wire);
        }
        let Some(w) = self.worker_info_mut(peer) else {
            return;
        };
        if let Some(t) = w.locks[kind.index()].as_mut() {
            t.phase = Phase::Processing;
        }
        let worker = w.name.clone();
        let (effect, step) = match kind {
            SyncKind::Integrity => (
                Effect::ReadWorkerIntegrity { path: target },
                Step::ReadWorkerIntegrity,
            ),
            _ => (
                Effect::ApplyWorkerPackage {
                    kind,
                    worker,
                    path: target,
                },
                Step::ApplyWorker(kind),
            ),
        };
        self.queue_disk(peer, effect, step);
    }

    pub(super) fn master_read_integrity(
        &mut self,
        now: Instant,
        peer: PeerId,
        result: EffectResult,
    ) {
        match result {
            Ok(EffectOutput::WorkerMetadata(meta)) => {
                if self.master().is_some_and(|m| m.metadata.is_some()) {
                    self.master_compare(now, peer, meta);
                } else if let Some(t) = self.integrity_task_mut(peer) {
                    t.phase = Phase::AwaitScan(Box::new(meta));
                }
            }
            other => {
                let error = effect_error("reading the worker's integrity file", other);
                self.fail(now, peer, SyncKind::Integrity, error);
            }
        }
    }

    fn master_compare(&mut self, now: Instant, peer: PeerId, worker_meta: IntegrityMetadata) {
        let Some(name) = self.worker_info(peer).map(|w| w.name.clone()) else {
            return;
        };
        let Some(master_meta) = self.master().and_then(|m| m.metadata.as_ref()) else {
            return;
        };
        let plan = match SyncPlan::compare(master_meta, &worker_meta, &self.config.items, &name) {
            Ok(plan) => plan,
            Err(error) => {
                return self.fail(now, peer, SyncKind::Integrity, error.to_string());
            }
        };
        let counts = plan.counts();
        if let Some(w) = self.worker_info_mut(peer) {
            w.health.set_counts(counts);
        }
        if plan.is_empty() {
            self.request(now, peer, "sync_m_c_ok", b"", Pending::SyncOk);
            return self.release_with_counts(now, peer, counts);
        }
        let Some(path) = self.package_path(now, &name) else {
            let error = format!("worker name {name:?} cannot name a package");
            return self.fail(now, peer, SyncKind::Integrity, error);
        };
        if let Some(t) = self.integrity_task_mut(peer) {
            t.phase = Phase::Building {
                path: path.clone(),
                counts,
            };
        }
        self.queue_disk(
            peer,
            Effect::BuildMasterPackage {
                path,
                plan: Box::new(plan),
            },
            Step::BuildMaster,
        );
    }

    pub(super) fn master_package_built(
        &mut self,
        now: Instant,
        peer: PeerId,
        result: EffectResult,
    ) {
        let (path, counts) = match self.integrity_task(peer) {
            Some(Task {
                phase: Phase::Building { path, counts },
                ..
            }) => (path.clone(), *counts),
            _ => return,
        };
        match result {
            Ok(EffectOutput::PackageBuilt { size, .. }) => {
                if let Some(t) = self.integrity_task_mut(peer) {
                    t.phase = Phase::AskingTask { path, size, counts };
                }
                self.request(now, peer, "sync_m_c", b"", Pending::MasterTask);
            }
            other => {
                self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
                let error = effect_error("building the package for the worker", other);
                self.fail(now, peer, SyncKind::Integrity, error);
            }
        }
    }

    fn integrity_task(&self, peer: PeerId) -> Option<&Task> {
        self.worker_info(peer)?.locks[SyncKind::Integrity.index()].as_ref()
    }

    fn integrity_task_mut(&mut self, peer: PeerId) -> Option<&mut Task> {
        self.worker_info_mut(peer)?.locks[SyncKind::Integrity.index()].as_mut()
    }

    /// A reply to one of the master's requests (`sync_m_c`, `sync_m_c_e`, `sync_m_c_ok`).
    pub(super) fn master_reply(
        &mut self,
        now: Instant,
        peer: PeerId,
        pending: Pending,
        value: Vec<u8>,
    ) {
        if pending != Pending::MasterTask {
            if value.starts_with(b"Error") {
                let message = format!("worker answered: {}", String::from_utf8_lossy(&value));
                self.event(NodeEvent::Error {
                    peer: Some(peer),
                    message,
                });
            }
            return;
        }
        let (path, size, counts) = match self.integrity_task(peer) {
            Some(Task {
                phase: Phase::AskingTask { path, size, counts },
                ..
            }) => (path.clone(), *size, *counts),
            _ => return,
        };
        if value.starts_with(b"Error") {
            // 3.9.5 gives up (the lock is freed by the task's end).
            self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
            let error = String::from_utf8_lossy(&value).into_owned();
            return self.fail(now, peer, SyncKind::Integrity, error);
        }
        let task = String::from_utf8_lossy(&value).into_owned();
        if self.send_file(now, peer, &path, size).is_some() {
            if let Some(t) = self.integrity_task_mut(peer) {
                t.phase = Phase::Sending { path, task, counts };
            }
        } else {
            self.request(
                now,
                peer,
                "sync_m_c_e",
                format!("{task} Error").as_bytes(),
                Pending::MasterEnd,
            );
            self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
            let error = "cannot start sending the package".to_owned();
            self.fail(now, peer, SyncKind::Integrity, error);
        }
    }

    /// The package for the worker went out (or failed): `sync_m_c_e`, then the lock is free.
    pub(super) fn master_file_sent(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: InstallPath,
        failure: Option<String>,
    ) {
        let (task, counts) = match self.integrity_task(peer) {
            Some(Task {
                phase:
                    Phase::Sending {
                        path: p,
                        task,
                        counts,
                    },
                ..
            }) if *p == path => (task.clone(), *counts),
            _ => {
                self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
                return;
            }
        };
        let end = match &failure {
            None => format!("{task} {path}"),
            Some(_) => format!("{task} Error"),
        };
        self.request(now, peer, "sync_m_c_e", end.as_bytes(), Pending::MasterEnd);
        self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
        match failure {
            None => self.release_with_counts(now, peer, counts),
            Some(error) => self.fail(now, peer, SyncKind::Integrity, error),
        }
    }

    pub(super) fn master_applied(
        &mut self,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        result: EffectResult,
    ) {
        let Some(name) = self.worker_info(peer).map(|w| w.name.clone()) else {
            return;
        };
        match result {
            Ok(EffectOutput::WorkerApplied {
                report,
                agents,
                known_agents,
                ..
            }) => {
                if let Some(m) = self.master_mut() {
                    for part in agents {
                        let agent = match part.rsplit_once('-') {
                            Some((agent, ip)) if !agent.is_empty() && !ip.is_empty() => {
                                agent.to_owned()
                            }
                            _ => part,
                        };
                        m.routes.insert(agent, name.clone());
                    }
                }
                if let Some(w) = self.worker_info_mut(peer) {
                    w.health.applied(kind, known_agents);
                }
                let counts = SyncCounts {
                    missing: report.written,
                    ..SyncCounts::default()
                };
                self.finish(now, peer, kind, counts);
            }
            other => {
                let error = effect_error("applying the worker's files", other);
                self.fail(now, peer, kind, error);
            }
        }
    }

    fn release_with_counts(&mut self, now: Instant, peer: PeerId, counts: SyncCounts) {
        self.finish(now, peer, SyncKind::Integrity, counts);
    }

    /// A synchronisation completed: end date, lock free, events.
    fn finish(&mut self, now: Instant, peer: PeerId, kind: SyncKind, counts: SyncCounts) {
        let date = super::health::date(self.unix_time(now));
        let Some(w) = self.worker_info_mut(peer) else {
            return;
        };
        if w.locks[kind.index()].take().is_none() {
            return;
        }
        w.health.ended(kind, date);
        let worker = w.name.clone();
        self.event(NodeEvent::LockReleased {
            worker: worker.clone(),
            kind,
            cause: LockRelease::Completed,
        });
        self.event(NodeEvent::SyncFinished {
            kind,
            worker,
            counts,
        });
    }

    /// Frees the `kind` lock of `peer` because its round failed with `error` (every failure but a
    /// timeout takes this way).
    fn fail(&mut self, now: Instant, peer: PeerId, kind: SyncKind, error: String) {
        self.release(now, peer, kind, LockRelease::Failed, error);
    }

    /// Frees the `kind` lock of `peer` after a failure; the worker retries at its next interval.
    fn release(
        &mut self,
        _now: Instant,
        peer: PeerId,
        kind: SyncKind,
        cause: LockRelease,
        error: String,
    ) {
        let Some(w) = self.worker_info_mut(peer) else {
            return;
        };
        let Some(task) = w.locks[kind.index()].take() else {
            return;
        };
        let worker = w.name.clone();
        if let Phase::Building { path, .. } | Phase::AskingTask { path, .. } = task.phase {
            self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
        }
        self.event(NodeEvent::LockReleased {
            worker: worker.clone(),
            kind,
            cause,
        });
        self.event(NodeEvent::SyncFailed {
            kind,
            worker,
            error,
        });
    }

    /// A connection is gone: its worker is unregistered and every lock it held released.
    pub(super) fn master_peer_removed(
        &mut self,
        _now: Instant,
        peer: PeerId,
        removed: Peer,
        reason: CloseReason,
    ) {
        let Session::Master(MasterPeer { worker: Some(w) }) = removed.session else {
            return;
        };
        let w = *w;
        if let Some(m) = self.master_mut()
            && m.workers.get(&w.name) == Some(&peer)
        {
            m.workers.remove(&w.name);
        }
        for kind in SyncKind::ALL {
            if w.locks[kind.index()].is_some() {
                let worker = w.name.clone();
                self.event(NodeEvent::LockReleased {
                    worker: worker.clone(),
                    kind,
                    cause: LockRelease::ConnectionLost,
                });
                let error = "connection lost".to_owned();
                self.event(NodeEvent::SyncFailed {
                    kind,
                    worker,
                    error,
                });
            }
        }
        self.event(NodeEvent::WorkerLeft {
            name: w.name,
            reason,
        });
    }
}

/// `get_health` payload: JSON `null` or a list of names (anything else reads as `null`).
fn health_from_payload(node: &Node, now: Instant, payload: &[u8]) -> String {
    let filter: Option<Vec<String>> = serde_json::from_slice(payload).ok().flatten();
    health_json(node, now, filter.as_deref())
}

/// True when two `host:port` addresses name the same host (`[v6]:port` too).
fn same_host(a: &str, b: &str) -> bool {
    fn host(addr: &str) -> &str {
        let host = match addr.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => host,
            _ => addr,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
    host(a) == host(b)
}

/// Text of a failed (or unexpected) effect result.
pub(super) fn effect_error(context: &str, result: EffectResult) -> String {
    match result {
        Err(error) => format!("{context}: {error}"),
        Ok(other) => format!("{context}: unexpected result {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::same_host;

    #[test]
    fn same_host_ignores_ports() {
        assert!(same_host("10.0.0.2:40000", "10.0.0.2:40001"));
        assert!(!same_host("10.0.0.2:40000", "10.0.0.3:40000"));
        assert!(same_host("[::1]:5", "[::1]:6"));
        assert!(same_host("worker-a", "worker-a"));
    }
}
