//! Side-by-side figures of a whole sync between real daemon processes (not a test: timings never
//! decide pass/fail). Any daemon that reads an install's `etc/ossec.conf` and
//! `framework/wazuh/cluster/cluster.json` can be measured, ours or upstream's, so the same figures
//! can be taken on any machine and set next to each other.
//!
//! ```sh
//! cargo build --release -p wazuh-cluster --examples --bins
//! # ours, 1,000 files of 4 KiB missing on an empty worker, median of 5 runs:
//! target/release/examples/sync_figures --workload 1000x4k --runs 5
//! # every workload of the table:
//! target/release/examples/sync_figures --workload all
//! # another daemon: {root} is the install root of the node to start, {exe} our binary
//! target/release/examples/sync_figures --daemon 'sh upstream-clusterd.sh {root}'
//! ```
//!
//! Each run makes a master install (its files under `etc/rules/`, dated an hour back and written
//! to the disk (`sync -f`) unless `--fresh-files`) and empty worker installs in a scratch folder, writes their `ossec.conf` and a `cluster.json` with the same intervals, starts
//! the master, waits for its port, then starts the workers. The workers dial a relay of this
//! program rather than the master: the relay copies bytes both ways and reads the 20-byte frame
//! headers of the worker's side (the command is in clear in the header), so it knows to the
//! microsecond when each worker asked for its first integrity sync (`sync_i_w_m_p`), whatever the
//! daemon. A file is in place when its name, size and bytes are the master's; the time it was put
//! in place is its `ctime` (set by the rename that makes it visible, on ext4 to the kernel tick).
//!
//! Printed per run, for each workload:
//! - `request→last`: the worker's first `sync_i_w_m_p` to the last file in place (the slowest
//!   worker when there are several);
//! - `apply`: first file in place to the last (the apply alone);
//! - CPU time (user + system, the process and its children) and peak RSS (`VmHWM`) of the master
//!   and of the worker (the largest of the workers), read from `/proc` once every worker holds
//!   every file.
//!
//! On ext4 *without a journal* (this machine's `/`), file creation slows down near recent
//! deletions: the inode allocator skips every free inode of the group deleted less than a minute
//! ago (`recently_deleted` in `perf`), so a run's installs, made in the group where the previous
//! run's trees (and other builds' files) were just removed, can pay 0.5 ms per created file
//! instead of 15 µs, on both the master and the worker. For comparable runs there, give
//! `--scratch` a directory marked `chattr +T` (each run's folder is then placed in a group of
//! its own).
//!
//! The machine's own limits to quote next to these: `openssl speed -evp md5`, `-evp aes-128-cbc`,
//! and the disk's sequential write speed
//! (`dd if=/dev/zero of=FILE bs=1M count=500 conv=fdatasync`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use wazuh_cluster_sync::config::cluster_json::CLUSTER_JSON_3_9_5;

#[path = "support/dial.rs"]
mod dial;

const KEY: &str = "syncfiguresclusterkey0123456789a";
/// The command a worker sends to ask the master for an integrity sync (3.9.5).
const INTEGRITY_REQUEST: &[u8] = b"sync_i_w_m_p";
/// Longest a run may take before it is called failed.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// One row of the table: `workers` empty workers each missing `files` files of `size` bytes.
#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    workers: usize,
    files: usize,
    size: usize,
}

/// Files in a run from which its installs are removed only at the end (see `main`).
const MANY_FILES: usize = 100;

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "1000x4k",
        workers: 1,
        files: 1000,
        size: 4096,
    },
    Workload {
        name: "10000x4k",
        workers: 1,
        files: 10_000,
        size: 4096,
    },
    Workload {
        name: "1x500m",
        workers: 1,
        files: 1,
        size: 500 << 20,
    },
    Workload {
        name: "25w-1000x4k",
        workers: 25,
        files: 1000,
        size: 4096,
    },
    // Four incompressible files of 250 MiB: one package of just under 1 GiB (the cap is 1 GiB).
    Workload {
        name: "1g-package",
        workers: 1,
        files: 4,
        size: 250 << 20,
    },
];

struct Options {
    workloads: Vec<Workload>,
    runs: usize,
    daemon: String,
    scratch: PathBuf,
    keep: bool,
    frames: bool,
    fresh: bool,
}

