//! Faults on virtual time: keepalive loss, a worker that never sends its file, and a 200 MiB
//! package that must not hold keepalives back.

use std::time::Duration;

use wazuh_cluster_protocol::connection::{ConnectionError, PeerError};
use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::cluster::{Cluster, ClusterBuilder};
use wazuh_cluster_sim::fixtures::{OLD, cluster, master_tree, recorded_intervals};
use wazuh_cluster_sim::net::{LinkEnd, LinkParams, Pieces};
use wazuh_cluster_sim::sim::{Sim, SimConfig};
use wazuh_cluster_sim::tap::TapFrame;
use wazuh_cluster_sim::tree::{TreeFile, storage_from};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Storage;
use wazuh_cluster_sync::roles::{
    CloseReason, LockRelease, NodeConfig, NodeEvent, SyncError, SyncKind,
};
use wazuh_cluster_testkit::install_path as path;

fn frames<'a>(
    sim: &'a Sim,
    from: &'a str,
    command: &'a str,
) -> impl Iterator<Item = &'a TapFrame> + 'a {
    sim.frames()
        .iter()
        .filter(move |f| f.from == from && f.command == command)
}

/// The instant the master drops a worker whose last keepalive arrived at `last`: the first
/// keepalive check (every `check` from the master's start) at which the silence exceeds `max`.
fn expected_drop(last: VirtualTime, check: Duration, max: Duration) -> VirtualTime {
    let mut t = VirtualTime::ZERO.plus(check);
    while t.since(last) <= max {
        t = t.plus(check);
    }
    t
}

#[test]
fn keepalive_loss_drops_the_worker_after_120_s_and_it_rejoins_and_converges() {
    // Upstream's default intervals (keep_alive 60 s, check every 60 s, 120 s allowed).
    let mut c = cluster(SimConfig::default(), 2, |_| {}).unwrap();
    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    c.sim.run_for(Duration::from_secs(100)).unwrap();
    let (m, w1) = (c.master, c.workers[0]);

    // Cut worker1 off: its link stalls and it cannot reconnect.
    c.sim.partition(m, w1);
    let cut = c.sim.now();
    let last = frames(&c.sim, "worker1", "echo-c")
        .map(|f| f.at)
        .filter(|&t| t <= cut)
        .max()
        .unwrap();
    let dropped = |sim: &Sim| {
        sim.events_of(0)
            .any(|e| matches!(&e.event, NodeEvent::WorkerLeft { name, .. } if name == "worker1"))
    };
    c.sim
        .run_until(VirtualTime::from_secs(600), dropped)
        .unwrap();
    let left = c
        .sim
        .events_since(m, None, |e| matches!(e, NodeEvent::WorkerLeft { .. }));
    let want_at = expected_drop(last, Duration::from_secs(60), Duration::from_secs(120));
    assert_eq!(
        left,
        [(
            want_at,
            NodeEvent::WorkerLeft {
                name: "worker1".into(),
                reason: CloseReason::KeepaliveTimeout
            }
        )]
    );
    assert!(want_at.since(last) > Duration::from_secs(120));

    // Meanwhile the master changes a file; worker2 keeps up, worker1 cannot.
    let now = c.sim.unix_now();
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/lists/audit-keys"),
            b"changed:during-partition\n".to_vec(),
            now,
            0o660,
        )
        .unwrap();
    c.sim.run_for(Duration::from_secs(30)).unwrap();
    assert_eq!(c.integrity_diff(w1), [path("/etc/lists/audit-keys")]);
    assert_eq!(c.integrity_diff(c.workers[1]), Vec::<InstallPath>::new());

    // Heal: worker1 dials again (every connection_retry), joins and converges.
    c.sim.heal(m, w1);
    let healed = c.sim.now();
    let at = c.run_until_converged(VirtualTime::from_secs(900)).unwrap();
    let rejoined: Vec<VirtualTime> = c
        .sim
        .events_of(m)
        .filter(|e| matches!(&e.event, NodeEvent::WorkerJoined { name, .. } if name == "worker1"))
        .map(|e| e.at)
        .collect();
    assert_eq!(rejoined.len(), 2);
    assert!(rejoined[1] > healed && rejoined[1].since(healed) <= Duration::from_secs(10));
    // One integrity round (sync_integrity = 9 s) after the rejoin.
    assert!(
        at.since(rejoined[1]) <= Duration::from_secs(10),
        "converged {:?} after rejoin",
        at.since(rejoined[1])
    );

    // The worker's side: its keepalives go unanswered. Upstream's loop (and ours) sends one
    // keep_alive after the last answer, waits timeout_cluster_request for it, then again; the
    // second failure closes the link: answer + 60 + 20 + 60 + 20 s. Then every dial is refused
    // until the heal, and the next one gets through.
    let last_answer = frames(&c.sim, "master01", "ok-m")
        .map(|f| f.at)
        .filter(|&t| t <= cut)
        .max()
        .unwrap();
    let worker_side = c.sim.events_since(w1, Some(cut), |e| {
        matches!(
            e,
            NodeEvent::DisconnectedFromMaster { .. } | NodeEvent::ConnectedToMaster { .. }
        )
    });
    let keepalive = ConnectionError::Peer(PeerError::KeepaliveFailed { attempts: 2 });
    assert_eq!(
        keepalive.to_string(),
        "peer error: 2 keepalives in a row failed"
    );
    assert_eq!(
        worker_side[0],
        (
            last_answer.plus(Duration::from_secs(160)),
            NodeEvent::DisconnectedFromMaster {
                reason: CloseReason::Connection(Some(keepalive))
            }
        )
    );
    let (refused, back) = worker_side[1..].split_at(worker_side.len() - 2);
    assert!(!refused.is_empty());
    for (at, e) in refused {
        assert!(*at < healed);
        assert_eq!(
            e,
            &NodeEvent::DisconnectedFromMaster {
                reason: CloseReason::Lost
            }
        );
    }
    assert!(matches!(back, [(at, NodeEvent::ConnectedToMaster { .. })] if *at > healed));
}

