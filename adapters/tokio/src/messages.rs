//! What the tasks of a running node send each other. The node task owns the `Node`; everything
//! else reaches it as a [`Msg`] (socket readers on the bounded data channel, every other task on
//! the control channel), and it drives each connection's writer with [`WriteMsg`]s.
//!
//! ```text
//!   reader tasks ──Data/Eof──────────────►┐
//!   writer tasks ──Written/WriteFailed───►│
//!   listeners ─────Accepted/AcceptedLocal►├──► node task ──WriteMsg──► writer tasks
//!   dialer tasks ──Dialed────────────────►│
//!   effect thread ─EffectDone────────────►│
//!   RunningNode ───Inspect───────────────►┘
//! ```

use std::time::Instant;

use bytes::Bytes;
use tokio::net::{TcpStream, UnixStream};
use wazuh_cluster_sync::roles::{ApiCallId, EffectId, EffectResult, Node, PeerId};

use crate::slots::AddressSlot;

/// A closure run on the node task with the node and the current time.
pub(crate) type Inspection = Box<dyn FnOnce(&Node, Instant) + Send>;

/// Everything that reaches the node task.
pub(crate) enum Msg {
    /// Bytes read from a peer.
    Data(PeerId, Bytes),
    /// The peer's reader saw the end of the stream or an error.
    Eof(PeerId),
    /// The peer's writer flushed this many bytes to its socket.
    Written(PeerId, usize),
    /// Writing to the peer failed.
    WriteFailed(PeerId),
    /// The listener accepted a TCP connection (remote `ip:port`, its per-address slot).
    Accepted(TcpStream, String, AddressSlot),
    /// The local socket accepted a client (its permit).
    AcceptedLocal(UnixStream, tokio::sync::OwnedSemaphorePermit),
    /// An outgoing connection the node asked for is open, or failed (the reason).
    Dialed(PeerId, Result<TcpStream, String>),
    /// The effect thread ran an effect.
    EffectDone(EffectId, EffectResult),
    /// A distributed API call ran; its answer.
    ApiDone(ApiCallId, String),
    /// Run this on the node (getters: workers, health, metadata).
    Inspect(Inspection),
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Msg::Data(..) => "Data",
            Msg::Eof(..) => "Eof",
            Msg::Written(..) => "Written",
            Msg::WriteFailed(..) => "WriteFailed",
            Msg::Accepted(..) => "Accepted",
            Msg::AcceptedLocal(..) => "AcceptedLocal",
            Msg::Dialed(..) => "Dialed",
            Msg::EffectDone(..) => "EffectDone",
            Msg::ApiDone(..) => "ApiDone",
            Msg::Inspect(..) => "Inspect",
        };
        f.write_str(kind)
    }
}

/// What the node task tells a connection's writer.
#[derive(Debug)]
pub(crate) enum WriteMsg {
    /// Write these bytes (after every earlier one).
    Data(Bytes),
    /// Flush what is queued, then shut the connection down.
    Close,
}
