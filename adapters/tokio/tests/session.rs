//! The recorded upstream 3.9.5 session over real sockets. First the `hello` exchange byte for
//! byte; then the first integrity round from each side: a scripted peer plays the recorded
//! master's (or worker's) frames to our real worker (or master) over loopback TCP, on the
//! recorded install trees, substituting the counters, task ids and file names that are chosen at
//! run time. Each side must answer in kind: the same commands in the same order, the same texts
//! (up to the digits of task ids and file names), and the same package members (Fernet IVs and
//! timestamps differ by design).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{
    Command, DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, encode_frame,
};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeConfig, NodeEvent, NodeType, SyncKind};
use wazuh_cluster_tokio::trees::{SampleFile, write_tree};
use wazuh_cluster_tokio::{NodeSpec, start, wall_clock_now};

/// Longest a step waits on loopback.
const PATIENCE: Duration = Duration::from_secs(20);

fn tree(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// The recording's key and names (vectors/v3.9/session/README.md).
const RECORDED_KEY: &str = "wazuh395interopkey0123456789abcd";

fn first_frame(stream: &[u8]) -> (Frame, usize) {
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::copy_from_slice(stream);
    let before = input.len();
    let frame = decoder.decode(&mut input).unwrap().unwrap();
    (frame, before - input.len())
}

fn fernet() -> Fernet {
    Fernet::new(&ClusterKey::new(RECORDED_KEY).unwrap())
}

/// Reads one whole frame from `stream`.
async fn read_frame(stream: &mut TcpStream) -> Frame {
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut buf = BytesMut::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(frame) = decoder.decode_buf(&mut buf).unwrap() {
                return frame;
            }
            assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0, "closed");
        }
    })
    .await
    .unwrap()
}

