//! `wazuh-cluster control -l | -i [more]`: upstream's `cluster_control`, same output.
//!
//! Operators' scripts parse what `cluster_control -l` and `-i` print, so the text here is
//! upstream 3.9.5's character for character (PROTOCOL.md §14.3). It is produced by two pure
//! functions, [`format_nodes`] and [`format_health`], from the JSON documents a node answers to
//! `get_nodes` and `get_health` (§14.1, §14.2); the client part only moves those documents over
//! the node's local socket (`<wazuh-path>/queue/cluster/c-internal.sock`: plaintext, the 20-byte
//! framing, no `hello`, §15) through the protocol crate's [`Connection`], sending the exact
//! request payloads upstream's `cluster_control` sends (recorded in the DAPI vectors).
//!
//! On a master the answer is the reply itself; on a worker the reply is `ok` `Sent request to
//! master node` and the document arrives later as a `control_res` request, which is acknowledged
//! with `Response received` as upstream's local client does.
//!
//! The cluster name printed by `-i` comes, like upstream, from the local ossec.conf
//! (`--wazuh-path`); with `--socket` alone it is asked from the node with `get_config`.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args};
use serde_json::Value;
use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Event, Side, WallClock};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::config::{ClusterSection, ConfigError, KeyPolicy, parse_ossec_conf};

/// The local socket under an install root.
pub const SOCKET_RELATIVE_PATH: &str = "queue/cluster/c-internal.sock";
/// The ossec.conf under an install root.
pub const OSSEC_CONF_RELATIVE_PATH: &str = "etc/ossec.conf";
/// Upstream 3.9.5 `control.get_nodes()` request payload (kwargs of `get_connected_nodes`),
/// byte for byte as recorded in `dapi_via_master.json` / `dapi_via_worker.json`.
pub const GET_NODES_PAYLOAD: &[u8] = br#"{"filter_node": null, "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#;
/// Upstream 3.9.5 `control.get_health()` request payload (no node filter).
pub const GET_HEALTH_PAYLOAD: &[u8] = b"null";
/// The commands `control` sends (checked at compile time).
const GET_NODES: Command = Command::from_static(b"get_nodes");
const GET_HEALTH: Command = Command::from_static(b"get_health");
const GET_CONFIG: Command = Command::from_static(b"get_config");
/// The request carrying a worker's forwarded answer.
const CONTROL_RES: Command = Command::from_static(b"control_res");
/// A worker's reply when it forwards the request to its master.
const SENT_TO_MASTER: &[u8] = b"Sent request to master node";
/// What upstream's local client answers to `control_res`.
const RESPONSE_RECEIVED: &[u8] = b"Response received";
/// Exit status of every failure (upstream `cluster_control` exits 1).
const EXIT_FAILURE: u8 = 1;

/// `control` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["list_nodes", "health"])))]
pub struct ControlArgs {
    /// List the cluster nodes (upstream `cluster_control -l`).
    #[arg(short = 'l', long = "list-nodes")]
    list_nodes: bool,

    /// Show the cluster health (upstream `cluster_control -i`); `-i more` adds a block per node.
    #[arg(
        short = 'i',
        long = "health",
        num_args = 0..=1,
        default_missing_value = "health",
        value_name = "more"
    )]
    health: Option<String>,

    /// Install root of the node to ask: its socket is DIR/queue/cluster/c-internal.sock and the
    /// cluster name shown by -i is read from DIR/etc/ossec.conf.
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    wazuh_path: PathBuf,

    /// The node's local socket, instead of the one under --wazuh-path (the cluster name is then
    /// asked from the node).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Seconds to wait for the node's answer (a worker forwards the question to its master).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

