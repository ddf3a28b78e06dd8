//! The randomized runner (after TigerBeetle's VOPR): one seed → [`SwarmOptions`] → a cluster, a
//! fault phase with the workload, healing, a liveness phase, a release window; the checkers of
//! [`crate::checkers`] after every event.
//!
//! ```text
//!   seed ─► SwarmOptions ─► cluster (trees, links, intervals)
//!                              │
//!   fault phase ── every 100 ms of virtual time: draw stalls, partitions, resets, crashes
//!   (restart later, wall clock stepped), operator edits on the master, agent-info writes on
//!   workers; every effect draws its disk fault; checkers after every event
//!                              │
//!   heal ── unstall, heal, restart, disarm disk faults; workload stops
//!                              │
//!   liveness ── every worker converges to the master (and the master holds every worker's
//!   agent-info) within a bound computed from the intervals, else NotConverged names who/what
//!                              │
//!   release window ── every lock and pending request seen free once
//! ```
//!
//! A run is a pure function of its seed: [`run_seed`] twice gives the same [`RunReport`].

use std::collections::BTreeMap;
use std::time::Duration;

use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::integrity::items::NodeType;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

use crate::checkers::{Checker, Violation};
use crate::clock::VirtualTime;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::fixtures::{OLD, START, master_tree_with_keys};
use crate::net::LinkId;
use crate::sim::{DiskFaults, NodeIdx, SimConfig};
use crate::swarm::SwarmOptions;
use crate::tree::{TreeFile, integrity_diff, owned_files, storage_from};

/// Virtual time between two fault draws.
const TICK: Duration = Duration::from_millis(100);

/// Events kept for a failure report.
const RECENT_EVENTS: usize = 24;

/// What a run that held every invariant reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The trace hash at the end.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Faults injected (stalls, partitions, resets, crashes).
    pub faults: u64,
    /// Virtual time from healing to convergence.
    pub converged_after: Duration,
    /// Times a link's send buffer filled and held back a write (see
    /// [`SimStats::send_buffer_full`](crate::sim::SimStats::send_buffer_full)).
    pub send_buffer_full: u64,
}

/// A run that broke an invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub violation: Violation,
    /// When (virtual time).
    pub at: VirtualTime,
    /// The trace hash when it broke.
    pub trace_hash: u64,
    /// The last node events and faults, oldest first, one line each.
    pub recent: Vec<String>,
}

impl Failure {
    /// The command that replays the run.
    pub fn replay_command(&self) -> String {
        SwarmOptions::from_seed(self.seed).replay_command()
    }
}

/// Deterministic content of `len` bytes (text lines, so a failing diff is readable).
fn content(rng: &mut Rng, tag: &str, len: usize) -> Vec<u8> {
    let mut out = format!("{tag}\n").into_bytes();
    while out.len() < len {
        out.extend_from_slice(format!("{:016x}\n", rng.next_u64()).as_bytes());
    }
    out.truncate(len.max(tag.len() + 1));
    out
}

/// The agent-info path of agent `i`.
fn agent_info_path(i: usize) -> String {
    format!("/queue/agent-info/agent-{i}-any")
}

fn agent_info_body(i: usize, version: u64) -> String {
    format!(
        "Linux |agent-{i} |5.4.0 |#{version} SMP |x86_64\nWazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n"
    )
}

/// Paths of the extra master files the operator edits.
fn extra_path(i: usize) -> String {
    match i % 4 {
        0 => format!("/etc/rules/swarm_{i}.xml"),
        1 => format!("/etc/decoders/swarm_{i}.xml"),
        2 => format!("/etc/lists/swarm-{i}"),
        _ => format!("/etc/shared/default/swarm_{i}.txt"),
    }
}

