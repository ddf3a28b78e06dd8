//! A node's start and stop on each runtime: the staged files an interrupted run left are gone
//! before `start` returns, and once `stop` returns nothing listens and the local socket is gone.

use wazuh_cluster_sync::roles::NodeType;
use wazuh_cluster_tokio::NodeSpec;

use crate::support::*;

on_both_runtimes!(
    a_starting_node_removes_the_stale_staged_files_before_start_returns,
    a_stopped_master_no_longer_holds_its_address_or_socket,
);

async fn a_starting_node_removes_the_stale_staged_files_before_start_returns(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let root = master_root(dir.path());
    let stale = root.join("etc/rules/.local_rules.xml.4242.7.tmp");
    let staged = root.join("queue/cluster/worker1/.worker1-1.zip.99.3.tmp");
    let operators = root.join("etc/rules/.notes.tmp");
    for path in [&stale, &staged, &operators] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "half").unwrap();
    }
    let master = start_master(rt, &root).await;
    assert!(!stale.exists() && !staged.exists());
    assert!(operators.exists(), "not a staged file of ours");
    master.stop().await.unwrap();
}

/// Regression (tokio): `stop` returned while the aborted listener task could still hold the
/// port, and a master restarted at the same address failed to bind. Once `stop` returns,
/// nothing listens: a connection is refused and the address binds again, every time.
async fn a_stopped_master_no_longer_holds_its_address_or_socket(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let mut spec = NodeSpec::new(config(NodeType::Master, "master01", KEY), dir.path());
        spec.listen = Some("127.0.0.1:0".to_owned());
        let socket = NodeSpec::default_local_socket(dir.path());
        let master = rt.start(spec).await.unwrap();
        let addr = master.local_addr().unwrap();
        assert!(
            socket.exists(),
            "round {round}: no local socket while running"
        );
        master.stop().await.unwrap();
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert!(
            refused.is_err(),
            "round {round}: {addr} still accepts after stop"
        );
        assert!(
            !socket.exists(),
            "round {round}: the local socket outlived stop"
        );
        drop(std::net::TcpListener::bind(addr).unwrap());
    }
}