/// Runs `control` and returns the process exit status.
pub fn run(args: ControlArgs) -> ExitCode {
    match output(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("wazuh-cluster control: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// What `control` prints for `args`.
fn output(args: &ControlArgs) -> Result<String, ControlError> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| args.wazuh_path.join(SOCKET_RELATIVE_PATH));
    let timeout = Duration::from_secs(args.timeout);
    if args.list_nodes {
        let nodes = request_json(&socket, GET_NODES, GET_NODES_PAYLOAD, timeout)?;
        return Ok(format_nodes(&nodes)?);
    }
    let more = args
        .health
        .as_deref()
        .is_some_and(|value| value.eq_ignore_ascii_case("more"));
    let name = match &args.socket {
        Some(_) => {
            let config = request_json(&socket, GET_CONFIG, b"", timeout)?;
            text_at(&config, &["name"])?
        }
        None => cluster_name_from_ossec_conf(&args.wazuh_path)?,
    };
    let health = request_json(&socket, GET_HEALTH, GET_HEALTH_PAYLOAD, timeout)?;
    Ok(format_health(&name, &health, more)?)
}

/// The cluster name of the install at `wazuh_path`, from its ossec.conf.
fn cluster_name_from_ossec_conf(wazuh_path: &Path) -> Result<String, ControlError> {
    let path = wazuh_path.join(OSSEC_CONF_RELATIVE_PATH);
    let bytes = std::fs::read(&path).map_err(|error| ControlError::Io {
        context: format!("cannot read {}", path.display()),
        message: error.to_string(),
    })?;
    match parse_ossec_conf(&bytes, KeyPolicy::AllowMissing) {
        Ok(ClusterSection::Enabled(config)) => Ok(config.name),
        Ok(ClusterSection::Disabled(why)) => Err(ControlError::ClusterDisabled {
            path,
            reason: why.to_string(),
        }),
        Err(error) => Err(ControlError::Config { path, error }),
    }
}

// ------------------------------------------------------------------------------------------------
// Formatting (pure)

/// Why a document cannot be printed the way upstream prints it (upstream would stop with a
/// `KeyError` or `TypeError` there).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A field upstream reads is missing.
    #[error("the node's answer has no '{path}'")]
    Missing {
        /// Dotted path of the field.
        path: String,
    },
    /// A field has a type upstream cannot print there.
    #[error("the node's answer has an unexpected '{path}': {found}")]
    Shape {
        /// Dotted path of the field.
        path: String,
        /// The value found (JSON).
        found: String,
    },
}

/// The value at `path` (object keys) in `doc`.
fn at<'a>(doc: &'a Value, path: &[&str]) -> Result<&'a Value, FormatError> {
    path.iter()
        .enumerate()
        .try_fold(doc, |value, (depth, key)| {
            value.get(key).ok_or_else(|| FormatError::Missing {
                path: path[..=depth].join("."),
            })
        })
}

/// Python's `str(value)` for what a JSON document holds (`"{}".format(value)`).
fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// `py_str` of the value at `path`.
fn text_at(doc: &Value, path: &[&str]) -> Result<String, FormatError> {
    at(doc, path).map(py_str)
}

/// A table cell: upstream measures `len(y)` of each cell, so cells must be strings.
fn cell(item: &Value, key: &str, index: usize) -> Result<String, FormatError> {
    match item.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(FormatError::Shape {
            path: format!("items.{index}.{key}"),
            found: other.to_string(),
        }),
        None => Err(FormatError::Missing {
            path: format!("items.{index}.{key}"),
        }),
    }
}

/// `cluster_control -l`: what upstream prints for a `get_nodes` document.
///
/// Upstream (`print_nodes` and `__print_table` of `cluster_control`):
/// ```text
/// headers = ["Name", "Type", "Version", "Address"]
/// data = map(lambda x: list(x.values()), result['items'])
/// table = list(itertools.chain([tuple(map(lambda x: x.upper(), headers))], data))
/// return list(map(lambda x: max(map(lambda y: len(y)+2, x)), map(list, zip(*l))))
/// table_str = '\n'.join([''.join(["{}{}".format(col, " "*(max_size - len(col))) ...
/// print(table_str)
/// ```
/// Every column (the last one too) is padded to its longest cell + 2, widths counted in
/// characters as Python's `len`. Upstream takes each item's values in the node's key order
/// (`name`, `type`, `version`, `ip`); we take them by name, which is the same on a 3.9.5 answer
/// and does not depend on key order.
///
/// # Errors
/// [`FormatError`] when `items` or a cell is missing or not a string.
pub fn format_nodes(doc: &Value) -> Result<String, FormatError> {
    let items = at(doc, &["items"])?
        .as_array()
        .ok_or_else(|| FormatError::Shape {
            path: "items".to_owned(),
            found: doc["items"].to_string(),
        })?;
    let mut rows = vec![["NAME", "TYPE", "VERSION", "ADDRESS"].map(str::to_owned)];
    for (index, item) in items.iter().enumerate() {
        rows.push([
            cell(item, "name", index)?,
            cell(item, "type", index)?,
            cell(item, "version", index)?,
            cell(item, "ip", index)?,
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count() + 2);
        }
    }
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        for (width, text) in widths.iter().zip(row) {
            out.push_str(text);
            out.extend(std::iter::repeat_n(' ', width - text.chars().count()));
        }
    }
    // print() ends the table with a newline.
    out.push('\n');
    Ok(out)
}

