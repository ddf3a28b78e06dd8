//! The [`Node`]: one master or worker, as a time-driven state machine.
//!
//! It owns every connection (a protocol [`Connection`] per peer plus the role's session), the
//! role's timers and one output queue. Inputs are `handle_*(now, ...)`; outputs come from
//! [`Node::poll_output`] and [`Node::poll_timeout`]. The role logic lives in `master.rs` and
//! `worker.rs`; this file holds what both share: peers, the per-peer disk queue, file sending
//! with backpressure, effects bookkeeping and timers.
//!
//! # Backpressure, end to end
//!
//! A peer's output counts as queued from the moment the node yields it as a transmit until the
//! adapter reports it written with [`Node::handle_written`] (the kernel took it), so what the
//! node holds for a peer includes what the adapter still buffers for it. While that is at least
//! [`NodeLimits::max_queued_output`](super::NodeLimits::max_queued_output), file chunks for the
//! peer are not read and [`Node::wants_input`] is false: a peer that does not read what we send
//! is paused (its requests, which would each add a reply, wait in its kernel buffers), never
//! buffered without bound. Keepalives and replies to input already read still go out, so the
//! overshoot is bounded by what one read can ask for.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, ConnectionError, Event, Side, TransferFailure, TransferId,
    WallClock,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::rng::Rng;

use super::config::{NodeConfig, NodeType};
use super::effects::{Effect, EffectOutput, EffectResult};
use super::master::{MasterPeer, MasterState};
use super::output::{
    CloseReason, EffectId, HandshakeFailure, NodeEvent, Origin, Output, PeerId, SyncKind,
};
use super::worker::WorkerState;
use crate::integrity::path::InstallPath;
use crate::integrity::storage::Timestamp;

/// Rng stream labels (see [`Rng::fork`]): one per use so adding one never shifts another.
const STREAM_TASK_IDS: u64 = 1;
const STREAM_PACKAGE_NAMES: u64 = 2;
const STREAM_CONNECTIONS: u64 = 1 << 32;

/// A request of ours on a connection, and what its reply continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    /// Worker: our `hello`.
    Hello,
    /// Worker: `<kind>_p`.
    Permission(SyncKind),
    /// Worker: `<kind>` (task creation).
    Task(SyncKind),
    /// Worker: `<kind>_e`.
    End(SyncKind),
    /// Worker: `<kind>_r`; nothing continues.
    ErrorReport,
    /// Worker: a local client's `get_nodes` / `get_health` forwarded to the master; the answer
    /// goes to that client (`seq` tells a reused id apart).
    Control { local: PeerId, seq: u64 },
    /// Worker: `control_res` to a local client; nothing continues.
    ControlResult,
    /// Master: `sync_m_c_ok`; nothing continues.
    SyncOk,
    /// Master: `sync_m_c`.
    MasterTask,
    /// Master: `sync_m_c_e`; nothing continues.
    MasterEnd,
}

/// A file the peer sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Incoming {
    /// Where it is written; `None` when the peer's path was refused (its bytes are dropped).
    pub(super) target: Option<InstallPath>,
    pub(super) state: IncomingState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IncomingState {
    Receiving,
    /// `file_end` matched; the commit is queued or running.
    Committing,
    /// On disk, complete.
    Committed,
    Failed,
}

/// A file we send to the peer (a package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sending {
    pub(super) path: InstallPath,
    pub(super) size: u64,
    pub(super) offset: u64,
    /// The connection asked for the next chunk (largest length): waiting for room or a read.
    pub(super) wanted: Option<usize>,
    /// A chunk read is queued or running.
    pub(super) reading: bool,
    /// Reading failed: the transfer is ended early and reported as failed when it completes.
    pub(super) failed: Option<String>,
}

/// What a finished effect continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// A step of an incoming file (the wire path names it).
    File { wire: Bytes, commit: bool },
    /// The next chunk of an outgoing file.
    Chunk(TransferId),
    /// Nothing continues (removals, directories, aborts).
    Quiet,
    /// Worker: its package for `kind` is built.
    BuildWorker(SyncKind),
    /// Worker: the master's package is applied.
    ApplyMaster,
    /// Master: the worker's integrity metadata is read.
    ReadWorkerIntegrity,
    /// Master: the package for the worker is built.
    BuildMaster,
    /// Master: a worker package (extra-valid / agent-info) is applied.
    ApplyWorker(SyncKind),
}

/// Who waits for an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Job {
    /// Master's own integrity scan.
    Scan,
    /// An effect of one connection's queue (`seq` tells a reused id apart).
    Peer { peer: PeerId, seq: u64, step: Step },
}

/// Effects of one connection, run one at a time and in order: incoming file steps, chunk reads,
/// package builds and applies of that peer never overlap, so no two effects in flight touch the
/// same file.
#[derive(Debug, Default)]
pub(super) struct DiskQueue {
    pub(super) jobs: VecDeque<(Effect, Step)>,
    pub(super) in_flight: Option<EffectId>,
    /// Bytes of `AppendFile` jobs waiting (bounded by `max_pending_disk_bytes`).
    pub(super) bytes: usize,
}

