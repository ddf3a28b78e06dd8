//! The DAPI pieces against upstream's facts and recordings:
//! * the route table entry by entry against `../shared/spec/v3.9/dapi_routes.json` (extracted
//!   from 3.9.5 `requests_list.py`);
//! * every request recorded on the local sockets and on the TCP link of a real 3.9.5 master and
//!   worker (`dapi_frames.json`, `dapi_via_*.json`) parsed and written back byte for byte, with
//!   the payload around it (`dapi`, `dapi_forward`, `dapi_cluster`);
//! * every recorded answer (`str_upd` strings, `control_res`, the API's results) read and written
//!   back byte for byte, and the `print_json` ones rebuilt from their parts;
//! * the requests the API put on the local socket are its `api_request_json` after upstream's
//!   `distribute_function` filled `wait_for_complete`;
//! * each recorded hop was routed as our decision says, and the requests the master forwarded
//!   (`dapi_forward` from its API, `dapi <id>` to the worker) are exactly our solver plans, with
//!   the agent table taken from the recorded `/agents` answer.

use std::collections::BTreeMap;

use serde_json::Value;
use wazuh_cluster_sync::dapi::json::{JsonLimits, JsonValue};
use wazuh_cluster_sync::dapi::merge::{data_answer, error_answer};
use wazuh_cluster_sync::dapi::names::{
    ChainName, Channel, DapiCall, DapiForward, DapiResult, ForwardTarget,
};
use wazuh_cluster_sync::dapi::request::{DapiLimits, DapiRequest};
use wazuh_cluster_sync::dapi::routes::ROUTES;
use wazuh_cluster_sync::dapi::routing::{
    Destination, NodeContext, SolverTarget, WorkerLocalDapi, plan_solvers, route_request,
    worker_local_dapi,
};
use wazuh_cluster_sync::integrity::items::NodeType;

#[test]
fn route_table_matches_upstream_entry_by_entry() {
    let spec = wazuh_cluster_vectors::spec_json("v3.9/dapi_routes.json");
    let theirs = spec["routes"]
        .as_array()
        .expect("dapi_routes.json has a `routes` array");
    assert_eq!(ROUTES.len(), theirs.len(), "number of routes");
    for (i, (ours, theirs)) in ROUTES.iter().zip(theirs).enumerate() {
        assert_eq!(theirs["route"], ours.path, "route #{i}");
        assert_eq!(theirs["type"], ours.request_type.as_str(), "{}", ours.path);
        assert_eq!(theirs["function"], ours.framework_function, "{}", ours.path);
        assert_eq!(theirs["is_async"], ours.is_async, "{}", ours.path);
    }
}

/// One recorded frame: who saw it, on which connection, its command and its whole payload.
struct RecordedFrame {
    conn: String,
    cmd: String,
    payload: Vec<u8>,
}

/// The recordings store payloads as latin-1 text (one char a byte).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("recorded payload is latin-1"))
        .collect()
}

/// Every DAPI frame of the recorded session and of the API calls, as each process saw it.
fn recorded_frames() -> Vec<RecordedFrame> {
    let mut frames = Vec::new();
    let session = wazuh_cluster_vectors::json("v3.9/dapi_frames.json");
    for role in ["worker", "master"] {
        for frame in session["frames"][role].as_array().expect("frames") {
            let preview = frame["preview"].as_str().expect("preview");
            // The preview is the whole plaintext payload, not a prefix.
            assert_eq!(frame["plain_len"], latin1(preview).len());
            frames.push(RecordedFrame {
                conn: frame["conn"].as_str().expect("conn").to_owned(),
                cmd: frame["cmd"].as_str().expect("cmd").to_owned(),
                payload: latin1(preview),
            });
        }
    }
    for file in ["v3.9/dapi_via_worker.json", "v3.9/dapi_via_master.json"] {
        for call in wazuh_cluster_vectors::json(file)["calls"]
            .as_array()
            .expect("calls")
        {
            for frame in call["local_frames"].as_array().expect("local_frames") {
                let client_side = frame["dir"] == "client->local_server";
                frames.push(RecordedFrame {
                    conn: if client_side {
                        "LocalClient"
                    } else {
                        "LocalServer"
                    }
                    .to_owned(),
                    cmd: frame["cmd"].as_str().expect("cmd").to_owned(),
                    payload: latin1(frame["payload"].as_str().expect("payload")),
                });
            }
        }
    }
    frames
}

fn is_local_socket(conn: &str) -> bool {
    conn.starts_with("Local")
}

fn round_trip_request(json: &[u8]) {
    let request = DapiRequest::parse(json, &DapiLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(json)));
    assert_eq!(request.to_python_json().as_bytes(), json);
}

