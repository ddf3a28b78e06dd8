//! Master and worker `Node`s driven together: the integrity, extra-valid and agent-info flows end
//! to end, with the exact command sequence of the recorded 3.9.5 session.

use std::time::Duration;

use bytes::Bytes;

use super::support::*;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::{LockRelease, NodeConfig, NodeEvent, NodeType, SyncKind};

#[test]
fn empty_worker_converges_in_one_integrity_round() {
    let t0 = origin();
    let (mut c, m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(12));

    for path in [
        "/etc/client.keys",
        "/etc/shared/default/merged.mg",
        "/etc/rules/local_rules.xml",
        "/queue/agent-groups/001",
    ] {
        assert_eq!(
            c.storage(w).read(&p(path), 1 << 20).unwrap(),
            c.storage(m).read(&p(path), 1 << 20).unwrap(),
            "{path}"
        );
    }
    let worker_cmds = c.commands_from(w);
    assert_eq!(
        &worker_cmds[..8],
        [
            "hello",
            "sync_i_w_m_p",
            "sync_i_w_m",
            "new_file",
            "file_upd",
            "file_end",
            "sync_i_w_m_e",
            "ok"
        ]
    );
    let master_cmds = c.commands_from(m);
    assert_eq!(
        &master_cmds[..12],
        [
            "ok",
            "ok",
            "ok",
            "ok",
            "ok",
            "ok",
            "ok",
            "sync_m_c",
            "new_file",
            "file_upd",
            "file_end",
            "sync_m_c_e"
        ]
    );
    let master_events: Vec<NodeEvent> = c.timed_events_of(m).into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        master_events[..4],
        [
            NodeEvent::WorkerJoined {
                name: "worker1".into(),
                addr: "10.0.0.2:40001".into()
            },
            NodeEvent::SyncStarted {
                kind: SyncKind::Integrity,
                worker: "worker1".into()
            },
            NodeEvent::LockReleased {
                worker: "worker1".into(),
                kind: SyncKind::Integrity,
                cause: LockRelease::Completed
            },
            NodeEvent::SyncFinished {
                kind: SyncKind::Integrity,
                worker: "worker1".into(),
                counts: EMPTY_WORKER_COUNTS,
            },
        ]
    );
}

/// A 22 MiB package sent by a master configured by `configure`, to an empty worker; checks that
/// the worker got the file whole. Returns the cluster and the master's and the worker's index.
fn send_big_package(configure: impl FnOnce(&mut NodeConfig)) -> (Cluster, usize, usize) {
    let t0 = origin();
    let unix = unix0();
    let mut master_tree = master_storage(unix);
    let big: Vec<u8> = (0..22u32 << 20).map(|i| (i % 251) as u8).collect();
    let attrs = wazuh_cluster_sync::integrity::storage::FileAttrs {
        mode: 0o660,
        mtime: Some(unix),
    };
    master_tree.create_dir_all(&p("/etc/lists"), 0o770).unwrap();
    master_tree
        .write_atomic(&p("/etc/lists/big-list"), &big, &attrs)
        .unwrap();
    let mut c = Cluster::new(t0);
    let mut master_config = config(NodeType::Master, "master01", t0);
    configure(&mut master_config);
    let m = c.add(master_config, master_tree, 1, "10.0.0.1");
    let w = c.add_worker(config(NodeType::Worker, "worker1", t0), 2, "10.0.0.2");
    c.run_for(Duration::from_secs(10));
    assert_eq!(
        c.storage(w)
            .read(&p("/etc/lists/big-list"), 64 << 20)
            .unwrap(),
        big
    );
    (c, m, w)
}

/// The master's `file_upd` sent and not yet answered, after the first `frames` entries of `c`.
fn unanswered_chunks(c: &Cluster, m: usize, frames: usize) -> Vec<u32> {
    let mut unanswered: Vec<u32> = Vec::new();
    for (from, counter, command, _) in &c.frames[..frames] {
        match (*from == m, command.as_str()) {
            (true, "file_upd") => unanswered.push(*counter),
            (true, "file_end") => assert!(unanswered.is_empty(), "file_end before {unanswered:?}"),
            (false, "ok") => unanswered.retain(|k| k != counter),
            _ => {}
        }
    }
    unanswered
}

/// A 22 MiB package sent by a master whose connections allow `window` bytes of chunks in
/// flight: returns the number of `file_upd` sent and the most of them unanswered at once, and
/// checks that the worker got the file whole and that `file_end` only left once every chunk was
/// answered (as upstream sends it).
fn chunks_in_flight_sending_a_big_package(window: Option<usize>) -> (usize, usize) {
    let (c, m, _) = send_big_package(|config| {
        if let Some(window) = window {
            config.connection.file_window = window;
        }
    });
    let uploads = c
        .frames
        .iter()
        .filter(|(from, _, command, _)| *from == m && command == "file_upd")
        .count();
    let most = (0..=c.frames.len())
        .map(|n| unanswered_chunks(&c, m, n).len())
        .max()
        .unwrap_or(0);
    (uploads, most)
}

