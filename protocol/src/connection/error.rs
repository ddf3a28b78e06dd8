//! Errors of the connection core, split the rustls way: the peer broke the protocol
//! ([`PeerError`]), the caller misused the API (one error type per command, quinn-proto style:
//! [`RequestError`], [`ReplyError`], [`SendFileError`], [`FileChunkError`], [`SendStringError`]),
//! or a bug ([`ConnectionError::Bug`]).
//!
//! Why the split: the layer above reacts differently to each (disconnect and log the peer, fix the
//! caller, report a bug), and tests assert exact variants. Why one type per command: each holds
//! exactly the refusals that command can produce, so a caller matches on what can happen to it and
//! nothing else. Why [`ConnectionError`] has no API variant: a misuse is refused and leaves the
//! connection as it was, so `ConnectionError` only says why a connection closed.

use std::borrow::Cow;

use bytes::Bytes;

use crate::fernet::FernetError;
use crate::frame::FrameError;
use crate::message::text;

/// Why a [`Connection`](super::Connection) closed on its own (reported once, in
/// [`Event::Closed`](super::Event::Closed)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer broke the protocol or a bound.
    #[error("peer error: {0}")]
    Peer(#[from] PeerError),
    /// A broken internal invariant, named by a fixed text (please report). Fixed, so that
    /// reporting a bug never allocates.
    #[error("internal error (bug): {0}")]
    Bug(&'static str),
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
    /// A frame of ours waited this long to be written without the peer reading any of it: the
    /// peer does not read what we send (it would hold its share of the node's output forever).
    #[error("it does not read what we send: nothing written for {waited:?}")]
    NotReading {
        /// The bound.
        waited: std::time::Duration,
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
    /// A frame declared a payload beyond what the node's memory budget lets this link hold now
    /// (every link together, or this link's share; see
    /// [`Connection::set_memory_allowance`](super::Connection::set_memory_allowance)). A frame
    /// cannot be answered: the link is closed, and the peer may connect again.
    #[error(
        "frame of {declared} bytes refused: the node's memory budget lets this link hold {allowance} bytes now"
    )]
    FrameOverMemoryBudget {
        /// The frame's declared payload.
        declared: u32,
        /// Bytes this link's frame buffer and strings may hold together now.
        allowance: u64,
    },
    /// A `new_str` declared more than the node's memory budget lets this link hold now.
    #[error(
        "string of {declared} bytes refused: the node's memory budget lets this link hold {allowance} bytes now"
    )]
    StringOverMemoryBudget {
        /// Declared length of the refused string.
        declared: u64,
        /// Bytes this link's frame buffer and strings may hold together now.
        allowance: u64,
    },
    /// A `new_file` beyond the allowance the layer above set with
    /// [`Connection::set_file_allowance`](super::Connection::set_file_allowance): the node's
    /// budget of files received at once (every link together), or this link's share of it.
    #[error("no room for another incoming file: the node's file budget allows this link {limit}")]
    FileBudgetExhausted {
        /// Files this link may receive at once now.
        limit: usize,
    },
    /// A `new_file` path is not directly inside the directory the layer above set with
    /// [`Connection::set_file_inbox`](super::Connection::set_file_inbox) (upstream writes
    /// wherever the path points).
    #[error("file path {path:?} refused: outside this link's directory")]
    FileOutsideInbox {
        /// The path, as sent (its length is bounded by `max_file_path_len`).
        path: String,
    },
    /// A `new_file` path's file name is longer than
    /// [`MAX_FILE_NAME_LEN`](super::MAX_FILE_NAME_LEN) bytes.
    #[error(
        "file name of {len} bytes refused (limit {})",
        super::MAX_FILE_NAME_LEN
    )]
    FileNameTooLong {
        /// Its length.
        len: usize,
    },
    /// A `new_file` would take this link's directory beyond its quota of files (those being
    /// received plus those received and not yet claimed, see
    /// [`Connection::set_inbox_quota`](super::Connection::set_inbox_quota)).
    #[error("Error: this node's directory already holds its quota of {limit} files")]
    InboxFilesQuota {
        /// The bound.
        limit: usize,
    },
    /// A `file_upd` would take this link's directory beyond its quota of bytes.
    #[error(
        "Error: file {} refused: this node's directory would exceed its quota of {limit} bytes",
        String::from_utf8_lossy(path)
    )]
    InboxBytesQuota {
        /// Path as sent by the peer.
        path: Bytes,
        /// The bound.
        limit: u64,
    },
    /// An incoming file received nothing (no `file_upd`, no `file_end`) for
    /// [`incoming_file_idle_timeout`](super::ConnectionConfig::incoming_file_idle_timeout): it
    /// is given up, and its next `file_upd` or `file_end` is answered with this text.
    #[error(
        "Error: file {} given up by this node: nothing received for {} s",
        String::from_utf8_lossy(path),
        idle.as_secs()
    )]
    FileIdle {
        /// Path as sent by the peer.
        path: Bytes,
        /// The bound.
        idle: std::time::Duration,
    },
    /// An incoming file was not finished within
    /// [`incoming_file_lifetime`](super::ConnectionConfig::incoming_file_lifetime) of its
    /// `new_file`, however it trickled: given up like [`PeerError::FileIdle`].
    #[error(
        "Error: file {} given up by this node: not finished within {} s",
        String::from_utf8_lossy(path),
        lifetime.as_secs()
    )]
    FileNotFinished {
        /// Path as sent by the peer.
        path: Bytes,
        /// The bound.
        lifetime: std::time::Duration,
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

impl PeerError {
    /// The `err` text the peer gets when one of its requests is refused for this error: the one
    /// table from peer errors to reply texts, so each refusal answers the same bytes wherever it
    /// is detected. `None` for the errors that close the link without answering anything (a bad
    /// frame, decryption failures, timeouts, failed keepalives, the peer's id for a string of ours
    /// with no room for data).
    ///
    /// Every text is fixed except those of [`PeerError::BadFilePath`], [`PeerError::FileNameTooLong`],
    /// the inbox quotas and the files given up, which are the error's own `Display` text (it names the length or the
    /// bound; a quota's starts with `Error`, so upstream's sender stops there), hence the `Cow`.
    pub fn reply_text(&self) -> Option<Cow<'static, [u8]>> {
        let fixed: &'static [u8] = match self {
            PeerError::Frame(_)
            | PeerError::DecryptBeforeHello(_)
            | PeerError::TooManyDecryptFailures { .. }
            | PeerError::KeepaliveFailed { .. }
            | PeerError::PayloadTimeout { .. }
            | PeerError::HelloTimeout { .. }
            | PeerError::NotReading { .. }
            | PeerError::FrameOverMemoryBudget { .. }
            | PeerError::StringIdTooLong { .. } => return None,
            PeerError::BadFilePath { .. }
            | PeerError::FileNameTooLong { .. }
            | PeerError::InboxFilesQuota { .. }
            | PeerError::InboxBytesQuota { .. }
            | PeerError::FileIdle { .. }
            | PeerError::FileNotFinished { .. } => {
                return Some(Cow::Owned(self.to_string().into_bytes()));
            }
            PeerError::BeforeHello { .. } => text::BEFORE_HELLO,
            PeerError::FileOutsideInbox { .. } => text::FILE_OUTSIDE_INBOX,
            PeerError::ChecksumMismatch { .. } => text::FILE_CHECKSUM_MISMATCH,
            PeerError::FileTooLarge { .. } => text::FILE_TOO_LARGE,
            PeerError::FileBudgetExhausted { .. } => text::FILE_BUDGET_EXHAUSTED,
            PeerError::TooManyFiles { .. } | PeerError::TooManyStrings { .. } => {
                text::TOO_MANY_TRANSFERS
            }
            PeerError::StringTooLarge { .. } => text::STRING_TOO_LARGE,
            PeerError::StringsTotalTooLarge { .. } => text::STRINGS_TOTAL_TOO_LARGE,
            PeerError::StringOverMemoryBudget { .. } => text::MEMORY_BUDGET_EXHAUSTED,
            PeerError::TooManyUnansweredRequests { .. } => text::TOO_MANY_REQUESTS,
        };
        Some(Cow::Borrowed(fixed))
    }

    /// The incoming file the error is about, for the errors that drop one transfer.
    pub fn file_path(&self) -> Option<&Bytes> {
        match self {
            PeerError::ChecksumMismatch { path }
            | PeerError::FileTooLarge { path, .. }
            | PeerError::InboxBytesQuota { path, .. }
            | PeerError::FileIdle { path, .. }
            | PeerError::FileNotFinished { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Why [`Connection::send_request`](super::Connection::send_request) refused a request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The payload is longer than `request_chunk` (upstream refuses these too).
    #[error("request payload of {len} bytes exceeds request_chunk ({limit} bytes)")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// `max_pending_requests` requests are already awaiting a reply.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
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
    /// The frame could not be built: a command longer than this connection's profile allows
    /// (one built for another profile), or a payload beyond a frame's 32-bit length field (only
    /// with a `request_chunk` configured that large).
    #[error("cannot build frame: {0}")]
    Frame(FrameError),
}

/// Why [`Connection::reply`](super::Connection::reply) or
/// [`Connection::reply_unknown_command`](super::Connection::reply_unknown_command) refused a reply.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// The counter is not one of a request of the peer surfaced as
    /// [`Event::Request`](super::Event::Request) and not answered yet.
    #[error("counter {counter} is not a request of the peer awaiting a reply")]
    NotAwaitingReply {
        /// The counter given.
        counter: u32,
    },
    /// The frame could not be built: a command longer than this connection's profile allows
    /// (one built for another profile), or a payload beyond a frame's 32-bit length field.
    #[error("cannot build frame: {0}")]
    Frame(FrameError),
}

/// Why [`Connection::send_file`](super::Connection::send_file) refused to start a transfer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFileError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// `max_outgoing_transfers` transfers are already running.
    #[error("too many outgoing transfers (limit {limit})")]
    TooManyTransfers {
        /// The bound.
        limit: usize,
    },
    /// The `new_file` frame would take the output queue beyond `max_queued_transmit`: drain
    /// [`poll_transmit`](super::Connection::poll_transmit) and try again.
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
    /// The path is empty, contains a space, or leaves no room for data in a chunk or for the
    /// checksum in `file_end`.
    #[error("bad file path for send_file: {reason}")]
    BadPath {
        /// What is wrong.
        reason: &'static str,
    },
    /// `max_pending_requests` requests are already awaiting a reply.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
        /// The bound.
        limit: usize,
    },
}

