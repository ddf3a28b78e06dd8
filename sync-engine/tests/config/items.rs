//! The cluster.json model: 3.9.5 defaults (PROTOCOL.md §12), overrides, and errors that name the
//! key.

use std::time::Duration;

use wazuh_cluster_sync::config::cluster_json::{
    CLUSTER_JSON_3_9_5, ClusterJsonError, parse_python_int,
};
use wazuh_cluster_sync::integrity::items::{ClusterItems, FileSelection, ItemSource, NodeType};
use wazuh_cluster_testkit::install_path as p;

#[test]
fn defaults_are_the_3_9_5_values() {
    let c = ClusterItems::defaults_3_9();
    let w = c.intervals.worker;
    assert_eq!(w.sync_integrity, Duration::from_secs(9));
    assert_eq!(w.sync_files, Duration::from_secs(10));
    assert_eq!(w.keep_alive, Duration::from_secs(60));
    assert_eq!(w.connection_retry, Duration::from_secs(10));
    assert_eq!(w.max_failed_keepalive_attempts, 2);
    let m = c.intervals.master;
    assert_eq!(m.recalculate_integrity, Duration::from_secs(8));
    assert_eq!(m.check_worker_lastkeepalive, Duration::from_secs(60));
    assert_eq!(
        m.max_allowed_time_without_keepalive,
        Duration::from_secs(120)
    );
    let k = c.intervals.communication;
    assert_eq!(k.timeout_cluster_request, Duration::from_secs(20));
    assert_eq!(k.timeout_api_request, Duration::from_secs(200));
    assert_eq!(k.timeout_api_exe, Duration::from_secs(10));
    assert_eq!(k.timeout_receiving_file, Duration::from_secs(120));
    assert_eq!(
        c.sync_options.get_agentinfo_newer_than,
        Duration::from_secs(1800)
    );
    assert!(c.distributed_api_enabled);
    assert_eq!(c.excluded_files, ["ar.conf", "ossec.conf"]);
    assert_eq!(c.excluded_extensions, ["~", ".tmp", ".lock", ".swp"]);

    // PROTOCOL.md §12.1, row by row: key, permissions, source, files, recursive, restart,
    // remove_subdirs_if_empty, extra_valid.
    use ItemSource::{Master, Worker};
    let all = FileSelection::All;
    let names = |n: &str| FileSelection::Names([n.to_owned()].into());
    // One row a line, as in the table.
    #[rustfmt::skip]
    let expected = [
        ("/etc/",                0o640, Master, names("client.keys"),       [false, false, false, false]),
        ("/etc/decoders/",       0o660, Master, all.clone(),                [true, true, false, false]),
        ("/etc/lists/",          0o660, Master, all.clone(),                [true, true, false, false]),
        ("/etc/rules/",          0o660, Master, all.clone(),                [true, true, false, false]),
        ("/etc/shared/",         0o660, Master, names("merged.mg"),         [true, false, true, false]),
        ("/queue/agent-groups/", 0o660, Master, all.clone(),                [true, false, false, true]),
        ("/queue/agent-info/",   0o660, Worker, names("agent-info.merged"), [false, false, false, false]),
        ("/var/multigroups/",    0o660, Master, names("merged.mg"),         [true, false, true, false]),
    ];
    let got: Vec<_> = c
        .items()
        .iter()
        .map(|i| {
            let flags = [
                i.recursive,
                i.restart,
                i.remove_subdirs_if_empty,
                i.extra_valid,
            ];
            (
                i.key.as_str(),
                i.permissions,
                i.source,
                i.files.clone(),
                flags,
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert!(c.items().iter().all(|i| i.description.is_none()));
    // The embedded document parses to the same thing as an override equal to it.
    assert_eq!(
        ClusterItems::from_json_3_9(CLUSTER_JSON_3_9_5.as_bytes()).unwrap(),
        c
    );
}

#[test]
fn item_lookup_by_key_and_by_path() {
    let c = ClusterItems::defaults_3_9();
    assert_eq!(c.item("/etc/shared/").unwrap().permissions, 0o660);
    assert!(c.item("/etc/shared").is_none());
    let key_of = |path: &str| c.item_for_path(&p(path)).map(|i| i.key.as_str());
    assert_eq!(key_of("/etc/client.keys"), Some("/etc/"));
    assert_eq!(
        key_of("/etc/shared/default/merged.mg"),
        Some("/etc/shared/")
    );
    assert_eq!(key_of("/etc/shared/merged.mg"), Some("/etc/shared/"));
    assert_eq!(key_of("/etc/rules/a/b/c.xml"), Some("/etc/rules/"));
    assert_eq!(
        key_of("/queue/agent-info/a-1.1.1.1"),
        Some("/queue/agent-info/")
    );
    // /etc/ is not recursive: only direct children.
    assert_eq!(key_of("/etc/other/client.keys"), None);
    // /queue/agent-info/ is not recursive either.
    assert_eq!(key_of("/queue/agent-info/sub/x"), None);
    assert_eq!(key_of("/etc/sharedx/merged.mg"), None);
    assert_eq!(key_of("/etc/shared"), Some("/etc/"));
    assert_eq!(key_of("/var/db/global.db"), None);
    assert!(c.is_excluded("ossec.conf") && c.is_excluded("x.swp") && c.is_excluded("x~"));
    assert!(!c.is_excluded("ossec.conf.bak"));
    assert!(
        ItemSource::All.applies_to(NodeType::Worker)
            && !ItemSource::Master.applies_to(NodeType::Worker)
    );
}

#[test]
fn overrides_merge_intervals_and_replace_items() {
    let c = ClusterItems::from_json_3_9(
        br#"{"intervals": {"worker": {"keep_alive": 1.5}, "communication": {"timeout_receiving_file": 7}},
             "sync_options": {"get_agentinfo_newer_than": 60}, "distributed_api": {"enabled": false}}"#,
    )
    .unwrap();
    assert_eq!(c.intervals.worker.keep_alive, Duration::from_millis(1500));
    assert_eq!(c.intervals.worker.sync_integrity, Duration::from_secs(9));
    assert_eq!(
        c.intervals.communication.timeout_receiving_file,
        Duration::from_secs(7)
    );
    assert_eq!(
        c.intervals.communication.timeout_cluster_request,
        Duration::from_secs(20)
    );
    assert_eq!(
        c.sync_options.get_agentinfo_newer_than,
        Duration::from_secs(60)
    );
    assert!(!c.distributed_api_enabled);
    assert_eq!(c.items().len(), 8);

    let c = ClusterItems::from_json_3_9(
        br#"{"files": {"/etc/custom/": {"permissions": "0x1b0", "source": "all", "files": ["a", "b"],
             "recursive": false, "description": "ours"}, "excluded_files": ["x"]}}"#,
    )
    .unwrap();
    assert_eq!(c.items().len(), 1);
    let item = &c.items()[0];
    assert_eq!(
        (
            item.permissions,
            item.source,
            item.extra_valid,
            item.restart
        ),
        (0o660, ItemSource::All, false, false)
    );
    assert_eq!(
        item.files,
        FileSelection::Names(["a".to_owned(), "b".to_owned()].into())
    );
    assert_eq!(item.description.as_deref(), Some("ours"));
    assert_eq!(c.excluded_files, ["x"]);
    assert_eq!(c.excluded_extensions, ["~", ".tmp", ".lock", ".swp"]);
}

