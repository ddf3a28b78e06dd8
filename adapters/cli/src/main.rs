//! `wazuh-cluster`: the operator's command (demo, node, api, control, wire, integrity).
//!
//! Each subcommand group lives in its own module (`wire.rs`, ...) exposing an `Args` type for clap
//! and a `run` function returning the process exit code; `main` only parses and dispatches, so a
//! new group is one enum variant and one match arm here.

mod api;
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
}

fn main() -> ExitCode {
    // Upstream's cluster_control spells -fn and -fs with one dash, which clap cannot declare.
    let cli = Cli::parse_from(control::upstream_spellings(std::env::args_os()));
    logging::init(&cli.log);
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Node(args) => node::run(args),
        Command::Api(args) => api::run(args),
        Command::Control(args) => control::run(args),
        Command::Wire(args) => wire::run(args),
        Command::Integrity(args) => integrity::run(args),
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
