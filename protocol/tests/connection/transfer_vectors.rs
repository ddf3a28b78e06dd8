//! Replays vectors/v3.9/transfer.json: a real 3.9.5 `send_file` (request_chunk 400) and
//! `send_string` between two real handlers (sender's initial counter 1000, no key). Our sender must
//! emit the recorded sender frames byte for byte; our receiver must answer the recorded sender
//! frames with the recorded replies (the string id aside, which is random upstream).

use crate::support::{config, wire};
use bytes::Bytes;
use serde_json::Value;
use wazuh_cluster_protocol::connection::{Connection, Event, Side, TransferId};
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;

fn transfer() -> Value {
    wazuh_cluster_vectors::json("v3.9/transfer.json")
}

fn conn(side: Side) -> Connection {
    let t0 = origin();
    let mut config = config("", t0);
    config.request_chunk = 400;
    let mut conn = Connection::new(config, side, Rng::from_seed(7), t0);
    conn.set_counter(1000);
    conn
}

fn transmit(conn: &mut Connection) -> String {
    let mut out = Vec::new();
    while let Some(bytes) = conn.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    hex::encode(out)
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn frames_from<'a>(section: &'a Value, from: &str) -> Vec<&'a Value> {
    section["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["from"] == from)
        .collect()
}

#[test]
fn our_file_and_string_sender_emits_the_recorded_frames() {
    let vector = transfer();
    let file = &vector["send_file"];
    let content = wazuh_cluster_vectors::unhex(file["content_hex"].as_str().unwrap());
    assert_eq!(content.len(), 1024);
    let path = file["file_relative"].as_str().unwrap().as_bytes();
    let sent = frames_from(file, "sender");
    let replies = frames_from(file, "receiver");
    let t = origin();
    let mut sender = conn(Side::Client);

    let transfer = sender.send_file(t, path).unwrap();
    assert_eq!(transfer, TransferId(0));
    assert_eq!(transmit(&mut sender), sent[0]["wire_hex"].as_str().unwrap());
    let mut offset = 0;
    for (step, reply) in replies.iter().enumerate() {
        sender.handle_input(t, &wire(&reply["wire_hex"]));
        let events = events(&mut sender);
        if step == replies.len() - 1 {
            assert_eq!(
                events,
                vec![Event::FileSent {
                    transfer,
                    size: 1024
                }]
            );
            break;
        }
        assert_eq!(
            events,
            vec![Event::FileChunkWanted {
                transfer,
                max_len: 365
            }]
        );
        if offset < content.len() {
            let end = content.len().min(offset + 365);
            sender
                .file_chunk(t, transfer, &content[offset..end])
                .unwrap();
            offset = end;
        } else {
            sender.finish_file(t, transfer).unwrap();
        }
        assert_eq!(
            transmit(&mut sender),
            sent[step + 1]["wire_hex"].as_str().unwrap(),
            "{step}"
        );
    }

    // The string follows on the same connection (counters 1006..).
    let string = &vector["send_string"];
    let data = Bytes::from(string["string"].as_str().unwrap().to_owned());
    assert_eq!(data.len(), 1000);
    let sent = frames_from(string, "sender");
    let replies = frames_from(string, "receiver");
    let transfer = sender.send_string(t, data).unwrap();
    assert_eq!(transmit(&mut sender), sent[0]["wire_hex"].as_str().unwrap());
    for (step, reply) in replies.iter().enumerate() {
        sender.handle_input(t, &wire(&reply["wire_hex"]));
        if step == replies.len() - 1 {
            assert_eq!(
                events(&mut sender),
                vec![Event::StringSent {
                    transfer,
                    id: Bytes::from_static(b"633094699")
                }]
            );
            assert_eq!(transmit(&mut sender), "");
            break;
        }
        assert_eq!(events(&mut sender), vec![]);
        assert_eq!(
            transmit(&mut sender),
            sent[step + 1]["wire_hex"].as_str().unwrap(),
            "{step}"
        );
    }
    assert_eq!(sender.counter(), 1009);
    assert_eq!(sender.pending_requests(), 0);
}

