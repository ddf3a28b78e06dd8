//! `scale WORKERS AGENTS [--progress SECS]`: builds the scale cluster (`wazuh_cluster_sim::scale`),
//! runs it to convergence and prints wall time, virtual time, events, events per second, bytes
//! delivered and effects; with `--progress`, a line every SECS of virtual time on standard error
//! (workers converged, the master's agent-info files and file budget). Peak memory: run it under
//! `/usr/bin/time -v`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::scale::{Progress, build, run_reporting, shortfall};

const USAGE: &str = "usage: scale WORKERS AGENTS [--progress SECS]";

/// `WORKERS AGENTS [--progress SECS]`, or what is wrong with them.
fn parse_args(
    args: impl Iterator<Item = String>,
) -> Result<(usize, usize, Option<Duration>), String> {
    let mut numbers = Vec::new();
    let mut progress = None;
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == "--progress" {
            let value = args.next().unwrap_or_default();
            let secs: u64 = value
                .parse()
                .map_err(|_| format!("--progress wants whole seconds, not {value:?}"))?;
            progress = Some(Duration::from_secs(secs.max(1)));
        } else {
            let n = arg
                .parse()
                .map_err(|_| format!("{arg:?} is not a count of workers or agents"))?;
            numbers.push(n);
        }
    }
    match numbers[..] {
        [workers, agents] => Ok((workers, agents, progress)),
        _ => Err("WORKERS and AGENTS are both needed, and nothing else".to_owned()),
    }
}

fn main() -> ExitCode {
    let (workers, agents, progress) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
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
    let mut print = |p: Progress| eprintln!("{p}");
    let report = progress.map(|every| (every, &mut print as &mut dyn FnMut(Progress)));
    let result = run_reporting(&mut c, agents, VirtualTime::from_secs(3600), report);
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
