//! Conformance with the recorded upstream 3.9.5 session (`v3.9/session`): our master and our
//! worker, started on the recorded install trees with the recorded intervals, send the same
//! commands in the same order, answer with the same texts, and end in the recorded state.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::*;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::{NodeConfig, NodeType};

/// The recording's start (the worker's agent-info files are dated 60 s before it).
const START: u64 = 1_795_683_081;

/// Commands that are not part of the synchronisation flows (DAPI, control, strings, keepalives,
/// replies): their interleaving with the flows depends on the live run's timing.
const OTHER: [&str; 13] = [
    "ok",
    "ok-m",
    "err",
    "echo-c",
    "dapi",
    "dapi_res",
    "dapi_err",
    "dapi_cluster",
    "get_nodes",
    "get_health",
    "new_str",
    "str_upd",
    "hello",
];

fn recorded(role_file: &str, handler: &str) -> Vec<serde_json::Value> {
    wazuh_cluster_vectors::jsonl(&format!("v3.9/session/{role_file}"))
        .into_iter()
        .filter(|f| f["conn"] == handler)
        .collect()
}

/// Digits replaced (task ids, times, random parts of file names), so shapes compare.
fn shape(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(ch);
        }
    }
    out
}

fn with_intervals(mut config: NodeConfig) -> NodeConfig {
    let i = &mut config.items.intervals;
    i.worker.sync_integrity = Duration::from_secs(3);
    i.worker.sync_files = Duration::from_secs(4);
    i.worker.keep_alive = Duration::from_secs(2);
    i.worker.connection_retry = Duration::from_secs(2);
    i.master.recalculate_integrity = Duration::from_secs(1);
    i.master.check_worker_lastkeepalive = Duration::from_secs(5);
    i.master.max_allowed_time_without_keepalive = Duration::from_secs(30);
    config
}

fn session() -> Cluster {
    let t0 = origin();
    let mut c = Cluster::new(t0);
    let unix = Timestamp::from_secs(START as i64);
    let mut master = with_intervals(config(NodeType::Master, "master01", t0));
    let mut worker = with_intervals(config(NodeType::Worker, "worker1", t0));
    for cfg in [&mut master, &mut worker] {
        cfg.connection.wall_clock = wazuh_cluster_protocol::connection::WallClock::new(t0, START);
    }
    c.add(master, session_tree("master_tree", unix), 11, "10.0.0.1");
    c.add(worker, session_tree("worker_tree", unix), 12, "10.0.0.2");
    c.run_for(Duration::from_secs(20));
    c
}

#[test]
fn worker_sends_the_recorded_commands_in_order() {
    let c = session();
    let ours: Vec<String> = c
        .commands_from(1)
        .into_iter()
        .filter(|x| !OTHER.contains(&x.as_str()))
        .collect();
    let theirs: Vec<String> = recorded("worker_frames.jsonl", "WorkerHandler")
        .iter()
        .filter(|f| f["dir"] == "SEND")
        .map(|f| f["cmd"].as_str().unwrap().trim().to_owned())
        .filter(|x| !OTHER.contains(&x.as_str()))
        .collect();
    // First integrity round (with the package back), extra-valid, agent-info, then the second
    // integrity round.
    assert_eq!(ours[..24], theirs[..24]);
    assert_eq!(c.commands_from(1)[0], "hello");
}

#[test]
fn master_sends_the_recorded_commands_in_order() {
    let c = session();
    let ours: Vec<String> = c
        .commands_from(0)
        .into_iter()
        .filter(|x| !OTHER.contains(&x.as_str()))
        .collect();
    let theirs: Vec<String> = recorded("master_frames.jsonl", "MasterHandler")
        .iter()
        .filter(|f| f["dir"] == "SEND")
        .map(|f| f["cmd"].as_str().unwrap().trim().to_owned())
        .filter(|x| !OTHER.contains(&x.as_str()))
        .collect();
    assert_eq!(ours[..8], theirs[..8]);
    assert_eq!(
        &ours[..6],
        [
            "sync_m_c",
            "new_file",
            "file_upd",
            "file_end",
            "sync_m_c_e",
            "sync_m_c_ok"
        ]
    );
}

