//! A whole master [`Node`] facing hostile workers: the role layer, its effects and its storage.
//!
//! The other targets stop at one layer (frames, a connection core, a package); this one is where
//! a hostile worker actually lands. A master named `master01` runs over the simulator's sample
//! master tree ([`fixtures::master_tree`]) in a [`MemoryStorage`], with small limits so every
//! bound is reachable, and the body drives it as an adapter would: it accepts up to two
//! connections at a time, reads from a peer only while [`Node::wants_input`] says so (bytes sent
//! meanwhile wait in that peer's "socket", read [`READ_BUF`] bytes at a time), runs the effects
//! it holds in the order the input picks (the effects contract allows any order), and reports
//! written bytes only when the input says so (a worker that does not read).
//!
//! Input: byte 0 seeds the node, then a program of operations, each an opcode byte and its
//! arguments ([`Op`]). Sealed frames are encrypted here with the cluster key, so the fuzzer gets
//! behind the crypto without forging Fernet tokens; their command comes from a table of
//! everything a worker can send ([`Cmd`]), with payloads built to pass the first checks (a valid
//! `hello`, the task id the master handed out, the path of the last file sent) or taken from the
//! input. Files go out as `new_file` / `file_upd` / `file_end` with the right SHA-256, their
//! content a real worker package (built once by a worker's [`EffectExecutor`]), a small package
//! assembled from input bytes, or raw bytes, optionally with one byte flipped.
//!
//! Checked after every operation (a failed check panics):
//! * every transmit decodes as frames whose tokens open with the key, no frame exceeds the
//!   connection's payload bound, and nothing is output for a peer after its `Close`;
//! * the node's count of unwritten output per peer equals ours, and stays within
//!   [`queued_bound`] (the limit plus what one read and the master's own steps can add);
//! * effects in flight are exactly the ones we hold, at most one per connection ever opened plus
//!   the master's scan;
//! * every file whose content differs from the initial tree (or that vanished) lies under a
//!   directory a worker may write on the master (`/queue/agent-info`, `/queue/agent-groups`,
//!   `/queue/cluster`), and no file is torn: a file under `/queue/cluster` is a complete file
//!   some peer sent to that path (the node's mirror of the input tells) or a whole ZIP package
//!   the master built; an agent file is a whole part of a merged file some peer sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{Command, FrameDecoder, encode_frame};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::integrity::apply::ApplyLimits;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::{MergedLimits, unmerge};
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::{
    Effect, EffectExecutor, EffectId, EffectOutput, Node, NodeConfig, NodeEvent, NodeType, Origin,
    Output, PeerId, SyncKind,
};

use super::Input;
use crate::fixtures;
use crate::tree::{TreeFile, storage_from};

/// The key of the recorded vectors.
use wazuh_cluster_vectors::CLUSTER_KEY as KEY;
/// The master's name.
const MASTER: &str = "master01";
/// Bytes an adapter reads from a socket per `handle_input` (then it asks `wants_input` again).
pub const READ_BUF: usize = 1024;
/// Most live connections the body keeps (the master allows two workers).
const MAX_LIVE: usize = 2;
/// Most connections one input opens (ids are never reused, as the contract asks).
const MAX_CONNECTIONS: u64 = 8;
/// Operations per input: bounded work.
const MAX_OPS: usize = 256;
/// `file_upd` chunk carried per frame by the body's file sends.
const FILE_CHUNK: usize = 600;
/// Frame header bytes (PROTOCOL.md §2: counter, length, 12-byte command).
const HEADER: usize = 20;
/// The smallest sealed frame: header plus the Fernet token of an empty payload (1 + 8 + 16 + 16
/// + 32 = 73 bytes, 100 in base64).
const MIN_SEALED_FRAME: usize = HEADER + 100;
/// Frames the master may add for a peer without reading more of it: per task kind, its
/// `sync_m_c` / `sync_m_c_e` requests, the `file_end` of a package, and the replies to a
/// late `_e`; plus the replies to what is already in flight.
const MASTER_OWN_FRAMES: usize = 3 * 4 + 4;

// The three tables below are public: they are the alphabet of this target's input format, which
// the docs of [`Cmd`] describe for whoever writes a corpus file by hand.

/// Names a `hello` may carry (index = argument byte % len).
pub const NAMES: &[&str] = &["worker1", "worker2", MASTER, "bad name", ".hidden", "w"];
/// Peer addresses (two on one host: a second `hello` from there replaces the first session).
pub const ADDRS: &[&str] = &["10.0.0.1:40001", "10.0.0.1:40002", "10.0.0.2:40001"];
/// File names below `/queue/cluster/<worker>/` a file send picks from.
pub const FILE_NAMES: &[&str] = &[
    "worker1-1800000000-1.zip",
    "agent-info.merged",
    "agent-groups.merged",
    "w.zip",
    "x/y.zip",
    "..",
];

/// The kinds in `SyncKind::ALL` order (`i`, `e`, `a`).
const KINDS: [SyncKind; 3] = [
    SyncKind::Integrity,
    SyncKind::ExtraValid,
    SyncKind::AgentInfo,
];

/// What a sealed frame carries (index = byte % [`Cmd::COUNT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// `hello <name> wazuh worker 3.9.5`, name from [`NAMES`].
    HelloValid,
    /// `hello` naming another cluster.
    HelloOtherCluster,
    /// `hello` with another version.
    HelloOtherVersion,
    /// `hello` with the input's bytes.
    HelloRaw,
    /// `echo-c` (the worker's keepalive) with the input's bytes.
    EchoC,
    /// `sync_<k>_w_m_p`.
    Permission(usize),
    /// `sync_<k>_w_m` (task creation).
    Task(usize),
    /// `sync_<k>_w_m_e <task> <file>`: the task id the master gave (or input bytes), the last
    /// file sent (or `Error`, or input bytes).
    End(usize),
    /// `sync_<k>_w_m_r` with the input's bytes.
    Report(usize),
    /// `new_file` / `file_upd` / `file_end` with the input's bytes.
    RawFile(usize),
    /// `get_nodes` with the input's bytes.
    GetNodes,
    /// `get_health` with the input's bytes.
    GetHealth,
    /// `dapi` with the input's bytes.
    Dapi,
    /// `echo` with the input's bytes.
    Echo,
    /// An unknown command.
    Unknown,
}

