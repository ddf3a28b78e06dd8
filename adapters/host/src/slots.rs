//! Open TCP connections per source address: the listener refuses above the limit, and a
//! connection holds its [`AddressSlot`] for as long as it lives and gives it back on drop,
//! whatever path ends it. Shared with the node's handle, which reads the counts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per source address, shared by the listener (which refuses above the limit)
/// and the connections (which give their slot back when they end).
#[derive(Debug, Default, Clone)]
pub struct AddressCounts(Arc<Mutex<BTreeMap<IpAddr, usize>>>);

impl AddressCounts {
    /// Takes a slot for `ip` unless it already holds `limit`.
    pub fn acquire(&self, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
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
    pub fn count(&self, ip: IpAddr) -> usize {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's place in [`AddressCounts`]; given back on drop, whatever path ends it.
#[derive(Debug)]
pub struct AddressSlot {
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
