//! Virtual time: one queue of future events ordered by (time, sequence), and a clock that jumps
//! straight to the next one.
//!
//! Why offsets: a simulated run must give the same trace on every machine and every run, so the
//! simulator takes one real [`Instant`] when it starts (the *base*) and from then on only adds
//! durations to it. Everything the simulator records (trace, event log, hash) uses the offset
//! ([`VirtualTime`]), never a raw `Instant`, whose value differs from run to run.
//!
//! Why a sequence number: two events due at the same instant run in the order they were
//! scheduled, so ties never depend on the heap's internal order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

/// A point of virtual time: the offset from the simulation's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtualTime(pub Duration);

impl VirtualTime {
    /// The start of the simulation.
    pub const ZERO: VirtualTime = VirtualTime(Duration::ZERO);

    /// `secs` seconds after the start.
    pub const fn from_secs(secs: u64) -> VirtualTime {
        VirtualTime(Duration::from_secs(secs))
    }

    /// `millis` milliseconds after the start.
    pub const fn from_millis(millis: u64) -> VirtualTime {
        VirtualTime(Duration::from_millis(millis))
    }

    /// The offset from the start.
    pub const fn offset(self) -> Duration {
        self.0
    }

    /// The offset in nanoseconds (saturating), the unit the trace hash uses.
    pub fn as_nanos(self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The offset as fractional seconds (for reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// `self + d`, saturating.
    #[must_use]
    pub fn plus(self, d: Duration) -> VirtualTime {
        VirtualTime(self.0.saturating_add(d))
    }

    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: VirtualTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for VirtualTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.0.as_secs_f64())
    }
}

/// The virtual clock: a base `Instant` taken once and the current offset.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    now: VirtualTime,
}

impl Clock {
    /// A clock at offset zero over `base`.
    pub fn new(base: Instant) -> Clock {
        Clock {
            base,
            now: VirtualTime::ZERO,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> VirtualTime {
        self.now
    }

    /// The `Instant` the nodes see for the current virtual time.
    pub fn instant(&self) -> Instant {
        self.instant_at(self.now)
    }

    /// The `Instant` of any virtual time.
    pub fn instant_at(&self, t: VirtualTime) -> Instant {
        self.base + t.0
    }

    /// The virtual time of an `Instant` a node gave back (a timeout); instants before the base
    /// map to zero.
    pub fn virtual_of(&self, instant: Instant) -> VirtualTime {
        VirtualTime(instant.saturating_duration_since(self.base))
    }

    /// The base instant (only for building node configs anchored at the start).
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Moves the clock to `t`. Time never goes backwards: an earlier `t` leaves it unchanged.
    pub fn advance_to(&mut self, t: VirtualTime) {
        if t > self.now {
            self.now = t;
        }
    }
}

/// A queue of events due at virtual times; equal times pop in scheduling order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: VirtualTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: VirtualTime, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { at, seq, event }));
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<VirtualTime> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest event (ties in scheduling order).
    pub fn pop(&mut self) -> Option<(VirtualTime, E)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.event))
    }

    /// Number of scheduled events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::new();
        q.push(VirtualTime::from_secs(5), "late");
        q.push(VirtualTime::from_secs(1), "first-at-1");
        q.push(VirtualTime::from_secs(1), "second-at-1");
        q.push(VirtualTime::ZERO, "zero");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (VirtualTime::ZERO, "zero"),
                (VirtualTime::from_secs(1), "first-at-1"),
                (VirtualTime::from_secs(1), "second-at-1"),
                (VirtualTime::from_secs(5), "late"),
            ]
        );
    }

    #[test]
    fn clock_maps_instants_and_never_goes_back() {
        let base = Instant::now();
        let mut clock = Clock::new(base);
        clock.advance_to(VirtualTime::from_millis(1500));
        assert_eq!(clock.instant(), base + Duration::from_millis(1500));
        clock.advance_to(VirtualTime::from_secs(1));
        assert_eq!(clock.now(), VirtualTime::from_millis(1500));
        assert_eq!(
            clock.virtual_of(base + Duration::from_secs(9)),
            VirtualTime::from_secs(9)
        );
        assert_eq!(clock.virtual_of(base), VirtualTime::ZERO);
    }
}
