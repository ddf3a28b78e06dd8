//! The peer's requests that surfaced as [`Event::Request`](super::Event::Request) and still await
//! the layer above's [`reply`](super::Connection::reply).
//!
//! Why tracked: without it `reply` would frame any counter, so a caller bug (replying twice, or to
//! a counter the peer never used) would put an unsolicited frame on the wire, which the peer takes
//! for a request of ours (upstream's classification is by pending counter only). Why bounded: a
//! peer that pipelines claimed requests faster than the layer above answers them (or a layer above
//! that forgets some) must not grow this table without limit. Counted per counter, because nothing
//! stops a peer from reusing a counter while its first request is still unanswered.

use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct UnansweredRequests {
    /// Counter → requests with that counter awaiting a reply (at least 1).
    counters: BTreeMap<u32, u32>,
    len: usize,
    limit: usize,
}

impl UnansweredRequests {
    pub(crate) fn new(limit: usize) -> Self {
        UnansweredRequests {
            counters: BTreeMap::new(),
            len: 0,
            limit,
        }
    }

    /// Records a request of the peer; false (nothing recorded) when the table is full.
    pub(crate) fn add(&mut self, counter: u32) -> bool {
        if self.len >= self.limit {
            return false;
        }
        *self.counters.entry(counter).or_insert(0) += 1;
        self.len += 1;
        true
    }

    pub(crate) fn contains(&self, counter: u32) -> bool {
        self.counters.contains_key(&counter)
    }

    /// Marks one request with this counter answered.
    pub(crate) fn remove(&mut self, counter: u32) {
        if let Some(count) = self.counters.get_mut(&counter) {
            *count -= 1;
            if *count == 0 {
                self.counters.remove(&counter);
            }
            self.len -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.counters.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counted_per_counter() {
        let mut table = UnansweredRequests::new(3);
        assert!(table.add(7));
        assert!(table.add(7), "a reused counter is counted twice");
        assert!(table.add(9));
        assert!(!table.add(10), "full");
        assert_eq!(table.len(), 3);
        table.remove(7);
        assert!(table.contains(7), "one request with counter 7 still awaits");
        table.remove(7);
        assert!(!table.contains(7));
        table.remove(7);
        assert_eq!(table.len(), 1, "removing an absent counter changes nothing");
        assert!(table.add(10));
        table.clear();
        assert_eq!(table.len(), 0);
        assert!(!table.contains(9));
    }
}
