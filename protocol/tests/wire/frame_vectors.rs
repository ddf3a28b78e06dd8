//! The frame codec and Fernet against bytes recorded from real upstream 3.9.5 nodes
//! (`v3.9/frames.json` and the live session streams `v3.9/session/raw/`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use wazuh_cluster_protocol::fernet::{Fernet, FernetError};
use wazuh_cluster_protocol::frame::{
    Command, DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, FrameError, encode_frame,
};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_vectors::{json, jsonl, read, unhex};

const P: Profile = Profile::V3_9;

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

fn u32_of(value: &Value) -> u32 {
    u32::try_from(value.as_u64().expect("a number")).expect("a u32")
}

/// Feeds `chunks` one after the other (zero-copy `Bytes` path) and returns every frame; checks
/// that `Ok(None)` always means "input consumed" and that the stream ends at a frame boundary.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(P, DEFAULT_MAX_PAYLOAD);
    let mut frames = Vec::new();
    for chunk in chunks {
        let mut input = Bytes::copy_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut input).unwrap() {
            frames.push(frame);
        }
        assert!(input.is_empty(), "Ok(None) with input left");
    }
    assert_eq!(decoder.finish(), Ok(()));
    frames
}

/// As [`decode_chunks`], through the borrowed-slice path, one byte at a time.
fn decode_bytewise(stream: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(P, DEFAULT_MAX_PAYLOAD);
    let mut frames = Vec::new();
    for byte in stream.chunks(1) {
        let mut input = byte;
        while let Some(frame) = decoder.decode_slice(&mut input).unwrap() {
            frames.push(frame);
        }
        assert!(input.is_empty());
    }
    assert_eq!(decoder.finish(), Ok(()));
    frames
}

/// The literal command a sender passed, recovered from its 12-byte field by inverting the 3.9
/// rule (drop the `-` padding, then the one separating space): `ok  --------` → `ok `.
fn literal_command(field: &[u8]) -> &[u8] {
    if !field.contains(&b' ') {
        return field; // a 12-byte command fills the field, no separator
    }
    let without_dashes = field.iter().rposition(|&b| b != b'-').map_or(0, |i| i + 1);
    assert_eq!(
        field[without_dashes - 1],
        b' ',
        "separator before the padding"
    );
    &field[..without_dashes - 1]
}

fn encode(counter: u32, command: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let command = Command::new(P, command).unwrap();
    encode_frame(P, counter, &command, payload, &mut out).unwrap();
    out.to_vec()
}

/// Checks one recorded frame (`wire_hex` + parsed header) both ways.
fn check_recorded_frame(wire_hex: &str, header: &Value, payload: &[u8]) {
    let wire = unhex(wire_hex);
    let frames = decode_chunks([&wire[..]]);
    assert_eq!(frames.len(), 1, "{wire_hex}");
    let frame = &frames[0];
    assert_eq!(frame.counter, u32_of(&header["counter"]));
    assert_eq!(
        frame.command.as_bytes(),
        s(&header["cmd_parsed"]).as_bytes()
    );
    assert_eq!(
        frame.payload.len(),
        header["payload_len"].as_u64().unwrap() as usize
    );
    assert_eq!(&frame.payload[..], payload);
    let field = unhex(s(&header["cmd_field_hex"]));
    assert_eq!(hex::encode(&wire[8..20]), s(&header["cmd_field_hex"]));
    assert_eq!(
        encode(frame.counter, literal_command(&field), payload),
        wire,
        "re-encoding {}",
        s(&header["cmd_field"])
    );
}

/// One array section of `frames.json`, checked to hold the recorded number of cases.
fn frames_section(name: &str, cases: usize) -> Vec<Value> {
    let section = json("v3.9/frames.json")[name]
        .as_array()
        .unwrap_or_else(|| panic!("frames.json has the array {name}"))
        .clone();
    assert_eq!(section.len(), cases, "{name}");
    section
}

#[test]
fn plaintext_frames_decode_and_encode_exactly() {
    for f in &frames_section("plaintext_frames", 19) {
        let payload = s(&f["payload"]).as_bytes();
        check_recorded_frame(s(&f["wire_hex"]), &f["header"], payload);
        // The command as the sender gave it (e.g. "ok-m " with its space) encodes to the wire.
        assert_eq!(
            hex::encode(encode(
                u32_of(&f["counter"]),
                s(&f["command"]).as_bytes(),
                payload
            )),
            s(&f["wire_hex"]),
            "{}",
            s(&f["title"])
        );
    }
}

