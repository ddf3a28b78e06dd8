//! The `cluster.json` reader: upstream 3.9.5's document and an operator's file on top of it, read
//! into the typed model of [`crate::integrity::items`].
//!
//! Upstream reads `framework/wazuh/cluster/cluster.json` as a loose dict and fails with a
//! `KeyError` deep inside a sync task when a key is wrong. Here the document is parsed once into
//! typed values: unknown keys and bad values are errors that name the key
//! (`intervals.worker.keep_alive: expected a positive number, got "x"`), so a typo in an operator's
//! file is caught at start-up, not at the first sync.
//!
//! [`ClusterItems::defaults_3_9`] is upstream 3.9.5's document ([`CLUSTER_JSON_3_9_5`], values from
//! PROTOCOL.md §12; the `description` strings are left out because we do not have their exact
//! text and no code reads them). [`ClusterItems::from_json_3_9`] applies an operator's file on top
//! of those defaults:
//! * `intervals`, `sync_options` and `distributed_api` are merged value by value (a key not given
//!   keeps its default);
//! * `files`, when present, replaces the whole item list (cluster.json is the complete list
//!   upstream too, and a merge could not remove an item); its `excluded_files` /
//!   `excluded_extensions` keep the defaults when absent.
//!
//! Key paths in messages: `files["/etc/"].permissions`, `intervals.worker.keep_alive`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::integrity::items::{
    ClusterItems, CommunicationIntervals, FileSelection, IntegrityItem, Intervals, ItemKey,
    ItemSource, MasterIntervals, SyncOptions, WorkerIntervals,
};
use crate::integrity::path::validate_file_name;

/// Upstream 3.9.5's `cluster.json`, as far as PROTOCOL.md §12 records it (`description` strings
/// omitted). `excluded_files` and `excluded_extensions` live inside `files`, as upstream has them.
pub const CLUSTER_JSON_3_9_5: &str = r#"{
    "files": {
        "/etc/": {
            "permissions": "0o640",
            "source": "master",
            "files": ["client.keys"],
            "recursive": false,
            "restart": false,
            "remove_subdirs_if_empty": false,
            "extra_valid": false
        },
        "/etc/shared/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["merged.mg"],
            "recursive": true,
            "restart": false,
            "remove_subdirs_if_empty": true,
            "extra_valid": false
        },
        "/var/multigroups/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["merged.mg"],
            "recursive": true,
            "restart": false,
            "remove_subdirs_if_empty": true,
            "extra_valid": false
        },
        "/etc/rules/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["all"],
            "recursive": true,
            "restart": true,
            "remove_subdirs_if_empty": false,
            "extra_valid": false
        },
        "/etc/decoders/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["all"],
            "recursive": true,
            "restart": true,
            "remove_subdirs_if_empty": false,
            "extra_valid": false
        },
        "/etc/lists/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["all"],
            "recursive": true,
            "restart": true,
            "remove_subdirs_if_empty": false,
            "extra_valid": false
        },
        "/queue/agent-info/": {
            "permissions": "0o660",
            "source": "worker",
            "files": ["agent-info.merged"],
            "recursive": false,
            "restart": false,
            "remove_subdirs_if_empty": false,
            "extra_valid": false
        },
        "/queue/agent-groups/": {
            "permissions": "0o660",
            "source": "master",
            "files": ["all"],
            "recursive": true,
            "restart": false,
            "remove_subdirs_if_empty": false,
            "extra_valid": true
        },
        "excluded_files": ["ar.conf", "ossec.conf"],
        "excluded_extensions": ["~", ".tmp", ".lock", ".swp"]
    },
    "intervals": {
        "worker": {
            "sync_integrity": 9,
            "sync_files": 10,
            "keep_alive": 60,
            "connection_retry": 10,
            "max_failed_keepalive_attempts": 2
        },
        "master": {
            "recalculate_integrity": 8,
            "check_worker_lastkeepalive": 60,
            "max_allowed_time_without_keepalive": 120
        },
        "communication": {
            "timeout_cluster_request": 20,
            "timeout_api_request": 200,
            "timeout_api_exe": 10,
            "timeout_receiving_file": 120
        }
    },
    "sync_options": {
        "get_agentinfo_newer_than": 1800
    },
    "distributed_api": {
        "enabled": true
    }
}"#;

/// Most integrity items accepted in one document (upstream has 8; the bound keeps a hostile or
/// broken file from making every path lookup slow).
pub const MAX_ITEMS: usize = 256;

