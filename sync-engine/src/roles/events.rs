//! What happened, for the operator's log and for tests ([`NodeEvent`]), and the typed reasons
//! events carry: why a connection closed ([`CloseReason`]), why a handshake failed
//! ([`HandshakeFailure`]), how a lock was released ([`LockRelease`]).

use std::time::Duration;

use wazuh_cluster_protocol::connection::{ConnectionError, PeerError};
use wazuh_cluster_protocol::fernet::FernetError;
use wazuh_cluster_protocol::frame::FrameError;

use super::error::{NodeError, SyncError};
use super::ids::PeerId;
use super::sync_kind::SyncKind;
use crate::integrity::apply::SkipReason;
use crate::integrity::compare::SyncCounts;

/// Why the node closes (or lost) a connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The master refused our `hello` with this text (worker side).
    #[error("hello refused: {0}")]
    HelloRefused(String),
    /// No `echo-c` from the worker for longer than `max_allowed_time_without_keepalive`.
    #[error("no keepalive in time")]
    KeepaliveTimeout,
    /// Another connection claimed this worker's name and this one did not answer the probe in
    /// time (or could not be sent one): the new connection replaced it.
    #[error("replaced by a new connection (no answer to a probe)")]
    Replaced,
    /// The protocol core closed the link (peer fault, keepalive failures, deadline): its error,
    /// or `None` when it closed without one.
    #[error("{}", match .0 { Some(error) => error.to_string(), None => "connection closed".to_owned() })]
    Connection(Option<ConnectionError>),
    /// The adapter reported the connection closed or the dial failed.
    #[error("connection lost")]
    Lost,
    /// The peer queued more input than the node may buffer for it.
    #[error("peer overloaded our buffers")]
    Overloaded,
    /// A local client sent nothing for `local_idle_timeout` while the node owed it nothing.
    #[error("local client idle")]
    Idle,
    /// The local socket was full and this client, silent the longest and owed nothing, gave way
    /// to a new one (or the new one was refused: every client waited for an answer).
    #[error("local socket full")]
    LocalSocketFull,
}

/// Why an incoming connection closed before its worker's `hello` was accepted (master side).
///
/// Upstream logs these as `Error during handshake with incoming connection[: <exc>]`; the texts
/// below are what follows the colon. A refused `hello` is not one of them (it is
/// [`NodeEvent::HelloRefused`], and the connection stays open until the worker closes it).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeFailure {
    /// The peer closed the connection, or the adapter saw it reset (after a refused `hello`, a
    /// port probe, a worker that gave up).
    #[error("connection closed by the peer")]
    PeerClosed,
    /// No successful `hello` within the connection's `hello_timeout` (ours: upstream has no such
    /// deadline and keeps a silent connection forever).
    #[error("no successful hello within {timeout:?}")]
    HelloTimeout {
        /// The bound.
        timeout: Duration,
    },
    /// A frame failed to decrypt: the peer uses another cluster key (upstream 3.9.5's log text).
    #[error("Could not decrypt message. Check key is correct. ({0})")]
    Decrypt(FernetError),
    /// The bytes are not a valid frame (not a Wazuh cluster peer, or above a bound).
    #[error("bad frame: {0}")]
    BadFrame(FrameError),
    /// Another protocol fault (a declared payload that never came, a bound exceeded).
    #[error("{0}")]
    Protocol(PeerError),
    /// It queued more input than the node may buffer for it.
    #[error("peer overloaded our buffers")]
    Overloaded,
    /// The protocol core closed the link for a broken invariant of its own (a bug).
    #[error("{0}")]
    Internal(ConnectionError),
    /// The node closed it for a reason that only concerns registered workers (not expected).
    #[error("closed by the node: {0}")]
    ClosedByNode(CloseReason),
}

impl HandshakeFailure {
    /// The failure behind the close of a link that never passed `hello`.
    pub(crate) fn of(reason: &CloseReason) -> HandshakeFailure {
        match reason {
            CloseReason::Connection(Some(ConnectionError::Peer(error))) => match error {
                PeerError::HelloTimeout { timeout } => {
                    HandshakeFailure::HelloTimeout { timeout: *timeout }
                }
                PeerError::DecryptBeforeHello(error) => HandshakeFailure::Decrypt(error.clone()),
                PeerError::Frame(error) => HandshakeFailure::BadFrame(error.clone()),
                other => HandshakeFailure::Protocol(other.clone()),
            },
            CloseReason::Connection(Some(other)) => HandshakeFailure::Internal(other.clone()),
            CloseReason::Lost => HandshakeFailure::PeerClosed,
            CloseReason::Overloaded => HandshakeFailure::Overloaded,
            other => HandshakeFailure::ClosedByNode(other.clone()),
        }
    }
}

