//! `control -l` / `-i` through a worker's local socket (PROTOCOL.md §15, 3.9.5
//! `LocalServerHandlerWorker`): the worker answers `ok` `Sent request to master node`, forwards
//! the command to its master and hands the master's answer to the client as a `control_res`
//! request; without a master link it answers upstream's 3023 error.

use std::time::Duration;

use super::support::*;
use bytes::Bytes;
use wazuh_cluster_protocol::connection::Event;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_sync::roles::{NodeType, PeerId};

const ARGS: &[u8] = br#"{"filter_node": null, "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#;

/// (command, payload) of a client's reply event, or `None` for a request.
fn reply_of(event: &Event) -> Option<(String, Bytes)> {
    match event {
        Event::Response { command, reply, .. } => {
            let text = match reply {
                Reply::Ok(_) => "ok",
                Reply::Err(_) => "err",
                _ => "other",
            };
            Some((format!("{command} {text}"), reply.payload().clone()))
        }
        _ => None,
    }
}

#[test]
fn a_worker_forwards_get_nodes_and_get_health_to_its_master() {
    let t0 = origin();
    let (mut c, m, w) = Cluster::pair(t0, master_storage(unix0()));
    c.run_for(Duration::from_secs(1));
    assert!(c.members[w].node.master_link().is_some());

    // The master's own answer, through its local socket.
    let on_master = c.local_connect(m, 900);
    let events = c.local_ask(on_master, "get_nodes", ARGS);
    let master_nodes = Bytes::from_static(
        br#"{"totalItems": 2, "items": [{"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1"}, {"name": "worker1", "type": "worker", "version": "3.9.5", "ip": "10.0.0.2"}]}"#,
    );
    assert_eq!(
        events.iter().map(reply_of).collect::<Vec<_>>(),
        vec![Some(("get_nodes ok".to_owned(), master_nodes.clone()))]
    );

    let local = c.local_connect(w, 901);
    let frames_before = c.frames.len();
    let events = c.local_ask(local, "get_nodes", ARGS);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        reply_of(&events[0]),
        Some((
            "get_nodes ok".to_owned(),
            Bytes::from_static(b"Sent request to master node")
        ))
    );
    let Event::Request {
        counter,
        command,
        payload,
    } = &events[1]
    else {
        panic!("expected the control_res request, got {:?}", events[1]);
    };
    assert_eq!(command.name(), b"control_res");
    assert_eq!(payload, &master_nodes);
    // The master saw the same command and payload from the worker, and answered it.
    let forwarded: Vec<(usize, String, Bytes)> = c.frames[frames_before..]
        .iter()
        .map(|(from, _, cmd, payload)| (*from, cmd.clone(), payload.clone()))
        .collect();
    assert_eq!(
        forwarded,
        vec![
            (w, "get_nodes".to_owned(), Bytes::from_static(ARGS)),
            (m, "ok".to_owned(), master_nodes.clone()),
        ]
    );

    // The client acknowledges as upstream's local client does; nothing more comes back.
    let counter = *counter;
    let now = c.now;
    let client = c.locals.get_mut(&local).unwrap();
    client
        .reply(
            now,
            counter,
            wazuh_cluster_protocol::frame::Command::OK,
            b"Response received",
        )
        .unwrap();
    c.pump();
    assert_eq!(c.locals.get_mut(&local).unwrap().poll_event(), None);

    // get_health with a filter goes the same way: the payload is the master's document.
    let events = c.local_ask(local, "get_health", br#"["master01"]"#);
    let master_health = Bytes::from_static(
        br#"{"n_connected_nodes": 0, "nodes": {"master01": {"info": {"name": "master01", "type": "master", "version": "3.9.5", "ip": "10.0.0.1", "n_active_agents": 0}}}}"#,
    );
    assert_eq!(
        reply_of(&events[0]),
        Some((
            "get_health ok".to_owned(),
            Bytes::from_static(b"Sent request to master node")
        ))
    );
    assert!(
        matches!(&events[1], Event::Request { command, payload, .. }
            if command.name() == b"control_res" && payload == &master_health),
        "{:?}",
        events[1]
    );
    assert_eq!(events.len(), 2);
    // The local client is still open, and the master link too.
    assert!(c.members[w].node.peers().any(|p| p == PeerId(901)));
    assert!(c.members[w].node.master_link().is_some());
}

#[test]
fn a_worker_without_its_master_answers_3023_and_refuses_other_commands() {
    let t0 = origin();
    let mut c = Cluster::new(t0);
    let mut cfg = config(NodeType::Worker, "worker1", t0);
    cfg.master_addr = "10.9.9.9:1516".to_owned();
    let w = c.add_worker(cfg, 2, "10.0.0.2");
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.members[w].node.master_link(), None);

    let local = c.local_connect(w, 900);
    let not_connected = Some((
        "get_nodes err".to_owned(),
        Bytes::from_static(b"WazuhException 3023 Worker node is not connected to master"),
    ));
    assert_eq!(
        c.local_ask(local, "get_nodes", ARGS)
            .iter()
            .map(reply_of)
            .collect::<Vec<_>>(),
        vec![not_connected]
    );
    // Master-side commands are not the local client's to send.
    assert_eq!(
        c.local_ask(local, "sync_m_c", b"")
            .iter()
            .map(reply_of)
            .collect::<Vec<_>>(),
        vec![Some((
            "sync_m_c err".to_owned(),
            Bytes::from_static(b"unknown command 'b'sync_m_c''")
        ))]
    );
}
