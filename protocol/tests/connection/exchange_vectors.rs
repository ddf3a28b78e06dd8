//! The connection core answers the common-layer requests of the recorded upstream exchanges
//! (`real_request_reply_exchanges`, `wrong_key`, `fernet_frames`, `receive_quirks` of
//! vectors/v3.9/frames.json) with the same bytes as the real 3.9.5 master, and surfaces the others
//! to the layer above.

use crate::support::{self, ORIGIN_UNIX, config, wire};
use bytes::Bytes;
use serde_json::Value;
use wazuh_cluster_protocol::connection::{Connection, Event, PeerError, Side};
use wazuh_cluster_protocol::fernet::{Fernet, FernetError};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::CLUSTER_KEY;

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
    let mut conn = server(CLUSTER_KEY);
    conn.handle_input(origin(), &wire(&exchange["request"]["wire_hex"]));
    let ours = drain(&mut conn);
    // Same header (counter 118, `ok ---------`, 100-byte token); the tokens differ only by IV and
    // timestamp, and both open to the same plaintext.
    assert_eq!(hex::encode(&ours[..20]), hex::encode(&recorded[..20]));
    let f = fernet(CLUSTER_KEY);
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
    let mut conn = Connection::new(config(CLUSTER_KEY, t0), Side::Client, Rng::from_seed(3), t0);
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
            reply: Reply::Err(Bytes::from_static(
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
                assert_eq!(fernet(CLUSTER_KEY).decrypt(&out[20..]).unwrap(), plaintext);
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
                    fernet(CLUSTER_KEY).decrypt(&out[20..]).unwrap(),
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

/// One frame of the recorded live session, opened with the session key.
struct Recorded {
    counter: u32,
    field: [u8; 12],
    cmd: Vec<u8>,
    plain: Vec<u8>,
    wire: Vec<u8>,
}

fn recorded_stream(file: &str) -> Vec<Recorded> {
    let bin = wazuh_cluster_vectors::read(&format!("v3.9/session/raw/{file}"));
    let f = fernet(CLUSTER_KEY);
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bin.len() {
        let len = u32::from_be_bytes(bin[at + 4..at + 8].try_into().unwrap()) as usize;
        let wire = bin[at..at + 20 + len].to_vec();
        let field: [u8; 12] = wire[8..20].try_into().unwrap();
        let cmd = field.split(|&b| b == b' ').next().unwrap().to_vec();
        frames.push(Recorded {
            counter: u32::from_be_bytes(wire[..4].try_into().unwrap()),
            field,
            cmd,
            plain: f.decrypt(&wire[20..]).unwrap(),
            wire,
        });
        at += 20 + len;
    }
    frames
}

/// The command a field was built from: padding `-` and the one separator space removed, so
/// `ok  --------` gives `ok ` and `sync_i_w_m_p` stays whole.
fn command_of_field(field: &[u8; 12]) -> Command {
    let end = field.iter().rposition(|&b| b != b'-').unwrap() + 1;
    let name = &field[..end];
    let name = if end < 12 {
        name.strip_suffix(b" ").unwrap_or(name)
    } else {
        name
    };
    Command::new(Profile::V3_9, name).unwrap()
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The events a core-answered request may produce: the file and string streams.
fn check_core_events(conn: &mut Connection, cmd: &[u8], plain: &[u8], events: &[Event]) {
    let split = |p: &[u8]| {
        let at = p.iter().position(|&b| b == b' ').unwrap();
        (
            Bytes::copy_from_slice(&p[..at]),
            Bytes::copy_from_slice(&p[at + 1..]),
        )
    };
    match cmd {
        b"new_file" => {
            assert_eq!(
                events,
                [Event::FileOpened {
                    path: Bytes::copy_from_slice(plain)
                }]
            );
        }
        b"file_upd" => {
            let (path, data) = split(plain);
            assert_eq!(events, [Event::FileChunk { path, data }]);
        }
        b"file_end" => {
            let (path, digest) = split(plain);
            let [
                Event::FileReceived {
                    path: p, sha256, ..
                },
            ] = events
            else {
                panic!("{events:?}")
            };
            assert_eq!((p, &sha256[..]), (&path, &digest[..]));
        }
        b"new_str" | b"str_upd" => {
            for event in events {
                let Event::StringComplete { id } = event else {
                    panic!("{event:?}")
                };
                assert!(conn.take_string(*id).is_some());
            }
        }
        _ => assert_eq!(events, []),
    }
}

/// Counts of what the replay saw.
#[derive(Debug, PartialEq, Eq, Default)]
struct ReplayCounts {
    answered_by_core: usize,
    surfaced: usize,
    responses: usize,
    requests_sent: usize,
}

/// Replays one side of the recorded live session through our core: frames the real peer sent
/// are fed as recorded (real Fernet tokens); requests the real node sent are issued with
/// `send_request` (same counter) and must produce the same header and plaintext; requests our
/// core answers itself must be answered with the plaintext the real node answered; the others
/// must surface with their exact payload and are answered with the recorded reply.
fn replay(side: Side, log: &str, handler: &str, incoming: &str, outgoing: &str) -> ReplayCounts {
    let core: &[&[u8]] = match side {
        Side::Server => &[
            b"echo",
            b"echo-c",
            b"new_file",
            b"file_upd",
            b"file_end",
            b"new_str",
            b"str_upd",
        ],
        Side::Client => &[
            b"echo",
            b"echo-m",
            b"new_file",
            b"file_upd",
            b"file_end",
            b"new_str",
            b"str_upd",
        ],
    };
    let rows: Vec<Value> = wazuh_cluster_vectors::jsonl(&format!("v3.9/session/{log}"))
        .into_iter()
        .filter(|r| r["conn"] == handler && r.get("dir").is_some())
        .collect();
    let claims: Vec<Command> = rows
        .iter()
        .filter(|r| r["dir"] == "RECV" && r["kind"] == "REQ")
        .map(|r| r["cmd"].as_str().unwrap().as_bytes())
        .filter(|c| !core.contains(c))
        .map(|c| Command::new(Profile::V3_9, c).unwrap())
        .collect();
    let incoming = recorded_stream(incoming);
    let outgoing = recorded_stream(outgoing);
    let f = fernet(CLUSTER_KEY);
    let t0 = origin();
    let mut conn = Connection::new(
        config(CLUSTER_KEY, t0).claim(claims),
        side,
        Rng::from_seed(9),
        t0,
    );
    let (mut next_in, mut next_out) = (0, 0);
    let mut owed_by_core = std::collections::BTreeSet::new();
    let mut owed_by_node = std::collections::BTreeSet::new();
    let mut ids: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut counts = ReplayCounts::default();
    for row in &rows {
        let now = t0 + std::time::Duration::from_secs_f64(row["t"].as_f64().unwrap());
        let counter = row["counter"].as_u64().unwrap() as u32;
        if row["dir"] == "RECV" {
            let rec = &incoming[next_in];
            next_in += 1;
            assert_eq!(
                (rec.counter, rec.cmd.as_slice()),
                (counter, row["cmd"].as_str().unwrap().as_bytes())
            );
            // `str_upd` and the command that follows (`dapi_res`) name the string id the real node
            // gave; ours differs: put ours in and reseal. (File chunks are binary: left alone.)
            let rewritten = (rec.cmd != b"file_upd")
                .then(|| {
                    ids.iter().fold(rec.plain.clone(), |p, (theirs, ours)| {
                        replace_all(&p, theirs, ours)
                    })
                })
                .filter(|plain| *plain != rec.plain);
            let (wire, plain) = match rewritten {
                Some(plain) => {
                    let token = f.encrypt(&plain, [7; 16], ORIGIN_UNIX);
                    let mut wire = rec.wire[..4].to_vec();
                    wire.extend_from_slice(&(token.len() as u32).to_be_bytes());
                    wire.extend_from_slice(&rec.field);
                    wire.extend_from_slice(&token);
                    (wire, plain)
                }
                None => (rec.wire.clone(), rec.plain.clone()),
            };
            conn.handle_input(now, &wire);
            let events = events(&mut conn);
            let out = drain(&mut conn);
            if row["kind"] == "RESP" {
                let [
                    Event::Response {
                        counter: c, reply, ..
                    },
                ] = &events[..]
                else {
                    panic!("{events:?}")
                };
                assert_eq!(*c, counter);
                assert_eq!(reply, &Reply::from_wire(&rec.cmd, Bytes::from(plain)));
                assert_eq!(out, b"");
                counts.responses += 1;
            } else if core.contains(&rec.cmd.as_slice()) {
                check_core_events(&mut conn, &rec.cmd, &plain, &events);
                let recorded = outgoing[next_out..]
                    .iter()
                    .find(|r| r.counter == counter)
                    .unwrap();
                assert_eq!(
                    (&out[..4], &out[8..20]),
                    (&recorded.wire[..4], &recorded.field[..])
                );
                let ours = f.decrypt(&out[20..]).unwrap();
                if rec.cmd == b"new_str" {
                    assert_eq!(
                        ours,
                        std::str::from_utf8(&ours)
                            .unwrap()
                            .parse::<u32>()
                            .unwrap()
                            .to_string()
                            .as_bytes()
                    );
                    ids.push((recorded.plain.clone(), ours));
                } else {
                    assert_eq!(
                        ours,
                        recorded.plain,
                        "reply to {}",
                        String::from_utf8_lossy(&rec.cmd)
                    );
                }
                owed_by_core.insert(counter);
                counts.answered_by_core += 1;
            } else {
                assert_eq!(
                    events,
                    vec![Event::Request {
                        counter,
                        command: Command::new(Profile::V3_9, &rec.cmd).unwrap(),
                        payload: Bytes::from(plain),
                    }]
                );
                assert_eq!(out, b"");
                owed_by_node.insert(counter);
                counts.surfaced += 1;
            }
        } else {
            let rec = &outgoing[next_out];
            next_out += 1;
            assert_eq!(rec.counter, counter);
            if owed_by_core.remove(&counter) {
                continue;
            }
            let command = command_of_field(&rec.field);
            if owed_by_node.remove(&counter) {
                conn.reply(now, counter, command, &rec.plain).unwrap();
            } else {
                conn.set_counter(counter.wrapping_sub(1));
                assert_eq!(conn.send_request(now, command, &rec.plain), Ok(counter));
                counts.requests_sent += 1;
            }
            let out = drain(&mut conn);
            assert_eq!(&out[..4], &rec.wire[..4]);
            assert_eq!(&out[8..20], &rec.field);
            assert_eq!(f.decrypt(&out[20..]).unwrap(), rec.plain);
        }
    }
    assert_eq!((next_in, next_out), (incoming.len(), outgoing.len()));
    assert!(owed_by_core.is_empty() && owed_by_node.is_empty());
    assert_eq!(conn.pending_requests(), 0);
    counts
}

#[test]
fn the_recorded_live_session_replays_through_our_master_core() {
    let counts = replay(
        Side::Server,
        "master_frames.jsonl",
        "MasterHandler",
        "conn1_w2m.bin",
        "conn1_m2w.bin",
    );
    // echo-c 11 + new_file/file_upd/file_end 13 each + new_str/str_upd 2 each.
    assert_eq!(
        counts,
        ReplayCounts {
            answered_by_core: 54,
            surfaced: 49,
            responses: 19,
            requests_sent: 19
        }
    );
}

#[test]
fn the_recorded_live_session_replays_through_our_worker_core() {
    let counts = replay(
        Side::Client,
        "worker_frames.jsonl",
        "WorkerHandler",
        "conn1_m2w.bin",
        "conn1_w2m.bin",
    );
    assert_eq!(
        counts,
        ReplayCounts {
            answered_by_core: 7,
            surfaced: 12,
            responses: 103,
            requests_sent: 103
        }
    );
}

#[test]
fn a_claimed_command_the_layer_above_declines_gets_upstreams_unknown_command_reply() {
    let exchange = &frames()["real_request_reply_exchanges"][13];
    assert_eq!(exchange["title"], "unknown command");
    let t0 = origin();
    let foo = Command::new(Profile::V3_9, b"foo").unwrap();
    let mut conn = Connection::new(
        config("", t0).claim([foo]),
        Side::Server,
        Rng::from_seed(1),
        t0,
    );
    conn.handle_input(t0, &wire(&exchange["request"]["wire_hex"]));
    assert_eq!(
        events(&mut conn),
        vec![Event::Request {
            counter: 113,
            command: foo,
            payload: Bytes::new()
        }]
    );
    assert_eq!(drain(&mut conn), b"");
    conn.reply_unknown_command(t0, 113, &foo).unwrap();
    assert_eq!(drain(&mut conn), wire(&exchange["replies"][0]["wire_hex"]));
}

/// A large frame (opened as it arrives, see `Connection::open_ahead`) gives the same events,
/// answers and failure counts however its bytes are cut: whole, in pieces of a few bytes or of a
/// few KiB; intact, with one character changed anywhere in its token, or sealed with another key.
#[test]
fn a_large_frame_is_judged_the_same_however_it_arrives() {
    use bytes::BytesMut;
    use wazuh_cluster_protocol::frame::encode_frame;
    let t0 = origin();
    let payload = support::random_bytes(5, 200_000);
    let good = fernet(CLUSTER_KEY).encrypt(&payload, [4; 16], ORIGIN_UNIX);
    let mut variants = vec![good.clone()];
    for at in [
        0,
        1,
        30,
        40,
        1_000,
        good.len() / 2,
        good.len() - 50,
        good.len() - 2,
    ] {
        let mut token = good.clone();
        token[at] = if token[at] == b'A' { b'B' } else { b'A' };
        variants.push(token);
    }
    variants.push(fernet("anotherclusterkey0123456789abcde").encrypt(&payload, [4; 16], 1));
    for token in &variants {
        let mut frame = BytesMut::new();
        encode_frame(Profile::V3_9, 7, &Command::ECHO, token, &mut frame).unwrap();
        let run = |piece: usize| {
            let mut conn = server(CLUSTER_KEY);
            conn.set_authenticated(t0);
            for bytes in frame.chunks(piece) {
                conn.handle_input(t0, bytes);
            }
            (events(&mut conn), drain(&mut conn), conn.decrypt_failures())
        };
        let whole = run(frame.len());
        for piece in [7, 4_096, 65_537] {
            assert!(run(piece) == whole, "cut in pieces of {piece} bytes");
        }
        // The intact token is echoed with the payload; every other one is `err`.
        let answer = &whole.1[8..20];
        let expected: &[u8] = if *token == good {
            b"ok ---------"
        } else {
            b"err --------"
        };
        assert_eq!(answer, expected);
    }
}
