//! Shared pieces of the real-socket tests: trees on disk from the simulator's sample cluster,
//! fast intervals, starting nodes on loopback, waiting for events.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wazuh_cluster_protocol::frame::{Command, DEFAULT_MAX_PAYLOAD, HEADER_LEN, encode_frame};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sim::fixtures::master_tree;
use wazuh_cluster_sim::tap::literal_command;
use wazuh_cluster_sync::roles::{NodeConfig, NodeEvent, NodeType};
use wazuh_cluster_tokio::trees::{IntegrityCheck, SampleFile, compare_integrity, write_tree};
use wazuh_cluster_tokio::{NodeSpec, wall_clock_now};

pub use wazuh_cluster_runtime::{Events, Missed, Rt, Running};

/// The cluster key of these tests (32 of `[A-Za-z0-9_]`).
pub const KEY: &str = "tokioadaptertestkey0123456789abc";

/// Longest a test waits for one thing to happen on loopback.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Intervals short enough for a test to see several rounds in a second or two.
pub fn fast(config: &mut NodeConfig) {
    let i = &mut config.items.intervals;
    i.worker.sync_integrity = Duration::from_millis(400);
    i.worker.sync_files = Duration::from_millis(600);
    i.worker.keep_alive = Duration::from_millis(500);
    i.worker.connection_retry = Duration::from_millis(200);
    i.master.recalculate_integrity = Duration::from_millis(200);
    i.master.check_worker_lastkeepalive = Duration::from_secs(1);
    i.master.max_allowed_time_without_keepalive = Duration::from_secs(10);
}

pub fn config(node_type: NodeType, name: &str, key: &str) -> NodeConfig {
    let key = ClusterKey::new(key).unwrap();
    let mut c = NodeConfig::new(node_type, name, Some(key), wall_clock_now());
    fast(&mut c);
    c
}

/// The simulator's sample master tree (every master integrity item, files no item selects).
pub fn master_files() -> Vec<SampleFile> {
    master_tree()
        .into_iter()
        .map(|f| SampleFile {
            path: f.path,
            data: f.data,
            mode: f.mode,
            mtime: f.mtime,
        })
        .collect()
}

/// A fresh directory `name` under `dir`.
pub fn tree(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    root
}

pub fn master_root(dir: &Path) -> PathBuf {
    let root = tree(dir, "master");
    write_tree(&root, &master_files()).unwrap();
    root
}

pub async fn start_master_at(
    rt: Rt,
    root: &Path,
    listen: &str,
    tune: impl FnOnce(&mut NodeSpec),
) -> Running {
    let mut spec = NodeSpec::new(config(NodeType::Master, "master01", KEY), root);
    spec.listen = Some(listen.to_owned());
    tune(&mut spec);
    rt.start(spec).await.unwrap()
}

pub async fn start_master(rt: Rt, root: &Path) -> Running {
    start_master_at(rt, root, "127.0.0.1:0", |_| {}).await
}

pub async fn start_worker_with(
    rt: Rt,
    root: &Path,
    name: &str,
    master: &str,
    tune: impl FnOnce(&mut NodeConfig),
) -> Running {
    let mut c = config(NodeType::Worker, name, KEY);
    c.master_addr = master.to_owned();
    tune(&mut c);
    rt.start(NodeSpec::new(c, root)).await.unwrap()
}

pub async fn start_worker(rt: Rt, root: &Path, name: &str, master: &str) -> Running {
    start_worker_with(rt, root, name, master, |_| {}).await
}

/// The next event matching `pred` within [`PATIENCE`].
pub async fn wait_event<F>(rx: &mut Events, what: &str, mut pred: F) -> NodeEvent
where
    F: FnMut(&NodeEvent) -> bool,
{
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(Missed::Lagged) => {}
                Err(Missed::Closed) => panic!("node stopped while waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
}

/// Compares a worker tree with the master's integrity files.
pub fn check(master: &Path, worker: &Path) -> IntegrityCheck {
    let c = config(NodeType::Master, "master01", KEY);
    let now =
        wazuh_cluster_tokio::unix_time_at(&c.connection.wall_clock, std::time::Instant::now());
    compare_integrity(master, worker, &c.items, "master01", now).unwrap()
}

/// One frame off a socket: counter, the command field as written, payload (a Fernet token on
/// TCP). The header is read by hand because the literal field (`ok ` vs `ok`) is checked.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<(u32, String, Vec<u8>)> {
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header).await?;
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = word(4);
    assert!(
        len <= DEFAULT_MAX_PAYLOAD,
        "declared payload of {len} bytes"
    );
    let mut payload = vec![0; len as usize];
    r.read_exact(&mut payload).await?;
    Ok((word(0), literal_command(&header[8..]), payload))
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    counter: u32,
    literal: &str,
    payload: &[u8],
) {
    let command = Command::new(Profile::V3_9, literal.as_bytes()).unwrap();
    let mut out = bytes::BytesMut::new();
    encode_frame(Profile::V3_9, counter, &command, payload, &mut out).unwrap();
    w.write_all(&out).await.unwrap();
}

/// The receiver's view of a literal command field.
pub fn name_of(literal: &str) -> String {
    literal.split(' ').next().unwrap_or_default().to_owned()
}

/// Instantiates each named `async fn NAME(rt: Rt)` of the enclosing module as two tests,
/// `on_tokio::NAME` and `on_mio::NAME`.
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(::wazuh_cluster_runtime::Rt::Tokio).await
                }
            )*
        }
        mod on_mio {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(::wazuh_cluster_runtime::Rt::Mio).await
                }
            )*
        }
    };
}
pub(crate) use on_both_runtimes;