/// `cluster_control -i [more]`: what upstream 3.9.5 prints for a `get_health` document.
///
/// Upstream (`print_health` of 3.9.5 `cluster_control`), which this follows line by line:
/// ```text
/// msg1 += "Cluster name: {}\n\n".format(config['name'])
/// if not more:
///     msg1 += "Last completed synchronization for connected nodes ({}):\n".format(result["n_connected_nodes"])
/// else:
///     msg1 += "Connected nodes ({}):".format(result["n_connected_nodes"])
/// for node, node_info in sorted(result["nodes"].items()):
///     msg2 += "\n    {} ({})\n".format(node, node_info['info']['ip'])
///     msg2 += "        Version: {}\n".format(node_info['info']['version'])
///     msg2 += "        Type: {}\n".format(node_info['info']['type'])
///     msg2 += "        Active agents: {}\n".format(node_info['info']['n_active_agents'])
///     if node_info['info']['type'] != "master":
///         if not more:
///             msg1 += "    {} ({}): Integrity: {} | Agents-info: {} | Agent-groups: {} | Last keep alive: {}.\n".format(
///                 node, node_info['info']['ip'], ...['last_sync_integrity']['date_end_master'],
///                 ...['last_sync_agentinfo']['date_end_master'],
///                 ...['last_sync_agentgroups']['date_end_master'], ...['last_keep_alive'])
///         msg2 += "        Status:\n"
///         msg2 += "            Last keep Alive:\n"
///         msg2 += "                Last received: {0}.\n".format(...['last_keep_alive'])
///         msg2 += "            Integrity\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(date_start_master, date_end_master)
///         msg2 += "                Synchronized files: Shared: {} | Missing: {} | Extra: {} | Extra valid: {}.\n"
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_integrity_free']))
///         msg2 += "            Agents-info\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(...)
///         msg2 += "                Synchronized files: {}.\n".format(str(...['total_agentinfo']))
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_agentinfo_free']))
///         msg2 += "            Agents-group\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(...)
///         msg2 += "                Synchronized files: {}.\n".format(str(...['total_agentgroups']))
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_extravalid_free']))
/// print(msg1)
/// if more:
///     print(msg2)
/// ```
/// The 3.9.5 script itself was not found in the public code searched; this is the body of
/// `print_healthcheck` of the 3.x scripts, which 3.9's asyncio rewrite kept (the 4.0 script
/// still has it, with agent-info renamed to "Number of synchronized chunks" and its permission
/// line dropped when agent-info moved to wazuh-db). The 2019 `cluster_control` reference page
/// (wazuh-documentation) shows the same 3.x `-i more` blocks, agent-info lines included.
///
/// Nodes are sorted by name (Python's `sorted` on `str` = code point order = Rust's `str` order).
///
/// # Errors
/// [`FormatError`] when a field upstream reads is missing.
pub fn format_health(cluster_name: &str, doc: &Value, more: bool) -> Result<String, FormatError> {
    let connected = text_at(doc, &["n_connected_nodes"])?;
    let nodes = at(doc, &["nodes"])?
        .as_object()
        .ok_or_else(|| FormatError::Shape {
            path: "nodes".to_owned(),
            found: doc["nodes"].to_string(),
        })?;
    let mut names: Vec<&String> = nodes.keys().collect();
    names.sort();

    let mut msg1 = format!("Cluster name: {cluster_name}\n\n");
    if more {
        msg1.push_str(&format!("Connected nodes ({connected}):"));
    } else {
        msg1.push_str(&format!(
            "Last completed synchronization for connected nodes ({connected}):\n"
        ));
    }
    let mut msg2 = String::new();
    for name in names {
        let node = &nodes[name.as_str()];
        // Paths in errors start at the node's entry, as upstream's KeyError would name them.
        let get = |path: &[&str]| -> Result<String, FormatError> {
            text_at(node, path).map_err(|error| prefix(error, name))
        };
        let ip = get(&["info", "ip"])?;
        msg2.push_str(&format!("\n    {name} ({ip})\n"));
        msg2.push_str(&format!(
            "        Version: {}\n",
            get(&["info", "version"])?
        ));
        let node_type = get(&["info", "type"])?;
        msg2.push_str(&format!("        Type: {node_type}\n"));
        msg2.push_str(&format!(
            "        Active agents: {}\n",
            get(&["info", "n_active_agents"])?
        ));
        if node_type == "master" {
            continue;
        }
        let keep_alive = get(&["status", "last_keep_alive"])?;
        let sync = |item: &str, field: &str| get(&["status", item, field]);
        if !more {
            msg1.push_str(&format!(
                "    {name} ({ip}): Integrity: {} | Agents-info: {} | Agent-groups: {} | Last keep alive: {keep_alive}.\n",
                sync("last_sync_integrity", "date_end_master")?,
                sync("last_sync_agentinfo", "date_end_master")?,
                sync("last_sync_agentgroups", "date_end_master")?,
            ));
        }
        msg2.push_str("        Status:\n");
        msg2.push_str("            Last keep Alive:\n");
        msg2.push_str(&format!("                Last received: {keep_alive}.\n"));

        let files = |kind: &str| get(&["status", "last_sync_integrity", "total_files", kind]);
        msg2.push_str("            Integrity\n");
        msg2.push_str(&last_sync(&sync, "last_sync_integrity")?);
        msg2.push_str(&format!(
            "                Synchronized files: Shared: {} | Missing: {} | Extra: {} | Extra valid: {}.\n",
            files("shared")?,
            files("missing")?,
            files("extra")?,
            files("extra_valid")?,
        ));
        msg2.push_str(&permission(&get(&["status", "sync_integrity_free"])?));

        // Agent-info and agent-groups are printed alike, each from its own keys.
        for (title, item, total, free) in [
            (
                "Agents-info",
                "last_sync_agentinfo",
                "total_agentinfo",
                "sync_agentinfo_free",
            ),
            (
                "Agents-group",
                "last_sync_agentgroups",
                "total_agentgroups",
                "sync_extravalid_free",
            ),
        ] {
            msg2.push_str(&format!("            {title}\n"));
            msg2.push_str(&last_sync(&sync, item)?);
            msg2.push_str(&synchronized_files(&sync(item, total)?));
            msg2.push_str(&permission(&get(&["status", free])?));
        }
    }
    // print(msg1) and, with more, print(msg2): each ends with a newline of print's own.
    let mut out = msg1;
    out.push('\n');
    if more {
        out.push_str(&msg2);
        out.push('\n');
    }
    Ok(out)
}

