//! The `wazuh-cluster` binary as operators run it: `node` processes configured by their
//! ossec.conf forming a cluster over loopback, `control -l` through the master's and a worker's
//! Unix socket, API calls run by an `--api-exec` program and asked with `control -a` and `api`,
//! SIGTERM stopping them cleanly; and `demo` from start to its verdict.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_tokio::trees::{SampleFile, compare_integrity, write_tree};

const KEY: &str = "daemontestclusterkey0123456789ab";
const OLD: Timestamp = Timestamp::from_secs(1_562_000_000);
/// Intervals of these tests (merged over 3.9.5's cluster.json by `--cluster-json`).
const FAST: &str = r#"{"intervals": {"worker": {"sync_integrity": 0.3, "sync_files": 0.5,
    "keep_alive": 0.5, "connection_retry": 0.2}, "master": {"recalculate_integrity": 0.2}}}"#;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

fn ossec_conf(name: &str, node_type: &str, port: u16) -> String {
    format!(
        "<ossec_config>\n  <cluster>\n    <name>wazuh</name>\n    <node_name>{name}</node_name>\n    \
         <node_type>{node_type}</node_type>\n    <key>{KEY}</key>\n    <port>{port}</port>\n    \
         <bind_addr>127.0.0.1</bind_addr>\n    <nodes>\n      <node>127.0.0.1</node>\n    </nodes>\n    \
         <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>\n</ossec_config>\n"
    )
}

fn file(path: &str, data: &str) -> SampleFile {
    SampleFile {
        path: path.to_owned(),
        data: data.as_bytes().to_vec(),
        mode: 0o660,
        mtime: OLD,
    }
}

fn install(dir: &Path, name: &str, node_type: &str, port: u16, extra: &[SampleFile]) -> PathBuf {
    let root = dir.join(name);
    let mut files = vec![file("/etc/ossec.conf", &ossec_conf(name, node_type, port))];
    files.extend_from_slice(extra);
    write_tree(&root, &files).unwrap();
    std::fs::write(root.join("cluster.json"), FAST).unwrap();
    root
}

/// A node process that is killed if the test ends without stopping it (a failed assertion would
/// otherwise leave daemons running after the test binary, holding their ports).
struct NodeProcess(Child);

impl std::ops::Deref for NodeProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for NodeProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_node(root: &Path) -> NodeProcess {
    spawn_node_with(root, &[])
}

