//! Bounds a hostile or buggy peer (or caller) hits: the aggregate size of the long strings held,
//! the output queue, replies to requests that were never received, a string id with no room for
//! data, and the one table of `err` texts every refused request is answered from. Each test drives two cores
//! in memory and asserts the exact wire answer, event and error value.

use std::time::Duration;

use crate::support::{self, Delivery, Pair, config};
use bytes::{Bytes, BytesMut};
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionError, Event, FileChunkError, PeerError, ReplyError, RequestError,
    SendFileError, SendStringError, Side, TransferFailure, TransferId,
};
use wazuh_cluster_protocol::fernet::{FernetError, token_len};
use wazuh_cluster_protocol::frame::{
    Command, DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, FrameError, HEADER_LEN, encode_frame,
};
use wazuh_cluster_protocol::message::{Reply, text};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::CLUSTER_KEY;

fn dapi() -> Command {
    Command::new(Profile::V3_9, b"dapi").unwrap()
}

/// A pair (key `key`) whose sides queue at most `client_queue` / `server_queue` bytes for requests.
fn pair_with_queue_bounds(key: &str, client_queue: usize, server_queue: usize) -> Pair {
    let now = origin();
    let root = Rng::from_seed(43);
    let mut client_config = config(key, now);
    client_config.max_queued_transmit = client_queue;
    let mut server_config = config(key, now);
    server_config.max_queued_transmit = server_queue;
    let client = Connection::new(client_config, Side::Client, root.fork(1), now);
    let server = Connection::new(server_config, Side::Server, root.fork(2), now);
    Pair::from_cores(client, server, now, Delivery::Whole, root.fork(3))
}

/// A pair whose server holds at most `strings_total` declared string bytes.
fn pair_with_string_total(strings_total: u64) -> Pair {
    let now = origin();
    let root = Rng::from_seed(41);
    let client = Connection::new(config(CLUSTER_KEY, now), Side::Client, root.fork(1), now);
    let mut server_config = config(CLUSTER_KEY, now);
    server_config.max_incoming_strings_bytes = strings_total;
    let server = Connection::new(server_config, Side::Server, root.fork(2), now);
    Pair::from_cores(client, server, now, Delivery::Whole, root.fork(3))
}

fn string_ids(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StringComplete { id } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The client sends `len` bytes `byte` as a long string and the pair runs until quiet.
fn send_string(pair: &mut Pair, byte: u8, len: usize) -> TransferId {
    let now = pair.now;
    let transfer = pair
        .client
        .send_string(now, Bytes::from(vec![byte; len]))
        .unwrap();
    pair.drive();
    transfer
}

/// The client's last event says `transfer` was refused with `reply`, the server's last reports
/// `fault`.
fn assert_string_refused(
    pair: &Pair,
    transfer: TransferId,
    reply: &'static [u8],
    fault: PeerError,
) {
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::TransferFailed {
            transfer,
            failure: TransferFailure::Refused(Reply::Err(Bytes::from_static(reply))),
        })
    );
    assert_eq!(pair.server_events.last(), Some(&Event::Violation(fault)));
}

/// The client's last event says `transfer` was sent.
fn assert_last_sent(pair: &Pair, transfer: TransferId) {
    assert!(
        matches!(
            pair.client_events.last(),
            Some(Event::StringSent { transfer: t, .. }) if *t == transfer
        ),
        "{:?}",
        pair.client_events.last()
    );
}

