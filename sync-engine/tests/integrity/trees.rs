//! Loads the recorded install trees of `vectors/v3.9/integrity_trees.json` into a
//! `MemoryStorage` (shared by the metadata, compare, apply, crash and hostile-package tests).

use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_vectors::{INTEGRITY_TREES, recorded_tree};

/// The recorded tree `name` (`master_tree` / `worker_tree`); vector paths lack the leading `/`,
/// mtimes are Python floats; every file gets mode 0o660 (the vector records no modes).
pub fn load(name: &str) -> MemoryStorage {
    MemoryStorage::from_files(recorded_tree(INTEGRITY_TREES, name).into_iter().map(|f| {
        let path = InstallPath::new(&format!("/{}", f.path)).unwrap();
        (path, f.data, timestamp_from_py_float(f.mtime), 0o660)
    }))
    .unwrap()
}
