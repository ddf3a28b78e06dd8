//! `wazuh-cluster demo [--keep] [--workers N]`: a whole cluster in one process, narrated.
//!
//! It builds a master and N workers in temporary install trees (each configured by its own
//! `etc/ossec.conf`, read by the same code as `wazuh-cluster node`), runs them over real loopback
//! TCP with a Fernet key and serves `control` on the master's real Unix socket, and shows the
//! design document's workflow happening: workers join, the first integrity round brings every
//! master file to the empty workers, a change on the master reaches every worker, agent-info
//! flows back to the master, then `control -l` and `control -i` as an operator sees them.
//!
//! Convergence is not taken from the nodes' word: after each step the demo scans the master's
//! tree and compares every integrity file with each worker's, byte for byte.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_runtime::{Missed, Rt, Running};
use wazuh_cluster_sync::config::KeyPolicy;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeConfig, NodeEvent, SyncKind};
use wazuh_cluster_tokio::trees::{IntegrityCheck, SampleFile, compare_integrity, write_tree};
use wazuh_cluster_tokio::{NodeSpec, os_seed, shutdown_signal, unix_time_at, wall_clock_now};

use crate::control::{format_health, format_nodes, get_health_payload, get_nodes_payload};
use crate::local_client::{GET_HEALTH, GET_NODES};
use crate::node::{node_spec, read_cluster_config};

/// Longest the demo waits for one step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Most workers `--workers` accepts.
const MAX_WORKERS: u16 = 64;

/// The demo's cluster name (upstream's default).
const CLUSTER_NAME: &str = "wazuh";

/// mtime of the sample files (2019-07-01, the 3.9.5 era).
const OLD: Timestamp = Timestamp::from_secs(1_562_000_000);

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the cluster running after the demo, until Ctrl-C (trees are kept too).
    #[arg(long)]
    pub keep: bool,
    /// Number of workers.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u16,
    /// The runtime that drives the nodes: tokio or mio (one event-loop thread per node).
    #[arg(long, value_name = "tokio|mio", default_value_t = Rt::Tokio)]
    pub runtime: Rt,
}