fn spawn_node_with(root: &Path, args: &[&str]) -> NodeProcess {
    let child = bin()
        .args(["node", "--wazuh-path"])
        .arg(root)
        .arg("--cluster-json")
        .arg(root.join("cluster.json"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    NodeProcess(child)
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit (at most 20 s) and returns its status and standard error.
fn finish(mut child: NodeProcess) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("node did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every worker tree holds the master's `files` integrity files, byte for byte.
fn converge(master: &Path, workers: &[&Path], files: usize) {
    let items = ClusterItems::defaults_3_9();
    let now = Timestamp::from_secs(1_900_000_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let converged = workers.iter().all(|w| {
            let check = compare_integrity(master, w, &items, "master01", now).unwrap();
            check.files == files && check.identical()
        });
        if converged {
            return;
        }
        assert!(Instant::now() < deadline, "workers never converged");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn control_list(master: &Path) -> Output {
    bin()
        .args(["control", "-l", "--wazuh-path"])
        .arg(master)
        .output()
        .unwrap()
}

/// The master and worker2 run on mio, worker1 on tokio (the default): the runtimes mix in one
/// cluster, `control` works against either, and SIGTERM stops either cleanly.
#[test]
fn node_processes_converge_control_lists_all_three_and_sigterm_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shared = [
        file(
            "/etc/client.keys",
            "001 web-01 any 0a1b2c3d0a1b2c3d0a1b2c3d0a1b2c3d\n",
        ),
        file("/etc/rules/local_rules.xml", "<group name=\"local\"/>\n"),
        file("/etc/shared/default/merged.mg", "#default\n"),
    ];
    let master = install(dir.path(), "master01", "master", port, &shared);
    let w1 = install(dir.path(), "worker1", "worker", port, &[]);
    let w2 = install(dir.path(), "worker2", "worker", port, &[]);
    let mio = ["--runtime", "mio"];
    let nodes = [
        spawn_node_with(&master, &mio),
        spawn_node(&w1),
        spawn_node_with(&w2, &mio),
    ];

    converge(&master, &[&w1, &w2], 3);

    let listed = control_list(&master);
    assert_eq!(listed.status.code(), Some(0));
    // Header, the master, then the workers in the order they joined (upstream's dict order).
    let text = String::from_utf8(listed.stdout).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2..].sort_unstable();
    assert_eq!(
        lines,
        [
            "NAME      TYPE    VERSION  ADDRESS    ",
            "master01  master  3.9.5    127.0.0.1  ",
            "worker1   worker  3.9.5    127.0.0.1  ",
            "worker2   worker  3.9.5    127.0.0.1  ",
        ]
    );
    // Through a worker's socket: the worker forwards get_nodes to the master, the same table.
    let via_worker = control_list(&w1);
    assert_eq!(
        via_worker.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&via_worker.stderr)
    );
    let text = String::from_utf8(via_worker.stdout).unwrap();
    let mut via: Vec<&str> = text.lines().collect();
    via[2..].sort_unstable();
    assert_eq!(via, lines);

    for node in &nodes {
        sigterm(node);
    }
    for node in nodes {
        let (code, stderr) = finish(node);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("SIGTERM received: stopping"), "{stderr}");
    }
    // The master removed its socket on the way out.
    assert!(!master.join("queue/cluster/c-internal.sock").exists());
}

/// The worker runs on mio, the master on tokio.
#[test]
fn a_worker_killed_with_sigkill_and_restarted_rejoins_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shared = [file(
        "/etc/rules/local_rules.xml",
        "<group name=\"local\"/>\n",
    )];
    let master = install(dir.path(), "master01", "master", port, &shared);
    let w1 = install(dir.path(), "worker1", "worker", port, &[]);
    let master_node = spawn_node(&master);
    let mut worker = spawn_node_with(&w1, &["--runtime", "mio"]);
    converge(&master, &[&w1], 1);

    // No goodbye: the process dies, its connection is reset.
    worker.kill().unwrap();
    worker.wait().unwrap();
    std::fs::write(
        master.join("etc/rules/local_rules.xml"),
        "<group name=\"local,changed\"/>\n",
    )
    .unwrap();
    std::fs::write(
        master.join("etc/rules/more_rules.xml"),
        "<group name=\"more\"/>\n",
    )
    .unwrap();
    let worker = spawn_node_with(&w1, &["--runtime", "mio"]);
    converge(&master, &[&w1], 2);
    let listed = String::from_utf8(control_list(&master).stdout).unwrap();
    assert!(
        listed.contains("\nworker1   worker  3.9.5    127.0.0.1  \n"),
        "{listed}"
    );

    for node in [worker, master_node] {
        sigterm(&node);
        let (code, stderr) = finish(node);
        assert_eq!(code, Some(0), "{stderr}");
    }
}

/// Runs the binary with `args` and the node's socket under `root`; answers its exit status and
/// stdout (stderr in the failure message).
fn run_against(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(args)
        .arg("--wazuh-path")
        .arg(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.stderr.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), stdout)
}

