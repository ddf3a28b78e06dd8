//! A hostile worker against our master (issue 12): each case asserts the exact refusal, the bound
//! held, and what the master keeps afterwards.
//!
//! Registration is a function of the live links: a link holds one name, its close releases it,
//! and a name held by a live link is taken over only once that link is shown dead.

use std::time::Duration;

use super::support::*;
use wazuh_cluster_sync::roles::{CloseReason, NodeEvent, PeerId, hello_text};

const HELLO_WORKER1: &[u8] = b"worker1 wazuh worker 3.9.5";

fn refused(peer: u64, addr: &str, name: &str, reply: &str) -> NodeEvent {
    NodeEvent::HelloRefused {
        peer: PeerId(peer),
        addr: addr.into(),
        name: Some(name.into()),
        reply: reply.into(),
    }
}

#[test]
fn a_link_that_renames_itself_and_leaves_frees_every_name() {
    // The attack: a key holder on worker1's host takes worker1's name, switches names, leaves.
    let mut m = RawMaster::master01();
    let attacker = m.join(1, "worker1", "10.0.0.2:40001");
    assert_eq!(
        m.ask(attacker, "hello", b"decoy wazuh worker 3.9.5"),
        err(hello_text::ALREADY_PRESENT)
    );
    assert_eq!(
        m.ask(attacker, "hello", HELLO_WORKER1),
        err(hello_text::ALREADY_PRESENT)
    );
    assert_eq!(m.node.workers(), ["worker1"]);
    m.node.handle_closed(m.now, attacker);
    m.clients.remove(&attacker);
    m.pump();
    assert_eq!(m.node.workers(), Vec::<String>::new());
    // The real worker gets in at once, from anywhere.
    let real = m.join(2, "worker1", "10.0.0.9:40002");
    assert_eq!(m.node.worker_peer("worker1"), Some(real));
    let events = m.take_events();
    assert_eq!(
        events[1..3],
        [
            refused(1, "10.0.0.2:40001", "decoy", hello_text::ALREADY_PRESENT),
            refused(1, "10.0.0.2:40001", "worker1", hello_text::ALREADY_PRESENT),
        ]
    );
}

#[test]
fn renames_on_one_link_cannot_fill_the_worker_table() {
    let t0 = origin();
    let mut config = config(wazuh_cluster_sync::roles::NodeType::Master, "master01", t0);
    config.limits.max_workers = 4;
    let mut m = RawMaster::new(t0, config);
    let attacker = m.join(1, "w0", "10.0.0.2:40001");
    for i in 1..2_000 {
        let hello = format!("w{i} wazuh worker 3.9.5");
        assert_eq!(
            m.ask(attacker, "hello", hello.as_bytes()),
            err(hello_text::ALREADY_PRESENT),
            "{hello}"
        );
    }
    assert_eq!(m.node.workers(), ["w0"]);
    for (peer, name) in [(2, "a"), (3, "b"), (4, "c")] {
        m.join(peer, name, "10.0.0.3:40000");
    }
    assert_eq!(m.node.workers().len(), 4);
}

#[test]
fn a_live_worker_is_not_pushed_out_by_another_connection() {
    let mut m = RawMaster::master01();
    let live = m.join(1, "worker1", "10.0.0.2:40001");
    m.take_events();
    // Same host, another host: the holder answers the probe at once, the claimant is refused.
    for (peer, addr) in [(2, "10.0.0.2:40002"), (3, "10.0.0.3:40003")] {
        let claimant = m.connect(peer, addr);
        assert_eq!(
            m.ask(claimant, "hello", HELLO_WORKER1),
            err(hello_text::ALREADY_PRESENT)
        );
    }
    // Past the probe bound (the claimants' own hello deadline, 30 s, still ahead).
    m.advance(Duration::from_secs(20));
    assert_eq!(m.node.worker_peer("worker1"), Some(live));
    assert!(m.closed.is_empty());
    assert_eq!(
        m.take_events(),
        [
            refused(2, "10.0.0.2:40002", "worker1", hello_text::ALREADY_PRESENT),
            refused(3, "10.0.0.3:40003", "worker1", hello_text::ALREADY_PRESENT),
        ]
    );
}

