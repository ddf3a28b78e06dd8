//! The shell of a node: everything a role needs and no role owns. It holds the open connections
//! (a protocol [`Connection`] each, with its disk queue and its [`Transfers`]), the effects in
//! flight, the output queue, the random streams and the limits, and offers the roles a narrow
//! interface: send a request or a reply, send a file, queue disk work, emit an event, close a
//! peer. What comes back from the peers and the adapter reaches the role as one [`Input`] at a
//! time, through [`Node`](super::Node)'s single dispatch point.
//!
//! ```text
//!            Node ── dispatch(Input) ──► role (master | worker): sessions, rounds, locks
//!             │                            │ narrow calls: request, reply, send_file,
//!             ▼                            ▼ queue_job, event, close_peer, ...
//!           Shell: peers {Connection, DiskQueue, Transfers}, effects in flight, outputs, rng
//! ```
//!
//! Transmits leave a connection as soon as a command produced them, so a role never drains a
//! connection itself; connection events are pulled one at a time by [`Shell::poll_peer`], which
//! keeps file transfers to itself and returns what a role must decide.
//!
//! # Backpressure, end to end
//!
//! A peer's output counts as queued from the moment the node yields it as a transmit until the
//! adapter reports it written with [`Node::handle_written`](super::Node::handle_written) (the
//! kernel took it), so what the node holds for a peer includes what the adapter still buffers for
//! it. While that is at least [`NodeLimits::max_queued_output`](super::NodeLimits), file chunks
//! for the peer are not read and [`Shell::wants_input`] is false: a peer that does not read what
//! we send is paused (its requests, which would each add a reply, wait in its kernel buffers),
//! never buffered without bound. Keepalives and replies to input already read still go out, so
//! the overshoot is bounded by what one read can ask for.
//!
//! # Daemon-wide budgets
//!
//! Per-link bounds alone let a handful of links hold what the daemon has (issue 12: three links
//! held 409 MB of strings, four addresses' transfers took every descriptor), so the shell owns two
//! budgets every link draws from, each with a per-link share (see [`budget`]):
//!
//! * **memory** ([`NodeLimits::memory_budget`](super::NodeLimits::memory_budget), 256 MiB):
//!   frames being received (their declared payload), incoming long strings (their declared
//!   length), file data waiting for the disk, and output not yet written. The peers' input may
//!   take all but an eighth (kept for the node's own sends); one link a quarter (at least what
//!   one link may send: two of its largest frames, its largest string and a frame to carry it).
//!   Before each input the shell gives the link's connection what is left
//!   for it ([`Connection::set_memory_allowance`]): a `new_str` beyond is answered `err`, a frame
//!   beyond closes the link; frames within the pre-`hello` bound (64 KiB) always pass, so a
//!   worker's `hello`, keepalives and small file chunks never wait for memory. A link whose file
//!   data waits for the disk is not read while it or the pool is over
//!   ([`Shell::wants_input`]). Usage is the sum of each link's own counters, kept as running
//!   totals that a link's recount updates whenever it changed ([`links`]), so every path that
//!   frees a buffer (a claimed, expired or refused string, a completed frame, a written chunk, a
//!   closed link) frees it in the budget too: [`Node::memory_budget`](super::Node::memory_budget).
//! * **descriptors** for files being received
//!   ([`NodeLimits::max_transfer_descriptors`](super::NodeLimits::max_transfer_descriptors), 8,192
//!   for 1,024 workers, lowered by an adapter to what its descriptor limit leaves): two per file
//!   from its `new_file` until its staged write is committed or aborted (a closed link's aborts included); a link a
//!   quarter, and every link that may send files (it has a directory) a reserve of
//!   [`NodeLimits::reserved_files_per_link`](super::NodeLimits::reserved_files_per_link) that no
//!   other link takes, so a few greedy links cannot starve a worker. A `new_file` beyond is
//!   answered `err` and the link stays ([`Connection::set_file_allowance`]);
//!   [`Node::file_budget`](super::Node::file_budget). A file that receives nothing for 40 s, or
//!   is not finished within 120 s, is given up by its connection and its place comes back (see
//!   `ConnectionConfig::incoming_file_idle_timeout`).
//!
//! Files we send, scans and package builds open and close their descriptors within one effect
//! and need no budget; the outgoing queue is counted in the memory budget and paced per peer by
//! `max_queued_output`.

mod budget;
mod disk;
mod links;
mod peer;
mod transfers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::upstream_tmp_name;
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, FileChunkError, PeerError, Side, TransferFailure,
    TransferId, WallClock,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::rng::Rng;

use budget::{FileBudget, MemoryBudget, OutputGate};
pub use budget::{FileBudgetUse, MemoryBudgetUse, OutputGateUse};
pub(crate) use disk::JobId;
use disk::{AfterDisk, DiskQueue};
use links::{Links, link_memory};
use peer::Peer;
pub(crate) use transfers::Ended;
use transfers::{ChunkSizing, FileStep, Piece, SentFile, Transfers};

use super::config::NodeConfig;
use super::effects::{Effect, EffectOutput, EffectResult, IncomingFileId};
use super::error::{NodeError, SendFailure};
use super::events::{CloseReason, NodeEvent};
use super::ids::{ApiCallId, EffectId, PeerId};
use super::output::{Origin, Output};
use super::texts::sync_text;
use crate::dapi::ApiCall;
use crate::integrity::package::is_package_name;
use crate::integrity::path::InstallPath;
use crate::integrity::storage::Timestamp;

/// Rng stream labels (see [`Rng::fork`]): one per use so adding one never shifts another.
const STREAM_TASK_IDS: u64 = 1;
const STREAM_PACKAGE_NAMES: u64 = 2;
/// The distributed API part's draws (local client names).
pub(crate) const STREAM_API: u64 = 3;
const STREAM_CONNECTIONS: u64 = 1 << 32;

/// Which socket a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A cluster link over TCP: the cluster key, `hello` first.
    Cluster,
    /// The local Unix socket: the operator's own, no key, no `hello` (upstream's local server).
    Local,
}

/// The commands a role answers itself, per kind of link (the connection answers the rest).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claims {
    /// On cluster links.
    pub(crate) cluster: &'static [&'static str],
    /// On the local socket.
    pub(crate) local: &'static [&'static str],
}

