//! The per-peer connection core: counters, request/response matching, the common-layer requests,
//! keepalive, file and long-string transfer — sans-IO.
//!
//! ```text
//!  handle_input(now, bytes) ──► FrameDecoder ──► Fernet open ──► response? ──► pending table
//!                                                                 │ no
//!                                                                 ▼
//!                         common layer (echo, echo-c/-m, new_file…, new_str…) ──► reply frame
//!                         claimed command ──► Event::Request ──► layer above ──► reply()
//!  send_request / send_file / send_string / reply ──► Fernet seal ──► encode_frame ──► poll_transmit
//!  handle_timeout(now): request deadlines, keepalive, string expiry            poll_timeout
//! ```
//!
//! # Method groups and call order (quinn-proto style)
//!
//! * **Inputs**: [`Connection::handle_input`] with the bytes read from the socket (any split, down
//!   to one byte), [`Connection::handle_timeout`] when the instant of
//!   [`Connection::poll_timeout`] is reached.
//! * **Commands**: [`Connection::send_request`], [`Connection::reply`],
//!   [`Connection::send_file`] (then [`Connection::file_chunk`] / [`Connection::finish_file`] on
//!   each [`Event::FileChunkWanted`]; or [`Connection::seal_chunk`] before the event and
//!   [`Connection::send_sealed_chunk`] on it), [`Connection::send_string`],
//!   [`Connection::set_authenticated`], [`Connection::take_string`], [`Connection::close`].
//! * **Outputs** — drain after every input or command: [`Connection::poll_transmit`] (bytes to
//!   write, in order), [`Connection::poll_event`], then [`Connection::poll_timeout`] (arm one
//!   timer).
//!
//! # Output queue and backpressure
//!
//! The core queues every frame it builds until [`Connection::poll_transmit`] takes it; it never
//! blocks and never drops bytes. The contract: drain `poll_transmit` after every input and
//! command, and write what it returns in order. [`Connection::queued_transmit_bytes`] tells how
//! much is waiting: the layer above applies its per-peer backpressure on it (and on what it holds
//! itself for a slow socket). As a hard bound, requests of the layer above (`send_request`,
//! `send_file`, `file_chunk`, `finish_file`, `send_string`) are refused with the
//! `TransmitQueueFull` variant of their error (e.g. [`RequestError::TransmitQueueFull`]) when
//! their frame would take the queue beyond [`ConnectionConfig::max_queued_transmit`]; replies and
//! the core's own frames are not (they are owed to the peer and bounded by the input that caused
//! them).
//!
//! Every input and command takes `now`; the core never reads a clock. The Fernet timestamp is the
//! Unix time of `now` derived from [`WallClock`]; IVs, the initial counter and string ids come from
//! the [`Rng`] given to [`Connection::new`].
//!
//! # Who answers what
//!
//! The connection answers the common layer itself, with upstream's exact bytes (PROTOCOL.md
//! §4.1–§4.3): `echo`, `echo-c` (server side), `echo-m` (client side), `new_file`, `file_upd`,
//! `file_end`, `new_str`, `str_upd`. The commands listed in
//! [`ConnectionConfig::claimed_commands`] (e.g. `hello`, `sync_*`, `dapi`) surface as
//! [`Event::Request`]; the layer above must answer each exactly once with [`Connection::reply`]
//! (a counter that is not an unanswered request of the peer is refused, and at most
//! [`ConnectionConfig::max_unanswered_requests`] may wait: more are answered `err`). Any other
//! command gets upstream's `err` `unknown command 'b'<cmd>''`. Claims take precedence over the
//! common layer. With [`ConnectionConfig::require_hello`] (the default), only `hello` and
//! `echo-c` are served until [`Connection::set_authenticated`].
//!
//! # Run loop
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//! use wazuh_cluster_protocol::connection::{
//!     Connection, ConnectionConfig, Event, Side, WallClock,
//! };
//! use wazuh_cluster_protocol::frame::Command;
//! use wazuh_cluster_protocol::key::ClusterKey;
//! use wazuh_cluster_protocol::profile::Profile;
//! use wazuh_cluster_protocol::rng::Rng;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let start = Instant::now();
//! let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//! let key = ClusterKey::new("wazuh395interopkey0123456789abcd")?;
//! let config = ConnectionConfig::new(Profile::V3_9, Some(key), WallClock::new(start, unix));
//! let mut conn = Connection::new(config, Side::Client, Rng::from_seed(unix), start);
//! let mut socket = TcpStream::connect("127.0.0.1:1516")?;
//! conn.send_request(start, Command::HELLO, b"worker1 wazuh worker 3.9.5")?;
//! let mut buf = vec![0u8; 64 * 1024];
//! loop {
//!     while let Some(bytes) = conn.poll_transmit() {
//!         socket.write_all(&bytes)?;
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Response { command, reply, .. } if command == Command::HELLO => {
//!                 if !reply.is_upstream_error() {
//!                     conn.set_authenticated(Instant::now()); // starts the keepalives
//!                 }
//!             }
//!             Event::Closed { .. } => return Ok(()),
//!             _ => {}
//!         }
//!     }
//!     let timeout = conn.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
//!     socket.set_read_timeout(timeout.map(|t| t.max(std::time::Duration::from_millis(1))))?;
//!     match socket.read(&mut buf) {
//!         Ok(0) => return Ok(()),
//!         Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
//!         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
//!             || e.kind() == std::io::ErrorKind::TimedOut => conn.handle_timeout(Instant::now()),
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # }
//! ```
//!
//! # Errors and panics
//!
//! Peer input never panics and never makes the core hold more than the configured bounds. A fatal
//! peer error closes the connection and is reported once, in [`Event::Closed`]; non-fatal ones
//! (a refused transfer) are answered on the wire as upstream would and reported as
//! [`Event::Violation`] or [`Event::FileFailed`]. A misused command is refused and leaves the
//! connection as it was: each command returns its own error type holding exactly the misuses it
//! can report ([`RequestError`], [`ReplyError`], [`SendFileError`], [`FileChunkError`],
//! [`SendStringError`]). A bug closes the connection with [`ConnectionError::Bug`].

mod config;
mod error;
mod event;
mod file_transfer;
mod keepalive;
mod outcome;
mod pending;
mod receive;
mod sealed_chunk;
mod string_transfer;
mod unanswered;

pub use config::{
    ConnectionConfig, DEFAULT_MAX_PRE_HELLO_PAYLOAD, DEFAULT_REQUEST_CHUNK, WallClock,
};
pub use error::{
    ConnectionError, FileChunkError, PeerError, ReplyError, RequestError, SendFileError,
    SendStringError,
};
pub use event::{Event, TransferFailure, TransferId};
pub use file_transfer::{InboxQuota, MAX_FILE_NAME_LEN, UPSTREAM_TMP_DIR, upstream_tmp_name};
pub use sealed_chunk::SealedChunk;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use error::TransmitQueueFull;

use crate::fernet::{Fernet, Opener, token_len};
use crate::frame::{Command, FrameDecoder, FrameError, HEADER_LEN, encode_header, header_bytes};
use crate::message::{text, unknown_command_text};
use crate::rng::Rng;
use file_transfer::{FileClocks, IncomingFiles, OutgoingFile};
use keepalive::Keepalive;
use pending::{Owner, Pending, PendingTable};
use string_transfer::{IncomingStrings, OutgoingString};
use unanswered::UnansweredRequests;

/// Which end of the link this connection is: the side decides which echo it answers and whether it
/// sends keepalives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The dialling side (worker, local client): answers `echo-m`, sends `echo-c` keepalives.
    Client,
    /// The listening side (master, local server): answers `echo-c` and records it.
    Server,
}

