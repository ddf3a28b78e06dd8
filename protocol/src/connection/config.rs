//! Configuration of one connection: the key, the clock anchor and every bound.
//!
//! Why every number lives here: the sans-IO contract says peer input never allocates beyond a
//! configured bound, so each table, transfer and timer of the connection has its limit in this
//! struct, with upstream's value as the default where upstream has one (PROTOCOL.md §1.5, §1.6,
//! §8, §12.2) and a stated one where upstream has none (§16).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::frame::{Command, DEFAULT_MAX_PAYLOAD};
use crate::key::ClusterKey;
use crate::profile::Profile;

/// Default bound on a received frame's payload before the link is authenticated (64 KiB): a
/// `hello` or a keepalive is a few hundred bytes.
pub const DEFAULT_MAX_PRE_HELLO_PAYLOAD: u32 = 64 << 10;

/// Upstream's `request_chunk`: the largest plaintext request payload (5 MiB).
pub const DEFAULT_REQUEST_CHUNK: usize = 5_242_880;

/// Ties the monotonic `now` values to wall-clock time, for the Fernet token timestamp.
///
/// The core never reads a clock: the adapter reads both clocks once, when it builds the config,
/// and the Unix time of any later `now` is `unix_secs + (now - instant)` in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// A monotonic instant.
    pub instant: Instant,
    /// Seconds since the Unix epoch at `instant`.
    pub unix_secs: u64,
}

impl WallClock {
    /// Anchors `unix_secs` at `instant`.
    pub fn new(instant: Instant, unix_secs: u64) -> WallClock {
        WallClock { instant, unix_secs }
    }

    /// Unix seconds at `now` (saturating at both ends).
    pub fn unix_secs_at(&self, now: Instant) -> u64 {
        if now >= self.instant {
            self.unix_secs
                .saturating_add((now - self.instant).as_secs())
        } else {
            self.unix_secs
                .saturating_sub((self.instant - now).as_secs())
        }
    }
}

