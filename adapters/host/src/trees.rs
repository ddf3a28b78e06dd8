//! Install trees on a real disk, for `wazuh-cluster demo` and the integration tests: writing a
//! tree of sample files, and checking that a worker's tree holds the master's integrity files
//! byte for byte.
//!
//! The check does not trust the nodes: it scans the master's tree with the same scanner the
//! master uses (the master-owned integrity items of its cluster.json), then reads every selected
//! file from both trees through [`FsStorage`] and compares the bytes.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType};
use wazuh_cluster_sync::integrity::metadata::MetadataScanner;
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};

/// Largest file the check reads.
const MAX_CHECKED_FILE: u64 = 1 << 30;

/// One file to write: install path (`/etc/client.keys`), content, permission bits, mtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// Install path, absolute inside the tree.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: Timestamp,
}

/// Writes `files` under `root` (directories created as needed), with their modes and mtimes.
///
/// # Errors
/// The first I/O error, with the file concerned.
pub fn write_tree(root: &Path, files: &[SampleFile]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for f in files {
        let target = root.join(f.path.trim_start_matches('/'));
        let fail = |e: std::io::Error| format!("writing {}: {e}", target.display());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(&target, &f.data).map_err(fail)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode)).map_err(fail)?;
        let file = std::fs::File::options()
            .write(true)
            .open(&target)
            .map_err(fail)?;
        file.set_modified(system_time(f.mtime)).map_err(fail)?;
    }
    Ok(())
}

fn system_time(t: Timestamp) -> SystemTime {
    let secs = u64::try_from(t.secs).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, t.nanos)
}

/// The outcome of comparing one worker's tree with the master's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityCheck {
    /// Integrity files the master's items select in its tree.
    pub files: usize,
    /// Those absent on the worker.
    pub missing: Vec<String>,
    /// Those present on the worker with other bytes.
    pub different: Vec<String>,
}

impl IntegrityCheck {
    /// True when the worker holds every master integrity file, byte-identical.
    pub fn identical(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

/// Compares `worker`'s tree with `master`'s on the master's integrity files (see the module docs).
/// `now` is the wall time given to the scan.
///
/// # Errors
/// A tree cannot be opened, scanned or read (other than a file absent on the worker).
pub fn compare_integrity(
    master: &Path,
    worker: &Path,
    items: &ClusterItems,
    node_name: &str,
    now: Timestamp,
) -> Result<IntegrityCheck, String> {
    let open =
        |root: &Path| FsStorage::new(root).map_err(|e| format!("opening {}: {e}", root.display()));
    let (m, w) = (open(master)?, open(worker)?);
    let scan = MetadataScanner::new()
        .scan(
            &m,
            items,
            &ScanRequest {
                node_type: NodeType::Master,
                node_name,
                now,
            },
        )
        .map_err(|e| format!("scanning {}: {e}", master.display()))?;
    let mut check = IntegrityCheck {
        files: 0,
        missing: Vec::new(),
        different: Vec::new(),
    };
    for path in scan.metadata.0.keys() {
        check.files += 1;
        let ours = m
            .read(path, MAX_CHECKED_FILE)
            .map_err(|e| format!("reading the master's {path}: {e}"))?;
        match w.stat(path).map_err(|e| e.to_string())? {
            None => check.missing.push(path.as_str().to_owned()),
            Some(_) => {
                let theirs = w
                    .read(path, MAX_CHECKED_FILE)
                    .map_err(|e| format!("reading the worker's {path}: {e}"))?;
                if theirs != ours {
                    check.different.push(path.as_str().to_owned());
                }
            }
        }
    }
    Ok(check)
}
