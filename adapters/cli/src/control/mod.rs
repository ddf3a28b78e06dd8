//! `wazuh-cluster control -a | -l | -i [more] [-fn NAME...] [-fs STATUS...]`: upstream's
//! `cluster_control`, same requests, same output.
//!
//! ```sh
//! wazuh-cluster control -a -fn worker1 -fs Active   # worker1's active agents
//! wazuh-cluster control -l                          # the nodes
//! wazuh-cluster control -i more -fn worker1         # worker1's health, in detail
//! ```
//!
//! Operators' scripts parse what `cluster_control` prints, so the text is upstream 3.9.5's
//! character for character (PROTOCOL.md §14.3). Three rooms, one job each, and the command's
//! shared local-socket client:
//!
//! ```text
//!   args.rs ── ControlArgs: which report and filters, which socket, where the cluster name
//!      │       comes from (upstream's -fn / -fs spellings included)
//!   run() ──► requests.rs ── the payloads, as upstream's control.py builds them
//!      │  ──► local_client ── one request over the node's local socket ──► JSON document
//!      └────► format.rs ── the document as upstream prints it (pure)
//! ```
//!
//! The cluster name printed by `-i` comes, like upstream, from the local ossec.conf
//! (`--wazuh-path`), read here; with `--socket` alone it is asked from the node with
//! `get_config`.

mod args;
mod format;
mod requests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_sync::config::{ClusterSection, KeyPolicy, OssecConfError, parse_ossec_conf};

pub use args::{ControlArgs, WrongArguments, upstream_spellings};
pub use format::{FormatError, format_agents, format_health, format_nodes};
pub use requests::{get_agents_request, get_health_payload, get_nodes_payload};

use crate::local_client::{ClientError, DAPI, GET_CONFIG, GET_HEALTH, GET_NODES, request_json};
use args::{ClusterNameSource, Report};
use format::{py_str, text_at};

/// Exit status of every failure (upstream `cluster_control` exits 1).
const EXIT_FAILURE: u8 = 1;

/// Why `control` could not print its answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The arguments ask for something upstream refuses.
    #[error(transparent)]
    WrongArguments(#[from] WrongArguments),
    /// The node could not be asked, or did not answer with a document.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node answered with an error document (`{"error": code, "message": ...}`, code > 0).
    #[error("Error: {message}")]
    Answer {
        /// The document's `error`.
        code: i64,
        /// Its `message`.
        message: String,
    },
    /// The document cannot be printed as upstream prints it.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The ossec.conf read for the cluster name cannot be read.
    #[error("cannot read {}: {message}", .path.display())]
    ReadOssecConf {
        /// The file.
        path: PathBuf,
        /// The system's words.
        message: String,
    },
    /// The ossec.conf read for the cluster name is invalid.
    #[error("{}: {error}", .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: OssecConfError,
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
    let socket = args.socket();
    let ask = |command, payload: &[u8]| ask(&socket, command, payload, args.timeout());
    match args.report()? {
        Report::Agents {
            filter_node,
            filter_status,
        } => {
            let agents = ask(
                DAPI,
                get_agents_request(&filter_status, &filter_node).as_bytes(),
            )?;
            Ok(format_agents(&agents)?)
        }
        Report::Nodes { filter_node } => {
            let nodes = ask(
                GET_NODES,
                get_nodes_payload(filter_node.as_deref()).as_bytes(),
            )?;
            Ok(format_nodes(&nodes)?)
        }
        Report::Health { more, filter_node } => {
            let name = match args.cluster_name_source() {
                ClusterNameSource::Node => text_at(&ask(GET_CONFIG, b"")?, &["name"])?,
                ClusterNameSource::OssecConf(path) => cluster_name_from_ossec_conf(&path)?,
            };
            let payload = get_health_payload(filter_node.as_deref());
            let health = ask(GET_HEALTH, payload.as_bytes())?;
            Ok(format_health(&name, &health, more)?)
        }
    }
}

/// The node's answer to `command` `payload`, refused when it is an error document, as
/// upstream's `control.py` refuses it (`if 'error' in result and result['error'] > 0: raise
/// Exception(result['message'])`); 3.9.5's `get_health` skips that check and fails on the
/// missing fields instead, which says less.
fn ask(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Duration,
) -> Result<Value, ControlError> {
    let answer = request_json(socket, command, payload, Some(timeout))?;
    match answer.get("error").and_then(Value::as_i64) {
        Some(code) if code > 0 => Err(ControlError::Answer {
            code,
            message: answer.get("message").map_or_else(String::new, py_str),
        }),
        _ => Ok(answer),
    }
}

/// The cluster name in the ossec.conf at `path`.
fn cluster_name_from_ossec_conf(path: &Path) -> Result<String, ControlError> {
    let bytes = std::fs::read(path).map_err(|error| ControlError::ReadOssecConf {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    match parse_ossec_conf(&bytes, KeyPolicy::AllowMissing) {
        Ok(ClusterSection::Enabled(config)) => Ok(config.name),
        Ok(ClusterSection::Disabled(why)) => Err(ControlError::ClusterDisabled {
            path: path.to_owned(),
            reason: why.to_string(),
        }),
        Err(error) => Err(ControlError::Config {
            path: path.to_owned(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cluster_name_from_ossec_conf` of a file holding `text`.
    fn name_in(text: &str) -> Result<String, ControlError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ossec.conf");
        std::fs::write(&path, text).unwrap();
        cluster_name_from_ossec_conf(&path)
    }

    #[test]
    fn the_cluster_name_comes_from_the_cluster_block() {
        let conf = "<ossec_config><cluster><name>prod</name><node_type>master</node_type>\
                    <nodes><node>10.0.0.1</node></nodes></cluster></ossec_config>";
        assert_eq!(name_in(conf).unwrap(), "prod");
    }

    #[test]
    fn an_ossec_conf_without_a_usable_cluster_is_an_error_naming_the_file() {
        let disabled =
            name_in("<ossec_config><cluster><disabled>yes</disabled></cluster></ossec_config>");
        assert!(
            matches!(disabled, Err(ControlError::ClusterDisabled { .. })),
            "{disabled:?}"
        );
        let invalid =
            name_in("<ossec_config><cluster><node_type>boss</node_type></cluster></ossec_config>");
        assert!(
            matches!(invalid, Err(ControlError::Config { .. })),
            "{invalid:?}"
        );
        let missing = cluster_name_from_ossec_conf(Path::new("/nonexistent/etc/ossec.conf"));
        let message = missing.unwrap_err().to_string();
        assert!(
            message.starts_with("cannot read /nonexistent/etc/ossec.conf: "),
            "{message}"
        );
    }
}