/// The role-specific part of a connection.
#[derive(Debug)]
pub(super) enum Session {
    /// Master side: a worker (registered after a good `hello`).
    Master(MasterPeer),
    /// Worker side: the link to the master.
    Worker,
    /// Worker side: a client of the local socket (`get_nodes` / `get_health` are forwarded to
    /// the master, the answer comes back as a `control_res` request).
    Local,
}

/// One connection.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) conn: Connection,
    pub(super) seq: u64,
    pub(super) addr: String,
    /// Bytes yielded as transmits and not yet reported written ([`Node::handle_written`]).
    pub(super) queued: usize,
    pub(super) disk: DiskQueue,
    pub(super) requests: BTreeMap<u32, Pending>,
    pub(super) incoming: BTreeMap<Bytes, Incoming>,
    pub(super) sending: BTreeMap<TransferId, Sending>,
    pub(super) session: Session,
}

#[derive(Debug)]
pub(super) enum Role {
    Master(MasterState),
    Worker(WorkerState),
}

/// What a `<task> <file>` end message (`sync_*_e`, `sync_m_c_e`) names, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    /// `<task> Error`: the sender could not send its file.
    Error,
    /// The file is on disk.
    Ready(Bytes),
    /// Its commit is still queued or running.
    Committing(Bytes),
    /// No such file was received (or it failed).
    Missing(Bytes),
}

/// A master or worker node. See the [module documentation](super) for the run loop.
#[derive(Debug)]
pub struct Node {
    pub(super) config: NodeConfig,
    pub(super) conn_config: ConnectionConfig,
    pub(super) rng: Rng,
    pub(super) task_rng: Rng,
    pub(super) name_rng: Rng,
    pub(super) peers: BTreeMap<PeerId, Peer>,
    /// Disk queues of closed connections that still have an effect in flight; they run their
    /// clean-up jobs (abort staged writes, remove packages) once it returns.
    pub(super) orphans: BTreeMap<(PeerId, u64), DiskQueue>,
    pub(super) outputs: VecDeque<Output>,
    pub(super) effects: BTreeMap<EffectId, Job>,
    pub(super) next_effect: u64,
    pub(super) next_seq: u64,
    pub(super) next_outgoing: u64,
    pub(super) role: Role,
}

impl Node {
    /// A node at `now`. `seed` drives every random choice (connection counters, Fernet IVs, task
    /// ids, package names): the same seed and inputs give the same outputs, byte for byte.
    ///
    /// A master asks for its first integrity scan at once; a worker dials its master at once.
    pub fn new(config: NodeConfig, seed: u64, now: Instant) -> Node {
        let rng = Rng::from_seed(seed);
        let intervals = config.items.intervals;
        let mut conn_config = config.connection.clone();
        conn_config.keep_alive = intervals.worker.keep_alive;
        conn_config.max_failed_keepalive_attempts = intervals.worker.max_failed_keepalive_attempts;
        conn_config.request_timeout = intervals.communication.timeout_cluster_request;
        let profile = conn_config.profile;
        let claims: Vec<&str> = match config.node_type {
            NodeType::Master => super::master::CLAIMED.to_vec(),
            NodeType::Worker => super::worker::CLAIMED.to_vec(),
        };
        conn_config = conn_config.claim(
            claims
                .into_iter()
                .filter_map(|c| Command::new(profile, c.as_bytes()).ok()),
        );
        let role = match config.node_type {
            NodeType::Master => Role::Master(MasterState::new(now, &config)),
            NodeType::Worker => Role::Worker(WorkerState::new(now, &config)),
        };
        let mut node = Node {
            task_rng: rng.fork(STREAM_TASK_IDS),
            name_rng: rng.fork(STREAM_PACKAGE_NAMES),
            rng,
            config,
            conn_config,
            peers: BTreeMap::new(),
            orphans: BTreeMap::new(),
            outputs: VecDeque::new(),
            effects: BTreeMap::new(),
            next_effect: 0,
            next_seq: 0,
            next_outgoing: PeerId::OUTGOING,
            role,
        };
        if !super::config::valid_node_name(node.config.node_name.as_bytes()) {
            // Packages and `queue/cluster/<name>/` could not be named: no round would start.
            let message = format!(
                "node name {:?} breaks the node-name rule: nothing will synchronise",
                node.config.node_name
            );
            node.event(NodeEvent::Error {
                peer: None,
                message,
            });
        }
        match node.config.node_type {
            NodeType::Master => node.master_start(now),
            NodeType::Worker => node.worker_dial(now),
        }
        node
    }

    // ----------------------------------------------------------------------------------------
    // Getters

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Master or worker.
    pub fn node_type(&self) -> NodeType {
        self.config.node_type
    }