/// Every request of each side is answered with the recorded reply command and text (up to
/// digits), and each request payload has the recorded shape.
#[test]
fn requests_and_replies_have_the_recorded_shapes() {
    let c = session();
    for (member, file, handler) in [
        (1, "worker_frames.jsonl", "WorkerHandler"),
        (0, "master_frames.jsonl", "MasterHandler"),
    ] {
        let frames = recorded(file, handler);
        // Recorded: request command -> list of (payload shape, reply command, reply shape).
        let mut replies: BTreeMap<u64, (String, String)> = BTreeMap::new();
        for f in frames
            .iter()
            .filter(|f| f["dir"] == "RECV" && f["kind"] == "RESP")
        {
            let preview = f["preview"].as_str().unwrap();
            replies.insert(
                f["counter"].as_u64().unwrap(),
                (f["cmd"].as_str().unwrap().to_owned(), shape(preview)),
            );
        }
        let mut expected: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
        for f in frames
            .iter()
            .filter(|f| f["dir"] == "SEND" && f["kind"] == "")
        {
            let cmd = f["cmd"].as_str().unwrap().to_owned();
            let Some((rcmd, rshape)) = replies.get(&f["counter"].as_u64().unwrap()) else {
                continue;
            };
            let payload = if cmd == "file_upd" || cmd == "file_end" {
                String::new()
            } else {
                shape(f["preview"].as_str().unwrap())
            };
            expected
                .entry(cmd)
                .or_default()
                .push((payload, rcmd.clone(), rshape.clone()));
        }
        let other = 1 - member;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (from, counter, cmd, payload) in &c.frames {
            if *from != member || cmd.starts_with("ok") || cmd == "err" {
                continue;
            }
            let Some(reply) = c.frames.iter().find(|(f, k, rc, _)| {
                *f == other && k == counter && (rc.starts_with("ok") || rc == "err")
            }) else {
                continue;
            };
            let Some(list) = expected.get(cmd) else {
                panic!("{cmd} never sent by the recorded {handler}")
            };
            let i = seen.entry(cmd.clone()).or_default();
            let (epayload, ecmd, eshape) = &list[(*i).min(list.len() - 1)];
            *i += 1;
            let ours_payload = if cmd == "file_upd" || cmd == "file_end" {
                String::new()
            } else {
                shape(&String::from_utf8_lossy(payload))
            };
            assert_eq!(&ours_payload, epayload, "{handler} {cmd} payload");
            let rcmd = if reply.2 == "ok" && cmd == "new_file" {
                "ok".to_owned()
            } else {
                reply.2.clone()
            };
            assert_eq!(
                (&rcmd, &shape(&String::from_utf8_lossy(&reply.3))),
                (ecmd, eshape),
                "{handler} {cmd} reply"
            );
        }
        assert!(seen.len() >= 5, "{handler}: {seen:?}");
    }
}

#[test]
fn the_run_ends_in_the_recorded_state() {
    use wazuh_cluster_sync::integrity::items::{ClusterItems, NodeType as ScanType};
    use wazuh_cluster_sync::integrity::metadata::{MetadataScanner, scan::ScanRequest};
    let c = session();
    let check = wazuh_cluster_vectors::json("v3.9/session/check.json");
    let items = ClusterItems::defaults_3_9();
    let request = ScanRequest {
        node_type: ScanType::Master,
        node_name: "x",
        now: c.unix(),
    };
    let digests = |m: usize| -> BTreeMap<String, Option<String>> {
        let meta = MetadataScanner::new()
            .scan(c.storage(m), &items, &request)
            .unwrap()
            .metadata;
        meta.0
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.md5.clone()))
            .collect()
    };
    let (master, worker) = (digests(0), digests(1));
    assert_eq!(
        master.len(),
        check["master_files"].as_u64().unwrap() as usize
    );
    assert_eq!(worker, master);

    let info: Vec<String> = c
        .storage(0)
        .files()
        .keys()
        .filter(|k| k.as_str().starts_with("/queue/agent-info/"))
        .map(|k| k.file_name().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = check["master_agent_info"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(info, expected);
    for (id, groups) in check["master_agent_groups"].as_object().unwrap() {
        let path = p(&format!("/queue/agent-groups/{id}"));
        let content = String::from_utf8(c.storage(0).read(&path, 100).unwrap()).unwrap();
        assert_eq!(content, groups.as_str().unwrap(), "{id}");
    }
    assert!(
        c.storage(1)
            .stat(&p("/etc/shared/oldgroup"))
            .unwrap()
            .is_none()
    );
    let routes: Vec<(String, String)> = c.members[0].node.agent_routes().into_iter().collect();
    let expected = [
        ("agent-four", "worker1"),
        ("agent-one", "worker1"),
        ("agent-two", "worker1"),
    ];
    assert_eq!(routes, expected.map(|(a, w)| (a.to_owned(), w.to_owned())));
}

/// `get_health` after the session has the recorded reply's shape: same keys in the same order,
/// worker first then master, post-comparison `total_files` order, `total_agent_info` and
/// `total_extra_valid` present (values and dates differ only in digits).
#[test]
fn get_health_after_the_session_has_the_recorded_shape() {
    let c = session();
    let recorded_reply = recorded("master_frames.jsonl", "MasterHandler")
        .into_iter()
        .find(|f| {
            f["dir"] == "SEND"
                && f["preview"]
                    .as_str()
                    .unwrap()
                    .starts_with("{\"n_connected_nodes\"")
        })
        .map(|f| f["preview"].as_str().unwrap().to_owned())
        .unwrap();
    // Python prints no fraction for a whole second: compare dates without it.
    let normal = |text: &str| shape(text).replace("N:N:N.N", "N:N:N");
    let ours = c.members[0].node.health(c.now, None);
    assert_eq!(normal(&ours), normal(&recorded_reply));
    assert!(ours.contains("\"n_active_agents\": 3"), "{ours}");
    assert!(ours.contains("\"total_agent_info\": 5"), "{ours}");
}
