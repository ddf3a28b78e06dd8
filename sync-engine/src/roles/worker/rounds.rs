//! The worker → master rounds. Each is an explicit [`Round`] with the upstream command sequence
//! (3.9.5 `SyncWorker.sync`): build the package, `<cmd>_p` → `True`, `<cmd>` → task id, the file,
//! `<cmd>_e "<task> <path>"` (or `"<task> Error"` when the file could not be sent). A failure to
//! build is reported as `<cmd>_r <text>`, as upstream's `except` does. Whatever happens, the round
//! ends and the next one starts one interval after (a failed sync is retried next interval).

use std::time::Instant;

use wazuh_cluster_protocol::connection::TransferId;

use super::{WorkerJob, WorkerRequest, WorkerRole};
use crate::integrity::compare::SyncCounts;
use crate::integrity::path::InstallPath;
use crate::roles::effects::{Effect, EffectOutput, EffectResult};
use crate::roles::error::{SendFailure, SyncError, SyncStep};
use crate::roles::events::NodeEvent;
use crate::roles::ids::PeerId;
use crate::roles::shell::Shell;
use crate::roles::sync_kind::SyncKind;
use crate::roles::texts::{is_error_value, sync_text};

/// One worker → master round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Round {
    #[default]
    Idle,
    /// The package is being built at `path`.
    Building { path: InstallPath },
    /// `_p` sent.
    Permission(Built),
    /// The task command sent.
    Task(Built),
    /// The file is on its way.
    Sending {
        transfer: TransferId,
        task: String,
        entries: usize,
    },
    /// `_e` sent; `unsent` says why the file did not go when it did not (`<task> Error`: the
    /// master stops the task there and never answers it, so the round fails once `_e` is
    /// answered instead of waiting for the master).
    Ending {
        entries: usize,
        unsent: Option<SyncError>,
    },
    /// Integrity only: waiting for the master's answer (`sync_m_c_ok` or its package).
    AwaitMaster { deadline: Instant },
}

impl Round {
    /// The package file of this round, while it exists on disk (or is being built). A package
    /// being sent is the transfer's, which the shell removes with the link.
    pub(super) fn package(&self) -> Option<&InstallPath> {
        match self {
            Round::Building { path }
            | Round::Permission(Built { path, .. })
            | Round::Task(Built { path, .. }) => Some(path),
            _ => None,
        }
    }

    /// When the round gives up waiting for the master.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Round::AwaitMaster { deadline } => Some(*deadline),
            _ => None,
        }
    }
}

/// A built package waiting to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Built {
    path: InstallPath,
    size: u64,
    /// Files described (integrity) or merged parts (extra-valid, agent-info).
    entries: usize,
}

impl WorkerRole {
    /// Starts a `kind` round: its package is built (extra-valid: from the files the master asked
    /// back).
    pub(super) fn start_round(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        kind: SyncKind,
        extra_valid: Vec<InstallPath>,
    ) {
        let Some(peer) = self.master_link() else {
            return;
        };
        let name = shell.config().node_name.clone();
        let Some(path) = shell.package_path(now, &name) else {
            return;
        };
        *self.rounds.get_mut(kind) = Round::Building { path: path.clone() };
        let effect = Effect::BuildWorkerPackage {
            kind,
            path,
            extra_valid,
        };
        self.queue_job(shell, peer, effect, WorkerJob::BuildPackage(kind));
    }

    /// The round of `kind` is over: schedule the next one (timer kinds) and report.
    pub(super) fn end_round(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        kind: SyncKind,
        outcome: Result<SyncCounts, SyncError>,
    ) {
        let intervals = shell.config().items.intervals.worker;
        *self.rounds.get_mut(kind) = Round::Idle;
        match kind {
            SyncKind::Integrity => {
                *self.next.get_mut(kind) = Some(now + intervals.sync_integrity);
            }
            SyncKind::AgentInfo => *self.next.get_mut(kind) = Some(now + intervals.sync_files),
            SyncKind::ExtraValid => {}
        }
        self.report(shell, kind, outcome);
    }

    /// The round's package is built (or there is nothing to send, or it failed).
    pub(super) fn built(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        result: EffectResult,
    ) {
        let Round::Building { path } = self.rounds.get(kind).clone() else {
            return;
        };
        match result {
            Ok(EffectOutput::PackageBuilt { size, entries, .. }) => {
                *self.rounds.get_mut(kind) = Round::Permission(Built {
                    path,
                    size,
                    entries,
                });
                let worker = shell.config().node_name.clone();
                shell.event(NodeEvent::SyncStarted { kind, worker });
                let command = format!("{}_p", kind.command());
                self.ask(
                    shell,
                    now,
                    peer,
                    &command,
                    b"",
                    WorkerRequest::Permission(kind),
                );
            }
            // Upstream logs "No file updates" and sends nothing.
            Ok(EffectOutput::NothingToSend) => {
                self.end_round(shell, now, kind, Ok(SyncCounts::default()))
            }
            other => {
                let error = SyncError::of_step(SyncStep::BuildWorkerPackage, other);
                let command = format!("{}_r", kind.command());
                let text = error.to_string();
                self.ask(
                    shell,
                    now,
                    peer,
                    &command,
                    text.as_bytes(),
                    WorkerRequest::ErrorReport,
                );
                self.end_round(shell, now, kind, Err(error));
            }
        }
    }

