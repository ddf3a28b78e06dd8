//! What the connection tells the layer above ([`Event`]) and the ids and outcomes of outgoing
//! transfers.
//!
//! Why a room of its own: this is the vocabulary the layer above (the `Node`) matches on; keeping
//! it apart from the state machine makes the contract readable in one place.

use bytes::Bytes;

use super::error::{ConnectionError, PeerError};
use crate::frame::Command;
use crate::message::Reply;

/// Identifies one outgoing file or string transfer of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

impl core::fmt::Display for TransferId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "transfer {}", self.0)
    }
}

/// Why an outgoing transfer stopped before the end.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferFailure {
    /// A step was not answered within `request_timeout`.
    TimedOut {
        /// The step's command (`new_file`, `file_upd`, `str_upd`, ...).
        command: Command,
    },
    /// A step was answered with a failure (upstream: a reply whose value starts with `Error`).
    Refused(Reply),
    /// The connection closed.
    Closed,
}

/// What the connection tells the layer above. Drain with
/// [`Connection::poll_event`](super::Connection::poll_event).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request in
    /// [`ConnectionConfig::claimed_commands`](super::ConnectionConfig::claimed_commands): answer it
    /// with [`Connection::reply`](super::Connection::reply) and the same counter.
    Request {
        /// Counter to reply with.
        counter: u32,
        /// The command as received.
        command: Command,
        /// The plaintext payload.
        payload: Bytes,
    },
    /// The reply to a request sent with
    /// [`Connection::send_request`](super::Connection::send_request).
    Response {
        /// The request's counter.
        counter: u32,
        /// The request's command.
        command: Command,
        /// The reply. A frame that failed to decrypt arrives as `Reply::Err` with upstream's text
        /// `Could not decrypt message. Check key is correct.`
        reply: Reply,
    },
    /// A request sent with [`Connection::send_request`](super::Connection::send_request) got no
    /// reply within `request_timeout` (reported exactly at its deadline). A reply arriving later is
    /// dropped and counted.
    TimedOut {
        /// The request's counter.
        counter: u32,
        /// The request's command.
        command: Command,
    },
    /// A request sent with [`Connection::send_request`](super::Connection::send_request) was still
    /// pending when the connection closed.
    Aborted {
        /// The request's counter.
        counter: u32,
        /// The request's command.
        command: Command,
    },
    /// The peer opened (or reopened: start again from empty) a file transfer to us.
    FileOpened {
        /// Path as sent (not validated against any directory: the layer above confines it).
        path: Bytes,
    },
    /// The next chunk of a file the peer is sending; append it.
    FileChunk {
        /// Path of the file.
        path: Bytes,
        /// The bytes.
        data: Bytes,
    },
    /// The peer finished a file and its SHA-256 matches.
    FileReceived {
        /// Path of the file.
        path: Bytes,
        /// Total bytes.
        size: u64,
        /// Its SHA-256.
        sha256: [u8; 32],
    },
    /// A file the peer was sending failed (checksum mismatch, too large) or was still open when
    /// the connection closed (`error` is `None` then): discard what was written.
    FileFailed {
        /// Path of the file.
        path: Bytes,
        /// Why, when the peer is at fault.
        error: Option<PeerError>,
    },
    /// A long string from the peer is complete: claim it with
    /// [`Connection::take_string`](super::Connection::take_string).
    StringComplete {
        /// Its id (the decimal the peer will reference).
        id: u32,
    },
    /// A long string nobody claimed (or never completed) was dropped after `string_timeout`.
    StringExpired {
        /// Its id.
        id: u32,
    },
    /// An outgoing file transfer wants its next chunk: call
    /// [`Connection::file_chunk`](super::Connection::file_chunk) with 1 to `max_len` bytes, or
    /// [`Connection::finish_file`](super::Connection::finish_file) at the end of the file.
    FileChunkWanted {
        /// The transfer.
        transfer: TransferId,
        /// Largest chunk accepted (upstream sends full chunks except the last).
        max_len: usize,
    },
    /// An outgoing file transfer finished and the peer confirmed the checksum.
    FileSent {
        /// The transfer.
        transfer: TransferId,
        /// Bytes sent.
        size: u64,
    },
    /// With [`ConnectionConfig::pull_string_pieces`](super::ConnectionConfig::pull_string_pieces):
    /// the next piece of an outgoing long string may go; send it with
    /// [`Connection::send_string_piece`](super::Connection::send_string_piece).
    StringPieceWanted {
        /// The transfer.
        transfer: TransferId,
        /// Bytes of the piece's frame on the wire (header, and the Fernet token with a key).
        frame_len: usize,
    },
    /// An outgoing long string was delivered; reference it by `id` in the next command.
    StringSent {
        /// The transfer.
        transfer: TransferId,
        /// The id the peer gave it.
        id: Bytes,
    },
    /// An outgoing transfer stopped.
    TransferFailed {
        /// The transfer.
        transfer: TransferId,
        /// Why.
        failure: TransferFailure,
    },
    /// The peer hit a bound or the hello gate; it was answered with `err` and the connection goes
    /// on. (A malformed common request is only answered with upstream's error text: upstream
    /// peers send those in normal operation, e.g. `str_upd` for a string that expired.)
    Violation(PeerError),
    /// The connection is closed (by [`Connection::close`](super::Connection::close) when `error` is
    /// `None`). Last event.
    Closed {
        /// Why, when it was not our decision.
        error: Option<ConnectionError>,
    },
}
