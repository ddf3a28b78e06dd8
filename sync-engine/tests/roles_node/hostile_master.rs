//! A hostile master against our worker (issue 12, point 9): a scripted master — a protocol
//! `Connection` on the server side, answering and sending whatever the case needs — drives our
//! worker `Node`. Each case asserts the exact refusal or error, the bound held (counted by the
//! test storage and the node's counters), and that nothing was written where it does not belong.
//!
//! Where each weakness of PROTOCOL.md §16 (profile 3.9) and each security default of DESIGN.md
//! is held, on this side and the other:
//!
//! | weakness | worker (here) | master / elsewhere |
//! |---|---|---|
//! | trusted payload length (4 GiB header) | `a_frame_declaring_4_gib…` | `hostile_worker::frames_before_hello…`, protocol `hardening` |
//! | partial header / split at header end | | protocol `pair::any_split_gives_the_same_events` |
//! | stalled payload | | `backpressure::a_first_frame_whose_payload_never_arrives`, tokio `limits` |
//! | `new_str` size unchecked | `lying_and_huge_sizes…` | protocol `hardening` |
//! | bad Fernet token | | protocol `exchange_vectors::wrong_key_*`, `backpressure::a_hello_under_another_cluster_key` |
//! | unknown command | `commands_a_worker_does_not_serve…` | protocol `exchange_vectors::a_claimed_command…` |
//! | unknown string/file id | `floods…`, `lying_and_huge_sizes…` | `hostile_worker::a_file_outside…` |
//! | file write path (`new_file`) | `files_outside_the_workers_directory…` | `hostile_worker::a_file_outside…` |
//! | sync package paths | `traversal_paths_in_the_package…` | integrity `hostile_packages` |
//! | decompressed size (bombs) | `a_member_over_its_limit…`, `packages_that_lie…` | integrity `merged_bombs`, `hostile_packages` |
//! | lying ZIP headers (sizes, CRC, local vs central) | `packages_that_lie…` | integrity `hostile_packages::deflate_bomb_lying…` |
//! | node name | | `hello::node_name_rule` |
//! | connections per IP | | tokio `limits::the_eleventh_connection…` |
//! | pre-hello commands | | `hello::nothing_but_hello…`, protocol `pair::before_hello…` |
//! | JSON deserialisation (CVE-2025-24016) | | `dapi` (plain serde types), `dapi_vectors` |
//! | key through `get_config` | | `dapi::get_config_never_gives_the_key_out` |
//! | files read for the peer (extra-valid) | `an_extra_valid_list…` | |
//! | orphans and quotas | `floods…`, `lying_and_huge_sizes…` | `orphans` |
//! | rounds never asked, never ending | `an_end_for_a_package_never_asked…`, `a_package_that_never_ends…` | `locks` |
//! | transfers never ending (silent, trickling) | `a_package_that_never_ends…`, `a_file_the_master_stops_sending…` | `budgets::greedy_links…`, tokio `limits` |
//! | descriptor starvation across links | (one link: the master's) | `budgets::greedy_links…`, `budgets::files_left_open…` |

use std::collections::{BTreeMap, VecDeque};
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, PeerError, Side, WallClock,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::roles::{
    EffectExecutor, Node, NodeConfig, NodeError, NodeEvent, NodeType, Origin, Output, PeerId,
    SendFailure, SyncError, SyncKind, sync_text,
};
use wazuh_cluster_testkit::cluster_key;

use super::support::*;

/// The commands the scripted master answers itself (what a 3.9.5 master serves a worker):
/// `hello` and each synchronisation's permission, task, end and error report.
fn master_commands() -> impl Iterator<Item = Command> {
    let syncs = ["i", "e", "a"].into_iter().flat_map(|kind| {
        ["_p", "", "_e", "_r"]
            .into_iter()
            .map(move |step| format!("sync_{kind}_w_m{step}"))
    });
    std::iter::once("hello".to_owned())
        .chain(syncs)
        .map(|name| Command::new(Profile::V3_9, name.as_bytes()).unwrap())
}

/// Our worker `worker1` and the scripted master it dialled.
struct HostileMaster {
    now: Instant,
    node: Node,
    exec: EffectExecutor<MemoryStorage>,
    /// The master's end of the link, once dialled.
    link: Option<(PeerId, Connection)>,
    /// Requests of the worker the case has not answered: (counter, command, payload).
    requests: VecDeque<(u32, String, Bytes)>,
    /// Replies the worker sent to the master's requests, by counter.
    replies: BTreeMap<u32, (String, Bytes)>,
    events: Vec<NodeEvent>,
    /// The master connection's other events (its own transfers'), in order.
    transfer_events: VecDeque<Event>,
    /// The worker closed the link.
    closed: bool,
}

