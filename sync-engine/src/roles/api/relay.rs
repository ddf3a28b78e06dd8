//! The distributed API commands as they arrive: requests from local clients and links become
//! tasks or are passed on; answers (`dapi_res`, `dapi_err`) go to the task part they answer or,
//! for a local client's request another node answered, on to that client.

use std::time::Instant;

use bytes::Bytes;

use super::cluster::ClusterView;
use super::files::tmp_file_to_send;
use super::task::{ReplyTo, checked_answer, link_call, with_prefix};
use super::{Asked, Delivery, DistributedApi};
use crate::dapi::names::{Channel, DapiFailure, DapiForward, DapiResult, ForwardTarget};
use crate::dapi::routing::{WorkerLocalDapi, worker_local_dapi};
use crate::dapi::{DapiError, DapiRequest, RequestType, Route};
use crate::roles::ids::PeerId;
use crate::roles::shell::Shell;
use crate::roles::texts::{dapi_text, is_error_value, local_text};

pub(super) use dapi_text::ADDED;

impl DistributedApi {
    /// A worker's local client sends `dapi <json>`: a request that runs anywhere (`local_any`) is
    /// answered by this worker itself (upstream's API ran those in its own process and never
    /// sent them); the three cluster-information routes go to the master as `dapi_cluster`
    /// (answered inline, passed on as `control_res`); the rest as `dapi <client name> <json>`
    /// (answered later with a string and `dapi_res`).
    pub(super) fn client_request(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        client: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let limits = &shell.config().limits.api.json;
        let mut request = match DapiRequest::parse(payload, limits) {
            Ok(request) => request,
            Err(e) => {
                let text = DapiError::from(e).err_payload();
                return shell.reply(now, client, counter, false, text.as_bytes());
            }
        };
        let function = request.function().to_owned();
        if Route::find(&function).is_some_and(|r| r.request_type == RequestType::LocalAny) {
            shell.reply(now, client, counter, true, dapi_text::ADDED.as_bytes());
            let reply = ReplyTo::client(shell, client);
            self.start_task(shell, view, now, reply, payload);
            return;
        }
        let (Some(master), Some(seq)) = (view.master_link(), shell.seq(client)) else {
            let text = local_text::NOT_CONNECTED.as_bytes();
            return shell.reply(now, client, counter, false, text);
        };
        let (command, forwarded, answer, file) = match worker_local_dapi(&function) {
            WorkerLocalDapi::ClusterControl => {
                // 3.9.5's master deletes `arguments.wait_for_complete` before answering
                // (`process_dapi_cluster`) and fails with a KeyError when it is absent: upstream's
                // API always filled it, a client of ours (`wazuh-cluster api`) may not. Filled
                // here as upstream's `distribute_function` would; a request carrying it goes on
                // byte for byte.
                let forwarded = if request.arguments().contains_key("wait_for_complete") {
                    payload.to_vec()
                } else {
                    request.fill_wait_for_complete();
                    request.to_python_json().into_bytes()
                };
                ("dapi_cluster", forwarded, local_text::SENT, None)
            }
            WorkerLocalDapi::Forward => {
                let name = self.clients.name_of(client);
                // The request's `tmp_file` goes to the master first, into this worker's inbox
                // there (3.9.5 `execute_remote_request`); the request is then rewritten to name it.
                let config = shell.config();
                let file = tmp_file_to_send(&config.install_root, &config.node_name, &mut request);
                let forwarded = match file {
                    Some(_) => with_prefix(Some(&name), request.to_python_json().as_bytes()),
                    None => with_prefix(Some(&name), payload),
                };
                ("dapi", forwarded, dapi_text::ADDED, file)
            }
        };
        let control = command == "dapi_cluster";
        let then = Asked::ForClient {
            client,
            seq,
            control,
        };
        if self.ask_after_file(shell, now, master, file, command, forwarded, then) {
            shell.reply(now, client, counter, true, answer.as_bytes());
        } else {
            let text = local_text::NOT_CONNECTED.as_bytes();
            shell.reply(now, client, counter, false, text);
        }
    }

