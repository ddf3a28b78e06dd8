//! Figures of the runtime adapters on this machine (not a test: timings never decide pass/fail).
//! `--runtime tokio|mio` (first, default tokio) picks the adapter that runs the nodes.
//!
//! ```sh
//! # wall time for an empty worker to receive 1,000 files of 4 KiB (connect → applied), in-process:
//! cargo run --release -p wazuh-cluster-tokio --example measure -- --runtime mio transfer
//! # the master alone in this process (its RSS and CPU time are this process's), then 25 workers
//! # in another:
//! cargo run --release -p wazuh-cluster-tokio --example measure -- --runtime mio master 127.0.0.1:15160 /tmp/m [FILES]
//! cargo run --release -p wazuh-cluster-tokio --example measure -- workers 25 127.0.0.1:15160 /tmp/w
//! # the same with keepalives only (every 1 s; no integrity or agent-info rounds after the first):
//! cargo run --release -p wazuh-cluster-tokio --example measure -- --runtime mio keepalive-master 127.0.0.1:15160 /tmp/m
//! cargo run --release -p wazuh-cluster-tokio --example measure -- keepalive-workers 25 127.0.0.1:15160 /tmp/w
//! ```
//!
//! `master` and `keepalive-master` print every second the workers connected, the process's
//! resident memory (VmRSS, and the peak VmHWM) and the CPU time it used in that second; with the
//! keepalive-only intervals, a quiet second's CPU time with 25 workers is one keepalive round.

use std::path::Path;
use std::time::{Duration, Instant};

use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_runtime::{Rt, Running};
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeConfig, NodeEvent, NodeType, SyncKind};
use wazuh_cluster_tokio::trees::{SampleFile, compare_integrity, write_tree};
use wazuh_cluster_tokio::{NodeSpec, unix_time_at, wall_clock_now};

const KEY: &str = "measurementclusterkey0123456789a";
const FILES: usize = 1000;
const SIZE: usize = 4096;

/// The intervals of a run: `Rounds` as the transfer wants them (fast integrity rounds),
/// `KeepalivesOnly` for the keepalive figure (a keepalive every second, every other periodic
/// task an hour apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intervals {
    Rounds,
    KeepalivesOnly,
}

fn config(node_type: NodeType, name: &str, intervals: Intervals) -> NodeConfig {
    let mut c = NodeConfig::new(
        node_type,
        name,
        Some(ClusterKey::new(KEY).unwrap()),
        wall_clock_now(),
    );
    let i = &mut c.items.intervals;
    i.worker.sync_integrity = Duration::from_millis(200);
    i.worker.connection_retry = Duration::from_millis(200);
    i.master.recalculate_integrity = Duration::from_millis(500);
    if intervals == Intervals::KeepalivesOnly {
        const HOUR: Duration = Duration::from_secs(3600);
        i.worker.keep_alive = Duration::from_secs(1);
        i.worker.sync_integrity = HOUR;
        i.worker.sync_files = HOUR;
        i.master.recalculate_integrity = HOUR;
    }
    c
}

fn master_files(files: usize) -> Vec<SampleFile> {
    (0..files)
        .map(|i| SampleFile {
            path: format!("/etc/lists/bulk/list-{i:04}"),
            data: (0..SIZE).map(|b| ((b * 31 + i * 7) % 251) as u8).collect(),
            mode: 0o660,
            mtime: Timestamp::from_secs(1_562_000_000),
        })
        .collect()
}

async fn master(rt: Rt, root: &Path, listen: &str, files: usize, iv: Intervals) -> Running {
    std::fs::create_dir_all(root).unwrap();
    write_tree(root, &master_files(files)).unwrap();
    let mut spec = NodeSpec::new(config(NodeType::Master, "master01", iv), root);
    spec.listen = Some(listen.to_owned());
    spec.local_socket = None;
    spec.limits.max_connections_per_ip = 100;
    rt.start(spec).await.unwrap()
}