/// A master and one worker, run until worker1 has sent `sync_i_w_m` (asked for its integrity
/// task).
fn cluster_at_task_request() -> Cluster {
    let mut c = cluster(SimConfig::default(), 1, |_| {}).unwrap();
    let asked = |sim: &Sim| frames(sim, "worker1", "sync_i_w_m").next().is_some();
    c.sim.run_until(VirtualTime::from_secs(60), asked).unwrap();
    c
}

#[test]
fn the_integrity_lock_is_freed_after_timeout_receiving_file_when_the_file_never_comes() {
    // Run until the master has received the worker's task request, then black-hole everything
    // the worker writes: it sends `sync_i_w_m` and never the file.
    let mut c = cluster_at_task_request();
    let (m, w1) = (c.master, c.workers[0]);
    let task_at = frames(&c.sim, "worker1", "sync_i_w_m").next().unwrap().at;
    let link = c.sim.links_between(m, w1)[0];
    c.sim.stall_direction(link, LinkEnd::Dialer);
    assert_eq!(
        c.sim.node(m).lock_free("worker1", SyncKind::Integrity),
        Some(false)
    );

    let released = |sim: &Sim| {
        sim.events_of(0)
            .any(|e| matches!(e.event, NodeEvent::LockReleased { .. }))
    };
    c.sim
        .run_until(VirtualTime::from_secs(600), released)
        .unwrap();
    let timeout = c.sim.node(m).config().timeout_receiving_file();
    let master_events = c.sim.events_since(m, Some(task_at), |e| {
        !matches!(e, NodeEvent::IntegrityRecalculated { .. })
    });
    assert_eq!(
        master_events,
        [
            (
                task_at.plus(timeout),
                NodeEvent::LockReleased {
                    worker: "worker1".into(),
                    kind: SyncKind::Integrity,
                    cause: LockRelease::TimedOut
                }
            ),
            (
                task_at.plus(timeout),
                NodeEvent::SyncFailed {
                    kind: SyncKind::Integrity,
                    worker: "worker1".into(),
                    error: SyncError::WorkerFileTimeout
                }
            ),
        ]
    );
    assert_eq!(
        c.sim.node(m).lock_free("worker1", SyncKind::Integrity),
        Some(true)
    );

    // The worker gets through again once its bytes flow, and converges.
    c.sim.unstall(link);
    c.run_until_converged(VirtualTime::from_secs(900)).unwrap();
}

