//! Two connection cores wired in memory (quinn's `Pair`): bytes move in a chosen split, time jumps
//! to the next `poll_timeout`, and the tests assert exact events, instants and counters.

use std::time::Duration;

use crate::support::{Delivery, Pair, config, random_bytes, secs};
use bytes::Bytes;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use wazuh_cluster_protocol::connection::{
    Connection, Event, FileChunkError, PeerError, RequestError, SendStringError, Side,
    TransferFailure, TransferId,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::CLUSTER_KEY;

const MIB: usize = 1 << 20;

fn cmd(name: &[u8]) -> Command {
    Command::new(Profile::V3_9, name).unwrap()
}

/// Sends a 20 MiB file then a 20 MiB string from the client, with the cluster key, and checks the
/// server got both exactly.
fn big_exchange(delivery: Delivery) {
    let mut pair = Pair::new(CLUSTER_KEY, 11, delivery);
    let file = random_bytes(1, 20 * MIB);
    let string = random_bytes(2, 20 * MIB);
    let path = b"/queue/cluster/worker1/worker1-1700000000.123-abc.zip";
    let transfer = pair.client_send_file(path, file.clone());
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::FileSent {
            transfer,
            size: 20 * MIB as u64
        })
    );
    // 4 chunks of request_chunk - len(path) - 1 bytes: 5 MiB frames, as upstream cuts them.
    let chunk_max = 5_242_880 - path.len() - 1;
    let wanted = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::FileChunkWanted { max_len, .. } if *max_len == chunk_max))
        .count();
    assert_eq!(wanted, 20 * MIB / chunk_max + 2);
    assert_eq!(pair.server_file_len, 20 * MIB as u64);
    let sha256: [u8; 32] = Sha256::digest(&file).into();
    assert_eq!(pair.server_file_sha.clone().finalize()[..], sha256[..]);
    assert_eq!(
        pair.server_events,
        vec![
            Event::FileOpened {
                path: Bytes::from_static(path)
            },
            Event::FileReceived {
                path: Bytes::from_static(path),
                size: 20 * MIB as u64,
                sha256
            },
        ]
    );

    let transfer = pair.client.send_string(pair.now, string.clone()).unwrap();
    pair.drive();
    let Some(Event::StringComplete { id }) = pair.server_events.last().cloned() else {
        panic!("no StringComplete: {:?}", pair.server_events.last())
    };
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::StringSent {
            transfer,
            id: Bytes::from(id.to_string())
        })
    );
    assert_eq!(pair.server.take_string(id), Some(string));
    assert_eq!(pair.client.pending_requests(), 0);
    assert_eq!(pair.server.incoming_strings(), 0);
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

#[test]
fn twenty_mib_file_and_string_with_fernet_byte_by_byte() {
    big_exchange(Delivery::ByteByByte);
}

#[test]
fn twenty_mib_file_and_string_with_fernet_random_split() {
    big_exchange(Delivery::RandomSplit { max: 70_000 });
}

