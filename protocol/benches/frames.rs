//! Frame codec and Fernet throughput (bytes of plaintext payload per second).
//!
//! Compare with the machine's limits (`openssl speed -evp aes-128-cbc`, `-evp sha256`, one core)
//! and with upstream's Python codec (vectors/README.md: Fernet build+parse 3.8 MB/s at 1 KiB,
//! 48.6 MB/s at 64 KiB; plaintext 716 MB/s at 64 KiB). Run:
//! `cargo bench -p wazuh-cluster-protocol --bench frames -- --warm-up-time 1 --measurement-time 3`
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, user + system), not wall
//! time: these are single-threaded CPU-bound loops, and on a shared 2-core machine wall time mostly
//! measured how often other jobs preempted the thread. Page faults and the allocator still count.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_main};
use wazuh_cluster_protocol::fernet::{Fernet, token_len};
use wazuh_cluster_protocol::frame::{
    Command, FrameDecoder, HEADER_LEN, encode_frame, encode_header,
};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_testkit::cluster_fernet;

const P: Profile = Profile::V3_9;
const SIZES: [(usize, &str); 3] = [
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (5 * 1024 * 1024, "5MiB"),
];
/// Above the largest Fernet token of the 5 MiB case.
const MAX: u32 = 8 * 1024 * 1024;
/// A socket read size, for the decoder's copying path.
const READ: usize = 64 * 1024;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Seals `plain` into a frame appended to `out`: header, then the token written in place.
fn seal(fernet: &Fernet, plain: &[u8], out: &mut BytesMut) {
    encode_header(P, 7, &Command::STR_UPD, token_len(plain.len()), out).unwrap();
    fernet.encrypt_into(plain, [9; 16], 1_700_000_000, out);
}

fn decode_one(wire: &Bytes) -> Bytes {
    let mut decoder = FrameDecoder::new(P, MAX);
    let mut input = wire.clone();
    decoder.decode(&mut input).unwrap().unwrap().payload
}

fn plaintext(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("plaintext");
    for (len, name) in SIZES {
        let plain = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = BytesMut::with_capacity(HEADER_LEN + len);
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                out.clear();
                encode_frame(P, 7, &Command::STR_UPD, black_box(&plain), &mut out).unwrap();
                black_box(out.len())
            })
        });
        let mut wire = BytesMut::new();
        encode_frame(P, 7, &Command::STR_UPD, &plain, &mut wire).unwrap();
        let wire = wire.freeze();
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| black_box(decode_one(black_box(&wire))).len())
        });
        group.bench_function(BenchmarkId::new("decode_64KiB_reads", name), |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(P, MAX);
                let mut got = 0;
                for chunk in wire.chunks(READ) {
                    let mut input = chunk;
                    while let Some(frame) = decoder.decode_slice(&mut input).unwrap() {
                        got += frame.payload.len();
                    }
                }
                black_box(got)
            })
        });
        group.bench_function(BenchmarkId::new("build_parse", name), |b| {
            b.iter(|| {
                out.clear();
                encode_frame(P, 7, &Command::STR_UPD, black_box(&plain), &mut out).unwrap();
                let wire = out.split().freeze();
                let len = decode_one(&wire).len();
                // Give the buffer back so the next iteration does not allocate.
                drop(wire);
                out.reserve(HEADER_LEN + len);
                black_box(len)
            })
        });
    }
    group.finish();
}

fn sealed(c: &mut Criterion<ThreadCpuTime>) {
    let fernet = cluster_fernet();
    let mut group = c.benchmark_group("fernet");
    for (len, name) in SIZES {
        let plain = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = BytesMut::with_capacity(HEADER_LEN + token_len(len));
        group.bench_function(BenchmarkId::new("encrypt_encode", name), |b| {
            b.iter(|| {
                out.clear();
                seal(&fernet, black_box(&plain), &mut out);
                black_box(out.len())
            })
        });
        let mut wire = BytesMut::new();
        seal(&fernet, &plain, &mut wire);
        let wire = wire.freeze();
        group.bench_function(BenchmarkId::new("decode_decrypt", name), |b| {
            b.iter(|| {
                let token = decode_one(black_box(&wire));
                black_box(fernet.decrypt(&token).unwrap().len())
            })
        });
        // What the connection does with a received frame, which it owns (the decoder assembled
        // it): opened in its own buffer. The setup's copy of the token is not timed.
        let token = decode_one(&wire);
        group.bench_function(BenchmarkId::new("decrypt_in_place", name), |b| {
            b.iter_batched_ref(
                || BytesMut::from(&token[..]),
                |buf| black_box(fernet.decrypt_in_place(buf).unwrap().len()),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(BenchmarkId::new("decrypt_to_vec", name), |b| {
            b.iter(|| black_box(fernet.decrypt(black_box(&token)).unwrap().len()))
        });
        group.bench_function(BenchmarkId::new("build_parse", name), |b| {
            b.iter(|| {
                let mut out = BytesMut::with_capacity(HEADER_LEN + token_len(len));
                seal(&fernet, black_box(&plain), &mut out);
                let token = decode_one(&out.freeze());
                black_box(fernet.decrypt(&token).unwrap().len())
            })
        });
    }
    group.finish();
}

/// Every group of this file, with the configuration given on the command line.
fn benches() {
    let mut c = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .configure_from_args();
    plaintext(&mut c);
    sealed(&mut c);
}

criterion_main!(benches);

/// CPU time of the benchmark thread.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, start: Self::Intermediate) -> Self::Value {
        start.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanosecond values as times and as decimal byte rates (MB/s, GB/s, as openssl speed).
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns {
            ns if ns < 1e3 => (1.0, "ns"),
            ns if ns < 1e6 => (1e-3, "µs"),
            ns if ns < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (units, giga, mega) = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "GB/s", "MB/s"),
            Throughput::Elements(n) => (n as f64, "Gelem/s", "Melem/s"),
        };
        let per_second = |ns: f64| units * 1e9 / ns;
        let (divisor, unit) = if per_second(typical_ns) >= 1e9 {
            (1e9, giga)
        } else {
            (1e6, mega)
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_second(*v) / divisor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
