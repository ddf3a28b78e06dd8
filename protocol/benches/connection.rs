//! Connection-core throughput: a file sent from one core to another through `send_file` /
//! `handle_input`, counting file bytes per second end to end (framing, Fernet seal and open,
//! SHA-256 on both sides, replies), with the stream delivered in 64 KiB reads; and the per-call
//! cost of `handle_input` when the stream arrives one byte at a time.
//!
//! Upstream's Python codec alone does Fernet build+parse at 44.5 MB/s for 5 MiB payloads
//! (vectors/README.md); the machine does AES-128-CBC at 1.08 GB/s and SHA-256 at 1.38 GB/s on
//! one core. Run:
//! `cargo bench -p wazuh-cluster-protocol --bench connection -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Event, Side, WallClock};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::CLUSTER_KEY;

const FILE_LEN: usize = 20 << 20;
const READ: usize = 64 * 1024;

fn cores(key: Option<&str>, t0: Instant) -> (Connection, Connection) {
    let config = || {
        let key = key.map(|k| ClusterKey::new(k).unwrap());
        let mut config =
            ConnectionConfig::new(Profile::V3_9, key, WallClock::new(t0, 1_767_225_600));
        config.require_hello = false;
        config
    };
    let client = Connection::new(config(), Side::Client, Rng::from_seed(1), t0);
    let server = Connection::new(config(), Side::Server, Rng::from_seed(2), t0);
    (client, server)
}

/// Sends `file` from a fresh client core to a fresh server core; returns the bytes the server
/// streamed out as `FileChunk` events.
fn send_file(key: Option<&str>, file: &[u8], read: usize) -> u64 {
    let t0 = origin();
    let (mut client, mut server) = cores(key, t0);
    let transfer = client
        .send_file(t0, b"/queue/cluster/worker1/bench.zip")
        .unwrap();
    let mut offset = 0;
    let mut received = 0u64;
    loop {
        let mut moved = false;
        while let Some(bytes) = client.poll_transmit() {
            moved = true;
            for piece in bytes.chunks(read) {
                server.handle_input(t0, piece);
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            moved = true;
            for piece in bytes.chunks(read) {
                client.handle_input(t0, piece);
            }
        }
        while let Some(event) = server.poll_event() {
            if let Event::FileChunk { data, .. } = event {
                received += data.len() as u64;
            }
        }
        while let Some(event) = client.poll_event() {
            moved = true;
            match event {
                Event::FileChunkWanted { max_len, .. } if offset < file.len() => {
                    let end = file.len().min(offset + max_len);
                    client.file_chunk(t0, transfer, &file[offset..end]).unwrap();
                    offset = end;
                }
                Event::FileChunkWanted { .. } => client.finish_file(t0, transfer).unwrap(),
                Event::FileSent { .. } => return received,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(moved, "exchange stalled");
    }
}

fn file_transfer(c: &mut Criterion) {
    let file: Vec<u8> = (0..FILE_LEN).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("connection/send_file_20MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(FILE_LEN as u64));
    for (name, key) in [("plaintext", None), ("fernet", Some(CLUSTER_KEY))] {
        group.bench_with_input(BenchmarkId::new(name, "64KiB_reads"), &key, |b, key| {
            b.iter(|| assert_eq!(send_file(*key, black_box(&file), READ), FILE_LEN as u64));
        });
    }
    group.finish();

    let small = &file[..1 << 20];
    let mut group = c.benchmark_group("connection/send_file_1MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("plaintext/1_byte_reads", |b| {
        b.iter(|| assert_eq!(send_file(None, black_box(small), 1), small.len() as u64));
    });
    group.finish();
}

fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    file_transfer(&mut criterion);
}

criterion_main!(benches);
