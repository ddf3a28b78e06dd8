//! The master's side of the three synchronisations: the per-worker lock (`_p`, the task, `_e`,
//! `_r`), reading or applying what the worker sent, and for integrity the comparison and the
//! package back (`sync_m_c_ok`, or `sync_m_c` → the file → `sync_m_c_e`).

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::TransferId;

use super::MasterRole;
use super::session::{MasterJob, MasterRequest, Phase, Task, task_matches};
use crate::integrity::apply::SkipReason;
use crate::integrity::compare::{SyncCounts, SyncPlan};
use crate::integrity::metadata::{IntegrityMetadata, MetadataError};
use crate::integrity::path::InstallPath;
use crate::roles::effects::{Effect, EffectError, EffectOutput, EffectResult, IncomingFileId};
use crate::roles::error::{SendFailure, SyncError, SyncStep};
use crate::roles::events::{LockRelease, NodeEvent, SKIPPED_EXAMPLES};
use crate::roles::health::date;
use crate::roles::ids::PeerId;
use crate::roles::shell::{Ended, Shell};
use crate::roles::sync_kind::SyncKind;
use crate::roles::texts::{is_error_value, sync_text};

impl MasterRole {
    /// `<kind>_p`: `True` when the lock is free.
    pub(super) fn permission(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        kind: SyncKind,
    ) {
        let free = self
            .registration(peer)
            .is_some_and(|r| r.tasks.get(kind).is_none())
            && !self.integrity_round_too_soon(shell, now, peer, kind);
        let answer = if free {
            sync_text::PERMISSION_GRANTED
        } else {
            sync_text::PERMISSION_DENIED
        };
        shell.reply(now, peer, counter, true, answer.as_bytes());
    }

    /// `<kind>`: takes the lock and answers the task id (the worker's file and `_e` must come
    /// within `timeout_receiving_file`).
    pub(super) fn start_task(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        kind: SyncKind,
    ) {
        let limit = shell.config().limits.max_tasks_per_worker;
        let deadline = now + shell.config().timeout_receiving_file();
        let Some(r) = self.registration(peer) else {
            return;
        };
        let running = r.tasks.values().flatten().count();
        if r.tasks.get(kind).is_some()
            || running >= limit
            || self.integrity_round_too_soon(shell, now, peer, kind)
        {
            return shell.reply(now, peer, counter, false, sync_text::BUSY.as_bytes());
        }
        if kind == SyncKind::Integrity {
            self.integrity_round_started(shell, now, peer);
        }
        let id = shell.new_task_id();
        let started = date(shell.unix_time(now));
        let Some(r) = self.registration_mut(peer) else {
            return;
        };
        *r.tasks.get_mut(kind) = Some(Task {
            id: id.clone(),
            phase: Phase::AwaitFile,
        });
        r.health.started(kind, started);
        let worker = r.name.clone();
        self.lock_deadlines.set((peer, kind), Some(deadline));
        shell.reply(now, peer, counter, true, id.as_bytes());
        shell.event(NodeEvent::SyncStarted { kind, worker });
    }

    /// `<kind>_e <task> <file>`: the worker's file is complete (or could not be sent).
    pub(super) fn end_task(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        kind: SyncKind,
        payload: &Bytes,
    ) {
        let task = self
            .registration(peer)
            .and_then(|r| r.tasks.get(kind).as_ref());
        let known = |id: &[u8]| task.is_some_and(|t| task_matches(t, id));
        let Some(ended) = shell.end_receiving_file(now, peer, counter, payload, known) else {
            return;
        };
        // The worker's file came: the lock no longer waits for it.
        self.lock_deadlines.set((peer, kind), None);
        match ended {
            Ended::Ready(file) => self.process(shell, peer, kind, file),
            Ended::Committing(file) => {
                if let Some(t) = self.task_mut(peer, kind) {
                    t.phase = Phase::AwaitCommit(file);
                }
            }
            Ended::NoFile => self.fail(shell, peer, kind, SyncError::WorkerCouldNotSend),
            Ended::Missing(file) => {
                let error = SyncError::FileNotReceived {
                    file: String::from_utf8_lossy(&file).into_owned(),
                };
                self.fail(shell, peer, kind, error);
            }
        }
    }