fn error(doc: &str) -> String {
    ClusterItems::from_json_3_9(doc.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_config_errors_name_the_key() {
    assert_eq!(
        error(r#"{"intervals": {"worker": {"keep_alive": "x"}}}"#),
        r#"intervals.worker.keep_alive: expected a positive number, got "x""#
    );
    assert_eq!(
        error(r#"{"intervals": {"master": {"recalculate_integrity": 0}}}"#),
        "intervals.master.recalculate_integrity: expected a positive number, got 0"
    );
    assert_eq!(
        error(r#"{"intervals": {"worker": {"max_failed_keepalive_attempts": 1.5}}}"#),
        "intervals.worker.max_failed_keepalive_attempts: expected a positive integer, got 1.5"
    );
    assert_eq!(
        error(r#"{"intervals": {"worker": {"keepalive": 5}}}"#),
        "intervals.worker.keepalive: unknown key"
    );
    assert_eq!(error(r#"{"intervalz": {}}"#), "intervalz: unknown key");
    assert_eq!(
        error(r#"{"intervals": {"worker": 5}}"#),
        "intervals.worker: expected an object, got 5"
    );
    assert_eq!(
        error(r#"{"distributed_api": {"enabled": "yes"}}"#),
        r#"distributed_api.enabled: expected true or false, got "yes""#
    );
    let item = |body: &str| error(&format!(r#"{{"files": {{"/etc/x/": {{{body}}}}}}}"#));
    let base = r#""source": "master", "files": ["all"], "recursive": true"#;
    assert_eq!(
        item(&format!(r#""permissions": "0660", {base}"#)),
        r#"files["/etc/x/"].permissions: expected permission bits as a string like "0o660", got "0660""#
    );
    assert_eq!(
        item(&format!(r#""permissions": 432, {base}"#)),
        r#"files["/etc/x/"].permissions: expected permission bits as a string like "0o660", got 432"#
    );
    assert_eq!(
        item(&format!(r#""permissions": "0o17777", {base}"#)),
        r#"files["/etc/x/"].permissions: expected permission bits as a string like "0o660", got "0o17777""#
    );
    assert_eq!(
        item(r#""permissions": "0o660", "files": ["all"], "recursive": true"#),
        r#"files["/etc/x/"].source: missing"#
    );
    assert_eq!(
        item(r#""permissions": "0o660", "source": "manager", "files": ["all"], "recursive": true"#),
        r#"files["/etc/x/"].source: expected "master", "worker" or "all", got "manager""#
    );
    assert_eq!(
        item(r#""permissions": "0o660", "source": "master", "files": ["../x"], "recursive": true"#),
        r#"files["/etc/x/"].files: expected a list of file names, got "../x""#
    );
    assert_eq!(
        item(&format!(
            r#""permissions": "0o660", {base}, "extra_valid": 1"#
        )),
        r#"files["/etc/x/"].extra_valid: expected true or false, got 1"#
    );
    assert_eq!(
        item(&format!(r#""permissions": "0o660", {base}, "sorce": 1"#)),
        r#"files["/etc/x/"].sorce: unknown key"#
    );
    assert_eq!(
        error(r#"{"files": {"/etc/../x/": {}}}"#),
        r#"files["/etc/../x/"]: expected a directory key like "/etc/shared/", got "/etc/../x/""#
    );
    assert_eq!(
        error(r#"{"files": {"/etc": {}}}"#),
        r#"files["/etc"]: expected a directory key like "/etc/shared/", got "/etc""#
    );
    assert_eq!(
        error(r#"{"files": {"/": {}}}"#),
        r#"files["/"]: expected a directory key like "/etc/shared/", got "/""#
    );
    assert_eq!(
        error(r#"{"files": {"excluded_extensions": [""]}}"#),
        r#"files.excluded_extensions: expected a list of name endings, got """#
    );
    assert!(matches!(
        ClusterItems::from_json_3_9(b"{"),
        Err(ClusterJsonError::Json(_))
    ));
    assert_eq!(
        ClusterItems::from_json_3_9(br#"{"x": 1}"#),
        Err(ClusterJsonError::UnknownKey { key: "x".into() })
    );
}

#[test]
fn permissions_parse_like_python_int_base_0() {
    // python3 -c 'print([int(x, 0) for x in ["0o660", "0O660", "0x1B0", "0b110110000", "432", " 0o660 ", "0o_660", "0", "00", "-0o1", "1_0"]])'
    let ok = [
        ("0o660", 0o660),
        ("0O660", 0o660),
        ("0x1B0", 0x1b0),
        ("0b110110000", 0o660),
        ("432", 432),
        (" 0o660 ", 0o660),
        ("0o_660", 0o660),
        ("0", 0),
        ("00", 0),
        ("-0o1", -1),
        ("1_0", 10),
    ];
    for (text, value) in ok {
        assert_eq!(parse_python_int(text), Some(value), "{text:?}");
    }
    // Each raises ValueError in Python.
    for bad in [
        "0660", "", "0o", "0o8", "1__0", "_1", "1_", "0x_", "o660", "0o660x", "+-1",
    ] {
        assert_eq!(parse_python_int(bad), None, "{bad:?}");
    }
    // Python has big integers; we refuse what does not fit an i64 (no permission is that big).
    assert_eq!(parse_python_int("99999999999999999999"), None);
}
