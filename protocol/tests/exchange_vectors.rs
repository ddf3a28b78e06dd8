//! The connection core answers the common-layer requests of the recorded upstream exchanges
//! (`real_request_reply_exchanges`, `wrong_key`, `fernet_frames`, `receive_quirks` of
//! vectors/v3.9/frames.json) with the same bytes as the real 3.9.5 master, and surfaces the others
//! to the layer above.

pub mod support;

use bytes::Bytes;
use serde_json::Value;
use support::{VECTOR_KEY, config, origin, wire};
use wazuh_cluster_protocol::connection::{Connection, Event, PeerError, Side};
use wazuh_cluster_protocol::fernet::{Fernet, FernetError};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

fn frames() -> Value {
    wazuh_cluster_vectors::json("v3.9/frames.json")
}

fn server(key: &str) -> Connection {
    let t0 = origin();
    Connection::new(config(key, t0), Side::Server, Rng::from_seed(1), t0)
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = conn.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn fernet(key: &str) -> Fernet {
    Fernet::new(&ClusterKey::new(key).unwrap())
}

/// The exchanges whose reply is the connection core's job (common layer), by title.
const CORE_ANSWERS: [&str; 5] = [
    "echo-c",
    "echo",
    "unknown command",
    "str_upd for unknown string id (KeyError -> err)",
    "file_upd without space (ValueError)",
];

#[test]
fn plaintext_common_requests_get_upstreams_exact_reply_bytes() {
    let exchanges = frames()["real_request_reply_exchanges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(exchanges.len(), 19);
    let mut answered = Vec::new();
    for exchange in &exchanges {
        let title = exchange["title"].as_str().unwrap();
        if !CORE_ANSWERS.contains(&title) {
            continue;
        }
        let mut conn = server("");
        conn.handle_input(origin(), &wire(&exchange["request"]["wire_hex"]));
        let expected: Vec<u8> = exchange["replies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| wire(&r["wire_hex"]))
            .collect();
        assert_eq!(
            hex::encode(drain(&mut conn)),
            hex::encode(expected),
            "{title}"
        );
        assert_eq!(
            events(&mut conn),
            vec![],
            "{title}: nothing for the layer above"
        );
        answered.push(title);
    }
    assert_eq!(answered, CORE_ANSWERS);
}

#[test]
fn echo_c_records_the_keepalive_time() {
    let exchange = &frames()["real_request_reply_exchanges"][6];
    assert_eq!(exchange["title"], "echo-c");
    let t0 = origin();
    let mut conn = Connection::new(config("", t0), Side::Server, Rng::from_seed(1), t0);
    assert_eq!(conn.last_keepalive(), None);
    let at = t0 + support::secs(42);
    conn.handle_input(at, &wire(&exchange["request"]["wire_hex"]));
    assert_eq!(conn.last_keepalive(), Some(at));
    // The client side does not answer echo-c: it is an unknown command there.
    let mut client = Connection::new(config("", t0), Side::Client, Rng::from_seed(1), t0);
    client.handle_input(t0, &wire(&exchange["request"]["wire_hex"]));
    let reply = drain(&mut client);
    assert_eq!(&reply[8..20], b"err --------");
    assert_eq!(&reply[20..], b"unknown command 'b'echo-c''");
}

#[test]
fn node_commands_surface_as_requests_with_their_counter_and_payload() {
    for exchange in frames()["real_request_reply_exchanges"].as_array().unwrap() {
        let title = exchange["title"].as_str().unwrap();
        if CORE_ANSWERS.contains(&title) || title == "echo with key" {
            continue;
        }
        let request = &exchange["request"];
        let mut conn = server("");
        conn.handle_input(origin(), &wire(&request["wire_hex"]));
        assert_eq!(drain(&mut conn), b"", "{title}: the core must not answer");
        let command = request["command"].as_str().unwrap().as_bytes();
        assert_eq!(
            events(&mut conn),
            vec![Event::Request {
                counter: request["counter"].as_u64().unwrap() as u32,
                command: Command::new(Profile::V3_9, command).unwrap(),
                payload: Bytes::from(request["payload"].as_str().unwrap().to_owned()),
            }],
            "{title}"
        );
    }
}

#[test]
fn echo_with_key_is_answered_with_a_sealed_ok() {
    let exchange = &frames()["real_request_reply_exchanges"][18];
    assert_eq!(exchange["title"], "echo with key");
    let recorded = wire(&exchange["replies"][0]["wire_hex"]);
    let mut conn = server(VECTOR_KEY);
    conn.handle_input(origin(), &wire(&exchange["request"]["wire_hex"]));
    let ours = drain(&mut conn);
    // Same header (counter 118, `ok ---------`, 100-byte token); the tokens differ only by IV and
    // timestamp, and both open to the same plaintext.
    assert_eq!(hex::encode(&ours[..20]), hex::encode(&recorded[..20]));
    let f = fernet(VECTOR_KEY);
    assert_eq!(f.decrypt(&ours[20..]).unwrap(), b"hello");
    assert_eq!(f.decrypt(&recorded[20..]).unwrap(), b"hello");
    assert_eq!(
        &ours[20..29],
        b"gAAAAABpV",
        "token timestamp is the wall anchor (2026-01-01)"
    );
}

#[test]
fn wrong_key_frame_is_answered_like_upstream_and_closes_before_hello() {
    let vector = &frames()["wrong_key"];
    let receiver_key = vector["receiver_key"].as_str().unwrap();
    let recorded = wire(&vector["reply_wire_hex"][0]);
    let mut conn = server(receiver_key);
    conn.handle_input(origin(), &wire(&vector["request_wire_hex"]));
    let ours = drain(&mut conn);
    assert_eq!(hex::encode(&ours[..20]), hex::encode(&recorded[..20]));
    let f = fernet(receiver_key);
    let expected = vector["reply_plain"][0].as_str().unwrap().as_bytes();
    assert_eq!(f.decrypt(&ours[20..]).unwrap(), expected);
    assert_eq!(f.decrypt(&recorded[20..]).unwrap(), expected);
    // Upstream keeps the link; we do not keep a peer that cannot even say hello.
    assert_eq!(
        events(&mut conn),
        vec![Event::Closed {
            error: Some(PeerError::DecryptBeforeHello(FernetError::BadHmac).into())
        }]
    );
    assert!(conn.is_closed());
}

#[test]
fn wrong_key_after_hello_is_tolerated_up_to_the_bound() {
    let vector = &frames()["wrong_key"];
    let receiver_key = vector["receiver_key"].as_str().unwrap();
    let request = wire(&vector["request_wire_hex"]);
    let mut conn = server(receiver_key);
    conn.set_authenticated(origin());
    for failures in 1..=2 {
        conn.handle_input(origin(), &request);
        assert_eq!(conn.decrypt_failures(), failures);
        assert_eq!(events(&mut conn), vec![]);
        assert_eq!(&drain(&mut conn)[8..20], b"err --------");
    }
    conn.handle_input(origin(), &request);
    assert_eq!(
        events(&mut conn),
        vec![Event::Closed {
            error: Some(PeerError::TooManyDecryptFailures { count: 3 }.into())
        }]
    );
}

#[test]
fn decrypt_failure_resolves_a_pending_request_as_an_error_reply() {
    // Our request (counter 200) to a peer with another key: its `err` reply fails to decrypt and
    // becomes upstream's text, delivered as the response; the payload is never looked at.
    let vector = &frames()["wrong_key"];
    let t0 = origin();
    let mut conn = Connection::new(config(VECTOR_KEY, t0), Side::Client, Rng::from_seed(3), t0);
    conn.set_authenticated(t0);
    conn.set_counter(199);
    let counter = conn.send_request(t0, Command::ECHO, b"hello").unwrap();
    assert_eq!(counter, 200);
    let _ = drain(&mut conn);
    conn.handle_input(t0, &wire(&vector["reply_wire_hex"][0]));
    assert_eq!(
        events(&mut conn),
        vec![Event::Response {
            counter: 200,
            command: Command::ECHO,
            reply: wazuh_cluster_protocol::message::Reply::Err(Bytes::from_static(
                b"Could not decrypt message. Check key is correct."
            )),
        }]
    );
    assert_eq!(drain(&mut conn), b"", "a reply is never answered");
}

#[test]
fn recorded_fernet_frames_are_opened_and_dispatched() {
    for frame in frames()["fernet_frames"].as_array().unwrap() {
        let command = frame["command_sent"].as_str().unwrap();
        let mut conn = server(frame["key"].as_str().unwrap());
        conn.handle_input(origin(), &wire(&frame["wire_hex"]));
        let out = drain(&mut conn);
        let plaintext = Bytes::from(frame["plaintext"].as_str().unwrap().to_owned());
        let counter = frame["counter"].as_u64().unwrap() as u32;
        match command {
            "echo-c" => {
                assert_eq!(&out[8..20], b"ok-m  ------");
                assert_eq!(fernet(VECTOR_KEY).decrypt(&out[20..]).unwrap(), plaintext);
            }
            "hello" | "sync_i_w_m_p" => {
                assert_eq!(out, b"");
                let command = Command::new(Profile::V3_9, command.as_bytes()).unwrap();
                assert_eq!(
                    events(&mut conn),
                    vec![Event::Request {
                        counter,
                        command,
                        payload: plaintext
                    }]
                );
            }
            // Replies sent as requests (no request of ours is pending): unknown commands.
            other => {
                assert_eq!(&out[8..20], b"err --------", "{other}");
                let name = other.trim_end();
                assert_eq!(
                    fernet(VECTOR_KEY).decrypt(&out[20..]).unwrap(),
                    format!("unknown command 'b'{name}''").into_bytes()
                );
            }
        }
    }
}

#[test]
fn every_receive_quirk_delivers_every_message() {
    let quirks = frames()["receive_quirks"].as_object().unwrap().clone();
    assert_eq!(quirks.len(), 4);
    for (name, quirk) in quirks {
        let mut conn = server("");
        for chunk in quirk["chunks_hex"].as_array().unwrap() {
            conn.handle_input(origin(), &wire(chunk));
        }
        // Both recorded streams hold `echo hello` (counter 1), the longer ones `sync_i_w_m_p`
        // (counter 2); upstream lost or crashed on two of them, we deliver all.
        let out = drain(&mut conn);
        assert_eq!(
            hex::encode(&out),
            "00000001000000056f6b202d2d2d2d2d2d2d2d2d68656c6c6f",
            "{name}"
        );
        let all: Vec<u8> = quirk["chunks_hex"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(wire)
            .collect();
        let expected = if all.len() > 25 {
            vec![Event::Request {
                counter: 2,
                command: Command::new(Profile::V3_9, b"sync_i_w_m_p").unwrap(),
                payload: Bytes::new(),
            }]
        } else {
            vec![]
        };
        assert_eq!(events(&mut conn), expected, "{name}");
    }
}
