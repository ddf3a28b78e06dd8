//! Routing tests. The plans' expected requests are what upstream 3.9.5's own
//! `DistributedAPI.forward_request` / `get_solver_node` produced under python3.7 for the same
//! request and agent table (its database stubbed to sort by `node_name DESC`, ids ascending),
//! node by node in the order it sent them.

use proptest::prelude::*;

use super::*;
use crate::dapi::request::DapiLimits;

const MASTER: &str = "master01";

/// The agent table of every case: the manager's own agent on `unknown`, the others spread over
/// two workers and the master.
fn agents() -> BTreeMap<String, String> {
    [
        ("000", "unknown"),
        ("001", "worker1"),
        ("002", "worker2"),
        ("003", MASTER),
        ("004", "worker1"),
        ("010", "worker2"),
    ]
    .into_iter()
    .map(|(id, node)| (id.to_owned(), node.to_owned()))
    .collect()
}

fn request(text: &str) -> DapiRequest {
    let mut request = DapiRequest::parse(text.as_bytes(), &DapiLimits::default()).unwrap();
    let master = NodeContext::new(NodeType::Master, MASTER);
    assert_eq!(
        route_request(&mut request, &master),
        Ok(Destination::ChooseSolverNodes),
        "{text}"
    );
    request
}

fn worker(name: &str) -> SolverTarget {
    SolverTarget::Worker(name.to_owned())
}

/// (node key, target, request JSON) of each entry.
fn described(plan: &SolverPlan) -> Vec<(String, SolverTarget, String)> {
    plan.entries()
        .iter()
        .map(|e| (e.node.clone(), e.target.clone(), e.request.to_python_json()))
        .collect()
}

fn expect_plan(text: &str, expected: &[(&str, SolverTarget, &str)]) {
    let plan = plan_solvers(&request(text), MASTER, &agents()).unwrap();
    let expected: Vec<(String, SolverTarget, String)> = expected
        .iter()
        .map(|(node, target, json)| ((*node).to_owned(), target.clone(), (*json).to_owned()))
        .collect();
    assert_eq!(described(&plan), expected, "{text}");
    assert_eq!(plan.needs_merge(), expected.len() > 1);
}

#[test]
fn decision_table() {
    use Destination::{ChooseSolverNodes, ExecuteHere, ForwardToMaster};
    use RequestType::{DistributedMaster, LocalAny, LocalMaster};
    // (type, from_cluster, node, expected) read off upstream's conditions.
    let cases = [
        (LocalAny, false, NodeType::Worker, ExecuteHere),
        (LocalAny, false, NodeType::Master, ExecuteHere),
        (LocalMaster, false, NodeType::Worker, ForwardToMaster),
        (LocalMaster, true, NodeType::Worker, ForwardToMaster),
        (LocalMaster, false, NodeType::Master, ExecuteHere),
        (DistributedMaster, false, NodeType::Worker, ForwardToMaster),
        (DistributedMaster, true, NodeType::Worker, ExecuteHere),
        (
            DistributedMaster,
            false,
            NodeType::Master,
            ChooseSolverNodes,
        ),
        (DistributedMaster, true, NodeType::Master, ExecuteHere),
    ];
    for (request_type, from_cluster, node_type, expected) in cases {
        let node = NodeContext::new(node_type, "n");
        assert_eq!(
            decide(request_type, from_cluster, &node),
            expected,
            "{request_type:?} from_cluster={from_cluster} on {node_type:?}"
        );
        // Without the distributed API, or without a cluster, everything runs where received.
        for off in [
            NodeContext {
                dapi_enabled: false,
                ..node.clone()
            },
            NodeContext {
                cluster_enabled: false,
                ..node.clone()
            },
        ] {
            assert_eq!(decide(request_type, from_cluster, &off), ExecuteHere);
        }
    }
}