fn node_config(node_type: NodeType, name: &str) -> NodeConfig {
    let key = ClusterKey::new(RECORDED_KEY).unwrap();
    NodeConfig::new(node_type, name, Some(key), wall_clock_now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_master_answers_the_recorded_workers_hello_as_upstream_did() {
    let w2m = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let m2w = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_m2w.bin");
    let (hello, hello_len) = first_frame(&w2m);
    let (answer, _) = first_frame(&m2w);
    assert_eq!(hello.command.as_bytes(), b"hello");

    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new(
        node_config(NodeType::Master, "master01"),
        tree(dir.path(), "m"),
    );
    spec.listen = Some("127.0.0.1:0".to_owned());
    let master = start(spec).await.unwrap();
    let mut stream = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    // The recorded bytes, as the real worker sent them.
    stream.write_all(&w2m[..hello_len]).await.unwrap();
    let ours = read_frame(&mut stream).await;

    assert_eq!(ours.counter, hello.counter);
    assert_eq!(ours.command.as_bytes(), answer.command.as_bytes());
    assert_eq!(
        fernet().decrypt(&ours.payload).unwrap(),
        fernet().decrypt(&answer.payload).unwrap()
    );
    master.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_says_hello_as_the_recorded_worker_did() {
    let w2m = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let (hello, _) = first_frame(&w2m);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(NodeType::Worker, "worker1");
    config.master_addr = listener.local_addr().unwrap().to_string();
    let worker = start(NodeSpec::new(config, tree(dir.path(), "w")))
        .await
        .unwrap();
    let (mut stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let ours = read_frame(&mut stream).await;

    assert_eq!(ours.command.as_bytes(), b"hello");
    assert_eq!(
        fernet().decrypt(&ours.payload).unwrap(),
        fernet().decrypt(&hello.payload).unwrap()
    );
    drop(stream);
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.stop().await.unwrap();
}

/// One decrypted frame of the recording: counter, command, plaintext.
type Plain = (u32, String, Vec<u8>);

/// Every frame of a recorded stream, decrypted.
fn recorded_stream(file: &str) -> Vec<Plain> {
    let bytes = wazuh_cluster_vectors::read(&format!("v3.9/session/raw/{file}"));
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = decoder.decode(&mut input).unwrap() {
        let plain = fernet().decrypt(&f.payload).unwrap();
        out.push((f.counter, command_of(&f), plain));
    }
    assert!(input.is_empty());
    out
}

/// The recorded connection, decrypted, with each side's recorded answers by request command.
struct Recording {
    w2m: Vec<Plain>,
    m2w: Vec<Plain>,
    master_answers: BTreeMap<String, (String, Vec<u8>)>,
    worker_answers: BTreeMap<String, (String, Vec<u8>)>,
}

fn recording() -> Recording {
    let w2m = recorded_stream("conn1_w2m.bin");
    let m2w = recorded_stream("conn1_m2w.bin");
    Recording {
        master_answers: recorded_replies(&w2m, &m2w),
        worker_answers: recorded_replies(&m2w, &w2m),
        w2m,
        m2w,
    }
}

fn command_of(frame: &Frame) -> String {
    String::from_utf8(frame.command.as_bytes().to_vec()).unwrap()
}

fn is_reply(command: &str) -> bool {
    command.starts_with("ok") || command == "err"
}

/// The recorded reply (command, plaintext) to each request of `requests`, by request command;
/// the first occurrence wins.
fn recorded_replies(requests: &[Plain], replies: &[Plain]) -> BTreeMap<String, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for (counter, cmd, _) in requests.iter().filter(|f| !is_reply(&f.1)) {
        if let Some((_, rcmd, rplain)) = replies
            .iter()
            .find(|(c, rc, _)| c == counter && is_reply(rc))
        {
            out.entry(cmd.clone())
                .or_insert_with(|| (rcmd.clone(), rplain.clone()));
        }
    }
    out
}

/// Digits replaced (task ids, times, random parts of file names), so shapes compare.
fn shape(text: &[u8]) -> String {
    let mut out = String::new();
    for ch in String::from_utf8_lossy(text).chars() {
        if ch.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Writes one of the recorded install trees (`master_tree` / `worker_tree`) under `root`.
fn recorded_tree(root: &std::path::Path, which: &str) {
    use base64::Engine as _;
    use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
    let trees = wazuh_cluster_vectors::json("v3.9/session/trees.json");
    let files: Vec<SampleFile> = trees[which]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| SampleFile {
            path: format!("/{}", e["path"].as_str().unwrap()),
            data: base64::engine::general_purpose::STANDARD
                .decode(e["content_b64"].as_str().unwrap())
                .unwrap(),
            mode: 0o660,
            mtime: timestamp_from_py_float(e["mtime"].as_f64().unwrap()),
        })
        .collect();
    write_tree(root, &files).unwrap();
}

/// The recorded intervals (README): the worker's first keepalive at 2 s, first integrity round
/// at 3 s.
fn with_recorded_intervals(mut config: NodeConfig) -> NodeConfig {
    let i = &mut config.items.intervals;
    i.worker.sync_integrity = Duration::from_secs(3);
    i.worker.sync_files = Duration::from_secs(4);
    i.worker.keep_alive = Duration::from_secs(2);
    i.worker.connection_retry = Duration::from_secs(2);
    i.master.recalculate_integrity = Duration::from_secs(1);
    i.master.check_worker_lastkeepalive = Duration::from_secs(5);
    i.master.max_allowed_time_without_keepalive = Duration::from_secs(30);
    config
}

/// A scripted peer over one real connection: it answers the node's requests with the recorded
/// replies and sends its own requests with fresh counters.
struct Scripted {
    stream: TcpStream,
    decoder: FrameDecoder,
    buf: BytesMut,
    /// Recorded reply to each request command of the node's role.
    answers: BTreeMap<String, (String, Vec<u8>)>,
    /// The node's requests, in order: command, plaintext.
    requests: Vec<(String, Vec<u8>)>,
    /// Counter of the scripted peer's last request.
    counter: u32,
}

impl Scripted {
    fn new(stream: TcpStream, answers: BTreeMap<String, (String, Vec<u8>)>) -> Scripted {
        Scripted {
            stream,
            decoder: FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD),
            buf: BytesMut::new(),
            answers,
            requests: Vec::new(),
            counter: 1_553_727_291,
        }
    }

    async fn send(&mut self, counter: u32, command: &str, plain: &[u8]) {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = fernet().encrypt(plain, [7; 16], unix);
        let mut out = BytesMut::new();
        let command = Command::new(Profile::V3_9, command.as_bytes()).unwrap();
        encode_frame(Profile::V3_9, counter, &command, &token, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(frame) = self.decoder.decode_buf(&mut self.buf).unwrap() {
                    return frame;
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert_ne!(n, 0, "closed");
            }
        })
        .await
        .unwrap()
    }

    /// Reads frames, answering the node's requests as recorded, until the node's request
    /// `command` has been answered; returns its plaintext.
    async fn until_request(&mut self, command: &str) -> Vec<u8> {
        loop {
            let frame = self.next().await;
            let cmd = command_of(&frame);
            assert!(!is_reply(&cmd), "unexpected reply {cmd}");
            let plain = fernet().decrypt(&frame.payload).unwrap();
            self.requests.push((cmd.clone(), plain.clone()));
            let Some((rcmd, rplain)) = self.answers.get(&cmd).cloned() else {
                panic!("{cmd} was never answered in the recording")
            };
            self.send(frame.counter, &rcmd, &rplain).await;
            if cmd == command {
                return plain;
            }
        }
    }

    /// Sends a request and returns the node's reply (command, plaintext), answering the node's
    /// own requests meanwhile.
    async fn request(&mut self, command: &str, plain: &[u8]) -> (String, Vec<u8>) {
        self.counter += 1;
        let counter = self.counter;
        self.send(counter, command, plain).await;
        loop {
            let frame = self.next().await;
            let cmd = command_of(&frame);
            let text = fernet().decrypt(&frame.payload).unwrap();
            if is_reply(&cmd) {
                assert_eq!(frame.counter, counter, "reply to {command}");
                return (cmd, text);
            }
            self.requests.push((cmd.clone(), text));
            let (rcmd, rplain) = self.answers.get(&cmd).cloned().unwrap();
            self.send(frame.counter, &rcmd, &rplain).await;
        }
    }
    /// Sends the recorded requests `frames` in order and returns the node's replies, each checked
    /// against `expected` (command, text up to digits). `task.0`'s reply is the task id that
    /// replaces the recorded one at the start of `task.1`'s payload.
    async fn replay(
        &mut self,
        frames: &[&Plain],
        task: (&str, &str),
        expected: &BTreeMap<String, (String, Vec<u8>)>,
    ) -> Vec<(String, Vec<u8>)> {
        let mut task_id = Vec::new();
        let mut replies = Vec::new();
        for (_, cmd, plain) in frames {
            let plain = if cmd == task.1 {
                let name = plain.splitn(2, |b| *b == b' ').nth(1).unwrap();
                [&task_id[..], b" ", name].concat()
            } else {
                plain.clone()
            };
            let (rcmd, rtext) = self.request(cmd, &plain).await;
            if cmd == task.0 {
                task_id = rtext.clone();
            }
            let (ecmd, etext) = &expected[cmd.as_str()];
            assert_eq!((&rcmd, shape(&rtext)), (ecmd, shape(etext)), "{cmd}");
            replies.push((rcmd, rtext));
        }
        replies
    }
}

/// The scripted real master against our worker, first integrity round: our worker's requests
/// come in the recorded order and shapes, it answers the recorded package with the recorded
/// texts, and its tree ends holding the master's integrity files (check.json: none missing or
/// different).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_plays_the_recorded_first_integrity_round() {
    let Recording {
        w2m,
        m2w,
        master_answers: answers,
        worker_answers,
    } = recording();

    let dir = tempfile::tempdir().unwrap();
    let (mroot, wroot) = (dir.path().join("m"), dir.path().join("w"));
    recorded_tree(&mroot, "master_tree");
    recorded_tree(&wroot, "worker_tree");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = with_recorded_intervals(node_config(NodeType::Worker, "worker1"));
    config.master_addr = listener.local_addr().unwrap().to_string();
    let items = config.items.clone();
    let before = wazuh_cluster_tokio::trees::compare_integrity(
        &mroot,
        &wroot,
        &items,
        "master01",
        Timestamp::from_secs(1_795_683_081),
    )
    .unwrap();
    // README (master's compare_files): missing 4, shared 4 (3 plain files + the merged one).
    assert_eq!((before.missing.len(), before.different.len()), (4, 4));
    let mut worker = start(NodeSpec::new(config, &wroot)).await.unwrap();
    let mut events = worker.events();
    let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut master = Scripted::new(stream, answers);

    let end = master.until_request("sync_i_w_m_e").await;
    let ours: Vec<&str> = master.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ours,
        [
            "hello",
            "echo-c",
            "sync_i_w_m_p",
            "sync_i_w_m",
            "new_file",
            "file_upd",
            "file_end",
            "sync_i_w_m_e"
        ]
    );
    let recorded_w: Vec<&Plain> = w2m.iter().take(8).collect();
    for ((cmd, plain), (_, rcmd, rplain)) in master.requests.iter().zip(&recorded_w) {
        assert_eq!(cmd, rcmd);
        if cmd != "file_upd" && cmd != "file_end" {
            assert_eq!(shape(plain), shape(rplain), "{cmd}");
        }
    }
    // The task id is the one the scripted master gave in its sync_i_w_m answer.
    let task = &master.answers["sync_i_w_m"].1;
    assert!(end.starts_with(task), "{}", String::from_utf8_lossy(&end));

    // The master's package, as recorded; the task id in sync_m_c_e is the one our worker gave.
    let sent: Vec<&Plain> = m2w
        .iter()
        .skip_while(|f| f.1 != "sync_m_c")
        .take(5)
        .collect();
    let replies = master
        .replay(&sent, ("sync_m_c", "sync_m_c_e"), &worker_answers)
        .await;
    let texts: Vec<String> = replies
        .iter()
        .map(|(rcmd, rtext)| format!("{rcmd} {}", shape(rtext)))
        .collect();
    // The task id our worker chose (digits), then the recorded texts.
    assert_eq!(
        texts,
        [
            "ok N",
            "ok Ready to receive new file",
            "ok File updated",
            "ok File received correctly",
            "ok File correctly received"
        ]
    );

    // The package is applied: the worker's tree holds the master's integrity files.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.unwrap();
            if matches!(
                event,
                NodeEvent::SyncFinished {
                    kind: SyncKind::Integrity,
                    ..
                }
            ) {
                break;
            }
        }
    })
    .await
    .unwrap();
    let check = wazuh_cluster_tokio::trees::compare_integrity(
        &mroot,
        &wroot,
        &items,
        "master01",
        Timestamp::from_secs(1_795_683_081),
    );
    let expected = wazuh_cluster_vectors::json("v3.9/session/check.json");
    let check = check.unwrap();
    let names = |key: &str| -> Vec<String> {
        expected[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        (&check.missing, &check.different),
        (&names("missing_on_worker"), &names("different"))
    );
    // The master tree before the run: 11 master-owned files (check.json's 12 is the master's
    // tree at the end of the run, after upstream's own recalculations).
    assert_eq!(check.files, 11);
    drop(master);
    worker.stop().await.unwrap();
}

