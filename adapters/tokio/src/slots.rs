//! What an open connection holds of a bounded pool: its place in the per-address count
//! and in all ([`wazuh_cluster_host::slots`]) or a local client's permit. A connection holds its [`Slot`]
//! for as long as it lives and gives it back on drop, whatever path ends it.

pub(crate) use wazuh_cluster_host::slots::{
    AddressCounts, AddressSlot, ConnectionCaps, SlotRefused,
};

/// What an open connection holds of a bounded pool; given back when the connection ends.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A TCP connection's place in its address's count (held for its `Drop`).
    Address { _slot: AddressSlot },
    /// A local client's permit (held for its `Drop`).
    Local {
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
}
