//! The distributed API part of the node: requests from local clients and peers, their ids, where
//! they run, their answers (merged when several nodes answer), the string transfers that carry
//! them, and their timeouts. It sits beside the role, with its own state and the same `&mut Shell`;
//! [`Node`](super::Node) routes to it the commands and transfers that are its own.
//!
//! ```text
//!   local client ──dapi <json>──────────► worker ──dapi <LC> <json>──► master
//!   local client ◄─string, dapi_res <sid>─ worker ◄─string, dapi_res <LC> <sid>─ master
//!                                                    master ──dapi <id> <json>──► worker (solver)
//!                                                    master ◄─string, dapi_res <id> <sid>─ worker
//! ```
//!
//! Each request this node answers is a [`task`] with one part per node that answers it: a call
//! the adapter runs ([`ApiCall`]), a part the node answers itself ([`cluster`]), or a request
//! forwarded to a worker. Answers that only pass through (a master's answer for a worker's local
//! client, a worker's answer for the master's local client) are [`relay`]s and hold no state
//! but the string in transfer.
//!
//! Differences from 3.9.5, on purpose: request ids are unique per node and never collide with
//! local client names (upstream draws both at random and lets them collide); a request is served
//! while others run (upstream's queue serves one at a time); a peer that goes away fails the
//! parts waiting on it at once (upstream waits for `timeout_api_request`); a `dapi_err` naming
//! one of our forwarded requests fails it (upstream looked it up among its local clients and
//! waited for the timeout); every table is bounded ([`ApiLimits`](super::ApiLimits)).

mod cluster;
mod files;
mod relay;
mod task;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::TransferId;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::rng::Rng;

use super::config::NodeType;
use super::ids::{ApiCallId, PeerId};
use super::shell::{Input, JobId, Shell};
use crate::dapi::names::MAX_NAME_LEN;

use crate::integrity::path::InstallPath;
pub(crate) use cluster::ClusterView;
use files::FileSend;
use task::{PartRef, Task};

/// The commands the distributed API part answers, per node type: on cluster links and on the
/// local socket.
pub(crate) fn claims(node_type: NodeType) -> (&'static [&'static str], &'static [&'static str]) {
    match node_type {
        NodeType::Master => (
            &["dapi", "dapi_res", "dapi_err", "dapi_cluster"],
            &["dapi", "dapi_forward", "get_config", "send_file"],
        ),
        NodeType::Worker => (
            &["dapi", "dapi_res", "dapi_err"],
            &["dapi", "get_config", "send_file"],
        ),
    }
}

/// Whether `command` is one of the part's (on any link).
pub(crate) fn is_api_command(command: &Command) -> bool {
    matches!(
        command.name(),
        b"dapi"
            | b"dapi_res"
            | b"dapi_err"
            | b"dapi_cluster"
            | b"dapi_forward"
            | b"get_config"
            | b"send_file"
    )
}

/// Local client names are `0..2^20` (3.9.5 `SystemRandom().randint(0, 2**20 - 1)`); our request
/// ids start above, so a `dapi_res <name>` never mistakes one for the other.
const LOCAL_NAMES: u64 = 1 << 20;

/// What the answer to one of the part's requests continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Our `dapi <id> <json>` to a worker: an error answer fails the part.
    Forward(PartRef),
    /// A request made for a local client: `dapi <LC> <json>` (its failure goes to the client as
    /// `dapi_err`), or a worker's `dapi_cluster` (its answer goes to the client as `control_res`).
    ForClient {
        client: PeerId,
        seq: u64,
        control: bool,
    },
    /// `dapi_res`, `dapi_err`, `control_res`: nothing continues.
    Notice,
}

/// What follows a long string of ours once the peer took it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delivery {
    /// A task's answer: `dapi_res [<prefix> ]<string id>` on the same link.
    Answer { prefix: Option<String> },
    /// An answer relayed to a local client: `dapi_res <string id>`.
    ToClient,
}

/// The local clients' names.
#[derive(Debug)]
struct LocalNames {
    by_name: BTreeMap<String, PeerId>,
    by_peer: BTreeMap<PeerId, String>,
    rng: Rng,
}