/// `"                Last synchronization: {start} - {end}.\n"` of one status item.
fn last_sync(
    sync: &dyn Fn(&str, &str) -> Result<String, FormatError>,
    item: &str,
) -> Result<String, FormatError> {
    Ok(format!(
        "                Last synchronization: {} - {}.\n",
        sync(item, "date_start_master")?,
        sync(item, "date_end_master")?
    ))
}

fn synchronized_files(count: &str) -> String {
    format!("                Synchronized files: {count}.\n")
}

fn permission(free: &str) -> String {
    format!("                Permission to synchronize: {free}.\n")
}

/// Makes an error's path start at `nodes.<name>`.
fn prefix(error: FormatError, name: &str) -> FormatError {
    match error {
        FormatError::Missing { path } => FormatError::Missing {
            path: format!("nodes.{name}.{path}"),
        },
        FormatError::Shape { path, found } => FormatError::Shape {
            path: format!("nodes.{name}.{path}"),
            found,
        },
    }
}

// ------------------------------------------------------------------------------------------------
// Local-socket client

/// Why `control` could not print its answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens at the socket path.
    #[error("is the node running? no socket at {} ({reason})", .path.display())]
    NoSocket {
        /// The socket path tried.
        path: PathBuf,
        /// The system's words.
        reason: String,
    },
    /// A read or write failed.
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's words.
        message: String,
    },
    /// The node did not answer in time.
    #[error("no answer from the node within {} s", .after.as_secs())]
    Timeout {
        /// The time waited.
        after: Duration,
    },
    /// The node closed the connection before answering.
    #[error("the node closed the connection before answering{}", match reason {
        Some(reason) => format!(": {reason}"),
        None => String::new(),
    })]
    Closed {
        /// Why, when the connection knows.
        reason: Option<String>,
    },
    /// The node answered with an error.
    #[error("Error: {message}")]
    Node {
        /// The node's error text.
        message: String,
    },
    /// The node's answer is not the JSON document expected.
    #[error("unexpected answer from the node: {message}")]
    BadAnswer {
        /// What is wrong with it.
        message: String,
    },
    /// The document cannot be printed as upstream prints it.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The ossec.conf read for the cluster name is invalid.
    #[error("{}: {error}", .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: ConfigError,
    },
    /// The ossec.conf read for the cluster name disables the cluster (upstream: "The cluster is
    /// disabled").
    #[error("{}: {reason}", .path.display())]
    ClusterDisabled {
        /// The file.
        path: PathBuf,
        /// Which way it is disabled.
        reason: String,
    },
}