#[test]
fn strings_held_are_bounded_in_aggregate_and_released_when_claimed() {
    let mut pair = pair_with_string_total(100);
    let first = send_string(&mut pair, b'a', 60);
    assert!(pair.client_events.contains(&Event::StringSent {
        transfer: first,
        id: Bytes::from(string_ids(&pair.server_events)[0].to_string()),
    }));
    assert_eq!(pair.server.incoming_strings_reserved(), 60);

    // 60 more declared bytes would hold 120 > 100: refused with our text, reported, not opened.
    let second = send_string(&mut pair, b'b', 60);
    assert_string_refused(
        &pair,
        second,
        text::STRINGS_TOTAL_TOO_LARGE,
        PeerError::StringsTotalTooLarge {
            declared: 60,
            reserved: 60,
            limit: 100,
        },
    );
    assert_eq!(pair.server.incoming_strings(), 1);
    assert!(
        !pair.server.is_closed(),
        "a refused string does not close the link"
    );

    // Exactly up to the bound is accepted.
    let third = send_string(&mut pair, b'c', 40);
    assert_last_sent(&pair, third);
    assert_eq!(pair.server.incoming_strings_reserved(), 100);

    // Claiming releases the reservation; the refused string now fits.
    let ids = string_ids(&pair.server_events);
    assert_eq!(
        pair.server.take_string(ids[0]),
        Some(Bytes::from(vec![b'a'; 60]))
    );
    assert_eq!(pair.server.incoming_strings_reserved(), 40);
    let fourth = send_string(&mut pair, b'd', 60);
    assert_last_sent(&pair, fourth);
    assert_eq!(pair.server.incoming_strings_reserved(), 100);
    assert_eq!(second, TransferId(1));
}

#[test]
fn the_memory_allowance_refuses_strings_and_large_frames_but_never_a_small_frame() {
    let mut pair = pair_with_string_total(1 << 20);
    // A string is taken only with room for one largest frame beside it (to carry its chunks).
    let frame = u64::from(DEFAULT_MAX_PAYLOAD) + HEADER_LEN as u64;
    pair.server.set_memory_allowance(Some(frame + 100));
    let first = send_string(&mut pair, b'a', 60);
    assert_last_sent(&pair, first);
    assert_eq!(pair.server.held_input_bytes(), 60);
    // 60 more would hold 120 > 100: `err` with the budget's text; the link stays.
    let second = send_string(&mut pair, b'b', 60);
    assert_string_refused(
        &pair,
        second,
        text::MEMORY_BUDGET_EXHAUSTED,
        PeerError::StringOverMemoryBudget {
            declared: 60,
            allowance: frame + 100,
        },
    );
    assert!(!pair.server.is_closed());
    // Frames within the pre-hello bound always go through, whatever the allowance: a request of
    // a few hundred bytes (its encrypted frame far above what is left) is answered.
    pair.server.set_memory_allowance(Some(0));
    let counter = pair
        .client
        .send_request(pair.now, dapi(), &[b'x'; 300])
        .unwrap();
    pair.drive();
    assert!(
        pair.server_events
            .iter()
            .any(|e| matches!(e, Event::Request { payload, .. } if payload.len() == 300)),
        "request {counter} not delivered"
    );
    assert!(!pair.server.is_closed());

    // A frame above the pre-hello bound that the allowance cannot hold closes the link, blaming
    // the budget (not the configured bound), before its payload is allocated.
    let now = pair.now;
    let server_allowing = |allowance: u64| {
        let mut server = Connection::new(config("", now), Side::Server, Rng::from_seed(9), now);
        server.set_authenticated(now);
        server.set_memory_allowance(Some(allowance));
        server
    };
    let mut server = server_allowing(1 << 20);
    let mut header = BytesMut::new();
    wazuh_cluster_protocol::frame::encode_header(Profile::V3_9, 1, &dapi(), 2 << 20, &mut header)
        .unwrap();
    server.handle_input(pair.now, &header);
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(
        events,
        [Event::Closed {
            error: Some(ConnectionError::Peer(PeerError::FrameOverMemoryBudget {
                declared: 2 << 20,
                allowance: 1 << 20,
            })),
        }]
    );
    assert_eq!(server.held_input_bytes(), 0);
    // Within the allowance, the frame's whole declared payload counts from its header on.
    let mut server = server_allowing(4 << 20);
    server.handle_input(pair.now, &header);
    assert!(!server.is_closed());
    assert_eq!(server.held_input_bytes(), (2 << 20) + HEADER_LEN as u64);
}

