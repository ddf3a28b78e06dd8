//! A request this node answers: its parts (one per node that answers it), their deadlines, and
//! the answer once every part is done — merged as 3.9.5's `merge_results` does when several nodes
//! answered — sent back as a long string then `dapi_res`.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use super::cluster::{self, ClusterView};
use super::files::tmp_file_to_send;
use super::{Asked, Delivery, DistributedApi};
use crate::dapi::json::JsonLimits;
use crate::dapi::merge::merged_answer;
use crate::dapi::names::{Channel, DapiCall};
use crate::dapi::routing::{NodeContext, SolverTarget, plan_solvers, route_request};
use crate::dapi::{ApiCall, DapiError, DapiRequest, Destination, JsonObject, JsonValue, Route};
use crate::roles::ids::{ApiCallId, PeerId};
use crate::roles::shell::Shell;

/// One part of one task: `(task, index)`.
pub(super) type PartRef = (u64, usize);

/// Where a task's answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReplyTo {
    peer: PeerId,
    seq: u64,
    /// The name the answer is prefixed with on a link (`dapi_res <prefix> <sid>`); `None` for a
    /// local client (`dapi_res <sid>`).
    prefix: Option<String>,
}

impl ReplyTo {
    /// Local client `peer`.
    pub(super) fn client(shell: &Shell, peer: PeerId) -> ReplyTo {
        ReplyTo {
            peer,
            seq: shell.seq(peer).unwrap_or_default(),
            prefix: None,
        }
    }

    /// The link `peer`, answering with `prefix`.
    pub(super) fn link(shell: &Shell, peer: PeerId, prefix: String) -> ReplyTo {
        ReplyTo {
            peer,
            seq: shell.seq(peer).unwrap_or_default(),
            prefix: Some(prefix),
        }
    }
}

/// One node's share of a task.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A call waiting for a slot among `max_calls`.
    Waiting(ApiCall),
    /// A call the adapter runs.
    Calling {
        id: ApiCallId,
        deadline: Option<Instant>,
    },
    /// Sent to workers as `dapi <id> <json>` (to all of them for `fw_all_nodes`: the first
    /// answer counts, as upstream's).
    Forwarded {
        id: String,
        /// The workers it went to, by connection: their names for the error if they leave.
        peers: BTreeMap<PeerId, String>,
        deadline: Option<Instant>,
    },
    /// Answered.
    Done(String),
}

/// A request being answered. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Task {
    reply: ReplyTo,
    parts: Vec<Part>,
    /// Several parts: the arguments the merge reads (sort, offset, limit).
    merge: Option<JsonObject>,
}

impl Task {
    /// The connection the answer goes to.
    pub(super) fn reply_peer(&self) -> PeerId {
        self.reply.peer
    }

    /// The earliest deadline of a part still waiting.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Calling { deadline, .. } | Part::Forwarded { deadline, .. } => *deadline,
                _ => None,
            })
            .min()
    }
}

/// What a part starts as.
enum Plan {
    Answer(String),
    Call(ApiCall),
    Forward {
        request: DapiRequest,
        peers: Vec<(String, PeerId)>,
    },
}

/// An answer of the adapter's executor, checked: a JSON object within the answer bounds, or
/// an error answer saying why not.
pub(super) fn checked_answer(answer: &str, limits: &crate::dapi::DapiLimits) -> String {
    match JsonValue::parse(answer.as_bytes(), &limits.answer) {
        Ok(JsonValue::Object(_)) => answer.to_owned(),
        Ok(other) => DapiError::Internal(format!(
            "invalid answer from the API executor: a JSON {} instead of an object",
            other.python_type_name()
        ))
        .answer_json(),
        Err(e) => {
            DapiError::Internal(format!("invalid answer from the API executor: {e}")).answer_json()
        }
    }
}

/// The answer of a part whose node closed its connection before answering.
pub(super) fn lost_answer(node: &str) -> String {
    DapiError::PeerError(format!("Error sending request: connection to {node} lost")).answer_json()
}