/// `node --api-exec`: the master runs its API calls with the program (request on stdin, answer
/// on stdout); `control -a` and `api` get its answer through the master's socket and through a
/// worker's (which sends the request to the master and passes the answer on). A program that
/// is not executable stops the start.
#[test]
fn node_runs_api_calls_with_the_api_exec_program() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = install(dir.path(), "master01", "master", port, &[]);
    let w1 = install(dir.path(), "worker1", "worker", port, &[]);
    let requests = dir.path().join("requests.log");
    let program = dir.path().join("api-exec.sh");
    let answer = r#"{"data": {"items": [{"id": "001", "name": "web-01", "ip": "10.0.0.5", "status": "Active", "version": "Wazuh v3.9.5", "node_name": "worker1"}, {"id": "002", "name": "db-01", "ip": "any", "status": "Never connected", "node_name": "worker1"}], "totalItems": 2}, "error": 0}"#;
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\ncat >> '{}'\necho >> '{}'\nprintf '%s' '{answer}'\n",
            requests.display(),
            requests.display()
        ),
    )
    .unwrap();

    let refused = bin()
        .args(["node", "--api-exec"])
        .arg(&program)
        .arg("--wazuh-path")
        .arg(&master)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(refused.stderr).unwrap(),
        format!(
            "wazuh-cluster: --api-exec {}: not executable (chmod +x, and a #! line for a \
             script)\n",
            program.display()
        )
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();

    let program_arg = program.to_str().unwrap();
    let nodes = [
        spawn_node_with(&master, &["--api-exec", program_arg]),
        spawn_node(&w1),
    ];
    // The worker is in once the master lists it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8(control_list(&master).stdout)
        .unwrap()
        .contains("worker1")
    {
        assert!(Instant::now() < deadline, "worker1 never joined");
        std::thread::sleep(Duration::from_millis(100));
    }

    let table = "ID   NAME    IP        STATUS           VERSION       NODE NAME  \n\
                 001  web-01  10.0.0.5  Active           Wazuh v3.9.5  worker1    \n\
                 002  db-01   any       Never connected  unknown       worker1    \n";
    for root in [&master, &w1] {
        let (code, stdout) =
            run_against(root, &["control", "-a", "-fs", "Active", "Never connected"]);
        assert_eq!(
            (code, stdout.as_str()),
            (Some(0), table),
            "through {}",
            root.display()
        );
    }
    let (code, stdout) = run_against(&w1, &["api", "/agents", r#"{"limit": 2}"#]);
    assert_eq!((code, stdout), (Some(0), format!("{answer}\n")));

    // Every call ran on the master, with the request as the node placed it.
    let log = std::fs::read_to_string(&requests).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    for line in &lines[..2] {
        assert!(
            line.contains(r#""filters": {"status": "Active,Never connected", "node_name": "all"}"#),
            "{line}"
        );
    }
    assert!(lines[2].contains(r#""limit": 2"#), "{}", lines[2]);

    let stderrs: Vec<String> = nodes
        .into_iter()
        .map(|node| {
            sigterm(&node);
            let (code, stderr) = finish(node);
            assert_eq!(code, Some(0), "{stderr}");
            stderr
        })
        .collect();
    let line = format!(
        "Distributed API calls run with {} (--api-exec)",
        std::fs::canonicalize(&program).unwrap().display()
    );
    assert_eq!(stderrs[0].matches(&line).count(), 1, "{}", stderrs[0]);
    assert!(
        stderrs[1].contains("Distributed API calls run with the built-in executor"),
        "{}",
        stderrs[1]
    );
}

#[test]
fn node_refuses_an_ossec_conf_without_a_key_unless_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("master01");
    let conf = ossec_conf("master01", "master", free_port()).replace(KEY, "");
    write_tree(&root, &[file("/etc/ossec.conf", &conf)]).unwrap();
    let out = bin()
        .args(["node", "--wazuh-path"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cluster setting 'key'"), "{stderr}");
}

/// `--owner`: a user that does not exist stops the start naming the option. As root (this
/// machine), a worker given `--owner 54321:54322` hands the files it receives and the
/// directories it creates, and its local socket, to those ids (what the ossec-run daemons and
/// tools beside it need); not as root (CI), nothing is given away and the log says why.
#[test]
fn node_gives_what_it_writes_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let shared = [
        file("/etc/client.keys", "001 web-01 any 0a1b2c3d0a1b2c3d\n"),
        file("/etc/rules/local_rules.xml", "<group name=\"local\"/>\n"),
    ];
    let master = install(dir.path(), "master01", "master", port, &shared);
    let w1 = install(dir.path(), "worker1", "worker", port, &[]);
    let refused = bin()
        .args(["node", "--owner", "no-such-user-here", "--wazuh-path"])
        .arg(&w1)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(refused.stderr).unwrap(),
        "wazuh-cluster: --owner: user \"no-such-user-here\" does not exist (not in /etc/passwd, \
         not a number)\n"
    );

    let euid = wazuh_cluster_fs::owner::effective_uid();
    let root = euid == 0;
    let args: &[&str] = if root {
        &["--owner", "54321:54322"]
    } else {
        &[]
    };
    let nodes = [spawn_node(&master), spawn_node_with(&w1, args)];
    converge(&master, &[&w1], 2);
    let owner_mode = |path: &str| {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(w1.join(path)).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    };
    let (uid, gid) = if root {
        (54321, 54322)
    } else {
        (euid, owner_mode("etc").1)
    };
    for (path, mode) in [
        ("etc/client.keys", 0o640),
        ("etc/rules", 0o770),
        ("etc/rules/local_rules.xml", 0o660),
        // The local socket too: upstream's belongs to the user its daemon runs as.
        ("queue/cluster/c-internal.sock", 0o660),
    ] {
        assert_eq!(owner_mode(path), (uid, gid, mode), "{path}");
    }
    let stderrs: Vec<String> = nodes
        .into_iter()
        .map(|node| {
            sigterm(&node);
            let (code, stderr) = finish(node);
            assert_eq!(code, Some(0), "{stderr}");
            stderr
        })
        .collect();
    let line = if root {
        "Files written by this node belong to 54321:54322 (54321:54322, --owner)".to_owned()
    } else {
        format!("Files written by this node belong to uid {euid}: not running as root")
    };
    assert_eq!(stderrs[1].matches(&line).count(), 1, "{}", stderrs[1]);
}

#[test]
fn demo_exits_zero_and_shows_convergence_on_either_runtime() {
    for runtime in ["tokio", "mio"] {
        demo_converges_on(runtime);
    }
}

fn demo_converges_on(runtime: &str) {
    let out = bin().args(["demo", "--runtime", runtime]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{runtime}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let banner = format!("real loopback TCP, on {runtime} ==");
    assert!(stdout.contains(&banner), "{stdout}");
    for line in [
        "    worker1: missing 13, shared 0, extra 0, extra_valid 0\n",
        "    worker2: missing 13, shared 0, extra 0, extra_valid 0\n",
        "    worker1: 13/13 integrity files byte-identical to the master\n",
        "    worker1: missing 1, shared 1, extra 0, extra_valid 0\n",
        "    worker2: 14/14 integrity files byte-identical to the master\n",
        "    agent web-01 reports to worker1\n",
        "    agent web-02 reports to worker2\n",
        "master01  master  3.9.5    127.0.0.1  \n",
        "worker2   worker  3.9.5    127.0.0.1  \n",
        "all 2 of 2 workers byte-identical to the master on 14 integrity files; 4 agents routed;",
    ] {
        assert!(
            stdout.contains(line),
            "{runtime}: missing {line:?} in:\n{stdout}"
        );
    }
}

/// `node ARGS --wazuh-path <empty dir>` exits 2 (a usage error, before anything starts):
/// its standard error.
fn node_refuses(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("node")
        .args(args)
        .arg("--wazuh-path")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_runtime_is_refused_naming_the_choices() {
    let stderr = node_refuses(&["--runtime", "async-std"]);
    assert!(
        stderr.contains("unknown runtime \"async-std\" (tokio or mio)"),
        "{stderr}"
    );
}

/// More chunks in flight than the node allows is refused at the command line, with the range.
#[test]
fn pipelined_chunks_beyond_four_are_refused_naming_the_range() {
    let stderr = node_refuses(&["--pipelined-chunks", "9"]);
    assert!(
        stderr.contains("--pipelined-chunks") && stderr.contains("1..=4"),
        "{stderr}"
    );
}

/// A master out of descriptors (`EMFILE` on accept, under `prlimit --nofile=64:64`) serves the
/// connections that waited in the listen backlog once closing others gives it descriptors
/// again, without a new connection to wake it: 150 probes each sending an HTTP request are all
/// accepted and closed (bad frame). Regression (mio): an accept that failed waited for the next
/// readiness of the listener, which is edge-triggered, so the probes left in the backlog were
/// never served; the loop now tries again after 100 ms, as the tokio listener does.
#[test]
fn a_master_out_of_descriptors_serves_the_waiting_connections_once_it_has_some_again() {
    for runtime in ["tokio", "mio"] {
        out_of_descriptors_on(runtime);
    }
}

fn out_of_descriptors_on(runtime: &str) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = install(dir.path(), "master01", "master", port, &[]);
    let child = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_wazuh-cluster"))
        .args(["node", "--wazuh-path"])
        .arg(&master)
        .arg("--cluster-json")
        .arg(master.join("cluster.json"))
        .args(["--runtime", runtime, "--max-connections-per-ip", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node = NodeProcess(child);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{runtime}: the master never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every probe connects before any speaks: the master cannot close one before its bytes
    // arrive, so 150 open at once pass the 64 descriptors for sure (when each wrote at once, a
    // fast master closed them as they came and never ran out).
    let mut probes: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    for probe in &mut probes {
        let _ = probe.write_all(b"GET / HTTP/1.1\r\nHost: master\r\n\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, probe) in probes.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        probe
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match probe.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "{runtime}: probe {i} never served");
    }
    drop(probes);
    sigterm(&node);
    let (code, stderr) = finish(node);
    assert_eq!(code, Some(0), "{runtime}: {stderr}");
    assert!(
        stderr.contains("accepting a connection: "),
        "{runtime}: never out of descriptors: {stderr}"
    );
}
