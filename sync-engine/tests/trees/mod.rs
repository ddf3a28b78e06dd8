//! Loads the recorded install trees of `vectors/v3.9/integrity_trees.json` into a
//! `MemoryStorage` (shared by the metadata and compare tests).

use base64::Engine as _;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;

/// The recorded tree `name` (`master_tree` / `worker_tree`); vector paths lack the leading `/`,
/// mtimes are Python floats; every file gets mode 0o660 (the vector records no modes).
pub fn load(name: &str) -> MemoryStorage {
    let doc = wazuh_cluster_vectors::json("v3.9/integrity_trees.json");
    let files = doc[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} missing"));
    MemoryStorage::from_files(files.iter().map(|f| {
        let path = InstallPath::new(&format!("/{}", f["path"].as_str().unwrap())).unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(f["content_b64"].as_str().unwrap())
            .unwrap();
        (
            path,
            data,
            timestamp_from_py_float(f["mtime"].as_f64().unwrap()),
            0o660,
        )
    }))
    .unwrap()
}
