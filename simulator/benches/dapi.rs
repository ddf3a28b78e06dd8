//! The distributed API round trip in memory: a master's local client asks for an agent that
//! reports to a worker; the master forwards `dapi <id> <json>` to the worker, the worker runs
//! the call (its built-in executor) and sends the answer back as a string and `dapi_res`, the
//! master passes it to the client. Every frame is sealed and opened with Fernet as on TCP; time
//! is the simulator's (links answer instantly in real time), so the figure is the nodes' CPU
//! cost of one request.
//!
//! Run: `cargo bench -p wazuh-cluster-sim --bench dapi -- --warm-up-time 1 --measurement-time 5`
//! (prints requests per second, and p50 / p99 of single round trips in thread CPU time).

use std::time::Duration;

use criterion::{Criterion, Throughput};
use wazuh_cluster_sim::cluster::{Cluster, ClusterBuilder};
use wazuh_cluster_sim::fixtures::{master_tree, recorded_intervals};
use wazuh_cluster_sim::net::LinkParams;
use wazuh_cluster_sim::sim::SimConfig;
use wazuh_cluster_sim::tree::{TreeFile, storage_from};
use wazuh_cluster_sync::integrity::storage::Timestamp;

const REQUEST: &str = r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;

/// master01 + worker1 holding agent 001, synchronised.
fn cluster() -> Cluster {
    let fresh = Timestamp::from_secs(1_800_000_000 - 60);
    let info = TreeFile::new(
        "/queue/agent-info/agent-one-any",
        "Linux |agent-one |5.4.0 |#1 SMP |x86_64\n",
        fresh,
    );
    let config = SimConfig {
        tap: false,
        link: LinkParams {
            latency: Duration::ZERO,
            bandwidth: None,
            ..LinkParams::default()
        },
        ..SimConfig::default()
    };
    let mut c = ClusterBuilder::new(config)
        .master("master01", storage_from(master_tree()).unwrap())
        .worker("worker1", storage_from([info]).unwrap())
        .configure(recorded_intervals)
        .build()
        .unwrap();
    c.sim.run_for(Duration::from_secs(10)).unwrap();
    assert!(
        c.sim
            .node(c.master)
            .agent_routes()
            .contains_key("agent-one")
    );
    c
}

/// One request from a fresh local client (as upstream's API connects per request), run until
/// it is answered; then the client hangs up.
fn round_trip(c: &mut Cluster) {
    let client = c.sim.connect_local(c.master);
    c.sim.local_send(client, "dapi", REQUEST.as_bytes());
    while c.sim.local(client).answers().next().is_none() {
        assert!(c.sim.step(), "the request was never answered");
    }
    c.sim.close_local(client);
}

fn bench_round_trip(criterion: &mut Criterion) {
    let mut c = cluster();
    // p50 / p99 of single round trips (the thread's CPU time: the machine is shared).
    let mut times: Vec<Duration> = (0..2_000)
        .map(|_| {
            let start = cpu_time::ThreadTime::now();
            round_trip(&mut c);
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "dapi round trip master -> worker -> master, {} requests: p50 {:?}, p99 {:?}",
        times.len(),
        at(0.50),
        at(0.99)
    );
    let mut group = criterion.benchmark_group("dapi");
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time::ThreadTime::now();
            for _ in 0..iters {
                round_trip(&mut c);
            }
            start.elapsed()
        })
    });
    group.finish();
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` has no docs.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_round_trip(&mut c);
    c.final_summary();
}
