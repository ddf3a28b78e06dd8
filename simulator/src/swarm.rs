//! Swarm options: every setting of a randomized run drawn from its one seed.
//!
//! Why (swarm testing, as TigerBeetle's VOPR and FoundationDB's simulation do it): a run where
//! every fault is possible at once explores less than many runs that each switch some faults
//! off and turn others up. So each seed picks its own cluster size, trees, link shape, fault
//! probabilities (some of them zero), workload pace and cluster.json intervals, all within sane
//! ranges, and prints them with the one command that replays the run
//! ([`SwarmOptions::replay_command`]).
//!
//! The draws come from [`Rng::fork`] streams of the seed, one per concern, so adding an option
//! later does not change what the others draw.

use std::fmt;
use std::time::Duration;

use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::integrity::memory::StorageFault;
use wazuh_cluster_sync::roles::NodeConfig;

use crate::net::{LinkParams, Pieces};

/// How likely each fault is, per node (or per link) and per second of the fault phase, in parts
/// per million; zero switches a fault off for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRates {
    /// A link stalls (both directions) for a while.
    pub stall: u32,
    /// A worker is partitioned from the master for a while.
    pub partition: u32,
    /// A link is reset.
    pub reset: u32,
    /// A node crashes (and restarts after a while).
    pub crash: u32,
    /// Per effect (not per second): the effect meets a storage fault part way.
    pub effect_failure: u32,
    /// A running node's wall clock is stepped (by up to `clock_jump_secs`, either way).
    pub clock_jump: u32,
}

/// Every setting of one randomized run. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmOptions {
    /// The seed everything here and in the run derives from.
    pub seed: u64,
    /// Workers (1 to 6).
    pub workers: usize,
    /// Agents in the master's `client.keys` (each reports to one worker, which writes its
    /// agent-info).
    pub agents: usize,
    /// Extra files in the master's integrity items, beside the fixed tree.
    pub extra_files: usize,
    /// Largest extra file (bytes); a few are this large, to cross in several chunks.
    pub max_file_size: usize,
    /// Files a worker starts with that differ from the master's (stale copies).
    pub stale_files: usize,
    /// Parameters of every link.
    pub link: LinkParams,
    /// Fault probabilities.
    pub rates: FaultRates,
    /// The disk fault an effect failure is: I/O errors or a full disk.
    pub disk_fault: StorageFault,
    /// Extra virtual time of every effect on a node with a slow disk (zero: no slow disk).
    pub slow_disk: Duration,
    /// Largest wall-clock step (seconds, either way): of a restarted node, and of a running
    /// node at the `clock_jump` rate.
    pub clock_jump_secs: i64,
    /// Mean time between operator edits on the master (`None`: no edits).
    pub edit_every: Option<Duration>,
    /// Mean time between agent-info writes on each worker (`None`: no churn).
    pub churn_every: Option<Duration>,
    /// How long faults and the workload go on before everything heals.
    pub fault_phase: Duration,
    /// cluster.json intervals: worker `sync_integrity`, `sync_files`, `keep_alive`,
    /// `connection_retry`.
    pub worker_intervals: [Duration; 4],
    /// cluster.json intervals: master `recalculate_integrity`, `check_worker_lastkeepalive`,
    /// `max_allowed_time_without_keepalive`.
    pub master_intervals: [Duration; 3],
}

/// A whole number of seconds in `lo..=hi`.
fn secs(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_secs(lo + rng.below(hi - lo + 1))
}

/// A rate: zero half the time (the swarm switch), otherwise up to `max` per million.
fn rate(rng: &mut Rng, max: u64) -> u32 {
    if rng.below(2) == 0 {
        0
    } else {
        u32::try_from(1 + rng.below(max)).unwrap_or(u32::MAX)
    }
}

/// Smallest and largest drawn send buffer: from a fraction of one 64 KiB write (every frame
/// meets a full buffer) to twice Linux's `tcp_wmem` maximum.
pub const SEND_BUFFER_RANGE: (usize, usize) = (16 << 10, 8 << 20);

/// A link's send buffer: unbounded half the time (every write taken at once, as the runs before
/// the bound existed), otherwise log-uniform in [`SEND_BUFFER_RANGE`], so the small buffers that
/// cut nearly every write and the large ones that cut only a package's chunks are drawn alike.
fn send_buffer(rng: &mut Rng) -> Option<usize> {
    if rng.below(2) == 0 {
        return None;
    }
    let (lo, hi) = SEND_BUFFER_RANGE;
    // Nine octaves from lo up to hi (lo << 9 == hi), each as likely, uniform inside.
    debug_assert_eq!(lo << 9, hi);
    let octave = lo << rng.below(9);
    Some(octave + rng.below(octave as u64) as usize)
}

