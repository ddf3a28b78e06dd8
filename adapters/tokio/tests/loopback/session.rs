//! The recorded upstream 3.9.5 session (`vectors/v3.9/session`) over real sockets: the `hello`
//! byte for byte, then the whole recording from each side. A scripted peer plays the recorded
//! master's frames to our real worker (or the recorded worker's to our real master) over loopback
//! TCP with Fernet, on the recorded install trees: it answers our node's requests with the
//! recorded replies, sends the recorded requests in the recorded order, each after the cause the
//! recorded peer had seen (the master answers an integrity round after its `sync_i_w_m_e`; the
//! worker sends its extra-valid files after the master's package), substituting the task ids our
//! node gives. Our node must answer in kind: per flow the same commands in the same order, reply
//! command fields as recorded (`ok `, `ok-m `), payloads of the same shape (digits masked), the
//! same package members, and the recorded end state on disk (`check.json`).
//!
//! Time is real: the recorded intervals (worker: integrity 3 s, agent-info 4 s, keepalive 2 s;
//! master: recalculation 1 s) and the scripted worker's recorded send times are divided by
//! [`SPEED`], so the 24 s recording plays in about 6 s.
//!
//! Skipped, because this replay checks the synchronisation flows only: every DAPI frame and the
//! string transfers it uses, i.e. of the 122 frames of each direction, 18 —
//! worker → master: `dapi` ×2 (`/agents`, `/syscollector/:agent_id/os` from the worker's local
//! clients), `dapi_cluster` ×2 (`/cluster/nodes`, `/cluster/healthcheck`), `new_str`, `str_upd`,
//! `dapi_res` ×2 each (the worker's answer to the master's forwarded `dapi`), and its 8 `ok`
//! replies to the master's DAPI requests; master → worker: `dapi` ×2 (the `/syscollector` call
//! forwarded to `worker1`), `new_str`, `str_upd`, `dapi_res` ×2 each (DAPI answers to the worker's
//! `dapi`), and its 10 `ok` replies to the worker's DAPI requests. The control calls
//! (`get_nodes`, `get_health` ×2) are replayed: to our master as the worker's TCP requests, to our
//! worker through its local socket, which forwards them to the scripted master.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::mpsc;
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sim::recording::{
    self, Flow, LinkFrame, LocalCall, MASTER_NAME, Replies, Role, Turn, WORKER_NAME,
};
use wazuh_cluster_sim::tree::owned_stats;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeConfig, NodeType};
use wazuh_cluster_testkit::{cluster_fernet, cluster_key};
use wazuh_cluster_tokio::trees::{SampleFile, compare_integrity, write_tree};
use wazuh_cluster_tokio::{NodeSpec, wall_clock_now};

use crate::support::{Rt, name_of, on_both_runtimes, read_frame, write_frame};

on_both_runtimes!(
    our_master_answers_the_recorded_workers_hello_as_upstream_did,
    our_worker_says_hello_as_the_recorded_worker_did,
    a_scripted_upstream_master_replays_the_whole_session_to_our_worker,
    a_scripted_upstream_worker_replays_the_whole_session_to_our_master,
);

/// Longest a step waits on loopback, and the whole replay's deadline.
const PATIENCE: Duration = Duration::from_secs(20);

/// The recorded intervals and send times are divided by this.
const SPEED: u32 = 4;

/// The flows the replays compare (DAPI is left out, see the module docs).
const COMPARED: [Flow; 6] = [
    Flow::Hello,
    Flow::Keepalive,
    Flow::Integrity,
    Flow::ExtraValid,
    Flow::AgentInfo,
    Flow::Control,
];

fn node_config(node_type: NodeType, name: &str) -> NodeConfig {
    let mut config = NodeConfig::new(node_type, name, Some(cluster_key()), wall_clock_now());
    recording::recorded_intervals_divided(&mut config, SPEED);
    config
}

