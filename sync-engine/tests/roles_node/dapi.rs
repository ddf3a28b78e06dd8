//! The distributed API through nodes (PROTOCOL.md §13, §15; 3.9.5 `dapi.py`, `master.py`,
//! `worker.py`, `local_server.py`): a local client's request on either role, its way through the
//! master to the node that answers, the answer back as a long string then `dapi_res`, the
//! cluster routes the nodes answer themselves, and the errors.

use std::time::Duration;

use super::support::*;
use wazuh_cluster_protocol::connection::Event;
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};
use wazuh_cluster_sync::roles::{NodeConfig, NodeType, dapi_text};

/// What a local client got for one request: the reply to it, then the later answer (the string
/// a `dapi_res` named, a `control_res` payload, or a `dapi_err` text).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientView {
    pub(super) reply: (String, String),
    pub(super) later: Option<(String, String)>,
}

/// Sends `command payload` from local client `end`, answers the node's later request as 3.9.5's
/// local client does, and returns what the client got.
pub(super) fn ask_local(c: &mut Cluster, end: End, command: &str, payload: &[u8]) -> ClientView {
    let events = c.local_ask(end, command, payload);
    let mut reply = None;
    let mut later = None;
    let mut pending = events;
    while !pending.is_empty() {
        for event in std::mem::take(&mut pending) {
            match event {
                Event::Response {
                    command, reply: r, ..
                } => {
                    let kind = if matches!(r, Reply::Err(_)) {
                        "err"
                    } else {
                        "ok"
                    };
                    let text = String::from_utf8_lossy(r.payload()).into_owned();
                    assert!(reply.is_none(), "a second reply to {command}");
                    reply = Some((kind.to_owned(), text));
                }
                Event::Request {
                    counter,
                    command,
                    payload,
                } => {
                    let now = c.now;
                    let client = c.locals.get_mut(&end).unwrap();
                    let text = match command.name() {
                        b"dapi_res" => {
                            let id: u32 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
                            let string = client.take_string(id).expect("the string dapi_res names");
                            String::from_utf8(string.to_vec()).unwrap()
                        }
                        _ => String::from_utf8_lossy(&payload).into_owned(),
                    };
                    client
                        .reply(now, counter, Command::OK, b"Response received")
                        .unwrap();
                    later = Some((String::from_utf8_lossy(command.name()).into_owned(), text));
                    c.pump();
                    let client = c.locals.get_mut(&end).unwrap();
                    while let Some(event) = client.poll_event() {
                        pending.push(event);
                    }
                }
                Event::StringComplete { .. } => {}
                other => panic!("unexpected client event {other:?}"),
            }
        }
    }
    ClientView {
        reply: reply.expect("a reply"),
        later,
    }
}

pub(super) fn ok_reply(text: &str) -> (String, String) {
    ("ok".to_owned(), text.to_owned())
}

fn dapi_res(answer: &str) -> Option<(String, String)> {
    Some(("dapi_res".to_owned(), answer.to_owned()))
}

/// A worker tree whose agent-info names `agent` (recent, so its round sends it).
fn worker_with_agent(agent: &str) -> MemoryStorage {
    let mut s = MemoryStorage::new();
    s.set_now(unix0());
    s.create_dir_all(&p("/queue/agent-info"), 0o770).unwrap();
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: Some(Timestamp::from_secs(UNIX0 as i64 - 60)),
    };
    let body = format!(
        "Linux |{agent} |5.4.0 |#1 SMP |x86_64\nWazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n"
    );
    s.write_atomic(
        &p(&format!("/queue/agent-info/{agent}-any")),
        body.as_bytes(),
        &attrs,
    )
    .unwrap();
    s
}

/// master01 (client.keys: 001 agent-one, 002 agent-two), worker1 holding agent-one and worker2
/// holding agent-two, run until the master took both agent-info rounds.
pub(super) fn three_nodes() -> (Cluster, usize, usize, usize) {
    three_nodes_with(|_| {})
}

/// [`three_nodes`] with worker1's configuration changed by `tune`.
fn three_nodes_with(tune: impl FnOnce(&mut NodeConfig)) -> (Cluster, usize, usize, usize) {
    three_nodes_prepared(tune, |_, _| {})
}

