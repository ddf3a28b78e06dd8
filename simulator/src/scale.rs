//! The scale cluster: 1 master and N workers sharing A agents (client.keys on the master, one
//! fresh agent-info file per agent spread over the workers), upstream's default intervals, the
//! daemon's default limits, a 1 Gbit/s link with 200 µs latency and a Linux-like 4 MiB send
//! buffer per direction (the network holds at most that much of what a node writes, as a kernel
//! would). The 25-worker / 50,000-agent size is a test (`tests/scale.rs`); larger ones run with
//! `cargo run -p wazuh-cluster-sim --release --bin scale -- WORKERS AGENTS`, which prints the
//! figures of a run.

use std::fmt::Write as _;
use std::time::Duration;

use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};

use crate::clock::VirtualTime;
use crate::cluster::{Cluster, ClusterBuilder, ConvergenceWatch};
use crate::fixtures::{START, master_tree_with_keys};
use crate::net::{LINUX_SEND_BUFFER, LinkParams, Pieces};
use crate::sim::{NodeIdx, RunError, SetupError, Sim, SimConfig};
use crate::tree::{TreeFile, storage_from};

fn agent_name(id: usize) -> String {
    format!("agent-{id:05}")
}

fn agent_ip(id: usize) -> String {
    format!("10.{}.{}.{}", id / 65_536, (id / 256) % 256, id % 256)
}

/// The master's `client.keys` for `agents` agents.
pub fn client_keys(agents: usize) -> String {
    let mut keys = String::with_capacity(agents * 100);
    for id in 1..=agents {
        let _ = writeln!(keys, "{id:05} {} any {:064x}", agent_name(id), id * 7919);
    }
    keys
}

/// Builds the cluster (seed `seed`); agents are split evenly, the remainder unassigned.
///
/// # Errors
/// See [`SetupError`].
pub fn build(workers: usize, agents: usize, seed: u64) -> Result<Cluster, SetupError> {
    builder(workers, agents, seed)?.build()
}

/// [`build`]'s cluster, not started yet: a test may still
/// [`configure`](ClusterBuilder::configure) its nodes (a smaller budget, other intervals).
///
/// # Errors
/// See [`SetupError`].
pub fn builder(workers: usize, agents: usize, seed: u64) -> Result<ClusterBuilder, SetupError> {
    let tree = master_tree_with_keys(client_keys(agents));
    let fresh = Timestamp::from_secs(START - 60);
    let per_worker = agents / workers.max(1);
    let link = LinkParams {
        latency: Duration::from_micros(200),
        bandwidth: Some(125_000_000),
        pieces: Pieces::Whole,
        send_buffer: Some(LINUX_SEND_BUFFER),
    };
    let tree_error = |e: crate::tree::TreeError| SetupError::Tree(e.to_string());
    let mut builder = ClusterBuilder::new(SimConfig {
        link,
        seed,
        // Nothing here reads the decoded frames, and the tap decrypts every frame again, copies
        // every byte delivered and keeps each direction's largest frame allocated (5.8 GB held
        // after 1,000 workers / 50,000 agents converged). The hashes do not depend on it.
        tap: false,
        ..SimConfig::default()
    })
    .master("master01", storage_from(tree).map_err(tree_error)?);
    for w in 0..workers {
        let files = (w * per_worker + 1..=(w + 1) * per_worker).map(|id| {
            let body = format!(
                "Linux |{} |5.4.0 |#1 SMP |x86_64\nWazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n",
                agent_name(id)
            );
            TreeFile::new(
                &format!("/queue/agent-info/{}-{}", agent_name(id), agent_ip(id)),
                body,
                fresh,
            )
        });
        builder = builder.worker(
            &format!("worker{:02}", w + 1),
            storage_from(files).map_err(tree_error)?,
        );
    }
    Ok(builder)
}