/// Why a `cluster.json` document was refused. Every variant names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterJsonError {
    /// The bytes are not a JSON document.
    #[error("cluster.json is not valid JSON: {0}")]
    Json(String),
    /// A key this model does not know (a typo, or a 4.x-only key).
    #[error("{key}: unknown key")]
    UnknownKey {
        /// Dotted path of the key.
        key: String,
    },
    /// A required key is absent.
    #[error("{key}: missing")]
    Missing {
        /// Dotted path of the key.
        key: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{key}: expected {expected}, got {got}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What was expected, in words.
        expected: &'static str,
        /// The value found, as compact JSON.
        got: String,
    },
}

impl ClusterItems {
    /// Upstream 3.9.5's defaults ([`CLUSTER_JSON_3_9_5`]).
    pub fn defaults_3_9() -> Self {
        // The embedded document is a constant checked by the tests; failing to parse it is a bug.
        #[allow(clippy::expect_used)]
        let doc: Value =
            serde_json::from_str(CLUSTER_JSON_3_9_5).expect("embedded cluster.json is JSON");
        #[allow(clippy::expect_used)]
        read(&doc, None).expect("embedded cluster.json is valid")
    }

    /// The 3.9.5 defaults overridden by an operator's cluster.json (see the module docs for the
    /// merge rules).
    pub fn from_json_3_9(bytes: &[u8]) -> Result<Self, ClusterJsonError> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| ClusterJsonError::Json(e.to_string()))?;
        read(&doc, Some(Self::defaults_3_9()))
    }
}

/// Reads `doc` over `base`; `None` reads the embedded defaults, where every key is required.
fn read(doc: &Value, base: Option<ClusterItems>) -> Result<ClusterItems, ClusterJsonError> {
    let root = as_object(doc, "cluster.json")?;
    check_keys(
        root,
        "",
        &["files", "intervals", "sync_options", "distributed_api"],
    )?;
    let mut out = match base {
        Some(base) => base,
        None => ClusterItems::new(
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Intervals {
                worker: WorkerIntervals {
                    sync_integrity: Duration::ZERO,
                    sync_files: Duration::ZERO,
                    keep_alive: Duration::ZERO,
                    connection_retry: Duration::ZERO,
                    max_failed_keepalive_attempts: 0,
                },
                master: MasterIntervals {
                    recalculate_integrity: Duration::ZERO,
                    check_worker_lastkeepalive: Duration::ZERO,
                    max_allowed_time_without_keepalive: Duration::ZERO,
                },
                communication: CommunicationIntervals {
                    timeout_cluster_request: Duration::ZERO,
                    timeout_api_request: Duration::ZERO,
                    timeout_api_exe: Duration::ZERO,
                    timeout_receiving_file: Duration::ZERO,
                },
            },
            SyncOptions {
                get_agentinfo_newer_than: Duration::ZERO,
            },
            false,
        ),
    };
    // The embedded defaults must be complete; an override may leave keys out.
    let required = out.items().is_empty();
    if let Some(files) = root.get("files") {
        read_files(&mut out, files)?;
    } else if required {
        return Err(ClusterJsonError::Missing {
            key: "files".into(),
        });
    }
    let r = Reader { required };
    if let Some(intervals) = r.section(root, "intervals", "")? {
        check_keys(
            intervals,
            "intervals",
            &["worker", "master", "communication"],
        )?;
        if let Some(w) = r.section(intervals, "worker", "intervals")? {
            let p = "intervals.worker";
            let t = &mut out.intervals.worker;
            let count = "max_failed_keepalive_attempts";
            r.durations(
                w,
                p,
                &mut [
                    ("sync_integrity", &mut t.sync_integrity),
                    ("sync_files", &mut t.sync_files),
                    ("keep_alive", &mut t.keep_alive),
                    ("connection_retry", &mut t.connection_retry),
                ],
                &[count],
            )?;
            r.scalar(w, p, count, &mut t.max_failed_keepalive_attempts, COUNT)?;
        }
        if let Some(m) = r.section(intervals, "master", "intervals")? {
            let t = &mut out.intervals.master;
            r.durations(
                m,
                "intervals.master",
                &mut [
                    ("recalculate_integrity", &mut t.recalculate_integrity),
                    (
                        "check_worker_lastkeepalive",
                        &mut t.check_worker_lastkeepalive,
                    ),
                    (
                        "max_allowed_time_without_keepalive",
                        &mut t.max_allowed_time_without_keepalive,
                    ),
                ],
                &[],
            )?;
        }
        if let Some(c) = r.section(intervals, "communication", "intervals")? {
            let t = &mut out.intervals.communication;
            r.durations(
                c,
                "intervals.communication",
                &mut [
                    ("timeout_cluster_request", &mut t.timeout_cluster_request),
                    ("timeout_api_request", &mut t.timeout_api_request),
                    ("timeout_api_exe", &mut t.timeout_api_exe),
                    ("timeout_receiving_file", &mut t.timeout_receiving_file),
                ],
                &[],
            )?;
        }
    }
    if let Some(s) = r.section(root, "sync_options", "")? {
        r.durations(
            s,
            "sync_options",
            &mut [(
                "get_agentinfo_newer_than",
                &mut out.sync_options.get_agentinfo_newer_than,
            )],
            &[],
        )?;
    }
    if let Some(d) = r.section(root, "distributed_api", "")? {
        check_keys(d, "distributed_api", &["enabled"])?;
        r.scalar(
            d,
            "distributed_api",
            "enabled",
            &mut out.distributed_api_enabled,
            BOOLEAN,
        )?;
    }
    Ok(out)
}