#[test]
fn real_request_reply_exchanges_decode_and_encode_exactly() {
    // The last exchange runs under the interop key (the one of `fernet_frames`).
    let key = frames_section("fernet_frames", 6)[0]["key"].clone();
    let fernet = Fernet::new(&ClusterKey::new(s(&key)).unwrap());
    let mut replies_checked = 0;
    for exchange in &frames_section("real_request_reply_exchanges", 19) {
        let sealed = s(&exchange["title"]) == "echo with key";
        let request = &exchange["request"];
        let wire = unhex(s(&request["wire_hex"]));
        let frame = &decode_chunks([&wire[..]])[0];
        assert_eq!(frame.counter, u32_of(&request["counter"]));
        assert_eq!(frame.command.as_bytes(), s(&request["command"]).as_bytes());
        let request_plain = if sealed {
            fernet.decrypt(&frame.payload).unwrap()
        } else {
            frame.payload.to_vec()
        };
        assert_eq!(request_plain, s(&request["payload"]).as_bytes());
        for reply in exchange["replies"].as_array().unwrap() {
            if sealed {
                // Payload not recorded in clear: `echo` answers `ok` with the same bytes.
                let wire = unhex(s(&reply["wire_hex"]));
                let token = &wire[20..];
                check_recorded_frame(s(&reply["wire_hex"]), reply, token);
                assert_eq!(fernet.decrypt(token).unwrap(), request_plain);
            } else {
                let payload = s(&reply["payload"]).as_bytes();
                check_recorded_frame(s(&reply["wire_hex"]), reply, payload);
            }
            replies_checked += 1;
        }
    }
    assert!(replies_checked >= 19);
}

#[test]
fn thirteen_byte_command_is_refused_like_upstream() {
    let vectors = json("v3.9/frames.json");
    // Upstream: "Exception: Length of command 'b'sync_i_w_m_px'' exceeds limit (13/12)."
    assert!(s(&vectors["msg_build_13_byte_command"]).contains("(13/12)"));
    let error = Command::new(P, b"sync_i_w_m_px").unwrap_err();
    assert_eq!(
        error,
        FrameError::CommandTooLong {
            command: "sync_i_w_m_px".to_owned(),
            len: 13,
            max: 12,
        }
    );
    assert_eq!(
        error.to_string(),
        "length of command 'sync_i_w_m_px' exceeds limit (13/12)"
    );
}

/// IV and timestamp of a token, to seal the same plaintext again and compare bytes.
fn iv_and_time(token: &[u8]) -> ([u8; 16], u64) {
    let raw = URL_SAFE.decode(token).unwrap();
    (
        raw[9..25].try_into().unwrap(),
        u64::from_be_bytes(raw[1..9].try_into().unwrap()),
    )
}

#[test]
fn fernet_frames_open_and_reseal_byte_for_byte() {
    for f in &frames_section("fernet_frames", 6) {
        let key_text = s(&f["key"]);
        // Upstream's Fernet key is base64 of the key's ASCII bytes.
        assert_eq!(STANDARD.encode(key_text), s(&f["fernet_key_b64"]));
        let fernet = Fernet::new(&ClusterKey::new(key_text).unwrap());
        let wire = unhex(s(&f["wire_hex"]));
        let frame = &decode_chunks([&wire[..]])[0];
        assert_eq!(&frame.payload[..], s(&f["token_ascii"]).as_bytes());
        let plaintext = fernet.decrypt(&frame.payload).unwrap();
        let delivered = &f["real_receiver_delivered"][0];
        assert_eq!(frame.command.as_bytes(), s(&delivered[0]).as_bytes());
        assert_eq!(frame.counter, u32_of(&delivered[1]));
        assert_eq!(plaintext, s(&delivered[2]).as_bytes());
        assert_eq!(plaintext, s(&f["plaintext"]).as_bytes());

        let (iv, secs) = iv_and_time(&frame.payload);
        let token = fernet.encrypt(&plaintext, iv, secs);
        assert_eq!(
            encode(frame.counter, s(&f["command_sent"]).as_bytes(), &token),
            wire
        );
    }
}