/// Why [`Connection::file_chunk`](super::Connection::file_chunk) or
/// [`Connection::finish_file`](super::Connection::finish_file) (the answers to
/// [`Event::FileChunkWanted`](super::Event::FileChunkWanted)) was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileChunkError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// No outgoing transfer has this id (finished, failed, or never started).
    #[error("unknown transfer {0}")]
    UnknownTransfer(u64),
    /// The transfer is not asking for a chunk (its previous step is not acknowledged yet).
    #[error("transfer {0} is not waiting for a chunk")]
    NotWaitingForChunk(u64),
    /// A chunk sealed ahead ([`Connection::seal_chunk`](super::Connection::seal_chunk)) is no
    /// longer the transfer's next one: another chunk of it was sent since.
    #[error("the chunk sealed ahead for transfer {0} is no longer its next one")]
    StaleSealedChunk(u64),
    /// The chunk is empty or longer than the transfer asked for (`file_chunk` only).
    #[error("chunk of {len} bytes for transfer {transfer}: must be 1..={max} bytes")]
    BadChunkLen {
        /// Transfer id.
        transfer: u64,
        /// Given length.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The `file_upd` / `file_end` frame would take the output queue beyond
    /// `max_queued_transmit`: the transfer still wants this step; drain
    /// [`poll_transmit`](super::Connection::poll_transmit) and try again.
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
    /// `max_pending_requests` requests are already awaiting a reply.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
        /// The bound.
        limit: usize,
    },
}