/// What reaches a role: one value per thing a peer, the disk or the adapter did that the role
/// must decide about. See [`Node`](super::Node)'s dispatch.
#[derive(Debug)]
pub(crate) enum Input {
    /// The adapter accepted or established a connection.
    Connected {
        peer: PeerId,
        addr: String,
        origin: Origin,
    },
    /// A dial the node asked for failed (or was never answered).
    DialFailed { peer: PeerId },
    /// A request the role claimed.
    Request {
        peer: PeerId,
        counter: u32,
        command: Command,
        payload: Bytes,
    },
    /// The answer to a request of the role's: upstream's value (`process_response`), or its
    /// timeout text when none came.
    Answer {
        peer: PeerId,
        counter: u32,
        value: Vec<u8>,
    },
    /// A file the peer sent finished its commit (`committed`: it is on disk).
    FileCommitted {
        peer: PeerId,
        file: IncomingFileId,
        committed: bool,
    },
    /// A file the role sent ended (`failure`: it did not arrive).
    FileSent {
        peer: PeerId,
        transfer: TransferId,
        path: InstallPath,
        failure: Option<SendFailure>,
    },
    /// A long string of ours reached the peer, which named it `id`.
    StringSent {
        peer: PeerId,
        transfer: TransferId,
        id: Bytes,
    },
    /// A long string of ours did not reach the peer.
    StringFailed {
        peer: PeerId,
        transfer: TransferId,
        failure: SendFailure,
    },
    /// The adapter ran a distributed API call.
    ApiDone { call: ApiCallId, answer: String },
    /// A disk job the role queued for a peer returned.
    DiskDone {
        peer: PeerId,
        job: JobId,
        result: EffectResult,
    },
    /// A disk job of the node (not of a peer) returned.
    NodeDiskDone { job: JobId, result: EffectResult },
    /// The connection is gone or must go (`tell_adapter`: the adapter does not know yet).
    Closed {
        peer: PeerId,
        reason: CloseReason,
        tell_adapter: bool,
    },
    /// Time passed: whatever is due at `now`.
    Timeout,
}

impl Input {
    /// The connection the input is about, if any.
    pub(crate) fn peer(&self) -> Option<PeerId> {
        match self {
            Input::Connected { peer, .. }
            | Input::DialFailed { peer }
            | Input::Request { peer, .. }
            | Input::Answer { peer, .. }
            | Input::FileCommitted { peer, .. }
            | Input::FileSent { peer, .. }
            | Input::StringSent { peer, .. }
            | Input::StringFailed { peer, .. }
            | Input::DiskDone { peer, .. }
            | Input::Closed { peer, .. } => Some(*peer),
            Input::NodeDiskDone { .. } | Input::ApiDone { .. } | Input::Timeout => None,
        }
    }
}

/// Who waits for an effect in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// An effect of one connection's queue (`seq` tells a reused id apart).
    Peer {
        peer: PeerId,
        seq: u64,
        then: AfterDisk,
    },
    /// A role's job of the node itself.
    Node(JobId),
}

/// The shell. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Shell {
    config: NodeConfig,
    cluster_link: ConnectionConfig,
    local_link: ConnectionConfig,
    rng: Rng,
    task_rng: Rng,
    name_rng: Rng,
    peers: Links,
    /// Disk queues of closed connections that still have work: their effect in flight, then
    /// their clean-up (abort staged writes, remove packages).
    orphans: BTreeMap<(PeerId, u64), DiskQueue>,
    /// Connections closed since the node last asked ([`Shell::take_closed`]).
    closed: Vec<PeerId>,
    /// Per peer: the only directory it may send files into (set by the role).
    inboxes: BTreeMap<PeerId, InstallPath>,
    /// The peers whose next file named as a package for this node is the package the role waits
    /// for ([`Shell::expect_package`]).
    packages_expected: BTreeSet<PeerId>,
    /// Descriptors of files being received, every link together.
    files: FileBudget,
    /// Memory the peers make the node hold, every link together.
    memory: MemoryBudget,
    /// The peers' input held, summed when the node last settled (see [`Shell::settle`]).
    input_held: u64,
    /// The node's big output (file chunks, string pieces), paced across the links.
    gate: OutputGate,
    outputs: VecDeque<Output>,
    effects: BTreeMap<EffectId, InFlight>,
    next_effect: u64,
    next_seq: u64,
    next_outgoing: u64,
    next_file: u64,
    next_job: u64,
}

