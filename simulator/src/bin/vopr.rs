//! The randomized runner: `vopr --seed N` runs one seed and prints its options, the command that
//! replays it and its result; `vopr --seeds A..B` sweeps seeds A to B-1, one line each, and stops
//! at the first failure with its report; `--shrink` (with `--seed`) shrinks a failure and writes
//! it as `simulator/scenarios/seed-N-<invariant>.scenario`, which `cargo test` replays;
//! `vopr --scenario FILE` runs a scenario file. Exit status 0 when every run held, 1 on a
//! violation, 2 on bad arguments or an unreadable file.

use std::process::ExitCode;
use std::time::Instant;

use wazuh_cluster_sim::scenario;
use wazuh_cluster_sim::shrink::shrink;
use wazuh_cluster_sim::swarm::SwarmOptions;
use wazuh_cluster_sim::vopr::{Failure, run_options};

const USAGE: &str = "usage: vopr --seed N [--shrink] | --seeds A..B | --scenario FILE";

enum Seeds {
    One(u64, bool),
    Range(u64, u64),
    Scenario(String),
}

fn parse(args: &[String]) -> Result<Seeds, String> {
    match args {
        [flag, n] if flag == "--seed" => n
            .parse()
            .map(|n| Seeds::One(n, false))
            .map_err(|e| format!("--seed {n}: {e}")),
        [flag, n, shrink] if flag == "--seed" && shrink == "--shrink" => n
            .parse()
            .map(|n| Seeds::One(n, true))
            .map_err(|e| format!("--seed {n}: {e}")),
        [flag, file] if flag == "--scenario" => Ok(Seeds::Scenario(file.clone())),
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

fn report_failure(f: &Failure, replay: &str) {
    println!(
        "seed {} FAILED at {} ({}): {}",
        f.seed,
        f.at,
        f.violation.invariant(),
        f.violation
    );
    println!("  trace hash {:016x}", f.trace_hash);
    println!("  replay: {replay}");
    println!("  recent events:");
    for line in &f.recent {
        println!("    {line}");
    }
}

/// Shrinks the failure of `opts` and writes it as a scenario file.
fn shrink_and_write(opts: SwarmOptions, failure: Box<Failure>) {
    let shrunk = shrink(opts, failure);
    let f = &shrunk.failure;
    let file = format!("seed-{}-{}.scenario", f.seed, f.violation.invariant());
    let name = format!("simulator/scenarios/{file}");
    let path = format!("{}/scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let comment = format!(
        "Shrunk from seed {} in {} runs: {} ({}).\nReplay: cargo run -p wazuh-cluster-sim --release --bin vopr -- --scenario {name}",
        f.seed,
        shrunk.runs,
        f.violation,
        f.violation.invariant()
    );
    println!("shrunk in {} runs:\n{}", shrunk.runs, shrunk.options);
    report_failure(
        f,
        &format!("cargo run -p wazuh-cluster-sim --release --bin vopr -- --scenario {name}"),
    );
    let written = std::fs::create_dir_all(format!("{}/scenarios", env!("CARGO_MANIFEST_DIR")))
        .and_then(|()| std::fs::write(&path, scenario::to_text(&shrunk.options, &comment)));
    match written {
        Ok(()) => println!("scenario written: {path}"),
        Err(e) => eprintln!("could not write {path}: {e}"),
    }
}

/// Runs `opts`; `replay` is the command that replays them (a seed's or a scenario file's).
fn one(opts: SwarmOptions, replay: &str, verbose: bool, shrink_failure: bool) -> bool {
    let seed = opts.seed;
    if verbose {
        println!("seed {seed}\n{opts}\nreplay: {replay}");
    }
    match run_options(opts.clone()) {
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
            report_failure(&f, replay);
            if shrink_failure {
                shrink_and_write(opts, f);
            }
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
        Seeds::One(seed, shrink) => {
            let opts = SwarmOptions::from_seed(seed);
            let replay = opts.replay_command();
            one(opts, &replay, true, shrink)
        }
        Seeds::Range(a, b) => (a..b).all(|seed| {
            let opts = SwarmOptions::from_seed(seed);
            let replay = opts.replay_command();
            one(opts, &replay, false, false)
        }),
        Seeds::Scenario(file) => {
            let parsed = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|text| scenario::parse(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(opts) => {
                    let replay = format!(
                        "cargo run -p wazuh-cluster-sim --release --bin vopr -- --scenario {file}"
                    );
                    one(opts, &replay, true, false)
                }
                Err(e) => {
                    eprintln!("{file}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    eprintln!("wall time {:.1}s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
