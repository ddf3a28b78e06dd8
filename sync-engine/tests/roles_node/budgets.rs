//! Daemon-wide budgets against hostile workers (issue 12 point 2): whatever the peers do, the
//! node's own counters stay within the budget, a link never takes more than its share, and every
//! place comes back once the link that held it is gone.

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{ConnectionError, PeerError};
use wazuh_cluster_protocol::message::text::FILE_BUDGET_EXHAUSTED;
use wazuh_cluster_sync::roles::{CloseReason, NodeError, NodeEvent, NodeLimits, NodeType, PeerId};

use super::support::*;

/// A master whose descriptor budget takes `files` incoming files at once.
fn master_with_file_budget(files: usize) -> RawMaster {
    let t0 = origin();
    let mut config = config(NodeType::Master, "master01", t0);
    config.limits.max_transfer_descriptors =
        files * wazuh_cluster_sync::roles::DESCRIPTORS_PER_INCOMING_FILE;
    RawMaster::new(t0, config)
}

fn budget_refusal() -> (String, Bytes) {
    ("err".to_owned(), Bytes::from_static(FILE_BUDGET_EXHAUSTED))
}

/// The node's count, its own list of open staged writes and the executor's agree.
fn assert_files_open(m: &RawMaster, expected: usize) {
    assert_eq!(m.node.file_budget().held, expected, "the node's budget");
    assert_eq!(
        m.node.open_incoming_files().len(),
        expected,
        "the node's list"
    );
    assert_eq!(
        m.exec.open_files().len(),
        expected,
        "the executor's staged writes"
    );
}

/// Client `peer` opens files `/queue/cluster/<dir>/<name>f<n>` and sends a byte of each, as many
/// as it is let (at most `most`); the paths it holds. Every refusal is the budget's.
fn hold_files(m: &mut RawMaster, peer: PeerId, dir: &str, name: &str, most: usize) -> Vec<String> {
    let mut held = Vec::new();
    for f in 0..most {
        let path = format!("/queue/cluster/{dir}/{name}f{f}");
        let reply = m.ask(peer, "new_file", path.as_bytes());
        if reply.0 != "ok" {
            assert_eq!(reply, budget_refusal(), "{path}");
            continue;
        }
        let chunk = format!("{path} x");
        assert_eq!(m.ask(peer, "file_upd", chunk.as_bytes()).0, "ok");
        held.push(path);
    }
    held
}

#[test]
fn files_left_open_by_many_links_never_exceed_the_descriptor_budget_or_a_links_share() {
    // 12 files at once: a link's share is 4 (a quarter, at least `MIN_FILE_SHARE`), its reserve
    // 2, and the reserves keep at most half the pool (three links' worth).
    let mut m = master_with_file_budget(12);
    let budget = m.node.file_budget();
    assert_eq!((budget.limit, budget.share), (12, 4));
    let attackers: Vec<PeerId> = (1..=5)
        .map(|i| m.join(i, &format!("evil{i}"), &format!("10.0.0.{i}:4000{i}")))
        .collect();
    assert_eq!(m.node.file_budget().unmet_reserves, 6);
    m.take_events();
    // Each opens files it never finishes, as many as it is let.
    let mut held = Vec::new();
    for (i, &peer) in attackers.iter().enumerate() {
        held.push(hold_files(&mut m, peer, &format!("evil{}", i + 1), "", 8).len());
        assert!(m.node.file_budget().held <= 12);
    }
    // The three with reserves took their share of what the others' reserves left; the last two,
    // past the reserves' cap, found the pool full.
    assert_eq!(held, [4, 4, 4, 0, 0]);
    assert_files_open(&m, 12);
    // Refusals are typed, the links stay open (nobody's accept failed).
    assert!(m.closed.is_empty());
    let refusals: Vec<NodeEvent> = m.take_events();
    assert_eq!(refusals.len(), 5 * 8 - 12);
    assert_eq!(
        refusals[0],
        NodeEvent::Error {
            peer: Some(attackers[0]),
            error: NodeError::Peer(PeerError::FileBudgetExhausted { limit: 4 })
        }
    );
    assert_eq!(
        refusals.last(),
        Some(&NodeEvent::Error {
            peer: Some(attackers[4]),
            error: NodeError::Peer(PeerError::FileBudgetExhausted { limit: 0 })
        })
    );
    // Reopening a file that is open takes no new place.
    let again = m.ask(attackers[0], "new_file", b"/queue/cluster/evil1/f0");
    assert_eq!(again.0, "ok");
    assert_files_open(&m, 12);

    // One attacker leaves: its four staged writes are aborted and their places come back.
    m.node.handle_closed(m.now, attackers[0]);
    m.clients.remove(&attackers[0]);
    m.pump();
    assert_files_open(&m, 8);
    assert_eq!(m.node.effects_in_flight(), 0);

    // Everyone leaves: nothing stays held, on the node or on the disk side.
    for &peer in &attackers[1..] {
        m.node.handle_closed(m.now, peer);
        m.clients.remove(&peer);
    }
    m.pump();
    assert_files_open(&m, 0);
    assert_eq!(m.node.file_budget().unmet_reserves, 0);
}