/// One peer link: see the [module documentation](self).
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    side: Side,
    fernet: Option<Fernet>,
    /// IVs for Fernet tokens.
    iv_rng: Rng,
    /// Ids of incoming strings.
    id_rng: Rng,
    decoder: FrameDecoder,
    /// Counter of the last request sent; the next one uses `counter + 1` (mod 2^32).
    counter: u32,
    pending: PendingTable,
    /// Claimed requests of the peer awaiting `reply`.
    unanswered: UnansweredRequests,
    out: BytesMut,
    events: VecDeque<Event>,
    keepalive: Keepalive,
    authenticated: bool,
    decrypt_failures: u32,
    /// The token of the large frame arriving, opened as it comes (see [`Connection::open_ahead`]).
    opening: Option<Opener>,
    incoming_files: IncomingFiles,
    incoming_strings: IncomingStrings,
    outgoing_files: BTreeMap<TransferId, OutgoingFile>,
    outgoing_strings: BTreeMap<TransferId, OutgoingString>,
    next_transfer: u64,
    /// Stream offset of the frame whose payload is awaited, and when its header arrived.
    payload_since: Option<(u64, Instant)>,
    /// With `require_hello`: the link closes at this instant unless authenticated before.
    hello_deadline: Option<Instant>,
    /// The layer above's memory allowance for the frame buffer and the strings together.
    memory_allowance: Option<u64>,
    closed: bool,
}

/// Appends a frame's payload to `out`: the concatenation of `parts`, sealed with the next IV of
/// `ivs` and the timestamp `unix_secs` when there is a key.
fn append_payload(
    fernet: Option<&Fernet>,
    ivs: &mut Rng,
    unix_secs: u64,
    parts: &[&[u8]],
    out: &mut BytesMut,
) {
    match fernet {
        None => {
            out.reserve(parts.iter().map(|p| p.len()).sum());
            for part in parts {
                out.extend_from_slice(part);
            }
        }
        // Sealed from the parts as they are: joining `<path> ` and a 5 MiB chunk first copied
        // every chunk once more into a buffer of its own.
        Some(fernet) => fernet.encrypt_parts_into(parts, ivs.next_iv(), unix_secs, out),
    }
}

/// Largest output buffer a connection keeps between transmits (see [`Connection::poll_transmit`]).
const RETAINED_TRANSMIT_CAPACITY: usize = 64 * 1024;
/// Smallest frame payload opened as it arrives (see [`Connection::open_ahead`]): file and
/// string chunks, not the requests and answers that arrive in one read.
const OPEN_AHEAD_MIN: usize = 64 * 1024;

/// Stream labels for [`Rng::fork`]: one per use, so adding a use never shifts another's numbers.
const STREAM_COUNTER: u64 = 1;
const STREAM_IV: u64 = 2;
const STREAM_STRING_ID: u64 = 3;

