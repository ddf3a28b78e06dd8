//! Shared set-up for the package / apply tests: the recorded install trees loaded into a
//! `MemoryStorage`.

use base64::Engine as _;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;

/// `tree` ("master_tree" / "worker_tree") of `v3.9/integrity_trees.json` as a storage; files
/// get mode 0o660 and their recorded mtime.
pub fn tree_storage(tree: &str) -> MemoryStorage {
    let trees = wazuh_cluster_vectors::json("v3.9/integrity_trees.json");
    let files = trees[tree].as_array().unwrap().iter().map(|e| {
        let path = InstallPath::new(&format!("/{}", e["path"].as_str().unwrap())).unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(e["content_b64"].as_str().unwrap())
            .unwrap();
        (
            path,
            data,
            timestamp_from_py_float(e["mtime"].as_f64().unwrap()),
            0o660,
        )
    });
    MemoryStorage::from_files(files).unwrap()
}