#[test]
fn greedy_links_never_take_a_workers_reserve_and_a_worker_joining_a_full_pool_gets_in() {
    use std::time::Duration;
    // 24 files: shares of 6, reserves of 2 for up to six links (half the pool).
    let mut m = master_with_file_budget(24);
    let early = m.join(1, "worker1", "10.0.0.9:40001");
    let attackers: Vec<PeerId> = (2..=5)
        .map(|i| m.join(i, &format!("evil{i}"), &format!("10.0.0.{i}:4000{i}")))
        .collect();
    let mut held: Vec<Vec<String>> = attackers
        .iter()
        .zip(2..)
        .map(|(&peer, i)| hold_files(&mut m, peer, &format!("evil{i}"), "", 8))
        .collect();
    let counts: Vec<usize> = held.iter().map(Vec::len).collect();
    assert_eq!(counts, [6, 6, 6, 4], "worker1's two places are kept");
    // worker1, registered before the attack, syncs at once, two files at a time.
    let merged = "/queue/cluster/worker1/agent-info.merged";
    let integrity = "/queue/cluster/worker1/integrity.zip";
    assert_eq!(m.ask(early, "new_file", integrity.as_bytes()).0, "ok");
    m.send_file(early, merged, b"agent-info of worker1");
    let files = m.exec.storage().files();
    assert!(files.keys().any(|k| k.as_str() == merged));
    assert_files_open(&m, 23);

    // worker2 joins now, into a full pool: refused, but the places freed are granted to it.
    let late = m.join(9, "worker2", "10.0.0.10:40009");
    let path = "/queue/cluster/worker2/agent-info.merged";
    assert_eq!(m.ask(late, "new_file", path.as_bytes()), budget_refusal());
    // The attackers trickle a byte into each of their files every 30 s (never idle long enough
    // to be given up for silence) and ask for more files each time.
    let mut at = Duration::ZERO;
    while at < Duration::from_secs(120) {
        m.advance(Duration::from_secs(30));
        at += Duration::from_secs(30);
        for ((&peer, paths), i) in attackers.iter().zip(&mut held).zip(2..) {
            assert_eq!(m.ask(peer, "echo-c", b"keepalive").0, "ok-m");
            paths.retain(|path| {
                let reply = m.ask(peer, "file_upd", format!("{path} x").as_bytes());
                reply.0 == "ok"
            });
            let name = format!("t{}-", at.as_secs());
            let more = hold_files(&mut m, peer, &format!("evil{i}"), &name, 2);
            paths.extend(more);
        }
        assert_eq!(m.ask(early, "echo-c", b"keepalive").0, "ok-m");
        assert_eq!(m.ask(late, "echo-c", b"keepalive").0, "ok-m");
        assert!(m.node.file_budget().held <= 24);
    }
    // At their lifetime (120 s) every file of the attack is given up, said with its peer and
    // path, and the first places freed went to worker2's reserve.
    let given_up = m
        .take_events()
        .into_iter()
        .filter(|e| {
            matches!(e, NodeEvent::Error {
                error: NodeError::Peer(PeerError::FileNotFinished { lifetime, .. }),
                ..
            } if *lifetime == Duration::from_secs(120))
        })
        .count();
    assert_eq!(given_up, 22);
    m.send_file(late, path, b"agent-info of worker2");
    assert!(m.exec.storage().files().keys().any(|k| k.as_str() == path));
    assert!(m.node.file_budget().held <= 24);
}

