//! The master's `hello`: upstream 3.9.5's checks in its order with its exact texts, our node-name
//! rule, nothing served before a good `hello`, registration only after every check (the rules of
//! a name held by a live link are `hostile_worker`'s).

use std::time::Duration;

use super::support::*;
use bytes::Bytes;
use wazuh_cluster_sync::dapi::builtin::AgentRecord;
use wazuh_cluster_sync::integrity::metadata::format_mod_time;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::{NodeEvent, hello_text};

#[test]
fn each_check_answers_upstream_text_and_registers_nobody() {
    let mut m = RawMaster::master01();
    let peer = m.connect(1, "10.0.0.2:40001");
    let cases: [(&str, &str); 8] = [
        ("worker1 other worker 3.9.5", hello_text::OTHER_CLUSTER),
        ("worker1 wazuh worker 3.9.4", hello_text::OTHER_VERSION),
        ("master01 wazuh worker 3.9.5", hello_text::SAME_AS_MASTER),
        // The cluster check overwrites the name checks (3.9.5), and comes before the version.
        ("master01 other worker 3.9.4", hello_text::OTHER_CLUSTER),
        ("master01 wazuh worker 4.9.2", hello_text::OTHER_VERSION),
        (
            "worker1 wazuh worker",
            "not enough values to unpack (expected 4, got 3)",
        ),
        (
            "worker1 wazuh worker 3.9.5 extra",
            "too many values to unpack (expected 4)",
        ),
        (".hidden wazuh worker 3.9.5", hello_text::BAD_NAME),
    ];
    for (payload, text) in cases {
        assert_eq!(
            m.ask(peer, "hello", payload.as_bytes()),
            err(text),
            "{payload}"
        );
        assert_eq!(m.node.workers(), Vec::<String>::new(), "{payload}");
    }
    let events = m.take_events();
    assert_eq!(events.len(), cases.len());
    assert_eq!(
        events[0],
        NodeEvent::HelloRefused {
            peer,
            addr: "10.0.0.2:40001".into(),
            name: Some("worker1".into()),
            reply: hello_text::OTHER_CLUSTER.to_owned()
        }
    );
}

#[test]
fn node_name_rule() {
    let mut m = RawMaster::master01();
    let peer = m.connect(1, "10.0.0.2:40001");
    let long = "a".repeat(65);
    for bad in ["../x", "a/b", &long, "w\u{e9}", "w*1"] {
        let payload = format!("{bad} wazuh worker 3.9.5");
        assert_eq!(
            m.ask(peer, "hello", payload.as_bytes()),
            err(hello_text::BAD_NAME),
            "{bad}"
        );
    }
    let good = "A-z_0.9".to_owned() + &"x".repeat(57);
    assert_eq!(good.len(), 64);
    let reply = m.ask(
        peer,
        "hello",
        format!("{good} wazuh worker 3.9.5").as_bytes(),
    );
    assert_eq!(reply, ok(&format!("Client {good} added")));
    assert_eq!(m.node.workers(), vec![good]);
}

#[test]
fn nothing_but_hello_and_keepalive_before_hello() {
    let mut m = RawMaster::master01();
    let peer = m.connect(1, "10.0.0.2:40001");
    for cmd in [
        "sync_i_w_m_p",
        "sync_i_w_m",
        "get_nodes",
        "get_health",
        "new_file",
        "dapi",
    ] {
        assert_eq!(
            m.ask(peer, cmd, b"null"),
            err("Command not allowed before hello"),
            "{cmd}"
        );
    }
    assert_eq!(
        m.ask(peer, "echo-c", b"keepalive"),
        ("ok-m".to_owned(), Bytes::from_static(b"keepalive"))
    );
    assert_eq!(m.node.workers(), Vec::<String>::new());
}