#[test]
fn request_times_out_exactly_at_its_deadline_and_the_late_reply_is_dropped() {
    let mut pair = Pair::new(CLUSTER_KEY, 3, Delivery::Whole);
    pair.server_auto_reply = false;
    let t0 = pair.now;
    let counter = pair.client.send_request(t0, cmd(b"dapi"), b"{}").unwrap();
    pair.drive();
    let [Event::Request { counter: seen, .. }] = pair.server_events[..] else {
        panic!("{:?}", pair.server_events)
    };
    assert_eq!(seen, counter);
    assert_eq!(pair.client.poll_timeout(), Some(t0 + secs(20)));

    // One nanosecond early: nothing.
    pair.advance_to(t0 + secs(20) - Duration::from_nanos(1));
    assert_eq!(pair.client_events, vec![]);
    // Exactly at the deadline.
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(20)));
    assert_eq!(
        pair.client_events,
        vec![Event::TimedOut {
            counter,
            command: cmd(b"dapi")
        }]
    );
    assert_eq!(pair.client.pending_requests(), 0);

    // The server answers late: dropped, counted, not taken for a request, not answered.
    pair.server
        .reply(pair.now, counter, Command::OK, b"late")
        .unwrap();
    let late = pair.server.poll_transmit().unwrap();
    pair.client.handle_input(pair.now, &late);
    assert_eq!(pair.client.late_replies(), 1);
    assert_eq!(pair.client.poll_event(), None);
    assert_eq!(pair.client.poll_transmit(), None);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn replies_resolve_requests_with_typed_values() {
    let mut pair = Pair::new("", 4, Delivery::Whole);
    let t0 = pair.now;
    let echo = pair
        .client
        .send_request(t0, Command::ECHO, b"ping")
        .unwrap();
    let echo_c = pair
        .client
        .send_request(t0, Command::ECHO_C, b"keepalive")
        .unwrap();
    let dapi = pair.client.send_request(t0, cmd(b"dapi"), b"x").unwrap();
    let foo = pair.client.send_request(t0, cmd(b"foo"), b"").unwrap();
    pair.drive();
    assert_eq!(
        pair.client_events,
        vec![
            Event::Response {
                counter: echo,
                command: Command::ECHO,
                reply: Reply::Ok(Bytes::from_static(b"ping"))
            },
            Event::Response {
                counter: echo_c,
                command: Command::ECHO_C,
                reply: Reply::OkFromMaster(Bytes::from_static(b"keepalive"))
            },
            Event::Response {
                counter: foo,
                command: cmd(b"foo"),
                reply: Reply::Err(Bytes::from_static(b"unknown command 'b'foo''"))
            },
            // The layer above answers `dapi` after the core answered `foo`.
            Event::Response {
                counter: dapi,
                command: cmd(b"dapi"),
                reply: Reply::Ok(Bytes::from_static(b"x"))
            },
        ]
    );
    assert_eq!(pair.server.last_keepalive(), Some(t0));
    let Event::Response { reply, .. } = &pair.client_events[1] else {
        unreachable!()
    };
    assert_eq!(
        reply.upstream_value(),
        b"Sucessful response from master: keepalive"
    );
}

#[test]
fn keepalive_failure_closes_the_link_after_exactly_two_failures() {
    let mut pair = Pair::new(CLUSTER_KEY, 5, Delivery::Whole);
    let t0 = pair.now;
    pair.client.set_authenticated(t0);
    assert_eq!(pair.client.poll_timeout(), Some(t0 + secs(60)));

    // First keepalive succeeds and is recorded by the server.
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(60)));
    assert_eq!(pair.server.last_keepalive(), Some(t0 + secs(60)));
    assert_eq!(pair.client.failed_keepalives(), 0);
    assert_eq!(pair.client.poll_timeout(), Some(t0 + secs(120)));

    // Then the server stops answering.
    pair.server_to_client_open = false;
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(120)));
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(140)));
    assert_eq!(pair.client.failed_keepalives(), 1);
    assert!(!pair.client.is_closed());
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(200)));
    assert_eq!(pair.server.last_keepalive(), Some(t0 + secs(200)));
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(220)));
    assert!(pair.client.is_closed());
    assert_eq!(
        pair.client_events,
        vec![Event::Closed {
            error: Some(PeerError::KeepaliveFailed { attempts: 2 }.into())
        }]
    );
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn an_error_reply_to_a_keepalive_counts_as_a_failure_and_a_success_resets() {
    // A server that claims echo-c and refuses it.
    let t0 = origin();
    let client = Connection::new(config("", t0), Side::Client, Rng::from_seed(1), t0);
    let server_config = config("", t0).claim([Command::ECHO_C]);
    let server = Connection::new(server_config, Side::Server, Rng::from_seed(2), t0);
    let mut pair = Pair::from_cores(client, server, t0, Delivery::Whole, Rng::from_seed(3));
    pair.server_auto_reply = false;
    pair.client.set_authenticated(t0);
    let answer = |pair: &mut Pair, command: Command| {
        let Some(Event::Request { counter, .. }) = pair.server_events.pop() else {
            panic!()
        };
        pair.server.reply(pair.now, counter, command, b"x").unwrap();
        pair.drive();
    };
    pair.jump_to_next_timeout();
    answer(&mut pair, Command::ERR);
    assert_eq!(pair.client.failed_keepalives(), 1);
    pair.jump_to_next_timeout();
    answer(&mut pair, Command::OK_M);
    assert_eq!(pair.client.failed_keepalives(), 0);
    pair.jump_to_next_timeout();
    answer(&mut pair, Command::ERR);
    pair.jump_to_next_timeout();
    assert_eq!(pair.now, t0 + secs(240));
    answer(&mut pair, Command::ERR);
    assert_eq!(
        pair.client_events,
        vec![Event::Closed {
            error: Some(PeerError::KeepaliveFailed { attempts: 2 }.into())
        }]
    );
}

