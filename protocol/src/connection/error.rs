//! Errors of the connection core, split the rustls way: the peer broke the protocol
//! ([`PeerError`]), the caller misused the API ([`ApiError`]), or a bug ([`ConnectionError::Bug`]).
//!
//! Why the split: the layer above reacts differently to each (disconnect and log the peer, fix the
//! caller, report a bug), and tests assert exact variants.

use bytes::Bytes;

use crate::fernet::FernetError;
use crate::frame::FrameError;

/// Any error of a [`Connection`](super::Connection).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer broke the protocol or a bound.
    #[error("peer error: {0}")]
    Peer(#[from] PeerError),
    /// The caller used the API wrongly.
    #[error("API misuse: {0}")]
    Api(#[from] ApiError),
    /// A broken internal invariant (please report).
    #[error("internal error (bug): {0}")]
    Bug(String),
}

/// What the peer did wrong. Bounds exceeded by peer input land here.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The byte stream is not a sequence of valid frames (e.g. a payload above the bound).
    #[error("bad frame: {0}")]
    Frame(FrameError),
    /// A frame failed to decrypt before the link was authenticated (`hello`).
    #[error("frame failed to decrypt before hello (wrong cluster key?): {0}")]
    DecryptBeforeHello(FernetError),
    /// Too many frames in a row failed to decrypt.
    #[error("{count} frames in a row failed to decrypt (wrong cluster key?)")]
    TooManyDecryptFailures {
        /// Failures in a row.
        count: u32,
    },
    /// Keepalives failed (timed out or were refused) this many times in a row.
    #[error("{attempts} keepalives in a row failed")]
    KeepaliveFailed {
        /// Consecutive failures.
        attempts: u32,
    },
    /// A frame's payload did not arrive within `payload_timeout` of its header.
    #[error("a frame's payload did not arrive within {timeout:?} of its header")]
    PayloadTimeout {
        /// The bound.
        timeout: std::time::Duration,
    },
    /// The link was not authenticated within `hello_timeout` of its creation.
    #[error("no successful hello within {timeout:?}")]
    HelloTimeout {
        /// The bound.
        timeout: std::time::Duration,
    },
    /// A request other than `hello` / `echo-c` arrived before the link was authenticated.
    #[error("command {command} is not allowed before hello")]
    BeforeHello {
        /// The refused command.
        command: crate::frame::Command,
    },
    /// A received file's SHA-256 differs from the one announced in `file_end`.
    #[error(
        "file {} was not received correctly: checksums differ",
        String::from_utf8_lossy(path)
    )]
    ChecksumMismatch {
        /// Path as sent by the peer.
        path: Bytes,
    },
    /// A received file grew beyond `max_file_size`.
    #[error("file {} exceeds {limit} bytes", String::from_utf8_lossy(path))]
    FileTooLarge {
        /// Path as sent by the peer.
        path: Bytes,
        /// The bound.
        limit: u64,
    },
    /// The peer opened more file transfers than `max_incoming_files`.
    #[error("too many incoming file transfers (limit {limit})")]
    TooManyFiles {
        /// The bound.
        limit: usize,
    },
    /// A `new_file` path is empty or longer than `max_file_path_len`.
    #[error("bad file path of {len} bytes (limit {limit})")]
    BadFilePath {
        /// Its length.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// A `new_str` declared more than `max_string_size` bytes.
    #[error("string of {declared} bytes exceeds the limit of {limit} bytes")]
    StringTooLarge {
        /// Declared length.
        declared: u64,
        /// The bound.
        limit: u64,
    },
    /// A `new_str` would make the declared lengths of the strings held exceed
    /// `max_incoming_strings_bytes`.
    #[error(
        "string of {declared} bytes refused: {reserved} bytes already reserved by strings in flight (limit {limit})"
    )]
    StringsTotalTooLarge {
        /// Declared length of the refused string.
        declared: u64,
        /// Sum of the declared lengths of the strings already held.
        reserved: u64,
        /// The bound.
        limit: u64,
    },
    /// The peer sent a claimed request while `max_unanswered_requests` of its requests were
    /// still awaiting our reply.
    #[error("too many requests awaiting our reply (limit {limit})")]
    TooManyUnansweredRequests {
        /// The bound.
        limit: usize,
    },
    /// The peer opened more strings than `max_incoming_strings`.
    #[error("too many incoming strings (limit {limit})")]
    TooManyStrings {
        /// The bound.
        limit: usize,
    },
    /// The peer answered our `new_str` with a string id so long that `str_upd <id> <chunk>` has
    /// no room for data within `request_chunk` (upstream's ids are decimal `u32`s).
    #[error("string id of {len} bytes leaves no room for data in str_upd (longest {limit})")]
    StringIdTooLong {
        /// Length of the id.
        len: usize,
        /// The longest id that leaves room for one byte of data.
        limit: usize,
    },
}

/// How the caller misused the API.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// `max_pending_requests` requests are already awaiting a reply.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
        /// The bound.
        limit: usize,
    },
    /// `max_outgoing_transfers` transfers are already running.
    #[error("too many outgoing transfers (limit {limit})")]
    TooManyTransfers {
        /// The bound.
        limit: usize,
    },
    /// A request payload is longer than `request_chunk` (upstream refuses these too).
    #[error("request payload of {len} bytes exceeds request_chunk ({limit} bytes)")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// The request frame would take the output queue beyond `max_queued_transmit`: drain
    /// [`poll_transmit`](super::Connection::poll_transmit) (write to the socket) and try again.
    #[error(
        "output queue full: {queued} bytes queued + a frame of {frame} bytes exceed the limit of {limit} bytes"
    )]
    TransmitQueueFull {
        /// Bytes waiting in the queue.
        queued: usize,
        /// Size of the refused frame.
        frame: usize,
        /// The bound.
        limit: usize,
    },
    /// [`reply`](super::Connection::reply) with a counter that is not one of a request of the peer
    /// surfaced as [`Event::Request`](super::Event::Request) and not answered yet.
    #[error("counter {counter} is not a request of the peer awaiting a reply")]
    NotAwaitingReply {
        /// The counter given.
        counter: u32,
    },
    /// A frame could not be built (command too long, ...).
    #[error("cannot build frame: {0}")]
    Frame(FrameError),
    /// A file path is empty, contains a space, or leaves no room for data in a chunk or for the
    /// checksum in `file_end`.
    #[error("bad file path for send_file: {reason}")]
    BadPath {
        /// What is wrong.
        reason: &'static str,
    },
    /// No outgoing transfer has this id (finished, failed, or never started).
    #[error("unknown transfer {0}")]
    UnknownTransfer(u64),
    /// A file chunk was given while the transfer was not asking for one.
    #[error("transfer {0} is not waiting for a chunk")]
    NotWaitingForChunk(u64),
    /// A file chunk is empty or longer than the transfer asked for.
    #[error("chunk of {len} bytes for transfer {transfer}: must be 1..={max} bytes")]
    BadChunkLen {
        /// Transfer id.
        transfer: u64,
        /// Given length.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
}