#[test]
fn unclaimed_strings_release_their_reservation_when_they_expire() {
    let mut pair = pair_with_string_total(100);
    send_string(&mut pair, b'a', 100);
    assert_eq!(pair.server.incoming_strings_reserved(), 100);
    let expires = pair.server.poll_timeout().expect("string expiry armed");
    pair.advance_to(expires);
    assert_eq!(pair.server.incoming_strings_reserved(), 0);
    assert_eq!(pair.server.incoming_strings(), 0);
}

#[test]
fn requests_are_refused_when_their_frame_would_overfill_the_output_queue() {
    let mut pair = pair_with_queue_bounds("", 100, 10);
    let now = pair.now;
    let client = &mut pair.client;
    assert_eq!(client.queued_transmit_bytes(), 0);
    client.send_request(now, dapi(), &[b'x'; 50]).unwrap();
    assert_eq!(client.queued_transmit_bytes(), HEADER_LEN + 50);
    assert_eq!(
        client.send_request(now, dapi(), &[b'y'; 50]),
        Err(RequestError::TransmitQueueFull {
            queued: 70,
            frame: 70,
            limit: 100
        })
    );
    assert_eq!(
        client.pending_requests(),
        1,
        "a refused request leaves no trace"
    );
    // Exactly up to the bound is accepted.
    client.send_request(now, dapi(), &[b'z'; 10]).unwrap();
    assert_eq!(client.queued_transmit_bytes(), 100);
    assert_eq!(
        client.send_string(now, Bytes::from_static(b"s")),
        Err(SendStringError::TransmitQueueFull {
            queued: 100,
            frame: HEADER_LEN + 1,
            limit: 100
        })
    );
    assert_eq!(
        client.send_file(now, b"/f"),
        Err(SendFileError::TransmitQueueFull {
            queued: 100,
            frame: HEADER_LEN + 2,
            limit: 100
        })
    );
    // Draining makes room again.
    assert_eq!(client.poll_transmit().map(|b| b.len()), Some(100));
    assert_eq!(client.queued_transmit_bytes(), 0);
    client.send_request(now, dapi(), &[b'y'; 50]).unwrap();

    // The server (bound 10) still answers the peer beyond its bound, but makes no request of its
    // own. Only the last request was delivered (the first two were drained and dropped above).
    pair.server_auto_reply = false;
    pair.drive();
    let [Event::Request { counter, .. }] = pair.server_events[..] else {
        panic!("{:?}", pair.server_events)
    };
    let server = &mut pair.server;
    server
        .reply(now, counter, Command::OK, &[b'r'; 50])
        .unwrap();
    assert_eq!(server.queued_transmit_bytes(), 70);
    assert_eq!(
        server.send_request(now, dapi(), b""),
        Err(RequestError::TransmitQueueFull {
            queued: 70,
            frame: HEADER_LEN,
            limit: 10
        })
    );
}

#[test]
fn the_queue_bound_counts_the_sealed_frame_and_a_refused_chunk_can_be_retried() {
    let frame = HEADER_LEN + token_len(300);
    let mut pair = pair_with_queue_bounds(CLUSTER_KEY, frame + HEADER_LEN + token_len(11), 1 << 20);
    let now = pair.now;
    pair.client.send_request(now, dapi(), &[b'x'; 300]).unwrap();
    assert_eq!(pair.client.queued_transmit_bytes(), frame);
    // A 9-byte path: new_file carries 9 bytes, file_upd "<path> <chunk>".
    let transfer = pair.client.send_file(now, b"/dir/file").unwrap();
    assert_eq!(
        pair.client.queued_transmit_bytes(),
        frame + HEADER_LEN + token_len(9)
    );
    pair.drive();
    let wanted = Event::FileChunkWanted {
        transfer,
        max_len: support::config(CLUSTER_KEY, now).request_chunk - 10,
    };
    assert!(pair.client_events.contains(&wanted));
    // Fill the queue with our own request, then the chunk does not fit.
    pair.client.send_request(now, dapi(), &[b'x'; 300]).unwrap();
    let queued = pair.client.queued_transmit_bytes();
    assert_eq!(queued, frame);
    let chunk = [b'c'; 300];
    assert_eq!(
        pair.client.file_chunk(now, transfer, &chunk),
        Err(FileChunkError::TransmitQueueFull {
            queued: frame,
            frame: HEADER_LEN + token_len(310),
            limit: frame + HEADER_LEN + token_len(11)
        })
    );
    // Drain, retry: the transfer was still waiting for this chunk.
    let _ = pair.client.poll_transmit();
    pair.client.file_chunk(now, transfer, &chunk).unwrap();
    assert_eq!(
        pair.client.queued_transmit_bytes(),
        HEADER_LEN + token_len(310)
    );
}

