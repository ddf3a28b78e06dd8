//! No orphans (issue 12, point 4): a file a worker sends into `queue/cluster/<name>/` that no
//! task claims is removed within a bound, the directory holds at most a quota of files and bytes
//! (refused with a clear reply above it), and a link's close takes its unclaimed files and its
//! empty directory with it. The test storage counts what is left.

use std::time::Duration;

use super::support::*;
use wazuh_cluster_protocol::connection::{InboxQuota, PeerError};
use wazuh_cluster_sync::integrity::memory::{MemoryStorage, SnapshotEntry};
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage};
use wazuh_cluster_sync::roles::{NodeError, NodeEvent, NodeType, PeerId, remove_cluster_leftovers};

/// A master whose links' directories hold at most `files` files and `bytes` bytes.
fn master_with_quota(files: usize, bytes: u64) -> RawMaster {
    let t0 = origin();
    let mut config = config(NodeType::Master, "master01", t0);
    config.limits.inbox_quota = InboxQuota { files, bytes };
    RawMaster::new(t0, config)
}

/// (files, bytes) the master's storage holds below `dir`.
fn held_below(m: &RawMaster, dir: &str) -> (usize, usize) {
    let prefix = format!("{dir}/");
    m.exec
        .storage()
        .files()
        .iter()
        .filter(|(path, _)| path.as_str().starts_with(&prefix))
        .fold((0, 0), |(n, b), (_, data)| (n + 1, b + data.len()))
}

fn dir_exists(m: &RawMaster, dir: &str) -> bool {
    m.exec
        .storage()
        .snapshot()
        .iter()
        .any(|(path, entry)| path.as_str() == dir && matches!(entry, SnapshotEntry::Dir { .. }))
}

/// Advances `total` in steps of 30 s, `worker` sending its keepalive at each (the master drops a
/// silent worker after 120 s).
fn advance_alive(m: &mut RawMaster, worker: PeerId, total: Duration) {
    let step = Duration::from_secs(30);
    let mut done = Duration::ZERO;
    while done < total {
        let d = step.min(total - done);
        m.advance(d);
        done += d;
        assert_eq!(m.ask(worker, "echo-c", b"keepalive").0, "ok-m");
    }
}

#[test]
fn unclaimed_files_are_removed_after_the_bound_and_free_the_quota() {
    let mut m = master_with_quota(3, 1 << 20);
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    for name in ["a", "b", "c"] {
        m.send_file(
            worker,
            &format!("/queue/cluster/worker1/{name}"),
            &[b'x'; 100],
        );
    }
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (3, 300));
    m.take_events();
    // Full: the fourth is refused before a byte is taken, with the reason.
    assert_eq!(
        m.ask(worker, "new_file", b"/queue/cluster/worker1/d"),
        err("Error: this node's directory already holds its quota of 3 files")
    );
    assert_eq!(
        m.take_events(),
        [NodeEvent::Error {
            peer: Some(worker),
            error: NodeError::Peer(PeerError::InboxFilesQuota { limit: 3 })
        }]
    );
    // Nobody claims them: kept until the bound...
    let bound = m.node.config().limits.unclaimed_file_timeout;
    advance_alive(&mut m, worker, bound - Duration::from_secs(1));
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (3, 300));
    // ...and removed at it, each said.
    advance_alive(&mut m, worker, Duration::from_secs(1));
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (0, 0));
    let removed: Vec<String> = m
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::UnclaimedFileRemoved { peer, path, after } => {
                assert_eq!((peer, after), (worker, bound));
                Some(path)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        [
            "/queue/cluster/worker1/a",
            "/queue/cluster/worker1/b",
            "/queue/cluster/worker1/c"
        ]
    );
    // The quota is free again.
    m.send_file(worker, "/queue/cluster/worker1/d", b"fine");
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (1, 4));
}

#[test]
fn a_file_that_would_pass_the_byte_quota_is_dropped_and_leaves_nothing() {
    let mut m = master_with_quota(8, 1_000);
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    m.send_file(worker, "/queue/cluster/worker1/a", &[b'x'; 600]);
    m.take_events();
    let b = b"/queue/cluster/worker1/b";
    assert_eq!(
        m.ask(worker, "new_file", b),
        ok("Ready to receive new file")
    );
    assert_eq!(
        m.ask(worker, "file_upd", &[&b[..], b" ", &[b'y'; 300]].concat())
            .0,
        "ok"
    );
    assert_eq!(
        m.ask(worker, "file_upd", &[&b[..], b" ", &[b'y'; 101]].concat()),
        err(
            "Error: file /queue/cluster/worker1/b refused: this node's directory would exceed its quota of 1000 bytes"
        )
    );
    // The transfer is gone, its staged write aborted: only `a` is left.
    assert_eq!(
        m.ask(worker, "file_upd", &[&b[..], b" z"].concat()).0,
        "err"
    );
    assert_eq!(m.exec.storage().staged_writes(), 0);
    assert!(m.node.open_incoming_files().is_empty());
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (1, 600));
    assert!(m.take_events().contains(&NodeEvent::Error {
        peer: Some(worker),
        error: NodeError::Peer(PeerError::InboxBytesQuota {
            path: bytes::Bytes::from_static(b),
            limit: 1_000
        })
    }));
}

