//! A peer that misbehaves at the socket level: one that does not read what the master sends it
//! (its output counts as queued until the driver reports it written, and the node stops reading
//! from it at exactly `max_queued_output`), and one whose connection ends before a `hello` was
//! accepted (the node says why, with the peer's address).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, PeerError, Side, WallClock,
};
use wazuh_cluster_protocol::fernet::{FernetError, token_len};
use wazuh_cluster_protocol::frame::{Command, FrameError, HEADER_LEN, encode_header};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::roles::{HandshakeFailure, NodeEvent, NodeType, Origin, PeerId};

use super::support::*;

/// The keepalive payload the flooding client sends (and the master echoes back).
const ECHO: &[u8] = b"keepalive";

/// Bytes of one `echo-c` request or its `ok-m` reply on the wire (same payload, same length).
const FRAME: usize = HEADER_LEN + token_len(ECHO.len());

/// Replies the master may hold for a peer that does not read.
const BOUND: usize = 10;

/// Queues an `echo-c` at client `peer` (the pump hands it to the node when the node wants it).
fn echo(m: &mut RawMaster, peer: PeerId) -> u32 {
    let now = m.now;
    m.clients
        .get_mut(&peer)
        .unwrap()
        .send_request(now, Command::ECHO_C, ECHO)
        .unwrap()
}

/// `(counter, payload)` of every `ok-m` reply client `peer` has read so far, in order.
fn replies(m: &mut RawMaster, peer: PeerId) -> Vec<(u32, Bytes)> {
    let c = m.clients.get_mut(&peer).unwrap();
    let mut out = Vec::new();
    while let Some(event) = c.poll_event() {
        match event {
            Event::Response {
                counter,
                reply: Reply::OkFromMaster(payload),
                ..
            } => out.push((counter, payload)),
            other => panic!("unexpected client event {other:?}"),
        }
    }
    out
}

#[test]
fn a_peer_that_does_not_read_is_paused_at_the_bound_and_later_gets_every_reply_in_order() {
    let t0 = origin();
    let mut cfg = config(NodeType::Master, "master01", t0);
    cfg.limits.max_queued_output = BOUND * FRAME;
    let mut m = RawMaster::new(t0, cfg);
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    // Everything the master sent so far was written: nothing is queued.
    assert_eq!(m.node.queued_output(peer), 0);
    m.honour_wants_input = true;
    m.not_reading.insert(peer);

    let mut sent = Vec::new();
    for i in 0..BOUND {
        assert!(m.node.wants_input(peer), "after {i} replies");
        assert_eq!(m.node.queued_output(peer), i * FRAME);
        sent.push(echo(&mut m, peer));
        m.pump();
    }
    // Ten replies yielded, none reported written: the node stops reading from the peer.
    assert_eq!(m.node.queued_output(peer), BOUND * FRAME);
    assert!(!m.node.wants_input(peer));

    // The peer keeps sending: its requests wait on its side (its kernel buffer), unread, and no
    // reply is added.
    for _ in 0..5 {
        sent.push(echo(&mut m, peer));
        m.pump();
    }
    assert_eq!(m.node.queued_output(peer), BOUND * FRAME);
    assert_eq!(m.clients[&peer].queued_transmit_bytes(), 5 * FRAME);
    assert!(replies(&mut m, peer).is_empty());
    assert!(m.closed.is_empty());

    // One byte written: below the bound, the node reads again. The five requests come in one
    // read and are all answered (the overshoot is what one read asks for); then it pauses again.
    assert_eq!(m.read_from_node(peer, 1), 1);
    assert_eq!(m.clients[&peer].queued_transmit_bytes(), 0);
    assert_eq!(m.node.queued_output(peer), (BOUND + 5) * FRAME - 1);
    assert!(!m.node.wants_input(peer));

    // The peer reads everything: every reply, in order, echoing its payload.
    assert_eq!(m.read_from_node(peer, usize::MAX), (BOUND + 5) * FRAME - 1);
    assert_eq!(m.node.queued_output(peer), 0);
    assert!(m.node.wants_input(peer));
    let expected: Vec<(u32, Bytes)> = sent
        .iter()
        .map(|&counter| (counter, Bytes::from_static(ECHO)))
        .collect();
    assert_eq!(replies(&mut m, peer), expected);
    assert_eq!(sent.len(), BOUND + 5);
    // Distinct counters, in the order they were sent.
    assert!(sent.windows(2).all(|w| w[0] < w[1]));

    // The link is still up and served normally.
    m.not_reading.clear();
    assert_eq!(
        m.ask(peer, "echo-c", b"again"),
        ("ok-m".to_owned(), Bytes::from_static(b"again"))
    );
    assert_eq!(m.node.queued_output(peer), 0);
    assert!(m.closed.is_empty());
    assert_eq!(m.node.workers(), ["worker1"]);
}