#[test]
fn files_that_finish_or_fail_their_checksum_give_their_places_back() {
    let mut m = master_with_file_budget(4);
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    // Twice the budget, one after the other: each finished file frees its place.
    for f in 0..8 {
        m.send_file(worker, &format!("/queue/cluster/worker1/f{f}"), b"data");
    }
    assert_files_open(&m, 0);
    // A full budget of files whose checksum then fails: every place comes back.
    for f in 0..4 {
        let path = format!("/queue/cluster/worker1/g{f}");
        assert_eq!(m.ask(worker, "new_file", path.as_bytes()).0, "ok");
    }
    assert_files_open(&m, 4);
    let fifth = m.ask(worker, "new_file", b"/queue/cluster/worker1/g4");
    assert_eq!(fifth, budget_refusal());
    for f in 0..4 {
        let end = format!("/queue/cluster/worker1/g{f} {}", "0".repeat(32));
        assert_eq!(m.ask(worker, "file_end", end.as_bytes()).0, "err");
    }
    assert_files_open(&m, 0);
    assert_eq!(
        m.ask(worker, "new_file", b"/queue/cluster/worker1/g4").0,
        "ok"
    );
}

/// A master whose memory budget is `limit` bytes, with 1 MiB frames and 16 MiB strings at most
/// (so a link's share is a quarter of the budget).
fn master_with_memory_budget(limit: u64) -> RawMaster {
    let t0 = origin();
    let mut config = config(NodeType::Master, "master01", t0);
    config.limits.memory_budget = limit;
    config.connection.max_frame_payload = 1 << 20;
    config.connection.max_string_size = 16 << 20;
    RawMaster::new(t0, config)
}

const MIB: u64 = 1 << 20;

/// The node's memory counters stay within the budget, the peers' input within the pool.
fn assert_within_budget(m: &RawMaster) {
    let use_ = m.node.memory_budget();
    assert!(use_.input <= use_.pool, "{use_:?}");
    assert!(use_.input + use_.output <= use_.limit, "{use_:?}");
}