impl Cmd {
    /// Entries in the table.
    pub const COUNT: u8 = 26;

    /// The table entry for `byte`.
    pub fn from_byte(byte: u8) -> Cmd {
        let i = usize::from(byte % Self::COUNT);
        match i {
            0 => Cmd::HelloValid,
            1 => Cmd::HelloOtherCluster,
            2 => Cmd::HelloOtherVersion,
            3 => Cmd::HelloRaw,
            4 => Cmd::EchoC,
            5..=7 => Cmd::Permission(i - 5),
            8..=10 => Cmd::Task(i - 8),
            11..=13 => Cmd::End(i - 11),
            14..=16 => Cmd::Report(i - 14),
            17..=19 => Cmd::RawFile(i - 17),
            20 => Cmd::GetNodes,
            21 => Cmd::GetHealth,
            22 => Cmd::Dapi,
            23 => Cmd::Echo,
            _ => Cmd::Unknown,
        }
    }

    /// The byte that selects `self` (inverse of [`Cmd::from_byte`]).
    pub fn byte(self) -> u8 {
        let i = match self {
            Cmd::HelloValid => 0,
            Cmd::HelloOtherCluster => 1,
            Cmd::HelloOtherVersion => 2,
            Cmd::HelloRaw => 3,
            Cmd::EchoC => 4,
            Cmd::Permission(k) => 5 + k,
            Cmd::Task(k) => 8 + k,
            Cmd::End(k) => 11 + k,
            Cmd::Report(k) => 14 + k,
            Cmd::RawFile(k) => 17 + k,
            Cmd::GetNodes => 20,
            Cmd::GetHealth => 21,
            Cmd::Dapi => 22,
            Cmd::Echo => 23,
            Cmd::Unknown => 24,
        };
        u8::try_from(i).unwrap_or(24)
    }
}

/// One step of the program (opcode = byte % 10). Slots name a live connection (index % count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `0`, slot, len: u16 (% 2048), bytes — raw bytes into the peer's socket.
    Raw,
    /// `1`, slot, cmd: u8 ([`Cmd`]), arg: u8, len: u16 (% 2048), bytes — one sealed frame.
    /// `arg` picks the `hello` name, and for `End` bit 0 uses the master's task id, bit 1 the
    /// last file sent, bit 2 `Error`.
    Sealed,
    /// `2`, slot, name: u8, content: u8, flip: u16, len: u16 (% 4096), bytes — a whole file send.
    /// `name`: low 3 bits pick [`FILE_NAMES`], bit 3 another worker's directory, bit 4 a path
    /// outside `/queue/cluster`, bit 5 a wrong digest, bit 6 no `file_end`. `content % 5`: the
    /// worker's integrity / extra-valid / agent-info package, a package of one member built
    /// from the bytes, or the bytes; bit 7 flips the byte at `flip % len`.
    SendFile,
    /// `3`, ticks: u16 — time moves by `ticks * 10` ms, then `handle_timeout`.
    Advance,
    /// `4` — time jumps to `poll_timeout` (if any), then `handle_timeout`.
    JumpToTimeout,
    /// `5`, which: u8 — run the effect at `which % held` (bit 7: all held, in order).
    RunEffect,
    /// `6`, slot, amount: u8 — report `unwritten * amount / 255` bytes written.
    Written,
    /// `7`, slot — the peer hangs up (`handle_closed`).
    Close,
    /// `8`, addr: u8 — a new incoming connection from [`ADDRS`].
    Connect,
    /// `9`, slot, how: u8, len: u16 (% 1024), bytes — reply to the master's oldest request:
    /// `ok` (even) or `err` (odd) with the bytes, or (bit 1) the payload a worker would send.
    Reply,
}

impl Op {
    /// The operation for an opcode byte.
    pub fn from_byte(byte: u8) -> Op {
        match byte % 10 {
            0 => Op::Raw,
            1 => Op::Sealed,
            2 => Op::SendFile,
            3 => Op::Advance,
            4 => Op::JumpToTimeout,
            5 => Op::RunEffect,
            6 => Op::Written,
            7 => Op::Close,
            8 => Op::Connect,
            _ => Op::Reply,
        }
    }
}

/// What one run reached (for the seed tests: a seed must get somewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reached {
    /// Workers registered (`WorkerJoined`).
    pub joined: usize,
    /// `hello`s refused.
    pub refused: usize,
    /// Synchronisations finished, by kind (`i`, `e`, `a`).
    pub finished: [usize; 3],
    /// Synchronisations failed.
    pub failed: usize,
    /// Effects run.
    pub effects: usize,
    /// Closes the node asked for.
    pub closes: usize,
    /// Most unwritten output seen for one peer.
    pub max_queued: usize,
    /// Most staged writes seen open at a check with nothing in flight (where the node's view of
    /// them is compared with the executor's).
    pub max_open_files: usize,
    /// Files (paths) whose content differs from the initial tree at the end.
    pub changed: BTreeSet<String>,
}

/// The node's configuration: fast intervals, small bounds.
fn config(t0: Instant) -> NodeConfig {
    let key = ClusterKey::new(KEY).expect("vector key");
    let clock = WallClock::new(t0, fixtures::START.unsigned_abs());
    let mut c = NodeConfig::new(NodeType::Master, MASTER, Some(key), clock);
    fixtures::recorded_intervals(&mut c);
    let conn = &mut c.connection;
    conn.max_frame_payload = 16 * 1024;
    conn.request_chunk = 1024;
    conn.max_pending_requests = 8;
    conn.max_incoming_files = 3;
    conn.max_file_size = 16 * 1024;
    conn.max_file_path_len = 128;
    conn.max_incoming_strings = 2;
    conn.max_string_size = 4 * 1024;
    conn.max_incoming_strings_bytes = 6 * 1024;
    conn.max_outgoing_transfers = 2;
    conn.max_queued_transmit = 32 * 1024;
    conn.max_unanswered_requests = 4;
    let l = &mut c.limits;
    l.max_workers = 2;
    l.max_queued_output = 4 * 1024;
    l.max_pending_disk_bytes = 4 * 1024;
    l.package = PackageLimits {
        max_members: 16,
        max_member_size: 16 * 1024,
        max_total_size: 64 * 1024,
        max_control_size: 16 * 1024,
    };
    l.merged = MergedLimits {
        max_parts: 8,
        max_part_size: 4 * 1024,
        max_total: 16 * 1024,
    };
    l.apply = ApplyLimits {
        max_entries: 64,
        merged: l.merged,
    };
    l.max_package_file = 64 * 1024;
    l.read_chunk = 512;
    c
}

