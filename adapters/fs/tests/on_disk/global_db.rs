//! The agent database `var/db/global.db` read from a real SQLite file in a scratch install:
//! the recorded 3.9.5 master's `/agents` answer byte for byte from a database holding its
//! agents (`v3.9/session/README.md`: 000 `localhost`, 001, 002, 004 on `worker1`, 003 on
//! `master01`), every column read, the fallback to the files without one, and a database that is
//! a symlink, not a database, or over a bound refused with error 2003.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_fs::global_db::{AGENT_TABLE_3_9_5 as AGENT_TABLE, InstallAgentDatabase};
use wazuh_cluster_sync::dapi::builtin::BASIC_SERVICES;
use wazuh_cluster_sync::dapi::{ApiCall, BuiltinExecutor, DapiLimits, DapiRequest, Route};
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_testkit::ScratchDir;

/// The recording's clock (the agent-info files' time).
const NOW: Timestamp = Timestamp {
    secs: 1_795_682_860,
    nanos: 0,
};

/// An install whose basic daemons run, and its `var/db/`.
fn install(label: &str) -> ScratchDir {
    let root = ScratchDir::new(label);
    std::fs::create_dir_all(root.path().join("var/run")).unwrap();
    std::fs::create_dir_all(root.path().join("var/db")).unwrap();
    for daemon in BASIC_SERVICES {
        std::fs::write(root.path().join(format!("var/run/{daemon}-1.pid")), "1\n").unwrap();
    }
    root
}

/// A global database at `path` with the manager's row as the schema inserts it and the
/// recorded master's agents.
fn recorded_master_database(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    db.execute_batch(AGENT_TABLE).unwrap();
    db.execute(
        "INSERT INTO agent (id, ip, register_ip, name, date_add, last_keepalive, `group`) \
         VALUES (0, '127.0.0.1', '127.0.0.1', 'localhost', '2026-11-26 08:48:30', \
         '9999-12-31 23:59:59', NULL)",
        [],
    )
    .unwrap();
    for (id, name, ip, node) in [
        (1, "agent-one", "10.0.0.1", "worker1"),
        (2, "agent-two", "10.0.0.2", "worker1"),
        (3, "agent-three", "10.0.0.3", "master01"),
        (4, "agent-four", "10.0.0.4", "worker1"),
    ] {
        db.execute(
            "INSERT INTO agent (id, name, register_ip, internal_key, date_add, node_name) \
             VALUES (?1, ?2, ?3, 'k', '2019-07-01 10:00:00', ?4)",
            rusqlite::params![id, name, ip, node],
        )
        .unwrap();
    }
    db
}

/// The call a node makes of API request `request` (JSON), as the master would: without its own
/// knowledge of where agents report (the database's is the truth).
fn call_of(request: &str) -> ApiCall {
    let request =
        DapiRequest::parse(request.as_bytes(), &DapiLimits::default()).expect("the request parses");
    let route = Route::lookup(request.function()).expect("a 3.9.5 route");
    ApiCall::new(&request, route.framework_function, None, BTreeMap::new())
}

