//! The worker role: dial the master, `hello`, then the periodic rounds ([`rounds`]) — integrity
//! every `sync_integrity`, agent-info every `sync_files`, extra-valid after an applied package that
//! left extra-valid files — the reception and apply of the master's package ([`receive`]), and
//! the local socket's `get_nodes` / `get_health`, forwarded to the master ([`local`]).
//!
//! On connection loss every round is dropped, and the worker dials again after
//! `connection_retry`. Differences from upstream: the next integrity round waits until the master
//! answered the previous one (`sync_m_c_ok`, or its package applied, bounded by
//! `timeout_receiving_file`), so two integrity rounds never overlap.

mod local;
mod receive;
mod rounds;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::Side;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Hello;

use receive::Receive;
use rounds::Round;

use super::effects::Effect;
use super::error::SyncError;
use super::events::{CloseReason, NodeEvent};
use super::ids::PeerId;
use super::output::Origin;
use super::shell::{Claims, Input, JobId, Link, Shell, cluster_dir};
use super::sync_kind::{PerKind, SyncKind};
use super::texts::is_error_value;
use crate::integrity::compare::SyncCounts;

/// Commands the worker answers itself: from its master, and from its local socket.
pub(crate) const CLAIMS: Claims = Claims {
    cluster: &["sync_m_c_ok", "sync_m_c", "sync_m_c_e"],
    local: &["get_nodes", "get_health"],
};

/// A request the worker sent, and what its answer continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerRequest {
    /// Our `hello`.
    Hello,
    /// `<kind>_p`.
    Permission(SyncKind),
    /// `<kind>` (task creation).
    Task(SyncKind),
    /// `<kind>_e`.
    End(SyncKind),
    /// `<kind>_r`: nothing continues.
    ErrorReport,
    /// A local client's `get_nodes` / `get_health`, forwarded: the answer goes to that client
    /// (`seq` tells a reused id apart).
    ForLocalClient { client: PeerId, seq: u64 },
}

/// A disk job the worker queued, and what its result continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerJob {
    /// Its package for a round is built.
    BuildPackage(SyncKind),
    /// The master's package is applied.
    ApplyMasterPackage,
}

/// The connection to the master, as the worker sees it.
#[derive(Debug)]
struct RemoteMaster {
    peer: PeerId,
    /// The master accepted our `hello`.
    accepted: bool,
    /// Requests of ours awaiting the master's answer.
    requests: BTreeMap<u32, WorkerRequest>,
    /// Disk jobs of ours for this link.
    jobs: BTreeMap<JobId, WorkerJob>,
}

/// The state of the link to the master.
#[derive(Debug)]
enum MasterLink {
    /// Not connected; dial at `retry_at`.
    Down { retry_at: Instant },
    /// A dial asked for; given up at `deadline` (an adapter that never answers must not leave
    /// the worker without a master forever).
    Dialing { peer: PeerId, deadline: Instant },
    /// Connected (`hello` sent, maybe accepted).
    Connected(RemoteMaster),
}

/// The worker role. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct WorkerRole {
    link: MasterLink,
    rounds: PerKind<Round>,
    /// When the integrity and agent-info rounds are due (extra-valid has no timer).
    next: PerKind<Option<Instant>>,
    receive: Receive,
    /// Clients of the local socket.
    local_clients: BTreeSet<PeerId>,
}

impl WorkerRole {
    /// A worker at `now`: it dials its master at once.
    pub(crate) fn new(shell: &mut Shell, now: Instant) -> WorkerRole {
        let w = shell.config().items.intervals.worker;
        let mut next = PerKind::default();
        // Upstream's loops start with the process and sleep one period when not connected.
        *next.get_mut(SyncKind::Integrity) = Some(now + w.sync_integrity);
        *next.get_mut(SyncKind::AgentInfo) = Some(now + w.sync_files);
        let mut worker = WorkerRole {
            link: MasterLink::Down { retry_at: now },
            rounds: PerKind::default(),
            next,
            receive: Receive::Idle,
            local_clients: BTreeSet::new(),
        };
        worker.dial(shell, now);
        worker
    }

