//! The randomized runner: `vopr --seed N` runs one seed and prints its options, the command that
//! replays it and its result; `vopr --seeds A..B` sweeps seeds A to B-1, one line each, and stops
//! at the first failure with its report. Exit status 0 when every run held, 1 on a violation,
//! 2 on bad arguments.

use std::process::ExitCode;
use std::time::Instant;

use wazuh_cluster_sim::swarm::SwarmOptions;
use wazuh_cluster_sim::vopr::{Failure, run_seed};

const USAGE: &str = "usage: vopr --seed N | --seeds A..B";

enum Seeds {
    One(u64),
    Range(u64, u64),
}

fn parse(args: &[String]) -> Result<Seeds, String> {
    match args {
        [flag, n] if flag == "--seed" => n
            .parse()
            .map(Seeds::One)
            .map_err(|e| format!("--seed {n}: {e}")),
        [flag, range] if flag == "--seeds" => {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| format!("--seeds {range}: expected A..B"))?;
            let a: u64 = a.parse().map_err(|e| format!("--seeds {range}: {e}"))?;
            let b: u64 = b.parse().map_err(|e| format!("--seeds {range}: {e}"))?;
            if a >= b {
                return Err(format!("--seeds {range}: empty range"));
            }
            Ok(Seeds::Range(a, b))
        }
        _ => Err(USAGE.to_owned()),
    }
}

fn report_failure(f: &Failure) {
    println!(
        "seed {} FAILED at {} ({}): {}",
        f.seed,
        f.at,
        f.violation.invariant(),
        f.violation
    );
    println!("  trace hash {:016x}", f.trace_hash);
    println!("  replay: {}", f.replay_command());
    println!("  recent events:");
    for line in &f.recent {
        println!("    {line}");
    }
}

fn one(seed: u64, verbose: bool) -> bool {
    let opts = SwarmOptions::from_seed(seed);
    if verbose {
        println!("seed {seed}\n{opts}\nreplay: {}", opts.replay_command());
    }
    match run_seed(seed) {
        Ok(r) => {
            println!(
                "seed {} ok: trace {:016x}, {} events, {} faults, converged {:.1}s after healing",
                r.seed,
                r.trace_hash,
                r.events,
                r.faults,
                r.converged_after.as_secs_f64()
            );
            true
        }
        Err(f) => {
            if !verbose {
                println!("{opts}");
            }
            report_failure(&f);
            false
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds = match parse(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let ok = match seeds {
        Seeds::One(seed) => one(seed, true),
        Seeds::Range(a, b) => (a..b).all(|seed| one(seed, false)),
    };
    eprintln!("wall time {:.1}s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
