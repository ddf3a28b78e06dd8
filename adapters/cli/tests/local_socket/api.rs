//! `wazuh-cluster api` against the fake node: what it sends, what it prints, how it exits, for
//! the exchanges a real 3.9.5 local server had (recorded) and the failures it can answer with.

use serde_json::json;

use crate::fake_node::*;

/// Runs `api` with `args` (then `--wazuh-path root`) against a fake node playing `script`;
/// answers the exit status, stdout, stderr and the frames the command sent.
fn api(name: &str, args: &[&str], script: Script) -> (Option<i32>, String, String, Vec<Seen>) {
    let root = install_root(name);
    let node = fake_node(&socket_of(&root), vec![script]);
    let mut line = vec!["api"];
    line.extend_from_slice(args);
    line.extend_from_slice(&["--wazuh-path", root.to_str().unwrap()]);
    let output = wazuh_cluster(&line);
    let seen = node.join().unwrap();
    (output.status.code(), stdout(&output), stderr(&output), seen)
}

#[test]
fn an_answer_from_a_master_is_printed_and_exits_zero() {
    let request = r#"{"function": "/agents/summary", "arguments": {"wait_for_complete": false}, "from_cluster": false}"#;
    let answer = r#"{"data": {"Total": 2, "Active": 1, "Disconnected": 0, "Never connected": 1, "Pending": 0}, "error": 0}"#;
    let frames = string_answer_frames(
        "dapi",
        request,
        "Added request to API requests queue",
        answer,
    );
    let (code, out, err, seen) = api(
        "master",
        &["/agents/summary"],
        Script::Replay(frames.clone()),
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(out, format!("{answer}\n"));
    assert_eq!(
        commands_and_payloads(&seen),
        recorded_client_frames(&frames)
    );
}

#[test]
fn a_workers_recorded_answer_with_an_error_is_printed_and_exits_one() {
    // A real 3.9.5 worker: the request went to the master, then to the worker holding agent
    // 001, whose wazuh-db was not running.
    let frames = recorded_frames(
        "v3.9/dapi_via_worker.json",
        "dapi /syscollector/:agent_id/os (distributed_master)",
    );
    let (code, out, err, seen) = api(
        "worker-error",
        &["/syscollector/:agent_id/os", r#"{"agent_id": "001"}"#],
        Script::Replay(frames.clone()),
    );
    assert_eq!((code, err.as_str()), (Some(1), ""));
    assert_eq!(
        out,
        "{\"message\": \"Could not connect to wdb socket: [Errno 2] No such file or directory\", \
         \"error\": 2005}\n"
    );
    assert_eq!(
        (seen[0].command.as_str(), seen[0].payload.as_str()),
        (
            "dapi",
            r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001", "wait_for_complete": false}, "from_cluster": false}"#
        )
    );
    assert_eq!(
        commands_and_payloads(&seen[1..]),
        recorded_client_frames(&frames)[1..]
    );
}

#[test]
fn a_cluster_route_through_a_worker_is_answered_with_control_res() {
    let frames = recorded_frames("v3.9/dapi_via_worker.json", "dapi /cluster/nodes");
    let (code, out, err, seen) = api(
        "worker-nodes",
        &["/cluster/nodes"],
        Script::Replay(frames.clone()),
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(out, format!("{}\n", frames[2]["payload"].as_str().unwrap()));
    assert!(out.starts_with(r#"{"error": 0, "data": {"totalItems": 2"#));
    assert_eq!(
        commands_and_payloads(&seen[1..]),
        [("ok".to_owned(), "Response received".to_owned())]
    );
}

#[test]
fn a_refused_request_prints_the_document_upstreams_client_makes_of_it() {
    let refusal = "WazuhException 3023 Worker node is not connected to master";
    let (code, out, err, _) = api(
        "refused",
        &["/agents"],
        Script::Answer("err", refusal.to_owned()),
    );
    assert_eq!((code, err.as_str()), (Some(1), ""));
    assert_eq!(
        out,
        "{\"error\": 3023, \"message\": \"Worker node is not connected to master\"}\n"
    );
}

#[test]
fn a_dapi_err_prints_the_3009_document() {
    let frames = vec![
        json!({"dir": "client->local_server", "counter": 1, "cmd": "dapi", "payload": ""}),
        json!({"dir": "local_server->client", "counter": 1, "cmd": "ok", "kind": "RESP",
               "payload": "Added request to API requests queue"}),
        json!({"dir": "local_server->client", "counter": 30, "cmd": "dapi_err", "kind": "REQ",
               "payload": "Error in distributed API: Timeout exceeded"}),
        json!({"dir": "client->local_server", "counter": 30, "cmd": "ok",
               "payload": "Response received"}),
    ];
    let (code, out, err, seen) = api("dapi-err", &["/agents"], Script::Replay(frames.clone()));
    assert_eq!((code, err.as_str()), (Some(1), ""));
    assert_eq!(
        out,
        "{\"error\": 3009, \"message\": \"Error in distributed API: Timeout exceeded\"}\n"
    );
    assert_eq!(
        commands_and_payloads(&seen[1..]),
        recorded_client_frames(&frames)[1..]
    );
}

#[test]
fn no_node_is_a_message_on_stderr_and_bad_arguments_a_usage_error() {
    let root = install_root("api-none");
    let output = wazuh_cluster(&["api", "/agents", "--wazuh-path", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "wazuh-cluster api: is the node running? no socket at {} (No such file or directory \
             (os error 2))\n",
            socket_of(&root).display()
        )
    );
    let output = wazuh_cluster(&["api", "/agents", "\"001\""]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("must be a JSON object, e.g. '{\"agent_id\": \"001\"}', not a str"),
        "{}",
        stderr(&output)
    );
}
