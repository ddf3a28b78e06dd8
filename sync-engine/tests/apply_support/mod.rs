//! Shared set-up for the package / apply tests: the recorded install trees loaded into a
//! `MemoryStorage`, and raw ZIP building that bypasses our builder's checks (to forge hostile
//! packages).

use std::io::{Cursor, Write};

use base64::Engine as _;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

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

/// One member of a forged ZIP.
pub struct RawMember<'a> {
    /// The name exactly as stored.
    pub name: &'a str,
    /// Content.
    pub data: &'a [u8],
    /// Deflate instead of store.
    pub deflate: bool,
}

/// A ZIP with `members` then `cluster_control.json` = `control`, names taken verbatim.
pub fn raw_zip(members: &[RawMember<'_>], control: &[u8]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for m in members {
        let method = if m.deflate {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(m.data.len() > (1 << 31));
        zip.start_file(m.name, options).unwrap();
        zip.write_all(m.data).unwrap();
    }
    zip.start_file(
        "cluster_control.json",
        SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
    )
    .unwrap();
    zip.write_all(control).unwrap();
    zip.finish().unwrap().into_inner()
}

/// Stored members from `(name, data)` pairs.
pub fn stored<'a>(members: &'a [(&'a str, &'a [u8])]) -> Vec<RawMember<'a>> {
    members
        .iter()
        .map(|(name, data)| RawMember {
            name,
            data,
            deflate: false,
        })
        .collect()
}

/// Replaces every occurrence of `from` by `to` (same length) in `bytes`: renames members in
/// both the local and the central headers.
pub fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "pattern not found");
}

/// Central directory record of member `name`: its offset in `bytes`.
fn central_record(bytes: &[u8], name: &str) -> usize {
    (0..bytes.len() - 46)
        .find(|&i| {
            bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && {
                let len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
                bytes.get(i + 46..i + 46 + len) == Some(name.as_bytes())
            }
        })
        .expect("member in central directory")
}

/// Sets the Unix mode (high half of the external attributes, "made by Unix") of member `name`.
pub fn set_unix_mode(bytes: &mut [u8], name: &str, mode: u32) {
    let at = central_record(bytes, name);
    bytes[at + 5] = 3; // version made by: Unix
    bytes[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
}

/// Sets the declared uncompressed size of member `name` in both headers.
pub fn set_declared_size(bytes: &mut [u8], name: &str, size: u32) {
    let at = central_record(bytes, name);
    bytes[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    let local = u32::from_le_bytes(bytes[at + 42..at + 46].try_into().unwrap()) as usize;
    bytes[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
}
