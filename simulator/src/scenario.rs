//! Scenario files: a run's [`SwarmOptions`] written out in full, one `key = value` per line, so
//! a shrunk failing run is replayed by `cargo test` (`simulator/scenarios/*.scenario`) and by
//! `vopr --scenario FILE` without depending on how a seed is drawn.
//!
//! Durations are whole milliseconds; `off` disables an optional setting; `#` starts a comment.
//! Every key is required, unknown keys are refused, so a file says exactly what it runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use wazuh_cluster_sync::integrity::memory::StorageFault;

use crate::net::{LinkParams, Pieces};
use crate::swarm::{FaultRates, SwarmOptions};

/// Why a scenario file was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// A line is not `key = value`.
    #[error("line {line}: expected `key = value`, found {text:?}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A key is unknown or given twice.
    #[error("line {line}: unknown or repeated key {key:?}")]
    Key {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
    /// A required key is missing.
    #[error("missing key {0:?}")]
    Missing(&'static str),
    /// A value does not parse.
    #[error("{key}: bad value {value:?}")]
    Value {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
}

/// Every key, in the order files list them.
const KEYS: [&str; 27] = [
    "seed",
    "workers",
    "agents",
    "extra_files",
    "max_file_size",
    "stale_files",
    "latency_us",
    "bandwidth",
    "pieces",
    "send_buffer",
    "stall",
    "partition",
    "reset",
    "crash",
    "effect_failure",
    "clock_jump",
    "disk_fault",
    "slow_disk_ms",
    "clock_jump_secs",
    "edit_every_ms",
    "churn_every_ms",
    "fault_phase_ms",
    "sync_integrity_ms",
    "sync_files_ms",
    "keep_alive_ms",
    "connection_retry_ms",
    "master_intervals_ms",
];

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("off".to_owned(), ms)
}

/// `opts` as a scenario file, with `comment` lines on top.
pub fn to_text(opts: &SwarmOptions, comment: &str) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let r = &opts.rates;
    let [si, sf, ka, cr] = opts.worker_intervals;
    let [ri, ck, mx] = opts.master_intervals;
    let values = [
        opts.seed.to_string(),
        opts.workers.to_string(),
        opts.agents.to_string(),
        opts.extra_files.to_string(),
        opts.max_file_size.to_string(),
        opts.stale_files.to_string(),
        opts.link.latency.as_micros().to_string(),
        opts.link
            .bandwidth
            .map_or("unlimited".to_owned(), |b| b.to_string()),
        match opts.link.pieces {
            Pieces::Random { max } => format!("random:{max}"),
            _ => "whole".to_owned(),
        },
        opts.link
            .send_buffer
            .map_or("unbounded".to_owned(), |b| b.to_string()),
        r.stall.to_string(),
        r.partition.to_string(),
        r.reset.to_string(),
        r.crash.to_string(),
        r.effect_failure.to_string(),
        r.clock_jump.to_string(),
        match opts.disk_fault {
            StorageFault::DiskFull => "disk_full".to_owned(),
            _ => "errors".to_owned(),
        },
        ms(opts.slow_disk),
        opts.clock_jump_secs.to_string(),
        opt_ms(opts.edit_every),
        opt_ms(opts.churn_every),
        ms(opts.fault_phase),
        ms(si),
        ms(sf),
        ms(ka),
        ms(cr),
        format!("{},{},{}", ms(ri), ms(ck), ms(mx)),
    ];
    for (key, value) in KEYS.iter().zip(values) {
        let _ = writeln!(out, "{key} = {value}");
    }
    out
}

