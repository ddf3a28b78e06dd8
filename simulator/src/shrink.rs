//! The shrinker: from a failing run's options, the smallest options found that still fail with
//! the same invariant (fewer workers, agents and files, smaller files, faults switched off one by
//! one, no workload, a shorter fault phase, plain links with unbounded send buffers), greedily:
//! each step tries the candidates in order and keeps the first that still fails, until none does.
//!
//! Why options and not events: a run is a function of its options, so a smaller option set is a
//! smaller scenario that [`crate::scenario`] writes out and `cargo test` replays; removing
//! workers, files and fault kinds removes their events with them.

use std::time::Duration;

use crate::net::Pieces;
use crate::swarm::SwarmOptions;
use crate::vopr::{Failure, run_options};

/// Most runs one shrink may spend (each candidate is one run).
pub const MAX_RUNS: usize = 200;

/// The shortest fault phase a shrink goes down to.
const MIN_FAULT_PHASE: Duration = Duration::from_secs(5);

/// Smaller variants of `o`, the most shrinking first.
fn candidates(o: &SwarmOptions) -> Vec<SwarmOptions> {
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&mut SwarmOptions)| {
        let mut c = o.clone();
        f(&mut c);
        if c != *o {
            out.push(c);
        }
    };
    with(&|c| c.workers = 1);
    with(&|c| c.workers = (c.workers - 1).max(1));
    with(&|c| c.agents /= 2);
    with(&|c| c.extra_files /= 2);
    with(&|c| c.max_file_size = (c.max_file_size / 4).max(64));
    with(&|c| c.stale_files = 0);
    with(&|c| c.rates.stall = 0);
    with(&|c| c.rates.partition = 0);
    with(&|c| c.rates.reset = 0);
    with(&|c| c.rates.crash = 0);
    with(&|c| c.rates.effect_failure = 0);
    with(&|c| c.rates.clock_jump = 0);
    with(&|c| c.slow_disk = Duration::ZERO);
    with(&|c| c.clock_jump_secs = 0);
    with(&|c| c.edit_every = None);
    with(&|c| c.churn_every = None);
    with(&|c| c.link.pieces = Pieces::Whole);
    with(&|c| c.link.bandwidth = None);
    with(&|c| c.link.send_buffer = None);
    // Last and floored: each cut is one more accepted step, so it must not starve the others.
    with(&|c| {
        c.fault_phase = (c.fault_phase * 3 / 4)
            .max(MIN_FAULT_PHASE)
            .min(c.fault_phase)
    });
    out
}

/// What a shrink found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing options.
    pub options: SwarmOptions,
    /// Their failure.
    pub failure: Box<Failure>,
    /// Runs spent.
    pub runs: usize,
}

/// Shrinks `failure` (the failure of `options`) while the same invariant fails.
pub fn shrink(options: SwarmOptions, failure: Box<Failure>) -> Shrunk {
    shrink_with(options, failure, run_options)
}

/// [`shrink`] with `run` in place of a real run (tests give it a known failure condition).
pub fn shrink_with<R, T>(options: SwarmOptions, failure: Box<Failure>, mut run: R) -> Shrunk
where
    R: FnMut(SwarmOptions) -> Result<T, Box<Failure>>,
{
    let invariant = failure.violation.invariant();
    let mut best = Shrunk {
        options,
        failure,
        runs: 0,
    };
    'progress: while best.runs < MAX_RUNS {
        for candidate in candidates(&best.options) {
            if best.runs >= MAX_RUNS {
                break 'progress;
            }
            best.runs += 1;
            if let Err(f) = run(candidate.clone())
                && f.violation.invariant() == invariant
            {
                best.options = candidate;
                best.failure = f;
                continue 'progress;
            }
        }
        break;
    }
    best
}