/// Deterministic incompressible bytes (xorshift64*).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_200_mib_package_does_not_delay_keepalives() {
    const SIZE: usize = 200 << 20;
    const BANDWIDTH: u64 = 16 << 20; // bytes per second: the package needs 12.5 s on the wire
    let keep_alive = Duration::from_secs(1);
    let link = LinkParams {
        latency: Duration::from_millis(1),
        bandwidth: Some(BANDWIDTH),
        pieces: Pieces::Whole,
        send_buffer: None,
    };
    let config = SimConfig {
        link,
        ..SimConfig::default()
    };
    let mut tree = master_tree();
    tree.push(TreeFile::new(
        "/etc/lists/big-list.cdb",
        noise(SIZE, 42),
        OLD,
    ));
    let master = storage_from(tree).unwrap();
    let mut c = ClusterBuilder::new(config)
        .master("master01", master)
        .worker("worker1", MemoryStorage::new())
        .configure(move |cfg: &mut NodeConfig| {
            recorded_intervals(cfg);
            cfg.items.intervals.worker.keep_alive = keep_alive;
        })
        .build()
        .unwrap();
    let at = c.run_until_converged(VirtualTime::from_secs(300)).unwrap();
    let big = c
        .sim
        .storage(c.workers[0])
        .stat(&path("/etc/lists/big-list.cdb"))
        .unwrap()
        .unwrap();
    assert_eq!(big.size, SIZE as u64);

    // The package crossed the link in file_upd chunks over many keepalive periods.
    let chunks: Vec<&TapFrame> = frames(&c.sim, "master01", "file_upd").collect();
    let (first, last) = (chunks.first().unwrap().at, chunks.last().unwrap().at);
    assert!(
        last.since(first) >= Duration::from_secs(12),
        "transfer took {:?}",
        last.since(first)
    );

    // Keepalives during the transfer. Upstream's loop, and ours, sends `echo-c`, waits for the
    // answer, then sleeps keep_alive. So (a) each answer comes back behind at most one file chunk
    // on the wire (the master never queues more than one chunk ahead of it), and (b) the next
    // `echo-c` leaves exactly keep_alive after that answer: no disk work on the package, no
    // parked input on the worker postpones it.
    let latency = Duration::from_millis(1);
    let biggest = chunks.iter().map(|f| f.wire_len + 20).max().unwrap();
    let chunk_on_wire = Duration::from_secs_f64(biggest as f64 / BANDWIDTH as f64);
    let echoes: Vec<&TapFrame> = frames(&c.sim, "worker1", "echo-c").collect();
    let mut checked = 0;
    for pair in echoes
        .windows(2)
        .filter(|w| w[0].at >= first && w[1].at <= last)
    {
        let (echo, next) = (pair[0], pair[1]);
        let reply = c
            .sim
            .frames()
            .iter()
            .find(|r| r.from == "master01" && r.counter == echo.counter && r.command == "ok-m")
            .unwrap();
        let waited = reply.at.since(echo.at);
        assert!(
            waited <= chunk_on_wire + latency * 2,
            "keepalive answered after {waited:?}"
        );
        let gap = next.at.since(reply.at);
        assert!(
            gap >= keep_alive + latency && gap <= keep_alive + latency * 2,
            "next keepalive after {gap:?}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked} keepalives during the transfer");
    assert!(!c.sim.events().iter().any(|e| matches!(
        e.event,
        NodeEvent::DisconnectedFromMaster { .. } | NodeEvent::WorkerLeft { .. }
    )));
    assert!(at < VirtualTime::from_secs(60));
}

#[test]
fn a_slow_disk_makes_the_worker_stop_reading_and_the_sync_still_completes() {
    // Every effect takes 700 ms of virtual time; the worker may hold only 3 MiB of received
    // chunks not yet on disk, so while a 5 MiB chunk is being written it reads nothing more
    // (the keepalive answers that arrive meanwhile wait in the socket).
    const SIZE: usize = 24 << 20;
    let config = SimConfig {
        effect_latency: Duration::from_millis(700),
        ..SimConfig::default()
    };
    let mut tree = master_tree();
    tree.push(TreeFile::new(
        "/etc/lists/big-list.cdb",
        noise(SIZE, 7),
        OLD,
    ));
    let mut c = ClusterBuilder::new(config)
        .master("master01", storage_from(tree).unwrap())
        .worker("worker1", MemoryStorage::new())
        .configure(|cfg: &mut NodeConfig| {
            recorded_intervals(cfg);
            cfg.limits.max_pending_disk_bytes = 3 << 20;
        })
        .build()
        .unwrap();
    c.run_until_converged(VirtualTime::from_secs(120)).unwrap();
    // A delivery arrived while a chunk was being written, waited, and was handed over after.
    // (More than one may: the master reads and seals each next chunk while the worker answers
    // the previous one, so chunks follow each other faster than the 700 ms writes.)
    assert!(c.sim.stats().parked >= 1, "{:?}", c.sim.stats());
    assert!(!c.sim.events().iter().any(|e| matches!(
        e.event,
        NodeEvent::DisconnectedFromMaster { .. }
            | NodeEvent::WorkerLeft { .. }
            | NodeEvent::Error { .. }
    )));
}

