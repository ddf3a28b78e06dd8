//! A fake node for the commands under test: a thread serving a Unix socket that replays, frame
//! by frame, what a real 3.9.5 local server answered (the `dapi_via_*.json` recordings, or
//! frames in the same shape written by a test), and keeps every frame the client sent, so a
//! test checks both what our command printed and what it said on the wire.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use bytes::BytesMut;
use serde_json::{Value, json};
use wazuh_cluster_protocol::frame::{self, DEFAULT_MAX_PAYLOAD, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_testkit::ScratchDir;

/// One frame the client sent, as the fake node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub counter: u32,
    pub command: String,
    pub payload: String,
}

/// A fresh install root for the test `name` (`etc/`, `queue/cluster/`), removed on drop.
pub fn install_root(name: &str) -> ScratchDir {
    let root = ScratchDir::new(&format!("local-socket-{name}"));
    std::fs::create_dir_all(root.join("queue/cluster")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    root
}

/// The local socket under `root`.
pub fn socket_of(root: &Path) -> PathBuf {
    root.join("queue/cluster/c-internal.sock")
}

/// The recorded local-socket frames of the call `title` in `file`.
pub fn recorded_frames(file: &str, title: &str) -> Vec<Value> {
    let doc = wazuh_cluster_vectors::json(file);
    doc["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|call| call["title"] == title)
        .unwrap_or_else(|| panic!("{file}: no call {title}"))["local_frames"]
        .as_array()
        .unwrap()
        .clone()
}

/// The frames of a node answering `command` `request` with the long string `answer` after the
/// reply `ok` `acknowledgement`, as a 3.9.5 master's local server does for `dapi` (the
/// recordings' shape; the string id is the recording's, the replay uses the client's).
pub fn string_answer_frames(
    command: &str,
    request: &str,
    acknowledgement: &str,
    answer: &str,
) -> Vec<Value> {
    let id = "2545661560";
    let node = |counter: u32, cmd: &str, kind: &str, payload: &str| {
        json!({"dir": "local_server->client", "counter": counter, "cmd": cmd, "kind": kind,
               "payload": payload})
    };
    let client = |counter: u32, payload: &str| json!({"dir": "client->local_server", "counter": counter, "cmd": "ok", "payload": payload});
    vec![
        json!({"dir": "client->local_server", "counter": 1, "cmd": command, "payload": request}),
        node(1, "ok", "RESP", acknowledgement),
        node(70, "new_str", "REQ", &answer.len().to_string()),
        client(70, id),
        node(71, "str_upd", "REQ", &format!("{id} {answer}")),
        client(71, "Chunk received"),
        node(72, "dapi_res", "REQ", id),
        client(72, "Distributed api response received"),
    ]
}

fn read_frame(stream: &mut UnixStream, decoder: &mut FrameDecoder) -> Option<Seen> {
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        let mut input = &buffer[..n];
        if let Some(frame) = decoder.decode_slice(&mut input).unwrap() {
            assert!(input.is_empty(), "one frame at a time from the client");
            return Some(Seen {
                counter: frame.counter,
                command: frame.command.to_string(),
                payload: String::from_utf8(frame.payload.to_vec()).unwrap(),
            });
        }
    }
}

fn write_frame(stream: &mut UnixStream, counter: u32, command: &str, payload: &str) {
    let command = frame::Command::new(Profile::V3_9, command.as_bytes()).unwrap();
    let mut out = BytesMut::new();
    frame::encode_frame(
        Profile::V3_9,
        counter,
        &command,
        payload.as_bytes(),
        &mut out,
    )
    .unwrap();
    stream.write_all(&out).unwrap();
}

/// How the fake node answers one connection.
pub enum Script {
    /// Replay these frames after the client's request (the first frame, which stands for it):
    /// the client's frames are read and kept, the node's are sent (replies under the client's
    /// counter, requests under the recorded one). The id the client gives a long string stands
    /// in for the recorded one in what the node sends after, and the recorded one for it in
    /// what is kept, so the kept frames compare with the recording.
    Replay(Vec<Value>),
    /// Answer the request with `command` `payload`.
    Answer(&'static str, String),
    /// Read the request, then close without answering.
    Hang,
}

/// Serves one connection per script on `socket`, in order; returns every client frame seen.
pub fn fake_node(socket: &Path, scripts: Vec<Script>) -> JoinHandle<Vec<Seen>> {
    let listener = UnixListener::bind(socket).unwrap();
    let (ready, started) = mpsc::channel();
    let handle = thread::spawn(move || {
        ready.send(()).unwrap();
        let mut seen = Vec::new();
        for script in scripts {
            let (mut stream, _) = listener.accept().unwrap();
            let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
            let request = read_frame(&mut stream, &mut decoder).expect("a request");
            let client_counter = request.counter;
            seen.push(request);
            match script {
                Script::Replay(frames) => replay(
                    &mut stream,
                    &mut decoder,
                    client_counter,
                    &frames[1..],
                    &mut seen,
                ),
                Script::Answer(command, payload) => {
                    write_frame(&mut stream, client_counter, command, &payload);
                }
                Script::Hang => {}
            }
        }
        seen
    });
    started.recv().unwrap();
    handle
}

/// Plays `frames` (everything after the request) on one connection; see [`Script::Replay`].
fn replay(
    stream: &mut UnixStream,
    decoder: &mut FrameDecoder,
    client_counter: u32,
    frames: &[Value],
    seen: &mut Vec<Seen>,
) {
    // (recorded id, the client's id) of the long string in flight.
    let mut string_id: Option<(String, String)> = None;
    let mut last_sent = String::new();
    for frame in frames {
        let text = |key: &str| frame[key].as_str().unwrap().to_owned();
        if text("dir") == "local_server->client" {
            let counter = if frame["kind"] == "RESP" {
                client_counter
            } else {
                u32::try_from(frame["counter"].as_u64().unwrap()).unwrap()
            };
            let mut payload = text("payload");
            if let Some((recorded, ours)) = &string_id
                && let Some(rest) = payload.strip_prefix(recorded.as_str())
            {
                payload = format!("{ours}{rest}");
            }
            write_frame(stream, counter, &text("cmd"), &payload);
            last_sent = text("cmd");
        } else {
            let mut reply = read_frame(stream, decoder).expect("a reply");
            if last_sent == "new_str" {
                string_id = Some((text("payload"), reply.payload.clone()));
                reply.payload = text("payload");
            }
            seen.push(reply);
        }
    }
}

/// Runs the binary with `args`, without `RUST_LOG`.
pub fn wazuh_cluster(args: &[&str]) -> Output {
    wazuh_cluster_with_log(args, None)
}

/// Runs the binary with `RUST_LOG` set to `rust_log`, or removed.
pub fn wazuh_cluster_with_log(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"));
    command.args(args).env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command.output().expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The client frames a recording shows, to compare with what ours sent.
pub fn recorded_client_frames(frames: &[Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter(|frame| frame["dir"] == "client->local_server")
        .map(|frame| {
            (
                frame["cmd"].as_str().unwrap().to_owned(),
                frame["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The commands and payloads of `seen`.
pub fn commands_and_payloads(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .map(|frame| (frame.command.clone(), frame.payload.clone()))
        .collect()
}
