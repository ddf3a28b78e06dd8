//! `wazuh-clusterd`: a drop-in for upstream 3.9.5's cluster daemon.
//!
//! The binary answers to upstream's command line when it runs as `wazuh-clusterd` (installed as
//! `<root>/bin/wazuh-clusterd`, or a link of that name) or as `wazuh-cluster clusterd`: `-f`, `-d`,
//! `-V`, `-r`, `-t`, `-c FILE`, as `framework/scripts/wazuh-clusterd.py` does, so that
//! `ossec-control` (which runs `bin/wazuh-clusterd` without arguments, then reads and kills
//! `var/run/wazuh-clusterd-<pid>.pid`), `cluster_control` and the API's status checks see it as
//! upstream's. Start-up, in upstream's order:
//!
//! 1. `-V` prints upstream's banner; the install root is found ([`install`]); the debug level is
//!    `internal_options.conf`'s `wazuh_clusterd.debug`, else `-d`.
//! 2. Logging to `logs/cluster.log` ([`cluster_log`]; also standard error with `-f`).
//! 3. The configuration is read and checked: refused with upstream's `Error 3004 - ...` message
//!    and status 1, a disabled cluster exits 0, `-t` stops here with 0.
//! 4. Without `-f` the daemon goes to the background ([`detach`]); the starting command returns
//!    once it is up.
//! 5. Stale pid files are removed ([`pid_file`]); the node starts (port, local socket); root
//!    becomes the install's `ossec` user unless `-r` ([`privileges`]); the pid file is written.
//! 6. SIGTERM/SIGINT stop it gracefully; the pid file is removed on every exit we control.

pub mod cluster_log;
pub mod detach;
pub mod install;
pub mod pid_file;
pub mod privileges;
pub mod upstream_text;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use wazuh_cluster_fs::owner::{Owner, effective_uid};
use wazuh_cluster_sync::config::{ClusterSection, KeyPolicy};
use wazuh_cluster_sync::roles::NodeLimits;
use wazuh_cluster_tokio::AdapterLimits;

use crate::logging::{self, UpstreamLayer};
use crate::node::{self, NodeArgs};
use cluster_log::ClusterLog;
use install::DebugOption;
use pid_file::PidFile;
use privileges::PrivilegePlan;

/// The program name upstream's tools know the daemon by.
pub const PROGRAM: &str = "wazuh-clusterd";
/// Where upstream keeps its cluster.json, read when `--cluster-json` is not given.
const UPSTREAM_CLUSTER_JSON: &str = "framework/wazuh/cluster/cluster.json";

/// `wazuh-clusterd`'s arguments: upstream's flags, then ours.
#[derive(Debug, Parser)]
#[command(
    name = "wazuh-clusterd",
    disable_version_flag = true,
    about = "Wazuh cluster daemon (drop-in for Wazuh 3.9.5's wazuh-clusterd)",
    long_about = "Wazuh cluster daemon: a drop-in for Wazuh 3.9.5's wazuh-clusterd.\n\n\
        Runs the master or worker described by the <cluster> block of the install's \
        etc/ossec.conf. The install is the folder above bin/ when this program runs from an \
        install's bin/ (as /var/ossec/bin/wazuh-clusterd), else /var/ossec; --wazuh-path names \
        another. Without -f it goes to the background and returns 0 once it is up (its port and \
        local socket open, var/run/wazuh-clusterd-<pid>.pid written), or 1 with the reason. \
        It logs to logs/cluster.log (rotated daily into logs/cluster/<year>/<Mon>/). Started \
        as root, it becomes the install's user ossec once its port and socket are open, unless \
        -r. SIGTERM or SIGINT stop it gracefully and remove its pid file."
)]
pub struct ClusterdArgs {
    /// Run in foreground (log lines also on standard error).
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Enable debug messages. Use twice to increase verbosity
    /// (etc/internal_options.conf's wazuh_clusterd.debug, when above 0, wins).
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    pub debug: u8,
    /// Print version (upstream's banner).
    #[arg(short = 'V')]
    pub version: bool,
    /// Run as root (otherwise become the install's user ossec once the port and socket are open).
    #[arg(short = 'r')]
    pub root: bool,
    /// Test configuration: exit 0 when it is valid, 1 with the reason.
    #[arg(short = 't')]
    pub test_config: bool,
    /// Configuration file to use (default: <install>/etc/ossec.conf).
    #[arg(short = 'c', value_name = "config")]
    pub config: Option<PathBuf>,
    /// Install root (default: the folder above bin/ when run from an install's bin/, else
    /// /var/ossec).
    #[arg(long, value_name = "DIR")]
    pub wazuh_path: Option<PathBuf>,
    /// cluster.json with the integrity items and intervals (default: the install's
    /// framework/wazuh/cluster/cluster.json when it exists, else 3.9.5's built-in values).
    #[arg(long, value_name = "FILE")]
    pub cluster_json: Option<PathBuf>,
    /// Run the distributed API calls this node answers with PROGRAM (see `wazuh-cluster node
    /// --help`). Default: the built-in executor.
    #[arg(long, value_name = "PROGRAM")]
    pub api_exec: Option<PathBuf>,
    /// The install's user and group, if not ossec (names from /etc/passwd and /etc/group, or
    /// numbers): started as root, the daemon becomes it (unless -r) and gives it its log, pid
    /// file, socket and the files it writes.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// The runtime that drives the node: tokio (default) or mio (one event-loop thread).
    #[arg(long, value_name = "tokio|mio", default_value_t = wazuh_cluster_runtime::Rt::Tokio)]
    pub runtime: wazuh_cluster_runtime::Rt,
    /// Set by the starting command on the daemon it runs in the background.
    #[arg(long = "detached-child", hide = true)]
    pub detached_child: bool,
}