#[test]
fn our_file_receiver_answers_with_the_recorded_replies_and_streams_chunks() {
    let vector = transfer();
    let file = &vector["send_file"];
    let content = wazuh_cluster_vectors::unhex(file["content_hex"].as_str().unwrap());
    let path = Bytes::from(file["file_relative"].as_str().unwrap().to_owned());
    let sent = frames_from(file, "sender");
    let replies = frames_from(file, "receiver");
    let mut receiver = conn(Side::Server);
    let mut got = Vec::new();
    for (request, reply) in sent.iter().zip(&replies) {
        receiver.handle_input(origin(), &wire(&request["wire_hex"]));
        assert_eq!(transmit(&mut receiver), reply["wire_hex"].as_str().unwrap());
        got.extend(events(&mut receiver));
    }
    let sha256: [u8; 32] = {
        let end = wire(&sent[4]["wire_hex"]);
        end[end.len() - 32..].try_into().unwrap()
    };
    assert_eq!(
        got,
        vec![
            Event::FileOpened { path: path.clone() },
            Event::FileChunk {
                path: path.clone(),
                data: Bytes::copy_from_slice(&content[..365])
            },
            Event::FileChunk {
                path: path.clone(),
                data: Bytes::copy_from_slice(&content[365..730])
            },
            Event::FileChunk {
                path: path.clone(),
                data: Bytes::copy_from_slice(&content[730..])
            },
            Event::FileReceived {
                path,
                size: 1024,
                sha256
            },
        ]
    );
    assert_eq!(receiver.incoming_files(), 0);
}

#[test]
fn our_string_receiver_answers_with_the_recorded_replies_and_assembles_the_string() {
    let vector = transfer();
    let string = &vector["send_string"];
    let data = string["string"].as_str().unwrap().as_bytes();
    let sent = frames_from(string, "sender");
    let replies = frames_from(string, "receiver");
    let mut receiver = conn(Side::Server);

    receiver.handle_input(origin(), &wire(&sent[0]["wire_hex"]));
    let reply = hex::decode(transmit(&mut receiver)).unwrap();
    let recorded = wire(&replies[0]["wire_hex"]);
    // Same counter and command field; the id is ours (decimal of a seeded u32).
    assert_eq!(reply[..4], recorded[..4]);
    assert_eq!(reply[8..20], recorded[8..20]);
    let our_id = reply[20..].to_vec();
    assert_eq!(
        u32::from_be_bytes(reply[4..8].try_into().unwrap()) as usize,
        our_id.len()
    );
    let id: u32 = std::str::from_utf8(&our_id).unwrap().parse().unwrap();
    assert_eq!(id.to_string().as_bytes(), our_id);

    let recorded_id = b"633094699";
    for (step, (request, reply)) in sent[1..].iter().zip(&replies[1..]).enumerate() {
        // The recorded str_upd frames name upstream's id: put ours in its place.
        let frame = wire(&request["wire_hex"]);
        let payload = &frame[20..];
        assert!(payload.starts_with(recorded_id));
        let new_payload = [&our_id[..], &payload[recorded_id.len()..]].concat();
        let mut rewritten = frame[..4].to_vec();
        rewritten.extend_from_slice(&(new_payload.len() as u32).to_be_bytes());
        rewritten.extend_from_slice(&frame[8..20]);
        rewritten.extend_from_slice(&new_payload);
        receiver.handle_input(origin(), &rewritten);
        assert_eq!(
            transmit(&mut receiver),
            reply["wire_hex"].as_str().unwrap(),
            "{step}"
        );
        let expected = if step == 2 {
            vec![Event::StringComplete { id }]
        } else {
            vec![]
        };
        assert_eq!(events(&mut receiver), expected, "{step}");
    }
    assert_eq!(receiver.take_string(id), Some(Bytes::copy_from_slice(data)));
    assert_eq!(receiver.take_string(id), None);
    assert_eq!(receiver.incoming_strings(), 0);
}