    /// A master's local client sends `dapi_forward <node> <json>`: `dapi <client name> <json>`
    /// to that worker (or to every worker for `fw_all_nodes`); the worker's answer comes back
    /// as `dapi_res <client name> <string id>` and is passed on.
    pub(super) fn forward_for_client(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        client: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let forward = match DapiForward::parse(payload) {
            Ok(forward) => forward,
            Err(e) => {
                let text = DapiError::Internal(e.to_string()).err_payload();
                return shell.reply(now, client, counter, false, text.as_bytes());
            }
        };
        let links = view.worker_links();
        let (targets, answer): (Vec<PeerId>, &str) = match &forward.target {
            ForwardTarget::AllWorkers if links.is_empty() => (Vec::new(), dapi_text::NO_WORKERS),
            ForwardTarget::AllWorkers => (
                links.iter().map(|(_, peer)| *peer).collect(),
                dapi_text::FORWARDED_TO_ALL,
            ),
            ForwardTarget::Node(name) => match links.iter().find(|(n, _)| n == name.as_str()) {
                Some((_, peer)) => (vec![*peer], dapi_text::FORWARDED_TO_WORKER),
                None => {
                    let text = DapiError::UnknownNode(name.to_string()).err_payload();
                    return shell.reply(now, client, counter, false, text.as_bytes());
                }
            },
        };
        let seq = shell.seq(client).unwrap_or_default();
        let name = self.clients.name_of(client);
        let request = with_prefix(Some(&name), forward.request_json);
        for peer in targets {
            let then = Asked::ForClient {
                client,
                seq,
                control: false,
            };
            self.ask(shell, now, peer, "dapi", &request, then);
        }
        shell.reply(now, client, counter, true, answer.as_bytes());
    }

    /// `dapi <name> <json>` on a link: a request this node answers, back to `name` on that link.
    pub(super) fn link_request(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let Some((name, json)) = link_call(payload) else {
            let text = DapiError::Internal("a dapi request on a link starts with a name".into())
                .err_payload();
            return shell.reply(now, peer, counter, false, text.as_bytes());
        };
        shell.reply(now, peer, counter, true, dapi_text::ADDED.as_bytes());
        let reply = ReplyTo::link(shell, peer, name);
        // A `tmp_file` the peer sent before the request is claimed by it (the orphan sweep
        // removes a file no request claims).
        let claimed = self.claim_for_request(shell, view, peer, json);
        let json = claimed.as_ref().map_or(json, |(json, _)| json.as_bytes());
        let task = self.start_task(shell, view, now, reply, json);
        if let Some((_, path)) = claimed {
            if self.tasks.contains_key(&task) {
                self.claimed.insert(task, path);
            } else {
                self.remove_file(shell, path);
            }
        }
    }

    /// `dapi_res <name> <string id>` on a link: the answer to one of our forwarded requests, or
    /// to a local client's request another node answered (passed on to the client).
    pub(super) fn link_result(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let Ok(result) = DapiResult::parse(payload, Channel::Link) else {
            let text = dapi_text::CANNOT_FORWARD.as_bytes();
            return shell.reply(now, peer, counter, false, text);
        };
        let name = result.prefix.as_ref().map_or("", |n| n.as_str()).to_owned();
        let string = result
            .string_id
            .as_str()
            .parse::<u32>()
            .ok()
            .and_then(|id| shell.take_string(peer, id));
        let missing = || {
            DapiError::PeerError(format!(
                "Error receiving string: ID {} not found.",
                result.string_id
            ))
            .answer_json()
        };
        if let Some(part) = self.forwarded_part(name.as_bytes()) {
            shell.reply(
                now,
                peer,
                counter,
                true,
                dapi_text::FORWARDED_RESPONSE.as_bytes(),
            );
            let limits = &shell.config().limits.api.json;
            let answer = match &string {
                Some(text) => checked_answer(&String::from_utf8_lossy(text), limits),
                None => missing(),
            };
            return self.part_done(shell, now, part, answer);
        }
        let Some(client) = self.clients.peer_of(name.as_bytes()) else {
            let text = dapi_text::CANNOT_FORWARD.as_bytes();
            return shell.reply(now, peer, counter, false, text);
        };
        shell.reply(
            now,
            peer,
            counter,
            true,
            dapi_text::RESPONSE_FORWARDED.as_bytes(),
        );
        let answer = string.unwrap_or_else(|| Bytes::from(missing()));
        if let Some(transfer) = shell.send_string(now, client, answer) {
            self.strings.insert((client, transfer), Delivery::ToClient);
        }
    }