/// Most unwritten output one peer may hold: [`NodeLimits::max_queued_output`] plus what the
/// node adds while it is over the limit. Over it the node reads no file chunk for the peer and
/// the adapter reads no more input from it, but what was already read is answered: one read of
/// [`READ_BUF`] bytes holds at most `READ_BUF / MIN_SEALED_FRAME + 1` requests (one more
/// started in an earlier read), each with one reply; a chunk read already running adds one
/// chunk; the master's own steps (task requests, the end of a package) add
/// `MASTER_OWN_FRAMES` (a private constant of this module). Every frame is at most a header plus
/// the payload bound.
///
/// [`NodeLimits::max_queued_output`]: wazuh_cluster_sync::roles::NodeLimits::max_queued_output
pub fn queued_bound(c: &NodeConfig) -> usize {
    let frame = HEADER + c.connection.max_frame_payload as usize;
    let frames = READ_BUF / MIN_SEALED_FRAME + 2 + 1 + MASTER_OWN_FRAMES;
    c.limits.max_queued_output + frames * frame
}

/// Worker packages (built once by a real worker's executor) and the initial master files.
struct Fixtures {
    /// The files of [`master_storage`], by path.
    master: BTreeMap<InstallPath, Vec<u8>>,
    /// Integrity, extra-valid, agent-info packages of `worker1`.
    packages: [Vec<u8>; 3],
}

/// The master's storage at the start of a run (not shared: `MemoryStorage` is not `Sync`).
fn master_storage() -> MemoryStorage {
    storage_from(fixtures::master_tree()).expect("master tree")
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let master = master_storage().files();
        let recent = Timestamp::from_secs(fixtures::START - 5);
        let worker = storage_from([
            TreeFile::new("/etc/client.keys", "001 agent-one any k\n", fixtures::OLD),
            TreeFile::new("/etc/rules/local_rules.xml", "<group/>\n", fixtures::OLD),
            TreeFile::new("/etc/rules/worker_only.xml", "<group/>\n", fixtures::OLD),
            TreeFile::new("/queue/agent-groups/001", "default,group2\n", recent),
            TreeFile::new("/queue/agent-groups/004", "group2\n", recent),
            TreeFile::new(
                "/queue/agent-info/agent-one-any",
                "Linux |agent-one\n",
                recent,
            ),
            TreeFile::new(
                "/queue/agent-info/agent-nine-any",
                "Linux |agent-nine\n",
                recent,
            ),
        ])
        .expect("worker tree");
        let t0 = Instant::now();
        let key = ClusterKey::new(KEY).expect("vector key");
        let clock = WallClock::new(t0, fixtures::START.unsigned_abs());
        let wc = NodeConfig::new(NodeType::Worker, "worker1", Some(key), clock);
        let mut exec = EffectExecutor::new(worker, &wc);
        let now = Timestamp::from_secs(fixtures::START);
        let extra_valid = ["/queue/agent-groups/001", "/queue/agent-groups/004"]
            .map(|p| InstallPath::new(p).expect("fixture path"))
            .to_vec();
        let packages = KINDS.map(|kind| {
            let path = InstallPath::new("/queue/cluster/worker1/package.zip").expect("path");
            let effect = Effect::BuildWorkerPackage {
                kind,
                path: path.clone(),
                extra_valid: extra_valid.clone(),
            };
            let built = exec.execute(&effect, now);
            assert!(
                matches!(built, Ok(EffectOutput::PackageBuilt { .. })),
                "worker package {kind:?}: {built:?}"
            );
            exec.storage().read(&path, 1 << 20).expect("built package")
        });
        Fixtures { master, packages }
    })
}

/// Reassembles what one peer sent, as the master's decoder sees the same bytes: the digests and
/// contents of complete files.
struct Mirror {
    decoder: Option<FrameDecoder>,
    open: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// One connection as the adapter and the worker see it.
struct PeerState {
    id: PeerId,
    /// Bytes the peer sent that the adapter has not read yet.
    socket: VecDeque<u8>,
    /// Our decoder of the master's output to this peer.
    decoder: FrameDecoder,
    /// Bytes yielded for this peer and not reported written.
    unwritten: usize,
    /// Counters the worker used, and the kind of task each asked for (`sync_<k>_w_m`).
    sent: BTreeMap<u32, Option<usize>>,
    /// Counters of the master's requests not answered yet, with their command.
    requests: VecDeque<(u32, Vec<u8>)>,
    /// Task ids the master gave, by kind.
    tasks: [Option<Vec<u8>>; 3],
    /// Wire path of the last file sent.
    last_file: Option<Vec<u8>>,
    /// The `hello` name used last.
    name: &'static str,
    next_counter: u32,
    mirror: Mirror,
}

/// The state of one run.
struct Harness {
    node: Node,
    exec: EffectExecutor<MemoryStorage>,
    config: NodeConfig,
    bound: usize,
    now: Instant,
    fernet: Fernet,
    iv_rng: Rng,
    peers: Vec<PeerState>,
    /// Peers the node closed or we hung up: no output may name them any more.
    closed: BTreeSet<PeerId>,
    effects: Vec<(EffectId, Effect)>,
    opened: u64,
    /// Complete files peers sent, by wire path (what a committed file may hold).
    complete: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// Parts of merged files peers sent (what an agent file may hold).
    parts: BTreeSet<Vec<u8>>,
    reached: Reached,
    /// `NODE_SESSION_TRACE` set: print events, frames and effects (to read a crash input).
    trace: bool,
}

impl Harness {
    fn new(seed: u8) -> Harness {
        let t0 = Instant::now();
        let config = config(t0);
        let exec = EffectExecutor::new(master_storage(), &config);
        let node = Node::new(config.clone(), u64::from(seed), t0);
        let key = config.connection.key.clone().expect("keyed");
        Harness {
            node,
            exec,
            bound: queued_bound(&config),
            config,
            now: t0,
            fernet: Fernet::new(&key),
            iv_rng: Rng::from_seed(7),
            peers: Vec::new(),
            closed: BTreeSet::new(),
            effects: Vec::new(),
            opened: 0,
            complete: BTreeMap::new(),
            parts: BTreeSet::new(),
            reached: Reached::default(),
            trace: std::env::var_os("NODE_SESSION_TRACE").is_some(),
        }
    }

