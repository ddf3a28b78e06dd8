//! What a [`Node`](super::Node) asks of its adapter: bytes to write, disk work to run,
//! connections to open or close, and events for the operator.
//!
//! The adapter drains [`Node::poll_output`](super::Node::poll_output) after every input until it
//! yields `None`, then arms one timer at [`Node::poll_timeout`](super::Node::poll_timeout)
//! (str0m's run loop). Items come out in the order the node produced them; per peer, transmits
//! must be written in that order, and their bytes reported with
//! [`Node::handle_written`](super::Node::handle_written) once the socket took them.

use bytes::Bytes;

use super::effects::Effect;
use super::events::NodeEvent;
use super::ids::{ApiCallId, EffectId, PeerId};
use crate::dapi::ApiCall;

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
    /// Run this distributed API call (a framework function of the install) and answer with
    /// [`Node::handle_api_done`](super::Node::handle_api_done). The node gives up after
    /// [`ApiCall::timeout`] (answering the request with upstream's 3021) and ignores a late
    /// answer.
    ApiCall {
        /// Hand it back with the answer.
        id: ApiCallId,
        /// The call.
        call: ApiCall,
    },
    /// For the operator.
    Event(NodeEvent),
}