/// [`three_nodes_with`], `prepare` given the cluster and the master before anything runs.
pub(super) fn three_nodes_prepared(
    tune: impl FnOnce(&mut NodeConfig),
    prepare: impl FnOnce(&mut Cluster, usize),
) -> (Cluster, usize, usize, usize) {
    let t0 = origin();
    let mut c = Cluster::new(t0);
    let m = c.add(
        config(NodeType::Master, "master01", t0),
        master_storage(unix0()),
        1,
        "10.0.0.1",
    );
    prepare(&mut c, m);
    let mut worker1 = config(NodeType::Worker, "worker1", t0);
    tune(&mut worker1);
    let w1 = c.add(worker1, worker_with_agent("agent-one"), 2, "10.0.0.2");
    let w2 = c.add(
        config(NodeType::Worker, "worker2", t0),
        worker_with_agent("agent-two"),
        3,
        "10.0.0.3",
    );
    c.run_for(Duration::from_secs(15));
    let routes = c.members[m].node.agent_routes();
    assert_eq!(
        routes.get("agent-one").map(String::as_str),
        Some("worker1"),
        "{routes:?}"
    );
    assert_eq!(
        routes.get("agent-two").map(String::as_str),
        Some("worker2"),
        "{routes:?}"
    );
    (c, m, w1, w2)
}

const NODE: &[u8] = br#"{"function": "/cluster/node", "arguments": {}, "from_cluster": false}"#;

#[test]
fn a_masters_local_client_gets_the_answer_as_a_string_then_dapi_res() {
    let t0 = origin();
    let (mut c, m, _w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    let client = c.local_connect(m, 900);
    let got = ask_local(&mut c, client, "dapi", NODE);
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::ADDED),
            later: dapi_res(
                r#"{"data": {"node": "master01", "cluster": "wazuh", "type": "master"}, "error": 0}"#
            ),
        }
    );
}

#[test]
fn a_workers_local_client_gets_cluster_routes_from_the_master_as_control_res() {
    let t0 = origin();
    let (mut c, _m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    let client = c.local_connect(w, 900);
    let frames_before = c.frames.len();
    let nodes = br#"{"function": "/cluster/nodes", "arguments": {"wait_for_complete": false}, "from_cluster": false}"#;
    let got = ask_local(&mut c, client, "dapi", nodes);
    let answer = r#"{"error": 0, "data": {"totalItems": 2, "items": [{"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1"}, {"name": "worker1", "type": "worker", "version": "3.9.5", "ip": "10.0.0.2"}]}}"#;
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply("Sent request to master node"),
            later: Some(("control_res".to_owned(), answer.to_owned())),
        }
    );
    // On the link: the client's bytes as they came, answered inline (3.9.5 process_dapi_cluster).
    let link: Vec<(usize, String)> = c.frames[frames_before..]
        .iter()
        .map(|(from, _, cmd, _)| (*from, cmd.clone()))
        .collect();
    assert_eq!(link, [(w, "dapi_cluster".to_owned()), (0, "ok".to_owned())]);
    assert_eq!(&c.frames[frames_before].3[..], &nodes[..]);
}

