//! A tiny in-test pump for `Node` tests: nodes joined by in-memory links, effects run at once on
//! each node's `MemoryStorage`, virtual time that jumps to the next wakeup. (The simulator crate
//! is the full harness; this one only needs to be obviously right.)
#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{Frame, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::dapi::builtin::AGENT_CENSUS;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};
use wazuh_cluster_sync::roles::{
    Effect, EffectExecutor, Node, NodeConfig, NodeEvent, NodeType, Origin, Output, PeerId,
};
pub use wazuh_cluster_testkit::install_path as p;
use wazuh_cluster_testkit::{cluster_fernet, cluster_key};

/// Unix time of the virtual origin.
pub const UNIX0: u64 = 1_795_682_920;

pub use wazuh_cluster_testkit::origin;
pub use wazuh_cluster_vectors::CLUSTER_KEY as KEY;

/// [`UNIX0`] as a timestamp: the wall time of the virtual origin.
pub fn unix0() -> Timestamp {
    Timestamp::from_secs(UNIX0 as i64)
}

/// A reply `ok` carrying `text`, as [`RawMaster::ask`] returns it.
pub fn ok(text: &str) -> (String, Bytes) {
    ("ok".to_owned(), Bytes::copy_from_slice(text.as_bytes()))
}

/// A reply `err` carrying `text`, as [`RawMaster::ask`] returns it.
pub fn err(text: &str) -> (String, Bytes) {
    ("err".to_owned(), Bytes::copy_from_slice(text.as_bytes()))
}

pub fn config(node_type: NodeType, name: &str, t0: Instant) -> NodeConfig {
    let key = cluster_key();
    let mut config = NodeConfig::new(node_type, name, Some(key), WallClock::new(t0, UNIX0));
    config.master_addr = "10.0.0.1:1516".to_owned();
    config.address = "10.0.0.1".to_owned();
    config
}

/// One node with its storage.
pub struct Member {
    pub node: Node,
    pub exec: EffectExecutor<MemoryStorage>,
    /// Address the others see.
    pub addr: String,
    /// When false, the pump leaves this node's outputs queued (a peer that stops reading).
    pub polled: bool,
}

/// One direction of a link: bytes from (member, peer) to (member, peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct End {
    pub member: usize,
    pub peer: PeerId,
}

pub struct Cluster {
    pub t0: Instant,
    pub now: Instant,
    pub members: Vec<Member>,
    /// Both ends of every open link.
    pub links: BTreeMap<End, End>,
    pub events: Vec<(usize, NodeEvent)>,
    /// Virtual time (since `t0`) of each entry of `events`.
    pub event_times: Vec<Duration>,
    /// Every frame sent, decrypted: (from member, counter, command, payload), in the order the
    /// nodes yielded them.
    pub frames: Vec<(usize, u32, String, Bytes)>,
    /// The end each entry of `frames` left from.
    pub frame_ends: Vec<End>,
    /// Each entry of `frames`' payload as it crossed the wire (the Fernet token).
    pub wire_payloads: Vec<Bytes>,
    /// Every chunk read (`ReadChunk` effect) run: the member, and how many entries `frames`
    /// had then.
    pub chunk_reads: Vec<(usize, usize)>,
    /// Every file begun (`BeginFile` effect): the member, the path, and whether the node took
    /// it for the package its role waits for.
    pub file_begins: Vec<(usize, InstallPath, bool)>,
    /// Links with a stalled reader: from the first transmit of at least this many bytes, what
    /// the node yields on them waits in `stalled` (neither written nor delivered) until
    /// [`Cluster::write_stalled`]; small frames pass while nothing waits before them.
    pub stall_above: BTreeMap<End, usize>,
    /// What waits on each stalled link, in order.
    pub stalled: BTreeMap<End, std::collections::VecDeque<Bytes>>,
    decoders: BTreeMap<End, FrameDecoder>,
    next_incoming: u64,
    /// When true, `Connect` requests are never answered (an adapter whose dial hangs).
    pub ignore_connects: bool,
    /// Links cut: transmits on them are dropped (a silent network).
    pub cut: Vec<End>,
    fernet: Fernet,
    /// Plaintext local-socket clients (`control`), by the node end they talk to.
    pub locals: BTreeMap<End, wazuh_cluster_protocol::connection::Connection>,
    /// Members whose distributed API calls are held (an executor that hangs) instead of run.
    pub hold_calls: Vec<usize>,
    /// The calls held: (member, id, call).
    pub held_calls: Vec<(
        usize,
        wazuh_cluster_sync::roles::ApiCallId,
        wazuh_cluster_sync::dapi::ApiCall,
    )>,
}