#[test]
fn counters_wrap_at_two_to_the_32() {
    let mut pair = Pair::new("", 6, Delivery::Whole);
    pair.client.set_counter(0xFFFF_FFFE);
    let a = pair
        .client
        .send_request(pair.now, Command::ECHO, b"a")
        .unwrap();
    let frame_a = pair.client.poll_transmit().unwrap();
    let b = pair
        .client
        .send_request(pair.now, Command::ECHO, b"b")
        .unwrap();
    let frame_b = pair.client.poll_transmit().unwrap();
    assert_eq!((a, b), (0xFFFF_FFFF, 0));
    assert_eq!(frame_a[..4], [0xFF; 4]);
    assert_eq!(frame_b[..4], [0; 4]);
    pair.server.handle_input(pair.now, &frame_a);
    pair.server.handle_input(pair.now, &frame_b);
    pair.drive();
    assert_eq!(
        pair.client_events,
        vec![
            Event::Response {
                counter: 0xFFFF_FFFF,
                command: Command::ECHO,
                reply: Reply::Ok(Bytes::from_static(b"a"))
            },
            Event::Response {
                counter: 0,
                command: Command::ECHO,
                reply: Reply::Ok(Bytes::from_static(b"b"))
            },
        ]
    );
}

#[test]
fn initial_counters_come_from_the_seed() {
    let t0 = origin();
    let counter =
        |seed| Connection::new(config("", t0), Side::Client, Rng::from_seed(seed), t0).counter();
    assert_eq!(counter(1), counter(1));
    assert_ne!(counter(1), counter(2));
}

#[test]
fn bounds_on_the_api_side_are_typed_errors() {
    let t0 = origin();
    let mut cfg = config("", t0);
    cfg.max_pending_requests = 2;
    cfg.max_outgoing_transfers = 1;
    cfg.request_chunk = 100;
    let mut conn = Connection::new(cfg, Side::Client, Rng::from_seed(1), t0);
    assert_eq!(
        conn.send_request(t0, Command::ECHO, &[0; 101]),
        Err(RequestError::PayloadTooLarge {
            len: 101,
            limit: 100
        })
    );
    let transfer = conn.send_file(t0, b"/f").unwrap();
    assert_eq!(
        conn.send_string(t0, Bytes::new()),
        Err(SendStringError::TooManyTransfers { limit: 1 })
    );
    assert_eq!(
        conn.file_chunk(t0, transfer, b"x"),
        Err(FileChunkError::NotWaitingForChunk(0))
    );
    assert_eq!(
        conn.file_chunk(t0, TransferId(9), b"x"),
        Err(FileChunkError::UnknownTransfer(9))
    );
    conn.send_request(t0, Command::ECHO, b"").unwrap();
    assert_eq!(
        conn.send_request(t0, Command::ECHO, b""),
        Err(RequestError::TooManyPendingRequests { limit: 2 })
    );
    conn.close();
    assert_eq!(
        conn.send_request(t0, Command::ECHO, b""),
        Err(RequestError::Closed)
    );
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            Event::Aborted {
                counter: conn.counter(),
                command: Command::ECHO
            },
            Event::TransferFailed {
                transfer,
                failure: TransferFailure::Closed
            },
            Event::Closed { error: None },
        ]
    );
}

#[test]
fn file_chunk_length_is_checked() {
    let mut pair = Pair::new("", 8, Delivery::Whole);
    let transfer = pair.client.send_file(pair.now, b"/f").unwrap();
    pair.drive();
    let max = 5_242_880 - 3;
    assert_eq!(
        pair.client_events,
        vec![Event::FileChunkWanted {
            transfer,
            max_len: max
        }]
    );
    assert_eq!(
        pair.client.file_chunk(pair.now, transfer, b""),
        Err(FileChunkError::BadChunkLen {
            transfer: 0,
            len: 0,
            max
        })
    );
    // An empty file: new_file then file_end straight away, as upstream.
    pair.client.finish_file(pair.now, transfer).unwrap();
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::FileSent { transfer, size: 0 })
    );
}