    fn max_payload(&self) -> u32 {
        self.config.connection.max_frame_payload
    }

    /// Drains the node's outputs and checks them.
    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Transmit { peer, bytes } => self.transmit(peer, &bytes),
                Output::Effect { id, effect } => self.effects.push((id, effect)),
                Output::Close { peer } => {
                    assert!(!self.closed.contains(&peer), "second Close of {peer:?}");
                    self.reached.closes += 1;
                    self.closed.insert(peer);
                    self.peers.retain(|p| p.id != peer);
                }
                Output::Event(event) => self.event(&event),
                Output::ApiCall { id, call } => {
                    let unix = self.node.unix_time(self.now);
                    let answer = self.exec.run_api_call(&call, unix);
                    self.node.handle_api_done(self.now, id, answer);
                }
                Output::Connect { peer, addr } => panic!("a master dialled {addr} as {peer:?}"),
            }
        }
    }

    fn event(&mut self, event: &NodeEvent) {
        if self.trace {
            eprintln!("event: {event:?}");
        }
        match event {
            NodeEvent::WorkerJoined { .. } => self.reached.joined += 1,
            NodeEvent::HelloRefused { .. } => self.reached.refused += 1,
            NodeEvent::SyncFinished { kind, .. } => {
                if let Some(i) = KINDS.iter().position(|k| k == kind) {
                    self.reached.finished[i] += 1;
                }
            }
            NodeEvent::SyncFailed { .. } => self.reached.failed += 1,
            _ => {}
        }
    }

    fn transmit(&mut self, peer: PeerId, bytes: &[u8]) {
        assert!(
            !self.closed.contains(&peer),
            "output for {peer:?} after its Close"
        );
        let max = self.max_payload() as usize;
        let fernet = &self.fernet;
        let trace = self.trace;
        let p = self
            .peers
            .iter_mut()
            .find(|p| p.id == peer)
            .unwrap_or_else(|| panic!("output for unknown peer {peer:?}"));
        p.unwritten += bytes.len();
        let mut rest = bytes;
        while let Some(frame) = p
            .decoder
            .decode_slice(&mut rest)
            .expect("the master writes valid frames")
        {
            assert!(frame.payload.len() <= max, "frame over the payload bound");
            let payload = fernet
                .decrypt(&frame.payload)
                .expect("the master's tokens open");
            let name = frame.command.name();
            if trace {
                let text = String::from_utf8_lossy(&payload);
                eprintln!(
                    "{peer:?} <- {} {} {text:.120}",
                    frame.counter, frame.command
                );
            }
            if name == b"ok" || name == b"err" || name.starts_with(b"ok") {
                if let Some(kind) = p.sent.remove(&frame.counter).flatten()
                    && name == b"ok"
                {
                    p.tasks[kind] = Some(payload);
                }
            } else {
                if p.requests.len() >= 64 {
                    p.requests.pop_front();
                }
                p.requests.push_back((frame.counter, name.to_vec()));
            }
        }
        assert!(rest.is_empty(), "a transmit ends inside a frame");
    }

    /// Reads from every peer whose input the node wants, as an adapter would.
    fn read_sockets(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.peers.len() {
                let Some(p) = self.peers.get_mut(i) else {
                    break;
                };
                let id = p.id;
                if p.socket.is_empty() || !self.node.wants_input(id) {
                    continue;
                }
                let n = p.socket.len().min(READ_BUF);
                let chunk: Vec<u8> = p.socket.drain(..n).collect();
                self.node.handle_input(self.now, id, &chunk);
                self.drain();
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Puts bytes into the socket of slot `slot`, and into its mirror.
    fn send(&mut self, slot: usize, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        p.socket.extend(bytes);
        let mut complete = Vec::new();
        mirror(&mut p.mirror, &self.fernet, bytes, &mut complete);
        for (path, data) in complete {
            self.learn_file(path, data);
        }
    }

    /// A complete file a peer sent: what the master may commit, and the merged parts in it.
    fn learn_file(&mut self, path: Vec<u8>, data: Vec<u8>) {
        let limits = PackageLimits {
            max_members: 64,
            max_member_size: 1 << 20,
            max_total_size: 1 << 20,
            max_control_size: 1 << 20,
        };
        if let Ok(mut reader) = PackageReader::open(Cursor::new(&data[..]), limits) {
            let keys: Vec<InstallPath> = reader.members().iter().map(|m| m.key.clone()).collect();
            for key in keys {
                if let Ok(member) = reader.read_member(&key, limits.max_member_size) {
                    let merged = unmerge(&member, &MergedLimits::default());
                    self.parts
                        .extend(merged.parts.iter().map(|part| part.content.to_vec()));
                }
            }
        }
        self.complete.entry(path).or_default().insert(data);
    }

    /// A frame as the worker sends it, sealed with the key.
    fn sealed(&mut self, counter: u32, command: &[u8], payload: &[u8]) -> BytesMut {
        let command = Command::new(Profile::V3_9, command).expect("table command");
        let token = self.fernet.encrypt(
            payload,
            self.iv_rng.next_iv(),
            fixtures::START.unsigned_abs(),
        );
        let mut out = BytesMut::new();
        encode_frame(Profile::V3_9, counter, &command, &token, &mut out).expect("frame");
        out
    }

    /// Sends a request on `slot` with the worker's next counter.
    fn request(&mut self, slot: usize, command: &[u8], payload: &[u8], task: Option<usize>) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let counter = p.next_counter;
        p.next_counter = p.next_counter.wrapping_add(1);
        if p.sent.len() >= 64 {
            p.sent.pop_first();
        }
        p.sent.insert(counter, task);
        if self.trace {
            let text = String::from_utf8_lossy(payload);
            eprintln!(
                "slot {slot} -> {counter} {} {text:.120}",
                String::from_utf8_lossy(command)
            );
        }
        let frame = self.sealed(counter, command, payload);
        self.send(slot, &frame);
    }

    fn slot(&self, byte: u8) -> Option<usize> {
        (!self.peers.is_empty()).then(|| usize::from(byte) % self.peers.len())
    }

    fn step(&mut self, op: Op, input: &mut Input<'_>) {
        match op {
            Op::Raw => {
                let slot = self.slot(input.byte());
                let len = usize::from(input.u16()) % 2048;
                let bytes = input.bytes(len);
                if let Some(slot) = slot {
                    self.send(slot, bytes);
                }
            }
            Op::Sealed => {
                let slot = self.slot(input.byte());
                let cmd = Cmd::from_byte(input.byte());
                let arg = input.byte();
                let len = usize::from(input.u16()) % 2048;
                let bytes = input.bytes(len);
                if let Some(slot) = slot {
                    self.sealed_op(slot, cmd, arg, bytes);
                }
            }
            Op::SendFile => {
                let slot = self.slot(input.byte());
                let name = input.byte();
                let content = input.byte();
                let flip = usize::from(input.u16());
                let len = usize::from(input.u16()) % 4096;
                let bytes = input.bytes(len);
                if let Some(slot) = slot {
                    let data = file_content(content, flip, bytes);
                    self.send_file(slot, name, &data);
                }
            }
            Op::Advance => {
                self.now += Duration::from_millis(u64::from(input.u16()) * 10);
                self.fire_timeouts();
            }
            Op::JumpToTimeout => {
                if let Some(at) = self.node.poll_timeout() {
                    self.now = self.now.max(at);
                    self.fire_timeouts();
                }
            }
            Op::RunEffect => {
                let which = input.byte();
                if which & 0x80 != 0 {
                    while !self.effects.is_empty() {
                        self.run_effect(0);
                    }
                } else if !self.effects.is_empty() {
                    self.run_effect(usize::from(which) % self.effects.len());
                }
            }
            Op::Written => {
                let slot = self.slot(input.byte());
                let amount = input.byte();
                if let Some(p) = slot.and_then(|s| self.peers.get_mut(s)) {
                    let n = p.unwritten * usize::from(amount) / 255;
                    p.unwritten -= n;
                    let id = p.id;
                    self.node.handle_written(self.now, id, n);
                    self.drain();
                }
            }
            Op::Close => {
                if let Some(slot) = self.slot(input.byte()) {
                    let id = self.peers.remove(slot).id;
                    self.closed.insert(id);
                    self.node.handle_closed(self.now, id);
                    self.drain();
                }
            }
            Op::Connect => {
                let addr = ADDRS[usize::from(input.byte()) % ADDRS.len()];
                if self.peers.len() < MAX_LIVE && self.opened < MAX_CONNECTIONS {
                    self.opened += 1;
                    let id = PeerId(self.opened);
                    self.peers.push(PeerState {
                        id,
                        socket: VecDeque::new(),
                        decoder: FrameDecoder::new(Profile::V3_9, u32::MAX),
                        unwritten: 0,
                        sent: BTreeMap::new(),
                        requests: VecDeque::new(),
                        tasks: [None, None, None],
                        last_file: None,
                        name: NAMES[0],
                        next_counter: 1,
                        mirror: Mirror {
                            decoder: Some(FrameDecoder::new(Profile::V3_9, self.max_payload())),
                            open: BTreeMap::new(),
                        },
                    });
                    self.node
                        .handle_connected(self.now, id, addr, Origin::Incoming);
                    self.drain();
                }
            }
            Op::Reply => {
                let slot = self.slot(input.byte());
                let how = input.byte();
                let len = usize::from(input.u16()) % 1024;
                let bytes = input.bytes(len);
                if let Some(slot) = slot {
                    self.reply_op(slot, how, bytes);
                }
            }
        }
        self.read_sockets();
        self.check();
    }

    fn sealed_op(&mut self, slot: usize, cmd: Cmd, arg: u8, bytes: &[u8]) {
        let name = NAMES[usize::from(arg) % NAMES.len()];
        let hello = |cluster: &str, version: &str| {
            format!("{name} {cluster} worker {version}").into_bytes()
        };
        match cmd {
            Cmd::HelloValid | Cmd::HelloOtherCluster | Cmd::HelloOtherVersion => {
                let payload = match cmd {
                    Cmd::HelloValid => hello("wazuh", "3.9.5"),
                    Cmd::HelloOtherCluster => hello("other", "3.9.5"),
                    _ => hello("wazuh", "3.9.4"),
                };
                if let Some(p) = self.peers.get_mut(slot) {
                    p.name = name;
                }
                self.request(slot, b"hello", &payload, None);
            }
            Cmd::HelloRaw => self.request(slot, b"hello", bytes, None),
            Cmd::EchoC => self.request(slot, b"echo-c", bytes, None),
            Cmd::Echo => self.request(slot, b"echo", bytes, None),
            Cmd::Permission(k) => {
                let command = format!("{}_p", KINDS[k].command());
                self.request(slot, command.as_bytes(), b"", None);
            }
            Cmd::Task(k) => self.request(slot, KINDS[k].command().as_bytes(), b"", Some(k)),
            Cmd::End(k) => {
                let Some(p) = self.peers.get(slot) else {
                    return;
                };
                let mut payload = match (&p.tasks[k], arg & 1 != 0) {
                    (Some(task), true) => task.clone(),
                    _ => bytes.to_vec(),
                };
                payload.push(b' ');
                match (&p.last_file, arg & 2 != 0, arg & 4 != 0) {
                    (Some(file), true, _) => payload.extend_from_slice(file),
                    (_, _, true) => payload.extend_from_slice(b"Error"),
                    _ => payload.extend_from_slice(bytes),
                }
                let command = format!("{}_e", KINDS[k].command());
                self.request(slot, command.as_bytes(), &payload, None);
            }
            Cmd::Report(k) => {
                let command = format!("{}_r", KINDS[k].command());
                self.request(slot, command.as_bytes(), bytes, None);
            }
            Cmd::RawFile(i) => {
                let command: &[u8] = [&b"new_file"[..], b"file_upd", b"file_end"][i];
                self.request(slot, command, bytes, None);
            }
            Cmd::GetNodes => self.request(slot, b"get_nodes", bytes, None),
            Cmd::GetHealth => self.request(slot, b"get_health", bytes, None),
            Cmd::Dapi => self.request(slot, b"dapi", bytes, None),
            Cmd::Unknown => self.request(slot, b"foo", bytes, None),
        }
    }

    /// `new_file`, `file_upd`s, `file_end` of `data`, as a worker sends its package.
    fn send_file(&mut self, slot: usize, name: u8, data: &[u8]) {
        let Some(p) = self.peers.get(slot) else {
            return;
        };
        let file = FILE_NAMES[usize::from(name & 7) % FILE_NAMES.len()];
        let owner = if name & 8 != 0 { "worker2" } else { p.name };
        let path = if name & 16 != 0 {
            "/etc/client.keys".to_owned()
        } else {
            format!("/queue/cluster/{owner}/{file}")
        };
        let path = path.into_bytes();
        if let Some(p) = self.peers.get_mut(slot) {
            p.last_file = Some(path.clone());
        }
        self.request(slot, b"new_file", &path, None);
        for chunk in data.chunks(FILE_CHUNK) {
            let payload = [&path[..], b" ", chunk].concat();
            self.request(slot, b"file_upd", &payload, None);
        }
        if name & 64 == 0 {
            let mut digest: [u8; 32] = Sha256::digest(data).into();
            if name & 32 != 0 {
                digest[0] ^= 1;
            }
            let payload = [&path[..], b" ", &digest].concat();
            self.request(slot, b"file_end", &payload, None);
        }
    }

    fn reply_op(&mut self, slot: usize, how: u8, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        let Some((counter, command)) = p.requests.pop_front() else {
            return;
        };
        // What a worker answers: its task id to `sync_m_c`, upstream's texts to the rest.
        let natural: &[u8] = match &command[..] {
            b"sync_m_c" => b"1234",
            b"new_file" => b"Ready to receive new file",
            b"file_upd" => b"File updated",
            b"file_end" => b"File received correctly",
            _ => b"Synchronization process finished",
        };
        let payload = if how & 2 != 0 { natural } else { bytes };
        let command: &[u8] = if how & 1 == 0 { b"ok" } else { b"err" };
        let frame = self.sealed(counter, command, payload);
        self.send(slot, &frame);
    }

    fn fire_timeouts(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
        if let Some(at) = self.node.poll_timeout() {
            assert!(
                at > self.now,
                "a timeout due at {at:?} survived handle_timeout"
            );
        }
    }

    fn run_effect(&mut self, index: usize) {
        let (id, effect) = self.effects.remove(index);
        let unix = self.node.unix_time(self.now);
        self.exec.storage_mut().set_now(unix);
        let result = self.exec.execute(&effect, unix);
        if self.trace {
            eprintln!("effect {id:?} {effect:?} -> {result:?}");
        }
        self.reached.effects += 1;
        self.node.handle_effect_done(self.now, id, result);
        self.drain();
    }

    fn check(&mut self) {
        for p in &self.peers {
            let queued = self.node.queued_output(p.id);
            assert_eq!(queued, p.unwritten, "unwritten output of {:?}", p.id);
            assert!(
                queued <= self.bound,
                "{:?} holds {queued} unwritten bytes, over {}",
                p.id,
                self.bound
            );
            self.reached.max_queued = self.reached.max_queued.max(queued);
            if queued >= self.config.limits.max_queued_output {
                assert!(
                    !self.node.wants_input(p.id),
                    "{:?} over the limit still read",
                    p.id
                );
            }
        }
        assert_eq!(self.node.effects_in_flight(), self.effects.len());
        if self.effects.is_empty() {
            // With nothing in flight (so every closed link's clean-up has run), the transfers'
            // owner knows exactly the staged writes the executor holds.
            let open = self.node.open_incoming_files();
            assert_eq!(
                open,
                self.exec.open_files(),
                "staged writes: the node's view against the executor's"
            );
            self.reached.max_open_files = self.reached.max_open_files.max(open.len());
        }
        assert!(
            self.effects.len() as u64 <= self.opened + 1,
            "{} effects in flight for {} connections",
            self.effects.len(),
            self.opened
        );
        self.check_files();
    }

    /// Every peer hangs up and every effect runs: no staged write may be left open (a closed
    /// connection's clean-up aborts them).
    fn teardown(&mut self) {
        while let Some(p) = self.peers.pop() {
            self.closed.insert(p.id);
            self.node.handle_closed(self.now, p.id);
            self.drain();
        }
        // Clean-up jobs run one after another; each effect may queue at most one more.
        for _ in 0..1024 {
            if self.effects.is_empty() {
                break;
            }
            self.run_effect(0);
        }
        self.check();
        assert!(
            self.effects.is_empty(),
            "effects keep coming after every peer left"
        );
        assert_eq!(
            self.exec.open_writes(),
            0,
            "staged writes left after every peer left"
        );
        assert_eq!(self.exec.storage().staged_writes(), 0);
    }

    fn check_files(&mut self) {
        let initial = &fixtures().master;
        let now = self.exec.storage().files();
        let mut changed = BTreeSet::new();
        for (path, data) in &now {
            if initial.get(path) != Some(data) {
                changed.insert(path.clone());
            }
        }
        changed.extend(initial.keys().filter(|p| !now.contains_key(*p)).cloned());
        for path in &changed {
            let text = path.as_str();
            let dir = [
                "/queue/agent-info/",
                "/queue/agent-groups/",
                "/queue/cluster/",
            ]
            .into_iter()
            .find(|d| text.starts_with(d));
            let Some(dir) = dir else {
                panic!("{text} changed, outside the directories a worker may write");
            };
            let Some(data) = now.get(path) else {
                continue; // removed: packages and superseded agent files go
            };
            let whole = if dir == "/queue/cluster/" {
                self.complete
                    .get(text.as_bytes())
                    .is_some_and(|c| c.contains(data))
                    || PackageReader::open(Cursor::new(&data[..]), PackageLimits::default()).is_ok()
            } else {
                self.parts.contains(data)
            };
            assert!(whole, "{text} is torn: {} bytes not sent whole", data.len());
        }
        self.reached.changed = changed.into_iter().map(|p| p.as_str().to_owned()).collect();
    }
}