/// Runs until every worker has the master's files and the master every assigned agent's
/// agent-info (checked every 10 ms of virtual time), or `deadline`.
///
/// # Errors
/// See [`RunError`].
pub fn run_to_convergence(
    c: &mut Cluster,
    agents: usize,
    deadline: VirtualTime,
) -> Result<VirtualTime, RunError> {
    run_reporting(c, agents, deadline, None)
}

/// Where a scale run stands, reported every so often by [`run_reporting`].
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Virtual time of the report.
    pub at: VirtualTime,
    /// Workers holding the master's integrity files.
    pub workers_converged: usize,
    /// Agent-info files the master holds, and those it must end with.
    pub agent_infos: (usize, usize),
    /// The master's file budget: files being received now and the most at once.
    pub master_files: (usize, usize),
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} workers converged; master holds {} of {} agent-info files, receives {} of at most {} files",
            self.at,
            self.workers_converged,
            self.agent_infos.0,
            self.agent_infos.1,
            self.master_files.0,
            self.master_files.1,
        )
    }
}

/// [`run_to_convergence`], calling `report` with a [`Progress`] every `every` of virtual time
/// when given (a run of 1,000 workers takes minutes of wall time: this says whether it moves).
///
/// # Errors
/// See [`RunError`].
pub fn run_reporting(
    c: &mut Cluster,
    agents: usize,
    deadline: VirtualTime,
    mut report: Option<(Duration, &mut dyn FnMut(Progress))>,
) -> Result<VirtualTime, RunError> {
    let (m, workers) = (c.master, c.workers.clone());
    let expected = expected_agent_infos(c, agents);
    let mut watch = ConvergenceWatch::default();
    // The master's agent-info count, by the disk generation it was counted at: listing 100,000
    // files every 10 ms of virtual time cost more than the cluster itself.
    let mut counted: Option<(u64, usize)> = None;
    let mut held_agent_infos = |sim: &Sim| {
        let generation = sim.disk_generation(m);
        match counted {
            Some((at, held)) if at == generation => held,
            _ => {
                let held = agent_infos(sim, m);
                counted = Some((generation, held));
                held
            }
        }
    };
    let mut next_report = VirtualTime::ZERO;
    c.sim
        .run_until_polled(deadline, Duration::from_millis(10), |sim| {
            if let Some((every, report)) = report.as_mut()
                && sim.now() >= next_report
            {
                next_report = sim.now().plus(*every);
                let budget = sim.node(m).file_budget();
                report(Progress {
                    at: sim.now(),
                    workers_converged: watch.converged_count(sim, m, &workers),
                    agent_infos: (held_agent_infos(sim), expected),
                    master_files: (budget.held, budget.limit),
                });
            }
            // The watch first: it answers from what it saw while nothing changed.
            watch.converged(sim, m, &workers) && held_agent_infos(sim) == expected
        })
}

/// What keeps the cluster from convergence, in one line: the master's agent-info files against
/// what the workers hold, and the workers whose integrity files differ from the master's.
pub fn shortfall(c: &Cluster, agents: usize) -> String {
    let differ: Vec<String> = c
        .workers
        .iter()
        .filter(|&&w| !c.integrity_diff(w).is_empty())
        .map(|&w| c.sim.name(w).to_owned())
        .collect();
    let shown = differ
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the master holds {} of {} agent-info files; {} of {} workers differ from it in integrity files{}",
        agent_infos(&c.sim, c.master),
        expected_agent_infos(c, agents),
        differ.len(),
        c.workers.len(),
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({shown}{})", if differ.len() > 5 { ", ..." } else { "" })
        }
    )
}

/// The agent-info files the master must end with: every agent assigned to a worker.
fn expected_agent_infos(c: &Cluster, agents: usize) -> usize {
    agents / c.workers.len().max(1) * c.workers.len()
}

/// The agent-info files the master holds.
fn agent_infos(sim: &Sim, master: NodeIdx) -> usize {
    InstallPath::new("/queue/agent-info")
        .ok()
        .and_then(|d| sim.storage(master).list_dir(&d).ok())
        .map_or(0, |v| v.len())
}
