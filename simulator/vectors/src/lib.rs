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

use std::path::{Path, PathBuf};

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
