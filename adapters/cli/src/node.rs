//! `wazuh-cluster node --wazuh-path DIR [--config FILE] [--insecure-no-key]`: run one cluster
//! node from the `<cluster>` block of an ossec.conf, until SIGINT or SIGTERM.
//!
//! The configuration is read and validated by `wazuh_cluster_sync::config` (upstream's checks,
//! messages naming the setting); this module only maps it onto the tokio adapter: a master
//! listens on `bind_addr:port` and serves local clients on `DIR/queue/cluster/c-internal.sock`,
//! a worker dials `nodes[0]:port`. The cluster key is required unless `--insecure-no-key` is
//! given (and the key left empty): plaintext TCP is never a default. `--cluster-json` reads an
//! operator's cluster.json (items, intervals) over 3.9.5's defaults.
//!
//! Ownership: upstream's daemon runs as the install's user (`ossec`) and `chown`s what it writes
//! to `ossec:ossec`; the real Wazuh daemons beside it run as `ossec` and must read those files
//! (`etc/client.keys` is 0640). We run as root, so the node gives what it writes to an owner:
//! `--owner USER[:GROUP]`, or by default, when root and the user exists, `ossec` (group `ossec`,
//! else its login group). Not root, or no such user: nothing is given away. The decision is
//! logged once at start-up; a named owner that does not exist stops the start naming `--owner`.
//!
//! Distributed API calls the node answers itself run with its built-in executor, or with
//! `--api-exec PROGRAM` (e.g. `contrib/wazuh-api-exec.py`, which calls the install's own 3.9.5
//! framework): run once per call, the request JSON on its standard input, one JSON answer on its
//! standard output. The program must exist and be executable when the node starts; the choice is
//! logged once at start-up.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use wazuh_cluster_fs::owner::{
    GROUP_PATH, OSSEC_USER, Owner, PASSWD_PATH, default_owner, effective_uid, parse_owner,
    read_accounts,
};
use wazuh_cluster_runtime::Rt;
use wazuh_cluster_sync::config::{
    ClusterConfig, ClusterSection, KeyPolicy, NodeType, OssecConfError, parse_ossec_conf,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::roles::NodeLimits;
use wazuh_cluster_tokio::{AdapterLimits, ApiExecutor, NodeSpec, start, wall_clock_now};

/// The ossec.conf under an install root.
const OSSEC_CONF: &str = "etc/ossec.conf";

/// Exit status when the configuration or the start fails.
const EXIT_FAILURE: u8 = 1;

/// `node` arguments.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Install root of the node (upstream's /var/ossec): files, queue/cluster, etc/ossec.conf.
    #[arg(long, value_name = "DIR")]
    pub wazuh_path: PathBuf,
    /// Read the <cluster> block from this file instead of DIR/etc/ossec.conf.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An operator's cluster.json (upstream's framework/wazuh/cluster/cluster.json): integrity
    /// items and intervals merged value by value over 3.9.5's defaults.
    #[arg(long, value_name = "FILE")]
    pub cluster_json: Option<PathBuf>,
    /// Allow an empty <key>: plaintext TCP between nodes (tests on an isolated host only).
    #[arg(long)]
    pub insecure_no_key: bool,
    /// Most TCP connections open at once from one address (master).
    #[arg(long, value_name = "N", default_value_t = AdapterLimits::default().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Most TCP connections open at once from all addresses together (master); local clients
    /// have their own cap.
    #[arg(long, value_name = "N", default_value_t = AdapterLimits::default().max_connections)]
    pub max_connections: usize,
    /// MiB the node may hold for its peers, every link together: frames being received, long
    /// strings, file data waiting for the disk, output not yet written (a link at most a quarter).
    #[arg(long, value_name = "MIB", default_value_t = NodeLimits::default().memory_budget >> 20)]
    pub memory_budget: u64,
    /// File chunks (5 MiB each) sent to a peer before the first is answered; 1 is upstream's
    /// stop-and-wait. Above 1 only in clusters of this daemon's nodes: a 3.9.5 receiver can
    /// drop the link when chunks arrive back to back.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
    pub pipelined_chunks: u32,
    /// Owner of the files the node writes and the directories it creates (names from
    /// /etc/passwd and /etc/group, or numbers). Default: as root, user `ossec` and group
    /// `ossec` when they exist, as upstream; otherwise files keep this process's owner.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// Run the distributed API calls this node answers with PROGRAM (one run per call: the
    /// request JSON on its stdin, one JSON answer on its stdout), e.g.
    /// adapters/cli/contrib/wazuh-api-exec.py on a 3.9.5 install. Default: the built-in executor.
    #[arg(long, value_name = "PROGRAM")]
    pub api_exec: Option<PathBuf>,
    /// The runtime that drives the node: tokio (tasks on a thread pool) or mio (one event-loop
    /// thread). Both behave the same on the wire and on disk.
    #[arg(long, value_name = "tokio|mio", default_value_t = Rt::Tokio)]
    pub runtime: Rt,
}