async fn worker(rt: Rt, root: &Path, name: &str, addr: &str, iv: Intervals) -> Running {
    std::fs::create_dir_all(root).unwrap();
    let mut c = config(NodeType::Worker, name, iv);
    c.master_addr = addr.to_owned();
    rt.start(NodeSpec::new(c, root)).await.unwrap()
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a master at `listen` over `dir` until killed, printing its figures every second.
async fn serve_master(rt: Rt, listen: &str, dir: &Path, files: usize, iv: Intervals) {
    let mut m = master(rt, dir, listen, files, iv).await;
    let mut events = m.events();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut cpu = cpu_time::ProcessTime::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let workers = m.inspect(|n, _| n.workers().len()).await.unwrap();
                let used = cpu.elapsed();
                cpu = cpu_time::ProcessTime::now();
                println!(
                    "{rt}: workers {workers}: {}, CPU {:.2} ms in the last second",
                    rss(),
                    used.as_secs_f64() * 1e3
                );
            }
            e = events.recv() => {
                if let Ok(NodeEvent::SyncFinished { kind: SyncKind::Integrity, worker, counts }) = e
                    && counts.missing > 0 {
                    println!("sent {} files to {worker}: {}", counts.missing, rss());
                }
            }
        }
    }
}

/// Runs `n` workers under `dir` against `addr` until SIGINT/SIGTERM.
async fn serve_workers(rt: Rt, n: usize, addr: &str, dir: &Path, iv: Intervals) {
    let mut nodes = Vec::new();
    for i in 0..n {
        let root = dir.join(format!("worker{i}"));
        nodes.push(worker(rt, &root, &format!("worker{i}"), addr, iv).await);
    }
    let _ = wazuh_cluster_tokio::shutdown_signal().await;
    for w in nodes {
        w.stop().await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rt = Rt::default();
    if args.first().map(String::as_str) == Some("--runtime") && args.len() > 1 {
        rt = match args[1].parse() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("measure: {e}"),
        };
        args.drain(..2);
    }
    match args.first().map(String::as_str) {
        Some("transfer") => {
            let dir = tempfile::tempdir().unwrap();
            let mroot = dir.path().join("master");
            let mut m = master(rt, &mroot, "127.0.0.1:0", FILES, Intervals::Rounds).await;
            let mut mev = m.events();
            // Wait for the master's first scan, so the figure is the transfer alone.
            while !matches!(
                mev.recv().await,
                Ok(NodeEvent::IntegrityRecalculated { .. })
            ) {}
            let addr = m.local_addr().unwrap().to_string();
            let wroot = dir.path().join("worker");
            let mut w = worker(rt, &wroot, "worker1", &addr, Intervals::Rounds).await;
            let mut wev = w.events();
            let mut connected = None;
            let mut round = None;
            loop {
                match wev.recv().await.unwrap() {
                    NodeEvent::ConnectedToMaster { .. } => connected = Some(Instant::now()),
                    NodeEvent::SyncStarted {
                        kind: SyncKind::Integrity,
                        ..
                    } => round = Some(Instant::now()),
                    NodeEvent::SyncFinished {
                        kind: SyncKind::Integrity,
                        counts,
                        ..
                    } if counts.missing > 0 => break,
                    _ => {}
                }
            }
            let took = connected.unwrap().elapsed();
            let round = round.unwrap().elapsed();
            let now = unix_time_at(&wall_clock_now(), Instant::now());
            let check = compare_integrity(
                &mroot,
                &wroot,
                &m.inspect(|n, _| n.config().items.clone()).await.unwrap(),
                "master01",
                now,
            )
            .unwrap();
            println!(
                "{rt}: {FILES} files x {SIZE} B: connect -> applied in {:.3} s (of which the round, \
                 package built -> applied: {:.3} s; the rest is the first sync_integrity wait); \
                 worker identical on {}/{} files",
                took.as_secs_f64(),
                round.as_secs_f64(),
                check.files - check.missing.len() - check.different.len(),
                check.files
            );
            w.stop().await.unwrap();
            m.stop().await.unwrap();
        }
        Some("master") => {
            let files = args.get(3).map_or(FILES, |n| n.parse().unwrap());
            serve_master(rt, &args[1], Path::new(&args[2]), files, Intervals::Rounds).await;
        }
        Some("keepalive-master") => {
            serve_master(
                rt,
                &args[1],
                Path::new(&args[2]),
                FILES,
                Intervals::KeepalivesOnly,
            )
            .await;
        }
        Some("workers") => {
            let n: usize = args[1].parse().unwrap();
            serve_workers(rt, n, &args[2], Path::new(&args[3]), Intervals::Rounds).await;
        }
        Some("keepalive-workers") => {
            let n: usize = args[1].parse().unwrap();
            serve_workers(
                rt,
                n,
                &args[2],
                Path::new(&args[3]),
                Intervals::KeepalivesOnly,
            )
            .await;
        }
        _ => eprintln!(
            "usage: measure [--runtime tokio|mio] transfer | master ADDR DIR [FILES] | \
             workers N ADDR DIR | keepalive-master ADDR DIR | keepalive-workers N ADDR DIR"
        ),
    }
}
