//! The randomized runner: `vopr --seed N` runs one seed and prints its options, the command that
//! replays it and its result; `vopr --seeds A..B` sweeps seeds A to B-1, one line each, and stops
//! at the first failure with its report; `--shrink` (with `--seed`) shrinks a failure and writes
//! it as `simulator/scenarios/seed-N-<invariant>.scenario`, which `cargo test` replays;
//! `vopr --scenario FILE` runs a scenario file. Exit status 0 when every run held, 1 on a
//! violation, 2 on bad arguments, an unreadable file or an unwritable output. When whoever reads
//! the output goes away (`vopr --seeds 0..10000 | head`), the runner stops quietly with status 0
//! at its next line, as a filter in a pipeline does (`println!` would panic there).

use std::io::{self, Write as _};
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

/// A line on standard output; an error (a closed pipe above all) is the caller's to stop on.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(io::stdout().lock(), $($arg)*)
    };
}

fn report_failure(f: &Failure, replay: &str) -> io::Result<()> {
    out!(
        "seed {} FAILED at {} ({}): {}",
        f.seed,
        f.at,
        f.violation.invariant(),
        f.violation
    )?;
    out!("  trace hash {:016x}", f.trace_hash)?;
    out!("  replay: {replay}")?;
    out!("  recent events:")?;
    for line in &f.recent {
        out!("    {line}")?;
    }
    Ok(())
}

/// Shrinks the failure of `opts` and writes it as a scenario file.
fn shrink_and_write(opts: SwarmOptions, failure: Box<Failure>) -> io::Result<()> {
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
    out!("shrunk in {} runs:\n{}", shrunk.runs, shrunk.options)?;
    report_failure(
        f,
        &format!("cargo run -p wazuh-cluster-sim --release --bin vopr -- --scenario {name}"),
    )?;
    let written = std::fs::create_dir_all(format!("{}/scenarios", env!("CARGO_MANIFEST_DIR")))
        .and_then(|()| std::fs::write(&path, scenario::to_text(&shrunk.options, &comment)));
    match written {
        Ok(()) => out!("scenario written: {path}"),
        Err(e) => {
            let _ = writeln!(io::stderr(), "could not write {path}: {e}");
            Ok(())
        }
    }
}

/// Runs `opts`; `replay` is the command that replays them (a seed's or a scenario file's).
fn one(opts: SwarmOptions, replay: &str, verbose: bool, shrink_failure: bool) -> io::Result<bool> {
    let seed = opts.seed;
    if verbose {
        out!("seed {seed}\n{opts}\nreplay: {replay}")?;
    }
    match run_options(opts.clone()) {
        Ok(r) => {
            out!(
                "seed {} ok: trace {:016x}, {} events, {} faults, converged {:.1}s after healing, \
                 {} full send buffers",
                r.seed,
                r.trace_hash,
                r.events,
                r.faults,
                r.converged_after.as_secs_f64(),
                r.send_buffer_full
            )?;
            Ok(true)
        }
        Err(f) => {
            if !verbose {
                out!("{opts}")?;
            }
            report_failure(&f, replay)?;
            if shrink_failure {
                shrink_and_write(opts, f)?;
            }
            Ok(false)
        }
    }
}

/// Why the runner stopped before its seeds were done.
enum Stop {
    /// A scenario file that cannot be read or parsed (exit status 2).
    Input(String),
    /// Standard output failed (a closed pipe is a quiet stop).
    Output(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Output(e)
    }
}

/// Runs what `seeds` names; true when every run held.
fn run(seeds: Seeds) -> Result<bool, Stop> {
    match seeds {
        Seeds::One(seed, shrink) => {
            let opts = SwarmOptions::from_seed(seed);
            let replay = opts.replay_command();
            Ok(one(opts, &replay, true, shrink)?)
        }
        Seeds::Range(a, b) => {
            for seed in a..b {
                let opts = SwarmOptions::from_seed(seed);
                let replay = opts.replay_command();
                if !one(opts, &replay, false, false)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Seeds::Scenario(file) => {
            let opts = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|text| scenario::parse(&text).map_err(|e| e.to_string()))
                .map_err(|e| Stop::Input(format!("{file}: {e}")))?;
            let replay =
                format!("cargo run -p wazuh-cluster-sim --release --bin vopr -- --scenario {file}");
            Ok(one(opts, &replay, true, false)?)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Standard error may be closed too: a message that cannot be written is dropped, not a panic.
    let complain = |e: &dyn std::fmt::Display| {
        let _ = writeln!(io::stderr(), "{e}");
    };
    let seeds = match parse(&args) {
        Ok(s) => s,
        Err(e) => {
            complain(&e);
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let code = match run(seeds) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Stop::Input(e)) => {
            complain(&e);
            return ExitCode::from(2);
        }
        // The reader went away (`| head`): it has read what it wanted; nobody is left to tell.
        Err(Stop::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        Err(Stop::Output(e)) => {
            complain(&format!("standard output: {e}"));
            return ExitCode::from(2);
        }
    };
    complain(&format!(
        "wall time {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    code
}
