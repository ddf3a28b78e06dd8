//! Disk work of one link, in order: its effects are handed out one at a time (the next after the
//! previous one's result), so incoming file steps, chunk reads, package builds and applies of
//! one peer never overlap and no two effects in flight touch the same file.

use std::collections::VecDeque;

use wazuh_cluster_protocol::connection::TransferId;

use super::transfers::FileStep;
use crate::integrity::path::InstallPath;
use crate::roles::effects::{Effect, IncomingFileId};
use crate::roles::ids::EffectId;

/// A role's disk job: the role keeps what the result continues under this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct JobId(pub(crate) u64);

/// What a finished effect continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterDisk {
    /// A step of an incoming file.
    Incoming(IncomingFileId, FileStep),
    /// A chunk read of an outgoing file.
    Chunk(TransferId),
    /// A role's job: the result goes to the role.
    Role(JobId),
    /// Nothing continues; a failure is reported as an error event.
    Report,
}

/// The effects of one link: queued, and the one in flight.
#[derive(Debug, Default)]
pub(crate) struct DiskQueue {
    jobs: VecDeque<(Effect, AfterDisk)>,
    in_flight: Option<EffectId>,
    /// Bytes of queued `AppendFile` jobs (bounded by `max_pending_disk_bytes`).
    bytes: usize,
}

impl DiskQueue {
    /// Queues `effect`.
    pub(crate) fn push(&mut self, effect: Effect, then: AfterDisk) {
        if let Effect::AppendFile { data, .. } = &effect {
            self.bytes += data.len();
        }
        self.jobs.push_back((effect, then));
    }

    /// The next job to hand out, when none is in flight.
    pub(crate) fn next(&mut self) -> Option<(Effect, AfterDisk)> {
        if self.in_flight.is_some() {
            return None;
        }
        let (effect, then) = self.jobs.pop_front()?;
        if let Effect::AppendFile { data, .. } = &effect {
            self.bytes = self.bytes.saturating_sub(data.len());
        }
        Some((effect, then))
    }

    /// `id` was handed out.
    pub(crate) fn started(&mut self, id: EffectId) {
        self.in_flight = Some(id);
    }

    /// The effect in flight returned.
    pub(crate) fn finished(&mut self) {
        self.in_flight = None;
    }

    /// Whether an effect is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Bytes of file data waiting to be written.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// The link closed: the queue keeps only its effect in flight (whose result must still be
    /// awaited before clean-up effects run after it).
    /// The received packages of the jobs dropped (taken by a role, never read: their job would
    /// have removed them) are handed back to be removed instead.
    pub(crate) fn into_cleanup(self) -> (DiskQueue, Vec<InstallPath>) {
        let not_consumed = self
            .jobs
            .iter()
            .filter_map(|(effect, _)| effect.consumed_package().cloned())
            .collect();
        let queue = DiskQueue {
            in_flight: self.in_flight,
            ..DiskQueue::default()
        };
        (queue, not_consumed)
    }
}