/// One of the recorded install trees written under `dir/<name>`, for a run starting now.
fn recorded_root(dir: &Path, name: &str, role: Role) -> PathBuf {
    let root = dir.join(name);
    let now = wazuh_cluster_tokio::unix_time_at(&wall_clock_now(), Instant::now());
    let files: Vec<SampleFile> = recording::recorded_tree(role, now)
        .unwrap()
        .into_iter()
        .map(|f| SampleFile {
            path: f.path,
            data: f.data,
            mode: f.mode,
            mtime: f.mtime,
        })
        .collect();
    write_tree(&root, &files).unwrap();
    root
}

fn first_frame(stream: &[u8]) -> (Frame, usize) {
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::copy_from_slice(stream);
    let before = input.len();
    let frame = decoder.decode(&mut input).unwrap().unwrap();
    (frame, before - input.len())
}

async fn our_master_answers_the_recorded_workers_hello_as_upstream_did(rt: Rt) {
    let w2m = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let m2w = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_m2w.bin");
    let (hello, hello_len) = first_frame(&w2m);
    let (answer, _) = first_frame(&m2w);
    assert_eq!(hello.command.as_bytes(), b"hello");

    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new(node_config(NodeType::Master, MASTER_NAME), dir.path());
    spec.listen = Some("127.0.0.1:0".to_owned());
    let master = rt.start(spec).await.unwrap();
    let mut stream = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    // The recorded bytes, as the real worker sent them.
    stream.write_all(&w2m[..hello_len]).await.unwrap();
    let (counter, literal, token) = tokio::time::timeout(PATIENCE, read_frame(&mut stream))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(counter, hello.counter);
    assert_eq!(literal.as_bytes(), answer.command.as_bytes());
    assert_eq!(
        cluster_fernet().decrypt(&token).unwrap(),
        cluster_fernet().decrypt(&answer.payload).unwrap()
    );
    master.stop().await.unwrap();
}

async fn our_worker_says_hello_as_the_recorded_worker_did(rt: Rt) {
    let hello = recording::recorded_stream(Role::Worker).unwrap().remove(0);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(NodeType::Worker, WORKER_NAME);
    config.master_addr = listener.local_addr().unwrap().to_string();
    let worker = rt.start(NodeSpec::new(config, dir.path())).await.unwrap();
    let (mut stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (_, literal, token) = tokio::time::timeout(PATIENCE, read_frame(&mut stream))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        (literal.as_str(), hello.literal.as_str()),
        ("hello", "hello")
    );
    assert_eq!(cluster_fernet().decrypt(&token).unwrap(), hello.payload);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.stop().await.unwrap();
}

/// A stand-in for one recorded node over one real connection. Everything it sends and
/// receives is kept, in order, as the link our node's side is judged on.
struct Scripted {
    role: Role,
    fernet: Fernet,
    writer: OwnedWriteHalf,
    /// Decrypted frames from our node, read by a task of their own (a read is not cancel-safe
    /// inside `select!`).
    incoming: mpsc::UnboundedReceiver<(u32, String, Vec<u8>)>,
    replies: Replies,
    start: Instant,
    link: Vec<LinkFrame>,
}

impl Scripted {
    fn new(role: Role, stream: TcpStream, recorded: &[LinkFrame]) -> Scripted {
        let (mut reader, writer) = stream.into_split();
        let (tx, incoming) = mpsc::unbounded_channel();
        let fernet = cluster_fernet();
        let opener = fernet.clone();
        tokio::spawn(async move {
            while let Ok((counter, literal, token)) = read_frame(&mut reader).await {
                let plain = opener.decrypt(&token).expect("our node's token decrypts");
                if tx.send((counter, literal, plain)).is_err() {
                    break;
                }
            }
        });
        Scripted {
            role,
            fernet,
            writer,
            incoming,
            replies: Replies::recorded(role, recorded),
            start: Instant::now(),
            link: Vec::new(),
        }
    }

    fn keep(&mut self, by: Role, counter: u32, literal: &str, payload: Vec<u8>) {
        self.link.push(LinkFrame {
            at: self.start.elapsed(),
            by,
            counter,
            command: name_of(literal),
            literal: literal.to_owned(),
            payload,
        });
    }

    async fn send(&mut self, counter: u32, literal: &str, plain: &[u8]) {
        self.keep(self.role, counter, literal, plain.to_vec());
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let iv = [counter.to_be_bytes(), [7; 4], [7; 4], [7; 4]].concat();
        let token = self.fernet.encrypt(plain, iv.try_into().unwrap(), unix);
        write_frame(&mut self.writer, counter, literal, &token).await;
    }