/// Builds the cluster of `opts`.
fn build(opts: &SwarmOptions) -> Result<Cluster, String> {
    let mut rng = Rng::from_seed(opts.seed).fork(7);
    let keys: String = (1..=opts.agents)
        .map(|i| format!("{i:03} agent-{i} any {:064x}\n", i * 7919))
        .collect();
    let mut master = master_tree_with_keys(keys);
    for i in 0..opts.extra_files {
        let len = 1 + rng.below(opts.max_file_size as u64) as usize;
        let data = content(&mut rng, &extra_path(i), len);
        master.push(TreeFile::new(&extra_path(i), data, OLD));
    }
    let stale_candidates: Vec<String> = master
        .iter()
        .filter(|f| f.path.starts_with("/etc/rules/") || f.path.starts_with("/etc/lists/"))
        .map(|f| f.path.clone())
        .collect();
    let master_storage = storage_from(master).map_err(|e| e.to_string())?;
    let mut builder = ClusterBuilder::new(SimConfig {
        seed: opts.seed,
        link: opts.link,
        tap: false,
        ..SimConfig::default()
    })
    .master("master01", master_storage);
    let fresh = Timestamp::from_secs(START - 60);
    for w in 0..opts.workers {
        let mut files: Vec<TreeFile> = (1..=opts.agents)
            .filter(|i| i % opts.workers == w)
            .map(|i| TreeFile::new(&agent_info_path(i), agent_info_body(i, 0), fresh))
            .collect();
        for _ in 0..opts.stale_files.min(stale_candidates.len()) {
            let path = &stale_candidates[rng.below(stale_candidates.len() as u64) as usize];
            if files.iter().all(|f| &f.path != path) {
                let data = content(&mut rng, "stale copy", 64);
                files.push(TreeFile::new(path, data, OLD));
            }
        }
        builder = builder.worker(
            &format!("worker{}", w + 1),
            storage_from(files).map_err(|e| e.to_string())?,
        );
    }
    let intervals = opts.clone();
    builder
        .configure(move |c| intervals.apply_intervals(c))
        .build()
        .map_err(|e| e.to_string())
}

/// One randomized run in progress.
struct Run {
    opts: SwarmOptions,
    cluster: Cluster,
    checker: Checker,
    rng: Rng,
    /// Draws of the live clock jumps (a stream of their own: switching them on changes no other
    /// fault's draws).
    clock_rng: Rng,
    /// Faults to undo: when, and what.
    stalled: BTreeMap<LinkId, VirtualTime>,
    partitioned: BTreeMap<NodeIdx, VirtualTime>,
    crashed: BTreeMap<NodeIdx, VirtualTime>,
    faults: u64,
    next_edit: Option<VirtualTime>,
    next_churn: Vec<Option<VirtualTime>>,
    edits: u64,
    /// Faults and workload steps, for the failure report: (time, line).
    log: Vec<(VirtualTime, String)>,
}

/// Removes from `faults` the ones due at `now` (all when `all`) and returns them, in key order.
fn take_due<K: Copy + Ord>(
    faults: &mut BTreeMap<K, VirtualTime>,
    now: VirtualTime,
    all: bool,
) -> Vec<K> {
    let due: Vec<K> = faults
        .iter()
        .filter(|(_, at)| all || **at <= now)
        .map(|(k, _)| *k)
        .collect();
    for k in &due {
        faults.remove(k);
    }
    due
}

/// A random duration around `mean` (from half to one and a half of it).
fn around(rng: &mut Rng, mean: Duration) -> Duration {
    let ms = mean.as_millis() as u64;
    Duration::from_millis(ms / 2 + rng.below(ms.max(1)))
}

impl Run {
    fn new(opts: SwarmOptions) -> Result<Run, String> {
        let mut cluster = build(&opts)?;
        let mut rng = Rng::from_seed(opts.seed).fork(8);
        for n in 0..cluster.sim.len() {
            let slow = rng.below(2) == 0;
            cluster.sim.set_disk_faults(
                n,
                DiskFaults {
                    fail_per_million: opts.rates.effect_failure,
                    kind: Some(opts.disk_fault),
                    extra_latency: if slow { opts.slow_disk } else { Duration::ZERO },
                },
            );
        }
        let checker = Checker::new(&cluster.sim, cluster.master, &cluster.workers);
        let clock_rng = Rng::from_seed(opts.seed).fork(9);
        let now = cluster.sim.now();
        let next_edit = opts.edit_every.map(|d| now.plus(around(&mut rng, d)));
        let next_churn = (0..opts.workers)
            .map(|_| opts.churn_every.map(|d| now.plus(around(&mut rng, d))))
            .collect();
        Ok(Run {
            opts,
            cluster,
            checker,
            rng,
            clock_rng,
            stalled: BTreeMap::new(),
            partitioned: BTreeMap::new(),
            crashed: BTreeMap::new(),
            faults: 0,
            next_edit,
            next_churn,
            edits: 0,
            log: Vec::new(),
        })
    }

    fn note(&mut self, line: String) {
        let now = self.cluster.sim.now();
        self.log.push((now, line));
    }

