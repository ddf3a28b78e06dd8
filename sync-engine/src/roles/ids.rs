//! The ids a node and its adapter share: connections ([`PeerId`]), disk jobs ([`EffectId`]) and
//! distributed API calls ([`ApiCallId`]).

/// One connection of a node, as the adapter and the node both name it.
///
/// Incoming connections get their ids from the adapter (any value below [`PeerId::OUTGOING`]);
/// outgoing ones are allocated by the node itself in `[PeerId::OUTGOING, u64::MAX]` and announced
/// with [`Output::Connect`](super::Output::Connect), so the two id spaces never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl PeerId {
    /// First id of the node's own (outgoing) id space.
    pub const OUTGOING: u64 = 1 << 63;
}

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// Identifies one [`Effect`](super::Effect); the adapter hands it back with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EffectId(pub u64);

/// Identifies one distributed API call the node asked the adapter to run
/// ([`Output::ApiCall`](super::Output::ApiCall)); the adapter hands it back with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiCallId(pub u64);
