//! Test-only access to the golden data recorded from the real upstream Wazuh cluster, and to the
//! data files of the protocol reference.
//!
//! ```text
//!   protocol/tests ─┐
//! sync-engine/tests ├─► wazuh-cluster-vectors ─► ../shared/vectors/ (read-only, never copied)
//!   adapters/tests ─┘                         └► ../shared/spec/    (read-only, never copied)
//! ```
//!
//! Both live outside the repository, in `../shared/vectors` and `../shared/spec` relative to the
//! workspace root (override with `WAZUH_VECTORS_DIR` / `WAZUH_SPEC_DIR`). Every loader panics with
//! a message that says where it looked when the folder is missing, so a test run on a machine
//! without them fails loudly instead of passing vacuously.
//!
//! ```no_run
//! let frames = wazuh_cluster_vectors::json("v3.9/frames.json");
//! assert!(frames["plaintext_frames"].is_array());
//! let routes = wazuh_cluster_vectors::spec_json("v3.9/dapi_routes.json");
//! assert!(routes["routes"].is_array());
//! ```
//!
//! Besides the loaders, it holds what the vectors say that code outside the tests needs too: the
//! cluster key they were recorded under ([`CLUSTER_KEY`]), used by the simulator's recording module
//! and fuzz bodies, which are library code and so cannot use a dev-only helper crate; and the
//! decoding of the recorded install trees ([`recorded_tree`]), whose files the engine, the disk
//! adapter and the command tests all need.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The cluster key of the recorded upstream nodes: every Fernet vector of `v3.9/frames.json` and
/// the live session of `v3.9/session/` (its README) were made with it.
pub const CLUSTER_KEY: &str = "wazuh395interopkey0123456789abcd";

/// The recorded install trees of the standalone integrity recordings (`master_tree`,
/// `worker_tree`), for [`recorded_tree`].
pub const INTEGRITY_TREES: &str = "v3.9/integrity_trees.json";

/// The install trees the live session's nodes started from (`master_tree`, `worker_tree`), for
/// [`recorded_tree`].
pub const SESSION_TREES: &str = "v3.9/session/trees.json";

/// Directory holding the golden vectors (`fernet-spec/`, `v3.9/`, ...).
///
/// # Panics
/// When the folder does not exist: tests must not pass without the recorded data.
pub fn dir() -> PathBuf {
    shared_dir(
        "WAZUH_VECTORS_DIR",
        "vectors",
        "README.md",
        "golden vectors",
        "these tests check our bytes against recordings of real Wazuh nodes",
    )
}

/// Directory holding the protocol reference (`PROTOCOL.md`) and its data files (`v3.9/...`).
///
/// # Panics
/// When the folder does not exist: tests must not pass without the reference data.
pub fn spec_dir() -> PathBuf {
    shared_dir(
        "WAZUH_SPEC_DIR",
        "spec",
        "PROTOCOL.md",
        "protocol reference",
        "these tests check our tables against facts extracted from upstream",
    )
}

/// `../shared/<name>` beside the repository (or `$<env_var>`), checked by one file it must hold.
fn shared_dir(env_var: &str, name: &str, marker: &str, what: &str, why: &str) -> PathBuf {
    let dir = match std::env::var_os(env_var) {
        Some(custom) => PathBuf::from(custom),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(name),
    };
    assert!(
        dir.join(marker).is_file(),
        "{what} not found at {} (expected ../shared/{name} beside the repository, \
         or set {env_var}): {why}",
        dir.display()
    );
    dir
}

/// Absolute path of one vector file, e.g. `path("v3.9/session/raw/conn1_w2m.bin")`.
pub fn path(relative: &str) -> PathBuf {
    dir().join(relative)
}

/// Raw bytes of one vector file.
///
/// # Panics
/// When the file is missing or unreadable.
pub fn read(relative: &str) -> Vec<u8> {
    read_file(&path(relative))
}

/// One vector file parsed as JSON.
///
/// # Panics
/// When the file is missing or is not JSON.
pub fn json(relative: &str) -> serde_json::Value {
    parse_json(&read(relative), relative)
}

/// One data file of the protocol reference parsed as JSON, e.g.
/// `spec_json("v3.9/dapi_routes.json")`.
///
/// # Panics
/// When the file is missing or is not JSON.
pub fn spec_json(relative: &str) -> serde_json::Value {
    parse_json(&read_file(&spec_dir().join(relative)), relative)
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn parse_json(bytes: &[u8], relative: &str) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

/// Each line of a `.jsonl` vector file parsed as JSON.
///
/// # Panics
/// When the file is missing or a line is not JSON.
pub fn jsonl(relative: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&read(relative))
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("vector {relative} has a bad line: {e}"))
        })
        .collect()
}

/// Decodes a hex string taken from a vector (e.g. `wire_hex`).
///
/// # Panics
/// When the string is not hex: the vector itself would be corrupt.
pub fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("vector holds bad hex {text:?}: {e}"))
}

/// One file of a recorded install tree, as the recording has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFile {
    /// Path below the install root, without a leading `/` (`etc/client.keys`).
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Modification time: Unix seconds as the Python float upstream's `os.stat` gave.
    pub mtime: f64,
}

/// The files of `tree` (`master_tree` or `worker_tree`) in the trees vector `file`
/// ([`INTEGRITY_TREES`] or [`SESSION_TREES`]), in recorded order.
///
/// # Panics
/// When the file or the tree is missing or an entry is malformed.
pub fn recorded_tree(file: &str, tree: &str) -> Vec<RecordedFile> {
    let trees = json(file);
    let entries = trees[tree]
        .as_array()
        .unwrap_or_else(|| panic!("vector {file} has no tree {tree}"));
    entries
        .iter()
        .map(|entry| {
            let field = |name: &str| {
                entry[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("vector {file}: {tree} entry without {name}"))
            };
            let data = base64::engine::general_purpose::STANDARD
                .decode(field("content_b64"))
                .unwrap_or_else(|e| panic!("vector {file}: {tree} entry with bad base64: {e}"));
            let mtime = entry["mtime"]
                .as_f64()
                .unwrap_or_else(|| panic!("vector {file}: {tree} entry without mtime"));
            RecordedFile {
                path: field("path").to_owned(),
                data,
                mtime,
            }
        })
        .collect()
}

/// The content of `path` (no leading `/`) in `tree` of the trees vector `file`.
///
/// # Panics
/// When the tree has no such file (see [`recorded_tree`]).
pub fn recorded_file(file: &str, tree: &str, path: &str) -> Vec<u8> {
    recorded_tree(file, tree)
        .into_iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("vector {file}: {path} not in {tree}"))
        .data
}
