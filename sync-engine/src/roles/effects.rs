//! Disk work as values: the [`Effect`]s a [`Node`](super::Node) asks for, and the one place that
//! runs them against a [`Storage`], the [`EffectExecutor`].
//!
//! Why: the node must never block on a disk (upstream's daemon did, and its keepalives starved
//! behind a big sync), and the adapters (tokio, mio, the simulator) must hold no protocol logic.
//! So every effect is a coarse job — "scan the integrity items", "build the package for this
//! plan", "apply the package at this path", "read this chunk" — that an adapter hands to
//! [`EffectExecutor::execute`], on its own thread or pool if it likes, and answers with
//! [`Node::handle_effect_done`](super::Node::handle_effect_done).
//!
//! Ordering contract: the effects of one connection are handed out one at a time (the next after
//! the previous one's result), so no two effects in flight write the same file, and an adapter
//! may run the effects it holds in any order. `execute` takes `&mut self`: effects of different
//! connections run one after the other on the executor (an adapter wanting parallel hashing can
//! split a scan with the scanner's plan/hash/finish steps).
//!
//! Bounds: packages are read back with `max_package_file`, peer documents with the package and
//! apply limits of [`NodeLimits`]; a chunk read never exceeds the `len` asked.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;

use super::config::{NodeConfig, NodeLimits, NodeType};
use super::output::SyncKind;
use crate::integrity::apply::{
    ApplyError, ApplyReport, DIR_MODE, KnownAgents, apply_master_package, apply_worker_package,
};
use crate::integrity::compare::{SyncCounts, SyncPlan};
use crate::integrity::items::ClusterItems;
use crate::integrity::merged::{MergedError, merge_dir, merge_from_storage, min_mtime, unmerge};
use crate::integrity::metadata::scan::ScanRequest;
use crate::integrity::metadata::{
    FileMetadata, IntegrityMetadata, MergeType, MetadataError, MetadataScanner, ScanError,
    ScanStats,
};
use crate::integrity::package::{
    PackageBuilder, PackageError, PackageReader, build_master_package,
};
use crate::integrity::path::InstallPath;
use crate::integrity::storage::{
    FileAttrs, Storage, StorageError, StorageErrorKind, Timestamp, WriteId,
};

/// Permission bits of package files and merged files the node writes (upstream: umask 0o007).
pub const PACKAGE_MODE: u32 = 0o660;

/// Largest `client.keys` read to learn the known agents (the same bound as the removed-agent
/// comparison's).
pub use crate::integrity::agents::MAX_CLIENT_KEYS;
use crate::integrity::agents::client_keys_path;

/// A disk job. See the [module documentation](self).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Master: recalculate its integrity metadata (master-owned items), incrementally: only files
    /// whose size or mtime changed since the last scan are hashed. → [`EffectOutput::Scanned`].
    ScanIntegrity,
    /// Worker: build its package for `kind` at `path` (3.9.5 `compress_files`): integrity → only
    /// `cluster_control.json` with the metadata of the master-owned items; extra-valid → the
    /// `extra_valid` files merged into `/queue/cluster/<node>/agent-groups.merged`; agent-info →
    /// the recent `/queue/agent-info/` files merged into `agent-info.merged`.
    /// → [`EffectOutput::PackageBuilt`] or [`EffectOutput::NothingToSend`].
    BuildWorkerPackage {
        /// Which synchronisation.
        kind: SyncKind,
        /// Where to write the package.
        path: InstallPath,
        /// Extra-valid only: the files the master asked back.
        extra_valid: Vec<InstallPath>,
    },
    /// Master: read the worker's integrity metadata (`cluster_control.json`) from the package
    /// received at `path`, then delete the package. → [`EffectOutput::WorkerMetadata`].
    ReadWorkerIntegrity {
        /// The received package.
        path: InstallPath,
    },
    /// Master: build the package of `plan` (missing and shared files + `cluster_control.json`)
    /// at `path`. → [`EffectOutput::PackageBuilt`].
    BuildMasterPackage {
        /// Where to write it.
        path: InstallPath,
        /// The comparison with this worker.
        plan: Box<SyncPlan>,
    },
    /// Worker: apply the master's package received at `path`, then delete it.
    /// → [`EffectOutput::MasterApplied`].
    ApplyMasterPackage {
        /// The received package.
        path: InstallPath,
    },
    /// Master: apply a worker's agent-groups or agent-info package received at `path` (newer
    /// wins, known agents only), then delete it. → [`EffectOutput::WorkerApplied`].
    ApplyWorkerPackage {
        /// Extra-valid or agent-info.
        kind: SyncKind,
        /// The worker that sent it.
        worker: String,
        /// The received package.
        path: InstallPath,
    },
    /// Read up to `len` bytes of `path` from `offset`. → [`EffectOutput::Chunk`] (empty at the
    /// end of the file).
    ReadChunk {
        /// The file.
        path: InstallPath,
        /// Where to start.
        offset: u64,
        /// Most bytes wanted.
        len: usize,
    },
    /// Start receiving a file from a peer: a staged write of `path` (parent created if needed).
    BeginFile {
        /// The target.
        path: InstallPath,
    },
    /// Append received bytes to the staged write of `path`.
    AppendFile {
        /// The target.
        path: InstallPath,
        /// The bytes.
        data: Bytes,
    },
    /// The file is complete and its checksum matched: put it in place.
    CommitFile {
        /// The target.
        path: InstallPath,
    },
    /// Drop the staged write of `path` (transfer failed or connection lost).
    AbortFile {
        /// The target.
        path: InstallPath,
    },
    /// Remove a file (a package sent or no longer needed); absent is fine.
    RemoveFile {
        /// The file.
        path: InstallPath,
    },
    /// Create a directory and its parents (`queue/cluster/<name>/`, mode 0o770).
    CreateDir {
        /// The directory.
        path: InstallPath,
    },
}

