//! One open connection as the shell holds it: the protocol core, the bytes yielded and not yet
//! written, its disk queue and its transfers. Role state is not here: each role keeps its own
//! session per peer.

use wazuh_cluster_protocol::connection::Connection;

use super::disk::DiskQueue;
use super::transfers::Transfers;

/// One connection.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) conn: Connection,
    /// Tells a reused peer id apart from the connection it replaced.
    pub(super) seq: u64,
    /// The remote address as the adapter reported it.
    pub(super) addr: String,
    /// Bytes yielded as transmits and not yet reported written.
    pub(super) queued: usize,
    pub(super) disk: DiskQueue,
    pub(super) transfers: Transfers,
}
