//! Real nodes over real loopback TCP and real install trees: convergence, refusals, restarts.

mod support;

use wazuh_cluster_sim::fixtures::MASTER_OWNED;
use wazuh_cluster_sync::integrity::compare::SyncCounts;
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};

use support::*;

fn is_integrity_done(e: &NodeEvent) -> bool {
    matches!(
        e,
        NodeEvent::SyncFinished {
            kind: SyncKind::Integrity,
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_two_workers_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(&mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();
    let (r1, r2) = (tree(dir.path(), "worker1"), tree(dir.path(), "worker2"));
    let mut w1 = start_worker(&r1, "worker1", &addr).await;
    let mut w2 = start_worker(&r2, "worker2", &addr).await;
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
