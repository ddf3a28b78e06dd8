//! Both log functions end to end through [`BuiltinExecutor`], against the answers of upstream's
//! own `manager.ossec_log` / `manager.ossec_log_summary` (python3, same log, same `now`), with
//! the log's path as this install names it and one exception text put back in Python 3.7's
//! words.
//!
//! The main log holds: an entry on the window's first second, multi-line entries, a tag with
//! `[...]`, both rootcheck spellings, two `statfs` errors (which break a `type_log` listing as
//! they break upstream's), an empty line, an entry older than the window in the middle (where
//! the summary stops), a `\r\n` and a vertical tab (a line break to `tail`, not to the summary).

use std::collections::BTreeMap;

use crate::dapi::BuiltinExecutor;
use crate::dapi::builtin::test_support::{NOW, add, call, running_daemons};
use crate::integrity::memory::MemoryStorage;

const MAIN_LOG: &str =
    "2019/04/01 00:00:00 ossec-remoted: INFO: (unix_domain) Maximum send buffer set to: '212992'.
2019/07/11 08:39:52 ossec-analysisd: ERROR: Rule 31 failed
  details of the failure
2019/07/11 08:39:53 wazuh-modulesd:syscollector: WARNING: x: INFO: y
2019/07/11 08:39:54 ossec-rootcheck: DEBUG: rootcheck line
2019/07/11 08:39:55 rootcheck: CRITICAL: crit
2019/07/11 08:39:56 ossec-syscheckd: ERROR: statfs('/x') produced error: No such file or directory
2019/07/11 08:39:57 ossec-syscheckd: ERROR: statfs('/y') produced error: nope
2019/07/12 09:00:00 ossec-x[12] y: INFO: a: DEBUG: b
continuation after debug
2019/07/13 10:00:00 ossec-remoted: INFO: Started

2019/03/31 23:59:59 ossec-old: INFO: before the window
old continuation
2019/07/14 10:00:00 ossec-analysisd: ERROR: second error
2019/07/14 10:00:01 ossec-analysisd: ERROR: third error
more details\r\n2019/07/14 10:00:02 ossec-maild: WARNING: after a CRLF\u{b}after a vertical tab
";

/// Which log a case reads.
#[derive(Debug, Clone, Copy)]
enum Log {
    Main,
    /// A February 30th.
    BadDate,
    /// 100 entries with `\xff\xfe` 9000 bytes in (in the second 8 KiB chunk).
    BadByte,
    /// 100 entries with a cut `é` at byte 8190 (in the first chunk).
    BadContinuation,
    Missing,
}

