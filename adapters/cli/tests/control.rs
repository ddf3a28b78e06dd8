//! `wazuh-cluster control` run as a process against a fake node: a thread serving a Unix socket
//! that replays, frame by frame, what the real 3.9.5 local servers answered to upstream's
//! `cluster_control` (`dapi_via_master.json`, `dapi_via_worker.json`), and checks that our client
//! sends what upstream's sent.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use base64::Engine as _;
use bytes::BytesMut;
use serde_json::Value;
use wazuh_cluster_protocol::frame::{self, DEFAULT_MAX_PAYLOAD, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;

/// One frame as the fake node saw or sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    counter: u32,
    command: String,
    payload: String,
}

/// A scratch install root unique to this test (`etc/`, `queue/cluster/`), removed on drop.
struct Root(PathBuf);

impl std::ops::Deref for Root {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn install_root(name: &str) -> Root {
    let root = std::env::temp_dir().join(format!(
        "wazuh-cluster-control-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("queue/cluster")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    Root(root)
}

fn socket_of(root: &Path) -> PathBuf {
    root.join("queue/cluster/c-internal.sock")
}

/// Writes the recorded `tree`'s ossec.conf (session trees) into `root`.
fn install_recorded_ossec_conf(root: &Path, tree: &str) {
    let trees = wazuh_cluster_vectors::json("v3.9/session/trees.json");
    let entry = trees[tree]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["path"] == "etc/ossec.conf")
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(entry["content_b64"].as_str().unwrap())
        .unwrap();
    std::fs::write(root.join("etc/ossec.conf"), bytes).unwrap();
}

/// The recorded local-socket frames of the call `title` in `file`.
fn recorded_frames(file: &str, title: &str) -> Vec<Value> {
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
enum Script {
    /// Replay the recorded frames of a call: the client's frames are read and returned, the
    /// node's are sent (replies under the client's counter, requests under the recorded one).
    Replay(Vec<Value>),
    /// Answer the request with `command` `payload`.
    Answer(&'static str, String),
    /// Read the request, then close without answering.
    Hang,
}

/// Serves one connection per script on `socket`, in order; returns every client frame seen.
fn fake_node(socket: &Path, scripts: Vec<Script>) -> JoinHandle<Vec<Seen>> {
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
                Script::Replay(frames) => {
                    for frame in frames.iter().skip(1) {
                        let text = |key: &str| frame[key].as_str().unwrap().to_owned();
                        if text("dir") == "local_server->client" {
                            let counter = if frame["kind"] == "RESP" {
                                client_counter
                            } else {
                                u32::try_from(frame["counter"].as_u64().unwrap()).unwrap()
                            };
                            write_frame(&mut stream, counter, &text("cmd"), &text("payload"));
                        } else {
                            seen.push(read_frame(&mut stream, &mut decoder).expect("a reply"));
                        }
                    }
                }
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

fn wazuh_cluster(args: &[&str]) -> Output {
    wazuh_cluster_with_log(args, None)
}

/// Runs the binary with `RUST_LOG` set to `rust_log`, or removed.
fn wazuh_cluster_with_log(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"));
    command.args(args).env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The client frames the recording shows for a call, to compare with what ours sent.
fn recorded_client_frames(frames: &[Value]) -> Vec<(String, String)> {
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

fn commands_and_payloads(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .map(|frame| (frame.command.clone(), frame.payload.clone()))
        .collect()
}

const NODES_TABLE: &str = "NAME      TYPE    VERSION  ADDRESS    \n\
                           master01  master  3.9.5    127.0.0.1  \n\
                           worker1   worker  3.9.5    127.0.0.1  \n";

/// Runs the client with `args` (naming `root`'s socket) against a fake node replaying the
/// recorded call `title` of `file`; checks that it succeeds and that it sent exactly what
/// upstream's client sent. Answers its stdout, the frames it sent and the recorded frames.
fn replay_call(
    root: &Path,
    (file, title): (&str, &str),
    args: &[&str],
) -> (String, Vec<Seen>, Vec<Value>) {
    let frames = recorded_frames(file, title);
    let node = fake_node(&socket_of(root), vec![Script::Replay(frames.clone())]);
    let output = wazuh_cluster(args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let seen = node.join().unwrap();
    assert_eq!(
        commands_and_payloads(&seen),
        recorded_client_frames(&frames)
    );
    (stdout(&output), seen, frames)
}

#[test]
fn list_nodes_from_a_master_prints_upstreams_table() {
    let root = install_root("l-master");
    let call = ("v3.9/dapi_via_master.json", "control.get_nodes()");
    let args = ["control", "-l", "--wazuh-path", root.to_str().unwrap()];
    let (stdout, _, _) = replay_call(&root, call, &args);
    assert_eq!(stdout, NODES_TABLE);
}

#[test]
fn list_nodes_from_a_worker_waits_for_control_res_and_acknowledges_it() {
    let root = install_root("l-worker");
    let socket = socket_of(&root);
    let call = ("v3.9/dapi_via_worker.json", "control.get_nodes()");
    let args = [
        "control",
        "--list-nodes",
        "--socket",
        socket.to_str().unwrap(),
    ];
    // get_nodes, then `ok` `Response received` to the control_res request, as upstream's client.
    let (stdout, seen, frames) = replay_call(&root, call, &args);
    assert_eq!(stdout, NODES_TABLE);
    assert_eq!(seen[1].command, "ok");
    assert_eq!(seen[1].payload, "Response received");
    assert_eq!(
        u64::from(seen[1].counter),
        frames[2]["counter"].as_u64().unwrap()
    );
}

#[test]
fn health_from_a_worker_prints_upstreams_summary_with_the_ossec_conf_name() {
    let root = install_root("i-worker");
    install_recorded_ossec_conf(&root, "worker_tree");
    let call = ("v3.9/dapi_via_worker.json", "control.get_health()");
    let args = ["control", "-i", "--wazuh-path", root.to_str().unwrap()];
    let (stdout, _, _) = replay_call(&root, call, &args);
    assert_eq!(
        stdout,
        "Cluster name: wazuh\n\
         \n\
         Last completed synchronization for connected nodes (1):\n    \
         worker1 (127.0.0.1): Integrity: 2026-11-26 08:48:49.479029 | Agents-info: 2026-11-26 \
         08:48:48.446403 | Agent-groups: 2026-11-26 08:48:43.473357 | Last keep alive: 2026-11-26 \
         08:48:48.424182.\n\
         \n"
    );
}

#[test]
fn health_more_from_a_master_with_the_name_asked_from_the_node() {
    let root = install_root("i-more");
    let frames = recorded_frames("v3.9/dapi_via_master.json", "control.get_health()");
    // get_config is not in the recordings: answered with upstream's shape of the cluster config.
    let config = r#"{"name": "prod-cluster", "node_name": "master01", "node_type": "master", "key": "wazuh395interopkey0123456789abcd", "port": 15395, "bind_addr": "127.0.0.1", "nodes": ["127.0.0.1"], "hidden": "no", "disabled": false}"#;
    let node = fake_node(
        &socket_of(&root),
        vec![
            Script::Answer("ok", config.to_owned()),
            Script::Replay(frames.clone()),
        ],
    );
    let socket = socket_of(&root);
    let output = wazuh_cluster(&[
        "control",
        "-i",
        "more",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "Cluster name: prod-cluster\n\nConnected nodes (1):\n\n    master01 (127.0.0.1)\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "\n    worker1 (127.0.0.1)\n        Version: 3.9.5\n        Type: worker\n        Active agents: 3\n        Status:\n"
    ));
    assert!(
        text.ends_with("                Permission to synchronize: True.\n\n"),
        "{text}"
    );
    let seen = node.join().unwrap();
    assert_eq!(seen[0].command, "get_config");
    assert_eq!(seen[0].payload, "");
    assert_eq!(
        commands_and_payloads(&seen[1..]),
        recorded_client_frames(&frames)
    );
}

#[test]
fn a_missing_socket_says_the_node_is_not_running() {
    let root = install_root("missing");
    let output = wazuh_cluster(&["control", "-l", "--wazuh-path", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "wazuh-cluster control: is the node running? no socket at {} (No such file or \
             directory (os error 2))\n",
            socket_of(&root).display()
        )
    );
}

/// Runs `control -l` against a fake node playing `script` in a fresh root called `name`, checks
/// that it fails with exit code 1, and answers what it printed on stderr.
fn list_nodes_failure(name: &str, script: Script) -> String {
    let root = install_root(name);
    let node = fake_node(&socket_of(&root), vec![script]);
    let output = wazuh_cluster(&["control", "-l", "--wazuh-path", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    node.join().unwrap();
    stderr(&output)
}

#[test]
fn an_error_answer_is_printed_and_fails() {
    let answer = Script::Answer("err", "Error 3012 - Cluster is not running".to_owned());
    assert_eq!(
        list_nodes_failure("err", answer),
        "wazuh-cluster control: Error: Error 3012 - Cluster is not running\n"
    );
}

#[test]
fn a_node_closing_without_answer_fails() {
    assert_eq!(
        list_nodes_failure("hang", Script::Hang),
        "wazuh-cluster control: the node closed the connection before answering\n"
    );
}

#[test]
fn an_answer_that_is_not_json_fails() {
    assert_eq!(
        list_nodes_failure("notjson", Script::Answer("ok", "not json".to_owned())),
        "wazuh-cluster control: unexpected answer from the node: expected ident at line 1 column \
         2 in \"not json\"\n"
    );
}

#[test]
fn an_action_is_required() {
    let output = wazuh_cluster(&["control"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--list-nodes"),
        "{}",
        stderr(&output)
    );
}

/// The debug line `control` logs before connecting, without its timestamp.
fn debug_line(root: &Path) -> String {
    format!(
        " wazuh-cluster: DEBUG: [Main] [Main] asking the node socket={} command=get_nodes\n",
        socket_of(root).display()
    )
}

#[test]
fn verbose_flag_and_rust_log_show_debug_lines_quiet_hides_them() {
    let root = install_root("verbose");
    let path = root.to_str().unwrap();
    let error_line = format!(
        "wazuh-cluster control: is the node running? no socket at {} (No such file or directory \
         (os error 2))\n",
        socket_of(&root).display()
    );
    for (args, rust_log) in [
        (vec!["control", "-l", "--wazuh-path", path, "-v"], None),
        (vec!["-v", "control", "-l", "--wazuh-path", path], None),
        (
            vec!["control", "-l", "--wazuh-path", path, "-q"],
            Some("debug"),
        ),
    ] {
        let output = wazuh_cluster_with_log(&args, rust_log);
        let text = stderr(&output);
        let (log, rest) = text.split_once('\n').expect("two lines");
        // "YYYY/MM/DD HH:MM:SS" then the line.
        assert_eq!(log.len(), 19 + debug_line(&root).len() - 1, "{text}");
        assert_eq!(format!("{}\n", &log[19..]), debug_line(&root));
        assert_eq!(rest, error_line, "{args:?}");
    }
    for (args, rust_log) in [
        (vec!["control", "-l", "--wazuh-path", path], None),
        (vec!["control", "-l", "--wazuh-path", path, "-q"], None),
        (
            vec!["control", "-l", "--wazuh-path", path, "-v"],
            Some("warn"),
        ),
    ] {
        let output = wazuh_cluster_with_log(&args, rust_log);
        assert_eq!(stderr(&output), error_line, "{args:?} {rust_log:?}");
    }
}