#[test]
fn replies_only_answer_unanswered_requests_of_the_peer_and_those_are_bounded() {
    let now = origin();
    let root = Rng::from_seed(47);
    let mut server_config = config("", now);
    server_config.max_unanswered_requests = 2;
    let client = Connection::new(config("", now), Side::Client, root.fork(1), now);
    let server = Connection::new(server_config, Side::Server, root.fork(2), now);
    let mut pair = Pair::from_cores(client, server, now, Delivery::Whole, root.fork(3));
    pair.server_auto_reply = false;

    let sent: Vec<u32> = (0..3)
        .map(|i| pair.client.send_request(now, dapi(), &[i]).unwrap())
        .collect();
    pair.drive();
    let surfaced: Vec<u32> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Request { counter, .. } => Some(*counter),
            _ => None,
        })
        .collect();
    assert_eq!(surfaced, sent[..2]);
    assert_eq!(
        pair.server_events.last(),
        Some(&Event::Violation(PeerError::TooManyUnansweredRequests {
            limit: 2
        }))
    );
    assert_eq!(
        pair.client_events,
        vec![Event::Response {
            counter: sent[2],
            command: dapi(),
            reply: Reply::Err(Bytes::from_static(text::TOO_MANY_REQUESTS)),
        }]
    );
    assert_eq!(pair.server.unanswered_requests(), 2);

    // A counter the peer never used, and the refused one, cannot be replied to.
    let never = sent[2].wrapping_add(100);
    for counter in [never, sent[2]] {
        assert_eq!(
            pair.server.reply(now, counter, Command::OK, b"x"),
            Err(ReplyError::NotAwaitingReply { counter })
        );
    }
    // Each request is answered once.
    pair.server.reply(now, sent[0], Command::OK, b"a").unwrap();
    assert_eq!(
        pair.server.reply(now, sent[0], Command::OK, b"again"),
        Err(ReplyError::NotAwaitingReply { counter: sent[0] })
    );
    assert_eq!(pair.server.unanswered_requests(), 1);
    pair.drive();
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::Response {
            counter: sent[0],
            command: dapi(),
            reply: Reply::Ok(Bytes::from_static(b"a")),
        })
    );
    // Room again for one more.
    let fourth = pair.client.send_request(now, dapi(), b"4").unwrap();
    pair.drive();
    assert!(matches!(
        pair.server_events.last(),
        Some(Event::Request { counter, .. }) if *counter == fourth
    ));
    assert_eq!(pair.server.unanswered_requests(), 2);
    pair.server.close();
    assert_eq!(pair.server.unanswered_requests(), 0);
}

/// Feeds `conn` one plaintext frame as the peer would send it; returns what `conn` transmitted
/// then (decoded) and reported.
fn feed(
    conn: &mut Connection,
    counter: u32,
    command: &[u8],
    payload: &[u8],
) -> (Vec<Frame>, Vec<Event>) {
    let command = Command::new(Profile::V3_9, command).unwrap();
    let mut input = BytesMut::new();
    encode_frame(Profile::V3_9, counter, &command, payload, &mut input).unwrap();
    conn.handle_input(origin(), &input);
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut sent = Vec::new();
    while let Some(bytes) = conn.poll_transmit() {
        let mut bytes = &bytes[..];
        while let Some(frame) = decoder.decode_slice(&mut bytes).unwrap() {
            sent.push(frame);
        }
    }
    (sent, std::iter::from_fn(|| conn.poll_event()).collect())
}

