//! The table of our requests awaiting a reply, keyed by counter, each with a deadline.
//!
//! Why it is more than a map: upstream 3.9.5 never removes an entry (its `box` grows forever, and a
//! peer request that reuses an old counter is taken for a response). Here the table is bounded
//! (a command refuses a request when the table is full), every entry leaves it exactly once (reply,
//! timeout or close), and the counter of a timed-out request is remembered for a while as a
//! tombstone so that its late reply is dropped and counted rather than taken for a request of the
//! peer. Tombstones are bounded too (same limit, oldest forgotten first).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::frame::Command;

use super::error::PendingTableFull;

/// Who waits for a reply: the layer above, or a sub-protocol of the connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A request sent with `send_request`: its outcome becomes an event.
    User,
    /// The client-side keepalive (`echo-c`).
    Keepalive,
    /// A step of the outgoing file transfer with this id.
    File(u64),
    /// A step of the outgoing string transfer with this id.
    Str(u64),
}

/// One request awaiting its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) command: Command,
    pub(crate) deadline: Instant,
    pub(crate) owner: Owner,
}

#[derive(Debug)]
pub(crate) struct PendingTable {
    entries: BTreeMap<u32, Pending>,
    by_deadline: BTreeSet<(Instant, u32)>,
    limit: usize,
    /// Counters of timed-out requests → when to forget them.
    tombstones: BTreeMap<u32, Instant>,
    tombstones_by_time: BTreeSet<(Instant, u32)>,
    late_replies: u64,
}

impl PendingTable {
    pub(crate) fn new(limit: usize) -> Self {
        PendingTable {
            entries: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
            limit,
            tombstones: BTreeMap::new(),
            tombstones_by_time: BTreeSet::new(),
            late_replies: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Checks there is room for one more entry (before anything is sent).
    pub(crate) fn check_room(&self) -> Result<(), PendingTableFull> {
        if self.entries.len() >= self.limit {
            Err(PendingTableFull { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Adds an entry; the caller checked [`check_room`](Self::check_room).
    pub(crate) fn insert(&mut self, counter: u32, pending: Pending) {
        self.forget_tombstone(counter);
        if let Some(old) = self.entries.insert(counter, pending.clone()) {
            // Only possible after 2^32 requests with one still pending: the old waiter can never
            // get its reply told apart, so it is replaced (the deadline index follows).
            self.by_deadline.remove(&(old.deadline, counter));
        }
        self.by_deadline.insert((pending.deadline, counter));
    }

    pub(crate) fn contains(&self, counter: u32) -> bool {
        self.entries.contains_key(&counter)
    }

    /// Removes the entry a reply resolves.
    pub(crate) fn take(&mut self, counter: u32) -> Option<Pending> {
        let pending = self.entries.remove(&counter)?;
        self.by_deadline.remove(&(pending.deadline, counter));
        Some(pending)
    }

    /// The earliest deadline of a pending request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(deadline, _)| deadline)
    }

    /// Removes and returns one request whose deadline is at or before `now` (earliest first),
    /// leaving a tombstone for its counter until `now + late_window`.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        late_window: Duration,
    ) -> Option<(u32, Pending)> {
        let &(deadline, counter) = self.by_deadline.first()?;
        if deadline > now {
            return None;
        }
        self.by_deadline.pop_first();
        let pending = self.entries.remove(&counter)?;
        self.add_tombstone(counter, now + late_window);
        Some((counter, pending))
    }

    /// True (and counted) when `counter` is the counter of a request that already timed out: the
    /// message is a late reply and must be dropped.
    pub(crate) fn take_late_reply(&mut self, counter: u32, now: Instant) -> bool {
        self.prune_tombstones(now);
        if self.forget_tombstone(counter) {
            self.late_replies += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn late_replies(&self) -> u64 {
        self.late_replies
    }

    #[cfg(test)]
    pub(crate) fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Empties the table (connection closed), returning the entries in counter order.
    pub(crate) fn drain(&mut self) -> Vec<(u32, Pending)> {
        self.by_deadline.clear();
        self.tombstones.clear();
        self.tombstones_by_time.clear();
        std::mem::take(&mut self.entries).into_iter().collect()
    }

    fn add_tombstone(&mut self, counter: u32, forget_at: Instant) {
        self.forget_tombstone(counter);
        while self.tombstones.len() >= self.limit.max(1) {
            let Some((_, oldest)) = self.tombstones_by_time.pop_first() else {
                break;
            };
            self.tombstones.remove(&oldest);
        }
        self.tombstones.insert(counter, forget_at);
        self.tombstones_by_time.insert((forget_at, counter));
    }

    fn forget_tombstone(&mut self, counter: u32) -> bool {
        match self.tombstones.remove(&counter) {
            Some(at) => {
                self.tombstones_by_time.remove(&(at, counter));
                true
            }
            None => false,
        }
    }

    fn prune_tombstones(&mut self, now: Instant) {
        while let Some(&(at, counter)) = self.tombstones_by_time.first() {
            if at > now {
                break;
            }
            self.tombstones_by_time.pop_first();
            self.tombstones.remove(&counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(deadline: Instant) -> Pending {
        Pending {
            command: Command::ECHO,
            deadline,
            owner: Owner::User,
        }
    }

    #[test]
    fn expiry_is_at_the_deadline_not_before_and_leaves_a_tombstone() {
        let t0 = super::super::test_origin();
        let window = Duration::from_secs(5);
        let mut table = PendingTable::new(2);
        table.insert(7, entry(t0 + Duration::from_secs(20)));
        table.insert(9, entry(t0 + Duration::from_secs(10)));
        assert_eq!(table.check_room(), Err(PendingTableFull { limit: 2 }));
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let just_before = t0 + Duration::from_secs(10) - Duration::from_nanos(1);
        assert_eq!(table.pop_expired(just_before, window), None);
        let (counter, _) = table
            .pop_expired(t0 + Duration::from_secs(10), window)
            .unwrap();
        assert_eq!(counter, 9);
        assert_eq!(table.len(), 1);
        assert!(table.take_late_reply(9, t0 + Duration::from_secs(11)));
        assert!(!table.take_late_reply(9, t0 + Duration::from_secs(11)));
        assert_eq!(table.late_replies(), 1);
        assert_eq!(
            table.take(7).map(|p| p.deadline),
            Some(t0 + Duration::from_secs(20))
        );
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn tombstones_are_bounded_and_forgotten_after_the_window() {
        let t0 = super::super::test_origin();
        let window = Duration::from_secs(5);
        let mut table = PendingTable::new(2);
        for counter in 0..5u32 {
            table.insert(counter, entry(t0));
            assert!(table.pop_expired(t0, window).is_some());
        }
        assert_eq!(table.tombstones(), 2);
        assert!(
            !table.take_late_reply(0, t0),
            "oldest tombstones are evicted first"
        );
        assert!(
            !table.take_late_reply(4, t0 + window),
            "forgotten at the end of the window"
        );
        assert_eq!(table.tombstones(), 0);
    }
}