/// A 3.9.5 master answers `dapi_cluster` only when the arguments hold `wait_for_complete` (its
/// `process_dapi_cluster` deletes the key: a KeyError otherwise, seen with our worker and a real
/// 3.9.5 master in check-clusterd-with-upstream.sh). A local client that leaves it out (our
/// `wazuh-cluster api`) gets it filled, as upstream's API fills it, before the request leaves.
#[test]
fn a_workers_cluster_route_without_wait_for_complete_reaches_the_master_with_it() {
    let t0 = origin();
    let (mut c, _m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    let client = c.local_connect(w, 900);
    let frames_before = c.frames.len();
    let nodes =
        br#"{"function": "/cluster/nodes", "arguments": {"limit": 5}, "from_cluster": false}"#;
    let got = ask_local(&mut c, client, "dapi", nodes);
    assert_eq!(got.reply, ok_reply("Sent request to master node"));
    let later = got.later.expect("the master's answer");
    assert_eq!(later.0, "control_res");
    assert!(later.1.contains(r#""name": "worker1""#), "{}", later.1);
    assert_eq!(c.frames[frames_before].2, "dapi_cluster");
    assert_eq!(
        String::from_utf8_lossy(&c.frames[frames_before].3),
        r#"{"function": "/cluster/nodes", "arguments": {"limit": 5, "wait_for_complete": false}, "from_cluster": false}"#
    );
}

#[test]
fn an_agent_request_goes_to_the_worker_the_agent_reports_to_and_back() {
    let (mut c, m, w1, w2) = three_nodes();
    let client = c.local_connect(w2, 900);
    let frames_before = c.frames.len();
    let os = br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001", "wait_for_complete": false}, "ossec_path": "/var/ossec", "from_cluster": false}"#;
    let got = ask_local(&mut c, client, "dapi", os);
    // worker1 has no framework here: its built-in executor names the route it does not serve.
    let answer = r#"{"message": "/syscollector/:agent_id/os (syscollector.get_os_agent) is not served by this node: run it with an API executor (node --api-exec)", "error": 1000}"#;
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::ADDED),
            later: dapi_res(answer),
        }
    );
    // The hops, as the recorded 3.9.5 cluster makes them (dapi_frames.json): worker2 → master
    // `dapi <LC> <json>`, master → worker1 `dapi <id> <json>` with from_cluster true, worker1's
    // string and `dapi_res <id> <sid>`, the master's string and `dapi_res <LC> <sid>` to worker2.
    let hops: Vec<(usize, String)> = c.frames[frames_before..]
        .iter()
        .map(|(from, _, cmd, _)| (*from, cmd.clone()))
        .collect();
    assert_eq!(
        hops,
        [
            (w2, "dapi".to_owned()),
            (m, "ok".to_owned()),
            (m, "dapi".to_owned()),
            (w1, "ok".to_owned()),
            (w1, "new_str".to_owned()),
            (m, "ok".to_owned()),
            (w1, "str_upd".to_owned()),
            (m, "ok".to_owned()),
            (w1, "dapi_res".to_owned()),
            (m, "ok".to_owned()),
            (m, "new_str".to_owned()),
            (w2, "ok".to_owned()),
            (m, "str_upd".to_owned()),
            (w2, "ok".to_owned()),
            (m, "dapi_res".to_owned()),
            (w2, "ok".to_owned()),
        ]
    );
    let payload = |i: usize| String::from_utf8(c.frames[frames_before + i].3.to_vec()).unwrap();
    let (lc, json) = payload(0)
        .split_once(' ')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    assert!(lc.parse::<u32>().unwrap() < 1 << 20, "{lc}");
    assert_eq!(json.as_bytes(), &os[..]);
    let forwarded = payload(2);
    let (id, json) = forwarded.split_once(' ').unwrap();
    assert!(id.parse::<u64>().unwrap() >= 1 << 20, "{id}");
    assert_eq!(
        json,
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001", "wait_for_complete": false}, "ossec_path": "/var/ossec", "from_cluster": true}"#
    );
    assert!(payload(8).starts_with(&format!("{id} ")), "{}", payload(8));
    assert!(
        payload(14).starts_with(&format!("{lc} ")),
        "{}",
        payload(14)
    );
    assert_eq!(payload(1), dapi_text::ADDED);
    assert_eq!(payload(9), dapi_text::FORWARDED_RESPONSE);
    assert_eq!(payload(15), dapi_text::RESPONSE_FORWARDED);
    assert_eq!(c.members[m].node.api_requests_in_progress(), 0);
}

#[test]
fn a_list_of_agents_on_two_workers_is_split_and_the_answers_merged() {
    let (mut c, m, _w1, _w2) = three_nodes();
    let client = c.local_connect(m, 900);
    let restart = br#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "002", "009"]}, "from_cluster": false}"#;
    let got = ask_local(&mut c, client, "dapi", restart);
    // Three parts (worker1: 001, worker2: 002, the master: the unknown 009), each an error 1000
    // here; merged as 3.9.5 merges (the first message kept, the highest error).
    let answer = r#"{"message": "PUT/agents/restart (Agent.restart_agents) is not served by this node: run it with an API executor (node --api-exec)", "error": 1000}"#;
    assert_eq!(got.later, dapi_res(answer));
    let forwarded: Vec<String> = c
        .frames
        .iter()
        .filter(|(from, _, cmd, _)| *from == m && cmd == "dapi")
        .map(|(_, _, _, payload)| String::from_utf8(payload.to_vec()).unwrap())
        .map(|p| p.split_once(' ').unwrap().1.to_owned())
        .collect();
    assert_eq!(
        forwarded,
        [
            r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["002"], "wait_for_complete": false}, "from_cluster": true}"#,
            r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001"], "wait_for_complete": false}, "from_cluster": true}"#,
        ]
    );
}