/// The executor of the node's API calls and the start-up line saying which: `--api-exec`'s
/// program, which must be an executable file (resolved to an absolute path, so that neither
/// `PATH` nor a later change of directory picks another), or the built-in one.
pub fn decide_api_executor(program: Option<&Path>) -> Result<(ApiExecutor, String), String> {
    let Some(program) = program else {
        return Ok((
            ApiExecutor::Builtin,
            "Distributed API calls run with the built-in executor (--api-exec runs them with a \
             program)"
                .to_owned(),
        ));
    };
    let refused = |why: &str| format!("--api-exec {}: {why}", program.display());
    let path = std::fs::canonicalize(program).map_err(|e| refused(&e.to_string()))?;
    let metadata = std::fs::metadata(&path).map_err(|e| refused(&e.to_string()))?;
    if !metadata.is_file() {
        return Err(refused("not a file"));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(refused(
            "not executable (chmod +x, and a #! line for a script)",
        ));
    }
    let line = format!(
        "Distributed API calls run with {} (--api-exec)",
        path.display()
    );
    Ok((ApiExecutor::Program(path), line))
}

/// The owner `node` gives what it writes, and the start-up line saying why; `spec` is
/// `--owner`'s value, `passwd` / `group` the accounts files' text.
pub fn decide_owner(
    spec: Option<&str>,
    euid: u32,
    passwd: &str,
    group: &str,
) -> Result<(Option<Owner>, String), String> {
    if let Some(spec) = spec {
        let owner = parse_owner(spec, passwd, group).map_err(|e| format!("--owner: {e}"))?;
        return Ok((
            Some(owner),
            format!("Files written by this node belong to {spec} ({owner}, --owner)"),
        ));
    }
    Ok(match default_owner(euid, OSSEC_USER, passwd, group) {
        Some(owner) => (
            Some(owner),
            format!(
                "Files written by this node belong to {OSSEC_USER} ({owner}), the install's user"
            ),
        ),
        None if euid == 0 => (
            None,
            format!(
                "Files written by this node belong to root: user {OSSEC_USER} does not exist \
                 (--owner sets an owner)"
            ),
        ),
        None => (
            None,
            format!("Files written by this node belong to uid {euid}: not running as root"),
        ),
    })
}

/// [`decide_owner`] with this process's effective uid and the system's accounts files. A file
/// that cannot be read fails only a named owner; the default then finds no such user.
pub fn system_owner(spec: Option<&str>) -> Result<(Option<Owner>, String), String> {
    let read = |path: &str| match read_accounts(Path::new(path)) {
        Ok(text) => Ok(text),
        Err(e) if spec.is_some() => Err(format!("--owner: {e}")),
        Err(_) => Ok(String::new()),
    };
    decide_owner(
        spec,
        effective_uid(),
        &read(PASSWD_PATH)?,
        &read(GROUP_PATH)?,
    )
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigReadError {
    /// The file cannot be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Its `<cluster>` block is refused (the reason names the setting).
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        error: OssecConfError,
    },
}