impl Shell {
    /// A shell for `config`, seeded with `seed`; `claims` are the commands of the node's parts.
    pub(crate) fn new(config: NodeConfig, seed: u64, claims: &[Claims]) -> Shell {
        let rng = Rng::from_seed(seed);
        let files = FileBudget::new(
            config.limits.max_transfer_descriptors,
            config.limits.reserved_files_per_link,
        );
        let memory = MemoryBudget::new(
            config.limits.memory_budget,
            u64::from(config.connection.max_frame_payload),
            config.connection.max_string_size,
        );
        let gate = OutputGate::new(config.limits.max_output_in_flight);
        let peers = Links::new(
            config.limits.unclaimed_file_timeout,
            config.limits.output_stall_timeout,
        );
        let intervals = config.items.intervals;
        let mut base = config.connection.clone();
        // String pieces wait for the output gate, as file chunks do.
        base.pull_string_pieces = true;
        base.keep_alive = intervals.worker.keep_alive;
        base.max_failed_keepalive_attempts = intervals.worker.max_failed_keepalive_attempts;
        base.request_timeout = intervals.communication.timeout_cluster_request;
        let profile = base.profile;
        let commands = |names: fn(&Claims) -> &'static [&'static str]| -> BTreeSet<Command> {
            claims
                .iter()
                .flat_map(names)
                .filter_map(|c| Command::new(profile, c.as_bytes()).ok())
                .collect()
        };
        let cluster_link = base.clone().claim(commands(|c| c.cluster));
        let mut local_link = base;
        local_link.key = None;
        local_link.require_hello = false;
        local_link.cluster_peer_commands = false;
        local_link.claimed_commands = commands(|c| c.local);
        Shell {
            task_rng: rng.fork(STREAM_TASK_IDS),
            name_rng: rng.fork(STREAM_PACKAGE_NAMES),
            rng,
            config,
            cluster_link,
            local_link,
            peers,
            orphans: BTreeMap::new(),
            closed: Vec::new(),
            inboxes: BTreeMap::new(),
            packages_expected: BTreeSet::new(),
            files,
            memory,
            input_held: 0,
            gate,
            outputs: VecDeque::new(),
            effects: BTreeMap::new(),
            next_effect: 0,
            next_seq: 0,
            next_outgoing: PeerId::OUTGOING,
            next_file: 0,
            next_job: 0,
        }
    }

    // ----------------------------------------------------------------------------------------
    // What every part reads

    /// The node's configuration.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Re-anchors the wall clock everywhere the node dates something: its configuration (what
    /// [`Shell::unix_time`] and the adapter's effects read), the templates of new links, and
    /// every open connection (its Fernet tokens).
    pub(crate) fn set_wall_clock(&mut self, clock: WallClock) {
        self.config.connection.wall_clock = clock;
        self.cluster_link.wall_clock = clock;
        self.local_link.wall_clock = clock;
        self.peers.change_all(|p| p.conn.set_wall_clock(clock));
        self.peers.refresh();
    }

    /// Wall-clock time at `now`, from the configured anchor.
    pub(crate) fn unix_time(&self, now: Instant) -> Timestamp {
        super::config::unix_time_at(&self.cluster_link.wall_clock, now)
    }

    /// A random stream of its own for a part of the node (`label`: one per use).
    pub(crate) fn fork_rng(&self, label: u64) -> Rng {
        self.rng.fork(label)
    }

    /// Open connections.
    pub(crate) fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// The protocol connection of `peer`.
    pub(crate) fn connection(&self, peer: PeerId) -> Option<&Connection> {
        self.peers.get(&peer).map(|p| &p.conn)
    }

    /// The remote address of `peer` as the adapter reported it.
    pub(crate) fn addr(&self, peer: PeerId) -> Option<&str> {
        self.peers.get(&peer).map(|p| p.addr.as_str())
    }

    /// The sequence number of `peer`'s connection (tells a reused id apart).
    pub(crate) fn seq(&self, peer: PeerId) -> Option<u64> {
        self.peers.get(&peer).map(|p| p.seq)
    }

    /// Whether `peer` is the connection numbered `seq`.
    pub(crate) fn is_live(&self, peer: PeerId, seq: u64) -> bool {
        self.seq(peer) == Some(seq)
    }

    /// When `peer` last sent a keepalive.
    pub(crate) fn last_keepalive(&self, peer: PeerId) -> Option<Instant> {
        self.peers.get(&peer)?.conn.last_keepalive()
    }

    /// Whether `peer`'s link must pass `hello` before anything else (cluster links).
    pub(crate) fn requires_hello(&self, peer: PeerId) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.conn.config().require_hello)
    }

    /// See [`Node::wants_input`](super::Node::wants_input).
    pub(crate) fn wants_input(&self, peer: PeerId) -> bool {
        let limits = &self.config.limits;
        self.peers.get(&peer).is_some_and(|p| {
            p.disk.pending_bytes() < limits.max_pending_disk_bytes
                && p.queued < limits.max_queued_output
                && self.memory.may_read(link_memory(p), self.input_held)
        })
    }

    /// What the memory budget holds now, every link together.
    pub(crate) fn memory_budget(&self) -> MemoryBudgetUse {
        let (input, output) = self.peers.memory();
        self.memory.usage(input, output)
    }

    /// What the output gate holds now.
    pub(crate) fn output_gate(&self) -> OutputGateUse {
        self.gate.usage()
    }

    /// Serves the links waiting at the output gate, now that bytes may have drained, and sums
    /// the peers' input again for [`Shell::wants_input`], which the adapter asks for every link
    /// after every input (one sum per input, not one per link). The node calls it at the end of
    /// each of its handlers.
    pub(crate) fn settle(&mut self, now: Instant) {
        self.run_waiting(now);
        self.peers.refresh();
        self.input_held = self.memory_budget().input;
    }

    /// Bytes the memory budget has left, every link together.
    fn memory_room(&mut self) -> u64 {
        self.peers.refresh();
        let used = self.memory_budget();
        used.limit.saturating_sub(used.input + used.output)
    }

    /// Gives the links waiting at the output gate their pieces in turn, until the gate holds
    /// again (the head's piece does not fit) or nobody waits.
    fn run_waiting(&mut self, now: Instant) {
        while let Some(head) = self.gate.head() {
            self.resume_sends(now, head);
            if self.gate.head() == Some(head) {
                break;
            }
        }
    }

    /// The live link whose disk queue effect `id` belongs to.
    pub(crate) fn effect_peer(&self, id: EffectId) -> Option<PeerId> {
        match self.effects.get(&id)? {
            InFlight::Peer { peer, seq, .. } if self.is_live(*peer, *seq) => Some(*peer),
            _ => None,
        }
    }

    /// Whether `peer` holds more unwritten input than allowed (it must be closed).
    pub(crate) fn overloaded(&self, peer: PeerId) -> bool {
        let limit = self.config.limits.max_pending_disk_bytes.saturating_mul(2);
        self.peers
            .get(&peer)
            .is_some_and(|p| p.disk.pending_bytes() > limit)
    }

    /// Bytes yielded for `peer` and not yet reported written.
    pub(crate) fn queued_output(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.queued)
    }

    /// Effects handed out and not yet answered.
    pub(crate) fn effects_in_flight(&self) -> usize {
        self.effects.len()
    }

    /// Incoming files whose staged write is open, as the effects that returned tell, on every
    /// open link.
    pub(crate) fn open_incoming_files(&self) -> Vec<IncomingFileId> {
        let mut files: Vec<IncomingFileId> = self
            .peers
            .values()
            .flat_map(|p| p.transfers.open_files())
            .collect();
        files.sort();
        files
    }

    /// What the descriptor budget of files being received holds now.
    pub(crate) fn file_budget(&self) -> FileBudgetUse {
        self.files.usage()
    }

    /// The next output for the adapter.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest timeout of the connections and of the files they sent that no role took.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.peers.next_deadline()
    }

    /// The open link after `after` (in id order; `None`: the first) that a timeout at `now`
    /// must visit with [`Shell::handle_peer_timeout`] and a pump: its deadline passed or its
    /// connection holds events or transmits. A visit to any other link would do nothing, so
    /// visiting only these, in id order, does what visiting every link did.
    pub(crate) fn next_due(&mut self, now: Instant, after: Option<PeerId>) -> Option<PeerId> {
        self.peers.refresh();
        let due = self.peers.due(now);
        match after {
            Some(after) => due.range(after..).find(|p| **p != after).copied(),
            None => due.first().copied(),
        }
    }

    // ----------------------------------------------------------------------------------------
    // The roles' interface

    /// Takes connection `peer` from `addr` into the node.
    pub(crate) fn add_peer(
        &mut self,
        now: Instant,
        peer: PeerId,
        addr: &str,
        side: Side,
        link: Link,
    ) {
        let config = match link {
            Link::Cluster => self.cluster_link.clone(),
            Link::Local => self.local_link.clone(),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let conn = Connection::new(config, side, self.rng.fork(STREAM_CONNECTIONS + seq), now);
        self.peers.insert(
            peer,
            Peer {
                conn,
                seq,
                addr: addr.to_owned(),
                queued: 0,
                yielded: 0,
                written: 0,
                reading: 0,
                sealed: 0,
                pieces: VecDeque::new(),
                output_moved: now,
                disk: DiskQueue::default(),
                transfers: Transfers::default(),
            },
        );
    }

    /// Tells the adapter to drop a connection the node does not take.
    pub(crate) fn refuse(&mut self, peer: PeerId) {
        self.outputs.push_back(Output::Close { peer });
    }

    /// Asks the adapter to dial `addr`; the connection's id.
    pub(crate) fn connect(&mut self, addr: &str) -> PeerId {
        let peer = PeerId(self.next_outgoing);
        self.next_outgoing = self.next_outgoing.wrapping_add(1).max(PeerId::OUTGOING);
        self.outputs.push_back(Output::Connect {
            peer,
            addr: addr.to_owned(),
        });
        peer
    }

    /// The peer passed `hello`: the common layer accepts its other commands.
    pub(crate) fn authenticate(&mut self, now: Instant, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.conn.set_authenticated(now);
        }
        self.flush(peer);
    }

    /// The one directory `peer` may send files into: a `new_file` for any other path is refused
    /// (upstream writes wherever the path points).
    pub(crate) fn set_inbox(&mut self, peer: PeerId, dir: InstallPath) {
        if let Some(p) = self.peers.get_mut(&peer) {
            // The connection refuses any other path, and a file over the quota, before it
            // answers (the peer is told).
            p.conn.set_file_inbox(dir.as_str().as_bytes());
            p.conn.set_inbox_quota(self.config.limits.inbox_quota);
            self.inboxes.insert(peer, dir);
            // A link that may send files keeps a reserve of places no other link takes.
            self.files.entitle(peer);
        }
    }

    /// Emits an event for the operator.
    pub(crate) fn event(&mut self, event: NodeEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Asks the adapter to run a distributed API call; its answer comes back as
    /// [`Input::ApiDone`].
    pub(crate) fn run_api_call(&mut self, id: ApiCallId, call: ApiCall) {
        self.outputs.push_back(Output::ApiCall { id, call });
    }

    /// Reports an error that is not a synchronisation's.
    pub(crate) fn error(&mut self, peer: Option<PeerId>, error: NodeError) {
        self.event(NodeEvent::Error { peer, error });
    }

    /// Sends a request on `peer`'s link; its counter (the role keeps what the answer continues
    /// under it), or `None` when it could not be sent (reported as an error event).
    pub(crate) fn request(
        &mut self,
        now: Instant,
        peer: PeerId,
        command: &str,
        payload: &[u8],
    ) -> Option<u32> {
        let profile = self.cluster_link.profile;
        let p = self.peers.get_mut(&peer)?;
        let command = Command::new(profile, command.as_bytes()).ok()?;
        let sent = p.conn.send_request(now, command, payload);
        self.flush(peer);
        match sent {
            Ok(counter) => Some(counter),
            Err(error) => {
                let command = command.to_string();
                self.error(Some(peer), NodeError::Request { command, error });
                None
            }
        }
    }

    /// Answers the peer's request `counter` with `ok` or `err` and `payload`.
    pub(crate) fn reply(
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
        // A reply fails only on a closed connection (which its pump reports) or for a counter
        // that awaits none: every role answers a request of the peer once.
        let _ = p.conn.reply(now, counter, command, payload);
        self.flush(peer);
    }

    /// Answers the peer's request with upstream's `unknown command` (a claimed command the role
    /// does not serve on this link or at this point).
    pub(crate) fn reply_unknown(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
    ) {
        if let Some(p) = self.peers.get_mut(&peer) {
            let _ = p.conn.reply_unknown_command(now, counter, command);
        }
        self.flush(peer);
    }

    /// Starts sending `path` (`size` bytes) to `peer`; chunks are read as the connection asks.
    /// `None` when it could not start (reported as an error event).
    pub(crate) fn send_file(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: &InstallPath,
        size: u64,
    ) -> Option<TransferId> {
        self.send_file_as(now, peer, path, path, size)
    }

    /// [`Shell::send_file`] of `path` under another name on the wire, `wire` (a file a local
    /// client names goes to the peer's inbox, where our receiver accepts it).
    pub(crate) fn send_file_as(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: &InstallPath,
        wire: &InstallPath,
        size: u64,
    ) -> Option<TransferId> {
        let p = self.peers.get_mut(&peer)?;
        let started = p.conn.send_file(now, wire.as_str().as_bytes());
        if let Ok(transfer) = started {
            p.transfers.send(transfer, path.clone(), size);
        }
        self.flush(peer);
        match started {
            Ok(transfer) => Some(transfer),
            Err(error) => {
                let path = path.as_str().to_owned();
                self.error(Some(peer), NodeError::SendFile { path, error });
                None
            }
        }
    }

    /// Sends a long string to `peer` (`new_str`, `str_upd` …); [`Input::StringSent`] gives the
    /// id the peer named it, or [`Input::StringFailed`]. `None` when it could not start (reported
    /// as an error event).
    pub(crate) fn send_string(
        &mut self,
        now: Instant,
        peer: PeerId,
        data: Bytes,
    ) -> Option<TransferId> {
        let p = self.peers.get_mut(&peer)?;
        let started = p.conn.send_string(now, data);
        if let Ok(transfer) = started {
            p.transfers.send_string(transfer);
        }
        self.flush(peer);
        match started {
            Ok(transfer) => Some(transfer),
            Err(error) => {
                self.error(Some(peer), NodeError::SendString(error));
                None
            }
        }
    }

    /// Claims a complete long string `id` the peer sent (`None`: unknown, incomplete, expired or
    /// already claimed).
    pub(crate) fn take_string(&mut self, peer: PeerId, id: u32) -> Option<Bytes> {
        self.peers.get_mut(&peer)?.conn.take_string(id)
    }

    /// The connections closed since the last call (by any part, the adapter or the peer).
    pub(crate) fn take_closed(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.closed)
    }

    /// Upstream's `end_receiving_file` for `<task> <file>`: replies `err` `Task name not received
    /// correctly` without a space, `err` `Task name doesnt exist` when `known(task)` is false,
    /// else `ok` `File correctly received`, and says where the named file is.
    pub(crate) fn end_receiving_file(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
        known: impl FnOnce(&[u8]) -> bool,
    ) -> Option<Ended> {
        let Some(at) = payload.iter().position(|&b| b == b' ') else {
            let text = sync_text::TASK_NOT_RECEIVED.as_bytes();
            self.reply(now, peer, counter, false, text);
            return None;
        };
        let (task, file) = (&payload[..at], payload.slice(at + 1..));
        if !known(task) {
            let text = sync_text::TASK_UNKNOWN.as_bytes();
            self.reply(now, peer, counter, false, text);
            return None;
        }
        let text = sync_text::FILE_RECEIVED.as_bytes();
        self.reply(now, peer, counter, true, text);
        if file == sync_text::NO_FILE.as_bytes() {
            return Some(Ended::NoFile);
        }
        Some(match self.peers.get(&peer) {
            Some(p) => p.transfers.ended(file),
            None => Ended::Missing(file),
        })
    }

    /// Takes a committed file from `peer` (the role's effect reads and deletes it; a close
    /// before that effect ran removes it).
    pub(crate) fn take_received(
        &mut self,
        peer: PeerId,
        file: IncomingFileId,
    ) -> Option<InstallPath> {
        let taken = self.peers.get_mut(&peer)?.transfers.take(file);
        self.update_inbox_held(peer);
        taken
    }

    /// Claims the file `peer` sent as `wire` if it is on disk (no sync names it then, and the
    /// sweep of unclaimed files leaves it): the caller owns it and removes it.
    pub(crate) fn claim_received(&mut self, peer: PeerId, wire: &[u8]) -> Option<InstallPath> {
        let p = self.peers.get_mut(&peer)?;
        let Ended::Ready(file) = p.transfers.ended(Bytes::copy_from_slice(wire)) else {
            return None;
        };
        self.take_received(peer, file)
    }

    /// Queues a disk job for `peer`, run after its earlier ones; its result comes back as
    /// [`Input::DiskDone`] with the returned id.
    pub(crate) fn queue_job(&mut self, peer: PeerId, effect: Effect) -> JobId {
        let job = self.new_job();
        self.queue_disk(peer, effect, AfterDisk::Role(job));
        job
    }

    /// Queues a disk job for `peer` whose result nothing waits for (a removal, a directory); a
    /// failure is reported as an error event.
    pub(crate) fn queue_quiet(&mut self, peer: PeerId, effect: Effect) {
        self.queue_disk(peer, effect, AfterDisk::Report);
    }

    /// Runs a disk job of the node itself (not tied to a peer); its result comes back as
    /// [`Input::NodeDiskDone`].
    pub(crate) fn run_node_job(&mut self, effect: Effect) -> JobId {
        let job = self.new_job();
        self.emit_effect(effect, InFlight::Node(job));
        job
    }

    /// A task id as upstream draws it: decimal `random.randint(0, 2**32)`.
    pub(crate) fn new_task_id(&mut self) -> String {
        self.task_rng.below((1u64 << 32) + 1).to_string()
    }

    /// `/queue/cluster/<worker>/<worker>-<time>-<digits>.zip`.
    pub(crate) fn package_path(&mut self, now: Instant, worker: &str) -> Option<InstallPath> {
        let digits = self.name_rng.below(10_000_000_000_000_000);
        let time = self.unix_time(now);
        crate::integrity::package::package_file_name(worker, time, digits).ok()
    }

    /// Forgets connection `peer`: its pending requests are dropped, the staged writes of its
    /// incoming files aborted, and the files it was sending plus `packages` (the role's files of
    /// that link) removed once its effect in flight returned. `tell_adapter`: emit
    /// [`Output::Close`] (the adapter did not report the close itself). False for an unknown peer.
    pub(crate) fn close_peer(
        &mut self,
        peer: PeerId,
        tell_adapter: bool,
        mut packages: Vec<InstallPath>,
    ) -> bool {
        let Some(mut p) = self.peers.remove(&peer) else {
            return false;
        };
        self.closed.push(peer);
        self.files.forget(peer);
        // Its pieces are dropped with it (the adapter drops what it still buffers).
        let pieces: u64 = p.pieces.iter().map(|&(_, charge)| charge).sum();
        self.gate.release(pieces + p.reading + p.sealed);
        self.gate.forget(peer);
        p.conn.close();
        // What the close produced (aborted requests, failed transfers): nothing continues.
        while p.conn.poll_event().is_some() {}
        while let Some(bytes) = p.conn.poll_transmit() {
            self.outputs.push_back(Output::Transmit { peer, bytes });
        }
        let (aborts, unclaimed) = p.transfers.close();
        // A package taken by a role whose job had not run yet is removed instead.
        let (mut cleanup, not_consumed) = p.disk.into_cleanup();
        for (file, effect) in aborts {
            // Its place in the file budget comes back when the abort returns.
            cleanup.push(effect, AfterDisk::Incoming(file, FileStep::Abort));
        }
        packages.extend(unclaimed);
        packages.extend(not_consumed);
        packages.sort();
        packages.dedup();
        for path in packages {
            cleanup.push(Effect::RemoveFile { path }, AfterDisk::Report);
        }
        self.packages_expected.remove(&peer);
        if let Some(inbox) = self.inboxes.remove(&peer) {
            // Its directory goes with the link when nothing is left in it (every hello name
            // left one); a directory in use by another link of the same name is not empty, and
            // each writer creates it again when it is missing.
            cleanup.push(Effect::RemoveEmptyDir { path: inbox }, AfterDisk::Report);
        }
        let key = (peer, p.seq);
        self.orphans.insert(key, cleanup);
        self.run_orphan(key);
        if tell_adapter {
            self.outputs.push_back(Output::Close { peer });
        }
        true
    }

    // ----------------------------------------------------------------------------------------
    // The node's side: inputs from the adapter

    /// Bytes read from `peer`.
    pub(crate) fn handle_input(&mut self, now: Instant, peer: PeerId, bytes: &[u8]) {
        self.peers.refresh();
        let input = self.memory_budget().input;
        if let Some(p) = self.peers.get_mut(&peer) {
            // Only this link's input runs until its events are pumped (where its new files take
            // their places), so neither allowance can be overtaken by another link.
            let allowance = self.files.allowance(peer, p.conn.incoming_files());
            p.conn.set_file_allowance(Some(allowance));
            let allowance = self.memory.allowance(link_memory(p), input);
            p.conn.set_memory_allowance(Some(allowance));
            p.conn.handle_input(now, bytes);
        }
    }

    /// Timers of `peer`'s connection, and the sweep of the files it sent that no role took
    /// within `unclaimed_file_timeout` (removed, which frees the link's quota).
    pub(crate) fn handle_peer_timeout(&mut self, now: Instant, peer: PeerId) {
        let unclaimed = self.config.limits.unclaimed_file_timeout;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.conn.handle_timeout(now);
        let stall = self.config.limits.output_stall_timeout;
        if !p.pieces.is_empty() && now >= p.output_moved + stall {
            // Closed by its connection, so the role hears why as for any peer error.
            p.conn.close_for(PeerError::NotReading { waited: stall });
            return;
        }
        let expired = p.transfers.expire(now, unclaimed);
        if expired.is_empty() {
            return;
        }
        self.update_inbox_held(peer);
        for path in expired {
            self.event(NodeEvent::UnclaimedFileRemoved {
                peer,
                path: path.as_str().to_owned(),
                after: unclaimed,
            });
            self.queue_disk(peer, Effect::RemoveFile { path }, AfterDisk::Report);
        }
    }

    /// `bytes` of `peer`'s transmits were written. The pieces whose frames are now written
    /// whole leave the output gate (the links waiting there are served when the node settles),
    /// and the link's next piece may go.
    /// Only a report that takes the peer from at or over
    /// [`NodeLimits::max_queued_output`](super::NodeLimits) back under it changes anything else
    /// (the chunks the connection asked for meanwhile were held back, and its input paused):
    /// then the held chunks are read and `true` is returned. Under the bound every chunk asked
    /// for is read at once, so the other reports (one per socket write, the hot path of a
    /// transfer) only count.
    pub(crate) fn handle_written(&mut self, now: Instant, peer: PeerId, bytes: usize) -> bool {
        let limit = self.config.limits.max_queued_output;
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let was_paused = p.queued >= limit;
        p.queued = p.queued.saturating_sub(bytes);
        p.written = p.written.saturating_add(bytes as u64).min(p.yielded);
        if bytes > 0 {
            p.output_moved = now;
        }
        let mut released = 0;
        while let Some(&(end, charge)) = p.pieces.front() {
            if end > p.written {
                break;
            }
            p.pieces.pop_front();
            released += charge;
        }
        self.gate.release(released);
        let resumed = was_paused && p.queued < limit;
        if resumed || released > 0 {
            self.resume_sends(now, peer);
        }
        resumed
    }

    /// Effect `id` returned: what the role must hear of it, if anything.
    pub(crate) fn handle_effect_done(
        &mut self,
        now: Instant,
        id: EffectId,
        result: EffectResult,
    ) -> Option<Input> {
        match self.effects.remove(&id)? {
            InFlight::Node(job) => Some(Input::NodeDiskDone { job, result }),
            InFlight::Peer { peer, seq, then } => {
                if let AfterDisk::Incoming(file, step) = then
                    && (matches!(step, FileStep::Commit | FileStep::Abort) || result.is_err())
                {
                    // The staged write is closed (a failed begin or append is dropped by the
                    // executor): the file's descriptors are free, whether its link lives or not.
                    self.files.release(file);
                }
                if !self.is_live(peer, seq) {
                    self.orphan_done((peer, seq));
                    return None;
                }
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.disk.finished();
                }
                let input = self.disk_done(now, peer, then, result);
                self.run_disk(peer);
                input
            }
        }
    }

    /// The next thing from `peer`'s connection a role must decide about; file transfers are
    /// handled here on the way. `None` when the connection has nothing more (or is gone).
    pub(crate) fn poll_peer(&mut self, now: Instant, peer: PeerId) -> Option<Input> {
        loop {
            self.flush(peer);
            let event = self.peers.get_mut(&peer)?.conn.poll_event()?;
            if let Some(input) = self.on_event(now, peer, event) {
                return Some(input);
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Internals

    /// Moves `peer`'s transmits into the output queue.
    fn flush(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        while let Some(bytes) = p.conn.poll_transmit() {
            p.queued += bytes.len();
            p.yielded += bytes.len() as u64;
            self.outputs.push_back(Output::Transmit { peer, bytes });
        }
    }

    fn on_event(&mut self, now: Instant, peer: PeerId, event: Event) -> Option<Input> {
        match event {
            Event::Request {
                counter,
                command,
                payload,
            } => Some(Input::Request {
                peer,
                counter,
                command,
                payload,
            }),
            Event::Response { counter, reply, .. } => Some(Input::Answer {
                peer,
                counter,
                value: reply.upstream_value(),
            }),
            // A timeout or abort reads as upstream's timeout text.
            Event::TimedOut { counter, .. } | Event::Aborted { counter, .. } => {
                Some(Input::Answer {
                    peer,
                    counter,
                    value: wazuh_cluster_protocol::message::text::TIMEOUT.to_vec(),
                })
            }
            Event::FileOpened { path } => {
                self.file_opened(peer, path);
                None
            }
            Event::FileChunk { path, data } => {
                let append = self.peers.get(&peer)?.transfers.chunk(&path, data);
                if let Some((file, effect)) = append {
                    self.queue_disk(peer, effect, AfterDisk::Incoming(file, FileStep::Append));
                }
                None
            }
            Event::FileReceived { path, size, .. } => {
                let commit = self
                    .peers
                    .get_mut(&peer)?
                    .transfers
                    .received(&path, size, now);
                self.update_inbox_held(peer);
                if let Some((file, effect)) = commit {
                    self.queue_disk(peer, effect, AfterDisk::Incoming(file, FileStep::Commit));
                }
                None
            }
            Event::FileFailed { path, error } => {
                // The peer's fault (too large, over the quota, a bad checksum) is said; a
                // transfer cut by the close is the close's.
                if let Some(error) = error {
                    self.error(Some(peer), NodeError::Peer(error));
                }
                let abort = self.peers.get_mut(&peer)?.transfers.failed(&path);
                if let Some((file, effect)) = abort {
                    self.queue_disk(peer, effect, AfterDisk::Incoming(file, FileStep::Abort));
                }
                None
            }
            Event::FileChunkWanted { transfer, max_len } => {
                self.want(now, peer, |t| t.wanted(transfer, max_len))
            }
            Event::StringPieceWanted {
                transfer,
                frame_len,
            } => self.want(now, peer, |t| t.string_wanted(transfer, frame_len)),
            Event::FileSent { transfer, .. } => self.file_sent(peer, transfer, None),
            Event::StringSent { transfer, id } => {
                let ours = self.peers.get_mut(&peer)?.transfers.string_ended(transfer);
                ours.then_some(Input::StringSent { peer, transfer, id })
            }
            Event::TransferFailed { transfer, failure } => {
                let failure = send_failure(&failure);
                if self.peers.get_mut(&peer)?.transfers.string_ended(transfer) {
                    return Some(Input::StringFailed {
                        peer,
                        transfer,
                        failure,
                    });
                }
                self.file_sent(peer, transfer, Some(failure))
            }
            Event::Violation(error) => {
                self.error(Some(peer), NodeError::Peer(error));
                None
            }
            Event::Closed { error } => Some(Input::Closed {
                peer,
                reason: CloseReason::Connection(error),
                tell_adapter: true,
            }),
            _ => None,
        }
    }

    /// A transfer of `peer` asks for its next piece (`ask` records it): what may go, goes.
    fn want(
        &mut self,
        now: Instant,
        peer: PeerId,
        ask: impl FnOnce(&mut Transfers),
    ) -> Option<Input> {
        ask(&mut self.peers.get_mut(&peer)?.transfers);
        self.resume_sends(now, peer);
        None
    }

    fn file_sent(
        &mut self,
        peer: PeerId,
        transfer: TransferId,
        failure: Option<SendFailure>,
    ) -> Option<Input> {
        let p = self.peers.get_mut(&peer)?;
        let SentFile {
            path,
            failure,
            read_held,
            sealed_held,
        } = p.transfers.sent(transfer, failure)?;
        // A read under way for it holds nothing any more (its result finds no transfer), nor
        // does a chunk it sealed ahead.
        p.reading -= read_held;
        p.sealed -= sealed_held;
        self.gate.release(read_held + sealed_held);
        Some(Input::FileSent {
            peer,
            transfer,
            path,
            failure,
        })
    }

    /// The role waits for a package from `peer` (a worker answered the master's `sync_m_c`): the
    /// next file it opens named as a package for this node (`<node>-….zip`) is taken for that one
    /// ([`Effect::BeginFile`]'s `package`), until [`Shell::no_package_expected`].
    pub(crate) fn expect_package(&mut self, peer: PeerId) {
        self.packages_expected.insert(peer);
    }

    /// The package from `peer` came, or will not.
    pub(crate) fn no_package_expected(&mut self, peer: PeerId) {
        self.packages_expected.remove(&peer);
    }

    /// A peer opens a file: only a file directly inside its inbox is written, and 3.9.5's
    /// temporary file `/tmp/<name>` goes there too, as `<inbox>/<name>` (its request's `tmp_file`
    /// claims it by the path sent).
    fn file_opened(&mut self, peer: PeerId, wire: Bytes) {
        let target = self.inboxes.get(&peer).and_then(|inbox| {
            if let Some(name) = upstream_tmp_name(&wire) {
                return inbox.join(std::str::from_utf8(name).ok()?).ok();
            }
            let path = InstallPath::new(std::str::from_utf8(&wire).ok()?).ok()?;
            (path.parent().as_ref() == Some(inbox)).then_some(path)
        });
        let keep = self.cluster_link.max_incoming_files * 4;
        let file = IncomingFileId(self.next_file);
        self.next_file += 1;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let refused = target.is_none();
        // 3.9.5's temporary files of the distributed API come as `/tmp/<name>`: never a package.
        let package = !refused
            && upstream_tmp_name(&wire).is_none()
            && is_package_name(&wire, &self.config.node_name)
            && self.packages_expected.remove(&peer);
        let effects = p.transfers.open(file, wire.clone(), target, keep, package);
        if !refused {
            // Within the allowance its connection was given: see `handle_input`.
            self.files.acquire(file, peer);
        }
        for (old, step, _) in &effects {
            if *step == FileStep::Abort {
                // A reopened path: the older copy's abort runs before the new copy's begin in
                // this link's queue, so its place passes to the new copy now (taken before it is
                // given back, so that it is not granted to another link meanwhile).
                self.files.release(*old);
            }
        }
        for (file, step, effect) in effects {
            self.queue_disk(peer, effect, AfterDisk::Incoming(file, step));
        }
        if refused {
            let path = String::from_utf8_lossy(&wire).into_owned();
            self.error(Some(peer), NodeError::RefusedFilePath { path });
        }
    }

    /// Lets `peer`'s transfers produce the pieces they asked for (a chunk to read, a string
    /// piece; a file's end goes at once) while its own queue is under its bound (so a big
    /// package never pushes keepalives and replies behind megabytes of chunks) and the output
    /// gate admits them; otherwise the link waits its turn at the gate. While other links wait,
    /// it gets one piece and queues behind them. With nothing asked for, a file's next chunk may
    /// be read and sealed ahead (see [`NodeLimits::seal_chunks_ahead`](super::NodeLimits)).
    fn resume_sends(&mut self, now: Instant, peer: PeerId) {
        let limit = self.config.limits.max_queued_output;
        let seal_ahead = self.config.limits.seal_chunks_ahead;
        // Growing chunks shorten the ends of a stop-and-wait transfer; a window of several
        // chunks in flight overlaps the two sides already. Not tied to sealing ahead, so that
        // sealing ahead or not sends the same bytes.
        let sizing = ChunkSizing {
            read_chunk: self.config.limits.read_chunk.max(1),
            growing: self.config.connection.file_window == 0,
        };
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                self.gate.forget(peer);
                return;
            };
            // Paused by its own bound: its own written reports resume it. One chunk sealed
            // ahead per link at most.
            let piece = (p.queued < limit)
                .then(|| p.transfers.next_piece(sizing, seal_ahead && p.sealed == 0))
                .flatten();
            // One piece of a link at a time on its way to the kernel: the next is read and
            // sealed while this one crosses the link and the peer answers it (pipelined), but a
            // keepalive's answer never waits behind more than one chunk. Its write resumes it.
            let busy = p.reading > 0 || !p.pieces.is_empty();
            let size = match &piece {
                None => {
                    self.gate.forget(peer);
                    break;
                }
                Some(Piece::Read { .. } | Piece::String { .. }) if busy => {
                    self.gate.forget(peer);
                    break;
                }
                Some(Piece::Sealed(_)) if !p.pieces.is_empty() => {
                    self.gate.forget(peer);
                    break;
                }
                Some(Piece::Finish(transfer)) => {
                    p.transfers.finishing(*transfer);
                    // Fails only on a closed connection, which its pump reports.
                    let _ = p.conn.finish_file(now, *transfer);
                    continue;
                }
                Some(Piece::Sealed(transfer)) => {
                    // Through the gate already: its place is held since its read.
                    let transfer = *transfer;
                    self.send_sealed(now, peer, transfer);
                    continue;
                }
                Some(Piece::Read { payload_len, .. }) => p.conn.frame_len(*payload_len) as u64,
                Some(Piece::String { frame_len, .. }) => *frame_len as u64,
            };
            let room = self.memory_room();
            if let Some(Piece::Read { ahead: true, .. }) = piece
                && (self.gate.others_wait(peer) || !self.gate.admits(peer, size, room))
            {
                // A chunk read ahead holds its place until the peer asks for it, a round trip
                // later: it is read only with room to spare, never queued for, and never before
                // a link that waits.
                self.gate.forget(peer);
                break;
            }
            if !self.gate.admits(peer, size, room) {
                self.gate.wait(peer);
                break;
            }
            self.gate.let_go(peer, size);
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            match piece {
                Some(Piece::Read {
                    transfer, effect, ..
                }) => {
                    p.transfers.reading(transfer, size);
                    p.reading += size;
                    self.queue_disk(peer, effect, AfterDisk::Chunk(transfer));
                }
                Some(Piece::String { transfer, .. }) => {
                    p.transfers.string_piece_sent(transfer);
                    p.conn.send_string_piece(now, transfer);
                    self.piece_yielded(now, peer, size);
                }
                _ => {}
            }
            if self.gate.others_wait(peer) {
                self.gate.wait(peer);
                break;
            }
        }
        self.flush(peer);
    }

    /// Sends `transfer`'s chunk sealed ahead, now that the connection asks for it.
    fn send_sealed(&mut self, now: Instant, peer: PeerId, transfer: TransferId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some((sealed, charge)) = p.transfers.take_sealed(transfer) else {
            return;
        };
        p.sealed -= charge;
        let sent = p.conn.send_sealed_chunk(now, sealed);
        self.chunk_sent(now, peer, charge, sent);
    }

    /// A chunk holding `charge` bytes of the output gate was given to `peer`'s connection
    /// (`sent`): yielded, or dropped with the error reported.
    fn chunk_sent(
        &mut self,
        now: Instant,
        peer: PeerId,
        charge: u64,
        sent: Result<(), FileChunkError>,
    ) {
        match sent {
            Ok(()) => self.piece_yielded(now, peer, charge),
            Err(error) => {
                self.gate.release(charge);
                self.flush(peer);
                self.error(Some(peer), NodeError::Chunk(error));
            }
        }
    }

    /// A piece of `charge` bytes was just put in `peer`'s connection: yielded now, it leaves
    /// the gate once written up to its end.
    fn piece_yielded(&mut self, now: Instant, peer: PeerId, charge: u64) {
        self.flush(peer);
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.pieces.is_empty() {
                p.output_moved = now;
            }
            p.pieces.push_back((p.yielded, charge));
        }
    }

    /// The continuation of a returned effect of a live peer.
    fn disk_done(
        &mut self,
        now: Instant,
        peer: PeerId,
        then: AfterDisk,
        result: EffectResult,
    ) -> Option<Input> {
        match then {
            AfterDisk::Role(job) => Some(Input::DiskDone { peer, job, result }),
            AfterDisk::Report => {
                if let Err(error) = result {
                    self.error(Some(peer), NodeError::Disk(error));
                }
                None
            }
            AfterDisk::Incoming(file, step) => {
                let ok = result.is_ok();
                if let Err(error) = result {
                    self.error(Some(peer), NodeError::Disk(error));
                }
                let committed = self
                    .peers
                    .get_mut(&peer)?
                    .transfers
                    .step_done(file, step, ok)?;
                // A failed commit left nothing in the directory.
                self.update_inbox_held(peer);
                Some(Input::FileCommitted {
                    peer,
                    file,
                    committed,
                })
            }
            AfterDisk::Chunk(transfer) => {
                self.chunk_read(now, peer, transfer, result);
                None
            }
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
        let data = match result {
            Ok(EffectOutput::Chunk(data)) if !data.is_empty() => Ok(data),
            Err(error) => Err(SendFailure::Read(error)),
            Ok(_) => Err(SendFailure::ShortFile),
        };
        // `None`: the transfer ended meanwhile, and gave its charge back then.
        let Some((charge, asked)) = p.transfers.chunk_read(
            transfer,
            data.as_ref().map(Bytes::len).map_err(Clone::clone),
        ) else {
            return;
        };
        p.reading -= charge;
        match data {
            Ok(data) if asked => {
                let sent = p.conn.file_chunk(now, transfer, &data);
                self.chunk_sent(now, peer, charge, sent);
            }
            // Read ahead: sealed now, sent when asked for.
            Ok(data) => match p.conn.seal_chunk(now, transfer, &data) {
                Ok(sealed) => {
                    if p.transfers.sealed_ahead(transfer, sealed, charge) {
                        p.sealed += charge;
                    } else {
                        self.gate.release(charge);
                    }
                }
                Err(error) => {
                    self.gate.release(charge);
                    self.error(Some(peer), NodeError::Chunk(error));
                }
            },
            Err(_) => {
                // The file ended early or cannot be read: end the transfer (now if the
                // connection asks for the chunk, else when it does: the connection offers no
                // cancel) and report it failed when the peer confirms.
                if asked {
                    let _ = p.conn.finish_file(now, transfer);
                }
                self.gate.release(charge);
                self.flush(peer);
            }
        }
    }

    /// Tells `peer`'s connection what its directory holds for it beyond the transfers open
    /// (the quota counts both).
    fn update_inbox_held(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            let (files, bytes) = p.transfers.held();
            p.conn.set_inbox_held(files, bytes);
        }
    }

    fn new_job(&mut self) -> JobId {
        let job = JobId(self.next_job);
        self.next_job += 1;
        job
    }

    fn emit_effect(&mut self, effect: Effect, owner: InFlight) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        self.effects.insert(id, owner);
        self.outputs.push_back(Output::Effect { id, effect });
        id
    }

    /// Queues a disk job of `peer` (run when the previous one returns).
    fn queue_disk(&mut self, peer: PeerId, effect: Effect, then: AfterDisk) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.disk.push(effect, then);
        self.run_disk(peer);
    }

    fn run_disk(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some((effect, then)) = p.disk.next() else {
            return;
        };
        let seq = p.seq;
        let id = self.emit_effect(effect, InFlight::Peer { peer, seq, then });
        if let Some(p) = self.peers.get_mut(&peer) {
            p.disk.started(id);
        }
    }

    /// The effect in flight of a closed link's queue returned: run its next clean-up job.
    fn orphan_done(&mut self, key: (PeerId, u64)) {
        if let Some(queue) = self.orphans.get_mut(&key) {
            queue.finished();
        }
        self.run_orphan(key);
    }

    /// Hands out the next clean-up job of a closed link; forgets the queue once it is done.
    fn run_orphan(&mut self, key: (PeerId, u64)) {
        let Some(queue) = self.orphans.get_mut(&key) else {
            return;
        };
        if queue.busy() {
            return;
        }
        let Some((effect, then)) = queue.next() else {
            self.orphans.remove(&key);
            return;
        };
        let (peer, seq) = key;
        let id = self.emit_effect(effect, InFlight::Peer { peer, seq, then });
        if let Some(queue) = self.orphans.get_mut(&key) {
            queue.started(id);
        }
    }
}

/// `/queue/cluster/<name>`: the directory of node `name`'s files on both ends of its link (its
/// packages, its merged files), and so the inbox of its link.
pub(crate) fn cluster_dir(name: &str) -> Option<InstallPath> {
    InstallPath::new("/queue/cluster")
        .and_then(|q| q.join(name))
        .ok()
}

/// Upstream's result of a failed `send_file`, from the connection's reason.
fn send_failure(failure: &TransferFailure) -> SendFailure {
    match failure {
        TransferFailure::TimedOut { .. } => SendFailure::TimedOut,
        TransferFailure::Refused(reply) => {
            SendFailure::Refused(String::from_utf8_lossy(&reply.upstream_value()).into_owned())
        }
        _ => SendFailure::Closed,
    }
}
