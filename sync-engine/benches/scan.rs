//! Metadata scan cost on the in-memory storage: cold (every file hashed) and warm (nothing changed,
//! every digest reused). This measures the engine (walk, MD5, document building) without the disk;
//! the fs adapter's own bench measures the real file system.
//!
//! Run: `cargo bench -p wazuh-cluster-sync --bench scan -- --warm-up-time 1 --measurement-time 3`
//!
//! Times are the benchmark thread's CPU time (`cpu_time::ThreadTime`): the machine is shared by
//! several builds, and wall time would measure preemption.

mod support;

use criterion::{Criterion, Throughput};
use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::MetadataScanner;
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

const FILES: usize = 100_000;
const FILE_SIZE: usize = 1024;

/// 100,000 files of 1 KiB under /etc/rules (an `all`, recursive item): 100 directories of 1,000.
fn tree() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    for i in 0..FILES {
        let path = InstallPath::new(&format!("/etc/rules/d{:03}/r{i:06}.xml", i / 1000)).unwrap();
        let mut data = vec![0u8; FILE_SIZE];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        storage
            .add_file(&path, data, Timestamp::from_secs(1_562_000_000), 0o660)
            .unwrap();
    }
    storage
}

fn bench_scan(c: &mut Criterion) {
    let storage = tree();
    let items = ClusterItems::defaults_3_9();
    let request = ScanRequest {
        node_type: NodeType::Master,
        node_name: "master",
        now: Timestamp::from_secs(1_800_000_000),
    };
    let mut group = c.benchmark_group("scan_100k_x_1KiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((FILES * FILE_SIZE) as u64));
    group.bench_function("cold", |b| {
        b.iter_custom(|iters| {
            support::cpu_time(iters, || {
                let out = MetadataScanner::new()
                    .scan(&storage, &items, &request)
                    .unwrap();
                assert_eq!(out.stats.files_hashed, FILES as u64);
                out
            })
        })
    });
    let mut scanner = MetadataScanner::new();
    scanner.scan(&storage, &items, &request).unwrap();
    group.bench_function("rescan_unchanged", |b| {
        b.iter_custom(|iters| {
            support::cpu_time(iters, || {
                let out = scanner.scan(&storage, &items, &request).unwrap();
                assert_eq!(out.stats.files_hashed, 0);
                out
            })
        })
    });
    group.finish();
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` has no docs.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_scan(&mut c);
    c.final_summary();
}
