//! Node events as log lines an operator of upstream Wazuh recognises
//! (`[Worker worker1] [Integrity] ...`, `[Master] [Main] ...`): the peer tag goes in a `peer`
//! span, the task tag in a `task` field, as the CLI's logger expects (adapters/cli/src/logging.rs).

use std::time::Instant;

use wazuh_cluster_sync::integrity::apply::SkipReason;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::roles::{HandshakeFailure, NodeEvent, NodeType, SyncKind};

use crate::log_limit::{LogLimiter, MAX_MESSAGE, MAX_PEER_TEXT, escaped};

/// Upstream's tag of a synchronisation in its log lines.
fn tag(kind: SyncKind) -> &'static str {
    match kind {
        SyncKind::Integrity => "Integrity",
        SyncKind::ExtraValid => "Extra valid",
        SyncKind::AgentInfo => "Agent info",
    }
}

/// How one node event is logged: the peer tag (`Worker worker1`, `Master`; `None` for the node
/// itself), upstream's task tag, the message, and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// Peer tag, printed by the logger as `[tag]` (the `peer` span's `tag` field).
    pub peer: Option<String>,
    /// Task tag (`Main`, `Integrity`, `Agent info`, `Extra valid`).
    pub task: &'static str,
    /// The text.
    pub message: String,
    /// Level.
    pub level: tracing::Level,
}

/// The log line of `event` on a node of type `node_type`.
pub fn event_line(node_type: NodeType, event: &NodeEvent) -> EventLine {
    use tracing::Level;
    // Peer strings inside are escaped and cut where they are formatted; the whole message is
    // cut here (an error's text may quote a peer's bytes).
    let line = |peer: Option<String>, task, message: String, level| EventLine {
        peer,
        task,
        message: escaped(&message, MAX_MESSAGE),
        level,
    };
    // A synchronisation's peer: the worker on a master, the master on a worker.
    let sync_peer = |worker: &str| match node_type {
        NodeType::Master => Some(format!("Worker {worker}")),
        NodeType::Worker => Some("Master".to_owned()),
    };
    match event {
        NodeEvent::WorkerJoined { name, addr } => line(
            Some(format!("Worker {name}")),
            "Main",
            format!("Connected from {addr}"),
            Level::INFO,
        ),
        NodeEvent::WorkerLeft { name, reason: r } => line(
            Some(format!("Worker {name}")),
            "Main",
            format!("Disconnected: {r}"),
            Level::INFO,
        ),
        NodeEvent::HelloRefused {
            peer,
            addr,
            name,
            reply,
        } => {
            let name = name
                .as_deref()
                .map_or_else(|| "(unparsed)".to_owned(), |n| escaped(n, MAX_PEER_TEXT));
            let reply = escaped(reply, MAX_PEER_TEXT);
            let message = format!("Refused hello of {name} from {addr} ({peer}): {reply}");
            line(None, "Main", message, Level::WARN)
        }
        NodeEvent::HandshakeFailed { addr, reason, .. } => {
            // A peer that hangs up (after a refused hello, a port probe) is routine; a key,
            // framing or deadline fault is worth a warning.
            let level = if *reason == HandshakeFailure::PeerClosed {
                Level::INFO
            } else {
                Level::WARN
            };
            let message =
                format!("Error during handshake with incoming connection from {addr}: {reason}");
            line(None, "Main", message, level)
        }
        NodeEvent::ConnectedToMaster { .. } => line(
            Some("Master".to_owned()),
            "Main",
            "Successfully connected to master".to_owned(),
            Level::INFO,
        ),
        NodeEvent::DisconnectedFromMaster { reason: r } => line(
            Some("Master".to_owned()),
            "Main",
            format!("Disconnected: {r}"),
            Level::WARN,
        ),
        NodeEvent::SyncStarted { kind, worker } => line(
            sync_peer(worker),
            tag(*kind),
            "Starting".to_owned(),
            Level::DEBUG,
        ),
        NodeEvent::SyncFinished {
            kind,
            worker,
            counts,
        } => {
            // A round that found nothing to do is the steady state: debug, not info.
            let level = if *counts == SyncCounts::default() {
                Level::DEBUG
            } else {
                Level::INFO
            };
            let message = format!(
                "Finished: missing {}, shared {}, extra {}, extra valid {}",
                counts.missing, counts.shared, counts.extra, counts.extra_valid
            );
            line(sync_peer(worker), tag(*kind), message, level)
        }
        NodeEvent::SyncFailed {
            kind,
            worker,
            error,
        } => line(
            sync_peer(worker),
            tag(*kind),
            format!("Failed: {error}"),
            Level::WARN,
        ),
        NodeEvent::LockReleased {
            worker,
            kind,
            cause,
        } => line(
            sync_peer(worker),
            tag(*kind),
            format!("Lock released ({cause:?})"),
            Level::DEBUG,
        ),
        // Upstream's worker logs this in its integrity task before writing the new client.keys.
        NodeEvent::AgentsRemoved { agents, files } => line(
            Some("Master".to_owned()),
            "Integrity",
            format!(
                "Removing files from {} agents ({}): {files} removed",
                agents.len(),
                agents.join(", ")
            ),
            Level::INFO,
        ),
        NodeEvent::IntegrityRecalculated { files, hashed } => line(
            None,
            "Integrity",
            format!("Recalculated: {files} files, {hashed} hashed"),
            Level::DEBUG,
        ),
        NodeEvent::PartsSkipped {
            worker,
            kind,
            reason,
            count,
            examples,
        } => {
            let (message, level) = skipped_line(*kind, *reason, *count, examples);
            line(sync_peer(worker), tag(*kind), message, level)
        }
        NodeEvent::UnclaimedFileRemoved { peer, path, after } => line(
            None,
            "Main",
            format!(
                "{peer}: removed {path}: no task claimed it within {} s",
                after.as_secs()
            ),
            Level::INFO,
        ),
        NodeEvent::Error { peer, error } => {
            let message = match peer {
                Some(peer) => format!("{peer}: {error}"),
                None => error.to_string(),
            };
            line(None, "Main", message, Level::WARN)
        }
        other => line(None, "Main", format!("{other:?}"), Level::DEBUG),
    }
}