/// What a successful effect produced.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectOutput {
    /// Nothing to report (file steps, removals, directories).
    Done,
    /// [`Effect::ScanIntegrity`]: the master's metadata.
    Scanned {
        /// The document (shared with the scanner's cache: an unchanged rescan costs no copy).
        metadata: Arc<IntegrityMetadata>,
        /// What the scan cost.
        stats: ScanStats,
    },
    /// A package was written.
    PackageBuilt {
        /// File members (0 for the worker's integrity package, which carries only metadata).
        members: usize,
        /// Integrity: entries of its `cluster_control.json`; worker extra-valid / agent-info:
        /// merged parts (agents) sent; master package: entries of the plan.
        entries: usize,
        /// Its size in bytes.
        size: u64,
    },
    /// A worker package would be empty (no recent agent-info, no extra-valid file left): upstream
    /// sends nothing then.
    NothingToSend,
    /// [`Effect::ReadWorkerIntegrity`]: the worker's metadata.
    WorkerMetadata(IntegrityMetadata),
    /// [`Effect::ApplyMasterPackage`].
    MasterApplied {
        /// What was written and removed.
        report: ApplyReport,
        /// Sizes of the package's four groups.
        counts: SyncCounts,
        /// Files the master asked back (start the extra-valid flow when not empty).
        extra_valid: Vec<InstallPath>,
    },
    /// [`Effect::ApplyWorkerPackage`].
    WorkerApplied {
        /// What was written.
        report: ApplyReport,
        /// Parts (agents) in the package.
        parts: usize,
        /// Agent-info only: the agents whose status was taken (part names, `<name>-<ip>`), i.e.
        /// the agents that now report to this worker.
        agents: Vec<String>,
        /// Agents the master knows, counting the manager itself (3.9.5 `len(agent_ids)`, what
        /// `get_health` reports as `total_agent_info` / `total_extra_valid`).
        known_agents: usize,
    },
    /// [`Effect::ReadChunk`]: the bytes read.
    Chunk(Bytes),
}