#[test]
fn wrong_key_is_a_typed_error_and_the_reply_opens_under_the_receivers_key() {
    let vectors = json("v3.9/frames.json");
    let case = &vectors["wrong_key"];
    let sender = Fernet::new(&ClusterKey::new(s(&case["sender_key"])).unwrap());
    let receiver = Fernet::new(&ClusterKey::new(s(&case["receiver_key"])).unwrap());
    let request = &decode_chunks([&unhex(s(&case["request_wire_hex"]))[..]])[0];
    assert_eq!(
        receiver.decrypt(&request.payload),
        Err(FernetError::BadHmac)
    );
    assert_eq!(sender.decrypt(&request.payload).unwrap(), b"hello");
    let reply_hex = s(&case["reply_wire_hex"][0]);
    let reply = &decode_chunks([&unhex(reply_hex)[..]])[0];
    assert_eq!(reply.command, Command::ERR);
    assert_eq!(
        receiver.decrypt(&reply.payload).unwrap(),
        s(&case["reply_plain"][0]).as_bytes()
    );
    assert_eq!(sender.decrypt(&reply.payload), Err(FernetError::BadHmac));
}

fn triples(frames: &[Frame]) -> Vec<(String, u32, Vec<u8>)> {
    frames
        .iter()
        .map(|f| (f.command.to_string(), f.counter, f.payload.to_vec()))
        .collect()
}

#[test]
fn receive_quirks_deliver_every_message() {
    let vectors = json("v3.9/frames.json");
    let quirks = vectors["receive_quirks"].as_object().unwrap();
    assert_eq!(quirks.len(), 4);
    let correct = vec![
        ("echo".to_owned(), 1, b"hello".to_vec()),
        ("sync_i_w_m_p".to_owned(), 2, Vec::new()),
    ];
    for (name, case) in quirks {
        let chunks: Vec<Vec<u8>> = case["chunks_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| unhex(s(c)))
            .collect();
        let got = triples(&decode_chunks(chunks.iter().map(Vec::as_slice)));
        let upstream: Vec<(String, u32, Vec<u8>)> = case["delivered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    s(&d[0]).to_owned(),
                    u32_of(&d[1]),
                    s(&d[2]).as_bytes().to_vec(),
                )
            })
            .collect();
        match name.as_str() {
            "two frames in one read" => assert_eq!(got, upstream),
            "split inside payload" => {
                assert_eq!(got, upstream);
                assert_eq!(got, correct[..1]);
            }
            // Upstream bugs: it delivered nothing / crashed after the first message. We deliver all.
            "split after header exactly (payload taken as new header)" | "split inside header" => {
                assert_ne!(got, upstream, "{name}: upstream's loss must not be copied");
                assert_eq!(got, correct, "{name}");
            }
            other => panic!("unexpected quirk {other:?}: decide what is correct"),
        }
        // Every cut point of the same stream gives the same messages.
        let stream = chunks.concat();
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                triples(&decode_chunks([a, b])),
                triples(&decode_chunks([&stream[..]]))
            );
        }
    }
}

/// Latin-1 text of a recorded preview back to bytes.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 preview"))
        .collect()
}

