//! `wazuh-cluster control` against the fake node replaying what the real 3.9.5 local servers
//! answered to upstream's `cluster_control` (`dapi_via_master.json`, `dapi_via_worker.json`):
//! the text printed, and that our client sends what upstream's sent.

use std::path::Path;

use serde_json::Value;
use wazuh_cluster_vectors::{SESSION_TREES, recorded_file};

use crate::fake_node::*;

/// Writes the recorded `tree`'s ossec.conf (session trees) into `root`.
fn install_recorded_ossec_conf(root: &Path, tree: &str) {
    let bytes = recorded_file(SESSION_TREES, tree, "etc/ossec.conf");
    std::fs::write(root.join("etc/ossec.conf"), bytes).unwrap();
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
fn list_agents_through_a_worker_sends_control_pys_request_and_prints_the_table() {
    let root = install_root("a-worker");
    // A real 3.9.5 worker's local server answering /agents (its answer selects fewer fields
    // than -a asks for: the others are printed `unknown`, as upstream fills them).
    let frames = recorded_frames("v3.9/dapi_via_worker.json", "dapi /agents (local_master)");
    let node = fake_node(&socket_of(&root), vec![Script::Replay(frames.clone())]);
    let output = wazuh_cluster(&[
        "control",
        "-a",
        "-fn",
        "worker1",
        "master01",
        "-fs",
        "Active",
        "Never connected",
        "--wazuh-path",
        root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "ID   NAME         IP       STATUS   VERSION  NODE NAME  \n\
         000  localhost    unknown  unknown  unknown  unknown    \n\
         001  agent-one    unknown  unknown  unknown  worker1    \n\
         002  agent-two    unknown  unknown  unknown  worker1    \n\
         003  agent-three  unknown  unknown  unknown  master01   \n\
         004  agent-four   unknown  unknown  unknown  worker1    \n"
    );
    let seen = node.join().unwrap();
    assert_eq!(
        (seen[0].command.as_str(), seen[0].payload.as_str()),
        (
            "dapi",
            r#"{"function": "/agents", "from_cluster": false, "arguments": {"filters": {"status": "Active,Never connected", "node_name": "worker1,master01"}, "limit": null, "wait_for_complete": false, "select": {"fields": ["id", "ip", "name", "status", "node_name", "version"]}}}"#
        )
    );
    // Then the string's id, its chunk and the dapi_res acknowledged as upstream's client did.
    assert_eq!(
        commands_and_payloads(&seen[1..]),
        recorded_client_frames(&frames)[1..]
    );
}

#[test]
fn list_agents_from_a_master_prints_every_field_it_answers() {
    let root = install_root("a-master");
    let answer = r#"{"data": {"items": [{"id": "000", "name": "master01", "ip": "127.0.0.1", "status": "Active", "version": "Wazuh v3.9.5", "node_name": "master01"}, {"id": "001", "name": "web-01", "ip": "any", "status": "Never connected", "node_name": "worker1"}], "totalItems": 2}, "error": 0}"#;
    let frames = string_answer_frames("dapi", "", "Added request to API requests queue", answer);
    let node = fake_node(&socket_of(&root), vec![Script::Replay(frames)]);
    let output = wazuh_cluster(&["control", "-a", "--wazuh-path", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "ID   NAME      IP         STATUS           VERSION       NODE NAME  \n\
         000  master01  127.0.0.1  Active           Wazuh v3.9.5  master01   \n\
         001  web-01    any        Never connected  unknown       worker1    \n"
    );
    let seen = node.join().unwrap();
    assert!(
        seen[0]
            .payload
            .contains(r#""filters": {"status": "all", "node_name": "all"}"#),
        "{}",
        seen[0].payload
    );
}

#[test]
fn list_agents_fails_with_the_message_of_an_error_answer() {
    let root = install_root("a-error");
    let answer = r#"{"message": "Could not connect to wdb socket", "error": 2005}"#;
    let frames = string_answer_frames("dapi", "", "Added request to API requests queue", answer);
    let node = fake_node(&socket_of(&root), vec![Script::Replay(frames)]);
    let output = wazuh_cluster(&["control", "-a", "--wazuh-path", root.to_str().unwrap()]);
    node.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "wazuh-cluster control: Error: Could not connect to wdb socket\n"
    );
}

#[test]
fn agent_states_without_list_agents_are_wrong_arguments() {
    let root = install_root("fs-alone");
    let output = wazuh_cluster(&[
        "control",
        "-l",
        "-fs",
        "Active",
        "--wazuh-path",
        root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "wazuh-cluster control: Wrong arguments: -fs/--filter-agent-status goes with \
         -a/--list-agents only\n"
    );
}

#[test]
fn list_nodes_sends_the_node_filter_in_get_nodes() {
    let root = install_root("l-fn");
    let nodes = r#"{"totalItems": 1, "items": [{"name": "worker1", "type": "worker", "version": "3.9.5", "ip": "127.0.0.1"}]}"#;
    let node = fake_node(
        &socket_of(&root),
        vec![Script::Answer("ok", nodes.to_owned())],
    );
    let output = wazuh_cluster(&[
        "control",
        "-l",
        "-fn",
        "worker1",
        "--wazuh-path",
        root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "NAME     TYPE    VERSION  ADDRESS    \nworker1  worker  3.9.5    127.0.0.1  \n"
    );
    let seen = node.join().unwrap();
    assert_eq!(
        seen[0].payload,
        r#"{"filter_node": ["worker1"], "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#
    );
}

#[test]
fn health_of_one_node_sends_upstreams_filter_and_prints_only_it() {
    let root = install_root("i-fn");
    install_recorded_ossec_conf(&root, "master_tree");
    let call = (
        "v3.9/dapi_via_master.json",
        "control.get_health(filter_node=[\"worker1\"])",
    );
    let args = [
        "control",
        "-i",
        "-fn",
        "worker1",
        "--wazuh-path",
        root.to_str().unwrap(),
    ];
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
fn a_workers_error_text_in_control_res_is_refused_and_printed() {
    let root = install_root("l-error");
    let error = "Error sending request: timeout expired.";
    let frames = vec![
        serde_json::json!({"dir": "client->local_server", "counter": 1, "cmd": "get_nodes", "payload": ""}),
        serde_json::json!({"dir": "local_server->client", "counter": 1, "cmd": "ok", "kind": "RESP", "payload": "Sent request to master node"}),
        serde_json::json!({"dir": "local_server->client", "counter": 9, "cmd": "control_res", "kind": "REQ", "payload": error}),
        serde_json::json!({"dir": "client->local_server", "counter": 9, "cmd": "err", "payload": ""}),
    ];
    let node = fake_node(&socket_of(&root), vec![Script::Replay(frames)]);
    let output = wazuh_cluster(&["control", "-l", "--wazuh-path", root.to_str().unwrap()]);
    let seen = node.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("wazuh-cluster control: Error: {error}\n")
    );
    // Refused as upstream's local client refuses it.
    assert_eq!(
        (seen[1].command.as_str(), seen[1].payload.as_str()),
        ("err", format!("Error processing request: {error}").as_str())
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