/// The master reads and seals each chunk after the first while the worker has not answered the
/// previous one yet, and the bytes on the wire are exactly those of a master that reads and
/// seals each chunk once asked for it.
#[test]
fn chunks_sealed_ahead_go_on_the_wire_as_chunks_sealed_when_asked() {
    let run = |ahead: bool| {
        let (c, m, _) = send_big_package(|config| config.limits.seal_chunks_ahead = ahead);
        // The master's chunk reads made while one of its chunks waited for its answer.
        let early = c
            .chunk_reads
            .iter()
            .filter(|&&(member, frames)| {
                member == m && !unanswered_chunks(&c, m, frames).is_empty()
            })
            .count();
        let wire: Vec<(usize, u32, String, Bytes)> = c
            .frames
            .iter()
            .zip(&c.wire_payloads)
            .map(|((from, counter, command, _), payload)| {
                (*from, *counter, command.clone(), payload.clone())
            })
            .collect();
        (wire, early)
    };
    let (ahead, early) = run(true);
    let (asked, late) = run(false);
    // 8 chunks (512 KiB, 512 KiB, 1, 2, 4, then 5 MiB: see `package_chunks_go_one_per_round_
    // trip_by_default`): the 7 after the first are read ahead.
    assert_eq!((early, late), (7, 0));
    assert!(ahead.len() > 20);
    assert!(ahead == asked, "the bytes on the wire differ");
}

/// By default a node sends chunks as upstream does, one per round trip: a 3.9.5 receiver can
/// drop a link whose chunks arrive back to back (PROTOCOL.md §1.4).
#[test]
fn package_chunks_go_one_per_round_trip_by_default() {
    // 22 MiB plus the package overhead in chunks growing from 512 KiB (512 KiB, 512 KiB, 1 MiB,
    // 2 MiB, 4 MiB: 8 MiB) up to request_chunk minus the path and a space (twice 5 MiB, and the
    // rest).
    assert_eq!(chunks_in_flight_sending_a_big_package(None), (8, 1));
}

/// With a window of two request chunks (`node --pipelined-chunks 2`) the next chunk leaves
/// before the worker answered the previous one.
#[test]
fn package_chunks_are_pipelined_within_a_configured_window() {
    let window = 2 * wazuh_cluster_protocol::connection::DEFAULT_REQUEST_CHUNK;
    assert_eq!(
        chunks_in_flight_sending_a_big_package(Some(window)),
        (5, 2),
        "two chunks in flight at most, and at least once"
    );
}

/// Two workers: each converges in its own round with its own locks, and `get_health` lists them
/// in registration order before the master.
#[test]
fn two_workers_converge_and_are_listed_in_registration_order() {
    let t0 = origin();
    let unix = unix0();
    let (mut c, m, w1) = Cluster::pair(t0, master_storage(unix));
    let w2 = c.add_worker(config(NodeType::Worker, "worker2", t0), 3, "10.0.0.3");
    c.run_for(Duration::from_secs(12));
    for w in [w1, w2] {
        for path in [
            "/etc/client.keys",
            "/etc/rules/local_rules.xml",
            "/queue/agent-groups/001",
        ] {
            assert_eq!(
                c.storage(w).read(&p(path), 1 << 20).unwrap(),
                c.storage(m).read(&p(path), 1 << 20).unwrap(),
                "{w} {path}"
            );
        }
    }
    let node = &c.members[m].node;
    assert_eq!(node.workers(), ["worker1", "worker2"]);
    let health: serde_json::Value = serde_json::from_str(&node.health(None)).unwrap();
    assert_eq!(health["n_connected_nodes"], 2);
    let order: Vec<&String> = health["nodes"].as_object().unwrap().keys().collect();
    // serde_json's map sorts keys: check the text order instead.
    let text = node.health(None);
    let at = |name: &str| text.find(&format!("\"{name}\": {{\"info\"")).unwrap();
    assert!(
        at("worker1") < at("worker2") && at("worker2") < at("master01"),
        "{text}"
    );
    assert_eq!(order.len(), 3);
    for w in ["worker1", "worker2"] {
        let status = &health["nodes"][w]["status"];
        assert_eq!(status["sync_integrity_free"], true);
        assert_eq!(status["last_sync_integrity"]["total_files"]["missing"], 4);
        assert_eq!(
            status["last_sync_integrity"]["date_end_master"],
            "2026-11-26 08:48:49"
        );
    }
}

/// Two workers report the same agent: the master keeps the newer status (newer wins, whatever
/// the order of arrival) and routes the agent to the worker that sent it.
#[test]
fn agent_info_newer_wins_and_routes_to_its_worker() {
    use wazuh_cluster_sync::integrity::storage::FileAttrs;
    let t0 = origin();
    let unix = unix0();
    let (mut c, m, w1) = Cluster::pair(t0, master_storage(unix));
    let w2 = c.add_worker(config(NodeType::Worker, "worker2", t0), 3, "10.0.0.3");
    let info = p("/queue/agent-info/agent-one-10.0.0.1");
    for (w, age, text) in [(w1, 100, "old status\n"), (w2, 50, "new status\n")] {
        let storage = c.storage_mut(w);
        storage
            .create_dir_all(&p("/queue/agent-info"), 0o770)
            .unwrap();
        let attrs = FileAttrs {
            mode: 0o660,
            mtime: Some(Timestamp::from_secs(UNIX0 as i64 - age)),
        };
        storage
            .write_atomic(&info, text.as_bytes(), &attrs)
            .unwrap();
    }
    c.run_for(Duration::from_secs(25));
    assert_eq!(c.storage(m).read(&info, 100).unwrap(), b"new status\n");
    let routes: Vec<(String, String)> = c.members[m].node.agent_routes().into_iter().collect();
    assert_eq!(routes, [("agent-one".to_owned(), "worker2".to_owned())]);
    let health = c.members[m].node.health(Some(&["worker2".to_owned()]));
    assert!(health.contains("\"n_active_agents\": 1"), "{health}");
}