#[test]
fn a_refused_transfer_step_fails_the_transfer() {
    let t0 = origin();
    let client = Connection::new(config("", t0), Side::Client, Rng::from_seed(1), t0);
    let mut server_cfg = config("", t0);
    server_cfg.max_string_size = 10;
    let server = Connection::new(server_cfg, Side::Server, Rng::from_seed(2), t0);
    let mut pair = Pair::from_cores(client, server, t0, Delivery::Whole, Rng::from_seed(3));
    let transfer = pair
        .client
        .send_string(t0, Bytes::from_static(b"0123456789A"))
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client_events,
        vec![Event::TransferFailed {
            transfer,
            failure: TransferFailure::Refused(Reply::Err(Bytes::from_static(
                b"Requested size exceeds maximum allowed limit"
            )))
        }]
    );
    assert_eq!(
        pair.server_events,
        vec![Event::Violation(PeerError::StringTooLarge {
            declared: 11,
            limit: 10
        })]
    );
}

#[test]
fn a_file_with_a_wrong_checksum_is_refused_with_upstreams_text() {
    let mut server = Connection::new(
        config("", origin()),
        Side::Server,
        Rng::from_seed(1),
        origin(),
    );
    let mut client = Connection::new(
        config("", origin()),
        Side::Client,
        Rng::from_seed(2),
        origin(),
    );
    let t = origin();
    // Hand-built requests: new_file, file_upd, file_end with a wrong digest.
    client.send_request(t, Command::NEW_FILE, b"/x").unwrap();
    client
        .send_request(t, Command::FILE_UPD, b"/x data")
        .unwrap();
    client
        .send_request(
            t,
            Command::FILE_END,
            &[b"/x ".as_slice(), &[0u8; 32]].concat(),
        )
        .unwrap();
    server.handle_input(t, &client.poll_transmit().unwrap());
    let out = server.poll_transmit().unwrap();
    let last = &out[out.len() - 55 - 20..];
    assert_eq!(&last[8..20], b"err --------");
    assert_eq!(
        &last[20..],
        b"File wasn't correctly received. Checksums aren't equal."
    );
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    let path = Bytes::from_static(b"/x");
    assert_eq!(
        events,
        vec![
            Event::FileOpened { path: path.clone() },
            Event::FileChunk {
                path: path.clone(),
                data: Bytes::from_static(b"data")
            },
            Event::FileFailed {
                path: path.clone(),
                error: Some(PeerError::ChecksumMismatch { path })
            },
        ]
    );
}

#[test]
fn an_unclaimed_string_expires_at_its_deadline() {
    let mut pair = Pair::new("", 9, Delivery::Whole);
    let t0 = pair.now;
    pair.client
        .send_string(t0, Bytes::from_static(b"abc"))
        .unwrap();
    pair.drive();
    let Some(Event::StringComplete { id }) = pair.server_events.last().cloned() else {
        panic!()
    };
    assert_eq!(pair.server.poll_timeout(), Some(t0 + secs(120)));
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(120)));
    assert_eq!(
        pair.server_events.last(),
        Some(&Event::StringExpired { id })
    );
    assert_eq!(pair.server.take_string(id), None);
}