/// Why [`Connection::send_string`](super::Connection::send_string) refused to start a transfer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendStringError {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// `max_outgoing_transfers` transfers are already running.
    #[error("too many outgoing transfers (limit {limit})")]
    TooManyTransfers {
        /// The bound.
        limit: usize,
    },
    /// The `new_str` frame would take the output queue beyond `max_queued_transmit`: drain
    /// [`poll_transmit`](super::Connection::poll_transmit) and try again.
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
    /// `max_pending_requests` requests are already awaiting a reply.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
        /// The bound.
        limit: usize,
    },
}

/// The output queue has no room for a request frame of ours: the check every sending command
/// shares, turned into each command's `TransmitQueueFull` by `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransmitQueueFull {
    pub(crate) queued: usize,
    pub(crate) frame: usize,
    pub(crate) limit: usize,
}

/// The table of our requests awaiting a reply is full: the check every sending command shares,
/// turned into each command's `TooManyPendingRequests` by `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingTableFull {
    pub(crate) limit: usize,
}

/// `From` the shared checks into the error of each command that sends a request of ours (the
/// variants have the same names and fields in each).
macro_rules! from_shared_send_checks {
    ($($error:ident),+ $(,)?) => {$(
        impl From<TransmitQueueFull> for $error {
            fn from(full: TransmitQueueFull) -> Self {
                let TransmitQueueFull { queued, frame, limit } = full;
                $error::TransmitQueueFull { queued, frame, limit }
            }
        }
        impl From<PendingTableFull> for $error {
            fn from(full: PendingTableFull) -> Self {
                $error::TooManyPendingRequests { limit: full.limit }
            }
        }
    )+};
}

from_shared_send_checks!(RequestError, SendFileError, FileChunkError, SendStringError);
