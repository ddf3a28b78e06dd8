//! What every runtime adapter of a Wazuh cluster node shares and is not runtime code.
//!
//! ```text
//!   wazuh-cluster (cli) ──► wazuh-cluster-tokio ─┐
//!                       └─► wazuh-cluster-mio ───┼──► wazuh-cluster-host ──► wazuh-cluster-fs
//!                                                │     (this crate)      └─► wazuh-cluster-sync
//!                                                └──────────────────────────► (the Node)
//! ```
//!
//! An adapter moves bytes, time and disk work between the OS and a sans-IO
//! [`Node`](wazuh_cluster_sync::roles::Node); how it waits (tokio tasks, one mio event loop) is
//! its own. Everything else it needs is the same for every runtime and lives here, once:
//!
//! * [`NodeSpec`]: what to run (configuration, install root, listen address, local socket,
//!   owner, API executor, seed) and the socket-level [`AdapterLimits`]; [`StartError`],
//!   [`StopError`], the [`RunStats`] a stopped node returns;
//! * [`os`]: the OS's randomness for the seed, the clocks, the descriptor limit;
//! * [`effects`]: the effect thread's body — the confined storage opened with its owner, the
//!   staged files of an interrupted run removed, effects executed one at a time;
//! * [`api_exec`]: distributed API calls, built in or by an external program (blocking, run off
//!   the event loop);
//! * [`log`] and [`log_limit`]: node events as upstream-shaped log lines, refusals rate-limited;
//! * [`slots`]: open connections per source address;
//! * [`trees`]: install trees on disk for the demo and the tests;
//! * [`bind_local_socket`]: the local socket, created as upstream's.
//!
//! ```no_run
//! use wazuh_cluster_host::{NodeSpec, wall_clock_now};
//! use wazuh_cluster_sync::roles::{NodeConfig, NodeType};
//!
//! let config = NodeConfig::new(NodeType::Master, "master01", None, wall_clock_now());
//! let mut spec = NodeSpec::new(config, "/var/ossec");
//! spec.listen = Some("127.0.0.1:1516".to_owned());
//! // Then `wazuh_cluster_tokio::start(spec)` or `wazuh_cluster_mio::start(spec)`.
//! ```

pub mod api_exec;
pub mod effects;
mod limits;
pub mod log;
pub mod log_limit;
pub mod os;
pub mod progress;
pub mod slots;
pub mod trees;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use wazuh_cluster_sync::roles::NodeConfig;

pub use api_exec::{ApiExecutor, MAX_PROGRAM_TIME};
pub use limits::{AdapterLimits, RESERVED_DESCRIPTORS};
pub use log::{EventLine, EventLog, event_line};
pub use os::{
    DescriptorLimit, descriptor_limit, os_seed, raise_descriptor_limit, unix_time_at,
    wall_clock_now,
};

/// Everything needed to run one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The node's configuration (name, type, key, cluster.json, limits, wall-clock anchor).
    pub config: NodeConfig,
    /// The install root (`/var/ossec`): the storage is confined to it.
    pub install_root: PathBuf,
    /// Master: the `host:port` to listen on (`0.0.0.0:1516`; port 0 picks a free one, which the
    /// running node tells). Workers listen on nothing.
    pub listen: Option<String>,
    /// The Unix socket for local clients (`<install root>/queue/cluster/c-internal.sock`, see
    /// [`NodeSpec::default_local_socket`]); created with mode 0660, removed at stop. `None`: no
    /// local socket.
    pub local_socket: Option<PathBuf>,
    /// Socket-level bounds.
    pub limits: AdapterLimits,
    /// The node's seed; `None` draws one from the OS (what a real node must do). Tests may fix it.
    pub seed: Option<u64>,
    /// Owner given to every file the node writes and directory it creates (upstream's
    /// `ossec:ossec`); `None`: this process's. See
    /// [`FsStorage::set_owner`](wazuh_cluster_fs::FsStorage::set_owner).
    pub owner: Option<wazuh_cluster_fs::Owner>,
    /// Where the node's distributed API calls run (built in by default).
    pub api_executor: ApiExecutor,
}