    /// Open connections.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// False when the adapter should stop reading from `peer` for now: the bytes it sent are
    /// still being written to disk, or it does not read what we send it (at least
    /// [`NodeLimits::max_queued_output`](super::NodeLimits::max_queued_output) bytes yielded for
    /// it are not reported written). False for an unknown peer.
    pub fn wants_input(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| {
            p.disk.bytes < self.config.limits.max_pending_disk_bytes
                && p.queued < self.config.limits.max_queued_output
        })
    }

    /// Bytes yielded for `peer` as transmits and not yet reported with [`Node::handle_written`].
    pub fn queued_output(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.queued)
    }

    /// Effects handed out and not yet answered.
    pub fn effects_in_flight(&self) -> usize {
        self.effects.len()
    }

    /// The protocol connection of `peer` (counters, keepalive state), for inspection.
    pub fn connection(&self, peer: PeerId) -> Option<&Connection> {
        self.peers.get(&peer).map(|p| &p.conn)
    }

    /// Wall-clock time at `now`, from the configured anchor.
    pub fn unix_time(&self, now: Instant) -> Timestamp {
        unix_time_at(&self.conn_config.wall_clock, now)
    }

    // ----------------------------------------------------------------------------------------
    // Inputs

    /// The adapter accepted (`Origin::Incoming`) or established (`Origin::Outgoing`, after
    /// [`Output::Connect`]) a connection; `remote_addr` is the peer's `ip:port`.
    pub fn handle_connected(
        &mut self,
        now: Instant,
        peer: PeerId,
        remote_addr: &str,
        origin: Origin,
    ) {
        match (self.config.node_type, origin) {
            (NodeType::Master, Origin::Incoming) => {
                self.add_peer(
                    now,
                    peer,
                    remote_addr,
                    Side::Server,
                    Session::Master(MasterPeer::default()),
                );
            }
            (node_type, Origin::Local) => {
                // The local socket is the operator's own: no key, no hello (upstream's local
                // server). A master's session never registers, so only get_nodes / get_health
                // work; a worker forwards those two to its master.
                let mut local = self.conn_config.clone();
                local.key = None;
                local.require_hello = false;
                let session = match node_type {
                    NodeType::Master => Session::Master(MasterPeer::default()),
                    NodeType::Worker => {
                        // Only these two reach the worker; the master's commands (`sync_m_c`,
                        // ...) are answered as unknown by the connection.
                        local.claimed_commands = super::worker::LOCAL_CLAIMED
                            .iter()
                            .filter_map(|c| Command::new(local.profile, c.as_bytes()).ok())
                            .collect();
                        Session::Local
                    }
                };
                self.add_peer_with(now, peer, remote_addr, Side::Server, session, local);
            }
            (NodeType::Worker, Origin::Outgoing) => self.worker_connected(now, peer, remote_addr),
            _ => {
                // A master does not dial; a worker accepts nothing on its cluster port.
                self.outputs.push_back(Output::Close { peer });
            }
        }
    }

    /// The connection is gone (reset, EOF, failed dial). Unknown ids are ignored.
    pub fn handle_closed(&mut self, now: Instant, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            self.remove_peer(now, peer, CloseReason::Lost, false);
        } else if let Role::Worker(_) = self.role {
            self.worker_dial_failed(now, peer);
        }
    }

    /// Bytes read from `peer`, in any split.
    pub fn handle_input(&mut self, now: Instant, peer: PeerId, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.conn.handle_input(now, bytes);
        self.pump(now, peer);
        self.check_overload(now, peer);
    }

    /// Processes everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in ids {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.conn.handle_timeout(now);
                self.pump(now, peer);
            }
        }
        match self.role {
            Role::Master(_) => self.master_timeout(now),
            Role::Worker(_) => self.worker_timeout(now),
        }
    }

    /// The adapter ran effect `id`. Unknown ids are ignored.
    pub fn handle_effect_done(&mut self, now: Instant, id: EffectId, result: EffectResult) {
        let Some(job) = self.effects.remove(&id) else {
            return;
        };
        match job {
            Job::Scan => self.master_scan_done(now, result),
            Job::Peer { peer, seq, step } => {
                let live = self.peers.get(&peer).is_some_and(|p| p.seq == seq);
                if live {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.disk.in_flight = None;
                    }
                    self.step_done(now, peer, step, result);
                    self.run_disk(peer);
                    self.pump(now, peer);
                } else if let Some(mut queue) = self.orphans.remove(&(peer, seq)) {
                    queue.in_flight = None;
                    if let Some((effect, step)) = queue.jobs.pop_front() {
                        let id = self.emit_effect(effect, Job::Peer { peer, seq, step });
                        queue.in_flight = Some(id);
                        self.orphans.insert((peer, seq), queue);
                    }
                }
            }
        }
    }

    /// `bytes` more of `peer`'s transmits were written to its socket (the kernel took them).
    ///
    /// The contract: every byte of every [`Output::Transmit`] is reported, in any number of
    /// calls (one per write, or one per flush of several transmits), once it left the adapter's
    /// hands; until then it counts as queued for the peer (see [`Node::wants_input`]). Reports
    /// for an unknown peer (closed meanwhile) are ignored; reporting more than was yielded
    /// saturates at zero. Peer ids must not be reused while reports for an old connection may
    /// still come in.
    ///
    /// Below [`NodeLimits::max_queued_output`](super::NodeLimits::max_queued_output) again, file
    /// chunks held back for the peer are read: drain [`Node::poll_output`] afterwards.
    pub fn handle_written(&mut self, now: Instant, peer: PeerId, bytes: usize) {
        let limit = self.config.limits.max_queued_output;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.queued = p.queued.saturating_sub(bytes);
        if p.queued < limit {
            self.resume_sends(now, peer);
            self.pump(now, peer);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Outputs

    /// The next output, `None` when drained; then arm a timer at [`Node::poll_timeout`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called (`None`: nothing scheduled).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.peers.values().filter_map(|p| p.conn.poll_timeout());
        let role = match &self.role {
            Role::Master(m) => m.next_timeout(self.peers.values()),
            Role::Worker(w) => w.next_timeout(),
        };
        conns.chain(role).min()
    }

    // ----------------------------------------------------------------------------------------
    // Shared machinery

    pub(super) fn add_peer(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: &str,
        side: Side,
        session: Session,
    ) {
        let config = self.conn_config.clone();
        self.add_peer_with(now, peer, addr, side, session, config);
    }

    /// [`Node::add_peer`] with a connection configuration of its own (the local socket's).
    fn add_peer_with(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: &str,
        side: Side,
        session: Session,
        config: ConnectionConfig,
    ) {
        let stream = STREAM_CONNECTIONS + self.next_seq;
        let conn = Connection::new(config, side, self.rng.fork(stream), now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.peers.insert(
            peer,
            Peer {
                conn,
                seq,
                addr: addr.to_owned(),
                queued: 0,
                disk: DiskQueue::default(),
                requests: BTreeMap::new(),
                incoming: BTreeMap::new(),
                sending: BTreeMap::new(),
                session,
            },
        );
    }

    pub(super) fn alloc_outgoing(&mut self) -> PeerId {
        let id = PeerId(self.next_outgoing);
        self.next_outgoing = self.next_outgoing.wrapping_add(1).max(PeerId::OUTGOING);
        id
    }

    pub(super) fn emit_effect(&mut self, effect: Effect, job: Job) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        self.effects.insert(id, job);
        self.outputs.push_back(Output::Effect { id, effect });
        id
    }

    pub(super) fn event(&mut self, event: NodeEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// A task id as upstream draws it: decimal `random.randint(0, 2**32)`.
    pub(super) fn new_task_id(&mut self) -> String {
        self.task_rng.below((1u64 << 32) + 1).to_string()
    }

    /// `/queue/cluster/<worker>/<worker>-<time>-<digits>.zip`.
    pub(super) fn package_path(&mut self, now: Instant, worker: &str) -> Option<InstallPath> {
        let digits = self.name_rng.below(10_000_000_000_000_000);
        let time = self.unix_time(now);
        crate::integrity::package::package_file_name(worker, time, digits).ok()
    }

    /// Queues a disk job of `peer` (run when the previous one returns).
    pub(super) fn queue_disk(&mut self, peer: PeerId, effect: Effect, step: Step) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Effect::AppendFile { data, .. } = &effect {
            p.disk.bytes += data.len();
        }
        p.disk.jobs.push_back((effect, step));
        self.run_disk(peer);
    }

    fn run_disk(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.disk.in_flight.is_some() {
            return;
        }
        let Some((effect, step)) = p.disk.jobs.pop_front() else {
            return;
        };
        if let Effect::AppendFile { data, .. } = &effect {
            p.disk.bytes = p.disk.bytes.saturating_sub(data.len());
        }
        let seq = p.seq;
        let id = self.emit_effect(effect, Job::Peer { peer, seq, step });
        if let Some(p) = self.peers.get_mut(&peer) {
            p.disk.in_flight = Some(id);
        }
    }

    /// Sends requests on `peer`'s connection, remembering what the reply continues.
    pub(super) fn request(
        &mut self,
        now: Instant,
        peer: PeerId,
        command: &str,
        payload: &[u8],
        pending: Pending,
    ) -> bool {
        let profile = self.conn_config.profile;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Ok(command) = Command::new(profile, command.as_bytes()) else {
            return false;
        };
        match p.conn.send_request(now, command, payload) {
            Ok(counter) => {
                p.requests.insert(counter, pending);
                true
            }
            Err(error) => {
                let message = format!("cannot send {command}: {error}");
                self.event(NodeEvent::Error {
                    peer: Some(peer),
                    message,
                });
                false
            }
        }
    }

    pub(super) fn reply(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        ok: bool,
        payload: &[u8],
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let command = if ok { Command::OK } else { Command::ERR };
        // Replies fail only on a closed connection, which the pump reports.
        let _ = p.conn.reply(now, counter, command, payload);
    }

    /// Upstream's `end_receiving_file` for `<task> <file>`: replies `err` `Task name not received
    /// correctly` without a space, `err` `Task name doesnt exist` when `known(task)` is false,
    /// else `ok` `File correctly received`, and says where the named file is.
    pub(super) fn end_receiving_file(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
        known: impl FnOnce(&Node, &[u8]) -> bool,
    ) -> Option<Ended> {
        use super::master::sync_text;
        let Some(at) = payload.iter().position(|&b| b == b' ') else {
            let text = sync_text::TASK_NOT_RECEIVED.as_bytes();
            self.reply(now, peer, counter, false, text);
            return None;
        };
        let (task, file) = (&payload[..at], payload.slice(at + 1..));
        if !known(self, task) {
            let text = sync_text::TASK_UNKNOWN.as_bytes();
            self.reply(now, peer, counter, false, text);
            return None;
        }
        let text = sync_text::FILE_RECEIVED.as_bytes();
        self.reply(now, peer, counter, true, text);
        if &file[..] == b"Error" {
            return Some(Ended::Error);
        }
        let state = self
            .peers
            .get(&peer)
            .and_then(|p| p.incoming.get(&file))
            .map(|f| f.state);
        Some(match state {
            Some(IncomingState::Committed) => Ended::Ready(file),
            Some(IncomingState::Committing) => Ended::Committing(file),
            _ => Ended::Missing(file),
        })
    }

    /// Starts sending `path` (`size` bytes) to `peer`; chunks are read as the connection asks.
    pub(super) fn send_file(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: &InstallPath,
        size: u64,
    ) -> Option<TransferId> {
        let p = self.peers.get_mut(&peer)?;
        match p.conn.send_file(now, path.as_str().as_bytes()) {
            Ok(transfer) => {
                p.sending.insert(
                    transfer,
                    Sending {
                        path: path.clone(),
                        size,
                        offset: 0,
                        wanted: None,
                        reading: false,
                        failed: None,
                    },
                );
                Some(transfer)
            }
            Err(error) => {
                let message = format!("cannot send {path}: {error}");
                self.event(NodeEvent::Error {
                    peer: Some(peer),
                    message,
                });
                None
            }
        }
    }

    /// Drains the connection of `peer`: transmits into the output queue, events to the roles,
    /// until both are empty.
    pub(super) fn pump(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            while let Some(bytes) = p.conn.poll_transmit() {
                p.queued += bytes.len();
                self.outputs.push_back(Output::Transmit { peer, bytes });
            }
            let Some(event) = p.conn.poll_event() else {
                return;
            };
            self.on_event(now, peer, event);
        }
    }

    fn on_event(&mut self, now: Instant, peer: PeerId, event: Event) {
        match event {
            Event::Request {
                counter,
                command,
                payload,
            } => match self.role {
                Role::Master(_) => self.master_request(now, peer, counter, &command, payload),
                Role::Worker(_) => self.worker_request(now, peer, counter, &command, payload),
            },
            Event::Response { counter, reply, .. } => {
                self.on_reply(now, peer, counter, Some(reply))
            }
            Event::TimedOut { counter, .. } | Event::Aborted { counter, .. } => {
                self.on_reply(now, peer, counter, None);
            }
            Event::FileOpened { path } => self.file_opened(peer, path),
            Event::FileChunk { path, data } => {
                if let Some(target) = self.receiving_target(peer, &path) {
                    self.queue_disk(peer, Effect::AppendFile { path: target, data }, Step::Quiet);
                }
            }
            Event::FileReceived { path, .. } => {
                if let Some(target) = self.receiving_target(peer, &path) {
                    if let Some(f) = self
                        .peers
                        .get_mut(&peer)
                        .and_then(|p| p.incoming.get_mut(&path))
                    {
                        f.state = IncomingState::Committing;
                    }
                    let step = Step::File {
                        wire: path,
                        commit: true,
                    };
                    self.queue_disk(peer, Effect::CommitFile { path: target }, step);
                }
            }
            Event::FileFailed { path, .. } => {
                let target = self.receiving_target(peer, &path);
                if let Some(f) = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.incoming.get_mut(&path))
                {
                    f.state = IncomingState::Failed;
                }
                if let Some(target) = target {
                    self.queue_disk(peer, Effect::AbortFile { path: target }, Step::Quiet);
                }
            }
            Event::FileChunkWanted { transfer, max_len } => {
                if let Some(s) = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.sending.get_mut(&transfer))
                {
                    s.wanted = Some(max_len);
                }
                self.resume_sends(now, peer);
            }
            Event::FileSent { transfer, .. } => {
                let sent = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.sending.remove(&transfer));
                if let Some(sent) = sent {
                    self.file_sent(now, peer, sent.path, sent.failed);
                }
            }
            Event::TransferFailed { transfer, failure } => {
                let sent = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.sending.remove(&transfer));
                if let Some(sent) = sent {
                    self.file_sent(now, peer, sent.path, Some(failure_text(&failure)));
                }
            }
            Event::StringComplete { .. }
            | Event::StringExpired { .. }
            | Event::StringSent { .. } => {}
            Event::Violation(error) => {
                self.event(NodeEvent::Error {
                    peer: Some(peer),
                    message: error.to_string(),
                });
            }
            Event::Closed { error } => {
                let reason = CloseReason::Connection(error.as_ref().map(|e| e.to_string()));
                self.remove_peer_after(now, peer, reason, error, true);
            }
            _ => {}
        }
    }

    fn on_reply(&mut self, now: Instant, peer: PeerId, counter: u32, reply: Option<Reply>) {
        let Some(pending) = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.requests.remove(&counter))
        else {
            return;
        };
        // A timeout or abort reads as upstream's timeout text.
        let value = match &reply {
            Some(reply) => reply.upstream_value(),
            None => wazuh_cluster_protocol::message::text::TIMEOUT.to_vec(),
        };
        match self.role {
            Role::Master(_) => self.master_reply(now, peer, pending, value),
            Role::Worker(_) => self.worker_reply(now, peer, pending, value),
        }
    }

    /// The local file for an incoming wire path, when it is accepted.
    fn receiving_target(&self, peer: PeerId, wire: &Bytes) -> Option<InstallPath> {
        let f = self.peers.get(&peer)?.incoming.get(wire)?;
        match f.state {
            IncomingState::Receiving | IncomingState::Committing => f.target.clone(),
            _ => None,
        }
    }

    /// A peer opens a file: only `/queue/cluster/<worker>/<one name>` of the worker of this link
    /// is written (upstream writes wherever the path points).
    fn file_opened(&mut self, peer: PeerId, wire: Bytes) {
        let worker = match &self.role {
            Role::Worker(_) => self
                .peers
                .get(&peer)
                // A local client never sends the worker its master's files.
                .filter(|p| matches!(p.session, Session::Worker))
                .map(|_| self.config.node_name.clone()),
            Role::Master(_) => self.peers.get(&peer).and_then(|p| match &p.session {
                Session::Master(m) => m.worker.as_ref().map(|w| w.name.clone()),
                Session::Worker | Session::Local => None,
            }),
        };
        let target = worker.and_then(|w| {
            let text = std::str::from_utf8(&wire).ok()?;
            let path = InstallPath::new(text).ok()?;
            let expected = InstallPath::new("/queue/cluster").ok()?.join(&w).ok()?;
            (path.parent().as_ref() == Some(&expected)).then_some(path)
        });
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        // Reopening a path restarts it; a refused path is remembered so its `_e` fails.
        let previous = p.incoming.insert(
            wire.clone(),
            Incoming {
                target: target.clone(),
                state: IncomingState::Receiving,
            },
        );
        if previous.is_none() && p.incoming.len() > self.conn_config.max_incoming_files * 4 {
            // Keep the table bounded: forget finished entries first.
            p.incoming
                .retain(|k, f| *k == wire || f.state == IncomingState::Receiving);
        }
        match target {
            Some(path) => {
                self.queue_disk(
                    peer,
                    Effect::BeginFile { path },
                    Step::File {
                        wire,
                        commit: false,
                    },
                );
            }
            None => {
                let message = format!("refused file path {:?}", String::from_utf8_lossy(&wire));
                self.event(NodeEvent::Error {
                    peer: Some(peer),
                    message,
                });
            }
        }
    }

    /// Produces chunk reads for transfers that asked for one, while the peer's queue has room
    /// (so a big package never pushes keepalives and replies behind megabytes of chunks).
    fn resume_sends(&mut self, now: Instant, peer: PeerId) {
        let limit = self.config.limits.max_queued_output;
        let read_chunk = self.config.limits.read_chunk.max(1);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.queued >= limit {
            return;
        }
        let mut jobs = Vec::new();
        for (transfer, s) in &mut p.sending {
            let Some(max_len) = s.wanted else { continue };
            if s.reading {
                continue;
            }
            if s.offset >= s.size {
                s.wanted = None;
                // Fails only on a closed connection, which the pump reports.
                let _ = p.conn.finish_file(now, *transfer);
                continue;
            }
            s.reading = true;
            let left = usize::try_from(s.size - s.offset).unwrap_or(usize::MAX);
            let len = max_len.min(read_chunk).min(left);
            let effect = Effect::ReadChunk {
                path: s.path.clone(),
                offset: s.offset,
                len,
            };
            jobs.push((effect, Step::Chunk(*transfer)));
        }
        for (effect, step) in jobs {
            self.queue_disk(peer, effect, step);
        }
    }

    fn step_done(&mut self, now: Instant, peer: PeerId, step: Step, result: EffectResult) {
        match step {
            Step::Quiet => {
                if let Err(error) = result {
                    self.event(NodeEvent::Error {
                        peer: Some(peer),
                        message: error.to_string(),
                    });
                }
            }
            Step::File { wire, commit } => {
                let ok = result.is_ok();
                if let Err(error) = &result {
                    self.event(NodeEvent::Error {
                        peer: Some(peer),
                        message: error.to_string(),
                    });
                }
                let Some(f) = self
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.incoming.get_mut(&wire))
                else {
                    return;
                };
                if !ok {
                    f.state = IncomingState::Failed;
                } else if commit && f.state == IncomingState::Committing {
                    f.state = IncomingState::Committed;
                }
                if commit {
                    match self.role {
                        Role::Master(_) => self.master_file_committed(now, peer, &wire),
                        Role::Worker(_) => self.worker_file_committed(now, peer, &wire),
                    }
                }
            }
            Step::Chunk(transfer) => self.chunk_read(now, peer, transfer, result),
            Step::BuildWorker(kind) => self.worker_built(now, peer, kind, result),
            Step::ApplyMaster => self.worker_applied(now, peer, result),
            Step::ReadWorkerIntegrity => self.master_read_integrity(now, peer, result),
            Step::BuildMaster => self.master_package_built(now, peer, result),
            Step::ApplyWorker(kind) => self.master_applied(now, peer, kind, result),
        }
    }

    fn file_sent(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: InstallPath,
        failure: Option<String>,
    ) {
        match self.role {
            Role::Master(_) => self.master_file_sent(now, peer, path, failure),
            Role::Worker(_) => self.worker_file_sent(now, peer, path, failure),
        }
    }

    fn chunk_read(
        &mut self,
        now: Instant,
        peer: PeerId,
        transfer: TransferId,
        result: EffectResult,
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(s) = p.sending.get_mut(&transfer) else {
            return;
        };
        s.reading = false;
        let data = match result {
            Ok(EffectOutput::Chunk(data)) if !data.is_empty() => data,
            other => {
                // The file ended early or cannot be read: end the transfer now (the connection
                // offers no cancel) and report it failed when the peer confirms.
                s.failed = Some(match other {
                    Err(error) => format!("Error reading file to send: {error}"),
                    Ok(_) => "Error reading file to send: file is shorter than built".to_owned(),
                });
                s.wanted = None;
                let _ = p.conn.finish_file(now, transfer);
                return;
            }
        };
        s.offset += data.len() as u64;
        s.wanted = None;
        if let Err(error) = p.conn.file_chunk(now, transfer, &data) {
            let message = format!("sending a chunk: {error}");
            self.event(NodeEvent::Error {
                peer: Some(peer),
                message,
            });
        }
    }

    /// Closes a peer that holds more unwritten input than allowed.
    fn check_overload(&mut self, now: Instant, peer: PeerId) {
        let limit = self.config.limits.max_pending_disk_bytes.saturating_mul(2);
        if self.peers.get(&peer).is_some_and(|p| p.disk.bytes > limit) {
            self.remove_peer(now, peer, CloseReason::Overloaded, true);
        }
    }

    /// Forgets a connection: role clean-up, staged writes aborted, packages being sent removed.
    /// `tell_adapter`: emit [`Output::Close`] (the adapter did not report the close itself).
    pub(super) fn remove_peer(
        &mut self,
        now: Instant,
        peer: PeerId,
        reason: CloseReason,
        tell_adapter: bool,
    ) {
        self.remove_peer_after(now, peer, reason, None, tell_adapter);
    }

    /// [`Node::remove_peer`] after the protocol core closed the link with `error` (kept typed
    /// for [`NodeEvent::HandshakeFailed`]).
    fn remove_peer_after(
        &mut self,
        now: Instant,
        peer: PeerId,
        reason: CloseReason,
        error: Option<ConnectionError>,
        tell_adapter: bool,
    ) {
        let Some(mut p) = self.peers.remove(&peer) else {
            return;
        };
        p.conn.close();
        // Drain what the close produced (aborted requests, failed transfers): nothing continues.
        while p.conn.poll_event().is_some() {}
        while let Some(bytes) = p.conn.poll_transmit() {
            self.outputs.push_back(Output::Transmit { peer, bytes });
        }
        let mut cleanup = DiskQueue {
            in_flight: p.disk.in_flight,
            ..DiskQueue::default()
        };
        // Every file this link may hold a staged write for is aborted: the `incoming` table
        // alone misses some (a transfer that failed while its `BeginFile` was queued or in
        // flight is `Failed`; a path sent again while its first copy was committing lost its
        // entry when that copy was processed), so the queued file jobs and a `BeginFile` in
        // flight name theirs too. Aborting a path with nothing open fails, harmlessly.
        let mut aborts = BTreeSet::new();
        if let Some(Job::Peer {
            step: Step::File {
                wire,
                commit: false,
            },
            ..
        }) = p.disk.in_flight.and_then(|id| self.effects.get(&id))
            && let Some(path) = std::str::from_utf8(wire)
                .ok()
                .and_then(|text| InstallPath::new(text).ok())
        {
            aborts.insert(path);
        }
        for (effect, _) in p.disk.jobs.drain(..) {
            if let Effect::BeginFile { path }
            | Effect::AppendFile { path, .. }
            | Effect::CommitFile { path }
            | Effect::AbortFile { path } = effect
            {
                aborts.insert(path);
            }
        }
        for f in p.incoming.values() {
            if let (Some(target), IncomingState::Receiving | IncomingState::Committing) =
                (&f.target, f.state)
            {
                aborts.insert(target.clone());
            }
        }
        for path in aborts {
            cleanup
                .jobs
                .push_back((Effect::AbortFile { path }, Step::Quiet));
        }
        // Packages of rounds this link was running (built, being built, or on their way).
        let mut packages: Vec<InstallPath> = p.sending.values().map(|s| s.path.clone()).collect();
        match &self.role {
            Role::Worker(w) => {
                // Only the master link's close ends the rounds (not a local client's).
                if matches!(p.session, Session::Worker) {
                    packages.extend(w.rounds.iter().filter_map(|r| r.package().cloned()))
                }
            }
            Role::Master(_) => {
                if let Session::Master(m) = &p.session {
                    packages.extend(m.packages());
                }
            }
        }
        packages.sort();
        packages.dedup();
        for path in packages {
            cleanup
                .jobs
                .push_back((Effect::RemoveFile { path }, Step::Quiet));
        }
        if cleanup.in_flight.is_some() {
            self.orphans.insert((peer, p.seq), cleanup);
        } else if let Some((effect, step)) = cleanup.jobs.pop_front() {
            let id = self.emit_effect(
                effect,
                Job::Peer {
                    peer,
                    seq: p.seq,
                    step,
                },
            );
            cleanup.in_flight = Some(id);
            self.orphans.insert((peer, p.seq), cleanup);
        }
        if tell_adapter {
            self.outputs.push_back(Output::Close { peer });
        }
        // A worker link that never passed `hello` has no name to log under: say here why it
        // ended (upstream: "Error during handshake with incoming connection"). Local clients
        // need no hello.
        let unregistered = matches!(&p.session, Session::Master(m) if m.worker.is_none());
        if unregistered && p.conn.config().require_hello {
            let reason = HandshakeFailure::of(&reason, error);
            self.event(NodeEvent::HandshakeFailed {
                peer,
                addr: p.addr.clone(),
                reason,
            });
        }
        match self.role {
            Role::Master(_) => self.master_peer_removed(now, peer, p, reason),
            Role::Worker(_) => self.worker_peer_removed(now, peer, reason),
        }
    }
}

