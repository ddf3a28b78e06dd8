//! `wazuh-cluster node --wazuh-path DIR [--config FILE] [--insecure-no-key]`: run one cluster
//! node from the `<cluster>` block of an ossec.conf, until SIGINT or SIGTERM.
//!
//! The configuration is read and validated by `wazuh_cluster_sync::config` (upstream's checks,
//! messages naming the setting); this module only maps it onto the tokio adapter: a master
//! listens on `bind_addr:port` and serves local clients on `DIR/queue/cluster/c-internal.sock`,
//! a worker dials `nodes[0]:port`. The cluster key is required unless `--insecure-no-key` is
//! given (and the key left empty): plaintext TCP is never a default. `--cluster-json` reads an
//! operator's cluster.json (items, intervals) over 3.9.5's defaults.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use wazuh_cluster_sync::config::{
    ClusterConfig, ClusterSection, KeyPolicy, NodeType, parse_ossec_conf,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_tokio::{AdapterLimits, NodeSpec, shutdown_signal, start, wall_clock_now};

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
}

/// Reads and validates `file` (`DIR/etc/ossec.conf` by default). `Ok(None)`: the cluster is
/// disabled (the reason is printed).
pub fn read_cluster_config(
    wazuh_path: &Path,
    file: Option<&Path>,
    policy: KeyPolicy,
) -> Result<Option<ClusterConfig>, String> {
    let path = file.map_or_else(|| wazuh_path.join(OSSEC_CONF), Path::to_path_buf);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match parse_ossec_conf(&bytes, policy).map_err(|e| format!("{}: {e}", path.display()))? {
        ClusterSection::Enabled(config) => Ok(Some(config)),
        ClusterSection::Disabled(why) => {
            eprintln!(
                "wazuh-cluster: cluster disabled in {}: {why}",
                path.display()
            );
            Ok(None)
        }
    }
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
    let policy = if args.insecure_no_key {
        KeyPolicy::AllowMissing
    } else {
        KeyPolicy::Required
    };
    let config = match read_cluster_config(&args.wazuh_path, args.config.as_deref(), policy) {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wazuh-cluster: {message}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if config.key.is_none() {
        tracing::warn!("no cluster key: node links are plaintext (--insecure-no-key)");
    }
    let mut spec = node_spec(&config, &args.wazuh_path);
    spec.limits.max_connections_per_ip = args.max_connections_per_ip;
    if let Some(path) = &args.cluster_json {
        let items = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| ClusterItems::from_json_3_9(&bytes).map_err(|e| e.to_string()));
        match items {
            Ok(items) => spec.config.items = items,
            Err(message) => {
                eprintln!("wazuh-cluster: {}: {message}", path.display());
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wazuh-cluster: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        let mut node = match start(spec).await {
            Ok(node) => node,
            Err(e) => {
                eprintln!("wazuh-cluster: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        match node.local_addr() {
            Some(addr) => tracing::info!("Master {} listening on {addr}", config.node_name),
            None => tracing::info!(
                "Worker {} started, master at {}",
                config.node_name,
                node_config_master(&config)
            ),
        }
        tokio::select! {
            signal = shutdown_signal() => match signal {
                Ok(signal) => tracing::info!("{signal} received: stopping"),
                Err(e) => tracing::error!("cannot wait for signals ({e}): stopping"),
            },
            () = node.stopped() => {
                tracing::error!("the node stopped on its own");
                let _ = node.wait().await;
                return ExitCode::from(EXIT_FAILURE);
            }
        }
        match node.stop().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wazuh-cluster: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        }
    })
}

fn node_config_master(config: &ClusterConfig) -> String {
    config.node_config(wall_clock_now()).master_addr
}
