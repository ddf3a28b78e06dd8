//! The worker's side: dial the master, `hello`, then the periodic rounds — integrity every
//! `sync_integrity`, agent-info every `sync_files`, extra-valid after an applied package that
//! left extra-valid files — and the reception and apply of the master's package.
//!
//! Each round is an explicit state (`Round`) with the upstream command sequence (3.9.5
//! `SyncWorker.sync`): build the package, `<cmd>_p` → `True`, `<cmd>` → task id, the file,
//! `<cmd>_e "<task> <path>"` (or `"<task> Error"` when the file could not be sent). A failure to
//! build is reported as `<cmd>_r <text>`, as upstream's `except` does. Whatever happens, the round
//! ends and the next one starts one interval after (a failed sync is retried next interval).
//!
//! On connection loss every round is dropped, and the worker dials again after
//! `connection_retry`. Differences: the next integrity round waits until the master answered the
//! previous one (`sync_m_c_ok`, or its package applied, bounded by `timeout_receiving_file`), so
//! two integrity rounds never overlap.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::Side;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Hello;

use super::config::NodeConfig;
use super::effects::{Effect, EffectOutput, EffectResult};
use super::master::effect_error;
use super::node::{Ended, IncomingState, Node, Pending, Role, Session, Step};
use super::output::{CloseReason, NodeEvent, Output, PeerId, SyncKind};
use crate::integrity::compare::SyncCounts;
use crate::integrity::path::InstallPath;

/// Commands a worker's local-socket client may send (forwarded to the master).
pub(super) const LOCAL_CLAIMED: &[&str] = &["get_nodes", "get_health"];

/// Commands the worker answers itself.
pub(super) const CLAIMED: &[&str] = &["sync_m_c_ok", "sync_m_c", "sync_m_c_e"];

/// The link to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Not connected; dial at `retry_at`.
    Down { retry_at: Instant },
    /// [`Output::Connect`] emitted; given up at `deadline` (an adapter that never answers must
    /// not leave the worker without a master forever).
    Dialing { peer: PeerId, deadline: Instant },
    /// `hello` sent.
    Hello(PeerId),
    /// `hello` accepted.
    Up(PeerId),
}

/// One worker → master round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Round {
    Idle,
    /// The package is being built at `path`.
    Building {
        path: InstallPath,
    },
    /// `_p` sent.
    Permission(Built),
    /// The task command sent.
    Task(Built),
    /// The file is on its way.
    Sending {
        path: InstallPath,
        task: String,
        entries: usize,
    },
    /// `_e` sent.
    Ending {
        entries: usize,
    },
    /// Integrity only: waiting for the master's answer (`sync_m_c_ok` or its package).
    AwaitMaster {
        deadline: Instant,
    },
}

