//! One master and two workers on virtual time: the integrity, extra-valid and agent-info flows
//! end to end, with exact files and exact events.

use std::collections::BTreeMap;

use wazuh_cluster_sim::clock::VirtualTime;
use wazuh_cluster_sim::cluster::Cluster;
use wazuh_cluster_sim::fixtures::{MASTER_OWNED, OLD, cluster, recorded_intervals};
use wazuh_cluster_sim::sim::SimConfig;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::integrity::metadata::format_mod_time;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};
use wazuh_cluster_testkit::install_path as path;

fn counts(missing: usize, extra: usize, extra_valid: usize, shared: usize) -> SyncCounts {
    SyncCounts {
        missing,
        extra,
        extra_valid,
        shared,
    }
}

/// `(time, worker, counts)` of every integrity round the master finished.
fn master_integrity_rounds(c: &Cluster) -> Vec<(VirtualTime, String, SyncCounts)> {
    c.sim
        .events_of(c.master)
        .filter_map(|e| match &e.event {
            NodeEvent::SyncFinished {
                kind: SyncKind::Integrity,
                worker,
                counts,
            } => Some((e.at, worker.clone(), *counts)),
            _ => None,
        })
        .collect()
}

fn file(c: &Cluster, n: usize, p: &str) -> Option<(Vec<u8>, u32, Timestamp)> {
    let path = path(p);
    let data = c.sim.storage(n).read(&path, 1 << 20).ok()?;
    let stat = c.sim.storage(n).stat(&path).ok()??;
    Some((data, stat.mode, stat.mtime))
}

#[test]
fn empty_workers_converge_in_one_integrity_round() {
    let mut c = cluster(SimConfig::default(), 2, recorded_intervals).unwrap();
    let at = c.run_until_converged(VirtualTime::from_secs(60)).unwrap();

    // One round each (the first starts sync_integrity = 3 s after the hello) did it all.
    let rounds = master_integrity_rounds(&c);
    // Every master-owned file is missing on an empty worker (agent-groups files one by one).
    let all_missing = counts(MASTER_OWNED.len(), 0, 0, 0);
    assert_eq!(
        rounds
            .iter()
            .map(|r| (r.1.as_str(), r.2))
            .collect::<Vec<_>>(),
        [("worker1", all_missing), ("worker2", all_missing),]
    );
    assert!(
        at > VirtualTime::from_secs(3) && at < VirtualTime::from_secs(6),
        "converged at {at}"
    );

    // Every master-owned file is on both workers, byte-equal, with the item's permissions and the
    // master's mtime; nothing the items do not select was sent.
    for &w in &c.workers {
        assert_eq!(
            c.master_owned(w)
                .keys()
                .map(InstallPath::as_str)
                .collect::<Vec<_>>(),
            MASTER_OWNED
        );
        for p in MASTER_OWNED {
            let (data, mode, mtime) = file(&c, w, p).unwrap();
            let (master_data, _, _) = file(&c, c.master, p).unwrap();
            assert_eq!(data, master_data, "{p}");
            let want_mode = if p == "/etc/client.keys" {
                0o640
            } else {
                0o660
            };
            assert_eq!((mode, mtime), (want_mode, OLD), "{p}");
        }
        for p in [
            "/etc/rules/ar.conf",
            "/etc/lists/ignored.swp",
            "/etc/ossec.conf",
            "/etc/shared/default/agent.conf",
        ] {
            assert_eq!(file(&c, w, p), None, "{p} must not be synchronised");
        }
    }

    // The master's view of the joins, in order.
    let joins: Vec<&NodeEvent> = c
        .sim
        .events_of(c.master)
        .map(|e| &e.event)
        .filter(|e| matches!(e, NodeEvent::WorkerJoined { .. }))
        .collect();
    assert_eq!(
        joins,
        [
            &NodeEvent::WorkerJoined {
                name: "worker1".into(),
                addr: "worker1:40000".into()
            },
            &NodeEvent::WorkerJoined {
                name: "worker2".into(),
                addr: "worker2:40001".into()
            },
        ]
    );
}