struct SessionStream {
    file: &'static str,
    dir: &'static str,
    /// (log file, handler, direction) of the processes that logged these frames. The logs'
    /// `wire_len` counts the 20-byte header on SEND lines but not on RECV lines.
    logs: [(&'static str, &'static str, &'static str); 2],
}

const STREAMS: [SessionStream; 2] = [
    SessionStream {
        file: "conn1_w2m.bin",
        dir: "w2m",
        logs: [
            ("worker_frames.jsonl", "WorkerHandler", "SEND"),
            ("master_frames.jsonl", "MasterHandler", "RECV"),
        ],
    },
    SessionStream {
        file: "conn1_m2w.bin",
        dir: "m2w",
        logs: [
            ("master_frames.jsonl", "MasterHandler", "SEND"),
            ("worker_frames.jsonl", "WorkerHandler", "RECV"),
        ],
    },
];

#[test]
fn live_session_streams_decode_at_real_and_one_byte_boundaries() {
    let index = json("v3.9/session/raw/index.json");
    let fernet = Fernet::new(&ClusterKey::new(s(&index["key"])).unwrap());
    let reads = jsonl("v3.9/session/raw/chunks.jsonl");
    for stream in &STREAMS {
        let bytes = read(&format!("v3.9/session/raw/{}", stream.file));
        let recorded = index["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["file"] == stream.file)
            .unwrap();
        assert_eq!(recorded["bytes"].as_u64().unwrap() as usize, bytes.len());

        // The receiver's real read boundaries.
        let mut chunks = Vec::new();
        let mut expected_offset = 0;
        for r in reads.iter().filter(|r| r["dir"] == stream.dir) {
            let offset = r["offset"].as_u64().unwrap() as usize;
            let len = r["len"].as_u64().unwrap() as usize;
            assert_eq!(offset, expected_offset, "chunks.jsonl is contiguous");
            chunks.push(&bytes[offset..offset + len]);
            expected_offset = offset + len;
        }
        assert_eq!(expected_offset, bytes.len());
        let frames = decode_chunks(chunks);
        assert_eq!(frames, decode_bytewise(&bytes), "{}", stream.file);
        assert_eq!(frames.len(), 122);

        let list = recorded["frame_list"].as_array().unwrap();
        assert_eq!(list.len(), frames.len());
        let logs: Vec<Vec<Value>> = stream
            .logs
            .iter()
            .map(|(file, conn, dir)| {
                jsonl(&format!("v3.9/session/{file}"))
                    .into_iter()
                    .filter(|l| l["conn"] == *conn && l["dir"] == *dir)
                    .collect()
            })
            .collect();
        let mut offset = 0u64;
        for (i, (frame, entry)) in frames.iter().zip(list).enumerate() {
            let at = format!("{} frame {i}", stream.file);
            assert_eq!(entry["offset"].as_u64().unwrap(), offset, "{at}");
            assert_eq!(frame.counter, u32_of(&entry["counter"]), "{at}");
            assert_eq!(
                frame.command.as_bytes(),
                s(&entry["cmd"]).as_bytes(),
                "{at}"
            );
            assert_eq!(
                frame.payload.len() as u64,
                entry["wire_payload_len"].as_u64().unwrap(),
                "{at}"
            );
            let field = &bytes[offset as usize + 8..offset as usize + 20];
            assert_eq!(hex::encode(field), s(&entry["cmd_field_hex"]), "{at}");
            let plaintext = fernet.decrypt(&frame.payload).unwrap();
            assert_eq!(
                plaintext.len() as u64,
                entry["plain_len"].as_u64().unwrap(),
                "{at}"
            );
            let preview = latin1(s(&entry["plain_preview"]));
            assert_eq!(&plaintext[..preview.len()], &preview[..], "{at}");
            for log in &logs {
                let line = &log[i];
                assert_eq!(frame.counter, u32_of(&line["counter"]), "{at}");
                // SEND lines log the sender's literal command (`ok `), RECV lines the parsed name.
                let logged = s(&line["cmd"]).split(' ').next().unwrap();
                assert_eq!(frame.command.as_bytes(), logged.as_bytes(), "{at}");
                let header = if line["dir"] == "SEND" { 20 } else { 0 };
                assert_eq!(
                    header + frame.payload.len() as u64,
                    line["wire_len"].as_u64().unwrap(),
                    "{at}"
                );
                let preview = latin1(s(&line["preview"]));
                assert_eq!(&plaintext[..preview.len()], &preview[..], "{at}");
            }
            // Our encoder rebuilds the same frame from the literal field and the same token.
            let (iv, secs) = iv_and_time(&frame.payload);
            let resealed = fernet.encrypt(&plaintext, iv, secs);
            assert_eq!(
                encode(frame.counter, literal_command(field), &resealed),
                bytes[offset as usize..offset as usize + 20 + frame.payload.len()],
                "{at}"
            );
            offset += 20 + frame.payload.len() as u64;
        }
        assert_eq!(offset, bytes.len() as u64);
    }
}

#[test]
fn encoded_frames_snapshot() {
    // One line per frame: counter | length | command field | payload, hex. Reviewed against
    // PROTOCOL.md §18 (E3 "ok-m  ------", E4 12-byte command, E6 "ok  --------").
    let cases: [(u32, &[u8], &[u8]); 9] = [
        (0x0102_0304, b"hello", b"worker-1 wazuh worker 3.9.5"),
        (0x0102_0304, b"ok", b"Client worker-1 added"),
        (0x0000_000a, b"echo-c", b"keepalive"),
        (0x0000_000a, b"ok-m ", b"keepalive"),
        (0xffff_fffe, b"sync_i_w_m_p", b""),
        (0x0000_0006, b"sync_m_c_ok", b""),
        (0x0000_0005, b"ok ", b"Ready to receive new file"),
        (0x0000_0007, b"new_str", b"12"),
        (0xffff_ffff, b"echo", b""),
    ];
    let mut dump = String::new();
    for (counter, command, payload) in cases {
        let wire = encode(counter, command, payload);
        dump.push_str(&format!(
            "{:<14} {} {} {} |{}| {}\n",
            format!("{:?}", String::from_utf8_lossy(command)),
            hex::encode(&wire[0..4]),
            hex::encode(&wire[4..8]),
            hex::encode(&wire[8..20]),
            String::from_utf8_lossy(&wire[8..20]),
            hex::encode(&wire[20..]),
        ));
    }
    insta::assert_snapshot!(dump);
}
