//! Node events as log lines an operator of upstream Wazuh recognises
//! (`[Worker worker1] [Integrity] ...`, `[Master] [Main] ...`).

use wazuh_cluster_sync::roles::{CloseReason, NodeEvent, SyncKind};

/// Upstream's tag of a synchronisation in its log lines.
fn tag(kind: SyncKind) -> &'static str {
    match kind {
        SyncKind::Integrity => "Integrity",
        SyncKind::ExtraValid => "Extra valid",
        SyncKind::AgentInfo => "Agent info",
    }
}

fn reason(reason: &CloseReason) -> String {
    match reason {
        CloseReason::HelloRefused(text) => format!("hello refused: {text}"),
        CloseReason::KeepaliveTimeout => "no keepalive in time".to_owned(),
        CloseReason::Replaced => "replaced by a new connection".to_owned(),
        CloseReason::Connection(Some(text)) => text.clone(),
        CloseReason::Connection(None) => "connection closed".to_owned(),
        CloseReason::Lost => "connection lost".to_owned(),
        CloseReason::Overloaded => "peer overloaded our buffers".to_owned(),
        CloseReason::TooManyWorkers => "too many workers".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The line for `event` of node `name`, and whether it is a warning.
pub fn event_line(name: &str, event: &NodeEvent) -> (String, bool) {
    match event {
        NodeEvent::WorkerJoined { name: w, addr } => (
            format!("[Master {name}] [Main] Worker {w} ({addr}) connected"),
            false,
        ),
        NodeEvent::WorkerLeft { name: w, reason: r } => (
            format!(
                "[Master {name}] [Main] Worker {w} disconnected: {}",
                reason(r)
            ),
            false,
        ),
        NodeEvent::HelloRefused { peer, reply } => (
            format!("[Master {name}] [Main] Refused {peer}: {reply}"),
            true,
        ),
        NodeEvent::ConnectedToMaster { .. } => (
            format!("[Worker {name}] [Main] Successfully connected to master"),
            false,
        ),
        NodeEvent::DisconnectedFromMaster { reason: r } => (
            format!(
                "[Worker {name}] [Main] Disconnected from master: {}",
                reason(r)
            ),
            true,
        ),
        NodeEvent::SyncStarted { kind, worker } => {
            (format!("[{worker}] [{}] Starting", tag(*kind)), false)
        }
        NodeEvent::SyncFinished {
            kind,
            worker,
            counts,
        } => (
            format!(
                "[{worker}] [{}] Finished: missing {}, shared {}, extra {}, extra valid {}",
                tag(*kind),
                counts.missing,
                counts.shared,
                counts.extra,
                counts.extra_valid
            ),
            false,
        ),
        NodeEvent::SyncFailed {
            kind,
            worker,
            error,
        } => (format!("[{worker}] [{}] Failed: {error}", tag(*kind)), true),
        NodeEvent::LockReleased {
            worker,
            kind,
            cause,
        } => (
            format!(
                "[Master {name}] [{}] Lock of {worker} released ({cause:?})",
                tag(*kind)
            ),
            false,
        ),
        NodeEvent::IntegrityRecalculated { files, hashed } => (
            format!("[Master {name}] [Integrity] Recalculated: {files} files, {hashed} hashed"),
            false,
        ),
        NodeEvent::Error { peer, message } => match peer {
            Some(peer) => (format!("[{name}] [{peer}] {message}"), true),
            None => (format!("[{name}] {message}"), true),
        },
        other => (format!("[{name}] {other:?}"), false),
    }
}

/// Sends `event` to `tracing` (recalculations at debug: they happen every few seconds).
pub(crate) fn log_event(name: &str, event: &NodeEvent) {
    let (line, warn) = event_line(name, event);
    if warn {
        tracing::warn!("{line}");
    } else if matches!(
        event,
        NodeEvent::IntegrityRecalculated { .. } | NodeEvent::LockReleased { .. }
    ) {
        tracing::debug!("{line}");
    } else {
        tracing::info!("{line}");
    }
}
