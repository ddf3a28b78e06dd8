//! The master role: `hello` checks and registration ([`hello`]), per-worker synchronisation locks
//! with deadlines, the integrity comparison and the package back, applying worker packages (newer
//! wins) and the agent → worker routing table ([`sync`]), the keepalive check and the periodic,
//! incremental recalculation of its own integrity metadata (here).
//!
//! Upstream's shape kept on the wire (PROTOCOL.md §4.4, §7, §9.2, §11.1): the same commands,
//! payloads and texts, in the same order. Changed on purpose:
//! * a worker is registered only after every `hello` check passed (upstream registers first and
//!   may leave a refused worker in its table), and its name must follow our rule
//!   ([`valid_node_name`](super::valid_node_name));
//! * a link holds one name, released when it closes; a `hello` carrying the name of a registered
//!   worker replaces that session only once it is shown dead (it does not answer an `echo-m`
//!   probe in time), so a restarted worker gets back in within seconds (upstream refused it with
//!   `Client already present` until the master restarted) and a live one is never pushed out
//!   (see [`hello`]);
//! * every lock has a deadline (`timeout_receiving_file` for the worker's file) and is released
//!   on completion, on error, on connection loss and at that deadline: it can never stay stuck;
//! * a `sync_*_w_m` task request while that lock is held is refused (upstream started a second
//!   task); a well-behaved worker asks permission first and never sees it;
//! * one integrity round per worker (by name) per `sync_integrity`: inside it `sync_i_w_m_p` is
//!   answered `False` (upstream's refused permission) and `sync_i_w_m` refused as busy; a worker
//!   following its interval never meets it (its next round starts that long after the last
//!   ended);
//! * a worker's integrity metadata may list at most twice the master's own files plus
//!   `worker_metadata_margin` entries, checked while it is parsed, before any comparison
//!   (upstream compared whatever came: 400,000 entries in a 1.2 MB package cost a second and
//!   500 MB per round).

pub(crate) mod census;
mod hello;
mod session;
mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::Side;
use wazuh_cluster_protocol::frame::Command;

use census::AgentCensus;
use session::{Claim, MasterRequest, Registration, RemoteWorker, Session};

use super::config::NodeConfig;
use super::deadlines::Deadlines;
use super::effects::{Effect, EffectOutput, EffectResult};
use super::error::NodeError;
use super::events::{CloseReason, HandshakeFailure, LockRelease, NodeEvent};
use super::health::{ClusterSnapshot, NodeRow, WorkerStatus, date, health_filter, host_of};
use super::ids::PeerId;
use super::output::Origin;
use super::shell::{Claims, Input, JobId, Link, Shell};
use super::sync_kind::{PerKind, SyncKind};
use super::texts::is_error_value;
use crate::integrity::agents::client_keys_path;
use crate::integrity::metadata::IntegrityMetadata;

/// Commands the master answers itself: on worker links, and on its local socket.
pub(crate) const CLAIMS: Claims = Claims {
    cluster: &[
        "hello",
        "sync_i_w_m_p",
        "sync_e_w_m_p",
        "sync_a_w_m_p",
        "sync_i_w_m",
        "sync_e_w_m",
        "sync_a_w_m",
        "sync_i_w_m_e",
        "sync_e_w_m_e",
        "sync_a_w_m_e",
        "sync_i_w_m_r",
        "sync_e_w_m_r",
        "sync_a_w_m_r",
        "get_nodes",
        "get_health",
    ],
    local: &["get_nodes", "get_health"],
};

/// The master's own integrity scan.
#[derive(Debug)]
struct Scan {
    /// The latest metadata (`None` before the first scan finished).
    metadata: Option<Arc<IntegrityMetadata>>,
    /// The scan running.
    running: Option<JobId>,
    /// When the next one is due (`None` while one runs).
    next: Option<Instant>,
}

/// The registered agents, read from the master's `client.keys` whenever its digest changes.
#[derive(Debug, Default)]
struct Agents {
    /// Agent id → name.
    names: BTreeMap<String, String>,
    /// The digest of the `client.keys` they were read from.
    digest: Option<String>,
    /// The read running.
    reading: Option<JobId>,
}