#[test]
fn links_that_each_take_their_share_of_memory_never_exceed_the_budget_and_a_worker_still_syncs() {
    use wazuh_cluster_protocol::frame::{Command, HEADER_LEN, encode_header};
    use wazuh_cluster_protocol::message::text::MEMORY_BUDGET_EXHAUSTED;
    use wazuh_cluster_protocol::profile::Profile;

    // 128 MiB: the peers may hold 112 MiB, one link 32 MiB. A string is taken with room for one
    // frame (1 MiB + header) beside it.
    let mut m = master_with_memory_budget(128 * MIB);
    let budget = m.node.memory_budget();
    assert_eq!((budget.pool, budget.share), (112 * MIB, 32 * MIB));
    let frame = MIB + HEADER_LEN as u64;
    let attackers: Vec<PeerId> = (1..=7)
        .map(|i| m.join(i, &format!("evil{i}"), &format!("10.0.0.{i}:4000{i}")))
        .collect();
    m.take_events();
    let memory_refusal = (
        "err".to_owned(),
        Bytes::from_static(MEMORY_BUDGET_EXHAUSTED),
    );
    // Each declares the longest strings it is let, and sends none of their bytes.
    let declare = |m: &mut RawMaster, peer: PeerId, len: u64| {
        let reply = m.ask(peer, "new_str", len.to_string().as_bytes());
        assert_within_budget(m);
        reply
    };
    for &peer in &attackers[..3] {
        assert_eq!(declare(&mut m, peer, 15 * MIB).0, "ok");
        assert_eq!(declare(&mut m, peer, 15 * MIB).0, "ok");
        // Its share is nearly full: 2 MiB more (and a frame's room) is refused.
        assert_eq!(declare(&mut m, peer, 2 * MIB), memory_refusal);
    }
    // The fourth finds 22 MiB left in the pool: 21 MiB minus a frame's room.
    assert_eq!(declare(&mut m, attackers[3], 16 * MIB).0, "ok");
    assert_eq!(declare(&mut m, attackers[3], 5 * MIB), memory_refusal);
    assert_eq!(declare(&mut m, attackers[3], 5 * MIB - frame).0, "ok");
    assert_eq!(m.node.memory_budget().input, 111 * MIB - frame);
    // The fifth: 1 MiB and a frame's room are left.
    let left = MIB + frame;
    assert_eq!(declare(&mut m, attackers[4], MIB + 1), memory_refusal);
    assert_eq!(declare(&mut m, attackers[4], MIB).0, "ok");
    // That room is a frame's: the sixth parks a 1 MiB frame in it (its header alone allocates
    // it), the seventh's finds nothing left and closes its link before anything is allocated.
    let mut header = bytes::BytesMut::new();
    let dapi = Command::new(Profile::V3_9, b"dapi").unwrap();
    encode_header(Profile::V3_9, 1, &dapi, 1 << 20, &mut header).unwrap();
    m.node.handle_input(m.now, attackers[5], &header);
    m.pump();
    assert!(!m.closed.contains(&attackers[5]));
    assert_eq!(m.node.memory_budget().input, 112 * MIB);
    m.node.handle_input(m.now, attackers[6], &header);
    m.pump();
    assert!(m.closed.contains(&attackers[6]));
    assert_within_budget(&m);
    let events = m.take_events();
    assert!(events.contains(&NodeEvent::Error {
        peer: Some(attackers[4]),
        error: NodeError::Peer(PeerError::StringOverMemoryBudget {
            declared: MIB + 1,
            allowance: left
        })
    }));
    let over_budget = PeerError::FrameOverMemoryBudget {
        declared: 1 << 20,
        allowance: 0,
    };
    assert!(
        events.contains(&NodeEvent::WorkerLeft {
            name: "evil7".into(),
            reason: CloseReason::Connection(Some(over_budget.into())),
        }),
        "{events:?}"
    );

    // A legitimate worker meanwhile: its hello, requests and file chunks are small frames, which
    // are always taken; its file lands whole.
    let worker = m.join(9, "worker1", "10.0.0.9:40009");
    let path = "/queue/cluster/worker1/agent-info.merged";
    m.send_file(worker, path, &[b'i'; 20_000]);
    assert!(m.exec.storage().files().keys().any(|k| k.as_str() == path));
    assert_within_budget(&m);

    // Released on every path: a link's close...
    m.node.handle_closed(m.now, attackers[0]);
    m.clients.remove(&attackers[0]);
    m.pump();
    assert_eq!(m.node.memory_budget().input, 82 * MIB);
    // ...which makes room for another link's string...
    assert_eq!(declare(&mut m, attackers[4], 15 * MIB).0, "ok");
    // ...and the strings that never arrive expire.
    m.advance(std::time::Duration::from_secs(121));
    assert_eq!(m.node.memory_budget().input, 0);
}

// ---------------------------------------------------------------------------------------------
// Output: the node's big output is paced node-wide (issue 12 point 2, issue 13's flat master)

/// Workers receiving a package at once in [`paced_output`].
const RECEIVERS: u64 = 4;
/// Their master's chunks: 64 KiB requests, so a chunk's frame is about 87 KiB with its token.
const REQUEST_CHUNK: usize = 64 << 10;

/// A master holding an incompressible 400 KiB file (seven chunks) that `RECEIVERS` empty
/// workers all need, whose output gate lets `cap` bytes out at once and whose memory budget is
/// `memory`; every worker reads the master's chunk frames only when the test says (a stalled
/// reader), and sends keepalives every `keep_alive`. Returns the cluster and the master's index.
fn receivers_of_one_package(
    cap: u64,
    memory: u64,
    keep_alive: std::time::Duration,
) -> (Cluster, usize) {
    use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage};
    let t0 = origin();
    let mut tree = master_storage(unix0());
    let mut data = vec![0u8; 400 << 10];
    wazuh_cluster_protocol::rng::Rng::from_seed(5).fill_bytes(&mut data);
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: Some(unix0()),
    };
    tree.create_dir_all(&p("/etc/lists"), 0o770).unwrap();
    tree.write_atomic(&p("/etc/lists/big"), &data, &attrs)
        .unwrap();
    let mut c = Cluster::new(t0);
    let configured = |node_type, name: &str| {
        let mut config = config(node_type, name, t0);
        config.connection.request_chunk = REQUEST_CHUNK;
        // One chunk per file in flight (upstream's stop-and-wait), so that the turns the gate
        // gives are plain to see; the window's own test is in flow.rs.
        config.connection.file_window = 0;
        config.connection.max_frame_payload = 1 << 20;
        config.connection.max_string_size = 1 << 20;
        config.items.intervals.worker.keep_alive = keep_alive;
        config.limits.max_output_in_flight = cap;
        config.limits.memory_budget = memory;
        config
    };
    let m = c.add(
        configured(NodeType::Master, "master01"),
        tree,
        1,
        "10.0.0.1",
    );
    for i in 1..=RECEIVERS {
        let name = format!("worker{i}");
        let addr = format!("10.0.1.{i}");
        c.add_worker(configured(NodeType::Worker, &name), 10 + i, &addr);
        // The master's end of this worker's link (incoming links are numbered from 1).
        let end = End {
            member: m,
            peer: PeerId(i),
        };
        c.stall_above.insert(end, 32 << 10);
    }
    (c, m)
}

