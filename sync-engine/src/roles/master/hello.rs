//! The master's `hello`: upstream's checks in upstream's order, then registration.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::message::Hello;

use super::MasterRole;
use super::session::{Registration, Session};
use crate::roles::config::valid_node_name;
use crate::roles::effects::Effect;
use crate::roles::events::{CloseReason, NodeEvent};
use crate::roles::health::{WorkerHealth, host_of};
use crate::roles::ids::PeerId;
use crate::roles::shell::{Shell, cluster_dir};
use crate::roles::sync_kind::PerKind;
use crate::roles::texts::hello_text;

impl MasterRole {
    pub(super) fn hello(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        let refuse = |shell: &mut Shell, text: String| {
            shell.reply(now, peer, counter, false, text.as_bytes());
            shell.event(NodeEvent::HelloRefused { peer, reply: text });
        };
        let hello = match Hello::parse(payload) {
            Ok(hello) => hello,
            Err(text) => return refuse(shell, String::from_utf8_lossy(&text).into_owned()),
        };
        if !valid_node_name(&hello.name) {
            return refuse(shell, hello_text::BAD_NAME.to_owned());
        }
        let name = String::from_utf8_lossy(&hello.name).into_owned();
        let addr = shell.addr(peer).unwrap_or_default().to_owned();
        let existing = self.registry.get(&name).copied();
        let replaces = existing.filter(|old| {
            *old != peer
                && shell
                    .addr(*old)
                    .is_some_and(|old_addr| host_of(old_addr) == host_of(&addr))
        });
        let config = shell.config();
        // Upstream's checks in its order; the cluster and version checks overwrite the result of
        // the name checks (3.9.5 `MasterHandler.hello`).
        let mut result: Option<&str> = None;
        if existing.is_some() && replaces.is_none() {
            result = Some(hello_text::ALREADY_PRESENT);
        } else if name == config.node_name {
            result = Some(hello_text::SAME_AS_MASTER);
        }
        if hello.cluster[..] != *config.cluster_name.as_bytes() {
            result = Some(hello_text::OTHER_CLUSTER);
        } else if hello.version[..] != *config.version.as_bytes() {
            result = Some(hello_text::OTHER_VERSION);
        }
        if result.is_none()
            && replaces.is_none()
            && self.registry.len() >= config.limits.max_workers
        {
            result = Some(hello_text::TOO_MANY);
        }
        if let Some(text) = result {
            return refuse(shell, text.to_owned());
        }
        if let Some(old) = replaces {
            self.close(shell, now, old, CloseReason::Replaced, true);
        }
        self.join_seq += 1;
        let registration = Registration {
            name: name.clone(),
            node_type: String::from_utf8_lossy(&hello.node_type).into_owned(),
            version: String::from_utf8_lossy(&hello.version).into_owned(),
            joined: now,
            join_seq: self.join_seq,
            tasks: PerKind::default(),
            health: WorkerHealth::default(),
        };
        let Some(Session::Worker(w)) = self.sessions.get_mut(&peer) else {
            return;
        };
        w.registration = Some(Box::new(registration));
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
        shell.event(NodeEvent::WorkerJoined { name, addr });
    }
}

#[cfg(test)]
mod tests {
    use crate::roles::health::host_of;

    #[test]
    fn hosts_are_compared_without_ports() {
        assert_eq!(host_of("10.0.0.2:40000"), host_of("10.0.0.2:40001"));
        assert_ne!(host_of("10.0.0.2:40000"), host_of("10.0.0.3:40000"));
        assert_eq!(host_of("[::1]:5"), host_of("[::1]:6"));
        assert_eq!(host_of("worker-a"), "worker-a");
    }
}
