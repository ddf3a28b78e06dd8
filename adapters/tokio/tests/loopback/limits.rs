//! Socket-level bounds over real loopback TCP: connections per source address and in all, the
//! deadline of a declared payload, refused workers, and the node's daemon-wide budgets held by
//! its own counters while key holders flood it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wazuh_cluster_protocol::frame::{Command, encode_header};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::roles::{CloseReason, NodeEvent, hello_text};
use wazuh_cluster_testkit::wire_client::WireClient;

use crate::support::*;

on_both_runtimes!(
    the_eleventh_connection_from_one_address_is_refused,
    a_declared_payload_that_never_arrives_is_dropped_at_the_deadline,
    workers_with_a_wrong_cluster_name_or_key_are_refused_and_the_master_serves_the_others,
    the_node_wide_cap_refuses_a_connection_from_a_fresh_address_and_frees_with_any_slot,
    the_descriptor_budget_holds_while_key_holders_flood_transfers,
    silent_transfers_are_given_up_and_a_worker_joining_a_full_pool_gets_in,
    the_memory_budget_holds_while_key_holders_push_long_strings,
);

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Waits until `f` holds (checked every 10 ms, at most [`PATIENCE`]).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "never: {what}");
}

/// Reads until the peer closes; `true` if it did within `within`.
async fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    read.is_ok()
}

async fn the_eleventh_connection_from_one_address_is_refused(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_master(rt, &master_root(dir.path())).await;
    let addr = master.local_addr().unwrap();

    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    eventually("10 connections accepted", || {
        master.connections_from(LOCALHOST) == 10
    })
    .await;

    // The 11th is accepted by the kernel and closed by the adapter at once.
    let mut eleventh = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_peer(&mut eleventh, PATIENCE).await);
    assert_eq!(master.connections_from(LOCALHOST), 10);
    // The ten others are still open (the master waits for their hello).
    assert!(!closed_by_peer(&mut open[0], Duration::from_millis(200)).await);

    // A slot freed is a slot usable again.
    drop(open.pop());
    eventually("the closed connection's slot given back", || {
        master.connections_from(LOCALHOST) == 9
    })
    .await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    eventually("a tenth connection accepted again", || {
        master.connections_from(LOCALHOST) == 10
    })
    .await;
    assert!(!closed_by_peer(&mut again, Duration::from_millis(200)).await);

    master.shutdown();
    master.stopped().await;
    let stats = master.wait().await.unwrap();
    assert_eq!(stats.connections, 11);
}

