//! `wazuh-cluster`: the operator's command (demo, node, api, control, wire, integrity), and
//! upstream's `wazuh-clusterd` when run by that name (`clusterd/`).
//!
//! Each subcommand group lives in its own module (`wire.rs`, ...) exposing an `Args` type for clap
//! and a `run` function returning the process exit code; `main` only parses and dispatches, so a
//! new group is one enum variant and one match arm here.

mod api;
mod clusterd;
mod control;
mod demo;
mod integrity;
mod local_client;
mod logging;
mod node;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Wazuh cluster node and tools, wire-compatible with upstream Wazuh 3.9.5.
#[derive(Debug, Parser)]
#[command(name = "wazuh-cluster", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

/// The subcommand groups.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole cluster (1 master + N workers) in this process over loopback, narrated.
    Demo(demo::DemoArgs),
    /// Run one node configured by the <cluster> block of DIR/etc/ossec.conf.
    Node(node::NodeArgs),
    /// Send one distributed API request (as 3.9.5's API did) to a node and print its answer.
    Api(api::ApiArgs),
    /// Ask a running node about the cluster, as upstream's cluster_control (-a, -l, -i, -i more;
    /// -fn NAME..., -fs STATUS...).
    Control(control::ControlArgs),
    /// Inspect cluster protocol bytes (frames, Fernet payloads).
    Wire(wire::WireArgs),
    /// Integrity metadata of an install tree, and the comparison of two metadata documents.
    Integrity(integrity::IntegrityArgs),
    /// Upstream 3.9.5's cluster daemon, drop-in (also run by the name `wazuh-clusterd`):
    /// -f, -d, -V, -r, -t, -c FILE; pid file, logs/cluster.log, background start.
    Clusterd(clusterd::ClusterdArgs),
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Installed as <root>/bin/wazuh-clusterd, the binary is upstream's daemon, flags and all.
    if argv
        .first()
        .is_some_and(|argv0| clusterd::runs_as_clusterd(argv0))
    {
        return clusterd::main_by_name(argv);
    }
    // Upstream's cluster_control spells -fn and -fs with one dash, which clap cannot declare.
    let cli = Cli::parse_from(control::upstream_spellings(argv.iter().cloned()));
    // The daemon sets up its own logging (logs/cluster.log).
    if !matches!(cli.command, Command::Clusterd(_)) {
        logging::init(&cli.log);
    }
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Node(args) => node::run(args),
        Command::Api(args) => api::run(args),
        Command::Control(args) => control::run(args),
        Command::Wire(args) => wire::run(args),
        Command::Integrity(args) => integrity::run(args),
        Command::Clusterd(args) => clusterd::run(args, &argv),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
