//! The bounds a running node's adapter keeps around its `Node`: those only the socket side can
//! keep (connections per address, local clients, write backlog, dial and shutdown times).

use std::time::Duration;

/// Bounds the adapter keeps (the node keeps its own, in
/// [`NodeConfig::limits`](wazuh_cluster_sync::roles::NodeConfig::limits)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterLimits {
    /// Most TCP connections open at once from one source address (10; `demo` raises it, its
    /// workers all come from 127.0.0.1).
    pub max_connections_per_ip: usize,
    /// Most TCP connections open at once from all addresses together (512): the cluster links
    /// (workers and anyone trying to be one) the master holds. The next one is closed as soon
    /// as it is accepted, whatever its address. Local clients have their own cap,
    /// [`AdapterLimits::max_local_clients`].
    pub max_connections: usize,
    /// Bytes asked of the socket per read.
    pub read_buffer: usize,
    /// Bytes queued for one peer and not yet written past which the peer is closed (it does not
    /// read). The protocol paces files chunk by chunk, so a reading peer stays far below it.
    pub max_write_backlog: usize,
    /// How long a dial may take before it counts as failed (the node then retries after its
    /// `connection_retry`).
    pub dial_timeout: Duration,
    /// How long a closing connection may take to flush, and a stopping node's effect thread to
    /// finish its effect in flight, before they are cut.
    pub shutdown_grace: Duration,
    /// Most local clients connected at once on the Unix socket: the descriptors it may hold. Keep
    /// it above the node's `max_local_clients` (64), at which the node makes a new client take
    /// the place of an idle one, so idle clients alone never reach this bound.
    pub max_local_clients: usize,
    /// Messages from the readers waiting for the node task (all peers together): when full,
    /// readers wait, which is the second line of backpressure.
    pub input_queue: usize,
}

/// Descriptors the process keeps for itself besides its connections and local clients: the
/// listeners, the runtime's epoll and wakers, standard streams, the log file, the effect thread's
/// own disk work (scans, package builds, chunk reads: opened and closed within one effect; and
/// at most `MAX_HELD_DESCRIPTORS`, 32, kept open for large package members from one effect to
/// the next) and the distributed API executor's pipes.
pub const RESERVED_DESCRIPTORS: u64 = 128;

impl AdapterLimits {
    /// The descriptors left for files being received under a descriptor limit of `nofile`, once
    /// every connection (`max_connections` on a listening node, one on a worker), every local
    /// client and [`RESERVED_DESCRIPTORS`] have theirs: the node's
    /// [`max_transfer_descriptors`](wazuh_cluster_sync::roles::NodeLimits::max_transfer_descriptors)
    /// is kept at or below it, so accepts and the node's own syncs always find a descriptor.
    pub fn transfer_descriptors(&self, nofile: u64, listens: bool) -> usize {
        let connections = if listens { self.max_connections } else { 1 };
        let kept = connections as u64 + self.max_local_clients as u64 + RESERVED_DESCRIPTORS;
        usize::try_from(nofile.saturating_sub(kept)).unwrap_or(usize::MAX)
    }
}

impl Default for AdapterLimits {
    fn default() -> Self {
        AdapterLimits {
            max_connections_per_ip: 10,
            max_connections: 512,
            read_buffer: 64 << 10,
            max_write_backlog: 64 << 20,
            dial_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            input_queue: 256,
            max_local_clients: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_get_what_connections_local_clients_and_the_reserve_leave() {
        let limits = AdapterLimits::default();
        // The common soft default: 1024 - 512 - 128 - 128.
        assert_eq!(limits.transfer_descriptors(1024, true), 256);
        // A worker holds one link.
        assert_eq!(limits.transfer_descriptors(1024, false), 767);
        assert_eq!(limits.transfer_descriptors(500, true), 0);
    }
}
