//! The shell's open links, and what the node-wide bookkeeping counts of each, kept current
//! instead of summed over every link on every event.
//!
//! The memory budget counts each link's held input and unwritten output, and the node's timer
//! is the earliest deadline of any link. Both used to be recomputed from every link on every
//! event (and on every piece admitted at the output gate): with 1,000 workers a master spent
//! most of its time in those scans. Here each link is recounted only when it may have changed:
//! every mutable access marks it, and [`Links::refresh`] recounts the marked links and updates
//! the running totals ([`LinkTally`]) and the deadline index ([`Deadlines`]) by the difference.
//! The shell refreshes before it reads either, so what it reads is what a full recount would
//! give; debug builds check exactly that on every refresh.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::budget::LinkMemory;
use super::peer::Peer;
use crate::roles::deadlines::Deadlines;
use crate::roles::ids::PeerId;

/// Running totals of what the links are counted for in the memory budget.
#[derive(Debug, Default)]
pub(super) struct LinkTally {
    counted: BTreeMap<PeerId, LinkMemory>,
    input: u64,
    output: u64,
}

impl LinkTally {
    /// `peer` now holds `memory` (`None`: it is gone).
    pub(super) fn set(&mut self, peer: PeerId, memory: Option<LinkMemory>) {
        let old = match memory {
            Some(memory) => self.counted.insert(peer, memory),
            None => self.counted.remove(&peer),
        };
        if let Some(old) = old {
            self.input -= old.input();
            self.output -= old.output;
        }
        if let Some(new) = memory {
            self.input += new.input();
            self.output += new.output;
        }
    }

    /// The peers' input and the output not yet written, every link together.
    pub(super) fn totals(&self) -> (u64, u64) {
        (self.input, self.output)
    }
}

/// The open links. See the [module documentation](self).
#[derive(Debug)]
pub(super) struct Links {
    map: BTreeMap<PeerId, Peer>,
    /// Links that may have changed since they were last counted.
    dirty: BTreeSet<PeerId>,
    memory: LinkTally,
    deadlines: Deadlines<PeerId>,
    /// Links whose connection holds events or transmits nobody took yet: a timeout visits them
    /// as it visits the links whose deadline passed (see [`Links::due`]).
    unpumped: BTreeSet<PeerId>,
    /// `unclaimed_file_timeout` and `output_stall_timeout`: parts of a link's deadline.
    unclaimed: Duration,
    stall: Duration,
}

impl Links {
    pub(super) fn new(unclaimed: Duration, stall: Duration) -> Links {
        Links {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
            memory: LinkTally::default(),
            deadlines: Deadlines::default(),
            unpumped: BTreeSet::new(),
            unclaimed,
            stall,
        }
    }

    pub(super) fn get(&self, peer: &PeerId) -> Option<&Peer> {
        self.map.get(peer)
    }

    /// `peer`'s link, to change: it is recounted at the next [`Links::refresh`].
    pub(super) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Peer> {
        let p = self.map.get_mut(peer)?;
        self.dirty.insert(*peer);
        Some(p)
    }

    pub(super) fn insert(&mut self, peer: PeerId, link: Peer) {
        self.dirty.insert(peer);
        self.map.insert(peer, link);
    }

