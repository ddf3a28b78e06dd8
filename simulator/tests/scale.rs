//! The size of upstream's release benchmark: 1 master + 25 workers, 50,000 agents (client.keys
//! on the master, one fresh agent-info file per agent spread over the workers), upstream's
//! default intervals. Prints the virtual time to convergence and the wall time of the run.
//!
//! It takes about 12 s of wall time in the test profile on a busy 2-core machine (6 s with
//! `--release`), so it runs with the other tests; see the figures with
//! `cargo test -p wazuh-cluster-sim --release --test scale -- --nocapture`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::cluster::{ClusterBuilder, converged};
use wazuh_cluster_sim::fixtures::{OLD, START, master_tree};
use wazuh_cluster_sim::net::{LinkParams, Pieces};
use wazuh_cluster_sim::sim::SimConfig;
use wazuh_cluster_sim::tree::{TreeFile, storage_from};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};

const AGENTS: usize = 50_000;
const WORKERS: usize = 25;
/// See `determinism.rs`: change it only when the wire changes on purpose, and say why.
const WIRE_HASH: u64 = 0xb1db_bfd3_65b1_7a3d;

fn agent_name(id: usize) -> String {
    format!("agent-{id:05}")
}

fn agent_ip(id: usize) -> String {
    format!("10.{}.{}.{}", id / 65_536, (id / 256) % 256, id % 256)
}

#[test]
fn one_master_25_workers_50000_agents_converge() {
    let mut keys = String::with_capacity(AGENTS * 100);
    for id in 1..=AGENTS {
        writeln!(keys, "{id:05} {} any {:064x}", agent_name(id), id * 7919).unwrap();
    }
    let mut tree: Vec<TreeFile> = master_tree()
        .into_iter()
        .filter(|f| f.path != "/etc/client.keys")
        .collect();
    tree.push(TreeFile {
        mode: 0o640,
        ..TreeFile::new("/etc/client.keys", keys.clone(), OLD)
    });

    let fresh = Timestamp::from_secs(START - 60);
    let per_worker = AGENTS / WORKERS;
    let link = LinkParams {
        latency: Duration::from_micros(200),
        bandwidth: Some(125_000_000),
        pieces: Pieces::Whole,
    };
    let mut builder = ClusterBuilder::new(SimConfig {
        link,
        seed: 50_000,
        ..SimConfig::default()
    })
    .master("master01", storage_from(tree).unwrap());
    for w in 0..WORKERS {
        let files = (w * per_worker + 1..=(w + 1) * per_worker).map(|id| {
            let body = format!("Linux |{} |5.4.0 |#1 SMP |x86_64\nWazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n", agent_name(id));
            TreeFile::new(&format!("/queue/agent-info/{}-{}", agent_name(id), agent_ip(id)), body, fresh)
        });
        builder = builder.worker(&format!("worker{:02}", w + 1), storage_from(files).unwrap());
    }
    let mut c = builder.build().unwrap();

    let info_dir = InstallPath::new("/queue/agent-info").unwrap();
    let (m, workers) = (c.master, c.workers.clone());
    let wall = Instant::now();
    let at = c
        .sim
        .run_until_polled(
            VirtualTime::from_secs(600),
            Duration::from_millis(10),
            |sim| {
                sim.storage(m)
                    .list_dir(&info_dir)
                    .map(|v| v.len())
                    .unwrap_or(0)
                    == AGENTS
                    && converged(sim, m, &workers)
            },
        )
        .unwrap();
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
