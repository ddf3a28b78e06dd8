//! `wazuh-cluster integrity ...`: the integrity engine on real trees and documents.
//!
//! * `scan` walks an install tree through the real [`FsStorage`] (confined to the tree, symlinks
//!   never followed) and prints the metadata document exactly as upstream 3.9.5's
//!   `get_files_status` serialises it — what a worker sends in `sync_i_w_m`.
//! * `compare` runs the master's comparison on two such documents and prints upstream's
//!   `compare_files` result: `{"files": {"missing", "extra", "shared", "extra_valid"}, "count"}`.
//!
//! Both take the 3.9.5 `cluster.json` defaults unless `--cluster-json` names an operator's file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::compare::SyncPlan;
use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::metadata::{IntegrityMetadata, MetadataScanner};
use wazuh_cluster_sync::integrity::storage::Timestamp;

/// Exit status when an input document is malformed or the scan failed.
const EXIT_FAILED: u8 = 1;
/// Exit status for a bad argument or an unreadable file (as clap's usage errors).
const EXIT_USAGE: u8 = 2;
/// Largest metadata document or cluster.json read (bytes).
const MAX_DOCUMENT: u64 = 512 << 20;
/// Most entries accepted in one metadata document.
const MAX_ENTRIES: usize = 2_000_000;

/// `integrity` subcommands.
#[derive(Debug, Args)]
pub struct IntegrityArgs {
    #[command(subcommand)]
    command: IntegrityCommand,
}

#[derive(Debug, Subcommand)]
enum IntegrityCommand {
    /// Print the integrity metadata document (upstream JSON) of an install tree.
    ///
    /// Walks the integrity items of the node type (master: items whose source is master or all,
    /// as both nodes compute them for integrity; worker: the agent-info item, without MD5 and
    /// with the 30-minute age filter) and prints `{path: {"mod_time", "cluster_item_key",
    /// "merged", "md5"}}`. Symlinks and special files are skipped and reported on stderr.
    Scan(ScanArgs),
    /// Compare a master's and a worker's metadata documents (upstream `compare_files`).
    ///
    /// Prints `{"files": {"missing", "extra", "shared", "extra_valid"}, "count": {...}}`.
    /// Worker entries that no master item could have produced are left out and listed on stderr.
    Compare(CompareArgs),
}

/// `--node-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NodeTypeArg {
    /// Master-owned items (what integrity compares).
    Master,
    /// Worker-owned items (agent-info).
    Worker,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// The install root (upstream `ossec_path`, e.g. /var/ossec).
    #[arg(long, value_name = "DIR")]
    wazuh_path: PathBuf,

    /// Which items to walk.
    #[arg(long, value_enum, default_value = "master")]
    node_type: NodeTypeArg,

    /// This node's name (worker scans look for queue/cluster/<name>/agent-info.merged).
    #[arg(long, default_value = "node01")]
    node_name: String,

    /// An operator's cluster.json overriding the 3.9.5 defaults.
    #[arg(long, value_name = "FILE")]
    cluster_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The master's metadata document.
    #[arg(value_name = "MASTER.json")]
    master: PathBuf,

    /// The worker's metadata document.
    #[arg(value_name = "WORKER.json")]
    worker: PathBuf,

    /// The worker's node name (part of queue/cluster/<worker>/agent-groups-shared.merged).
    #[arg(long = "worker", value_name = "NAME")]
    worker_name: String,

    /// An operator's cluster.json overriding the 3.9.5 defaults.
    #[arg(long, value_name = "FILE")]
    cluster_json: Option<PathBuf>,
}

/// Runs an `integrity` subcommand and returns the process exit status.
pub fn run(args: IntegrityArgs) -> ExitCode {
    let result = match args.command {
        IntegrityCommand::Scan(args) => scan(&args),
        IntegrityCommand::Compare(args) => compare(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("wazuh-cluster integrity: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

/// Reads a whole file, bounded; an unreadable file is a usage error.
fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let usage = |e: std::io::Error| (EXIT_USAGE, format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(usage)?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .map_err(usage)?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err((
            EXIT_FAILED,
            format!("{} is larger than {MAX_DOCUMENT} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

fn items(cluster_json: Option<&Path>) -> Result<ClusterItems, Failure> {
    match cluster_json {
        None => Ok(ClusterItems::defaults_3_9()),
        Some(path) => ClusterItems::from_json_3_9(&read_file(path)?)
            .map_err(|e| (EXIT_FAILED, format!("{}: {e}", path.display()))),
    }
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| (EXIT_FAILED, format!("writing the output: {e}")))
}

fn scan(args: &ScanArgs) -> Result<(), Failure> {
    let items = items(args.cluster_json.as_deref())?;
    let storage = FsStorage::new(&args.wazuh_path).map_err(|e| {
        (
            EXIT_USAGE,
            format!("{}: {}", args.wazuh_path.display(), e.message),
        )
    })?;
    // The adapter reads the clock; the engine only takes it as a value.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = Timestamp {
        secs: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: since_epoch.subsec_nanos(),
    };
    let node_type = match args.node_type {
        NodeTypeArg::Master => NodeType::Master,
        NodeTypeArg::Worker => NodeType::Worker,
    };
    let request = ScanRequest {
        node_type,
        node_name: &args.node_name,
        now,
    };
    let output = MetadataScanner::new()
        .scan(&storage, &items, &request)
        .map_err(|e| {
            (
                EXIT_FAILED,
                format!("scan of {} failed: {e}", args.wazuh_path.display()),
            )
        })?;
    for (path, error) in &output.failures {
        eprintln!("wazuh-cluster integrity: skipped {path}: {error}");
    }
    let skipped = output.stats.skipped_symlinks + output.stats.skipped_special;
    if skipped > 0 {
        eprintln!(
            "wazuh-cluster integrity: skipped {} symlink(s) and {} special file(s)",
            output.stats.skipped_symlinks, output.stats.skipped_special
        );
    }
    print(&output.metadata.to_upstream_json())
}

fn load_metadata(path: &Path) -> Result<IntegrityMetadata, Failure> {
    IntegrityMetadata::from_json(&read_file(path)?, MAX_ENTRIES)
        .map_err(|e| (EXIT_FAILED, format!("{}: {e}", path.display())))
}

fn compare(args: &CompareArgs) -> Result<(), Failure> {
    let items = items(args.cluster_json.as_deref())?;
    let master = load_metadata(&args.master)?;
    let worker = load_metadata(&args.worker)?;
    let plan = SyncPlan::compare(&master, &worker, &items, &args.worker_name)
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    for (path, why) in &plan.rejected {
        eprintln!("wazuh-cluster integrity: worker entry {path} left out: {why:?}");
    }
    print(&format!(
        "{{\"files\": {}, \"count\": {}}}",
        plan.to_upstream_json(),
        plan.counts_upstream_json()
    ))
}