#[test]
fn route_request_checks_before_deciding() {
    let worker_node = NodeContext::new(NodeType::Worker, "worker1");
    let parse = |text: &str| DapiRequest::parse(text.as_bytes(), &DapiLimits::default()).unwrap();

    let mut unknown = parse(r#"{"function": "/nope", "arguments": {}, "from_cluster": false}"#);
    assert_eq!(
        route_request(&mut unknown, &worker_node),
        Err(DapiError::UnknownFunction("/nope".into()))
    );
    // Refused before filling: the request is left as it came.
    assert_eq!(unknown.arguments().len(), 0);

    let mut agents =
        parse(r#"{"function": "/agents", "arguments": {"limit": 5}, "from_cluster": false}"#);
    assert_eq!(
        route_request(&mut agents, &worker_node),
        Ok(Destination::ForwardToMaster)
    );
    assert_eq!(
        agents.to_python_json(),
        r#"{"function": "/agents", "arguments": {"limit": 5, "wait_for_complete": false}, "from_cluster": false}"#
    );

    let no_cluster = NodeContext {
        cluster_enabled: false,
        ..worker_node
    };
    let mut nodes =
        parse(r#"{"function": "/cluster/nodes", "arguments": {}, "from_cluster": false}"#);
    assert_eq!(
        route_request(&mut nodes, &no_cluster),
        Err(DapiError::ClusterDisabled)
    );
    for allowed in ["/cluster/status", "/cluster/config", "/cluster/node"] {
        let mut request = parse(&format!(
            r#"{{"function": "{allowed}", "arguments": {{}}, "from_cluster": false}}"#
        ));
        assert_eq!(
            route_request(&mut request, &no_cluster),
            Ok(Destination::ExecuteHere),
            "{allowed}"
        );
    }
}

#[test]
fn worker_local_server_sends_cluster_control_routes_apart() {
    for route in CLUSTER_CONTROL_ROUTES {
        assert_eq!(worker_local_dapi(route), WorkerLocalDapi::ClusterControl);
    }
    for route in [
        "/cluster/status",
        "/agents",
        "/cluster/:node_id/info",
        "/nope",
    ] {
        assert_eq!(
            worker_local_dapi(route),
            WorkerLocalDapi::Forward,
            "{route}"
        );
    }
}

#[test]
fn single_agent_goes_to_its_node_and_stays_a_string() {
    expect_plan(
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "ossec_path": "/var/ossec", "from_cluster": false}"#,
        &[(
            "worker1",
            worker("worker1"),
            r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001", "wait_for_complete": false}, "ossec_path": "/var/ossec", "from_cluster": true}"#,
        )],
    );
    expect_plan(
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "003"}, "from_cluster": false}"#,
        &[(
            MASTER,
            SolverTarget::Local,
            r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "003", "wait_for_complete": false}, "from_cluster": true}"#,
        )],
    );
    let unknown = request(
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "999"}, "from_cluster": false}"#,
    );
    assert_eq!(
        plan_solvers(&unknown, MASTER, &agents()),
        Err(DapiError::AgentNotFound("999".into()))
    );
    let nameless: BTreeMap<String, String> = [("005".to_owned(), String::new())].into();
    let nameless_agent = request(
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "005"}, "from_cluster": false}"#,
    );
    assert_eq!(
        plan_solvers(&nameless_agent, MASTER, &nameless).map_err(|e| e.answer_json()),
        Err(r#"{"message": "'node_name'", "error": 1000}"#.to_owned())
    );
}

#[test]
fn agent_lists_are_split_by_node_and_unknown_ids_go_to_the_master() {
    expect_plan(
        r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["010", "999", "001", "003", "004", "001"]}, "from_cluster": false}"#,
        &[
            (
                "worker2",
                worker("worker2"),
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["010"], "wait_for_complete": false}, "from_cluster": true}"#,
            ),
            (
                "worker1",
                worker("worker1"),
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "004"], "wait_for_complete": false}, "from_cluster": true}"#,
            ),
            (
                MASTER,
                SolverTarget::Local,
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["003", "999"], "wait_for_complete": false}, "from_cluster": true}"#,
            ),
        ],
    );
    // No agent of the master requested: its entry for the unknown ids comes last.
    expect_plan(
        r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["004", "998", "001"]}, "from_cluster": false}"#,
        &[
            (
                "worker1",
                worker("worker1"),
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "004"], "wait_for_complete": false}, "from_cluster": true}"#,
            ),
            (
                MASTER,
                SolverTarget::Local,
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["998"], "wait_for_complete": false}, "from_cluster": true}"#,
            ),
        ],
    );
}

#[test]
fn empty_or_all_agent_lists_select_every_agent() {
    let every = |master_ids: &str| {
        [
            (
                "worker2",
                worker("worker2"),
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["002", "010"], "wait_for_complete": false}, "from_cluster": true}"#.to_owned(),
            ),
            (
                "worker1",
                worker("worker1"),
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "004"], "wait_for_complete": false}, "from_cluster": true}"#.to_owned(),
            ),
            (
                "unknown",
                SolverTarget::Local,
                r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["000"], "wait_for_complete": false}, "from_cluster": true}"#.to_owned(),
            ),
            (
                MASTER,
                SolverTarget::Local,
                format!(r#"{{"function": "PUT/agents/restart", "arguments": {{"agent_id": [{master_ids}], "wait_for_complete": false}}, "from_cluster": true}}"#),
            ),
        ]
    };
    for (list, master_ids) in [("[]", r#""003""#), (r#"["all"]"#, r#""003", "all""#)] {
        let expected = every(master_ids);
        let expected: Vec<(&str, SolverTarget, &str)> = expected
            .iter()
            .map(|(n, t, j)| (*n, t.clone(), j.as_str()))
            .collect();
        expect_plan(
            &format!(
                r#"{{"function": "PUT/agents/restart", "arguments": {{"agent_id": {list}}}, "from_cluster": false}}"#
            ),
            &expected,
        );
    }
}