    fn fail(&self, violation: Violation) -> Box<Failure> {
        let sim = &self.cluster.sim;
        let mut recent: Vec<(VirtualTime, String)> = sim
            .events()
            .iter()
            .rev()
            .take(RECENT_EVENTS)
            .map(|e| (e.at, format!("{}: {:?}", sim.name(e.node), e.event)))
            .collect();
        recent.extend(self.log.iter().rev().take(RECENT_EVENTS).cloned());
        recent.sort_by_key(|(at, _)| *at);
        let skip = recent.len().saturating_sub(RECENT_EVENTS);
        Box::new(Failure {
            seed: self.opts.seed,
            violation,
            at: sim.now(),
            trace_hash: sim.trace_hash(),
            recent: recent
                .into_iter()
                .skip(skip)
                .map(|(at, line)| format!("[{at}] {line}"))
                .collect(),
        })
    }

    /// Processes every event up to `until` with the checkers after each, then moves the clock.
    fn run_checked(&mut self, until: VirtualTime) -> Result<(), Box<Failure>> {
        while self.cluster.sim.next_event_at().is_some_and(|t| t <= until) {
            self.cluster.sim.step();
            if let Err(v) = self.checker.after_event(&self.cluster.sim) {
                return Err(self.fail(v));
            }
        }
        let rest = until.since(self.cluster.sim.now());
        self.cluster.sim.run_for(rest).map_err(|e| {
            self.fail(Violation::Livelock {
                detail: e.to_string(),
            })
        })
    }