#[test]
fn every_recorded_request_is_written_back_byte_for_byte() {
    let mut checked = 0;
    for frame in recorded_frames() {
        let channel = if is_local_socket(&frame.conn) {
            Channel::LocalSocket
        } else {
            Channel::Link
        };
        match frame.cmd.as_str() {
            "dapi" => {
                let call = DapiCall::parse(&frame.payload, channel).expect("dapi payload");
                assert_eq!(call.prefix.is_some(), channel == Channel::Link);
                round_trip_request(call.request_json);
                assert_eq!(call.to_payload(), frame.payload);
            }
            "dapi_forward" => {
                let forward = DapiForward::parse(&frame.payload).expect("dapi_forward payload");
                round_trip_request(forward.request_json);
                assert_eq!(forward.to_payload(), frame.payload);
            }
            "dapi_cluster" => round_trip_request(&frame.payload),
            "dapi_res" => {
                let result = DapiResult::parse(&frame.payload, channel).expect("dapi_res");
                assert_eq!(result.to_payload(), frame.payload);
            }
            _ => continue,
        }
        checked += 1;
    }
    // 7 `dapi` on the link and 4 + 2 on local sockets, seen by both ends; forwards; answers.
    assert!(
        checked >= 30,
        "only {checked} DAPI frames found in the recordings"
    );
}

fn limits() -> JsonLimits {
    DapiLimits::default().answer
}

/// An answer read and written back; `print_json` answers rebuilt from their parts.
fn check_answer(text: &[u8]) {
    let value = JsonValue::parse(text, &limits())
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(text)));
    assert_eq!(value.to_python_json().as_bytes(), text);
    let object = value.as_object().expect("answers are objects");
    let keys: Vec<&str> = object.keys().collect();
    let rebuilt = match (keys.as_slice(), object.get("error")) {
        (["data", "error"], Some(JsonValue::Int(0))) => data_answer(object.get("data").unwrap()),
        (["message", "error"], Some(JsonValue::Int(code))) => error_answer(
            object.get("message").and_then(JsonValue::as_str).unwrap(),
            u16::try_from(*code).unwrap(),
        ),
        // `dapi_cluster` answers (`{"error": 0, "data": ...}`) and control replies.
        _ => return,
    };
    assert_eq!(rebuilt.as_bytes(), text);
}