#[test]
fn a_worker_that_goes_away_fails_the_requests_waiting_on_it_at_once() {
    let (mut c, m, w1, _w2) = three_nodes();
    let client = c.local_connect(m, 900);
    // worker1 stops answering: its link is cut towards the master only after the forward.
    let w1_end = *c.links.keys().find(|e| e.member == w1).unwrap();
    c.cut.push(w1_end);
    let os = br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;
    let events = c.local_ask(client, "dapi", os);
    assert_eq!(events.len(), 1, "only the reply: {events:?}");
    assert_eq!(c.members[m].node.api_requests_in_progress(), 1);
    // The master learns worker1 is gone (its adapter saw the reset).
    let master_end = c.links[&w1_end];
    c.members[m].node.handle_closed(c.now, master_end.peer);
    c.pump();
    assert_eq!(
        answer_string(&mut c, client).as_deref(),
        Some(
            &br#"{"error": 3009, "message": "Error sending request: connection to worker1 lost"}"#
                [..]
        )
    );
    assert_eq!(c.members[m].node.api_requests_in_progress(), 0);
}

/// The string the last `dapi_res` the local client `end` got names.
fn answer_string(c: &mut Cluster, end: End) -> Option<Vec<u8>> {
    let client = c.locals.get_mut(&end).unwrap();
    let mut answer = None;
    while let Some(event) = client.poll_event() {
        if let Event::Request {
            payload, command, ..
        } = event
            && command.name() == b"dapi_res"
        {
            let id: u32 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
            answer = client.take_string(id).map(|s| s.to_vec());
        }
    }
    answer
}

#[test]
fn a_forwarded_request_nobody_answers_times_out_with_3000_and_its_late_answer_is_refused() {
    // worker1 takes the request (`ok`) but its executor hangs, and worker1 waits for it longer
    // than the master waits for worker1.
    let (mut c, m, w1, _w2) = three_nodes_with(|worker1| {
        worker1.items.intervals.communication.timeout_api_exe = Duration::from_secs(1000);
    });
    let client = c.local_connect(m, 900);
    c.hold_calls.push(w1);
    let os = br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;
    c.local_ask(client, "dapi", os);
    assert_eq!(c.held_calls.len(), 1);
    c.run_for(Duration::from_secs(199));
    assert_eq!(c.members[m].node.api_requests_in_progress(), 1);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.members[m].node.api_requests_in_progress(), 0);
    assert_eq!(
        answer_string(&mut c, client).as_deref(),
        Some(&br#"{"error": 3000, "message": "Timeout exceeded"}"#[..])
    );
    // worker1 answers at last; the master has nobody waiting for that id any more and says so.
    let (member, id, call) = c.held_calls.pop().unwrap();
    let unix = c.unix();
    let answer = c.members[member].exec.run_api_call(&call, unix);
    let frames_before = c.frames.len();
    c.members[member].node.handle_api_done(c.now, id, answer);
    c.pump();
    let late: Vec<(usize, String)> = c.frames[frames_before..]
        .iter()
        .map(|(from, _, cmd, _)| (*from, cmd.clone()))
        .collect();
    let commands = ["new_str", "ok", "str_upd", "ok", "dapi_res", "err"];
    let expected: Vec<(usize, String)> = commands
        .iter()
        .enumerate()
        .map(|(i, cmd)| (if i % 2 == 0 { w1 } else { m }, (*cmd).to_owned()))
        .collect();
    assert_eq!(late, expected);
    assert_eq!(
        &c.frames.last().unwrap().3[..],
        dapi_text::CANNOT_FORWARD.as_bytes()
    );
    assert_eq!(answer_string(&mut c, client), None);
}

