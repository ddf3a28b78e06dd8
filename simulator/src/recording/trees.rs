//! The recorded install trees before the run (`trees.json`), the state on disk after it
//! (`check.json`), and the same state read back from a storage, to compare a run with them.

use std::collections::BTreeMap;

use base64::Engine as _;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};

use super::fields::{array, bad, f64_field, field, object, str_field, strings, u64_field};
use super::{RecordingError, Role};
use crate::tree::TreeFile;

/// Largest file of a recorded tree read back from a storage.
const MAX_READ: u64 = 1 << 20;

/// One of the recorded install trees as it was before a run starting at Unix time `start`
/// (`trees.json`), every file with mode 0660. The worker's agent-info files are dated 60 s before
/// the start, as in the recorded run: a worker sends only agent-info newer than
/// `get_agentinfo_newer_than` (30 min), so on the real clock they must be recent.
///
/// # Errors
/// A malformed entry.
pub fn recorded_tree(role: Role, start: Timestamp) -> Result<Vec<TreeFile>, RecordingError> {
    let file = "v3.9/session/trees.json";
    let key = match role {
        Role::Master => "master_tree",
        Role::Worker => "worker_tree",
    };
    let trees = wazuh_cluster_vectors::json(file);
    array(&trees, key, file)?
        .iter()
        .map(|e| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(str_field(e, "content_b64", file)?)
                .map_err(|err| bad(file, err.to_string()))?;
            let path = format!("/{}", str_field(e, "path", file)?);
            let mtime = if path.starts_with("/queue/agent-info/") {
                Timestamp {
                    secs: start.secs - 60,
                    nanos: start.nanos,
                }
            } else {
                timestamp_from_py_float(f64_field(e, "mtime", file)?)
            };
            Ok(TreeFile {
                mode: 0o660,
                ..TreeFile::new(&path, data, mtime)
            })
        })
        .collect()
}

/// An agent-info file as the end state lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentInfoFile {
    /// Modification time.
    pub mtime: Timestamp,
    /// Size in bytes.
    pub size: u64,
}

/// The state on disk after the recorded run (`check.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCheck {
    /// Integrity files the master's items select on the master.
    pub master_files: usize,
    /// The same on the worker.
    pub worker_files: usize,
    /// Master integrity files the worker lacks.
    pub missing_on_worker: Vec<String>,
    /// Worker files of master items the master lacks.
    pub extra_on_worker: Vec<String>,
    /// Files whose content differs.
    pub different: Vec<String>,
    /// The master's `queue/agent-info` (no `ghost-*`: unknown agent).
    pub master_agent_info: BTreeMap<String, AgentInfoFile>,
    /// The master's `queue/agent-groups`, name → content.
    pub master_agent_groups: BTreeMap<String, String>,
    /// The worker's `queue/agent-groups`.
    pub worker_agent_groups: BTreeMap<String, String>,
    /// The worker's `etc/shared` directories (`oldgroup` gone).
    pub worker_dirs_etc_shared: Vec<String>,
    /// The recorder's verdict: both trees hold the same master files.
    pub equal: bool,
}

/// `check.json`.
///
/// # Errors
/// A malformed field.
pub fn recorded_check() -> Result<RecordedCheck, RecordingError> {
    let file = "v3.9/session/check.json";
    let check = wazuh_cluster_vectors::json(file);
    let count = |key: &str| -> Result<usize, RecordingError> {
        usize::try_from(u64_field(&check, key, file)?).map_err(|_| bad(file, key))
    };
    let groups = |key: &str| -> Result<BTreeMap<String, String>, RecordingError> {
        object(&check, key, file)?
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().ok_or_else(|| bad(file, format!("{key}.{k}")))?;
                Ok((k.clone(), text.to_owned()))
            })
            .collect()
    };
    let master_agent_info = object(&check, "master_agent_info", file)?
        .iter()
        .map(|(name, v)| {
            let info = AgentInfoFile {
                mtime: timestamp_from_py_float(f64_field(v, "mtime", file)?),
                size: u64_field(v, "size", file)?,
            };
            Ok((name.clone(), info))
        })
        .collect::<Result<_, RecordingError>>()?;
    Ok(RecordedCheck {
        master_files: count("master_files")?,
        worker_files: count("worker_files")?,
        missing_on_worker: strings(&check, "missing_on_worker", file)?,
        extra_on_worker: strings(&check, "extra_on_worker", file)?,
        different: strings(&check, "different", file)?,
        master_agent_info,
        master_agent_groups: groups("master_agent_groups")?,
        worker_agent_groups: groups("worker_agent_groups")?,
        worker_dirs_etc_shared: strings(&check, "worker_dirs_etc_shared", file)?,
        equal: field(&check, "equal", file)?
            .as_bool()
            .ok_or_else(|| bad(file, "equal"))?,
    })
}

