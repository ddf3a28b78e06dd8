//! `wazuh-clusterd` as upstream's tools run it: our binary placed (as a link) at
//! `<install>/bin/wazuh-clusterd` of a temporary install tree, started without `-f` (it must
//! return once up), its pid file, `logs/cluster.log`, privilege drop, `-t`, `-V`, and the steps of
//! `ossec-control start/status/stop`.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

const KEY: &str = "daemontestclusterkey0123456789ab";
/// Upstream's `-V` output, byte for byte (`print_version()` of wazuh-clusterd.py at v3.9.5).
const UPSTREAM_VERSION: &str = "\nWazuh 3.9.5 - Wazuh Inc\n\nThis program is free software; you \
can redistribute it and/or modify\nit under the terms of the GNU General Public License (version \
2) as \npublished by the Free Software Foundation. For more details, go to \n\
https://www.gnu.org/licenses/gpl.html\n\n";
/// The user and group the privilege test drops to (no account needed: numbers are accepted).
const DROP_UID: u32 = 54_321;
const DROP_GID: u32 = 54_322;

/// A port for a master, below Linux's ephemeral range (32768 and up): a port the kernel hands
/// out for `bind(0)` or an outgoing connection elsewhere (another test, another program) cannot
/// take it between a daemon's stop and its restart. Each call moves on, so tests running side by
/// side in this process do not share one; a port in use is skipped.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 1_000 * 10;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(offset < 2_000, "no free port below the ephemeral range");
        let port = u16::try_from(base + offset).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn ossec_conf(port: u16, key: &str, node_type: &str) -> String {
    format!(
        "<ossec_config>\n  <cluster>\n    <name>wazuh</name>\n    <node_name>master01</node_name>\n    \
         <node_type>{node_type}</node_type>\n    <key>{key}</key>\n    <port>{port}</port>\n    \
         <bind_addr>127.0.0.1</bind_addr>\n    <nodes>\n      <node>127.0.0.1</node>\n    </nodes>\n    \
         <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>\n</ossec_config>\n"
    )
}

/// A temporary manager tree with our binary linked as `bin/wazuh-clusterd`.
struct Install {
    _dir: tempfile::TempDir,
    root: PathBuf,
    port: u16,
}

impl Install {
    fn new() -> Install {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("ossec");
        for sub in ["bin", "etc", "var/run", "logs", "queue/cluster"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_wazuh-cluster"),
            root.join("bin/wazuh-clusterd"),
        )
        .unwrap();
        let port = free_port();
        std::fs::write(root.join("etc/ossec.conf"), ossec_conf(port, KEY, "master")).unwrap();
        Install {
            _dir: dir,
            root,
            port,
        }
    }

