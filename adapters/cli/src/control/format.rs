//! What `control -l` and `control -i [more]` print, from the JSON documents a node answers to
//! `get_nodes` and `get_health` (PROTOCOL.md §14.1, §14.2): upstream 3.9.5's `cluster_control`
//! text, character for character (§14.3), since operators' scripts parse it. Pure functions, no
//! I/O: the client brings the documents, `run` prints the text.

use serde_json::Value;

/// Why a document cannot be printed the way upstream prints it (upstream would stop with a
/// `KeyError` or `TypeError` there).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A field upstream reads is missing.
    #[error("the node's answer has no '{path}'")]
    Missing {
        /// Dotted path of the field.
        path: String,
    },
    /// A field has a type upstream cannot print there.
    #[error("the node's answer has an unexpected '{path}': {found}")]
    Shape {
        /// Dotted path of the field.
        path: String,
        /// The value found (JSON).
        found: String,
    },
}

/// The value at `path` (object keys) in `doc`.
fn at<'a>(doc: &'a Value, path: &[&str]) -> Result<&'a Value, FormatError> {
    path.iter()
        .enumerate()
        .try_fold(doc, |value, (depth, key)| {
            value.get(key).ok_or_else(|| FormatError::Missing {
                path: path[..=depth].join("."),
            })
        })
}

/// Python's `str(value)` for what a JSON document holds (`"{}".format(value)`).
pub(super) fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// `py_str` of the value at `path`.
pub(super) fn text_at(doc: &Value, path: &[&str]) -> Result<String, FormatError> {
    at(doc, path).map(py_str)
}

/// Upstream's table (`__print_table(data, headers, show_header=True)` of `cluster_control`):
/// ```text
/// table = list(itertools.chain([tuple(map(lambda x: x.upper(), headers))], data))
/// sizes = list(map(lambda x: max(map(lambda y: len(y)+2, x)), map(list, zip(*table))))
/// table_str = '\n'.join([''.join(["{}{}".format(col, " "*(max_size - len(col)))
///                                  for col, max_size in zip(row, sizes)]) for row in table])
/// print(table_str)
/// ```
/// The headers upper-cased, then the rows; every column (the last one too) padded to its
/// longest cell + 2, widths counted in characters as Python's `len`; a newline after each row.
fn format_table<const COLUMNS: usize>(
    headers: [&str; COLUMNS],
    rows: &[[String; COLUMNS]],
) -> String {
    let headers = headers.map(str::to_uppercase);
    let mut widths = [0usize; COLUMNS];
    for row in std::iter::once(&headers).chain(rows) {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count() + 2);
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(rows) {
        for (width, text) in widths.iter().zip(row) {
            out.push_str(text);
            out.extend(std::iter::repeat_n(' ', width - text.chars().count()));
        }
        // Rows are joined with newlines and print() ends the last one.
        out.push('\n');
    }
    out
}