/// A small exchange (file + string + echo, request_chunk 64) under a given delivery: the events
/// and transmitted replies do not depend on how the stream was cut.
fn small_exchange(delivery: Delivery, seed: u64) -> (Vec<Event>, Vec<Event>) {
    let t0 = origin();
    let mut client_cfg = config(CLUSTER_KEY, t0);
    client_cfg.request_chunk = 64;
    let client = Connection::new(client_cfg, Side::Client, Rng::from_seed(1), t0);
    let server = Connection::new(config(CLUSTER_KEY, t0), Side::Server, Rng::from_seed(2), t0);
    let mut pair = Pair::from_cores(client, server, t0, delivery, Rng::from_seed(seed));
    pair.client_send_file(b"/q/f", random_bytes(seed, 300));
    pair.client
        .send_string(t0, random_bytes(seed + 1, 200))
        .unwrap();
    pair.client.send_request(t0, Command::ECHO, b"x").unwrap();
    pair.drive();
    (pair.client_events, pair.server_events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_split_gives_the_same_events(seed in 0u64..1000, max in 1usize..200) {
        let whole = small_exchange(Delivery::Whole, seed);
        let split = small_exchange(Delivery::RandomSplit { max }, seed);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn garbage_input_never_panics(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        keyed in any::<bool>(),
        authenticated in any::<bool>(),
    ) {
        let t0 = origin();
        let key = if keyed { CLUSTER_KEY } else { "" };
        let mut conn = Connection::new(config(key, t0), Side::Server, Rng::from_seed(1), t0);
        if authenticated {
            conn.set_authenticated(t0);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            conn.handle_input(t0 + secs(i as u64), chunk);
            conn.handle_timeout(t0 + secs(i as u64));
            while conn.poll_transmit().is_some() {}
        }
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        let closes = events.iter().filter(|e| matches!(e, Event::Closed { .. })).count();
        prop_assert_eq!(closes, usize::from(conn.is_closed()));
        if conn.is_closed() {
            let last_is_closed = matches!(events.last(), Some(Event::Closed { .. }));
            prop_assert!(last_is_closed);
        }
    }

    #[test]
    fn framed_garbage_never_panics(
        frames in proptest::collection::vec(
            (any::<u32>(), 0usize..12, proptest::collection::vec(any::<u8>(), 0..64)),
            0..12,
        ),
    ) {
        // Valid frames carrying common-layer commands with random payloads: every request gets a
        // reply or surfaces, nothing panics.
        let names: [&[u8]; 12] = [
            b"echo", b"echo-c", b"echo-m", b"new_file", b"file_upd", b"file_end", b"new_str",
            b"str_upd", b"ok", b"err", b"hello", b"zzz",
        ];
        let t0 = origin();
        let mut conn = Connection::new(config("", t0), Side::Server, Rng::from_seed(1), t0);
        let mut wire = bytes::BytesMut::new();
        for (counter, name, payload) in &frames {
            wazuh_cluster_protocol::frame::encode_frame(
                Profile::V3_9, *counter, &cmd(names[*name]), payload, &mut wire,
            ).unwrap();
        }
        conn.handle_input(t0, &wire);
        prop_assert!(!conn.is_closed());
    }
}

#[test]
fn before_hello_only_hello_and_echo_c_are_served() {
    let t0 = origin();
    let mut cfg = config("", t0);
    cfg.require_hello = true;
    let mut server = Connection::new(cfg, Side::Server, Rng::from_seed(1), t0);
    let mut peer = Connection::new(config("", t0), Side::Client, Rng::from_seed(2), t0);
    peer.set_counter(0);
    peer.send_request(t0, Command::NEW_STR, b"5").unwrap();
    peer.send_request(t0, Command::ECHO_C, b"keepalive")
        .unwrap();
    peer.send_request(t0, Command::HELLO, b"worker1 wazuh worker 3.9.5")
        .unwrap();
    server.handle_input(t0, &peer.poll_transmit().unwrap());
    let mut expected = Vec::new();
    for (counter, field, payload) in [
        (
            1u32,
            b"err --------",
            &b"Command not allowed before hello"[..],
        ),
        (2, b"ok-m  ------", b"keepalive"),
    ] {
        expected.extend_from_slice(&counter.to_be_bytes());
        expected.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        expected.extend_from_slice(field);
        expected.extend_from_slice(payload);
    }
    assert_eq!(server.poll_transmit().unwrap(), expected);
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            Event::Violation(PeerError::BeforeHello {
                command: Command::NEW_STR
            }),
            Event::Request {
                counter: 3,
                command: Command::HELLO,
                payload: Bytes::from_static(b"worker1 wazuh worker 3.9.5")
            },
        ]
    );
    server.set_authenticated(t0);
    peer.send_request(t0, Command::NEW_STR, b"5").unwrap();
    server.handle_input(t0, &peer.poll_transmit().unwrap());
    let reply = server.poll_transmit().unwrap();
    assert_eq!(&reply[8..20], b"ok ---------");
}