#[test]
fn written_reports_saturate_and_unknown_peers_are_ignored() {
    let t0 = origin();
    let mut m = RawMaster::new(t0, config(NodeType::Master, "master01", t0));
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    m.not_reading.insert(peer);
    echo(&mut m, peer);
    m.pump();
    assert_eq!(m.node.queued_output(peer), FRAME);
    // Over-reporting saturates at zero; a peer the node does not know changes nothing.
    m.node.handle_written(m.now, PeerId(99), 1 << 20);
    assert_eq!(m.node.queued_output(peer), FRAME);
    m.node.handle_written(m.now, peer, FRAME + 100);
    assert_eq!(m.node.queued_output(peer), 0);
    assert_eq!(m.node.queued_output(PeerId(99)), 0);
    assert!(!m.node.wants_input(PeerId(99)));
}

// ---------------------------------------------------------------------------------------------
// Connections that end before `hello`

const ADDR: &str = "10.0.0.9:40009";

fn master() -> RawMaster {
    let t0 = origin();
    RawMaster::new(t0, config(NodeType::Master, "master01", t0))
}

/// A connection from [`ADDR`] that has said nothing yet (the node sees bytes only when a test
/// feeds them).
fn silent(m: &mut RawMaster) -> PeerId {
    let peer = PeerId(5);
    m.node.handle_connected(m.now, peer, ADDR, Origin::Incoming);
    m.pump();
    peer
}

fn failed(peer: PeerId, reason: HandshakeFailure) -> NodeEvent {
    NodeEvent::HandshakeFailed {
        peer,
        addr: ADDR.to_owned(),
        reason,
    }
}

#[test]
fn a_peer_that_hangs_up_before_hello_is_reported_with_its_address() {
    let mut m = master();
    let peer = silent(&mut m);
    m.node.handle_closed(m.now, peer);
    m.pump();
    assert_eq!(
        m.take_events(),
        [failed(peer, HandshakeFailure::PeerClosed)]
    );
    assert_eq!(
        HandshakeFailure::PeerClosed.to_string(),
        "connection closed by the peer"
    );
}

#[test]
fn no_hello_within_the_deadline() {
    let mut m = master();
    let peer = silent(&mut m);
    let timeout = m.node.config().connection.hello_timeout;
    assert_eq!(timeout, Duration::from_secs(30));
    m.advance(timeout - Duration::from_millis(1));
    assert!(m.take_events().is_empty());
    m.advance(Duration::from_millis(1));
    assert_eq!(m.closed, [peer]);
    let reason = HandshakeFailure::HelloTimeout { timeout };
    assert_eq!(reason.to_string(), "no successful hello within 30s");
    assert_eq!(m.take_events(), [failed(peer, reason)]);
}