#[test]
fn a_call_the_executor_does_not_answer_in_time_is_answered_3021() {
    let t0 = origin();
    let (mut c, m, _w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    c.hold_calls.push(m);
    let client = c.local_connect(m, 900);
    let agents = br#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#;
    c.local_ask(client, "dapi", agents);
    assert_eq!(c.held_calls.len(), 1);
    let call = &c.held_calls[0].2;
    assert_eq!(
        (
            call.function.as_str(),
            call.framework_function,
            call.arguments.as_str()
        ),
        ("/agents", "Agent.get_agents_overview", "{}")
    );
    assert_eq!(call.timeout, Some(Duration::from_secs(10)));
    c.run_for(Duration::from_secs(11));
    assert_eq!(
        answer_string(&mut c, client).as_deref(),
        Some(&br#"{"message": "Timeout executing API request", "error": 3021}"#[..])
    );
    // The late answer changes nothing.
    let (_, id, _) = c.held_calls.pop().unwrap();
    c.members[m]
        .node
        .handle_api_done(c.now, id, r#"{"data": {}, "error": 0}"#.to_owned());
    c.pump();
    assert_eq!(answer_string(&mut c, client), None);
    assert_eq!(c.members[m].node.api_requests_in_progress(), 0);
}

#[test]
fn dapi_forward_sends_the_request_on_and_passes_the_answer_back() {
    let (mut c, m, _w1, _w2) = three_nodes();
    let client = c.local_connect(m, 900);
    let payload = br#"worker2 {"function": "/cluster/node", "arguments": {"wait_for_complete": false}, "from_cluster": true}"#;
    let got = ask_local(&mut c, client, "dapi_forward", payload);
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::FORWARDED_TO_WORKER),
            later: dapi_res(
                r#"{"data": {"node": "worker2", "cluster": "wazuh", "type": "worker"}, "error": 0}"#
            ),
        }
    );
    let unknown = ask_local(
        &mut c,
        client,
        "dapi_forward",
        br#"worker9 {"function": "/cluster/node", "arguments": {}, "from_cluster": true}"#,
    );
    assert_eq!(
        unknown.reply,
        (
            "err".to_owned(),
            "WazuhException 3022 Unknown node ID: worker9".to_owned()
        )
    );
}

