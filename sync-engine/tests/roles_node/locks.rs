//! The master's per-worker locks: released on completion, on the worker's error report, on
//! connection loss and after `timeout_receiving_file` without the file; texts of the `_e` and
//! `_r` replies as upstream.

use std::time::Duration;

use super::support::*;
use bytes::Bytes;
use wazuh_cluster_sync::roles::{
    CloseReason, LockRelease, NodeEvent, NodeType, SyncError, SyncKind, sync_text,
};

/// The integrity lock of `peer` is free again, and the next round is granted once the interval
/// since the failed one's start passed (one integrity round per worker per interval).
fn assert_lock_free_again(m: &mut RawMaster, peer: wazuh_cluster_sync::roles::PeerId) {
    use wazuh_cluster_sync::roles::SyncKind;
    assert_eq!(m.node.lock_free("worker1", SyncKind::Integrity), Some(true));
    assert_eq!(m.ask(peer, "sync_i_w_m_p", b""), ok("False"));
    let interval = m.node.config().items.intervals.worker.sync_integrity;
    m.advance(interval);
    assert_eq!(m.ask(peer, "sync_i_w_m_p", b""), ok("True"));
}

fn master_with_task() -> (RawMaster, wazuh_cluster_sync::roles::PeerId, String) {
    let mut m = RawMaster::master01();
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    assert_eq!(m.ask(peer, "sync_i_w_m_p", b""), ok("True"));
    let (cmd, task) = m.ask(peer, "sync_i_w_m", b"");
    assert_eq!(cmd, "ok");
    assert_eq!(m.ask(peer, "sync_i_w_m_p", b""), ok("False"));
    assert_eq!(
        m.node.lock_free("worker1", SyncKind::Integrity),
        Some(false)
    );
    m.take_events();
    (m, peer, String::from_utf8(task.to_vec()).unwrap())
}

/// The events of a released integrity lock; `text` is how `error` reads in the log.
fn released(cause: LockRelease, error: SyncError, text: &str) -> Vec<NodeEvent> {
    assert_eq!(error.to_string(), text);
    vec![
        NodeEvent::LockReleased {
            worker: "worker1".into(),
            kind: SyncKind::Integrity,
            cause,
        },
        NodeEvent::SyncFailed {
            kind: SyncKind::Integrity,
            worker: "worker1".into(),
            error,
        },
    ]
}

/// `command payload` from `peer` is answered `reply`, then the integrity round fails with
/// `error` and its lock is released.
fn assert_round_fails(
    m: &mut RawMaster,
    peer: wazuh_cluster_sync::roles::PeerId,
    (command, payload): (&str, &[u8]),
    reply: (String, Bytes),
    (error, text): (SyncError, &str),
) {
    assert_eq!(m.ask(peer, command, payload), reply, "{command}");
    assert_eq!(m.take_events(), released(LockRelease::Failed, error, text));
}

#[test]
fn task_ids_are_decimal_and_a_second_task_is_refused() {
    let (mut m, peer, task) = master_with_task();
    assert!(task.parse::<u64>().unwrap() <= 1 << 32, "{task}");
    assert_eq!(m.ask(peer, "sync_i_w_m", b""), err(sync_text::BUSY));
    // The other kinds have their own locks.
    assert_eq!(m.ask(peer, "sync_a_w_m_p", b""), ok("True"));
}

#[test]
fn end_with_bad_payloads_answers_upstream_texts() {
    let (mut m, peer, task) = master_with_task();
    assert_eq!(
        m.ask(peer, "sync_i_w_m_e", b"nospace"),
        err(sync_text::TASK_NOT_RECEIVED)
    );
    assert_eq!(
        m.ask(peer, "sync_i_w_m_e", b"999 /queue/cluster/worker1/x.zip"),
        err(sync_text::TASK_UNKNOWN)
    );
    // A file that never arrived: accepted as upstream does, then the sync fails and frees the lock.
    let end = format!("{task} /queue/cluster/worker1/never.zip");
    assert_round_fails(
        &mut m,
        peer,
        ("sync_i_w_m_e", end.as_bytes()),
        ok(sync_text::FILE_RECEIVED),
        (
            SyncError::FileNotReceived {
                file: "/queue/cluster/worker1/never.zip".into(),
            },
            "file \"/queue/cluster/worker1/never.zip\" was not received",
        ),
    );
    assert_lock_free_again(&mut m, peer);
}

#[test]
fn worker_error_report_releases_the_lock() {
    let (mut m, peer, _) = master_with_task();
    assert_round_fails(
        &mut m,
        peer,
        ("sync_i_w_m_r", b"boom"),
        ok(sync_text::ERROR_RECEIVED),
        (
            SyncError::WorkerReported("boom".into()),
            "worker reported: boom",
        ),
    );
    assert_lock_free_again(&mut m, peer);
}

#[test]
fn task_end_error_releases_the_lock() {
    let (mut m, peer, task) = master_with_task();
    let end = format!("{task} Error");
    assert_round_fails(
        &mut m,
        peer,
        ("sync_i_w_m_e", end.as_bytes()),
        ok(sync_text::FILE_RECEIVED),
        (
            SyncError::WorkerCouldNotSend,
            "worker files weren't correctly received",
        ),
    );
    assert_eq!(m.node.lock_free("worker1", SyncKind::Integrity), Some(true));
}

#[test]
fn connection_loss_releases_the_lock() {
    let (mut m, peer, _) = master_with_task();
    let now = m.now;
    m.node.handle_closed(now, peer);
    m.pump();
    let mut expected = released(
        LockRelease::ConnectionLost,
        SyncError::ConnectionLost,
        "connection lost",
    );
    expected.push(NodeEvent::WorkerLeft {
        name: "worker1".into(),
        reason: CloseReason::Lost,
    });
    assert_eq!(m.take_events(), expected);
    assert_eq!(m.node.workers(), Vec::<String>::new());
}

