//! A received `etc/client.keys` that drops agents removes their files first, as 3.9.5's worker
//! does (`_check_removed_agents`, `remove_bulk_agents`): exactly those files, nothing of an agent
//! that stays or was already disabled, nothing outside the agents' directories whatever the names
//! say.

use std::collections::BTreeMap;

use crate::agents_support::{
    self, AGENT_FILES, NEW_KEYS, OLD_KEYS, REMOVED, agents_tree, keys_package, on_worker,
};
use wazuh_cluster_sync::integrity::agents::{AgentWarning, KeysAgent, KeysFile};
use wazuh_cluster_sync::integrity::memory::SnapshotEntry;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Storage;
use wazuh_cluster_testkit::install_path as p;

fn agent(id: &str, name: &str, ip: &str) -> KeysAgent {
    KeysAgent {
        id: id.into(),
        name: name.into(),
        ip: ip.into(),
    }
}

fn paths(texts: &[&str]) -> Vec<InstallPath> {
    texts.iter().map(|t| p(t)).collect()
}

/// `before` without the entries at or below `removed`, and with `etc/client.keys` as `after`
/// has it (checked to hold `keys`).
fn expected(
    before: &BTreeMap<InstallPath, SnapshotEntry>,
    after: &BTreeMap<InstallPath, SnapshotEntry>,
    removed: &[&str],
    keys: &[u8],
) -> BTreeMap<InstallPath, SnapshotEntry> {
    let keys_path = p("/etc/client.keys");
    let new_keys = after[&keys_path].clone();
    assert!(
        matches!(&new_keys, SnapshotEntry::File { data, mode: 0o640, .. } if data == keys),
        "{new_keys:?}"
    );
    let mut out: BTreeMap<InstallPath, SnapshotEntry> = before
        .iter()
        .filter(|(path, _)| !removed.iter().any(|r| path.starts_with(&p(r))))
        .map(|(path, entry)| (path.clone(), entry.clone()))
        .collect();
    out.insert(keys_path, new_keys);
    out
}

#[test]
fn removed_agents_lose_their_files_and_every_other_file_stays() {
    let mut worker = agents_tree(OLD_KEYS, AGENT_FILES);
    let before = worker.snapshot();
    let report = on_worker(&keys_package(NEW_KEYS, "shared"), &mut worker).unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(report.removed, 0);
    assert_eq!(report.skipped, []);
    // 002 disabled (`!db-01`) and 004 gone; 001 stays, 003 was never an agent, 006 is new.
    assert_eq!(
        report.agents.agents,
        [
            agent("002", "db-01", "10.0.0.2"),
            agent("004", "mail", "any")
        ]
    );
    // `mail` is registered with `any`: its agent-info file is found by name; `mail-relay-...`
    // is another agent's.
    assert_eq!(report.agents.removed, paths(REMOVED));
    assert_eq!(report.agents.warnings, []);
    let after = worker.snapshot();
    assert_eq!(after, expected(&before, &after, REMOVED, NEW_KEYS));

    // The same package again: the installed client.keys is the new one, nothing to remove.
    let again = on_worker(&keys_package(NEW_KEYS, "shared"), &mut worker).unwrap();
    assert_eq!(again.agents.agents, []);
    assert_eq!(again.agents.removed, []);
    assert_eq!(worker.snapshot(), after);
}

