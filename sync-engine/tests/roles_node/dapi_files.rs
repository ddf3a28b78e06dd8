//! Files through the distributed API (3.9.5 `local_server.py` `send_file_request`, `dapi.py`
//! `send_tmp_file`, PROTOCOL.md §6, §15): a local client's `send_file <path> <node>` on both
//! roles, the paths refused, and a request's `tmp_file` sent to the node that runs it before the
//! request and claimed there; a 3.9.5 peer's `new_file /tmp/<name>` kept in its inbox and
//! claimed by the request naming it.

use std::time::Duration;

use super::dapi::{ClientView, ask_local, ok_reply, three_nodes};
use super::support::*;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage};
use wazuh_cluster_sync::roles::{NodeError, NodeEvent, dapi_text};

const BODY: &[u8] = b"<agent_config>\n  <localfile/>\n</agent_config>\n";

fn put(c: &mut Cluster, m: usize, path: &str, body: &[u8]) {
    let attrs = FileAttrs {
        mode: 0o640,
        mtime: None,
    };
    let storage = c.storage_mut(m);
    storage.create_dir_all(&p("/tmp"), 0o770).unwrap();
    storage.write_atomic(&p(path), body, &attrs).unwrap();
}

fn file_of(c: &Cluster, m: usize, path: &str) -> Option<Vec<u8>> {
    c.storage(m).files().get(&p(path)).cloned()
}

/// The commands sent on cluster links (not local sockets) from frame `from` on.
fn link_commands(c: &Cluster, from: usize) -> Vec<String> {
    c.frames[from..]
        .iter()
        .map(|(_, _, cmd, _)| cmd.clone())
        .filter(|cmd| cmd != "echo-c" && cmd != "ok-m")
        .collect()
}

fn sent(later: &str) -> Option<(String, String)> {
    Some(("send_f_res".to_owned(), later.to_owned()))
}

#[test]
fn a_masters_local_client_sends_a_file_into_the_workers_inbox_and_gets_file_sent() {
    let (mut c, m, w1, _w2) = three_nodes();
    put(&mut c, m, "/tmp/api_tmp_file_1.xml", BODY);
    let client = c.local_connect(m, 900);
    let frames = c.frames.len();
    let got = ask_local(
        &mut c,
        client,
        "send_file",
        b"/var/ossec/tmp/api_tmp_file_1.xml worker1",
    );
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::FORWARDING_FILE),
            later: sent("File sent"),
        }
    );
    assert_eq!(
        link_commands(&c, frames),
        ["new_file", "ok", "file_upd", "ok", "file_end", "ok"]
    );
    assert_eq!(
        &c.frames[frames].3[..],
        b"/queue/cluster/worker1/api_tmp_file_1.xml"
    );
    let landed = "/queue/cluster/worker1/api_tmp_file_1.xml";
    assert_eq!(file_of(&c, w1, landed).as_deref(), Some(BODY));
    // A plain send_file leaves the source (upstream's local server does not remove it).
    assert!(file_of(&c, m, "/tmp/api_tmp_file_1.xml").is_some());
    // Nobody claims it on the worker: the sweep of unclaimed files removes it.
    c.run_for(Duration::from_secs(301));
    assert_eq!(file_of(&c, w1, landed), None);
    assert!(
        c.events_of(w1)
            .iter()
            .any(|e| matches!(e, NodeEvent::UnclaimedFileRemoved { path, .. } if path == landed)),
        "{:?}",
        c.events_of(w1)
    );
}

#[test]
fn a_workers_local_client_sends_a_file_to_the_master_whatever_node_it_names() {
    let (mut c, m, w1, _w2) = three_nodes();
    put(&mut c, w1, "/tmp/upload.xml", BODY);
    let client = c.local_connect(w1, 900);
    // 3.9.5's API names no node from a worker (`None`).
    let got = ask_local(
        &mut c,
        client,
        "send_file",
        b"/var/ossec/tmp/upload.xml None",
    );
    assert_eq!(
        got,
        ClientView {
            reply: ok_reply(dapi_text::FORWARDING_FILE),
            later: sent("File sent"),
        }
    );
    let landed = "/queue/cluster/worker1/upload.xml";
    assert_eq!(file_of(&c, m, landed).as_deref(), Some(BODY));
}