fn entries() -> Vec<u8> {
    (0..100)
        .map(|i| {
            format!(
                "2019/07/11 08:39:{:02} ossec-a: INFO: {}\n",
                i % 60,
                "p".repeat(80)
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn install(log: Log) -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    running_daemons(&mut storage);
    let content: Option<Vec<u8>> = match log {
        Log::Main => Some(MAIN_LOG.as_bytes().to_vec()),
        Log::BadDate => {
            Some(b"2019/07/11 08:39:52 a: INFO: x\n2019/02/30 00:00:00 a: INFO: x\n".to_vec())
        }
        Log::BadByte => {
            let mut bytes = entries();
            bytes.splice(9000..9000, [0xff, 0xfe]);
            Some(bytes)
        }
        Log::BadContinuation => {
            let mut bytes = entries();
            bytes.splice(8190..8190, [0xc3, b'(']);
            Some(bytes)
        }
        Log::Missing => None,
    };
    if let Some(content) = content {
        add(&mut storage, "/logs/ossec.log", content, 0);
    }
    storage
}

/// (log, route, framework function, arguments, upstream's answer).
const CASES: [(Log, &str, &str, &str, &str); 34] = [
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:02", "tag": "ossec-maild", "level": "warning", "description": " after a CRLF\nafter a vertical tab"}, {"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}, {"timestamp": "2019-07-13 10:00:00", "tag": "ossec-remoted", "level": "info", "description": " Started"}, {"timestamp": "2019-07-12 09:00:00", "tag": "ossec-x", "level": "debug", "description": " b\ncontinuation after debug"}, {"timestamp": "2019-07-11 08:39:57", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/y') produced error: nope"}, {"timestamp": "2019-07-11 08:39:56", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/x') produced error: No such file or directory"}, {"timestamp": "2019-07-11 08:39:55", "tag": "ossec-rootcheck", "level": "critical", "description": " crit"}, {"timestamp": "2019-07-11 08:39:54", "tag": "ossec-rootcheck", "level": "debug", "description": " rootcheck line"}, {"timestamp": "2019-07-11 08:39:53", "tag": "wazuh-modulesd:syscollector", "level": "warning", "description": " x: INFO: y"}, {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}, {"timestamp": "2019-04-01 00:00:00", "tag": "ossec-remoted", "level": "info", "description": " (unix_domain) Maximum send buffer set to: '212992'."}], "totalItems": 12}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"type_log": "error"}"##,
        r##"{"message": "string indices must be integers", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"type_log": "ERROR", "category": "ossec-analysisd"}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}, {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}], "totalItems": 3}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"category": "ossec-rootcheck"}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-11 08:39:55", "tag": "ossec-rootcheck", "level": "critical", "description": " crit"}, {"timestamp": "2019-07-11 08:39:54", "tag": "ossec-rootcheck", "level": "debug", "description": " rootcheck line"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"search": {"value": "DETAILS", "negation": 0}}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"search": {"value": "remoted", "negation": 1}, "limit": 3}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:02", "tag": "ossec-maild", "level": "warning", "description": " after a CRLF\nafter a vertical tab"}, {"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}], "totalItems": 10}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"sort": {"fields": ["tag", "level"], "order": "asc"}}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}, {"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}, {"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-14 10:00:02", "tag": "ossec-maild", "level": "warning", "description": " after a CRLF\nafter a vertical tab"}, {"timestamp": "2019-04-01 00:00:00", "tag": "ossec-remoted", "level": "info", "description": " (unix_domain) Maximum send buffer set to: '212992'."}, {"timestamp": "2019-07-13 10:00:00", "tag": "ossec-remoted", "level": "info", "description": " Started"}, {"timestamp": "2019-07-11 08:39:55", "tag": "ossec-rootcheck", "level": "critical", "description": " crit"}, {"timestamp": "2019-07-11 08:39:54", "tag": "ossec-rootcheck", "level": "debug", "description": " rootcheck line"}, {"timestamp": "2019-07-11 08:39:56", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/x') produced error: No such file or directory"}, {"timestamp": "2019-07-11 08:39:57", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/y') produced error: nope"}, {"timestamp": "2019-07-12 09:00:00", "tag": "ossec-x", "level": "debug", "description": " b\ncontinuation after debug"}, {"timestamp": "2019-07-11 08:39:53", "tag": "wazuh-modulesd:syscollector", "level": "warning", "description": " x: INFO: y"}], "totalItems": 12}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"sort": {"fields": [], "order": "asc"}, "limit": 2}"##,
        r##"{"data": {"items": [{"timestamp": "2019-04-01 00:00:00", "tag": "ossec-remoted", "level": "info", "description": " (unix_domain) Maximum send buffer set to: '212992'."}, {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}], "totalItems": 12}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"offset": 2, "limit": 2}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}, {"timestamp": "2019-07-13 10:00:00", "tag": "ossec-remoted", "level": "info", "description": " Started"}], "totalItems": 12}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"months": 1}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:02", "tag": "ossec-maild", "level": "warning", "description": " after a CRLF\nafter a vertical tab"}, {"timestamp": "2019-07-14 10:00:01", "tag": "ossec-analysisd", "level": "error", "description": " third error\nmore details"}, {"timestamp": "2019-07-14 10:00:00", "tag": "ossec-analysisd", "level": "error", "description": " second error"}, {"timestamp": "2019-07-13 10:00:00", "tag": "ossec-remoted", "level": "info", "description": " Started"}, {"timestamp": "2019-07-12 09:00:00", "tag": "ossec-x", "level": "debug", "description": " b\ncontinuation after debug"}, {"timestamp": "2019-07-11 08:39:57", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/y') produced error: nope"}, {"timestamp": "2019-07-11 08:39:56", "tag": "ossec-syscheckd", "level": "error", "description": " statfs('/x') produced error: No such file or directory"}, {"timestamp": "2019-07-11 08:39:55", "tag": "ossec-rootcheck", "level": "critical", "description": " crit"}, {"timestamp": "2019-07-11 08:39:54", "tag": "ossec-rootcheck", "level": "debug", "description": " rootcheck line"}, {"timestamp": "2019-07-11 08:39:53", "tag": "wazuh-modulesd:syscollector", "level": "warning", "description": " x: INFO: y"}, {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error", "description": " Rule 31 failed\n  details of the failure"}], "totalItems": 11}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"type_log": "warning", "limit": null}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-14 10:00:02", "tag": "ossec-maild", "level": "warning", "description": " after a CRLF\nafter a vertical tab"}, {"timestamp": "2019-07-11 08:39:53", "tag": "wazuh-modulesd:syscollector", "level": "warning", "description": " x: INFO: y"}], "totalItems": 2}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"limit": 0}"##,
        r##"{"message": "0 is not a valid limit", "error": 1406}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"limit": 1001}"##,
        r##"{"message": "Specified limit exceeds maximum allowed (1000): 1001", "error": 1405}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"limit": "5"}"##,
        r##"{"message": "'>' not supported between instances of 'str' and 'int'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"offset": -1}"##,
        r##"{"message": "Invalid offset", "error": 1400}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"limit": -3}"##,
        r##"{"message": "Invalid limit", "error": 1401}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"offset": "x"}"##,
        r##"{"message": "invalid literal for int() with base 10: 'x'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"sort": {"fields": ["tag"], "order": "up"}}"##,
        r##"{"message": "Invalid order. Order must be 'asc' or 'desc'", "error": 1402}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"type_log": 5}"##,
        r##"{"message": "'int' object has no attribute 'lower'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"search": {"value": 5, "negation": 0}}"##,
        r##"{"message": "'int' object has no attribute 'lower'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"months": "x"}"##,
        r##"{"message": "invalid literal for int() with base 10: 'x'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"foo": 1}"##,
        r##"{"message": "ossec_log() got an unexpected keyword argument 'foo'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"sort": {"fields": ["tag"]}}"##,
        r##"{"message": "'order'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"search": {"negation": 1}}"##,
        r##"{"message": "'value'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"category": "nothing", "type_log": 5, "search": {"value": 5}, "sort": {"fields": ["tag"], "order": "up"}}"##,
        r##"{"message": "'negation'", "error": 1000}"##,
    ),
    (
        Log::Main,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{}"##,
        r##"{"data": {"ossec-remoted": {"all": 2, "info": 2, "error": 0, "critical": 0, "warning": 0, "debug": 0}, "ossec-analysisd": {"all": 1, "info": 0, "error": 1, "critical": 0, "warning": 0, "debug": 0}, "wazuh-modulesd:syscollector": {"all": 1, "info": 0, "error": 0, "critical": 0, "warning": 1, "debug": 0}, "ossec-rootcheck": {"all": 2, "info": 0, "error": 0, "critical": 1, "warning": 0, "debug": 1}, "ossec-syscheckd": {"all": 2, "info": 0, "error": 2, "critical": 0, "warning": 0, "debug": 0}, "ossec-x": {"all": 1, "info": 0, "error": 0, "critical": 0, "warning": 0, "debug": 1}}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{"months": 0}"##,
        r##"{"data": {}, "error": 0}"##,
    ),
    (
        Log::Main,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{"months": 5}"##,
        r##"{"data": {"ossec-remoted": {"all": 2, "info": 2, "error": 0, "critical": 0, "warning": 0, "debug": 0}, "ossec-analysisd": {"all": 3, "info": 0, "error": 3, "critical": 0, "warning": 0, "debug": 0}, "wazuh-modulesd:syscollector": {"all": 1, "info": 0, "error": 0, "critical": 0, "warning": 1, "debug": 0}, "ossec-rootcheck": {"all": 2, "info": 0, "error": 0, "critical": 1, "warning": 0, "debug": 1}, "ossec-syscheckd": {"all": 2, "info": 0, "error": 2, "critical": 0, "warning": 0, "debug": 0}, "ossec-x": {"all": 1, "info": 0, "error": 0, "critical": 0, "warning": 0, "debug": 1}, "ossec-old": {"all": 1, "info": 1, "error": 0, "critical": 0, "warning": 0, "debug": 0}, "ossec-maild": {"all": 1, "info": 0, "error": 0, "critical": 0, "warning": 1, "debug": 0}}, "error": 0}"##,
    ),
    (
        Log::BadDate,
        "/manager/logs",
        "manager.ossec_log",
        r##"{}"##,
        r##"{"message": "day is out of range for month", "error": 1000}"##,
    ),
    (
        Log::BadByte,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{}"##,
        r##"{"message": "'utf-8' codec can't decode byte 0xff in position 808: invalid start byte", "error": 1000}"##,
    ),
    (
        Log::BadByte,
        "/manager/logs",
        "manager.ossec_log",
        r##"{"limit": 1, "offset": 0}"##,
        r##"{"data": {"items": [{"timestamp": "2019-07-11 08:39:59", "tag": "ossec-a", "level": "info", "description": " pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"}], "totalItems": 100}, "error": 0}"##,
    ),
    (
        Log::BadContinuation,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{}"##,
        r##"{"message": "'utf-8' codec can't decode byte 0xc3 in position 8190: invalid continuation byte", "error": 1000}"##,
    ),
    (
        Log::Missing,
        "/manager/logs",
        "manager.ossec_log",
        r##"{}"##,
        r##"{"message": "[Errno 2] No such file or directory: '/var/ossec/logs/ossec.log'", "error": 1000}"##,
    ),
    (
        Log::Missing,
        "/manager/logs/summary",
        "manager.ossec_log_summary",
        r##"{}"##,
        r##"{"message": "[Errno 2] No such file or directory: '/var/ossec/logs/ossec.log'", "error": 1000}"##,
    ),
];

#[test]
fn answers_are_upstreams() {
    let mut failures = Vec::new();
    for (log, route, function, arguments, expected) in CASES {
        let call = call(route, function, arguments, BTreeMap::new());
        let answer = BuiltinExecutor.run(&install(log), &call, NOW);
        if answer != expected {
            failures.push(format!(
                "{log:?} {function} {arguments}\n  ours:   {answer}\n  theirs: {expected}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