/// Feeds `bytes` to a peer's mirror: complete files (digest matched) go to `complete`. A frame
/// error ends the mirror, as it ends the master's connection.
fn mirror(m: &mut Mirror, fernet: &Fernet, bytes: &[u8], complete: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let Some(decoder) = m.decoder.as_mut() else {
        return;
    };
    let mut rest = bytes;
    loop {
        let frame = match decoder.decode_slice(&mut rest) {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(_) => {
                m.decoder = None;
                return;
            }
        };
        let Ok(payload) = fernet.decrypt(&frame.payload) else {
            continue;
        };
        match frame.command.name() {
            b"new_file" if m.open.len() < 64 => {
                m.open.insert(payload, Vec::new());
            }
            b"file_upd" => {
                if let Some(at) = payload.iter().position(|&b| b == b' ')
                    && let Some(data) = m.open.get_mut(&payload[..at])
                {
                    data.extend_from_slice(&payload[at + 1..]);
                }
            }
            b"file_end" if payload.len() > 32 => {
                let (head, digest) = payload.split_at(payload.len() - 32);
                let path = head.strip_suffix(b" ").unwrap_or(head);
                if let Some(data) = m.open.remove(path)
                    && Sha256::digest(&data)[..] == *digest
                {
                    complete.push((path.to_vec(), data));
                }
            }
            _ => {}
        }
    }
}