/// The master's links in the order its `file_upd` frames were yielded.
fn chunk_order(c: &Cluster, m: usize) -> Vec<PeerId> {
    c.frames
        .iter()
        .zip(&c.frame_ends)
        .filter(|((from, _, command, _), _)| *from == m && command == "file_upd")
        .map(|(_, end)| end.peer)
        .collect()
}

/// Runs [`receivers_of_one_package`] to the end, the stalled readers reading in turn, and
/// checks at every step that the master's big output stays within `bound` (as its own output
/// gate and memory budget count it), that no link is served twice while another waits, that
/// keepalives are answered while every link is paused, and that every worker gets the file.
fn paced_output(cap: u64, memory: u64, bound: impl Fn(&Cluster, usize)) {
    let (mut c, m) = receivers_of_one_package(cap, memory, std::time::Duration::from_secs(5));
    // Until the first chunks: the workers join, ask for their integrity rounds, and the master
    // sends them their packages, until each link is paused (two hold a chunk their reader
    // does not take, two wait at the gate).
    for _ in 0..30 {
        if !chunk_order(&c, m).is_empty() {
            break;
        }
        c.run_for(std::time::Duration::from_secs(1));
    }
    let gate = c.members[m].node.output_gate();
    assert_eq!(chunk_order(&c, m).len(), 2, "two chunks fit");
    assert_eq!(gate.waiting, 2, "{gate:?}");
    bound(&c, m);

    // Every link paused, the keepalives still come and go: each worker's `echo-c` is answered
    // (on the two stalled links the answer waits behind the chunk, as in a socket).
    let frames_before = c.frames.len();
    c.run_for(std::time::Duration::from_secs(2));
    let echoes: Vec<(usize, u32)> = c.frames[frames_before..]
        .iter()
        .filter(|(from, _, command, _)| *from != m && command == "echo-c")
        .map(|(from, counter, _, _)| (*from, *counter))
        .collect();
    assert_eq!(echoes.len(), RECEIVERS as usize, "{echoes:?}");
    for (worker, counter) in echoes {
        let answered = c.frames[frames_before..]
            .iter()
            .zip(&c.frame_ends[frames_before..])
            .any(|((from, k, _, _), end)| {
                *from == m && *k == counter && c.links.get(end).map(|e| e.member) == Some(worker)
            });
        assert!(
            answered,
            "worker {worker}'s keepalive {counter} was not answered"
        );
    }
    assert_eq!(c.members[m].node.output_gate().waiting, 2);

    // The stalled readers read, oldest chunk first (each link holds one: its next is asked for
    // once this one is answered): each chunk written lets the next link in turn have one.
    let mut steps = 0;
    while !c.stalled.is_empty() {
        let order = chunk_order(&c, m);
        let oldest = c
            .stalled
            .keys()
            .copied()
            .min_by_key(|e| order.iter().rposition(|p| *p == e.peer))
            .unwrap();
        c.write_stalled(oldest);
        bound(&c, m);
        steps += 1;
        assert!(steps < 100, "the transfers never end");
    }
    let order = chunk_order(&c, m);
    let chunks = order.len() / RECEIVERS as usize;
    assert_eq!(order.len(), RECEIVERS as usize * chunks);
    assert!(chunks >= 7, "{order:?}");
    let mut sent = std::collections::BTreeMap::<PeerId, usize>::new();
    for peer in &order {
        *sent.entry(*peer).or_default() += 1;
        let (least, most) = (sent.values().min().unwrap(), sent.values().max().unwrap());
        let all_started = sent.len() == RECEIVERS as usize;
        assert!(
            most - if all_started { *least } else { 0 } <= 1,
            "a link got a second chunk while another waited: {order:?}"
        );
    }
    c.run_for(std::time::Duration::from_secs(5));
    use wazuh_cluster_sync::integrity::storage::Storage;
    let expected = c.storage(m).read(&p("/etc/lists/big"), 1 << 20).unwrap();
    for w in 1..=RECEIVERS as usize {
        assert_eq!(
            c.storage(w).read(&p("/etc/lists/big"), 1 << 20).unwrap(),
            expected,
            "worker{w}"
        );
    }
    let gate = c.members[m].node.output_gate();
    assert_eq!((gate.held, gate.waiting), (0, 0));
}

