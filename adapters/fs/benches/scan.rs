//! Real-disk scan: the integrity metadata of 100,000 files of 1 KiB under /tmp through
//! `FsStorage` (component-wise `openat` walks, `pread`, MD5), with a fresh scanner each time
//! (every file hashed: no digest reuse). The page cache is warm after the first iteration; the
//! comparison point is `find DIR -type f -print0 | xargs -0 md5sum >/dev/null` on the same tree.
//!
//! Run: `cargo bench -p wazuh-cluster-fs --bench scan -- --warm-up-time 1 --measurement-time 5`

use std::path::PathBuf;

use criterion::{Criterion, Throughput};
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::metadata::MetadataScanner;
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::storage::Timestamp;

const FILES: usize = 100_000;
const FILE_SIZE: usize = 1024;

/// Creates the tree once (kept between runs: writing 100,000 files is slower than scanning them).
fn tree() -> PathBuf {
    let root = std::env::temp_dir().join("wazuh-cluster-scan-bench-100k");
    let marker = root.join(".complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&root);
        for i in 0..FILES {
            let dir = root.join(format!("etc/rules/d{:03}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir_all(&dir).unwrap();
            }
            let mut data = vec![b'x'; FILE_SIZE];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            std::fs::write(dir.join(format!("r{i:06}.xml")), data).unwrap();
        }
        std::fs::write(&marker, b"").unwrap();
    }
    root
}

fn bench_scan(c: &mut Criterion) {
    let root = tree();
    let storage = FsStorage::new(&root).unwrap();
    let items = ClusterItems::defaults_3_9();
    let request = ScanRequest {
        node_type: NodeType::Master,
        node_name: "master",
        now: Timestamp::from_secs(1_800_000_000),
    };
    let mut group = c.benchmark_group("fs_scan_100k_x_1KiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((FILES * FILE_SIZE) as u64));
    group.bench_function("fresh_scanner", |b| {
        b.iter(|| {
            let out = MetadataScanner::new()
                .scan(&storage, &items, &request)
                .unwrap();
            assert_eq!(out.stats.files_hashed, FILES as u64);
            out.metadata.len()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_scan(&mut c);
    c.final_summary();
}
