//! Each command's own error type, reached through the public API: the refusals no other test
//! reaches (a closed connection, a full pending table, a refused path, `finish_file` at the wrong
//! moment), and the Display texts the former single `ApiError` had, which callers log.

use crate::support::{Delivery, Pair, config};
use bytes::Bytes;
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, FileChunkError, ReplyError, RequestError, SendFileError,
    SendStringError, Side, TransferId,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;

fn dapi() -> Command {
    Command::new(Profile::V3_9, b"dapi").unwrap()
}

/// A plaintext client core with [`config`] adjusted by `adjust`.
fn client(adjust: impl FnOnce(&mut ConnectionConfig)) -> Connection {
    let t0 = origin();
    let mut cfg = config("", t0);
    adjust(&mut cfg);
    Connection::new(cfg, Side::Client, Rng::from_seed(11), t0)
}

#[test]
fn send_file_refuses_a_bad_path_a_full_table_of_transfers_or_of_requests_and_a_closed_link() {
    let t0 = origin();
    let mut conn = client(|cfg| {
        cfg.request_chunk = 100;
        cfg.max_outgoing_transfers = 1;
    });
    let bad_path = |reason| Err(SendFileError::BadPath { reason });
    assert_eq!(conn.send_file(t0, b""), bad_path("empty path"));
    assert_eq!(
        conn.send_file(t0, b"/a b"),
        bad_path("path contains a space")
    );
    // 68 + 1 + 32 > 100: file_end would not fit request_chunk.
    assert_eq!(
        conn.send_file(t0, &[b'p'; 68]),
        bad_path("path leaves no room for the checksum in file_end")
    );
    assert_eq!(conn.send_file(t0, &[b'p'; 67]), Ok(TransferId(0)));
    assert_eq!(
        conn.send_file(t0, b"/g"),
        Err(SendFileError::TooManyTransfers { limit: 1 })
    );
    conn.close();
    assert_eq!(conn.send_file(t0, b"/g"), Err(SendFileError::Closed));

    let mut conn = client(|cfg| cfg.max_pending_requests = 1);
    conn.send_request(t0, dapi(), b"").unwrap();
    assert_eq!(
        conn.send_file(t0, b"/f"),
        Err(SendFileError::TooManyPendingRequests { limit: 1 })
    );
    assert_eq!(
        conn.poll_event(),
        None,
        "a refused transfer leaves no trace"
    );
}

#[test]
fn send_string_refuses_a_full_table_of_requests_and_a_closed_link() {
    let t0 = origin();
    let mut conn = client(|cfg| cfg.max_pending_requests = 1);
    conn.send_request(t0, dapi(), b"").unwrap();
    assert_eq!(
        conn.send_string(t0, Bytes::from_static(b"s")),
        Err(SendStringError::TooManyPendingRequests { limit: 1 })
    );
    conn.close();
    assert_eq!(
        conn.send_string(t0, Bytes::from_static(b"s")),
        Err(SendStringError::Closed)
    );
}

#[test]
fn file_chunk_and_finish_file_refuse_the_same_way_except_for_the_chunk_length() {
    let now = origin();
    let root = Rng::from_seed(17);
    let mut client_config = config("", now);
    client_config.max_pending_requests = 2;
    let client = Connection::new(client_config, Side::Client, root.fork(1), now);
    let server = Connection::new(config("", now), Side::Server, root.fork(2), now);
    let mut pair = Pair::from_cores(client, server, now, Delivery::Whole, root.fork(3));

    let transfer = pair.client.send_file(now, b"/f").unwrap();
    // new_file is not acknowledged yet.
    assert_eq!(
        pair.client.finish_file(now, transfer),
        Err(FileChunkError::NotWaitingForChunk(0))
    );
    assert_eq!(
        pair.client.finish_file(now, TransferId(9)),
        Err(FileChunkError::UnknownTransfer(9))
    );
    pair.drive();
    assert!(matches!(
        pair.client_events[..],
        [Event::FileChunkWanted { transfer: t, .. }] if t == transfer
    ));

    // Two requests of ours fill the pending table: the transfer still wants its step.
    pair.client.send_request(now, dapi(), b"1").unwrap();
    pair.client.send_request(now, dapi(), b"2").unwrap();
    let full = Err(FileChunkError::TooManyPendingRequests { limit: 2 });
    assert_eq!(pair.client.file_chunk(now, transfer, b"x"), full);
    assert_eq!(pair.client.finish_file(now, transfer), full);

    pair.client.close();
    assert_eq!(
        pair.client.file_chunk(now, transfer, b"x"),
        Err(FileChunkError::Closed)
    );
    assert_eq!(
        pair.client.finish_file(now, transfer),
        Err(FileChunkError::Closed)
    );
}

