//! Disk work as values: the [`Effect`]s a [`Node`](super::Node) asks for, and the one place that
//! runs them against a [`Storage`](crate::integrity::storage::Storage), the [`EffectExecutor`].
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
//! apply limits of [`NodeLimits`](super::NodeLimits); a chunk read never exceeds the `len` asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::sync_kind::SyncKind;
use crate::integrity::agents::{AgentWarning, KeysAgent};
use crate::integrity::apply::{ApplyError, ApplyReport};
use crate::integrity::compare::{SyncCounts, SyncPlan};
use crate::integrity::merged::MergedError;
use crate::integrity::metadata::{IntegrityMetadata, MetadataError, ScanError, ScanStats};
use crate::integrity::package::PackageError;
use crate::integrity::path::InstallPath;
use crate::integrity::storage::{FileStat, StorageError};

mod executor;

pub use executor::{EffectExecutor, MAX_CLIENT_KEYS, PACKAGE_MODE};

/// One file a peer sends the node, from its `new_file` to its commit or abort: the id of the
/// incoming transfer and of the staged write that receives it (one per transfer, never reused,
/// so a path sent again while its first copy commits is another file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncomingFileId(pub u64);

impl core::fmt::Display for IncomingFileId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "incoming file {}", self.0)
    }
}

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
    /// received at `path`, then delete the package; a package with any other member is refused
    /// ([`PackageError::UnexpectedMembers`](crate::integrity::package::PackageError)). →
    /// [`EffectOutput::WorkerMetadata`].
    ReadWorkerIntegrity {
        /// The received package.
        path: InstallPath,
        /// Most entries its metadata may list (the master's own items bound it); the parse
        /// stops at the first one past it.
        max_entries: usize,
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
    /// Start receiving a file from a peer: a staged write of `path` (parent created if needed)
    /// for the incoming transfer `file`.
    BeginFile {
        /// The target.
        path: InstallPath,
        /// The transfer it receives.
        file: IncomingFileId,
        /// The master's package this worker waits for: its large stored members may also be
        /// written to their targets' staged writes as they arrive
        /// ([`crate::integrity::streamed_members`]). Never for another file (one for the
        /// distributed API is read from the disk by other programs).
        package: bool,
    },
    /// Append received bytes to the staged write of `file`.
    AppendFile {
        /// The transfer.
        file: IncomingFileId,
        /// The bytes.
        data: Bytes,
    },
    /// The file is complete and its checksum matched: put it in place.
    CommitFile {
        /// The transfer.
        file: IncomingFileId,
    },
    /// Drop the staged write of `file` (transfer failed or connection lost). A file with no
    /// staged write open (never begun, or already committed or aborted) is no error: the node
    /// hands back an abort for every file a closed link may still hold.
    AbortFile {
        /// The transfer.
        file: IncomingFileId,
    },
    /// Remove a file (a package sent or no longer needed); absent is fine.
    RemoveFile {
        /// The file.
        path: InstallPath,
    },
    /// Remove a directory if it is empty (a closed link's `queue/cluster/<name>/`); absent or
    /// not empty is fine.
    RemoveEmptyDir {
        /// The directory.
        path: InstallPath,
    },
    /// Create a directory and its parents (`queue/cluster/<name>/`, mode 0o770).
    CreateDir {
        /// The directory.
        path: InstallPath,
    },
    /// Master: read the registered agents from `etc/client.keys` (absent: none), to place
    /// distributed API requests by agent. → [`EffectOutput::ClientKeys`].
    ReadClientKeys,
    /// Describe `path` without following a final symlink (a symlink on the way fails as outside
    /// the root): a file a local client or a distributed API request names, before it is sent.
    /// → [`EffectOutput::Stat`].
    StatFile {
        /// The file.
        path: InstallPath,
    },
}

impl Effect {
    /// The received package this effect reads and then removes, if it is one of those.
    pub fn consumed_package(&self) -> Option<&InstallPath> {
        match self {
            Effect::ReadWorkerIntegrity { path, .. }
            | Effect::ApplyMasterPackage { path }
            | Effect::ApplyWorkerPackage { path, .. } => Some(path),
            _ => None,
        }
    }
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
        /// Files the master asked back (start the extra-valid flow when not empty): only those
        /// of an item marked `extra_valid` (the agent-groups).
        extra_valid: Vec<InstallPath>,
        /// Files the master asked back outside every `extra_valid` item: refused (they would
        /// have been read and sent to it).
        refused_extra_valid: Vec<InstallPath>,
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
    /// [`Effect::ReadClientKeys`]: the registered agents by id.
    ClientKeys(BTreeMap<String, KeysAgent>),
    /// [`Effect::StatFile`]: what is there (`None`: nothing).
    Stat(Option<FileStat>),
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
    /// `client.keys` could not be read as 3.9.5 reads it.
    #[error("client.keys: {0}")]
    ClientKeys(#[from] AgentWarning),
    /// [`Effect::AppendFile`] / [`Effect::CommitFile`] without a [`Effect::BeginFile`].
    #[error("no staged write open for {0}")]
    NoOpenWrite(IncomingFileId),
}

impl EffectOutput {
    /// The variant's name, for errors that report an output of the wrong kind.
    pub fn kind(&self) -> &'static str {
        match self {
            EffectOutput::Done => "Done",
            EffectOutput::Scanned { .. } => "Scanned",
            EffectOutput::PackageBuilt { .. } => "PackageBuilt",
            EffectOutput::NothingToSend => "NothingToSend",
            EffectOutput::WorkerMetadata(_) => "WorkerMetadata",
            EffectOutput::MasterApplied { .. } => "MasterApplied",
            EffectOutput::WorkerApplied { .. } => "WorkerApplied",
            EffectOutput::Chunk(_) => "Chunk",
            EffectOutput::ClientKeys(_) => "ClientKeys",
            EffectOutput::Stat(_) => "Stat",
        }
    }
}

/// The result handed back to [`Node::handle_effect_done`](super::Node::handle_effect_done).
pub type EffectResult = Result<EffectOutput, EffectError>;