#[test]
fn missing_file_releases_the_lock_at_timeout_receiving_file() {
    let (mut m, peer, task) = master_with_task();
    m.advance(Duration::from_secs(119));
    assert_eq!(m.ask(peer, "echo-c", b"keepalive").0, "ok-m");
    assert_eq!(
        m.node.lock_free("worker1", SyncKind::Integrity),
        Some(false)
    );
    m.take_events();
    m.advance(Duration::from_secs(1));
    assert_eq!(
        m.take_events(),
        released(
            LockRelease::TimedOut,
            SyncError::WorkerFileTimeout,
            "timeout receiving the worker's file"
        )
    );
    assert_eq!(m.node.lock_free("worker1", SyncKind::Integrity), Some(true));
    // The late end names a task that no longer exists.
    let end = format!("{task} /queue/cluster/worker1/late.zip");
    assert_eq!(
        m.ask(peer, "sync_i_w_m_e", end.as_bytes()),
        err(sync_text::TASK_UNKNOWN)
    );
}

#[test]
fn silent_worker_is_dropped_after_max_allowed_time_without_keepalive() {
    let (mut m, _peer, _) = master_with_task();
    // The check runs every 60 s from the start; 120 s of silence is allowed, not more.
    m.advance(Duration::from_secs(179));
    assert_eq!(m.node.workers(), vec!["worker1".to_owned()]);
    m.advance(Duration::from_secs(1));
    let events = m.take_events();
    assert_eq!(
        events.last(),
        Some(&NodeEvent::WorkerLeft {
            name: "worker1".into(),
            reason: CloseReason::KeepaliveTimeout
        })
    );
    assert_eq!(m.node.workers(), Vec::<String>::new());
}

#[test]
fn pending_disk_bytes_are_bounded() {
    let t0 = origin();
    let mut cfg = config(NodeType::Master, "master01", t0);
    cfg.limits.max_pending_disk_bytes = 64 * 1024;
    let mut m = RawMaster::new(t0, cfg);
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    m.run_effects = false;
    let path = "/queue/cluster/worker1/big.zip";
    assert_eq!(
        m.ask(peer, "new_file", path.as_bytes()),
        (
            "ok".to_owned(),
            Bytes::from_static(b"Ready to receive new file")
        )
    );
    let chunk = vec![7u8; 16 * 1024];
    let mut payload = format!("{path} ").into_bytes();
    payload.extend_from_slice(&chunk);
    for i in 0..4 {
        assert!(m.node.wants_input(peer), "chunk {i}");
        assert_eq!(m.ask(peer, "file_upd", &payload).0, "ok");
    }
    // 4 chunks wait for the disk (the BeginFile effect is held): the node asks to stop reading.
    assert!(!m.node.wants_input(peer));
    for i in 0..4 {
        let _ = m.ask(peer, "file_upd", &payload);
        assert!(m.closed.is_empty(), "chunk {i}: {:?}", m.take_events());
    }
    assert!(m.closed.is_empty());
    assert_eq!(m.ask(peer, "file_upd", &payload).0, "closed");
    // Twice the bound: the connection is closed rather than buffering more.
    assert_eq!(m.closed, vec![peer]);
    assert_eq!(
        m.take_events().last(),
        Some(&NodeEvent::WorkerLeft {
            name: "worker1".into(),
            reason: CloseReason::Overloaded
        })
    );
}

/// The worker's integrity file (an empty tree) goes through and its end is accepted; with
/// `run_effects`, the master then compares, builds the package and asks `sync_m_c`, which the
/// raw worker does not claim: it answers upstream's unknown-command error.
fn send_worker_integrity(
    m: &mut RawMaster,
    peer: wazuh_cluster_sync::roles::PeerId,
    task: &str,
    run_effects: bool,
) {
    let path = "/queue/cluster/worker1/worker1-1795682923.4069414-4841727390577477.zip";
    m.send_file(peer, path, &worker_integrity_package("{}"));
    m.run_effects = run_effects;
    let end = format!("{task} {path}");
    assert_eq!(
        m.ask(peer, "sync_i_w_m_e", end.as_bytes()),
        ok(sync_text::FILE_RECEIVED)
    );
}

#[test]
fn worker_refusing_sync_m_c_releases_the_lock_and_removes_the_package() {
    let (mut m, peer, task) = master_with_task();
    send_worker_integrity(&mut m, peer, &task, true);
    assert_eq!(
        m.take_events(),
        released(
            LockRelease::Failed,
            SyncError::PeerRefused(
                "Error processing request: unknown command 'b'sync_m_c''".into()
            ),
            "Error processing request: unknown command 'b'sync_m_c''"
        )
    );
    assert_eq!(m.packages_left("worker1"), Vec::<String>::new());
    assert_lock_free_again(&mut m, peer);
}

#[test]
fn connection_loss_while_building_removes_the_package_after_the_build() {
    let (mut m, peer, task) = master_with_task();
    send_worker_integrity(&mut m, peer, &task, false);
    // Read the worker's metadata, then hold the package build.
    m.run_held();
    assert!(
        matches!(
            m.held[..],
            [(
                _,
                wazuh_cluster_sync::roles::Effect::BuildMasterPackage { .. }
            )]
        ),
        "{:?}",
        m.held
    );
    let now = m.now;
    m.node.handle_closed(now, peer);
    m.pump();
    // Run the build (it was in flight), then whatever the node asks after it.
    m.run_effects = true;
    while !m.held.is_empty() {
        m.run_held();
    }
    assert_eq!(m.packages_left("worker1"), Vec::<String>::new());
    assert_eq!(m.node.effects_in_flight(), 0);
}
