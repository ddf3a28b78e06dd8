//! Insta snapshots of every frame of a full plaintext exchange between two cores with fixed seeds:
//! hello, keepalive (`echo-c` / `ok-m `), a file (4 chunks at request_chunk 400) and a long string.
//! Any change to the bytes we put on the wire shows up in review as a snapshot diff.

use std::fmt::Write as _;

use crate::support::{Delivery, Pair, Who, config, secs};
use bytes::Bytes;
use wazuh_cluster_protocol::connection::{Connection, Event, Side};
use wazuh_cluster_protocol::frame::{Command, DEFAULT_MAX_PAYLOAD, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;

/// A readable dump: one header line per frame, then the payload as hex + ASCII, 16 bytes a line.
fn dump(log: &[(Who, Bytes)]) -> String {
    let mut out = String::new();
    let mut decoders = [
        FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD),
        FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD),
    ];
    for (who, blob) in log {
        let (arrow, decoder) = match who {
            Who::Client => ("client -> server", &mut decoders[0]),
            Who::Server => ("server -> client", &mut decoders[1]),
        };
        let mut input = blob.clone();
        loop {
            // Our own transmits hold whole frames: the header sits at the consumed offset.
            let start = blob.len() - input.len();
            let Some(frame) = decoder.decode(&mut input).expect("our own frames decode") else {
                break;
            };
            writeln!(
                out,
                "{arrow}  counter {:#010x}  field {:?}  payload {} bytes",
                frame.counter,
                String::from_utf8_lossy(&blob[start + 8..start + 20]),
                frame.payload.len()
            )
            .unwrap();
            for (row, chunk) in frame.payload.chunks(16).enumerate() {
                let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                let ascii: String = chunk
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            char::from(b)
                        } else {
                            '.'
                        }
                    })
                    .collect();
                writeln!(
                    out,
                    "    {:04x}  {:<47}  |{ascii}|",
                    row * 16,
                    hex.join(" ")
                )
                .unwrap();
            }
        }
    }
    out
}

#[test]
fn full_plaintext_exchange_frames() {
    let t0 = origin();
    let mut client_cfg = config("", t0);
    client_cfg.request_chunk = 400;
    let client = Connection::new(client_cfg, Side::Client, Rng::from_seed(2024), t0);
    let server = Connection::new(config("", t0), Side::Server, Rng::from_seed(2025), t0);
    let mut pair = Pair::from_cores(client, server, t0, Delivery::Whole, Rng::from_seed(0));
    pair.server_auto_reply = false;
    pair.wire_log = Some(Vec::new());

    // hello, answered by the layer above as the real master does.
    pair.client
        .send_request(t0, Command::HELLO, b"worker1 wazuh worker 3.9.5")
        .unwrap();
    pair.drive();
    let Some(Event::Request { counter, .. }) = pair.server_events.pop() else {
        panic!()
    };
    pair.server
        .reply(t0, counter, Command::OK, b"Client worker1 added")
        .unwrap();
    pair.drive();
    pair.client.set_authenticated(t0);

    // One keepalive, 60 s later.
    assert_eq!(pair.jump_to_next_timeout(), Some(t0 + secs(60)));

    // A 1200-byte file in chunks of 400 - len(path) - 1, then a 700-byte string.
    let lines: String = (0..60)
        .map(|i| format!("line {i:02} of the file\n"))
        .collect();
    assert_eq!(lines.len(), 1200);
    pair.client_send_file(b"/queue/cluster/worker1/f.txt", Bytes::from(lines));
    pair.drive();
    let transfer = pair
        .client
        .send_string(pair.now, Bytes::from(vec![b'S'; 700]))
        .unwrap();
    pair.drive();
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::StringSent { transfer: t, .. }) if *t == transfer
    ));

    let log = pair.wire_log.take().unwrap();
    insta::assert_snapshot!("full_plaintext_exchange", dump(&log));
}