#[test]
fn hostile_send_file_paths_are_refused_and_nothing_is_sent() {
    let (mut c, m, _w1, _w2) = three_nodes();
    put(&mut c, m, "/tmp/real.xml", BODY);
    let storage = c.storage_mut(m);
    storage
        .add_symlink(&p("/tmp/link.xml"), "/etc/shadow")
        .unwrap();
    storage.add_symlink(&p("/lnk"), "/tmp").unwrap();
    // (payload, the reply, what follows it)
    type Case<'a> = (&'a [u8], (&'a str, &'a str), Option<(String, String)>);
    let cases: &[Case<'_>] = &[
        (
            b"/var/ossec/../../etc/passwd worker1",
            (
                "err",
                "WazuhException 1000 /var/ossec/../../etc/passwd is not a plain path under the install root",
            ),
            None,
        ),
        (
            b"/etc/passwd worker1",
            (
                "err",
                "WazuhException 1000 /etc/passwd is outside the install root /var/ossec",
            ),
            None,
        ),
        (
            b"/var/ossec-other/tmp/real.xml worker1",
            (
                "err",
                "WazuhException 1000 /var/ossec-other/tmp/real.xml is outside the install root /var/ossec",
            ),
            None,
        ),
        (
            b"tmp/real.xml worker1",
            (
                "err",
                "WazuhException 1000 tmp/real.xml is not an absolute path",
            ),
            None,
        ),
        (
            b"/var/ossec/tmp/real.xml nobody",
            ("err", "WazuhException 3022 Unknown node ID: nobody"),
            None,
        ),
        (
            b"/var/ossec/tmp/real.xml worker1 extra",
            ("err", "WazuhException 1000 send_file takes '<path> <node>'"),
            None,
        ),
        (
            b"/var/ossec/tmp/missing.xml worker1",
            ("ok", dapi_text::FORWARDING_FILE),
            sent("File /var/ossec/tmp/missing.xml not found."),
        ),
        (
            b"/var/ossec/tmp/link.xml worker1",
            ("ok", dapi_text::FORWARDING_FILE),
            sent("Error sending file: /var/ossec/tmp/link.xml is a Symlink, not a file"),
        ),
        (
            b"/var/ossec/tmp worker1",
            ("ok", dapi_text::FORWARDING_FILE),
            sent("Error sending file: /var/ossec/tmp is a Dir, not a file"),
        ),
    ];
    for (payload, reply, later) in cases {
        let client = c.local_connect(m, 900);
        let frames = c.frames.len();
        let got = ask_local(&mut c, client, "send_file", payload);
        let case = String::from_utf8_lossy(payload);
        assert_eq!(
            got,
            ClientView {
                reply: (reply.0.to_owned(), reply.1.to_owned()),
                later: later.clone(),
            },
            "{case}"
        );
        assert_eq!(link_commands(&c, frames), Vec::<String>::new(), "{case}");
    }
    // A symlinked directory on the way: the stat refuses it as outside the root.
    let client = c.local_connect(m, 900);
    let got = ask_local(
        &mut c,
        client,
        "send_file",
        b"/var/ossec/lnk/real.xml worker1",
    );
    let (command, text) = got.later.expect("send_f_res");
    assert_eq!(command, "send_f_res");
    assert!(
        text.starts_with("Error sending file: /var/ossec/lnk/real.xml: "),
        "{text}"
    );
}