impl Round {
    /// The package file of this round, while it exists on disk (or is being built).
    pub(super) fn package(&self) -> Option<&InstallPath> {
        match self {
            Round::Building { path }
            | Round::Permission(Built { path, .. })
            | Round::Task(Built { path, .. })
            | Round::Sending { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// A built package waiting to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Built {
    pub(super) path: InstallPath,
    pub(super) size: u64,
    /// Files described (integrity) or merged parts (extra-valid, agent-info).
    pub(super) entries: usize,
}

/// Reception of the master's integrity package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Receive {
    Idle,
    /// `sync_m_c` answered with `task`; the file and `sync_m_c_e` must come before `deadline`.
    Waiting {
        task: String,
        deadline: Instant,
    },
    /// `sync_m_c_e` came before the file's commit finished.
    AwaitCommit {
        wire: Bytes,
    },
    /// The apply effect runs.
    Applying,
}

/// The worker's own state.
#[derive(Debug)]
pub(super) struct WorkerState {
    pub(super) link: Link,
    pub(super) rounds: [Round; 3],
    /// When the integrity and agent-info rounds are due (extra-valid has no timer).
    pub(super) next: [Option<Instant>; 3],
    pub(super) receive: Receive,
}

impl WorkerState {
    pub(super) fn new(now: Instant, config: &NodeConfig) -> Self {
        let w = config.items.intervals.worker;
        WorkerState {
            link: Link::Down { retry_at: now },
            rounds: [Round::Idle, Round::Idle, Round::Idle],
            // Upstream's loops start with the process and sleep one period when not connected.
            next: [Some(now + w.sync_integrity), None, Some(now + w.sync_files)],
            receive: Receive::Idle,
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let link = match self.link {
            Link::Down { retry_at } => Some(retry_at),
            Link::Dialing { deadline, .. } => Some(deadline),
            _ => None,
        };
        let rounds = self.rounds.iter().filter_map(|r| match r {
            Round::AwaitMaster { deadline } => Some(*deadline),
            _ => None,
        });
        let receive = match &self.receive {
            Receive::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        };
        self.next
            .iter()
            .flatten()
            .copied()
            .chain(link)
            .chain(rounds)
            .chain(receive)
            .min()
    }
}

impl Node {
    fn worker_state(&self) -> Option<&WorkerState> {
        match &self.role {
            Role::Worker(w) => Some(w),
            Role::Master(_) => None,
        }
    }

    fn worker_state_mut(&mut self) -> Option<&mut WorkerState> {
        match &mut self.role {
            Role::Worker(w) => Some(w),
            Role::Master(_) => None,
        }
    }

    /// Worker: the connection to the master once its `hello` was accepted.
    pub fn master_peer(&self) -> Option<PeerId> {
        match self.worker_state()?.link {
            Link::Up(peer) => Some(peer),
            _ => None,
        }
    }

    fn round(&self, kind: SyncKind) -> Option<Round> {
        Some(self.worker_state()?.rounds[kind.index()].clone())
    }

    /// Worker: whether the `kind` round is idle (`None` on a master).
    pub fn round_idle(&self, kind: SyncKind) -> Option<bool> {
        Some(self.worker_state()?.rounds[kind.index()] == Round::Idle)
    }

    pub(super) fn worker_dial(&mut self, now: Instant) {
        let peer = self.alloc_outgoing();
        let addr = self.config.master_addr.clone();
        let deadline = now
            + self
                .config
                .items
                .intervals
                .communication
                .timeout_cluster_request;
        if let Some(w) = self.worker_state_mut() {
            w.link = Link::Dialing { peer, deadline };
        }
        self.outputs.push_back(Output::Connect { peer, addr });
    }

    pub(super) fn worker_connected(&mut self, now: Instant, peer: PeerId, addr: &str) {
        let dialing = matches!(self.worker_state().map(|w| w.link), Some(Link::Dialing { peer: p, .. }) if p == peer);
        if !dialing {
            self.outputs.push_back(Output::Close { peer });
            return;
        }
        self.add_peer(now, peer, addr, Side::Client, Session::Worker);
        let hello = Hello {
            name: Bytes::from(self.config.node_name.clone()),
            cluster: Bytes::from(self.config.cluster_name.clone()),
            node_type: Bytes::from_static(b"worker"),
            version: Bytes::from(self.config.version.clone()),
        };
        if let Some(w) = self.worker_state_mut() {
            w.link = Link::Hello(peer);
        }
        self.request(now, peer, "hello", &hello.to_payload(), Pending::Hello);
        self.pump(now, peer);
    }

    pub(super) fn worker_dial_failed(&mut self, now: Instant, peer: PeerId) {
        let retry = self.config.items.intervals.worker.connection_retry;
        let Some(w) = self.worker_state_mut() else {
            return;
        };
        if matches!(w.link, Link::Dialing { peer: p, .. } if p == peer) {
            w.link = Link::Down {
                retry_at: now + retry,
            };
            self.event(NodeEvent::DisconnectedFromMaster {
                reason: CloseReason::Lost,
            });
        }
    }

    pub(super) fn worker_peer_removed(&mut self, now: Instant, peer: PeerId, reason: CloseReason) {
        let retry = self.config.items.intervals.worker.connection_retry;
        let intervals = self.config.items.intervals.worker;
        let Some(w) = self.worker_state_mut() else {
            return;
        };
        let ours = matches!(w.link, Link::Hello(p) | Link::Up(p) if p == peer);
        if !ours {
            return;
        }
        w.link = Link::Down {
            retry_at: now + retry,
        };
        w.receive = Receive::Idle;
        let busy: Vec<SyncKind> = SyncKind::ALL
            .into_iter()
            .filter(|k| w.rounds[k.index()] != Round::Idle)
            .collect();
        for kind in &busy {
            w.rounds[kind.index()] = Round::Idle;
        }
        if w.next[0].is_none() {
            w.next[0] = Some(now + intervals.sync_integrity);
        }
        if w.next[2].is_none() {
            w.next[2] = Some(now + intervals.sync_files);
        }
        let worker = self.config.node_name.clone();
        for kind in busy {
            let error = "connection lost".to_owned();
            self.event(NodeEvent::SyncFailed {
                kind,
                worker: worker.clone(),
                error,
            });
        }
        self.event(NodeEvent::DisconnectedFromMaster { reason });
    }

    pub(super) fn worker_timeout(&mut self, now: Instant) {
        let Some(w) = self.worker_state() else { return };
        match w.link {
            Link::Down { retry_at } if retry_at <= now => self.worker_dial(now),
            Link::Dialing { peer, deadline } if deadline <= now => {
                self.outputs.push_back(Output::Close { peer });
                self.worker_dial_failed(now, peer);
            }
            _ => {}
        }
        let intervals = self.config.items.intervals;
        let worker = self.config.node_name.clone();
        let Some(w) = self.worker_state_mut() else {
            return;
        };
        let mut failed = Vec::new();
        if let Round::AwaitMaster { deadline } = w.rounds[0]
            && deadline <= now
        {
            w.rounds[0] = Round::Idle;
            w.next[0] = Some(now + intervals.worker.sync_integrity);
            failed.push((SyncKind::Integrity, "no answer from the master".to_owned()));
        }
        if let Receive::Waiting { deadline, .. } = w.receive
            && deadline <= now
        {
            w.receive = Receive::Idle;
            failed.push((
                SyncKind::Integrity,
                "timeout receiving the master's package".to_owned(),
            ));
        }
        for (kind, error) in failed {
            self.event(NodeEvent::SyncFailed {
                kind,
                worker: worker.clone(),
                error,
            });
        }
        for kind in [SyncKind::Integrity, SyncKind::AgentInfo] {
            let Some(w) = self.worker_state_mut() else {
                return;
            };
            if w.next[kind.index()].is_none_or(|at| at > now) {
                continue;
            }
            let period = match kind {
                SyncKind::Integrity => intervals.worker.sync_integrity,
                _ => intervals.worker.sync_files,
            };
            let up = matches!(w.link, Link::Up(_));
            let free = w.rounds[kind.index()] == Round::Idle
                && (kind != SyncKind::Integrity || w.receive == Receive::Idle);
            if up && free {
                w.next[kind.index()] = None;
                self.start_round(now, kind, Vec::new());
            } else {
                w.next[kind.index()] = Some(now + period);
            }
        }
    }

    fn start_round(&mut self, now: Instant, kind: SyncKind, extra_valid: Vec<InstallPath>) {
        let Some(peer) = self.master_peer() else {
            return;
        };
        let name = self.config.node_name.clone();
        let Some(path) = self.package_path(now, &name) else {
            return;
        };
        if let Some(w) = self.worker_state_mut() {
            w.rounds[kind.index()] = Round::Building { path: path.clone() };
        }
        self.queue_disk(
            peer,
            Effect::BuildWorkerPackage {
                kind,
                path,
                extra_valid,
            },
            Step::BuildWorker(kind),
        );
    }

    /// The round of `kind` is over: schedule the next one (timer kinds) and report.
    fn end_round(&mut self, now: Instant, kind: SyncKind, outcome: Result<SyncCounts, String>) {
        let intervals = self.config.items.intervals.worker;
        let Some(w) = self.worker_state_mut() else {
            return;
        };
        w.rounds[kind.index()] = Round::Idle;
        match kind {
            SyncKind::Integrity => w.next[0] = Some(now + intervals.sync_integrity),
            SyncKind::AgentInfo => w.next[2] = Some(now + intervals.sync_files),
            SyncKind::ExtraValid => {}
        }
        self.report(kind, outcome);
    }

    pub(super) fn worker_built(
        &mut self,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        result: EffectResult,
    ) {
        let Some(Round::Building { path }) =
            self.worker_state().map(|w| w.rounds[kind.index()].clone())
        else {
            return;
        };
        match result {
            Ok(EffectOutput::PackageBuilt { size, entries, .. }) => {
                if let Some(w) = self.worker_state_mut() {
                    w.rounds[kind.index()] = Round::Permission(Built {
                        path,
                        size,
                        entries,
                    });
                }
                let worker = self.config.node_name.clone();
                self.event(NodeEvent::SyncStarted { kind, worker });
                self.request(
                    now,
                    peer,
                    &format!("{}_p", kind.command()),
                    b"",
                    Pending::Permission(kind),
                );
            }
            Ok(EffectOutput::NothingToSend) => {
                // Upstream logs "No file updates" and sends nothing.
                if let Some(w) = self.worker_state_mut() {
                    w.rounds[kind.index()] = Round::Idle;
                }
                self.end_round(now, kind, Ok(SyncCounts::default()));
            }
            other => {
                let error = effect_error("building the package", other);
                self.request(
                    now,
                    peer,
                    &format!("{}_r", kind.command()),
                    error.as_bytes(),
                    Pending::ErrorReport,
                );
                self.end_round(now, kind, Err(error));
            }
        }
    }

    pub(super) fn worker_reply(
        &mut self,
        now: Instant,
        peer: PeerId,
        pending: Pending,
        value: Vec<u8>,
    ) {
        let text = String::from_utf8_lossy(&value).into_owned();
        match pending {
            Pending::Hello => self.hello_answered(now, peer, value, text),
            Pending::Control { local, seq } => self.control_answered(now, local, seq, &value),
            Pending::Permission(kind) => {
                let Some(Round::Permission(built)) = self.round(kind) else {
                    return;
                };
                if value == b"True" {
                    if let Some(w) = self.worker_state_mut() {
                        w.rounds[kind.index()] = Round::Task(built);
                    }
                    self.request(now, peer, kind.command(), b"", Pending::Task(kind));
                } else {
                    let path = built.path;
                    self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
                    let error = if value == b"False" {
                        "Master didnt grant permission to synchronize".to_owned()
                    } else {
                        format!("Error asking for permission: {text}")
                    };
                    self.end_round(now, kind, Err(error));
                }
            }
            Pending::Task(kind) => {
                let Some(Round::Task(Built {
                    path,
                    size,
                    entries,
                })) = self.round(kind)
                else {
                    return;
                };
                // 3.9.5 does not check the task reply: an error text becomes the "task id".
                if self.send_file(now, peer, &path, size).is_some() {
                    if let Some(w) = self.worker_state_mut() {
                        w.rounds[kind.index()] = Round::Sending {
                            path,
                            task: text,
                            entries,
                        };
                    }
                } else {
                    self.queue_disk(peer, Effect::RemoveFile { path }, Step::Quiet);
                    self.send_end(now, peer, kind, format!("{text} Error"), entries);
                }
            }
            Pending::End(kind) => {
                let Some(Round::Ending { entries }) =
                    self.worker_state().map(|w| w.rounds[kind.index()].clone())
                else {
                    return;
                };
                if value.starts_with(b"Error") {
                    return self.end_round(now, kind, Err(text));
                }
                if kind == SyncKind::Integrity {
                    let deadline = now + self.config.timeout_receiving_file();
                    if let Some(w) = self.worker_state_mut() {
                        w.rounds[0] = Round::AwaitMaster { deadline };
                    }
                } else {
                    let counts = SyncCounts {
                        missing: entries,
                        ..SyncCounts::default()
                    };
                    self.end_round(now, kind, Ok(counts));
                }
            }
            _ => {}
        }
    }

    fn hello_answered(&mut self, now: Instant, peer: PeerId, value: Vec<u8>, text: String) {
        if self.worker_state().map(|w| w.link) != Some(Link::Hello(peer)) {
            return;
        }
        if value.starts_with(b"Error") {
            // 3.9.5 closes the transport when the hello result starts with `Error`.
            return self.remove_peer(now, peer, CloseReason::HelloRefused(text), true);
        }
        if let Some(w) = self.worker_state_mut() {
            w.link = Link::Up(peer);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.conn.set_authenticated(now);
        }
        let name = self.config.node_name.clone();
        if let Ok(dir) = InstallPath::new("/queue/cluster").and_then(|q| q.join(&name)) {
            self.queue_disk(peer, Effect::CreateDir { path: dir }, Step::Quiet);
        }
        self.event(NodeEvent::ConnectedToMaster { peer });
    }

    /// Our package went out (or failed): `_e` with the path, or `<task> Error`.
    pub(super) fn worker_file_sent(
        &mut self,
        now: Instant,
        peer: PeerId,
        path: InstallPath,
        failure: Option<String>,
    ) {
        let found = SyncKind::ALL.into_iter().find_map(|kind| {
            match self.worker_state()?.rounds[kind.index()].clone() {
                Round::Sending {
                    path: p,
                    task,
                    entries,
                } if p == path => Some((kind, task, entries)),
                _ => None,
            }
        });
        self.queue_disk(peer, Effect::RemoveFile { path: path.clone() }, Step::Quiet);
        let Some((kind, task, entries)) = found else {
            return;
        };
        let end = match failure {
            None => format!("{task} {path}"),
            Some(_) => format!("{task} Error"),
        };
        self.send_end(now, peer, kind, end, entries);
    }

    /// Ends the sending part of a `kind` round, whether the package went out or not: `<kind>_e`
    /// with `end` (`<task> <path>` or `<task> Error`), then the round waits for its reply.
    fn send_end(
        &mut self,
        now: Instant,
        peer: PeerId,
        kind: SyncKind,
        end: String,
        entries: usize,
    ) {
        self.request(
            now,
            peer,
            &format!("{}_e", kind.command()),
            end.as_bytes(),
            Pending::End(kind),
        );
        if let Some(w) = self.worker_state_mut() {
            w.rounds[kind.index()] = Round::Ending { entries };
        }
    }

    pub(super) fn worker_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        let local = self
            .peers
            .get(&peer)
            .is_some_and(|p| matches!(p.session, Session::Local));
        if local {
            return self.local_request(now, peer, counter, command, payload);
        }
        match command.name() {
            b"sync_m_c_ok" => {
                self.reply(
                    now,
                    peer,
                    counter,
                    true,
                    super::master::sync_text::THANKS.as_bytes(),
                );
                if matches!(
                    self.worker_state().map(|w| &w.rounds[0]),
                    Some(Round::AwaitMaster { .. })
                ) {
                    self.end_round(now, SyncKind::Integrity, Ok(SyncCounts::default()));
                }
            }
            b"sync_m_c" => {
                let task = self.new_task_id();
                let deadline = now + self.config.timeout_receiving_file();
                if let Some(w) = self.worker_state_mut() {
                    w.receive = Receive::Waiting {
                        task: task.clone(),
                        deadline,
                    };
                }
                self.reply(now, peer, counter, true, task.as_bytes());
            }
            b"sync_m_c_e" => self.master_package_end(now, peer, counter, &payload),
            _ => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let _ = p.conn.reply_unknown_command(now, counter, command);
                }
            }
        }
    }