#[test]
fn a_stalled_payload_closes_the_link_at_its_deadline() {
    let t0 = origin();
    let mut server = Connection::new(config("", t0), Side::Server, Rng::from_seed(1), t0);
    let mut frame = bytes::BytesMut::new();
    wazuh_cluster_protocol::frame::encode_frame(
        Profile::V3_9,
        1,
        &Command::ECHO,
        b"0123456789",
        &mut frame,
    )
    .unwrap();
    // A whole frame arms nothing; a header alone arms the deadline at its arrival.
    server.handle_input(t0, &frame);
    assert_eq!(server.poll_timeout(), None);
    server.handle_input(t0 + secs(5), &frame[..20]);
    assert_eq!(server.poll_timeout(), Some(t0 + secs(35)));
    // More bytes of the same frame do not push the deadline back.
    server.handle_input(t0 + secs(10), &frame[20..25]);
    assert_eq!(server.poll_timeout(), Some(t0 + secs(35)));
    server.handle_timeout(t0 + secs(35) - Duration::from_nanos(1));
    assert!(!server.is_closed());
    server.handle_timeout(t0 + secs(35));
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(
        events,
        vec![Event::Closed {
            error: Some(PeerError::PayloadTimeout { timeout: secs(30) }.into())
        }]
    );
}

#[test]
fn a_link_without_hello_closes_at_the_hello_deadline() {
    let t0 = origin();
    let mut cfg = config("", t0);
    cfg.require_hello = true;
    let mut late = Connection::new(cfg.clone(), Side::Server, Rng::from_seed(1), t0);
    assert_eq!(late.poll_timeout(), Some(t0 + secs(30)));
    late.handle_timeout(t0 + secs(30) - Duration::from_nanos(1));
    assert!(!late.is_closed());
    late.handle_timeout(t0 + secs(30));
    assert_eq!(
        late.poll_event(),
        Some(Event::Closed {
            error: Some(PeerError::HelloTimeout { timeout: secs(30) }.into())
        })
    );
    let mut greeted = Connection::new(cfg, Side::Server, Rng::from_seed(1), t0);
    greeted.set_authenticated(t0 + secs(1));
    assert_eq!(greeted.poll_timeout(), None);
    greeted.handle_timeout(t0 + secs(31));
    assert!(!greeted.is_closed());
}

/// Commands of every frame in `blob` (plaintext).
fn commands_in(blob: &[u8]) -> Vec<String> {
    let mut decoder = wazuh_cluster_protocol::frame::FrameDecoder::new(Profile::V3_9, u32::MAX);
    let mut data = blob;
    let mut names = Vec::new();
    while let Ok(Some(frame)) = decoder.decode_slice(&mut data) {
        names.push(String::from_utf8_lossy(frame.command.name()).into_owned());
    }
    names
}

/// A pair whose client pipelines file chunks within `window` bytes, with 100-byte requests.
fn pipelining_pair(window: usize, server_quota: Option<u64>) -> Pair {
    let t0 = origin();
    let mut client_cfg = config("", t0);
    client_cfg.request_chunk = 100;
    client_cfg.file_window = window;
    let client = Connection::new(client_cfg, Side::Client, Rng::from_seed(1), t0);
    let mut server_cfg = config("", t0);
    if let Some(limit) = server_quota {
        server_cfg.max_file_size = limit;
    }
    let server = Connection::new(server_cfg, Side::Server, Rng::from_seed(2), t0);
    let mut pair = Pair::from_cores(client, server, t0, Delivery::Whole, Rng::from_seed(3));
    pair.wire_log = Some(Vec::new());
    pair
}