fn storage_error(e: impl std::fmt::Display) -> RecordingError {
    RecordingError::Storage(e.to_string())
}

/// Names in `dir` of `storage`, sorted (empty when it does not exist).
///
/// # Errors
/// A storage error other than a missing directory.
pub fn dir_names<S: Storage>(storage: &S, dir: &str) -> Result<Vec<String>, RecordingError> {
    let dir = InstallPath::new(dir).map_err(storage_error)?;
    if storage.stat(&dir).map_err(storage_error)?.is_none() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = storage
        .list_dir(&dir)
        .map_err(storage_error)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    Ok(names)
}

/// `queue/agent-info` of `storage`: name → mtime and size.
///
/// # Errors
/// A storage error.
pub fn agent_info<S: Storage>(
    storage: &S,
) -> Result<BTreeMap<String, AgentInfoFile>, RecordingError> {
    let dir = "/queue/agent-info";
    let mut out = BTreeMap::new();
    for name in dir_names(storage, dir)? {
        let path = InstallPath::new(&format!("{dir}/{name}")).map_err(storage_error)?;
        if let Some(st) = storage.stat(&path).map_err(storage_error)? {
            let info = AgentInfoFile {
                mtime: st.mtime,
                size: st.size,
            };
            out.insert(name, info);
        }
    }
    Ok(out)
}

/// `queue/agent-groups` of `storage`: agent id → content.
///
/// # Errors
/// A storage error, or a file that is not text.
pub fn agent_groups<S: Storage>(storage: &S) -> Result<BTreeMap<String, String>, RecordingError> {
    let dir = "/queue/agent-groups";
    let mut out = BTreeMap::new();
    for name in dir_names(storage, dir)? {
        let path = InstallPath::new(&format!("{dir}/{name}")).map_err(storage_error)?;
        let data = storage.read(&path, MAX_READ).map_err(storage_error)?;
        out.insert(name, String::from_utf8(data).map_err(storage_error)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::TREES_START;

    #[test]
    fn trees_and_end_state() {
        let start = Timestamp::from_secs(TREES_START as i64);
        let master = recorded_tree(Role::Master, start).unwrap();
        let worker = recorded_tree(Role::Worker, start).unwrap();
        assert_eq!((master.len(), worker.len()), (17, 17));
        let file = |tree: &[TreeFile], path: &str| tree.iter().find(|f| f.path == path).cloned();
        let ghost = "/queue/agent-info/ghost-10.9.9.9";
        // At the recorded start, the recorded dates; later, the same age.
        assert_eq!(
            file(&worker, ghost).unwrap().mtime,
            Timestamp::from_secs(TREES_START as i64 - 60)
        );
        let later = recorded_tree(Role::Worker, Timestamp::from_secs(1_900_000_000)).unwrap();
        assert_eq!(
            file(&later, ghost).unwrap().mtime,
            Timestamp::from_secs(1_900_000_000 - 60)
        );
        let keys = "/etc/client.keys";
        assert_eq!(file(&later, keys), file(&worker, keys));
        let check = recorded_check().unwrap();
        assert_eq!((check.master_files, check.worker_files), (12, 12));
        assert!(check.equal && check.different.is_empty());
        assert_eq!(check.worker_dirs_etc_shared, ["default", "group2"]);
        assert_eq!(
            check.master_agent_info["agent-one-10.0.0.1"],
            AgentInfoFile {
                mtime: Timestamp::from_secs(1_795_682_858),
                size: 220
            }
        );
        let storage = crate::tree::storage_from(worker).unwrap();
        assert_eq!(agent_groups(&storage).unwrap()["004"], "group2\n");
        assert_eq!(agent_info(&storage).unwrap().len(), 4);
        assert_eq!(
            dir_names(&storage, "/etc/shared").unwrap(),
            ["group2", "oldgroup"]
        );
        assert_eq!(
            dir_names(&storage, "/nothing").unwrap(),
            Vec::<String>::new()
        );
    }
}
