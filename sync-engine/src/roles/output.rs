//! What a [`Node`](super::Node) asks of its adapter: bytes to write, disk work to run,
//! connections to open or close, and events for the operator.
//!
//! The adapter drains [`Node::poll_output`](super::Node::poll_output) after every input until it
//! yields `None`, then arms one timer at [`Node::poll_timeout`](super::Node::poll_timeout)
//! (str0m's run loop). Items come out in the order the node produced them; per peer, transmits
//! must be written in that order, and their bytes reported with
//! [`Node::handle_written`](super::Node::handle_written) once the socket took them.

use std::time::Duration;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{ConnectionError, PeerError};
use wazuh_cluster_protocol::fernet::FernetError;
use wazuh_cluster_protocol::frame::FrameError;

use super::effects::Effect;
use crate::integrity::compare::SyncCounts;

/// One connection of a node, as the adapter and the node both name it.
///
/// Incoming connections get their ids from the adapter (any value below [`PeerId::OUTGOING`]);
/// outgoing ones are allocated by the node itself in `[PeerId::OUTGOING, u64::MAX]` and announced
/// with [`Output::Connect`], so the two id spaces never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl PeerId {
    /// First id of the node's own (outgoing) id space.
    pub const OUTGOING: u64 = 1 << 63;
}

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The peer dialled us (a worker connecting to this master).
    Incoming,
    /// We dialled the peer after an [`Output::Connect`] (this worker connecting to its master).
    Outgoing,
    /// A local client on the node's Unix socket (`queue/cluster/c-internal.sock`): plaintext, no
    /// `hello` (upstream's local server). A master answers its `get_nodes` and `get_health`; a
    /// worker answers `ok` `Sent request to master node`, forwards them to its master and sends
    /// the answer as a `control_res` request (`err` with upstream's 3023 text when it has no
    /// master link).
    Local,
}

/// Identifies one [`Effect`]; the adapter hands it back with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EffectId(pub u64);

/// The three worker → master synchronisations of profile 3.9 and their command families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKind {
    /// Integrity (`sync_i_w_m*`, answered by `sync_m_c*`).
    Integrity,
    /// Extra-valid agent-groups sent back after an integrity round (`sync_e_w_m*`).
    ExtraValid,
    /// Agent-info (`sync_a_w_m*`, every `sync_files`).
    AgentInfo,
}

impl SyncKind {
    /// All kinds, in lock order.
    pub const ALL: [SyncKind; 3] = [
        SyncKind::Integrity,
        SyncKind::ExtraValid,
        SyncKind::AgentInfo,
    ];

    /// The task command (`sync_i_w_m`, `sync_e_w_m`, `sync_a_w_m`); `_p`, `_e` and `_r` are
    /// appended to it for the permission, end and error commands.
    pub fn command(self) -> &'static str {
        match self {
            SyncKind::Integrity => "sync_i_w_m",
            SyncKind::ExtraValid => "sync_e_w_m",
            SyncKind::AgentInfo => "sync_a_w_m",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            SyncKind::Integrity => 0,
            SyncKind::ExtraValid => 1,
            SyncKind::AgentInfo => 2,
        }
    }
}

/// Why the node closes (or lost) a connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The master refused our `hello` with this text (worker side).
    HelloRefused(String),
    /// No `echo-c` from the worker for longer than `max_allowed_time_without_keepalive`.
    KeepaliveTimeout,
    /// A new connection of the same worker replaced this one.
    Replaced,
    /// The protocol core closed the link (peer fault, keepalive failures, deadline); the text is
    /// the core's error, if any.
    Connection(Option<String>),
    /// The adapter reported the connection closed or the dial failed.
    Lost,
    /// The peer queued more input than the node may buffer for it.
    Overloaded,
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
    /// Anything else (the text says what; an internal error of the core is a bug).
    #[error("{0}")]
    Other(String),
}

impl HandshakeFailure {
    /// The failure behind a close: `error` is the protocol core's, when the core closed the link.
    pub(crate) fn of(reason: &CloseReason, error: Option<ConnectionError>) -> HandshakeFailure {
        match (reason, error) {
            (_, Some(ConnectionError::Peer(error))) => match error {
                PeerError::HelloTimeout { timeout } => HandshakeFailure::HelloTimeout { timeout },
                PeerError::DecryptBeforeHello(error) => HandshakeFailure::Decrypt(error),
                PeerError::Frame(error) => HandshakeFailure::BadFrame(error),
                other => HandshakeFailure::Protocol(other),
            },
            (_, Some(other)) => HandshakeFailure::Other(other.to_string()),
            (CloseReason::Lost, None) => HandshakeFailure::PeerClosed,
            (CloseReason::Overloaded, None) => HandshakeFailure::Overloaded,
            // Reasons that only close a registered worker or our own link: not expected here.
            (other, None) => HandshakeFailure::Other(format!("closed by the node: {other:?}")),
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
        error: String,
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
    /// Something failed that is not a synchronisation (a disk effect, a peer fault).
    Error {
        /// The peer concerned, if any.
        peer: Option<PeerId>,
        /// What.
        message: String,
    },
}

/// One item of [`Node::poll_output`](super::Node::poll_output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the peer, after every earlier transmit of that peer, then report
    /// their length with [`Node::handle_written`](super::Node::handle_written) once the socket
    /// took them (the node counts them as queued for the peer until then).
    Transmit {
        /// The connection.
        peer: PeerId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Run this disk job (e.g. with [`EffectExecutor`](super::EffectExecutor)) and answer with
    /// [`Node::handle_effect_done`](super::Node::handle_effect_done).
    Effect {
        /// Hand it back with the result.
        id: EffectId,
        /// The job.
        effect: Effect,
    },
    /// Open a TCP connection to `addr`; answer with
    /// [`Node::handle_connected`](super::Node::handle_connected) (`Origin::Outgoing`) or
    /// [`Node::handle_closed`](super::Node::handle_closed) if the dial fails.
    Connect {
        /// The id the node gave this connection.
        peer: PeerId,
        /// `host:port`.
        addr: String,
    },
    /// Close the connection after writing the transmits already yielded for it (or abandon the
    /// dial, for a [`Output::Connect`] not answered in time). The node has already forgotten it:
    /// do not call `handle_closed` for it.
    Close {
        /// The connection.
        peer: PeerId,
    },
    /// For the operator.
    Event(NodeEvent),
}

#[cfg(test)]
mod tests {
    use super::SyncKind;

    #[test]
    fn kinds_map_to_upstream_commands_and_distinct_locks() {
        let commands: Vec<&str> = SyncKind::ALL.iter().map(|k| k.command()).collect();
        assert_eq!(commands, ["sync_i_w_m", "sync_e_w_m", "sync_a_w_m"]);
        let locks: Vec<usize> = SyncKind::ALL.iter().map(|k| k.index()).collect();
        assert_eq!(locks, [0, 1, 2]);
    }
}