    /// The master answered `<kind>_p`.
    pub(super) fn permission_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        value: Vec<u8>,
    ) {
        let Round::Permission(built) = self.rounds.get(kind).clone() else {
            return;
        };
        if value == sync_text::PERMISSION_GRANTED.as_bytes() {
            *self.rounds.get_mut(kind) = Round::Task(built);
            self.ask(
                shell,
                now,
                peer,
                kind.command(),
                b"",
                WorkerRequest::Task(kind),
            );
            return;
        }
        shell.queue_quiet(peer, Effect::RemoveFile { path: built.path });
        let error = if value == sync_text::PERMISSION_DENIED.as_bytes() {
            SyncError::PermissionDenied
        } else {
            SyncError::PermissionError(String::from_utf8_lossy(&value).into_owned())
        };
        self.end_round(shell, now, kind, Err(error));
    }

    /// The master answered `<kind>` with a task id: the package goes out.
    pub(super) fn task_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        value: Vec<u8>,
    ) {
        let Round::Task(Built {
            path,
            size,
            entries,
        }) = self.rounds.get(kind).clone()
        else {
            return;
        };
        // 3.9.5 does not check the task reply: an error text becomes the "task id".
        let task = String::from_utf8_lossy(&value).into_owned();
        match shell.send_file(now, peer, &path, size) {
            Some(transfer) => {
                *self.rounds.get_mut(kind) = Round::Sending {
                    transfer,
                    task,
                    entries,
                };
            }
            None => {
                shell.queue_quiet(peer, Effect::RemoveFile { path });
                let end = format!("{task} {}", sync_text::NO_FILE);
                let unsent = Some(SyncError::CannotSend);
                let ending = Round::Ending { entries, unsent };
                self.send_end(shell, now, peer, kind, end, ending);
            }
        }
    }

    /// Our package went out (or failed): `_e` with the path, or `<task> Error`.
    pub(super) fn file_sent(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        transfer: TransferId,
        path: InstallPath,
        failure: Option<SendFailure>,
    ) {
        let found = SyncKind::ALL
            .into_iter()
            .find_map(|kind| match self.rounds.get(kind) {
                Round::Sending {
                    transfer: t,
                    task,
                    entries,
                } if *t == transfer => Some((kind, task.clone(), *entries)),
                _ => None,
            });
        shell.queue_quiet(peer, Effect::RemoveFile { path: path.clone() });
        let Some((kind, task, entries)) = found else {
            return;
        };
        let end = match failure {
            None => format!("{task} {path}"),
            Some(_) => format!("{task} {}", sync_text::NO_FILE),
        };
        let unsent = failure.map(SyncError::Send);
        self.send_end(
            shell,
            now,
            peer,
            kind,
            end,
            Round::Ending { entries, unsent },
        );
    }

    /// Ends the sending part of a `kind` round, whether the package went out or not: `<kind>_e`
    /// with `end` (`<task> <path>`, or `<task> Error`), then the round waits for its reply in
    /// `ending` (a [`Round::Ending`]).
    fn send_end(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        end: String,
        ending: Round,
    ) {
        let command = format!("{}_e", kind.command());
        self.ask(
            shell,
            now,
            peer,
            &command,
            end.as_bytes(),
            WorkerRequest::End(kind),
        );
        *self.rounds.get_mut(kind) = ending;
    }

    /// The master answered `<kind>_e`: integrity waits for the master's answer to the round, the
    /// other kinds are done; a round whose file did not go fails now (3.9.5's master stops a task
    /// ended `<task> Error` without a word, so waiting for its answer would hold the next
    /// integrity round back for `timeout_receiving_file`).
    pub(super) fn end_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        kind: SyncKind,
        value: Vec<u8>,
    ) {
        let Round::Ending { entries, unsent } = self.rounds.get(kind).clone() else {
            return;
        };
        if is_error_value(&value) {
            let error = SyncError::PeerRefused(String::from_utf8_lossy(&value).into_owned());
            return self.end_round(shell, now, kind, Err(error));
        }
        if let Some(error) = unsent {
            return self.end_round(shell, now, kind, Err(error));
        }
        if kind == SyncKind::Integrity {
            let deadline = now + shell.config().timeout_receiving_file();
            *self.rounds.get_mut(kind) = Round::AwaitMaster { deadline };
        } else {
            let counts = SyncCounts {
                missing: entries,
                ..SyncCounts::default()
            };
            self.end_round(shell, now, kind, Ok(counts));
        }
    }
}