impl Connection {
    /// A new connection. `rng` should be this connection's own stream (e.g. `node_rng.fork(n)`);
    /// the initial counter is drawn from it unless [`Connection::set_counter`] is used.
    /// With [`ConnectionConfig::require_hello`], `now` starts the `hello_timeout`.
    pub fn new(config: ConnectionConfig, side: Side, rng: Rng, now: Instant) -> Connection {
        let counter = rng.fork(STREAM_COUNTER).next_u32();
        Connection {
            fernet: config.key.as_ref().map(Fernet::new),
            iv_rng: rng.fork(STREAM_IV),
            id_rng: rng.fork(STREAM_STRING_ID),
            decoder: FrameDecoder::new(config.profile, first_frame_bound(&config)),
            counter,
            pending: PendingTable::new(config.max_pending_requests),
            unanswered: UnansweredRequests::new(config.max_unanswered_requests),
            out: BytesMut::new(),
            events: VecDeque::new(),
            keepalive: Keepalive::new(config.keep_alive, config.max_failed_keepalive_attempts),
            authenticated: false,
            decrypt_failures: 0,
            opening: None,
            incoming_files: IncomingFiles::new(
                config.max_incoming_files,
                config.max_file_size,
                config.max_file_path_len,
                FileClocks {
                    idle: config.incoming_file_idle_timeout,
                    lifetime: config.incoming_file_lifetime,
                },
            ),
            incoming_strings: IncomingStrings::new(
                config.max_incoming_strings,
                config.max_string_size,
                config.max_incoming_strings_bytes,
                config.string_timeout,
            ),
            outgoing_files: BTreeMap::new(),
            outgoing_strings: BTreeMap::new(),
            next_transfer: 0,
            payload_since: None,
            hello_deadline: config.require_hello.then(|| now + config.hello_timeout),
            memory_allowance: None,
            closed: false,
            side,
            config,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Getters

    /// Which side this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// Counter of the last request sent (the next request uses this + 1, wrapping at 2^32).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// Requests of ours awaiting a reply.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Claimed requests of the peer ([`Event::Request`]) not answered yet with
    /// [`Connection::reply`] (bounded by [`ConnectionConfig::max_unanswered_requests`]).
    pub fn unanswered_requests(&self) -> usize {
        self.unanswered.len()
    }

    /// Bytes waiting to be taken by [`Connection::poll_transmit`]. The layer above applies its
    /// backpressure on this (e.g. stop reading from other peers, delay file chunks); requests of
    /// the layer above are refused beyond [`ConnectionConfig::max_queued_transmit`].
    pub fn queued_transmit_bytes(&self) -> usize {
        self.out.len()
    }

    /// Replies that arrived after their request had timed out (dropped).
    pub fn late_replies(&self) -> u64 {
        self.pending.late_replies()
    }

    /// Server side: when the last `echo-c` keepalive arrived.
    pub fn last_keepalive(&self) -> Option<Instant> {
        self.keepalive.last_received()
    }

    /// Client side: keepalives failed in a row so far.
    pub fn failed_keepalives(&self) -> u32 {
        self.keepalive.failures()
    }

    /// Frames in a row that failed to decrypt.
    pub fn decrypt_failures(&self) -> u32 {
        self.decrypt_failures
    }

    /// Whether [`Connection::set_authenticated`] was called.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Incoming file transfers open.
    pub fn incoming_files(&self) -> usize {
        self.incoming_files.len()
    }

    /// Incoming long strings held (in flight or complete and unclaimed).
    pub fn incoming_strings(&self) -> usize {
        self.incoming_strings.len()
    }

    /// Sum of the lengths declared by the incoming long strings held (bounded by
    /// [`ConnectionConfig::max_incoming_strings_bytes`]).
    pub fn incoming_strings_reserved(&self) -> u64 {
        self.incoming_strings.reserved()
    }

    /// Bytes the peer's input holds in this connection: the frame being received (its whole
    /// declared payload, allocated when its header arrives) and the lengths declared by the
    /// incoming strings held. What [`Connection::set_memory_allowance`] bounds.
    pub fn held_input_bytes(&self) -> u64 {
        self.decoder.held_len() as u64 + self.incoming_strings.reserved()
    }

    /// Whether events wait to be taken by [`Connection::poll_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether the connection is closed (no more input is processed, no command accepted).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ----------------------------------------------------------------------------------------
    // Commands

    /// The wall clock was stepped (an operator, NTP): later Fernet tokens are dated by `clock`.
    pub fn set_wall_clock(&mut self, clock: WallClock) {
        self.config.wall_clock = clock;
    }

    /// Sets the counter of the "last request", so the next request uses `counter + 1`. For
    /// replaying recordings and testing the wrap-around; normally the rng draws it.
    pub fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    /// The layer above confirms the link (the `hello` exchange succeeded). From now on a frame
    /// that fails to decrypt is tolerated up to `max_decrypt_failures` in a row, and the client
    /// side starts its keepalives (first one `keep_alive` from `now`).
    pub fn set_authenticated(&mut self, now: Instant) {
        self.authenticated = true;
        self.decoder.set_max_payload(self.config.max_frame_payload);
        self.hello_deadline = None;
        if self.side == Side::Client && !self.closed {
            self.keepalive.start(now);
        }
    }

    /// From now on the peer's `new_file` is accepted only for a path directly inside `dir`
    /// (`<dir>/<name>`) or for 3.9.5's temporary file `/tmp/<name>` (see [`upstream_tmp_name`]:
    /// the layer above stores it in `dir`); any other is answered `err` (and reported as
    /// [`PeerError::FileOutsideInbox`]) before a byte of it is taken.
    pub fn set_file_inbox(&mut self, dir: &[u8]) {
        self.incoming_files.set_inbox(Bytes::copy_from_slice(dir));
    }

    /// The layer above's budget for this link's incoming files: from now on a `new_file` that
    /// would make more than `allowance` files open at once is answered `err`
    /// ([`text::FILE_BUDGET_EXHAUSTED`](crate::message::text::FILE_BUDGET_EXHAUSTED)) and
    /// reported as [`PeerError::FileBudgetExhausted`]; reopening a path that is open is not a new
    /// file. `None` leaves only `max_incoming_files`. A node sets it before each input from its
    /// daemon-wide descriptor budget, so that no link opens files the node has no descriptors for.
    pub fn set_file_allowance(&mut self, allowance: Option<usize>) {
        self.incoming_files.set_allowance(allowance);
    }

    /// The layer above's memory budget for this link: from now on the frame being received and
    /// the incoming strings may hold at most `allowance` bytes together
    /// ([`Connection::held_input_bytes`]). A frame header declaring more than what is left is
    /// refused (a frame cannot be answered: the link closes with
    /// [`PeerError::FrameOverMemoryBudget`]), except a frame within the pre-`hello` bound
    /// (`max_pre_hello_payload`), which is always taken so that a `hello`, a keepalive or a small
    /// request never waits for memory; a `new_str` whose length, with room for one frame of
    /// the largest size (`max_frame_payload`) to carry it, goes beyond it is answered `err`
    /// ([`text::MEMORY_BUDGET_EXHAUSTED`](crate::message::text::MEMORY_BUDGET_EXHAUSTED)) and
    /// reported as [`PeerError::StringOverMemoryBudget`]. `None` leaves only the configured
    /// bounds. A node sets it before each input from its daemon-wide memory budget.
    pub fn set_memory_allowance(&mut self, allowance: Option<u64>) {
        self.memory_allowance = allowance;
    }

    /// From now on the files the peer sends are bounded by `quota`, counting the transfers open
    /// and the files held (see [`Connection::set_inbox_held`]): a `new_file` past the file quota
    /// is answered `err` ([`PeerError::InboxFilesQuota`]), a `file_upd` past the byte quota drops
    /// its transfer ([`PeerError::InboxBytesQuota`], reported as [`Event::FileFailed`]).
    ///
    /// Why the layer above tells what is held: a file received whole stays in the directory until
    /// a task claims it (or it is swept), which only the layer above knows. A file received whole
    /// counts as held from its `file_end` until the next call.
    pub fn set_inbox_quota(&mut self, quota: InboxQuota) {
        self.incoming_files.set_quota(quota);
    }

    /// The files received whole that the directory still holds, and their bytes (see
    /// [`Connection::set_inbox_quota`]).
    pub fn set_inbox_held(&mut self, files: usize, bytes: u64) {
        self.incoming_files.set_held(files, bytes);
    }

    /// Sends a request; its reply comes back as [`Event::Response`] (or [`Event::TimedOut`]).
    /// Returns the request's counter.
    ///
    /// # Errors
    /// Every [`RequestError`]: [`Closed`](RequestError::Closed),
    /// [`PayloadTooLarge`](RequestError::PayloadTooLarge) (above `request_chunk`, as upstream),
    /// [`TooManyPendingRequests`](RequestError::TooManyPendingRequests),
    /// [`TransmitQueueFull`](RequestError::TransmitQueueFull),
    /// [`Frame`](RequestError::Frame) (a command built for another profile, a payload beyond a
    /// frame's length field).
    pub fn send_request(
        &mut self,
        now: Instant,
        command: Command,
        payload: &[u8],
    ) -> Result<u32, RequestError> {
        self.check_transmit_room(payload.len())?;
        if self.closed {
            return Err(RequestError::Closed);
        }
        let limit = self.config.request_chunk;
        if payload.len() > limit {
            let len = payload.len();
            return Err(RequestError::PayloadTooLarge { len, limit });
        }
        self.pending.check_room()?;
        self.request(now, command, &[payload], Owner::User)
            .map_err(RequestError::Frame)
    }

    /// Answers a request of the peer ([`Event::Request`]) with the same counter, once. Replies are
    /// never refused for a full output queue: they are owed to the peer, and bounded by
    /// [`ConnectionConfig::max_unanswered_requests`].
    ///
    /// # Errors
    /// Every [`ReplyError`]: [`Closed`](ReplyError::Closed),
    /// [`NotAwaitingReply`](ReplyError::NotAwaitingReply) (the counter is not one of an
    /// unanswered [`Event::Request`]), [`Frame`](ReplyError::Frame) (a command built for another
    /// profile, a payload beyond a frame's length field).
    pub fn reply(
        &mut self,
        now: Instant,
        counter: u32,
        command: Command,
        payload: &[u8],
    ) -> Result<(), ReplyError> {
        if self.closed {
            return Err(ReplyError::Closed);
        }
        if !self.unanswered.contains(counter) {
            return Err(ReplyError::NotAwaitingReply { counter });
        }
        self.queue_frame(now, counter, &command, &[payload])
            .map_err(ReplyError::Frame)?;
        self.unanswered.remove(counter);
        Ok(())
    }

    /// Answers a request with upstream's `err` `unknown command '…'`, for a claimed command the
    /// layer above does not handle after all.
    ///
    /// # Errors
    /// [`ReplyError::Closed`], [`ReplyError::NotAwaitingReply`]; never
    /// [`ReplyError::Frame`] (`err` and the text always fit a frame).
    pub fn reply_unknown_command(
        &mut self,
        now: Instant,
        counter: u32,
        command: &Command,
    ) -> Result<(), ReplyError> {
        let text = unknown_command_text(command.as_bytes());
        self.reply(now, counter, Command::ERR, &text)
    }

    /// Starts sending a file: `new_file <path>`; then each [`Event::FileChunkWanted`] asks for the
    /// next chunk. `path` is what the peer sees (upstream: relative to the install root, leading
    /// `/`).
    ///
    /// # Errors
    /// Every [`SendFileError`]: [`Closed`](SendFileError::Closed),
    /// [`TooManyTransfers`](SendFileError::TooManyTransfers),
    /// [`TransmitQueueFull`](SendFileError::TransmitQueueFull),
    /// [`BadPath`](SendFileError::BadPath),
    /// [`TooManyPendingRequests`](SendFileError::TooManyPendingRequests).
    pub fn send_file(&mut self, now: Instant, path: &[u8]) -> Result<TransferId, SendFileError> {
        self.check_transfer_room(SendFileError::Closed, |limit| {
            SendFileError::TooManyTransfers { limit }
        })?;
        self.check_transmit_room(path.len())?;
        let file = OutgoingFile::new(path, self.config.request_chunk)?;
        self.pending.check_room()?;
        let id = TransferId(self.next_transfer);
        self.core_request(now, Command::NEW_FILE, &[path], Owner::File(id.0))
            .ok_or(SendFileError::Closed)?;
        self.next_transfer += 1;
        self.outgoing_files.insert(id, file);
        Ok(id)
    }

    /// Sends the next chunk of a file (1 to `max_len` bytes, after [`Event::FileChunkWanted`]).
    ///
    /// # Errors
    /// Every [`FileChunkError`]: [`Closed`](FileChunkError::Closed),
    /// [`UnknownTransfer`](FileChunkError::UnknownTransfer),
    /// [`NotWaitingForChunk`](FileChunkError::NotWaitingForChunk),
    /// [`BadChunkLen`](FileChunkError::BadChunkLen),
    /// [`TransmitQueueFull`](FileChunkError::TransmitQueueFull) (the transfer still wants this
    /// chunk: retry after draining),
    /// [`TooManyPendingRequests`](FileChunkError::TooManyPendingRequests).
    pub fn file_chunk(
        &mut self,
        now: Instant,
        transfer: TransferId,
        data: &[u8],
    ) -> Result<(), FileChunkError> {
        let file = self.file_wanting_chunk(transfer)?;
        if data.is_empty() || data.len() > file.chunk_max {
            return Err(FileChunkError::BadChunkLen {
                transfer: transfer.0,
                len: data.len(),
                max: file.chunk_max,
            });
        }
        let path = file.path.clone();
        self.check_transmit_room(path.len() + 1 + data.len())?;
        self.pending.check_room()?;
        self.core_request(
            now,
            Command::FILE_UPD,
            &[&path, b" ", data],
            Owner::File(transfer.0),
        )
        .ok_or(FileChunkError::Closed)?;
        if let Some(file) = self.outgoing_files.get_mut(&transfer) {
            file.account(data);
        }
        // Pipelined: the next chunk is asked for at once while the window has room for it.
        self.want_chunk(transfer);
        Ok(())
    }

    /// Seals the next chunk of `transfer` (1 to `max_len` bytes of its
    /// [`Event::FileChunkWanted`]) before the connection asks for it, e.g. while the previous
    /// chunk waits for its acknowledgement; [`Connection::send_sealed_chunk`] sends it once
    /// asked. Nothing changes here: the chunk is the transfer's next one as long as no other
    /// chunk of it is sent first, and it goes on the wire exactly as [`Connection::file_chunk`]
    /// would have sent these bytes (see [`SealedChunk`]).
    ///
    /// # Errors
    /// [`FileChunkError::Closed`], [`FileChunkError::UnknownTransfer`],
    /// [`FileChunkError::NotWaitingForChunk`] (the file is ending: no chunk follows),
    /// [`FileChunkError::BadChunkLen`].
    pub fn seal_chunk(
        &self,
        now: Instant,
        transfer: TransferId,
        data: &[u8],
    ) -> Result<SealedChunk, FileChunkError> {
        let file = self.open_outgoing_file(transfer)?;
        if file.ending {
            return Err(FileChunkError::NotWaitingForChunk(transfer.0));
        }
        if data.is_empty() || data.len() > file.chunk_max {
            return Err(FileChunkError::BadChunkLen {
                transfer: transfer.0,
                len: data.len(),
                max: file.chunk_max,
            });
        }
        let parts: [&[u8]; 3] = [&file.path, b" ", data];
        let payload_len = file.path.len() + 1 + data.len();
        let mut frame = BytesMut::with_capacity(self.frame_len(payload_len));
        frame.resize(HEADER_LEN, 0);
        let unix = self.config.wall_clock.unix_secs_at(now);
        // A copy of the stream draws the IV: the connection's own draws it when the frame goes.
        let mut ivs = self.iv_rng.clone();
        append_payload(self.fernet.as_ref(), &mut ivs, unix, &parts, &mut frame);
        Ok(SealedChunk {
            transfer,
            offset: file.bytes_sent,
            chunk_len: data.len(),
            frame,
            sealed_with: self.fernet.is_some().then(|| (self.iv_rng.clone(), unix)),
            hasher: file.hash_ahead(data),
        })
    }

    /// Sends a chunk sealed by [`Connection::seal_chunk`], after [`Event::FileChunkWanted`] for
    /// its transfer: the frame is the one [`Connection::file_chunk`] would send with the same
    /// bytes now. It is sent as sealed when no other frame drew an IV since and the second is
    /// the same, without copying it; otherwise it is opened and sealed again.
    ///
    /// # Errors
    /// As [`Connection::file_chunk`] but [`FileChunkError::BadChunkLen`], and
    /// [`FileChunkError::StaleSealedChunk`] when another chunk of the transfer was sent since it
    /// was sealed.
    pub fn send_sealed_chunk(
        &mut self,
        now: Instant,
        sealed: SealedChunk,
    ) -> Result<(), FileChunkError> {
        let transfer = sealed.transfer;
        let file = self.file_wanting_chunk(transfer)?;
        if file.bytes_sent != sealed.offset {
            return Err(FileChunkError::StaleSealedChunk(transfer.0));
        }
        let path_len = file.path.len();
        self.check_transmit_room(path_len + 1 + sealed.chunk_len)?;
        self.pending.check_room()?;
        let SealedChunk {
            chunk_len,
            mut frame,
            sealed_with,
            hasher,
            ..
        } = sealed;
        let counter = self.counter.wrapping_add(1);
        let as_sealed = sealed_with.as_ref().is_none_or(|(ivs, unix)| {
            *ivs == self.iv_rng && *unix == self.config.wall_clock.unix_secs_at(now)
        });
        let queued = if as_sealed {
            if sealed_with.is_some() {
                // The draw the token used.
                self.iv_rng.next_iv();
            }
            let header = header_bytes(
                self.config.profile,
                counter,
                &Command::FILE_UPD,
                frame.len() - HEADER_LEN,
            );
            header.map(|header| {
                frame[..HEADER_LEN].copy_from_slice(&header);
                // No copy while the output is empty, as it is once the previous frame went.
                self.out.unsplit(frame);
            })
        } else {
            let opened = self
                .fernet
                .as_ref()
                .and_then(|fernet| fernet.decrypt_in_place(&mut frame[HEADER_LEN..]).ok());
            match opened {
                Some(plain) => {
                    let payload = &frame[HEADER_LEN + plain.start..HEADER_LEN + plain.end];
                    self.queue_frame(now, counter, &Command::FILE_UPD, &[payload])
                }
                None => {
                    self.close_with(Some(ConnectionError::Bug(
                        "a chunk sealed ahead with the connection's key did not open",
                    )));
                    return Err(FileChunkError::Closed);
                }
            }
        };
        if queued.is_err() {
            self.close_with(Some(ConnectionError::Bug(
                "a file_upd frame the core builds (fixed command, bounded payload) failed to encode",
            )));
            return Err(FileChunkError::Closed);
        }
        self.sent_request(now, counter, Command::FILE_UPD, Owner::File(transfer.0));
        if let Some(file) = self.outgoing_files.get_mut(&transfer) {
            file.account_sealed(chunk_len, hasher);
        }
        self.want_chunk(transfer);
        Ok(())
    }

    /// Ends a file transfer: `file_end <path> <sha256 of the chunks sent>`.
    ///
    /// # Errors
    /// As [`Connection::file_chunk`], except [`FileChunkError::BadChunkLen`] (no data).
    pub fn finish_file(
        &mut self,
        now: Instant,
        transfer: TransferId,
    ) -> Result<(), FileChunkError> {
        let file = self.file_wanting_chunk(transfer)?;
        let (path, digest) = (file.path.clone(), file.digest());
        self.check_transmit_room(path.len() + 1 + digest.len())?;
        self.pending.check_room()?;
        let waits = file.has_unacked();
        if let Some(file) = self.outgoing_files.get_mut(&transfer) {
            file.wanting = false;
            file.ending = true;
        }
        // `file_end` goes once every chunk is acknowledged, as upstream's sender sends it: a
        // file of one chunk is exactly upstream's exchange, and a 3.9.5 receiver, which breaks
        // on a frame header split across its reads (PROTOCOL.md §1.4), never gets it glued
        // behind a chunk.
        if !waits {
            self.send_file_end(now, transfer)
                .ok_or(FileChunkError::Closed)?;
        }
        Ok(())
    }

    /// Sends `file_end` of `transfer`; `None` when the link closed on it.
    pub(super) fn send_file_end(&mut self, now: Instant, transfer: TransferId) -> Option<u32> {
        let file = self.outgoing_files.get(&transfer)?;
        let (path, digest) = (file.path.clone(), file.digest());
        self.core_request(
            now,
            Command::FILE_END,
            &[&path, b" ", &digest],
            Owner::File(transfer.0),
        )
    }

    /// Sends a long string: `new_str <len>`, then `str_upd <id> <chunk>` one at a time, each
    /// after the previous reply. Ends with [`Event::StringSent`] or [`Event::TransferFailed`].
    ///
    /// # Errors
    /// Every [`SendStringError`]: [`Closed`](SendStringError::Closed),
    /// [`TooManyTransfers`](SendStringError::TooManyTransfers),
    /// [`TransmitQueueFull`](SendStringError::TransmitQueueFull) (checked for the `new_str`
    /// frame; each later chunk goes out when the previous one is acknowledged, so a string adds at
    /// most one chunk to the queue at a time),
    /// [`TooManyPendingRequests`](SendStringError::TooManyPendingRequests).
    pub fn send_string(
        &mut self,
        now: Instant,
        data: Bytes,
    ) -> Result<TransferId, SendStringError> {
        self.check_transfer_room(SendStringError::Closed, |limit| {
            SendStringError::TooManyTransfers { limit }
        })?;
        let id = TransferId(self.next_transfer);
        let len = data.len().to_string();
        self.check_transmit_room(len.len())?;
        self.pending.check_room()?;
        self.core_request(now, Command::NEW_STR, &[len.as_bytes()], Owner::Str(id.0))
            .ok_or(SendStringError::Closed)?;
        self.next_transfer += 1;
        self.outgoing_strings.insert(id, OutgoingString::new(data));
        Ok(id)
    }

    /// Sends the next piece of an outgoing long string after [`Event::StringPieceWanted`] (with
    /// [`ConnectionConfig::pull_string_pieces`]); nothing when the transfer is unknown or wants
    /// no piece now.
    pub fn send_string_piece(&mut self, now: Instant, transfer: TransferId) {
        if !self.closed {
            self.string_piece(now, transfer);
        }
    }

    /// Claims a complete incoming string ([`Event::StringComplete`]); `None` when `id` is unknown,
    /// incomplete, expired or already claimed.
    pub fn take_string(&mut self, id: u32) -> Option<Bytes> {
        self.incoming_strings.take(id)
    }

    /// Closes the connection: pending requests are reported as [`Event::Aborted`], transfers as
    /// failed, then [`Event::Closed`] with no error. Bytes already queued can still be drained
    /// with [`Connection::poll_transmit`].
    pub fn close(&mut self) {
        self.close_with(None);
    }

    /// Closes the connection for something the peer did that only the layer above can see
    /// (e.g. [`PeerError::NotReading`]: the writes are the adapter's): everything in flight
    /// fails as on any close, and [`Event::Closed`] carries `error`.
    pub fn close_for(&mut self, error: PeerError) {
        self.close_with(Some(ConnectionError::Peer(error)));
    }

    // ----------------------------------------------------------------------------------------
    // Inputs

    /// Feeds bytes read from the peer, in any split (down to single bytes). Ignored once closed.
    pub fn handle_input(&mut self, now: Instant, mut data: &[u8]) {
        while !self.closed && !data.is_empty() {
            let budget = self.bound_next_frame();
            match self.decoder.decode_slice(&mut data) {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => {
                    self.open_ahead();
                    break;
                }
                Err(FrameError::PayloadTooLarge { declared, .. })
                    if budget.is_some_and(|(bound, _)| declared <= bound) =>
                {
                    let allowance = budget.map_or(0, |(_, allowance)| allowance);
                    let error = PeerError::FrameOverMemoryBudget {
                        declared,
                        allowance,
                    };
                    self.close_with(Some(error.into()));
                }
                Err(error) => self.close_with(Some(PeerError::Frame(error).into())),
            }
        }
        self.track_payload(now);
    }

    /// Opens what arrived of a large frame's token while the rest is on its way.
    ///
    /// Why: a file chunk's token is about 7 MB; opened only once whole, its receiver idled while
    /// it crossed the link and then opened it with the sender waiting for the answer (one chunk
    /// in flight): about 6 of the 22 ms per 5 MiB chunk of a 500 MiB file. Opened as it comes,
    /// little is left when its last byte arrives. The frame is handed on only once whole and its
    /// HMAC checked, exactly as before ([`Opener`] gives what `decrypt_in_place` gives).
    fn open_ahead(&mut self) {
        let Some(fernet) = &self.fernet else {
            return;
        };
        let Some((received, declared)) = self.decoder.partial_payload_mut() else {
            return;
        };
        if declared >= OPEN_AHEAD_MIN {
            self.opening
                .get_or_insert_with(|| fernet.opener(declared))
                .advance(received);
        }
    }

    /// Sets the decoder's bound for the next frame header: the configured one (pre-`hello` or
    /// not), lowered to what the memory allowance leaves (never below the pre-`hello` bound).
    /// Returns the configured bound and the allowance when the allowance lowered it.
    fn bound_next_frame(&mut self) -> Option<(u32, u64)> {
        let configured = if self.authenticated {
            self.config.max_frame_payload
        } else {
            first_frame_bound(&self.config)
        };
        let Some(allowance) = self.memory_allowance else {
            self.decoder.set_max_payload(configured);
            return None;
        };
        let room = allowance
            .saturating_sub(self.incoming_strings.reserved())
            .saturating_sub(HEADER_LEN as u64);
        let floor = self
            .config
            .max_pre_hello_payload
            .min(self.config.max_frame_payload);
        let bound = u32::try_from(room).unwrap_or(u32::MAX).max(floor);
        self.decoder.set_max_payload(configured.min(bound));
        (bound < configured).then_some((configured, allowance))
    }

    /// Arms the payload deadline when a header is parsed and its payload is incomplete (once per
    /// frame, keyed by the frame's stream offset), disarms it otherwise.
    fn track_payload(&mut self, now: Instant) {
        if !self.decoder.is_awaiting_payload() {
            self.payload_since = None;
            return;
        }
        let start = self.decoder.stream_offset() - self.decoder.buffered_len() as u64;
        if self.payload_since.map(|(at, _)| at) != Some(start) {
            self.payload_since = Some((start, now));
        }
    }

    fn payload_deadline(&self) -> Option<Instant> {
        self.payload_since
            .map(|(_, since)| since + self.config.payload_timeout)
    }

    /// Processes everything due at `now` (each exactly at its instant, not before): the hello and
    /// payload deadlines, request deadlines, the keepalive, string expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hello_deadline.is_some_and(|deadline| deadline <= now) {
            let timeout = self.config.hello_timeout;
            self.close_with(Some(PeerError::HelloTimeout { timeout }.into()));
        }
        if self
            .payload_deadline()
            .is_some_and(|deadline| deadline <= now)
        {
            let timeout = self.config.payload_timeout;
            self.close_with(Some(PeerError::PayloadTimeout { timeout }.into()));
        }
        while !self.closed {
            let Some((counter, pending)) =
                self.pending.pop_expired(now, self.config.late_reply_window)
            else {
                break;
            };
            self.on_timeout(now, counter, pending);
        }
        if !self.closed && self.keepalive.take_due(now) {
            if self.pending.check_room().is_ok() {
                self.core_request(now, Command::ECHO_C, &[text::KEEPALIVE], Owner::Keepalive);
            } else {
                // Could not even send (table full): counts as a failed keepalive.
                self.keepalive_outcome(now, false);
            }
        }
        while !self.closed {
            let Some(id) = self.incoming_strings.pop_expired(now) else {
                break;
            };
            self.events.push_back(Event::StringExpired { id });
        }
        while !self.closed {
            let Some(why) = self.incoming_files.pop_abandoned(now) else {
                break;
            };
            if let Some(path) = why.file_path().cloned() {
                self.events.push_back(Event::FileFailed {
                    path,
                    error: Some(why),
                });
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Outputs

    /// Bytes to write to the peer, in order (possibly several frames at once).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        // `split` leaves `out` pointing into the same allocation, and once the adapter drops the
        // frames `out` owns it alone and reclaims all of it on the next reserve: one large burst
        // (a 5 MiB file chunk) stayed allocated for the life of the connection, measured as ~6 MB
        // per idle worker on a master after a sync. Past a small buffer, detach instead, so the
        // burst is freed as soon as the adapter has written it.
        let large = self.out.capacity() > RETAINED_TRANSMIT_CAPACITY;
        let frames = self.out.split().freeze();
        if large {
            self.out = BytesMut::new();
        }
        Some(frames)
    }

    /// The next event for the layer above.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must next be called (`None`: nothing scheduled).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.pending.next_deadline(),
            self.keepalive.next_timeout(),
            self.incoming_strings.next_expiry(),
            self.incoming_files.next_deadline(),
            self.payload_deadline(),
            self.hello_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----------------------------------------------------------------------------------------
    // Internals: sending

    /// Refuses a new outgoing transfer on a closed connection (`closed`) or beyond
    /// `max_outgoing_transfers` (`too_many(limit)`), in the error of the command asking.
    fn check_transfer_room<E>(
        &self,
        closed: E,
        too_many: impl FnOnce(usize) -> E,
    ) -> Result<(), E> {
        if self.closed {
            return Err(closed);
        }
        let limit = self.config.max_outgoing_transfers;
        if self.outgoing_files.len() + self.outgoing_strings.len() >= limit {
            return Err(too_many(limit));
        }
        Ok(())
    }

    /// Refuses a request of the layer above whose frame would take the output queue beyond
    /// `max_queued_transmit`.
    fn check_transmit_room(&self, payload_len: usize) -> Result<(), TransmitQueueFull> {
        let frame = self.frame_len(payload_len);
        let queued = self.out.len();
        let limit = self.config.max_queued_transmit;
        if queued.saturating_add(frame) > limit {
            return Err(TransmitQueueFull {
                queued,
                frame,
                limit,
            });
        }
        Ok(())
    }

    /// Bytes on the wire of a frame whose plaintext payload is `payload_len` bytes (header,
    /// and the Fernet token with a key).
    pub fn frame_len(&self, payload_len: usize) -> usize {
        let body = match self.fernet {
            Some(_) => token_len(payload_len),
            None => payload_len,
        };
        HEADER_LEN.saturating_add(body)
    }

    /// Outgoing file `transfer` of a connection still open.
    fn open_outgoing_file(&self, transfer: TransferId) -> Result<&OutgoingFile, FileChunkError> {
        if self.closed {
            return Err(FileChunkError::Closed);
        }
        self.outgoing_files
            .get(&transfer)
            .ok_or(FileChunkError::UnknownTransfer(transfer.0))
    }

    fn file_wanting_chunk(&self, transfer: TransferId) -> Result<&OutgoingFile, FileChunkError> {
        let file = self.open_outgoing_file(transfer)?;
        if !file.wanting {
            return Err(FileChunkError::NotWaitingForChunk(transfer.0));
        }
        Ok(file)
    }

    /// Asks the layer above for the next chunk of `transfer` if the window has room for one.
    fn want_chunk(&mut self, transfer: TransferId) {
        let window = self.config.file_window;
        if let Some(file) = self.outgoing_files.get_mut(&transfer)
            && file.may_want(window)
        {
            file.wanting = true;
            let max_len = file.chunk_max;
            self.events
                .push_back(Event::FileChunkWanted { transfer, max_len });
        }
    }

    /// Sends a request with the next counter and records who waits for it. The caller checked
    /// that the connection is open and that the pending table has room (each command refuses
    /// those in its own error type).
    fn request(
        &mut self,
        now: Instant,
        command: Command,
        parts: &[&[u8]],
        owner: Owner,
    ) -> Result<u32, FrameError> {
        let counter = self.counter.wrapping_add(1);
        self.queue_frame(now, counter, &command, parts)?;
        self.sent_request(now, counter, command, owner);
        Ok(counter)
    }

    /// The request frame `counter` (the next one) is queued: its counter is used and who waits
    /// for its reply recorded.
    fn sent_request(&mut self, now: Instant, counter: u32, command: Command, owner: Owner) {
        self.counter = counter;
        let deadline = now + self.config.request_timeout;
        self.pending.insert(
            counter,
            Pending {
                command,
                deadline,
                owner,
            },
        );
    }

    /// [`request`](Self::request) for a frame the core builds around checked data (`new_file`,
    /// `file_upd`, `file_end`, `new_str`, `str_upd`, `echo-c`): its commands are short and valid
    /// and its payloads short or bounded by `request_chunk` (paths by `send_file`, chunks by the
    /// transfer's `chunk_max`, string ids by [`PeerError::StringIdTooLong`]), so building the
    /// frame cannot fail. If it does,
    /// that bug closes the link (reported in [`Event::Closed`]) and `None` is returned, which the
    /// command asking reports as its `Closed` error.
    fn core_request(
        &mut self,
        now: Instant,
        command: Command,
        parts: &[&[u8]],
        owner: Owner,
    ) -> Option<u32> {
        let counter = self.request(now, command, parts, owner).ok();
        if counter.is_none() {
            self.close_with(Some(ConnectionError::Bug(
                "a request frame the core builds (fixed command, bounded payload) failed to encode",
            )));
        }
        counter
    }

    /// Appends one frame to the output: the payload parts concatenated, sealed when a key is set.
    fn queue_frame(
        &mut self,
        now: Instant,
        counter: u32,
        command: &Command,
        parts: &[&[u8]],
    ) -> Result<(), FrameError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let body = self.frame_len(len) - HEADER_LEN;
        encode_header(self.config.profile, counter, command, body, &mut self.out)?;
        let unix = self.config.wall_clock.unix_secs_at(now);
        append_payload(
            self.fernet.as_ref(),
            &mut self.iv_rng,
            unix,
            parts,
            &mut self.out,
        );
        Ok(())
    }

    /// Replies from the core itself; building these frames cannot fail (fixed, short commands).
    fn answer(&mut self, now: Instant, counter: u32, command: Command, payload: &[u8]) {
        if self
            .queue_frame(now, counter, &command, &[payload])
            .is_err()
        {
            self.close_with(Some(ConnectionError::Bug(
                "a reply frame the core builds (fixed command, bounded payload) failed to encode",
            )));
        }
    }

    // ----------------------------------------------------------------------------------------
    // Internals: closing

    fn close_with(&mut self, error: Option<ConnectionError>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.keepalive.stop();
        self.hello_deadline = None;
        self.payload_since = None;
        self.unanswered.clear();
        for (counter, pending) in self.pending.drain() {
            if pending.owner == Owner::User {
                self.events.push_back(Event::Aborted {
                    counter,
                    command: pending.command,
                });
            }
        }
        for transfer in std::mem::take(&mut self.outgoing_files).into_keys() {
            self.events.push_back(Event::TransferFailed {
                transfer,
                failure: TransferFailure::Closed,
            });
        }
        for transfer in std::mem::take(&mut self.outgoing_strings).into_keys() {
            self.events.push_back(Event::TransferFailed {
                transfer,
                failure: TransferFailure::Closed,
            });
        }
        for path in self.incoming_files.drain() {
            self.events
                .push_back(Event::FileFailed { path, error: None });
        }
        self.incoming_strings.clear();
        self.events.push_back(Event::Closed { error });
    }
}

/// The frame bound a new connection starts with: the pre-`hello` one while `hello` is required.
fn first_frame_bound(config: &ConnectionConfig) -> u32 {
    if config.require_hello {
        config.max_pre_hello_payload.min(config.max_frame_payload)
    } else {
        config.max_frame_payload
    }
}

/// An arbitrary origin instant for unit tests: the cores never read the clock, but a test needs
/// some `Instant` to add durations to.
#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "tests need an arbitrary origin instant"
)]
pub(crate) fn test_origin() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    #[test]
    fn a_large_burst_does_not_stay_allocated_after_it_is_transmitted() {
        let t0 = test_origin();
        let config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(t0, 1_700_000_000));
        let mut conn = Connection::new(config, Side::Client, Rng::from_seed(7), t0);
        let echo = Command::new(Profile::V3_9, b"echo").unwrap();
        conn.send_request(t0, echo, &vec![b'x'; 4 * 1024 * 1024])
            .unwrap();
        let burst = conn.poll_transmit().unwrap();
        assert_eq!(burst.len(), 20 + 4 * 1024 * 1024);
        drop(burst); // written by the adapter
        conn.send_request(t0, echo, b"small").unwrap();
        let kept = conn.out.capacity();
        assert!(
            kept <= RETAINED_TRANSMIT_CAPACITY,
            "the 4 MiB burst buffer was kept ({kept} B)"
        );
        assert_eq!(conn.poll_transmit().unwrap().len(), 25);
        assert!(conn.poll_transmit().is_none());
    }
}
