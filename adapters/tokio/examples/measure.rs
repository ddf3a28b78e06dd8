//! Figures of the tokio adapter on this machine (not a test: timings never decide pass/fail).
//!
//! ```sh
//! # wall time for an empty worker to receive 1,000 files of 4 KiB (connect → applied), in-process:
//! cargo run --release -p wazuh-cluster-tokio --example measure -- transfer
//! # the master alone in this process (its RSS is this process's), then 25 workers in another:
//! cargo run --release -p wazuh-cluster-tokio --example measure -- master 127.0.0.1:15160 /tmp/m [FILES]
//! cargo run --release -p wazuh-cluster-tokio --example measure -- workers 25 127.0.0.1:15160 /tmp/w
//! ```
//!
//! `master` prints its resident memory (VmRSS, and the peak VmHWM) every second.

use std::path::Path;
use std::time::{Duration, Instant};

use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeConfig, NodeEvent, NodeType, SyncKind};
use wazuh_cluster_tokio::trees::{SampleFile, compare_integrity, write_tree};
use wazuh_cluster_tokio::{NodeSpec, RunningNode, start, unix_time_at, wall_clock_now};

const KEY: &str = "measurementclusterkey0123456789a";
const FILES: usize = 1000;
const SIZE: usize = 4096;

fn config(node_type: NodeType, name: &str) -> NodeConfig {
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

async fn master(root: &Path, listen: &str, files: usize) -> RunningNode {
    std::fs::create_dir_all(root).unwrap();
    write_tree(root, &master_files(files)).unwrap();
    let mut spec = NodeSpec::new(config(NodeType::Master, "master01"), root);
    spec.listen = Some(listen.to_owned());
    spec.local_socket = None;
    spec.limits.max_connections_per_ip = 100;
    start(spec).await.unwrap()
}

async fn worker(root: &Path, name: &str, addr: &str) -> RunningNode {
    std::fs::create_dir_all(root).unwrap();
    let mut c = config(NodeType::Worker, name);
    c.master_addr = addr.to_owned();
    start(NodeSpec::new(c, root)).await.unwrap()
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("transfer") => {
            let dir = tempfile::tempdir().unwrap();
            let mroot = dir.path().join("master");
            let mut m = master(&mroot, "127.0.0.1:0", FILES).await;
            let mut mev = m.events();
            // Wait for the master's first scan, so the figure is the transfer alone.
            while !matches!(
                mev.recv().await,
                Ok(NodeEvent::IntegrityRecalculated { .. })
            ) {}
            let addr = m.local_addr().unwrap().to_string();
            let wroot = dir.path().join("worker");
            let mut w = worker(&wroot, "worker1", &addr).await;
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
                "{FILES} files x {SIZE} B: connect -> applied in {:.3} s (of which the round, \
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
            let m = master(Path::new(&args[2]), &args[1], files).await;
            let mut mev = {
                let mut m = m;
                let rx = m.events();
                (m, rx)
            };
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let workers = mev.0.inspect(|n, _| n.workers().len()).await.unwrap();
                        println!("workers {workers}: {}", rss());
                    }
                    e = mev.1.recv() => {
                        if let Ok(NodeEvent::SyncFinished { kind: SyncKind::Integrity, worker, counts }) = e
                            && counts.missing > 0 {
                            println!("sent {} files to {worker}: {}", counts.missing, rss());
                        }
                    }
                }
            }
        }
        Some("workers") => {
            let n: usize = args[1].parse().unwrap();
            let mut nodes = Vec::new();
            for i in 0..n {
                let root = Path::new(&args[3]).join(format!("worker{i}"));
                nodes.push(worker(&root, &format!("worker{i}"), &args[2]).await);
            }
            let _ = wazuh_cluster_tokio::shutdown_signal().await;
            for w in nodes {
                w.stop().await.unwrap();
            }
        }
        _ => eprintln!("usage: measure transfer | master ADDR DIR [FILES] | workers N ADDR DIR"),
    }
}
