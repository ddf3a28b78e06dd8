//! The master's `hello`: upstream's checks in upstream's order, then registration, and the
//! rules that keep registration a function of the live links:
//!
//! * a link holds at most one name: a second `hello` on a registered link is refused with
//!   upstream's `Client already present` (upstream registered the new name and kept the old one,
//!   so one link could fill the table, and its close freed only the last name);
//! * closing a link releases its name, always (`MasterRole::close`);
//! * a `hello` for a name a live link holds is a [`Claim`]: the holder is probed with `echo-m`;
//!   if it answers within [`NodeLimits::hello_probe_timeout`](crate::roles::NodeLimits) the
//!   claimant is refused (`Client already present`), if it does not (or its link closes) it is
//!   closed and the claimant registered, answered then. A reconnecting worker whose old session is
//!   dead gets back in within the probe's bound; a live worker cannot be pushed out.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::message::Hello;

use super::MasterRole;
use super::session::{Claim, MasterRequest, Registration, Session};
use crate::roles::config::valid_node_name;
use crate::roles::effects::Effect;
use crate::roles::events::{CloseReason, NodeEvent};
use crate::roles::health::WorkerHealth;
use crate::roles::ids::PeerId;
use crate::roles::shell::{Shell, cluster_dir};
use crate::roles::sync_kind::PerKind;
use crate::roles::texts::hello_text;

/// The payload of the probe sent to the holder of a claimed name (the worker answers `ok-c`).
const PROBE_PAYLOAD: &[u8] = b"keepalive";

/// What a valid `hello` asks to register.
struct Joining {
    name: String,
    node_type: String,
    version: String,
}

impl MasterRole {
    pub(super) fn hello(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let hello = match Hello::parse(payload) {
            Ok(hello) => hello,
            Err(text) => {
                let text = String::from_utf8_lossy(&text).into_owned();
                return refuse(shell, now, peer, counter, None, text);
            }
        };
        let name = String::from_utf8_lossy(&hello.name).into_owned();
        let holds_name = self.registration(peer).is_some() || self.claim_of(peer).is_some();
        if holds_name {
            // One name per link: a registered (or claiming) link asks for a second one.
            let text = hello_text::ALREADY_PRESENT.to_owned();
            return refuse(shell, now, peer, counter, Some(name), text);
        }
        if !valid_node_name(&hello.name) {
            let text = hello_text::BAD_NAME.to_owned();
            return refuse(shell, now, peer, counter, Some(name), text);
        }
        let holder = self.registry.get(&name).copied();
        let config = shell.config();
        // Upstream's checks in its order; the cluster and version checks overwrite the result of
        // the name checks (3.9.5 `MasterHandler.hello`). A name already held is decided below.
        let mut result: Option<&str> = None;
        if name == config.node_name {
            result = Some(hello_text::SAME_AS_MASTER);
        }
        if hello.cluster[..] != *config.cluster_name.as_bytes() {
            result = Some(hello_text::OTHER_CLUSTER);
        } else if hello.version[..] != *config.version.as_bytes() {
            result = Some(hello_text::OTHER_VERSION);
        }
        if result.is_none() && holder.is_none() && self.registry.len() >= config.limits.max_workers
        {
            result = Some(hello_text::TOO_MANY);
        }
        if let Some(text) = result {
            return refuse(shell, now, peer, counter, Some(name), text.to_owned());
        }
        let joining = Joining {
            name,
            node_type: String::from_utf8_lossy(&hello.node_type).into_owned(),
            version: String::from_utf8_lossy(&hello.version).into_owned(),
        };
        match holder {
            None => self.register(shell, now, peer, counter, joining),
            Some(holder) => self.contest(shell, now, peer, counter, holder, joining),
        }
    }

    /// A `hello` for a name `holder` holds: the holder is probed, unless another claim for it
    /// already waits (refused at once: one claimant at a time).
    fn contest(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        holder: PeerId,
        joining: Joining,
    ) {
        if self.claims.contains_key(&joining.name) {
            let text = hello_text::ALREADY_PRESENT.to_owned();
            return refuse(shell, now, peer, counter, Some(joining.name), text);
        }
        let deadline = now + shell.config().limits.hello_probe_timeout;
        let Some(probe) = shell.request(now, holder, "echo-m", PROBE_PAYLOAD) else {
            // The holder's link cannot even take a request: it is not a live session.
            self.close(shell, now, holder, CloseReason::Replaced, true);
            return self.register(shell, now, peer, counter, joining);
        };
        if let Some(Session::Worker(w)) = self.sessions.get_mut(&holder) {
            w.requests.insert(probe, MasterRequest::Probe);
        }
        let claim = Claim {
            claimant: peer,
            counter,
            holder,
            deadline,
            node_type: joining.node_type,
            version: joining.version,
        };
        self.claims.insert(joining.name, claim);
    }