#[test]
fn master_change_add_and_removal_reach_both_workers_by_the_next_round() {
    let mut c = cluster(SimConfig::default(), 2, recorded_intervals).unwrap();
    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    let before = master_integrity_rounds(&c).len();

    let now = c.sim.unix_now();
    let m = c.master;
    let store = c.sim.storage_mut(m);
    store
        .add_file(
            &path("/etc/rules/local_rules.xml"),
            b"<group name=\"changed\"/>\n".to_vec(),
            now,
            0o660,
        )
        .unwrap();
    store
        .add_file(
            &path("/etc/lists/new-list"),
            b"new:entry\n".to_vec(),
            now,
            0o660,
        )
        .unwrap();
    assert!(
        store
            .remove_file(&path("/etc/decoders/local_decoder.xml"))
            .unwrap()
    );
    let changed_at = c.sim.now();

    let at = c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    let next: Vec<(String, SyncCounts)> = master_integrity_rounds(&c)[before..]
        .iter()
        .map(|r| (r.1.clone(), r.2))
        .collect();
    assert_eq!(
        next,
        [
            ("worker1".to_owned(), counts(1, 1, 0, 1)),
            ("worker2".to_owned(), counts(1, 1, 0, 1)),
        ]
    );
    // By the next round: within one sync_integrity (3 s) plus the master's recalculation (1 s).
    assert!(
        at.since(changed_at) <= std::time::Duration::from_secs(4),
        "took {:?}",
        at.since(changed_at)
    );
    for &w in &c.workers {
        assert_eq!(
            file(&c, w, "/etc/rules/local_rules.xml").unwrap().0,
            b"<group name=\"changed\"/>\n"
        );
        assert_eq!(
            file(&c, w, "/etc/lists/new-list").unwrap().0,
            b"new:entry\n"
        );
        assert_eq!(file(&c, w, "/etc/decoders/local_decoder.xml"), None);
    }
}

#[test]
fn a_worker_side_edit_of_an_integrity_file_is_reverted() {
    let mut c = cluster(SimConfig::default(), 2, recorded_intervals).unwrap();
    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    let before = master_integrity_rounds(&c).len();
    let original = file(&c, c.master, "/etc/lists/audit-keys").unwrap();

    let now = c.sim.unix_now();
    let w1 = c.workers[0];
    c.sim
        .storage_mut(w1)
        .add_file(
            &path("/etc/lists/audit-keys"),
            b"tampered\n".to_vec(),
            now,
            0o644,
        )
        .unwrap();
    assert!(!c.integrity_converged());

    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    assert_eq!(
        file(&c, w1, "/etc/lists/audit-keys").unwrap(),
        (original.0, 0o660, OLD)
    );
    // worker1's round found one differing file; worker2's found nothing to do.
    let next: BTreeMap<String, SyncCounts> = master_integrity_rounds(&c)[before..]
        .iter()
        .map(|r| (r.1.clone(), r.2))
        .collect();
    assert_eq!(next.get("worker1"), Some(&counts(0, 0, 0, 1)));
    assert_eq!(next.get("worker2"), Some(&counts(0, 0, 0, 0)));
}