#[test]
fn chunks_wait_at_the_node_wide_cap_and_the_links_take_turns_while_keepalives_pass() {
    // Two chunk frames (about 87 KiB each) fit under 200,000 bytes, a third does not.
    let cap = 200_000;
    paced_output(cap, 256 * MIB, |c, m| {
        let gate = c.members[m].node.output_gate();
        assert!(gate.held <= cap, "{gate:?}");
        assert_within_budget_of(c, m);
    });
}

#[test]
fn chunks_wait_while_the_memory_budget_is_full_and_the_links_take_turns() {
    // No cap of its own: 256 KiB of memory leave room for two chunk frames beside the small
    // frames of the links.
    paced_output(u64::MAX, 256 << 10, assert_within_budget_of);
}

/// [`assert_within_budget`] for member `m` of a cluster.
fn assert_within_budget_of(c: &Cluster, m: usize) {
    let use_ = c.members[m].node.memory_budget();
    assert!(use_.input + use_.output <= use_.limit, "{use_:?}");
}

/// A link that never reads what it is sent cannot hold its share of the node's output forever:
/// its output makes no progress for `output_stall_timeout`, the master closes it as not
/// reading, and the links that waited at the gate behind it get their chunks. Regression: the
/// piece a link did not read stayed counted at the gate until the link closed, so two such
/// links (a key holder's) kept every other worker's chunks waiting.
#[test]
fn links_that_do_not_read_are_closed_and_give_their_turn_to_the_waiting_ones() {
    // Hostile readers: they never give up on the link themselves (an honest worker's
    // keepalives, answered behind the chunk it does not read, fail and it reconnects).
    let (mut c, m) =
        receivers_of_one_package(200_000, 256 * MIB, std::time::Duration::from_secs(600));
    for _ in 0..30 {
        if !chunk_order(&c, m).is_empty() {
            break;
        }
        c.run_for(std::time::Duration::from_secs(1));
    }
    let holders = chunk_order(&c, m);
    assert_eq!(holders.len(), 2, "two chunks fit");
    assert_eq!(c.members[m].node.output_gate().waiting, 2);
    let stall = NodeLimits::default().output_stall_timeout;
    c.events.clear();

    // Nobody reads. Just short of the bound nothing has changed; just past it the two holders
    // are closed and the two waiting links each get a chunk (which they do not read either).
    c.run_for(stall - std::time::Duration::from_secs(2));
    assert!(
        !c.events
            .iter()
            .any(|(_, e)| matches!(e, NodeEvent::WorkerLeft { .. })),
        "{:?}",
        c.events
    );
    assert_eq!(chunk_order(&c, m).len(), 2);
    c.run_for(std::time::Duration::from_secs(4));
    let not_reading = CloseReason::Connection(Some(ConnectionError::Peer(PeerError::NotReading {
        waited: stall,
    })));
    let left: Vec<&String> = c
        .events
        .iter()
        .filter_map(|(member, event)| match event {
            NodeEvent::WorkerLeft { name, reason } if *member == m => {
                assert_eq!(reason, &not_reading, "{name}");
                Some(name)
            }
            _ => None,
        })
        .collect();
    assert_eq!(left.len(), 2, "{:?}", c.events);
    let order = chunk_order(&c, m);
    assert_eq!(order.len(), 4, "{order:?}");
    assert!(
        order[2..].iter().all(|peer| !holders.contains(peer)),
        "{order:?}"
    );
}
