//! The distributed API in a simulated cluster: a master and three workers, six agents spread
//! over them (two each, agent-info sent by the workers), local clients asking as the API does.
//! Where each request goes is read off the wire (the tap); what comes back off the clients.

use std::time::Duration;

use wazuh_cluster_sim::cluster::{Cluster, ClusterBuilder};
use wazuh_cluster_sim::fixtures::{master_tree_with_keys, recorded_intervals};
use wazuh_cluster_sim::local::LocalClientId;
use wazuh_cluster_sim::sim::{NodeIdx, SimConfig};
use wazuh_cluster_sim::tree::{TreeFile, storage_from};
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::NodeConfig;

const START: u64 = 1_800_000_000;

/// Agents 001..006 named agent-1..agent-6; worker N holds agents 2N-1 and 2N.
fn cluster(seed: u64) -> Cluster {
    cluster_with(seed, |_| {})
}

/// [`cluster`] with `more` applied to every node's configuration.
fn cluster_with(seed: u64, more: fn(&mut NodeConfig)) -> Cluster {
    let keys: String = (1..=6)
        .map(|i| format!("00{i} agent-{i} any {:064x}\n", i * 7919))
        .collect();
    let master = master_tree_with_keys(keys);
    let fresh = Timestamp::from_secs(START as i64 - 60);
    let mut builder = ClusterBuilder::new(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .master("master01", storage_from(master).unwrap());
    for w in 1..=3 {
        let files = [2 * w - 1, 2 * w].map(|i| {
            let body = format!("Linux |agent-{i} |5.4.0 |#1 SMP |x86_64\nWazuh v3.9.5 / ab73af41699f13fdd81903b5f23d8d00\n");
            TreeFile::new(&format!("/queue/agent-info/agent-{i}-any"), body, fresh)
        });
        builder = builder.worker(&format!("worker{w}"), storage_from(files).unwrap());
    }
    let mut c = builder
        .configure(move |config: &mut NodeConfig| {
            recorded_intervals(config);
            more(config);
        })
        .build()
        .unwrap();
    c.sim.run_for(Duration::from_secs(10)).unwrap();
    let routes = c.sim.node(c.master).agent_routes();
    assert_eq!(routes.len(), 6, "every agent routed: {routes:?}");
    c
}

/// Sends `request` (a dapi JSON) from a new local client of node `n` and runs until it is
/// answered; the answer and the `dapi` frames the master sent meanwhile (to whom, payload).
fn ask(c: &mut Cluster, n: NodeIdx, request: &str) -> (String, Vec<(String, String)>) {
    let frames_before = c.sim.frames().len();
    let client = c.sim.connect_local(n);
    assert!(c.sim.local_send(client, "dapi", request.as_bytes()));
    let answered = c.sim.run_until(
        wazuh_cluster_sim::clock::VirtualTime::from_secs(10_000),
        |sim| sim.local(client).answers().next().is_some(),
    );
    answered.unwrap();
    let answer = answer_of(c, client);
    let forwarded = c.sim.frames()[frames_before..]
        .iter()
        .filter(|f| f.from == "master01" && f.command == "dapi")
        .map(|f| {
            let payload = String::from_utf8_lossy(&f.preview).into_owned();
            (
                f.to.clone(),
                payload
                    .split_once(' ')
                    .map(|(_, json)| json.to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    (answer, forwarded)
}

fn answer_of(c: &Cluster, client: LocalClientId) -> String {
    let (command, text) = c.sim.local(client).answers().next().expect("an answer");
    assert_eq!(command, "dapi_res");
    String::from_utf8(text.to_vec()).unwrap()
}

/// Writes what a running 3.9.5 worker install has for `manager.get_info`: the basic daemons'
/// pid files, `ossec-init.conf`, `ruleset/VERSION` and an `ossec.conf` naming `node_name`.
fn running_install(storage: &mut MemoryStorage, node_name: &str) {
    let ossec_conf = format!(
        "<ossec_config>\n  <cluster>\n    <name>wazuh</name>\n    <node_name>{node_name}</node_name>\n    <node_type>worker</node_type>\n    <key>c98b62a9b6169ac5f67dae55ae4a9088</key>\n    <nodes><node>master01</node></nodes>\n    <disabled>no</disabled>\n  </cluster>\n</ossec_config>\n"
    );
    let mut files = vec![
        (
            "/etc/ossec-init.conf".to_owned(),
            "DIRECTORY=\"/var/ossec\"\nNAME=\"Wazuh\"\nVERSION=\"v3.9.5\"\nDATE=\"Wed Aug  7 11:26:46 UTC 2019\"\nTYPE=\"server\"\n".to_owned(),
        ),
        ("/ruleset/VERSION".to_owned(), "RULESET_VERSION=\"3956\"\n".to_owned()),
        ("/etc/ossec.conf".to_owned(), ossec_conf),
    ];
    for daemon in [
        "wazuh-modulesd",
        "ossec-remoted",
        "ossec-analysisd",
        "ossec-execd",
        "wazuh-db",
        "wazuh-clusterd",
    ] {
        files.push((format!("/var/run/{daemon}-1.pid"), "1\n".to_owned()));
    }
    for (path, body) in files {
        storage
            .add_file(
                &InstallPath::new(&path).unwrap(),
                body.into_bytes(),
                Timestamp::from_secs(START as i64 - 60),
                0o640,
            )
            .unwrap();
    }
}

fn not_served(route: &str, function: &str) -> String {
    format!(
        r#"{{"message": "{route} ({function}) is not served by this node: run it with an API executor (node --api-exec)", "error": 1000}}"#
    )
}

#[test]
fn an_agent_request_reaches_exactly_the_worker_holding_the_agent() {
    let mut c = cluster(1);
    let master = c.master;
    let (answer, forwarded) = ask(
        &mut c,
        master,
        r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "003"}, "from_cluster": false}"#,
    );
    assert_eq!(
        forwarded,
        [(
            "worker2".to_owned(),
            r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "003", "wait_for_complete": false}, "from_cluster": true}"#.to_owned()
        )]
    );
    assert_eq!(
        answer,
        not_served("/syscollector/:agent_id/os", "syscollector.get_os_agent")
    );
}

#[test]
fn a_list_of_agents_on_two_workers_is_split_between_them() {
    let mut c = cluster(2);
    let worker3 = c.workers[2];
    let (_, forwarded) = ask(
        &mut c,
        worker3,
        r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "005", "006"]}, "from_cluster": false}"#,
    );
    let mut by_worker: Vec<(String, String)> = forwarded
        .into_iter()
        .map(|(to, json)| {
            let ids = json
                .split("\"agent_id\": ")
                .nth(1)
                .unwrap()
                .split(']')
                .next()
                .unwrap()
                .to_owned()
                + "]";
            (to, ids)
        })
        .collect();
    by_worker.sort();
    assert_eq!(
        by_worker,
        [
            ("worker1".to_owned(), r#"["001"]"#.to_owned()),
            ("worker3".to_owned(), r#"["005", "006"]"#.to_owned()),
        ]
    );
}

#[test]
fn node_id_and_fw_all_nodes_requests_go_where_they_name() {
    let mut c = cluster(3);
    let master = c.master;
    // Only worker3's install is up and names itself: the answer shows who solved the request
    // (the master and the other workers answer 1018, their daemons stopped).
    let worker3 = c.workers[2];
    running_install(c.sim.storage_mut(worker3), "worker3");
    let (answer, forwarded) = ask(
        &mut c,
        master,
        r#"{"function": "/cluster/:node_id/info", "arguments": {"node_id": "worker3"}, "from_cluster": false}"#,
    );
    assert_eq!(
        forwarded,
        [(
            "worker3".to_owned(),
            r#"{"function": "/cluster/:node_id/info", "arguments": {"wait_for_complete": false}, "from_cluster": true}"#.to_owned()
        )]
    );
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"], 0, "{answer}");
    assert_eq!(
        answer["data"]["cluster"]["node_name"], "worker3",
        "{answer}"
    );
    assert_eq!(answer["data"]["cluster"]["node_type"], "worker", "{answer}");
    // A cluster route with neither: every worker (fw_all_nodes) and the master itself.
    let (_, forwarded) = ask(
        &mut c,
        master,
        r#"{"function": "PUT/cluster/restart", "arguments": {}, "from_cluster": false}"#,
    );
    let mut to: Vec<String> = forwarded.into_iter().map(|(to, _)| to).collect();
    to.sort();
    assert_eq!(to, ["worker1", "worker2", "worker3"]);
}

#[test]
fn a_worker_reset_mid_request_answers_at_once_with_the_error() {
    let mut c = cluster(4);
    // worker2 is cut off from the master: the request reaches it, its answer never comes back.
    let w2 = c.workers[1];
    let client = c.sim.connect_local(c.master);
    let request = r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "004"}, "from_cluster": false}"#;
    let link = c.sim.links_between(c.master, w2)[0];
    c.sim
        .stall_direction(link, wazuh_cluster_sim::net::LinkEnd::Acceptor);
    assert!(c.sim.local_send(client, "dapi", request.as_bytes()));
    c.sim.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(c.sim.node(c.master).api_requests_in_progress(), 1);
    let reset_at = c.sim.now();
    c.sim.reset(link);
    c.sim
        .run_until(reset_at.plus(Duration::from_secs(1)), |sim| {
            sim.local(client).answers().next().is_some()
        })
        .unwrap();
    assert_eq!(
        answer_of(&c, client),
        r#"{"error": 3009, "message": "Error sending request: connection to worker2 lost"}"#
    );
    assert_eq!(c.sim.node(c.master).api_requests_in_progress(), 0);
}

