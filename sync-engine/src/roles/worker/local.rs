//! The worker's local socket (3.9.5 `LocalServerHandlerWorker`): `get_nodes` / `get_health` go to
//! the master with the same payload and the client is told `Sent request to master node`; the
//! master's answer comes back to the client later as a `control_res` request.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::frame::Command;

use super::{WorkerRequest, WorkerRole};
use crate::roles::ids::PeerId;
use crate::roles::shell::Shell;
use crate::roles::texts::local_text;

impl WorkerRole {
    /// A local client's request.
    pub(super) fn local_request(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        client: PeerId,
        counter: u32,
        command: &Command,
        payload: Bytes,
    ) {
        let name = command.name();
        if name != b"get_nodes" && name != b"get_health" {
            return shell.reply_unknown(now, client, counter, command);
        }
        let (Some(master), Some(seq)) = (self.master_link(), shell.seq(client)) else {
            let text = local_text::NOT_CONNECTED.as_bytes();
            return shell.reply(now, client, counter, false, text);
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let then = WorkerRequest::ForLocalClient { client, seq };
        if self.ask(shell, now, master, &name, &payload, then) {
            shell.reply(now, client, counter, true, local_text::SENT.as_bytes());
        } else {
            let text = local_text::NOT_CONNECTED.as_bytes();
            shell.reply(now, client, counter, false, text);
        }
    }

    /// The master answered a local client's `get_nodes` / `get_health`: the value (the JSON, or
    /// upstream's error text) goes to the client as a `control_res` request, if it is still
    /// connected. Nothing continues after the client's answer.
    pub(super) fn control_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        client: PeerId,
        seq: u64,
        value: &[u8],
    ) {
        if shell.is_live(client, seq) {
            shell.request(now, client, "control_res", value);
        }
    }
}
