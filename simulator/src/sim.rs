//! The simulation: nodes, the network and the event loop on virtual time.
//!
//! Each simulated node is a real [`Node`] plus an [`EffectExecutor`] over its own
//! [`MemoryStorage`]: exactly what an adapter runs, with the socket replaced by the in-memory
//! [`Network`] and the clock by the event queue. The loop pops the earliest event, moves the clock
//! to it, hands it to the node concerned, then drains that node's outputs (bytes onto links,
//! effects onto the queue, connection requests, events into the log) and re-arms its timer at
//! [`Node::poll_timeout`]. Bytes are reported written ([`Node::handle_written`]) when their link
//! takes them ([`Arrival::Taken`]): at once, or as far as the link's send buffer has room, the
//! rest when room opens ([`Arrival::Writable`]) or a stalled pipe is unstalled.
//!
//! Determinism: one `u64` seed; every node, the network and each link get their own stream
//! derived from it with [`Rng::fork`], so adding a node does not change what another one draws.
//! Nothing here reads the real clock after [`Sim::new`] takes its base `Instant`, and nothing
//! iterates a hash map.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::key::{ClusterKey, KeyError};
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::dapi::ApiCall;
use wazuh_cluster_sync::integrity::memory::{ContentPool, MemoryStorage, StorageFault};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::roles::{
    ApiCallId, Effect, EffectExecutor, EffectId, Node, NodeConfig, NodeEvent, NodeType, Origin,
    Output, PeerId, remove_cluster_leftovers,
};

use crate::clock::{Clock, EventQueue, VirtualTime};
use crate::local::{LocalClient, LocalClientId};
use crate::net::{Arrival, LinkEnd, LinkId, LinkParams, Network};
use crate::tap::{Tap, TapFrame};
use crate::trace::{Trace, TraceKind};

/// The port every simulated master listens on (upstream's default).
pub const MASTER_PORT: u16 = 1516;

/// The link of a dial that will be refused: the peer id stays known until the refusal is
/// delivered (so a `Close` from the node before that is accepted), but no link carries anything.
const NO_LINK: LinkId = LinkId(u32::MAX);

/// How many times one node's timer may fire at the same virtual instant before the run is
/// stopped as a livelock (a node whose timeout never moves forward).
pub const MAX_FIRES_PER_INSTANT: u32 = 10_000;

/// Settings of a whole run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one seed everything random derives from.
    pub seed: u64,
    /// Unix time (seconds) at virtual time zero.
    pub unix_start: u64,
    /// The cluster key (32 characters).
    pub key: String,
    /// Parameters of new links.
    pub link: LinkParams,
    /// Virtual time an effect takes to run (zero: it completes at the instant it was asked for,
    /// after what is already queued for that instant).
    pub effect_latency: Duration,
    /// Decode every frame crossing the network into [`TapFrame`]s.
    pub tap: bool,
}

impl Default for SimConfig {
    /// Seed 0, Unix time 1 800 000 000 at the start, a fixed test key, default links, instant
    /// effects, tap on.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            unix_start: 1_800_000_000,
            key: "simulatedclusterkey0123456789abc".to_owned(),
            link: LinkParams::default(),
            effect_latency: Duration::ZERO,
            tap: true,
        }
    }
}

/// Why [`Sim::run_until`] stopped without its condition becoming true.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The virtual deadline passed; the clock was left at it.
    #[error("condition still false at the virtual deadline {at}")]
    Deadline {
        /// The deadline.
        at: VirtualTime,
    },
    /// Nothing was left to happen (no event queued) and the condition was false.
    #[error("condition false and nothing left to happen at {at}")]
    Idle {
        /// When the queue ran dry.
        at: VirtualTime,
    },
    /// A node's timer kept firing at the same instant ([`MAX_FIRES_PER_INSTANT`] times).
    #[error("node {node} keeps asking for a timeout at {at} (livelock)")]
    Livelock {
        /// The node's name.
        node: String,
        /// The instant.
        at: VirtualTime,
    },
}

/// Why a simulation could not be set up.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The configured key is not a valid cluster key.
    #[error("bad cluster key: {0}")]
    Key(#[from] KeyError),
    /// An install tree could not be built.
    #[error("bad install tree: {0}")]
    Tree(String),
    /// Two nodes listen on the same address.
    #[error("address {0} is already taken by another node")]
    AddressTaken(String),
}

/// A node's event, with when and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// Virtual time.
    pub at: VirtualTime,
    /// Index of the node that emitted it.
    pub node: usize,
    /// The event.
    pub event: NodeEvent,
}

/// Index of a node in the simulation (in the order they were added).
pub type NodeIdx = usize;

#[derive(Debug)]
enum Ev {
    Timer(NodeIdx),
    Data {
        link: LinkId,
        to: LinkEnd,
        bytes: Bytes,
    },
    Closed {
        link: LinkId,
        to: LinkEnd,
    },
    Accept {
        link: LinkId,
    },
    /// Room opened in the send buffer of `from`'s direction of `link` ([`Arrival::Writable`]).
    Writable {
        link: LinkId,
        from: LinkEnd,
    },
    Connected {
        link: LinkId,
    },
    Refused {
        node: NodeIdx,
        peer: PeerId,
    },
    /// An effect of the `incarnation`th life of `node` (a restart starts a new one).
    Effect {
        node: NodeIdx,
        incarnation: u32,
        id: EffectId,
        effect: Effect,
    },
    ApiCall {
        node: NodeIdx,
        incarnation: u32,
        id: ApiCallId,
        call: ApiCall,
    },
    /// Bytes from a node to one of its local clients (a Unix socket: no latency, no loss).
    LocalData {
        client: LocalClientId,
        bytes: Bytes,
    },
}