/// Everything a [`Connection`](super::Connection) needs besides its side, seed and `now`.
///
/// Build it with [`ConnectionConfig::new`] (upstream defaults) and adjust the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Protocol generation.
    pub profile: Profile,
    /// Cluster key: every payload is a Fernet token when set (TCP); raw when `None` (local socket).
    pub key: Option<ClusterKey>,
    /// Clock anchor for Fernet timestamps.
    pub wall_clock: WallClock,
    /// Bound on one received frame's payload (encrypted length).
    pub max_frame_payload: u32,
    /// With [`require_hello`](Self::require_hello), the bound on a received frame's payload until
    /// the link is authenticated (64 KiB): a `hello` or a keepalive is a few hundred bytes, and a
    /// peer without the key must not park `max_frame_payload` bytes per connection.
    pub max_pre_hello_payload: u32,
    /// Upstream's `request_chunk`: largest plaintext request payload, and the size the file and
    /// string chunks are cut to (`request_chunk - len(path or id) - 1`).
    pub request_chunk: usize,
    /// Upstream's `timeout_cluster_request` (20 s): a request unanswered this long times out.
    pub request_timeout: Duration,
    /// Most requests of ours awaiting a reply (upstream: unbounded).
    pub max_pending_requests: usize,
    /// How long the counter of a timed-out request is remembered, so that its late reply is
    /// dropped (and counted) instead of being taken for a request of the peer.
    pub late_reply_window: Duration,
    /// Client side: interval between keepalives (`intervals.worker.keep_alive`, 60 s).
    pub keep_alive: Duration,
    /// Client side: consecutive keepalive failures that close the link (2).
    pub max_failed_keepalive_attempts: u32,
    /// Frames that fail to decrypt in a row before the link is closed (after `hello`; before it,
    /// the first failure closes it).
    pub max_decrypt_failures: u32,
    /// Most incoming file transfers open at once.
    pub max_incoming_files: usize,
    /// Most bytes one incoming file may carry.
    pub max_file_size: u64,
    /// Longest path accepted in `new_file`.
    pub max_file_path_len: usize,
    /// An incoming file that receives nothing (no `file_upd`, no `file_end`) this long is given
    /// up (40 s; upstream 3.9.5 keeps it open until the link closes): dropped, reported as
    /// [`Event::FileFailed`](super::Event::FileFailed) so the layer above discards what was
    /// written, and its next chunk or end is answered `err` with why. Twice upstream's
    /// `timeout_cluster_request` (20 s): an upstream sender sends its next chunk as soon as the
    /// previous one is answered (and we answer at once), and gives the file up when an answer
    /// takes longer than that, so a longer silence means it gave up or its disk stalled; the
    /// doubling leaves room for a sender whose chunk read waits behind its other disk work.
    pub incoming_file_idle_timeout: Duration,
    /// An incoming file not finished this long after its `new_file` is given up likewise,
    /// however it trickles (120 s: upstream's `timeout_receiving_file`). Every file a peer sends
    /// belongs to a task that waits that long for it from before its `new_file`, so a file still
    /// open then serves nobody.
    pub incoming_file_lifetime: Duration,
    /// Most incoming long strings held at once (in flight or waiting to be claimed).
    pub max_incoming_strings: usize,
    /// Most bytes one incoming long string may declare (64 MiB; upstream 3.9.5: unbounded).
    pub max_string_size: u64,
    /// Most bytes all incoming long strings held at once may declare together (128 MiB). The
    /// declared length is reserved at `new_str` and released when the string is claimed, expires
    /// or the connection closes; a `new_str` beyond it is answered `err`.
    pub max_incoming_strings_bytes: u64,
    /// An incoming string is dropped this long after its last chunk (or its completion) unless it
    /// is claimed with [`take_string`](super::Connection::take_string).
    pub string_timeout: Duration,
    /// Most outgoing file and string transfers at once.
    pub max_outgoing_transfers: usize,
    /// Most bytes of `file_upd` chunks of one outgoing file sent and not yet acknowledged: the
    /// next chunk is asked for ([`Event::FileChunkWanted`](super::Event::FileChunkWanted)) while
    /// it still fits, so chunks are pipelined instead of one per round trip. One chunk always
    /// goes, so the default (0) is upstream's stop-and-wait. A receiver must answer
    /// the chunks in order, as ours and 3.9.5's do (its `data_received` handles every complete
    /// frame in turn, writing each chunk before parsing the next).
    pub file_window: usize,
    /// Whether each piece of an outgoing long string after the first waits for the layer above:
    /// when its predecessor is acknowledged the connection emits
    /// [`Event::StringPieceWanted`](super::Event::StringPieceWanted) and sends the piece only on
    /// [`send_string_piece`](super::Connection::send_string_piece), so a node can pace its big
    /// output across links. Off by default: each piece goes as soon as the previous one is
    /// acknowledged.
    pub pull_string_pieces: bool,
    /// Most bytes waiting in the output queue (not yet taken by
    /// [`poll_transmit`](super::Connection::poll_transmit)) for a new request of the layer above
    /// to be accepted (64 MiB). A request frame that would take the queue beyond it is refused
    /// with the command's `TransmitQueueFull` error (e.g.
    /// [`RequestError::TransmitQueueFull`](super::RequestError::TransmitQueueFull)); replies and
    /// the core's own frames are never refused (they are bounded by the input that caused them).
    pub max_queued_transmit: usize,
    /// Most claimed requests of the peer surfaced as [`Event::Request`](super::Event::Request) and
    /// not yet answered with [`reply`](super::Connection::reply) (1024). Beyond it, a claimed
    /// request is answered `err` and reported as a violation.
    pub max_unanswered_requests: usize,
    /// A frame whose header arrived must be complete this long after (HEAD's
    /// `PRE_AUTH_PAYLOAD_TIMEOUT`, 30 s; upstream 3.9.5 waits forever): a peer cannot park a
    /// half-sent frame and its buffer.
    pub payload_timeout: Duration,
    /// Before [`set_authenticated`](super::Connection::set_authenticated), serve only `hello` and
    /// `echo-c` (our security default; upstream serves everything). Every other request is
    /// answered `err` `Command not allowed before hello`. Turn off for the local socket, which
    /// has no `hello`.
    pub require_hello: bool,
    /// Whether the peer may use the commands of a cluster peer: `hello`, `echo-c`, and sending
    /// files and long strings (`new_file`, `file_upd`, `file_end`, `new_str`, `str_upd`). Off
    /// for the local socket: 3.9.5's local clients send none of them, and a keyless client must
    /// not make the node hold or write what it sends; they are answered `unknown command`.
    pub cluster_peer_commands: bool,
    /// With `require_hello`, a link not authenticated this long after its creation is closed
    /// (a real worker sends `hello` at once and the master answers within milliseconds).
    pub hello_timeout: Duration,
    /// Commands the layer above answers itself: they surface as
    /// [`Event::Request`](super::Event::Request) and must be answered with
    /// [`reply`](super::Connection::reply). Every other command that the connection does not
    /// answer itself gets upstream's `err` `unknown command '…'` reply.
    pub claimed_commands: BTreeSet<Command>,
}

impl ConnectionConfig {
    /// Upstream's defaults for `profile`, with `key` (`None` = plaintext) and the clock anchor.
    pub fn new(profile: Profile, key: Option<ClusterKey>, wall_clock: WallClock) -> Self {
        ConnectionConfig {
            profile,
            key,
            wall_clock,
            max_frame_payload: DEFAULT_MAX_PAYLOAD,
            max_pre_hello_payload: DEFAULT_MAX_PRE_HELLO_PAYLOAD,
            request_chunk: DEFAULT_REQUEST_CHUNK,
            request_timeout: Duration::from_secs(20),
            max_pending_requests: 1024,
            late_reply_window: Duration::from_secs(120),
            keep_alive: Duration::from_secs(60),
            max_failed_keepalive_attempts: 2,
            max_decrypt_failures: 3,
            max_incoming_files: 16,
            max_file_size: 1 << 30,
            max_file_path_len: 4096,
            incoming_file_idle_timeout: Duration::from_secs(40),
            incoming_file_lifetime: Duration::from_secs(120),
            max_incoming_strings: 16,
            max_string_size: 64 << 20,
            max_incoming_strings_bytes: 128 << 20,
            string_timeout: Duration::from_secs(120),
            max_outgoing_transfers: 64,
            file_window: 0,
            pull_string_pieces: false,
            max_queued_transmit: 64 << 20,
            max_unanswered_requests: 1024,
            payload_timeout: Duration::from_secs(30),
            require_hello: true,
            cluster_peer_commands: true,
            hello_timeout: Duration::from_secs(30),
            claimed_commands: BTreeSet::new(),
        }
    }

    /// Adds commands to [`claimed_commands`](Self::claimed_commands) (builder style).
    pub fn claim<I: IntoIterator<Item = Command>>(mut self, commands: I) -> Self {
        self.claimed_commands.extend(commands);
        self
    }
}