/// Reads and validates `file` (`DIR/etc/ossec.conf` by default). `Ok(None)`: the cluster is
/// disabled (the reason is printed).
pub fn read_cluster_config(
    wazuh_path: &Path,
    file: Option<&Path>,
    policy: KeyPolicy,
) -> Result<Option<ClusterConfig>, ConfigReadError> {
    match read_cluster_section(wazuh_path, file, policy)? {
        ClusterSection::Enabled(config) => Ok(Some(config)),
        ClusterSection::Disabled(why) => {
            eprintln!(
                "wazuh-cluster: cluster disabled in {}: {why}",
                config_path(wazuh_path, file).display()
            );
            Ok(None)
        }
    }
}

/// As [`read_cluster_config`], saying nothing: a disabled cluster is
/// `Ok(ClusterSection::Disabled(_))` (upstream's daemon exits 0 on it without a word).
pub fn read_cluster_section(
    wazuh_path: &Path,
    file: Option<&Path>,
    policy: KeyPolicy,
) -> Result<ClusterSection, ConfigReadError> {
    let path = config_path(wazuh_path, file);
    let shown = || path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|error| ConfigReadError::Read {
        path: shown(),
        error,
    })?;
    parse_ossec_conf(&bytes, policy).map_err(|error| ConfigReadError::Invalid {
        path: shown(),
        error,
    })
}

/// `file`, or `DIR/etc/ossec.conf`.
fn config_path(wazuh_path: &Path, file: Option<&Path>) -> PathBuf {
    file.map_or_else(|| wazuh_path.join(OSSEC_CONF), Path::to_path_buf)
}

/// The adapter's description of the node `config` describes, over `wazuh_path`.
pub fn node_spec(config: &ClusterConfig, wazuh_path: &Path) -> NodeSpec {
    let node = config.node_config(wall_clock_now());
    let mut spec = NodeSpec::new(node, wazuh_path);
    if config.node_type == NodeType::Master {
        spec.listen = Some(config.listen_address());
    }
    spec
}

/// Runs `node`.
pub fn run(args: NodeArgs) -> ExitCode {
    run_until_stopped(
        args,
        &|message| eprintln!("wazuh-cluster: {message}"),
        || Ok(()),
    )
}