/// The line for parts skipped from a worker's package: upstream's words where upstream logs it
/// (`client.keys` as a warning; unknown agents' and old files' counts at debug in 3.9.5, here at
/// info with the first names: a worker sending parts the master drops is worth seeing), and a bad
/// time as a warning (upstream failed the part with an error line).
fn skipped_line(
    kind: SyncKind,
    reason: SkipReason,
    count: usize,
    examples: &[String],
) -> (String, tracing::Level) {
    use tracing::Level;
    let which = format!("({})", examples.join(", "));
    match reason {
        SkipReason::ClientKeysFromWorker => (
            "Client.keys received in a master node".to_owned(),
            Level::WARN,
        ),
        SkipReason::UnknownAgent if kind == SyncKind::AgentInfo => (
            format!("Received {count} agent statuses for non-existent agents. Skipping. {which}"),
            Level::INFO,
        ),
        SkipReason::UnknownAgent => (
            format!(
                "Received {count} group assignments for non-existent agents. Skipping. {which}"
            ),
            Level::INFO,
        ),
        SkipReason::BadTime => (
            format!("Received {count} parts with a bad modification time. Skipping. {which}"),
            Level::WARN,
        ),
        SkipReason::LocalNewer => (
            format!("Received {count} old files (the local copies are newer). Skipping. {which}"),
            Level::DEBUG,
        ),
        other => (
            format!("Skipped {count} parts ({other:?}). {which}"),
            Level::INFO,
        ),
    }
}

