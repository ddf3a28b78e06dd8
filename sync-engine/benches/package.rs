//! Package cost: building and reading a 1 GiB 3.9 package of mixed-size files, in memory (the
//! engine's work: ZIP framing, CRC-32, bounded reads; no disk).
//!
//! Run: `cargo bench -p wazuh-cluster-sync --bench package -- --warm-up-time 1 --measurement-time 5`

use std::io::Cursor;

use criterion::{Criterion, Throughput};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

/// (file size, count): 1 GiB in all, from many small files to a few large ones.
const MIX: &[(usize, usize)] = &[
    (1 << 10, 16_384),
    (64 << 10, 2_048),
    (1 << 20, 256),
    (16 << 20, 30),
];

fn tree() -> (MemoryStorage, Vec<InstallPath>, u64) {
    let mut storage = MemoryStorage::new();
    let mut keys = Vec::new();
    let mut total = 0u64;
    for (size, count) in MIX {
        for i in 0..*count {
            let key =
                InstallPath::new(&format!("/etc/lists/s{size}/d{:03}/f{i:05}", i / 1000)).unwrap();
            let mut data = vec![(i % 251) as u8; *size];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            storage
                .add_file(&key, data, Timestamp::from_secs(1_562_000_000), 0o660)
                .unwrap();
            keys.push(key);
            total += *size as u64;
        }
    }
    (storage, keys, total)
}

/// Builds the package into `sink` (emptied first; its capacity is reused, so the measurement is
/// the builder's work, not the kernel zeroing 1 GiB of fresh pages).
fn build(storage: &MemoryStorage, keys: &[InstallPath], mut sink: Vec<u8>) -> Vec<u8> {
    sink.clear();
    let mut builder = PackageBuilder::new(Cursor::new(sink));
    for key in keys {
        builder.add_member_from_storage(storage, key).unwrap();
    }
    builder
        .finish(b"{}", Timestamp::from_secs(1_800_000_000))
        .unwrap()
        .into_inner()
}

fn bench_package(c: &mut Criterion) {
    let (storage, keys, total) = tree();
    let capacity = total as usize + keys.len() * 200 + (1 << 20);
    let zip = build(&storage, &keys, Vec::with_capacity(capacity));
    let mut sink = Vec::with_capacity(capacity);
    let mut group = c.benchmark_group("package_1GiB_mixed");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(total));
    group.bench_function("build", |b| {
        b.iter(|| {
            sink = build(&storage, &keys, std::mem::take(&mut sink));
            sink.len()
        })
    });
    group.bench_function("open_and_verify", |b| {
        b.iter(|| {
            let limits = PackageLimits {
                max_total_size: 2 << 30,
                ..PackageLimits::default()
            };
            let mut reader = PackageReader::open(Cursor::new(zip.as_slice()), limits).unwrap();
            reader.verify_all().unwrap();
            reader.members().len()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_package(&mut c);
    c.final_summary();
}