/// Runs `demo`.
pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wazuh-cluster demo: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(demo(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wazuh-cluster demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// The agents of the demo: id, name, address of their agent-info.
const AGENTS: [(&str, &str, &str); 4] = [
    ("001", "web-01", "10.0.1.11"),
    ("002", "web-02", "10.0.1.12"),
    ("003", "db-01", "10.0.2.21"),
    ("004", "db-02", "10.0.2.22"),
];

fn sample(path: &str, data: impl Into<Vec<u8>>, mode: u32, mtime: Timestamp) -> SampleFile {
    SampleFile {
        path: path.to_owned(),
        data: data.into(),
        mode,
        mtime,
    }
}

/// A random 32-character key of `[A-Za-z0-9]` (from the OS).
fn random_key() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut key = String::with_capacity(32);
    while key.len() < 32 {
        for b in os_seed()?.to_le_bytes() {
            if key.len() < 32 {
                key.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(key)
}

fn ossec_conf(node_name: &str, node_type: &str, key: &str, port: u16) -> String {
    format!(
        "<!-- Wazuh - Manager - demo configuration -->\n<ossec_config>\n  <global>\n    \
         <jsonout_output>yes</jsonout_output>\n  </global>\n</ossec_config>\n\n<ossec_config>\n  \
         <cluster>\n    <name>{CLUSTER_NAME}</name>\n    <node_name>{node_name}</node_name>\n    \
         <node_type>{node_type}</node_type>\n    <key>{key}</key>\n    <port>{port}</port>\n    \
         <bind_addr>127.0.0.1</bind_addr>\n    <nodes>\n        <node>127.0.0.1</node>\n    \
         </nodes>\n    <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>\n\
         </ossec_config>\n"
    )
}

/// The master's install tree: client.keys, rules, decoders, CDB lists, shared groups (with their
/// merged.mg), multigroups, agent-groups, and files the integrity items do not select.
fn master_tree(key: &str, port: u16) -> Vec<SampleFile> {
    let keys: String = AGENTS
        .iter()
        .map(|(id, name, _)| format!("{id} {name} any {}\n", "0a1b2c3d".repeat(8)))
        .collect();
    vec![
        sample(
            "/etc/ossec.conf",
            ossec_conf("master01", "master", key, port),
            0o640,
            OLD,
        ),
        sample("/etc/client.keys", keys, 0o640, OLD),
        sample(
            "/etc/rules/local_rules.xml",
            "<group name=\"local,syslog,\">\n  <rule id=\"100001\" level=\"5\">\n    \
             <if_sid>5716</if_sid>\n    <srcip>1.1.1.1</srcip>\n    \
             <description>sshd: authentication failed from IP 1.1.1.1.</description>\n  \
             </rule>\n</group>\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/decoders/local_decoder.xml",
            "<decoder name=\"local_decoder_example\">\n    <program_name>local_decoder_example</program_name>\n</decoder>\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/lists/audit-keys",
            "audit-wazuh-w:write\naudit-wazuh-r:read\naudit-wazuh-a:attribute\naudit-wazuh-x:execute\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/lists/security-eventchannel",
            "4624:logon\n4625:logon-failure\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/shared/default/agent.conf",
            "<agent_config>\n</agent_config>\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/shared/default/merged.mg",
            "#default\n!23 agent.conf\n<agent_config>\n</agent_config>\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/shared/webservers/agent.conf",
            "<agent_config>\n  <localfile>\n    <location>/var/log/nginx/access.log</location>\n    <log_format>apache</log_format>\n  </localfile>\n</agent_config>\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/shared/webservers/merged.mg",
            "#webservers\n!139 agent.conf\n<agent_config>\n  <localfile>\n    <location>/var/log/nginx/access.log</location>\n    <log_format>apache</log_format>\n  </localfile>\n</agent_config>\n",
            0o660,
            OLD,
        ),
        sample(
            "/var/multigroups/7a3b3c9e/merged.mg",
            "#default,webservers\n",
            0o660,
            OLD,
        ),
        sample(
            "/queue/agent-groups/001",
            "default,webservers\n",
            0o660,
            OLD,
        ),
        sample(
            "/queue/agent-groups/002",
            "default,webservers\n",
            0o660,
            OLD,
        ),
        sample("/queue/agent-groups/003", "default\n", 0o660, OLD),
        sample("/queue/agent-groups/004", "default\n", 0o660, OLD),
        // Not selected by any integrity item: stays on the master.
        sample(
            "/etc/rules/ar.conf",
            "restart-ossec0 - restart-ossec.sh - 0\n",
            0o660,
            OLD,
        ),
        sample(
            "/etc/lists/audit-keys.cdb",
            "compiled list: excluded by extension\n",
            0o660,
            OLD,
        ),
    ]
}

/// A worker's tree: its ossec.conf and the agent-info of the agents that report to it (written
/// now, so they count as recent).
fn worker_tree(index: usize, workers: usize, key: &str, port: u16) -> Vec<SampleFile> {
    let name = worker_name(index);
    let now = Timestamp::from_secs(wall_clock_now().unix_secs as i64);
    let mut files = vec![sample(
        "/etc/ossec.conf",
        ossec_conf(&name, "worker", key, port),
        0o640,
        OLD,
    )];
    for (n, (_, agent, ip)) in AGENTS.iter().enumerate() {
        if n % workers == index {
            let info = format!(
                "Linux |{agent} |4.15.0-54-generic |#58-Ubuntu SMP |x86_64 [Ubuntu|bionic: 18.04.2 LTS] - Wazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n\
                 fd756ba04d9c32c8848d4608bec41251 merged.mg\n#\"_node_name\":{name}\n"
            );
            files.push(sample(
                &format!("/queue/agent-info/{agent}-{ip}"),
                info,
                0o660,
                now,
            ));
        }
    }
    files
}

fn worker_name(index: usize) -> String {
    format!("worker{}", index + 1)
}

/// A node's events, with those already read kept until a step asks for them (steps look for
/// different events in whatever order they came).
struct Events {
    rx: wazuh_cluster_runtime::Events,
    seen: Vec<NodeEvent>,
}

impl Events {
    fn new(node: &mut Running) -> Events {
        Events {
            rx: node.events(),
            seen: Vec::new(),
        }
    }

    /// The first event (kept or new) matching `pred`, removed from the kept ones.
    async fn take(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&NodeEvent) -> bool,
    ) -> Result<NodeEvent, String> {
        if let Some(i) = self.seen.iter().position(&mut pred) {
            return Ok(self.seen.remove(i));
        }
        let found = tokio::time::timeout(STEP_TIMEOUT, async {
            loop {
                match self.rx.recv().await {
                    Ok(e) if pred(&e) => return Ok(e),
                    Ok(e) => self.seen.push(e),
                    Err(Missed::Lagged) => {}
                    Err(Missed::Closed) => {
                        return Err(format!("the node stopped while waiting for {what}"));
                    }
                }
            }
        })
        .await;
        found.map_err(|_| format!("no {what} within {STEP_TIMEOUT:?}"))?
    }

    /// Forgets the kept events.
    fn clear(&mut self) {
        self.seen.clear();
        while self.rx.try_recv().is_some() {}
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Short intervals so the whole demo takes seconds.
fn demo_intervals(config: &mut NodeConfig) {
    let i = &mut config.items.intervals;
    i.worker.sync_integrity = Duration::from_millis(500);
    i.worker.sync_files = Duration::from_millis(1000);
    i.worker.keep_alive = Duration::from_millis(1000);
    i.worker.connection_retry = Duration::from_millis(500);
    i.master.recalculate_integrity = Duration::from_millis(250);
    i.master.check_worker_lastkeepalive = Duration::from_secs(2);
}

fn check(master: &Path, worker: &Path, items: &ClusterItems) -> Result<IntegrityCheck, String> {
    let now = unix_time_at(&wall_clock_now(), Instant::now());
    compare_integrity(master, worker, items, "master01", now)
}

/// Prints how many integrity files of each worker are byte-identical to the master's; answers
/// the number of integrity files (0 without workers).
fn print_identical(
    master: &Path,
    workers: &[PathBuf],
    items: &ClusterItems,
) -> Result<usize, String> {
    let mut files = 0;
    for (i, wroot) in workers.iter().enumerate() {
        let c = check(master, wroot, items)?;
        println!(
            "    {}: {}/{} integrity files byte-identical to the master",
            worker_name(i),
            c.files - c.missing.len() - c.different.len(),
            c.files
        );
        files = c.files;
    }
    Ok(files)
}

fn print_counts(worker: &str, counts: &SyncCounts) {
    println!(
        "    {worker}: missing {}, shared {}, extra {}, extra_valid {}",
        counts.missing, counts.shared, counts.extra, counts.extra_valid
    );
}

fn integrity_of<'a>(worker: &'a str) -> impl FnMut(&NodeEvent) -> bool + 'a {
    move |e| {
        matches!(e, NodeEvent::SyncFinished { kind: SyncKind::Integrity, worker: w, counts }
            if w == worker && *counts != Default::default())
    }
}

async fn demo(args: &DemoArgs) -> Result<(), String> {
    let started = Instant::now();
    let n = usize::from(args.workers);
    let dir = tempfile::Builder::new()
        .prefix("wazuh-cluster-demo-")
        .tempdir()
        .map_err(|e| format!("creating the demo directory: {e}"))?;
    let root = dir.path().to_path_buf();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("finding a free port: {e}"))?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };
    let key = random_key()?;

    println!(
        "== Wazuh cluster demo: 1 master + {n} workers, one process, real loopback TCP, on {} ==",
        args.runtime
    );
    println!("Install trees under {}", root.display());
    let master_root = root.join("master01");
    write_tree(&master_root, &master_tree(&key, port))?;
    let worker_roots: Vec<PathBuf> = (0..n).map(|i| root.join(worker_name(i))).collect();
    for (i, wroot) in worker_roots.iter().enumerate() {
        write_tree(wroot, &worker_tree(i, n, &key, port))?;
    }

    let mut specs = Vec::new();
    for path in std::iter::once(&master_root).chain(&worker_roots) {
        let config = read_cluster_config(path, None, KeyPolicy::Required)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: cluster disabled", path.display()))?;
        let mut spec = node_spec(&config, path);
        demo_intervals(&mut spec.config);
        // Every worker connects from 127.0.0.1.
        spec.limits.max_connections_per_ip = n + 10;
        spec.limits.max_connections = spec.limits.max_connections.max(n + 10);
        specs.push(spec);
    }
    let items = specs[0].config.items.clone();
    let defaults = ClusterItems::defaults_3_9().intervals;
    let short = items.intervals;
    println!(
        "Each node reads its etc/ossec.conf (cluster '{CLUSTER_NAME}', random 32-character key, port {port})."
    );
    println!(
        "Short intervals for the demo: integrity every {}, agent-info every {}, keepalive every {}, \
         master recalculation every {}",
        secs(short.worker.sync_integrity),
        secs(short.worker.sync_files),
        secs(short.worker.keep_alive),
        secs(short.master.recalculate_integrity)
    );
    println!(
        "  (3.9.5 defaults: {}, {}, {}, {})",
        secs(defaults.worker.sync_integrity),
        secs(defaults.worker.sync_files),
        secs(defaults.worker.keep_alive),
        secs(defaults.master.recalculate_integrity)
    );

    let mut specs = specs.into_iter();
    let master_spec: NodeSpec = specs.next().ok_or("no master")?;
    let socket = master_spec.local_socket.clone();
    let mut master = args
        .runtime
        .start(master_spec)
        .await
        .map_err(|e| e.to_string())?;
    let mut mev = Events::new(&mut master);
    let addr = master.local_addr().ok_or("the master listens nowhere")?;
    println!("\n[1] master01 listening on {addr} (TCP, Fernet)");
    if let Some(socket) = &socket {
        println!("    local socket {} (mode 0660)", socket.display());
    }
    let mut workers = Vec::new();
    let mut wev = Vec::new();
    for spec in specs {
        let mut w = args.runtime.start(spec).await.map_err(|e| e.to_string())?;
        wev.push(Events::new(&mut w));
        workers.push(w);
    }
    for _ in 0..n {
        if let NodeEvent::WorkerJoined { name, addr } = mev
            .take("a worker joining", |e| {
                matches!(e, NodeEvent::WorkerJoined { .. })
            })
            .await?
        {
            println!("    {name} joined from {addr}");
        }
    }

    // The first integrity round.
    println!("\n[2] First integrity round (workers start empty); the master's comparison:");
    for (i, events) in wev.iter_mut().enumerate() {
        let name = worker_name(i);
        if let NodeEvent::SyncFinished { counts, .. } = mev
            .take("the master's first round", integrity_of(&name))
            .await?
        {
            print_counts(&name, &counts);
        }
        events
            .take("the worker's apply", integrity_of(&name))
            .await?;
    }
    print_identical(&master_root, &worker_roots, &items)?;

    // A change on the master.
    println!("\n[3] The master's rules change and a CDB list is added:");
    mev.clear();
    for events in &mut wev {
        events.clear();
    }
    let changed_at = Instant::now();
    std::fs::write(
        master_root.join("etc/rules/local_rules.xml"),
        "<group name=\"local,syslog,\">\n  <rule id=\"100001\" level=\"10\">\n    <if_sid>5716</if_sid>\n    \
         <srcip>1.1.1.1</srcip>\n    <description>sshd: authentication failed from IP 1.1.1.1 (raised to 10).</description>\n  \
         </rule>\n</group>\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        master_root.join("etc/lists/blocked-ips"),
        "1.1.1.1:\n2.2.2.2:\n",
    )
    .map_err(|e| e.to_string())?;
    println!("    edited /etc/rules/local_rules.xml, created /etc/lists/blocked-ips");
    for (i, events) in wev.iter_mut().enumerate() {
        let name = worker_name(i);
        // Usually one round carries both files; if a recalculation fell between the two writes,
        // two rounds do: add them up until the worker's tree matches.
        let mut total = SyncCounts::default();
        loop {
            let round = mev
                .take("the master's round after the change", integrity_of(&name))
                .await?;
            if let NodeEvent::SyncFinished { counts, .. } = round {
                total.missing += counts.missing;
                total.shared += counts.shared;
                total.extra += counts.extra;
                total.extra_valid += counts.extra_valid;
            }
            events
                .take("the worker's apply", integrity_of(&name))
                .await?;
            if check(&master_root, &worker_roots[i], &items)?.identical() {
                break;
            }
        }
        print_counts(&name, &total);
        println!(
            "    reached {name} {} after the edit",
            secs(changed_at.elapsed())
        );
    }
    let files = print_identical(&master_root, &worker_roots, &items)?;

    // Agent-info back to the master.
    println!("\n[4] Agent-info flows from the workers to the master:");
    // Agents are spread over the workers; a worker without one has no agent-info to send.
    for i in 0..n.min(AGENTS.len()) {
        let name = worker_name(i);
        mev.take("agent-info from a worker", |e| {
            matches!(e, NodeEvent::SyncFinished { kind: SyncKind::AgentInfo, worker, counts }
                if *worker == name && counts.missing > 0)
        })
        .await?;
    }
    let routes = master
        .inspect(|node, _| node.agent_routes())
        .await
        .ok_or("the master stopped")?;
    for (agent, worker) in &routes {
        println!("    agent {agent} reports to {worker}");
    }
    let mut received: Vec<String> = std::fs::read_dir(master_root.join("queue/agent-info"))
        .map_err(|e| format!("reading the master's queue/agent-info: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    received.sort();
    println!(
        "    master01 queue/agent-info now holds {} files: {}",
        received.len(),
        received.join(", ")
    );

    // The operator's view.
    if let Some(socket) = &socket {
        println!(
            "\n[5] wazuh-cluster control -l (through {}):",
            socket.display()
        );
        let nodes = ask(socket, GET_NODES, get_nodes_payload(None)).await?;
        print!("{}", format_nodes(&nodes).map_err(|e| e.to_string())?);
        println!("\n    wazuh-cluster control -i:");
        let health = ask(socket, GET_HEALTH, get_health_payload(None)).await?;
        print!(
            "{}",
            format_health(CLUSTER_NAME, &health, false).map_err(|e| e.to_string())?
        );
    }

    // The verdict, computed from the trees.
    let mut identical = 0;
    for wroot in &worker_roots {
        if check(&master_root, wroot, &items)?.identical() {
            identical += 1;
        }
    }
    println!("\n== Summary ==");
    println!(
        "all {identical} of {n} workers byte-identical to the master on {files} integrity files; \
         {} agents routed; {}",
        routes.len(),
        secs(started.elapsed())
    );
    if identical != n {
        return Err(format!("{} workers differ from the master", n - identical));
    }

    if args.keep {
        let kept = dir.keep();
        println!(
            "\n--keep: the cluster keeps running (trees in {}); Ctrl-C to stop.",
            kept.display()
        );
        if let Some(socket) = &socket {
            println!(
                "    try: wazuh-cluster control -l --socket {}",
                socket.display()
            );
        }
        shutdown_signal().await.map_err(|e| e.to_string())?;
    }
    for w in workers {
        w.stop().await.map_err(|e| e.to_string())?;
    }
    master.stop().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// One `control` request over the node's Unix socket (the client is blocking: off the runtime).
async fn ask(
    socket: &Path,
    command: Command,
    payload: String,
) -> Result<serde_json::Value, String> {
    let socket = socket.to_path_buf();
    let answer = tokio::task::spawn_blocking(move || {
        crate::local_client::request(&socket, command, payload.as_bytes(), Some(STEP_TIMEOUT))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&answer).map_err(|e| format!("the node's answer: {e}"))
}