/// Reads `files`: the item list (replacing the whole list) and the exclusions.
fn read_files(out: &mut ClusterItems, files: &Value) -> Result<(), ClusterJsonError> {
    let files = as_object(files, "files")?;
    let mut items = Vec::new();
    for (key, value) in files {
        match key.as_str() {
            "excluded_files" => {
                out.excluded_files = name_list(value, "files.excluded_files", false)?
            }
            "excluded_extensions" => {
                out.excluded_extensions = name_list(value, "files.excluded_extensions", true)?;
            }
            _ => items.push(parse_item(key, value)?),
        }
    }
    if items.len() > MAX_ITEMS {
        return Err(ClusterJsonError::Invalid {
            key: "files".into(),
            expected: "at most 256 items",
            got: format!("{} items", items.len()),
        });
    }
    out.replace_items(items);
    Ok(())
}

fn parse_item(key: &str, value: &Value) -> Result<IntegrityItem, ClusterJsonError> {
    let path = format!("files[{key:?}]");
    let item_key = ItemKey::new(key).ok_or_else(|| ClusterJsonError::Invalid {
        key: path.clone(),
        expected: "a directory key like \"/etc/shared/\"",
        got: Value::String(key.to_owned()).to_string(),
    })?;
    let obj = as_object(value, &path)?;
    check_keys(
        obj,
        &path,
        &[
            "permissions",
            "source",
            "files",
            "recursive",
            "restart",
            "remove_subdirs_if_empty",
            "extra_valid",
            "description",
        ],
    )?;
    let required = |name: &str| {
        obj.get(name).ok_or_else(|| ClusterJsonError::Missing {
            key: format!("{path}.{name}"),
        })
    };
    let invalid = |name: &str, expected: &'static str, got: &Value| ClusterJsonError::Invalid {
        key: format!("{path}.{name}"),
        expected,
        got: got.to_string(),
    };
    let perm_value = required("permissions")?;
    let permissions = perm_value
        .as_str()
        .and_then(parse_python_int)
        .filter(|p| (0..=0o7777).contains(p))
        .map(|p| p as u32)
        .ok_or_else(|| {
            invalid(
                "permissions",
                "permission bits as a string like \"0o660\"",
                perm_value,
            )
        })?;
    let source_value = required("source")?;
    let source = match source_value.as_str() {
        Some("master") => ItemSource::Master,
        Some("worker") => ItemSource::Worker,
        Some("all") => ItemSource::All,
        _ => {
            return Err(invalid(
                "source",
                "\"master\", \"worker\" or \"all\"",
                source_value,
            ));
        }
    };
    let names = name_list(required("files")?, &format!("{path}.files"), false)?;
    let files = if names.len() == 1 && names[0] == "all" {
        FileSelection::All
    } else {
        FileSelection::Names(names.into_iter().collect())
    };
    let flag = |name: &str, default: bool| match obj.get(name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid(name, "true or false", other)),
    };
    let recursive = match obj.get("recursive") {
        None => {
            return Err(ClusterJsonError::Missing {
                key: format!("{path}.recursive"),
            });
        }
        Some(_) => flag("recursive", false)?,
    };
    let description = match obj.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(invalid("description", "a string", other)),
    };
    Ok(IntegrityItem {
        key: item_key,
        permissions,
        source,
        files,
        recursive,
        restart: flag("restart", false)?,
        remove_subdirs_if_empty: flag("remove_subdirs_if_empty", false)?,
        extra_valid: flag("extra_valid", false)?,
        description,
    })
}

/// A list of file names (or, with `suffixes`, of non-empty name endings such as `.tmp`).
fn name_list(value: &Value, key: &str, suffixes: bool) -> Result<Vec<String>, ClusterJsonError> {
    let expected = if suffixes {
        "a list of name endings"
    } else {
        "a list of file names"
    };
    let invalid = |got: &Value| ClusterJsonError::Invalid {
        key: key.to_owned(),
        expected,
        got: got.to_string(),
    };
    let list = value.as_array().ok_or_else(|| invalid(value))?;
    list.iter()
        .map(|entry| {
            let name = entry.as_str().ok_or_else(|| invalid(entry))?;
            let ok = if suffixes {
                !name.is_empty() && !name.contains(['/', '\\', '\0'])
            } else {
                validate_file_name(name).is_ok()
            };
            if ok {
                Ok(name.to_owned())
            } else {
                Err(invalid(entry))
            }
        })
        .collect()
}

