//! Chunks sealed ahead (`Connection::seal_chunk`, then `send_sealed_chunk` when the chunk is
//! asked for) put the very bytes on the wire that `file_chunk` puts there at the same moment:
//! also when another frame drew an IV in between, or the second turned, or there is no key.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wazuh_cluster_protocol::connection::{
    Connection, Event, FileChunkError, SealedChunk, Side, TransferId,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::CLUSTER_KEY;

use crate::support::{config, random_bytes};

const PATH: &[u8] = b"/queue/cluster/w1/p.zip";
/// 100-byte requests: 76 bytes of data per chunk after the path and a space.
const REQUEST_CHUNK: usize = 100;
const CHUNK: usize = REQUEST_CHUNK - PATH.len() - 1;

/// What happens between a chunk's sending and its acknowledgement reaching the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    Nothing,
    /// The sender queues another request: it draws the next IV.
    Request,
    /// The wall clock's second turns.
    SecondTurns,
}

/// How the sender produces each chunk when it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// `file_chunk` with the bytes, when asked.
    WhenAsked,
    /// `seal_chunk` as soon as the previous chunk went, `send_sealed_chunk` when asked.
    SealedAhead,
}

/// Sends `data` from a client to a server one chunk per acknowledgement, `meanwhile[k]` happening
/// while chunk k is unacknowledged; the client's bytes on the wire and the server's events.
fn transfer(
    key: &str,
    data: &Bytes,
    feed: Feed,
    meanwhile: &[Meanwhile],
) -> (Vec<Bytes>, Vec<Event>) {
    let mut now = origin() + Duration::from_millis(400);
    let mut client_cfg = config(key, origin());
    client_cfg.request_chunk = REQUEST_CHUNK;
    let mut client = Connection::new(client_cfg, Side::Client, Rng::from_seed(5), now);
    let mut server = Connection::new(config(key, origin()), Side::Server, Rng::from_seed(6), now);
    let mut wire = Vec::new();
    let mut server_events = Vec::new();
    let transfer = client.send_file(now, PATH).unwrap();
    let mut offset = 0;
    let mut ahead: Option<SealedChunk> = None;
    let mut sent_chunks = 0;
    loop {
        while let Some(bytes) = client.poll_transmit() {
            server.handle_input(now, &bytes);
            wire.push(bytes);
        }
        while let Some(event) = server.poll_event() {
            server_events.push(event);
        }
        if feed == Feed::SealedAhead && ahead.is_none() && offset > 0 && offset < data.len() {
            let end = data.len().min(offset + CHUNK);
            ahead = Some(
                client
                    .seal_chunk(now, transfer, &data[offset..end])
                    .unwrap(),
            );
        }
        if sent_chunks > 0 {
            match meanwhile.get(sent_chunks - 1) {
                Some(Meanwhile::Request) => {
                    client.send_request(now, Command::ECHO, b"ping").unwrap();
                }
                Some(Meanwhile::SecondTurns) => now += Duration::from_secs(1),
                Some(Meanwhile::Nothing) | None => {}
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            client.handle_input(now, &bytes);
        }
        let mut asked = false;
        while let Some(event) = client.poll_event() {
            match event {
                Event::FileChunkWanted { transfer: t, .. } if t == transfer => asked = true,
                Event::FileSent { .. } => return (wire, server_events),
                _ => {}
            }
        }
        if !asked {
            continue;
        }
        if offset == data.len() {
            client.finish_file(now, transfer).unwrap();
            continue;
        }
        let end = data.len().min(offset + CHUNK);
        match ahead.take() {
            Some(sealed) => client.send_sealed_chunk(now, sealed).unwrap(),
            None => client
                .file_chunk(now, transfer, &data[offset..end])
                .unwrap(),
        }
        offset = end;
        sent_chunks += 1;
    }
}

fn received(events: &[Event]) -> Option<(u64, [u8; 32])> {
    events.iter().find_map(|e| match e {
        Event::FileReceived { size, sha256, .. } => Some((*size, *sha256)),
        _ => None,
    })
}

#[test]
fn chunks_sealed_ahead_put_the_same_bytes_on_the_wire_as_chunks_sealed_when_asked() {
    use Meanwhile::*;
    let data = random_bytes(3, 10 * CHUNK + 17);
    let digest: [u8; 32] = Sha256::digest(&data).into();
    let quiet = [Nothing; 11];
    // Chunk 2 waits behind a request that takes its IV, chunk 5 is asked for a second later,
    // chunk 6 both; the others go as sealed.
    let busy = [
        Nothing,
        Nothing,
        Request,
        Nothing,
        Nothing,
        SecondTurns,
        Request,
        Nothing,
        Nothing,
        Nothing,
        Nothing,
    ];
    let mut busy_both = busy;
    busy_both[6] = SecondTurns;
    for key in [CLUSTER_KEY, ""] {
        for meanwhile in [&quiet, &busy, &busy_both] {
            let (plain, plain_events) = transfer(key, &data, Feed::WhenAsked, meanwhile);
            let (ahead, ahead_events) = transfer(key, &data, Feed::SealedAhead, meanwhile);
            assert_eq!(
                ahead,
                plain,
                "key {:?}, meanwhile {meanwhile:?}",
                !key.is_empty()
            );
            assert_eq!(received(&plain_events), Some((data.len() as u64, digest)));
            assert_eq!(ahead_events, plain_events);
        }
    }
}

/// A client that sent `new_file` (with a window of `window` bytes of chunks) and got its
/// acknowledgement: it asks for chunk 0.
fn opened(window: usize) -> (Connection, TransferId) {
    let now = origin();
    let mut client_cfg = config(CLUSTER_KEY, now);
    client_cfg.request_chunk = REQUEST_CHUNK;
    client_cfg.file_window = window;
    let mut client = Connection::new(client_cfg, Side::Client, Rng::from_seed(5), now);
    let mut server = Connection::new(
        config(CLUSTER_KEY, now),
        Side::Server,
        Rng::from_seed(6),
        now,
    );
    let transfer = client.send_file(now, PATH).unwrap();
    while let Some(bytes) = client.poll_transmit() {
        server.handle_input(now, &bytes);
    }
    while let Some(bytes) = server.poll_transmit() {
        client.handle_input(now, &bytes);
    }
    assert!(
        std::iter::from_fn(|| client.poll_event())
            .any(|e| matches!(e, Event::FileChunkWanted { .. }))
    );
    (client, transfer)
}

#[test]
fn a_sealed_chunk_that_is_no_longer_next_is_refused_and_nothing_is_sent() {
    let now = origin();
    let chunk = random_bytes(1, CHUNK);
    // A window of chunks: chunk 1 is asked for as soon as chunk 0 is sent.
    let (mut client, transfer) = opened(10 * REQUEST_CHUNK);
    let stale = client.seal_chunk(now, transfer, &chunk).unwrap();
    assert_eq!(stale.transfer(), transfer);
    assert_eq!(stale.chunk_len(), CHUNK);
    assert_eq!(stale.frame_len(), client.frame_len(REQUEST_CHUNK));
    client.file_chunk(now, transfer, &chunk).unwrap();
    while client.poll_transmit().is_some() {}
    let counter = client.counter();
    assert_eq!(
        client.send_sealed_chunk(now, stale),
        Err(FileChunkError::StaleSealedChunk(transfer.0))
    );
    assert!(client.poll_transmit().is_none());
    assert_eq!(client.counter(), counter, "no counter was used");
}

#[test]
fn sealing_ahead_is_refused_as_file_chunk_refuses_and_changes_nothing() {
    let now = origin();
    let (mut client, transfer) = opened(0);
    let too_long = random_bytes(1, CHUNK + 1);
    assert_eq!(
        client.seal_chunk(now, transfer, &too_long).unwrap_err(),
        FileChunkError::BadChunkLen {
            transfer: transfer.0,
            len: CHUNK + 1,
            max: CHUNK
        }
    );
    assert!(matches!(
        client.seal_chunk(now, transfer, b""),
        Err(FileChunkError::BadChunkLen { len: 0, .. })
    ));
    assert_eq!(
        client.seal_chunk(now, TransferId(99), b"x").unwrap_err(),
        FileChunkError::UnknownTransfer(99)
    );
    // A sealed chunk dropped leaves no trace: the next frame is sealed with the IV it would
    // have had anyway (the same seed, nothing sealed, gives the same bytes).
    drop(client.seal_chunk(now, transfer, b"x").unwrap());
    client.file_chunk(now, transfer, b"y").unwrap();
    let (mut fresh, _) = opened(0);
    fresh.file_chunk(now, transfer, b"y").unwrap();
    assert_eq!(client.poll_transmit(), fresh.poll_transmit());
    // The end asked for: no chunk follows.
    let (mut client, transfer) = opened(0);
    client.finish_file(now, transfer).unwrap();
    assert_eq!(
        client.seal_chunk(now, transfer, b"x").unwrap_err(),
        FileChunkError::NotWaitingForChunk(transfer.0)
    );
    client.close();
    assert_eq!(
        client.seal_chunk(now, transfer, b"x").unwrap_err(),
        FileChunkError::Closed
    );
}