    /// What has been answered so far against `goal`, and the link's last frames: the message of
    /// a replay that did not finish.
    fn progress(&self, goal: &BTreeMap<Flow, usize>) -> String {
        let got = recording::answered(&self.link);
        let tail: Vec<String> = self
            .link
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(|f| format!("{:?} {} {}", f.by, f.literal, recording::shape(&f.payload)))
            .collect();
        format!(
            "answered {got:?}\nwanted {goal:?}\nlast frames:\n  {}",
            tail.join("\n  ")
        )
    }

    /// Plays `turns` (at their recorded times divided by [`SPEED`] when `paced`) and answers our
    /// node, until every turn is done and our node has had, per flow, at least as many requests
    /// answered as `goal` says.
    async fn play(&mut self, turns: Vec<Turn>, paced: bool, goal: &BTreeMap<Flow, usize>) {
        let deadline = Instant::now() + PATIENCE;
        let mut turns = turns.into_iter().peekable();
        // The turn being sent and the replies it got so far.
        let mut current: Option<(Turn, Vec<Vec<u8>>)> = None;
        let mut awaiting: Option<u32> = None;
        // Round-ending requests of our node seen so far, by command.
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            let mut wake = deadline;
            if current.is_none()
                && let Some(next) = turns.peek()
            {
                let caused = next
                    .after
                    .as_ref()
                    .is_none_or(|(cmd, n)| ends.get(cmd).copied().unwrap_or(0) >= *n);
                let due = self.start + next.at / SPEED;
                if caused && (!paced || Instant::now() >= due) {
                    current = turns.next().map(|t| (t, Vec::new()));
                } else if caused {
                    wake = due;
                }
            }
            if awaiting.is_none()
                && let Some((turn, ours)) = &current
            {
                let i = ours.len();
                let frame = &turn.frames[i];
                let payload = turn.payload(i, ours);
                let (counter, literal) = (frame.counter, frame.literal.clone());
                self.send(counter, &literal, &payload).await;
                awaiting = Some(counter);
            }
            let reached = COMPARED
                .iter()
                .all(|f| recording::answered(&self.link).get(f) >= goal.get(f));
            if current.is_none() && turns.peek().is_none() && reached {
                return;
            }
            let message = tokio::select! {
                m = self.incoming.recv() => m,
                () = tokio::time::sleep_until(wake.into()) => {
                    assert!(Instant::now() < deadline, "replay unfinished after {PATIENCE:?}\n{}", self.progress(goal));
                    continue;
                }
            };
            let Some((counter, literal, payload)) = message else {
                panic!("our node closed the connection\n{}", self.progress(goal));
            };
            let command = name_of(&literal);
            self.keep(self.role.other(), counter, &literal, payload.clone());
            if recording::is_reply(&command) {
                assert_eq!(awaiting, Some(counter), "a reply to no request of ours");
                awaiting = None;
                if let Some((turn, ours)) = &mut current {
                    ours.push(payload);
                    if ours.len() == turn.frames.len() {
                        current = None;
                    }
                }
            } else {
                if recording::ends_round(&command) {
                    *ends.entry(command.clone()).or_default() += 1;
                }
                let Some((rliteral, rplain)) = self.replies.answer(&command) else {
                    panic!("our node sent {command}, which the recorded peer never answered");
                };
                self.send(counter, &rliteral, &rplain).await;
            }
        }
    }
}

/// How many requests of each compared flow the recorded link answered.
fn goal(recorded: &[LinkFrame]) -> BTreeMap<Flow, usize> {
    let mut goal = recording::answered(recorded);
    goal.retain(|f, _| COMPARED.contains(f));
    goal
}