/// The (peer, kind) a refusal is rate-limited under: the remote host for refused handshakes
/// (a keyless flood comes on many connections), the connection for a linked peer's errors.
fn refusal_key(event: &NodeEvent) -> Option<(String, &'static str)> {
    match event {
        NodeEvent::HelloRefused { addr, .. } => Some((host(addr).to_owned(), "hello refused")),
        NodeEvent::HandshakeFailed { addr, .. } => {
            Some((host(addr).to_owned(), "handshake failed"))
        }
        NodeEvent::Error {
            peer: Some(peer), ..
        } => Some((peer.to_string(), "error")),
        _ => None,
    }
}

/// `addr` without its port.
fn host(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    }
}

/// The node's log: event lines, refusals rate-limited (see [`crate::log_limit`]).
#[derive(Debug)]
pub struct EventLog {
    node_type: NodeType,
    limiter: LogLimiter,
}

impl EventLog {
    /// The log of a node of `node_type` (which names the peers in its lines).
    pub fn new(node_type: NodeType) -> EventLog {
        EventLog {
            node_type,
            limiter: LogLimiter::default(),
        }
    }

    /// Logs `event` at `now`, unless it is one refusal too many from its peer.
    pub fn log(&mut self, event: &NodeEvent, now: Instant) {
        let node_type = self.node_type;
        match refusal_key(event) {
            Some((peer, kind)) => log_refusal(&mut self.limiter, &peer, kind, now, || {
                log_event(node_type, event)
            }),
            None => {
                report_ended(&mut self.limiter, now);
                log_event(node_type, event);
            }
        }
    }
}

/// Writes one refusal of `kind` from `peer` through `limiter`: the count of what an ended window
/// suppressed first, then the line itself (`write`) unless it is one too many in its window.
pub fn log_refusal(
    limiter: &mut LogLimiter,
    peer: &str,
    kind: &'static str,
    now: Instant,
    write: impl FnOnce(),
) {
    report_ended(limiter, now);
    let admitted = limiter.admit(peer, kind, now);
    if let Some(count) = admitted.suppressed_before {
        report_suppressed(peer, kind, count);
    }
    if admitted.write {
        write();
    }
}

/// Reports the windows of `limiter` ended by `now`.
fn report_ended(limiter: &mut LogLimiter, now: Instant) {
    for (peer, kind, count) in limiter.ended(now) {
        report_suppressed(&peer, kind, count);
    }
}

fn report_suppressed(peer: &str, kind: &str, count: u64) {
    let secs = LogLimiter::WINDOW.as_secs();
    tracing::warn!(
        task = "Main",
        "{peer}: … {count} more {kind} suppressed in the last {secs} s"
    );
}