#[test]
fn a_hello_under_another_cluster_key() {
    let mut m = master();
    let peer = silent(&mut m);
    // A worker configured with another key: its hello does not decrypt.
    let other = ClusterKey::new("otherclusterkey0123456789abcdefg").unwrap();
    let config = ConnectionConfig::new(Profile::V3_9, Some(other), WallClock::new(m.now, UNIX0));
    let mut worker = Connection::new(config, Side::Client, Rng::from_seed(3), m.now);
    worker
        .send_request(m.now, Command::HELLO, b"worker1 wazuh worker 3.9.5")
        .unwrap();
    let hello = worker.poll_transmit().unwrap();
    m.node.handle_input(m.now, peer, &hello);
    m.pump();
    assert_eq!(m.closed, [peer]);
    let reason = HandshakeFailure::Decrypt(FernetError::BadHmac);
    assert_eq!(
        reason.to_string(),
        "Could not decrypt message. Check key is correct. \
         (Fernet token HMAC does not match (wrong key or altered token))"
    );
    assert_eq!(m.take_events(), [failed(peer, reason)]);
}

#[test]
fn bytes_that_are_not_a_frame() {
    let mut m = master();
    let peer = silent(&mut m);
    // An HTTP probe: its "length field" is "/ HT", far above the payload bound.
    m.node
        .handle_input(m.now, peer, b"GET / HTTP/1.1\r\nHost: master\r\n\r\n");
    m.pump();
    assert_eq!(m.closed, [peer]);
    let declared = u32::from_be_bytes(*b"/ HT");
    // Before hello, the pre-hello bound applies.
    let max = m.node.config().connection.max_pre_hello_payload;
    assert_eq!(
        m.take_events(),
        [failed(
            peer,
            HandshakeFailure::BadFrame(FrameError::PayloadTooLarge {
                declared,
                max,
                offset: 0
            })
        )]
    );
}

#[test]
fn a_first_frame_whose_payload_never_arrives() {
    let t0 = origin();
    let mut cfg = config(NodeType::Master, "master01", t0);
    // Shorter than the hello deadline, which would otherwise close the link first.
    cfg.connection.payload_timeout = Duration::from_secs(5);
    let mut m = RawMaster::new(t0, cfg);
    let peer = silent(&mut m);
    let mut frame = BytesMut::new();
    encode_header(Profile::V3_9, 1, &Command::HELLO, 100, &mut frame).unwrap();
    frame.extend_from_slice(b"0123456789");
    m.node.handle_input(m.now, peer, &frame);
    m.pump();
    let timeout = m.node.config().connection.payload_timeout;
    m.advance(timeout - Duration::from_millis(1));
    assert!(m.closed.is_empty());
    m.advance(Duration::from_millis(1));
    assert_eq!(m.closed, [peer]);
    assert_eq!(
        m.take_events(),
        [failed(
            peer,
            HandshakeFailure::Protocol(PeerError::PayloadTimeout { timeout })
        )]
    );
}

#[test]
fn a_refused_hello_then_a_hang_up_and_no_handshake_event_for_workers_or_local_clients() {
    let mut m = master();
    let peer = m.connect(1, ADDR);
    let refusal = m.ask(peer, "hello", b"worker1 other worker 3.9.5");
    assert_eq!(refusal.0, "err");
    m.node.handle_closed(m.now, peer);
    m.pump();
    let events = m.take_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], NodeEvent::HelloRefused { .. }));
    assert_eq!(
        events[1],
        NodeEvent::HandshakeFailed {
            peer,
            addr: ADDR.to_owned(),
            reason: HandshakeFailure::PeerClosed
        }
    );

    // A registered worker leaves under its name; a local client needs no hello.
    let worker = m.join(2, "worker1", "10.0.0.2:40002");
    let local = PeerId(3);
    m.node
        .handle_connected(m.now, local, "local", Origin::Local);
    m.pump();
    m.take_events();
    m.node.handle_closed(m.now, worker);
    m.node.handle_closed(m.now, local);
    m.pump();
    assert_eq!(
        m.take_events(),
        [NodeEvent::WorkerLeft {
            name: "worker1".into(),
            reason: wazuh_cluster_sync::roles::CloseReason::Lost
        }]
    );
}