/// Sends `command` with `payload` to the node at `socket` and parses its answer as JSON.
fn request_json(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Duration,
) -> Result<Value, ControlError> {
    let answer = request(socket, command, payload, timeout)?;
    serde_json::from_slice(&answer).map_err(|error| ControlError::BadAnswer {
        message: format!(
            "{error} in {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ),
    })
}

/// One local-client exchange (upstream `LocalClient.execute`): connect, send one request, return
/// the document it produces, whether in the reply (master) or in a later `control_res` request
/// (worker).
pub fn request(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ControlError> {
    tracing::debug!(socket = %socket.display(), %command, "asking the node");
    let mut stream = UnixStream::connect(socket).map_err(|error| match error.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ControlError::NoSocket {
            path: socket.to_owned(),
            reason: error.to_string(),
        },
        _ => io_error(&format!("cannot connect to {}", socket.display()), &error),
    })?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut connection = local_client(start, timeout);
    connection
        .send_request(start, command, payload)
        .map_err(protocol_error)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        flush(&mut connection, &mut stream)?;
        while let Some(event) = connection.poll_event() {
            if let Some(answer) = on_event(&mut connection, event)? {
                flush(&mut connection, &mut stream)?;
                return Ok(answer);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ControlError::Timeout { after: timeout });
        }
        let until = connection
            .poll_timeout()
            .map_or(deadline, |at| at.min(deadline));
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        stream
            .set_read_timeout(Some(wait))
            .map_err(|error| io_error("cannot set the socket timeout", &error))?;
        match stream.read(&mut buffer) {
            Ok(0) => connection.close(),
            Ok(n) => connection.handle_input(Instant::now(), &buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                connection.handle_timeout(Instant::now());
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error("cannot read from the node", &error)),
        }
    }
}

/// The connection core configured as upstream's local client: no key, no `hello`, and the two
/// requests a node sends it (`control_res` with the document, `err` with an error) claimed.
fn local_client(now: Instant, timeout: Duration) -> Connection {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(now, unix_secs));
    config.require_hello = false;
    config.request_timeout = timeout;
    config.claimed_commands = [CONTROL_RES, Command::ERR].into();
    Connection::new(config, Side::Client, Rng::from_seed(os_seed()), now)
}