#[test]
fn get_config_never_gives_the_key_out() {
    let t0 = origin();
    let (mut c, m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    for (member, name, node_type) in [(m, "master01", "master"), (w, "worker1", "worker")] {
        let client = c.local_connect(member, 900 + member as u64);
        let got = ask_local(&mut c, client, "get_config", b"");
        let expected = format!(
            r#"{{"name": "wazuh", "node_name": "{name}", "node_type": "{node_type}", "port": 1516, "bind_addr": "0.0.0.0", "nodes": ["NODE_IP"], "hidden": "no", "disabled": false}}"#
        );
        assert_eq!(got.reply, ok_reply(&expected));
        assert!(!got.reply.1.contains(KEY));
    }
}

#[test]
fn hostile_requests_get_exact_error_answers_and_nothing_runs() {
    let t0 = origin();
    let (mut c, m, _w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    let client = c.local_connect(m, 900);
    let deep = format!(
        r#"{{"function": "/cluster/node", "arguments": {{"x": {}1{}}}, "from_cluster": false}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let cases: [(&[u8], &str); 5] = [
        (
            br#"{"function": "/nope", "arguments": {}, "from_cluster": false}"#,
            r#"{"message": "'/nope'", "error": 1000}"#,
        ),
        (
            br#"{"function": "/cluster/node", "arguments": {"__callable__": {"__name__": "system"}}, "from_cluster": false}"#,
            r#"{"data": {"node": "master01", "cluster": "wazuh", "type": "master"}, "error": 0}"#,
        ),
        (
            b"not json",
            r#"{"message": "DAPI request: JSON syntax error at byte 0: expected a value", "error": 1000}"#,
        ),
        (deep.as_bytes(), ""),
        (br#"{"arguments": {}, "from_cluster": false}"#, r#"{"message": "'function'", "error": 1000}"#),
    ];
    for (request, expected) in cases {
        let got = ask_local(&mut c, client, "dapi", request);
        assert_eq!(got.reply, ok_reply(dapi_text::ADDED));
        let (kind, answer) = got.later.expect("an answer");
        assert_eq!(kind, "dapi_res");
        if expected.is_empty() {
            assert!(answer.contains("\"error\": 1000"), "{answer}");
        } else {
            assert_eq!(answer, expected, "{}", String::from_utf8_lossy(request));
        }
    }
    // A dapi_res naming nobody, from a worker.
    assert_eq!(c.members[m].node.api_requests_in_progress(), 0);
}

#[test]
fn requests_beyond_the_bound_are_answered_with_an_error_at_once() {
    let (mut c, m, w1, _w2) = three_nodes();
    let w1_end = *c.links.keys().find(|e| e.member == w1).unwrap();
    c.cut.push(w1_end);
    let client = c.local_connect(m, 900);
    let limit = c.members[m].node.config().limits.api.max_requests_per_peer;
    let os = br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;
    for _ in 0..limit {
        c.local_ask(client, "dapi", os);
    }
    assert_eq!(c.members[m].node.api_requests_in_progress(), limit);
    let got = ask_local(&mut c, client, "dapi", os);
    assert_eq!(
        got.later,
        dapi_res(&format!(
            r#"{{"message": "too many distributed API requests in progress (limits: 1024 per node, {limit} per connection)", "error": 1000}}"#
        ))
    );
    assert_eq!(c.members[m].node.api_requests_in_progress(), limit);
}

#[test]
fn a_local_any_request_on_a_worker_is_answered_by_the_worker_itself() {
    let t0 = origin();
    let (mut c, _m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    let client = c.local_connect(w, 900);
    let frames_before = c.frames.len();
    let got = ask_local(&mut c, client, "dapi", NODE);
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::ADDED),
            later: dapi_res(
                r#"{"data": {"node": "worker1", "cluster": "wazuh", "type": "worker"}, "error": 0}"#
            ),
        }
    );
    assert_eq!(c.frames.len(), frames_before, "nothing went to the master");
}

/// The requests client `peer` of `raw` got (command, payload), answering each `ok`.
fn requests_to(
    raw: &mut RawMaster,
    peer: wazuh_cluster_sync::roles::PeerId,
) -> Vec<(String, String)> {
    let now = raw.now;
    let client = raw.clients.get_mut(&peer).unwrap();
    let mut got = Vec::new();
    while let Some(event) = client.poll_event() {
        if let Event::Request {
            counter,
            command,
            payload,
        } = event
        {
            client.reply(now, counter, Command::OK, b"ok").unwrap();
            let text = match command.name() {
                b"dapi_res" => {
                    let id: u32 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
                    String::from_utf8(client.take_string(id).unwrap_or_default().to_vec()).unwrap()
                }
                _ => String::from_utf8_lossy(&payload).into_owned(),
            };
            got.push((String::from_utf8_lossy(command.name()).into_owned(), text));
        }
    }
    raw.pump();
    got
}

#[test]
fn hostile_links_get_exact_refusals_and_clients_exact_errors() {
    let mut raw = RawMaster::master01();
    let worker = raw.join(1, "worker1", "10.0.0.2:40001");
    // A `*` in a chain name: no name the master could answer to.
    assert_eq!(
        raw.ask(
            worker,
            "dapi",
            br#"12*34 {"function": "/cluster/node", "arguments": {}, "from_cluster": false}"#
        ),
        err("WazuhException 1000 a dapi request on a link starts with a name")
    );
    // A dapi_res / dapi_err for an id never issued, or without a name.
    for (command, payload) in [
        ("dapi_res", &b"1048999 7"[..]),
        ("dapi_err", b"1048999 boom"),
        ("dapi_res", b"nospace"),
    ] {
        assert_eq!(
            raw.ask(worker, command, payload),
            err(dapi_text::CANNOT_FORWARD)
        );
    }
    // A local client's request forwarded to worker1, answered with a string id that never
    // arrived: the client gets the error, at once.
    let client = raw.connect_local(900);
    let forward =
        br#"worker1 {"function": "/cluster/node", "arguments": {}, "from_cluster": true}"#;
    assert_eq!(
        raw.ask(client, "dapi_forward", forward),
        ok(dapi_text::FORWARDED_TO_WORKER)
    );
    let to_worker = requests_to(&mut raw, worker);
    assert_eq!(to_worker.len(), 1);
    let (command, payload) = &to_worker[0];
    assert_eq!(command, "dapi");
    let (name, json) = payload.split_once(' ').unwrap();
    assert_eq!(json.as_bytes(), &forward[8..]);
    assert_eq!(
        raw.ask(worker, "dapi_res", format!("{name} 424242").as_bytes()),
        ok(dapi_text::RESPONSE_FORWARDED)
    );
    assert_eq!(
        requests_to(&mut raw, client),
        [(
            "dapi_res".to_owned(),
            r#"{"error": 3009, "message": "Error receiving string: ID 424242 not found."}"#
                .to_owned()
        )]
    );
    // A dapi_err for the client's name is passed on as is.
    assert_eq!(
        raw.ask(worker, "dapi_err", format!("{name} it broke").as_bytes()),
        ok(dapi_text::ERROR_FORWARDED)
    );
    assert_eq!(
        requests_to(&mut raw, client),
        [("dapi_err".to_owned(), "it broke".to_owned())]
    );
}