impl LocalNames {
    /// The name of local client `peer`, drawn the first time it is needed.
    fn name_of(&mut self, peer: PeerId) -> String {
        if let Some(name) = self.by_peer.get(&peer) {
            return name.clone();
        }
        // At most 2^20 names: a live client per name would need a million open sockets.
        let name = loop {
            let candidate = self.rng.below(LOCAL_NAMES).to_string();
            if !self.by_name.contains_key(&candidate) {
                break candidate;
            }
        };
        self.by_name.insert(name.clone(), peer);
        self.by_peer.insert(peer, name.clone());
        name
    }

    fn peer_of(&self, name: &[u8]) -> Option<PeerId> {
        let name = std::str::from_utf8(name).ok()?;
        self.by_name.get(name).copied()
    }

    fn forget(&mut self, peer: PeerId) {
        if let Some(name) = self.by_peer.remove(&peer) {
            self.by_name.remove(&name);
        }
    }
}

/// The distributed API part. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct DistributedApi {
    clients: LocalNames,
    /// Local clients by connection (their requests reach the part on the local socket).
    local_peers: BTreeSet<PeerId>,
    tasks: BTreeMap<u64, Task>,
    /// Our `dapi <id> <json>` to workers, by the id in it.
    forwards: BTreeMap<String, PartRef>,
    /// Calls handed to the adapter.
    calls: BTreeMap<ApiCallId, PartRef>,
    /// Calls waiting for a slot (`max_calls`).
    waiting: VecDeque<PartRef>,
    asked: BTreeMap<(PeerId, u32), Asked>,
    strings: BTreeMap<(PeerId, TransferId), Delivery>,
    next_task: u64,
    next_forward: u64,
    next_call: u64,
    /// Files waiting for their stat, then being sent ([`files`]).
    stats: BTreeMap<JobId, FileSend>,
    sends: BTreeMap<(PeerId, TransferId), FileSend>,
    /// Removals of files the part owned.
    removals: BTreeSet<JobId>,
    /// Files peers sent that tasks claimed, removed when the task ends.
    claimed: BTreeMap<u64, InstallPath>,
}

impl DistributedApi {
    /// The part of a node whose random draws come from `rng`.
    pub(crate) fn new(rng: Rng) -> DistributedApi {
        DistributedApi {
            clients: LocalNames {
                by_name: BTreeMap::new(),
                by_peer: BTreeMap::new(),
                rng,
            },
            local_peers: BTreeSet::new(),
            tasks: BTreeMap::new(),
            forwards: BTreeMap::new(),
            calls: BTreeMap::new(),
            waiting: VecDeque::new(),
            asked: BTreeMap::new(),
            strings: BTreeMap::new(),
            next_task: 0,
            next_forward: LOCAL_NAMES,
            next_call: 0,
            stats: BTreeMap::new(),
            sends: BTreeMap::new(),
            removals: BTreeSet::new(),
            claimed: BTreeMap::new(),
        }
    }

    /// Whether the answer to request `counter` on `peer` is the part's.
    pub(crate) fn awaits(&self, peer: PeerId, counter: u32) -> bool {
        self.asked.contains_key(&(peer, counter))
    }