#[test]
fn a_reset_in_the_middle_of_a_round_frees_the_lock_and_the_worker_comes_back() {
    let mut c = cluster_at_task_request();
    let (m, w1) = (c.master, c.workers[0]);
    assert_eq!(
        c.sim.node(m).lock_free("worker1", SyncKind::Integrity),
        Some(false)
    );
    let link = c.sim.links_between(m, w1)[0];
    let reset_at = c.sim.now();
    c.sim.reset(link);
    c.sim.run_for(Duration::from_millis(1)).unwrap();

    let at_reset = |n: usize| -> Vec<NodeEvent> {
        c.sim
            .events_of(n)
            .filter(|e| e.at == reset_at)
            .map(|e| e.event.clone())
            .collect()
    };
    // The task was created at this very instant (the reset hits right after `sync_i_w_m`).
    assert_eq!(
        at_reset(m),
        [
            NodeEvent::SyncStarted {
                kind: SyncKind::Integrity,
                worker: "worker1".into()
            },
            NodeEvent::LockReleased {
                worker: "worker1".into(),
                kind: SyncKind::Integrity,
                cause: LockRelease::ConnectionLost
            },
            NodeEvent::SyncFailed {
                kind: SyncKind::Integrity,
                worker: "worker1".into(),
                error: SyncError::ConnectionLost
            },
            NodeEvent::WorkerLeft {
                name: "worker1".into(),
                reason: CloseReason::Lost
            },
        ]
    );
    assert_eq!(
        c.sim.node(m).lock_free("worker1", SyncKind::Integrity),
        None
    );
    assert_eq!(
        at_reset(w1),
        [
            NodeEvent::SyncFailed {
                kind: SyncKind::Integrity,
                worker: "worker1".into(),
                error: SyncError::ConnectionLost
            },
            NodeEvent::DisconnectedFromMaster {
                reason: CloseReason::Lost
            },
        ]
    );

    // connection_retry (10 s) later it dials again, joins, and converges.
    c.run_until_converged(VirtualTime::from_secs(120)).unwrap();
    let joins: Vec<VirtualTime> = c
        .sim
        .events_of(m)
        .filter(|e| matches!(e.event, NodeEvent::WorkerJoined { .. }))
        .map(|e| e.at)
        .collect();
    assert_eq!(joins.len(), 2);
    let retry = c
        .sim
        .node(w1)
        .config()
        .items
        .intervals
        .worker
        .connection_retry;
    // Dial at reset + retry, then SYN and the hello cross the 1 ms link.
    assert_eq!(
        joins[1],
        reset_at.plus(retry).plus(Duration::from_millis(3))
    );
}

#[test]
fn a_worker_reconnecting_over_a_stale_session_replaces_it() {
    // Upstream's defaults. worker1's link black-holes (not a partition: new connections work).
    // The worker gives up first (last answer + 160 s), dials again 10 s later, and its hello
    // reaches a master that still holds the stale session (it would drop it only at the check
    // past 120 s of silence): the master probes the old session, which cannot answer, and the new
    // session replaces it once the probe's bound passed.
    let mut c = cluster(SimConfig::default(), 1, |_| {}).unwrap();
    let (m, w1) = (c.master, c.workers[0]);
    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    c.sim.run_for(Duration::from_secs(100)).unwrap();
    let old = c.sim.links_between(m, w1)[0];
    c.sim.stall(old);
    let hellos = |sim: &Sim| frames(sim, "worker1", "hello").count();
    c.sim
        .run_until(VirtualTime::from_secs(600), |sim| hellos(sim) == 2)
        .unwrap();
    let second_hello = frames(&c.sim, "worker1", "hello").nth(1).unwrap().at;
    let probe = c.sim.node(m).config().limits.hello_probe_timeout;
    c.sim.run_for(probe).unwrap();
    let replaced_at = second_hello.plus(probe);
    let master_side = c.sim.events_since(m, None, |e| {
        matches!(
            e,
            NodeEvent::WorkerLeft { .. } | NodeEvent::WorkerJoined { .. }
        )
    });
    assert_eq!(master_side.len(), 3, "{master_side:?}");
    assert_eq!(
        master_side[1..],
        [
            (
                replaced_at,
                NodeEvent::WorkerLeft {
                    name: "worker1".into(),
                    reason: CloseReason::Replaced
                }
            ),
            (
                replaced_at,
                NodeEvent::WorkerJoined {
                    name: "worker1".into(),
                    addr: "worker1:40001".into()
                }
            ),
        ]
    );
    // No keepalive drop ever happened, and the new session works: a change gets through.
    let now = c.sim.unix_now();
    c.sim
        .storage_mut(m)
        .add_file(
            &path("/etc/lists/audit-keys"),
            b"after:replace\n".to_vec(),
            now,
            0o660,
        )
        .unwrap();
    c.run_until_converged(VirtualTime::from_secs(900)).unwrap();
    assert!(!c.sim.events().iter().any(|e| matches!(
        &e.event,
        NodeEvent::WorkerLeft {
            reason: CloseReason::KeepaliveTimeout,
            ..
        }
    )));
}