const USAGE: &str = "usage: sync_figures [--workload NAME|all] [--runs N] [--daemon TEMPLATE] \
    [--scratch DIR] [--keep] [--frames] [--fresh-files]\n  workloads: 1000x4k (default), 10000x4k, 1x500m, 25w-1000x4k, \
    1g-package, all\n  TEMPLATE: the command starting one node in the foreground; {root} is its \
    install root, {exe} the wazuh-cluster binary beside this example (default: \
    '{exe} clusterd -f -r --wazuh-path {root}')\n  --keep: keep the run's installs (their logs)\n  \
    --frames: print the first worker link's frames from its first integrity request on\n  \
    --fresh-files: leave the master's files dated when they were written, just before the run \
    (by default they are dated an hour back and written to the disk, as files in place before a \
    worker asks)";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        workloads: vec![WORKLOADS[0]],
        runs: 3,
        daemon: "{exe} clusterd -f -r --wazuh-path {root}".to_owned(),
        scratch: std::env::temp_dir(),
        keep: false,
        frames: false,
        fresh: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--workload" => {
                let name = value("--workload")?;
                options.workloads = if name == "all" {
                    WORKLOADS.to_vec()
                } else {
                    vec![
                        *WORKLOADS
                            .iter()
                            .find(|w| w.name == name)
                            .ok_or(format!("unknown workload {name}"))?,
                    ]
                };
            }
            "--runs" => {
                options.runs = value("--runs")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--daemon" => options.daemon = value("--daemon")?,
            "--scratch" => options.scratch = PathBuf::from(value("--scratch")?),
            "--keep" => options.keep = true,
            "--frames" => options.frames = true,
            "--fresh-files" => options.fresh = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("wazuh-cluster")))
        .filter(|p| p.is_file());
    if options.daemon.contains("{exe}") && exe.is_none() {
        eprintln!(
            "no wazuh-cluster binary beside this example: build it first \
             (cargo build --release -p wazuh-cluster --bins --examples)"
        );
        std::process::exit(2);
    }
    let exe = exe.unwrap_or_default();
    let ticks = clock_ticks();
    println!("daemon: {}", options.daemon);
    // The installs of runs of many files are removed at the end, not after the run: on ext4
    // without a journal, files created in a block group that saw thousands of deletions less
    // than 60 s before cost ~30 times more (see the `wazuh-cluster-fs` docs), which made one run
    // of two pay for the previous one's clean-up (10,000 x 4 KiB: 1.1 s or 4.8 s). Those of a
    // few large files go at once: on this VM, page-cache pages freed and soon reused are written
    // ~4 times faster than pages the guest never touched, and keeping every run's GiB made the
    // later 500 MiB runs 20 % slower (3.6 s against 2.9 s).
    let mut installs = Vec::new();
    for workload in &options.workloads {
        let mut figures = Vec::new();
        for run in 1..=options.runs {
            match measure(workload, &options, &exe, ticks, &mut installs) {
                Ok(f) => {
                    println!("{} run {run}/{}: {f}", workload.name, options.runs);
                    figures.push(f);
                }
                Err(e) => {
                    eprintln!("{} run {run}: FAILED: {e}", workload.name);
                    std::process::exit(1);
                }
            }
        }
        println!(
            "{} median of {}: {}",
            workload.name,
            figures.len(),
            Figures::median(&figures)
        );
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    request_to_last: Duration,
    apply: Duration,
    master_cpu: Duration,
    master_peak_kib: u64,
    worker_cpu: Duration,
    worker_peak_kib: u64,
}

impl Figures {
    fn median(all: &[Figures]) -> Figures {
        fn mid<T: Ord + Copy>(mut v: Vec<T>) -> T {
            v.sort();
            v[v.len() / 2]
        }
        Figures {
            request_to_last: mid(all.iter().map(|f| f.request_to_last).collect()),
            apply: mid(all.iter().map(|f| f.apply).collect()),
            master_cpu: mid(all.iter().map(|f| f.master_cpu).collect()),
            master_peak_kib: mid(all.iter().map(|f| f.master_peak_kib).collect()),
            worker_cpu: mid(all.iter().map(|f| f.worker_cpu).collect()),
            worker_peak_kib: mid(all.iter().map(|f| f.worker_peak_kib).collect()),
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request→last {:.0} ms, apply {:.0} ms; master cpu {:.2} s, peak RSS {:.1} MB; \
             worker cpu {:.2} s, peak RSS {:.1} MB",
            self.request_to_last.as_secs_f64() * 1e3,
            self.apply.as_secs_f64() * 1e3,
            self.master_cpu.as_secs_f64(),
            self.master_peak_kib as f64 / 1024.0,
            self.worker_cpu.as_secs_f64(),
            self.worker_peak_kib as f64 / 1024.0,
        )
    }
}