    /// Requests being answered (for inspection and bounds checks).
    pub(crate) fn requests_in_progress(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the part still owes `peer` something: an answer to a request it made, or the
    /// delivery of one (a request or string of ours on its link awaiting its reply).
    pub(crate) fn owes(&self, peer: PeerId) -> bool {
        self.tasks.values().any(|t| t.reply_peer() == peer)
            || self.asked.keys().any(|(p, _)| *p == peer)
            || self.strings.keys().any(|(p, _)| *p == peer)
            || self
                .stats
                .values()
                .chain(self.sends.values())
                .any(|s| s.for_client(peer))
    }

    /// A local client connected (its requests are the part's as well as the role's).
    pub(crate) fn local_client(&mut self, peer: PeerId) {
        self.local_peers.insert(peer);
    }

    /// Handles one input the node routed here.
    pub(crate) fn handle(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        input: Input,
    ) {
        match input {
            Input::Request {
                peer,
                counter,
                command,
                payload,
            } => {
                let local = self.local_peers.contains(&peer);
                self.request(shell, view, now, peer, counter, &command, payload, local);
            }
            Input::Answer {
                peer,
                counter,
                value,
            } => {
                if let Some(asked) = self.asked.remove(&(peer, counter)) {
                    self.answered(shell, now, asked, value);
                }
            }
            Input::StringSent { peer, transfer, id } => {
                if let Some(delivery) = self.strings.remove(&(peer, transfer)) {
                    self.string_sent(shell, now, peer, delivery, &id);
                }
            }
            Input::StringFailed {
                peer,
                transfer,
                failure,
            } => {
                if let Some(delivery) = self.strings.remove(&(peer, transfer)) {
                    self.string_failed(shell, now, peer, delivery, &failure.to_string());
                }
            }
            Input::ApiDone { call, answer } => {
                if let Some(part) = self.calls.remove(&call) {
                    let answer = task::checked_answer(&answer, &shell.config().limits.api.json);
                    self.part_done(shell, now, part, answer);
                }
            }
            Input::NodeDiskDone { job, result } => self.job_done(shell, now, job, result),
            Input::FileSent {
                peer,
                transfer,
                failure,
                ..
            } => self.file_sent(shell, now, peer, transfer, failure),
            Input::Timeout => self.timeout(shell, now),
            // Connections, files and disk jobs are the role's.
            _ => {}
        }
    }

    /// When [`DistributedApi::handle`] must next see [`Input::Timeout`].
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.tasks.values().filter_map(Task::next_deadline).min()
    }

    /// Connections that closed: their local names, the requests they asked and the answers
    /// waiting on them go; parts waiting on them fail at once.
    pub(crate) fn peers_closed(&mut self, shell: &mut Shell, now: Instant, peers: &[PeerId]) {
        for &peer in peers {
            self.clients.forget(peer);
            self.local_peers.remove(&peer);
            self.asked.retain(|(p, _), _| *p != peer);
            self.strings.retain(|(p, _), _| *p != peer);
            self.forget_tasks_of(shell, peer);
            self.files_closed(shell, now, peer);
            for (part, name) in self.parts_waiting_on(peer) {
                self.part_done(shell, now, part, task::lost_answer(&name));
            }
        }
    }

    /// Sends `command payload` on `peer` for the part, remembering what its answer continues.
    fn ask(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        command: &str,
        payload: &[u8],
        then: Asked,
    ) -> bool {
        match shell.request(now, peer, command, payload) {
            Some(counter) => {
                self.asked.insert((peer, counter), then);
                true
            }
            None => false,
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one request's coordinates; splitting them would only rename them"
    )]
    fn request(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        peer: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
        local: bool,
    ) {
        let master = shell.config().node_type == NodeType::Master;
        match (command.name(), local, master) {
            (b"get_config", true, _) => {
                let config = cluster::config_json(shell.config());
                shell.reply(now, peer, counter, true, config.as_bytes());
            }
            (b"dapi", true, true) => {
                shell.reply(now, peer, counter, true, relay::ADDED.as_bytes());
                self.start_task(
                    shell,
                    view,
                    now,
                    task::ReplyTo::client(shell, peer),
                    &payload,
                );
            }
            (b"dapi", true, false) => {
                self.client_request(shell, view, now, peer, counter, &payload)
            }
            (b"dapi_forward", true, true) => {
                self.forward_for_client(shell, view, now, peer, counter, &payload)
            }
            (b"send_file", true, _) => {
                self.send_file_for_client(shell, view, now, peer, counter, &payload)
            }
            (b"dapi", false, _) => self.link_request(shell, view, now, peer, counter, &payload),
            (b"dapi_res", false, _) => self.link_result(shell, now, peer, counter, &payload),
            (b"dapi_err", false, _) => self.link_failure(shell, now, peer, counter, &payload),
            (b"dapi_cluster", false, true) => {
                let (ok, answer) = cluster::dapi_cluster(shell, view, &payload);
                shell.reply(now, peer, counter, ok, answer.as_bytes());
            }
            _ => shell.reply_unknown(now, peer, counter, command),
        }
    }

    /// A part's peer or name, bounded for ids we read back from a peer.
    fn forward_id(&mut self) -> String {
        let id = self.next_forward.to_string();
        self.next_forward += 1;
        debug_assert!(id.len() <= MAX_NAME_LEN);
        id
    }
}