/// The content of a file send (see [`Op::SendFile`]).
fn file_content(content: u8, flip: usize, bytes: &[u8]) -> Vec<u8> {
    let mut data = match content % 5 {
        k @ 0..=2 => fixtures().packages[usize::from(k)].clone(),
        3 => one_member_package(bytes),
        _ => bytes.to_vec(),
    };
    if content & 0x80 != 0 && !data.is_empty() {
        let at = flip % data.len();
        data[at] ^= 0x5a;
    }
    data
}

/// A package of one merged member: the first byte picks the member and control document, the
/// rest is the member's content.
fn one_member_package(bytes: &[u8]) -> Vec<u8> {
    const MEMBERS: &[(&str, &str)] = &[
        ("/queue/cluster/worker1/agent-info.merged", "agent-info"),
        ("/queue/cluster/worker1/agent-groups.merged", "agent-groups"),
        ("/queue/cluster/worker2/agent-info.merged", "agent-info"),
        ("/etc/client.keys", "agent-info"),
    ];
    let (pick, content) = bytes.split_first().unwrap_or((&0, &[]));
    let (member, merge_type) = MEMBERS[usize::from(*pick) % MEMBERS.len()];
    let key = InstallPath::new(member).expect("table path");
    let control = format!(
        "{{\"{member}\": {{\"merged\": true, \"merge_type\": \"{merge_type}\", \
         \"merge_name\": \"{member}\", \"cluster_item_key\": \"/queue/{merge_type}/\"}}}}"
    );
    let now = Timestamp::from_secs(fixtures::START);
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    builder
        .add_member(&key, now, 0o660, content)
        .expect("member");
    builder
        .finish(control.as_bytes(), now)
        .expect("package")
        .into_inner()
}

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    run_reached(data);
}

