//! `scale WORKERS AGENTS`: builds the scale cluster (`wazuh_cluster_sim::scale`), runs it to
//! convergence and prints wall time, virtual time, events, events per second, bytes delivered and
//! effects. Peak memory: run it under `/usr/bin/time -v`.

use std::process::ExitCode;
use std::time::Instant;

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::scale::{build, run_to_convergence, shortfall};

fn main() -> ExitCode {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [workers, agents] = args[..] else {
        eprintln!("usage: scale WORKERS AGENTS");
        return ExitCode::from(2);
    };
    if workers == 0 {
        eprintln!("WORKERS must be at least 1");
        return ExitCode::from(2);
    }
    let built = Instant::now();
    let mut c = match build(workers, agents, 50_000) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let build_secs = built.elapsed().as_secs_f64();
    let wall = Instant::now();
    let result = run_to_convergence(&mut c, agents, VirtualTime::from_secs(3600));
    let secs = wall.elapsed().as_secs_f64();
    let stats = c.sim.stats();
    let outcome = match &result {
        Ok(at) => format!("converged at {at} of virtual time"),
        Err(e) => format!("NOT converged: {e} ({})", shortfall(&c, agents)),
    };
    let [files, transient] = c.sim.shared_contents();
    println!(
        "1 master + {workers} workers, {agents} agents: {outcome}; build {build_secs:.2} s, run {secs:.2} s wall; \
         {} events ({:.0}/s), {} bytes delivered, {} effects; shared: {} files ({} bytes), {} packages/chunks ({} bytes)",
        stats.events,
        stats.events as f64 / secs.max(1e-9),
        stats.bytes_delivered,
        stats.effects,
        files.0,
        files.1,
        transient.0,
        transient.1,
    );
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
