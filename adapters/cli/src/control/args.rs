//! The arguments of `control` and what they ask for: which report (`-a`, `-l`, `-i`, `-i more`)
//! with which filters (`-fn`, `-fs`), which socket, how long to wait, and where the cluster name
//! printed by `-i` comes from (like upstream, the local ossec.conf under `--wazuh-path`; with
//! `--socket` alone, the node itself).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

use crate::local_client::NodeSocketArgs;

/// The ossec.conf under an install root.
const OSSEC_CONF_RELATIVE_PATH: &str = "etc/ossec.conf";

/// Upstream's spellings of two options, one dash and two letters, which clap cannot declare: on
/// a `control` command line they are rewritten to the long names before parsing
/// ([`upstream_spellings`]).
const UPSTREAM_SPELLINGS: [(&str, &str); 2] =
    [("-fn", "--filter-node"), ("-fs", "--filter-agent-status")];

/// `control` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["list_agents", "list_nodes", "health"])))]
pub struct ControlArgs {
    /// List the agents: ID, name, IP, status, version, node (upstream `cluster_control -a`).
    #[arg(short = 'a', long = "list-agents")]
    list_agents: bool,

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

    /// Only these nodes (upstream's -fn): the agents they hold (-a), these nodes (-l), their
    /// health (-i).
    #[arg(long = "filter-node", value_name = "NAME", num_args = 0..)]
    filter_node: Option<Vec<String>>,

    /// Only agents in these states, e.g. Active Disconnected "Never connected" Pending
    /// (upstream's -fs; with -a only).
    #[arg(long = "filter-agent-status", value_name = "STATUS", num_args = 0..)]
    filter_agent_status: Option<Vec<String>>,

    #[command(flatten)]
    node: NodeSocketArgs,

    /// Seconds to wait for the node's answer (a worker forwards the question to its master).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

/// What `control` was asked to print. A node filter is `None` without `-fn` and may be empty
/// (`-fn` alone): upstream sends `null` and `[]` then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `-a`: the table of agents; no filter (or an empty one) means every one.
    Agents {
        /// `-fn`: the nodes whose agents.
        filter_node: Vec<String>,
        /// `-fs`: the agent states.
        filter_status: Vec<String>,
    },
    /// `-l`: the table of nodes.
    Nodes {
        /// `-fn`.
        filter_node: Option<Vec<String>>,
    },
    /// `-i`: the health summary; `-i more` (in any case) adds a block per node.
    Health {
        /// `-i more`.
        more: bool,
        /// `-fn`.
        filter_node: Option<Vec<String>>,
    },
}

/// `-fs` with another report than `-a`: upstream's `cluster_control` stops with "Wrong
/// arguments." (and exit status 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Wrong arguments: -fs/--filter-agent-status goes with -a/--list-agents only")]
pub struct WrongArguments;