/// One run of `workload`: installs, processes, relay, wait, figures, clean-up.
fn measure(
    workload: &Workload,
    options: &Options,
    exe: &Path,
    ticks: u64,
    installs: &mut Vec<tempfile::TempDir>,
) -> Result<Figures, String> {
    let dir = tempfile::Builder::new()
        .prefix("sync-figures.")
        .tempdir_in(&options.scratch)
        .map_err(|e| format!("scratch folder: {e}"))?;
    let master_root = dir.path().join("master");
    std::fs::create_dir_all(master_root.join("etc/rules")).map_err(|e| e.to_string())?;
    let expected = write_master_files(&master_root, workload, !options.fresh)?;
    if !options.fresh {
        // Files in place for an hour are on the disk, not waiting in the page cache for the
        // first barrier of a node to write them back (a `syncfs` would take them along).
        write_back(&master_root)?;
    }
    // The port is chosen just before the master binds it: a port found free before seconds of
    // writing files may be taken meanwhile (a run of 1 x 500 MiB once ended with the master
    // exiting at start, its log not kept).
    let master_port = free_port()?;
    let relay = Relay::start(master_port, options.frames)?;
    make_install(&master_root, "master01", "master", master_port)?;
    let mut nodes = Nodes::default();
    nodes.start(&options.daemon, exe, &master_root, "master")?;
    wait_for_port(master_port, &mut nodes)?;
    let mut worker_roots = Vec::new();
    for i in 1..=workload.workers {
        let root = dir.path().join(format!("worker{i}"));
        make_install(&root, &format!("worker{i}"), "worker", relay.port)?;
        worker_roots.push(root);
    }
    for (i, root) in worker_roots.iter().enumerate() {
        nodes.start(&options.daemon, exe, root, &format!("worker{}", i + 1))?;
    }
    let started = Instant::now();
    let mut placed = Vec::new();
    for root in &worker_roots {
        loop {
            nodes.check_alive()?;
            if let Some(times) = files_in_place(root, &expected)? {
                placed.push(times);
                break;
            }
            if started.elapsed() > RUN_LIMIT {
                return Err(format!(
                    "{} did not converge in {RUN_LIMIT:?}",
                    root.display()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    let (master_cpu, master_peak_kib) = nodes.usage(0, ticks);
    let (mut worker_cpu, mut worker_peak_kib) = (Duration::ZERO, 0);
    for i in 1..=workload.workers {
        let (cpu, peak) = nodes.usage(i, ticks);
        worker_cpu = worker_cpu.max(cpu);
        worker_peak_kib = worker_peak_kib.max(peak);
    }
    nodes.stop();
    let requests = relay.first_requests();
    if requests.len() < workload.workers {
        return Err(format!(
            "the relay saw {} integrity requests for {} workers",
            requests.len(),
            workload.workers
        ));
    }
    let first_request = requests.iter().min().copied().unwrap_or(UNIX_EPOCH);
    let first_placed = placed.iter().map(|p| p.0).min().unwrap_or(UNIX_EPOCH);
    let last_placed = placed.iter().map(|p| p.1).max().unwrap_or(UNIX_EPOCH);
    if options.frames {
        print_timeline(&relay.frames(), first_request, first_placed, last_placed);
    }
    if options.keep {
        println!("kept {}", dir.keep().display());
    } else if workload.files * workload.workers >= MANY_FILES {
        installs.push(dir);
    }
    Ok(Figures {
        request_to_last: last_placed
            .duration_since(first_request)
            .unwrap_or_default(),
        apply: last_placed.duration_since(first_placed).unwrap_or_default(),
        master_cpu,
        master_peak_kib,
        worker_cpu,
        worker_peak_kib,
    })
}

/// The frames of the first worker link from `start` on, in milliseconds after it, runs of the
/// same command folded into one line; then when the first and last files were placed.
fn print_timeline(frames: &[FrameSeen], start: SystemTime, first: SystemTime, last: SystemTime) {
    let ms = |t: SystemTime| match t.duration_since(start) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    };
    let mut lines: Vec<(f64, f64, bool, String, u64, usize)> = Vec::new();
    for f in frames
        .iter()
        .filter(|f| f.link == 0 && f.at >= start && f.at <= last)
    {
        match lines.last_mut() {
            Some(l) if l.2 == f.from_worker && l.3 == f.command => {
                l.1 = ms(f.at);
                l.4 += u64::from(f.length);
                l.5 += 1;
            }
            _ => lines.push((
                ms(f.at),
                ms(f.at),
                f.from_worker,
                f.command.clone(),
                u64::from(f.length),
                1,
            )),
        }
    }
    for (from, to, from_worker, command, bytes, count) in lines {
        let way = if from_worker {
            "worker → master"
        } else {
            "master → worker"
        };
        println!("  {from:8.1} .. {to:8.1} ms  {way}  {command:<12} ×{count} ({bytes} bytes)");
    }
    println!(
        "  {:8.1} ms  first file in place; {:.1} ms last",
        ms(first),
        ms(last)
    );
}

/// The node processes of a run, master first; killed when dropped.
#[derive(Default)]
struct Nodes {
    children: Vec<(String, Child)>,
}

impl Nodes {
    fn start(&mut self, template: &str, exe: &Path, root: &Path, name: &str) -> Result<(), String> {
        let command = template
            .replace("{exe}", &exe.to_string_lossy())
            .replace("{root}", &root.to_string_lossy());
        let mut words = command.split_whitespace();
        let program = words.next().ok_or("empty --daemon template")?;
        let log = std::fs::File::create(root.join("daemon.out")).map_err(|e| e.to_string())?;
        let child = Command::new(program)
            .args(words)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {name} ({command}): {e}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// An error naming the first node that exited.
    fn check_alive(&mut self) -> Result<(), String> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited ({status}); see its daemon.out"));
            }
        }
        Ok(())
    }

    /// CPU time and peak RSS (KiB) of node `index` and its descendants.
    fn usage(&self, index: usize, ticks: u64) -> (Duration, u64) {
        let pid = self.children[index].1.id();
        let mut cpu_ticks = 0;
        let mut peak = 0;
        for pid in process_tree(pid) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name (which may hold spaces): state is field 3, utime 14.
            let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            cpu_ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
            peak += status_kib(pid, "VmHWM:");
        }
        (
            Duration::from_secs_f64(cpu_ticks as f64 / ticks as f64),
            peak,
        )
    }

    /// SIGTERM to every node (a daemon stops gracefully, a profiler wrapping it writes its
    /// data), SIGKILL to those still running 10 s later.
    fn stop(&mut self) {
        for (_, child) in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `pid` and every process below it.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return all;
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        all.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    all
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for_port(port: u16, nodes: &mut Nodes) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        nodes.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("the master did not listen on {port} within 60 s"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    // The probe connection above is one the master refuses or times out; give it its first
    // integrity calculation before the workers come (both daemons compute it at start).
    thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// An install tree for one node: the folders the daemons expect, `etc/ossec.conf` and the shared
/// `cluster.json` (3.9.5's items, intervals short enough for quick runs).
fn make_install(root: &Path, name: &str, node_type: &str, port: u16) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", root.display());
    for dir in [
        "bin",
        "etc/rules",
        "etc/shared/default",
        "var/run",
        "var/db",
        "logs/cluster",
        "queue/cluster",
        "queue/agent-info",
        "queue/agent-groups",
        "tmp",
        "framework/wazuh/cluster",
    ] {
        std::fs::create_dir_all(root.join(dir)).map_err(io)?;
    }
    std::fs::write(root.join("etc/client.keys"), b"").map_err(io)?;
    let conf = format!(
        "<ossec_config>\n  <cluster>\n    <name>figures</name>\n    <node_name>{name}</node_name>\n    \
         <node_type>{node_type}</node_type>\n    <key>{KEY}</key>\n    <port>{port}</port>\n    \
         <bind_addr>127.0.0.1</bind_addr>\n    <nodes><node>127.0.0.1</node></nodes>\n    \
         <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>\n</ossec_config>\n"
    );
    std::fs::write(root.join("etc/ossec.conf"), conf).map_err(io)?;
    let mut cluster_json: serde_json::Value =
        serde_json::from_str(CLUSTER_JSON_3_9_5).map_err(|e| e.to_string())?;
    let intervals = &mut cluster_json["intervals"];
    intervals["worker"]["sync_integrity"] = 2.into();
    intervals["worker"]["sync_files"] = 10.into();
    intervals["worker"]["connection_retry"] = 1.into();
    intervals["master"]["recalculate_integrity"] = 1.into();
    std::fs::write(
        root.join("framework/wazuh/cluster/cluster.json"),
        serde_json::to_vec_pretty(&cluster_json).map_err(|e| e.to_string())?,
    )
    .map_err(io)
}

/// A file the workers must end up with: its name under `etc/rules/`, size and MD5.
struct Expected {
    name: String,
    size: u64,
    md5: [u8; 16],
}

/// The master's files, incompressible (an xorshift stream per file), so packages have their
/// full size.
/// Writes the master's files; `aged`: dated an hour back. Why: a file modified less than the
/// scanner's racy window (2 s) before a scan is hashed again by the next one, so files written
/// just before the master starts were hashed twice while the first worker's round ran (a 500 MiB
/// file: about 1 s of MD5 inside the measured window), which is the harness's doing, not the
/// sync's.
fn write_master_files(
    root: &Path,
    workload: &Workload,
    aged: bool,
) -> Result<Vec<Expected>, String> {
    let mut expected = Vec::new();
    for i in 0..workload.files {
        let name = format!("figures-{i:05}.xml");
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
        let mut hasher = Md5::new();
        let mut file =
            std::fs::File::create(root.join("etc/rules").join(&name)).map_err(|e| e.to_string())?;
        let mut left = workload.size;
        let mut block = vec![0u8; 1 << 20];
        while left > 0 {
            let n = left.min(block.len());
            for chunk in block[..n].chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            hasher.update(&block[..n]);
            file.write_all(&block[..n]).map_err(|e| e.to_string())?;
            left -= n;
        }
        if aged {
            let hour_ago = SystemTime::now() - Duration::from_secs(3600);
            file.set_modified(hour_ago).map_err(|e| e.to_string())?;
        }
        expected.push(Expected {
            name,
            size: workload.size as u64,
            md5: hasher.finalize().into(),
        });
    }
    Ok(expected)
}

/// Writes back every unwritten page of the file system holding `root` (`sync -f`, a `syncfs`).
fn write_back(root: &Path) -> Result<(), String> {
    let status = Command::new("sync")
        .arg("-f")
        .arg(root)
        .status()
        .map_err(|e| format!("sync -f {}: {e}", root.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("sync -f {}: {status}", root.display()))
    }
}

/// `Some((first, last))` placing times when every expected file is in `root` with its bytes.
fn files_in_place(
    root: &Path,
    expected: &[Expected],
) -> Result<Option<(SystemTime, SystemTime)>, String> {
    use std::os::unix::fs::MetadataExt;
    let dir = root.join("etc/rules");
    let mut times = Vec::with_capacity(expected.len());
    // Sizes first (cheap), bytes only once every size is right.
    for file in expected {
        match std::fs::metadata(dir.join(&file.name)) {
            Ok(m) if m.len() == file.size => times.push(
                UNIX_EPOCH
                    + Duration::new(
                        u64::try_from(m.ctime()).unwrap_or(0),
                        u32::try_from(m.ctime_nsec()).unwrap_or(0),
                    ),
            ),
            _ => return Ok(None),
        }
    }
    for file in expected {
        let mut hasher = Md5::new();
        let mut f = std::fs::File::open(dir.join(&file.name)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if <[u8; 16]>::from(hasher.finalize()) != file.md5 {
            return Ok(None);
        }
    }
    let first = times.iter().min().copied().unwrap_or(UNIX_EPOCH);
    let last = times.iter().max().copied().unwrap_or(UNIX_EPOCH);
    Ok(Some((first, last)))
}

/// A frame header the relay saw: when, on which worker link, which way, the command and the
/// payload length.
#[derive(Debug, Clone)]
struct FrameSeen {
    at: SystemTime,
    link: usize,
    from_worker: bool,
    command: String,
    length: u32,
}

/// At most this many headers are kept per run (a flood of frames must not grow the relay).
const MAX_FRAMES_SEEN: usize = 200_000;

/// A TCP relay from the workers to the master that notes every frame header going through.
struct Relay {
    port: u16,
    frames: Arc<Mutex<Vec<FrameSeen>>>,
}

impl Relay {
    /// With `master_frames`, the master's frames to the workers are read and noted like the
    /// workers' (for `--frames`); without, they are spliced through a pipe (see
    /// [`splice_pump`]).
    fn start(master_port: u16, master_frames: bool) -> Result<Relay, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&frames);
        let master = SocketAddr::from((Ipv4Addr::LOCALHOST, master_port));
        // The accept thread lives as long as the process: one listener per run, a few per run.
        thread::spawn(move || {
            for (link, worker) in listener.incoming().flatten().enumerate() {
                let Ok(upstream) = dial_from_own_address(master, link) else {
                    continue;
                };
                let _ = worker.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (Ok(worker_read), Ok(upstream_read)) =
                    (worker.try_clone(), upstream.try_clone())
                else {
                    continue;
                };
                let (up, down) = (Arc::clone(&seen), Arc::clone(&seen));
                thread::spawn(move || pump(worker_read, upstream, &up, link, true));
                if master_frames {
                    thread::spawn(move || pump(upstream_read, worker, &down, link, false));
                } else {
                    thread::spawn(move || splice_pump(upstream_read, worker));
                }
            }
        });
        Ok(Relay { port, frames })
    }

    fn frames(&self) -> Vec<FrameSeen> {
        let mut frames = self.frames.lock().map(|v| v.clone()).unwrap_or_default();
        frames.sort_by_key(|f| f.at);
        frames
    }

    /// The first integrity request of each worker link.
    fn first_requests(&self) -> Vec<SystemTime> {
        let mut first = std::collections::BTreeMap::new();
        for f in self.frames() {
            if f.from_worker && f.command.as_bytes() == INTEGRITY_REQUEST {
                first.entry(f.link).or_insert(f.at);
            }
        }
        first.into_values().collect()
    }
}

/// Connects to `master` from 127.0.0.(2 + n % 250): each worker link comes from its own address,
/// as workers on their own hosts would (a master limits connections per address).
fn dial_from_own_address(master: SocketAddr, n: usize) -> std::io::Result<TcpStream> {
    dial::connect_from(u8::try_from(2 + n % 250).unwrap_or(2), master)
}

/// Copies `from` to `to` through a pipe with `splice`, the bytes never in this process: the
/// master's packages cross the relay without two more copies on the machine's cores, which the
/// nodes measured share (a 500 MiB file is 667 MB of tokens; copied in user space, it cost the
/// relay about 0.27 s of CPU per run on the machine of 3c8c4ac).
fn splice_pump(from: TcpStream, to: TcpStream) {
    use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, pipe, splice};
    let Ok((pipe_out, pipe_in)) = pipe() else {
        return;
    };
    // A larger pipe moves more per call; the default (64 KiB) works too.
    let _ = fcntl_setpipe_size(&pipe_in, 1 << 20);
    'copy: while let Ok(mut n) = splice(&from, None, &pipe_in, None, 1 << 20, SpliceFlags::MOVE) {
        if n == 0 {
            break;
        }
        while n > 0 {
            match splice(&pipe_out, None, &to, None, n, SpliceFlags::MOVE) {
                Ok(0) | Err(_) => break 'copy,
                Ok(moved) => n -= moved,
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Copies `from` to `to`, following the frame headers (u32 counter, u32 length, 12-byte command)
/// to note each frame as it starts.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    seen: &Mutex<Vec<FrameSeen>>,
    link: usize,
    from_worker: bool,
) {
    let mut buf = vec![0u8; 256 << 10];
    let mut header = Vec::with_capacity(20);
    let mut payload_left: u64 = 0;
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let at = SystemTime::now();
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if payload_left > 0 {
                let skip = rest
                    .len()
                    .min(usize::try_from(payload_left).unwrap_or(usize::MAX));
                rest = &rest[skip..];
                payload_left -= skip as u64;
                continue;
            }
            let take = rest.len().min(20 - header.len());
            header.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if header.len() == 20 {
                let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                payload_left = u64::from(length);
                let command = String::from_utf8_lossy(&header[8..20])
                    .trim_end_matches(['\0', ' ', '-'])
                    .to_owned();
                if let Ok(mut v) = seen.lock()
                    && v.len() < MAX_FRAMES_SEEN
                {
                    v.push(FrameSeen {
                        at,
                        link,
                        from_worker,
                        command,
                        length,
                    });
                }
                header.clear();
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