/// A connection to `addr` from the loopback address `from` (Linux routes all of 127/8 to lo).
async fn connect_from(from: Ipv4Addr, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn the_node_wide_cap_refuses_a_connection_from_a_fresh_address_and_frees_with_any_slot(
    rt: Rt,
) {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master_at(rt, &master_root(dir.path()), "127.0.0.1:0", |spec| {
        spec.limits.max_connections = 4;
    })
    .await;
    let addr = master.local_addr().unwrap();
    let from = |last: u8| Ipv4Addr::new(127, 0, 0, last);

    // Two addresses, two connections each: the cap is reached, no address near its own limit.
    let mut open = Vec::new();
    for last in [2, 3] {
        for _ in 0..2 {
            open.push(connect_from(from(last), addr).await);
        }
    }
    eventually("4 connections accepted", || master.connections() == 4).await;

    // A third address, with no connection of its own, is refused by the node-wide cap.
    let mut fifth = connect_from(from(4), addr).await;
    assert!(closed_by_peer(&mut fifth, PATIENCE).await);
    assert_eq!(master.connections(), 4);
    assert_eq!(master.connections_from(IpAddr::V4(from(4))), 0);
    assert!(!closed_by_peer(&mut open[0], Duration::from_millis(200)).await);

    // One connection of another address closing frees a place for anyone.
    drop(open.pop());
    eventually("the closed connection's slot given back", || {
        master.connections() == 3
    })
    .await;
    let mut again = connect_from(from(4), addr).await;
    eventually("the fresh address accepted now", || {
        master.connections_from(IpAddr::V4(from(4))) == 1
    })
    .await;
    assert!(!closed_by_peer(&mut again, Duration::from_millis(200)).await);
    master.stop().await.unwrap();
}

async fn a_declared_payload_that_never_arrives_is_dropped_at_the_deadline(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let root = master_root(dir.path());
    let master = start_master_at(rt, &root, "127.0.0.1:0", |spec| {
        spec.config.connection.payload_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = master.local_addr().unwrap();

    // A header declaring 5 MiB, then 10 bytes of it, then nothing.
    let mut frame = BytesMut::new();
    let hello = Command::new(Profile::V3_9, b"hello").unwrap();
    encode_header(Profile::V3_9, 1, &hello, 5 << 20, &mut frame).unwrap();
    frame.extend_from_slice(b"0123456789");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A connection of the same age that sent nothing: only the hello deadline (30 s) applies.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&frame).await.unwrap();

    // Dropped long before the hello deadline, while the idle one stays open: the half-sent
    // frame is what closed it.
    assert!(closed_by_peer(&mut stream, Duration::from_secs(10)).await);
    eventually("the connection's slot given back", || {
        master.connections_from(LOCALHOST) == 1
    })
    .await;
    assert!(!closed_by_peer(&mut idle, Duration::from_millis(200)).await);
    master.stop().await.unwrap();
}

/// A worker's first event that says whether its link to the master came up or went down.
async fn first_link_event(events: &mut Events, what: &str) -> NodeEvent {
    wait_event(events, what, |e| {
        matches!(
            e,
            NodeEvent::ConnectedToMaster { .. } | NodeEvent::DisconnectedFromMaster { .. }
        )
    })
    .await
}

async fn workers_with_a_wrong_cluster_name_or_key_are_refused_and_the_master_serves_the_others(
    rt: Rt,
) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(rt, &mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();

    let mut other_cluster =
        start_worker_with(rt, &tree(dir.path(), "w-cluster"), "worker8", &addr, |c| {
            c.cluster_name = "other".to_owned();
        })
        .await;
    let mut other_key = start_worker_with(rt, &tree(dir.path(), "w-key"), "worker9", &addr, |c| {
        let key = wazuh_cluster_protocol::key::ClusterKey::new("otherclusterkey0123456789abcdefg")
            .unwrap();
        c.connection.key = Some(key);
    })
    .await;
    let (mut ec, mut ek) = (other_cluster.events(), other_key.events());

    // Wrong cluster name: upstream's refusal text, on both sides.
    // (The two bad workers race: wait for this refusal whatever comes before it.)
    wait_event(&mut mev, "the refusal", |e| {
        matches!(e, NodeEvent::HelloRefused { reply, .. } if reply == hello_text::OTHER_CLUSTER)
    })
    .await;
    let first = first_link_event(&mut ec, "worker8's first link event").await;
    assert_eq!(
        first,
        NodeEvent::DisconnectedFromMaster {
            // What upstream's worker reads from an `err` reply.
            reason: CloseReason::HelloRefused(format!(
                "Error processing request: {}",
                hello_text::OTHER_CLUSTER
            ))
        }
    );
    // Wrong key: the master cannot read its hello and says so; it never connects.
    let first = first_link_event(&mut ek, "worker9's first link event").await;
    assert_eq!(
        first,
        NodeEvent::DisconnectedFromMaster {
            reason: CloseReason::HelloRefused(
                "Error processing request: Could not decrypt message. Check key is correct."
                    .to_owned()
            )
        }
    );

    // Meanwhile a good worker joins and converges.
    let good = tree(dir.path(), "worker1");
    let mut w1 = start_worker(rt, &good, "worker1", &addr).await;
    let mut e1 = w1.events();
    wait_event(&mut e1, "worker1's apply", |e| {
        matches!(e, NodeEvent::SyncFinished { .. })
    })
    .await;
    assert!(check(&mroot, &good).identical());
    assert_eq!(
        master.inspect(|n, _| n.workers()).await.unwrap(),
        ["worker1"]
    );
    for node in [other_cluster, other_key, w1, master] {
        node.stop().await.unwrap();
    }
}

/// Waits until `f` holds for the running node (checked every 20 ms, at most [`PATIENCE`]).
async fn until_node(
    node: &Running,
    what: &str,
    f: impl Fn(&wazuh_cluster_sync::roles::Node) -> bool + Clone + Send + 'static,
) {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            let f = f.clone();
            if node.inspect(move |n, _| f(n)).await != Some(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "never: {what}");
}

/// Key holders registered as workers `{prefix}{i}` over real sockets (blocking clients).
fn key_holders(addr: std::net::SocketAddr, prefix: &str, n: usize) -> Vec<WireClient> {
    (0..n)
        .map(|i| {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            WireClient::hello(stream, KEY, &format!("{prefix}{i}")).expect("registered")
        })
        .collect()
}

async fn the_descriptor_budget_holds_while_key_holders_flood_transfers(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master_at(rt, &master_root(dir.path()), "127.0.0.1:0", |spec| {
        spec.limits.max_connections_per_ip = 100;
        // 20 files at once, 5 per link.
        spec.config.limits.max_transfer_descriptors = 40;
    })
    .await;
    let addr = master.local_addr().unwrap();
    let budget = master.inspect(|n, _| n.file_budget()).await.unwrap();
    assert_eq!((budget.limit, budget.share), (20, 5));

    // Eight links each open 8 files and never finish them.
    let (links, open) = tokio::task::spawn_blocking(move || {
        let mut links = key_holders(addr, "flood", 8);
        let mut open = 0;
        for (i, link) in links.iter_mut().enumerate() {
            let paths: Vec<String> = (0..8)
                .map(|f| format!("/queue/cluster/flood{i}/f{f}"))
                .collect();
            open += link.open_files(&paths, 1024);
        }
        (links, open)
    })
    .await
    .unwrap();
    assert_eq!(open, 20);
    let refused: usize = links.iter().map(WireClient::refused_transfers).sum();
    assert_eq!(refused, 8 * 8 - 20);
    let held = master.inspect(|n, _| n.file_budget().held).await.unwrap();
    assert_eq!(held, 20);
    // Every link is still served (a refusal is an answer, not a failed accept).
    assert_eq!(master.connections(), 8);

    // The links go: every place comes back once their staged writes are aborted.
    drop(links);
    until_node(&master, "file places given back", |n| {
        n.file_budget().held == 0
    })
    .await;
    master.stop().await.unwrap();
}

async fn silent_transfers_are_given_up_and_a_worker_joining_a_full_pool_gets_in(rt: Rt) {
    use wazuh_cluster_protocol::connection::{Event, TransferFailure};
    let dir = tempfile::tempdir().unwrap();
    let master = start_master_at(rt, &master_root(dir.path()), "127.0.0.1:0", |spec| {
        spec.limits.max_connections_per_ip = 100;
        // 12 files at once, shares of 4, reserves of 2: four greedy links hold them all (each
        // its share of what the others' reserves leave), and there is room for the reserves of
        // one more link.
        spec.config.limits.max_transfer_descriptors = 24;
        // Long enough for the set-up below on a loaded machine, short for a test.
        spec.config.connection.incoming_file_idle_timeout = Duration::from_secs(4);
    })
    .await;
    let addr = master.local_addr().unwrap();
    let (mut greedy, mut late, accepted) = tokio::task::spawn_blocking(move || {
        let mut greedy = key_holders(addr, "greedy", 4);
        for (i, link) in greedy.iter_mut().enumerate() {
            let paths: Vec<String> = (0..4)
                .map(|f| format!("/queue/cluster/greedy{i}/f{f}"))
                .collect();
            link.open_files(&paths, 1024);
        }
        // A worker joining the full pool is refused for now.
        let mut late = key_holders(addr, "late", 1).remove(0);
        // The wire client is authenticated after its hello, so its own core does not close it
        // at the hello deadline (30 s): its next timer is its keepalive, an hour away.
        let soon = std::time::Instant::now() + Duration::from_secs(60);
        assert!(late.conn.poll_timeout().is_none_or(|at| at > soon));
        let path = vec!["/queue/cluster/late0/agent-info.merged".to_owned()];
        let accepted = late.open_files(&path, 1024);
        (greedy, late, accepted)
    })
    .await
    .unwrap();
    // Refused: the greedy links' files held every place (they were not given up yet).
    assert_eq!((accepted, late.refused_transfers()), (0, 1));

    // Nothing more comes for the idle timeout: every staged write goes, the runtime woken for it.
    until_node(&master, "silent transfers given up", |n| {
        n.file_budget().held == 0 && n.open_incoming_files().is_empty()
    })
    .await;
    let (told, accepted) = tokio::task::spawn_blocking(move || {
        // A greedy link's next chunk is told why.
        let link = &mut greedy[0];
        let Some(&Event::FileChunkWanted { transfer, .. }) = link
            .events
            .iter()
            .rev()
            .find(|e| matches!(e, Event::FileChunkWanted { .. }))
        else {
            panic!("the greedy link had a transfer asking for more")
        };
        link.conn
            .file_chunk(std::time::Instant::now(), transfer, b"late")
            .unwrap();
        let mut told = None;
        link.drive(PATIENCE, |e| match e {
            Event::TransferFailed {
                transfer: t,
                failure: TransferFailure::Refused(reply),
            } if *t == transfer => {
                told = Some(String::from_utf8_lossy(reply.payload()).into_owned());
                true
            }
            _ => false,
        });
        // The places freed went to the late worker's reserve first.
        let path = vec!["/queue/cluster/late0/integrity.zip".to_owned()];
        (told, late.open_files(&path, 1024))
    })
    .await
    .unwrap();
    let told = told.expect("the chunk was refused");
    assert!(
        told.starts_with("Error: file /queue/cluster/greedy0/")
            && told.ends_with("given up by this node: nothing received for 4 s"),
        "{told}"
    );
    assert_eq!(accepted, 1);
    master.stop().await.unwrap();
}

async fn the_memory_budget_holds_while_key_holders_push_long_strings(rt: Rt) {
    use wazuh_cluster_protocol::connection::Event;
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let master = start_master_at(rt, &master_root(dir.path()), "127.0.0.1:0", |spec| {
        spec.limits.max_connections_per_ip = 100;
        // Pool 35 MiB; a link's share is two 8 MiB frames (16 MiB): two 4 MiB strings, each
        // taken with room for the frame that carries it.
        spec.config.limits.memory_budget = 40 * MIB;
        spec.config.connection.max_string_size = 4 * MIB;
    })
    .await;
    let addr = master.local_addr().unwrap();

    let (links, delivered) = tokio::task::spawn_blocking(move || {
        let mut links = key_holders(addr, "strings", 4);
        let data = bytes::Bytes::from(vec![b's'; 4 << 20]);
        let mut delivered = 0;
        for link in &mut links {
            for _ in 0..3 {
                let Ok(transfer) = link
                    .conn
                    .send_string(std::time::Instant::now(), data.clone())
                else {
                    continue;
                };
                let mut sent = false;
                link.drive(Duration::from_secs(30), |e| match e {
                    Event::StringSent { transfer: t, .. } if *t == transfer => {
                        sent = true;
                        true
                    }
                    Event::TransferFailed { transfer: t, .. } => *t == transfer,
                    _ => false,
                });
                delivered += usize::from(sent);
            }
        }
        (links, delivered)
    })
    .await
    .unwrap();
    // Two strings for each of three links fill 24 MiB of the 35; the fourth link finds 11 MiB,
    // too little for a string and the frame that carries it.
    let failures: Vec<String> = links
        .iter()
        .flat_map(|l| &l.events)
        .filter_map(|e| match e {
            Event::TransferFailed { failure, .. } => Some(format!("{failure:?}")),
            Event::Closed { error } => Some(format!("closed {error:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, 6, "{failures:?}");
    let held = master.inspect(|n, _| n.memory_budget()).await.unwrap();
    assert_eq!(held.input, 24 * MIB);
    assert!(held.input <= held.pool && held.input + held.output <= held.limit);
    assert_eq!(master.connections(), 4);

    drop(links);
    until_node(&master, "memory given back", |n| {
        n.memory_budget().input == 0
    })
    .await;
    master.stop().await.unwrap();
}
