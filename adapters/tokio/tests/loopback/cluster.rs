//! Real nodes over real loopback TCP and real install trees: convergence, refusals, restarts.

use std::time::Duration;

use wazuh_cluster_sim::fixtures::MASTER_OWNED;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};

use crate::support::*;

on_both_runtimes!(
    master_and_two_workers_converge,
    a_worker_stopped_and_restarted_rejoins_and_converges,
    workers_reconnect_on_their_own_to_a_restarted_master,
    a_stop_during_a_large_apply_lets_it_finish_and_leaves_no_torn_file,
);

fn is_integrity_done(e: &NodeEvent) -> bool {
    matches!(
        e,
        NodeEvent::SyncFinished {
            kind: SyncKind::Integrity,
            ..
        }
    )
}

async fn master_and_two_workers_converge(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(rt, &mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();
    let (r1, r2) = (tree(dir.path(), "worker1"), tree(dir.path(), "worker2"));
    let mut w1 = start_worker(rt, &r1, "worker1", &addr).await;
    let mut w2 = start_worker(rt, &r2, "worker2", &addr).await;
    let (mut e1, mut e2) = (w1.events(), w2.events());

    // The master's first comparison with each empty worker: every integrity file is missing.
    let mut rounds = Vec::new();
    while rounds.len() < 2 {
        if let NodeEvent::SyncFinished { worker, counts, .. } =
            wait_event(&mut mev, "the master's integrity rounds", is_integrity_done).await
            && !rounds.iter().any(|(w, _)| *w == worker)
        {
            rounds.push((worker, counts));
        }
    }
    rounds.sort_by(|a, b| a.0.cmp(&b.0));
    let all_missing = SyncCounts {
        missing: MASTER_OWNED.len(),
        extra: 0,
        extra_valid: 0,
        shared: 0,
    };
    assert_eq!(
        rounds,
        [
            ("worker1".to_owned(), all_missing),
            ("worker2".to_owned(), all_missing)
        ]
    );

    // Each worker applied the package: its tree now holds the master's integrity files.
    wait_event(&mut e1, "worker1's apply", is_integrity_done).await;
    wait_event(&mut e2, "worker2's apply", is_integrity_done).await;
    for root in [&r1, &r2] {
        let check = check(&mroot, root);
        assert_eq!(
            (check.files, check.missing.len(), check.different.len()),
            (MASTER_OWNED.len(), 0, 0)
        );
    }
    let workers = master.inspect(|n, _| n.workers()).await.unwrap();
    assert_eq!(workers, ["worker1", "worker2"]);

    for node in [w1, w2, master] {
        node.stop().await.unwrap();
    }
}

async fn a_worker_stopped_and_restarted_rejoins_and_converges(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(rt, &mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();
    let root = tree(dir.path(), "worker1");
    let mut w1 = start_worker(rt, &root, "worker1", &addr).await;
    let mut e1 = w1.events();
    wait_event(&mut e1, "worker1's first apply", is_integrity_done).await;
    w1.stop().await.unwrap();
    let left = wait_event(&mut mev, "worker1 leaving", |e| {
        matches!(e, NodeEvent::WorkerLeft { .. })
    })
    .await;
    assert!(
        matches!(&left, NodeEvent::WorkerLeft { name, .. } if name == "worker1"),
        "{left:?}"
    );

    // While it is down the master's rules change.
    std::fs::write(
        mroot.join("etc/rules/local_rules.xml"),
        "<group name=\"local\"><rule id=\"100002\"/></group>\n",
    )
    .unwrap();
    // Two recalculations after the edit: the second one started after it, so it saw it.
    for _ in 0..2 {
        wait_event(&mut mev, "a recalculation", |e| {
            matches!(e, NodeEvent::IntegrityRecalculated { .. })
        })
        .await;
    }
    let mut w1 = start_worker(rt, &root, "worker1", &addr).await;
    let mut e1 = w1.events();
    let joined = wait_event(&mut mev, "worker1 joining again", |e| {
        matches!(e, NodeEvent::WorkerJoined { .. })
    })
    .await;
    assert!(
        matches!(&joined, NodeEvent::WorkerJoined { name, .. } if name == "worker1"),
        "{joined:?}"
    );
    // Its first round after the restart carries the one changed file.
    let round = wait_event(&mut mev, "the master's round", is_integrity_done).await;
    assert_eq!(
        round,
        NodeEvent::SyncFinished {
            kind: SyncKind::Integrity,
            worker: "worker1".to_owned(),
            counts: SyncCounts {
                missing: 0,
                extra: 0,
                extra_valid: 0,
                shared: 1
            }
        }
    );
    wait_event(&mut e1, "worker1's apply", is_integrity_done).await;
    let check = check(&mroot, &root);
    assert!(check.identical(), "{check:?}");
    for node in [w1, master] {
        node.stop().await.unwrap();
    }
}

async fn workers_reconnect_on_their_own_to_a_restarted_master(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let master = start_master(rt, &mroot).await;
    let addr = master.local_addr().unwrap().to_string();
    let (r1, r2) = (tree(dir.path(), "worker1"), tree(dir.path(), "worker2"));
    let mut w1 = start_worker(rt, &r1, "worker1", &addr).await;
    let mut w2 = start_worker(rt, &r2, "worker2", &addr).await;
    let (mut e1, mut e2) = (w1.events(), w2.events());
    for e in [&mut e1, &mut e2] {
        wait_event(e, "a first apply", is_integrity_done).await;
    }
    master.stop().await.unwrap();
    for e in [&mut e1, &mut e2] {
        wait_event(e, "the master going away", |e| {
            matches!(e, NodeEvent::DisconnectedFromMaster { .. })
        })
        .await;
    }

    // The same address again (the workers keep dialling it every connection_retry).
    let mut master = start_master_at(rt, &mroot, &addr, |_| {}).await;
    let mut mev = master.events();
    for e in [&mut e1, &mut e2] {
        wait_event(e, "reconnection", |e| {
            matches!(e, NodeEvent::ConnectedToMaster { .. })
        })
        .await;
    }
    let mut joined = Vec::new();
    while joined.len() < 2 {
        if let NodeEvent::WorkerJoined { name, .. } = wait_event(&mut mev, "joins", |e| {
            matches!(e, NodeEvent::WorkerJoined { .. })
        })
        .await
        {
            joined.push(name);
        }
    }
    joined.sort();
    assert_eq!(joined, ["worker1", "worker2"]);
    // Their next rounds find nothing to send: they already match.
    let round = wait_event(&mut mev, "a round", is_integrity_done).await;
    assert!(
        matches!(round, NodeEvent::SyncFinished { counts, .. } if counts == SyncCounts::default()),
        "{round:?}"
    );
    for node in [w1, w2, master] {
        node.stop().await.unwrap();
    }
}

async fn a_stop_during_a_large_apply_lets_it_finish_and_leaves_no_torn_file(rt: Rt) {
    use wazuh_cluster_sync::integrity::storage::Timestamp;
    use wazuh_cluster_tokio::trees::{SampleFile, write_tree};
    const FILES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let bulk: Vec<SampleFile> = (0..FILES)
        .map(|i| SampleFile {
            path: format!("/etc/lists/bulk/list-{i:04}"),
            data: vec![b'a' + (i % 26) as u8; 4096],
            mode: 0o660,
            mtime: Timestamp::from_secs(1_562_000_000),
        })
        .collect();
    write_tree(&mroot, &bulk).unwrap();
    let master = start_master(rt, &mroot).await;
    let addr = master.local_addr().unwrap().to_string();
    let root = tree(dir.path(), "worker1");
    let w1 = start_worker(rt, &root, "worker1", &addr).await;

    // Stop the worker as soon as the apply has written its first file (each file is written
    // to a staged temporary, synced and renamed: the apply takes a while).
    let first = root.join("etc/lists/bulk");
    let waited = tokio::time::timeout(PATIENCE, async {
        while std::fs::read_dir(&first).map_or(true, |mut d| d.next().is_none()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the apply never started");
    w1.stop().await.unwrap();

    // The apply in flight finished: every integrity file is there, whole.
    let check = check(&mroot, &root);
    assert_eq!(
        (check.files, check.missing.len(), check.different.len()),
        (MASTER_OWNED.len() + FILES, 0, 0),
        "{check:?}"
    );
    // And no staged temporary was left beside them.
    let leftovers: Vec<_> = std::fs::read_dir(&first)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    master.stop().await.unwrap();
}