/// How a per-worker synchronisation lock was released (master side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockRelease {
    /// The synchronisation finished (with or without a package for the worker).
    Completed,
    /// It failed: the worker sent `_r`, or `<task> Error`, or a local step failed.
    Failed,
    /// The worker's connection closed.
    ConnectionLost,
    /// `timeout_receiving_file` passed without the worker's file.
    TimedOut,
}

/// Most paths a [`NodeEvent::PartsSkipped`] names (the count says how many there were).
pub const SKIPPED_EXAMPLES: usize = 5;

/// What happened, for the operator's log (and for tests, which assert these exactly).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// Master: a worker passed every `hello` check and is registered.
    WorkerJoined {
        /// Its name.
        name: String,
        /// Its address as the adapter reported it.
        addr: String,
    },
    /// Master: a registered worker is gone.
    WorkerLeft {
        /// Its name.
        name: String,
        /// Why.
        reason: CloseReason,
    },
    /// Master: a `hello` was refused; `reply` is the exact `err` payload sent.
    HelloRefused {
        /// The connection.
        peer: PeerId,
        /// Its address as the adapter reported it.
        addr: String,
        /// The name it asked for (`None`: the `hello` did not parse).
        name: Option<String>,
        /// The refusal text as sent on the wire.
        reply: String,
    },
    /// Master: an incoming connection closed before a `hello` was accepted on it (local clients,
    /// which need none, excepted). Upstream: `Error during handshake with incoming connection`.
    HandshakeFailed {
        /// The connection (already forgotten by the node).
        peer: PeerId,
        /// Its address as the adapter reported it.
        addr: String,
        /// Why.
        reason: HandshakeFailure,
    },
    /// Worker: the master accepted our `hello`.
    ConnectedToMaster {
        /// The connection.
        peer: PeerId,
    },
    /// Worker: the link to the master is gone; a reconnection follows after `connection_retry`.
    DisconnectedFromMaster {
        /// Why.
        reason: CloseReason,
    },
    /// A synchronisation started (worker: its package is built; master: the task was created).
    SyncStarted {
        /// Which one.
        kind: SyncKind,
        /// The worker concerned (this node's name on a worker).
        worker: String,
    },
    /// A synchronisation finished.
    SyncFinished {
        /// Which one.
        kind: SyncKind,
        /// The worker concerned.
        worker: String,
        /// Integrity: the comparison's counts (master side) or what the applied package held
        /// (worker side); other kinds: `missing` = files/parts sent or written, rest 0.
        counts: SyncCounts,
    },
    /// A synchronisation failed; it is retried at the next interval.
    SyncFailed {
        /// Which one.
        kind: SyncKind,
        /// The worker concerned.
        worker: String,
        /// What went wrong.
        error: SyncError,
    },
    /// Master: a per-worker lock was released.
    LockReleased {
        /// The worker.
        worker: String,
        /// Which lock.
        kind: SyncKind,
        /// How.
        cause: LockRelease,
    },
    /// Worker: the master's new `etc/client.keys` dropped these agents (ids), and their files
    /// were removed before it was written (3.9.5's `_check_removed_agents`).
    AgentsRemoved {
        /// The dropped agents' ids, in client.keys order.
        agents: Vec<String>,
        /// Files and directories removed for them.
        files: usize,
    },
    /// Master: its own integrity metadata was recalculated.
    IntegrityRecalculated {
        /// Files in the document.
        files: usize,
        /// Files hashed in this pass (the rest reused from the cache).
        hashed: u64,
    },
    /// Master: parts of a worker's package were not written, for one reason (one event per
    /// reason met in a package; upstream logs these: `client.keys` as a warning, unknown agents
    /// and old files at debug, a bad time as an error).
    PartsSkipped {
        /// The worker that sent them.
        worker: String,
        /// Extra-valid or agent-info.
        kind: SyncKind,
        /// Why.
        reason: SkipReason,
        /// How many.
        count: usize,
        /// The first few, by target path (at most [`SKIPPED_EXAMPLES`]).
        examples: Vec<String>,
    },
    /// A file a peer sent whole into its directory was removed: no task claimed it within
    /// `unclaimed_file_timeout` of its `file_end`.
    UnclaimedFileRemoved {
        /// The connection that sent it.
        peer: PeerId,
        /// Where it was.
        path: String,
        /// The bound it outlived.
        after: Duration,
    },
    /// Something failed that is not a synchronisation (a disk effect, a peer fault).
    Error {
        /// The peer concerned, if any.
        peer: Option<PeerId>,
        /// What.
        error: NodeError,
    },
}