#[test]
fn ten_thousand_requests_stay_within_the_bounds_and_each_is_answered() {
    // 100 clients at once: above the local socket's default cap (64), where idle ones give way.
    let mut c = cluster_with(5, |config| config.limits.max_local_clients = 128);
    let master = c.master;
    let limits = c.sim.node(master).config().limits.api.clone();
    // worker1 is stalled: requests for its agent pile up on the master.
    let link = c.sim.links_between(master, c.workers[0])[0];
    c.sim.stall(link);
    let request = r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;
    let clients: Vec<LocalClientId> = (0..100).map(|_| c.sim.connect_local(master)).collect();
    let mut most = 0;
    for &client in &clients {
        for _ in 0..100 {
            assert!(c.sim.local_send(client, "dapi", request.as_bytes()));
            most = most.max(c.sim.node(master).api_requests_in_progress());
        }
    }
    assert_eq!(
        most, limits.max_requests,
        "the node-wide bound is reached and held"
    );
    // Past the bound, requests are answered at once with the busy error (their strings cross
    // the local socket in the next instants).
    c.sim.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(
        c.sim.node(master).api_requests_in_progress(),
        limits.max_requests
    );
    let busy: usize = clients
        .iter()
        .map(|&client| c.sim.local(client).answers().count())
        .sum();
    assert_eq!(busy, 10_000 - limits.max_requests);
    c.sim.unstall(link);
    while c.sim.step() {
        most = most.max(c.sim.node(master).api_requests_in_progress());
        if clients
            .iter()
            .map(|&cl| c.sim.local(cl).answers().count())
            .sum::<usize>()
            == 10_000
        {
            break;
        }
    }
    assert_eq!(most, limits.max_requests);
    assert_eq!(c.sim.node(master).api_requests_in_progress(), 0);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = || {
        let mut c = cluster(6);
        let master = c.master;
        ask(
            &mut c,
            master,
            r#"{"function": "PUT/agents/restart", "arguments": {"agent_id": ["002", "003"]}, "from_cluster": false}"#,
        );
        (c.sim.trace_hash(), c.sim.wire_hash())
    };
    assert_eq!(run(), run());
}