    /// `bin/wazuh-clusterd ARGS`, run from an unrelated directory (the root comes from the
    /// program's path).
    fn clusterd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.root.join("bin/wazuh-clusterd"));
        command.args(args).current_dir("/");
        command
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("logs/cluster.log")).unwrap_or_default()
    }

    /// The pid files in `var/run`: (name, content).
    fn pid_files(&self) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(self.root.join("var/run"))
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let content = std::fs::read_to_string(entry.path()).unwrap();
                (entry.file_name().into_string().unwrap(), content)
            })
            .collect();
        files.sort();
        files
    }

    /// Waits for exactly one pid file and answers the pid in it (and checks its name).
    fn wait_pid_file(&self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let [(name, content)] = self.pid_files().as_slice()
                && let Ok(pid) = content.trim().parse::<u32>()
            {
                assert_eq!(name, &format!("wazuh-clusterd-{pid}.pid"));
                assert_eq!(content, &format!("{pid}\n"));
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "no pid file: {:?}",
                self.pid_files()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A daemon by its pid (not our child once detached): killed if the test ends without stopping
/// it.
struct Daemon(u32);

/// `kill SIGNAL PID`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

impl Daemon {
    fn signal(&self, signal: &str) {
        send_signal(self.0, signal);
    }

    /// Waits until the process is gone (a zombie waiting for a reaper counts as gone).
    fn wait_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(self.0) {
            assert!(Instant::now() < deadline, "pid {} still running", self.0);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) S ...": the state follows the last ')'.
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    text(&out.stdout).trim() == "0"
}

/// Starts the daemon as ossec-control does (no `-f`) with `args`; it must return 0 once up.
fn start_daemon(install: &Install, args: &[&str]) -> Daemon {
    let out = install.clusterd(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "start: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Up means up: the pid file is there when the starting command returns.
    let [(name, content)] = install.pid_files().try_into().unwrap_or_else(|files| {
        panic!("one pid file when the start returns: {files:?}");
    });
    let pid: u32 = content.trim().parse().unwrap();
    assert_eq!(name, format!("wazuh-clusterd-{pid}.pid"));
    assert!(alive(pid));
    Daemon(pid)
}

#[test]
fn clusterd_answers_upstreams_version_help_and_refuses_unknown_flags() {
    let install = Install::new();
    let out = install.clusterd(&["-V"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), UPSTREAM_VERSION);
    // The subcommand spelling is the same daemon.
    let out = Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
        .args(["clusterd", "-V"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), UPSTREAM_VERSION);

    let out = install.clusterd(&["--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for expected in [
        "Usage: wazuh-clusterd [OPTIONS]",
        "-f",
        "Run in foreground",
        "-t",
        "Test configuration",
        "-c <config>",
        "/var/ossec",
        "var/run/wazuh-clusterd-<pid>.pid",
    ] {
        assert!(help.contains(expected), "{expected:?} not in {help}");
    }
    assert!(!help.contains("detached-child"), "{help}");

    for bad in [&["-x"][..], &["--ssl"], &["-c"]] {
        let out = install.clusterd(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains("'--help'"), "{stderr}");
    }
    assert!(install.pid_files().is_empty());
}

#[test]
fn clusterd_t_accepts_a_good_configuration_and_refuses_a_broken_one_with_upstreams_message() {
    let install = Install::new();
    let out = install.clusterd(&["-t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(install.pid_files().is_empty());

    let cases = [
        (
            ossec_conf(install.port, "", "master"),
            "Error 3004 - Error in cluster configuration: Unspecified key",
        ),
        (
            ossec_conf(install.port, KEY, "boss"),
            "Error 3004 - Error in cluster configuration: Invalid node type boss. Correct values \
             are master and worker",
        ),
        (
            ossec_conf(80, KEY, "master"),
            "Error 3004 - Error in cluster configuration: Port must be higher than 1024 and lower \
             than 65535.",
        ),
    ];
    let broken = install.root.join("etc/broken.conf");
    for (conf, message) in cases {
        std::fs::write(&broken, conf).unwrap();
        // -c names the file; etc/ossec.conf (valid) is not read.
        let out = install
            .clusterd(&["-t", "-c", broken.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        let line = format!("wazuh-clusterd: ERROR: [Cluster] [Main] {message}\n");
        assert!(stderr.ends_with(&line), "{stderr}");
        assert!(install.log().ends_with(&line), "{}", install.log());
    }
    // Without -t, a start on a broken configuration fails the same way, before going to the
    // background.
    let out = install
        .clusterd(&["-r", "-c", broken.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Port must be higher than 1024"));
    assert!(install.pid_files().is_empty());
}

#[test]
fn clusterd_with_the_cluster_disabled_exits_0_without_a_word_as_upstream() {
    let install = Install::new();
    let conf = ossec_conf(install.port, KEY, "master")
        .replace("<disabled>no</disabled>", "<disabled>yes</disabled>");
    std::fs::write(install.root.join("etc/ossec.conf"), conf).unwrap();
    // ossec-control runs `-t` on every manager, clustered or not, then skips the start.
    for args in [&["-t"][..], &["-r"], &["-f", "-r"]] {
        let out = install.clusterd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
    assert!(install.pid_files().is_empty());
    assert!(!install.root.join("queue/cluster/c-internal.sock").exists());
    // No <cluster> block at all: the same.
    std::fs::write(install.root.join("etc/ossec.conf"), "<ossec_config/>\n").unwrap();
    let out = install.clusterd(&["-t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn clusterd_pid_file_lives_with_the_daemon_through_sigterm_sigkill_and_restart() {
    let install = Install::new();
    let daemon = start_daemon(&install, &["-r"]);
    let log = install.log();
    assert!(
        log.contains(&format!(
            "wazuh-clusterd: INFO: [Cluster] [Main] Master master01 listening on 127.0.0.1:{}\n",
            install.port
        )),
        "{log}"
    );
    assert_eq!(
        std::fs::metadata(install.root.join("logs/cluster.log"))
            .unwrap()
            .mode()
            & 0o777,
        0o660
    );
    // The node serves its local socket: control -l answers.
    let listed = Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
        .args(["control", "-l", "--wazuh-path"])
        .arg(&install.root)
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("master01  master  3.9.5"));

    // A second start beside a live daemon is refused, naming it.
    let out = install.clusterd(&["-r"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "wazuh-clusterd is already running (pid {}",
            daemon.0
        )),
        "{stderr}"
    );

    daemon.signal("-TERM");
    daemon.wait_gone();
    assert!(install.pid_files().is_empty());
    assert!(
        install
            .log()
            .contains("wazuh-clusterd: INFO: [Cluster] [Main] SIGTERM received: stopping\n")
    );

    // SIGKILL leaves the pid file behind; the next start removes it.
    let daemon = start_daemon(&install, &["-r"]);
    daemon.signal("-KILL");
    daemon.wait_gone();
    let stale = install
        .root
        .join(format!("var/run/wazuh-clusterd-{}.pid", daemon.0));
    assert!(stale.exists());
    let restarted = start_daemon(&install, &["-r"]);
    assert_ne!(restarted.0, daemon.0);
    assert!(!stale.exists());
    assert!(install.log().contains(&format!(
        "wazuh-clusterd: INFO: [Cluster] [Main] Deleting PID file '{}' not used...\n",
        stale.display()
    )));
    restarted.signal("-INT");
    restarted.wait_gone();
    assert!(install.pid_files().is_empty());

    // Regression: a SIGTERM sent the moment the start returns is a graceful stop too (the
    // handlers used to be installed after the pid file was written, so it killed the daemon and
    // left the pid file).
    let daemon = start_daemon(&install, &["-r"]);
    daemon.signal("-TERM");
    daemon.wait_gone();
    assert!(install.pid_files().is_empty());
}

/// The worker daemon runs on mio (`--runtime mio`, carried into the background daemon), the
/// master on tokio.
#[test]
fn clusterd_worker_joins_a_clusterd_master_and_both_stop_on_sigterm() {
    let master = Install::new();
    let worker = Install::new();
    let conf = ossec_conf(master.port, KEY, "worker")
        .replace("<node_name>master01<", "<node_name>worker01<");
    std::fs::write(worker.root.join("etc/ossec.conf"), conf).unwrap();
    let master_daemon = start_daemon(&master, &["-r"]);
    let worker_daemon = start_daemon(&worker, &["-r", "--runtime", "mio"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
            .args(["control", "-l", "--wazuh-path"])
            .arg(&master.root)
            .output()
            .unwrap();
        if text(&listed.stdout).contains("\nworker01  worker  3.9.5    127.0.0.1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker01 never listed: {}{}",
            text(&listed.stdout),
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worker.log().contains(&format!(
            "wazuh-clusterd: INFO: [Cluster] [Main] Worker worker01 started, master at 127.0.0.1:{}\n",
            master.port
        )),
        "{}",
        worker.log()
    );
    assert!(
        worker.log().contains(
            "wazuh-clusterd: INFO: [Cluster] [Main] Running on the mio runtime (--runtime)\n"
        ),
        "{}",
        worker.log()
    );
    for (daemon, install) in [(worker_daemon, &worker), (master_daemon, &master)] {
        daemon.signal("-TERM");
        daemon.wait_gone();
        assert!(install.pid_files().is_empty());
        assert!(
            install
                .log()
                .contains("wazuh-clusterd: INFO: [Cluster] [Main] SIGTERM received: stopping\n"),
            "{}",
            install.log()
        );
    }
}

#[test]
fn clusterd_without_a_writable_log_runs_and_says_so_once() {
    let install = Install::new();
    // No logs/ folder: every line fails to be written.
    std::fs::remove_dir(install.root.join("logs")).unwrap();
    let out = install.clusterd(&["-r"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let said = format!(
        "wazuh-clusterd: cannot write {}/logs/cluster.log: No such file or directory (os error 2); \
         the cluster keeps running without it",
        install.root.display()
    );
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    let [(_, pid)] = install.pid_files().try_into().unwrap();
    let daemon = Daemon(pid.trim().parse().unwrap());
    daemon.signal("-TERM");
    daemon.wait_gone();
    assert!(install.pid_files().is_empty());
}

#[test]
fn clusterd_that_cannot_start_says_why_and_the_start_fails() {
    let install = Install::new();
    let taken = std::net::TcpListener::bind(("127.0.0.1", install.port)).unwrap();
    let out = install.clusterd(&["-r"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // The daemon's reason, relayed by the starting command, then the starting command's verdict.
    assert!(
        stderr.contains(&format!(
            "wazuh-clusterd: cannot listen on 127.0.0.1:{}: ",
            install.port
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("wazuh-clusterd: the daemon did not start (exit status: 1)\n"),
        "{stderr}"
    );
    assert!(install.pid_files().is_empty());
    drop(taken);
}

/// The UTC date of a Unix time as the archive path names it (`2026/Nov/29`), by `date -u`.
fn archive_date(unix_secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix_secs}"), "+%Y/%b/%d"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    text(&out.stdout).trim().to_owned()
}

#[test]
fn clusterd_in_the_foreground_logs_to_stderr_too_and_rotates_an_old_log_at_start() {
    let install = Install::new();
    // A log last written three days ago, as after a long stop.
    let log_path = install.root.join("logs/cluster.log");
    std::fs::write(&log_path, "a line of an earlier day\n").unwrap();
    let three_days_ago = SystemTime::now() - Duration::from_secs(3 * 86_400);
    let file = std::fs::File::options()
        .write(true)
        .open(&log_path)
        .unwrap();
    file.set_modified(three_days_ago).unwrap();
    drop(file);
    let mtime = std::fs::metadata(&log_path).unwrap().mtime();

    let mut child = ForegroundChild(
        install
            .clusterd(&["-f", "-r", "-d"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = install.wait_pid_file();
    assert_eq!(pid, child.0.id());
    let archive = archive_path(&install.root, u64::try_from(mtime).unwrap());
    let mut old = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&archive).unwrap())
        .read_to_string(&mut old)
        .unwrap();
    assert_eq!(old, "a line of an earlier day\n");
    assert_eq!(std::fs::metadata(&archive).unwrap().mode() & 0o777, 0o640);
    let log = install.log();
    assert!(!log.contains("earlier day"), "{log}");
    // -d: debug lines.
    assert!(log.contains("wazuh-clusterd: DEBUG: "), "{log}");

    send_signal(pid, "-TERM");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // -f: the same lines on standard error.
    assert!(
        stderr.contains("wazuh-clusterd: INFO: [Cluster] [Main] Master master01 listening on"),
        "{stderr}"
    );
    assert!(stderr.contains("SIGTERM received: stopping"), "{stderr}");
    assert!(install.pid_files().is_empty());
}

/// `logs/cluster/<year>/<Mon>/cluster-<DD>.log.gz` of the day of `unix_secs`.
fn archive_path(root: &Path, unix_secs: u64) -> PathBuf {
    let date = archive_date(unix_secs);
    let mut parts = date.split('/');
    let (year, month, day) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    root.join(format!("logs/cluster/{year}/{month}/cluster-{day}.log.gz"))
}

/// A `-f` daemon, our child: killed if the test ends without stopping it.
struct ForegroundChild(Child);

impl Drop for ForegroundChild {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Root only: without `-r` the daemon becomes the install's user once its port and socket are
/// open; its pid file, log and socket are that user's. (Not root: it says it keeps its user.)
#[test]
fn clusterd_started_as_root_drops_to_the_install_user() {
    let install = Install::new();
    let owner = format!("{DROP_UID}:{DROP_GID}");
    if !is_root() {
        let daemon = start_daemon(&install, &["--owner", &owner]);
        assert!(
            install
                .log()
                .contains("Keeping this process's user: not started as root")
        );
        daemon.signal("-TERM");
        daemon.wait_gone();
        return;
    }
    // The folders the user writes in, as an install has them.
    for dir in ["var/run", "logs", "queue/cluster"] {
        std::os::unix::fs::chown(install.root.join(dir), Some(DROP_UID), Some(DROP_GID)).unwrap();
    }
    // Reachable by the user: the temporary folder above the root is root's 0700.
    let above = install.root.parent().unwrap();
    std::fs::set_permissions(above, std::fs::Permissions::from_mode(0o755)).unwrap();

    let daemon = start_daemon(&install, &["--owner", &owner]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.0)).unwrap();
    let ids = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .map(|id| id.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    // Real, effective, saved and file-system ids, every thread alike (checked on the process).
    assert_eq!(ids("Uid:"), [DROP_UID; 4], "{status}");
    assert_eq!(ids("Gid:"), [DROP_GID; 4], "{status}");
    assert_eq!(ids("Groups:"), [DROP_GID], "{status}");
    for task in std::fs::read_dir(format!("/proc/{}/task", daemon.0)).unwrap() {
        let task_status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(
            task_status.contains(&format!(
                "Uid:\t{DROP_UID}\t{DROP_UID}\t{DROP_UID}\t{DROP_UID}"
            )),
            "{task_status}"
        );
    }
    for file in [
        format!("var/run/wazuh-clusterd-{}.pid", daemon.0),
        "logs/cluster.log".to_owned(),
        "queue/cluster/c-internal.sock".to_owned(),
    ] {
        let meta = std::fs::metadata(install.root.join(&file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (DROP_UID, DROP_GID), "{file}");
    }
    assert!(install.log().contains(&format!(
        "Running as the install's user ({DROP_UID}:{DROP_GID})"
    )));
    daemon.signal("-TERM");
    daemon.wait_gone();
    // Removed by the user it became.
    assert!(install.pid_files().is_empty());
    assert!(!install.root.join("queue/cluster/c-internal.sock").exists());
}

/// What `ossec-control` (`src/init/ossec-server.sh` at v3.9.5) does for `wazuh-clusterd`, step by
/// step: `start` checks `pstatus` (the pid files, `ps -p`, `kill -0`), runs
/// `${DIR}/bin/wazuh-clusterd` without arguments and fails on a non-zero status; `status` says
/// "is running" or "not running"; `stop` kills the pid read from `var/run/wazuh-clusterd*.pid`,
/// waits for it (`kill -0`, up to 600 tries of 0.1 s) and removes the pid files. The install's
/// user is given to the daemon by a one-line wrapper as `bin/wazuh-clusterd` (this machine has no
/// `ossec` account, and ossec-control passes no arguments).
const OSSEC_CONTROL_STEPS: &str = r#"
DIR="$1"; ACTION="$2"
pstatus() {
    for j in $(cat ${DIR}/var/run/wazuh-clusterd*.pid 2>/dev/null); do
        if ! ps -p $j >/dev/null 2>&1; then
            echo "wazuh-clusterd: Process $j not used by Wazuh, removing..."
            rm -f ${DIR}/var/run/wazuh-clusterd-$j.pid
            continue
        fi
        kill -0 $j >/dev/null 2>&1 && return 1
    done
    return 0
}
case "$ACTION" in
start)
    if pstatus; then
        ${DIR}/bin/wazuh-clusterd || { echo "wazuh-clusterd did not start correctly."; exit 1; }
        echo "Started wazuh-clusterd..."
    else
        echo "wazuh-clusterd already running..."
    fi ;;
status)
    if pstatus; then echo "wazuh-clusterd not running..."; exit 1; else echo "wazuh-clusterd is running..."; fi ;;
stop)
    if pstatus; then
        echo "wazuh-clusterd not running..."
    else
        echo "Killing wazuh-clusterd..."
        pid=$(cat ${DIR}/var/run/wazuh-clusterd*.pid)
        kill $pid
        n=1
        while kill -0 $pid 2>/dev/null; do
            [ $n = 600 ] && { echo "Process wazuh-clusterd couldn't be killed."; break; }
            sleep 0.1; n=$((n + 1))
        done
    fi
    rm -f ${DIR}/var/run/wazuh-clusterd*.pid ;;
esac
"#;

fn ossec_control(install: &Install, action: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(OSSEC_CONTROL_STEPS)
        .arg("ossec-control")
        .arg(&install.root)
        .arg(action)
        .output()
        .unwrap()
}

#[test]
fn ossec_control_start_status_stop_and_restart_work_with_our_daemon() {
    let install = Install::new();
    // ossec-control runs bin/wazuh-clusterd with no arguments; the wrapper names the user as
    // the install would have it (ossec), keeping argv[0] so the root is found from it.
    let wrapper = install.root.join("bin/wazuh-clusterd");
    std::fs::remove_file(&wrapper).unwrap();
    let owner = if is_root() {
        format!("--owner {DROP_UID}:{DROP_GID}")
    } else {
        String::new()
    };
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\nexec -a \"$0\" {} {owner} \"$@\"\n",
            env!("CARGO_BIN_EXE_wazuh-cluster")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        for dir in ["var/run", "logs", "queue/cluster"] {
            std::os::unix::fs::chown(install.root.join(dir), Some(DROP_UID), Some(DROP_GID))
                .unwrap();
        }
        let above = install.root.parent().unwrap();
        std::fs::set_permissions(above, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let step = |action: &str, code: i32, said: &str| {
        let out = ossec_control(&install, action);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{action}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains(said), "{action}: {stdout}");
    };

    step("status", 1, "wazuh-clusterd not running...");
    step("start", 0, "Started wazuh-clusterd...");
    let pid = install.wait_pid_file();
    let _guard = Daemon(pid);
    step("status", 0, "wazuh-clusterd is running...");
    step("start", 0, "wazuh-clusterd already running...");
    // restart = stop then start.
    step("stop", 0, "Killing wazuh-clusterd...");
    assert!(!alive(pid));
    assert!(install.pid_files().is_empty());
    step("status", 1, "wazuh-clusterd not running...");
    step("start", 0, "Started wazuh-clusterd...");
    let restarted = install.wait_pid_file();
    let _guard = Daemon(restarted);
    assert_ne!(restarted, pid);
    step("stop", 0, "Killing wazuh-clusterd...");
    assert!(!alive(restarted));
    step("stop", 0, "wazuh-clusterd not running...");
    let log = install.log();
    assert_eq!(
        log.matches("SIGTERM received: stopping").count(),
        2,
        "{log}"
    );
}
