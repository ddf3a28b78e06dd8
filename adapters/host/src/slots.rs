//! The bounded pools connections draw from: open TCP connections per source address (the
//! listener refuses above the limit) and local clients (a semaphore permit each). A connection
//! holds its [`Slot`] for as long as it lives and gives it back on drop, whatever path ends it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per source address, shared by the listener (which refuses above the limit)
/// and the connections (which give their slot back when they end).
#[derive(Debug, Default, Clone)]
pub(crate) struct AddressCounts(Arc<Mutex<BTreeMap<IpAddr, usize>>>);

impl AddressCounts {
    /// Takes a slot for `ip` unless it already holds `limit`.
    pub(crate) fn acquire(&self, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub(crate) fn count(&self, ip: IpAddr) -> usize {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's place in [`AddressCounts`]; given back on drop, whatever path ends it.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    counts: AddressCounts,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_count_and_give_back() {
        let counts = AddressCounts::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = counts.acquire(ip, 2).unwrap();
        let b = counts.acquire(ip, 2).unwrap();
        assert!(counts.acquire(ip, 2).is_none());
        assert_eq!(counts.count(ip), 2);
        drop(a);
        assert_eq!(counts.count(ip), 1);
        drop(b);
        assert_eq!(counts.count(ip), 0);
        assert!(counts.0.lock().unwrap().is_empty());
    }
}
