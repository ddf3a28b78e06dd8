//! The [`Node`]: one master or worker, as a time-driven state machine.
//!
//! It is a `Shell` (connections, disk queues, transfers, outputs) and a role (master or
//! worker). Every input the adapter gives goes into the shell first; what the shell cannot settle
//! alone reaches the role as one `Input` through `Role::handle`, the node's single dispatch
//! point.

use std::collections::BTreeMap;
use std::time::Instant;

use wazuh_cluster_protocol::connection::{Connection, WallClock};

use super::api::{self, ClusterView, DistributedApi};
use super::config::{NodeConfig, NodeType, valid_node_name};
use super::effects::{EffectResult, IncomingFileId};
use super::error::NodeError;
use super::events::CloseReason;
use super::health::ClusterSnapshot;
use super::health::health_json;
use super::ids::{ApiCallId, EffectId, PeerId};
use super::local_clients::LocalClients;
use super::master::{self, MasterRole};
use super::output::{Origin, Output};
use super::shell::{
    Claims, FileBudgetUse, Input, MemoryBudgetUse, OutputGateUse, STREAM_API, Shell,
};
use super::sync_kind::SyncKind;
use super::worker::{self, WorkerRole};
use crate::integrity::metadata::IntegrityMetadata;
use crate::integrity::storage::Timestamp;

/// The role a node plays.
#[derive(Debug)]
enum Role {
    Master(MasterRole),
    Worker(WorkerRole),
}

impl Role {
    /// The one place where an input reaches the role that decides about it.
    fn handle(&mut self, shell: &mut Shell, now: Instant, input: Input) {
        match self {
            Role::Master(master) => master.handle(shell, now, input),
            Role::Worker(worker) => worker.handle(shell, now, input),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        match self {
            Role::Master(master) => master.next_timeout(),
            Role::Worker(worker) => worker.next_timeout(),
        }
    }

    fn master(&self) -> Option<&MasterRole> {
        match self {
            Role::Master(master) => Some(master),
            Role::Worker(_) => None,
        }
    }

    /// Whether the role still owes local client `peer` an answer.
    fn owes_local(&self, peer: PeerId) -> bool {
        self.worker().is_some_and(|w| w.owes_local(peer))
    }

    fn worker(&self) -> Option<&WorkerRole> {
        match self {
            Role::Worker(worker) => Some(worker),
            Role::Master(_) => None,
        }
    }
}

/// What the distributed API part reads of the role.
struct RoleView<'a>(&'a Role);

