//! The master's answer to an integrity round: `sync_m_c_ok` (nothing to do), or `sync_m_c` → the
//! package → `sync_m_c_e`, then the apply (and the extra-valid round when the master asked files
//! back).

use std::time::Instant;

use bytes::Bytes;

use super::rounds::Round;
use super::{WorkerJob, WorkerRole};
use crate::integrity::compare::SyncCounts;
use crate::roles::effects::{Effect, EffectOutput, EffectResult, IncomingFileId};
use crate::roles::error::{NodeError, SyncError, SyncStep};
use crate::roles::events::NodeEvent;
use crate::roles::ids::PeerId;
use crate::roles::shell::{Ended, Shell};
use crate::roles::sync_kind::SyncKind;
use crate::roles::texts::sync_text;

/// Reception of the master's integrity package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Receive {
    #[default]
    Idle,
    /// `sync_m_c` answered with `task`; the file and `sync_m_c_e` must come before `deadline`.
    Waiting { task: String, deadline: Instant },
    /// `sync_m_c_e` came before the file's commit finished.
    AwaitCommit { file: IncomingFileId },
    /// The apply effect runs.
    Applying,
}

impl Receive {
    /// When the reception gives up.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Receive::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }
}

impl WorkerRole {
    /// `sync_m_c_ok`: the master found nothing to send.
    pub(super) fn master_found_nothing(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
    ) {
        shell.reply(now, peer, counter, true, sync_text::THANKS.as_bytes());
        if matches!(
            self.rounds.get(SyncKind::Integrity),
            Round::AwaitMaster { .. }
        ) {
            self.end_round(shell, now, SyncKind::Integrity, Ok(SyncCounts::default()));
        }
    }

    /// `sync_m_c`: the master asks for a task id for its package.
    pub(super) fn master_package_task(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
    ) {
        let task = shell.new_task_id();
        let deadline = now + shell.config().timeout_receiving_file();
        self.receive = Receive::Waiting {
            task: task.clone(),
            deadline,
        };
        shell.expect_package(peer);
        shell.reply(now, peer, counter, true, task.as_bytes());
    }

    /// `sync_m_c_e <task> <file>`: the master's package is complete (or could not be sent).
    pub(super) fn master_package_end(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        shell.no_package_expected(peer);
        let receive = &self.receive;
        let known =
            |id: &[u8]| matches!(receive, Receive::Waiting { task, .. } if task.as_bytes() == id);
        match shell.end_receiving_file(now, peer, counter, payload, known) {
            None => {}
            Some(Ended::Ready(file)) => self.apply_master_file(shell, peer, file),
            Some(Ended::Committing(file)) => self.receive = Receive::AwaitCommit { file },
            Some(Ended::NoFile) => self.receive_failed(shell, now, SyncError::MasterCouldNotSend),
            Some(Ended::Missing(file)) => {
                let file = String::from_utf8_lossy(&file).into_owned();
                self.receive_failed(shell, now, SyncError::FileNotReceived { file });
            }
        }
    }

    /// A file from the master finished its commit: the package that waited for it is applied.
    pub(super) fn file_committed(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        file: IncomingFileId,
        committed: bool,
    ) {
        if self.receive != (Receive::AwaitCommit { file }) {
            return;
        }
        if committed {
            self.apply_master_file(shell, peer, file);
        } else {
            self.receive_failed(shell, now, SyncError::MasterPackageNotWritten);
        }
    }

    fn receive_failed(&mut self, shell: &mut Shell, now: Instant, error: SyncError) {
        self.receive = Receive::Idle;
        self.integrity_answered(shell, now, Err(error));
    }

    fn apply_master_file(&mut self, shell: &mut Shell, peer: PeerId, file: IncomingFileId) {
        let Some(path) = shell.take_received(peer, file) else {
            return;
        };
        self.receive = Receive::Applying;
        let effect = Effect::ApplyMasterPackage { path };
        self.queue_job(shell, peer, effect, WorkerJob::ApplyMasterPackage);
    }

    /// The master's package is applied (or failed to).
    pub(super) fn applied(&mut self, shell: &mut Shell, now: Instant, result: EffectResult) {
        // A new `sync_m_c` may already be waiting: only the apply's own state ends here.
        if self.receive == Receive::Applying {
            self.receive = Receive::Idle;
        }
        match result {
            Ok(EffectOutput::MasterApplied {
                counts,
                extra_valid,
                refused_extra_valid,
                report,
            }) => {
                if let Some(first) = refused_extra_valid.first() {
                    shell.error(
                        self.master_peer(),
                        NodeError::RefusedExtraValid {
                            count: refused_extra_valid.len(),
                            first: first.as_str().to_owned(),
                        },
                    );
                }
                if !report.agents.agents.is_empty() {
                    shell.event(NodeEvent::AgentsRemoved {
                        agents: report.agents.agents.iter().map(|a| a.id.clone()).collect(),
                        files: report.agents.removed.len(),
                    });
                }
                self.integrity_answered(shell, now, Ok(counts));
                if !extra_valid.is_empty() && self.round_idle(SyncKind::ExtraValid) {
                    self.start_round(shell, now, SyncKind::ExtraValid, extra_valid);
                }
            }
            other => {
                let error = SyncError::of_step(SyncStep::ApplyMasterPackage, other);
                self.integrity_answered(shell, now, Err(error));
            }
        }
    }

    /// The master's answer to an integrity round is handled (applied, failed): it ends the round
    /// waiting for it, or is reported alone (a package the master sent on its own).
    fn integrity_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        outcome: Result<SyncCounts, SyncError>,
    ) {
        if matches!(
            self.rounds.get(SyncKind::Integrity),
            Round::AwaitMaster { .. }
        ) {
            self.end_round(shell, now, SyncKind::Integrity, outcome);
        } else {
            self.report(shell, SyncKind::Integrity, outcome);
        }
    }
}
