//! Comparison of two 1,000,000-entry metadata documents that differ in 10 % of their entries
//! (missing, extra and changed files, in equal parts), plus the cluster_control.json writing.
//!
//! Run: `cargo bench -p wazuh-cluster-sync --bench compare -- --warm-up-time 1 --measurement-time 3`
//!
//! Times are the benchmark thread's CPU time (`cpu_time::ThreadTime`): the machine is shared by
//! several builds, and wall time would measure preemption.

mod support;

use criterion::Criterion;
use wazuh_cluster_sync::integrity::compare::SyncPlan;
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::metadata::{FileMetadata, IntegrityMetadata};
use wazuh_cluster_sync::integrity::path::InstallPath;

const ENTRIES: usize = 1_000_000;

fn meta(md5: u64) -> FileMetadata {
    FileMetadata::plain(
        "2019-07-01 16:53:20".into(),
        "/etc/rules/",
        Some(format!("{md5:032x}")),
    )
}

fn path(i: usize) -> InstallPath {
    InstallPath::new(&format!("/etc/rules/d{:04}/r{i:07}.xml", i / 1000)).unwrap()
}

/// Master: entries 0..N. Worker: the same, except every 30th is absent (missing), every 30th+10
/// has another digest (shared), and every 30th+20 is replaced by a worker-only name (extra).
fn documents() -> (IntegrityMetadata, IntegrityMetadata) {
    let master = IntegrityMetadata((0..ENTRIES).map(|i| (path(i), meta(i as u64))).collect());
    let worker = IntegrityMetadata(
        (0..ENTRIES)
            .filter_map(|i| match i % 30 {
                0 => None,
                10 => Some((path(i), meta(u64::MAX - i as u64))),
                20 => Some((
                    InstallPath::new(&format!("/etc/rules/x/w{i:07}.xml")).unwrap(),
                    meta(i as u64),
                )),
                _ => Some((path(i), meta(i as u64))),
            })
            .collect(),
    );
    (master, worker)
}

fn bench_compare(c: &mut Criterion) {
    let (master, worker) = documents();
    let items = ClusterItems::defaults_3_9();
    let residue = |r: usize| (0..ENTRIES).filter(|i| i % 30 == r).count();
    let (missing, shared) = (residue(0) + residue(20), residue(10));
    let mut group = c.benchmark_group("compare_1M");
    group.sample_size(10);
    group.bench_function("sync_plan", |b| {
        b.iter_custom(|iters| {
            support::cpu_time(iters, || {
                let plan = SyncPlan::compare(&master, &worker, &items, "worker1").unwrap();
                let counts = plan.counts();
                assert_eq!(
                    (counts.missing, counts.shared, counts.extra),
                    (missing, shared, residue(20))
                );
                plan
            })
        })
    });
    let plan = SyncPlan::compare(&master, &worker, &items, "worker1").unwrap();
    group.bench_function("cluster_control_json", |b| {
        b.iter_custom(|iters| support::cpu_time(iters, || plan.to_upstream_json()))
    });
    group.finish();
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` has no docs.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_compare(&mut c);
    c.final_summary();
}