fn as_object<'a>(value: &'a Value, key: &str) -> Result<&'a Map<String, Value>, ClusterJsonError> {
    value.as_object().ok_or_else(|| ClusterJsonError::Invalid {
        key: key.to_owned(),
        expected: "an object",
        got: value.to_string(),
    })
}

fn check_keys(
    obj: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), ClusterJsonError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ClusterJsonError::UnknownKey {
            key: join_key(prefix, unknown),
        }),
        None => Ok(()),
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Reads scalar values into an existing configuration; `required` is set while parsing the
/// embedded defaults (every key must be there) and cleared for an override.
struct Reader {
    required: bool,
}

impl Reader {
    fn value<'a>(
        &self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        name: &str,
    ) -> Result<Option<&'a Value>, ClusterJsonError> {
        match obj.get(name) {
            Some(v) => Ok(Some(v)),
            None if self.required => Err(ClusterJsonError::Missing {
                key: join_key(prefix, name),
            }),
            None => Ok(None),
        }
    }

    fn section<'a>(
        &self,
        obj: &'a Map<String, Value>,
        name: &str,
        prefix: &str,
    ) -> Result<Option<&'a Map<String, Value>>, ClusterJsonError> {
        match self.value(obj, prefix, name)? {
            Some(v) => as_object(v, &join_key(prefix, name)).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a section of durations, in table order, after checking that it names no other key
    /// than those in the table and `others` (read by the caller afterwards): one reading for
    /// every interval section, so they cannot drift apart in what they accept or report.
    fn durations(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        fields: &mut [(&str, &mut Duration)],
        others: &[&str],
    ) -> Result<(), ClusterJsonError> {
        let known: Vec<&str> = fields
            .iter()
            .map(|(name, _)| *name)
            .chain(others.iter().copied())
            .collect();
        check_keys(obj, prefix, &known)?;
        for (name, out) in fields.iter_mut() {
            self.scalar(obj, prefix, name, &mut **out, SECONDS)?;
        }
        Ok(())
    }

    /// Reads one scalar of `kind`; a missing key leaves `out` as it is (or is an error for the
    /// defaults).
    fn scalar<T>(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        name: &str,
        out: &mut T,
        kind: Scalar<T>,
    ) -> Result<(), ClusterJsonError> {
        let Some(v) = self.value(obj, prefix, name)? else {
            return Ok(());
        };
        *out = (kind.parse)(v).ok_or_else(|| ClusterJsonError::Invalid {
            key: join_key(prefix, name),
            expected: kind.expected,
            got: v.to_string(),
        })?;
        Ok(())
    }
}

/// What a scalar key accepts: `parse` answers `None` for a value that is not `expected`.
struct Scalar<T> {
    expected: &'static str,
    parse: fn(&Value) -> Option<T>,
}

/// Upstream hands intervals to asyncio.sleep / wait_for: any positive number of seconds. The
/// upper bound (about 31 years) keeps Duration::from_secs_f64 from panicking.
const SECONDS: Scalar<Duration> = Scalar {
    expected: "a positive number",
    parse: |v| {
        v.as_f64()
            .filter(|secs| *secs > 0.0 && *secs <= 1e9)
            .map(Duration::from_secs_f64)
    },
};

const COUNT: Scalar<u32> = Scalar {
    expected: "a positive integer",
    parse: |v| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
    },
};

const BOOLEAN: Scalar<bool> = Scalar {
    expected: "true or false",
    parse: Value::as_bool,
};

/// Parses `text` as Python's `int(text, base=0)` does: surrounding whitespace, an optional sign,
/// a `0x`/`0o`/`0b` prefix (any case) or plain decimal without leading zeros, single underscores
/// between digits (and after a prefix). `None` where Python raises `ValueError` or on overflow.
pub fn parse_python_int(text: &str) -> Option<i64> {
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{b}' || c == '\u{c}');
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits, after_prefix) = match lower.as_deref() {
        Some("0x") => (16, &t[2..], true),
        Some("0o") => (8, &t[2..], true),
        Some("0b") => (2, &t[2..], true),
        _ => (10, t, false),
    };
    // A prefix may be followed by one underscore ("0o_660"); otherwise underscores only between digits.
    let digits = if after_prefix {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(radix)?;
        value = value
            .checked_mul(i64::from(radix))?
            .checked_add(i64::from(d))?;
    }
    // Python refuses decimal literals with leading zeros ("0660"), except all-zero ones.
    if radix == 10 && digits.starts_with('0') && value != 0 {
        return None;
    }
    Some(if negative { -value } else { value })
}