/// Our side answered in kind: per compared flow, the recorded rounds (commands in order, literal
/// reply fields, payload shapes) are the first rounds of ours; the packages of our node have
/// the recorded members and control data.
fn assert_in_kind(ours: &[LinkFrame], recorded: &[LinkFrame], our_role: Role) {
    let (a, b) = (recording::exchanges(ours), recording::exchanges(recorded));
    for flow in COMPARED {
        let ours = recording::rounds(a.get(&flow).map_or(&[][..], Vec::as_slice));
        let theirs = recording::rounds(b.get(&flow).map_or(&[][..], Vec::as_slice));
        assert!(
            ours.len() >= theirs.len() && ours[..theirs.len()] == theirs[..],
            "{flow:?}: ours\n  {}\nrecorded\n  {}",
            recording::dump(&ours),
            recording::dump(&theirs)
        );
    }
    // Across flows only what is causal (which timer fires first is the clock's business; the
    // simulator checks the recorded interleaving on virtual time): `hello` comes first, and the
    // extra-valid files go back after the master's package.
    let flows = recording::request_flows(ours);
    let first = |flow: Flow, command: &str| {
        ours.iter()
            .zip(&flows)
            .position(|(f, x)| *x == Some(flow) && f.command == command)
    };
    assert_eq!(first(Flow::Hello, "hello"), Some(0));
    let package = first(Flow::Integrity, "sync_m_c_e").unwrap();
    assert!(package < first(Flow::ExtraValid, "sync_e_w_m_p").unwrap());
    assert!(!a.contains_key(&Flow::Dapi) && !a.contains_key(&Flow::Other));

    let (a, b) = (
        recording::packages(ours).unwrap(),
        recording::packages(recorded).unwrap(),
    );
    let mine = |p: &BTreeMap<(Role, Flow), _>| -> Vec<(Role, Flow)> {
        p.keys().filter(|k| k.0 == our_role).copied().collect()
    };
    assert_eq!(mine(&a), mine(&b));
    for key in mine(&b) {
        let (ours, theirs) = (&a[&key], &b[&key]);
        assert!(ours.len() >= theirs.len(), "{key:?}");
        assert_eq!(ours[..theirs.len()], theirs[..], "{key:?}");
    }
}

/// A local client making the recorded `control.*` calls on `socket` at their recorded times:
/// each of our node's frames must be the recorded one (command and payload), the client's are
/// sent as recorded.
async fn local_client(socket: PathBuf, calls: Vec<LocalCall>, start: Instant) {
    for call in calls {
        tokio::time::sleep_until((start + call.at / SPEED).into()).await;
        let mut s = UnixStream::connect(&socket).await.unwrap();
        // The node's request counters, by the recorded ones (the client replies with them).
        let mut counters: BTreeMap<u32, u32> = BTreeMap::new();
        for f in &call.frames {
            if f.from_client {
                let counter = counters.get(&f.counter).copied().unwrap_or(f.counter);
                write_frame(&mut s, counter, &f.command, &f.payload).await;
                continue;
            }
            let (counter, literal, payload) = tokio::time::timeout(PATIENCE, read_frame(&mut s))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (name_of(&literal), String::from_utf8_lossy(&payload)),
                (f.command.clone(), String::from_utf8_lossy(&f.payload)),
                "{}",
                call.title
            );
            if recording::is_reply(&f.command) {
                assert_eq!(counter, f.counter, "{}", call.title);
            } else {
                counters.insert(f.counter, counter);
            }
        }
    }
}