impl HostileMaster {
    /// A worker with `config`'s limits on an empty tree, connected and accepted.
    fn new(config: NodeConfig) -> Self {
        let now = config.connection.wall_clock.instant;
        let exec = EffectExecutor::new(empty_storage(unix0()), &config);
        let node = Node::new(config, 11, now);
        let mut h = HostileMaster {
            now,
            node,
            exec,
            link: None,
            requests: VecDeque::new(),
            replies: BTreeMap::new(),
            events: Vec::new(),
            transfer_events: VecDeque::new(),
            closed: false,
        };
        h.pump();
        let (counter, command, _) = h.requests.pop_front().expect("the worker says hello");
        assert_eq!(command, "hello");
        // As a master registering the worker: the link now takes its other commands.
        let now = h.now;
        h.master_conn().set_authenticated(now);
        h.reply(counter, true, b"Client worker1 added");
        assert!(h.node.master_link().is_some(), "the worker is accepted");
        h.events.clear();
        h
    }

    fn worker1() -> Self {
        let t0 = origin();
        HostileMaster::new(config(NodeType::Worker, "worker1", t0))
    }

    /// `worker1` whose packages may carry members of `bytes` at most.
    fn with_member_limit(bytes: u64) -> Self {
        let t0 = origin();
        let mut config = config(NodeType::Worker, "worker1", t0);
        config.limits.package.max_member_size = bytes;
        HostileMaster::new(config)
    }

    fn master_conn(&mut self) -> &mut Connection {
        &mut self.link.as_mut().expect("connected").1
    }