#[test]
fn every_recorded_answer_is_written_back_byte_for_byte() {
    let mut checked = 0;
    for frame in recorded_frames() {
        let json = match frame.cmd.as_str() {
            // `<string id> SP <answer>`
            "str_upd" => frame
                .payload
                .splitn(2, |&b| b == b' ')
                .nth(1)
                .expect("str_upd payload"),
            "control_res" => &frame.payload[..],
            "ok" if frame.payload.first() == Some(&b'{') => &frame.payload[..],
            _ => continue,
        };
        check_answer(json);
        checked += 1;
    }
    for file in ["v3.9/dapi_via_worker.json", "v3.9/dapi_via_master.json"] {
        for call in wazuh_cluster_vectors::json(file)["calls"]
            .as_array()
            .expect("calls")
        {
            if let Value::String(result) = &call["result"] {
                check_answer(result.as_bytes());
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 40,
        "only {checked} answers found in the recordings"
    );
}

/// The API's request as the vector file holds it (key order kept: read with our own parser).
fn api_requests(file: &str) -> Vec<(String, JsonValue)> {
    let doc = JsonValue::parse(&wazuh_cluster_vectors::read(file), &limits()).expect("vector");
    let calls = doc.as_object().and_then(|d| d.get("calls")).expect("calls");
    calls
        .as_array()
        .expect("calls array")
        .iter()
        .filter_map(|call| {
            let call = call.as_object()?;
            let request = call.get("api_request_json")?;
            let title = call.get("title")?.as_str()?.to_owned();
            Some((title, request.clone()))
        })
        .collect()
}

#[test]
fn api_requests_reach_the_worker_socket_with_wait_for_complete_filled() {
    let file = "v3.9/dapi_via_worker.json";
    let sent: Vec<Vec<u8>> = wazuh_cluster_vectors::json(file)["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|call| call["api_request_json"].is_object())
        .map(|call| {
            latin1(
                call["local_frames"][0]["payload"]
                    .as_str()
                    .expect("payload"),
            )
        })
        .collect();
    let requests = api_requests(file);
    assert_eq!(requests.len(), 4);
    for ((title, api_request), sent) in requests.iter().zip(&sent) {
        let mut request = DapiRequest::parse(
            api_request.to_python_json().as_bytes(),
            &DapiLimits::default(),
        )
        .unwrap();
        request.fill_wait_for_complete();
        assert_eq!(request.to_python_json().as_bytes(), &sent[..], "{title}");
    }
}

const MASTER: &str = "master01";

/// `agent id → node name` as the recorded `/agents` answer lists them.
fn recorded_agent_table() -> BTreeMap<String, String> {
    let calls = wazuh_cluster_vectors::json("v3.9/dapi_via_master.json");
    let result = calls["calls"][0]["result"]
        .as_str()
        .expect("/agents result");
    let answer: Value = serde_json::from_str(result).expect("result is JSON");
    answer["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|agent| {
            let field = |name: &str| agent[name].as_str().expect("agent field").to_owned();
            (field("id"), field("node_name"))
        })
        .collect()
}

/// The recorded payloads of `cmd` that `role` saw going `dir` (`SEND` / `RECV`) on connections
/// whose name starts with `conn`.
fn session_payloads(role: &str, conn: &str, dir: &str, cmd: &str) -> Vec<Vec<u8>> {
    wazuh_cluster_vectors::json("v3.9/dapi_frames.json")["frames"][role]
        .as_array()
        .expect("frames")
        .iter()
        .filter(|f| f["cmd"] == cmd && f["dir"] == dir)
        .filter(|f| f["conn"].as_str().is_some_and(|c| c.starts_with(conn)))
        .map(|f| latin1(f["preview"].as_str().expect("preview")))
        .collect()
}

fn parse(json: &[u8]) -> DapiRequest {
    DapiRequest::parse(json, &DapiLimits::default()).expect("recorded request")
}

#[test]
fn recorded_hops_follow_our_routing_and_plans() {
    let agents = recorded_agent_table();
    assert_eq!(agents.get("001").map(String::as_str), Some("worker1"));
    let master = NodeContext::new(NodeType::Master, MASTER);
    let worker = NodeContext::new(NodeType::Worker, "worker1");

    // Worker's API: `/agents` (local_master) and `/syscollector/:agent_id/os`
    // (distributed_master) go to the master as `dapi`; the cluster control routes as
    // `dapi_cluster`.
    for (title, api_request) in api_requests("v3.9/dapi_via_worker.json") {
        let mut request = parse(api_request.to_python_json().as_bytes());
        if worker_local_dapi(request.function()) == WorkerLocalDapi::ClusterControl {
            continue;
        }
        assert_eq!(
            route_request(&mut request, &worker),
            Ok(Destination::ForwardToMaster),
            "{title}"
        );
    }
    let control = session_payloads("worker", "WorkerHandler", "SEND", "dapi_cluster");
    for payload in &control {
        let function = parse(payload).function().to_owned();
        assert_eq!(
            worker_local_dapi(&function),
            WorkerLocalDapi::ClusterControl
        );
    }
    assert_eq!(control.len(), 2, "/cluster/nodes and /cluster/healthcheck");

    // The master receives them from worker1 (`dapi <LC> <json>`, from_cluster false): `/agents`
    // runs there, `/syscollector` is placed on worker1 and sent to it as `dapi <id> <json>`, where
    // it is already placed and runs.
    let sent_to_worker = session_payloads("master", "MasterHandler", "SEND", "dapi");
    let mut placed = 0;
    for payload in session_payloads("master", "MasterHandler", "RECV", "dapi") {
        let call = DapiCall::parse(&payload, Channel::Link).expect("dapi from worker1");
        let mut request = parse(call.request_json);
        match route_request(&mut request, &master).expect("known route") {
            Destination::ExecuteHere => assert_eq!(request.function(), "/agents"),
            Destination::ChooseSolverNodes => {
                let plan = plan_solvers(&request, MASTER, &agents).expect("plan");
                let [entry] = plan.entries() else {
                    panic!("one agent, one node")
                };
                assert_eq!(entry.target, SolverTarget::Worker("worker1".into()));
                let json = entry.request.to_python_json();
                assert!(
                    sent_to_worker.iter().any(|sent| {
                        DapiCall::parse(sent, Channel::Link)
                            .is_ok_and(|c| c.request_json == json.as_bytes())
                    }),
                    "the master sent {json}"
                );
                let mut on_worker = parse(json.as_bytes());
                assert_eq!(
                    route_request(&mut on_worker, &worker),
                    Ok(Destination::ExecuteHere)
                );
                placed += 1;
            }
            Destination::ForwardToMaster => panic!("the master does not forward to itself"),
        }
    }
    assert_eq!(placed, 1);

    // The master's API, `/syscollector/:agent_id/os`: placed on worker1 and handed to the
    // master's local server as `dapi_forward worker1 <json>`.
    let (title, api_request) = &api_requests("v3.9/dapi_via_master.json")[1];
    let mut request = parse(api_request.to_python_json().as_bytes());
    assert_eq!(
        route_request(&mut request, &master),
        Ok(Destination::ChooseSolverNodes),
        "{title}"
    );
    let plan = plan_solvers(&request, MASTER, &agents).expect("plan");
    let [entry] = plan.entries() else {
        panic!("one agent, one node")
    };
    let json = entry.request.to_python_json();
    let forward = DapiForward {
        target: ForwardTarget::Node(ChainName::new(b"worker1").expect("name")),
        request_json: json.as_bytes(),
    };
    let recorded = session_payloads("master", "LocalServerHandlerMaster", "RECV", "dapi_forward");
    assert_eq!(recorded, [forward.to_payload()]);
}
