//! The trace hash: one number that changes whenever anything observable in a run changes.
//!
//! Every delivery of bytes, every connection change, every effect and every node event is folded
//! into a running 64-bit FNV-1a hash together with its virtual time (as an offset, never a raw
//! `Instant`). Two runs with the same seed must give the same hash; a determinism check runs a
//! scenario twice and compares them, and a later seed sweep prints the hash beside the seed so a
//! failing run can be replayed and recognised.
//!
//! FNV-1a is used because it is tiny, has no key and is the same on every platform; it is not
//! meant to resist an adversary, only to make accidental equality of different traces unlikely.

use crate::clock::VirtualTime;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A running 64-bit FNV-1a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV_OFFSET)
    }
}

impl Fnv64 {
    /// Folds `bytes` in.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    /// Folds a `u64` in (little-endian).
    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// A 64-bit digest of `data`, eight bytes a step (one multiply per word instead of one per byte,
/// as FNV-1a takes): for contents the checkers compare by hash, where FNV-1a's cost per byte
/// was a tenth of a run. Keyless and the same on every platform, like [`Fnv64`]; not meant to
/// resist an adversary.
pub fn digest(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = FNV_OFFSET ^ (data.len() as u64).wrapping_mul(K);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(31);
    }
    let mut b = [0u8; 8];
    b[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K);
    // Final mix (murmur3's): every input bit reaches every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// What kind of happening a trace record is (its tag is part of the hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TraceKind {
    /// A node asked to connect.
    Connect,
    /// A connection was established (both ends told).
    Connected,
    /// A connection attempt failed.
    Refused,
    /// Bytes handed to a node.
    Deliver,
    /// A node was told a connection closed.
    Closed,
    /// A node asked to close a connection.
    Close,
    /// An effect was executed.
    Effect,
    /// A node emitted an event.
    Event,
    /// A node's timer fired.
    Timeout,
    /// A distributed API call was run.
    ApiCall,
    /// A node crashed (the fault model of [`crate::sim::Sim::crash`]).
    Crash,
    /// A crashed node started again.
    Restart,
    /// A running node's wall clock was stepped.
    ClockJump,
}

/// The running trace of a run: a hash and a count of records.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    hash: Fnv64,
    /// Only what crossed the network ([`TraceKind::Deliver`] records): unchanged by a refactor that
    /// renames events or reorders effects but sends the same bytes at the same times.
    wire: Fnv64,
    records: u64,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Trace {
        Trace::default()
    }

    /// Folds one record in: time offset, kind, the node it concerns, a peer or link number and the
    /// record's bytes (delivered data, or the `Debug` text of an event or effect).
    pub fn record(
        &mut self,
        at: VirtualTime,
        kind: TraceKind,
        node: usize,
        peer: u64,
        data: &[u8],
    ) {
        self.hash.write_u64(at.as_nanos());
        self.hash.write_u64(kind as u64);
        self.hash.write_u64(node as u64);
        self.hash.write_u64(peer);
        self.hash.write_u64(data.len() as u64);
        if kind == TraceKind::Deliver {
            self.wire.write_u64(at.as_nanos());
            self.wire.write_u64(node as u64);
            self.wire.write_u64(peer);
            self.wire.write_u64(data.len() as u64);
            self.wire.write(data);
            // The delivered bytes are hashed once, into the wire hash (pinned by tests); the
            // trace hash takes that hash, which covers them, instead of hashing them again.
            self.hash.write_u64(self.wire.value());
        } else {
            self.hash.write(data);
        }
        self.records += 1;
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> u64 {
        self.hash.value()
    }

    /// The hash of the deliveries alone: the bytes on the wire, when and where they arrived.
    pub fn wire_hash(&self) -> u64 {
        self.wire.value()
    }

    /// How many records were folded in.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // FNV-1a 64 reference values (Fowler/Noll/Vo test suite): "" and "a" and "foobar".
        let mut h = Fnv64::default();
        assert_eq!(h.value(), 0xcbf2_9ce4_8422_2325);
        h.write(b"a");
        assert_eq!(h.value(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv64::default();
        h.write(b"foobar");
        assert_eq!(h.value(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_digest_sees_every_byte_and_the_length() {
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let d = digest(&data);
        assert_eq!(d, digest(&data.clone()));
        // Any one byte flipped, in a full word or in the tail, changes it.
        for i in [0, 7, 8, 500, 991, 992, 999] {
            let mut other = data.clone();
            other[i] ^= 1;
            assert_ne!(digest(&other), d, "byte {i}");
        }
        // Zero padding of the tail is not confused with real zeros.
        assert_ne!(digest(b"a"), digest(b"a\0"));
        assert_ne!(digest(b""), digest(b"\0"));
        assert_ne!(digest(&[0; 8]), digest(&[0; 16]));
    }

    #[test]
    fn time_and_kind_are_part_of_the_hash() {
        let mut a = Trace::new();
        let mut b = Trace::new();
        let mut c = Trace::new();
        a.record(VirtualTime::from_secs(1), TraceKind::Deliver, 0, 1, b"x");
        b.record(VirtualTime::from_secs(2), TraceKind::Deliver, 0, 1, b"x");
        c.record(VirtualTime::from_secs(1), TraceKind::Event, 0, 1, b"x");
        assert_ne!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.records(), 1);
    }

    #[test]
    fn only_deliveries_reach_the_wire_hash() {
        let mut a = Trace::new();
        let mut b = Trace::new();
        a.record(VirtualTime::from_secs(1), TraceKind::Deliver, 0, 1, b"x");
        b.record(VirtualTime::from_secs(1), TraceKind::Deliver, 0, 1, b"x");
        b.record(
            VirtualTime::from_secs(1),
            TraceKind::Event,
            0,
            1,
            b"SyncFailed",
        );
        assert_eq!(a.wire_hash(), b.wire_hash());
        assert_ne!(a.hash(), b.hash());
        b.record(VirtualTime::from_secs(2), TraceKind::Deliver, 0, 1, b"y");
        assert_ne!(a.wire_hash(), b.wire_hash());
    }
}