#[test]
fn a_request_with_tmp_file_sends_the_file_to_the_master_first_and_the_master_claims_it() {
    let (mut c, m, w1, _w2) = three_nodes();
    put(&mut c, w1, "/tmp/api_tmp_file_7.xml", BODY);
    c.hold_calls.push(m);
    let client = c.local_connect(w1, 900);
    let frames = c.frames.len();
    // wait_for_complete: the call has no time limit, so the file stays claimed while it runs.
    let request = br#"{"function": "POST/agents/groups/:group_id/configuration", "arguments": {"group_id": "default", "tmp_file": "tmp/api_tmp_file_7.xml", "wait_for_complete": true}, "from_cluster": false}"#;
    c.local_ask(client, "dapi", request);
    // The file, then the request naming it where it landed (3.9.5 execute_remote_request).
    assert_eq!(
        link_commands(&c, frames),
        [
            "new_file", "ok", "file_upd", "ok", "file_end", "ok", "dapi", "ok"
        ]
    );
    let dapi = &c.frames[frames + 6].3;
    assert!(
        String::from_utf8_lossy(dapi).ends_with(
            r#" {"function": "POST/agents/groups/:group_id/configuration", "arguments": {"group_id": "default", "tmp_file": "queue/cluster/worker1/api_tmp_file_7.xml", "wait_for_complete": true}, "from_cluster": false}"#
        ),
        "{}",
        String::from_utf8_lossy(dapi)
    );
    // Sent, so removed here, as dapi.py's send_tmp_file does.
    assert_eq!(file_of(&c, w1, "/tmp/api_tmp_file_7.xml"), None);
    let landed = "/queue/cluster/worker1/api_tmp_file_7.xml";
    assert_eq!(file_of(&c, m, landed).as_deref(), Some(BODY));
    assert_eq!(c.held_calls.len(), 1);
    assert_eq!(
        c.held_calls[0].2.arguments,
        r#"{"group_id": "default", "tmp_file": "queue/cluster/worker1/api_tmp_file_7.xml"}"#
    );
    // Claimed: the sweep of unclaimed files leaves it while the call runs...
    c.run_for(Duration::from_secs(301));
    assert_eq!(file_of(&c, m, landed).as_deref(), Some(BODY));
    assert!(
        !c.events_of(m)
            .iter()
            .any(|e| matches!(e, NodeEvent::UnclaimedFileRemoved { .. })),
    );
    // ...and it goes with the request.
    let (member, id, _) = c.held_calls.pop().unwrap();
    c.members[member]
        .node
        .handle_api_done(c.now, id, r#"{"data": "ok", "error": 0}"#.to_owned());
    c.pump();
    assert_eq!(file_of(&c, m, landed), None);
}

#[test]
fn a_request_with_tmp_file_the_master_forwards_takes_the_file_to_the_solver_first() {
    let (mut c, m, w1, _w2) = three_nodes();
    put(&mut c, m, "/tmp/api_tmp_file_8.xml", BODY);
    c.hold_calls.push(w1);
    let client = c.local_connect(m, 900);
    let frames = c.frames.len();
    // A distributed_master route with node_id: the master sends it to worker1.
    let request = br#"{"function": "/syscheck/:agent_id", "arguments": {"node_id": "worker1", "tmp_file": "tmp/api_tmp_file_8.xml"}, "from_cluster": false}"#;
    c.local_ask(client, "dapi", request);
    assert_eq!(
        link_commands(&c, frames),
        [
            "new_file", "ok", "file_upd", "ok", "file_end", "ok", "dapi", "ok"
        ]
    );
    let landed = "/queue/cluster/worker1/api_tmp_file_8.xml";
    assert_eq!(file_of(&c, w1, landed).as_deref(), Some(BODY));
    assert_eq!(file_of(&c, m, "/tmp/api_tmp_file_8.xml"), None);
    assert_eq!(
        c.held_calls[0].2.arguments,
        r#"{"tmp_file": "queue/cluster/worker1/api_tmp_file_8.xml"}"#
    );
}

/// A 3.9.5 worker's `send_tmp_file`: `new_file /tmp/<name>` (its path relative to the install
/// root), the chunks, `file_end`, then the request whose `tmp_file` names that path (both forms:
/// `/tmp/<name>` and the API's `tmp/<name>`). The file lands in the link's inbox, not the
/// install's tmp/, and the request runs on it.
#[test]
fn a_3_9_5_peers_tmp_file_lands_in_its_inbox_and_its_request_runs_on_it() {
    let mut raw = RawMaster::master01();
    raw.hold_calls = true;
    let worker = raw.join(1, "worker1", "10.0.0.2:40001");
    for (n, tmp_file) in [
        (1, "/tmp/api_tmp_file_1.xml"),
        (2, "tmp/api_tmp_file_2.xml"),
    ] {
        let name = format!("api_tmp_file_{n}.xml");
        let body = [BODY, name.as_bytes()].concat();
        raw.send_file(worker, &format!("/tmp/{name}"), &body);
        let landed = format!("/queue/cluster/worker1/{name}");
        let stored =
            |raw: &RawMaster, path: &str| raw.exec.storage().files().get(&p(path)).cloned();
        assert_eq!(stored(&raw, &landed).as_deref(), Some(&body[..]));
        assert_eq!(stored(&raw, &format!("/tmp/{name}")), None);
        let request = format!(
            r#"5500{n} {{"function": "POST/agents/groups/:group_id/configuration", "arguments": {{"group_id": "default", "tmp_file": "{tmp_file}", "wait_for_complete": true}}, "from_cluster": false}}"#
        );
        assert_eq!(
            raw.ask(worker, "dapi", request.as_bytes()),
            ok(dapi_text::ADDED)
        );
        assert_eq!(raw.held_calls.len(), 1, "{tmp_file}");
        assert_eq!(
            raw.held_calls[0].1.arguments,
            format!(r#"{{"group_id": "default", "tmp_file": "queue/cluster/worker1/{name}"}}"#)
        );
        // Claimed: the sweep of unclaimed files leaves it while the call runs (the worker
        // keeps its link alive)...
        for _ in 0..7 {
            raw.advance(Duration::from_secs(43));
            assert_eq!(raw.ask(worker, "echo-c", b"keepalive").0, "ok-m");
        }
        assert_eq!(stored(&raw, &landed).as_deref(), Some(&body[..]));
        // ...and it goes with the request.
        let (id, _) = raw.held_calls.pop().unwrap();
        let answer = r#"{"data": "ok", "error": 0}"#.to_owned();
        raw.node.handle_api_done(raw.now, id, answer);
        raw.pump();
        assert_eq!(stored(&raw, &landed), None);
    }
    assert!(!raw.take_events().iter().any(|e| matches!(
        e,
        NodeEvent::UnclaimedFileRemoved { .. } | NodeEvent::Error { .. }
    )),);
}

/// Any other path outside the inbox stays refused, with nothing written, and a request naming
/// such a path claims nothing.
#[test]
fn hostile_tmp_paths_from_a_peer_are_refused_and_nothing_is_written() {
    let mut raw = RawMaster::master01();
    let worker = raw.join(1, "worker1", "10.0.0.2:40001");
    let before = raw.exec.storage().files();
    let long = format!("/tmp/{}", "a".repeat(256));
    for path in [
        "/tmp/../etc/x",
        "/tmp/a/b",
        "/etc/x",
        "/tmp/",
        "/tmp/..",
        "/tmpx/a",
        "tmp/a",
        "/queue/cluster/worker2/a",
        &long,
    ] {
        let sent = raw.try_send_file(worker, path, BODY);
        assert!(sent.is_err(), "{path}: {sent:?}");
        assert_eq!(raw.exec.storage().files(), before, "{path}");
    }
    // A name the connection takes but no install path can hold: received, never written (as an
    // inbox name of the same kind).
    raw.send_file(worker, "/tmp/a\\b", BODY);
    assert_eq!(raw.exec.storage().files(), before);
    let events = raw.take_events();
    let refused = |e: &&NodeEvent| matches!(e, NodeEvent::Error { .. });
    assert_eq!(events.iter().filter(refused).count(), 10, "{events:?}");
    assert!(
        events.iter().any(|e| matches!(e, NodeEvent::Error {
            error: NodeError::RefusedFilePath { path }, ..
        } if path == "/tmp/a\\b")),
        "{events:?}"
    );
}
