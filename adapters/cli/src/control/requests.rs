//! What `control` asks a node: the exact payloads 3.9.5's `control.py` builds for
//! `cluster_control` (`get_nodes`, `get_health`, `get_agents`), written as its `json.dumps`
//! writes them (key order, `", "` / `": "`, non-ASCII escaped), so a node sees the same bytes
//! from us as from upstream's script.

use wazuh_cluster_sync::dapi::{JsonObject, JsonValue};

/// Upstream's `common.database_limit`: the `limit` of `get_nodes`.
const DATABASE_LIMIT: i64 = 500;

/// The agent fields `-a` selects, in the order we send them. Upstream builds the list from a
/// Python set (`{'id', 'ip', 'name', 'status', 'node_name', 'version'}`), so its order changes
/// with each process's string hashing; we send the set as written in `control.py`. The node
/// answers with the fields whatever their order.
const AGENT_FIELDS: [&str; 6] = ["id", "ip", "name", "status", "node_name", "version"];

/// `-fn`'s names as the JSON value upstream sends: `null` without `-fn`, else the list.
fn node_filter(filter_node: Option<&[String]>) -> JsonValue {
    filter_node.map_or(JsonValue::Null, |names| {
        JsonValue::Array(names.iter().map(|name| name.as_str().into()).collect())
    })
}

/// Upstream 3.9.5 `control.get_nodes(filter_node)`: the kwargs of `get_connected_nodes`.
pub fn get_nodes_payload(filter_node: Option<&[String]>) -> String {
    let mut kwargs = JsonObject::new();
    kwargs.insert("filter_node", node_filter(filter_node));
    kwargs.insert("offset", JsonValue::Int(0));
    kwargs.insert("limit", JsonValue::Int(DATABASE_LIMIT));
    for absent in ["sort", "search", "select"] {
        kwargs.insert(absent, JsonValue::Null);
    }
    kwargs.insert("filter_type", "all".into());
    kwargs.to_python_json()
}

/// Upstream 3.9.5 `control.get_health(filter_node)`: `json.dumps(filter_node)`.
pub fn get_health_payload(filter_node: Option<&[String]>) -> String {
    node_filter(filter_node).to_python_json()
}

/// Upstream 3.9.5 `control.get_agents(filter_node, filter_status)`: the `dapi` request of
/// `/agents` (an empty filter is `"all"`, several values are joined with `,`), keys in
/// `control.py`'s order (`function`, `from_cluster`, `arguments`).
pub fn get_agents_request(filter_status: &[String], filter_node: &[String]) -> String {
    let joined_or_all = |values: &[String]| -> JsonValue {
        if values.is_empty() {
            "all".into()
        } else {
            values.join(",").into()
        }
    };
    let mut filters = JsonObject::new();
    filters.insert("status", joined_or_all(filter_status));
    filters.insert("node_name", joined_or_all(filter_node));
    let mut select = JsonObject::new();
    let fields = AGENT_FIELDS.iter().map(|field| (*field).into()).collect();
    select.insert("fields", JsonValue::Array(fields));
    let mut arguments = JsonObject::new();
    arguments.insert("filters", filters.into());
    arguments.insert("limit", JsonValue::Null);
    arguments.insert("wait_for_complete", false.into());
    arguments.insert("select", select.into());
    let mut request = JsonObject::new();
    request.insert("function", "/agents".into());
    request.insert("from_cluster", false.into());
    request.insert("arguments", arguments.into());
    request.to_python_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first frame our client's upstream counterpart sent in the recorded call `title`.
    fn recorded_request(file: &str, title: &str) -> (String, String) {
        let doc = wazuh_cluster_vectors::json(file);
        let call = doc["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|call| call["title"] == title)
            .unwrap_or_else(|| panic!("{file}: no call {title}"));
        let frame = &call["local_frames"][0];
        (
            frame["cmd"].as_str().unwrap().to_owned(),
            frame["payload"].as_str().unwrap().to_owned(),
        )
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn unfiltered_and_filtered_payloads_are_the_recorded_ones() {
        for file in ["v3.9/dapi_via_master.json", "v3.9/dapi_via_worker.json"] {
            assert_eq!(
                recorded_request(file, "control.get_nodes()"),
                ("get_nodes".to_owned(), get_nodes_payload(None))
            );
            assert_eq!(
                recorded_request(file, "control.get_health()"),
                ("get_health".to_owned(), get_health_payload(None))
            );
            assert_eq!(
                recorded_request(file, "control.get_health(filter_node=[\"worker1\"])"),
                (
                    "get_health".to_owned(),
                    get_health_payload(Some(&names(&["worker1"])))
                )
            );
        }
    }

    #[test]
    fn node_filters_are_lists_and_an_empty_one_stays_empty() {
        assert_eq!(
            get_nodes_payload(Some(&names(&["master01", "wörker"]))),
            r#"{"filter_node": ["master01", "w\u00f6rker"], "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#
        );
        assert_eq!(
            get_nodes_payload(Some(&[])),
            r#"{"filter_node": [], "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#
        );
        assert_eq!(get_health_payload(Some(&[])), "[]");
        assert_eq!(
            get_health_payload(Some(&names(&["a", "b"]))),
            r#"["a", "b"]"#
        );
    }

    #[test]
    fn the_agents_request_is_control_pys_with_all_for_an_empty_filter() {
        assert_eq!(
            get_agents_request(&[], &[]),
            r#"{"function": "/agents", "from_cluster": false, "arguments": {"filters": {"status": "all", "node_name": "all"}, "limit": null, "wait_for_complete": false, "select": {"fields": ["id", "ip", "name", "status", "node_name", "version"]}}}"#
        );
        assert_eq!(
            get_agents_request(
                &names(&["Active", "Never connected"]),
                &names(&["worker1", "worker2"])
            ),
            r#"{"function": "/agents", "from_cluster": false, "arguments": {"filters": {"status": "Active,Never connected", "node_name": "worker1,worker2"}, "limit": null, "wait_for_complete": false, "select": {"fields": ["id", "ip", "name", "status", "node_name", "version"]}}}"#
        );
    }
}
