//! Ready-made scenario pieces: a small master tree covering every master integrity item, the
//! intervals of the recorded upstream session, and a cluster of one master and N workers.
//!
//! Why in the library rather than in each test: the tests, the benches and the seed sweeps of a
//! later issue start from the same cluster, so they share one definition.

use std::time::Duration;

use crate::cluster::{Cluster, ClusterBuilder};
use crate::sim::{SetupError, SimConfig};
use crate::tree::{TreeFile, storage_from};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::NodeConfig;

/// mtime of every file of the base trees (2019-07-01, as the recorded trees).
pub const OLD: Timestamp = Timestamp::from_secs(1_562_000_000);

/// Unix time at virtual zero in these tests (`SimConfig::default`).
pub const START: i64 = 1_800_000_000;

/// The master's `client.keys`: agents 001, 002 and 004.
pub const CLIENT_KEYS: &str = "001 agent-one any 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
002 agent-two any 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
004 agent-four any 2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";

/// The master's tree: files of every master item, plus files no item selects.
pub fn master_tree() -> Vec<TreeFile> {
    vec![
        TreeFile {
            mode: 0o640,
            ..TreeFile::new("/etc/client.keys", CLIENT_KEYS, OLD)
        },
        TreeFile::new(
            "/etc/rules/local_rules.xml",
            "<group name=\"local\"><rule id=\"100001\"/></group>\n",
            OLD,
        ),
        TreeFile::new("/etc/rules/ar.conf", "excluded by name\n", OLD),
        TreeFile::new(
            "/etc/decoders/local_decoder.xml",
            "<decoder name=\"local\"/>\n",
            OLD,
        ),
        TreeFile::new(
            "/etc/lists/audit-keys",
            "audit-wazuh-w:write\naudit-wazuh-r:read\n",
            OLD,
        ),
        TreeFile::new("/etc/lists/amazon/aws-eventnames", "ConsoleLogin:\n", OLD),
        TreeFile::new("/etc/lists/ignored.swp", "excluded by extension\n", OLD),
        TreeFile::new(
            "/etc/shared/default/merged.mg",
            "#default\n!0 ar.conf\n",
            OLD,
        ),
        TreeFile::new("/etc/shared/default/agent.conf", "<agent_config/>\n", OLD),
        TreeFile::new("/etc/shared/group2/merged.mg", "#group2\n", OLD),
        TreeFile::new(
            "/var/multigroups/e4f9f5fa/merged.mg",
            "#default,group2\n",
            OLD,
        ),
        TreeFile::new("/queue/agent-groups/001", "default\n", OLD),
        TreeFile::new("/queue/agent-groups/002", "default,group2\n", OLD),
        TreeFile::new("/etc/ossec.conf", "<ossec_config/>\n", OLD),
    ]
}

/// [`master_tree`] with `keys` as its `client.keys` (mode 0640), for clusters with their own
/// agents.
pub fn master_tree_with_keys(keys: String) -> Vec<TreeFile> {
    let mut tree: Vec<TreeFile> = master_tree()
        .into_iter()
        .filter(|f| f.path != "/etc/client.keys")
        .collect();
    tree.push(TreeFile {
        mode: 0o640,
        ..TreeFile::new("/etc/client.keys", keys, OLD)
    });
    tree
}

/// Paths of [`master_tree`] the master's integrity items select (what workers must mirror).
pub const MASTER_OWNED: [&str; 10] = [
    "/etc/client.keys",
    "/etc/decoders/local_decoder.xml",
    "/etc/lists/amazon/aws-eventnames",
    "/etc/lists/audit-keys",
    "/etc/rules/local_rules.xml",
    "/etc/shared/default/merged.mg",
    "/etc/shared/group2/merged.mg",
    "/queue/agent-groups/001",
    "/queue/agent-groups/002",
    "/var/multigroups/e4f9f5fa/merged.mg",
];

/// Intervals of the recorded session (README of vectors/v3.9/session): fast rounds.
pub fn recorded_intervals(c: &mut NodeConfig) {
    let i = &mut c.items.intervals;
    i.worker.sync_integrity = Duration::from_secs(3);
    i.worker.sync_files = Duration::from_secs(4);
    i.worker.keep_alive = Duration::from_secs(2);
    i.worker.connection_retry = Duration::from_secs(2);
    i.master.recalculate_integrity = Duration::from_secs(1);
    i.master.check_worker_lastkeepalive = Duration::from_secs(5);
    i.master.max_allowed_time_without_keepalive = Duration::from_secs(30);
}

/// One master `master01` over [`master_tree`] and `workers` empty workers named `worker1`,
/// `worker2`, ..., every node configured with `tune`.
///
/// # Errors
/// See [`SetupError`] (a bad key in `config`).
pub fn cluster(
    config: SimConfig,
    workers: usize,
    tune: fn(&mut NodeConfig),
) -> Result<Cluster, SetupError> {
    let master = storage_from(master_tree()).map_err(|e| SetupError::Tree(e.to_string()))?;
    let mut b = ClusterBuilder::new(config).master("master01", master);
    for i in 1..=workers {
        b = b.worker(&format!("worker{i}"), MemoryStorage::new());
    }
    b.configure(tune).build()
}