#[test]
fn a_reconnecting_worker_replaces_its_dead_session_after_the_probe_bound() {
    let mut m = RawMaster::master01();
    let stale = m.join(1, "worker1", "10.0.0.2:40001");
    // The old link is half-open: nothing the master sends reaches the worker any more.
    m.not_reading.insert(stale);
    m.take_events();
    let again = m.connect(2, "10.0.0.2:40002");
    let hello = m.send(again, "hello", HELLO_WORKER1);
    // A second claimant while the probe runs is refused at once.
    let third = m.connect(3, "10.0.0.4:40003");
    assert_eq!(
        m.ask(third, "hello", HELLO_WORKER1),
        err(hello_text::ALREADY_PRESENT)
    );
    m.advance(Duration::from_millis(4_900));
    assert_eq!(m.take_reply(again, hello), None);
    assert_eq!(m.node.worker_peer("worker1"), Some(stale));
    m.advance(Duration::from_millis(100));
    assert_eq!(m.take_reply(again, hello), Some(ok("Client worker1 added")));
    assert_eq!(m.node.worker_peer("worker1"), Some(again));
    assert_eq!(m.closed, [stale]);
    assert_eq!(
        m.take_events(),
        [
            refused(3, "10.0.0.4:40003", "worker1", hello_text::ALREADY_PRESENT),
            NodeEvent::WorkerLeft {
                name: "worker1".into(),
                reason: CloseReason::Replaced
            },
            NodeEvent::WorkerJoined {
                name: "worker1".into(),
                addr: "10.0.0.2:40002".into()
            },
        ]
    );
}

#[test]
fn a_claim_is_granted_as_soon_as_the_holder_link_closes() {
    let mut m = RawMaster::master01();
    let stale = m.join(1, "worker1", "10.0.0.2:40001");
    m.not_reading.insert(stale);
    let again = m.connect(2, "10.0.0.2:40002");
    let hello = m.send(again, "hello", HELLO_WORKER1);
    assert_eq!(m.take_reply(again, hello), None);
    // The probe met a reset (the worker's host restarted): the adapter reports the close.
    m.node.handle_closed(m.now, stale);
    m.pump();
    assert_eq!(m.take_reply(again, hello), Some(ok("Client worker1 added")));
    assert_eq!(m.node.workers(), ["worker1"]);
}

#[test]
fn a_claimant_that_leaves_during_the_probe_changes_nothing() {
    let mut m = RawMaster::master01();
    let stale = m.join(1, "worker1", "10.0.0.2:40001");
    m.not_reading.insert(stale);
    let claimant = m.connect(2, "10.0.0.2:40002");
    m.send(claimant, "hello", HELLO_WORKER1);
    m.node.handle_closed(m.now, claimant);
    m.clients.remove(&claimant);
    m.advance(Duration::from_secs(10));
    // No claim left: the silent holder stays until the keepalive check drops it.
    assert_eq!(m.node.worker_peer("worker1"), Some(stale));
    assert!(m.closed.is_empty());
    // And a later claimant is probed afresh.
    m.not_reading.remove(&stale);
    m.unread.clear();
    let late = m.connect(3, "10.0.0.2:40003");
    assert_eq!(
        m.ask(late, "hello", HELLO_WORKER1),
        err(hello_text::ALREADY_PRESENT)
    );
}