    /// Moves bytes both ways and runs effects until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.node.poll_output() {
                moved = true;
                match out {
                    Output::Connect { peer, .. } => {
                        let mut config = ConnectionConfig::new(
                            Profile::V3_9,
                            Some(cluster_key()),
                            WallClock::new(self.now, UNIX0),
                        );
                        config.keep_alive = Duration::from_secs(1_000_000);
                        config.claimed_commands = master_commands().collect();
                        let conn =
                            Connection::new(config, Side::Server, Rng::from_seed(5), self.now);
                        self.link = Some((peer, conn));
                        self.node.handle_connected(
                            self.now,
                            peer,
                            "10.0.0.1:1516",
                            Origin::Outgoing,
                        );
                    }
                    Output::Transmit { peer, bytes } => {
                        self.node.handle_written(self.now, peer, bytes.len());
                        if let Some((_, c)) = self.link.as_mut() {
                            c.handle_input(self.now, &bytes);
                        }
                    }
                    Output::Effect { id, effect } => {
                        let unix = self.node.unix_time(self.now);
                        self.exec.storage_mut().set_now(unix);
                        let result = self.exec.execute(&effect, unix);
                        self.node.handle_effect_done(self.now, id, result);
                    }
                    Output::Close { .. } => {
                        self.link = None;
                        self.closed = true;
                    }
                    Output::Event(e) => self.events.push(e),
                    Output::ApiCall { id, call } => {
                        let unix = self.node.unix_time(self.now);
                        let answer = self.exec.run_api_call(&call, unix);
                        self.node.handle_api_done(self.now, id, answer);
                    }
                }
            }
            if let Some((peer, c)) = self.link.as_mut() {
                let peer = *peer;
                while let Some(bytes) = c.poll_transmit() {
                    moved = true;
                    self.node.handle_input(self.now, peer, &bytes);
                }
                while let Some(event) = c.poll_event() {
                    match event {
                        Event::Request {
                            counter,
                            command,
                            payload,
                        } => {
                            let name = String::from_utf8_lossy(command.name()).into_owned();
                            self.requests.push_back((counter, name, payload));
                        }
                        Event::Response { counter, reply, .. } => {
                            let answer = match reply {
                                Reply::Ok(p) => ("ok".to_owned(), p),
                                Reply::Err(p) => ("err".to_owned(), p),
                                other => ("other".to_owned(), other.payload().clone()),
                            };
                            self.replies.insert(counter, answer);
                        }
                        other => self.transfer_events.push_back(other),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Lets `d` pass, firing the worker's and the master connection's timers on the way.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = self
                .node
                .poll_timeout()
                .into_iter()
                .chain(self.link.as_ref().and_then(|(_, c)| c.poll_timeout()))
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.node.handle_timeout(self.now);
                    if let Some((_, c)) = self.link.as_mut() {
                        c.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// The master answers the worker's request `counter`.
    fn reply(&mut self, counter: u32, ok: bool, payload: &[u8]) {
        let now = self.now;
        let command = if ok { Command::OK } else { Command::ERR };
        self.master_conn()
            .reply(now, counter, command, payload)
            .unwrap();
        self.pump();
    }

    /// The master sends `command` and returns the worker's reply.
    fn ask(&mut self, command: &str, payload: &[u8]) -> (String, Bytes) {
        let now = self.now;
        let cmd = Command::new(Profile::V3_9, command.as_bytes()).unwrap();
        let counter = self.master_conn().send_request(now, cmd, payload).unwrap();
        self.pump();
        self.replies
            .remove(&counter)
            .unwrap_or_else(|| panic!("no reply to {command}"))
    }

    /// The master sends `data` as file `path` and returns how it ended: `Ok` when the worker
    /// confirmed it, else why not.
    fn send_file(&mut self, path: &str, data: &[u8]) -> Result<(), String> {
        let now = self.now;
        push_file(self, now, path, data)
    }

    /// Sends `zip` as the master's integrity package: `sync_m_c` → task, the file,
    /// `sync_m_c_e <task> <path>`; the reply to the end.
    fn send_package(&mut self, zip: &[u8]) -> (String, Bytes) {
        let (reply, task) = self.ask("sync_m_c", b"");
        assert_eq!(reply, "ok");
        let path = "/queue/cluster/worker1/worker1-1795682923.4069414-1.zip";
        self.send_file(path, zip).expect("the package goes through");
        let end = format!("{} {path}", String::from_utf8_lossy(&task));
        self.ask("sync_m_c_e", end.as_bytes())
    }

    /// The worker's integrity failures reported since the last call.
    fn integrity_failures(&mut self) -> Vec<SyncError> {
        std::mem::take(&mut self.events)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::SyncFailed {
                    kind: SyncKind::Integrity,
                    error,
                    ..
                } => Some(error),
                _ => None,
            })
            .collect()
    }

    /// [`HostileMaster::integrity_failures`] as their texts.
    fn integrity_failure_texts(&mut self) -> Vec<String> {
        let failures = self.integrity_failures();
        failures.iter().map(SyncError::to_string).collect()
    }

    /// Every file of the worker's storage, but its own directory under `queue/cluster`.
    fn tree(&self) -> BTreeMap<InstallPath, Vec<u8>> {
        let mut files = self.exec.storage().files();
        files.retain(|p, _| !p.as_str().starts_with("/queue/cluster/"));
        files
    }
}

impl FileSender for HostileMaster {
    fn pump(&mut self) {
        HostileMaster::pump(self);
    }

    fn sender(&mut self) -> Option<&mut Connection> {
        self.link.as_mut().map(|(_, c)| c)
    }

    fn next_event(&mut self) -> Option<Event> {
        self.transfer_events.pop_front()
    }
}

/// A package of stored members named as given (any name, `..` included) and `control`.
fn raw_package(members: &[(&str, &[u8])], control: &[u8]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in members {
        zip.start_file(*name, stored).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("cluster_control.json", stored).unwrap();
    zip.write_all(control).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A master→worker `cluster_control.json` with `shared` entries (path → item key).
fn plan_json(shared: &[(&str, &str)], extra_valid: &[&str]) -> String {
    let entry = |key: &str| {
        format!(
            r#"{{"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "{key}", "merged": false, "md5": "00000000000000000000000000000000"}}"#
        )
    };
    let shared: Vec<String> = shared
        .iter()
        .map(|(p, k)| format!(r#""{p}": {}"#, entry(k)))
        .collect();
    let extra_valid: Vec<String> = extra_valid
        .iter()
        .map(|p| format!(r#""{p}": {}"#, entry("/queue/agent-groups/")))
        .collect();
    format!(
        r#"{{"missing": {{}}, "extra": {{}}, "shared": {{{}}}, "extra_valid": {{{}}}}}"#,
        shared.join(", "),
        extra_valid.join(", ")
    )
}

#[test]
fn an_end_for_a_package_never_asked_is_refused_and_applies_nothing() {
    let mut h = HostileMaster::worker1();
    let before = h.tree();
    // No `sync_m_c` came: upstream's unknown-task text, and nothing is read.
    assert_eq!(
        h.ask("sync_m_c_e", b"12345 /queue/cluster/worker1/worker1-1.zip"),
        err(sync_text::TASK_UNKNOWN)
    );
    assert_eq!(
        h.ask("sync_m_c_e", b"no-space"),
        err(sync_text::TASK_NOT_RECEIVED)
    );
    // A `sync_m_c_ok` for a round never started is thanked and changes nothing.
    assert_eq!(h.ask("sync_m_c_ok", b""), ok(sync_text::THANKS));
    assert_eq!(h.node.round_idle(SyncKind::Integrity), Some(true));
    assert_eq!(h.tree(), before);
    assert_eq!(h.node.effects_in_flight(), 0);
}

#[test]
fn files_outside_the_workers_directory_are_refused_before_a_byte_is_taken() {
    use wazuh_cluster_protocol::message::text::FILE_OUTSIDE_INBOX;
    let mut h = HostileMaster::worker1();
    let before = h.tree();
    for path in [
        "/etc/client.keys",
        "/queue/cluster/worker1/../../../etc/client.keys",
        "/queue/cluster/worker2/x.zip",
        "/queue/cluster/worker1/sub/x",
    ] {
        assert_eq!(
            h.ask("new_file", path.as_bytes()),
            ("err".to_owned(), Bytes::from_static(FILE_OUTSIDE_INBOX)),
            "{path}"
        );
    }
    assert_eq!(h.tree(), before);
    assert!(h.node.open_incoming_files().is_empty());
}

#[test]
fn traversal_paths_in_the_package_are_refused_and_nothing_is_written() {
    let mut h = HostileMaster::worker1();
    let before = h.tree();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        // A member that climbs out, named by the control file too.
        (
            "member",
            raw_package(
                &[("../../etc/evil", b"x")],
                plan_json(&[("/../../etc/evil", "/etc/")], &[]).as_bytes(),
            ),
            r#"package: member name "../../etc/evil" refused: DotComponent"#,
        ),
        // A control key outside its item's directory.
        (
            "outside item",
            raw_package(
                &[("var/ossec.conf", b"x")],
                plan_json(&[("/var/ossec.conf", "/etc/")], &[]).as_bytes(),
            ),
            r#"apply: path /var/ossec.conf (item "/etc/") refused: OutsideItem"#,
        ),
        // An absolute member name.
        (
            "absolute",
            raw_package(
                &[("/etc/client.keys", b"001 evil any k\n")],
                plan_json(&[("/etc/client.keys", "/etc/")], &[]).as_bytes(),
            ),
            r#"package: member name "/etc/client.keys" refused: Absolute"#,
        ),
    ];
    for (case, zip, refusal) in cases {
        assert_eq!(h.send_package(&zip), ok(sync_text::FILE_RECEIVED), "{case}");
        let failed = h.integrity_failure_texts();
        assert_eq!(
            failed,
            [format!("applying the master's package: {refusal}")],
            "{case}"
        );
        assert_eq!(h.tree(), before, "{case}");
        // The package is gone too.
        assert!(
            h.exec
                .storage()
                .files()
                .keys()
                .all(|p| !p.as_str().ends_with(".zip")),
            "{case}"
        );
    }
}

#[test]
fn a_malformed_control_file_fails_the_round_with_its_reason() {
    let mut h = HostileMaster::worker1();
    let before = h.tree();
    for control in [
        &b"{not json"[..],
        b"[]",
        br#"{"missing": {}}"#,
        b"{} trailing",
    ] {
        h.send_package(&raw_package(&[], control));
        let failed = h.integrity_failure_texts();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            failed[0].contains("metadata document is malformed"),
            "{failed:?}"
        );
        assert_eq!(h.tree(), before);
    }
}

#[test]
fn an_extra_valid_list_naming_files_outside_agent_groups_sends_none_of_them() {
    use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage};
    let mut h = HostileMaster::worker1();
    let attrs = FileAttrs {
        mode: 0o640,
        mtime: None,
    };
    let storage = h.exec.storage_mut();
    for dir in ["/etc", "/queue/agent-groups"] {
        storage.create_dir_all(&p(dir), 0o770).unwrap();
    }
    storage
        .write_atomic(
            &p("/etc/ossec.conf"),
            b"<ossec_config>SECRET</ossec_config>",
            &attrs,
        )
        .unwrap();
    storage
        .write_atomic(&p("/queue/agent-groups/001"), b"default\n", &attrs)
        .unwrap();
    // The master asks back the worker's ossec.conf beside an agent's group.
    let control = plan_json(&[], &["/etc/ossec.conf", "/queue/agent-groups/001"]);
    assert_eq!(
        h.send_package(&raw_package(&[], control.as_bytes())),
        ok(sync_text::FILE_RECEIVED)
    );
    assert!(h.events.contains(&NodeEvent::Error {
        peer: h.node.master_link(),
        error: NodeError::RefusedExtraValid {
            count: 1,
            first: "/etc/ossec.conf".into()
        }
    }));
    // The extra-valid round carries the group only.
    let mut sent = Vec::new();
    for _ in 0..3 {
        let (counter, command, _) = h.requests.pop_front().expect("the extra-valid round");
        match command.as_str() {
            "sync_e_w_m_p" => h.reply(counter, true, b"True"),
            "sync_e_w_m" => h.reply(counter, true, b"77"),
            "sync_e_w_m_e" => h.reply(counter, true, b"File correctly received"),
            other => panic!("unexpected {other}"),
        }
        while let Some(event) = h.transfer_events.pop_front() {
            if let Event::FileChunk { data, .. } = event {
                sent.extend_from_slice(&data);
            }
        }
    }
    let text = String::from_utf8_lossy(&sent);
    assert!(text.contains("default"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[test]
fn lying_and_huge_sizes_in_transfers_are_refused_and_leave_nothing() {
    use wazuh_cluster_protocol::connection::InboxQuota;
    use wazuh_cluster_protocol::message::text::{FILE_CHECKSUM_MISMATCH, STRING_TOO_LARGE};
    let t0 = origin();
    let mut config = config(NodeType::Worker, "worker1", t0);
    config.limits.inbox_quota = InboxQuota {
        files: 4,
        bytes: 4_096,
    };
    let mut h = HostileMaster::new(config);
    // A long string declared far beyond the bound: refused before anything is reserved.
    assert_eq!(
        h.ask("new_str", b"1099511627776"),
        ("err".to_owned(), Bytes::from_static(STRING_TOO_LARGE))
    );
    // A file whose end announces another checksum than its bytes: refused, its staged write gone.
    let path = b"/queue/cluster/worker1/lying.zip";
    assert_eq!(h.ask("new_file", path), ok("Ready to receive new file"));
    assert_eq!(h.ask("file_upd", &[&path[..], b" data"].concat()).0, "ok");
    let end = [&path[..], b" ", &[0u8; 32]].concat();
    assert_eq!(
        h.ask("file_end", &end),
        ("err".to_owned(), Bytes::from_static(FILE_CHECKSUM_MISMATCH))
    );
    // A file bigger than the worker's directory may hold: dropped at the chunk that passes it.
    let big = b"/queue/cluster/worker1/big.zip";
    assert_eq!(h.ask("new_file", big), ok("Ready to receive new file"));
    let chunk = [&big[..], b" ", &[b'x'; 4_097]].concat();
    assert_eq!(
        h.ask("file_upd", &chunk),
        err(
            "Error: file /queue/cluster/worker1/big.zip refused: this node's directory would exceed its quota of 4096 bytes"
        )
    );
    assert!(h.node.open_incoming_files().is_empty());
    assert_cluster_dir_empty(&h);
    assert!(!h.closed);
}

#[test]
fn floods_of_requests_and_files_hold_their_bounds() {
    use wazuh_cluster_protocol::message::text::TOO_MANY_TRANSFERS;
    let mut h = HostileMaster::worker1();
    // 1,000 package tasks asked in a row: each answered, only the last one is waited for.
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let (reply, task) = h.ask("sync_m_c", b"");
        assert_eq!(reply, "ok");
        tasks.push(String::from_utf8_lossy(&task).into_owned());
    }
    let first = format!("{} /queue/cluster/worker1/x.zip", tasks[0]);
    assert_eq!(
        h.ask("sync_m_c_e", first.as_bytes()),
        err(sync_text::TASK_UNKNOWN)
    );
    // Files opened and never finished: the connection's bound, then refused.
    let limit = h.node.config().connection.max_incoming_files;
    let mut refused = 0;
    for n in 0..64 {
        let path = format!("/queue/cluster/worker1/open-{n}");
        match h.ask("new_file", path.as_bytes()) {
            (reply, _) if reply == "ok" => {}
            (_, text) => {
                refused += 1;
                assert!(
                    text == TOO_MANY_TRANSFERS
                        || text.starts_with(b"Error: this node's directory already holds"),
                    "{text:?}"
                );
            }
        }
    }
    let open = h.node.open_incoming_files().len();
    assert!(open <= limit, "{open} open, limit {limit}");
    assert_eq!(refused, 64 - open);
    assert_eq!(h.exec.storage().staged_writes(), open);
    // The link closes: every staged write goes, and the directory with them.
    h.node.handle_closed(h.now, h.link.as_ref().unwrap().0);
    h.pump();
    assert_cluster_dir_empty(&h);
}

/// Nothing is left under `queue/cluster`: no staged write, no file.
fn assert_cluster_dir_empty(h: &HostileMaster) {
    assert_eq!(h.exec.storage().staged_writes(), 0);
    let files = h.exec.storage().files();
    let left: Vec<_> = files
        .keys()
        .filter(|p| p.as_str().starts_with("/queue/cluster/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The worker gave up a file the master sent for `error` (said with the master's link and the
/// path), and holds nothing of it: no staged write, no place, no memory.
fn assert_given_up(h: &HostileMaster, error: PeerError) {
    let said = NodeEvent::Error {
        peer: h.node.master_link(),
        error: NodeError::Peer(error),
    };
    assert!(h.events.contains(&said), "{:?}", h.events);
    assert_eq!(h.exec.storage().staged_writes(), 0);
    assert!(h.node.open_incoming_files().is_empty());
    assert_eq!(h.node.file_budget().held, 0);
    assert_eq!(h.node.memory_budget().input, 0);
}

#[test]
fn a_package_that_never_ends_fails_the_round_and_is_given_up_at_its_lifetime() {
    let mut h = HostileMaster::worker1();
    let (_, task) = h.ask("sync_m_c", b"");
    assert!(!task.is_empty());
    let path = b"/queue/cluster/worker1/never-ends.zip";
    assert_eq!(h.ask("new_file", path), ok("Ready to receive new file"));
    assert_eq!(h.ask("file_upd", &[&path[..], b" PK"].concat()).0, "ok");
    // The master keeps the link alive and trickles a byte every 30 s: never silent long enough
    // to be given up for silence.
    for _ in 0..3 {
        h.advance(Duration::from_secs(30));
        assert_eq!(h.ask("file_upd", &[&path[..], b" x"].concat()).0, "ok");
    }
    let wait = h.node.config().timeout_receiving_file();
    let lifetime = h.node.config().connection.incoming_file_lifetime;
    assert_eq!((wait, lifetime), (Duration::from_secs(120), wait));
    h.advance(Duration::from_secs(29));
    assert!(h.integrity_failures().is_empty());
    assert_eq!(h.exec.storage().staged_writes(), 1);
    h.advance(Duration::from_secs(1));
    // The round fails and the transfer is given up.
    let path_bytes = Bytes::from_static(path);
    assert_given_up(
        &h,
        PeerError::FileNotFinished {
            path: path_bytes,
            lifetime,
        },
    );
    assert_eq!(h.integrity_failures(), [SyncError::MasterPackageTimeout]);
    // Its next chunk is told why; its end, late, names a task no longer waited for.
    assert_eq!(
        h.ask("file_upd", &[&path[..], b" x"].concat()),
        err(
            "Error: file /queue/cluster/worker1/never-ends.zip given up by this node: not finished within 120 s"
        )
    );
    let end = format!(
        "{} /queue/cluster/worker1/never-ends.zip",
        String::from_utf8_lossy(&task)
    );
    assert_eq!(
        h.ask("sync_m_c_e", end.as_bytes()),
        err(sync_text::TASK_UNKNOWN)
    );
    assert_cluster_dir_empty(&h);
    assert!(!h.closed);
}

#[test]
fn a_file_the_master_stops_sending_is_given_up_after_the_idle_timeout() {
    let mut h = HostileMaster::worker1();
    let path = b"/queue/cluster/worker1/silent.zip";
    assert_eq!(h.ask("new_file", path), ok("Ready to receive new file"));
    assert_eq!(h.ask("file_upd", &[&path[..], b" PK"].concat()).0, "ok");
    let idle = h.node.config().connection.incoming_file_idle_timeout;
    // The worker wakes for it by itself: its next timeout is the file's.
    assert!(h.node.poll_timeout().is_some_and(|at| at <= h.now + idle));
    h.advance(idle - Duration::from_secs(1));
    assert_eq!(h.exec.storage().staged_writes(), 1);
    h.advance(Duration::from_secs(1));
    assert_given_up(
        &h,
        PeerError::FileIdle {
            path: Bytes::from_static(path),
            idle,
        },
    );
    let end = [&path[..], b" ", &[0u8; 32]].concat();
    assert_eq!(
        h.ask("file_end", &end),
        err(
            "Error: file /queue/cluster/worker1/silent.zip given up by this node: nothing received for 40 s"
        )
    );
    // The same path sent again, whole, is taken.
    assert_eq!(
        h.send_file("/queue/cluster/worker1/silent.zip", b"PK again"),
        Ok(())
    );
    assert!(!h.closed);
}

#[test]
fn a_member_over_its_limit_is_refused_before_it_is_inflated() {
    use zip::write::SimpleFileOptions;
    let mut h = HostileMaster::with_member_limit(64 << 10);
    let before = h.tree();
    // 8 MiB of zeros deflate to a few KiB: the declared size is refused before inflating.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(
        "etc/shared/default/merged.mg",
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    zip.write_all(&vec![0u8; 8 << 20]).unwrap();
    zip.start_file("cluster_control.json", SimpleFileOptions::default())
        .unwrap();
    zip.write_all(plan_json(&[("/etc/shared/default/merged.mg", "/etc/shared/")], &[]).as_bytes())
        .unwrap();
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    h.send_package(&bomb);
    let failed = h.integrity_failure_texts();
    assert_eq!(
        failed,
        [
            r#"applying the master's package: package: member "etc/shared/default/merged.mg" is larger than the limit of 65536 bytes"#
        ]
    );
    assert_eq!(h.tree(), before);
}

#[test]
fn a_frame_declaring_4_gib_closes_the_link_before_anything_is_allocated() {
    use wazuh_cluster_sync::roles::CloseReason;
    let mut h = HostileMaster::worker1();
    let peer = h.link.as_ref().unwrap().0;
    // counter, payload length u32::MAX, a 12-byte command: upstream pre-allocated what it said.
    let mut header = Vec::new();
    header.extend_from_slice(&7u32.to_be_bytes());
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    header.extend_from_slice(b"sync_m_c\0\0\0\0");
    h.node.handle_input(h.now, peer, &header);
    h.pump();
    assert!(h.closed);
    let reasons: Vec<String> = h
        .events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::DisconnectedFromMaster { reason } => Some(reason),
            _ => None,
        })
        .map(CloseReason::to_string)
        .collect();
    assert_eq!(reasons.len(), 1, "{:?}", h.events);
    assert!(reasons[0].contains("4294967295"), "{reasons:?}");
}

#[test]
fn commands_a_worker_does_not_serve_get_upstreams_unknown_command_text() {
    let mut h = HostileMaster::worker1();
    for command in ["sync_i_w_m", "dapi_forward", "get_config", "hello"] {
        let (reply, text) = h.ask(command, b"{}");
        assert_eq!(reply, "err", "{command}");
        assert_eq!(
            text,
            format!("unknown command '{}'", format_args!("b'{command}'")).into_bytes(),
            "{command}"
        );
    }
    assert!(h.tree().is_empty());
}

/// Where a ZIP header keeps a member's CRC-32, compressed and uncompressed sizes.
#[derive(Debug, Clone, Copy)]
enum Field {
    Crc,
    Compressed,
    Size,
}

/// Sets `field` of `member` to `value` in its local header (`central`: its central directory
/// header): a package that lies about itself.
fn lie(zip: &mut [u8], member: &str, central: bool, field: Field, value: u32) {
    // Signature, offset of the name length, of the name, of the CRC (the sizes follow it).
    let (signature, name_len_at, name_at, crc_at) = if central {
        ([0x50, 0x4b, 0x01, 0x02], 28, 46, 16)
    } else {
        ([0x50, 0x4b, 0x03, 0x04], 26, 30, 14)
    };
    let at = (0..zip.len().saturating_sub(name_at))
        .find(|&i| {
            let len = usize::from(u16::from_le_bytes([
                zip[i + name_len_at],
                zip[i + name_len_at + 1],
            ]));
            zip[i..i + 4] == signature
                && zip.get(i + name_at..i + name_at + len) == Some(member.as_bytes())
        })
        .unwrap_or_else(|| panic!("no header of {member}"));
    let offset = at
        + crc_at
        + match field {
            Field::Crc => 0,
            Field::Compressed => 4,
            Field::Size => 8,
        };
    zip[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn packages_that_lie_about_their_sizes_are_refused_before_anything_is_written() {
    use zip::write::SimpleFileOptions;
    // The worker's bound for one member: 64 KiB.
    let mut h = HostileMaster::with_member_limit(64 << 10);
    let before = h.tree();
    let rules = "etc/rules/local_rules.xml";
    let plan = plan_json(&[("/etc/rules/local_rules.xml", "/etc/rules/")], &[]);
    // One member `data`, deflated or stored, and the control file.
    let package = |data: &[u8], method: zip::CompressionMethod| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(method);
        zip.start_file(rules, options).unwrap();
        zip.write_all(data).unwrap();
        zip.start_file("cluster_control.json", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(plan.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    let deflated = zip::CompressionMethod::Deflated;
    let stored = zip::CompressionMethod::Stored;
    let zeros = vec![0u8; 8 << 20];
    let small = b"<group name=\"local\"/>\n".to_vec();
    // The same, lying about `field` in both headers.
    let lying = |data: &[u8], method, field, value| {
        let mut zip = package(data, method);
        for central in [false, true] {
            lie(&mut zip, rules, central, field, value);
        }
        zip
    };
    let mut cases: Vec<(&str, Vec<u8>, String)> = Vec::new();
    // Declared 100 bytes in both headers, inflates to 8 MiB.
    let bomb = lying(&zeros, deflated, Field::Size, 100);
    cases.push((
        "declared small, inflates big",
        bomb,
        format!(
            r#"apply: package refused: member "{rules}" inflates beyond its declared 100 bytes"#
        ),
    ));
    // Declared 4 GiB - 16: over the worker's bound before a byte is read.
    let huge = lying(&small, stored, Field::Size, u32::MAX - 16);
    cases.push((
        "declared huge",
        huge,
        format!(r#"package: member "{rules}" is larger than the limit of 65536 bytes"#),
    ));
    // Declared 60 KiB (within the bound), holds 22 bytes.
    let short = lying(&small, stored, Field::Size, 60 << 10);
    cases.push((
        "declared bigger than it is",
        short,
        format!(r#"apply: package refused: member "{rules}" declares 61440 bytes but holds 22"#),
    ));
    // The local header says one size, the central directory another.
    for field in [Field::Size, Field::Compressed, Field::Crc] {
        let mut split = package(&small, stored);
        lie(&mut split, rules, false, field, 7);
        cases.push(("local and central headers disagree", split, format!(r#"package: member "{rules}": its local header disagrees with the central directory"#)));
    }
    // A CRC that is not the content's, in both headers.
    let crc = lying(&small, stored, Field::Crc, 0xdead_beef);
    cases.push((
        "CRC mismatch",
        crc,
        format!(r#"apply: package refused: member "{rules}" is corrupt: Invalid checksum"#),
    ));
    // Honest sizes, but a bomb for the worker's bound: refused from the declared size.
    cases.push((
        "bomb over the bound",
        package(&zeros, deflated),
        format!(r#"package: member "{rules}" is larger than the limit of 65536 bytes"#),
    ));
    for (case, zip, refusal) in cases {
        assert_eq!(h.send_package(&zip), ok(sync_text::FILE_RECEIVED), "{case}");
        assert_eq!(
            h.integrity_failure_texts(),
            [format!("applying the master's package: {refusal}")],
            "{case}"
        );
        // Nothing half-applied, nothing left in staging, the package removed.
        assert_eq!(h.tree(), before, "{case}");
        assert_cluster_dir_empty(&h);
    }
}

/// A master that refuses the worker's integrity file (its descriptors are all taken, as on a
/// master of 1,000 workers) gets `<task> Error` and, like 3.9.5's, stops the task without a word.
/// The round must fail there and the next start one `sync_integrity` later — it waited for the
/// master's answer for `timeout_receiving_file` (120 s) instead, which held 1,000 simulated
/// workers off for 900 s of cluster time.
#[test]
fn an_integrity_file_the_master_refuses_fails_the_round_and_the_next_comes_one_interval_later() {
    let mut h = HostileMaster::worker1();
    h.master_conn().set_file_allowance(Some(0));
    let next = |h: &mut HostileMaster, within: Duration| {
        h.advance(within);
        h.requests.pop_front().expect("a request of the worker")
    };
    let (counter, command, _) = next(&mut h, Duration::from_secs(10));
    assert_eq!(command, "sync_i_w_m_p");
    let asked_at = h.now;
    h.reply(counter, true, b"True");
    let (counter, command, _) = next(&mut h, Duration::ZERO);
    assert_eq!(command, "sync_i_w_m");
    h.reply(counter, true, b"task-1");
    // The worker's `new_file` is answered `err` by the connection itself; the end says so.
    let (counter, command, end) = next(&mut h, Duration::ZERO);
    assert_eq!(
        (command.as_str(), &end[..]),
        ("sync_i_w_m_e", &b"task-1 Error"[..])
    );
    h.reply(counter, true, sync_text::FILE_RECEIVED.as_bytes());
    use wazuh_cluster_protocol::message::text::{ERROR_PROCESSING, FILE_BUDGET_EXHAUSTED};
    let refused = [ERROR_PROCESSING, FILE_BUDGET_EXHAUSTED].concat();
    let refused = String::from_utf8_lossy(&refused).into_owned();
    assert_eq!(
        h.integrity_failures(),
        [SyncError::Send(SendFailure::Refused(refused))]
    );
    let interval = Duration::from_secs(9);
    let (_, command, _) = next(&mut h, interval);
    assert_eq!(command, "sync_i_w_m_p");
    assert_eq!(
        h.now - asked_at,
        interval,
        "the next round starts one interval later"
    );
}
