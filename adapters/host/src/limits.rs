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

impl Default for AdapterLimits {
    fn default() -> Self {
        AdapterLimits {
            max_connections_per_ip: 10,
            read_buffer: 64 << 10,
            max_write_backlog: 64 << 20,
            dial_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            input_queue: 256,
            max_local_clients: 128,
        }
    }
}