/// What one event means for the exchange: `Some(document)` when it is the answer.
fn on_event(connection: &mut Connection, event: Event) -> Result<Option<Vec<u8>>, ControlError> {
    match event {
        // A worker forwards the question to its master: the answer comes as control_res.
        Event::Response {
            reply: Reply::Ok(payload),
            ..
        } if payload == SENT_TO_MASTER => Ok(None),
        Event::Response {
            reply: Reply::Ok(payload),
            ..
        } => Ok(Some(payload.to_vec())),
        Event::Response {
            reply: Reply::Err(payload),
            ..
        } => Err(ControlError::Node {
            message: String::from_utf8_lossy(&payload).into_owned(),
        }),
        Event::Response { reply, .. } => Err(ControlError::BadAnswer {
            message: format!("reply {reply:?}"),
        }),
        Event::Request {
            counter,
            command,
            payload,
        } => {
            connection
                .reply(Instant::now(), counter, Command::OK, RESPONSE_RECEIVED)
                .map_err(protocol_error)?;
            // Upstream's local client takes a control_res starting with "Error" as a failure.
            if command == Command::ERR || payload.starts_with(b"Error") {
                Err(ControlError::Node {
                    message: String::from_utf8_lossy(&payload).into_owned(),
                })
            } else {
                Ok(Some(payload.to_vec()))
            }
        }
        Event::TimedOut { .. } => Err(ControlError::Timeout {
            after: connection.config().request_timeout,
        }),
        Event::Closed { error } => Err(ControlError::Closed {
            reason: error.map(|error| error.to_string()),
        }),
        Event::Aborted { .. } => Err(ControlError::Closed { reason: None }),
        _ => Ok(None),
    }
}

/// Writes everything the connection has queued.
fn flush(connection: &mut Connection, stream: &mut UnixStream) -> Result<(), ControlError> {
    while let Some(bytes) = connection.poll_transmit() {
        stream
            .write_all(&bytes)
            .map_err(|error| io_error("cannot write to the node", &error))?;
    }
    Ok(())
}

fn io_error(context: &str, error: &std::io::Error) -> ControlError {
    ControlError::Io {
        context: context.to_owned(),
        message: error.to_string(),
    }
}

/// A command of the protocol core refused (`send_request` or `reply`: each has its own error).
fn protocol_error(error: impl std::error::Error) -> ControlError {
    ControlError::BadAnswer {
        message: error.to_string(),
    }
}