    /// `dapi_err <name> <text>` on a link: fails one of our forwarded requests, or is passed on
    /// to a local client.
    pub(super) fn link_failure(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let Ok(failure) = DapiFailure::parse(payload, Channel::Link) else {
            let text = dapi_text::CANNOT_FORWARD.as_bytes();
            return shell.reply(now, peer, counter, false, text);
        };
        let name = failure
            .prefix
            .as_ref()
            .map_or("", |n| n.as_str())
            .to_owned();
        let text = String::from_utf8_lossy(failure.text).into_owned();
        if let Some(part) = self.forwarded_part(name.as_bytes()) {
            shell.reply(
                now,
                peer,
                counter,
                true,
                dapi_text::ERROR_FORWARDED.as_bytes(),
            );
            return self.part_done(shell, now, part, DapiError::PeerError(text).answer_json());
        }
        let Some(client) = self.clients.peer_of(name.as_bytes()) else {
            let text = dapi_text::CANNOT_FORWARD.as_bytes();
            return shell.reply(now, peer, counter, false, text);
        };
        shell.reply(
            now,
            peer,
            counter,
            true,
            dapi_text::ERROR_FORWARDED.as_bytes(),
        );
        self.ask(
            shell,
            now,
            client,
            "dapi_err",
            text.as_bytes(),
            Asked::Notice,
        );
    }

    /// The answer to one of the part's requests.
    pub(super) fn answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        asked: Asked,
        value: Vec<u8>,
    ) {
        match asked {
            Asked::Forward(part) => {
                if is_error_value(&value) {
                    let text = String::from_utf8_lossy(&value).into_owned();
                    self.part_done(shell, now, part, DapiError::PeerError(text).answer_json());
                }
            }
            Asked::ForClient {
                client,
                seq,
                control,
            } => {
                if !shell.is_live(client, seq) {
                    return;
                }
                if control {
                    let result = control_result(&value);
                    self.ask(
                        shell,
                        now,
                        client,
                        "control_res",
                        result.as_bytes(),
                        Asked::Notice,
                    );
                } else if is_error_value(&value) {
                    self.ask(shell, now, client, "dapi_err", &value, Asked::Notice);
                }
            }
            Asked::Notice => {}
        }
    }

    /// A long string of ours reached `peer`, which named it `id`.
    pub(super) fn string_sent(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        delivery: Delivery,
        id: &[u8],
    ) {
        let payload = match &delivery {
            Delivery::Answer { prefix } => with_prefix(prefix.as_deref(), id),
            Delivery::ToClient => id.to_vec(),
        };
        self.ask(shell, now, peer, "dapi_res", &payload, Asked::Notice);
    }

    /// A long string of ours did not reach `peer`: a task's answer becomes `dapi_err`; a
    /// relayed answer's client is unreachable anyway.
    pub(super) fn string_failed(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        delivery: Delivery,
        text: &str,
    ) {
        if let Delivery::Answer { prefix } = delivery {
            let payload = with_prefix(prefix.as_deref(), text.as_bytes());
            self.ask(shell, now, peer, "dapi_err", &payload, Asked::Notice);
        }
    }
}

/// What a worker's local client gets as `control_res` for the master's answer to
/// `dapi_cluster` (3.9.5 `LocalServerHandlerWorker.get_api_response`): the answer as is, an
/// `Error…` text as `{"error": 3000, "message": "Cluster: …"}`, a `WazuhException <code> <text>`
/// as `{"error": code, "message": text}`.
fn control_result(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if is_error_value(value) {
        return DapiError::ControlFailed(text.into_owned()).answer_json();
    }
    if let Some(rest) = text.strip_prefix("WazuhException ")
        && let Some((code, message)) = rest.split_once(' ')
        && let Ok(code) = code.parse::<u16>()
    {
        let mut out = format!("{{\"error\": {code}, \"message\": ");
        crate::pyjson::write_str(&mut out, message);
        out.push('}');
        return out;
    }
    text.into_owned()
}
