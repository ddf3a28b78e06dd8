//! The built-in `/agents` against the real 3.9.5 master of the recorded session
//! (`v3.9/dapi_via_master.json`): its API asked `/agents` with `select` `id,name,node_name`, and
//! the master answered from its `global.db`. We answer the same request from the master's
//! recorded install tree (`v3.9/session/trees.json`), as it stood when the call was made, and
//! must produce the recorded answer byte for byte.
//!
//! What the tree holds and what it does not (`session/README.md`): `etc/client.keys` lists agents
//! 001 to 004; the master's agent-info files are the worker's ones it had received by then
//! (`check.json`'s `master_agent_info`: agent-one, -two, -four; `ghost` refused); the recording
//! had `var/run/<daemon>-1.pid` files so that the daemons read as running; the node of each
//! agent (001, 002, 004 on `worker1`, 003 on `master01`) was in the recorded `global.db`, which
//! the tree does not carry: it is what the master knows and passes as `ApiCall::agent_nodes`.
//! Agent 000 is `localhost` with node `unknown`, the schema's row (no `wazuh-modulesd` ran).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wazuh_cluster_sync::dapi::json::{JsonLimits, JsonValue};
use wazuh_cluster_sync::dapi::{ApiCall, BuiltinExecutor, DapiRequest, Route};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

/// The daemons whose pid files the recording created (upstream's `get_manager_status` list).
const DAEMONS: [&str; 16] = [
    "ossec-agentlessd",
    "ossec-analysisd",
    "ossec-authd",
    "ossec-csyslogd",
    "ossec-dbd",
    "ossec-monitord",
    "ossec-execd",
    "ossec-integratord",
    "ossec-logcollector",
    "ossec-maild",
    "ossec-remoted",
    "ossec-reportd",
    "ossec-syscheckd",
    "wazuh-clusterd",
    "wazuh-modulesd",
    "wazuh-db",
];

fn add(storage: &mut MemoryStorage, path: &str, content: Vec<u8>, mtime: Timestamp) {
    storage
        .add_file(&InstallPath::new(path).unwrap(), content, mtime, 0o660)
        .unwrap();
}

/// The master's install tree when the API called it.
fn master_install() -> MemoryStorage {
    let trees = wazuh_cluster_vectors::json("v3.9/session/trees.json");
    let check = wazuh_cluster_vectors::json("v3.9/session/check.json");
    let mut storage = MemoryStorage::new();
    let files = |tree: &str| -> Vec<(String, Vec<u8>, Timestamp)> {
        trees[tree]
            .as_array()
            .expect("tree is a list")
            .iter()
            .map(|entry| {
                (
                    entry["path"].as_str().expect("path").to_owned(),
                    STANDARD
                        .decode(entry["content_b64"].as_str().expect("content_b64"))
                        .expect("base64"),
                    timestamp_from_py_float(entry["mtime"].as_f64().expect("mtime")),
                )
            })
            .collect()
    };
    for (path, content, mtime) in files("master_tree") {
        add(&mut storage, &format!("/{path}"), content, mtime);
    }
    let received = check["master_agent_info"]
        .as_object()
        .expect("master_agent_info");
    for (path, content, _) in files("worker_tree") {
        if let Some(name) = path.strip_prefix("queue/agent-info/")
            && let Some(on_master) = received.get(name)
        {
            let mtime = timestamp_from_py_float(on_master["mtime"].as_f64().expect("mtime"));
            add(&mut storage, &format!("/{path}"), content, mtime);
        }
    }
    for daemon in DAEMONS {
        add(
            &mut storage,
            &format!("/var/run/{daemon}-1.pid"),
            b"1\n".to_vec(),
            Timestamp::default(),
        );
    }
    storage
}

/// The recorded call `title` of `file`: its request and answer.
fn recorded_call(file: &str, title: &str) -> (Value, String) {
    let calls = wazuh_cluster_vectors::json(file);
    let call = calls["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .find(|call| call["title"] == title)
        .unwrap_or_else(|| panic!("{file} has no call {title:?}"));
    (
        call["api_request_json"].clone(),
        call["result"].as_str().expect("result").to_owned(),
    )
}

#[test]
fn agents_on_the_recorded_master_tree_answer_what_the_real_master_answered() {
    let (request_json, recorded) =
        recorded_call("v3.9/dapi_via_master.json", "dapi /agents (local_master)");
    let request = DapiRequest::parse(
        request_json.to_string().as_bytes(),
        &wazuh_cluster_sync::dapi::DapiLimits::default(),
    )
    .expect("recorded request parses");
    let route = Route::lookup(request.function()).expect("a 3.9.5 route");
    let agent_nodes: BTreeMap<String, String> = [
        ("001", "worker1"),
        ("002", "worker1"),
        ("003", "master01"),
        ("004", "worker1"),
    ]
    .into_iter()
    .map(|(id, node)| (id.to_owned(), node.to_owned()))
    .collect();
    let call = ApiCall::new(&request, route.framework_function, None, agent_nodes);
    assert!(BuiltinExecutor.serves(&call));

    // The recording's clock: its agent-info files' time (only `status` would depend on it).
    let now = Timestamp::from_secs(1_795_682_860);
    let ours = BuiltinExecutor.run(&master_install(), &call, now);
    assert_eq!(ours, recorded);

    // The worker's API got the same answer from the same master, with the items' keys in
    // another order: upstream builds them from Python sets, whose order changes per process.
    let (_, through_worker) =
        recorded_call("v3.9/dapi_via_worker.json", "dapi /agents (local_master)");
    assert_ne!(ours, through_worker);
    let parse = |text: &str| -> Value { serde_json::from_str(text).expect("JSON") };
    assert_eq!(parse(&ours), parse(&through_worker));
    // And ours is written as `json.dumps` writes it.
    assert_eq!(
        JsonValue::parse(ours.as_bytes(), &JsonLimits::default())
            .unwrap()
            .to_python_json(),
        ours
    );
}
