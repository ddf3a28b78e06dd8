//! `wazuh-cluster wire decode` run as a process on the recorded live session (upstream 3.9.5).

use std::process::{Command, Output};

use wazuh_cluster_testkit::ScratchDir;
use wazuh_cluster_vectors::CLUSTER_KEY;

fn wazuh_cluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wazuh-cluster"))
        .args(args)
        .env_remove("WAZUH_CLUSTER_KEY")
        .output()
        .expect("the binary runs")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn session(file: &str) -> String {
    wazuh_cluster_vectors::path(&format!("v3.9/session/raw/{file}"))
        .display()
        .to_string()
}

#[test]
fn decodes_the_worker_to_master_session_stream() {
    let output = wazuh_cluster(&[
        "wire",
        "decode",
        "--key",
        CLUSTER_KEY,
        &session("conn1_w2m.bin"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(
        lines[..3],
        [
            r#"{"counter":3384881823,"command":"hello","wire_len":120,"payload_b64":"d29ya2VyMSB3YXp1aCB3b3JrZXIgMy45LjU=","payload_text":"worker1 wazuh worker 3.9.5"}"#,
            r#"{"counter":3384881824,"command":"echo-c","wire_len":100,"payload_b64":"a2VlcGFsaXZl","payload_text":"keepalive"}"#,
            r#"{"counter":3384881825,"command":"sync_i_w_m_p","wire_len":100,"payload_b64":"","payload_text":""}"#,
        ]
    );
    assert_eq!(lines.len(), 122);
    assert!(output.stderr.is_empty());
}

#[test]
fn without_a_key_payloads_are_shown_as_on_the_wire_and_files_are_named() {
    let (w2m, m2w) = (session("conn1_w2m.bin"), session("conn1_m2w.bin"));
    let output = wazuh_cluster(&["wire", "decode", &w2m, &m2w]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 244);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["file"], w2m.as_str());
    assert_eq!(first["wire_len"], 120);
    // The Fernet token itself (ASCII), starting with the version byte 0x80 in base64url.
    assert!(
        first["payload_text"]
            .as_str()
            .unwrap()
            .starts_with("gAAAAA")
    );
    let reply: serde_json::Value = serde_json::from_str(&lines[122]).unwrap();
    assert_eq!(reply["file"], m2w.as_str());
    assert_eq!(reply["command"], "ok");
    assert_eq!(reply["counter"], 3_384_881_823_u32);
}

#[test]
fn truncated_stream_prints_an_error_object_and_exits_1() {
    let stream = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    // The 140-byte hello frame, then 10 bytes of the next header.
    let scratch = ScratchDir::new("wire-decode");
    let path = scratch.file("truncated.bin", &stream[..150]);
    let output = wazuh_cluster(&[
        "wire",
        "decode",
        "--key",
        CLUSTER_KEY,
        path.to_str().unwrap(),
    ]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(1));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(r#"{"counter":3384881823,"command":"hello""#));
    assert_eq!(
        lines[1],
        r#"{"error":"stream ends inside the frame starting at byte offset 140: 10 of its 20 bytes (header + payload) present"}"#
    );
}

#[test]
fn oversized_length_and_wrong_key_are_error_objects() {
    let stream = wazuh_cluster_vectors::read("v3.9/session/raw/conn1_w2m.bin");
    let output = wazuh_cluster(&[
        "wire",
        "decode",
        "--max-payload",
        "110",
        "--key",
        CLUSTER_KEY,
        &session("conn1_w2m.bin"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            r#"{"error":"frame at byte offset 0 declares a payload of 120 bytes, above the limit of 110 bytes"}"#
        ]
    );

    let other_key = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    let scratch = ScratchDir::new("wire-decode");
    let path = scratch.file("hello.bin", &stream[..140]);
    let output = wazuh_cluster(&["wire", "decode", "--key", other_key, path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            r#"{"error":"cannot decrypt the payload of the frame at byte offset 0 (counter 3384881823, command 'hello'): Fernet token HMAC does not match (wrong key or altered token)"}"#
        ]
    );
}

#[test]
fn bad_key_and_unreadable_file_go_to_stderr_with_status_2() {
    let secret_looking = "not-a-valid-key-but-secret";
    let output = wazuh_cluster(&[
        "wire",
        "decode",
        "--key",
        secret_looking,
        &session("conn1_w2m.bin"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "wazuh-cluster wire decode: invalid --key: Key must be 32 characters long and only have \
         alphanumeric characters (got 26 characters)\n"
    );
    assert!(!stderr.contains(secret_looking));

    let missing = std::env::temp_dir().join("wazuh-cluster-no-such-capture.bin");
    let output = wazuh_cluster(&["wire", "decode", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "wazuh-cluster wire decode: cannot read {}: ",
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn help_describes_the_output() {
    let output = wazuh_cluster(&["wire", "decode", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in ["--key", "--profile", "--max-payload", "payload_b64", "FILE"] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}
