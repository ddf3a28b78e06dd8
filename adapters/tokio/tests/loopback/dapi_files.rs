//! A local client's `send_file <path> <node>` through real nodes, sockets and install trees
//! (3.9.5 `local_server.py`): the file lands in the worker's inbox `queue/cluster/<worker>/`, the
//! client gets `send_f_res` `File sent`; a path outside the install root and a symlink are
//! refused on the real file system.

use std::path::Path;

use tokio::net::UnixStream;
use wazuh_cluster_sync::roles::NodeEvent;
use wazuh_cluster_tokio::NodeSpec;

use crate::support::*;

on_both_runtimes!(a_local_send_file_reaches_the_workers_inbox_and_hostile_paths_are_refused);

/// Sends `send_file <payload>` on the master's local socket; the reply, then the `send_f_res`
/// that follows an `ok` (answered as upstream's local client does).
async fn send_file(socket: &Path, payload: &str) -> ((String, String), Option<String>) {
    let mut s = UnixStream::connect(socket).await.unwrap();
    write_frame(&mut s, 1, "send_file", payload.as_bytes()).await;
    let (_, kind, text) = next(&mut s).await;
    if kind != "ok" {
        return ((kind, text), None);
    }
    let (counter, command, result) = next(&mut s).await;
    assert_eq!(command, "send_f_res");
    write_frame(&mut s, counter, "ok", b"Response received").await;
    ((kind, text), Some(result))
}

/// The next frame from the node: counter, command, payload.
async fn next(s: &mut UnixStream) -> (u32, String, String) {
    let (counter, literal, payload) = tokio::time::timeout(PATIENCE, read_frame(s))
        .await
        .unwrap()
        .unwrap();
    (
        counter,
        name_of(&literal),
        String::from_utf8(payload).unwrap(),
    )
}

async fn a_local_send_file_reaches_the_workers_inbox_and_hostile_paths_are_refused(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let mroot = master_root(dir.path());
    let mut master = start_master(rt, &mroot).await;
    let mut mev = master.events();
    let addr = master.local_addr().unwrap().to_string();
    let wroot = tree(dir.path(), "worker1");
    let _worker = start_worker(rt, &wroot, "worker1", &addr).await;
    wait_event(&mut mev, "worker1 joining", |e| {
        matches!(e, NodeEvent::WorkerJoined { .. })
    })
    .await;

    std::fs::create_dir_all(mroot.join("tmp")).unwrap();
    let body = b"<agent_config/>\n".repeat(1000);
    std::fs::write(mroot.join("tmp/upload.xml"), &body).unwrap();
    std::fs::write(dir.path().join("outside.xml"), b"secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.xml"), mroot.join("tmp/link.xml")).unwrap();
    std::os::unix::fs::symlink(dir.path(), mroot.join("up")).unwrap();
    let socket = NodeSpec::default_local_socket(&mroot);
    let root = mroot.to_str().unwrap();
    let forwarding = || ("ok".to_owned(), "Forwarding file to master node".to_owned());

    let got = send_file(&socket, &format!("{root}/tmp/upload.xml worker1")).await;
    assert_eq!(got, (forwarding(), Some("File sent".to_owned())));
    // The peer confirmed the checksum; its staged write is put in place right after.
    let landed = wroot.join("queue/cluster/worker1/upload.xml");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !landed.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read(&landed).unwrap(), body);

    let outside = dir.path().join("outside.xml");
    let got = send_file(&socket, &format!("{} worker1", outside.display())).await;
    let refused = format!(
        "WazuhException 1000 {} is outside the install root {root}",
        outside.display()
    );
    assert_eq!(got, (("err".to_owned(), refused), None));

    let got = send_file(&socket, &format!("{root}/tmp/link.xml worker1")).await;
    let symlink = format!("Error sending file: {root}/tmp/link.xml is a Symlink, not a file");
    assert_eq!(got, (forwarding(), Some(symlink)));

    // A symlinked directory on the way is not followed either.
    let got = send_file(&socket, &format!("{root}/up/outside.xml worker1")).await;
    let result = got.1.unwrap();
    assert!(
        result.starts_with(&format!("Error sending file: {root}/up/outside.xml: ")),
        "{result}"
    );
    assert!(!wroot.join("queue/cluster/worker1/outside.xml").exists());
    assert!(!wroot.join("queue/cluster/worker1/link.xml").exists());
}