#[test]
fn a_file_outside_the_workers_directory_is_refused_before_a_byte_is_taken() {
    use wazuh_cluster_protocol::connection::PeerError;
    use wazuh_cluster_protocol::message::text::FILE_OUTSIDE_INBOX;
    use wazuh_cluster_sync::roles::NodeError;
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    m.take_events();
    let refused_paths = [
        "/queue/cluster/worker2/agent-info.merged",
        "/etc/client.keys",
        "/queue/cluster/worker1/../../../etc/client.keys",
        "/queue/cluster/worker1/sub/x",
        "/queue/cluster/worker1/",
        "/queue/cluster/worker1",
        "queue/cluster/worker1/x",
    ];
    let refusal = (
        "err".to_owned(),
        bytes::Bytes::from_static(FILE_OUTSIDE_INBOX),
    );
    for path in refused_paths {
        assert_eq!(
            m.ask(worker, "new_file", path.as_bytes()),
            refusal,
            "{path}"
        );
        // And the rest of the transfer finds nothing open (upstream's KeyError text).
        let update = format!("{path} data");
        assert_eq!(m.ask(worker, "file_upd", update.as_bytes()).0, "err");
    }
    let events = m.take_events();
    assert_eq!(events.len(), refused_paths.len());
    assert_eq!(
        events[1],
        NodeEvent::Error {
            peer: Some(worker),
            error: NodeError::Peer(PeerError::FileOutsideInbox {
                path: "/etc/client.keys".into()
            })
        }
    );
    assert_eq!(m.node.effects_in_flight(), 0);
    assert!(m.node.open_incoming_files().is_empty());
    assert!(!m.exec.storage().files().keys().any(|k| {
        k.as_str().starts_with("/queue/cluster/worker2") || k.as_str().contains("sub")
    }));
    // Its own directory still takes files.
    m.send_file(worker, "/queue/cluster/worker1/ok.txt", b"fine");
    assert!(
        m.exec
            .storage()
            .files()
            .keys()
            .any(|k| k.as_str() == "/queue/cluster/worker1/ok.txt")
    );
}

#[test]
fn a_file_name_longer_than_the_file_system_allows_is_refused_with_its_reason() {
    use wazuh_cluster_protocol::connection::PeerError;
    use wazuh_cluster_sync::roles::NodeError;
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    m.take_events();
    // It failed as a bare `storage: Io` once the disk met it.
    let path = format!("/queue/cluster/worker1/{}", "n".repeat(256));
    assert_eq!(
        m.ask(worker, "new_file", path.as_bytes()),
        err("file name of 256 bytes refused (limit 255)")
    );
    assert_eq!(
        m.take_events(),
        [NodeEvent::Error {
            peer: Some(worker),
            error: NodeError::Peer(PeerError::FileNameTooLong { len: 256 })
        }]
    );
    assert_eq!(m.node.effects_in_flight(), 0);
    // 255 is a name the disk takes.
    let path = format!("/queue/cluster/worker1/{}", "n".repeat(255));
    m.send_file(worker, &path, b"fine");
    assert!(m.exec.storage().files().keys().any(|k| k.as_str() == path));
}