/// Entry point when the binary runs as `wazuh-clusterd`: `argv` is the whole command line.
pub fn main_by_name(argv: Vec<OsString>) -> ExitCode {
    match ClusterdArgs::try_parse_from(&argv) {
        Ok(args) => run(args, &argv),
        Err(error) => error.exit(),
    }
}

/// Where things are, resolved once against the starting directory (the daemon then moves to `/`).
#[derive(Debug)]
struct InstallPaths {
    /// How the program was called (`argv[0]`), repeated for the background daemon.
    argv0: OsString,
    /// This program's executable, run again as the background daemon.
    current_exe: Option<PathBuf>,
    /// The install root.
    root: PathBuf,
    /// `-c`.
    config_file: Option<PathBuf>,
    /// `--cluster-json`, else the install's cluster.json when it exists.
    cluster_json: Option<PathBuf>,
    /// `--api-exec`.
    api_exec: Option<PathBuf>,
}

impl InstallPaths {
    fn resolve(args: &ClusterdArgs, argv: &[OsString]) -> InstallPaths {
        let argv0 = argv.first().cloned().unwrap_or_else(|| PROGRAM.into());
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let current_exe = std::env::current_exe().ok();
        let root = match &args.wazuh_path {
            Some(path) => cwd.join(path),
            None => install::root_of_program(Path::new(&argv0), &cwd, current_exe.as_deref()),
        };
        let cluster_json = match &args.cluster_json {
            Some(path) => Some(cwd.join(path)),
            None => Some(root.join(UPSTREAM_CLUSTER_JSON)).filter(|path| path.is_file()),
        };
        InstallPaths {
            config_file: args.config.as_ref().map(|path| cwd.join(path)),
            api_exec: args.api_exec.as_ref().map(|path| cwd.join(path)),
            argv0,
            current_exe,
            root,
            cluster_json,
        }
    }
}

/// Runs the daemon; `argv` is the process's whole command line (repeated for the background
/// daemon).
pub fn run(args: ClusterdArgs, argv: &[OsString]) -> ExitCode {
    if args.version {
        print!("{}", upstream_text::VERSION_TEXT);
        return ExitCode::SUCCESS;
    }
    let paths = InstallPaths::resolve(&args, argv);
    let debug_option = install::debug_option(&paths.root);
    let level = install::debug_level(&debug_option, args.debug);
    // Upstream gives cluster.log to ossec even with -r; files of the node are decided alike.
    // Only root can give files away, so a user named when not root is nobody's business here.
    let install_user = match node::system_owner(args.owner.as_deref()) {
        Ok((owner, _)) => owner.filter(|_| effective_uid() == 0),
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            return ExitCode::FAILURE;
        }
    };
    logging::install(
        level_directive(level),
        UpstreamLayer::for_daemon(
            Box::new(ClusterLog::new(
                &paths.root,
                install_user,
                SystemTime::now,
                !args.detached_child,
            )),
            SystemTime::now,
            PROGRAM,
        ),
    );
    // Before the daemon is up, its standard error is the starting command's pipe: a failure is
    // logged and said there too.
    let detached_child = args.detached_child;
    let fail = move |message: &str| {
        tracing::error!("{message}");
        if detached_child {
            eprintln!("{PROGRAM}: {message}");
        }
    };
    if let DebugOption::Invalid(why) = &debug_option {
        tracing::warn!(
            "Ignoring wazuh_clusterd.debug in internal_options.conf ({why}); debug level {level}"
        );
    }

    match node::read_cluster_section(
        &paths.root,
        paths.config_file.as_deref(),
        KeyPolicy::Required,
    ) {
        Ok(ClusterSection::Enabled(_)) => {}
        // As upstream: no word (ossec-control runs `-t` on every manager, clustered or not).
        Ok(ClusterSection::Disabled(why)) => {
            tracing::debug!("Nothing to run: {why}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            fail(&upstream_text::config_error(&error));
            return ExitCode::FAILURE;
        }
    }
    if args.test_config {
        return ExitCode::SUCCESS;
    }
    if !args.foreground && !args.detached_child {
        let Some(program) = &paths.current_exe else {
            fail("cannot find this program's executable to run the daemon (use -f)");
            return ExitCode::FAILURE;
        };
        return detach::start_daemon(program, &paths.argv0, argv.get(1..).unwrap_or_default());
    }
    if args.detached_child
        && let Err(message) = detach::leave_terminal()
    {
        fail(&message);
        return ExitCode::FAILURE;
    }
    serve(&args, paths, install_user, &fail)
}