impl ClusterView for RoleView<'_> {
    fn worker_links(&self) -> Vec<(String, PeerId)> {
        self.0
            .master()
            .map(|m| {
                m.worker_links()
                    .map(|(name, peer)| (name.to_owned(), peer))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn master_link(&self) -> Option<PeerId> {
        self.0.worker()?.master_link()
    }

    fn agent_nodes(&self) -> BTreeMap<String, String> {
        self.0
            .master()
            .map(MasterRole::agent_nodes)
            .unwrap_or_default()
    }

    fn snapshot(&self, shell: &Shell) -> Option<ClusterSnapshot> {
        Some(self.0.master()?.snapshot(shell))
    }
}

/// A master or worker node. See the [module documentation](super) for the run loop.
#[derive(Debug)]
pub struct Node {
    shell: Shell,
    role: Role,
    api: DistributedApi,
    local: LocalClients,
}

impl Node {
    /// A node at `now`. `seed` drives every random choice (connection counters, Fernet IVs, task
    /// ids, package names): the same seed and inputs give the same outputs, byte for byte.
    ///
    /// A master asks for its first integrity scan at once; a worker dials its master at once.
    pub fn new(config: NodeConfig, seed: u64, now: Instant) -> Node {
        let node_type = config.node_type;
        let role_claims = match node_type {
            NodeType::Master => master::CLAIMS,
            NodeType::Worker => worker::CLAIMS,
        };
        let (cluster, local) = api::claims(node_type);
        let api_claims = Claims { cluster, local };
        let mut shell = Shell::new(config, seed, &[role_claims, api_claims]);
        let name = &shell.config().node_name;
        if !valid_node_name(name.as_bytes()) {
            // Packages and `queue/cluster/<name>/` could not be named: no round would start.
            let name = name.clone();
            shell.error(None, NodeError::BadNodeName { name });
        }
        let role = match node_type {
            NodeType::Master => Role::Master(MasterRole::new(&mut shell, now)),
            NodeType::Worker => Role::Worker(WorkerRole::new(&mut shell, now)),
        };
        let api = DistributedApi::new(shell.fork_rng(STREAM_API));
        Node {
            shell,
            role,
            api,
            local: LocalClients::default(),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Getters

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        self.shell.config()
    }

    /// Master or worker.
    pub fn node_type(&self) -> NodeType {
        self.config().node_type
    }

    /// Open connections.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.shell.peer_ids()
    }

    /// False when the adapter should stop reading from `peer` for now: the bytes it sent are
    /// still being written to disk, or it does not read what we send it (at least
    /// [`NodeLimits::max_queued_output`](super::NodeLimits::max_queued_output) bytes yielded for
    /// it are not reported written). False for an unknown peer.
    pub fn wants_input(&self, peer: PeerId) -> bool {
        self.shell.wants_input(peer)
    }

    /// Bytes yielded for `peer` as transmits and not yet reported with [`Node::handle_written`].
    pub fn queued_output(&self, peer: PeerId) -> usize {
        self.shell.queued_output(peer)
    }

    /// Effects handed out and not yet answered.
    pub fn effects_in_flight(&self) -> usize {
        self.shell.effects_in_flight()
    }

    /// Incoming files whose staged write the node knows to be open on its open links (from the
    /// effects that returned), in id order. With no effect in flight and every closed link's
    /// clean-up run, the executor's [`EffectExecutor::open_files`](super::EffectExecutor::open_files)
    /// must be the same list.
    pub fn open_incoming_files(&self) -> Vec<IncomingFileId> {
        self.shell.open_incoming_files()
    }

    /// What the descriptor budget of files being received holds now (see
    /// [`NodeLimits::max_transfer_descriptors`](super::NodeLimits::max_transfer_descriptors)):
    /// files from their `new_file` until their staged write is closed, closed links included.
    pub fn file_budget(&self) -> FileBudgetUse {
        self.shell.file_budget()
    }

    /// What the output gate holds now (see
    /// [`NodeLimits::max_output_in_flight`](super::NodeLimits::max_output_in_flight)): the
    /// bytes of file chunks and string pieces in flight and the links waiting for their turn.
    pub fn output_gate(&self) -> OutputGateUse {
        self.shell.output_gate()
    }

    /// What the memory budget holds now (see
    /// [`NodeLimits::memory_budget`](super::NodeLimits::memory_budget)): the peers' input
    /// (frames, strings, file data waiting for the disk) and the output not yet written.
    pub fn memory_budget(&self) -> MemoryBudgetUse {
        self.shell.memory_budget()
    }

    /// The protocol connection of `peer` (counters, keepalive state), for inspection.
    pub fn connection(&self, peer: PeerId) -> Option<&Connection> {
        self.shell.connection(peer)
    }

    /// The adapter read the wall clock at `now` and found `unix_secs` (the node never reads a
    /// clock): when it differs from what the anchor gives, the clock was stepped, and from now
    /// on everything the node dates (file mtimes, Fernet tokens, the agent-info it calls recent)
    /// follows the new anchor. Timers run on `now` and are not moved.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.shell.set_wall_clock(WallClock::new(now, unix_secs));
    }

    /// Wall-clock time at `now`, from the configured anchor.
    pub fn unix_time(&self, now: Instant) -> Timestamp {
        self.shell.unix_time(now)
    }

    /// Master: the registered workers, by name.
    pub fn workers(&self) -> Vec<String> {
        self.role
            .master()
            .map(MasterRole::worker_names)
            .unwrap_or_default()
    }

    /// Master: the connection of worker `name`.
    pub fn worker_peer(&self, name: &str) -> Option<PeerId> {
        self.role.master()?.worker_peer(name)
    }

    /// Master: integrity comparisons run since start (`None` on a worker): what workers'
    /// metadata cost it, for tests and operators.
    pub fn integrity_comparisons(&self) -> Option<u64> {
        Some(self.role.master()?.comparisons())
    }

    /// Master: whether the `kind` lock of worker `name` is free (`None`: no such worker).
    pub fn lock_free(&self, name: &str, kind: SyncKind) -> Option<bool> {
        self.role.master()?.lock_free(name, kind)
    }

    /// Master: agent name → the worker it reports to, from the agent-info applied.
    pub fn agent_routes(&self) -> BTreeMap<String, String> {
        self.role
            .master()
            .map(|m| m.agent_routes().clone())
            .unwrap_or_default()
    }

    /// Master: its latest integrity metadata (`None` before the first scan finished).
    pub fn master_metadata(&self) -> Option<&IntegrityMetadata> {
        self.role.master()?.metadata()
    }

    /// Master: the `get_health` document for `filter` (`None` = every node), as JSON text in
    /// 3.9.5's shape (PROTOCOL.md §14.2). Empty on a worker.
    pub fn health(&self, filter: Option<&[String]>) -> String {
        self.role
            .master()
            .map(|m| health_json(&m.snapshot(&self.shell), filter))
            .unwrap_or_default()
    }

    /// Distributed API requests this node is answering.
    pub fn api_requests_in_progress(&self) -> usize {
        self.api.requests_in_progress()
    }

    /// Worker: the connection to the master once its `hello` was accepted.
    pub fn master_link(&self) -> Option<PeerId> {
        self.role.worker()?.master_link()
    }

    /// Worker: whether the `kind` round is idle (`None` on a master).
    pub fn round_idle(&self, kind: SyncKind) -> Option<bool> {
        Some(self.role.worker()?.round_idle(kind))
    }

    // ----------------------------------------------------------------------------------------
    // Inputs

    /// The adapter accepted (`Origin::Incoming`, `Origin::Local`) or established
    /// (`Origin::Outgoing`, after [`Output::Connect`]) a connection; `remote_addr` is the peer's
    /// `ip:port`.
    pub fn handle_connected(
        &mut self,
        now: Instant,
        peer: PeerId,
        remote_addr: &str,
        origin: Origin,
    ) {
        let addr = remote_addr.to_owned();
        self.dispatch(now, Input::Connected { peer, addr, origin });
        if origin == Origin::Local && self.shell.connection(peer).is_some() {
            self.local.connected(peer, now);
            self.make_room_for(now, peer);
        }
        self.pump(now, peer);
        self.shell.settle(now);
    }

    /// The connection is gone (reset, EOF, failed dial). Unknown ids are ignored.
    pub fn handle_closed(&mut self, now: Instant, peer: PeerId) {
        let input = if self.shell.connection(peer).is_some() {
            Input::Closed {
                peer,
                reason: CloseReason::Lost,
                tell_adapter: false,
            }
        } else {
            Input::DialFailed { peer }
        };
        self.dispatch(now, input);
        self.shell.settle(now);
    }

    /// Bytes read from `peer`, in any split.
    pub fn handle_input(&mut self, now: Instant, peer: PeerId, bytes: &[u8]) {
        self.local.heard(peer, now);
        self.shell.handle_input(now, peer, bytes);
        self.pump(now, peer);
        if self.shell.overloaded(peer) {
            let reason = CloseReason::Overloaded;
            let input = Input::Closed {
                peer,
                reason,
                tell_adapter: true,
            };
            self.dispatch(now, input);
        }
        self.shell.settle(now);
    }

    /// Processes everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Only the links with something due, in id order (what was due is asked again after
        // each visit, which may have changed the others): with 1,000 workers, visiting every
        // link on every timeout made a master's run cost the square of its workers.
        let mut after = None;
        while let Some(peer) = self.shell.next_due(now, after) {
            self.shell.handle_peer_timeout(now, peer);
            self.pump(now, peer);
            after = Some(peer);
        }
        self.dispatch(now, Input::Timeout);
        self.close_idle_local_clients(now);
        self.shell.settle(now);
    }

    /// The adapter ran effect `id`. Unknown ids are ignored.
    pub fn handle_effect_done(&mut self, now: Instant, id: EffectId, result: EffectResult) {
        // A chunk read of a link's outgoing file ends in its connection, which may then want
        // the next chunk at once (pipelined): that link is pumped too.
        let owner = self.shell.effect_peer(id);
        if let Some(input) = self.shell.handle_effect_done(now, id, result) {
            let peer = input.peer();
            self.dispatch(now, input);
            if let Some(peer) = peer {
                self.pump(now, peer);
            }
        }
        if let Some(peer) = owner {
            self.pump(now, peer);
        }
        self.shell.settle(now);
    }

    /// The adapter ran distributed API call `id` ([`Output::ApiCall`]): `answer` is the JSON
    /// answer in 3.9.5's `print_json` shape (`{"data": …, "error": 0}` or `{"message": …,
    /// "error": code}`; anything else is answered as error 1000). Unknown or expired ids are
    /// ignored.
    pub fn handle_api_done(&mut self, now: Instant, id: ApiCallId, answer: String) {
        self.dispatch(now, Input::ApiDone { call: id, answer });
        self.shell.settle(now);
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
    /// chunks held back for the peer are read and its paused input is taken up again: drain
    /// [`Node::poll_output`] afterwards. A report that does not cross the bound only counts.
    pub fn handle_written(&mut self, now: Instant, peer: PeerId, bytes: usize) {
        if self.shell.handle_written(now, peer, bytes) {
            self.pump(now, peer);
        }
        self.shell.settle(now);
    }

    // ----------------------------------------------------------------------------------------
    // Outputs

    /// The next output, `None` when drained; then arm a timer at [`Node::poll_timeout`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.shell.poll_output()
    }

    /// When [`Node::handle_timeout`] must next be called (`None`: nothing scheduled).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shell
            .next_timeout()
            .into_iter()
            .chain(self.role.next_timeout())
            .chain(self.api.next_timeout())
            .chain(
                self.local
                    .next_timeout(self.config().limits.local_idle_timeout),
            )
            .min()
    }

    // ----------------------------------------------------------------------------------------
    // Internals

    /// The one place where an input goes to the part that decides about it: the distributed API
    /// part for its commands, strings and calls; the role for the rest. Every part hears of the
    /// connections that closed meanwhile.
    fn dispatch(&mut self, now: Instant, input: Input) {
        let for_api = match &input {
            Input::Request { command, .. } => api::is_api_command(command),
            Input::Answer { peer, counter, .. } => self.api.awaits(*peer, *counter),
            Input::StringSent { .. } | Input::StringFailed { .. } => true,
            // The master's agent census runs through the same executor; its ids are its own.
            Input::ApiDone { call, .. } => !master::census::is_census_call(*call),
            Input::NodeDiskDone { job, .. } => self.api.awaits_job(*job),
            Input::FileSent { peer, transfer, .. } => self.api.sends_file(*peer, *transfer),
            _ => false,
        };
        let view = RoleView(&self.role);
        if for_api {
            self.api.handle(&mut self.shell, &view, now, input);
        } else {
            let local = match &input {
                Input::Connected {
                    peer,
                    origin: Origin::Local,
                    ..
                } => Some(*peer),
                _ => None,
            };
            let timeout = matches!(input, Input::Timeout);
            self.role.handle(&mut self.shell, now, input);
            let view = RoleView(&self.role);
            if let Some(peer) = local.filter(|p| self.shell.connection(*p).is_some()) {
                self.api.local_client(peer);
            }
            if timeout {
                self.api.handle(&mut self.shell, &view, now, Input::Timeout);
            }
        }
        let closed = self.shell.take_closed();
        if !closed.is_empty() {
            self.local.closed(&closed);
            self.api.peers_closed(&mut self.shell, now, &closed);
        }
        // A health answer given meanwhile may have made a census of active agents due.
        if let Role::Master(master) = &mut self.role {
            master.refresh_census(&mut self.shell, now);
        }
    }

    /// Whether the node still owes local client `peer` an answer.
    fn owes_local(&self, peer: PeerId) -> bool {
        self.api.owes(peer) || self.role.owes_local(peer)
    }

    /// Closes the local clients silent for `local_idle_timeout` that are owed nothing; those
    /// owed an answer start a new idle period (the answer is on its way or times out).
    fn close_idle_local_clients(&mut self, now: Instant) {
        let idle = self.config().limits.local_idle_timeout;
        for peer in self.local.idle(now, idle) {
            if self.owes_local(peer) {
                self.local.heard(peer, now);
            } else {
                self.close_local(now, peer, CloseReason::Idle);
            }
        }
    }

    /// Above `max_local_clients` with `new` in: the longest silent client owed nothing gives way
    /// to it; when every other one waits for an answer, `new` is refused.
    fn make_room_for(&mut self, now: Instant, new: PeerId) {
        if self.local.len() <= self.config().limits.max_local_clients {
            return;
        }
        let gives_way = self
            .local
            .by_silence(new)
            .into_iter()
            .find(|peer| !self.owes_local(*peer))
            .unwrap_or(new);
        self.close_local(now, gives_way, CloseReason::LocalSocketFull);
    }

    fn close_local(&mut self, now: Instant, peer: PeerId, reason: CloseReason) {
        let input = Input::Closed {
            peer,
            reason,
            tell_adapter: true,
        };
        self.dispatch(now, input);
    }

    /// Hands the role everything `peer`'s connection has for it.
    fn pump(&mut self, now: Instant, peer: PeerId) {
        while let Some(input) = self.shell.poll_peer(now, peer) {
            self.dispatch(now, input);
        }
    }
}
