//! One open connection as the shell holds it: the protocol core, the bytes yielded and not yet
//! written, its disk queue and its transfers. Role state is not here: each role keeps its own
//! session per peer.

use std::collections::VecDeque;
use std::time::Instant;

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
    /// Bytes yielded as transmits since the link opened.
    pub(super) yielded: u64,
    /// Of those, bytes reported written.
    pub(super) written: u64,
    /// Output-gate charges of its chunk reads under way.
    pub(super) reading: u64,
    /// Output-gate charge of the chunk one of its files sealed ahead (at most one per link),
    /// not yet in the connection.
    pub(super) sealed: u64,
    /// Its pieces yielded and not yet written whole: where each ends in `yielded`, and its
    /// charge on the output gate.
    pub(super) pieces: VecDeque<(u64, u64)>,
    /// While `pieces` is not empty: when its output last moved (the first piece yielded, or a
    /// write reported); past `output_stall_timeout` the link is closed as not reading.
    pub(super) output_moved: Instant,
    pub(super) disk: DiskQueue,
    pub(super) transfers: Transfers,
}