#[test]
fn an_integrity_package_with_another_member_is_refused_on_the_master() {
    use wazuh_cluster_sync::integrity::path::InstallPath;
    use wazuh_cluster_sync::roles::SyncKind;
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    assert_eq!(m.ask(worker, "sync_i_w_m_p", b""), ok("True"));
    let (_, task) = m.ask(worker, "sync_i_w_m", b"");
    m.take_events();
    let smuggled = InstallPath::new("/etc/client.keys").unwrap();
    let members = [(&smuggled, unix0(), 0o640, &b"001 evil any key\n"[..])];
    let zip =
        wazuh_cluster_sync::integrity::package::build_package_in_memory(members, b"{}", unix0())
            .unwrap();
    let path = "/queue/cluster/worker1/worker1-1795682923.4069414-4841727390577477.zip";
    m.send_file(worker, path, &zip);
    let end = format!("{} {path}", String::from_utf8_lossy(&task));
    assert_eq!(m.ask(worker, "sync_i_w_m_e", end.as_bytes()).0, "ok");
    let failed: Vec<String> = m
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::SyncFailed { kind, error, .. } => {
                assert_eq!(kind, SyncKind::Integrity);
                Some(error.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains(
            "an integrity package carries only cluster_control.json; this one has 1 other members"
        ),
        "{failed:?}"
    );
    // The lock is free again, no package for the worker was built, the received one is gone.
    assert_eq!(m.node.lock_free("worker1", SyncKind::Integrity), Some(true));
    assert_eq!(m.packages_left("worker1"), Vec::<String>::new());
}

#[test]
fn frames_before_hello_are_capped_far_below_the_post_hello_limit() {
    use wazuh_cluster_sync::roles::HandshakeFailure;
    let mut m = RawMaster::master01();
    let keyless_sized = m.connect(1, "10.0.0.7:40001");
    let big = vec![b'a'; 100 << 10];
    m.send(keyless_sized, "echo", &big);
    assert_eq!(m.closed, [keyless_sized]);
    let events = m.take_events();
    assert!(
        matches!(
            &events[..],
            [NodeEvent::HandshakeFailed {
                reason: HandshakeFailure::BadFrame(_),
                ..
            }]
        ),
        "{events:?}"
    );
    // After hello the same frame is served.
    let worker = m.join(2, "worker1", "10.0.0.2:40001");
    assert_eq!(m.ask(worker, "echo", &big).1.len(), big.len());
}

/// Opens an integrity round of `worker` and sends `metadata_json` as its package; the task id.
fn integrity_round(m: &mut RawMaster, worker: PeerId, metadata_json: &str) -> String {
    assert_eq!(m.ask(worker, "sync_i_w_m_p", b""), ok("True"));
    let (reply, task) = m.ask(worker, "sync_i_w_m", b"");
    assert_eq!(reply, "ok");
    let task = String::from_utf8_lossy(&task).into_owned();
    let path = format!("/queue/cluster/worker1/worker1-1795682923.4069414-{task}.zip");
    m.send_file(worker, &path, &worker_integrity_package(metadata_json));
    let end = format!("{task} {path}");
    assert_eq!(
        m.ask(worker, "sync_i_w_m_e", end.as_bytes()),
        ok("File correctly received")
    );
    task
}

#[test]
fn a_worker_listing_far_more_files_than_the_masters_items_is_refused_before_any_comparison() {
    use wazuh_cluster_sync::roles::{SyncError, SyncKind};
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    let master_files = m.node.master_metadata().unwrap().len();
    let limit = 2 * master_files + m.node.config().limits.worker_metadata_margin;
    m.take_events();
    // The issue's package: 400,000 short entries (the apply's own bound let them all through,
    // and each round cost the master a second and up to 500 MB).
    let entries: Vec<String> = (0..400_000)
        .map(|i| format!(r#""/etc/f{i}": {{"cluster_item_key": "/etc/", "merged": false}}"#))
        .collect();
    let json = format!("{{{}}}", entries.join(", "));
    integrity_round(&mut m, worker, &json);
    let failed: Vec<SyncError> = m
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::SyncFailed { kind, error, .. } => {
                assert_eq!(kind, SyncKind::Integrity);
                Some(error)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [SyncError::TooManyWorkerEntries {
            limit,
            master_files
        }]
    );
    assert_eq!(
        failed[0].to_string(),
        format!(
            "worker integrity metadata lists more than {limit} entries, more than the master's {master_files} files allow"
        )
    );
    // Refused while parsing: no comparison ran, no package was built, the lock is free.
    assert_eq!(m.node.integrity_comparisons(), Some(0));
    assert_eq!(m.packages_left("worker1"), Vec::<String>::new());
    assert_eq!(m.node.lock_free("worker1", SyncKind::Integrity), Some(true));
    // A worker within the bound is compared (the counter counts).
    m.advance(m.node.config().items.intervals.worker.sync_integrity);
    assert_eq!(m.ask(worker, "echo-c", b"keepalive").0, "ok-m");
    integrity_round(&mut m, worker, "{}");
    assert_eq!(m.node.integrity_comparisons(), Some(1));
}

#[test]
fn one_integrity_round_per_worker_per_interval() {
    use wazuh_cluster_sync::roles::sync_text;
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    integrity_round(&mut m, worker, "{}");
    assert_eq!(m.node.integrity_comparisons(), Some(1));
    // Done (the raw worker refuses the master's package, which frees the lock): asking again at
    // once is refused as upstream refuses a permission, a task without it as a busy lock.
    assert_eq!(
        m.node
            .lock_free("worker1", wazuh_cluster_sync::roles::SyncKind::Integrity),
        Some(true)
    );
    assert_eq!(
        m.ask(worker, "sync_i_w_m_p", b""),
        ok(sync_text::PERMISSION_DENIED)
    );
    assert_eq!(m.ask(worker, "sync_i_w_m", b""), err(sync_text::BUSY));
    // The other kinds keep their own locks.
    assert_eq!(
        m.ask(worker, "sync_a_w_m_p", b""),
        ok(sync_text::PERMISSION_GRANTED)
    );
    // A new link under the same name does not start the interval over.
    m.node.handle_closed(m.now, worker);
    m.clients.remove(&worker);
    m.pump();
    let again = m.join(2, "worker1", "10.0.0.2:40002");
    assert_eq!(
        m.ask(again, "sync_i_w_m_p", b""),
        ok(sync_text::PERMISSION_DENIED)
    );
    let interval = m.node.config().items.intervals.worker.sync_integrity;
    m.advance(interval - Duration::from_millis(1));
    assert_eq!(
        m.ask(again, "sync_i_w_m_p", b""),
        ok(sync_text::PERMISSION_DENIED)
    );
    m.advance(Duration::from_millis(1));
    assert_eq!(
        m.ask(again, "sync_i_w_m_p", b""),
        ok(sync_text::PERMISSION_GRANTED)
    );
    assert_eq!(m.node.integrity_comparisons(), Some(1));
}

#[test]
fn parts_skipped_from_a_workers_package_are_each_reported() {
    use wazuh_cluster_sync::integrity::apply::SkipReason;
    use wazuh_cluster_sync::integrity::path::InstallPath;
    use wazuh_cluster_sync::roles::SyncKind;
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    assert_eq!(m.ask(worker, "sync_a_w_m_p", b""), ok("True"));
    let (_, task) = m.ask(worker, "sync_a_w_m", b"");
    let task = String::from_utf8_lossy(&task).into_owned();
    m.take_events();
    // A client.keys, a part of an agent the master does not know, a part with a bad time, and
    // one good part.
    let merged = "3 agent-one-10.0.0.1 2019-07-01 16:53:20\nabc\
                  3 ghost-10.0.0.9 2019-07-01 16:53:20\nabc\
                  3 agent-two-10.0.0.2 2019-99-99 99:99:99\nabc";
    let info = InstallPath::new("/queue/cluster/worker1/agent-info.merged").unwrap();
    let keys = InstallPath::new("/etc/client.keys").unwrap();
    let control = r#"{"/etc/client.keys": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/", "merged": false, "md5": "00000000000000000000000000000000"}, "/queue/cluster/worker1/agent-info.merged": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/queue/agent-info/", "merged": true, "merge_type": "agent-info", "merge_name": "/queue/cluster/worker1/agent-info.merged"}}"#;
    let members = [
        (&keys, unix0(), 0o640, &b"001 evil any k\n"[..]),
        (&info, unix0(), 0o640, merged.as_bytes()),
    ];
    let zip = wazuh_cluster_sync::integrity::package::build_package_in_memory(
        members,
        control.as_bytes(),
        unix0(),
    )
    .unwrap();
    let path = "/queue/cluster/worker1/worker1-1795682923.4069414-1.zip";
    m.send_file(worker, path, &zip);
    let end = format!("{task} {path}");
    assert_eq!(m.ask(worker, "sync_a_w_m_e", end.as_bytes()).0, "ok");
    let skipped: Vec<NodeEvent> = m
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::PartsSkipped { .. }))
        .collect();
    let event = |reason, examples: &[&str]| NodeEvent::PartsSkipped {
        worker: "worker1".into(),
        kind: SyncKind::AgentInfo,
        reason,
        count: examples.len(),
        examples: examples.iter().map(|e| (*e).to_owned()).collect(),
    };
    assert_eq!(
        skipped,
        [
            event(SkipReason::ClientKeysFromWorker, &["/etc/client.keys"]),
            event(
                SkipReason::UnknownAgent,
                &["/queue/agent-info/ghost-10.0.0.9"]
            ),
            event(
                SkipReason::BadTime,
                &["/queue/agent-info/agent-two-10.0.0.2"]
            ),
        ]
    );
    // The good part landed; nothing else did.
    let files = m.exec.storage().files();
    assert!(files.contains_key(&p("/queue/agent-info/agent-one-10.0.0.1")));
    assert!(!files.contains_key(&p("/queue/agent-info/ghost-10.0.0.9")));
    assert_eq!(
        files.get(&p("/etc/client.keys")).map(Vec::as_slice),
        Some(&b"001 agent-one any k1\n002 agent-two any k2\n"[..])
    );
}