/// The master role. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct MasterRole {
    sessions: BTreeMap<PeerId, Session>,
    /// Registered workers by name.
    registry: BTreeMap<String, PeerId>,
    /// `hello`s for a registered name, by name, while its holder is probed.
    claims: BTreeMap<String, Claim>,
    join_seq: u64,
    /// Agent name → the worker it reports to (from applied agent-info).
    routes: BTreeMap<String, String>,
    agents: Agents,
    /// Active agents per node, for `get_health`.
    census: AgentCensus,
    scan: Scan,
    /// The deadline of each lock waiting for its worker's file, by worker link and kind: the
    /// master's timer and its timeout find the expired ones here instead of asking every worker.
    lock_deadlines: Deadlines<(PeerId, SyncKind)>,
    next_keepalive_check: Instant,
    /// When each worker (by name) last started an integrity round, within `sync_integrity`.
    integrity_started: BTreeMap<String, Instant>,
    /// Integrity comparisons run (the work a worker's metadata costs the master).
    comparisons: u64,
}

impl MasterRole {
    /// A master at `now`: its first integrity scan starts at once.
    pub(crate) fn new(shell: &mut Shell, now: Instant) -> MasterRole {
        let intervals = shell.config().items.intervals.master;
        let mut master = MasterRole {
            sessions: BTreeMap::new(),
            registry: BTreeMap::new(),
            claims: BTreeMap::new(),
            join_seq: 0,
            routes: BTreeMap::new(),
            agents: Agents::default(),
            census: AgentCensus::default(),
            scan: Scan {
                metadata: None,
                running: None,
                next: Some(now),
            },
            lock_deadlines: Deadlines::default(),
            next_keepalive_check: now + intervals.check_worker_lastkeepalive,
            integrity_started: BTreeMap::new(),
            comparisons: 0,
        };
        master.timeout(shell, now);
        master.census.start(shell, now);
        master
    }