/// The daemon itself (in the foreground, or the background process): stale pid files removed,
/// the node started, privileges dropped, the pid file written, until SIGTERM/SIGINT.
fn serve(
    args: &ClusterdArgs,
    paths: InstallPaths,
    install_user: Option<Owner>,
    fail: &dyn Fn(&str),
) -> ExitCode {
    let plan = match privileges::plan(effective_uid(), args.root, install_user) {
        Ok(plan) => plan,
        Err(message) => {
            fail(&message);
            return ExitCode::FAILURE;
        }
    };
    match pid_file::clean_stale(
        &paths.root,
        std::process::id(),
        pid_file::is_clusterd_process,
    ) {
        Ok(cleaned) => {
            for path in cleaned.removed {
                tracing::info!("Deleting PID file '{}' not used...", path.display());
            }
        }
        Err(message) => {
            fail(&message);
            return ExitCode::FAILURE;
        }
    }
    let root = paths.root.clone();
    let node_args = NodeArgs {
        wazuh_path: paths.root,
        config: paths.config_file,
        cluster_json: paths.cluster_json,
        insecure_no_key: false,
        max_connections_per_ip: AdapterLimits::default().max_connections_per_ip,
        max_connections: AdapterLimits::default().max_connections,
        memory_budget: NodeLimits::default().memory_budget >> 20,
        pipelined_chunks: 1,
        owner: args.owner.clone(),
        api_exec: paths.api_exec,
        runtime: args.runtime,
    };
    let report_up = args.detached_child;
    node::run_until_stopped(node_args, fail, || {
        match plan {
            PrivilegePlan::DropTo(owner) => {
                privileges::drop_to(owner)?;
                tracing::info!("Running as the install's user ({owner})");
            }
            PrivilegePlan::Stay(why) => tracing::info!("Keeping this process's user: {why}"),
        }
        let pid_file = PidFile::create(&root, std::process::id())?;
        tracing::debug!("PID file {} written", pid_file.path().display());
        if report_up {
            detach::report_up()?;
        }
        Ok(pid_file)
    })
}

/// The filter for upstream's debug levels: 0 INFO, 1 DEBUG, 2 DEBUG2.
fn level_directive(level: u8) -> &'static str {
    match level {
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

/// Whether the program was run by the daemon's name (`argv[0]`'s last component).
pub fn runs_as_clusterd(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name() == Some(std::ffi::OsStr::new(PROGRAM))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_reads_upstreams_flags() {
        ClusterdArgs::command().debug_assert();
        let args =
            ClusterdArgs::try_parse_from(["wazuh-clusterd", "-f", "-dd", "-r", "-c", "x.conf"])
                .unwrap();
        assert!(args.foreground && args.root && !args.test_config && !args.version);
        assert_eq!(args.debug, 2);
        assert_eq!(args.config, Some(PathBuf::from("x.conf")));
        let error = ClusterdArgs::try_parse_from(["wazuh-clusterd", "--ssl"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn the_daemon_is_known_by_its_name() {
        assert!(runs_as_clusterd("/var/ossec/bin/wazuh-clusterd".as_ref()));
        assert!(runs_as_clusterd("wazuh-clusterd".as_ref()));
        assert!(!runs_as_clusterd("/usr/bin/wazuh-cluster".as_ref()));
        assert!(!runs_as_clusterd("wazuh-clusterd.py".as_ref()));
    }

    #[test]
    fn debug_levels_are_upstreams() {
        assert_eq!(level_directive(0), "info");
        assert_eq!(level_directive(1), "debug");
        assert_eq!(level_directive(2), "trace");
    }
}