impl SwarmOptions {
    /// The options of seed `seed`.
    pub fn from_seed(seed: u64) -> SwarmOptions {
        let root = Rng::from_seed(seed);
        let mut shape = root.fork(1);
        let mut net = root.fork(2);
        let mut faults = root.fork(3);
        let mut load = root.fork(4);
        let mut intervals = root.fork(5);
        let mut clocks = root.fork(6);
        let mut buffers = root.fork(7);

        let workers = 1 + shape.below(6) as usize;
        let agents = shape.below(25) as usize;
        let extra_files = shape.below(12) as usize;
        let max_file_size = [64, 4 << 10, 40 << 10, 300 << 10][shape.below(4) as usize];
        let stale_files = shape.below(4) as usize;

        let link = LinkParams {
            latency: Duration::from_micros(50 + net.below(40_000)),
            bandwidth: match net.below(3) {
                0 => None,
                _ => Some((1 + net.below(100)) << 20),
            },
            pieces: match net.below(3) {
                0 => Pieces::Whole,
                _ => Pieces::Random {
                    max: 1 + net.below(4096) as usize,
                },
            },
            send_buffer: send_buffer(&mut buffers),
        };

        let rates = FaultRates {
            stall: rate(&mut faults, 100_000),
            partition: rate(&mut faults, 60_000),
            reset: rate(&mut faults, 100_000),
            crash: rate(&mut faults, 40_000),
            effect_failure: rate(&mut faults, 50_000),
            clock_jump: rate(&mut clocks, 40_000),
        };
        let disk_fault = match faults.below(2) {
            0 => StorageFault::Errors,
            _ => StorageFault::DiskFull,
        };
        let slow_disk = match faults.below(3) {
            0 => Duration::from_millis(1 + faults.below(500)),
            _ => Duration::ZERO,
        };
        let clock_jump_secs = match faults.below(2) {
            0 => 0,
            _ => 1 + faults.below(600) as i64,
        };

        let edit_every = (load.below(4) != 0).then(|| secs(&mut load, 2, 30));
        let churn_every = (load.below(4) != 0).then(|| secs(&mut load, 2, 30));
        let fault_phase = secs(&mut load, 20, 120);

        let keep_alive = secs(&mut intervals, 1, 10);
        let worker_intervals = [
            secs(&mut intervals, 1, 15),
            secs(&mut intervals, 1, 15),
            keep_alive,
            secs(&mut intervals, 1, 10),
        ];
        let check = secs(&mut intervals, 1, 10);
        // Several keepalives fit in the allowance, or a healthy worker would be dropped.
        let max_without = keep_alive * 3 + secs(&mut intervals, 5, 60);
        let master_intervals = [secs(&mut intervals, 1, 10), check, max_without];

        SwarmOptions {
            seed,
            workers,
            agents,
            extra_files,
            max_file_size,
            stale_files,
            link,
            rates,
            disk_fault,
            slow_disk,
            clock_jump_secs,
            edit_every,
            churn_every,
            fault_phase,
            worker_intervals,
            master_intervals,
        }
    }

    /// Sets the drawn intervals on a node's cluster.json.
    pub fn apply_intervals(&self, c: &mut NodeConfig) {
        let i = &mut c.items.intervals;
        [
            i.worker.sync_integrity,
            i.worker.sync_files,
            i.worker.keep_alive,
            i.worker.connection_retry,
        ] = self.worker_intervals;
        [
            i.master.recalculate_integrity,
            i.master.check_worker_lastkeepalive,
            i.master.max_allowed_time_without_keepalive,
        ] = self.master_intervals;
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -p wazuh-cluster-sim --release --bin vopr -- --seed {}",
            self.seed
        )
    }
}

impl fmt::Display for SwarmOptions {
    /// One `key=value` line per concern, stable (the runner prints it at the start of a run).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |d: Option<Duration>| d.map_or("off".to_owned(), |d| format!("{d:?}"));
        writeln!(
            f,
            "cluster: workers={} agents={} extra_files={} max_file_size={} stale_files={}",
            self.workers, self.agents, self.extra_files, self.max_file_size, self.stale_files
        )?;
        writeln!(
            f,
            "links: latency={:?} bandwidth={} pieces={:?} send_buffer={}",
            self.link.latency,
            self.link
                .bandwidth
                .map_or("unlimited".to_owned(), |b| format!("{b}B/s")),
            self.link.pieces,
            self.link
                .send_buffer
                .map_or("unbounded".to_owned(), |b| format!("{b}B")),
        )?;
        let r = &self.rates;
        writeln!(
            f,
            "faults (per million per second): stall={} partition={} reset={} crash={} \
             clock_jump={}; effect_failure={} per million effects ({:?}); slow_disk={:?}; \
             clock_jump=±{}s",
            r.stall,
            r.partition,
            r.reset,
            r.crash,
            r.clock_jump,
            r.effect_failure,
            self.disk_fault,
            self.slow_disk,
            self.clock_jump_secs
        )?;
        writeln!(
            f,
            "workload: edits every {} churn every {} for {:?}",
            opt(self.edit_every),
            opt(self.churn_every),
            self.fault_phase
        )?;
        let [si, sf, ka, cr] = self.worker_intervals;
        let [ri, ck, mx] = self.master_intervals;
        write!(
            f,
            "intervals: sync_integrity={si:?} sync_files={sf:?} keep_alive={ka:?} \
             connection_retry={cr:?} recalculate_integrity={ri:?} \
             check_worker_lastkeepalive={ck:?} max_allowed_time_without_keepalive={mx:?}"
        )
    }
}