    /// Draws `rate` (per million per second) for one tick.
    fn hit(&mut self, rate: u32) -> bool {
        rate > 0 && self.rng.below(10_000_000) < u64::from(rate)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len() as u64) as usize])
    }

    fn inject_faults(&mut self) {
        let now = self.cluster.sim.now();
        let rates = self.opts.rates;
        let hold = |rng: &mut Rng| Duration::from_millis(500 + rng.below(20_000));
        if self.hit(rates.stall) {
            let links = self.cluster.sim.open_links();
            if let Some(link) = self.pick(&links) {
                let until = now.plus(hold(&mut self.rng));
                self.cluster.sim.stall(link);
                self.stalled.insert(link, until);
                self.faults += 1;
                self.note(format!("fault: stall link {} until {until}", link.0));
            }
        }
        if self.hit(rates.reset) {
            let links = self.cluster.sim.open_links();
            if let Some(link) = self.pick(&links) {
                self.cluster.sim.reset(link);
                self.stalled.remove(&link);
                self.faults += 1;
                self.note(format!("fault: reset link {}", link.0));
            }
        }
        if self.hit(rates.partition) {
            let workers = self.cluster.workers.clone();
            if let Some(w) = self.pick(&workers) {
                let until = now.plus(hold(&mut self.rng));
                self.cluster.sim.partition(self.cluster.master, w);
                self.partitioned.insert(w, until);
                self.faults += 1;
                let name = self.cluster.sim.name(w).to_owned();
                self.note(format!("fault: partition master | {name} until {until}"));
            }
        }
        if self.hit(rates.crash) {
            let n = self.rng.below(self.cluster.sim.len() as u64) as usize;
            if !self.cluster.sim.is_down(n) {
                let after_ops = self.rng.below(12);
                let until = now.plus(hold(&mut self.rng));
                self.cluster.sim.crash(n, after_ops);
                self.crashed.insert(n, until);
                self.faults += 1;
                let name = self.cluster.sim.name(n).to_owned();
                self.note(format!(
                    "fault: crash {name} (storage stops after {after_ops} operations) until {until}"
                ));
            }
        }
        let max = self.opts.clock_jump_secs;
        let rate = u64::from(rates.clock_jump);
        if max > 0 && rate > 0 && self.clock_rng.below(10_000_000) < rate {
            let n = self.clock_rng.below(self.cluster.sim.len() as u64) as usize;
            let size = 1 + self.clock_rng.below(max as u64) as i64;
            let jump = if self.clock_rng.below(2) == 0 {
                size
            } else {
                -size
            };
            if !self.cluster.sim.is_down(n) {
                self.cluster.sim.jump_wall_clock(n, jump);
                self.faults += 1;
                let name = self.cluster.sim.name(n).to_owned();
                self.note(format!("fault: {name}'s wall clock steps {jump:+}s"));
            }
        }
        self.undo_due(now, false);
    }

    /// Undoes the faults due at `now` (all of them when `all`).
    fn undo_due(&mut self, now: VirtualTime, all: bool) {
        for link in take_due(&mut self.stalled, now, all) {
            self.cluster.sim.unstall(link);
        }
        for w in take_due(&mut self.partitioned, now, all) {
            self.cluster.sim.heal(self.cluster.master, w);
        }
        let restarts = take_due(&mut self.crashed, now, all);
        for n in restarts {
            let max = self.opts.clock_jump_secs;
            let jump = if max == 0 || all {
                0
            } else {
                self.rng.below(2 * max as u64 + 1) as i64 - max
            };
            self.cluster.sim.restart(n, jump);
            let name = self.cluster.sim.name(n).to_owned();
            self.note(format!("restart {name} (wall clock {jump:+}s)"));
        }
    }

    /// Operator edits on the master and agent-info writes on workers that are due.
    fn workload(&mut self) -> Result<(), Box<Failure>> {
        let now = self.cluster.sim.now();
        if let (Some(at), Some(every)) = (self.next_edit, self.opts.edit_every)
            && at <= now
        {
            self.next_edit = Some(now.plus(around(&mut self.rng, every)));
            self.edit_master()?;
        }
        for w in 0..self.opts.workers {
            let (Some(at), Some(every)) = (self.next_churn[w], self.opts.churn_every) else {
                continue;
            };
            if at <= now {
                self.next_churn[w] = Some(now.plus(around(&mut self.rng, every)));
                self.churn(w);
            }
        }
        Ok(())
    }

    fn edit_master(&mut self) -> Result<(), Box<Failure>> {
        self.edits += 1;
        // An edit of an extra file, or a new one.
        let i = self.rng.below(self.opts.extra_files as u64 + 2) as usize;
        let path = extra_path(i);
        let len = 1 + self.rng.below(self.opts.max_file_size as u64) as usize;
        let data = content(&mut self.rng, &format!("{path} edit {}", self.edits), len);
        let (m, sim) = (self.cluster.master, &mut self.cluster.sim);
        let unix = sim.node(m).unix_time(sim.instant());
        let Ok(p) = InstallPath::new(&path) else {
            return Ok(());
        };
        if sim.storage_mut(m).add_file(&p, data, unix, 0o660).is_ok() {
            self.checker.allow(m, p);
            if let Err(v) = self.checker.record_master(&self.cluster.sim) {
                return Err(self.fail(v));
            }
            self.note(format!("operator: edit {path} ({len} bytes)"));
        }
        Ok(())
    }

    fn churn(&mut self, w: usize) {
        let n = self.cluster.workers[w];
        let mine: Vec<usize> = (1..=self.opts.agents)
            .filter(|i| i % self.opts.workers == w)
            .collect();
        let Some(i) = self.pick(&mine) else { return };
        if self.cluster.sim.is_down(n) {
            return;
        }
        let version = self.rng.next_u64() % 1_000_000;
        let sim = &mut self.cluster.sim;
        let unix = sim.node(n).unix_time(sim.instant());
        let Ok(p) = InstallPath::new(&agent_info_path(i)) else {
            return;
        };
        if sim
            .storage_mut(n)
            .add_file(&p, agent_info_body(i, version).into_bytes(), unix, 0o660)
            .is_ok()
        {
            let name = sim.name(n).to_owned();
            self.note(format!("agent: {name} writes {p}"));
        }
    }

    /// The liveness bound after healing, from the intervals: a worker the master dropped for
    /// silence rejoins, the master rescans, a full integrity and agent-info round runs (twice,
    /// one may have been cut), a stuck transfer times out, plus the time the bytes take at the
    /// link's bandwidth and through its send buffer.
    fn liveness_bound(&self) -> Duration {
        let [si, sf, _ka, cr] = self.opts.worker_intervals;
        let [ri, ck, mx] = self.opts.master_intervals;
        let c = self.cluster.sim.node(self.cluster.master).config();
        let receiving = c.timeout_receiving_file();
        let request = c.items.intervals.communication.timeout_cluster_request;
        let files = (self.opts.extra_files as u64 + 16) * self.opts.max_file_size as u64;
        // On the wire a package is Fernet tokens: base64 of the ciphertext, 4/3 and a little.
        let bytes = files * 3 / 2;
        // A small send buffer on a slow link (16 KiB per 40 ms) takes longer than the bandwidth
        // says; the second is the rounding of the bound before the buffer existed.
        let transfer = self.opts.link.transfer_time(bytes) + Duration::from_secs(1);
        mx + ck + cr + (si + sf + ri) * 2 + receiving + request + transfer + Duration::from_secs(30)
    }

    /// Worker `w`'s differing master-owned files and the agent-info the master lacks.
    fn lagging(&self, w: NodeIdx) -> (Vec<InstallPath>, Vec<InstallPath>) {
        let sim = &self.cluster.sim;
        let m = self.cluster.master;
        let items = &sim.node(m).config().items;
        let differing = integrity_diff(sim.storage(m), sim.storage(w), items);
        let on_master = owned_files(sim.storage(m), items, NodeType::Worker);
        let missing = owned_files(sim.storage(w), items, NodeType::Worker)
            .into_iter()
            .filter(|(p, s)| on_master.get(p).is_none_or(|o| o.mtime < s.mtime))
            .map(|(p, _)| p)
            .collect();
        (differing, missing)
    }

    fn converged(&self) -> bool {
        self.cluster.workers.iter().all(|&w| {
            let (d, a) = self.lagging(w);
            d.is_empty() && a.is_empty()
        })
    }

    /// Runs the phases; `after_heal` acts on the healed cluster before the liveness phase (the
    /// injection tests break it there).
    fn go(mut self, after_heal: impl FnOnce(&mut Cluster)) -> Result<RunReport, Box<Failure>> {
        let end_of_faults = VirtualTime::ZERO.plus(self.opts.fault_phase);
        while self.cluster.sim.now() < end_of_faults {
            let next = self.cluster.sim.now().plus(TICK);
            self.run_checked(next)?;
            self.inject_faults();
            self.workload()?;
        }
        // Heal everything; the workload stops.
        let healed_at = self.cluster.sim.now();
        self.undo_due(healed_at, true);
        for n in 0..self.cluster.sim.len() {
            self.cluster.sim.set_disk_faults(n, DiskFaults::default());
        }
        self.note("heal: links unstalled, partitions healed, nodes restarted".to_owned());
        after_heal(&mut self.cluster);
        let bound = self.liveness_bound();
        let deadline = healed_at.plus(bound);
        while !self.converged() {
            if self.cluster.sim.now() >= deadline {
                let (worker, (differing, agent_info_missing)) = self
                    .cluster
                    .workers
                    .iter()
                    .map(|&w| (w, self.lagging(w)))
                    .find(|(_, (d, a))| !d.is_empty() || !a.is_empty())
                    .map(|(w, l)| (self.cluster.sim.name(w).to_owned(), l))
                    .unwrap_or_default();
                return Err(self.fail(Violation::NotConverged {
                    worker,
                    differing,
                    agent_info_missing,
                    bound_secs: bound.as_secs(),
                }));
            }
            let next = self.cluster.sim.now().plus(Duration::from_secs(1));
            self.run_checked(next)?;
        }
        let converged_after = self.cluster.sim.now().since(healed_at);
        // The release window: longer than any lock or request may legitimately be held.
        let c = self.cluster.sim.node(self.cluster.master).config();
        let window = c.timeout_receiving_file()
            + c.items.intervals.communication.timeout_cluster_request
            + (self.opts.worker_intervals[0] + self.opts.worker_intervals[1]) * 2;
        let end = self.cluster.sim.now().plus(window);
        self.checker.open_release_window(&self.cluster.sim);
        while self.cluster.sim.now() < end {
            let next = self.cluster.sim.now().plus(TICK);
            self.run_checked(next)?;
            self.checker.watch_release(&self.cluster.sim);
        }
        if let Err(v) = self.checker.close_release_window(&self.cluster.sim) {
            return Err(self.fail(v));
        }
        let sim = &self.cluster.sim;
        Ok(RunReport {
            seed: self.opts.seed,
            trace_hash: sim.trace_hash(),
            events: sim.stats().events,
            faults: self.faults,
            converged_after,
            send_buffer_full: sim.stats().send_buffer_full,
        })
    }
}

/// Runs seed `seed` (options from [`SwarmOptions::from_seed`]).
///
/// # Errors
/// The first invariant the run broke, with its recent events.
pub fn run_seed(seed: u64) -> Result<RunReport, Box<Failure>> {
    run_options(SwarmOptions::from_seed(seed))
}

/// Runs with explicit options (a shrunk scenario's).
///
/// # Errors
/// See [`run_seed`].
pub fn run_options(opts: SwarmOptions) -> Result<RunReport, Box<Failure>> {
    run_options_after_heal(opts, |_| {})
}

/// Like [`run_options`], with `after_heal` acting on the cluster once every fault is undone and
/// before the liveness phase: how a test injects what the liveness checker guards against.
///
/// # Errors
/// See [`run_seed`].
pub fn run_options_after_heal(
    opts: SwarmOptions,
    after_heal: impl FnOnce(&mut Cluster),
) -> Result<RunReport, Box<Failure>> {
    let seed = opts.seed;
    let run = Run::new(opts).map_err(|e| {
        Box::new(Failure {
            seed,
            violation: Violation::SetUp { detail: e },
            at: VirtualTime::ZERO,
            trace_hash: 0,
            recent: Vec::new(),
        })
    })?;
    run.go(after_heal)
}