/// The wall-clock time at `now` from an anchor (sub-second precision, unlike
/// [`WallClock::unix_secs_at`]). Public so that an adapter dates its effects exactly as the node
/// dates its own (one conversion, not two that could disagree).
pub fn unix_time_at(clock: &WallClock, now: Instant) -> Timestamp {
    let base = Duration::from_secs(clock.unix_secs);
    let at = if now >= clock.instant {
        base + (now - clock.instant)
    } else {
        base.saturating_sub(clock.instant - now)
    };
    Timestamp {
        secs: i64::try_from(at.as_secs()).unwrap_or(i64::MAX),
        nanos: at.subsec_nanos(),
    }
}

/// Upstream's text for a failed transfer (what `send_file` returned).
fn failure_text(failure: &TransferFailure) -> String {
    match failure {
        TransferFailure::TimedOut { .. } => {
            String::from_utf8_lossy(wazuh_cluster_protocol::message::text::TIMEOUT).into_owned()
        }
        TransferFailure::Refused(reply) => {
            String::from_utf8_lossy(&reply.upstream_value()).into_owned()
        }
        _ => "Error sending file: connection closed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::unix_time_at;
    use crate::integrity::storage::Timestamp;
    use wazuh_cluster_protocol::connection::WallClock;

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need an arbitrary origin instant"
    )]
    fn origin() -> std::time::Instant {
        std::time::Instant::now()
    }

    #[test]
    fn wall_time_keeps_sub_second_precision_on_both_sides_of_the_anchor() {
        let t0 = origin() + Duration::from_secs(10);
        // (anchor's Unix seconds, milliseconds from the anchor, expected time)
        let cases: [(u64, i64, i64, u32); 3] = [
            (1_795_682_923, 406_941, 1_795_683_329, 941_000_000),
            (1_795_682_923, -1_500, 1_795_682_921, 500_000_000),
            // The tokio adapter's case (it dates its effects with this function).
            (1_800_000_000, 2_500, 1_800_000_002, 500_000_000),
        ];
        for (anchor, offset_ms, secs, nanos) in cases {
            let clock = WallClock::new(t0, anchor);
            let offset = Duration::from_millis(offset_ms.unsigned_abs());
            let at = if offset_ms >= 0 {
                t0 + offset
            } else {
                t0 - offset
            };
            assert_eq!(
                unix_time_at(&clock, at),
                Timestamp { secs, nanos },
                "{offset_ms} ms from {anchor}"
            );
        }
    }
}
