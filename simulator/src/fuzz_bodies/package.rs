//! ZIP packages read and applied into the in-memory storage.
//!
//! Input: byte 0 picks the flow — a worker applying a master package (`sync_i_w_m` answer), the
//! master applying a worker's extra-valid / agent-info package, or the master reading a worker's
//! integrity metadata package — and the rest is the ZIP. Small package limits make every bound
//! reachable.
//!
//! Checked: no panic; after an apply (successful or not) every file that is new or changed lies
//! inside the directory of an integrity item (a hostile member never lands elsewhere), no staged
//! temporary file is left, and nothing outside those items changed.

use std::io::Cursor;

use wazuh_cluster_sync::integrity::apply::{
    ApplyLimits, KnownAgents, apply_master_package, apply_worker_package,
    worker_metadata_from_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::MergedLimits;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

use super::Input;

/// The client.keys both sides start with: agents 001 and 002.
const CLIENT_KEYS: &[u8] = b"001 agent-one any k\n002 agent-two any k\n";

fn limits() -> (PackageLimits, ApplyLimits) {
    let package = PackageLimits {
        max_members: 32,
        max_member_size: 64 * 1024,
        max_total_size: 256 * 1024,
        max_control_size: 64 * 1024,
    };
    let apply = ApplyLimits {
        max_entries: 64,
        merged: MergedLimits {
            max_parts: 16,
            max_part_size: 16 * 1024,
            max_total: 64 * 1024,
        },
    };
    (package, apply)
}

/// A small install tree: a few files in integrity item directories and one outside any.
fn initial_storage() -> MemoryStorage {
    let t = Timestamp {
        secs: 1_561_999_000,
        nanos: 0,
    };
    let files: [(&str, &[u8]); 5] = [
        ("/etc/client.keys", CLIENT_KEYS),
        ("/etc/shared/default/agent.conf", b"<agent_config/>\n"),
        ("/etc/rules/local_rules.xml", b"<group/>\n"),
        ("/queue/agent-groups/001", b"default\n"),
        ("/etc/ossec.conf", b"<ossec_config/>\n"),
    ];
    let mut storage = MemoryStorage::new();
    for (path, data) in files {
        let path = InstallPath::new(path).expect("fixture path");
        storage
            .add_file(&path, data.to_vec(), t, 0o660)
            .expect("fixture file");
    }
    storage
}

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte() % 3;
    let zip = input.rest();
    let (package_limits, apply_limits) = limits();
    let Ok(mut reader) = PackageReader::open(Cursor::new(zip), package_limits) else {
        return;
    };
    assert!(reader.members().len() <= package_limits.max_members);
    assert!(reader.control_json().len() as u64 <= package_limits.max_control_size);
    let items = ClusterItems::defaults_3_9();
    let mut storage = initial_storage();
    let before = storage.files();
    match mode {
        0 => {
            let _ =
                apply_master_package(&mut reader, &mut storage, &items, "worker1", &apply_limits);
        }
        1 => {
            let agents = KnownAgents::from_client_keys(CLIENT_KEYS);
            let _ = apply_worker_package(
                &mut reader,
                &mut storage,
                &items,
                "worker1",
                &agents,
                &apply_limits,
            );
        }
        _ => {
            if let Ok(metadata) = worker_metadata_from_package(&reader, &apply_limits) {
                assert!(metadata.len() <= apply_limits.max_entries);
            }
            return;
        }
    }
    assert_eq!(storage.staged_writes(), 0, "a staged file was left behind");
    let after = storage.files();
    for (path, data) in &after {
        if before.get(path) != Some(data) {
            assert!(
                items.items().iter().any(|item| item.covers(path)),
                "{path:?} was written outside every integrity item"
            );
        }
    }
    for (path, data) in &before {
        if after.get(path) != Some(data) {
            assert!(
                items.items().iter().any(|item| item.covers(path)),
                "{path:?} outside every integrity item was changed or removed"
            );
        }
    }
}
