//! The arguments of `control` and what they ask for: which report (`-l`, `-i`, `-i more`), which
//! socket, how long to wait, and where the cluster name printed by `-i` comes from (like
//! upstream, the local ossec.conf under `--wazuh-path`; with `--socket` alone, the node itself).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

/// The local socket under an install root.
const SOCKET_RELATIVE_PATH: &str = "queue/cluster/c-internal.sock";
/// The ossec.conf under an install root.
const OSSEC_CONF_RELATIVE_PATH: &str = "etc/ossec.conf";

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

/// What `control` was asked to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `-l`: the table of nodes.
    Nodes,
    /// `-i`: the health summary; `-i more` (in any case) adds a block per node.
    Health {
        /// `-i more`.
        more: bool,
    },
}

/// Where the cluster name printed by `-i` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterNameSource {
    /// This ossec.conf (`--wazuh-path`), as upstream's `cluster_control` reads it.
    OssecConf(PathBuf),
    /// The node, asked with `get_config` (only `--socket` was given: no install to read).
    Node,
}

impl ControlArgs {
    /// The report asked for (clap makes `-l` and `-i` exclusive and one of them required).
    pub fn report(&self) -> Report {
        if self.list_nodes {
            Report::Nodes
        } else {
            let more = self
                .health
                .as_deref()
                .is_some_and(|value| value.eq_ignore_ascii_case("more"));
            Report::Health { more }
        }
    }

    /// The node's local socket: `--socket`, else the one under `--wazuh-path`.
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.wazuh_path.join(SOCKET_RELATIVE_PATH))
    }

    /// How long to wait for the node's answer.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Where `-i` takes the cluster name from.
    pub fn cluster_name_source(&self) -> ClusterNameSource {
        match self.socket {
            Some(_) => ClusterNameSource::Node,
            None => ClusterNameSource::OssecConf(self.wazuh_path.join(OSSEC_CONF_RELATIVE_PATH)),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `control`'s arguments as the command line gives them.
    #[derive(Debug, Parser)]
    struct Control {
        #[command(flatten)]
        args: ControlArgs,
    }

    fn parse(line: &[&str]) -> Result<ControlArgs, clap::Error> {
        Control::try_parse_from(std::iter::once("control").chain(line.iter().copied()))
            .map(|control| control.args)
    }

    #[test]
    fn list_nodes_asks_the_socket_under_the_default_install() {
        let args = parse(&["-l"]).unwrap();
        assert_eq!(args.report(), Report::Nodes);
        assert_eq!(
            args.socket(),
            PathBuf::from("/var/ossec/queue/cluster/c-internal.sock")
        );
        assert_eq!(args.timeout(), Duration::from_secs(30));
        assert_eq!(
            args.cluster_name_source(),
            ClusterNameSource::OssecConf("/var/ossec/etc/ossec.conf".into())
        );
    }

    #[test]
    fn health_is_more_only_for_the_word_more() {
        let more = |line: &[&str]| parse(line).unwrap().report();
        assert_eq!(more(&["-i"]), Report::Health { more: false });
        assert_eq!(more(&["-i", "more"]), Report::Health { more: true });
        assert_eq!(more(&["-i", "MORE"]), Report::Health { more: true });
        assert_eq!(more(&["--health", "less"]), Report::Health { more: false });
    }

    #[test]
    fn a_socket_alone_asks_the_node_for_the_cluster_name() {
        let args = parse(&["-i", "--socket", "/run/node.sock", "--timeout", "5"]).unwrap();
        assert_eq!(args.socket(), PathBuf::from("/run/node.sock"));
        assert_eq!(args.cluster_name_source(), ClusterNameSource::Node);
        assert_eq!(args.timeout(), Duration::from_secs(5));
        let args = parse(&["-l", "--wazuh-path", "/opt/wazuh"]).unwrap();
        assert_eq!(
            args.socket(),
            PathBuf::from("/opt/wazuh/queue/cluster/c-internal.sock")
        );
    }

    #[test]
    fn exactly_one_report_is_asked_for() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-l", "-i"]).is_err());
    }
}