/// The member names of the package carried by the `file_upd` payloads of `requests` (each
/// payload is `<file name> <chunk>`).
fn package_members(requests: &[(String, Vec<u8>)]) -> Vec<String> {
    let zip: Vec<u8> = requests
        .iter()
        .filter(|r| r.0 == "file_upd")
        .flat_map(|r| {
            let space = r.1.iter().position(|b| *b == b' ').unwrap();
            r.1[space + 1..].to_vec()
        })
        .collect();
    let reader = PackageReader::open(std::io::Cursor::new(zip), PackageLimits::default()).unwrap();
    // Sorted: upstream writes members in its dict's order, which carries no meaning.
    let mut names: Vec<String> = reader
        .members()
        .iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    names.sort();
    names
}

/// The scripted real worker against our master, first integrity round: our master answers the
/// recorded worker's requests (hello, keepalive, the integrity flow with the recorded package)
/// with the recorded texts, then sends sync_m_c + one package + sync_m_c_e whose members are the
/// recorded package's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_master_plays_the_recorded_first_integrity_round() {
    let Recording {
        w2m,
        m2w,
        master_answers,
        worker_answers,
    } = recording();

    let dir = tempfile::tempdir().unwrap();
    let mroot = dir.path().join("m");
    recorded_tree(&mroot, "master_tree");
    let mut spec = NodeSpec::new(
        with_recorded_intervals(node_config(NodeType::Master, "master01")),
        &mroot,
    );
    spec.listen = Some("127.0.0.1:0".to_owned());
    let master = start(spec).await.unwrap();
    let stream = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    let mut worker = Scripted::new(stream, worker_answers);

    // The recorded worker's first integrity round; the task id in sync_i_w_m_e is the one our
    // master gave.
    let first: Vec<&Plain> = w2m.iter().take(8).collect();
    let replies = worker
        .replay(&first, ("sync_i_w_m", "sync_i_w_m_e"), &master_answers)
        .await;
    for ((_, cmd, _), (_, rtext)) in first.iter().zip(&replies) {
        if cmd != "sync_i_w_m" {
            assert_eq!(rtext, &master_answers[cmd.as_str()].1, "{cmd}");
        }
    }

    // Our master's package back, answered as the recorded worker did.
    worker.until_request("sync_m_c_e").await;
    let ours: Vec<&str> = worker.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ours,
        ["sync_m_c", "new_file", "file_upd", "file_end", "sync_m_c_e"]
    );
    let recorded: Vec<(String, Vec<u8>)> = m2w
        .iter()
        .skip_while(|f| f.1 != "sync_m_c")
        .take(5)
        .map(|f| (f.1.clone(), f.2.clone()))
        .collect();
    for ((cmd, plain), (_, rplain)) in worker.requests.iter().zip(&recorded) {
        if cmd != "file_upd" && cmd != "file_end" {
            assert_eq!(shape(plain), shape(rplain), "{cmd}");
        }
    }
    // The task id in sync_m_c_e is the one the scripted worker gave in its sync_m_c answer.
    let end = &worker.requests[4].1;
    assert!(end.starts_with(&worker.answers["sync_m_c"].1));
    let members = package_members(&worker.requests);
    assert_eq!(members, package_members(&recorded));
    assert_eq!(members.len(), 8);
    drop(worker);
    master.stop().await.unwrap();
}
