//! What the master keeps per connection: a [`RemoteWorker`] (a worker, before and after its
//! `hello`), or a local client of its Unix socket; and per registered worker its
//! [`Registration`]: name, version, the synchronisation [`Task`] holding each lock, and what
//! `get_health` reports.

use std::collections::BTreeMap;
use std::time::Instant;

use wazuh_cluster_protocol::connection::TransferId;

use crate::integrity::compare::SyncCounts;
use crate::integrity::metadata::IntegrityMetadata;
use crate::integrity::path::InstallPath;
use crate::roles::effects::IncomingFileId;
use crate::roles::health::WorkerHealth;
use crate::roles::ids::PeerId;
use crate::roles::shell::JobId;
use crate::roles::sync_kind::{PerKind, SyncKind};

/// A request the master sent a worker, and what its answer continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MasterRequest {
    /// `sync_m_c_ok`: nothing continues.
    SyncOk,
    /// `sync_m_c`: the worker's task id for the package comes back.
    PackageTask,
    /// `sync_m_c_e`: nothing continues.
    PackageEnd,
    /// `echo-m`: another link claims this worker's name; an answer shows this one alive.
    Probe,
}

/// A `hello` for a name a live link holds, waiting for the holder's answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    /// The link that sent the `hello` (answered once the claim is decided).
    pub(super) claimant: PeerId,
    /// Its `hello` request's counter.
    pub(super) counter: u32,
    /// The link holding the name.
    pub(super) holder: PeerId,
    /// When the holder counts as dead without an answer.
    pub(super) deadline: Instant,
    pub(super) node_type: String,
    pub(super) version: String,
}

/// A disk job the master queued for a worker, and what its result continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MasterJob {
    /// The worker's integrity metadata is read from its package.
    ReadWorkerIntegrity,
    /// The package for the worker is built.
    BuildPackage,
    /// A worker package (extra-valid / agent-info) is applied.
    ApplyWorkerPackage(SyncKind),
}

/// Where a worker's synchronisation task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the worker's file and `_e` (the deadline runs).
    AwaitFile,
    /// `_e` came before the file's commit finished.
    AwaitCommit(IncomingFileId),
    /// Reading the package / applying it.
    Processing,
    /// Integrity: the worker's metadata waits for the master's first scan.
    AwaitScan(Box<IntegrityMetadata>),
    /// Integrity: building the package for the worker at `path`.
    Building {
        path: InstallPath,
        counts: SyncCounts,
    },
    /// Integrity: `sync_m_c` sent.
    AskingTask {
        path: InstallPath,
        size: u64,
        counts: SyncCounts,
    },
    /// Integrity: the package is on its way.
    Sending {
        transfer: TransferId,
        task: String,
        counts: SyncCounts,
    },
}

/// A running synchronisation of one worker (the lock is held while it exists). Its deadline,
/// while it has one, is in the master's index of lock deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Task {
    pub(super) id: String,
    pub(super) phase: Phase,
}

impl Task {
    /// The package file of this task, while it exists on disk (or is being built). A package
    /// being sent is the transfer's, which the shell removes with the link.
    pub(super) fn package(&self) -> Option<&InstallPath> {
        match &self.phase {
            Phase::Building { path, .. } | Phase::AskingTask { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// A worker that passed every `hello` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Registration {
    pub(super) name: String,
    pub(super) node_type: String,
    pub(super) version: String,
    pub(super) joined: Instant,
    pub(super) join_seq: u64,
    /// The task holding each kind's lock.
    pub(super) tasks: PerKind<Option<Task>>,
    pub(super) health: WorkerHealth,
}

/// A worker's connection, as the master sees it.
#[derive(Debug, Default)]
pub(super) struct RemoteWorker {
    /// Set once `hello` passed every check.
    pub(super) registration: Option<Box<Registration>>,
    /// Requests of ours awaiting the worker's answer.
    pub(super) requests: BTreeMap<u32, MasterRequest>,
    /// Disk jobs of ours for this worker.
    pub(super) jobs: BTreeMap<JobId, MasterJob>,
}

impl RemoteWorker {
    /// Package files of this worker's running tasks (built or being built).
    pub(super) fn packages(&self) -> Vec<InstallPath> {
        self.registration
            .iter()
            .flat_map(|r| r.tasks.values().flatten())
            .filter_map(|t| t.package().cloned())
            .collect()
    }
}

/// One connection of the master.
#[derive(Debug)]
pub(super) enum Session {
    /// A worker (registered after a good `hello`).
    Worker(RemoteWorker),
    /// A client of the local socket (`get_nodes` / `get_health`).
    Local,
}

/// Whether `id` (from a `<task> <file>` end) names `task` while it waits for the worker's file.
pub(super) fn task_matches(task: &Task, id: &[u8]) -> bool {
    task.id.as_bytes() == id && task.phase == Phase::AwaitFile
}
