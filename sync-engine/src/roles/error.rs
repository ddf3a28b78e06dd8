//! Typed errors at the node's boundary: why a synchronisation failed ([`SyncError`]), why a file
//! we sent did not arrive ([`SendFailure`]), and what else went wrong ([`NodeError`]).
//!
//! Why typed: tests assert exact values and adapters choose log levels by variant. Each
//! `Display` keeps the text the node logged before these types existed, which follows upstream's
//! where upstream has one. Texts received from a peer are kept as the peer sent them (lossy UTF-8):
//! they are data, not our errors.

use wazuh_cluster_protocol::connection::{
    FileChunkError, PeerError, RequestError, SendFileError, SendStringError,
};

use super::effects::{EffectError, EffectOutput};
use crate::integrity::compare::CompareError;

/// A disk step of a synchronisation, named as the error texts say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    /// Master: reading the worker's integrity metadata from its package.
    ReadWorkerIntegrity,
    /// Master: building the package for the worker.
    BuildMasterPackage,
    /// Master: applying a worker's agent-groups or agent-info package.
    ApplyWorkerPackage,
    /// Worker: building its own package.
    BuildWorkerPackage,
    /// Worker: applying the master's package.
    ApplyMasterPackage,
}

impl core::fmt::Display for SyncStep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SyncStep::ReadWorkerIntegrity => "reading the worker's integrity file",
            SyncStep::BuildMasterPackage => "building the package for the worker",
            SyncStep::ApplyWorkerPackage => "applying the worker's files",
            SyncStep::BuildWorkerPackage => "building the package",
            SyncStep::ApplyMasterPackage => "applying the master's package",
        })
    }
}

/// Why a synchronisation failed (it is retried at the next interval).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The link to the peer closed while the synchronisation ran.
    #[error("connection lost")]
    ConnectionLost,
    /// Master: `timeout_receiving_file` passed without the worker's file and its `_e`.
    #[error("timeout receiving the worker's file")]
    WorkerFileTimeout,
    /// Worker: `timeout_receiving_file` passed without the master's answer to an integrity round.
    #[error("no answer from the master")]
    MasterSilent,
    /// Worker: `timeout_receiving_file` passed without the master's package after `sync_m_c`.
    #[error("timeout receiving the master's package")]
    MasterPackageTimeout,
    /// Master: the worker ended its task with `<task> Error` (it could not send its file).
    #[error("worker files weren't correctly received")]
    WorkerCouldNotSend,
    /// Worker: the master ended `sync_m_c_e` with `<task> Error`.
    #[error("the master could not send its files")]
    MasterCouldNotSend,
    /// The `_e` names a file that did not arrive (or failed on the way).
    #[error("file {file:?} was not received")]
    FileNotReceived {
        /// The path as the peer named it.
        file: String,
    },
    /// Master: the worker's file arrived but could not be written.
    #[error("the worker's file is not on disk")]
    WorkerFileNotWritten,
    /// Worker: the master's package arrived but could not be written.
    #[error("the master's package could not be written")]
    MasterPackageNotWritten,
    /// A disk step failed.
    #[error("{step}: {error}")]
    Disk {
        /// Which step.
        step: SyncStep,
        /// The effect's error.
        error: EffectError,
    },
    /// A disk step answered with an output of another effect (a broken adapter or a bug).
    #[error("{step}: unexpected result {output}")]
    UnexpectedOutput {
        /// Which step.
        step: SyncStep,
        /// The kind of output received ([`EffectOutput::kind`]).
        output: &'static str,
    },
    /// Master: the worker's metadata could not be compared with the master's.
    #[error("{0}")]
    Compare(CompareError),
    /// Master: the worker's name cannot name a package file.
    #[error("worker name {name:?} cannot name a package")]
    PackageName {
        /// The name.
        name: String,
    },
    /// The package could not be put on the link (see the node's error event for why).
    #[error("cannot start sending the package")]
    CannotSend,
    /// A file we sent did not arrive.
    #[error("{0}")]
    Send(SendFailure),
    /// The peer answered a step of ours with an error text.
    #[error("{0}")]
    PeerRefused(String),
    /// Master: the worker reported an error with `<kind>_r`.
    #[error("worker reported: {0}")]
    WorkerReported(String),
    /// Master: the worker's integrity metadata lists more entries than the master's own items
    /// allow; refused while parsing, before any comparison.
    #[error(
        "worker integrity metadata lists more than {limit} entries, more than the master's {master_files} files allow"
    )]
    TooManyWorkerEntries {
        /// The bound: twice the master's files plus `worker_metadata_margin`.
        limit: usize,
        /// The master's own files when it was set.
        master_files: usize,
    },
    /// Worker: the master answered `<kind>_p` with `False`.
    #[error("Master didnt grant permission to synchronize")]
    PermissionDenied,
    /// Worker: the master answered `<kind>_p` with something else than `True`/`False`.
    #[error("Error asking for permission: {0}")]
    PermissionError(String),
}