    /// A local client's request (3.9.5 `LocalServerHandlerWorker`): `get_nodes` / `get_health`
    /// go to the master with the same payload and the client is told `Sent request to master
    /// node`; its answer comes back later as a `control_res` request ([`Node::control_answered`]).
    fn local_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        let name = command.name();
        if name != b"get_nodes" && name != b"get_health" {
            if let Some(p) = self.peers.get_mut(&peer) {
                let _ = p.conn.reply_unknown_command(now, counter, command);
            }
            return;
        }
        let Some(master) = self.master_peer() else {
            return self.reply(
                now,
                peer,
                counter,
                false,
                local_text::NOT_CONNECTED.as_bytes(),
            );
        };
        let seq = self.peers.get(&peer).map_or(0, |p| p.seq);
        let name = String::from_utf8_lossy(name).into_owned();
        let pending = Pending::Control { local: peer, seq };
        if self.request(now, master, &name, &payload, pending) {
            self.reply(now, peer, counter, true, local_text::SENT.as_bytes());
        } else {
            self.reply(
                now,
                peer,
                counter,
                false,
                local_text::NOT_CONNECTED.as_bytes(),
            );
        }
        self.pump(now, master);
    }

    /// The master answered a local client's `get_nodes` / `get_health`: the value (the JSON, or
    /// upstream's error text) goes to the client as a `control_res` request, if it is still
    /// connected.
    fn control_answered(&mut self, now: Instant, local: PeerId, seq: u64, value: &[u8]) {
        if self.peers.get(&local).is_none_or(|p| p.seq != seq) {
            return;
        }
        self.request(now, local, "control_res", value, Pending::ControlResult);
        self.pump(now, local);
    }

    fn master_package_end(&mut self, now: Instant, peer: PeerId, counter: u32, payload: &Bytes) {
        let known = |node: &Node, task: &[u8]| {
            matches!(node.worker_state().map(|w| &w.receive),
                Some(Receive::Waiting { task: t, .. }) if t.as_bytes() == task)
        };
        match self.end_receiving_file(now, peer, counter, payload, known) {
            None => {}
            Some(Ended::Ready(file)) => self.apply_master_file(peer, &file),
            Some(Ended::Committing(wire)) => {
                if let Some(w) = self.worker_state_mut() {
                    w.receive = Receive::AwaitCommit { wire };
                }
            }
            Some(Ended::Error) => {
                self.receive_failed(now, "the master could not send its files".to_owned());
            }
            Some(Ended::Missing(file)) => {
                let error = format!("file {:?} was not received", String::from_utf8_lossy(&file));
                self.receive_failed(now, error);
            }
        }
    }

    fn receive_failed(&mut self, now: Instant, error: String) {
        if let Some(w) = self.worker_state_mut() {
            w.receive = Receive::Idle;
        }
        self.integrity_answered(now, Err(error));
    }

    fn apply_master_file(&mut self, peer: PeerId, wire: &Bytes) {
        let target = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.incoming.remove(wire))
            .and_then(|f| f.target);
        let Some(path) = target else { return };
        if let Some(w) = self.worker_state_mut() {
            w.receive = Receive::Applying;
        }
        self.queue_disk(peer, Effect::ApplyMasterPackage { path }, Step::ApplyMaster);
    }

    pub(super) fn worker_file_committed(&mut self, now: Instant, peer: PeerId, wire: &Bytes) {
        let waiting = matches!(self.worker_state().map(|w| &w.receive), Some(Receive::AwaitCommit { wire: w }) if w == wire);
        if !waiting {
            return;
        }
        let committed = self
            .peers
            .get(&peer)
            .and_then(|p| p.incoming.get(wire))
            .map(|f| f.state);
        if committed == Some(IncomingState::Committed) {
            self.apply_master_file(peer, wire);
        } else {
            self.receive_failed(now, "the master's package could not be written".to_owned());
        }
    }

    pub(super) fn worker_applied(&mut self, now: Instant, _peer: PeerId, result: EffectResult) {
        // A new `sync_m_c` may already be waiting: only the apply's own state ends here.
        if let Some(w) = self.worker_state_mut()
            && w.receive == Receive::Applying
        {
            w.receive = Receive::Idle;
        }
        match result {
            Ok(EffectOutput::MasterApplied {
                counts,
                extra_valid,
                report,
            }) => {
                if !report.agents.agents.is_empty() {
                    self.event(NodeEvent::AgentsRemoved {
                        agents: report.agents.agents.iter().map(|a| a.id.clone()).collect(),
                        files: report.agents.removed.len(),
                    });
                }
                self.integrity_answered(now, Ok(counts));
                if !extra_valid.is_empty() && self.round_idle(SyncKind::ExtraValid) == Some(true) {
                    self.start_round(now, SyncKind::ExtraValid, extra_valid);
                }
            }
            other => {
                let error = effect_error("applying the master's package", other);
                self.integrity_answered(now, Err(error));
            }
        }
    }

    /// The master's answer to an integrity round is handled (applied, failed): it ends the round
    /// waiting for it, or is reported alone (a package the master sent on its own).
    fn integrity_answered(&mut self, now: Instant, outcome: Result<SyncCounts, String>) {
        let awaiting = matches!(
            self.worker_state().map(|w| &w.rounds[0]),
            Some(Round::AwaitMaster { .. })
        );
        if awaiting {
            self.end_round(now, SyncKind::Integrity, outcome);
        } else {
            self.report(SyncKind::Integrity, outcome);
        }
    }

    fn report(&mut self, kind: SyncKind, outcome: Result<SyncCounts, String>) {
        let worker = self.config.node_name.clone();
        match outcome {
            Ok(counts) => self.event(NodeEvent::SyncFinished {
                kind,
                worker,
                counts,
            }),
            Err(error) => self.event(NodeEvent::SyncFailed {
                kind,
                worker,
                error,
            }),
        }
    }
}

/// Texts of a worker's local server (3.9.5 `local_server.py`, `exception.py`).
pub(super) mod local_text {
    /// `ok` reply to a forwarded `get_nodes` / `get_health`.
    pub const SENT: &str = "Sent request to master node";
    /// `err` reply when the worker has no master connection (`WazuhException(3023)` as 3.9.5's
    /// `dispatch` writes it).
    pub const NOT_CONNECTED: &str = "WazuhException 3023 Worker node is not connected to master";
}
