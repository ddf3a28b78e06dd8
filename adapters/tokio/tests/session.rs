//! The recorded upstream 3.9.5 session over real sockets: the real worker's first frame (its
//! `hello`, as recorded on the wire) sent to our master over TCP, and our worker's `hello` read by
//! a listener standing in for the real master. Each side must answer in kind: the same plaintext
//! as upstream's (Fernet IVs and timestamps differ by design).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::roles::{NodeConfig, NodeType};
use wazuh_cluster_tokio::{NodeSpec, start, wall_clock_now};

/// Longest a step waits on loopback.
const PATIENCE: Duration = Duration::from_secs(20);

fn tree(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// The recording's key and names (vectors/v3.9/session/README.md).
const RECORDED_KEY: &str = "wazuh395interopkey0123456789abcd";

fn first_frame(stream: &[u8]) -> (Frame, usize) {
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::copy_from_slice(stream);
    let before = input.len();
    let frame = decoder.decode(&mut input).unwrap().unwrap();
    (frame, before - input.len())
}

fn fernet() -> Fernet {
    Fernet::new(&ClusterKey::new(RECORDED_KEY).unwrap())
}

/// Reads one whole frame from `stream`.
async fn read_frame(stream: &mut TcpStream) -> Frame {
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut buf = BytesMut::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(frame) = decoder.decode_buf(&mut buf).unwrap() {
                return frame;
            }
            assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0, "closed");
        }
    })
    .await
    .unwrap()
}

fn node_config(node_type: NodeType, name: &str) -> NodeConfig {
    let key = ClusterKey::new(RECORDED_KEY).unwrap();
    NodeConfig::new(node_type, name, Some(key), wall_clock_now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_master_answers_the_recorded_workers_hello_as_upstream_did() {
    let w2m = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let m2w = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_m2w.bin");
    let (hello, hello_len) = first_frame(&w2m);
    let (answer, _) = first_frame(&m2w);
    assert_eq!(hello.command.as_bytes(), b"hello");

    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new(
        node_config(NodeType::Master, "master01"),
        tree(dir.path(), "m"),
    );
    spec.listen = Some("127.0.0.1:0".to_owned());
    let master = start(spec).await.unwrap();
    let mut stream = TcpStream::connect(master.local_addr().unwrap())
        .await
        .unwrap();
    // The recorded bytes, as the real worker sent them.
    stream.write_all(&w2m[..hello_len]).await.unwrap();
    let ours = read_frame(&mut stream).await;

    assert_eq!(ours.counter, hello.counter);
    assert_eq!(ours.command.as_bytes(), answer.command.as_bytes());
    assert_eq!(
        fernet().decrypt(&ours.payload).unwrap(),
        fernet().decrypt(&answer.payload).unwrap()
    );
    master.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_says_hello_as_the_recorded_worker_did() {
    let w2m = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let (hello, _) = first_frame(&w2m);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(NodeType::Worker, "worker1");
    config.master_addr = listener.local_addr().unwrap().to_string();
    let worker = start(NodeSpec::new(config, tree(dir.path(), "w")))
        .await
        .unwrap();
    let (mut stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let ours = read_frame(&mut stream).await;

    assert_eq!(ours.command.as_bytes(), b"hello");
    assert_eq!(
        fernet().decrypt(&ours.payload).unwrap(),
        fernet().decrypt(&hello.payload).unwrap()
    );
    drop(stream);
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.stop().await.unwrap();
}