/// Why an effect failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// A storage operation failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The integrity scan failed.
    #[error("scan: {0}")]
    Scan(#[from] ScanError),
    /// A package could not be built or read.
    #[error("package: {0}")]
    Package(#[from] PackageError),
    /// A package was refused or could not be written while applying.
    #[error("apply: {0}")]
    Apply(#[from] ApplyError),
    /// A merged file could not be built or split.
    #[error("merged file: {0}")]
    Merged(#[from] MergedError),
    /// A peer's metadata document was refused.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// [`Effect::AppendFile`] / [`Effect::CommitFile`] without a [`Effect::BeginFile`].
    #[error("no staged write open for {0}")]
    NoOpenWrite(String),
}

/// The result handed back to [`Node::handle_effect_done`](super::Node::handle_effect_done).
pub type EffectResult = Result<EffectOutput, EffectError>;

/// Runs [`Effect`]s against a [`Storage`]; keeps the incremental scanner caches and the staged
/// writes of files being received.
#[derive(Debug)]
pub struct EffectExecutor<S: Storage> {
    storage: S,
    items: ClusterItems,
    node_name: String,
    limits: NodeLimits,
    /// Cache of the master-owned items' scan (master recalculation, worker integrity package).
    scanner: MetadataScanner,
    /// Separate cache for the worker-type scan (agent-info): a scan replaces its scanner's cache.
    worker_scanner: MetadataScanner,
    open_writes: BTreeMap<InstallPath, WriteId>,
}

impl<S: Storage> EffectExecutor<S> {
    /// An executor for the node described by `config`, over `storage` (its install root).
    pub fn new(storage: S, config: &NodeConfig) -> Self {
        EffectExecutor {
            storage,
            items: config.items.clone(),
            node_name: config.node_name.clone(),
            limits: config.limits.clone(),
            scanner: MetadataScanner::new(),
            worker_scanner: MetadataScanner::new(),
            open_writes: BTreeMap::new(),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, mutably (tests and simulations edit files between rounds).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Staged writes currently open (files being received).
    pub fn open_writes(&self) -> usize {
        self.open_writes.len()
    }

    /// Runs one effect. `now_unix` is the wall-clock time used for scans (racy window, the
    /// worker's 30-minute filter), merged-file and package dates.
    pub fn execute(&mut self, effect: &Effect, now_unix: Timestamp) -> EffectResult {
        match effect {
            Effect::ScanIntegrity => {
                let output = self.scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Master,
                        node_name: &self.node_name,
                        now: now_unix,
                    },
                )?;
                Ok(EffectOutput::Scanned {
                    metadata: output.metadata,
                    stats: output.stats,
                })
            }
            Effect::BuildWorkerPackage {
                kind,
                path,
                extra_valid,
            } => self.build_worker_package(*kind, path, extra_valid, now_unix),
            Effect::ReadWorkerIntegrity { path } => {
                let bytes = self.storage.read(path, self.limits.max_package_file);
                self.remove_quietly(path);
                let reader = PackageReader::open(Cursor::new(bytes?), self.limits.package)?;
                let metadata = IntegrityMetadata::from_json(
                    reader.control_json(),
                    self.limits.apply.max_entries,
                )?;
                Ok(EffectOutput::WorkerMetadata(metadata))
            }
            Effect::BuildMasterPackage { path, plan } => {
                let zip = build_master_package(
                    Cursor::new(Vec::new()),
                    &self.storage,
                    plan,
                    &self.limits.merged,
                    now_unix,
                )?
                .into_inner();
                let members = plan.missing.len() + plan.shared.len();
                let entries = members + plan.extra.len() + plan.extra_valid.len();
                self.write_package(path, &zip)?;
                Ok(EffectOutput::PackageBuilt {
                    members,
                    entries,
                    size: zip.len() as u64,
                })
            }
            Effect::ApplyMasterPackage { path } => self.apply_master(path),
            Effect::ApplyWorkerPackage { kind, worker, path } => {
                self.apply_worker(*kind, worker, path)
            }
            Effect::ReadChunk { path, offset, len } => {
                let mut buf = vec![0u8; *len];
                let mut filled = 0;
                while filled < buf.len() {
                    let n =
                        self.storage
                            .read_at(path, offset + filled as u64, &mut buf[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(EffectOutput::Chunk(Bytes::from(buf)))
            }
            Effect::BeginFile { path } => {
                if let Some(old) = self.open_writes.remove(path) {
                    let _ = self.storage.abort_write(old);
                }
                if let Some(parent) = path.parent()
                    && self.storage.stat(&parent)?.is_none()
                {
                    self.storage.create_dir_all(&parent, DIR_MODE)?;
                }
                let id = self.storage.begin_write(path)?;
                self.open_writes.insert(path.clone(), id);
                Ok(EffectOutput::Done)
            }
            Effect::AppendFile { path, data } => {
                let id = self.open_write(path)?;
                if let Err(e) = self.storage.append(id, data) {
                    self.open_writes.remove(path);
                    let _ = self.storage.abort_write(id);
                    return Err(e.into());
                }
                Ok(EffectOutput::Done)
            }
            Effect::CommitFile { path } => {
                let id = self.open_write(path)?;
                self.open_writes.remove(path);
                let attrs = FileAttrs {
                    mode: PACKAGE_MODE,
                    mtime: None,
                };
                // Not deferred: a received file is one per transfer and the next effect reads it
                // (the apply's own files are one deferred batch, see `integrity::apply`).
                self.storage.commit_write(id, &attrs)?;
                Ok(EffectOutput::Done)
            }
            Effect::AbortFile { path } => {
                if let Some(id) = self.open_writes.remove(path) {
                    self.storage.abort_write(id)?;
                }
                Ok(EffectOutput::Done)
            }
            Effect::RemoveFile { path } => {
                self.storage.remove_file(path)?;
                Ok(EffectOutput::Done)
            }
            Effect::CreateDir { path } => {
                if self.storage.stat(path)?.is_none() {
                    self.storage.create_dir_all(path, DIR_MODE)?;
                }
                Ok(EffectOutput::Done)
            }
        }
    }

    fn open_write(&self, path: &InstallPath) -> Result<WriteId, EffectError> {
        self.open_writes
            .get(path)
            .copied()
            .ok_or_else(|| EffectError::NoOpenWrite(path.as_str().to_owned()))
    }

    /// Removes a file whose removal failing changes nothing for the caller (a consumed package):
    /// a leftover is overwritten or cleaned by the next round.
    fn remove_quietly(&mut self, path: &InstallPath) {
        let _ = self.storage.remove_file(path);
    }

    /// `/queue/cluster/<this node>/<file>`, created if needed.
    fn own_cluster_file(&mut self, file: &str) -> Result<InstallPath, EffectError> {
        let bad = |e: crate::integrity::path::PathError| {
            EffectError::Scan(ScanError::BadNodeName(format!("{}: {e}", self.node_name)))
        };
        let dir = InstallPath::new("/queue/cluster")
            .and_then(|q| q.join(&self.node_name))
            .map_err(bad)?;
        if self.storage.stat(&dir)?.is_none() {
            self.storage.create_dir_all(&dir, DIR_MODE)?;
        }
        dir.join(file).map_err(bad)
    }

    fn write_package(&mut self, path: &InstallPath, zip: &[u8]) -> Result<(), EffectError> {
        if let Some(parent) = path.parent()
            && self.storage.stat(&parent)?.is_none()
        {
            self.storage.create_dir_all(&parent, DIR_MODE)?;
        }
        let attrs = FileAttrs {
            mode: PACKAGE_MODE,
            mtime: None,
        };
        self.storage.write_atomic(path, zip, &attrs)?;
        Ok(())
    }

    fn build_worker_package(
        &mut self,
        kind: SyncKind,
        path: &InstallPath,
        extra_valid: &[InstallPath],
        now: Timestamp,
    ) -> EffectResult {
        let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
        // `entries`: files described (integrity) or merged parts sent (extra-valid, agent-info).
        let (entries, control) = match kind {
            SyncKind::Integrity => {
                let output = self.scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Master,
                        node_name: &self.node_name,
                        now,
                    },
                )?;
                (0, output.metadata)
            }
            SyncKind::ExtraValid => {
                let merged =
                    merge_from_storage(&self.storage, extra_valid, None, &self.limits.merged)?;
                if merged.parts == 0 {
                    return Ok(EffectOutput::NothingToSend);
                }
                let key = self.own_cluster_file("agent-groups.merged")?;
                let attrs = FileAttrs {
                    mode: PACKAGE_MODE,
                    mtime: Some(now),
                };
                self.storage.write_atomic(&key, &merged.bytes, &attrs)?;
                builder.add_member_from_storage(&self.storage, &key)?;
                let meta = FileMetadata {
                    mod_time: None,
                    cluster_item_key: "/queue/agent-groups/".to_owned(),
                    merged: true,
                    merge_type: Some(MergeType::AgentGroups),
                    merge_name: Some(key.as_str().to_owned()),
                    merge_type_hyphen: None,
                    md5: None,
                };
                (
                    merged.parts,
                    Arc::new(IntegrityMetadata([(key, meta)].into_iter().collect())),
                )
            }
            SyncKind::AgentInfo => {
                let newer_than = self.items.sync_options.get_agentinfo_newer_than;
                let merged = merge_dir(
                    &self.storage,
                    MergeType::AgentInfo,
                    None,
                    min_mtime(now, newer_than),
                    &self.limits.merged,
                )?;
                if merged.parts == 0 {
                    return Ok(EffectOutput::NothingToSend);
                }
                let key = self.own_cluster_file("agent-info.merged")?;
                let attrs = FileAttrs {
                    mode: PACKAGE_MODE,
                    mtime: Some(now),
                };
                self.storage.write_atomic(&key, &merged.bytes, &attrs)?;
                // 3.9.5 takes the metadata from a worker-type walk, which finds the merged file.
                let output = self.worker_scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Worker,
                        node_name: &self.node_name,
                        now,
                    },
                )?;
                if output.metadata.is_empty() {
                    return Ok(EffectOutput::NothingToSend);
                }
                for key in output.metadata.0.keys() {
                    builder.add_member_from_storage(&self.storage, key)?;
                }
                (merged.parts, output.metadata)
            }
        };
        let members = builder.len();
        let entries = if kind == SyncKind::Integrity {
            control.len()
        } else {
            entries
        };
        let zip = builder
            .finish(control.to_upstream_json().as_bytes(), now)?
            .into_inner();
        self.write_package(path, &zip)?;
        Ok(EffectOutput::PackageBuilt {
            members,
            entries,
            size: zip.len() as u64,
        })
    }

    fn open_package(
        &mut self,
        path: &InstallPath,
    ) -> Result<PackageReader<Cursor<Vec<u8>>>, EffectError> {
        let bytes = self.storage.read(path, self.limits.max_package_file);
        self.remove_quietly(path);
        Ok(PackageReader::open(
            Cursor::new(bytes?),
            self.limits.package,
        )?)
    }

    fn apply_master(&mut self, path: &InstallPath) -> EffectResult {
        let mut reader = self.open_package(path)?;
        let plan =
            SyncPlan::from_upstream_json(reader.control_json(), self.limits.apply.max_entries)?;
        let report = apply_master_package(
            &mut reader,
            &mut self.storage,
            &self.items,
            &self.node_name,
            &self.limits.apply,
        )?;
        // Applied files carry the master's mtimes: one may match the cached (size, mtime) of the
        // content it replaced, and the incremental scan would keep the old digest.
        self.scanner.clear_cache();
        Ok(EffectOutput::MasterApplied {
            report,
            counts: plan.counts(),
            extra_valid: plan.extra_valid.0.into_keys().collect(),
        })
    }

    fn apply_worker(&mut self, kind: SyncKind, worker: &str, path: &InstallPath) -> EffectResult {
        let mut reader = self.open_package(path)?;
        let keys = match self.storage.read(&client_keys_path()?, MAX_CLIENT_KEYS) {
            Ok(keys) => keys,
            Err(e) if e.kind == StorageErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let agents = KnownAgents::from_client_keys(&keys);
        // Part names, read before the apply consumes nothing but needs the reader mutably.
        let control =
            IntegrityMetadata::from_json(reader.control_json(), self.limits.apply.max_entries)?;
        let mut names: Vec<(MergeType, String)> = Vec::new();
        for (key, meta) in &control.0 {
            let (true, Some(merge_type)) = (meta.merged, meta.merge_type) else {
                continue;
            };
            let Ok(bytes) = reader.read_member(key) else {
                continue;
            };
            for part in unmerge(&bytes, &self.limits.merged).into_result()? {
                names.push((merge_type, part.name.to_owned()));
            }
        }
        let report = apply_worker_package(
            &mut reader,
            &mut self.storage,
            &self.items,
            worker,
            &agents,
            &self.limits.apply,
        )?;
        if kind == SyncKind::ExtraValid && report.written > 0 {
            // Agent-groups are master-owned items written with the worker's header times: see
            // `apply_master`.
            self.scanner.clear_cache();
        }
        let skipped: Vec<&InstallPath> = report.skipped.iter().map(|(p, _)| p).collect();
        let routed = names
            .iter()
            .filter(|(t, name)| {
                *t == MergeType::AgentInfo
                    && kind == SyncKind::AgentInfo
                    && InstallPath::new(&format!("/queue/agent-info/{name}"))
                        .is_ok_and(|p| !skipped.contains(&&p))
            })
            .map(|(_, name)| name.clone())
            .collect();
        Ok(EffectOutput::WorkerApplied {
            parts: names.len(),
            agents: routed,
            known_agents: agents.len() + 1,
            report,
        })
    }
}