/// [`run`], returning what the run reached.
pub fn run_reached(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    let mut h = Harness::new(input.byte());
    h.drain();
    h.check();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = Op::from_byte(input.byte());
        h.step(op, &mut input);
    }
    h.teardown();
    h.reached
}

/// Writes `node_session` programs: the generator of the committed seeds ([`seeds`]).
#[derive(Debug, Clone, Default)]
pub struct Program(Vec<u8>);

impl Program {
    /// A program for a node seeded with `seed`.
    pub fn new(seed: u8) -> Program {
        Program(vec![seed])
    }

    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn op(mut self, op: u8, args: &[u8]) -> Program {
        self.0.push(op);
        self.0.extend_from_slice(args);
        self
    }

    fn with_len(mut self, op: u8, args: &[u8], bytes: &[u8]) -> Program {
        let len = u16::try_from(bytes.len()).expect("short seed bytes");
        self.0.push(op);
        self.0.extend_from_slice(args);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    /// [`Op::Connect`] from `ADDRS[addr]`.
    pub fn connect(self, addr: u8) -> Program {
        self.op(8, &[addr])
    }

    /// [`Op::Raw`].
    pub fn raw(self, slot: u8, bytes: &[u8]) -> Program {
        self.with_len(0, &[slot], bytes)
    }

    /// [`Op::Sealed`].
    pub fn sealed(self, slot: u8, cmd: Cmd, arg: u8, bytes: &[u8]) -> Program {
        self.with_len(1, &[slot, cmd.byte(), arg], bytes)
    }

    /// [`Op::SendFile`].
    pub fn send_file(self, slot: u8, name: u8, content: u8, bytes: &[u8]) -> Program {
        self.with_len(2, &[slot, name, content, 0, 0], bytes)
    }

    /// [`Op::Advance`] by `ticks * 10` ms.
    pub fn advance(self, ticks: u16) -> Program {
        self.op(3, &ticks.to_be_bytes())
    }

    /// [`Op::JumpToTimeout`].
    pub fn jump(self) -> Program {
        self.op(4, &[])
    }

    /// [`Op::RunEffect`] of every effect held, in order.
    pub fn effects(self) -> Program {
        self.op(5, &[0x80])
    }

    /// [`Op::Written`] of everything `slot` holds.
    pub fn written(self, slot: u8) -> Program {
        self.op(6, &[slot, 255])
    }

    /// [`Op::Close`].
    pub fn close(self, slot: u8) -> Program {
        self.op(7, &[slot])
    }

    /// [`Op::Reply`] to the master's oldest request with what a worker answers.
    pub fn reply_natural(self, slot: u8) -> Program {
        self.with_len(9, &[slot, 2], b"")
    }

    /// A valid `hello` as `NAMES[name]`, its effects run and its reply written.
    pub fn hello(self, slot: u8, name: u8) -> Program {
        self.sealed(slot, Cmd::HelloValid, name, b"")
            .effects()
            .written(slot)
    }

    /// A whole worker round of kind `k` (0 integrity, 1 extra-valid, 2 agent-info): permission,
    /// task, the worker's package sent as file `name`, `_e` with the task id and file, then the
    /// master's own steps answered as a worker answers them.
    pub fn round(self, slot: u8, k: u8, name: u8) -> Program {
        let k = usize::from(k);
        let mut p = self
            .sealed(slot, Cmd::Permission(k), 0, b"")
            .sealed(slot, Cmd::Task(k), 0, b"")
            .written(slot)
            .send_file(slot, name, u8::try_from(k).unwrap_or(0), b"")
            .effects()
            .sealed(slot, Cmd::End(k), 3, b"")
            .effects();
        for _ in 0..16 {
            p = p.written(slot).reply_natural(slot).effects();
        }
        p.written(slot)
    }
}

/// The committed seeds of `fuzz/corpus/node_session/`, by file name.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let integrity = Program::new(0).connect(0).hello(0, 0).round(0, 0, 0);
    let agents = Program::new(1)
        .connect(0)
        .hello(0, 0)
        .round(0, 1, 3)
        .round(0, 2, 3);
    let mut flood = Program::new(2)
        .connect(0)
        .hello(0, 0)
        .connect(2)
        .hello(1, 1);
    for i in 0..40 {
        let cmd = [Cmd::GetHealth, Cmd::GetNodes, Cmd::EchoC, Cmd::Dapi][i % 4];
        flood = flood.sealed(0, cmd, 0, b"").effects();
    }
    let flood = flood.advance(500).jump().written(0).written(1);
    let garbage = Program::new(3)
        .connect(0)
        .raw(
            0,
            b"\x00\x00\x00\x01\x00\x00\x00\x05hello       \xff\xfe\x00ab",
        )
        .connect(1)
        .sealed(1, Cmd::HelloOtherCluster, 0, b"")
        .sealed(1, Cmd::HelloOtherVersion, 1, b"")
        .sealed(1, Cmd::HelloRaw, 0, b"a b c d e f")
        .sealed(1, Cmd::HelloValid, 3, b"")
        .sealed(1, Cmd::HelloValid, 2, b"")
        .sealed(1, Cmd::Task(0), 0, b"")
        .send_file(1, 0x10, 4, b"001 evil any k\n")
        .close(1)
        .connect(2)
        .hello(1, 1)
        .send_file(1, 0x08, 3, b"\x00agent-nine-any contents")
        .send_file(1, 0x04, 0x83, b"")
        .sealed(1, Cmd::End(1), 2, b"123")
        .effects()
        .jump()
        .effects();
    // A file opened and half sent, its staged write open at rest, then the link closes.
    let open_file = Program::new(4)
        .connect(0)
        .hello(0, 0)
        .sealed(0, Cmd::RawFile(0), 0, b"/queue/cluster/worker1/half.zip")
        .effects()
        .sealed(
            0,
            Cmd::RawFile(1),
            0,
            b"/queue/cluster/worker1/half.zip PK\x03\x04",
        )
        .effects()
        .written(0)
        .close(0);
    vec![
        ("integrity_round", integrity.into_bytes()),
        ("agents_round", agents.into_bytes()),
        ("flood_unread", flood.into_bytes()),
        ("garbage_and_refusals", garbage.into_bytes()),
        ("open_file_closed", open_file.into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(name: &str) -> Reached {
        let (_, bytes) = seeds().into_iter().find(|(n, _)| *n == name).expect("seed");
        run_reached(&bytes)
    }

    /// The seeds get where they say, and the committed files are these seeds (set
    /// `WRITE_NODE_SEEDS=1` to rewrite them after changing the generator).
    #[test]
    fn committed_seeds_are_the_generated_ones() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/node_session");
        for (name, bytes) in seeds() {
            let path = dir.join(name);
            if std::env::var_os("WRITE_NODE_SEEDS").is_some() {
                std::fs::create_dir_all(&dir).expect("corpus dir");
                std::fs::write(&path, &bytes).expect("write seed");
            }
            let committed = std::fs::read(&path).expect("committed seed");
            assert!(committed == bytes, "{name} differs from the generator");
        }
    }

    #[test]
    fn open_file_seed_checks_an_open_staged_write_at_rest_then_closes() {
        let r = reached("open_file_closed");
        assert_eq!((r.joined, r.closes), (1, 0), "{r:?}");
        // The node's view of the open staged write was compared with the executor's; the
        // close's clean-up aborted it (the teardown checks nothing is left).
        assert_eq!(r.max_open_files, 1, "{r:?}");
        assert!(r.changed.is_empty(), "{r:?}");
    }

    #[test]
    fn integrity_seed_finishes_a_round() {
        let r = reached("integrity_round");
        assert_eq!((r.joined, r.refused, r.failed), (1, 0, 0));
        assert_eq!(r.finished, [1, 0, 0]);
        assert_eq!(r.closes, 0);
    }

    #[test]
    fn agents_seed_applies_agent_files() {
        let r = reached("agents_round");
        assert_eq!((r.joined, r.failed), (1, 0));
        assert_eq!(r.finished, [0, 1, 1]);
        assert!(
            r.changed.contains("/queue/agent-groups/001"),
            "{:?}",
            r.changed
        );
    }

    #[test]
    fn flood_seed_reaches_the_output_limit() {
        let r = reached("flood_unread");
        assert_eq!(r.joined, 2);
        let c = config(Instant::now());
        assert!(r.max_queued >= c.limits.max_queued_output, "{r:?}");
        assert!(r.max_queued <= queued_bound(&c));
    }

    #[test]
    fn garbage_seed_is_refused() {
        let r = reached("garbage_and_refusals");
        assert_eq!(r.refused, 5, "{r:?}");
        assert_eq!(r.joined, 1);
        assert!(r.changed.iter().all(|p| p.starts_with("/queue/")), "{r:?}");
    }
}