    /// `<kind>_r <text>`: the worker gave up its round.
    pub(super) fn worker_reported(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        kind: SyncKind,
        payload: &Bytes,
    ) {
        shell.reply(
            now,
            peer,
            counter,
            true,
            sync_text::ERROR_RECEIVED.as_bytes(),
        );
        if self.task_mut(peer, kind).is_some() {
            let error = SyncError::WorkerReported(String::from_utf8_lossy(payload).into_owned());
            self.fail(shell, peer, kind, error);
        }
    }

    /// A file of `peer` finished its commit: the task that waited for it goes on.
    pub(super) fn file_committed(
        &mut self,
        shell: &mut Shell,
        _now: Instant,
        peer: PeerId,
        file: IncomingFileId,
        committed: bool,
    ) {
        for kind in SyncKind::ALL {
            let waiting = self
                .task_mut(peer, kind)
                .is_some_and(|t| t.phase == Phase::AwaitCommit(file));
            if !waiting {
                continue;
            }
            if committed {
                self.process(shell, peer, kind, file);
            } else {
                self.fail(shell, peer, kind, SyncError::WorkerFileNotWritten);
            }
        }
    }

    /// The worker's file is on disk: read its metadata (integrity) or apply it.
    fn process(&mut self, shell: &mut Shell, peer: PeerId, kind: SyncKind, file: IncomingFileId) {
        let Some(path) = shell.take_received(peer, file) else {
            return self.fail(shell, peer, kind, SyncError::WorkerFileNotWritten);
        };
        let Some(r) = self.registration_mut(peer) else {
            return;
        };
        if let Some(t) = r.tasks.get_mut(kind) {
            t.phase = Phase::Processing;
        }
        let worker = r.name.clone();
        let max_entries = self.worker_entry_bound(shell).0;
        let (effect, job) = match kind {
            SyncKind::Integrity => (
                Effect::ReadWorkerIntegrity { path, max_entries },
                MasterJob::ReadWorkerIntegrity,
            ),
            _ => (
                Effect::ApplyWorkerPackage { kind, worker, path },
                MasterJob::ApplyWorkerPackage(kind),
            ),
        };
        self.queue_job(shell, peer, effect, job);
    }

    fn queue_job(&mut self, shell: &mut Shell, peer: PeerId, effect: Effect, then: MasterJob) {
        let job = shell.queue_job(peer, effect);
        if let Some(w) = self.worker_mut(peer) {
            w.jobs.insert(job, then);
        }
    }

    /// A disk job for `peer` returned.
    pub(super) fn job_done(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        job: MasterJob,
        result: EffectResult,
    ) {
        match job {
            MasterJob::ReadWorkerIntegrity => self.worker_integrity_read(shell, now, peer, result),
            MasterJob::BuildPackage => self.package_built(shell, now, peer, result),
            MasterJob::ApplyWorkerPackage(kind) => self.applied(shell, now, peer, kind, result),
        }
    }

    fn worker_integrity_read(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        result: EffectResult,
    ) {
        match result {
            Ok(EffectOutput::WorkerMetadata(meta)) => {
                if self.scan.metadata.is_some() {
                    self.compare(shell, now, peer, meta);
                } else if let Some(t) = self.task_mut(peer, SyncKind::Integrity) {
                    t.phase = Phase::AwaitScan(Box::new(meta));
                }
            }
            Err(EffectError::Metadata(MetadataError::TooManyEntries(limit))) => {
                let master_files = self.worker_entry_bound(shell).1;
                let error = SyncError::TooManyWorkerEntries {
                    limit,
                    master_files,
                };
                self.fail(shell, peer, SyncKind::Integrity, error);
            }
            other => {
                let error = SyncError::of_step(SyncStep::ReadWorkerIntegrity, other);
                self.fail(shell, peer, SyncKind::Integrity, error);
            }
        }
    }

