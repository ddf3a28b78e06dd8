//! Shared set-up for the removed-agents and crash tests: a worker tree with the files 3.9.5's
//! `remove_bulk_agents` looks for, of agents that go, stay or were already disabled, and a master
//! package carrying a new `etc/client.keys`.

use std::io::Cursor;

use wazuh_cluster_sync::integrity::apply::{
    ApplyError, ApplyLimits, ApplyReport, apply_master_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_testkit::install_path as p;

pub const T: Timestamp = Timestamp::from_secs(1_562_000_000);

/// The installed client.keys: 001 and 004 are registered, 003 was disabled earlier, 002 is
/// registered with an address.
pub const OLD_KEYS: &[u8] = b"001 web-01 any 1111\n\
002 db-01 10.0.0.2 2222\n\
003 !old-disabled 10.0.0.3 3333\n\
004 mail any 4444\n";

/// The master's new client.keys: 002 disabled by `manage_agents -r`, 004 gone, 006 added.
pub const NEW_KEYS: &[u8] = b"001 web-01 any 1111\n\
002 !db-01 10.0.0.2 2222\n\
003 !old-disabled 10.0.0.3 3333\n\
006 new any 6666\n";

/// Files of the worker tree besides `etc/client.keys`.
pub const AGENT_FILES: &[&str] = &[
    "/queue/agent-info/db-01-10.0.0.2",
    "/queue/agent-info/mail-10.0.0.4",
    "/queue/agent-info/mail-relay-10.0.0.9",
    "/queue/agent-info/web-01-10.0.0.1",
    "/queue/agent-info/old-disabled-10.0.0.3",
    "/queue/rootcheck/(db-01) 10.0.0.2->rootcheck",
    "/queue/rootcheck/(mail) any->rootcheck",
    "/queue/rootcheck/(web-01) any->rootcheck",
    "/queue/diff/db-01/local/etc/passwd/last-entry",
    "/queue/diff/db-01/syscheck",
    "/queue/diff/mail/syscheck",
    "/queue/diff/web-01/syscheck",
    "/queue/agent-groups/001",
    "/queue/agent-groups/002",
    "/queue/agent-groups/003",
    "/queue/agent-groups/004",
    "/queue/rids/001",
    "/queue/rids/002",
    "/queue/rids/003",
    "/queue/rids/004",
    "/queue/rids/sender_counter",
    "/var/db/agents/web-01-001.db",
    "/var/db/agents/db-01-002.db",
    "/var/db/agents/old-disabled-003.db",
    "/var/db/agents/mail-004.db",
    "/etc/shared/default/agent.conf",
];

/// What the removal of agents 002 (`db-01`) and 004 (`mail`) takes, sorted.
pub const REMOVED: &[&str] = &[
    "/queue/agent-groups/002",
    "/queue/agent-groups/004",
    "/queue/agent-info/db-01-10.0.0.2",
    "/queue/agent-info/mail-10.0.0.4",
    "/queue/diff/db-01",
    "/queue/diff/mail",
    "/queue/rids/002",
    "/queue/rids/004",
    "/queue/rootcheck/(db-01) 10.0.0.2->rootcheck",
    "/queue/rootcheck/(mail) any->rootcheck",
    "/var/db/agents/db-01-002.db",
    "/var/db/agents/mail-004.db",
];

/// A worker tree holding `keys` as its client.keys and every file of `files`.
pub fn agents_tree(keys: &[u8], files: &[&str]) -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    storage.set_now(T);
    storage
        .add_file(&p("/etc/client.keys"), keys.to_vec(), T, 0o640)
        .unwrap();
    for file in files {
        storage
            .add_file(&p(file), file.as_bytes().to_vec(), T, 0o660)
            .unwrap();
    }
    storage
}

/// A master package whose only file is `etc/client.keys` = `keys` (missing on the worker or
/// differing: `group`).
pub fn keys_package(keys: &[u8], group: &str) -> Vec<u8> {
    let key = p("/etc/client.keys");
    let entry = r#"{"/etc/client.keys": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/", "merged": false, "md5": "00000000000000000000000000000000"}}"#;
    let groups = ["missing", "shared", "extra", "extra_valid"]
        .map(|g| format!(r#""{g}": {}"#, if g == group { entry } else { "{}" }))
        .join(", ");
    let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
    builder.add_member(&key, T, 0o640, keys).unwrap();
    builder
        .finish(format!("{{{groups}}}").as_bytes(), T)
        .unwrap()
        .into_inner()
}

/// Applies master package `zip` as worker1 with the 3.9.5 items.
pub fn on_worker(zip: &[u8], storage: &mut MemoryStorage) -> Result<ApplyReport, ApplyError> {
    let mut reader = PackageReader::open(Cursor::new(zip.to_vec()), PackageLimits::default())?;
    apply_master_package(
        &mut reader,
        storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &ApplyLimits::default(),
    )
}
