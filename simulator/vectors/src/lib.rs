//! Test-only access to the golden data recorded from the real upstream Wazuh cluster.
//!
//! ```text
//!   protocol/tests ─┐
//! sync-engine/tests ├─► wazuh-cluster-vectors ─► ../shared/vectors/ (read-only, never copied)
//!   adapters/tests ─┘
//! ```
//!
//! The vectors live outside the repository, in `../shared/vectors` relative to the workspace root
//! (override with `WAZUH_VECTORS_DIR`). Every loader panics with a message that says where it looked
//! when the folder is missing, so a test run on a machine without the vectors fails loudly instead of
//! passing vacuously.
//!
//! ```no_run
//! let frames = wazuh_cluster_vectors::json("v3.9/frames.json");
//! assert!(frames["plaintext_frames"].is_array());
//! ```

use std::path::PathBuf;

/// Directory holding the golden vectors (`fernet-spec/`, `v3.9/`, ...).
///
/// # Panics
/// When the folder does not exist: tests must not pass without the recorded data.
pub fn dir() -> PathBuf {
    let dir = match std::env::var_os("WAZUH_VECTORS_DIR") {
        Some(custom) => PathBuf::from(custom),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    assert!(
        dir.join("README.md").is_file(),
        "golden vectors not found at {} (expected ../shared/vectors beside the repository, \
         or set WAZUH_VECTORS_DIR): these tests check our bytes against recordings of real Wazuh nodes",
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
    let path = path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()))
}

/// One vector file parsed as JSON.
///
/// # Panics
/// When the file is missing or is not JSON.
pub fn json(relative: &str) -> serde_json::Value {
    serde_json::from_slice(&read(relative))
        .unwrap_or_else(|e| panic!("vector {relative} is not valid JSON: {e}"))
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