/// Runs the node `args` describe until SIGINT/SIGTERM or until it stops on its own.
///
/// `fail` reports why the node cannot start or stopped badly (the exit status is then 1).
/// `when_up` runs once the node is up, its port and local socket open, on the runtime's thread:
/// what it returns (e.g. the pid file, removed when dropped) is kept until the node has stopped,
/// on every path; an `Err` stops the node at once, reported through `fail`.
pub fn run_until_stopped<T>(
    args: NodeArgs,
    fail: &dyn Fn(&str),
    when_up: impl FnOnce() -> Result<T, String>,
) -> ExitCode {
    let policy = if args.insecure_no_key {
        KeyPolicy::AllowMissing
    } else {
        KeyPolicy::Required
    };
    let config = match read_cluster_config(&args.wazuh_path, args.config.as_deref(), policy) {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            fail(&error.to_string());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // Both choices are checked before either is logged: a refused start says only why.
    let (api_executor, api_executor_line) = match decide_api_executor(args.api_exec.as_deref()) {
        Ok(decided) => decided,
        Err(message) => {
            fail(&message);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let owner = match system_owner(args.owner.as_deref()) {
        Ok((owner, line)) => {
            tracing::info!("{line}");
            owner
        }
        Err(message) => {
            fail(&message);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    tracing::info!("{api_executor_line}");
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if config.key.is_none() {
        tracing::warn!("no cluster key: node links are plaintext (--insecure-no-key)");
    }
    let mut spec = node_spec(&config, &args.wazuh_path);
    spec.limits.max_connections_per_ip = args.max_connections_per_ip;
    spec.limits.max_connections = args.max_connections;
    spec.config.limits.memory_budget = args.memory_budget.saturating_mul(1 << 20);
    // N chunks fit a window of N request chunks (each carries a little less: its path).
    spec.config.connection.file_window = match args.pipelined_chunks {
        1 => 0,
        n => n as usize * wazuh_cluster_protocol::connection::DEFAULT_REQUEST_CHUNK,
    };
    spec.owner = owner;
    spec.api_executor = api_executor;
    if let Some(path) = &args.cluster_json {
        let items = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| ClusterItems::from_json_3_9(&bytes).map_err(|e| e.to_string()));
        match items {
            Ok(items) => spec.config.items = items,
            Err(message) => {
                fail(&format!("{}: {message}", path.display()));
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    match args.runtime {
        Rt::Tokio => serve_on_tokio(spec, &config, fail, when_up),
        Rt::Mio => serve_on_mio(spec, &config, fail, when_up),
    }
}

/// Logs that the node is up: where a master listens, where a worker's master is (the lines
/// operators and `clusterd`'s tests know), and on which runtime when not the default.
fn log_started(config: &ClusterConfig, local_addr: Option<std::net::SocketAddr>, rt: Rt) {
    match local_addr {
        Some(addr) => tracing::info!("Master {} listening on {addr}", config.node_name),
        None => tracing::info!(
            "Worker {} started, master at {}",
            config.node_name,
            node_config_master(config)
        ),
    }
    if rt != Rt::default() {
        tracing::info!("Running on the {rt} runtime (--runtime)");
    }
}

/// [`run_until_stopped`] on tokio: the node's tasks and the signals on one runtime.
fn serve_on_tokio<T>(
    spec: NodeSpec,
    config: &ClusterConfig,
    fail: &dyn Fn(&str),
    when_up: impl FnOnce() -> Result<T, String>,
) -> ExitCode {
    use wazuh_cluster_tokio::ShutdownSignals;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            fail(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        // Caught from now on: a SIGTERM sent the moment the pid file appears is a graceful stop.
        let mut signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(e) => {
                fail(&format!("cannot catch SIGINT and SIGTERM: {e}"));
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        let mut node = match start(spec).await {
            Ok(node) => node,
            Err(e) => {
                fail(&e.to_string());
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        log_started(config, node.local_addr(), Rt::Tokio);
        let _kept_until_stopped = match when_up() {
            Ok(kept) => kept,
            Err(message) => {
                fail(&message);
                let _ = node.stop().await;
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        tokio::select! {
            signal = signals.recv() => tracing::info!("{signal} received: stopping"),
            () = node.stopped() => {
                tracing::error!("the node stopped on its own");
                let _ = node.wait().await;
                return ExitCode::from(EXIT_FAILURE);
            }
        }
        match node.stop().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                fail(&e.to_string());
                ExitCode::from(EXIT_FAILURE)
            }
        }
    })
}

/// [`run_until_stopped`] on mio: the node's event-loop thread, the signals watched by a thread
/// of their own; no tokio runtime at all.
fn serve_on_mio<T>(
    spec: NodeSpec,
    config: &ClusterConfig,
    fail: &dyn Fn(&str),
    when_up: impl FnOnce() -> Result<T, String>,
) -> ExitCode {
    use wazuh_cluster_mio::ShutdownSignals;
    // Caught from now on: a SIGTERM sent the moment the pid file appears is a graceful stop.
    let signals = match ShutdownSignals::install() {
        Ok(signals) => signals,
        Err(e) => {
            fail(&format!("cannot catch SIGINT and SIGTERM: {e}"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let node = match wazuh_cluster_mio::start(spec) {
        Ok(node) => node,
        Err(e) => {
            fail(&e.to_string());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    log_started(config, node.local_addr(), Rt::Mio);
    let _kept_until_stopped = match when_up() {
        Ok(kept) => kept,
        Err(message) => {
            fail(&message);
            let _ = node.stop();
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let watch = match signals.stop_on_signal(node.stop_handle()) {
        Ok(watch) => watch,
        Err(e) => {
            fail(&format!("cannot watch SIGINT and SIGTERM: {e}"));
            let _ = node.stop();
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let stopped = node.wait();
    let signal = watch.received();
    match (signal, stopped) {
        (_, Err(e)) => {
            fail(&e.to_string());
            ExitCode::from(EXIT_FAILURE)
        }
        (None, Ok(_)) => {
            tracing::error!("the node stopped on its own");
            ExitCode::from(EXIT_FAILURE)
        }
        (Some(_), Ok(_)) => ExitCode::SUCCESS,
    }
}

fn node_config_master(config: &ClusterConfig) -> String {
    config.node_config(wall_clock_now()).master_addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_executor_is_an_executable_file_or_the_built_in_one() {
        assert_eq!(decide_api_executor(None).unwrap().0, ApiExecutor::Builtin);
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("api-exec");
        std::fs::write(&program, "#!/bin/sh\necho '{}'\n").unwrap();
        let refused = decide_api_executor(Some(&program)).unwrap_err();
        assert_eq!(
            refused,
            format!(
                "--api-exec {}: not executable (chmod +x, and a #! line for a script)",
                program.display()
            )
        );
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o750)).unwrap();
        // A relative spelling is resolved once, at start-up.
        let spelled = dir.path().join(".").join("api-exec");
        let real = std::fs::canonicalize(&program).unwrap();
        assert_eq!(
            decide_api_executor(Some(&spelled)).unwrap(),
            (
                ApiExecutor::Program(real.clone()),
                format!(
                    "Distributed API calls run with {} (--api-exec)",
                    real.display()
                )
            )
        );
        assert_eq!(
            decide_api_executor(Some(dir.path())).unwrap_err(),
            format!("--api-exec {}: not a file", dir.path().display())
        );
        let missing = dir.path().join("nope");
        assert_eq!(
            decide_api_executor(Some(&missing)).unwrap_err(),
            format!(
                "--api-exec {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nossec:x:1001:1002::/var/ossec:/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nossec:x:1003:\n";

    #[test]
    fn the_owner_is_named_or_the_install_user_as_root_or_none() {
        let owner = |uid, gid| Some(Owner { uid, gid });
        assert_eq!(
            decide_owner(Some("ossec"), 0, PASSWD, GROUP),
            Ok((
                owner(1001, 1002),
                "Files written by this node belong to ossec (1001:1002, --owner)".to_owned()
            ))
        );
        // Named: given even when not root (the storage reports the refused chown).
        assert_eq!(
            decide_owner(Some("54321:54322"), 1000, PASSWD, GROUP).map(|(o, _)| o),
            Ok(owner(54321, 54322))
        );
        assert_eq!(
            decide_owner(None, 0, PASSWD, GROUP),
            Ok((
                owner(1001, 1003),
                "Files written by this node belong to ossec (1001:1003), the install's user"
                    .to_owned()
            ))
        );
        assert_eq!(
            decide_owner(None, 0, "root:x:0:0::/root:/bin/sh\n", GROUP),
            Ok((
                None,
                "Files written by this node belong to root: user ossec does not exist \
                 (--owner sets an owner)"
                    .to_owned()
            ))
        );
        assert_eq!(
            decide_owner(None, 1000, PASSWD, GROUP),
            Ok((
                None,
                "Files written by this node belong to uid 1000: not running as root".to_owned()
            ))
        );
        assert_eq!(
            decide_owner(Some("wazuh"), 0, PASSWD, GROUP),
            Err(
                "--owner: user \"wazuh\" does not exist (not in /etc/passwd, not a number)"
                    .to_owned()
            )
        );
        assert_eq!(
            decide_owner(Some("ossec:wazuh"), 0, PASSWD, GROUP),
            Err(
                "--owner: group \"wazuh\" does not exist (not in /etc/group, not a number)"
                    .to_owned()
            )
        );
    }
}