    /// The most entries a worker's integrity metadata may list, and the master's files it is
    /// derived from: twice those plus `worker_metadata_margin` (the worker's extra and
    /// extra-valid files), never above the apply's own bound. Before the first scan only that
    /// bound applies; the comparison checks again once the master's files are known.
    fn worker_entry_bound(&self, shell: &Shell) -> (usize, usize) {
        let limits = &shell.config().limits;
        match self.scan.metadata.as_deref() {
            Some(master) => {
                let bound = master
                    .len()
                    .saturating_mul(2)
                    .saturating_add(limits.worker_metadata_margin);
                (bound.min(limits.apply.max_entries), master.len())
            }
            None => (limits.apply.max_entries, 0),
        }
    }

    /// Whether `peer`'s worker started an integrity round less than `sync_integrity` ago (a
    /// worker following its interval never does: its next round starts that long after the
    /// previous one ended). Other kinds are bounded by their lock only.
    fn integrity_round_too_soon(
        &self,
        shell: &Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
    ) -> bool {
        let interval = shell.config().items.intervals.worker.sync_integrity;
        kind == SyncKind::Integrity
            && self.registration(peer).is_some_and(|r| {
                self.integrity_started
                    .get(&r.name)
                    .is_some_and(|at| now < *at + interval)
            })
    }

    /// Remembers when `peer`'s worker started an integrity round (by name: a new link under the
    /// same name does not start the interval over); starts older than the interval are forgotten,
    /// so the table holds at most one entry per registered worker.
    fn integrity_round_started(&mut self, shell: &Shell, now: Instant, peer: PeerId) {
        let interval = shell.config().items.intervals.worker.sync_integrity;
        let Some(name) = self.registration(peer).map(|r| r.name.clone()) else {
            return;
        };
        self.integrity_started.retain(|_, at| now < *at + interval);
        self.integrity_started.insert(name, now);
    }

