//! The configuration files a node reads, read and validated as upstream does, without I/O: the
//! `<cluster>` block of an ossec.conf (this module, errors [`OssecConfError`]) and cluster.json
//! ([`cluster_json`], errors [`cluster_json::ClusterJsonError`]).
//!
//! Why here and not in an adapter: an operator's node is configured by the stock ossec.conf of its
//! install tree, the same file a real 3.9.5 node reads, and a wrong value must be refused with the
//! same meaning upstream gives it, in the daemon and in every tool. So the reading is a pure
//! function (text in, typed [`ClusterSection`] out) the adapters call after reading the file.
//!
//! Semantics (upstream 3.9.5 `cluster.read_config` and `check_cluster_config`, PROTOCOL.md §2,
//! §7, §12.2):
//! * no `<cluster>` section at all → the cluster is disabled ([`Disabled::NoClusterSection`]);
//!   `<disabled>yes</disabled>` → disabled ([`Disabled::BySetting`]); nothing else is checked then;
//! * a missing option takes upstream's default: `name` `wazuh`, `node_name` `node01`, `node_type`
//!   `master`, `port` 1516, `bind_addr` `0.0.0.0`, `nodes` `[NODE_IP]`, `hidden` `no`;
//! * `node_type` `client` is the legacy name of `worker` (a [`ConfigWarning`] says so);
//! * checks, in upstream's order, each error naming its setting: `key` (32 characters of
//!   `[A-Za-z0-9_]`, via [`ClusterKey::new`]), `node_type`, `port` (digits, 1024 < port < 65535),
//!   `nodes` (none of upstream's reserved `localhost`, `NODE_IP`, `0.0.0.0`, `127.0.1.1`; a worker
//!   needs one, the master's address), then ours: `node_name` (the Node's own rule,
//!   [`valid_node_name`]: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with `.`, because it becomes
//!   a directory name and a field of the space-separated `hello`),
//!   `name` (non-empty, no whitespace: also a `hello` field), `hidden` and `disabled` (`yes`/`no`).
//!
//! Deliberate differences: values are trimmed (upstream's `" 1516 "` fails its integer check; a
//! value split over lines is common in hand-edited files), a repeated `<nodes>` replaces the
//! earlier list (upstream nests it and then crashes), and `$HOSTNAME`-style node names are refused
//! by the node-name rule rather than expanded.

pub mod cluster_json;
pub(crate) mod xml;

use std::fmt;

use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_protocol::key::{ClusterKey, KeyError};

/// The role of a node: the crate's one type for it (also the scan side of `integrity`).
pub use crate::roles::NodeType;
use crate::roles::{ClusterSettings, NodeConfig, valid_node_name};

/// Upstream's default cluster name.
pub const DEFAULT_NAME: &str = "wazuh";
/// Upstream's default node name.
pub const DEFAULT_NODE_NAME: &str = "node01";
/// Upstream's default port.
pub const DEFAULT_PORT: u16 = 1516;
/// Upstream's default listening address.
pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0";
/// The placeholder of the stock ossec.conf in `<nodes><node>`, upstream's default node list.
pub const NODE_IP_PLACEHOLDER: &str = "NODE_IP";
/// Entries upstream refuses in `<nodes>` (`check_cluster_config`'s `reservated_ips`), in the
/// order our error lists them.
pub const RESERVED_NODES: [&str; 4] = ["0.0.0.0", "127.0.1.1", "NODE_IP", "localhost"];
/// Longest cluster name we accept.
pub const MAX_CLUSTER_NAME_LEN: usize = 256;

/// Whether an empty `<key>` is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Upstream's rule: the key is mandatory.
    Required,
    /// An empty key gives [`ClusterConfig::key`] `None` (plaintext TCP), for an operator who asked
    /// for it explicitly (`--insecure-no-key`). A non-empty invalid key is still refused.
    AllowMissing,
}