/// A client (plaintext, `request_chunk` 100) that sent a 10-byte string, and the peer's answer
/// to its `new_str` with `id` as the string id: what the client then transmits and reports.
fn client_after_string_id(id: &[u8]) -> (Vec<Frame>, Vec<Event>) {
    let t0 = origin();
    let mut cfg = config("", t0);
    cfg.request_chunk = 100;
    let mut client = Connection::new(cfg, Side::Client, Rng::from_seed(5), t0);
    let transfer = client.send_string(t0, Bytes::from(vec![b's'; 10])).unwrap();
    assert_eq!(transfer, TransferId(0));
    let _new_str = client.poll_transmit();
    let counter = client.counter();
    feed(&mut client, counter, b"ok", id)
}

#[test]
fn a_string_id_that_leaves_no_room_for_data_is_a_peer_fault() {
    // 98 bytes: `str_upd <id> <1 byte>` fills request_chunk exactly, one byte per chunk.
    let (sent, events) = client_after_string_id(&[b'7'; 98]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].command, Command::STR_UPD);
    assert_eq!(sent[0].payload, [&[b'7'; 98][..], b" s"].concat());
    assert_eq!(events, vec![]);

    // 99 bytes: no room for data. The link closes, blaming the peer (it used to be a "bug").
    let (sent, events) = client_after_string_id(&[b'7'; 99]);
    assert_eq!(sent, vec![]);
    assert_eq!(
        events,
        vec![
            Event::TransferFailed {
                transfer: TransferId(0),
                failure: TransferFailure::Closed,
            },
            Event::Closed {
                error: Some(ConnectionError::Peer(PeerError::StringIdTooLong {
                    len: 99,
                    limit: 98
                })),
            },
        ]
    );
}

/// The peer-error → reply-text table, against the bytes the wire tests and upstream pin (written
/// out here, not taken from `message::text`, so that a changed constant fails this test).
#[test]
fn every_peer_error_maps_to_its_pinned_reply_text_or_to_none_when_it_closes_the_link() {
    let path = Bytes::from_static(b"/a");
    let answered: [(PeerError, &[u8]); 11] = [
        (
            PeerError::FileBudgetExhausted { limit: 4 },
            b"Too many files being received by this node, try again later",
        ),
        (
            PeerError::StringOverMemoryBudget {
                declared: 11,
                allowance: 10,
            },
            b"Not enough memory on this node for the string, try again later",
        ),
        (
            PeerError::BeforeHello { command: dapi() },
            b"Command not allowed before hello",
        ),
        (
            PeerError::TooManyUnansweredRequests { limit: 1 },
            b"Too many requests awaiting a reply",
        ),
        (
            PeerError::BadFilePath { len: 13, limit: 8 },
            b"bad file path of 13 bytes (limit 8)",
        ),
        (
            PeerError::TooManyFiles { limit: 1 },
            b"Too many concurrent transfers",
        ),
        (
            PeerError::FileTooLarge {
                path: path.clone(),
                limit: 4,
            },
            b"File exceeds maximum allowed size",
        ),
        (
            // Upstream 3.9.5's own text.
            PeerError::ChecksumMismatch { path },
            b"File wasn't correctly received. Checksums aren't equal.",
        ),
        (
            PeerError::StringTooLarge {
                declared: 11,
                limit: 10,
            },
            b"Requested size exceeds maximum allowed limit",
        ),
        (
            PeerError::StringsTotalTooLarge {
                declared: 6,
                reserved: 10,
                limit: 15,
            },
            b"Strings in flight exceed the allowed total size",
        ),
        (
            PeerError::TooManyStrings { limit: 2 },
            b"Too many concurrent transfers",
        ),
    ];
    for (error, text) in answered {
        assert_eq!(error.reply_text().as_deref(), Some(text), "{error:?}");
    }
    let closing = [
        PeerError::Frame(FrameError::PayloadTooLarge {
            declared: 9,
            max: 8,
            offset: 0,
        }),
        PeerError::DecryptBeforeHello(FernetError::BadVersion),
        PeerError::TooManyDecryptFailures { count: 3 },
        PeerError::KeepaliveFailed { attempts: 2 },
        PeerError::PayloadTimeout {
            timeout: Duration::from_secs(30),
        },
        PeerError::HelloTimeout {
            timeout: Duration::from_secs(30),
        },
        PeerError::StringIdTooLong { len: 99, limit: 98 },
        PeerError::FrameOverMemoryBudget {
            declared: 9,
            allowance: 8,
        },
    ];
    for error in closing {
        assert_eq!(error.reply_text(), None, "{error:?}");
    }
}

