//! Open TCP connections, per source address and in all: the listener refuses above either limit,
//! and a connection holds its [`AddressSlot`] for as long as it lives and gives it back on drop,
//! whatever path ends it. Shared with the node's handle, which reads the counts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The two bounds of accepted TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Most open at once from one source address.
    pub per_ip: usize,
    /// Most open at once from all addresses together.
    pub total: usize,
}

/// Why an accepted connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    /// Its address already holds `per_ip` connections.
    PerAddress(usize),
    /// The node already holds `total` connections.
    Total(usize),
}

impl std::fmt::Display for SlotRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotRefused::PerAddress(n) => write!(f, "{n} connections already open from it"),
            SlotRefused::Total(n) => {
                write!(f, "{n} cluster connections already open (the node's cap)")
            }
        }
    }
}

/// Open connections per source address and their total, shared by the listener (which refuses
/// above the limits) and the connections (which give their slot back when they end).
#[derive(Debug, Default, Clone)]
pub struct AddressCounts(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    per_ip: BTreeMap<IpAddr, usize>,
    total: usize,
}

impl AddressCounts {
    /// Takes a slot for `ip` unless it or the node already holds its cap.
    pub fn acquire(&self, ip: IpAddr, caps: ConnectionCaps) -> Result<AddressSlot, SlotRefused> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= caps.per_ip {
            return Err(SlotRefused::PerAddress(caps.per_ip));
        }
        if counts.total >= caps.total {
            return Err(SlotRefused::Total(caps.total));
        }
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        counts.total += 1;
        Ok(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Open connections from all addresses.
    pub fn total(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).total
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
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
            counts.total -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: ConnectionCaps = ConnectionCaps {
        per_ip: 2,
        total: 3,
    };

    #[test]
    fn address_slots_count_and_give_back() {
        let counts = AddressCounts::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let a = counts.acquire(ip, CAPS).unwrap();
        let b = counts.acquire(ip, CAPS).unwrap();
        assert_eq!(
            counts.acquire(ip, CAPS).unwrap_err(),
            SlotRefused::PerAddress(2)
        );
        assert_eq!(counts.count(ip), 2);
        drop(a);
        assert_eq!(counts.count(ip), 1);
        drop(b);
        assert_eq!(counts.count(ip), 0);
        let counts = counts.0.lock().unwrap();
        assert!(counts.per_ip.is_empty());
        assert_eq!(counts.total, 0);
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_frees_with_any_slot() {
        let counts = AddressCounts::default();
        let ip = |last: u8| IpAddr::from([10, 0, 0, last]);
        let held: Vec<_> = (1..=3)
            .map(|i| counts.acquire(ip(i), CAPS).unwrap())
            .collect();
        assert_eq!(counts.total(), 3);
        // A fresh address is refused by the total, not by its own count.
        assert_eq!(
            counts.acquire(ip(4), CAPS).unwrap_err(),
            SlotRefused::Total(3)
        );
        drop(held);
        assert_eq!(counts.total(), 0);
        assert!(counts.acquire(ip(4), CAPS).is_ok());
    }
}