/// A valid, enabled cluster configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Cluster name (`<name>`), compared by the master in `hello`.
    pub name: String,
    /// This node's name (`<node_name>`).
    pub node_name: String,
    /// This node's role (`<node_type>`).
    pub node_type: NodeType,
    /// The cluster key; `None` only with [`KeyPolicy::AllowMissing`] and an empty `<key>`.
    pub key: Option<ClusterKey>,
    /// TCP port: the master listens on it, workers dial it.
    pub port: u16,
    /// Address the master listens on (an address or a host name, resolved by the adapter).
    pub bind_addr: String,
    /// `<nodes>` entries; a worker dials the first one (upstream uses `nodes[0]`).
    pub nodes: Vec<String>,
    /// `<hidden>yes</hidden>`: the node is not shown in the API's cluster information.
    pub hidden: bool,
    /// Things upstream logs about an accepted configuration.
    pub warnings: Vec<ConfigWarning>,
}

impl ClusterConfig {
    /// A configuration built in code (tests, `demo`): upstream's defaults for everything but the
    /// node's name, role, key and `nodes`, checked with the same rules as a file.
    ///
    /// # Errors
    /// [`OssecConfError::NodeName`], [`OssecConfError::ReservedNodes`], [`OssecConfError::EmptyNode`],
    /// [`OssecConfError::NoMasterNode`].
    pub fn new(
        node_name: &str,
        node_type: NodeType,
        key: Option<ClusterKey>,
        nodes: Vec<String>,
    ) -> Result<ClusterConfig, OssecConfError> {
        if !valid_node_name(node_name.as_bytes()) {
            return Err(OssecConfError::NodeName {
                value: node_name.to_owned(),
            });
        }
        check_nodes(&nodes, node_type)?;
        Ok(ClusterConfig {
            name: DEFAULT_NAME.to_owned(),
            node_name: node_name.to_owned(),
            node_type,
            key,
            port: DEFAULT_PORT,
            bind_addr: DEFAULT_BIND_ADDR.to_owned(),
            nodes,
            hidden: false,
            warnings: Vec::new(),
        })
    }

    /// The [`NodeConfig`] of the node this configuration describes: 3.9.5 defaults (cluster.json,
    /// limits) with this node's name, role, cluster name and key; the address `get_nodes`
    /// reports for the master and the address a worker dials are the first `<nodes>` entry (the
    /// listening address when there is none) with `port`, as upstream.
    pub fn node_config(&self, wall_clock: WallClock) -> NodeConfig {
        let mut config = NodeConfig::new(
            self.node_type,
            &self.node_name,
            self.key.clone(),
            wall_clock,
        );
        config.cluster_name = self.name.clone();
        let master = self.master_address().unwrap_or(&self.bind_addr);
        config.address = master.to_owned();
        config.master_addr = host_port(master, self.port);
        config.settings = ClusterSettings {
            port: self.port,
            bind_addr: self.bind_addr.clone(),
            nodes: self.nodes.clone(),
            hidden: self.hidden,
        };
        config
    }

    /// Where a master listens: `bind_addr:port` (`[v6]:port` for an IPv6 address).
    pub fn listen_address(&self) -> String {
        host_port(&self.bind_addr, self.port)
    }

    /// The address a worker dials: the first `<nodes>` entry (`None` for a master without one).
    pub fn master_address(&self) -> Option<&str> {
        self.nodes.first().map(String::as_str)
    }
}

/// The outcome of reading an ossec.conf: an enabled configuration, or a disabled cluster (a
/// normal state of a stand-alone manager, not an error: upstream's daemon just exits).
#[derive(Debug, Clone)]
pub enum ClusterSection {
    /// The cluster is enabled and its configuration valid.
    Enabled(ClusterConfig),
    /// The cluster is disabled; nothing else was validated.
    Disabled(Disabled),
}

/// Why the cluster is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// The file has no `<cluster>` section (upstream: default configuration, disabled).
    NoClusterSection,
    /// `<disabled>yes</disabled>` (the stock ossec.conf ships that way).
    BySetting,
}

impl fmt::Display for Disabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disabled::NoClusterSection => "the cluster is disabled: no <cluster> section",
            Disabled::BySetting => "the cluster is disabled: <disabled>yes</disabled>",
        })
    }
}