struct SimNode {
    name: String,
    node: Node,
    exec: EffectExecutor<MemoryStorage>,
    /// Open connections of this node: its peer id → the link end.
    peers: BTreeMap<PeerId, (LinkId, LinkEnd)>,
    /// Bytes that arrived while the node did not want input from that peer.
    parked: BTreeMap<PeerId, VecDeque<Bytes>>,
    next_incoming: u64,
    /// The instant its timer is armed for.
    timer: Option<VirtualTime>,
    fires_at_instant: (VirtualTime, u32),
    effects_run: u64,
    /// Crashed and not restarted yet: it takes no input and refuses connections.
    down: bool,
    /// Lives so far (0 for the first): events of an earlier life are not handed to this one.
    incarnation: u32,
    /// Effects of this life queued and not run yet (what the node should count in flight).
    effects_queued: usize,
    /// The disk faults armed on this node ([`Sim::set_disk_faults`]).
    disk: DiskFaults,
    /// Draws of the disk faults (its own stream, so arming them changes no other draw).
    disk_rng: Rng,
    /// Results of its next effects to lose ([`Sim::lose_effect_results`]).
    lose_results: u32,
    /// Bumped whenever its disk may have changed ([`Sim::disk_generation`]).
    disk_generation: u64,
}

/// Disk faults of one node, drawn per effect ([`Sim::set_disk_faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskFaults {
    /// Chance, per million effects, that an effect meets a storage fault part way through (after
    /// a random number of its storage operations, up to 7).
    pub fail_per_million: u32,
    /// Which fault: errors on every operation, or a full disk.
    pub kind: Option<StorageFault>,
    /// Virtual time added to every effect of the node (a slow disk).
    pub extra_latency: Duration,
}

/// Whether `effect` may change its node's disk. The reads (a package's chunks, above all: one
/// effect per chunk sent) leave it as it was, so what was checked at the current
/// [`Sim::disk_generation`] still holds: a 100-worker run re-walked the master's tree at every
/// convergence poll while it sent packages.
fn may_write(effect: &Effect) -> bool {
    !matches!(
        effect,
        Effect::ReadChunk { .. }
            | Effect::StatFile { .. }
            | Effect::ReadClientKeys
            | Effect::ScanIntegrity
    )
}

/// Counters of a run, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Bytes delivered to nodes.
    pub bytes_delivered: u64,
    /// Effects executed.
    pub effects: u64,
    /// Deliveries held back because the receiving node did not want input from that peer
    /// ([`Node::wants_input`]), later handed over in order.
    pub parked: u64,
    /// Times a bounded send buffer was full with a write held in its writer's name (the node
    /// heard of a partial write, as from a socket that would block), each woken later.
    pub send_buffer_full: u64,
}