impl NodeSpec {
    /// A node over `install_root` with the default adapter limits and an OS seed; a master
    /// listens on `0.0.0.0:1516` (change [`NodeSpec::listen`]); both roles serve local clients
    /// on [`NodeSpec::default_local_socket`] (a worker forwards `get_nodes` / `get_health` to
    /// its master, as upstream's does).
    pub fn new(config: NodeConfig, install_root: impl Into<PathBuf>) -> NodeSpec {
        let master = config.node_type == wazuh_cluster_sync::roles::NodeType::Master;
        let install_root = install_root.into();
        let listen = master.then(|| "0.0.0.0:1516".to_owned());
        let local_socket = Some(NodeSpec::default_local_socket(&install_root));
        NodeSpec {
            config,
            install_root,
            listen,
            local_socket,
            limits: AdapterLimits::default(),
            seed: None,
            owner: None,
            api_executor: ApiExecutor::Builtin,
        }
    }

    /// `<install root>/queue/cluster/c-internal.sock`, upstream's local socket.
    pub fn default_local_socket(install_root: &Path) -> PathBuf {
        install_root.join(LOCAL_SOCKET)
    }

    /// The seed: [`NodeSpec::seed`] or one from the OS.
    ///
    /// # Errors
    /// [`StartError::Seed`].
    pub fn seed_or_os(&self) -> Result<u64, StartError> {
        match self.seed {
            Some(seed) => Ok(seed),
            None => os_seed().map_err(StartError::Seed),
        }
    }

    /// What every runtime does first when it starts this node: the install root told to the
    /// node ([`NodeConfig::install_root`](wazuh_cluster_sync::roles::NodeConfig)), the seed
    /// ([`NodeSpec::seed_or_os`]),
    /// then the descriptor limit raised and the transfer budget fitted to it
    /// ([`raise_descriptor_limit_and_budget`]).
    ///
    /// # Errors
    /// [`StartError::Seed`].
    pub fn prepare_start(&mut self) -> Result<u64, StartError> {
        let seed = self.seed_or_os()?;
        // The node confines the local clients' absolute paths to the root it is given here.
        // A relative `--wazuh-path` is made absolute, as the clients name absolute paths.
        let root = std::path::absolute(&self.install_root).unwrap_or(self.install_root.clone());
        self.config.install_root = root.to_string_lossy().into_owned();
        let listens = self.listen.is_some();
        raise_descriptor_limit_and_budget(&mut self.config, &self.limits, listens);
        Ok(seed)
    }
}

/// The local socket's path under an install root.
pub const LOCAL_SOCKET: &str = "queue/cluster/c-internal.sock";

/// Why a node could not start.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The install root cannot be opened.
    #[error("cannot open the install root {path}: {message}")]
    InstallRoot {
        /// The path given.
        path: String,
        /// The storage's error.
        message: String,
    },
    /// The listening socket cannot be bound.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS's error.
        message: String,
    },
    /// The local socket cannot be created.
    #[error("cannot create the local socket {path}: {message}")]
    LocalSocket {
        /// Its path.
        path: String,
        /// The OS's error.
        message: String,
    },
    /// The OS gave no randomness for the node's seed.
    #[error("no OS randomness for the node seed: {0}")]
    Seed(String),
    /// The runtime could not start the node's threads or event loop.
    #[error("cannot start the node's runtime: {0}")]
    Runtime(String),
}

/// Why a node ended abnormally.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// The node's task or thread panicked (a broken invariant in the node: a bug).
    #[error("node {name} stopped abnormally: {message}")]
    Crashed {
        /// The node.
        name: String,
        /// The panic or cancellation text.
        message: String,
    },
}

/// Counters of a node's run, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Connections accepted or dialled.
    pub connections: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes handed to writers.
    pub bytes_out: u64,
    /// Effects run.
    pub effects: u64,
    /// Peers closed because their write backlog passed `max_write_backlog` (a last resort: the
    /// node stops reading from a peer that does not read long before, at its
    /// `max_queued_output`).
    pub slow_peers_closed: u64,
}

