//! Output backpressure over real loopback TCP: a worker that floods the master with requests and
//! never reads the replies is paused (the master stops reading it, so its own writes stop
//! completing), not closed and not buffered without bound; the master serves another worker
//! meanwhile; once the flooder reads, every reply comes, in order. And a connection that ends
//! before `hello` is logged with its address and why.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wazuh_cluster_protocol::connection::DEFAULT_MAX_PRE_HELLO_PAYLOAD;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{
    Command, DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, FrameError, encode_frame,
};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::roles::{HandshakeFailure, NodeEvent, NodeType, PeerId};
use wazuh_cluster_tokio::{EventLine, event_line};

use crate::support::*;

on_both_runtimes!(
    a_worker_that_does_not_read_is_paused_not_closed_and_gets_every_reply_in_order,
    the_write_backlog_cut_off_is_still_the_last_resort,
    a_connection_that_is_not_a_worker_is_logged_with_its_address_and_why,
);

/// The master's bound of unwritten output per peer in these tests.
const MAX_QUEUED: usize = 64 << 10;

/// The plaintext of every flood request (the master echoes it back).
const ECHO: [u8; 4096] = [b'e'; 4096];

/// Stop flooding past this: a master that never pauses would take it all.
const FLOOD_CAP: usize = 512 << 20;

fn fernet() -> Fernet {
    Fernet::new(&ClusterKey::new(KEY).unwrap())
}

/// One encrypted frame (the token's time is never checked: upstream decrypts without a TTL).
fn sealed(counter: u32, command: &Command, plain: &[u8]) -> BytesMut {
    let token = fernet().encrypt(plain, [9; 16], 1_800_000_000);
    let mut out = BytesMut::new();
    encode_frame(Profile::V3_9, counter, command, &token, &mut out).unwrap();
    out
}

/// A connection whose own kernel buffers are small, so that what the master sends and does not
/// get read fills them quickly.
async fn small_buffered(addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 << 10).unwrap();
    socket.set_send_buffer_size(8 << 10).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads frames until one with `counter` arrived; returns them all in order.
async fn read_until(
    rd: &mut (impl AsyncReadExt + Unpin),
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
    counter: u32,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            while let Some(frame) = decoder.decode_buf(buf).unwrap() {
                let last = frame.counter == counter;
                frames.push(frame);
                if last {
                    return;
                }
            }
            assert_ne!(rd.read_buf(buf).await.unwrap(), 0, "closed by the master");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no frame {counter} within {PATIENCE:?}"));
    frames
}

/// Says `hello` as worker `name`; returns the master's peer id for the connection.
async fn hello(master: &Running, stream: &mut TcpStream, name: &str) -> PeerId {
    let payload = format!("{name} wazuh worker 3.9.5");
    stream
        .write_all(&sealed(1, &Command::HELLO, payload.as_bytes()))
        .await
        .unwrap();
    let (mut decoder, mut buf) = (
        FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD),
        BytesMut::new(),
    );
    let reply = read_until(stream, &mut decoder, &mut buf, 1).await;
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].command.name(), b"ok");
    let text = fernet().decrypt(&reply[0].payload).unwrap();
    assert_eq!(text, format!("Client {name} added").into_bytes());
    assert!(buf.is_empty());
    let name = name.to_owned();
    master
        .inspect(move |n, _| n.worker_peer(&name))
        .await
        .unwrap()
        .expect("registered")
}

/// Writes `echo-c` requests (counters 2, 3, ...) until a write does not complete and the master
/// says it stopped reading from `peer`. Returns the counters sent whole and the bytes of the
/// request the socket took only in part.
async fn flood_until_paused(
    master: &Running,
    stream: &mut TcpStream,
    peer: PeerId,
) -> (Vec<u32>, BytesMut) {
    let mut sent = Vec::new();
    let mut counter = 1;
    let mut out = BytesMut::new();
    let mut total = 0;
    loop {
        if out.is_empty() {
            assert!(
                total < FLOOD_CAP,
                "the master read {total} bytes and never paused"
            );
            counter += 1;
            out = sealed(counter, &Command::ECHO_C, &ECHO);
            total += out.len();
        }
        // `write` is cancel-safe: a write that does not complete in time wrote nothing.
        match tokio::time::timeout(Duration::from_millis(300), stream.write(&out)).await {
            Ok(written) => {
                out.advance(written.unwrap());
                if out.is_empty() {
                    sent.push(counter);
                }
            }
            Err(_) => {
                // Our buffers are full. Done once the master says it stopped reading (it may
                // just have been slow to read).
                let wants = master.inspect(move |n, _| n.wants_input(peer)).await;
                if wants == Some(false) {
                    return (sent, out);
                }
            }
        }
    }
}