/// The rows of a table: for each item of the array at `path` in `doc`, the values of `keys`.
/// Upstream measures `len(y)` of each cell, so a cell must be a string; an absent key is
/// `absent` (upstream's `get_agents` fills its fields with `unknown`) or an error (`None`).
fn rows_at<const COLUMNS: usize>(
    doc: &Value,
    path: &[&str],
    keys: [&str; COLUMNS],
    absent: Option<&str>,
) -> Result<Vec<[String; COLUMNS]>, FormatError> {
    let items = at(doc, path)?;
    let items = items.as_array().ok_or_else(|| FormatError::Shape {
        path: path.join("."),
        found: items.to_string(),
    })?;
    let cell_path = |index: usize, key: &str| format!("{}.{index}.{key}", path.join("."));
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let mut row: [String; COLUMNS] = std::array::from_fn(|_| String::new());
        for (cell, key) in row.iter_mut().zip(keys) {
            *cell = match (item.get(key), absent) {
                (Some(Value::String(text)), _) => text.clone(),
                (Some(other), _) => {
                    return Err(FormatError::Shape {
                        path: cell_path(index, key),
                        found: other.to_string(),
                    });
                }
                (None, Some(absent)) => absent.to_owned(),
                (None, None) => {
                    return Err(FormatError::Missing {
                        path: cell_path(index, key),
                    });
                }
            };
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `cluster_control -l`: what upstream prints for a `get_nodes` document.
///
/// Upstream (`print_nodes` of `cluster_control`), then [`format_table`]:
/// ```text
/// headers = ["Name", "Type", "Version", "Address"]
/// data = map(lambda x: list(x.values()), result['items'])
/// ```
/// Upstream takes each item's values in the node's key order (`name`, `type`, `version`, `ip`);
/// we take them by name, which is the same on a 3.9.5 answer and does not depend on key order.
///
/// # Errors
/// [`FormatError`] when `items` or a cell is missing or not a string.
pub fn format_nodes(doc: &Value) -> Result<String, FormatError> {
    let rows = rows_at(doc, &["items"], ["name", "type", "version", "ip"], None)?;
    Ok(format_table(["Name", "Type", "Version", "Address"], &rows))
}

/// `cluster_control -a`: what upstream prints for the answer to `control.get_agents`'s `dapi`
/// request (`{"data": {"items": [...], ...}, "error": 0}`).
///
/// Upstream (`get_agents` of `control.py`, `print_agents` of `cluster_control`), then
/// [`format_table`]:
/// ```text
/// filled_result = [{**r, **{key: 'unknown' for key in select_fields - r.keys()}} for r in result['data']['items']]
/// headers = {'id': 'ID', 'name': 'Name', 'ip': 'IP', 'status': 'Status', 'version': 'Version',
///            'node_name': 'Node name'}
/// data = map(operator.itemgetter(*headers.keys()), result['data']['items'])
/// ```
/// An agent that never connected has no `version` (or `ip`, ...): `unknown` there.
///
/// # Errors
/// [`FormatError`] when `data.items` is missing or a cell is not a string.
pub fn format_agents(doc: &Value) -> Result<String, FormatError> {
    let keys = ["id", "name", "ip", "status", "version", "node_name"];
    let rows = rows_at(doc, &["data", "items"], keys, Some("unknown"))?;
    let headers = ["ID", "Name", "IP", "Status", "Version", "Node name"];
    Ok(format_table(headers, &rows))
}

/// `cluster_control -i [more]`: what upstream 3.9.5 prints for a `get_health` document.
///
/// Upstream (`print_health` of 3.9.5 `cluster_control`), which this follows line by line:
/// ```text
/// msg1 += "Cluster name: {}\n\n".format(config['name'])
/// if not more:
///     msg1 += "Last completed synchronization for connected nodes ({}):\n".format(result["n_connected_nodes"])
/// else:
///     msg1 += "Connected nodes ({}):".format(result["n_connected_nodes"])
/// for node, node_info in sorted(result["nodes"].items()):
///     msg2 += "\n    {} ({})\n".format(node, node_info['info']['ip'])
///     msg2 += "        Version: {}\n".format(node_info['info']['version'])
///     msg2 += "        Type: {}\n".format(node_info['info']['type'])
///     msg2 += "        Active agents: {}\n".format(node_info['info']['n_active_agents'])
///     if node_info['info']['type'] != "master":
///         if not more:
///             msg1 += "    {} ({}): Integrity: {} | Agents-info: {} | Agent-groups: {} | Last keep alive: {}.\n".format(
///                 node, node_info['info']['ip'], ...['last_sync_integrity']['date_end_master'],
///                 ...['last_sync_agentinfo']['date_end_master'],
///                 ...['last_sync_agentgroups']['date_end_master'], ...['last_keep_alive'])
///         msg2 += "        Status:\n"
///         msg2 += "            Last keep Alive:\n"
///         msg2 += "                Last received: {0}.\n".format(...['last_keep_alive'])
///         msg2 += "            Integrity\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(date_start_master, date_end_master)
///         msg2 += "                Synchronized files: Shared: {} | Missing: {} | Extra: {} | Extra valid: {}.\n"
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_integrity_free']))
///         msg2 += "            Agents-info\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(...)
///         msg2 += "                Synchronized files: {}.\n".format(str(...['total_agentinfo']))
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_agentinfo_free']))
///         msg2 += "            Agents-group\n"
///         msg2 += "                Last synchronization: {0} - {1}.\n".format(...)
///         msg2 += "                Synchronized files: {}.\n".format(str(...['total_agentgroups']))
///         msg2 += "                Permission to synchronize: {}.\n".format(str(...['sync_extravalid_free']))
/// print(msg1)
/// if more:
///     print(msg2)
/// ```
/// Checked against the v3.9.5 tag's `framework/scripts/cluster_control.py` (`print_health`):
/// the same lines.
///
/// Nodes are sorted by name (Python's `sorted` on `str` = code point order = Rust's `str` order).
///
/// # Errors
/// [`FormatError`] when a field upstream reads is missing.
pub fn format_health(cluster_name: &str, doc: &Value, more: bool) -> Result<String, FormatError> {
    let connected = text_at(doc, &["n_connected_nodes"])?;
    let nodes = at(doc, &["nodes"])?
        .as_object()
        .ok_or_else(|| FormatError::Shape {
            path: "nodes".to_owned(),
            found: doc["nodes"].to_string(),
        })?;
    let mut names: Vec<&String> = nodes.keys().collect();
    names.sort();

    let mut msg1 = format!("Cluster name: {cluster_name}\n\n");
    if more {
        msg1.push_str(&format!("Connected nodes ({connected}):"));
    } else {
        msg1.push_str(&format!(
            "Last completed synchronization for connected nodes ({connected}):\n"
        ));
    }
    let mut msg2 = String::new();
    for name in names {
        let node = &nodes[name.as_str()];
        // Paths in errors start at the node's entry, as upstream's KeyError would name them.
        let get = |path: &[&str]| -> Result<String, FormatError> {
            text_at(node, path).map_err(|error| prefix(error, name))
        };
        let ip = get(&["info", "ip"])?;
        msg2.push_str(&format!("\n    {name} ({ip})\n"));
        msg2.push_str(&format!(
            "        Version: {}\n",
            get(&["info", "version"])?
        ));
        let node_type = get(&["info", "type"])?;
        msg2.push_str(&format!("        Type: {node_type}\n"));
        msg2.push_str(&format!(
            "        Active agents: {}\n",
            get(&["info", "n_active_agents"])?
        ));
        if node_type == "master" {
            continue;
        }
        let keep_alive = get(&["status", "last_keep_alive"])?;
        let sync = |item: &str, field: &str| get(&["status", item, field]);
        if !more {
            msg1.push_str(&format!(
                "    {name} ({ip}): Integrity: {} | Agents-info: {} | Agent-groups: {} | Last keep alive: {keep_alive}.\n",
                sync("last_sync_integrity", "date_end_master")?,
                sync("last_sync_agentinfo", "date_end_master")?,
                sync("last_sync_agentgroups", "date_end_master")?,
            ));
        }
        msg2.push_str("        Status:\n");
        msg2.push_str("            Last keep Alive:\n");
        msg2.push_str(&format!("                Last received: {keep_alive}.\n"));

        let files = |kind: &str| get(&["status", "last_sync_integrity", "total_files", kind]);
        msg2.push_str("            Integrity\n");
        msg2.push_str(&last_sync(&sync, "last_sync_integrity")?);
        msg2.push_str(&format!(
            "                Synchronized files: Shared: {} | Missing: {} | Extra: {} | Extra valid: {}.\n",
            files("shared")?,
            files("missing")?,
            files("extra")?,
            files("extra_valid")?,
        ));
        msg2.push_str(&permission(&get(&["status", "sync_integrity_free"])?));

        // Agent-info and agent-groups are printed alike, each from its own keys.
        for (title, item, total, free) in [
            (
                "Agents-info",
                "last_sync_agentinfo",
                "total_agentinfo",
                "sync_agentinfo_free",
            ),
            (
                "Agents-group",
                "last_sync_agentgroups",
                "total_agentgroups",
                "sync_extravalid_free",
            ),
        ] {
            msg2.push_str(&format!("            {title}\n"));
            msg2.push_str(&last_sync(&sync, item)?);
            msg2.push_str(&synchronized_files(&sync(item, total)?));
            msg2.push_str(&permission(&get(&["status", free])?));
        }
    }
    // print(msg1) and, with more, print(msg2): each ends with a newline of print's own.
    let mut out = msg1;
    out.push('\n');
    if more {
        out.push_str(&msg2);
        out.push('\n');
    }
    Ok(out)
}

/// `"                Last synchronization: {start} - {end}.\n"` of one status item.
fn last_sync(
    sync: &dyn Fn(&str, &str) -> Result<String, FormatError>,
    item: &str,
) -> Result<String, FormatError> {
    Ok(format!(
        "                Last synchronization: {} - {}.\n",
        sync(item, "date_start_master")?,
        sync(item, "date_end_master")?
    ))
}

fn synchronized_files(count: &str) -> String {
    format!("                Synchronized files: {count}.\n")
}

fn permission(free: &str) -> String {
    format!("                Permission to synchronize: {free}.\n")
}

/// Makes an error's path start at `nodes.<name>`.
fn prefix(error: FormatError, name: &str) -> FormatError {
    match error {
        FormatError::Missing { path } => FormatError::Missing {
            path: format!("nodes.{name}.{path}"),
        },
        FormatError::Shape { path, found } => FormatError::Shape {
            path: format!("nodes.{name}.{path}"),
            found,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `result` of the recorded call titled `title` in a DAPI vector file.
    fn recorded(file: &str, title: &str) -> Value {
        let doc = wazuh_cluster_vectors::json(file);
        let call = doc["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .find(|call| call["title"] == title)
            .unwrap_or_else(|| panic!("{file}: no call {title}"));
        match &call["result"] {
            // The API calls recorded the result as the API's JSON text with "data" inside.
            Value::String(text) => {
                serde_json::from_str::<Value>(text).expect("JSON")["data"].clone()
            }
            other => other.clone(),
        }
    }

    const NODES_TABLE: &str = "NAME      TYPE    VERSION  ADDRESS    \n\
                               master01  master  3.9.5    127.0.0.1  \n\
                               worker1   worker  3.9.5    127.0.0.1  \n";

    #[test]
    fn list_nodes_prints_upstreams_table_for_every_recorded_answer() {
        for (file, title) in [
            ("v3.9/dapi_via_master.json", "control.get_nodes()"),
            ("v3.9/dapi_via_worker.json", "control.get_nodes()"),
            ("v3.9/dapi_via_master.json", "dapi /cluster/nodes"),
            ("v3.9/dapi_via_worker.json", "dapi /cluster/nodes"),
        ] {
            let nodes = recorded(file, title);
            assert_eq!(format_nodes(&nodes).unwrap(), NODES_TABLE, "{file} {title}");
        }
    }

    #[test]
    fn list_nodes_widths_follow_the_longest_cell_in_characters() {
        let doc = serde_json::json!({"totalItems": 3, "items": [
            {"name": "master-node", "type": "master", "version": "4.9.2", "ip": "10.0.0.1"},
            {"name": "wörker-1", "type": "worker", "version": "4.9.2", "ip": "10.0.0.2"},
            {"name": "w", "type": "worker", "version": "4.9.2", "ip": "192.168.100.200"},
        ]});
        assert_eq!(
            format_nodes(&doc).unwrap(),
            "NAME         TYPE    VERSION  ADDRESS          \n\
             master-node  master  4.9.2    10.0.0.1         \n\
             wörker-1     worker  4.9.2    10.0.0.2         \n\
             w            worker  4.9.2    192.168.100.200  \n"
        );
        let empty = serde_json::json!({"totalItems": 0, "items": []});
        assert_eq!(
            format_nodes(&empty).unwrap(),
            "NAME  TYPE  VERSION  ADDRESS  \n"
        );
    }

    #[test]
    fn list_nodes_refuses_what_upstream_cannot_print() {
        assert_eq!(
            format_nodes(&serde_json::json!({"totalItems": 0})),
            Err(FormatError::Missing {
                path: "items".to_owned()
            })
        );
        assert_eq!(
            format_nodes(
                &serde_json::json!({"items": [{"name": "a", "type": "master", "version": "3.9.5"}]})
            ),
            Err(FormatError::Missing {
                path: "items.0.ip".to_owned()
            })
        );
        assert_eq!(
            format_nodes(
                &serde_json::json!({"items": [{"name": 7, "type": "master", "version": "3.9.5", "ip": "x"}]})
            ),
            Err(FormatError::Shape {
                path: "items.0.name".to_owned(),
                found: "7".to_owned()
            })
        );
    }

    #[test]
    fn list_agents_prints_upstreams_table_with_unknown_for_absent_fields() {
        // What a 3.9.5 master answered to /agents selecting id, name and node_name.
        let recorded = wazuh_cluster_vectors::json("v3.9/dapi_via_master.json");
        let call = recorded["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|call| call["title"] == "dapi /agents (local_master)")
            .unwrap();
        let answer: Value = serde_json::from_str(call["result"].as_str().unwrap()).unwrap();
        assert_eq!(
            format_agents(&answer).unwrap(),
            "ID   NAME         IP       STATUS   VERSION  NODE NAME  \n\
             000  localhost    unknown  unknown  unknown  unknown    \n\
             001  agent-one    unknown  unknown  unknown  worker1    \n\
             002  agent-two    unknown  unknown  unknown  worker1    \n\
             003  agent-three  unknown  unknown  unknown  master01   \n\
             004  agent-four   unknown  unknown  unknown  worker1    \n"
        );
        let agents = serde_json::json!({"data": {"totalItems": 2, "items": [
            {"id": "000", "name": "master01", "ip": "127.0.0.1", "status": "Active",
             "version": "Wazuh v3.9.5", "node_name": "master01", "dateAdd": "2019-08-01"},
            {"node_name": "worker1", "status": "Never connected", "ip": "any", "name": "web-01",
             "id": "001"},
        ]}, "error": 0});
        assert_eq!(
            format_agents(&agents).unwrap(),
            "ID   NAME      IP         STATUS           VERSION       NODE NAME  \n\
             000  master01  127.0.0.1  Active           Wazuh v3.9.5  master01   \n\
             001  web-01    any        Never connected  unknown       worker1    \n"
        );
        let none = serde_json::json!({"data": {"totalItems": 0, "items": []}, "error": 0});
        assert_eq!(
            format_agents(&none).unwrap(),
            "ID  NAME  IP  STATUS  VERSION  NODE NAME  \n"
        );
    }

    #[test]
    fn list_agents_refuses_what_upstream_cannot_print() {
        assert_eq!(
            format_agents(&serde_json::json!({"items": []})),
            Err(FormatError::Missing {
                path: "data".to_owned()
            })
        );
        assert_eq!(
            format_agents(&serde_json::json!({"data": {"items": [{"id": "001", "ip": null}]}})),
            Err(FormatError::Shape {
                path: "data.items.0.ip".to_owned(),
                found: "null".to_owned()
            })
        );
    }

    const HEALTH: &str = "Cluster name: wazuh\n\
        \n\
        Last completed synchronization for connected nodes (1):\n    \
        worker1 (127.0.0.1): Integrity: 2026-11-26 08:48:49.479029 | Agents-info: 2026-11-26 08:48:48.446403 | Agent-groups: 2026-11-26 08:48:43.473357 | Last keep alive: 2026-11-26 08:48:48.424182.\n\
        \n";

    const HEALTH_MORE: &str = "Cluster name: wazuh\n\
        \n\
        Connected nodes (1):\n\
        \n    master01 (127.0.0.1)\n        \
        Version: 3.9.5\n        \
        Type: master\n        \
        Active agents: 1\n\
        \n    worker1 (127.0.0.1)\n        \
        Version: 3.9.5\n        \
        Type: worker\n        \
        Active agents: 3\n        \
        Status:\n            \
        Last keep Alive:\n                \
        Last received: 2026-11-26 08:48:48.424182.\n            \
        Integrity\n                \
        Last synchronization: 2026-11-26 08:48:49.463437 - 2026-11-26 08:48:49.479029.\n                \
        Synchronized files: Shared: 0 | Missing: 0 | Extra: 0 | Extra valid: 0.\n                \
        Permission to synchronize: True.\n            \
        Agents-info\n                \
        Last synchronization: 2026-11-26 08:48:48.429321 - 2026-11-26 08:48:48.446403.\n                \
        Synchronized files: 0.\n                \
        Permission to synchronize: True.\n            \
        Agents-group\n                \
        Last synchronization: 2026-11-26 08:48:43.455649 - 2026-11-26 08:48:43.473357.\n                \
        Synchronized files: 0.\n                \
        Permission to synchronize: True.\n\
        \n";

    #[test]
    fn health_prints_upstreams_text_for_every_recorded_answer() {
        for (file, title) in [
            ("v3.9/dapi_via_master.json", "control.get_health()"),
            ("v3.9/dapi_via_worker.json", "control.get_health()"),
            ("v3.9/dapi_via_master.json", "dapi /cluster/healthcheck"),
            ("v3.9/dapi_via_worker.json", "dapi /cluster/healthcheck"),
        ] {
            let health = recorded(file, title);
            assert_eq!(
                format_health("wazuh", &health, false).unwrap(),
                HEALTH,
                "{file} {title}"
            );
            assert_eq!(
                format_health("wazuh", &health, true).unwrap(),
                HEALTH_MORE,
                "{file} {title}"
            );
        }
    }

    #[test]
    fn health_filtered_to_one_worker_has_no_master_block() {
        let health = recorded(
            "v3.9/dapi_via_master.json",
            "control.get_health(filter_node=[\"worker1\"])",
        );
        assert_eq!(format_health("wazuh", &health, false).unwrap(), HEALTH);
        let more = format_health("wazuh", &health, true).unwrap();
        assert!(!more.contains("master01"));
        assert_eq!(more, HEALTH_MORE.replace(
            "\n    master01 (127.0.0.1)\n        Version: 3.9.5\n        Type: master\n        Active agents: 1\n",
            "",
        ));
    }

    #[test]
    fn health_sorts_nodes_and_prints_python_values() {
        let worker = |lka: &str, free: bool| {
            serde_json::json!({
                "info": {"name": "x", "type": "worker", "version": "3.9.5", "ip": "10.0.0.9", "n_active_agents": 0},
                "status": {
                    "sync_integrity_free": free,
                    "last_sync_integrity": {"date_start_master": "n/a", "date_end_master": "n/a",
                        "total_files": {"missing": 1, "shared": 2, "extra": 3, "extra_valid": 4}},
                    "sync_agentinfo_free": free,
                    "last_sync_agentinfo": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentinfo": 5},
                    "sync_extravalid_free": free,
                    "last_sync_agentgroups": {"date_start_master": "n/a", "date_end_master": "n/a", "total_agentgroups": 6},
                    "last_keep_alive": lka
                }
            })
        };
        let doc = serde_json::json!({"n_connected_nodes": 2, "nodes": {
            "worker-b": worker("b", false),
            "worker-a": worker("a", true),
        }});
        assert_eq!(
            format_health("prod", &doc, false).unwrap(),
            "Cluster name: prod\n\nLast completed synchronization for connected nodes (2):\n    \
             worker-a (10.0.0.9): Integrity: n/a | Agents-info: n/a | Agent-groups: n/a | Last keep alive: a.\n    \
             worker-b (10.0.0.9): Integrity: n/a | Agents-info: n/a | Agent-groups: n/a | Last keep alive: b.\n\n"
        );
        let more = format_health("prod", &doc, true).unwrap();
        assert!(more.contains(
            "                Synchronized files: Shared: 2 | Missing: 1 | Extra: 3 | Extra valid: 4.\n\
             \x20               Permission to synchronize: False.\n"
        ));
        assert!(more.find("worker-a (").unwrap() < more.find("worker-b (").unwrap());
    }

    #[test]
    fn health_names_the_missing_field() {
        let mut health = recorded("v3.9/dapi_via_master.json", "control.get_health()");
        health["nodes"]["worker1"]["status"]
            .as_object_mut()
            .unwrap()
            .remove("last_keep_alive");
        assert_eq!(
            format_health("wazuh", &health, false),
            Err(FormatError::Missing {
                path: "nodes.worker1.status.last_keep_alive".to_owned()
            })
        );
        assert_eq!(
            format_health("wazuh", &serde_json::json!({"nodes": {}}), false),
            Err(FormatError::Missing {
                path: "n_connected_nodes".to_owned()
            })
        );
    }
}