    /// Handles one input. See [`Node`](crate::roles::Node)'s dispatch.
    pub(crate) fn handle(&mut self, shell: &mut Shell, now: Instant, input: Input) {
        match input {
            Input::Connected { peer, addr, origin } => {
                self.connected(shell, now, peer, &addr, origin)
            }
            Input::DialFailed { peer } => self.dial_failed(shell, now, peer),
            Input::Request {
                peer,
                counter,
                command,
                payload,
            } => {
                if self.master_peer() == Some(peer) {
                    self.master_request(shell, now, peer, counter, &command, payload);
                } else if self.local_clients.contains(&peer) {
                    self.local_request(shell, now, peer, counter, &command, payload);
                } else {
                    shell.reply_unknown(now, peer, counter, &command);
                }
            }
            Input::Answer {
                peer,
                counter,
                value,
            } => {
                let asked = self
                    .master_mut(peer)
                    .and_then(|m| m.requests.remove(&counter));
                if let Some(asked) = asked {
                    self.answer(shell, now, peer, asked, value);
                }
            }
            Input::FileCommitted {
                peer,
                file,
                committed,
            } => self.file_committed(shell, now, peer, file, committed),
            Input::FileSent {
                peer,
                transfer,
                path,
                failure,
            } => self.file_sent(shell, now, peer, transfer, path, failure),
            Input::DiskDone { peer, job, result } => {
                let Some(job) = self.master_mut(peer).and_then(|m| m.jobs.remove(&job)) else {
                    return;
                };
                match job {
                    WorkerJob::BuildPackage(kind) => self.built(shell, now, peer, kind, result),
                    WorkerJob::ApplyMasterPackage => self.applied(shell, now, result),
                }
            }
            // A worker runs no disk job of its own.
            Input::NodeDiskDone { .. } => {}
            Input::Closed {
                peer,
                reason,
                tell_adapter,
            } => self.close(shell, now, peer, reason, tell_adapter),
            Input::Timeout => self.timeout(shell, now),
            // Strings and calls are the distributed API part's: the node routes them there.
            Input::StringSent { .. } | Input::StringFailed { .. } | Input::ApiDone { .. } => {}
        }
    }

    /// Whether a local client's `get_nodes` / `get_health` still waits for the master's answer.
    pub(crate) fn owes_local(&self, client: PeerId) -> bool {
        let MasterLink::Connected(m) = &self.link else {
            return false;
        };
        m.requests
            .values()
            .any(|r| matches!(r, WorkerRequest::ForLocalClient { client: c, .. } if *c == client))
    }