impl RunStats {
    /// Whether `bytes` more for `peer` would take its write backlog past
    /// [`AdapterLimits::max_write_backlog`]: if so, the peer is counted and logged as one that
    /// does not read, and the runtime closes it (both runtimes take this one decision).
    pub fn write_backlog_overflows(
        &mut self,
        limits: &AdapterLimits,
        node: &str,
        peer: wazuh_cluster_sync::roles::PeerId,
        addr: &str,
        waiting: usize,
        bytes: usize,
    ) -> bool {
        if waiting.saturating_add(bytes) <= limits.max_write_backlog {
            return false;
        }
        tracing::warn!(
            "[{node}] closing {peer} ({addr}): it does not read what we send ({waiting} bytes waiting)"
        );
        self.slow_peers_closed += 1;
        true
    }
}

/// Raises the descriptor limit (see [`raise_descriptor_limit`]) and logs what changed, as a
/// starting node does; then lowers the node's descriptor budget for files being received to
/// what the limit leaves once every connection, local client and the reserve have theirs
/// ([`AdapterLimits::transfer_descriptors`]), so that transfers can never make an accept fail.
pub fn raise_descriptor_limit_and_budget(
    config: &mut wazuh_cluster_sync::roles::NodeConfig,
    limits: &AdapterLimits,
    listens: bool,
) {
    let nofile = match raise_descriptor_limit() {
        Ok(limit) => {
            if limit.before != limit.after {
                tracing::info!(
                    task = "Main",
                    "descriptor limit raised from {:?} to {:?}",
                    limit.before,
                    limit.after
                );
            }
            limit.after
        }
        Err(error) => {
            tracing::warn!(task = "Main", "descriptor limit not raised: {error}");
            os::descriptor_limit()
        }
    };
    if let Some(nofile) = nofile {
        let left = limits.transfer_descriptors(nofile, listens);
        let budget = &mut config.limits.max_transfer_descriptors;
        if left < *budget {
            tracing::info!(
                task = "Main",
                "{left} of {nofile} descriptors left for files being received (was {budget})"
            );
            *budget = left;
        }
    }
}

/// Binds the local socket: parent directory created, a stale socket file from a previous run
/// removed (anything else at the path is left alone and the bind fails), mode 0660 as upstream,
/// and given to `owner` (upstream's socket belongs to the ossec user its daemon runs as, so the
/// ossec-run tools in the group can connect). The listener is non-blocking, for an event loop.
///
/// # Errors
/// [`StartError::LocalSocket`].
pub fn bind_local_socket(
    path: &Path,
    owner: Option<wazuh_cluster_fs::Owner>,
) -> Result<UnixListener, StartError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let bind = || -> std::io::Result<UnixListener> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        if let Some(owner) = owner {
            std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    bind().map_err(|e| StartError::LocalSocket {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Binds the TCP listener at `addr` (non-blocking, for an event loop).
///
/// # Errors
/// [`StartError::Listen`].
pub fn bind_tcp(addr: &str) -> Result<std::net::TcpListener, StartError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    bind().map_err(|e| StartError::Listen {
        addr: addr.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_cut_only_past_the_write_backlog_and_counted_once_each_time() {
        let limits = AdapterLimits {
            max_write_backlog: 100,
            ..AdapterLimits::default()
        };
        let peer = wazuh_cluster_sync::roles::PeerId(7);
        let mut stats = RunStats::default();
        // Exactly at the bound still fits; one byte more does not.
        assert!(!stats.write_backlog_overflows(&limits, "master", peer, "127.0.0.1:1", 60, 40));
        assert_eq!(stats.slow_peers_closed, 0);
        assert!(stats.write_backlog_overflows(&limits, "master", peer, "127.0.0.1:1", 60, 41));
        assert_eq!(stats.slow_peers_closed, 1);
        // A backlog near usize::MAX cannot wrap round into "fits".
        assert!(stats.write_backlog_overflows(&limits, "master", peer, "a", usize::MAX, 1));
        assert_eq!(stats.slow_peers_closed, 2);
    }
}