#[test]
fn get_nodes_and_get_health_reply_in_3_9_5_shape() {
    let mut m = RawMaster::master01();
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    let args = br#"{"filter_node": null, "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#;
    assert_eq!(
        m.ask(peer, "get_nodes", args),
        (
            "ok".to_owned(),
            Bytes::from_static(
                br#"{"totalItems": 2, "items": [{"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1"}, {"name": "worker1", "type": "worker", "version": "3.9.5", "ip": "10.0.0.2"}]}"#
            )
        )
    );
    let worker_only = br#"{"filter_type": "worker", "select": {"fields": ["ip", "name"]}}"#;
    assert_eq!(
        m.ask(peer, "get_nodes", worker_only).1,
        Bytes::from_static(
            br#"{"totalItems": 1, "items": [{"name": "worker1", "ip": "10.0.0.2"}]}"#
        )
    );
    let worker = r#""worker1": {"info": {"name": "worker1", "type": "worker", "version": "3.9.5", "ip": "10.0.0.2", "n_active_agents": 0}, "status": {"sync_integrity_free": true, "last_sync_integrity": {"date_start_master": "n/a", "date_end_master": "n/a", "total_files": {"missing": 0, "shared": 0, "extra": 0, "extra_valid": 0}}, "sync_agentinfo_free": true, "last_sync_agentinfo": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentinfo": 0}, "sync_extravalid_free": true, "last_sync_agentgroups": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentgroups": 0}, "last_keep_alive": "2026-11-26 08:48:40"}}"#;
    let master = r#""master01": {"info": {"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1", "n_active_agents": 0}}"#;
    assert_eq!(
        m.ask(peer, "get_health", b"null").1,
        Bytes::from(format!(
            r#"{{"n_connected_nodes": 1, "nodes": {{{worker}, {master}}}}}"#
        ))
    );
    assert_eq!(
        m.ask(peer, "get_health", br#"["worker1"]"#).1,
        Bytes::from(format!(
            r#"{{"n_connected_nodes": 1, "nodes": {{{worker}}}}}"#
        ))
    );
}

#[test]
fn get_nodes_filters_and_refusals() {
    let mut m = RawMaster::master01();
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    let ask = |m: &mut RawMaster, args: &str| m.ask(peer, "get_nodes", args.as_bytes());
    assert_eq!(
        ask(
            &mut m,
            r#"{"filter_node": "worker1", "select": {"fields": ["name"]}}"#
        )
        .1,
        Bytes::from_static(br#"{"totalItems": 1, "items": [{"name": "worker1"}]}"#)
    );
    assert_eq!(
        ask(&mut m, r#"{"sort": {"fields": ["name"], "order": "desc"}, "offset": 1, "limit": 1}"#).1,
        Bytes::from_static(
            br#"{"totalItems": 2, "items": [{"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1"}]}"#
        )
    );
    assert_eq!(
        ask(
            &mut m,
            r#"{"search": {"value": "WORK", "negation": true}, "select": {"fields": ["type"]}}"#
        )
        .1,
        Bytes::from_static(br#"{"totalItems": 1, "items": [{"type": "master"}]}"#)
    );
    assert_eq!(
        ask(&mut m, r#"{"filter_type": "client"}"#),
        err("WazuhException 1728 Invalid node type")
    );
    assert_eq!(
        ask(&mut m, r#"{"filter_node": ["worker9"]}"#),
        err("WazuhException 1730 Node does not exist: worker9")
    );
    assert_eq!(
        ask(&mut m, r#"{"select": {"fields": ["key"]}}"#),
        err("WazuhException 1724 Not a valid select field: key")
    );
    assert_eq!(
        ask(&mut m, r#"{"sort": {"fields": ["ram"]}}"#),
        err("WazuhException 1403 Sort field invalid: ram")
    );
}

/// `n_active_agents` is the master's census of active agents per node, run through the API
/// executor over the install's agent database (here rows handed to the test executor, as the fs
/// adapter reads `var/db/global.db`): agents reporting to the master itself count. The first
/// health answer has no census yet (the master's own count is 0), the census runs right after
/// it; a census is kept `MAX_AGE` (5 s) before a health answer asks for the next; it needs no
/// daemon running (the master's tree has no pid files: DAPI's daemon check would refuse a
/// function); without a database the master keeps its own count.
#[test]
fn n_active_agents_comes_from_the_masters_census() {
    let mut m = RawMaster::master01();
    let peer = m.join(1, "worker1", "10.0.0.2:40001");
    let now = m.node.unix_time(m.now).secs;
    let reporting = |ids: &[i64]| -> Vec<AgentRecord> {
        let mut rows = vec![AgentRecord {
            id: 0,
            name: "localhost".into(),
            node_name: Some("master01".into()),
            version: Some("Wazuh v3.9.5".into()),
            last_keepalive: Some("9999-12-31 23:59:59".into()),
            ..AgentRecord::default()
        }];
        for &id in ids {
            rows.push(AgentRecord {
                id,
                name: format!("agent-{id}"),
                // Upper case: upstream's node filter compares without case.
                node_name: Some("MASTER01".into()),
                version: Some("Wazuh v3.9.5".into()),
                // A minute ago, as the database writes it.
                last_keepalive: Some(format_mod_time(Timestamp::from_secs(now - 60))),
                ..AgentRecord::default()
            });
        }
        rows
    };
    let master_health = |m: &mut RawMaster| m.ask(peer, "get_health", br#"["master01"]"#);
    let expected = |active: usize| {
        ok(&format!(
            r#"{{"n_connected_nodes": 0, "nodes": {{"master01": {{"info": {{"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1", "n_active_agents": {active}}}}}}}}}"#
        ))
    };
    // No database: the census fails (2000) and the master's own count stays.
    assert_eq!(master_health(&mut m), expected(0));
    assert_eq!(master_health(&mut m), expected(0));

    m.exec.set_agent_database(Some(reporting(&[2])));
    m.advance(Duration::from_secs(6));
    assert_eq!(
        master_health(&mut m),
        expected(0),
        "this answer asks for a census"
    );
    assert_eq!(master_health(&mut m), expected(2), "agent 000 and agent 2");

    m.exec.set_agent_database(Some(reporting(&[2, 3])));
    assert_eq!(
        master_health(&mut m),
        expected(2),
        "the census is under 5 s old"
    );
    m.advance(Duration::from_secs(6));
    assert_eq!(
        master_health(&mut m),
        expected(2),
        "this answer asks for a census"
    );
    assert_eq!(master_health(&mut m), expected(3));
}