#[test]
fn node_id_names_the_node_and_is_removed() {
    expect_plan(
        r#"{"function": "/cluster/:node_id/info", "arguments": {"node_id": "worker2", "x": 1}, "from_cluster": false}"#,
        &[(
            "worker2",
            worker("worker2"),
            r#"{"function": "/cluster/:node_id/info", "arguments": {"x": 1, "wait_for_complete": false}, "from_cluster": true}"#,
        )],
    );
    expect_plan(
        r#"{"function": "/cluster/:node_id/info", "arguments": {"node_id": "master01"}, "from_cluster": false}"#,
        &[(
            MASTER,
            SolverTarget::Local,
            r#"{"function": "/cluster/:node_id/info", "arguments": {"wait_for_complete": false}, "from_cluster": true}"#,
        )],
    );
}

#[test]
fn cluster_routes_go_to_every_worker_and_the_master() {
    let json = r#"{"function": "PUT/cluster/restart", "arguments": {"wait_for_complete": false}, "from_cluster": true}"#;
    expect_plan(
        r#"{"function": "PUT/cluster/restart", "arguments": {}, "from_cluster": false}"#,
        &[
            ("fw_all_nodes", SolverTarget::AllWorkers, json),
            (MASTER, SolverTarget::Local, json),
        ],
    );
}

#[test]
fn other_routes_go_to_every_node_with_agents() {
    let json = r#"{"function": "PUT/agents/restart", "arguments": {"wait_for_complete": false}, "from_cluster": true}"#;
    expect_plan(
        r#"{"function": "PUT/agents/restart", "arguments": {}, "from_cluster": false}"#,
        &[
            ("worker2", worker("worker2"), json),
            ("worker1", worker("worker1"), json),
            ("unknown", SolverTarget::Local, json),
            (MASTER, SolverTarget::Local, json),
        ],
    );
    let nobody =
        request(r#"{"function": "PUT/agents/restart", "arguments": {}, "from_cluster": false}"#);
    assert_eq!(
        plan_solvers(&nobody, MASTER, &BTreeMap::new()).map_err(|e| e.answer_json()),
        Err(r#"{"message": "coroutine raised StopIteration", "error": 1000}"#.to_owned())
    );
}

#[test]
fn merge_reads_the_arguments_after_every_rewrite() {
    let plan = plan_solvers(
        &request(
            r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "002"], "offset": 1}, "from_cluster": false}"#,
        ),
        MASTER,
        &agents(),
    )
    .unwrap();
    assert_eq!(
        plan.merge_arguments().to_python_json(),
        r#"{"agent_id": ["001"], "offset": 1, "wait_for_complete": false}"#
    );
}

#[test]
fn arguments_of_the_wrong_type_are_refused() {
    for (arguments, argument) in [
        (r#"{"agent_id": 1}"#, "agent_id"),
        (r#"{"agent_id": ["001", 2]}"#, "agent_id"),
        (r#"{"agent_id": null}"#, "agent_id"),
        (r#"{"node_id": ["worker1"]}"#, "node_id"),
    ] {
        let r = request(&format!(
            r#"{{"function": "PUT/agents/restart", "arguments": {arguments}, "from_cluster": false}}"#
        ));
        assert!(
            matches!(
                plan_solvers(&r, MASTER, &agents()),
                Err(DapiError::BadArgument { argument: a, .. }) if a == argument
            ),
            "{arguments}"
        );
    }
}

proptest! {
    /// Any agent list against any agent table: a plan whose entries all carry `from_cluster`,
    /// where every requested id is sent to exactly one node (the master for the unknown ones).
    #[test]
    fn every_requested_agent_lands_on_exactly_one_node(
        table in prop::collection::btree_map("0[0-9]{2}", prop::sample::select(vec!["worker1", "worker2", "unknown", MASTER, ""]), 0..8),
        requested in prop::collection::vec("0[0-9]{2}", 1..8),
    ) {
        let table: BTreeMap<String, String> =
            table.into_iter().map(|(id, node)| (id, node.to_owned())).collect();
        let ids: Vec<JsonValue> = requested.iter().cloned().map(JsonValue::Str).collect();
        let mut arguments = JsonObject::new();
        arguments.insert("agent_id", JsonValue::Array(ids));
        let r = DapiRequest::new("PUT/agents/restart", arguments, false).unwrap();
        let plan = plan_solvers(&r, MASTER, &table).unwrap();
        let mut placed: Vec<String> = Vec::new();
        for entry in plan.entries() {
            prop_assert!(entry.request.from_cluster());
            let Some(JsonValue::Array(ids)) = entry.request.arguments().get("agent_id") else {
                panic!("every entry of the list case has agents");
            };
            for id in ids {
                let id = id.as_str().unwrap().to_owned();
                match table.get(&id) {
                    Some(node) => prop_assert_eq!(node, &entry.node),
                    None => prop_assert_eq!(entry.node.as_str(), MASTER),
                }
                placed.push(id);
            }
        }
        placed.sort();
        let mut expected = requested.clone();
        expected.sort();
        expected.dedup();
        prop_assert_eq!(placed, expected);
    }
}