#[test]
fn file_chunks_are_pipelined_within_the_window_and_arrive_whole_and_in_order() {
    // 100-byte requests with an 8-byte path: 91-byte chunks; a 300-byte window holds three.
    let path = b"/q/f.bin";
    let mut pair = pipelining_pair(300, None);
    let data = random_bytes(9, 1000);
    let transfer = pair.client_send_file(path, data.clone());
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::FileSent {
            transfer,
            size: 1000
        })
    );
    let sha256: [u8; 32] = Sha256::digest(&data).into();
    assert_eq!(pair.server_file_sha.clone().finalize()[..], sha256[..]);
    let client_blobs: Vec<Vec<String>> = pair
        .wire_log
        .take()
        .unwrap()
        .into_iter()
        .filter(|(who, _)| *who == crate::support::Who::Client)
        .map(|(_, blob)| commands_in(&blob))
        .collect();
    // new_file alone (nothing goes before its answer), then three chunks in one go before any
    // answer; then one more per answer (the window stays full), and file_end after the last
    // chunk without waiting for the answers before it.
    assert_eq!(client_blobs[0], ["new_file"]);
    assert_eq!(client_blobs[1], ["file_upd"; 3]);
    let total: usize = client_blobs.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        1 + 11 + 1,
        "1000 bytes in 91-byte chunks: 10 full, one of 90"
    );
    assert!(client_blobs[2..].iter().all(|blob| blob.len() <= 3));
    assert_eq!(client_blobs.last().unwrap().last().unwrap(), "file_end");
    assert_eq!(pair.client.pending_requests(), 0);
}

#[test]
fn a_refused_chunk_in_the_window_fails_the_transfer_once_and_later_answers_are_ignored() {
    // The receiver takes 150 bytes at most: the second chunk is refused while the third is
    // already on its way.
    let mut pair = pipelining_pair(300, Some(150));
    let transfer = pair.client_send_file(b"/q/f.bin", random_bytes(9, 1000));
    pair.drive();
    let failures: Vec<&Event> = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::TransferFailed { .. } | Event::FileSent { .. }))
        .collect();
    assert_eq!(failures.len(), 1, "{:?}", pair.client_events);
    assert!(matches!(
        failures[0],
        Event::TransferFailed { transfer: t, failure: TransferFailure::Refused(_) } if *t == transfer
    ));
    assert_eq!(pair.client.pending_requests(), 0);
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

#[test]
fn without_a_window_a_file_goes_one_chunk_per_answer_as_upstream() {
    let mut pair = pipelining_pair(0, None);
    pair.client_send_file(b"/q/f.bin", random_bytes(9, 1000));
    pair.drive();
    let log = pair.wire_log.take().unwrap();
    assert!(
        log.iter()
            .filter(|(who, _)| *who == crate::support::Who::Client)
            .all(|(_, blob)| commands_in(blob).len() == 1)
    );
}

#[test]
fn pulled_string_pieces_wait_for_the_layer_above_and_arrive_whole() {
    let t0 = origin();
    let mut client_cfg = config("", t0);
    client_cfg.request_chunk = 100;
    client_cfg.pull_string_pieces = true;
    let client = Connection::new(client_cfg, Side::Client, Rng::from_seed(1), t0);
    let server = Connection::new(config("", t0), Side::Server, Rng::from_seed(2), t0);
    let mut pair = Pair::from_cores(client, server, t0, Delivery::Whole, Rng::from_seed(3));
    let string = random_bytes(4, 250);
    let transfer = pair.client.send_string(t0, string.clone()).unwrap();
    let mut pieces = 0;
    loop {
        pair.drive();
        // Nothing moves until the piece asked for is sent; each is asked for with its frame's
        // length on the wire (header and `<id> <chunk>`).
        let wanted: Vec<usize> = pair
            .client_events
            .drain(..)
            .filter_map(|e| match e {
                Event::StringPieceWanted {
                    transfer: t,
                    frame_len,
                } if t == transfer => Some(frame_len),
                _ => None,
            })
            .collect();
        match wanted[..] {
            [] => break,
            [frame_len] => {
                let before = pair.client.queued_transmit_bytes();
                pair.client.send_string_piece(pair.now, transfer);
                assert_eq!(pair.client.queued_transmit_bytes() - before, frame_len);
                // Sent once: a second call sends nothing.
                pair.client.send_string_piece(pair.now, transfer);
                assert_eq!(pair.client.queued_transmit_bytes() - before, frame_len);
                pieces += 1;
            }
            _ => panic!("{wanted:?}"),
        }
    }
    let Some(Event::StringComplete { id }) = pair.server_events.last().cloned() else {
        panic!("{:?}", pair.server_events)
    };
    assert_eq!(pair.server.take_string(id), Some(string));
    // 250 bytes in pieces of at most 100 - len(id) - 1.
    assert_eq!(pieces, 250usize.div_ceil(100 - id.to_string().len() - 1));
}
