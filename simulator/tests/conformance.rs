//! Conformance with the recorded upstream 3.9.5 session (vectors/v3.9/session): our master and
//! our worker, started from the same two install trees with the recording's shortened intervals,
//! exchange the same commands in the same order, with payloads of the same shape, as the real
//! nodes did, flow by flow (integrity, extra-valid, agent-info; DAPI frames belong to a later
//! issue and are left out); and the end state on disk is the one check.json recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use wazuh_cluster_sim::cluster::{Cluster, ClusterBuilder};
use wazuh_cluster_sim::fixtures::recorded_intervals;
use wazuh_cluster_sim::sim::SimConfig;
use wazuh_cluster_sim::tap::literal_command;
use wazuh_cluster_sim::tree::{TreeFile, owned_stats, storage_from};
use wazuh_cluster_sync::integrity::items::NodeType as Side;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};

/// The recording's key (README).
const KEY: &str = "wazuh395interopkey0123456789abcd";
/// Unix time at virtual zero: the trees' agent-info files are "start of the run minus 60 s"
/// (README), i.e. mtime 1795683021 + 60.
const START: u64 = 1_795_683_081;

fn tree(trees: &Value, which: &str) -> MemoryStorage {
    let files = trees[which].as_array().unwrap().iter().map(|f| {
        let data = base64::engine::general_purpose::STANDARD
            .decode(f["content_b64"].as_str().unwrap())
            .unwrap();
        let mtime = f["mtime"].as_f64().unwrap();
        let ts = Timestamp {
            secs: mtime.trunc() as i64,
            nanos: (mtime.fract() * 1e9).round() as u32,
        };
        TreeFile {
            mode: 0o660,
            ..TreeFile::new(&format!("/{}", f["path"].as_str().unwrap()), data, ts)
        }
    });
    storage_from(files).unwrap()
}

/// One request and its reply, reduced to what must match: who asked, the commands and the
/// payload shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exchange {
    by: &'static str,
    request: String,
    request_shape: String,
    reply: String,
    reply_shape: String,
}

/// A wire frame, from the recording or from our tap.
struct Msg {
    by: &'static str,
    counter: u32,
    command: String,
    payload: String,
}

const REPLIES: [&str; 3] = ["ok", "ok-m", "err"];
const DAPI: [&str; 9] = [
    "dapi",
    "dapi_res",
    "dapi_err",
    "dapi_cluster",
    "dapi_forward",
    "get_nodes",
    "get_health",
    "new_str",
    "str_upd",
];

/// `/queue/cluster/worker1/worker1-<time>-<digits>.zip`
fn is_package_name(token: &str) -> bool {
    let Some(rest) = token
        .strip_prefix("/queue/cluster/worker1/worker1-")
        .and_then(|r| r.strip_suffix(".zip"))
    else {
        return false;
    };
    let Some((time, random)) = rest.rsplit_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = match time.split_once('.') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(time),
    };
    time_ok && digits(random)
}

fn token_shape(token: &str) -> String {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        "<n>".to_owned()
    } else if is_package_name(token) {
        "<package>".to_owned()
    } else {
        token.to_owned()
    }
}

fn shape(command: &str, payload: &str) -> String {
    match command {
        // `<path> <chunk>` and `<path> <md5 digest bytes>`: the path's shape, then opaque bytes.
        "file_upd" | "file_end" => {
            let path = payload.split(' ').next().unwrap_or("");
            format!("{} <bytes>", token_shape(path))
        }
        _ => payload
            .split(' ')
            .map(token_shape)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn flow_of(command: &str) -> Option<&'static str> {
    Some(match command {
        "hello" => "hello",
        "echo-c" => "keepalive",
        c if c.starts_with("sync_i_w_m") || c.starts_with("sync_m_c") => "integrity",
        c if c.starts_with("sync_e_w_m") => "extra-valid",
        c if c.starts_with("sync_a_w_m") => "agent-info",
        _ => return None,
    })
}

/// Pairs requests with replies (same counter, other side) and splits them by flow; file transfer
/// steps belong to the flow of their sender's latest synchronisation command.
fn exchanges(msgs: &[Msg]) -> BTreeMap<&'static str, Vec<Exchange>> {
    let mut out: BTreeMap<&'static str, Vec<Exchange>> = BTreeMap::new();
    let mut current: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if REPLIES.contains(&m.command.as_str()) || DAPI.contains(&m.command.as_str()) {
            continue;
        }
        let flow = match flow_of(&m.command) {
            Some(f) => {
                if f != "hello" && f != "keepalive" {
                    current.insert(m.by, f);
                }
                f
            }
            None if ["new_file", "file_upd", "file_end"].contains(&m.command.as_str()) => {
                current.get(m.by).copied().unwrap_or("?")
            }
            None => "?",
        };
        let reply = msgs[i + 1..].iter().find(|r| {
            r.by != m.by && r.counter == m.counter && REPLIES.contains(&r.command.as_str())
        });
        out.entry(flow).or_default().push(Exchange {
            by: m.by,
            request: m.command.clone(),
            request_shape: shape(&m.command, &m.payload),
            reply: reply.map_or_else(|| "<none>".to_owned(), |r| r.command.clone()),
            reply_shape: reply.map_or_else(String::new, |r| shape(&r.command, &r.payload)),
        });
    }
    out
}