    /// Takes `peer`'s link out: it counts for nothing any more.
    pub(super) fn remove(&mut self, peer: &PeerId) -> Option<Peer> {
        let p = self.map.remove(peer)?;
        self.dirty.remove(peer);
        self.unpumped.remove(peer);
        self.memory.set(*peer, None);
        self.deadlines.set(*peer, None);
        Some(p)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &PeerId> {
        self.map.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Peer> {
        self.map.values()
    }

    /// Changes every link with `change` (each is recounted).
    pub(super) fn change_all(&mut self, mut change: impl FnMut(&mut Peer)) {
        for (peer, p) in &mut self.map {
            self.dirty.insert(*peer);
            change(p);
        }
    }

    /// Recounts the links changed since the last refresh.
    pub(super) fn refresh(&mut self) {
        while let Some(peer) = self.dirty.pop_first() {
            let Some(p) = self.map.get(&peer) else {
                continue;
            };
            self.memory.set(peer, Some(link_memory(p)));
            self.deadlines
                .set(peer, deadline(p, self.unclaimed, self.stall));
            if p.conn.has_events() || p.conn.queued_transmit_bytes() > 0 {
                self.unpumped.insert(peer);
            } else {
                self.unpumped.remove(&peer);
            }
        }
        #[cfg(debug_assertions)]
        self.check();
    }

    /// The peers' input and the output not yet written, every link together (as of the last
    /// [`Links::refresh`]).
    pub(super) fn memory(&self) -> (u64, u64) {
        debug_assert!(self.dirty.is_empty(), "read before a refresh");
        self.memory.totals()
    }

    /// The earliest deadline of any link (as of the last [`Links::refresh`]).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        debug_assert!(self.dirty.is_empty(), "read before a refresh");
        self.deadlines.first()
    }

    /// The links a timeout at `now` must visit (as of the last [`Links::refresh`]): those whose
    /// deadline passed and those holding events or transmits. For every other link a visit
    /// (its connection's timers, its pump) would do nothing.
    pub(super) fn due(&self, now: Instant) -> BTreeSet<PeerId> {
        debug_assert!(self.dirty.is_empty(), "read before a refresh");
        let mut due: BTreeSet<PeerId> = self.deadlines.due(now).collect();
        due.extend(&self.unpumped);
        due
    }

    /// Debug builds: the running totals and the deadline index are what a recount of every link
    /// gives (a change that missed [`Links::get_mut`] would show here).
    #[cfg(debug_assertions)]
    fn check(&self) {
        let mut recount = LinkTally::default();
        for (peer, p) in &self.map {
            recount.set(*peer, Some(link_memory(p)));
        }
        assert_eq!(
            self.memory.totals(),
            recount.totals(),
            "memory tally drifted"
        );
        let expected = self
            .map
            .iter()
            .filter_map(|(peer, p)| Some((*peer, deadline(p, self.unclaimed, self.stall)?)));
        assert!(self.deadlines.iter().eq(expected), "deadline index drifted");
    }
}

/// What `p` holds, as the memory budget counts it.
pub(super) fn link_memory(p: &Peer) -> LinkMemory {
    LinkMemory {
        connection: p.conn.held_input_bytes(),
        disk: p.disk.pending_bytes() as u64,
        output: (p.queued + p.conn.queued_transmit_bytes()) as u64 + p.reading + p.sealed,
    }
}

/// When `p` must next be visited by a timeout: its connection's timers, the files it sent that
/// no role took (`unclaimed` after their end), and its output stalled for `stall`.
fn deadline(p: &Peer, unclaimed: Duration, stall: Duration) -> Option<Instant> {
    let stalled = (!p.pieces.is_empty()).then(|| p.output_moved + stall);
    [
        p.conn.poll_timeout(),
        p.transfers.next_expiry(unclaimed),
        stalled,
    ]
    .into_iter()
    .flatten()
    .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// After any sequence of changes, the running totals are the sums over the links.
        #[test]
        fn the_totals_are_the_sums_over_the_links(
            changes in prop::collection::vec(
                (0u64..12, prop::option::of((0u64..1 << 40, 0u64..1 << 40, 0u64..1 << 40))),
                0..200,
            ),
        ) {
            let mut tally = LinkTally::default();
            let mut model: BTreeMap<PeerId, LinkMemory> = BTreeMap::new();
            for (peer, memory) in changes {
                let memory = memory.map(|(connection, disk, output)| LinkMemory {
                    connection,
                    disk,
                    output,
                });
                tally.set(PeerId(peer), memory);
                match memory {
                    Some(m) => model.insert(PeerId(peer), m),
                    None => model.remove(&PeerId(peer)),
                };
                let input = model.values().map(LinkMemory::input).sum();
                let output = model.values().map(|m| m.output).sum();
                prop_assert_eq!(tally.totals(), (input, output));
            }
        }
    }
}