/// The recorded `/agents` call of `file`: its request and answer.
fn recorded_agents_call(file: &str) -> (ApiCall, String) {
    let calls = wazuh_cluster_vectors::json(file);
    let recorded = calls["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .find(|call| call["title"] == "dapi /agents (local_master)")
        .expect("the recorded /agents call");
    let call = call_of(&recorded["api_request_json"].to_string());
    let answer = recorded["result"].as_str().expect("result").to_owned();
    (call, answer)
}

fn run(root: &Path, call: &ApiCall) -> String {
    let storage = FsStorage::new(root).unwrap();
    BuiltinExecutor.run_with_agents(&storage, &InstallAgentDatabase::new(&storage), call, NOW)
}

/// The call of route `function` with `arguments`.
fn call(function: &str, arguments: &str) -> ApiCall {
    call_of(&format!(
        r#"{{"function": "{function}", "arguments": {arguments}, "from_cluster": false}}"#
    ))
}

#[test]
fn the_recorded_masters_agents_come_from_its_database() {
    let root = install("global-db-recorded");
    let _db = recorded_master_database(&root.path().join("var/db/global.db"));
    let (request, recorded) = recorded_agents_call("v3.9/dapi_via_master.json");
    // No `client.keys`, no agent-info, and the master's knowledge is empty: all of it is the
    // database's.
    assert_eq!(run(root.path(), &request), recorded);
}

#[test]
fn every_column_is_read_and_status_computed_as_upstream() {
    let root = install("global-db-columns");
    let db = recorded_master_database(&root.path().join("var/db/global.db"));
    db.execute(
        "UPDATE agent SET ip = '10.1.1.1', os_name = 'Ubuntu', os_version = '18.04.2 LTS', \
         os_major = '18', os_minor = '04', os_codename = 'Bionic Beaver', os_platform = 'ubuntu', \
         os_uname = 'Linux |agent-one', os_arch = 'x86_64', version = 'Wazuh v3.9.5', \
         config_sum = 'ab73', merged_sum = 'fd75', manager_host = 'mgr', \
         last_keepalive = '2026-11-26 08:47:00', status = 'updated', `group` = 'default,web' \
         WHERE id = 1",
        [],
    )
    .unwrap();
    // Agent 2 stopped reporting an hour before; agent 4 is pending (no version yet).
    db.execute_batch(
        "UPDATE agent SET last_keepalive = '2026-11-26 07:47:00', version = 'Wazuh v3.9.4' \
         WHERE id = 2; UPDATE agent SET last_keepalive = '2026-11-26 08:47:30' WHERE id = 4;",
    )
    .unwrap();
    let answer = run(
        root.path(),
        &call("/agents/:agent_id", r#"{"agent_id": "001"}"#),
    );
    assert_eq!(
        answer,
        r#"{"data": {"id": "001", "name": "agent-one", "ip": "10.1.1.1", "status": "Active", "os": {"arch": "x86_64", "codename": "Bionic Beaver", "major": "18", "minor": "04", "name": "Ubuntu", "platform": "ubuntu", "uname": "Linux |agent-one", "version": "18.04.2 LTS"}, "version": "Wazuh v3.9.5", "manager": "mgr", "dateAdd": "2019-07-01 10:00:00", "group": ["default", "web"], "mergedSum": "fd75", "configSum": "ab73", "node_name": "worker1", "lastKeepAlive": "2026-11-26 08:47:00", "registerIP": "10.0.0.1"}, "error": 0}"#
    );
    let summary = run(root.path(), &call("/agents/summary", "{}"));
    // Counted through upstream's status SQL: agent 000 is active (`or id = 0`) and, its row
    // having no version here (no `wazuh-modulesd` wrote one), pending as well.
    assert_eq!(
        summary,
        r#"{"data": {"Total": 5, "Active": 2, "Disconnected": 1, "Never connected": 1, "Pending": 2}, "error": 0}"#
    );
    let by_name = run(
        root.path(),
        &call(
            "/agents/name/:agent_name",
            r#"{"agent_name": "agent-three", "select": {"fields": ["node_name", "status"]}}"#,
        ),
    );
    assert_eq!(
        by_name,
        r#"{"data": {"status": "Never connected", "node_name": "master01"}, "error": 0}"#
    );
}

#[test]
fn without_a_database_the_files_are_read() {
    let root = install("global-db-none");
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/client.keys"),
        "001 agent-one any 0123456789abcdef\n",
    )
    .unwrap();
    let answer = run(
        root.path(),
        &call("/agents", r#"{"select": {"fields": ["name"]}}"#),
    );
    assert_eq!(
        answer,
        r#"{"data": {"items": [{"id": "000", "name": "localhost"}, {"id": "001", "name": "agent-one"}], "totalItems": 2}, "error": 0}"#
    );
}

#[test]
fn a_database_elsewhere_garbled_or_too_large_is_refused() {
    let summary = call("/agents/summary", "{}");

    // A symlink to a database outside the install is not followed.
    let root = install("global-db-symlink");
    let outside = ScratchDir::new("global-db-outside");
    let _db = recorded_master_database(&outside.path().join("global.db"));
    std::os::unix::fs::symlink(
        outside.path().join("global.db"),
        root.path().join("var/db/global.db"),
    )
    .unwrap();
    assert_eq!(
        run(root.path(), &summary),
        r#"{"message": "Error in wazuhdb request: /var/db/global.db is not a regular file (Symlink): refused", "error": 2003}"#
    );

    // Not a database.
    let root = install("global-db-garbage");
    std::fs::write(root.path().join("var/db/global.db"), vec![b'x'; 4096]).unwrap();
    assert_eq!(
        run(root.path(), &summary),
        r#"{"message": "Error in wazuhdb request: file is not a database", "error": 2003}"#
    );

    // A value over the bound fails the read instead of being copied out.
    let root = install("global-db-huge");
    let db = recorded_master_database(&root.path().join("var/db/global.db"));
    db.execute(
        "UPDATE agent SET os_uname = ?1 WHERE id = 1",
        ["x".repeat(wazuh_cluster_sync::dapi::builtin::MAX_AGENT_COLUMN_BYTES + 1)],
    )
    .unwrap();
    let answer = run(root.path(), &summary);
    assert!(
        answer.starts_with(r#"{"message": "Error in wazuhdb request: string or blob too big"#),
        "{answer}"
    );
    assert!(answer.ends_with(r#""error": 2003}"#), "{answer}");
}

/// The rows are kept between calls (no whole-table read per call) but never outlive a change:
/// a commit by another connection (what `wazuh-db` does) or another file at the path is seen by
/// the next call.
#[test]
fn kept_rows_follow_every_commit_and_a_replaced_database() {
    let root = install("global-db-kept");
    let path = root.path().join("var/db/global.db");
    let db = recorded_master_database(&path);
    let summary = call("/agents/summary", "{}");
    let before = run(root.path(), &summary);
    assert_eq!(run(root.path(), &summary), before);
    db.execute(
        "INSERT INTO agent (id, name, register_ip, internal_key, date_add, node_name) \
         VALUES (5, 'agent-five', 'any', 'k', '2019-07-01 10:00:00', 'worker1')",
        [],
    )
    .unwrap();
    let after = run(root.path(), &summary);
    assert_ne!(after, before);
    assert!(after.contains(r#""Total": 6"#), "{after}");
    drop(db);
    // Another database put in its place (a new inode), as a restore would.
    let fresh = root.path().join("var/db/fresh.db");
    let db = recorded_master_database(&fresh);
    drop(db);
    std::fs::rename(&fresh, &path).unwrap();
    let _ = std::fs::remove_file(root.path().join("var/db/global.db-wal"));
    let _ = std::fs::remove_file(root.path().join("var/db/global.db-shm"));
    assert_eq!(run(root.path(), &summary), before);
}
