//! The size of upstream's release benchmark: 1 master + 25 workers, 50,000 agents (client.keys
//! on the master, one fresh agent-info file per agent spread over the workers), upstream's
//! default intervals (the cluster of `wazuh_cluster_sim::scale`; larger sizes run with its `scale`
//! binary). Prints the virtual time to convergence and the wall time of the run.
//!
//! It takes about 12 s of wall time in the test profile on a busy 2-core machine (6 s with
//! `--release`), so it runs with the other tests; see the figures with
//! `cargo test -p wazuh-cluster-sim --release --test scale -- --nocapture`.

use std::time::Instant;

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::scale::{build, builder, client_keys, run_to_convergence, shortfall};
use wazuh_cluster_sync::integrity::agents::MAX_CLIENT_KEYS;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Storage;
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};

const AGENTS: usize = 50_000;
const WORKERS: usize = 25;
/// See `determinism.rs`: change it only when the wire changes on purpose, and say why. Last
/// changed by growing chunks (`ChunkSizing`): the package with the client.keys of 50,000 agents
/// goes to each worker in chunks of 512 KiB, 512 KiB, 1 MiB… instead of one.
const WIRE_HASH: u64 = 0x3589_aef7_48d9_75f1;

#[test]
fn the_client_keys_of_a_million_agents_is_within_what_a_master_reads() {
    // At 64 MiB the 1,000,000-agent scale point never converged: the master refused its own
    // 89 MB client.keys at every agent-info apply.
    let len = client_keys(1_000_000).len() as u64;
    assert!(len > 64 << 20 && len <= MAX_CLIENT_KEYS, "{len}");
}

#[test]
fn one_master_25_workers_50000_agents_converge() {
    let keys = client_keys(AGENTS);
    let per_worker = AGENTS / WORKERS;
    let mut c = build(WORKERS, AGENTS, 50_000).unwrap();
    let (m, workers) = (c.master, c.workers.clone());
    let wall = Instant::now();
    let at = run_to_convergence(&mut c, AGENTS, VirtualTime::from_secs(600)).unwrap();
    let wall = wall.elapsed();

    // Every worker holds the master's 50,000-agent client.keys, byte for byte.
    let keys_path = InstallPath::new("/etc/client.keys").unwrap();
    for &w in &workers {
        assert_eq!(
            c.sim.storage(w).read(&keys_path, 1 << 30).unwrap(),
            keys.as_bytes()
        );
    }
    // The master took every worker's agents: one agent-info round per worker with all of them.
    let mut parts: Vec<usize> = c
        .sim
        .events_of(m)
        .filter_map(|e| match &e.event {
            NodeEvent::SyncFinished {
                kind: SyncKind::AgentInfo,
                counts,
                ..
            } => Some(counts.missing),
            _ => None,
        })
        .collect();
    parts.truncate(WORKERS);
    assert_eq!(parts, vec![per_worker; WORKERS]);
    // The bytes on the wire, pinned as in determinism.rs: the same run sends the same bytes at the
    // same times whatever the node's inside looks like.
    assert_eq!(
        c.sim.wire_hash(),
        WIRE_HASH,
        "wire hash {:#018x}",
        c.sim.wire_hash()
    );
    let stats = c.sim.stats();
    println!(
        "1 master + {WORKERS} workers, {AGENTS} agents: converged at {at} of virtual time, wall {:.2} s; \
         {} events, {} bytes delivered, {} effects, trace hash {:016x}",
        wall.as_secs_f64(),
        stats.events,
        stats.bytes_delivered,
        stats.effects,
        c.sim.trace_hash()
    );
}

/// Regression: more workers than a descriptor budget of 512 (256 files, reserves of 2; the
/// default until the 1,000-worker cluster showed it too small) could keep whole reserves for
/// converge within seconds of their start, as 25 do: the reserves keep at most half the budget
/// and the later workers share the rest. When the reserves could take the whole pool, workers
/// 129 and later had every file refused for as long as the first 128 stayed connected (at 300
/// workers only 128 ever synchronised, and the run did not converge in an hour of virtual time).
#[test]
fn more_workers_than_the_budget_has_reserves_for_converge_within_seconds() {
    let (workers, agents) = (130, 1_300);
    let mut c = builder(workers, agents, 130)
        .unwrap()
        .configure(|config| config.limits.max_transfer_descriptors = 512)
        .build()
        .unwrap();
    assert_eq!(c.sim.node(c.master).file_budget().limit, 256);
    let at = run_to_convergence(&mut c, agents, VirtualTime::from_secs(60));
    let at = at.unwrap_or_else(|e| panic!("{e}: {}", shortfall(&c, agents)));
    assert!(at <= VirtualTime::from_secs(15), "converged only at {at}");
}