/// `server` gets one request it must refuse: it answers exactly one `err` frame and reports
/// exactly one fault, whose [`PeerError::reply_text`] is the `err` payload. Returns the fault.
fn refused(server: &mut Connection, counter: u32, command: &[u8], payload: &[u8]) -> PeerError {
    let (sent, events) = feed(server, counter, command, payload);
    let [reply] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!((reply.counter, &reply.command), (counter, &Command::ERR));
    let error = match &events[..] {
        [Event::Violation(error)] => error,
        [
            Event::FileFailed {
                error: Some(error), ..
            },
        ] => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(error.reply_text().as_deref(), Some(&reply.payload[..]));
    error.clone()
}

/// Every refusal the receiving side makes, on the wire: each answers the table's text for the
/// fault it reports (so no call site picks its own text).
#[test]
fn every_refused_request_is_answered_with_the_reply_text_of_the_fault_it_reports() {
    let t0 = origin();
    let mut cfg = config("", t0);
    cfg.require_hello = true;
    cfg.max_unanswered_requests = 1;
    cfg.max_file_path_len = 8;
    cfg.max_incoming_files = 1;
    cfg.max_file_size = 4;
    cfg.max_string_size = 10;
    cfg.max_incoming_strings = 2;
    cfg.max_incoming_strings_bytes = 15;
    let server = &mut Connection::new(cfg, Side::Server, Rng::from_seed(3), t0);
    let path = Bytes::from_static(b"/a");
    let accepted = |(sent, _): (Vec<Frame>, Vec<Event>)| {
        assert!(sent.iter().all(|frame| frame.command != Command::ERR));
    };

    assert_eq!(
        refused(server, 1, b"dapi", b"x"),
        PeerError::BeforeHello { command: dapi() }
    );
    server.set_authenticated(t0);
    accepted(feed(server, 2, b"dapi", b"x"));
    assert_eq!(
        refused(server, 3, b"dapi", b"y"),
        PeerError::TooManyUnansweredRequests { limit: 1 }
    );
    assert_eq!(
        refused(server, 4, b"new_file", b"/toolong/path"),
        PeerError::BadFilePath { len: 13, limit: 8 }
    );
    accepted(feed(server, 5, b"new_file", &path));
    assert_eq!(
        refused(server, 6, b"new_file", b"/b"),
        PeerError::TooManyFiles { limit: 1 }
    );
    assert_eq!(
        refused(server, 7, b"file_upd", b"/a 12345"),
        PeerError::FileTooLarge {
            path: path.clone(),
            limit: 4
        }
    );
    accepted(feed(server, 8, b"new_file", &path));
    assert_eq!(
        refused(server, 9, b"file_end", b"/a not-the-sha256"),
        PeerError::ChecksumMismatch { path }
    );
    assert_eq!(
        refused(server, 10, b"new_str", b"11"),
        PeerError::StringTooLarge {
            declared: 11,
            limit: 10
        }
    );
    accepted(feed(server, 11, b"new_str", b"10"));
    assert_eq!(
        refused(server, 12, b"new_str", b"6"),
        PeerError::StringsTotalTooLarge {
            declared: 6,
            reserved: 10,
            limit: 15
        }
    );
    accepted(feed(server, 13, b"new_str", b"5"));
    assert_eq!(
        refused(server, 14, b"new_str", b"1"),
        PeerError::TooManyStrings { limit: 2 }
    );
    assert!(!server.is_closed(), "no refusal closes the link");
}