/// Rounds of a flow: a new one starts at each `_p` permission request (or `hello`/`echo-c`).
fn rounds(ex: &[Exchange]) -> Vec<Vec<Exchange>> {
    let mut out: Vec<Vec<Exchange>> = Vec::new();
    for e in ex {
        if e.request.ends_with("_p")
            || e.request == "hello"
            || e.request == "echo-c"
            || out.is_empty()
        {
            out.push(Vec::new());
        }
        if let Some(last) = out.last_mut() {
            last.push(e.clone());
        }
    }
    out
}

/// The recorded link, as one process logged it (`SEND` by `me`, `RECV` by the other node).
fn recorded(file: &str, me: &'static str, other: &'static str) -> Vec<Msg> {
    wazuh_cluster_vectors::jsonl(file)
        .into_iter()
        .filter(|l| l.get("event").is_none())
        .filter(|l| !l["conn"].as_str().unwrap().starts_with("Local"))
        .map(|l| Msg {
            by: if l["dir"] == "SEND" { me } else { other },
            counter: u32::try_from(l["counter"].as_u64().unwrap()).unwrap(),
            // The receiver's view of the command field (upstream answers `new_file` with `ok `).
            command: l["cmd"].as_str().unwrap().trim_end().to_owned(),
            payload: l["preview"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn ours(c: &Cluster) -> Vec<Msg> {
    c.sim
        .frames()
        .iter()
        .map(|f| Msg {
            by: if f.from == "worker1" {
                "worker"
            } else {
                "master"
            },
            counter: f.counter,
            command: f.command.clone(),
            payload: f.text(),
        })
        .collect()
}

fn run() -> Cluster {
    let trees = wazuh_cluster_vectors::json("v3.9/session/trees.json");
    let config = SimConfig {
        key: KEY.to_owned(),
        unix_start: START,
        seed: 3_9_5,
        ..SimConfig::default()
    };
    let mut c = ClusterBuilder::new(config)
        .master("master01", tree(&trees, "master_tree"))
        .worker("worker1", tree(&trees, "worker_tree"))
        .configure(recorded_intervals)
        .build()
        .unwrap();
    // The recorded worker ran for about 24 s.
    c.sim.run_for(Duration::from_secs(23)).unwrap();
    c
}

fn dump(rounds: &[Vec<Exchange>]) -> String {
    rounds
        .iter()
        .map(|r| {
            r.iter()
                .map(|e| {
                    format!(
                        "{} {}({}) -> {}({})",
                        e.by, e.request, e.request_shape, e.reply, e.reply_shape
                    )
                })
                .collect::<Vec<_>>()
                .join("\n  ")
        })
        .collect::<Vec<_>>()
        .join("\n---\n  ")
}

#[test]
fn each_flow_sends_the_recorded_commands_in_order_with_the_recorded_payload_shapes() {
    let c = run();
    let our_msgs = ours(&c);
    let ours = exchanges(&our_msgs);
    for (file, me, other) in [
        ("v3.9/session/worker_frames.jsonl", "worker", "master"),
        ("v3.9/session/master_frames.jsonl", "master", "worker"),
    ] {
        let recorded_msgs = recorded(file, me, other);
        let theirs = exchanges(&recorded_msgs);
        for flow in [
            "hello",
            "keepalive",
            "integrity",
            "extra-valid",
            "agent-info",
        ] {
            let (a, b) = (rounds(&ours[flow]), rounds(&theirs[flow]));
            // Same run length (23 s of the recorded intervals): the same number of rounds too.
            assert_eq!(
                a,
                b,
                "{flow} per {file}\nours:\n  {}\nrecorded:\n  {}",
                dump(&a),
                dump(&b)
            );
        }
        assert_eq!(flow_order(&our_msgs), flow_order(&recorded_msgs), "{file}");
    }
}

/// Flows in the order they first appear on the link.
fn flow_order(msgs: &[Msg]) -> Vec<&'static str> {
    let mut order = Vec::new();
    for flow in msgs.iter().filter_map(|m| flow_of(&m.command)) {
        if !order.contains(&flow) {
            order.push(flow);
        }
    }
    order
}

#[test]
fn the_end_state_on_disk_is_the_recorded_one() {
    let c = run();
    let check = wazuh_cluster_vectors::json("v3.9/session/check.json");
    let (m, w) = (c.master, c.workers[0]);
    let items = &c.sim.node(m).config().items;

    // 12 master-owned files on each side, none missing, extra or different.
    let master_files = owned_stats(c.sim.storage(m), items, Side::Master);
    let worker_files = owned_stats(c.sim.storage(w), items, Side::Master);
    assert_eq!(
        master_files.len() as u64,
        check["master_files"].as_u64().unwrap()
    );
    assert_eq!(
        worker_files.len() as u64,
        check["worker_files"].as_u64().unwrap()
    );
    assert_eq!(check["missing_on_worker"], Value::Array(vec![]));
    assert_eq!(check["extra_on_worker"], Value::Array(vec![]));
    assert_eq!(check["different"], Value::Array(vec![]));
    assert!(check["equal"].as_bool().unwrap());
    assert_eq!(c.integrity_diff(w), Vec::<InstallPath>::new());

    // Agent-info on the master: the three known agents with their sizes, no ghost. The recorded
    // mtime is "start of the run minus 60 s" of that run; ours is the same instant of this run.
    let info = c
        .sim
        .storage(m)
        .list_dir(&InstallPath::new("/queue/agent-info").unwrap())
        .unwrap();
    let mut got = BTreeMap::new();
    for e in info {
        let p = InstallPath::new(&format!("/queue/agent-info/{}", e.name)).unwrap();
        let st = c.sim.storage(m).stat(&p).unwrap().unwrap();
        assert_eq!(
            st.mtime,
            Timestamp::from_secs(START as i64 - 60),
            "{}",
            e.name
        );
        got.insert(e.name, st.size);
    }
    let want: BTreeMap<String, u64> = check["master_agent_info"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);

    // Agent-groups on both sides.
    for (node, key) in [(m, "master_agent_groups"), (w, "worker_agent_groups")] {
        let dir = InstallPath::new("/queue/agent-groups").unwrap();
        let got: BTreeMap<String, String> = c
            .sim
            .storage(node)
            .list_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|e| {
                let data = c
                    .sim
                    .storage(node)
                    .read(&dir.join(&e.name).unwrap(), 1 << 20)
                    .unwrap();
                (e.name, String::from_utf8(data).unwrap())
            })
            .collect();
        let want: BTreeMap<String, String> = check[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, want, "{key}");
    }

    // The worker's /etc/shared: `oldgroup` was removed with its directory.
    let shared: Vec<String> = c
        .sim
        .storage(w)
        .list_dir(&InstallPath::new("/etc/shared").unwrap())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let want: Vec<String> = check["worker_dirs_etc_shared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shared, want);
}

/// `(who asked, request command, reply command field as sent)` for every non-DAPI request.
type ReplyField = (&'static str, String, String);

#[test]
fn replies_carry_upstreams_exact_command_fields() {
    // The recording's raw streams, with each header's literal 12-byte command field.
    let index = wazuh_cluster_vectors::json("v3.9/session/raw/index.json");
    let mut recorded: Vec<(&'static str, u32, String)> = Vec::new();
    for stream in index["streams"].as_array().unwrap() {
        let by = if stream["file"].as_str().unwrap().contains("w2m") {
            "worker"
        } else {
            "master"
        };
        for f in stream["frame_list"].as_array().unwrap() {
            let field = wazuh_cluster_vectors::unhex(f["cmd_field_hex"].as_str().unwrap());
            let counter = u32::try_from(f["counter"].as_u64().unwrap()).unwrap();
            recorded.push((by, counter, literal_command(&field)));
        }
    }
    let c = run();
    let ours: Vec<(&'static str, u32, String)> = c
        .sim
        .frames()
        .iter()
        .map(|f| {
            let by = if f.from == "worker1" {
                "worker"
            } else {
                "master"
            };
            (by, f.counter, f.literal_command.clone())
        })
        .collect();
    let want = reply_fields(&recorded);
    assert_eq!(reply_fields(&ours), want);
    // The interesting ones: `ok ` to new_file and `ok-m ` to echo-c, as upstream sends them.
    assert!(want.contains(&("worker", "new_file".into(), "ok ".into())));
    assert!(want.contains(&("master", "new_file".into(), "ok ".into())));
    assert!(want.contains(&("worker", "echo-c".into(), "ok-m ".into())));
}

/// Pairs each non-DAPI request with the reply of the other side carrying its counter, from
/// `(by, counter, literal command)` of both directions (in any order).
fn reply_fields(frames: &[(&'static str, u32, String)]) -> std::collections::BTreeSet<ReplyField> {
    let is_reply = |c: &str| REPLIES.contains(&c.trim_end());
    frames
        .iter()
        .filter(|(_, _, cmd)| !is_reply(cmd) && !DAPI.contains(&cmd.as_str()))
        .filter_map(|(by, counter, cmd)| {
            frames
                .iter()
                .find(|(b, c, r)| b != by && c == counter && is_reply(r))
                .map(|(_, _, reply)| (*by, cmd.clone(), reply.clone()))
        })
        .collect()
}