    /// The holder of a claimed name answered its probe with `value`: alive (the claimant is
    /// refused) unless the value is the connection's timeout text.
    pub(super) fn probe_answered(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        holder: PeerId,
        value: &[u8],
    ) {
        let Some(name) = self.claimed_from(holder) else {
            return;
        };
        if value == wazuh_cluster_protocol::message::text::TIMEOUT {
            return self.close(shell, now, holder, CloseReason::Replaced, true);
        }
        if let Some(claim) = self.claims.remove(&name) {
            let text = hello_text::ALREADY_PRESENT.to_owned();
            refuse(shell, now, claim.claimant, claim.counter, Some(name), text);
        }
    }

    /// Claims whose holder did not answer in time: the holder is closed (which grants them).
    pub(super) fn expire_claims(&mut self, shell: &mut Shell, now: Instant) {
        let silent: Vec<PeerId> = self
            .claims
            .values()
            .filter(|c| c.deadline <= now)
            .map(|c| c.holder)
            .collect();
        for holder in silent {
            self.close(shell, now, holder, CloseReason::Replaced, true);
        }
    }

    /// `peer` closed: a claim it made is dropped; a claim on the name it held is granted.
    pub(super) fn settle_claims(&mut self, shell: &mut Shell, now: Instant, peer: PeerId) {
        self.claims.retain(|_, c| c.claimant != peer);
        let Some(name) = self.claimed_from(peer) else {
            return;
        };
        let Some(claim) = self.claims.remove(&name) else {
            return;
        };
        let joining = Joining {
            name,
            node_type: claim.node_type,
            version: claim.version,
        };
        self.register(shell, now, claim.claimant, claim.counter, joining);
    }

    /// The name claimed from `holder`, if any.
    fn claimed_from(&self, holder: PeerId) -> Option<String> {
        self.claims
            .iter()
            .find(|(_, c)| c.holder == holder)
            .map(|(name, _)| name.clone())
    }

    /// The claim `peer` made, if any.
    fn claim_of(&self, peer: PeerId) -> Option<&Claim> {
        self.claims.values().find(|c| c.claimant == peer)
    }

    /// Registers `joining` on `peer` and answers its `hello` (request `counter`).
    fn register(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        joining: Joining,
    ) {
        let Some(Session::Worker(w)) = self.sessions.get_mut(&peer) else {
            return;
        };
        self.join_seq += 1;
        let Joining {
            name,
            node_type,
            version,
        } = joining;
        w.registration = Some(Box::new(Registration {
            name: name.clone(),
            node_type,
            version,
            joined: now,
            join_seq: self.join_seq,
            tasks: PerKind::default(),
            health: WorkerHealth::default(),
        }));
        self.registry.insert(name.clone(), peer);
        shell.authenticate(now, peer);
        shell.reply(
            now,
            peer,
            counter,
            true,
            format!("Client {name} added").as_bytes(),
        );
        if let Some(dir) = cluster_dir(&name) {
            shell.set_inbox(peer, dir.clone());
            shell.queue_quiet(peer, Effect::CreateDir { path: dir });
        }
        let addr = shell.addr(peer).unwrap_or_default().to_owned();
        shell.event(NodeEvent::WorkerJoined { name, addr });
    }
}

/// Answers `hello` request `counter` of `peer` with `err` `text`, and logs it with the name asked
/// for and the address it came from.
fn refuse(
    shell: &mut Shell,
    now: Instant,
    peer: PeerId,
    counter: u32,
    name: Option<String>,
    text: String,
) {
    shell.reply(now, peer, counter, false, text.as_bytes());
    let addr = shell.addr(peer).unwrap_or_default().to_owned();
    shell.event(NodeEvent::HelloRefused {
        peer,
        addr,
        name,
        reply: text,
    });
}
