//! Bounds a hostile or buggy peer (or caller) hits: the aggregate size of the long strings held,
//! the output queue, replies to requests that were never received, and a string id with no room
//! for data. Each test drives two cores
//! in memory and asserts the exact wire answer, event and error value.

pub mod support;

use bytes::{Bytes, BytesMut};
use support::{Delivery, Pair, VECTOR_KEY, config, origin};
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionError, Event, FileChunkError, PeerError, ReplyError, RequestError,
    SendFileError, SendStringError, Side, TransferFailure, TransferId,
};
use wazuh_cluster_protocol::fernet::token_len;
use wazuh_cluster_protocol::frame::{
    Command, DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, HEADER_LEN, encode_frame,
};
use wazuh_cluster_protocol::message::{Reply, text};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

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
    let client = Connection::new(config(VECTOR_KEY, now), Side::Client, root.fork(1), now);
    let mut server_config = config(VECTOR_KEY, now);
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
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::TransferFailed {
            transfer: second,
            failure: TransferFailure::Refused(Reply::Err(Bytes::from_static(
                text::STRINGS_TOTAL_TOO_LARGE
            ))),
        })
    );
    assert_eq!(
        pair.server_events.last(),
        Some(&Event::Violation(PeerError::StringsTotalTooLarge {
            declared: 60,
            reserved: 60,
            limit: 100,
        }))
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
    let mut pair = pair_with_queue_bounds(VECTOR_KEY, frame + HEADER_LEN + token_len(11), 1 << 20);
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
        max_len: support::config(VECTOR_KEY, now).request_chunk - 10,
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
    let mut answer = BytesMut::new();
    encode_frame(
        Profile::V3_9,
        client.counter(),
        &Command::OK,
        id,
        &mut answer,
    )
    .unwrap();
    client.handle_input(t0, &answer);
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut sent = Vec::new();
    while let Some(bytes) = client.poll_transmit() {
        let mut input = &bytes[..];
        while let Some(frame) = decoder.decode_slice(&mut input).unwrap() {
            sent.push(frame);
        }
    }
    (sent, std::iter::from_fn(|| client.poll_event()).collect())
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
