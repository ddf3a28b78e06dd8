//! Conformance with the recorded upstream 3.9.5 session (vectors/v3.9/session): our master and
//! our worker, started from the same two install trees with the recording's shortened intervals,
//! exchange the same commands in the same order, with the same reply command fields and payloads
//! of the same shape, as the real nodes did, flow by flow (integrity, extra-valid, agent-info,
//! keepalive; the DAPI frames and the local clients' calls are `dapi_conformance.rs`'s); and the
//! end state on disk is the one check.json recorded. How the recording is read and what "same shape" means is
//! `wazuh_cluster_sim::recording`, shared with the tokio adapter's replay over real sockets.

use wazuh_cluster_sim::cluster::Cluster;
use wazuh_cluster_sim::recording::{self, Flow, LinkFrame, Role, TREES_START, WORKER_NAME};
use wazuh_cluster_sim::tree::owned_stats;
use wazuh_cluster_sync::integrity::items::NodeType;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

fn run() -> Cluster {
    recording::replayed_cluster().unwrap()
}

/// Flows in the order they first appear, the ones the simulator replays only.
fn sync_flow_order(link: &[LinkFrame]) -> Vec<Flow> {
    let mut order = recording::flow_order(link);
    order.retain(|f| Flow::SYNC.contains(f));
    order
}

#[test]
fn each_flow_sends_the_recorded_commands_in_order_with_the_recorded_replies_and_shapes() {
    let c = run();
    let ours = recording::link_of_tap(c.sim.frames());
    let mine = recording::exchanges(&ours);
    for view in [Role::Worker, Role::Master] {
        let recorded = recording::recorded_link(view).unwrap();
        let theirs = recording::exchanges(&recorded);
        for flow in Flow::SYNC {
            let (a, b) = (
                recording::rounds(&mine[&flow]),
                recording::rounds(&theirs[&flow]),
            );
            // Same run length (23 s of the recorded intervals): the same number of rounds too.
            assert_eq!(
                a,
                b,
                "{flow:?} as the {view:?} saw it\nours:\n  {}\nrecorded:\n  {}",
                recording::dump(&a),
                recording::dump(&b)
            );
        }
        assert_eq!(
            sync_flow_order(&ours),
            sync_flow_order(&recorded),
            "{view:?}"
        );
    }
    // The reply fields compared are the literal ones: `ok ` to new_file on both sides and
    // `ok-m ` to echo-c, as upstream writes them.
    let reply = |by: Role, flow: Flow, request: &str| {
        mine[&flow]
            .iter()
            .find(|e| e.by == by && e.request == request)
            .and_then(|e| e.reply.clone())
    };
    assert_eq!(
        reply(Role::Worker, Flow::Integrity, "new_file").as_deref(),
        Some("ok ")
    );
    assert_eq!(
        reply(Role::Master, Flow::Integrity, "new_file").as_deref(),
        Some("ok ")
    );
    assert_eq!(
        reply(Role::Worker, Flow::Keepalive, "echo-c").as_deref(),
        Some("ok-m ")
    );
}

/// The worker speaks first (`hello`), and across flows its synchronisation requests start as
/// the recorded worker's did: the first integrity round, extra-valid, agent-info, the second
/// integrity round.
#[test]
fn the_workers_first_rounds_interleave_as_recorded() {
    let c = run();
    let sync_requests = |link: &[LinkFrame]| -> Vec<String> {
        link.iter()
            .zip(recording::request_flows(link))
            .filter(|(f, flow)| {
                f.by == Role::Worker
                    && flow.is_some_and(|x| {
                        matches!(x, Flow::Integrity | Flow::ExtraValid | Flow::AgentInfo)
                    })
            })
            .map(|(f, _)| f.command.clone())
            .collect()
    };
    let link = recording::link_of_tap(c.sim.frames());
    let first = &link[0];
    assert_eq!((first.by, first.command.as_str()), (Role::Worker, "hello"));
    let ours = sync_requests(&link);
    let theirs = sync_requests(&recording::recorded_link(Role::Worker).unwrap());
    assert_eq!(ours[..24], theirs[..24]);
}

#[test]
fn the_end_state_on_disk_is_the_recorded_one() {
    let c = run();
    let check = recording::recorded_check().unwrap();
    let (m, w) = (c.master, c.workers[0]);
    let (master, worker) = (c.sim.storage(m), c.sim.storage(w));
    let items = &c.sim.node(m).config().items;

    // 12 master-owned files on each side, none missing, extra or different.
    assert_eq!(
        owned_stats(master, items, NodeType::Master).len(),
        check.master_files
    );
    assert_eq!(
        owned_stats(worker, items, NodeType::Master).len(),
        check.worker_files
    );
    assert!(check.equal);
    assert!(check.missing_on_worker.is_empty() && check.extra_on_worker.is_empty());
    assert!(check.different.is_empty());
    assert_eq!(c.integrity_diff(w), Vec::<InstallPath>::new());

    // Agent-info on the master: the three known agents with their sizes, no ghost. The recorded
    // mtime is "start of the run minus 60 s" of that run; ours is the same instant of this run.
    let info = recording::agent_info(master).unwrap();
    let sizes = |i: &std::collections::BTreeMap<String, recording::AgentInfoFile>| {
        i.iter()
            .map(|(k, v)| (k.clone(), v.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&info), sizes(&check.master_agent_info));
    for (name, file) in &info {
        assert_eq!(
            file.mtime,
            Timestamp::from_secs(TREES_START as i64 - 60),
            "{name}"
        );
    }

    // Agent-groups on both sides; the worker's /etc/shared lost `oldgroup` with its directory.
    assert_eq!(
        recording::agent_groups(master).unwrap(),
        check.master_agent_groups
    );
    assert_eq!(
        recording::agent_groups(worker).unwrap(),
        check.worker_agent_groups
    );
    assert_eq!(
        recording::dir_names(worker, "/etc/shared").unwrap(),
        check.worker_dirs_etc_shared
    );

    // The master routes the three known agents to the worker that reported them.
    let routes: Vec<(String, String)> = c.sim.node(m).agent_routes().into_iter().collect();
    let want =
        ["agent-four", "agent-one", "agent-two"].map(|a| (a.to_owned(), WORKER_NAME.to_owned()));
    assert_eq!(routes, want);
}

/// `get_health` after the session has the shape of the recorded reply that went out at the end
/// of the control calls: same keys in the same order, worker first then master, post-comparison
/// `total_files` order, `total_agent_info` and `total_extra_valid` present (values and dates
/// differ only in digits).
#[test]
fn get_health_after_the_session_has_the_recorded_shape() {
    let c = run();
    let recorded = recording::recorded_link(Role::Master).unwrap();
    let health = recorded
        .iter()
        .find(|f| f.by == Role::Master && f.payload.starts_with(b"{\"n_connected_nodes\""))
        .unwrap();
    let ours = c.sim.node(c.master).health(None);
    // The simulator's nodes are addressed by name; the recorded ones were on loopback.
    let ours_on_loopback = ours
        .replace("\"ip\": \"worker1\"", "\"ip\": \"127.0.0.1\"")
        .replace("\"ip\": \"master01\"", "\"ip\": \"127.0.0.1\"");
    assert_eq!(
        recording::shape(ours_on_loopback.as_bytes()),
        recording::shape(&health.payload)
    );
    assert!(ours.contains("\"n_active_agents\": 3"), "{ours}");
    assert!(ours.contains("\"total_agent_info\": 5"), "{ours}");
}