/// Something upstream logs about an accepted configuration (upstream's texts).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigWarning {
    /// `node_type` `client` was read as `worker`.
    #[error("Deprecated node type 'client'. Using 'worker' instead.")]
    LegacyClientNodeType,
    /// More than one `<nodes>` entry: only the first is used.
    #[error(
        "Found more than one node in configuration. Only master node should be specified. Using {using} as master."
    )]
    SeveralNodes {
        /// The entry used.
        using: String,
    },
}

/// Why the `<cluster>` block of an ossec.conf is refused. Each message names the setting (upstream's wording
/// where upstream has one). The key itself never appears.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OssecConfError {
    /// The file is not UTF-8.
    #[error("ossec.conf is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The file is not well-formed enough to read (unclosed or mismatched element, broken tag).
    #[error("ossec.conf is not well-formed XML at line {line}: {message}")]
    NotWellFormed {
        /// 1-based line where the reader stopped.
        line: usize,
        /// The reader's description.
        message: String,
    },
    /// `<key>` empty or invalid (upstream: "Unspecified key" / "Key must be 32 characters long
    /// and only have alphanumeric characters").
    #[error("cluster setting 'key': {0}")]
    Key(KeyError),
    /// `<node_type>` is not `master`, `worker` or `client`.
    #[error(
        "cluster setting 'node_type': Invalid node type '{value}'. Correct values are master and worker"
    )]
    NodeType {
        /// The value found.
        value: String,
    },
    /// `<port>` is not a decimal integer.
    #[error("cluster setting 'port': Cluster port must be an integer (found '{value}')")]
    PortNotInteger {
        /// The value found.
        value: String,
    },
    /// `<port>` is not strictly between 1024 and 65535.
    #[error(
        "cluster setting 'port': Port must be higher than 1024 and lower than 65535 (found {value})"
    )]
    PortOutOfRange {
        /// The value found.
        value: String,
    },
    /// `<nodes>` holds entries upstream reserves (e.g. the stock `NODE_IP` placeholder).
    #[error("cluster setting 'nodes': Invalid elements in node fields: {}.", .values.join(", "))]
    ReservedNodes {
        /// The reserved entries found, in [`RESERVED_NODES`] order.
        values: Vec<String>,
    },
    /// A worker without any `<nodes><node>` entry has no master to dial.
    #[error("cluster setting 'nodes': a worker needs the master's address in <nodes><node>")]
    NoMasterNode,
    /// An empty `<node>` entry.
    #[error("cluster setting 'nodes': empty <node> entry")]
    EmptyNode,
    /// `<node_name>` breaks our node-name rule.
    #[error(
        "cluster setting 'node_name': '{value}' must be 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'"
    )]
    NodeName {
        /// The value found.
        value: String,
    },
    /// `<name>` is empty, too long or contains whitespace or control characters.
    #[error(
        "cluster setting 'name': '{value}' must be 1 to 256 characters without whitespace or control characters"
    )]
    ClusterName {
        /// The value found.
        value: String,
    },
    /// A yes/no setting (`disabled`, `hidden`) with another value (upstream's wording).
    #[error(
        "cluster setting '{setting}': Allowed values for '{setting}' field are 'yes' and 'no'. Found: '{value}'"
    )]
    YesNo {
        /// The setting.
        setting: &'static str,
        /// The value found.
        value: String,
    },
}