#[test]
fn a_closed_link_takes_its_unclaimed_files_and_its_empty_directory() {
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    m.send_file(worker, "/queue/cluster/worker1/a.zip", b"unclaimed");
    m.send_file(worker, "/queue/cluster/worker1/b.zip", b"unclaimed too");
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (2, 22));
    m.node.handle_closed(m.now, worker);
    m.clients.remove(&worker);
    m.pump();
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (0, 0));
    assert!(!dir_exists(&m, "/queue/cluster/worker1"));
    // Every hello name used to leave a directory behind.
    for n in 0..20u64 {
        let name = format!("name{n}");
        let peer = m.join(10 + n, &name, "10.0.0.3:40000");
        m.node.handle_closed(m.now, peer);
        m.clients.remove(&peer);
        m.pump();
        assert!(!dir_exists(&m, &format!("/queue/cluster/{name}")), "{name}");
    }
    let left: Vec<String> = m
        .exec
        .storage()
        .snapshot()
        .keys()
        .filter(|p| p.as_str().starts_with("/queue/cluster/"))
        .map(|p| p.as_str().to_owned())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_start_up_sweep_empties_queue_cluster_but_the_local_socket() {
    let mut s = MemoryStorage::new();
    s.set_now(unix0());
    let attrs = FileAttrs {
        mode: 0o640,
        mtime: None,
    };
    for dir in [
        "/queue/cluster/worker1/sub",
        "/queue/cluster/gone-name",
        "/etc",
    ] {
        s.create_dir_all(&p(dir), 0o770).unwrap();
    }
    for file in [
        "/queue/cluster/worker1/worker1-1795682923.4-48.zip",
        "/queue/cluster/worker1/sub/x",
        "/queue/cluster/stray.zip",
        "/etc/client.keys",
    ] {
        s.write_atomic(&p(file), b"data", &attrs).unwrap();
    }
    s.add_special(&p("/queue/cluster/c-internal.sock")).unwrap();
    let sweep = remove_cluster_leftovers(&mut s);
    assert!(sweep.failed.is_empty(), "{:?}", sweep.failed);
    let removed: Vec<&str> = sweep.removed.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        removed,
        [
            "/queue/cluster/gone-name",
            "/queue/cluster/stray.zip",
            "/queue/cluster/worker1"
        ]
    );
    let left: Vec<String> = s.snapshot().keys().map(|p| p.as_str().to_owned()).collect();
    assert_eq!(
        left,
        [
            "/etc",
            "/etc/client.keys",
            "/queue",
            "/queue/cluster",
            "/queue/cluster/c-internal.sock"
        ]
    );
    // Nothing to sweep is no error.
    assert_eq!(
        remove_cluster_leftovers(&mut MemoryStorage::new()),
        Default::default()
    );
}

#[test]
fn a_package_taken_for_a_job_that_never_ran_is_removed_with_the_link() {
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    assert_eq!(m.ask(worker, "sync_i_w_m_p", b""), ok("True"));
    let (_, task) = m.ask(worker, "sync_i_w_m", b"");
    let path = "/queue/cluster/worker1/worker1-1795682923.4069414-4841727390577477.zip";
    m.send_file(worker, path, &worker_integrity_package("{}"));
    // The disk is slow: another file's first step is in flight when `_e` hands the package to
    // its read job, which waits behind it.
    m.run_effects = false;
    assert_eq!(
        m.ask(worker, "new_file", b"/queue/cluster/worker1/next"),
        ok("Ready to receive new file")
    );
    let end = format!("{} {path}", String::from_utf8_lossy(&task));
    assert_eq!(m.ask(worker, "sync_i_w_m_e", end.as_bytes()).0, "ok");
    assert_eq!(m.held.len(), 1, "only the begin is handed out");
    // The link goes before the read ran: the package is not left behind.
    m.node.handle_closed(m.now, worker);
    m.clients.remove(&worker);
    m.run_effects = true;
    m.run_held();
    assert_eq!(held_below(&m, "/queue/cluster/worker1"), (0, 0));
    assert!(!dir_exists(&m, "/queue/cluster/worker1"));
    assert_eq!(m.exec.storage().staged_writes(), 0);
}