    /// The comparisons that waited for the first scan, taken out of their tasks.
    pub(super) fn take_awaiting_scan(&mut self) -> Vec<(PeerId, IntegrityMetadata)> {
        let peers: Vec<PeerId> = self.registrations().map(|(peer, _)| peer).collect();
        peers
            .into_iter()
            .filter_map(|peer| {
                let task = self.task_mut(peer, SyncKind::Integrity)?;
                if !matches!(task.phase, Phase::AwaitScan(_)) {
                    return None;
                }
                match std::mem::replace(&mut task.phase, Phase::Processing) {
                    Phase::AwaitScan(meta) => Some((peer, *meta)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Compares the worker's integrity metadata with the master's: `sync_m_c_ok` when equal,
    /// else the package is built.
    pub(super) fn compare(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        worker_meta: IntegrityMetadata,
    ) {
        let Some(name) = self.registration(peer).map(|r| r.name.clone()) else {
            return;
        };
        let (limit, master_files) = self.worker_entry_bound(shell);
        if worker_meta.len() > limit {
            // Read before the master's first scan: bounded only by the apply's limit then.
            let error = SyncError::TooManyWorkerEntries {
                limit,
                master_files,
            };
            return self.fail(shell, peer, SyncKind::Integrity, error);
        }
        let Some(master_meta) = self.scan.metadata.as_deref() else {
            return;
        };
        self.comparisons += 1;
        let items = &shell.config().items;
        let plan = match SyncPlan::compare(master_meta, &worker_meta, items, &name) {
            Ok(plan) => plan,
            Err(error) => {
                return self.fail(shell, peer, SyncKind::Integrity, SyncError::Compare(error));
            }
        };
        let counts = plan.counts();
        if let Some(r) = self.registration_mut(peer) {
            r.health.set_counts(counts);
        }
        if plan.is_empty() {
            self.ask(shell, now, peer, "sync_m_c_ok", b"", MasterRequest::SyncOk);
            return self.finish(shell, now, peer, SyncKind::Integrity, counts);
        }
        let Some(path) = shell.package_path(now, &name) else {
            let error = SyncError::PackageName { name };
            return self.fail(shell, peer, SyncKind::Integrity, error);
        };
        if let Some(t) = self.task_mut(peer, SyncKind::Integrity) {
            t.phase = Phase::Building {
                path: path.clone(),
                counts,
            };
        }
        let effect = Effect::BuildMasterPackage {
            path,
            plan: Box::new(plan),
        };
        self.queue_job(shell, peer, effect, MasterJob::BuildPackage);
    }

    fn package_built(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        result: EffectResult,
    ) {
        let Some(Task {
            phase: Phase::Building { path, counts },
            ..
        }) = self.task_mut(peer, SyncKind::Integrity).cloned()
        else {
            return;
        };
        match result {
            Ok(EffectOutput::PackageBuilt { size, .. }) => {
                if let Some(t) = self.task_mut(peer, SyncKind::Integrity) {
                    t.phase = Phase::AskingTask { path, size, counts };
                }
                self.ask(
                    shell,
                    now,
                    peer,
                    "sync_m_c",
                    b"",
                    MasterRequest::PackageTask,
                );
            }
            other => {
                shell.queue_quiet(peer, Effect::RemoveFile { path });
                let error = SyncError::of_step(SyncStep::BuildMasterPackage, other);
                self.fail(shell, peer, SyncKind::Integrity, error);
            }
        }
    }

    /// The worker answered `sync_m_c` with its task id (or an error): the package goes out.
    pub(super) fn package_task(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        value: Vec<u8>,
    ) {
        let Some(Task {
            phase: Phase::AskingTask { path, size, counts },
            ..
        }) = self.task_mut(peer, SyncKind::Integrity).cloned()
        else {
            return;
        };
        let text = String::from_utf8_lossy(&value).into_owned();
        if is_error_value(&value) {
            // 3.9.5 gives up (the lock is freed by the task's end).
            shell.queue_quiet(peer, Effect::RemoveFile { path });
            return self.fail(
                shell,
                peer,
                SyncKind::Integrity,
                SyncError::PeerRefused(text),
            );
        }
        match shell.send_file(now, peer, &path, size) {
            Some(transfer) => {
                if let Some(t) = self.task_mut(peer, SyncKind::Integrity) {
                    t.phase = Phase::Sending {
                        transfer,
                        task: text,
                        counts,
                    };
                }
            }
            None => {
                self.end_package(shell, now, peer, &text, path, false);
                self.fail(shell, peer, SyncKind::Integrity, SyncError::CannotSend);
            }
        }
    }

    /// A package for the worker went out (or failed): `sync_m_c_e`, then the lock is free.
    pub(super) fn file_sent(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        transfer: TransferId,
        path: InstallPath,
        failure: Option<SendFailure>,
    ) {
        let sending = match self.task_mut(peer, SyncKind::Integrity) {
            Some(Task {
                phase:
                    Phase::Sending {
                        transfer: sending,
                        task,
                        counts,
                    },
                ..
            }) if *sending == transfer => Some((task.clone(), *counts)),
            _ => None,
        };
        let Some((task, counts)) = sending else {
            return shell.queue_quiet(peer, Effect::RemoveFile { path });
        };
        self.end_package(shell, now, peer, &task, path, failure.is_none());
        match failure {
            None => self.finish(shell, now, peer, SyncKind::Integrity, counts),
            Some(failure) => self.fail(shell, peer, SyncKind::Integrity, SyncError::Send(failure)),
        }
    }

    /// `sync_m_c_e <task> <path>` (`<task> Error` when the package did not go), then the package
    /// is removed.
    fn end_package(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        task: &str,
        path: InstallPath,
        sent: bool,
    ) {
        let end = if sent {
            format!("{task} {path}")
        } else {
            format!("{task} {}", sync_text::NO_FILE)
        };
        self.ask(
            shell,
            now,
            peer,
            "sync_m_c_e",
            end.as_bytes(),
            MasterRequest::PackageEnd,
        );
        shell.queue_quiet(peer, Effect::RemoveFile { path });
    }

    fn applied(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        result: EffectResult,
    ) {
        let Some(name) = self.registration(peer).map(|r| r.name.clone()) else {
            return;
        };
        match result {
            Ok(EffectOutput::WorkerApplied {
                report,
                agents,
                known_agents,
                ..
            }) => {
                for part in agents {
                    // Part names are `<agent>-<ip>`; the route is by agent name.
                    let agent = match part.rsplit_once('-') {
                        Some((agent, ip)) if !agent.is_empty() && !ip.is_empty() => {
                            agent.to_owned()
                        }
                        _ => part,
                    };
                    self.routes.insert(agent, name.clone());
                }
                if let Some(r) = self.registration_mut(peer) {
                    r.health.applied(kind, known_agents);
                }
                skipped_events(shell, &name, kind, &report.skipped);
                let counts = SyncCounts {
                    missing: report.written,
                    ..SyncCounts::default()
                };
                self.finish(shell, now, peer, kind, counts);
            }
            other => {
                let error = SyncError::of_step(SyncStep::ApplyWorkerPackage, other);
                self.fail(shell, peer, kind, error);
            }
        }
    }

    fn task_mut(&mut self, peer: PeerId, kind: SyncKind) -> Option<&mut Task> {
        self.registration_mut(peer)?.tasks.get_mut(kind).as_mut()
    }

    /// A synchronisation completed: end date, lock free, events.
    fn finish(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        counts: SyncCounts,
    ) {
        let ended = date(shell.unix_time(now));
        let Some(r) = self.registration_mut(peer) else {
            return;
        };
        if r.tasks.get_mut(kind).take().is_none() {
            return;
        }
        r.health.ended(kind, ended);
        let worker = r.name.clone();
        self.lock_deadlines.set((peer, kind), None);
        shell.event(NodeEvent::LockReleased {
            worker: worker.clone(),
            kind,
            cause: LockRelease::Completed,
        });
        shell.event(NodeEvent::SyncFinished {
            kind,
            worker,
            counts,
        });
    }

    /// Frees the `kind` lock of `peer` because its round failed with `error` (every failure but a
    /// timeout takes this way).
    fn fail(&mut self, shell: &mut Shell, peer: PeerId, kind: SyncKind, error: SyncError) {
        self.release(shell, peer, kind, LockRelease::Failed, error);
    }

    /// Frees the `kind` lock of `peer` after a failure; the worker retries at its next interval.
    pub(super) fn release(
        &mut self,
        shell: &mut Shell,
        peer: PeerId,
        kind: SyncKind,
        cause: LockRelease,
        error: SyncError,
    ) {
        let Some(r) = self.registration_mut(peer) else {
            return;
        };
        let Some(task) = r.tasks.get_mut(kind).take() else {
            return;
        };
        let worker = r.name.clone();
        self.lock_deadlines.set((peer, kind), None);
        if let Some(path) = task.package() {
            shell.queue_quiet(peer, Effect::RemoveFile { path: path.clone() });
        }
        shell.event(NodeEvent::LockReleased {
            worker: worker.clone(),
            kind,
            cause,
        });
        shell.event(NodeEvent::SyncFailed {
            kind,
            worker,
            error,
        });
    }
}

/// One [`NodeEvent::PartsSkipped`] per reason met in `skipped` (in the order first met), each
/// with its count and its first few paths: a package of 100,000 unknown agents is one line, not
/// 100,000, and not silence.
fn skipped_events(
    shell: &mut Shell,
    worker: &str,
    kind: SyncKind,
    skipped: &[(InstallPath, SkipReason)],
) {
    let mut reasons: Vec<SkipReason> = Vec::new();
    for (_, reason) in skipped {
        if !reasons.contains(reason) {
            reasons.push(*reason);
        }
    }
    for reason in reasons {
        let paths = skipped.iter().filter(|(_, r)| *r == reason);
        let examples = paths
            .clone()
            .take(SKIPPED_EXAMPLES)
            .map(|(p, _)| p.as_str().to_owned())
            .collect();
        shell.event(NodeEvent::PartsSkipped {
            worker: worker.to_owned(),
            kind,
            reason,
            count: paths.count(),
            examples,
        });
    }
}