async fn a_worker_that_does_not_read_is_paused_not_closed_and_gets_every_reply_in_order(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master_at(rt, &mroot, "127.0.0.1:0", |spec| {
        spec.config.limits.max_queued_output = MAX_QUEUED;
        // Only a last resort now: it would have closed this peer before output backpressure.
        spec.limits.max_write_backlog = 1 << 20;
        // The flooder's keepalives wait unread while it is paused.
        let master = &mut spec.config.items.intervals.master;
        master.max_allowed_time_without_keepalive = Duration::from_secs(600);
    })
    .await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap();

    let mut stream = small_buffered(addr).await;
    let peer = hello(&master, &mut stream, "flooder").await;
    let (sent, rest) = flood_until_paused(&master, &mut stream, peer).await;
    // Paused, not closed: the master holds at least its bound of unwritten replies for it and
    // stopped reading; the link and the registration stay.
    let (wants, queued, peers, workers) = master
        .inspect(move |n, _| {
            let peers: Vec<PeerId> = n.peers().collect();
            (
                n.wants_input(peer),
                n.queued_output(peer),
                peers,
                n.workers(),
            )
        })
        .await
        .unwrap();
    assert!(!wants);
    assert!(queued >= MAX_QUEUED, "{queued} bytes queued");
    assert_eq!(peers, [peer]);
    assert_eq!(workers, ["flooder"]);

    // Meanwhile another worker joins and converges.
    let wroot = tree(dir.path(), "worker1");
    let mut w1 = start_worker(rt, &wroot, "worker1", &addr.to_string()).await;
    let mut e1 = w1.events();
    wait_event(&mut e1, "worker1's first round", |e| {
        matches!(e, NodeEvent::SyncFinished { .. })
    })
    .await;
    assert!(check(&mroot, &wroot).identical());
    // The flooder is still paused and still there.
    let (wants, workers) = master
        .inspect(move |n, _| (n.wants_input(peer), n.workers()))
        .await
        .unwrap();
    assert!(!wants);
    assert_eq!(workers, ["flooder", "worker1"]);

    // The flooder reads now: it finishes its half-written request, sends one more, and gets a
    // reply to every request, in order, each echoing its payload.
    let (mut rd, mut wr) = stream.into_split();
    let last = sent.last().copied().unwrap_or(1) + u32::from(!rest.is_empty()) + 1;
    let writer = tokio::spawn(async move {
        wr.write_all(&rest).await.unwrap();
        wr.write_all(&sealed(last, &Command::ECHO_C, b"done"))
            .await
            .unwrap();
        wr
    });
    let (mut decoder, mut buf) = (
        FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD),
        BytesMut::new(),
    );
    let replies = read_until(&mut rd, &mut decoder, &mut buf, last).await;
    let _wr = writer.await.unwrap();
    let counters: Vec<u32> = replies.iter().map(|f| f.counter).collect();
    let expected: Vec<u32> = (2..=last).collect();
    assert_eq!(counters, expected);
    for (i, frame) in replies.iter().enumerate() {
        assert_eq!(frame.command.name(), b"ok-m", "reply {i}");
        let text = fernet().decrypt(&frame.payload).unwrap();
        let want: &[u8] = if frame.counter == last {
            b"done"
        } else {
            &ECHO
        };
        assert_eq!(text, want, "reply to {}", frame.counter);
    }
    assert!(buf.is_empty());
    let wants = master.inspect(move |n, _| n.wants_input(peer)).await;
    assert_eq!(wants, Some(true));

    // Nobody was closed on the way.
    w1.stop().await.unwrap();
    let stats = master.stop().await.unwrap();
    assert_eq!(stats.slow_peers_closed, 0);
    while let Some(event) = mev.try_recv() {
        let closed = matches!(
            &event,
            NodeEvent::WorkerLeft { name, .. } if name == "flooder"
        ) || matches!(event, NodeEvent::HandshakeFailed { .. });
        assert!(!closed, "{event:?}");
    }
}

async fn the_write_backlog_cut_off_is_still_the_last_resort(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master_at(rt, &master_root(dir.path()), "127.0.0.1:0", |spec| {
        // Misconfigured on purpose: the adapter's cut-off below the node's bound.
        spec.config.limits.max_queued_output = 64 << 20;
        spec.limits.max_write_backlog = 256 << 10;
        // The closed peer's writer is stuck on a full socket: cut it soon.
        spec.limits.shutdown_grace = Duration::from_millis(500);
    })
    .await;
    let mut stream = small_buffered(master.local_addr().unwrap()).await;
    hello(&master, &mut stream, "flooder").await;
    // Flood until the master closes the link (a write or the read side fails).
    let frame = sealed(2, &Command::ECHO_C, &ECHO);
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut total = 0;
        while total < FLOOD_CAP {
            if stream.write_all(&frame).await.is_err() {
                return;
            }
            total += frame.len();
        }
        panic!("never closed after {total} bytes");
    })
    .await;
    assert!(closed.is_ok(), "still writing after {PATIENCE:?}");
    let stats = master.stop().await.unwrap();
    assert_eq!(stats.slow_peers_closed, 1);
}

async fn a_connection_that_is_not_a_worker_is_logged_with_its_address_and_why(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_master(rt, &master_root(dir.path())).await;
    let mut mev = master.events();
    let mut probe = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    let from = probe.local_addr().unwrap().to_string();
    probe
        .write_all(b"GET / HTTP/1.1\r\nHost: master\r\n\r\n")
        .await
        .unwrap();
    let event = wait_event(&mut mev, "the failed handshake", |e| {
        matches!(e, NodeEvent::HandshakeFailed { .. })
    })
    .await;
    let error = FrameError::PayloadTooLarge {
        declared: u32::from_be_bytes(*b"/ HT"),
        // Before `hello`, the bound is the small pre-hello one.
        max: DEFAULT_MAX_PRE_HELLO_PAYLOAD,
        offset: 0,
    };
    let NodeEvent::HandshakeFailed { addr, reason, .. } = &event else {
        unreachable!()
    };
    assert_eq!(
        (addr, reason),
        (&from, &HandshakeFailure::BadFrame(error.clone()))
    );
    assert_eq!(
        event_line(NodeType::Master, &event),
        EventLine {
            peer: None,
            task: "Main",
            message: format!(
                "Error during handshake with incoming connection from {from}: bad frame: {error}"
            ),
            level: tracing::Level::WARN,
        }
    );
    // The master closed it.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, probe.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    master.stop().await.unwrap();
}