/// The scripted upstream master against our worker, the whole recording: hello, keepalives,
/// seven integrity rounds (the first answered with the recorded package, then `sync_m_c_ok`),
/// the extra-valid files sent back, five agent-info rounds, and three control calls from a local
/// client forwarded by our worker; then our worker's tree holds the master's files as
/// check.json recorded.
async fn a_scripted_upstream_master_replays_the_whole_session_to_our_worker(rt: Rt) {
    let recorded = recording::recorded_link(Role::Master).unwrap();
    let check = recording::recorded_check().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mroot = recorded_root(dir.path(), "m", Role::Master);
    let wroot = recorded_root(dir.path(), "w", Role::Worker);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = node_config(NodeType::Worker, WORKER_NAME);
    config.master_addr = listener.local_addr().unwrap().to_string();
    let items = config.items.clone();
    let compare = || {
        let now = Timestamp::from_secs(recording::TREES_START as i64);
        compare_integrity(&mroot, &wroot, &items, MASTER_NAME, now).unwrap()
    };
    // README (master's compare_files): missing 4, shared 4 (3 plain files + the merged one).
    let before = compare();
    assert_eq!((before.missing.len(), before.different.len()), (4, 4));

    let worker = rt.start(NodeSpec::new(config, &wroot)).await.unwrap();
    let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut master = Scripted::new(Role::Master, stream, &recorded);
    let calls = recording::local_control_calls(Role::Worker).unwrap();
    let client = tokio::spawn(local_client(
        NodeSpec::default_local_socket(&wroot),
        calls,
        master.start,
    ));
    master
        .play(
            recording::script(Role::Master, &recorded),
            false,
            &goal(&recorded),
        )
        .await;
    client.await.unwrap();
    assert_in_kind(&master.link, &recorded, Role::Worker);
    drop(master);
    worker.stop().await.unwrap();

    // check.json, the worker's side: every master integrity file present and equal (the 11 of
    // the master's tree before the run, plus agent-groups/004 the master got from the worker:
    // 12), agent-groups, `oldgroup` removed from etc/shared.
    let after = compare();
    assert_eq!(
        (&after.missing, &after.different),
        (&check.missing_on_worker, &check.different)
    );
    let disk = FsStorage::new(&wroot).unwrap();
    assert_eq!(
        owned_stats(&disk, &items, NodeType::Master).len(),
        check.worker_files
    );
    assert_eq!(
        recording::agent_groups(&disk).unwrap(),
        check.worker_agent_groups
    );
    assert_eq!(
        recording::dir_names(&disk, "/etc/shared").unwrap(),
        check.worker_dirs_etc_shared
    );
}

/// The scripted upstream worker against our master, the whole recording at the recorded pace:
/// hello, keepalives, seven integrity rounds with the recorded packages, the extra-valid
/// agent-groups file, five agent-info rounds (with the unknown `ghost` agent), `get_nodes` and
/// `get_health` ×2; our master answers in kind, sends one package then `sync_m_c_ok`, and ends
/// with check.json's master state.
async fn a_scripted_upstream_worker_replays_the_whole_session_to_our_master(rt: Rt) {
    let recorded = recording::recorded_link(Role::Worker).unwrap();
    let check = recording::recorded_check().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mroot = recorded_root(dir.path(), "m", Role::Master);
    let mut config = node_config(NodeType::Master, MASTER_NAME);
    // The recorded worker starts its second integrity round 0.74 s (recorded pace ÷ SPEED) after
    // its extra-valid files; our master must have rescanned by then, or it compares against a
    // tree without them. Recalculating every 50 ms instead of 250 ms gives a loaded machine
    // 14 chances instead of 2; it sends nothing, so the frames compared do not change.
    config.items.intervals.master.recalculate_integrity = Duration::from_millis(50);
    let items = config.items.clone();
    let mut spec = NodeSpec::new(config, &mroot);
    spec.listen = Some("127.0.0.1:0".to_owned());
    let master = rt.start(spec).await.unwrap();
    let stream = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    let mut worker = Scripted::new(Role::Worker, stream, &recorded);
    worker
        .play(
            recording::script(Role::Worker, &recorded),
            true,
            &goal(&recorded),
        )
        .await;
    assert_in_kind(&worker.link, &recorded, Role::Master);

    let routes = master.inspect(|node, _| node.agent_routes()).await.unwrap();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(a, w)| (a.as_str(), w.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("agent-four", "worker1"),
            ("agent-one", "worker1"),
            ("agent-two", "worker1")
        ]
    );
    drop(worker);
    master.stop().await.unwrap();

    // check.json, the master's side: 12 integrity files (agent-groups/004 added), the three known
    // agents' agent-info with the recorded sizes and the mtimes the recorded package carried
    // (no ghost), agent-groups.
    let disk = FsStorage::new(&mroot).unwrap();
    assert_eq!(
        owned_stats(&disk, &items, NodeType::Master).len(),
        check.master_files
    );
    assert_eq!(
        recording::agent_info(&disk).unwrap(),
        check.master_agent_info
    );
    assert_eq!(
        recording::agent_groups(&disk).unwrap(),
        check.master_agent_groups
    );
}