/// The values of a file, by key.
struct Fields(BTreeMap<&'static str, String>);

impl Fields {
    fn raw(&self, key: &'static str) -> Result<&str, ScenarioError> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or(ScenarioError::Missing(key))
    }

    fn bad(key: &'static str, value: &str) -> ScenarioError {
        ScenarioError::Value {
            key,
            value: value.to_owned(),
        }
    }

    fn num<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, ScenarioError> {
        let v = self.raw(key)?;
        v.parse().map_err(|_| Self::bad(key, v))
    }

    fn ms(&self, key: &'static str) -> Result<Duration, ScenarioError> {
        self.num(key).map(Duration::from_millis)
    }

    fn opt_ms(&self, key: &'static str) -> Result<Option<Duration>, ScenarioError> {
        match self.raw(key)? {
            "off" => Ok(None),
            _ => self.ms(key).map(Some),
        }
    }
}

/// Parses a scenario file.
///
/// # Errors
/// See [`ScenarioError`].
pub fn parse(text: &str) -> Result<SwarmOptions, ScenarioError> {
    let mut fields = Fields(BTreeMap::new());
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| ScenarioError::Syntax {
            line: line_no,
            text: line.to_owned(),
        })?;
        let key = key.trim();
        let known = KEYS.iter().find(|k| **k == key).copied();
        match known {
            Some(k) if !fields.0.contains_key(k) => {
                fields.0.insert(k, value.trim().to_owned());
            }
            _ => {
                return Err(ScenarioError::Key {
                    line: line_no,
                    key: key.to_owned(),
                });
            }
        }
    }
    let bandwidth = match fields.raw("bandwidth")? {
        "unlimited" => None,
        _ => Some(fields.num("bandwidth")?),
    };
    let pieces = match fields.raw("pieces")? {
        "whole" => Pieces::Whole,
        v => {
            let max = v
                .strip_prefix("random:")
                .and_then(|m| m.parse().ok())
                .filter(|m| *m > 0)
                .ok_or_else(|| Fields::bad("pieces", v))?;
            Pieces::Random { max }
        }
    };
    let send_buffer = match fields.raw("send_buffer")? {
        "unbounded" => None,
        // The network's contract: a bounded buffer holds at least one byte.
        v => match fields.num("send_buffer")? {
            0 => return Err(Fields::bad("send_buffer", v)),
            b => Some(b),
        },
    };
    let disk_fault = match fields.raw("disk_fault")? {
        "errors" => StorageFault::Errors,
        "disk_full" => StorageFault::DiskFull,
        v => return Err(Fields::bad("disk_fault", v)),
    };
    let master = fields.raw("master_intervals_ms")?;
    let master_intervals: Vec<Duration> = master
        .split(',')
        .map(|v| v.trim().parse().map(Duration::from_millis))
        .collect::<Result<_, _>>()
        .map_err(|_| Fields::bad("master_intervals_ms", master))?;
    let master_intervals: [Duration; 3] = master_intervals
        .try_into()
        .map_err(|_| Fields::bad("master_intervals_ms", master))?;
    let workers: usize = fields.num("workers")?;
    if !(1..=64).contains(&workers) {
        return Err(Fields::bad("workers", fields.raw("workers")?));
    }
    Ok(SwarmOptions {
        seed: fields.num("seed")?,
        workers,
        agents: fields.num("agents")?,
        extra_files: fields.num("extra_files")?,
        max_file_size: fields.num::<usize>("max_file_size")?.max(1),
        stale_files: fields.num("stale_files")?,
        link: LinkParams {
            latency: Duration::from_micros(fields.num("latency_us")?),
            bandwidth,
            pieces,
            send_buffer,
        },
        rates: FaultRates {
            stall: fields.num("stall")?,
            partition: fields.num("partition")?,
            reset: fields.num("reset")?,
            crash: fields.num("crash")?,
            effect_failure: fields.num("effect_failure")?,
            clock_jump: fields.num("clock_jump")?,
        },
        disk_fault,
        slow_disk: fields.ms("slow_disk_ms")?,
        clock_jump_secs: fields.num("clock_jump_secs")?,
        edit_every: fields.opt_ms("edit_every_ms")?,
        churn_every: fields.opt_ms("churn_every_ms")?,
        fault_phase: fields.ms("fault_phase_ms")?,
        worker_intervals: [
            fields.ms("sync_integrity_ms")?,
            fields.ms("sync_files_ms")?,
            fields.ms("keep_alive_ms")?,
            fields.ms("connection_retry_ms")?,
        ],
        master_intervals,
    })
}