/// Sends `event` to `tracing`, following the CLI's span convention (a `peer` span with the peer
/// tag, a `task` field).
fn log_event(node_type: NodeType, event: &NodeEvent) {
    let EventLine {
        peer,
        task,
        message,
        level,
    } = event_line(node_type, event);
    let span = match &peer {
        Some(tag) => tracing::info_span!("peer", tag = %tag),
        None => tracing::Span::none(),
    };
    let _entered = span.enter();
    match level {
        tracing::Level::WARN => tracing::warn!(task, "{message}"),
        tracing::Level::INFO => tracing::info!(task, "{message}"),
        _ => tracing::debug!(task, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_agents_are_logged_as_upstreams_worker_does_with_the_ids() {
        let event = NodeEvent::AgentsRemoved {
            agents: vec!["009".to_owned(), "012".to_owned()],
            files: 5,
        };
        assert_eq!(
            event_line(NodeType::Worker, &event),
            EventLine {
                peer: Some("Master".to_owned()),
                task: "Integrity",
                message: "Removing files from 2 agents (009, 012): 5 removed".to_owned(),
                level: tracing::Level::INFO,
            }
        );
    }

    #[test]
    fn parts_skipped_from_a_workers_package_are_logged_with_upstreams_words() {
        let skipped = |kind, reason, examples: &[&str]| NodeEvent::PartsSkipped {
            worker: "worker1".to_owned(),
            kind,
            reason,
            count: examples.len(),
            examples: examples.iter().map(|e| (*e).to_owned()).collect(),
        };
        let lines = [
            skipped(
                SyncKind::AgentInfo,
                SkipReason::ClientKeysFromWorker,
                &["/etc/client.keys"],
            ),
            skipped(
                SyncKind::AgentInfo,
                SkipReason::UnknownAgent,
                &["/queue/agent-info/ghost-10.0.0.9"],
            ),
            skipped(
                SyncKind::ExtraValid,
                SkipReason::UnknownAgent,
                &["/queue/agent-groups/099", "/queue/agent-groups/100"],
            ),
            skipped(
                SyncKind::AgentInfo,
                SkipReason::BadTime,
                &["/queue/agent-info/agent-two-any"],
            ),
        ]
        .map(|event| {
            let line = event_line(NodeType::Master, &event);
            assert_eq!(line.peer.as_deref(), Some("Worker worker1"));
            (line.task, line.message, line.level)
        });
        use tracing::Level;
        assert_eq!(
            lines,
            [
                (
                    "Agent info",
                    "Client.keys received in a master node".to_owned(),
                    Level::WARN
                ),
                (
                    "Agent info",
                    "Received 1 agent statuses for non-existent agents. Skipping. (/queue/agent-info/ghost-10.0.0.9)".to_owned(),
                    Level::INFO
                ),
                (
                    "Extra valid",
                    "Received 2 group assignments for non-existent agents. Skipping. (/queue/agent-groups/099, /queue/agent-groups/100)".to_owned(),
                    Level::INFO
                ),
                (
                    "Agent info",
                    "Received 1 parts with a bad modification time. Skipping. (/queue/agent-info/agent-two-any)".to_owned(),
                    Level::WARN
                ),
            ]
        );
    }

    #[test]
    fn a_refused_hello_is_logged_with_the_name_and_the_address() {
        let event = NodeEvent::HelloRefused {
            peer: wazuh_cluster_sync::roles::PeerId(4),
            addr: "10.0.0.2:40001".to_owned(),
            name: Some("worker1".to_owned()),
            reply: "Client already present".to_owned(),
        };
        let line = event_line(NodeType::Master, &event);
        assert_eq!(
            line.message,
            "Refused hello of worker1 from 10.0.0.2:40001 (peer 4): Client already present"
        );
        assert_eq!(line.level, tracing::Level::WARN);
    }

    #[test]
    fn peer_strings_in_a_line_are_escaped_and_cut() {
        let forged = format!("w\n[Master] [Main] fake line{}", "x".repeat(5000));
        let event = NodeEvent::HelloRefused {
            peer: wazuh_cluster_sync::roles::PeerId(4),
            addr: "10.0.0.2:40001".to_owned(),
            name: Some(forged),
            reply: "Invalid node name".to_owned(),
        };
        let message = event_line(NodeType::Master, &event).message;
        assert!(!message.contains('\n'), "{message}");
        assert!(message.starts_with("Refused hello of w\\n[Master] [Main] fake linexxx"));
        assert!(
            message.contains("… [4900 more characters] from 10.0.0.2:40001"),
            "{message}"
        );
        assert!(message.chars().count() < 300);
    }

    #[test]
    fn refusals_are_keyed_by_host_or_connection() {
        let refused = NodeEvent::HelloRefused {
            peer: wazuh_cluster_sync::roles::PeerId(4),
            addr: "[::1]:40001".to_owned(),
            name: None,
            reply: String::new(),
        };
        assert_eq!(
            refusal_key(&refused),
            Some(("[::1]".to_owned(), "hello refused"))
        );
        let joined = NodeEvent::WorkerJoined {
            name: "w".to_owned(),
            addr: "a".to_owned(),
        };
        assert_eq!(refusal_key(&joined), None);
    }
}