/// A simulated cluster. See the [module documentation](self).
pub struct Sim {
    config: SimConfig,
    key: ClusterKey,
    clock: Clock,
    queue: EventQueue<Ev>,
    net: Network,
    nodes: Vec<SimNode>,
    /// Listening addresses (`host:port`) → node.
    listeners: BTreeMap<String, NodeIdx>,
    /// Link end → (node, its peer id).
    ends: BTreeMap<(LinkId, LinkEnd), (NodeIdx, PeerId)>,
    rng: Rng,
    trace: Trace,
    tap: Option<Tap>,
    events: Vec<SimEvent>,
    stats: SimStats,
    livelock: Option<RunError>,
    /// Local clients, and which is whose (node, its peer id).
    locals: Vec<LocalClient>,
    local_ends: BTreeMap<(NodeIdx, PeerId), LocalClientId>,
    /// One copy of each content of the nodes' `etc/` (see [`Sim::share_contents`]).
    pool: ContentPool,
    /// One copy of each package and staged chunk, while some node holds it.
    transient: ContentPool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.clock.now())
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("queued", &self.queue.len())
            .field("trace_hash", &format_args!("{:016x}", self.trace.hash()))
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty simulation at virtual time zero.
    ///
    /// # Errors
    /// [`SetupError::Key`] when `config.key` is not a valid cluster key.
    pub fn new(config: SimConfig) -> Result<Sim, SetupError> {
        let key = ClusterKey::new(&config.key)?;
        let rng = Rng::from_seed(config.seed);
        let tap = config.tap.then(|| Tap::new(Some(Fernet::new(&key))));
        Ok(Sim {
            net: Network::new(config.link, rng.fork(1)),
            clock: Clock::new(Instant::now()),
            queue: EventQueue::new(),
            nodes: Vec::new(),
            listeners: BTreeMap::new(),
            ends: BTreeMap::new(),
            rng,
            trace: Trace::new(),
            tap,
            events: Vec::new(),
            stats: SimStats::default(),
            livelock: None,
            locals: Vec::new(),
            local_ends: BTreeMap::new(),
            pool: ContentPool::new(),
            transient: ContentPool::new(),
            key,
            config,
        })
    }

    /// A node configuration for this simulation: its key, its wall clock anchored at virtual
    /// zero, upstream's defaults for the rest. A master gets the address `<name>`, a worker
    /// dials `master_addr` = `<master>:1516` (set it with [`Sim::master_addr`]).
    pub fn node_config(&self, node_type: NodeType, name: &str) -> NodeConfig {
        let wall = WallClock::new(self.clock.base(), self.config.unix_start);
        let mut config = NodeConfig::new(node_type, name, Some(self.key.clone()), wall);
        config.address = name.to_owned();
        config
    }

    /// The address a master called `name` listens on.
    pub fn master_addr(name: &str) -> String {
        format!("{name}:{MASTER_PORT}")
    }

    /// Adds a node over `storage`. A master listens on `<address>:1516`; a worker dials its
    /// `master_addr` as soon as it starts (now).
    ///
    /// # Errors
    /// [`SetupError::AddressTaken`] when another master listens on the same address.
    pub fn add_node(
        &mut self,
        config: NodeConfig,
        storage: MemoryStorage,
    ) -> Result<NodeIdx, SetupError> {
        let idx = self.nodes.len();
        if config.node_type == NodeType::Master {
            let addr = Self::master_addr(&config.address);
            if self.listeners.contains_key(&addr) {
                return Err(SetupError::AddressTaken(addr));
            }
            self.listeners.insert(addr, idx);
        }
        let seed = self.rng.fork(0x100 + idx as u64).next_u64();
        let exec = EffectExecutor::new(storage, &config);
        let name = config.node_name.clone();
        let node = Node::new(config, seed, self.clock.instant());
        self.nodes.push(SimNode {
            name,
            node,
            exec,
            peers: BTreeMap::new(),
            parked: BTreeMap::new(),
            next_incoming: 1,
            timer: None,
            fires_at_instant: (VirtualTime::ZERO, 0),
            effects_run: 0,
            down: false,
            incarnation: 0,
            effects_queued: 0,
            disk: DiskFaults::default(),
            disk_rng: self.rng.fork(0x2_0000 + idx as u64),
            lose_results: 0,
            disk_generation: 0,
        });
        self.share_contents(idx);
        self.after_step(idx);
        Ok(idx)
    }

    /// Makes node `n`'s `etc/` share its bytes with the other nodes' (the master's integrity
    /// files, which every worker holds a copy of), and its packages and the chunks of the
    /// packages it is receiving share theirs (the master builds the same package for every
    /// worker that lacks the same files, and each of them receives it chunk by chunk): run after
    /// anything that may write there, so a hundred workers cost one copy of `client.keys` and of
    /// its package, not a hundred or two hundred. Nothing observable changes.
    fn share_contents(&mut self, n: NodeIdx) {
        let storage = self.nodes[n].exec.storage_mut();
        if let Ok(etc) = InstallPath::new("/etc") {
            storage.share_contents(&etc, &mut self.pool);
        }
        if let Ok(packages) = InstallPath::new("/queue/cluster") {
            storage.share_contents(&packages, &mut self.transient);
        }
        storage.share_staged(&mut self.transient);
        // Packages are removed once applied or sent: their pooled copy goes with the last node
        // that held it.
        self.transient.release_unused();
    }

    /// Distinct contents and their bytes held once for all nodes ([`ContentPool`]): the
    /// integrity files, then the packages and chunks being received.
    pub fn shared_contents(&self) -> [(usize, u64); 2] {
        [
            (self.pool.len(), self.pool.bytes()),
            (self.transient.len(), self.transient.bytes()),
        ]
    }

    // ------------------------------------------------------------------------------------------
    // Running

    /// The current virtual time.
    pub fn now(&self) -> VirtualTime {
        self.clock.now()
    }

    /// The `Instant` the nodes see now, for node methods that take a `now` (`health`). Never
    /// record it: it differs from run to run; [`Sim::now`] is the value to log.
    pub fn instant(&self) -> Instant {
        self.clock.instant()
    }

    /// Processes the earliest event; `false` when nothing is queued.
    pub fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        self.clock.advance_to(at);
        self.stats.events += 1;
        self.dispatch(ev);
        true
    }

    /// Runs until `done` holds or `deadline` passes. `done` is checked at the start and each time
    /// virtual time is about to move on (after every event of an instant), so it sees settled
    /// states.
    ///
    /// # Errors
    /// [`RunError::Deadline`] (clock left at `deadline`), [`RunError::Idle`],
    /// [`RunError::Livelock`].
    pub fn run_until<F: FnMut(&Sim) -> bool>(
        &mut self,
        deadline: VirtualTime,
        mut done: F,
    ) -> Result<VirtualTime, RunError> {
        if done(self) {
            return Ok(self.now());
        }
        loop {
            if let Some(e) = self.livelock.take() {
                return Err(e);
            }
            match self.queue.peek_time() {
                None => return Err(RunError::Idle { at: self.now() }),
                Some(t) if t > deadline => {
                    self.clock.advance_to(deadline);
                    return Err(RunError::Deadline { at: deadline });
                }
                Some(t) => {
                    if t > self.now() && done(self) {
                        return Ok(self.now());
                    }
                    self.step();
                }
            }
        }
    }

    /// Like [`Sim::run_until`], but evaluates `done` only every `poll` of virtual time (for
    /// conditions too costly to check at every instant, such as comparing 26 install trees);
    /// the time returned is therefore exact to `poll`.
    ///
    /// # Errors
    /// [`RunError::Deadline`], [`RunError::Livelock`].
    pub fn run_until_polled<F: FnMut(&Sim) -> bool>(
        &mut self,
        deadline: VirtualTime,
        poll: Duration,
        mut done: F,
    ) -> Result<VirtualTime, RunError> {
        loop {
            if done(self) {
                return Ok(self.now());
            }
            if self.now() >= deadline {
                return Err(RunError::Deadline { at: deadline });
            }
            let step = poll.min(deadline.since(self.now()));
            self.run_for(step)?;
        }
    }

    /// Runs every event up to `now + d` and leaves the clock there.
    ///
    /// # Errors
    /// [`RunError::Livelock`] only.
    pub fn run_for(&mut self, d: Duration) -> Result<(), RunError> {
        let deadline = self.now().plus(d);
        match self.run_until(deadline, |_| false) {
            Err(RunError::Deadline { .. } | RunError::Idle { .. }) => {
                self.clock.advance_to(deadline);
                Ok(())
            }
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Queues the arrivals and reports the writes taken to their writers; returns the writers
    /// told (their outputs are to be drained).
    fn schedule(&mut self, arrivals: Vec<Arrival>) -> Vec<NodeIdx> {
        let mut writers = Vec::new();
        for a in arrivals {
            match a {
                Arrival::Taken {
                    at: _,
                    link,
                    from,
                    len,
                } => {
                    let Some(&(n, peer)) = self.ends.get(&(link, from)) else {
                        continue;
                    };
                    if self.nodes[n].peers.contains_key(&peer) {
                        let instant = self.clock.instant();
                        self.nodes[n].node.handle_written(instant, peer, len);
                        if !writers.contains(&n) {
                            writers.push(n);
                        }
                    }
                }
                Arrival::Data {
                    at,
                    link,
                    to,
                    bytes,
                } => {
                    self.queue.push(at, Ev::Data { link, to, bytes });
                }
                Arrival::Closed { at, link, to } => self.queue.push(at, Ev::Closed { link, to }),
                Arrival::Writable { at, link, from } => {
                    self.stats.send_buffer_full += 1;
                    self.queue.push(at, Ev::Writable { link, from });
                }
            }
        }
        writers
    }

    /// Schedules what a fault seam released, and drains the writers it unblocked.
    fn release(&mut self, arrivals: Vec<Arrival>) {
        for n in self.schedule(arrivals) {
            self.after_step(n);
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        let now = self.clock.now();
        let instant = self.clock.instant();
        match ev {
            Ev::Timer(n) => {
                if self.nodes[n].timer != Some(now) {
                    return;
                }
                let sn = &mut self.nodes[n];
                sn.timer = None;
                if sn.fires_at_instant.0 == now {
                    sn.fires_at_instant.1 += 1;
                    if sn.fires_at_instant.1 >= MAX_FIRES_PER_INSTANT {
                        self.livelock = Some(RunError::Livelock {
                            node: sn.name.clone(),
                            at: now,
                        });
                        return;
                    }
                } else {
                    sn.fires_at_instant = (now, 1);
                }
                self.trace.record(now, TraceKind::Timeout, n, 0, &[]);
                self.nodes[n].node.handle_timeout(instant);
                self.after_step(n);
            }
            Ev::Data { link, to, bytes } => self.deliver(link, to, bytes),
            Ev::Writable { link, from } => {
                let arrivals = self.net.writable(now, link, from);
                self.release(arrivals);
            }
            Ev::Closed { link, to } => {
                let Some(&(n, peer)) = self.ends.get(&(link, to)) else {
                    return;
                };
                if self.nodes[n].peers.remove(&peer).is_none() {
                    return;
                }
                self.net.mark_closed(link, to);
                self.nodes[n].parked.remove(&peer);
                self.trace.record(now, TraceKind::Closed, n, peer.0, &[]);
                self.nodes[n].node.handle_closed(instant, peer);
                self.after_step(n);
            }
            Ev::Accept { link } => {
                let (Some(m), Some(d)) = (
                    self.net.node(link, LinkEnd::Acceptor),
                    self.net.node(link, LinkEnd::Dialer),
                ) else {
                    return;
                };
                if !self.net.accepts(link, LinkEnd::Acceptor) {
                    return;
                }
                let peer = PeerId(self.nodes[m].next_incoming);
                self.nodes[m].next_incoming += 1;
                self.nodes[m].peers.insert(peer, (link, LinkEnd::Acceptor));
                self.ends.insert((link, LinkEnd::Acceptor), (m, peer));
                let remote = format!(
                    "{}:{}",
                    self.nodes[d].node.config().address,
                    40_000 + link.0
                );
                self.trace
                    .record(now, TraceKind::Connected, m, peer.0, remote.as_bytes());
                self.nodes[m]
                    .node
                    .handle_connected(instant, peer, &remote, Origin::Incoming);
                self.after_step(m);
            }
            Ev::Connected { link } => {
                let Some(&(n, peer)) = self.ends.get(&(link, LinkEnd::Dialer)) else {
                    return;
                };
                if !self.nodes[n].peers.contains_key(&peer)
                    || !self.net.accepts(link, LinkEnd::Dialer)
                {
                    return;
                }
                let Some(m) = self.net.node(link, LinkEnd::Acceptor) else {
                    return;
                };
                let remote = Self::master_addr(&self.nodes[m].node.config().address);
                self.trace
                    .record(now, TraceKind::Connected, n, peer.0, remote.as_bytes());
                self.nodes[n]
                    .node
                    .handle_connected(instant, peer, &remote, Origin::Outgoing);
                self.after_step(n);
            }
            Ev::Refused { node, peer } => {
                if self.nodes[node].peers.remove(&peer).is_none() {
                    return;
                }
                self.trace
                    .record(now, TraceKind::Refused, node, peer.0, &[]);
                self.nodes[node].node.handle_closed(instant, peer);
                self.after_step(node);
            }
            Ev::Effect {
                node,
                incarnation,
                id,
                effect,
            } => {
                let sn = &mut self.nodes[node];
                if may_write(&effect) {
                    sn.disk_generation += 1;
                }
                if sn.incarnation != incarnation {
                    // The disk work of a node that crashed goes on until its storage stops
                    // (the `k` operations of `Sim::crash`); nobody takes its result.
                    if sn.down {
                        let unix = sn.node.unix_time(instant);
                        let _ = sn.exec.execute(&effect, unix);
                    }
                    return;
                }
                sn.effects_queued -= 1;
                let unix = sn.node.unix_time(instant);
                sn.exec.storage_mut().set_now(unix);
                let fault = match sn.disk.kind {
                    Some(kind) if sn.disk.fail_per_million > 0 => {
                        let draw = sn.disk_rng.next_u64() % 1_000_000;
                        (draw < u64::from(sn.disk.fail_per_million))
                            .then(|| (sn.disk_rng.next_u64() % 8, kind))
                    }
                    _ => None,
                };
                if let Some((after, kind)) = fault {
                    sn.exec.storage_mut().inject_fault(after, kind);
                }
                let result = sn.exec.execute(&effect, unix);
                if fault.is_some() {
                    sn.exec.storage_mut().clear_fault();
                }
                if sn.lose_results > 0 {
                    sn.lose_results -= 1;
                    return;
                }
                sn.effects_run += 1;
                self.stats.effects += 1;
                let summary = format!(
                    "{:?}",
                    result
                        .as_ref()
                        .map(std::mem::discriminant)
                        .map_err(|e| e.to_string())
                );
                self.trace
                    .record(now, TraceKind::Effect, node, id.0, summary.as_bytes());
                if may_write(&effect) {
                    self.share_contents(node);
                }
                self.nodes[node]
                    .node
                    .handle_effect_done(instant, id, result);
                self.after_step(node);
            }
            Ev::LocalData { client, bytes } => {
                let c = &mut self.locals[client.0];
                if c.is_closed() {
                    return;
                }
                c.handle_input(instant, &bytes);
                self.flush_local(client);
            }
            Ev::ApiCall {
                node,
                incarnation,
                id,
                call,
            } => {
                let sn = &mut self.nodes[node];
                if sn.incarnation != incarnation {
                    return;
                }
                sn.disk_generation += 1;
                let unix = sn.node.unix_time(instant);
                let answer = sn.exec.run_api_call(&call, unix);
                self.trace
                    .record(now, TraceKind::ApiCall, node, id.0, answer.as_bytes());
                self.nodes[node].node.handle_api_done(instant, id, answer);
                self.after_step(node);
            }
        }
    }

    fn deliver(&mut self, link: LinkId, to: LinkEnd, bytes: Bytes) {
        if !self.net.accepts(link, to) {
            return;
        }
        let Some(&(n, peer)) = self.ends.get(&(link, to)) else {
            return;
        };
        if !self.nodes[n].peers.contains_key(&peer) {
            return;
        }
        let now = self.clock.now();
        if let Some(tap) = &mut self.tap {
            let from = self
                .net
                .node(link, to.other())
                .map_or("?", |i| self.nodes[i].name.as_str());
            tap.feed(now, link, to, (from, &self.nodes[n].name), &bytes);
        }
        self.stats.bytes_delivered += bytes.len() as u64;
        self.trace
            .record(now, TraceKind::Deliver, n, peer.0, &bytes);
        let sn = &mut self.nodes[n];
        if sn.parked.contains_key(&peer) || !sn.node.wants_input(peer) {
            self.stats.parked += 1;
            sn.parked.entry(peer).or_default().push_back(bytes);
            return;
        }
        sn.node.handle_input(self.clock.instant(), peer, &bytes);
        self.after_step(n);
    }

    /// Drains node `n`'s outputs, hands it input it parked and now wants, and re-arms its timer.
    fn after_step(&mut self, n: NodeIdx) {
        let now = self.clock.now();
        let instant = self.clock.instant();
        loop {
            while let Some(out) = self.nodes[n].node.poll_output() {
                self.output(n, out);
            }
            let sn = &mut self.nodes[n];
            let ready = sn.parked.keys().copied().find(|p| sn.node.wants_input(*p));
            let Some(peer) = ready else { break };
            let Some(queue) = sn.parked.get_mut(&peer) else {
                break;
            };
            let bytes = queue.pop_front();
            if queue.is_empty() {
                sn.parked.remove(&peer);
            }
            if let Some(bytes) = bytes {
                sn.node.handle_input(instant, peer, &bytes);
            }
        }
        let sn = &mut self.nodes[n];
        match sn.node.poll_timeout() {
            Some(t) => {
                let at = self.clock.virtual_of(t).max(now);
                if sn.timer != Some(at) {
                    sn.timer = Some(at);
                    self.queue.push(at, Ev::Timer(n));
                }
            }
            None => sn.timer = None,
        }
    }

    fn output(&mut self, n: NodeIdx, out: Output) {
        let now = self.clock.now();
        match out {
            Output::Transmit { peer, bytes } => {
                if let Some(&client) = self.local_ends.get(&(n, peer)) {
                    self.nodes[n]
                        .node
                        .handle_written(self.clock.instant(), peer, bytes.len());
                    self.queue.push(now, Ev::LocalData { client, bytes });
                } else if let Some(&(link, end)) = self.nodes[n].peers.get(&peer) {
                    let arrivals = self.net.send(now, link, end, bytes);
                    // Only node `n` writes here, and its caller is draining it.
                    self.schedule(arrivals);
                }
            }
            Output::Effect { id, effect } => {
                let sn = &mut self.nodes[n];
                sn.effects_queued += 1;
                let at = now
                    .plus(self.config.effect_latency)
                    .plus(sn.disk.extra_latency);
                self.queue.push(
                    at,
                    Ev::Effect {
                        node: n,
                        incarnation: sn.incarnation,
                        id,
                        effect,
                    },
                );
            }
            Output::Connect { peer, addr } => {
                self.trace
                    .record(now, TraceKind::Connect, n, peer.0, addr.as_bytes());
                let latency = self.config.link.latency;
                let target = self
                    .listeners
                    .get(&addr)
                    .copied()
                    .filter(|&m| !self.nodes[m].down);
                match target.and_then(|m| self.net.connect(n, m)) {
                    Some(link) => {
                        self.nodes[n].peers.insert(peer, (link, LinkEnd::Dialer));
                        self.ends.insert((link, LinkEnd::Dialer), (n, peer));
                        let l = self.net.latency(link);
                        self.queue.push(now.plus(l), Ev::Accept { link });
                        self.queue.push(now.plus(l * 2), Ev::Connected { link });
                    }
                    None => {
                        self.nodes[n].peers.insert(peer, (NO_LINK, LinkEnd::Dialer));
                        self.queue
                            .push(now.plus(latency), Ev::Refused { node: n, peer });
                    }
                }
            }
            Output::Close { peer } => {
                self.trace.record(now, TraceKind::Close, n, peer.0, &[]);
                if let Some(client) = self.local_ends.remove(&(n, peer)) {
                    self.locals[client.0].close();
                }
                self.nodes[n].parked.remove(&peer);
                if let Some((link, end)) = self.nodes[n].peers.remove(&peer) {
                    let arrivals = self.net.close(now, link, end);
                    // A close takes no write.
                    self.schedule(arrivals);
                }
            }
            Output::ApiCall { id, call } => {
                let at = now.plus(self.config.effect_latency);
                let incarnation = self.nodes[n].incarnation;
                self.queue.push(
                    at,
                    Ev::ApiCall {
                        node: n,
                        incarnation,
                        id,
                        call,
                    },
                );
            }
            Output::Event(event) => {
                self.trace
                    .record(now, TraceKind::Event, n, 0, format!("{event:?}").as_bytes());
                self.events.push(SimEvent {
                    at: now,
                    node: n,
                    event,
                });
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Local clients

    /// Connects a local client (plaintext, no `hello`: `cluster_control`, the API) to node
    /// `n`'s Unix socket.
    pub fn connect_local(&mut self, n: NodeIdx) -> LocalClientId {
        let id = LocalClientId(self.locals.len());
        let sn = &mut self.nodes[n];
        let peer = PeerId(sn.next_incoming);
        sn.next_incoming += 1;
        let seed = self.rng.fork(0x1_0000 + id.0 as u64).next_u64();
        let instant = self.clock.instant();
        let unix = self.config.unix_start;
        self.locals
            .push(LocalClient::new(n, peer, seed, instant, unix));
        self.local_ends.insert((n, peer), id);
        let now = self.clock.now();
        self.trace
            .record(now, TraceKind::Connected, n, peer.0, b"local");
        self.nodes[n].node.handle_connected(
            instant,
            peer,
            &format!("local-{}", id.0),
            Origin::Local,
        );
        self.after_step(n);
        id
    }

    /// Local client `client` sends `command payload` to its node; `false` when its connection
    /// refused the request (closed, too many pending).
    pub fn local_send(&mut self, client: LocalClientId, command: &str, payload: &[u8]) -> bool {
        let instant = self.clock.instant();
        let sent = self.locals[client.0].send(instant, command, payload);
        self.flush_local(client);
        sent
    }

    /// Local client `client` hangs up (its node is told the connection closed).
    pub fn close_local(&mut self, client: LocalClientId) {
        let (n, peer) = (self.locals[client.0].node, self.locals[client.0].peer);
        self.locals[client.0].close();
        if self.local_ends.remove(&(n, peer)).is_some() {
            let now = self.clock.now();
            self.trace
                .record(now, TraceKind::Closed, n, peer.0, b"local");
            self.nodes[n].node.handle_closed(self.clock.instant(), peer);
            self.after_step(n);
        }
    }

    /// Local client `client`.
    pub fn local(&self, client: LocalClientId) -> &LocalClient {
        &self.locals[client.0]
    }

    /// Hands what local client `client` wrote to its node.
    fn flush_local(&mut self, client: LocalClientId) {
        let instant = self.clock.instant();
        let now = self.clock.now();
        let (n, peer) = (self.locals[client.0].node, self.locals[client.0].peer);
        while let Some(bytes) = self.locals[client.0].poll_transmit() {
            if !self.local_ends.contains_key(&(n, peer)) {
                continue;
            }
            self.trace
                .record(now, TraceKind::Deliver, n, peer.0, &bytes);
            self.nodes[n].node.handle_input(instant, peer, &bytes);
        }
        self.after_step(n);
    }

    // ------------------------------------------------------------------------------------------
    // Faults (the seams of the fault model)

    /// Open links between nodes `a` and `b`, oldest first.
    pub fn links_between(&self, a: NodeIdx, b: NodeIdx) -> Vec<LinkId> {
        self.net
            .open_links()
            .into_iter()
            .filter(|l| {
                let ends = (
                    self.net.node(*l, LinkEnd::Dialer),
                    self.net.node(*l, LinkEnd::Acceptor),
                );
                ends == (Some(a), Some(b)) || ends == (Some(b), Some(a))
            })
            .collect()
    }

    /// Holds every byte (and close) on `link` until [`Sim::unstall`].
    pub fn stall(&mut self, link: LinkId) {
        self.net.stall(link);
    }

    /// Holds what `from` writes into `link` until [`Sim::unstall`]; the other direction flows.
    pub fn stall_direction(&mut self, link: LinkId, from: LinkEnd) {
        self.net.stall_direction(link, from);
    }

    /// Lets `link` flow again.
    pub fn unstall(&mut self, link: LinkId) {
        let arrivals = self.net.unstall(self.now(), link);
        self.release(arrivals);
    }

    /// Resets `link`: both ends are told now, bytes in flight are lost.
    pub fn reset(&mut self, link: LinkId) {
        let arrivals = self.net.reset(self.now(), link);
        self.release(arrivals);
    }

    /// Partitions `a` from `b` (links stall, connections refused) until [`Sim::heal`].
    pub fn partition(&mut self, a: NodeIdx, b: NodeIdx) {
        self.net.partition(a, b);
    }

    /// Heals a partition.
    pub fn heal(&mut self, a: NodeIdx, b: NodeIdx) {
        let arrivals = self.net.heal(self.now(), a, b);
        self.release(arrivals);
    }

    /// Node `n` crashes now: the process is gone (its connections reset, its timer, parked input
    /// and local clients dropped, the results of its effects in flight never taken) and its
    /// storage stops after `after_ops` more operations, so the effects it had in flight may
    /// still land part way (a crash inside an apply). Nothing happens to a node already down.
    pub fn crash(&mut self, n: NodeIdx, after_ops: u64) {
        if self.nodes[n].down {
            return;
        }
        let now = self.now();
        self.trace.record(now, TraceKind::Crash, n, after_ops, &[]);
        let sn = &mut self.nodes[n];
        sn.down = true;
        sn.incarnation += 1;
        sn.timer = None;
        sn.effects_queued = 0;
        sn.parked.clear();
        sn.peers.clear();
        sn.exec.storage_mut().crash_after(after_ops);
        let locals: Vec<(NodeIdx, PeerId)> = self
            .local_ends
            .keys()
            .filter(|(node, _)| *node == n)
            .copied()
            .collect();
        for key in locals {
            if let Some(client) = self.local_ends.remove(&key) {
                self.locals[client.0].close();
            }
        }
        for link in self.net.open_links() {
            for end in [LinkEnd::Dialer, LinkEnd::Acceptor] {
                if self.net.node(link, end) == Some(n) {
                    self.ends.remove(&(link, end));
                    let arrivals = self.net.reset(now, link);
                    self.release(arrivals);
                }
            }
        }
    }

    /// Starts crashed node `n` again as a fresh [`Node`] with its configuration, over its storage
    /// recovered to what was durable, its wall clock moved by `clock_jump_secs` (a clock stepped
    /// while it was down). Then the daemon's start-up clean-up runs, as the adapter's effect
    /// worker runs it before the node's first effect: recovery drops every staged write (the fs
    /// adapter removes the staged files from the disk; the in-memory storage never shows them in
    /// the tree), and [`remove_cluster_leftovers`] empties `queue/cluster/`, the same function
    /// the daemon calls. A worker dials its master at once, as at first start. Nothing happens
    /// to a node that is up.
    pub fn restart(&mut self, n: NodeIdx, clock_jump_secs: i64) {
        if !self.nodes[n].down {
            return;
        }
        let now = self.now();
        let instant = self.clock.instant();
        let seed = self
            .rng
            .fork(0x100 + n as u64 + (u64::from(self.nodes[n].incarnation) << 32))
            .next_u64();
        self.trace.record(now, TraceKind::Restart, n, seed, &[]);
        let sn = &mut self.nodes[n];
        let mut config = sn.node.config().clone();
        let wall = config.connection.wall_clock;
        let unix = i64::try_from(wall.unix_secs)
            .unwrap_or(i64::MAX)
            .saturating_add(clock_jump_secs);
        config.connection.wall_clock =
            WallClock::new(wall.instant, u64::try_from(unix).unwrap_or(0));
        let exec = std::mem::replace(
            &mut sn.exec,
            EffectExecutor::new(MemoryStorage::new(), &config),
        );
        let mut storage = exec.into_storage();
        storage.recover();
        let sweep = remove_cluster_leftovers(&mut storage);
        self.trace
            .record(now, TraceKind::Restart, n, sweep.removed.len() as u64, &[]);
        sn.exec = EffectExecutor::new(storage, &config);
        sn.disk_generation += 1;
        sn.node = Node::new(config, seed, instant);
        sn.down = false;
        sn.fires_at_instant = (VirtualTime::ZERO, 0);
        self.share_contents(n);
        self.after_step(n);
    }

    /// Steps running node `n`'s wall clock by `secs` (either way) now, as an operator or NTP
    /// would: the node is told the new wall time ([`Node::handle_wall_clock`]); virtual time
    /// and its timers go on unchanged. Nothing happens to a node that is down.
    pub fn jump_wall_clock(&mut self, n: NodeIdx, secs: i64) {
        if self.nodes[n].down {
            return;
        }
        let now = self.now();
        let instant = self.clock.instant();
        self.trace
            .record(now, TraceKind::ClockJump, n, secs as u64, &[]);
        let unix = self.nodes[n]
            .node
            .unix_time(instant)
            .secs
            .saturating_add(secs);
        self.nodes[n]
            .node
            .handle_wall_clock(instant, u64::try_from(unix).unwrap_or(0));
        self.after_step(n);
    }

    /// True while node `n` is crashed.
    pub fn is_down(&self, n: NodeIdx) -> bool {
        self.nodes[n].down
    }

    /// Arms disk faults on node `n` (every later effect draws them); the default disarms.
    pub fn set_disk_faults(&mut self, n: NodeIdx, faults: DiskFaults) {
        self.nodes[n].disk = faults;
    }

    /// The results of node `n`'s next `count` effects are lost: each runs on its disk and the
    /// node is never told (what an adapter that dropped an effect's answer would do; the
    /// effects-in-flight checker must see it).
    pub fn lose_effect_results(&mut self, n: NodeIdx, count: u32) {
        self.nodes[n].lose_results += count;
    }

    /// Effects node `n` handed out in this life and the simulator has not run yet: equal to
    /// [`Node::effects_in_flight`] between events, or an effect was lost or answered twice.
    pub fn effects_queued(&self, n: NodeIdx) -> usize {
        self.nodes[n].effects_queued
    }

    /// Open peers of node `n` as the simulator knows them (network and local).
    pub fn peer_ids(&self, n: NodeIdx) -> Vec<PeerId> {
        self.nodes[n].node.peers().collect()
    }

    /// Every open link, oldest first.
    pub fn open_links(&self) -> Vec<LinkId> {
        self.net.open_links()
    }

    /// The livelock [`Sim::step`] detected, if any (kept until a run method reports it).
    pub fn livelock(&self) -> Option<&RunError> {
        self.livelock.as_ref()
    }

    /// Virtual time of the next queued event.
    pub fn next_event_at(&self) -> Option<VirtualTime> {
        self.queue.peek_time()
    }

    /// Changes one link's parameters.
    pub fn set_link_params(&mut self, link: LinkId, params: LinkParams) {
        self.net.set_params(link, params);
    }

    /// Parameters of links created from now on.
    pub fn set_default_link_params(&mut self, params: LinkParams) {
        self.config.link = params;
        self.net.set_defaults(params);
    }

    // ------------------------------------------------------------------------------------------
    // Inspection

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node's name.
    pub fn name(&self, n: NodeIdx) -> &str {
        &self.nodes[n].name
    }

    /// The node called `name`.
    pub fn index_of(&self, name: &str) -> Option<NodeIdx> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The node itself (its state, its config).
    pub fn node(&self, n: NodeIdx) -> &Node {
        &self.nodes[n].node
    }

    /// The node's disk.
    pub fn storage(&self, n: NodeIdx) -> &MemoryStorage {
        self.nodes[n].exec.storage()
    }

    /// The node's disk, to change it between runs (an operator editing a file).
    pub fn storage_mut(&mut self, n: NodeIdx) -> &mut MemoryStorage {
        let sn = &mut self.nodes[n];
        sn.disk_generation += 1;
        sn.exec.storage_mut()
    }

    /// A number that changes whenever node `n`'s disk may have changed (an effect or API call
    /// ran, a restart recovered it, a test took it with [`Sim::storage_mut`]) and never
    /// otherwise: a check of its files that held at one generation holds until the next.
    pub fn disk_generation(&self, n: NodeIdx) -> u64 {
        self.nodes[n].disk_generation
    }

    /// Unix time at the current virtual time, as the nodes see it.
    pub fn unix_now(&self) -> wazuh_cluster_sync::integrity::storage::Timestamp {
        match self.nodes.first() {
            Some(n) => n.node.unix_time(self.clock.instant()),
            None => wazuh_cluster_sync::integrity::storage::Timestamp::from_secs(
                i64::try_from(self.config.unix_start).unwrap_or(i64::MAX),
            ),
        }
    }

    /// Every event the nodes emitted, in order.
    pub fn events(&self) -> &[SimEvent] {
        &self.events
    }

    /// Events of one node, in order.
    pub fn events_of(&self, n: NodeIdx) -> impl Iterator<Item = &SimEvent> + '_ {
        self.events.iter().filter(move |e| e.node == n)
    }

    /// `(time, event)` of node `n`'s events emitted after `after` that `keep` selects, in order.
    pub fn events_since<F: Fn(&NodeEvent) -> bool>(
        &self,
        n: NodeIdx,
        after: Option<VirtualTime>,
        keep: F,
    ) -> Vec<(VirtualTime, NodeEvent)> {
        self.events_of(n)
            .filter(|e| after.is_none_or(|t| e.at > t) && keep(&e.event))
            .map(|e| (e.at, e.event.clone()))
            .collect()
    }

    /// Frames the tap decoded (empty when the tap is off).
    pub fn frames(&self) -> &[TapFrame] {
        self.tap.as_ref().map_or(&[], |t| t.frames())
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    /// The hash of the bytes delivered so far (see [`Trace::wire_hash`](crate::trace::Trace::wire_hash)).
    pub fn wire_hash(&self) -> u64 {
        self.trace.wire_hash()
    }

    /// Records folded into the trace so far.
    pub fn trace_records(&self) -> u64 {
        self.trace.records()
    }

    /// Counters of the run.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Bytes written into `link` by its `from` end.
    pub fn bytes_sent(&self, link: LinkId, from: LinkEnd) -> u64 {
        self.net.bytes_sent(link, from)
    }

    /// Effects node `n` ran.
    pub fn effects_run(&self, n: NodeIdx) -> u64 {
        self.nodes[n].effects_run
    }

    /// The seed of the run.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterBuilder;
    use crate::fixtures::{cluster, master_tree_with_keys, recorded_intervals};
    use crate::net::Pieces;
    use crate::tree::storage_from;
    use wazuh_cluster_sync::integrity::storage::Storage;

    #[test]
    fn reading_packages_out_leaves_the_disk_generation_alone_and_every_write_moves_it() {
        let keys = crate::scale::client_keys(2_000);
        let master = storage_from(master_tree_with_keys(keys)).unwrap();
        let mut c = ClusterBuilder::new(SimConfig::default())
            .master("master01", master)
            .worker("worker1", MemoryStorage::new())
            .worker("worker2", MemoryStorage::new())
            .configure(|cfg| {
                recorded_intervals(cfg);
                // About twenty chunks per package: twenty read effects each.
                cfg.limits.read_chunk = 8 << 10;
            })
            .build()
            .unwrap();
        let m = c.master;
        let mut reads = 0;
        while c.sim.now() < VirtualTime::from_secs(10) {
            let (generation, effects) = (c.sim.disk_generation(m), c.sim.effects_run(m));
            let files = c.sim.storage(m).snapshot();
            if !c.sim.step() {
                break;
            }
            if c.sim.disk_generation(m) == generation {
                // A check made at this generation still holds.
                assert_eq!(c.sim.storage(m).snapshot(), files, "at {}", c.sim.now());
                if c.sim.effects_run(m) > effects {
                    reads += 1;
                }
            }
        }
        assert!(c.integrity_converged());
        assert!(reads >= 40, "{reads} effects left the generation alone");
    }

    #[test]
    fn a_bounded_send_buffer_leaves_the_rest_of_a_write_queued_in_its_writer() {
        const BUFFER: usize = 16 << 10;
        let link = LinkParams {
            latency: Duration::from_millis(1),
            bandwidth: Some(1 << 20),
            pieces: Pieces::Whole,
            send_buffer: Some(BUFFER),
        };
        // A 2,000-agent client.keys (about 170 KB): every package is ten buffers long.
        let keys = crate::scale::client_keys(2_000);
        let master = storage_from(master_tree_with_keys(keys.clone())).unwrap();
        let mut c = ClusterBuilder::new(SimConfig {
            link,
            ..SimConfig::default()
        })
        .master("master01", master)
        .worker("worker1", MemoryStorage::new())
        .worker("worker2", MemoryStorage::new())
        .configure(recorded_intervals)
        .build()
        .unwrap();
        let mut most_unsent = 0;
        while c.sim.now() < VirtualTime::from_secs(20) && c.sim.step() {
            for (&(link, end), &(n, peer)) in &c.sim.ends {
                if !c.sim.nodes[n].peers.contains_key(&peer) {
                    continue;
                }
                // What the link did not take is exactly what the node counts as not written,
                // and the network never holds more than the bound.
                let unsent = c.sim.net.unsent(link, end);
                assert_eq!(
                    c.sim.node(n).queued_output(peer),
                    unsent,
                    "{} at {}",
                    c.sim.name(n),
                    c.sim.now()
                );
                assert!(c.sim.net.buffered(link, end) <= BUFFER);
                most_unsent = most_unsent.max(unsent);
            }
        }
        assert!(most_unsent > 0, "no write was ever held");
        assert!(c.integrity_converged());
        let path = InstallPath::new("/etc/client.keys").unwrap();
        for &w in &c.workers {
            assert_eq!(
                c.sim.storage(w).read(&path, 1 << 20).unwrap(),
                keys.as_bytes()
            );
        }
    }

    #[test]
    fn output_held_by_a_stalled_pipe_counts_as_queued_and_pauses_the_writers_reading() {
        let mut c = cluster(SimConfig::default(), 1, |cfg| {
            recorded_intervals(cfg);
            // Any unwritten byte is the bound: the master stops reading from the worker as soon
            // as one of its replies is held.
            cfg.limits.max_queued_output = 1;
        })
        .unwrap();
        let (m, w) = (c.master, c.workers[0]);
        c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
        let link = c.sim.links_between(m, w)[0];
        let (_, peer) = c.sim.ends[&(link, LinkEnd::Acceptor)];
        // Every write was taken at once: nothing is queued.
        assert_eq!(c.sim.node(m).queued_output(peer), 0);
        assert!(c.sim.node(m).wants_input(peer));

        // What the master writes to the worker is held from now on.
        c.sim.stall_direction(link, LinkEnd::Acceptor);
        let (sent, parked) = (
            c.sim.bytes_sent(link, LinkEnd::Acceptor),
            c.sim.stats().parked,
        );
        c.sim.run_for(Duration::from_secs(8)).unwrap();
        let held = c.sim.bytes_sent(link, LinkEnd::Acceptor) - sent;
        // The worker's keepalive and rounds went on, the master answered the first of them and
        // stopped reading: what it wrote is exactly what it counts as queued.
        assert!(held > 0);
        assert_eq!(c.sim.node(m).queued_output(peer) as u64, held);
        assert!(!c.sim.node(m).wants_input(peer));
        assert!(c.sim.stats().parked > parked, "{:?}", c.sim.stats());

        // Unstalled: the held bytes are taken, the parked requests read and answered.
        c.sim.unstall(link);
        assert_eq!(c.sim.node(m).queued_output(peer), 0);
        c.sim.run_for(Duration::from_secs(10)).unwrap();
        assert!(c.sim.node(m).wants_input(peer));
        assert_eq!(c.sim.links_between(m, w), [link]);
        let lost = c.sim.events().iter().any(|e| {
            matches!(
                e.event,
                NodeEvent::WorkerLeft { .. } | NodeEvent::DisconnectedFromMaster { .. }
            )
        });
        assert!(!lost, "{:?}", c.sim.events());
        assert!(c.integrity_converged());
    }
}