#[test]
fn an_agent_renamed_to_a_name_that_stays_keeps_the_agent_info_of_that_name() {
    // 004 `mail` goes while 006 is registered as `mail` too: the file `mail-10.0.0.4` may be
    // the new agent's, so only the exact `mail-any` would go (there is none).
    let new_keys = b"001 web-01 any 1111\n002 db-01 10.0.0.2 2222\n006 mail any 6666\n";
    let mut worker = agents_tree(OLD_KEYS, AGENT_FILES);
    let report = on_worker(&keys_package(new_keys, "shared"), &mut worker).unwrap();
    assert_eq!(report.agents.agents, [agent("004", "mail", "any")]);
    assert_eq!(
        report.agents.removed,
        paths(&[
            "/queue/agent-groups/004",
            "/queue/diff/mail",
            "/queue/rids/004",
            "/queue/rootcheck/(mail) any->rootcheck",
            "/var/db/agents/mail-004.db",
        ])
    );
    assert!(
        worker
            .stat(&p("/queue/agent-info/mail-10.0.0.4"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn no_installed_client_keys_or_no_received_one_removes_nothing() {
    // A fresh worker: nothing was registered before.
    let mut worker = agents_tree(OLD_KEYS, AGENT_FILES);
    assert!(worker.remove_file(&p("/etc/client.keys")).unwrap());
    let before = worker.snapshot();
    let report = on_worker(&keys_package(NEW_KEYS, "missing"), &mut worker).unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(report.agents, Default::default());
    let after = worker.snapshot();
    assert_eq!(after, expected(&before, &after, &[], NEW_KEYS));

    // A file named client.keys elsewhere is no client.keys (3.9.5 compares any file of that
    // name with etc/client.keys, so an empty one there would remove every agent).
    let mut worker = agents_tree(OLD_KEYS, AGENT_FILES);
    let member = p("/etc/rules/client.keys");
    let control = br#"{"missing": {"/etc/rules/client.keys": {"mod_time": "2019-07-01 16:53:20", "cluster_item_key": "/etc/rules/", "merged": false, "md5": "00000000000000000000000000000000"}}, "shared": {}, "extra": {}, "extra_valid": {}}"#;
    let mut builder = wazuh_cluster_sync::integrity::package::PackageBuilder::new(
        std::io::Cursor::new(Vec::new()),
    );
    builder
        .add_member(&member, agents_support::T, 0o660, b"")
        .unwrap();
    let zip = builder
        .finish(control, agents_support::T)
        .unwrap()
        .into_inner();
    let report = on_worker(&zip, &mut worker).unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(report.agents, Default::default());
    assert!(worker.stat(&p("/queue/rids/004")).unwrap().is_some());
}

#[test]
fn a_client_keys_upstream_cannot_parse_removes_nothing_and_still_lands() {
    let bad = b"001 web-01 any 1111\n006 new any 6666 trailing-field\n";
    let mut worker = agents_tree(OLD_KEYS, AGENT_FILES);
    let before = worker.snapshot();
    let report = on_worker(&keys_package(bad, "shared"), &mut worker).unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(report.agents.agents, []);
    assert_eq!(report.agents.removed, []);
    assert_eq!(
        report.agents.warnings,
        [AgentWarning::Malformed {
            file: KeysFile::Received,
            line: 2
        }]
    );
    assert_eq!(
        report.agents.warnings[0].to_string(),
        "Received client.keys line 2 cannot be parsed: no agent files removed"
    );
    let after = worker.snapshot();
    assert_eq!(after, expected(&before, &after, &[], bad));
}

/// Names, ids and addresses a hostile master (or a corrupt client.keys) can put in the file: each
/// is one path component or its files are left, and nothing outside the six agent directories
/// moves.
#[test]
fn hostile_names_never_reach_outside_the_agent_directories() {
    let old = "001 web-01 any 1111\n\
        010 ../../etc any k\n\
        011 . 10.0.0.11 k\n\
        012 a/b 10.0.0.12 k\n\
        013 nul\0name any k\n\
        014 good ../../../etc k\n\
        015 good2 10.0.0.0/24 k\n\
        016 back\\slash any k\n";
    let decoys = [
        "/etc/ossec.conf",
        "/etc/passwd",
        "/queue/diff/a/b/syscheck",
        "/queue/diff/good/syscheck",
        "/queue/agent-info/good-10.0.0.14",
        "/queue/agent-info/good2-10.0.0.15",
        "/queue/agent-info/a",
        "/queue/rids/010",
        "/queue/rids/016",
        "/var/db/agents/good-014.db",
        "/var/db/agents/good2-015.db",
        "/var/db/global.db",
    ];
    let mut worker = agents_tree(old.as_bytes(), &decoys);
    let before = worker.snapshot();
    let report = on_worker(
        &keys_package(b"001 web-01 any 1111\n", "shared"),
        &mut worker,
    )
    .unwrap();
    let ids: Vec<&str> = report.agents.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["010", "011", "012", "013", "014", "015", "016"]);
    let removed = [
        "/queue/agent-info/good-10.0.0.14",
        "/queue/agent-info/good2-10.0.0.15",
        "/queue/diff/good",
        "/queue/rids/010",
        "/queue/rids/016",
        "/var/db/agents/good-014.db",
        "/var/db/agents/good2-015.db",
    ];
    assert_eq!(report.agents.removed, paths(&removed));
    let bad = |id: &str, component: &str| AgentWarning::BadComponent {
        id: id.into(),
        component: component.into(),
    };
    assert_eq!(
        report.agents.warnings,
        [
            bad("010", "../../etc"),
            bad("011", "."),
            bad("012", "a/b"),
            bad("013", "nul\0name"),
            bad("014", "../../../etc"),
            bad("015", "10.0.0.0/24"),
            bad("016", "back\\slash"),
        ]
    );
    let after = worker.snapshot();
    assert_eq!(
        after,
        expected(&before, &after, &removed, b"001 web-01 any 1111\n")
    );
}
