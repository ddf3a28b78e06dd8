//! A run is a function of its seed: same seed, same trace hash; another seed, another hash.

use std::time::Duration;

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::fixtures::{cluster, recorded_intervals};
use wazuh_cluster_sim::net::{LinkParams, Pieces};
use wazuh_cluster_sim::sim::SimConfig;

/// Runs 1 master + 2 workers for 30 s of virtual time; returns (trace hash, records, converged,
/// wire hash).
fn run(seed: u64, pieces: Pieces) -> (u64, u64, bool, u64) {
    let link = LinkParams {
        latency: Duration::from_micros(700),
        bandwidth: Some(50 << 20),
        pieces,
        send_buffer: None,
    };
    let mut c = cluster(
        SimConfig {
            seed,
            link,
            ..SimConfig::default()
        },
        2,
        recorded_intervals,
    )
    .unwrap();
    c.sim.run_for(Duration::from_secs(30)).unwrap();
    assert_eq!(c.sim.now(), VirtualTime::from_secs(30));
    (
        c.sim.trace_hash(),
        c.sim.trace_records(),
        c.integrity_converged(),
        c.sim.wire_hash(),
    )
}

#[test]
fn same_seed_same_trace_hash_other_seed_other_hash() {
    let a = run(7, Pieces::Whole);
    let b = run(7, Pieces::Whole);
    let other = run(8, Pieces::Whole);
    assert_eq!(a, b);
    assert!(a.2, "the run did real work: it converged");
    assert!(a.1 > 500, "only {} trace records", a.1);
    assert_ne!(a.0, other.0);
    assert!(other.2);
}

/// The bytes that cross the wire in two fixed runs, pinned: a change of the node's inside (names,
/// error types, module shape) must not change a byte, a time or a destination of what it sends.
/// When the wire changes on purpose, put the new values here and say why in the commit.
#[test]
fn the_bytes_on_the_wire_of_two_fixed_runs_are_pinned() {
    let whole = run(7, Pieces::Whole);
    let pieces = run(11, Pieces::Random { max: 17 });
    assert_eq!(
        (whole.3, pieces.3),
        (WIRE_SEED_7_WHOLE, WIRE_SEED_11_PIECES),
        "wire hashes {:#018x} / {:#018x}",
        whole.3,
        pieces.3
    );
}

const WIRE_SEED_7_WHOLE: u64 = 0x688e_9611_5227_3770;
const WIRE_SEED_11_PIECES: u64 = 0x94c7_5019_63ea_3f34;

#[test]
fn writes_cut_into_random_pieces_are_deterministic_and_still_converge() {
    let a = run(11, Pieces::Random { max: 17 });
    let b = run(11, Pieces::Random { max: 17 });
    assert_eq!(a, b);
    assert!(a.2);
    // Cutting the same bytes differently is visible in the trace.
    assert_ne!(a.0, run(11, Pieces::Whole).0);
}

#[test]
fn byte_by_byte_delivery_still_converges_with_the_same_events() {
    // Every write arrives one byte per read: the nodes' decoders see every possible cut.
    let events = |pieces: Pieces| {
        let link = LinkParams {
            pieces,
            ..LinkParams::default()
        };
        let mut c = cluster(
            SimConfig {
                seed: 5,
                link,
                ..SimConfig::default()
            },
            2,
            recorded_intervals,
        )
        .unwrap();
        let at = c.run_until_converged(VirtualTime::from_secs(30)).unwrap();
        let events: Vec<_> = c
            .sim
            .events()
            .iter()
            .map(|e| (e.node, e.event.clone()))
            .collect();
        (at, events, c.sim.stats())
    };
    let (at_bytes, by_byte, bytes_stats) = events(Pieces::Random { max: 1 });
    let (at_whole, whole, whole_stats) = events(Pieces::Whole);
    // One delivery per byte really happened.
    assert_eq!(bytes_stats.bytes_delivered, whole_stats.bytes_delivered);
    assert!(
        bytes_stats.events > bytes_stats.bytes_delivered,
        "{bytes_stats:?}"
    );
    // Same events in the same order, and (no bandwidth limit: the pieces of a write arrive at
    // the same instant) the same convergence time.
    assert_eq!(by_byte, whole);
    assert_eq!(at_bytes, at_whole);
}