impl SyncError {
    /// The error of a disk step's result that is not the expected output.
    pub(crate) fn of_step(step: SyncStep, result: Result<EffectOutput, EffectError>) -> SyncError {
        match result {
            Err(error) => SyncError::Disk { step, error },
            Ok(other) => SyncError::UnexpectedOutput {
                step,
                output: other.kind(),
            },
        }
    }
}

/// Why a file we sent did not arrive: upstream's `send_file` result texts, and ours for reading.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// A step of the transfer got no reply in time (upstream's timeout text).
    #[error("Error sending request: timeout expired.")]
    TimedOut,
    /// The peer refused a step; the value as upstream's `process_response` gives it.
    #[error("{0}")]
    Refused(String),
    /// The connection closed during the transfer.
    #[error("Error sending file: connection closed")]
    Closed,
    /// Reading the file to send failed.
    #[error("Error reading file to send: {0}")]
    Read(EffectError),
    /// The file ended before the size it was built with.
    #[error("Error reading file to send: file is shorter than built")]
    ShortFile,
}

/// Something that failed outside a synchronisation: a disk effect, a peer fault, a refused send.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The configured node name breaks the node-name rule: nothing will synchronise.
    #[error("node name {name:?} breaks the node-name rule: nothing will synchronise")]
    BadNodeName {
        /// The name.
        name: String,
    },
    /// A disk effect without a synchronisation waiting on it failed (a file step, a removal).
    #[error("{0}")]
    Disk(EffectError),
    /// The master's integrity recalculation failed.
    #[error("integrity recalculation failed: {0}")]
    Scan(EffectError),
    /// An effect answered with an output of another effect (a broken adapter or a bug).
    #[error("unexpected {effect} result {output}")]
    UnexpectedOutput {
        /// The effect that was asked for.
        effect: &'static str,
        /// The kind of output received.
        output: &'static str,
    },
    /// A request of ours could not be put on the link.
    #[error("cannot send {command}: {error}")]
    Request {
        /// The command.
        command: String,
        /// Why.
        error: RequestError,
    },
    /// A file of ours could not be put on the link.
    #[error("cannot send {path}: {error}")]
    SendFile {
        /// The file.
        path: String,
        /// Why.
        error: SendFileError,
    },
    /// A long string of ours could not be put on the link.
    #[error("cannot send a string: {0}")]
    SendString(SendStringError),
    /// A chunk of a file we send could not be put on the link.
    #[error("sending a chunk: {0}")]
    Chunk(FileChunkError),
    /// Worker: the master's package asked back files outside every extra-valid item (the
    /// agent-groups); they are not read nor sent (upstream would have sent any file named).
    #[error(
        "the master asked back {count} files outside the extra-valid items (first: {first}): refused"
    )]
    RefusedExtraValid {
        /// How many.
        count: usize,
        /// The first, by path.
        first: String,
    },
    /// The peer sent a file to a path it may not write (it is dropped).
    #[error("refused file path {path:?}")]
    RefusedFilePath {
        /// The path as the peer sent it (lossy UTF-8).
        path: String,
    },
    /// The peer hit a bound or the hello gate; it was answered with `err` and the link goes on.
    #[error("{0}")]
    Peer(PeerError),
    /// The peer answered a request of ours that nothing waits on with an error text.
    #[error("worker answered: {0}")]
    PeerAnswered(String),
}
