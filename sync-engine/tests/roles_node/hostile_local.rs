//! Hostile clients of the local socket (issue 12 point 6): it serves what 3.9.5's local server
//! serves and nothing of a worker, idle clients are closed, and idle clients alone cannot fill it.

use std::time::Duration;

use super::support::*;
use wazuh_cluster_sync::roles::{NodeConfig, NodeType};

fn unknown(command: &str) -> (String, bytes::Bytes) {
    err(&format!("unknown command 'b'{command}''"))
}

#[test]
fn a_local_client_gets_nothing_of_a_worker() {
    let mut m = RawMaster::master01();
    let client = m.connect_local(100);
    let cases: [(&str, &[u8]); 9] = [
        ("hello", b"worker9 wazuh worker 3.9.5"),
        ("echo-c", b"keepalive"),
        ("new_file", b"/queue/cluster/worker9/agent-info.merged"),
        ("file_upd", b"/queue/cluster/worker9/agent-info.merged data"),
        ("file_end", b"/queue/cluster/worker9/agent-info.merged 0"),
        ("new_str", b"10"),
        ("str_upd", b"1 data"),
        ("sync_a_w_m_p", b""),
        ("sync_a_w_m", b""),
    ];
    for (command, payload) in cases {
        assert_eq!(
            m.ask(client, command, payload),
            unknown(command),
            "{command}"
        );
    }
    assert_eq!(m.node.workers(), Vec::<String>::new());
    // Nothing was opened or written, and no refusal was even needed.
    assert_eq!(m.node.effects_in_flight(), 0);
    assert!(m.node.open_incoming_files().is_empty());
    assert!(
        m.exec
            .storage()
            .files()
            .keys()
            .all(|k| !k.as_str().starts_with("/queue/cluster/worker9"))
    );
    assert_eq!(m.take_events(), []);
    // What 3.9.5's local server serves still works.
    assert_eq!(m.ask(client, "get_health", b"null").0, "ok");
    assert_eq!(m.ask(client, "echo", b"x"), ok("x"));
}

#[test]
fn idle_local_clients_are_closed_and_a_client_owed_an_answer_is_kept() {
    let mut m = RawMaster::master01();
    let worker = m.join(1, "worker1", "10.0.0.2:40001");
    let idle = m.connect_local(100);
    let waiting = m.connect_local(101);
    // The raw worker does not answer the forwarded request: the node owes `waiting` its answer.
    let forward =
        br#"worker1 {"function": "/cluster/node", "arguments": {}, "from_cluster": true}"#;
    assert_eq!(m.ask(waiting, "dapi_forward", forward).0, "ok");
    // Keep the worker alive meanwhile.
    m.advance(Duration::from_secs(15));
    m.ask(worker, "echo-c", b"keepalive");
    m.advance(Duration::from_millis(14_999));
    assert!(m.closed.is_empty());
    m.advance(Duration::from_millis(1));
    assert_eq!(m.closed, [idle]);
    assert!(m.node.peers().any(|p| p == waiting));
}

#[test]
fn idle_clients_alone_cannot_fill_the_local_socket() {
    let t0 = origin();
    let mut config: NodeConfig = config(NodeType::Master, "master01", t0);
    config.limits.max_local_clients = 3;
    let mut m = RawMaster::new(t0, config);
    let squatters: Vec<_> = (0..3).map(|i| m.connect_local(100 + i)).collect();
    m.advance(Duration::from_secs(1));
    // A real tool connects: the longest silent squatter gives way, and the tool is served.
    let tool = m.connect_local(200);
    assert_eq!(m.closed, [squatters[0]]);
    assert_eq!(m.ask(tool, "get_health", b"null").0, "ok");
    // However many squatters come back, a fresh client is always served.
    for i in 0..10 {
        m.connect_local(300 + i);
        let tool = m.connect_local(400 + i);
        assert_eq!(m.ask(tool, "get_health", b"null").0, "ok", "round {i}");
    }
    assert_eq!(
        m.node.peers().count(),
        3,
        "the socket never holds more than its cap"
    );
}