#[test]
fn reply_and_reply_unknown_command_refuse_a_counter_not_awaiting_and_a_closed_link() {
    let mut pair = Pair::new("", 19, Delivery::Whole);
    pair.server_auto_reply = false;
    let now = pair.now;
    let sent = pair.client.send_request(now, dapi(), b"q").unwrap();
    pair.drive();
    let [Event::Request { counter, .. }] = pair.server_events[..] else {
        panic!("{:?}", pair.server_events)
    };
    assert_eq!(counter, sent);
    let never = counter.wrapping_add(1);
    assert_eq!(
        pair.server.reply_unknown_command(now, never, &dapi()),
        Err(ReplyError::NotAwaitingReply { counter: never })
    );

    pair.server.close();
    assert_eq!(
        pair.server.reply(now, counter, Command::OK, b"a"),
        Err(ReplyError::Closed)
    );
    assert_eq!(
        pair.server.reply_unknown_command(now, counter, &dapi()),
        Err(ReplyError::Closed)
    );
}

#[test]
fn the_display_texts_are_those_the_single_api_error_had() {
    let closed = "the connection is closed";
    assert_eq!(RequestError::Closed.to_string(), closed);
    assert_eq!(ReplyError::Closed.to_string(), closed);
    assert_eq!(SendFileError::Closed.to_string(), closed);
    assert_eq!(FileChunkError::Closed.to_string(), closed);
    assert_eq!(SendStringError::Closed.to_string(), closed);

    let pending = "too many pending requests (limit 2)";
    let limit = 2;
    assert_eq!(
        RequestError::TooManyPendingRequests { limit }.to_string(),
        pending
    );
    assert_eq!(
        SendFileError::TooManyPendingRequests { limit }.to_string(),
        pending
    );
    assert_eq!(
        FileChunkError::TooManyPendingRequests { limit }.to_string(),
        pending
    );
    assert_eq!(
        SendStringError::TooManyPendingRequests { limit }.to_string(),
        pending
    );

    let (queued, frame, limit) = (70, 70, 100);
    let queue_full =
        "output queue full: 70 bytes queued + a frame of 70 bytes exceed the limit of 100 bytes";
    assert_eq!(
        RequestError::TransmitQueueFull {
            queued,
            frame,
            limit
        }
        .to_string(),
        queue_full
    );
    assert_eq!(
        SendFileError::TransmitQueueFull {
            queued,
            frame,
            limit
        }
        .to_string(),
        queue_full
    );
    assert_eq!(
        FileChunkError::TransmitQueueFull {
            queued,
            frame,
            limit
        }
        .to_string(),
        queue_full
    );
    assert_eq!(
        SendStringError::TransmitQueueFull {
            queued,
            frame,
            limit
        }
        .to_string(),
        queue_full
    );

    let transfers = "too many outgoing transfers (limit 1)";
    assert_eq!(
        SendFileError::TooManyTransfers { limit: 1 }.to_string(),
        transfers
    );
    assert_eq!(
        SendStringError::TooManyTransfers { limit: 1 }.to_string(),
        transfers
    );

    assert_eq!(
        RequestError::PayloadTooLarge {
            len: 101,
            limit: 100
        }
        .to_string(),
        "request payload of 101 bytes exceeds request_chunk (100 bytes)"
    );
    assert_eq!(
        ReplyError::NotAwaitingReply { counter: 7 }.to_string(),
        "counter 7 is not a request of the peer awaiting a reply"
    );
    assert_eq!(
        SendFileError::BadPath {
            reason: "empty path"
        }
        .to_string(),
        "bad file path for send_file: empty path"
    );
    assert_eq!(
        FileChunkError::UnknownTransfer(9).to_string(),
        "unknown transfer 9"
    );
    assert_eq!(
        FileChunkError::NotWaitingForChunk(9).to_string(),
        "transfer 9 is not waiting for a chunk"
    );
    assert_eq!(
        FileChunkError::BadChunkLen {
            transfer: 0,
            len: 0,
            max: 5
        }
        .to_string(),
        "chunk of 0 bytes for transfer 0: must be 1..=5 bytes"
    );
}