/// `args` (a whole command line) with upstream's `-fn` / `-fs` spelled as clap knows them when
/// the subcommand is `control`, up to a `--`. The subcommand is the first word after the
/// program's name that is not an option (the global options take no value).
pub fn upstream_spellings(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let subcommand = args
        .iter()
        .skip(1)
        .position(|arg| !arg.to_string_lossy().starts_with('-'))
        .map(|position| position + 1);
    let Some(subcommand) = subcommand.filter(|at| args[*at] == "control") else {
        return args;
    };
    for arg in &mut args[subcommand + 1..] {
        if arg == "--" {
            break;
        }
        if let Some((_, long)) = UPSTREAM_SPELLINGS.iter().find(|(short, _)| arg == short) {
            *arg = OsString::from(long);
        }
    }
    args
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
    /// The report asked for (clap makes `-a`, `-l` and `-i` exclusive and one of them
    /// required).
    ///
    /// # Errors
    /// [`WrongArguments`] for agent states without `-a`. As upstream (`if args.filter_status and
    /// not args.list_agents`), a `-fs` that names no state is no error.
    pub fn report(&self) -> Result<Report, WrongArguments> {
        let filter_status = self.filter_agent_status.clone().unwrap_or_default();
        if self.list_agents {
            return Ok(Report::Agents {
                filter_node: self.filter_node.clone().unwrap_or_default(),
                filter_status,
            });
        }
        if !filter_status.is_empty() {
            return Err(WrongArguments);
        }
        let filter_node = self.filter_node.clone();
        if self.list_nodes {
            return Ok(Report::Nodes { filter_node });
        }
        let more = self
            .health
            .as_deref()
            .is_some_and(|value| value.eq_ignore_ascii_case("more"));
        Ok(Report::Health { more, filter_node })
    }

    /// The node's local socket: `--socket`, else the one under `--wazuh-path`.
    pub fn socket(&self) -> PathBuf {
        self.node.socket_path()
    }

    /// How long to wait for the node's answer.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Where `-i` takes the cluster name from.
    pub fn cluster_name_source(&self) -> ClusterNameSource {
        match self.node.socket {
            Some(_) => ClusterNameSource::Node,
            None => {
                ClusterNameSource::OssecConf(self.node.wazuh_path.join(OSSEC_CONF_RELATIVE_PATH))
            }
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

    /// `control`'s arguments from `line` as the whole command would get them: upstream's
    /// spellings rewritten first.
    fn parse(line: &[&str]) -> Result<ControlArgs, clap::Error> {
        let words = ["wazuh-cluster", "control"]
            .iter()
            .chain(line)
            .map(OsString::from);
        let args = upstream_spellings(words);
        Control::try_parse_from(&args[1..]).map(|control| control.args)
    }

    fn report(line: &[&str]) -> Result<Report, WrongArguments> {
        parse(line).unwrap().report()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn list_nodes_asks_the_socket_under_the_default_install() {
        let args = parse(&["-l"]).unwrap();
        assert_eq!(args.report(), Ok(Report::Nodes { filter_node: None }));
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
        let health = |more| {
            Ok(Report::Health {
                more,
                filter_node: None,
            })
        };
        assert_eq!(report(&["-i"]), health(false));
        assert_eq!(report(&["-i", "more"]), health(true));
        assert_eq!(report(&["-i", "MORE"]), health(true));
        assert_eq!(report(&["--health", "less"]), health(false));
    }

    #[test]
    fn list_agents_takes_nodes_and_states_in_upstreams_spelling_or_the_long_one() {
        assert_eq!(
            report(&["-a"]),
            Ok(Report::Agents {
                filter_node: vec![],
                filter_status: vec![],
            })
        );
        let expected = Ok(Report::Agents {
            filter_node: names(&["worker1", "worker2"]),
            filter_status: names(&["Active", "Never connected"]),
        });
        assert_eq!(
            report(&[
                "-a",
                "-fn",
                "worker1",
                "worker2",
                "-fs",
                "Active",
                "Never connected"
            ]),
            expected
        );
        assert_eq!(
            report(&[
                "--filter-agent-status",
                "Active",
                "Never connected",
                "--list-agents",
                "--filter-node",
                "worker1",
                "worker2",
            ]),
            expected
        );
    }

    #[test]
    fn node_filters_of_list_nodes_and_health_keep_absent_apart_from_empty() {
        assert_eq!(
            report(&["-l", "-fn", "worker1"]),
            Ok(Report::Nodes {
                filter_node: Some(names(&["worker1"]))
            })
        );
        assert_eq!(
            report(&["-fn", "-i", "more"]),
            Ok(Report::Health {
                more: true,
                filter_node: Some(vec![]),
            })
        );
        assert_eq!(
            report(&["-i", "-fn", "master01", "worker1"]),
            Ok(Report::Health {
                more: false,
                filter_node: Some(names(&["master01", "worker1"])),
            })
        );
    }

    #[test]
    fn agent_states_without_list_agents_are_wrong_arguments_unless_there_are_none() {
        assert_eq!(report(&["-l", "-fs", "Active"]), Err(WrongArguments));
        assert_eq!(report(&["-i", "-fs", "Active"]), Err(WrongArguments));
        // Upstream tests the list's truth: an empty -fs passes.
        assert_eq!(
            report(&["-l", "-fs"]),
            Ok(Report::Nodes { filter_node: None })
        );
    }

    #[test]
    fn upstream_spellings_are_rewritten_only_on_a_control_line_before_a_double_dash() {
        let rewrite = |line: &[&str]| -> Vec<String> {
            upstream_spellings(line.iter().map(OsString::from))
                .into_iter()
                .map(|word| word.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            rewrite(&[
                "wazuh-cluster",
                "-v",
                "control",
                "-a",
                "-fs",
                "x",
                "-fn",
                "--",
                "-fn"
            ]),
            [
                "wazuh-cluster",
                "-v",
                "control",
                "-a",
                "--filter-agent-status",
                "x",
                "--filter-node",
                "--",
                "-fn"
            ]
        );
        let api = ["wazuh-cluster", "api", "/agents", "-fn"];
        assert_eq!(rewrite(&api), api);
        assert_eq!(rewrite(&["wazuh-cluster"]), ["wazuh-cluster"]);
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
        assert!(parse(&["-a", "-l"]).is_err());
        assert!(parse(&["-fn", "worker1"]).is_err());
    }
}