impl DistributedApi {
    /// Starts answering `json` (a request as a local client or a peer sent it) for `reply`.
    pub(super) fn start_task(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        reply: ReplyTo,
        json: &[u8],
    ) -> u64 {
        let limits = shell.config().limits.api.clone();
        let busy = self.tasks.len() >= limits.max_requests
            || self
                .tasks
                .values()
                .filter(|t| t.reply.peer == reply.peer)
                .count()
                >= limits.max_requests_per_peer;
        let (plans, merge) = if busy {
            let error = DapiError::Internal(format!(
                "too many distributed API requests in progress (limits: {} per node, {} per connection)",
                limits.max_requests, limits.max_requests_per_peer
            ));
            (vec![Plan::Answer(error.answer_json())], None)
        } else {
            match DapiRequest::parse(json, &limits.json) {
                Ok(request) => self.plan(shell, view, request),
                Err(e) => (vec![Plan::Answer(DapiError::from(e).answer_json())], None),
            }
        };
        let id = self.next_task;
        self.next_task += 1;
        let parts = plans
            .iter()
            .map(|plan| match plan {
                Plan::Answer(answer) => Part::Done(answer.clone()),
                Plan::Call(call) => Part::Waiting(call.clone()),
                Plan::Forward { .. } => Part::Done(String::new()),
            })
            .collect();
        self.tasks.insert(
            id,
            Task {
                reply,
                parts,
                merge,
            },
        );
        for (index, plan) in plans.into_iter().enumerate() {
            match plan {
                Plan::Answer(_) => {}
                Plan::Call(_) => self.waiting.push_back((id, index)),
                Plan::Forward { request, peers } => {
                    let part = self.forward(shell, now, (id, index), &request, &peers);
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.parts[index] = part;
                    }
                }
            }
        }
        self.run_waiting_calls(shell, now);
        self.finish_if_done(shell, now, id);
        id
    }

    /// Where `request` runs, as one plan per part, and the merge arguments when there are
    /// several.
    fn plan(
        &self,
        shell: &Shell,
        view: &dyn ClusterView,
        mut request: DapiRequest,
    ) -> (Vec<Plan>, Option<JsonObject>) {
        let config = shell.config();
        let node = NodeContext::new(config.node_type, config.node_name.clone());
        let one = |plan| (vec![plan], None);
        match route_request(&mut request, &node) {
            Err(e) => one(Plan::Answer(e.answer_json())),
            Ok(Destination::ExecuteHere) => one(self.local(shell, view, &request)),
            // A request the master sent is never the master's to run: upstream's worker would
            // send it back; ours says so.
            Ok(Destination::ForwardToMaster) => one(Plan::Answer(
                DapiError::Internal(format!(
                    "{} must run on the master: a worker does not forward the master's requests",
                    request.function()
                ))
                .answer_json(),
            )),
            Ok(Destination::ChooseSolverNodes) => {
                let plan = match plan_solvers(&request, &config.node_name, &view.agent_nodes()) {
                    Ok(plan) => plan,
                    Err(e) => return one(Plan::Answer(e.answer_json())),
                };
                let merge = plan.needs_merge().then(|| plan.merge_arguments().clone());
                let links = view.worker_links();
                let plans = plan
                    .entries()
                    .iter()
                    .map(|entry| match &entry.target {
                        SolverTarget::Local => self.local(shell, view, &entry.request),
                        SolverTarget::Worker(name) => match links.iter().find(|(n, _)| n == name) {
                            Some(link) => Plan::Forward {
                                request: entry.request.clone(),
                                peers: vec![link.clone()],
                            },
                            None => {
                                Plan::Answer(DapiError::UnknownNode(name.clone()).answer_json())
                            }
                        },
                        SolverTarget::AllWorkers if links.is_empty() => {
                            Plan::Answer("{}".to_owned())
                        }
                        SolverTarget::AllWorkers => Plan::Forward {
                            request: entry.request.clone(),
                            peers: links.clone(),
                        },
                    })
                    .collect();
                (plans, merge)
            }
        }
    }

    /// A part this node runs: answered by the node itself, or a call for the adapter.
    fn local(&self, shell: &Shell, view: &dyn ClusterView, request: &DapiRequest) -> Plan {
        let route = match Route::lookup(request.function()) {
            Ok(route) => route,
            Err(e) => return Plan::Answer(e.answer_json()),
        };
        if let Some(answer) = cluster::answer_here(shell, view, route, request) {
            return Plan::Answer(answer);
        }
        let communication = shell.config().items.intervals.communication;
        let timeout = (!request.wait_for_complete()).then_some(communication.timeout_api_exe);
        Plan::Call(ApiCall::new(
            request,
            route.framework_function,
            timeout,
            view.agent_nodes(),
        ))
    }

    /// Sends `request` as `dapi <id> <json>` to `peers`; the part waits for the first
    /// `dapi_res <id> …`.
    fn forward(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        part: PartRef,
        request: &DapiRequest,
        peers: &[(String, PeerId)],
    ) -> Part {
        let id = self.forward_id();
        let root = shell.config().install_root.clone();
        let mut sent: BTreeMap<PeerId, String> = BTreeMap::new();
        for (name, peer) in peers {
            // Each worker gets the request's `tmp_file` first, in its own inbox (3.9.5 `forward`
            // sends it per node; the first send removes it, so only one node ever had it).
            let mut request = request.clone();
            let file = tmp_file_to_send(&root, name, &mut request);
            let payload = DapiCall {
                prefix: id.parse().ok(),
                request_json: request.to_python_json().as_bytes(),
            }
            .to_payload();
            let then = Asked::Forward(part);
            if self.ask_after_file(shell, now, *peer, file, "dapi", payload, then) {
                sent.insert(*peer, name.clone());
            }
        }
        if sent.is_empty() {
            let names: Vec<&str> = peers.iter().map(|(name, _)| name.as_str()).collect();
            return Part::Done(lost_answer(&names.join(", ")));
        }
        self.forwards.insert(id.clone(), part);
        let timeout = shell
            .config()
            .items
            .intervals
            .communication
            .timeout_api_request;
        Part::Forwarded {
            id,
            peers: sent,
            deadline: (!request.wait_for_complete()).then_some(now + timeout),
        }
    }

    /// Hands waiting calls to the adapter while slots are free.
    fn run_waiting_calls(&mut self, shell: &mut Shell, now: Instant) {
        let max_calls = shell.config().limits.api.max_calls;
        while self.calls.len() < max_calls {
            let Some((task, index)) = self.waiting.pop_front() else {
                return;
            };
            let Some(Part::Waiting(call)) = self
                .tasks
                .get(&task)
                .and_then(|t| t.parts.get(index))
                .cloned()
            else {
                continue;
            };
            let id = ApiCallId(self.next_call);
            self.next_call += 1;
            let deadline = call.timeout.map(|timeout| now + timeout);
            self.calls.insert(id, (task, index));
            if let Some(t) = self.tasks.get_mut(&task) {
                t.parts[index] = Part::Calling { id, deadline };
            }
            shell.run_api_call(id, call);
        }
    }

    /// Part `part` is answered with `answer`.
    pub(super) fn part_done(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        (task, index): PartRef,
        answer: String,
    ) {
        let Some(t) = self.tasks.get_mut(&task) else {
            return;
        };
        let Some(part) = t.parts.get_mut(index) else {
            return;
        };
        match std::mem::replace(part, Part::Done(answer)) {
            Part::Calling { id, .. } => {
                self.calls.remove(&id);
            }
            Part::Forwarded { id, .. } => {
                self.forwards.remove(&id);
            }
            Part::Waiting(_) | Part::Done(_) => {}
        }
        self.run_waiting_calls(shell, now);
        self.finish_if_done(shell, now, task);
    }

    /// The part `dapi_res <id> <string id>` / `dapi_err <id> <text>` names, if it is ours.
    pub(super) fn forwarded_part(&self, id: &[u8]) -> Option<PartRef> {
        let id = std::str::from_utf8(id).ok()?;
        self.forwards.get(id).copied()
    }

    /// Sends the task's answer once every part is done.
    fn finish_if_done(&mut self, shell: &mut Shell, now: Instant, task: u64) {
        let done = self
            .tasks
            .get(&task)
            .is_some_and(|t| t.parts.iter().all(|p| matches!(p, Part::Done(_))));
        if !done {
            return;
        }
        let Some(t) = self.tasks.remove(&task) else {
            return;
        };
        self.release_claimed(shell, task);
        let answers: Vec<&str> = t
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Done(answer) => Some(answer.as_str()),
                _ => None,
            })
            .collect();
        let limits: &JsonLimits = &shell.config().limits.api.json.answer;
        let answer = match (&t.merge, answers.as_slice()) {
            (Some(arguments), _) => merged_answer(&answers, arguments, limits),
            (None, [one]) => (*one).to_owned(),
            (None, _) => merged_answer(&answers, &JsonObject::new(), limits),
        };
        self.deliver(shell, now, t.reply, answer);
    }

    /// Sends `answer` to `reply` as a long string, then `dapi_res` (or `dapi_err` when the
    /// string cannot go).
    fn deliver(&mut self, shell: &mut Shell, now: Instant, reply: ReplyTo, answer: String) {
        if !shell.is_live(reply.peer, reply.seq) {
            return;
        }
        match shell.send_string(now, reply.peer, Bytes::from(answer)) {
            Some(transfer) => {
                let delivery = Delivery::Answer {
                    prefix: reply.prefix,
                };
                self.strings.insert((reply.peer, transfer), delivery);
            }
            None => {
                let text = "Error sending the answer: the string could not be sent";
                let payload = with_prefix(reply.prefix.as_deref(), text.as_bytes());
                self.ask(shell, now, reply.peer, "dapi_err", &payload, Asked::Notice);
            }
        }
    }

    /// Parts whose deadline passed are answered with upstream's timeout errors.
    pub(super) fn timeout(&mut self, shell: &mut Shell, now: Instant) {
        let expired: Vec<(PartRef, String)> = self
            .tasks
            .iter()
            .flat_map(|(task, t)| {
                t.parts.iter().enumerate().filter_map(move |(index, part)| {
                    let error = match part {
                        Part::Calling {
                            deadline: Some(d), ..
                        } if *d <= now => DapiError::ExecutionTimeout,
                        Part::Forwarded {
                            deadline: Some(d), ..
                        } if *d <= now => DapiError::Timeout,
                        _ => return None,
                    };
                    Some(((*task, index), error.answer_json()))
                })
            })
            .collect();
        for (part, answer) in expired {
            self.part_done(shell, now, part, answer);
        }
    }

    /// The tasks answering `peer` go: nobody is left to answer.
    pub(super) fn forget_tasks_of(&mut self, shell: &mut Shell, peer: PeerId) {
        let gone: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.reply.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.release_claimed(shell, id);
            if let Some(t) = self.tasks.remove(&id) {
                for part in t.parts {
                    match part {
                        Part::Calling { id, .. } => {
                            self.calls.remove(&id);
                        }
                        Part::Forwarded { id, .. } => {
                            self.forwards.remove(&id);
                        }
                        Part::Waiting(_) | Part::Done(_) => {}
                    }
                }
            }
        }
        self.waiting
            .retain(|(task, _)| self.tasks.contains_key(task));
    }

    /// Forwarded parts that were waiting only on `peer`, which is gone (it is dropped from the
    /// others), with the name of the worker it was.
    pub(super) fn parts_waiting_on(&mut self, peer: PeerId) -> Vec<(PartRef, String)> {
        let mut lost = Vec::new();
        for (task, t) in &mut self.tasks {
            for (index, part) in t.parts.iter_mut().enumerate() {
                if let Part::Forwarded { peers, .. } = part
                    && let Some(name) = peers.remove(&peer)
                    && peers.is_empty()
                {
                    lost.push(((*task, index), name));
                }
            }
        }
        lost
    }
}

/// `<prefix> <rest>`, or `rest` without a prefix.
pub(super) fn with_prefix(prefix: Option<&str>, rest: &[u8]) -> Vec<u8> {
    match prefix {
        Some(prefix) => [prefix.as_bytes(), b" ", rest].concat(),
        None => rest.to_vec(),
    }
}

/// The request of a `dapi` payload on a link: `<name> <json>`.
pub(super) fn link_call(payload: &[u8]) -> Option<(String, &[u8])> {
    let call = DapiCall::parse(payload, Channel::Link).ok()?;
    Some((call.prefix?.as_str().to_owned(), call.request_json))
}
