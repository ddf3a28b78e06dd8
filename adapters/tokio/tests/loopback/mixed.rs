//! Nodes of the two runtimes in one cluster: a mio worker joins a tokio master and a tokio worker
//! joins a mio master, and each converges (the wire is the node's, not the runtime's).

use wazuh_cluster_sim::fixtures::MASTER_OWNED;
use wazuh_cluster_sync::roles::{NodeEvent, SyncKind};

use crate::support::*;

/// A master on `master_rt` and a worker on `worker_rt`: the worker joins and holds the master's
/// integrity files, byte for byte.
async fn a_worker_joins_a_master_of_the_other_runtime(master_rt: Rt, worker_rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(master_rt, &mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();
    let root = tree(dir.path(), "worker1");
    let mut worker = start_worker(worker_rt, &root, "worker1", &addr).await;
    let mut wev = worker.events();
    let joined = wait_event(&mut mev, "worker1 joining", |e| {
        matches!(e, NodeEvent::WorkerJoined { .. })
    })
    .await;
    assert!(
        matches!(&joined, NodeEvent::WorkerJoined { name, .. } if name == "worker1"),
        "{joined:?}"
    );
    wait_event(&mut wev, "worker1's apply", |e| {
        matches!(
            e,
            NodeEvent::SyncFinished {
                kind: SyncKind::Integrity,
                ..
            }
        )
    })
    .await;
    let check = check(&mroot, &root);
    assert_eq!(
        (check.files, check.missing.len(), check.different.len()),
        (MASTER_OWNED.len(), 0, 0),
        "{master_rt:?} master, {worker_rt:?} worker"
    );
    worker.stop().await.unwrap();
    master.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mio_worker_joins_a_tokio_master() {
    a_worker_joins_a_master_of_the_other_runtime(Rt::Tokio, Rt::Mio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokio_worker_joins_a_mio_master() {
    a_worker_joins_a_master_of_the_other_runtime(Rt::Mio, Rt::Tokio).await;
}