/// Reads the `<cluster>` block of an ossec.conf (its bytes) and validates it.
///
/// # Errors
/// Any [`OssecConfError`]; a disabled cluster is `Ok(ClusterSection::Disabled(_))`.
pub fn parse_ossec_conf(bytes: &[u8], policy: KeyPolicy) -> Result<ClusterSection, OssecConfError> {
    let text = std::str::from_utf8(bytes).map_err(|error| OssecConfError::NotUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    let raw = xml::read_cluster(text)?;
    if !raw.present {
        return Ok(ClusterSection::Disabled(Disabled::NoClusterSection));
    }
    let option = |name: &str| raw.options.get(name).map(String::as_str);
    if yes_no("disabled", option("disabled").unwrap_or("no"))? {
        return Ok(ClusterSection::Disabled(Disabled::BySetting));
    }
    let mut warnings = Vec::new();

    let key = match (option("key").unwrap_or(""), policy) {
        ("", KeyPolicy::AllowMissing) => None,
        (key, _) => Some(ClusterKey::new(key).map_err(OssecConfError::Key)?),
    };
    let node_type = match option("node_type").unwrap_or("master") {
        "master" => NodeType::Master,
        "worker" => NodeType::Worker,
        "client" => {
            warnings.push(ConfigWarning::LegacyClientNodeType);
            NodeType::Worker
        }
        other => {
            return Err(OssecConfError::NodeType {
                value: other.to_owned(),
            });
        }
    };
    let port = parse_port(option("port"))?;
    let nodes = raw
        .nodes
        .clone()
        .unwrap_or_else(|| vec![NODE_IP_PLACEHOLDER.to_owned()]);
    check_nodes(&nodes, node_type)?;
    if nodes.len() > 1 {
        warnings.push(ConfigWarning::SeveralNodes {
            using: nodes[0].clone(),
        });
    }
    let node_name = option("node_name").unwrap_or(DEFAULT_NODE_NAME);
    if !valid_node_name(node_name.as_bytes()) {
        return Err(OssecConfError::NodeName {
            value: node_name.to_owned(),
        });
    }
    let name = option("name").unwrap_or(DEFAULT_NAME);
    if !valid_cluster_name(name) {
        return Err(OssecConfError::ClusterName {
            value: name.to_owned(),
        });
    }
    let hidden = yes_no("hidden", option("hidden").unwrap_or("no"))?;
    Ok(ClusterSection::Enabled(ClusterConfig {
        name: name.to_owned(),
        node_name: node_name.to_owned(),
        node_type,
        key,
        port,
        bind_addr: option("bind_addr").unwrap_or(DEFAULT_BIND_ADDR).to_owned(),
        nodes,
        hidden,
        warnings,
    }))
}

fn yes_no(setting: &'static str, value: &str) -> Result<bool, OssecConfError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(OssecConfError::YesNo {
            setting,
            value: other.to_owned(),
        }),
    }
}

/// Upstream: `isdigit()` then `int()`, then `1024 < port < 65535`.
fn parse_port(value: Option<&str>) -> Result<u16, OssecConfError> {
    let Some(value) = value else {
        return Ok(DEFAULT_PORT);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OssecConfError::PortNotInteger {
            value: value.to_owned(),
        });
    }
    // Any number of digits is an integer to upstream; past 5 significant digits it is simply
    // out of range (and cannot overflow our parse).
    let digits = value.trim_start_matches('0');
    let port = match digits.len() {
        0 => 0,
        1..=5 => digits.parse::<u32>().unwrap_or(u32::MAX),
        _ => u32::MAX,
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|port| *port > 1024 && *port < 65535)
        .ok_or_else(|| OssecConfError::PortOutOfRange {
            value: value.to_owned(),
        })?;
    Ok(port)
}

fn check_nodes(nodes: &[String], node_type: NodeType) -> Result<(), OssecConfError> {
    let reserved: Vec<String> = RESERVED_NODES
        .iter()
        .filter(|reserved| nodes.iter().any(|node| node == *reserved))
        .map(|reserved| (*reserved).to_owned())
        .collect();
    if !reserved.is_empty() {
        return Err(OssecConfError::ReservedNodes { values: reserved });
    }
    if nodes.iter().any(String::is_empty) {
        return Err(OssecConfError::EmptyNode);
    }
    if node_type == NodeType::Worker && nodes.is_empty() {
        return Err(OssecConfError::NoMasterNode);
    }
    Ok(())
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A cluster name travels as one space-separated field of `hello`.
fn valid_cluster_name(name: &str) -> bool {
    (1..=MAX_CLUSTER_NAME_LEN).contains(&name.len())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}
