//! Arguments of every type for every parameter of every built-in function: each call answers
//! (never panics), with a well-formed `print_json` answer; and arguments built to make naive
//! code slow (a query of 100,000 terms, 100,000 sort or select fields) get upstream's answers
//! (work linear in their size: a quadratic step made this test take minutes).

use std::collections::BTreeMap;

use super::test_support::{NOW, add, call, running_daemons};
use crate::dapi::BuiltinExecutor;
use crate::dapi::json::{JsonLimits, JsonValue};
use crate::integrity::memory::MemoryStorage;

/// Each function's route, name and parameters.
const FUNCTIONS: [(&str, &str, &[&str]); 8] = [
    (
        "/agents",
        "Agent.get_agents_overview",
        &[
            "offset", "limit", "sort", "search", "select", "filters", "q",
        ],
    ),
    (
        "/agents/:agent_id",
        "Agent.get_agent",
        &["agent_id", "select"],
    ),
    (
        "/agents/name/:agent_name",
        "Agent.get_agent_by_name",
        &["agent_name", "select"],
    ),
    ("/agents/summary", "Agent.get_agents_summary", &[]),
    ("/manager/status", "manager.status", &[]),
    ("/manager/info", "manager.get_info", &[]),
    (
        "/manager/logs",
        "manager.ossec_log",
        &[
            "type_log", "category", "months", "offset", "limit", "sort", "search",
        ],
    ),
    (
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        &["months"],
    ),
];

/// Values of every JSON type, and the shapes upstream's arguments take, broken.
const VALUES: [&str; 24] = [
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1001",
    "9223372036854775807",
    "1.5",
    "-0.0",
    "NaN",
    "Infinity",
    r#""""#,
    r#""all""#,
    r#""older_than""#,
    r#""(id=1;name~a,status!=active)""#,
    "[]",
    "[[]]",
    r#"[1, "id", {}]"#,
    "{}",
    r#"{"fields": 5, "order": [], "value": {}, "negation": "x"}"#,
    r#"{"fields": ["id", ["x"]], "order": "desc"}"#,
    r#"{"fields": "name", "order": "asc"}"#,
    r#"{"value": "%_%", "negation": true}"#,
    r#"{"status": ["active", null, 1], "older_than": "1d1x", "group": ["a"], "dateAdd": "2019-01-01"}"#,
];

fn install() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    running_daemons(&mut storage);
    add(
        &mut storage,
        "/etc/client.keys",
        "001 a any k\n002 b 10.0.0.0/8 k\n",
        0,
    );
    add(
        &mut storage,
        "/queue/agent-info/a-any",
        "x [y: 1.2 (z)] - v / c\nm merged.mg\n",
        60,
    );
    add(
        &mut storage,
        "/logs/ossec.log",
        "2019/07/11 08:39:52 ossec-a: INFO: x\ncontinued\n",
        0,
    );
    storage
}

fn is_answer(text: &str) -> bool {
    let Ok(JsonValue::Object(answer)) = JsonValue::parse(text.as_bytes(), &JsonLimits::default())
    else {
        return false;
    };
    let keys: Vec<&str> = answer.keys().collect();
    keys == ["data", "error"] || keys == ["message", "error"]
}

#[test]
fn every_argument_of_every_type_gets_an_answer() {
    let storage = install();
    for (route, function, parameters) in FUNCTIONS {
        let mut arguments: Vec<String> = vec!["{}".to_owned(), r#"{"unknown": 1}"#.to_owned()];
        for parameter in parameters {
            for value in VALUES {
                arguments.push(format!(r#"{{"{parameter}": {value}}}"#));
            }
        }
        for arguments in arguments {
            let answer = BuiltinExecutor.run(
                &storage,
                &call(route, function, &arguments, BTreeMap::new()),
                NOW,
            );
            assert!(is_answer(&answer), "{function} {arguments}: {answer}");
        }
    }
}

#[test]
fn arguments_built_to_be_slow_get_upstreams_answers() {
    let storage = install();
    let many_terms = "name=a;".repeat(100_000);
    let many_fields = vec![r#""id""#; 100_000].join(", ");
    let distinct_fields: Vec<String> = (0..100_000).map(|i| format!(r#""f{i}""#)).collect();
    let distinct_fields = distinct_fields.join(", ");
    let long_name = "a".repeat(900_000);
    for (arguments, expected) in [
        (
            format!(r#"{{"q": "{many_terms}name=b"}}"#),
            r#"{"message": "Error in wazuhdb request: Expression tree is too large (maximum depth 1000)", "error": 2003}"#.to_owned(),
        ),
        (
            format!(r#"{{"q": "{long_name}", "limit": 1}}"#),
            format!(r#"{{"message": "query does not match expected format: {long_name}", "error": 1407}}"#),
        ),
        (
            format!(r#"{{"sort": {{"fields": [{distinct_fields}], "order": "asc"}}}}"#),
            format!(
                r#"{{"message": "Sort field invalid: Allowerd sort fields: {{{}}}. Fields: {}", "error": 1403}}"#,
                "'id', 'name', 'ip', 'status', 'os.name', 'os.version', 'os.platform', 'version', \
                 'manager', 'dateAdd', 'group', 'mergedSum', 'configSum', 'os.codename', 'os.major', \
                 'os.minor', 'os.uname', 'os.arch', 'os.build', 'node_name', 'lastKeepAlive', \
                 'internal_key', 'registerIP'",
                (0..100_000).map(|i| format!("f{i}")).collect::<Vec<_>>().join(", ")
            ),
        ),
        (
            format!(r#"{{"select": {{"fields": [{many_fields}]}}, "limit": 1}}"#),
            r#"{"data": {"items": [{"id": "000"}], "totalItems": 3}, "error": 0}"#.to_owned(),
        ),
    ] {
        let answer = BuiltinExecutor.run(
            &storage,
            &call("/agents", "Agent.get_agents_overview", &arguments, BTreeMap::new()),
            NOW,
        );
        assert_eq!(answer, expected);
    }
}
