//! Deadlines kept in order, one per key: the earliest in O(1), the due ones without looking at the
//! rest, a change in O(log n).
//!
//! Why: a master with 1,000 workers used to find its next timeout by asking every link and every
//! lock on every event (a scan per event, so a run cost the square of the workers); profiled at
//! 1,000 workers, those scans took over half the time. The owner of a deadline tells this index
//! whenever the deadline changes, and asks it instead of scanning.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    at: BTreeMap<K, Instant>,
    order: BTreeSet<(Instant, K)>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            at: BTreeMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    /// `key`'s deadline is now `deadline` (`None`: it has none).
    pub(crate) fn set(&mut self, key: K, deadline: Option<Instant>) {
        let old = match deadline {
            Some(at) => self.at.insert(key, at),
            None => self.at.remove(&key),
        };
        if old == deadline {
            return;
        }
        if let Some(old) = old {
            self.order.remove(&(old, key));
        }
        if let Some(at) = deadline {
            self.order.insert((at, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.order.first().map(|&(at, _)| at)
    }

    /// The keys whose deadline is at or before `now`, earliest first.
    pub(crate) fn due(&self, now: Instant) -> impl Iterator<Item = K> + '_ {
        self.order
            .iter()
            .take_while(move |&&(at, _)| at <= now)
            .map(|&(_, key)| key)
    }

    /// Every key with a deadline, in key order (for the owners' consistency checks).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, Instant)> + '_ {
        self.at.iter().map(|(&key, &at)| (key, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        /// After any sequence of changes, the index answers what a scan of the deadlines would.
        #[test]
        fn the_index_answers_what_a_scan_would(
            changes in prop::collection::vec((0u8..16, prop::option::of(0u64..50)), 0..200),
            now in 0u64..50,
        ) {
            let origin = wazuh_cluster_testkit::origin();
            let mut index = Deadlines::default();
            let mut model: BTreeMap<u8, Instant> = BTreeMap::new();
            for (key, deadline) in changes {
                let deadline = deadline.map(|s| origin + Duration::from_secs(s));
                index.set(key, deadline);
                match deadline {
                    Some(at) => model.insert(key, at),
                    None => model.remove(&key),
                };
                prop_assert_eq!(index.first(), model.values().min().copied());
                prop_assert_eq!(index.order.len(), model.len());
            }
            let now = origin + Duration::from_secs(now);
            let mut due: Vec<u8> = index.due(now).collect();
            due.sort_unstable();
            let expected: Vec<u8> = model.iter().filter(|(_, at)| **at <= now).map(|(k, _)| *k).collect();
            prop_assert_eq!(due, expected);
            prop_assert!(index.iter().eq(model.iter().map(|(k, at)| (*k, *at))));
        }
    }
}