    /// Handles one input. See [`Node`](crate::roles::Node)'s dispatch.
    pub(crate) fn handle(&mut self, shell: &mut Shell, now: Instant, input: Input) {
        match input {
            Input::Connected { peer, addr, origin } => {
                self.connected(shell, now, peer, &addr, origin)
            }
            // A master dials nothing.
            Input::DialFailed { .. } => {}
            Input::Request {
                peer,
                counter,
                command,
                payload,
            } => self.request(shell, now, peer, counter, &command, payload),
            Input::Answer {
                peer,
                counter,
                value,
            } => self.answer(shell, now, peer, counter, value),
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
                let Some(job) = self.worker_mut(peer).and_then(|w| w.jobs.remove(&job)) else {
                    return;
                };
                self.job_done(shell, now, peer, job, result);
            }
            Input::NodeDiskDone { job, result } => {
                if self.scan.running == Some(job) {
                    self.scan_done(shell, now, result);
                } else if self.agents.reading == Some(job) {
                    self.client_keys_read(shell, result);
                }
            }
            Input::Closed {
                peer,
                reason,
                tell_adapter,
            } => self.close(shell, now, peer, reason, tell_adapter),
            Input::Timeout => self.timeout(shell, now),
            // The census's calls are the master's (the node routes them here by their id).
            Input::ApiDone { call, answer } => {
                let limits = &shell.config().limits.api.json.answer;
                self.census.done(now, call, &answer, limits);
            }
            // Strings are the distributed API part's: the node routes them there.
            Input::StringSent { .. } | Input::StringFailed { .. } => {}
        }
    }

    /// When [`MasterRole::handle`] must next see [`Input::Timeout`].
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        debug_assert!(
            self.lock_deadlines
                .iter()
                .all(|((peer, kind), _)| self.lock_free_at(peer, kind) == Some(false)),
            "a lock deadline outlived its lock"
        );
        let locks = self.lock_deadlines.first();
        let recalc = if self.scan.running.is_some() {
            None
        } else {
            self.scan.next
        };
        let claims = self.claims.values().map(|c| c.deadline);
        locks
            .into_iter()
            .chain(recalc)
            .chain(claims)
            .chain([self.next_keepalive_check])
            .min()
    }

    // ----------------------------------------------------------------------------------------
    // What the node reports of its master

    /// The registered workers, by name.
    pub(crate) fn worker_names(&self) -> Vec<String> {
        self.registry.keys().cloned().collect()
    }

    /// The connection of worker `name`.
    pub(crate) fn worker_peer(&self, name: &str) -> Option<PeerId> {
        self.registry.get(name).copied()
    }

    /// Whether the `kind` lock of worker `name` is free (`None`: no such worker).
    pub(crate) fn lock_free(&self, name: &str, kind: SyncKind) -> Option<bool> {
        self.lock_free_at(self.worker_peer(name)?, kind)
    }

    /// Whether the `kind` lock of the worker on `peer` is free (`None`: no worker there).
    fn lock_free_at(&self, peer: PeerId, kind: SyncKind) -> Option<bool> {
        Some(self.registration(peer)?.tasks.get(kind).is_none())
    }

    /// Agent name → the worker it reports to.
    pub(crate) fn agent_routes(&self) -> &BTreeMap<String, String> {
        &self.routes
    }

    /// Integrity comparisons run since start.
    pub(crate) fn comparisons(&self) -> u64 {
        self.comparisons
    }

    /// The latest integrity metadata.
    pub(crate) fn metadata(&self) -> Option<&IntegrityMetadata> {
        self.scan.metadata.as_deref()
    }

    /// Agent id → the node it reports to, as the master places agent requests: the agent
    /// database's `node_name` by the last census (3.9.5 `get_solver_node`); without one, the
    /// registered agents and the worker each one's agent-info came from (`unknown` when none
    /// did: 3.9.5's default `node_name`).
    pub(crate) fn agent_nodes(&self) -> BTreeMap<String, String> {
        if let Some(nodes) = self.census.nodes() {
            return nodes.clone();
        }
        self.agents
            .names
            .iter()
            .map(|(id, name)| {
                let node = self.routes.get(name).map_or("unknown", String::as_str);
                (id.clone(), node.to_owned())
            })
            .collect()
    }

    /// The registered workers and their connections, by name.
    pub(crate) fn worker_links(&self) -> impl Iterator<Item = (&str, PeerId)> {
        self.registry
            .iter()
            .map(|(name, peer)| (name.as_str(), *peer))
    }

    /// Starts a census of active agents if a health answer wanted one and it is due (see
    /// [`census`]); called once each input is handled.
    pub(crate) fn refresh_census(&mut self, shell: &mut Shell, now: Instant) {
        self.census.refresh(shell, now);
    }

    /// The master and its workers as `get_nodes` and `get_health` show them.
    pub(crate) fn snapshot(&self, shell: &Shell) -> ClusterSnapshot {
        let config = shell.config();
        // The last census's count; without one, the agents whose agent-info came from the node.
        let active = |name: &str| {
            self.census
                .active(name)
                .unwrap_or_else(|| self.routes.values().filter(|w| *w == name).count())
        };
        let mut workers: Vec<(&Registration, PeerId)> =
            self.registrations().map(|(p, r)| (r, p)).collect();
        workers.sort_by_key(|(r, _)| r.join_seq);
        let workers = workers
            .into_iter()
            .map(|(r, peer)| {
                let mut locks_free = PerKind::default();
                for kind in SyncKind::ALL {
                    *locks_free.get_mut(kind) = r.tasks.get(kind).is_none();
                }
                let last = shell.last_keepalive(peer).unwrap_or(r.joined).max(r.joined);
                WorkerStatus {
                    row: NodeRow {
                        name: r.name.clone(),
                        node_type: r.node_type.clone(),
                        version: r.version.clone(),
                        ip: host_of(shell.addr(peer).unwrap_or_default()).to_owned(),
                    },
                    active_agents: active(&r.name),
                    locks_free,
                    health: r.health.clone(),
                    last_keepalive: date(shell.unix_time(last)),
                }
            })
            .collect();
        ClusterSnapshot {
            master: master_row(config),
            master_active_agents: active(&config.node_name),
            workers,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Sessions

    fn registrations(&self) -> impl Iterator<Item = (PeerId, &Registration)> {
        self.sessions.iter().filter_map(|(peer, s)| match s {
            Session::Worker(w) => w.registration.as_deref().map(|r| (*peer, r)),
            Session::Local => None,
        })
    }

    fn worker_mut(&mut self, peer: PeerId) -> Option<&mut RemoteWorker> {
        match self.sessions.get_mut(&peer)? {
            Session::Worker(w) => Some(w),
            Session::Local => None,
        }
    }

    fn registration(&self, peer: PeerId) -> Option<&Registration> {
        match self.sessions.get(&peer)? {
            Session::Worker(w) => w.registration.as_deref(),
            Session::Local => None,
        }
    }

    fn registration_mut(&mut self, peer: PeerId) -> Option<&mut Registration> {
        self.worker_mut(peer)?.registration.as_deref_mut()
    }

    fn connected(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        addr: &str,
        origin: Origin,
    ) {
        let (link, session) = match origin {
            Origin::Incoming => (Link::Cluster, Session::Worker(RemoteWorker::default())),
            Origin::Local => (Link::Local, Session::Local),
            // A master dials nothing.
            Origin::Outgoing => return shell.refuse(peer),
        };
        shell.add_peer(now, peer, addr, Side::Server, link);
        self.sessions.insert(peer, session);
    }

    /// Sends a request to a worker and remembers what its answer continues.
    fn ask(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        command: &str,
        payload: &[u8],
        then: MasterRequest,
    ) {
        if let Some(counter) = shell.request(now, peer, command, payload)
            && let Some(w) = self.worker_mut(peer)
        {
            w.requests.insert(counter, then);
        }
    }

    fn request(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        match command.name() {
            b"hello" => return self.hello(shell, now, peer, counter, &payload),
            b"get_nodes" => {
                let reply = super::health::nodes_json(&self.snapshot(shell), &payload);
                return match reply {
                    Ok(json) => shell.reply(now, peer, counter, true, json.as_bytes()),
                    Err(text) => shell.reply(now, peer, counter, false, text.as_bytes()),
                };
            }
            b"get_health" => {
                let filter = health_filter(&payload);
                let json = super::health::health_json(&self.snapshot(shell), filter.as_deref());
                return shell.reply(now, peer, counter, true, json.as_bytes());
            }
            _ => {}
        }
        let name = command.name();
        let found = SyncKind::ALL
            .into_iter()
            .find(|k| name.starts_with(k.command().as_bytes()));
        // The hello gate lets nothing else through before registration.
        let (Some(kind), true) = (found, self.registration(peer).is_some()) else {
            return shell.reply_unknown(now, peer, counter, command);
        };
        match &name[kind.command().len()..] {
            b"_p" => self.permission(shell, now, peer, counter, kind),
            b"" => self.start_task(shell, now, peer, counter, kind),
            b"_e" => self.end_task(shell, now, peer, counter, kind, &payload),
            b"_r" => self.worker_reported(shell, now, peer, counter, kind, &payload),
            _ => shell.reply_unknown(now, peer, counter, command),
        }
    }

    /// The answer to one of the master's requests (`sync_m_c`, `sync_m_c_e`, `sync_m_c_ok`).
    fn answer(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        value: Vec<u8>,
    ) {
        let Some(asked) = self
            .worker_mut(peer)
            .and_then(|w| w.requests.remove(&counter))
        else {
            return;
        };
        match asked {
            MasterRequest::PackageTask => self.package_task(shell, now, peer, value),
            MasterRequest::Probe => self.probe_answered(shell, now, peer, &value),
            MasterRequest::SyncOk | MasterRequest::PackageEnd => {
                if is_error_value(&value) {
                    let text = String::from_utf8_lossy(&value).into_owned();
                    shell.error(Some(peer), NodeError::PeerAnswered(text));
                }
            }
        }
    }

    fn timeout(&mut self, shell: &mut Shell, now: Instant) {
        self.expire_claims(shell, now);
        if self.scan.running.is_none() && self.scan.next.is_some_and(|at| at <= now) {
            self.scan.next = None;
            self.scan.running = Some(shell.run_node_job(Effect::ScanIntegrity));
        }
        let intervals = shell.config().items.intervals.master;
        if self.next_keepalive_check <= now {
            self.next_keepalive_check = now + intervals.check_worker_lastkeepalive;
            let silent: Vec<PeerId> = self
                .registrations()
                .filter(|(peer, r)| {
                    let last = shell
                        .last_keepalive(*peer)
                        .unwrap_or(r.joined)
                        .max(r.joined);
                    now.saturating_duration_since(last)
                        > intervals.max_allowed_time_without_keepalive
                })
                .map(|(peer, _)| peer)
                .collect();
            for peer in silent {
                self.close(shell, now, peer, CloseReason::KeepaliveTimeout, true);
            }
        }
        // Released in link and kind order, as a walk over the workers would.
        let mut expired: Vec<(PeerId, SyncKind)> = self.lock_deadlines.due(now).collect();
        expired.sort_unstable();
        for (peer, kind) in expired {
            let error = super::error::SyncError::WorkerFileTimeout;
            self.release(shell, peer, kind, LockRelease::TimedOut, error);
        }
    }

    fn scan_done(&mut self, shell: &mut Shell, now: Instant, result: EffectResult) {
        let recalc = shell.config().items.intervals.master.recalculate_integrity;
        self.scan.running = None;
        self.scan.next = Some(now + recalc);
        match result {
            Ok(EffectOutput::Scanned { metadata, stats }) => {
                let files = metadata.len();
                let keys_digest = client_keys_path()
                    .ok()
                    .and_then(|path| metadata.0.get(&path)?.md5.clone());
                self.scan.metadata = Some(metadata);
                if keys_digest != self.agents.digest && self.agents.reading.is_none() {
                    self.agents.digest = keys_digest;
                    self.agents.reading = Some(shell.run_node_job(Effect::ReadClientKeys));
                }
                shell.event(NodeEvent::IntegrityRecalculated {
                    files,
                    hashed: stats.files_hashed,
                });
                for (peer, worker_metadata) in self.take_awaiting_scan() {
                    self.compare(shell, now, peer, worker_metadata);
                }
            }
            Ok(other) => shell.error(
                None,
                NodeError::UnexpectedOutput {
                    effect: "scan",
                    output: other.kind(),
                },
            ),
            Err(error) => shell.error(None, NodeError::Scan(error)),
        }
    }

    fn client_keys_read(&mut self, shell: &mut Shell, result: EffectResult) {
        self.agents.reading = None;
        match result {
            Ok(EffectOutput::ClientKeys(agents)) => {
                self.agents.names = agents.into_values().map(|a| (a.id, a.name)).collect();
            }
            Ok(other) => shell.error(
                None,
                NodeError::UnexpectedOutput {
                    effect: "client.keys read",
                    output: other.kind(),
                },
            ),
            Err(error) => {
                // Read again after the next scan.
                self.agents.digest = None;
                shell.error(None, NodeError::Disk(error));
            }
        }
    }

    /// Closes `peer` (or forgets it, when the adapter or the connection closed it): its worker
    /// is unregistered and every lock it held released.
    fn close(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        reason: CloseReason,
        tell_adapter: bool,
    ) {
        self.forget(shell, peer, reason, tell_adapter);
        // After the name is released: a claim on it is granted now.
        self.settle_claims(shell, now, peer);
    }

    /// Forgets `peer`'s session: its name released, its locks freed.
    fn forget(&mut self, shell: &mut Shell, peer: PeerId, reason: CloseReason, tell_adapter: bool) {
        let packages = match self.sessions.get(&peer) {
            Some(Session::Worker(w)) => w.packages(),
            _ => Vec::new(),
        };
        let addr = shell.addr(peer).map(str::to_owned);
        let requires_hello = shell.requires_hello(peer);
        if !shell.close_peer(peer, tell_adapter, packages) {
            return;
        }
        let Some(Session::Worker(w)) = self.sessions.remove(&peer) else {
            return;
        };
        let Some(registration) = w.registration else {
            // A worker link that never passed `hello` has no name to log under: say here why it
            // ended (upstream: "Error during handshake with incoming connection").
            if requires_hello {
                shell.event(NodeEvent::HandshakeFailed {
                    peer,
                    addr: addr.unwrap_or_default(),
                    reason: HandshakeFailure::of(&reason),
                });
            }
            return;
        };
        let Registration { name, tasks, .. } = *registration;
        if self.registry.get(&name) == Some(&peer) {
            self.registry.remove(&name);
        }
        for (kind, task) in tasks.iter() {
            self.lock_deadlines.set((peer, kind), None);
            if task.is_some() {
                shell.event(NodeEvent::LockReleased {
                    worker: name.clone(),
                    kind,
                    cause: LockRelease::ConnectionLost,
                });
                shell.event(NodeEvent::SyncFailed {
                    kind,
                    worker: name.clone(),
                    error: super::error::SyncError::ConnectionLost,
                });
            }
        }
        shell.event(NodeEvent::WorkerLeft { name, reason });
    }
}

/// The master's own `get_nodes` row (upstream: its `nodes[0]` address).
fn master_row(config: &NodeConfig) -> NodeRow {
    NodeRow {
        name: config.node_name.clone(),
        node_type: "master".to_owned(),
        version: config.version.clone(),
        ip: config.address.clone(),
    }
}