/// A seed from the OS for the connection's counters (the adapter's job, not the core's).
fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .is_ok();
    if from_urandom {
        u64::from_le_bytes(bytes)
    } else {
        // Only the request counter depends on it: time and pid are unpredictable enough.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        (nanos as u64) ^ (u64::from(std::process::id()) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `result` of the recorded call titled `title` in a DAPI vector file.
    fn recorded(file: &str, title: &str) -> Value {
        let doc = wazuh_cluster_vectors::json(file);
        let call = doc["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .find(|call| call["title"] == title)
            .unwrap_or_else(|| panic!("{file}: no call {title}"));
        match &call["result"] {
            // The API calls recorded the result as the API's JSON text with "data" inside.
            Value::String(text) => {
                serde_json::from_str::<Value>(text).expect("JSON")["data"].clone()
            }
            other => other.clone(),
        }
    }

    const NODES_TABLE: &str = "NAME      TYPE    VERSION  ADDRESS    \n\
                               master01  master  3.9.5    127.0.0.1  \n\
                               worker1   worker  3.9.5    127.0.0.1  \n";

    #[test]
    fn list_nodes_prints_upstreams_table_for_every_recorded_answer() {
        for (file, title) in [
            ("v3.9/dapi_via_master.json", "control.get_nodes()"),
            ("v3.9/dapi_via_worker.json", "control.get_nodes()"),
            ("v3.9/dapi_via_master.json", "dapi /cluster/nodes"),
            ("v3.9/dapi_via_worker.json", "dapi /cluster/nodes"),
        ] {
            let nodes = recorded(file, title);
            assert_eq!(format_nodes(&nodes).unwrap(), NODES_TABLE, "{file} {title}");
        }
    }

    #[test]
    fn list_nodes_widths_follow_the_longest_cell_in_characters() {
        let doc = serde_json::json!({"totalItems": 3, "items": [
            {"name": "master-node", "type": "master", "version": "4.9.2", "ip": "10.0.0.1"},
            {"name": "wörker-1", "type": "worker", "version": "4.9.2", "ip": "10.0.0.2"},
            {"name": "w", "type": "worker", "version": "4.9.2", "ip": "192.168.100.200"},
        ]});
        assert_eq!(
            format_nodes(&doc).unwrap(),
            "NAME         TYPE    VERSION  ADDRESS          \n\
             master-node  master  4.9.2    10.0.0.1         \n\
             wörker-1     worker  4.9.2    10.0.0.2         \n\
             w            worker  4.9.2    192.168.100.200  \n"
        );
        let empty = serde_json::json!({"totalItems": 0, "items": []});
        assert_eq!(
            format_nodes(&empty).unwrap(),
            "NAME  TYPE  VERSION  ADDRESS  \n"
        );
    }

    #[test]
    fn list_nodes_refuses_what_upstream_cannot_print() {
        assert_eq!(
            format_nodes(&serde_json::json!({"totalItems": 0})),
            Err(FormatError::Missing {
                path: "items".to_owned()
            })
        );
        assert_eq!(
            format_nodes(
                &serde_json::json!({"items": [{"name": "a", "type": "master", "version": "3.9.5"}]})
            ),
            Err(FormatError::Missing {
                path: "items.0.ip".to_owned()
            })
        );
        assert_eq!(
            format_nodes(
                &serde_json::json!({"items": [{"name": 7, "type": "master", "version": "3.9.5", "ip": "x"}]})
            ),
            Err(FormatError::Shape {
                path: "items.0.name".to_owned(),
                found: "7".to_owned()
            })
        );
    }

    const HEALTH: &str = "Cluster name: wazuh\n\
        \n\
        Last completed synchronization for connected nodes (1):\n    \
        worker1 (127.0.0.1): Integrity: 2026-11-26 08:48:49.479029 | Agents-info: 2026-11-26 08:48:48.446403 | Agent-groups: 2026-11-26 08:48:43.473357 | Last keep alive: 2026-11-26 08:48:48.424182.\n\
        \n";

    const HEALTH_MORE: &str = "Cluster name: wazuh\n\
        \n\
        Connected nodes (1):\n\
        \n    master01 (127.0.0.1)\n        \
        Version: 3.9.5\n        \
        Type: master\n        \
        Active agents: 1\n\
        \n    worker1 (127.0.0.1)\n        \
        Version: 3.9.5\n        \
        Type: worker\n        \
        Active agents: 3\n        \
        Status:\n            \
        Last keep Alive:\n                \
        Last received: 2026-11-26 08:48:48.424182.\n            \
        Integrity\n                \
        Last synchronization: 2026-11-26 08:48:49.463437 - 2026-11-26 08:48:49.479029.\n                \
        Synchronized files: Shared: 0 | Missing: 0 | Extra: 0 | Extra valid: 0.\n                \
        Permission to synchronize: True.\n            \
        Agents-info\n                \
        Last synchronization: 2026-11-26 08:48:48.429321 - 2026-11-26 08:48:48.446403.\n                \
        Synchronized files: 0.\n                \
        Permission to synchronize: True.\n            \
        Agents-group\n                \
        Last synchronization: 2026-11-26 08:48:43.455649 - 2026-11-26 08:48:43.473357.\n                \
        Synchronized files: 0.\n                \
        Permission to synchronize: True.\n\
        \n";

    #[test]
    fn health_prints_upstreams_text_for_every_recorded_answer() {
        for (file, title) in [
            ("v3.9/dapi_via_master.json", "control.get_health()"),
            ("v3.9/dapi_via_worker.json", "control.get_health()"),
            ("v3.9/dapi_via_master.json", "dapi /cluster/healthcheck"),
            ("v3.9/dapi_via_worker.json", "dapi /cluster/healthcheck"),
        ] {
            let health = recorded(file, title);
            assert_eq!(
                format_health("wazuh", &health, false).unwrap(),
                HEALTH,
                "{file} {title}"
            );
            assert_eq!(
                format_health("wazuh", &health, true).unwrap(),
                HEALTH_MORE,
                "{file} {title}"
            );
        }
    }

    #[test]
    fn health_filtered_to_one_worker_has_no_master_block() {
        let health = recorded(
            "v3.9/dapi_via_master.json",
            "control.get_health(filter_node=[\"worker1\"])",
        );
        assert_eq!(format_health("wazuh", &health, false).unwrap(), HEALTH);
        let more = format_health("wazuh", &health, true).unwrap();
        assert!(!more.contains("master01"));
        assert_eq!(more, HEALTH_MORE.replace(
            "\n    master01 (127.0.0.1)\n        Version: 3.9.5\n        Type: master\n        Active agents: 1\n",
            "",
        ));
    }

    #[test]
    fn health_sorts_nodes_and_prints_python_values() {
        let worker = |lka: &str, free: bool| {
            serde_json::json!({
                "info": {"name": "x", "type": "worker", "version": "3.9.5", "ip": "10.0.0.9", "n_active_agents": 0},
                "status": {
                    "sync_integrity_free": free,
                    "last_sync_integrity": {"date_start_master": "n/a", "date_end_master": "n/a",
                        "total_files": {"missing": 1, "shared": 2, "extra": 3, "extra_valid": 4}},
                    "sync_agentinfo_free": free,
                    "last_sync_agentinfo": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentinfo": 5},
                    "sync_extravalid_free": free,
                    "last_sync_agentgroups": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentgroups": 6},
                    "last_keep_alive": lka
                }
            })
        };
        let doc = serde_json::json!({"n_connected_nodes": 2, "nodes": {
            "worker-b": worker("b", false),
            "worker-a": worker("a", true),
        }});
        assert_eq!(
            format_health("prod", &doc, false).unwrap(),
            "Cluster name: prod\n\nLast completed synchronization for connected nodes (2):\n    \
             worker-a (10.0.0.9): Integrity: n/a | Agents-info: n/a | Agent-groups: n/a | Last keep alive: a.\n    \
             worker-b (10.0.0.9): Integrity: n/a | Agents-info: n/a | Agent-groups: n/a | Last keep alive: b.\n\n"
        );
        let more = format_health("prod", &doc, true).unwrap();
        assert!(more.contains(
            "                Synchronized files: Shared: 2 | Missing: 1 | Extra: 3 | Extra valid: 4.\n\
             \x20               Permission to synchronize: False.\n"
        ));
        assert!(more.find("worker-a (").unwrap() < more.find("worker-b (").unwrap());
    }

    #[test]
    fn health_names_the_missing_field() {
        let mut health = recorded("v3.9/dapi_via_master.json", "control.get_health()");
        health["nodes"]["worker1"]["status"]
            .as_object_mut()
            .unwrap()
            .remove("last_keep_alive");
        assert_eq!(
            format_health("wazuh", &health, false),
            Err(FormatError::Missing {
                path: "nodes.worker1.status.last_keep_alive".to_owned()
            })
        );
        assert_eq!(
            format_health("wazuh", &serde_json::json!({"nodes": {}}), false),
            Err(FormatError::Missing {
                path: "n_connected_nodes".to_owned()
            })
        );
    }

    #[test]
    fn request_payloads_are_the_recorded_ones() {
        for file in ["v3.9/dapi_via_master.json", "v3.9/dapi_via_worker.json"] {
            let doc = wazuh_cluster_vectors::json(file);
            let first_frame = |title: &str| {
                let call = doc["calls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|call| call["title"] == title)
                    .unwrap();
                let frame = &call["local_frames"][0];
                (
                    frame["cmd"].as_str().unwrap().to_owned(),
                    frame["payload"].as_str().unwrap().to_owned(),
                )
            };
            let (command, payload) = first_frame("control.get_nodes()");
            assert_eq!(command, "get_nodes");
            assert_eq!(payload.as_bytes(), GET_NODES_PAYLOAD);
            let (command, payload) = first_frame("control.get_health()");
            assert_eq!(command, "get_health");
            assert_eq!(payload.as_bytes(), GET_HEALTH_PAYLOAD);
        }
    }
}