    /// When [`WorkerRole::handle`] must next see [`Input::Timeout`].
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let link = match self.link {
            MasterLink::Down { retry_at } => Some(retry_at),
            MasterLink::Dialing { deadline, .. } => Some(deadline),
            MasterLink::Connected(_) => None,
        };
        let rounds = self.rounds.values().filter_map(Round::deadline);
        self.next
            .values()
            .flatten()
            .copied()
            .chain(link)
            .chain(rounds)
            .chain(self.receive.deadline())
            .min()
    }

    /// The connection to the master once its `hello` was accepted.
    pub(crate) fn master_link(&self) -> Option<PeerId> {
        match &self.link {
            MasterLink::Connected(m) if m.accepted => Some(m.peer),
            _ => None,
        }
    }

    /// Whether the `kind` round is idle.
    pub(crate) fn round_idle(&self, kind: SyncKind) -> bool {
        *self.rounds.get(kind) == Round::Idle
    }

    // ----------------------------------------------------------------------------------------
    // The link

    /// The connection to the master, accepted or not.
    fn master_peer(&self) -> Option<PeerId> {
        match &self.link {
            MasterLink::Connected(m) => Some(m.peer),
            _ => None,
        }
    }

    fn master_mut(&mut self, peer: PeerId) -> Option<&mut RemoteMaster> {
        match &mut self.link {
            MasterLink::Connected(m) if m.peer == peer => Some(m),
            _ => None,
        }
    }

    /// Sends a request to the master and remembers what its answer continues.
    fn ask(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        command: &str,
        payload: &[u8],
        then: WorkerRequest,
    ) -> bool {
        let Some(counter) = shell.request(now, peer, command, payload) else {
            return false;
        };
        if let Some(m) = self.master_mut(peer) {
            m.requests.insert(counter, then);
        }
        true
    }

    /// Queues a disk job on the master link and remembers what its result continues.
    fn queue_job(&mut self, shell: &mut Shell, peer: PeerId, effect: Effect, then: WorkerJob) {
        let job = shell.queue_job(peer, effect);
        if let Some(m) = self.master_mut(peer) {
            m.jobs.insert(job, then);
        }
    }

    fn dial(&mut self, shell: &mut Shell, now: Instant) {
        let config = shell.config();
        let deadline = now + config.items.intervals.communication.timeout_cluster_request;
        let addr = config.master_addr.clone();
        let peer = shell.connect(&addr);
        self.link = MasterLink::Dialing { peer, deadline };
    }

    fn connected(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        addr: &str,
        origin: Origin,
    ) {
        match origin {
            Origin::Outgoing => {}
            Origin::Local => {
                shell.add_peer(now, peer, addr, Side::Server, Link::Local);
                self.local_clients.insert(peer);
                return;
            }
            // A worker accepts nothing on its cluster port.
            Origin::Incoming => return shell.refuse(peer),
        }
        if !matches!(self.link, MasterLink::Dialing { peer: p, .. } if p == peer) {
            return shell.refuse(peer);
        }
        shell.add_peer(now, peer, addr, Side::Client, Link::Cluster);
        self.link = MasterLink::Connected(RemoteMaster {
            peer,
            accepted: false,
            requests: BTreeMap::new(),
            jobs: BTreeMap::new(),
        });
        let config = shell.config();
        let hello = Hello {
            name: Bytes::from(config.node_name.clone()),
            cluster: Bytes::from(config.cluster_name.clone()),
            node_type: Bytes::from_static(b"worker"),
            version: Bytes::from(config.version.clone()),
        };
        self.ask(
            shell,
            now,
            peer,
            "hello",
            &hello.to_payload(),
            WorkerRequest::Hello,
        );
    }

    fn dial_failed(&mut self, shell: &mut Shell, now: Instant, peer: PeerId) {
        let retry = shell.config().items.intervals.worker.connection_retry;
        if matches!(self.link, MasterLink::Dialing { peer: p, .. } if p == peer) {
            self.link = MasterLink::Down {
                retry_at: now + retry,
            };
            shell.event(NodeEvent::DisconnectedFromMaster {
                reason: CloseReason::Lost,
            });
        }
    }

    fn hello_answered(&mut self, shell: &mut Shell, now: Instant, peer: PeerId, value: Vec<u8>) {
        if self.master_mut(peer).is_none_or(|m| m.accepted) {
            return;
        }
        if is_error_value(&value) {
            // 3.9.5 closes the transport when the hello result starts with `Error`.
            let text = String::from_utf8_lossy(&value).into_owned();
            return self.close(shell, now, peer, CloseReason::HelloRefused(text), true);
        }
        if let Some(m) = self.master_mut(peer) {
            m.accepted = true;
        }
        shell.authenticate(now, peer);
        if let Some(dir) = cluster_dir(&shell.config().node_name) {
            shell.set_inbox(peer, dir.clone());
            shell.queue_quiet(peer, Effect::CreateDir { path: dir });
        }
        shell.event(NodeEvent::ConnectedToMaster { peer });
    }

    fn master_request(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        match command.name() {
            b"sync_m_c_ok" => self.master_found_nothing(shell, now, peer, counter),
            b"sync_m_c" => self.master_package_task(shell, now, peer, counter),
            b"sync_m_c_e" => self.master_package_end(shell, now, peer, counter, &payload),
            _ => shell.reply_unknown(now, peer, counter, command),
        }
    }

    fn answer(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        asked: WorkerRequest,
        value: Vec<u8>,
    ) {
        match asked {
            WorkerRequest::Hello => self.hello_answered(shell, now, peer, value),
            WorkerRequest::ForLocalClient { client, seq } => {
                self.control_answered(shell, now, client, seq, &value)
            }
            WorkerRequest::Permission(kind) => {
                self.permission_answered(shell, now, peer, kind, value)
            }
            WorkerRequest::Task(kind) => self.task_answered(shell, now, peer, kind, value),
            WorkerRequest::End(kind) => self.end_answered(shell, now, kind, value),
            WorkerRequest::ErrorReport => {}
        }
    }

    fn timeout(&mut self, shell: &mut Shell, now: Instant) {
        match self.link {
            MasterLink::Down { retry_at } if retry_at <= now => self.dial(shell, now),
            MasterLink::Dialing { peer, deadline } if deadline <= now => {
                shell.refuse(peer);
                self.dial_failed(shell, now, peer);
            }
            _ => {}
        }
        let intervals = shell.config().items.intervals.worker;
        let mut failed = Vec::new();
        if self
            .rounds
            .get(SyncKind::Integrity)
            .deadline()
            .is_some_and(|d| d <= now)
        {
            *self.rounds.get_mut(SyncKind::Integrity) = Round::Idle;
            *self.next.get_mut(SyncKind::Integrity) = Some(now + intervals.sync_integrity);
            failed.push(SyncError::MasterSilent);
        }
        if self.receive.deadline().is_some_and(|d| d <= now) {
            self.receive = Receive::Idle;
            failed.push(SyncError::MasterPackageTimeout);
        }
        for error in failed {
            self.report(shell, SyncKind::Integrity, Err(error));
        }
        for kind in [SyncKind::Integrity, SyncKind::AgentInfo] {
            if self.next.get(kind).is_none_or(|at| at > now) {
                continue;
            }
            let period = match kind {
                SyncKind::Integrity => intervals.sync_integrity,
                _ => intervals.sync_files,
            };
            let free = self.round_idle(kind)
                && (kind != SyncKind::Integrity || self.receive == Receive::Idle);
            if self.master_link().is_some() && free {
                *self.next.get_mut(kind) = None;
                self.start_round(shell, now, kind, Vec::new());
            } else {
                *self.next.get_mut(kind) = Some(now + period);
            }
        }
    }

    /// Closes `peer` (or forgets it, when the adapter or the connection closed it). The master
    /// link's close ends every round; a local client's ends nothing.
    fn close(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        reason: CloseReason,
        tell_adapter: bool,
    ) {
        let ours = self.master_peer() == Some(peer);
        let packages = if ours {
            self.rounds
                .values()
                .filter_map(|r| r.package().cloned())
                .collect()
        } else {
            Vec::new()
        };
        if !shell.close_peer(peer, tell_adapter, packages) {
            return;
        }
        self.local_clients.remove(&peer);
        if !ours {
            return;
        }
        let intervals = shell.config().items.intervals.worker;
        self.link = MasterLink::Down {
            retry_at: now + intervals.connection_retry,
        };
        self.receive = Receive::Idle;
        let busy: Vec<SyncKind> = SyncKind::ALL
            .into_iter()
            .filter(|k| !self.round_idle(*k))
            .collect();
        for kind in &busy {
            *self.rounds.get_mut(*kind) = Round::Idle;
        }
        let integrity = self.next.get_mut(SyncKind::Integrity);
        if integrity.is_none() {
            *integrity = Some(now + intervals.sync_integrity);
        }
        let agent_info = self.next.get_mut(SyncKind::AgentInfo);
        if agent_info.is_none() {
            *agent_info = Some(now + intervals.sync_files);
        }
        for kind in busy {
            self.report(shell, kind, Err(SyncError::ConnectionLost));
        }
        shell.event(NodeEvent::DisconnectedFromMaster { reason });
    }

    /// Reports the outcome of a `kind` round.
    fn report(
        &mut self,
        shell: &mut Shell,
        kind: SyncKind,
        outcome: Result<SyncCounts, SyncError>,
    ) {
        let worker = shell.config().node_name.clone();
        shell.event(match outcome {
            Ok(counts) => NodeEvent::SyncFinished {
                kind,
                worker,
                counts,
            },
            Err(error) => NodeEvent::SyncFailed {
                kind,
                worker,
                error,
            },
        });
    }
}
