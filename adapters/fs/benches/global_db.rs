//! One `/agents` call (3.9.5's default page: 500 agents, `Agent.get_agents_overview`) answered
//! by the built-in executor over a real `var/db/global.db` of 10,000 agents (3.9.5's `agent`
//! schema, WAL), as the daemon runs it: a new `FsStorage` and `InstallAgentDatabase` per call.
//!
//! Run: `cargo bench -p wazuh-cluster-fs --bench global_db -- --warm-up-time 1 --measurement-time 5`

use std::collections::BTreeMap;
use std::path::PathBuf;

use criterion::Criterion;
use rusqlite::Connection;
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_fs::global_db::{AGENT_TABLE_3_9_5 as AGENT_TABLE, InstallAgentDatabase};
use wazuh_cluster_sync::dapi::builtin::BASIC_SERVICES;
use wazuh_cluster_sync::dapi::{ApiCall, BuiltinExecutor, DapiLimits, DapiRequest, Route};
use wazuh_cluster_sync::integrity::storage::Timestamp;

const AGENTS: usize = 10_000;

/// An install (basic daemons running) whose database holds 10,000 reporting agents; made once.
fn install() -> PathBuf {
    let root = std::env::temp_dir().join("wazuh-cluster-global-db-bench-10k");
    let marker = root.join(".complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("var/run")).unwrap();
        std::fs::create_dir_all(root.join("var/db")).unwrap();
        for daemon in BASIC_SERVICES {
            std::fs::write(root.join(format!("var/run/{daemon}-1.pid")), "1\n").unwrap();
        }
        let mut db = Connection::open(root.join("var/db/global.db")).unwrap();
        db.execute_batch(AGENT_TABLE).unwrap();
        let tx = db.transaction().unwrap();
        for id in 0..AGENTS {
            tx.execute(
                "INSERT INTO agent (id, name, ip, register_ip, internal_key, os_name, os_version, \
                 os_platform, os_uname, os_arch, version, node_name, date_add, last_keepalive) \
                 VALUES (?1, ?2, ?3, 'any', 'k', 'Ubuntu', '18.04', 'ubuntu', \
                 'Linux |host |4.15.0 |#1 SMP |x86_64', 'x86_64', 'Wazuh v3.9.5', ?4, \
                 '2019-07-01 10:00:00', '2026-12-02 10:00:00')",
                rusqlite::params![
                    id,
                    format!("agent-{id:05}"),
                    format!("10.{}.{}.{}", id / 65536, (id / 256) % 256, id % 256),
                    format!("worker{}", id % 3),
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        std::fs::write(&marker, b"").unwrap();
    }
    root
}

fn call() -> ApiCall {
    let request = br#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#;
    let request = DapiRequest::parse(request, &DapiLimits::default()).unwrap();
    let route = Route::lookup(request.function()).unwrap();
    ApiCall::new(&request, route.framework_function, None, BTreeMap::new())
}

fn bench_agents(c: &mut Criterion) {
    let root = install();
    let call = call();
    let now = Timestamp::from_secs(1_796_205_600);
    let mut group = c.benchmark_group("global_db_10k_agents");
    group.sample_size(20);
    group.bench_function("agents_call", |b| {
        b.iter(|| {
            let storage = FsStorage::new(&root).unwrap();
            let answer = BuiltinExecutor.run_with_agents(
                &storage,
                &InstallAgentDatabase::new(&storage),
                &call,
                now,
            );
            assert!(answer.starts_with(r#"{"data": {"items": ["#), "{answer}");
            answer.len()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_agents(&mut c);
    c.final_summary();
}