impl Cluster {
    pub fn new(t0: Instant) -> Self {
        Cluster {
            t0,
            now: t0,
            members: Vec::new(),
            links: BTreeMap::new(),
            events: Vec::new(),
            event_times: Vec::new(),
            frames: Vec::new(),
            frame_ends: Vec::new(),
            wire_payloads: Vec::new(),
            chunk_reads: Vec::new(),
            file_begins: Vec::new(),
            stall_above: BTreeMap::new(),
            stalled: BTreeMap::new(),
            decoders: BTreeMap::new(),
            next_incoming: 1,
            cut: Vec::new(),
            ignore_connects: false,
            fernet: cluster_fernet(),
            locals: BTreeMap::new(),
            hold_calls: Vec::new(),
            held_calls: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        config: NodeConfig,
        storage: MemoryStorage,
        seed: u64,
        addr: &str,
    ) -> usize {
        let exec = EffectExecutor::new(storage, &config);
        let node = Node::new(config, seed, self.now);
        self.members.push(Member {
            node,
            exec,
            addr: addr.to_owned(),
            polled: true,
        });
        self.members.len() - 1
    }

    /// A worker configured by `config` on an empty tree (seed `seed`, seen at `addr`).
    pub fn add_worker(&mut self, config: NodeConfig, seed: u64, addr: &str) -> usize {
        self.add(config, empty_storage(unix0()), seed, addr)
    }

    /// A master `master01` on `master_tree` and an empty worker `worker1`: (cluster, m, w).
    pub fn pair(t0: Instant, master_tree: MemoryStorage) -> (Cluster, usize, usize) {
        let mut c = Cluster::new(t0);
        let m = c.add(
            config(NodeType::Master, "master01", t0),
            master_tree,
            1,
            "10.0.0.1",
        );
        let w = c.add_worker(config(NodeType::Worker, "worker1", t0), 2, "10.0.0.2");
        (c, m, w)
    }

    pub fn unix(&self) -> Timestamp {
        self.members[0].node.unix_time(self.now)
    }

    /// Drains every node until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for m in 0..self.members.len() {
                if !self.members[m].polled {
                    continue;
                }
                while let Some(out) = self.members[m].node.poll_output() {
                    moved = true;
                    self.handle(m, out);
                }
            }
            for (end, c) in &mut self.locals {
                while let Some(bytes) = c.poll_transmit() {
                    moved = true;
                    self.members[end.member]
                        .node
                        .handle_input(self.now, end.peer, &bytes);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn handle(&mut self, m: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit { peer, bytes } => {
                let from = End { member: m, peer };
                if !self.locals.contains_key(&from) {
                    self.record(from, &bytes);
                }
                let waiting = self.stalled.get(&from).is_some_and(|q| !q.is_empty());
                if waiting
                    || self
                        .stall_above
                        .get(&from)
                        .is_some_and(|&n| bytes.len() >= n)
                {
                    self.stalled.entry(from).or_default().push_back(bytes);
                    return;
                }
                self.write(from, &bytes);
            }
            Output::Effect { id, effect } => {
                if matches!(effect, Effect::ReadChunk { .. }) {
                    self.chunk_reads.push((m, self.frames.len()));
                }
                if let Effect::BeginFile { path, package, .. } = &effect {
                    self.file_begins.push((m, path.clone(), *package));
                }
                let unix = self.members[m].node.unix_time(now);
                self.members[m].exec.storage_mut().set_now(unix);
                let result = self.members[m].exec.execute(&effect, unix);
                self.members[m].node.handle_effect_done(now, id, result);
            }
            Output::Connect { .. } if self.ignore_connects => {}
            Output::Connect { peer, addr } => {
                let target = self.members.iter().position(|x| {
                    addr.starts_with(&x.addr) && x.node.node_type() == NodeType::Master
                });
                match target {
                    Some(t) => {
                        let incoming = PeerId(self.next_incoming);
                        self.next_incoming += 1;
                        let a = End { member: m, peer };
                        let b = End {
                            member: t,
                            peer: incoming,
                        };
                        self.links.insert(a, b);
                        self.links.insert(b, a);
                        let worker_addr =
                            format!("{}:{}", self.members[m].addr, 40000 + incoming.0);
                        let master_addr = addr.clone();
                        self.members[t].node.handle_connected(
                            now,
                            incoming,
                            &worker_addr,
                            Origin::Incoming,
                        );
                        self.members[m].node.handle_connected(
                            now,
                            peer,
                            &master_addr,
                            Origin::Outgoing,
                        );
                    }
                    None => self.members[m].node.handle_closed(now, peer),
                }
            }
            Output::Close { peer } => {
                let from = End { member: m, peer };
                self.locals.remove(&from);
                if let Some(to) = self.links.remove(&from) {
                    self.links.remove(&to);
                    self.members[to.member].node.handle_closed(now, to.peer);
                }
            }
            Output::Event(event) => {
                self.events.push((m, event));
                self.event_times.push(now - self.t0);
            }
            // The master's census is held by nobody: the tests that hold calls hold requests.
            Output::ApiCall { id, call }
                if self.hold_calls.contains(&m) && call.framework_function != AGENT_CENSUS =>
            {
                self.held_calls.push((m, id, call));
            }
            Output::ApiCall { id, call } => {
                let unix = self.members[m].node.unix_time(now);
                let answer = self.members[m].exec.run_api_call(&call, unix);
                self.members[m].node.handle_api_done(now, id, answer);
            }
        }
    }

    /// The in-memory link takes a write at once (a cut one drops it, as a black-holed route
    /// whose kernel buffer still has room).
    fn write(&mut self, from: End, bytes: &[u8]) {
        let now = self.now;
        self.members[from.member]
            .node
            .handle_written(now, from.peer, bytes.len());
        if let Some(c) = self.locals.get_mut(&from) {
            c.handle_input(now, bytes);
            return;
        }
        if self.cut.contains(&from) {
            return;
        }
        if let Some(to) = self.links.get(&from).copied() {
            self.members[to.member]
                .node
                .handle_input(now, to.peer, bytes);
        }
    }

    /// The stalled reader of `from` takes everything waiting for it: written, delivered, and
    /// the cluster pumped. Returns the bytes.
    pub fn write_stalled(&mut self, from: End) -> usize {
        let waiting = self.stalled.remove(&from).unwrap_or_default();
        let mut n = 0;
        for bytes in waiting {
            n += bytes.len();
            self.write(from, &bytes);
        }
        self.pump();
        n
    }

    fn record(&mut self, from: End, bytes: &[u8]) {
        let decoder = self
            .decoders
            .entry(from)
            .or_insert_with(|| FrameDecoder::new(Profile::V3_9, u32::MAX));
        let mut data = bytes;
        while let Ok(Some(Frame {
            counter,
            command,
            payload,
        })) = decoder.decode_slice(&mut data)
        {
            let plain = self
                .fernet
                .decrypt(&payload)
                .map(Bytes::from)
                .unwrap_or_default();
            self.wire_payloads.push(payload);
            self.frames.push((
                from.member,
                counter,
                String::from_utf8_lossy(command.name()).into_owned(),
                plain,
            ));
            self.frame_ends.push(from);
        }
    }

    /// Runs until virtual time `until`, firing timers at their instants.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.pump();
            let next = self
                .members
                .iter()
                .filter_map(|m| m.node.poll_timeout())
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    for m in 0..self.members.len() {
                        if self.members[m]
                            .node
                            .poll_timeout()
                            .is_some_and(|t| t <= self.now)
                        {
                            self.members[m].node.handle_timeout(self.now);
                        }
                    }
                }
                _ => {
                    self.now = self.now.max(until);
                    self.pump();
                    return;
                }
            }
        }
    }

    /// Opens a local-socket client (plaintext, no hello, as `control` does) on member `m` as
    /// its peer `peer`.
    pub fn local_connect(&mut self, m: usize, peer: u64) -> End {
        use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Side};
        use wazuh_cluster_protocol::rng::Rng;
        let end = End {
            member: m,
            peer: PeerId(peer),
        };
        let mut config =
            ConnectionConfig::new(Profile::V3_9, None, WallClock::new(self.now, UNIX0));
        config.require_hello = false;
        // What upstream's local client claims: the later answers (a worker's control_res, a
        // distributed API answer or failure), or an error.
        config.claimed_commands = [
            wazuh_cluster_protocol::frame::Command::from_static(b"control_res"),
            wazuh_cluster_protocol::frame::Command::from_static(b"dapi_res"),
            wazuh_cluster_protocol::frame::Command::from_static(b"dapi_err"),
            wazuh_cluster_protocol::frame::Command::from_static(b"send_f_res"),
            wazuh_cluster_protocol::frame::Command::ERR,
        ]
        .into();
        let conn = Connection::new(config, Side::Client, Rng::from_seed(peer), self.now);
        self.locals.insert(end, conn);
        let addr = format!("local-{peer}");
        self.members[m]
            .node
            .handle_connected(self.now, end.peer, &addr, Origin::Local);
        self.pump();
        end
    }

    /// Sends `command` from the local client `end` and returns every event the client saw
    /// (replies and requests), after the cluster went quiet.
    pub fn local_ask(
        &mut self,
        end: End,
        command: &str,
        payload: &[u8],
    ) -> Vec<wazuh_cluster_protocol::connection::Event> {
        use wazuh_cluster_protocol::frame::Command;
        let cmd = Command::new(Profile::V3_9, command.as_bytes()).unwrap();
        let now = self.now;
        self.locals
            .get_mut(&end)
            .unwrap()
            .send_request(now, cmd, payload)
            .unwrap();
        self.pump();
        let mut events = Vec::new();
        if let Some(c) = self.locals.get_mut(&end) {
            while let Some(event) = c.poll_event() {
                events.push(event);
            }
        }
        events
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Commands sent by member `m`, in order.
    pub fn commands_from(&self, m: usize) -> Vec<String> {
        self.frames
            .iter()
            .filter(|(f, _, _, _)| *f == m)
            .map(|(_, _, c, _)| c.clone())
            .collect()
    }

    pub fn events_of(&self, m: usize) -> Vec<NodeEvent> {
        self.events
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Events of member `m` with their virtual time, recalculations left out.
    pub fn timed_events_of(&self, m: usize) -> Vec<(Duration, NodeEvent)> {
        self.events
            .iter()
            .zip(&self.event_times)
            .filter(|((x, e), _)| *x == m && !matches!(e, NodeEvent::IntegrityRecalculated { .. }))
            .map(|((_, e), t)| (*t, e.clone()))
            .collect()
    }

    pub fn storage(&self, m: usize) -> &MemoryStorage {
        self.members[m].exec.storage()
    }

    pub fn storage_mut(&mut self, m: usize) -> &mut MemoryStorage {
        self.members[m].exec.storage_mut()
    }
}

/// What the master's comparison counts for a worker with an empty tree against
/// [`master_storage`]: its four integrity files missing.
pub const EMPTY_WORKER_COUNTS: SyncCounts = SyncCounts {
    missing: 4,
    extra: 0,
    extra_valid: 0,
    shared: 0,
};

/// A master tree with a few integrity files and agents.
pub fn master_storage(now: Timestamp) -> MemoryStorage {
    let mut s = MemoryStorage::new();
    s.set_now(now);
    let attrs = |mode| FileAttrs {
        mode,
        mtime: Some(Timestamp::from_secs(1_795_000_000)),
    };
    for dir in [
        "/etc",
        "/etc/shared/default",
        "/etc/rules",
        "/queue/agent-groups",
        "/queue/agent-info",
        "/queue/cluster",
    ] {
        s.create_dir_all(&p(dir), 0o770).unwrap();
    }
    s.write_atomic(
        &p("/etc/client.keys"),
        b"001 agent-one any k1\n002 agent-two any k2\n",
        &attrs(0o640),
    )
    .unwrap();
    s.write_atomic(
        &p("/etc/shared/default/merged.mg"),
        b"#default\n",
        &attrs(0o660),
    )
    .unwrap();
    s.write_atomic(
        &p("/etc/rules/local_rules.xml"),
        b"<group/>\n",
        &attrs(0o660),
    )
    .unwrap();
    s.write_atomic(&p("/queue/agent-groups/001"), b"default\n", &attrs(0o660))
        .unwrap();
    s
}

pub fn empty_storage(now: Timestamp) -> MemoryStorage {
    let mut s = MemoryStorage::new();
    s.set_now(now);
    s
}

/// A master `Node` driven by hand through raw client `Connection`s (a worker speaking the wire
/// directly), so tests can send any command and read the exact reply.
pub struct RawMaster {
    pub now: Instant,
    pub node: Node,
    pub exec: EffectExecutor<MemoryStorage>,
    pub clients: BTreeMap<PeerId, wazuh_cluster_protocol::connection::Connection>,
    pub events: Vec<NodeEvent>,
    pub closed: Vec<PeerId>,
    /// Effects not run (when `run_effects` is false).
    pub held: Vec<(
        wazuh_cluster_sync::roles::EffectId,
        wazuh_cluster_sync::roles::Effect,
    )>,
    pub run_effects: bool,
    /// Clients that do not read: the node's transmits to them are held in `unread`, neither
    /// delivered nor reported written, until [`RawMaster::read_from_node`].
    pub not_reading: std::collections::BTreeSet<PeerId>,
    /// Transmits held for the clients in `not_reading`, in order.
    pub unread: BTreeMap<PeerId, std::collections::VecDeque<Bytes>>,
    /// When true, a client's bytes reach the node only while [`Node::wants_input`] holds for it
    /// (they wait in the client, as in a kernel buffer); when false they are fed regardless (to
    /// test the node's own bounds).
    pub honour_wants_input: bool,
    /// When true, the distributed API calls other than the census are held (an executor that
    /// hangs) in `held_calls` instead of run.
    pub hold_calls: bool,
    pub held_calls: Vec<(
        wazuh_cluster_sync::roles::ApiCallId,
        wazuh_cluster_sync::dapi::ApiCall,
    )>,
}

impl RawMaster {
    /// A master `master01` with the default configuration, its clock starting now.
    pub fn master01() -> Self {
        let t0 = origin();
        RawMaster::new(t0, config(NodeType::Master, "master01", t0))
    }

    pub fn new(t0: Instant, config: NodeConfig) -> Self {
        let exec = EffectExecutor::new(master_storage(unix0()), &config);
        let node = Node::new(config, 7, t0);
        let mut raw = RawMaster {
            now: t0,
            node,
            exec,
            clients: BTreeMap::new(),
            events: Vec::new(),
            closed: Vec::new(),
            held: Vec::new(),
            run_effects: true,
            not_reading: Default::default(),
            unread: BTreeMap::new(),
            honour_wants_input: false,
            hold_calls: false,
            held_calls: Vec::new(),
        };
        raw.pump();
        raw
    }

    pub fn connect(&mut self, peer: u64, addr: &str) -> PeerId {
        use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Side};
        use wazuh_cluster_protocol::rng::Rng;
        let peer = PeerId(peer);
        let key = cluster_key();
        let mut config =
            ConnectionConfig::new(Profile::V3_9, Some(key), WallClock::new(self.now, UNIX0));
        // Tests send keepalives themselves (`echo-c`), so silence can be tested.
        config.keep_alive = Duration::from_secs(1_000_000);
        // The distributed API requests a master sends; the sync commands stay unclaimed (the
        // connection answers them as unknown unless a test answers them itself).
        config.claimed_commands = ["dapi", "dapi_res", "dapi_err"]
            .iter()
            .map(|c| {
                wazuh_cluster_protocol::frame::Command::new(Profile::V3_9, c.as_bytes()).unwrap()
            })
            .collect();
        let mut conn = Connection::new(config, Side::Client, Rng::from_seed(peer.0), self.now);
        // The raw client plays a worker: let it receive master requests without a hello gate.
        conn.set_authenticated(self.now);
        self.clients.insert(peer, conn);
        self.node
            .handle_connected(self.now, peer, addr, Origin::Incoming);
        self.pump();
        peer
    }

    /// A local-socket client (plaintext, no hello) as peer `peer`, claiming the later answers a
    /// node sends it.
    pub fn connect_local(&mut self, peer: u64) -> PeerId {
        use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Side};
        use wazuh_cluster_protocol::rng::Rng;
        let peer = PeerId(peer);
        let mut config =
            ConnectionConfig::new(Profile::V3_9, None, WallClock::new(self.now, UNIX0));
        config.require_hello = false;
        config.claimed_commands = ["dapi_res", "dapi_err", "control_res", "err"]
            .iter()
            .map(|c| {
                wazuh_cluster_protocol::frame::Command::new(Profile::V3_9, c.as_bytes()).unwrap()
            })
            .collect();
        let conn = Connection::new(config, Side::Client, Rng::from_seed(peer.0), self.now);
        self.clients.insert(peer, conn);
        self.node
            .handle_connected(self.now, peer, &format!("local-{}", peer.0), Origin::Local);
        self.pump();
        peer
    }

    /// Moves bytes both ways and runs effects until quiet.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.node.poll_output() {
                moved = true;
                match out {
                    Output::Transmit { peer, bytes } => {
                        if self.not_reading.contains(&peer) {
                            self.unread.entry(peer).or_default().push_back(bytes);
                            continue;
                        }
                        self.node.handle_written(self.now, peer, bytes.len());
                        if let Some(c) = self.clients.get_mut(&peer) {
                            c.handle_input(self.now, &bytes);
                        }
                    }
                    Output::Effect { id, effect } => {
                        if self.run_effects {
                            let unix = self.node.unix_time(self.now);
                            let result = self.exec.execute(&effect, unix);
                            self.node.handle_effect_done(self.now, id, result);
                        } else {
                            self.held.push((id, effect));
                        }
                    }
                    Output::Close { peer } => {
                        self.clients.remove(&peer);
                        self.closed.push(peer);
                    }
                    Output::Event(e) => self.events.push(e),
                    Output::ApiCall { id, call }
                        if self.hold_calls && call.framework_function != AGENT_CENSUS =>
                    {
                        self.held_calls.push((id, call));
                    }
                    Output::ApiCall { id, call } => {
                        let unix = self.node.unix_time(self.now);
                        let answer = self.exec.run_api_call(&call, unix);
                        self.node.handle_api_done(self.now, id, answer);
                    }
                    Output::Connect { .. } => panic!("a master does not dial"),
                }
            }
            for (peer, c) in &mut self.clients {
                if self.honour_wants_input && !self.node.wants_input(*peer) {
                    continue;
                }
                while let Some(bytes) = c.poll_transmit() {
                    moved = true;
                    self.node.handle_input(self.now, *peer, &bytes);
                    if self.honour_wants_input && !self.node.wants_input(*peer) {
                        break;
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Client `peer` reads `max` bytes of what the node sent it and held in `unread` (cutting a
    /// transmit if needed); they are reported written. Returns how many it read.
    pub fn read_from_node(&mut self, peer: PeerId, max: usize) -> usize {
        let mut read = 0;
        while read < max {
            let Some(mut bytes) = self.unread.get_mut(&peer).and_then(|q| q.pop_front()) else {
                break;
            };
            if bytes.len() > max - read {
                let rest = bytes.split_off(max - read);
                self.unread.entry(peer).or_default().push_front(rest);
            }
            read += bytes.len();
            self.node.handle_written(self.now, peer, bytes.len());
            if let Some(c) = self.clients.get_mut(&peer) {
                c.handle_input(self.now, &bytes);
            }
        }
        self.pump();
        read
    }

    /// Sends a request from client `peer` and returns the reply (command, payload).
    pub fn ask(&mut self, peer: PeerId, command: &str, payload: &[u8]) -> (String, Bytes) {
        let counter = self.send(peer, command, payload);
        if !self.clients.contains_key(&peer) {
            return ("closed".to_owned(), Bytes::new());
        }
        self.take_reply(peer, counter)
            .unwrap_or_else(|| panic!("no reply to {command}"))
    }

    /// Sends a request from client `peer` and moves bytes until quiet; its counter.
    pub fn send(&mut self, peer: PeerId, command: &str, payload: &[u8]) -> u32 {
        let cmd =
            wazuh_cluster_protocol::frame::Command::new(Profile::V3_9, command.as_bytes()).unwrap();
        let counter = self
            .clients
            .get_mut(&peer)
            .unwrap()
            .send_request(self.now, cmd, payload)
            .unwrap();
        self.pump();
        counter
    }

    /// The reply client `peer` received to its request `counter` (command, payload), if it came;
    /// the client's other events are dropped.
    pub fn take_reply(&mut self, peer: PeerId, counter: u32) -> Option<(String, Bytes)> {
        use wazuh_cluster_protocol::connection::Event;
        use wazuh_cluster_protocol::message::Reply;
        let c = self.clients.get_mut(&peer)?;
        let mut found = None;
        while let Some(event) = c.poll_event() {
            if let Event::Response {
                counter: k, reply, ..
            } = event
                && k == counter
            {
                found = Some(match reply {
                    Reply::Ok(p) => ("ok".to_owned(), p),
                    Reply::Err(p) => ("err".to_owned(), p),
                    Reply::OkFromMaster(p) => ("ok-m".to_owned(), p),
                    other => ("other".to_owned(), other.payload().clone()),
                });
            }
        }
        found
    }

    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = self
                .node
                .poll_timeout()
                .into_iter()
                .chain(self.clients.values().filter_map(|c| c.poll_timeout()))
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.node.handle_timeout(self.now);
                    for c in self.clients.values_mut() {
                        c.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// Registers `name` from `addr` with a good hello.
    pub fn join(&mut self, peer: u64, name: &str, addr: &str) -> PeerId {
        let peer = self.connect(peer, addr);
        let reply = self.ask(
            peer,
            "hello",
            format!("{name} wazuh worker 3.9.5").as_bytes(),
        );
        assert_eq!(
            reply,
            ("ok".to_owned(), Bytes::from(format!("Client {name} added")))
        );
        peer
    }

    /// Events other than the periodic recalculation.
    pub fn take_events(&mut self) -> Vec<NodeEvent> {
        std::mem::take(&mut self.events)
            .into_iter()
            .filter(|e| !matches!(e, NodeEvent::IntegrityRecalculated { .. }))
            .collect()
    }
}

/// The sending end of a link a test drives by hand, for [`push_file`].
pub trait FileSender {
    /// Moves bytes both ways and runs effects until quiet.
    fn pump(&mut self);
    /// The sending connection (`None`: the link is gone).
    fn sender(&mut self) -> Option<&mut wazuh_cluster_protocol::connection::Connection>;
    /// The sending connection's next event that is not a request or a reply.
    fn next_event(&mut self) -> Option<wazuh_cluster_protocol::connection::Event>;
}

/// Sends `data` as file `path` (new_file, file_upd*, file_end) at `now`, driving the sender's
/// pull model: `Ok` once the receiver confirmed it, else why not (`closed`, `stalled`, or the
/// transfer's failure).
pub fn push_file(
    link: &mut impl FileSender,
    now: Instant,
    path: &str,
    data: &[u8],
) -> Result<(), String> {
    use wazuh_cluster_protocol::connection::Event;
    let closed = || "closed".to_owned();
    let transfer = link
        .sender()
        .ok_or_else(closed)?
        .send_file(now, path.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut offset = 0;
    loop {
        link.pump();
        let mut progressed = false;
        while let Some(event) = link.next_event() {
            match event {
                Event::FileChunkWanted {
                    transfer: t,
                    max_len,
                } if t == transfer => {
                    progressed = true;
                    let c = link.sender().ok_or_else(closed)?;
                    if offset < data.len() {
                        let end = (offset + max_len).min(data.len());
                        c.file_chunk(now, transfer, &data[offset..end]).unwrap();
                        offset = end;
                    } else {
                        c.finish_file(now, transfer).unwrap();
                    }
                }
                Event::FileSent { transfer: t, .. } if t == transfer => return Ok(()),
                Event::TransferFailed { failure, .. } => return Err(format!("{failure:?}")),
                _ => {}
            }
        }
        if link.sender().is_none() {
            return Err(closed());
        }
        if !progressed {
            return Err("stalled".into());
        }
    }
}

/// Client `peer` of a [`RawMaster`], as a [`FileSender`].
struct RawClient<'a>(&'a mut RawMaster, PeerId);

impl FileSender for RawClient<'_> {
    fn pump(&mut self) {
        self.0.pump();
    }

    fn sender(&mut self) -> Option<&mut wazuh_cluster_protocol::connection::Connection> {
        self.0.clients.get_mut(&self.1)
    }

    fn next_event(&mut self) -> Option<wazuh_cluster_protocol::connection::Event> {
        self.sender()?.poll_event()
    }
}

impl RawMaster {
    /// Sends `data` as file `path` from client `peer`, until the master confirmed it.
    pub fn send_file(&mut self, peer: PeerId, path: &str, data: &[u8]) {
        if let Err(why) = self.try_send_file(peer, path, data) {
            panic!("file transfer of {path}: {why}");
        }
    }

    /// Sends `data` as file `path` from client `peer`: `Ok` once the master confirmed it, else
    /// why not (see [`push_file`]).
    pub fn try_send_file(&mut self, peer: PeerId, path: &str, data: &[u8]) -> Result<(), String> {
        let now = self.now;
        push_file(&mut RawClient(self, peer), now, path, data)
    }

    /// Runs the first effect held back (while `run_effects` was false) and what follows it.
    pub fn run_held(&mut self) {
        let (id, effect) = self.held.remove(0);
        let result = self.exec.execute(&effect, self.node.unix_time(self.now));
        self.node.handle_effect_done(self.now, id, result);
        self.pump();
    }

    /// Zip files left under `/queue/cluster/<worker>/` on the master.
    pub fn packages_left(&self, worker: &str) -> Vec<String> {
        self.exec
            .storage()
            .files()
            .keys()
            .filter(|k| {
                k.as_str().starts_with(&format!("/queue/cluster/{worker}/"))
                    && k.as_str().ends_with(".zip")
            })
            .map(|k| k.as_str().to_owned())
            .collect()
    }
}

/// A worker integrity package describing `metadata_json` (the worker's `cluster_control.json`).
pub fn worker_integrity_package(metadata_json: &str) -> Vec<u8> {
    wazuh_cluster_sync::integrity::package::build_package_in_memory(
        std::iter::empty(),
        metadata_json.as_bytes(),
        unix0(),
    )
    .unwrap()
}
