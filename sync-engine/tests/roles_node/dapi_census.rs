//! The master's agent census from its agent database (`var/db/global.db`, here rows handed to
//! the test executor as the fs adapter reads them): where the master places a request for an
//! agent (3.9.5 `get_solver_node` reads the agent's `node_name` from the database), and the
//! first health answer after a start (the census is taken as the master starts).

use std::time::Duration;

use super::dapi::{ask_local, three_nodes_prepared};
use super::support::*;
use wazuh_cluster_sync::dapi::builtin::AgentRecord;
use wazuh_cluster_sync::integrity::metadata::format_mod_time;
use wazuh_cluster_sync::integrity::storage::Timestamp;

/// Agent rows: `(id, name, node_name)`, all active (recent keepalive, a version).
fn rows(agents: &[(i64, &str, &str)]) -> Vec<AgentRecord> {
    let recent = format_mod_time(Timestamp::from_secs(UNIX0 as i64 - 60));
    agents
        .iter()
        .map(|&(id, name, node)| AgentRecord {
            id,
            name: name.into(),
            node_name: Some(node.into()),
            version: Some("Wazuh v3.9.5".into()),
            last_keepalive: Some(recent.clone()),
            ..AgentRecord::default()
        })
        .collect()
}

/// master01 whose database holds `database` from the start (the census taken at start reads
/// it), worker1 (agent-info of agent-one) and worker2 (agent-two), run until both agent-info
/// rounds reached the master.
fn cluster_with_database(database: Vec<AgentRecord>) -> (Cluster, usize, usize, usize) {
    three_nodes_prepared(
        |_| {},
        |c, m| c.members[m].exec.set_agent_database(Some(database)),
    )
}

/// The member that got the (held) call of the request for `agent`.
fn solver_of(c: &mut Cluster, m: usize, agent: &str) -> usize {
    let client = c.local_connect(m, 900);
    let request = format!(
        r#"{{"function": "/syscollector/:agent_id/os", "arguments": {{"agent_id": "{agent}"}}, "from_cluster": false}}"#
    );
    c.local_ask(client, "dapi", request.as_bytes());
    assert_eq!(c.held_calls.len(), 1, "{:?}", c.held_calls);
    let (member, _, call) = c.held_calls.pop().unwrap();
    assert_eq!(call.function, "/syscollector/:agent_id/os");
    member
}

#[test]
fn the_master_places_an_agent_request_on_the_node_its_database_names() {
    // Agent 001 (agent-one) moved to worker2: the database says so, worker1's agent-info still
    // names it.
    let database = rows(&[
        (0, "master01", "master01"),
        (1, "agent-one", "worker2"),
        (2, "agent-two", "worker2"),
    ]);
    let (mut c, m, w1, w2) = cluster_with_database(database);
    c.hold_calls.extend([m, w1, w2]);
    assert_eq!(solver_of(&mut c, m, "001"), w2);
    assert_eq!(solver_of(&mut c, m, "002"), w2);
    // Agent 000 is the master's own: run here.
    assert_eq!(solver_of(&mut c, m, "000"), m);
    // The database changes: the next census (at most MAX_AGE, 5 s, old when asked) follows it.
    c.members[m].exec.set_agent_database(Some(rows(&[
        (0, "master01", "master01"),
        (1, "agent-one", "worker1"),
    ])));
    c.run_for(Duration::from_secs(6));
    // This placement asks for a new census; the one after uses it.
    assert_eq!(solver_of(&mut c, m, "001"), w2);
    assert_eq!(solver_of(&mut c, m, "001"), w1);
    // An id the database does not hold: upstream's get_agent raises 1701.
    let client = c.local_connect(m, 900);
    let got = ask_local(
        &mut c,
        client,
        "dapi",
        br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "002"}, "from_cluster": false}"#,
    );
    assert_eq!(
        got.later.map(|(_, answer)| answer).as_deref(),
        Some(r#"{"message": "Agent does not exist: 002", "error": 1701}"#)
    );
}

#[test]
fn without_a_database_the_master_places_agent_requests_by_agent_info() {
    let (mut c, m, w1, w2) = super::dapi::three_nodes();
    c.hold_calls.extend([m, w1, w2]);
    assert_eq!(solver_of(&mut c, m, "001"), w1);
    assert_eq!(solver_of(&mut c, m, "002"), w2);
}

#[test]
fn the_first_health_answer_after_a_start_counts_the_databases_active_agents() {
    // Three active agents report to worker1 by the database; the agent-info the master took
    // from worker1 names one (the count without a census would be 1).
    let database = rows(&[
        (0, "master01", "master01"),
        (1, "agent-one", "worker1"),
        (3, "agent-three", "worker1"),
        (4, "agent-four", "worker1"),
    ]);
    let (mut c, m, _w1, _w2) = cluster_with_database(database);
    let client = c.local_connect(m, 900);
    let events = c.local_ask(client, "get_health", b"null");
    let answer = events
        .iter()
        .find_map(|event| match event {
            wazuh_cluster_protocol::connection::Event::Response { reply, .. } => {
                Some(String::from_utf8_lossy(reply.payload()).into_owned())
            }
            _ => None,
        })
        .expect("a reply");
    assert!(
        answer.contains(r#""name": "worker1", "type": "worker", "version": "3.9.5", "ip": "10.0.0.2", "n_active_agents": 3}"#),
        "{answer}"
    );
    assert!(
        answer.contains(r#""name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1", "n_active_agents": 1}"#),
        "{answer}"
    );
}