#[test]
fn extra_valid_agent_groups_and_fresh_agent_info_flow_back_to_the_master() {
    use wazuh_cluster_sim::cluster::ClusterBuilder;
    use wazuh_cluster_sim::fixtures::{START, master_tree};
    use wazuh_cluster_sim::tree::{TreeFile, storage_from};

    // Agent-info files one minute old (fresh: newer than get_agentinfo_newer_than = 1800 s).
    let fresh = Timestamp::from_secs(START - 60);
    let info =
        |name: &str, body: &str| TreeFile::new(&format!("/queue/agent-info/{name}"), body, fresh);
    let worker1 = storage_from([
        // An agent-groups file for agent 004 of client.keys, which the master lacks: extra-valid.
        TreeFile::new("/queue/agent-groups/004", "group2\n", fresh),
        info("agent-four-10.0.0.4", "Linux |agent-four |4.18 |x86_64\n"),
        // Not in client.keys: the master drops it.
        info("ghost-10.9.9.9", "Linux |ghost |4.18 |x86_64\n"),
    ])
    .unwrap();
    let worker2 = storage_from([info(
        "agent-one-10.0.0.1",
        "Linux |agent-one |5.4 |x86_64\n",
    )])
    .unwrap();
    let mut c = ClusterBuilder::new(SimConfig::default())
        .master("master01", storage_from(master_tree()).unwrap())
        .worker("worker1", worker1)
        .worker("worker2", worker2)
        .configure(recorded_intervals)
        .build()
        .unwrap();

    let m = c.master;
    let done = |sim: &wazuh_cluster_sim::sim::Sim| {
        let s = sim.storage(m);
        [
            "/queue/agent-groups/004",
            "/queue/agent-info/agent-four-10.0.0.4",
            "/queue/agent-info/agent-one-10.0.0.1",
        ]
        .iter()
        .all(|p| s.stat(&path(p)).ok().flatten().is_some())
    };
    c.sim.run_until(VirtualTime::from_secs(60), done).unwrap();

    // Extra-valid: the worker's file, with its mtime (newer wins), in the master's tree.
    assert_eq!(
        file(&c, m, "/queue/agent-groups/004").unwrap(),
        (b"group2\n".to_vec(), 0o660, fresh)
    );
    // Agent-info: byte-equal, mtime kept, the unknown agent dropped.
    assert_eq!(
        file(&c, m, "/queue/agent-info/agent-four-10.0.0.4").unwrap(),
        (b"Linux |agent-four |4.18 |x86_64\n".to_vec(), 0o660, fresh)
    );
    assert_eq!(
        file(&c, m, "/queue/agent-info/agent-one-10.0.0.1").unwrap(),
        (b"Linux |agent-one |5.4 |x86_64\n".to_vec(), 0o660, fresh)
    );
    assert_eq!(file(&c, m, "/queue/agent-info/ghost-10.9.9.9"), None);

    // The master's events for the two flows, per worker.
    let flows: Vec<(SyncKind, String, SyncCounts)> = c
        .sim
        .events_of(m)
        .filter_map(|e| match &e.event {
            NodeEvent::SyncFinished {
                kind: kind @ (SyncKind::ExtraValid | SyncKind::AgentInfo),
                worker,
                counts,
            } => Some((*kind, worker.clone(), *counts)),
            _ => None,
        })
        .collect();
    assert!(
        flows.contains(&(SyncKind::ExtraValid, "worker1".into(), counts(1, 0, 0, 0))),
        "{flows:?}"
    );
    assert!(
        flows.contains(&(SyncKind::AgentInfo, "worker1".into(), counts(1, 0, 0, 0))),
        "{flows:?}"
    );
    assert!(
        flows.contains(&(SyncKind::AgentInfo, "worker2".into(), counts(1, 0, 0, 0))),
        "{flows:?}"
    );

    // The master knows which worker each agent reports to (the distributed API routes on it).
    let routes: Vec<(String, String)> = c.sim.node(m).agent_routes().into_iter().collect();
    assert_eq!(
        routes,
        [
            ("agent-four".into(), "worker1".into()),
            ("agent-one".into(), "worker2".into())
        ]
    );

    // get_health: both workers connected, locks free, worker1's integrity round with its counts
    // and its dates equal to the virtual instants of the master's events, on the node's clock.
    let health: serde_json::Value = serde_json::from_str(&c.sim.node(m).health(None)).unwrap();
    assert_eq!(health["n_connected_nodes"], 2);
    let w1 = &health["nodes"]["worker1"]["status"];
    assert_eq!(
        w1["last_sync_integrity"]["total_files"],
        serde_json::json!({"extra": 0, "extra_valid": 1, "missing": 10, "shared": 0})
    );
    for free in [
        "sync_integrity_free",
        "sync_extravalid_free",
        "sync_agentinfo_free",
    ] {
        assert_eq!(w1[free], true, "{free}");
    }
    let date = |t: VirtualTime| {
        let nanos = START as i128 * 1_000_000_000 + t.as_nanos() as i128;
        format_mod_time(Timestamp {
            secs: (nanos / 1_000_000_000) as i64,
            nanos: (nanos % 1_000_000_000) as u32,
        })
    };
    let integrity_event = |pick: fn(&NodeEvent) -> bool| {
        c.sim
            .events_of(m)
            .find(|e| pick(&e.event))
            .map(|e| date(e.at))
            .unwrap()
    };
    assert_eq!(
        w1["last_sync_integrity"]["date_start_master"],
        integrity_event(
            |e| matches!(e, NodeEvent::SyncStarted { kind: SyncKind::Integrity, worker } if worker == "worker1")
        )
    );
    assert_eq!(
        w1["last_sync_integrity"]["date_end_master"],
        integrity_event(
            |e| matches!(e, NodeEvent::SyncFinished { kind: SyncKind::Integrity, worker, .. } if worker == "worker1")
        )
    );

    // Now master-owned, agent-groups/004 reaches worker2 by the next integrity round.
    c.run_until_converged(VirtualTime::from_secs(60)).unwrap();
    assert_eq!(
        file(&c, c.workers[1], "/queue/agent-groups/004").unwrap().0,
        b"group2\n"
    );
}
