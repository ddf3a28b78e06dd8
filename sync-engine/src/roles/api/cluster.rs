//! What the node answers about its cluster without the adapter: the cluster routes
//! (`/cluster/node`, `/cluster/config`, `/cluster/status`, and on the master `/cluster/nodes`,
//! `/cluster/nodes/:node_name`, `/cluster/healthcheck`), a worker's `dapi_cluster`, and the local
//! socket's `get_config` — in 3.9.5's shapes, except that the cluster key is never given out
//! (upstream sends it to any local client and in `/cluster/config`).

use std::collections::BTreeMap;

use crate::dapi::merge::error_answer;
use crate::dapi::{DapiRequest, JsonLimits, JsonValue, Route};
use crate::pyjson;
use crate::roles::config::{NodeConfig, NodeType};
use crate::roles::health::{ClusterSnapshot, health_json, nodes_json};
use crate::roles::ids::PeerId;
use crate::roles::shell::Shell;

/// What the distributed API part reads of the role.
pub(crate) trait ClusterView {
    /// Master: the registered workers and their connections, by name.
    fn worker_links(&self) -> Vec<(String, PeerId)>;
    /// Worker: the accepted link to the master.
    fn master_link(&self) -> Option<PeerId>;
    /// Master: agent id → the node it reports to.
    fn agent_nodes(&self) -> BTreeMap<String, String>;
    /// Master: the master and its workers as `get_nodes` / `get_health` show them.
    fn snapshot(&self, shell: &Shell) -> Option<ClusterSnapshot>;
}

/// The cluster configuration as 3.9.5's `read_cluster_config` gives it (`get_config`,
/// `/cluster/config`), without the key.
pub(super) fn config_json(config: &NodeConfig) -> String {
    let settings = &config.settings;
    let node_type = match config.node_type {
        NodeType::Master => "master",
        NodeType::Worker => "worker",
    };
    let mut out = String::from("{\"name\": ");
    pyjson::write_str(&mut out, &config.cluster_name);
    out.push_str(", \"node_name\": ");
    pyjson::write_str(&mut out, &config.node_name);
    out.push_str(", \"node_type\": ");
    pyjson::write_str(&mut out, node_type);
    out.push_str(&format!(", \"port\": {}, \"bind_addr\": ", settings.port));
    pyjson::write_str(&mut out, &settings.bind_addr);
    out.push_str(", \"nodes\": [");
    for (i, node) in settings.nodes.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        pyjson::write_str(&mut out, node);
    }
    out.push_str("], \"hidden\": ");
    pyjson::write_str(&mut out, if settings.hidden { "yes" } else { "no" });
    out.push_str(", \"disabled\": false}");
    out
}

/// The answer of a route the node knows by itself, `None` for the others.
pub(super) fn answer_here(
    shell: &Shell,
    view: &dyn ClusterView,
    route: &Route,
    request: &DapiRequest,
) -> Option<String> {
    let config = shell.config();
    let data = match route.framework_function {
        "cluster.get_node" => {
            let mut out = String::from("{\"node\": ");
            pyjson::write_str(&mut out, &config.node_name);
            out.push_str(", \"cluster\": ");
            pyjson::write_str(&mut out, &config.cluster_name);
            out.push_str(", \"type\": ");
            let node_type = if config.node_type == NodeType::Master {
                "master"
            } else {
                "worker"
            };
            pyjson::write_str(&mut out, node_type);
            out.push('}');
            out
        }
        "cluster.read_config" => config_json(config),
        "cluster.get_status_json" => r#"{"enabled": "yes", "running": "yes"}"#.to_owned(),
        "cluster_control.get_nodes" => {
            let snapshot = view.snapshot(shell)?;
            match nodes_json(&snapshot, arguments_json(request).as_bytes()) {
                Ok(json) => json,
                Err(text) => return Some(failure_answer(&text)),
            }
        }
        "cluster_control.get_node" => {
            let snapshot = view.snapshot(shell)?;
            let filter = request
                .arguments()
                .get("filter_node")
                .cloned()
                .unwrap_or(JsonValue::Null);
            let mut arguments = crate::dapi::JsonObject::new();
            arguments.insert("filter_node", filter);
            match nodes_json(
                &snapshot,
                JsonValue::Object(arguments).to_python_json().as_bytes(),
            ) {
                Ok(json) => first_item(&json, &config.limits.api.json.answer),
                Err(text) => return Some(failure_answer(&text)),
            }
        }
        "cluster_control.get_health" => {
            let snapshot = view.snapshot(shell)?;
            let filter = names(request.arguments().get("filter_node"));
            health_json(&snapshot, filter.as_deref())
        }
        _ => return None,
    };
    Some(format!("{{\"data\": {data}, \"error\": 0}}"))
}

/// The master's answer to a worker's `dapi_cluster` (3.9.5 `process_dapi_cluster`): `ok` with
/// `{"error": 0, "data": …}`, or `err` with the failure's text.
pub(super) fn dapi_cluster(
    shell: &Shell,
    view: &dyn ClusterView,
    payload: &[u8],
) -> (bool, String) {
    let limits = &shell.config().limits.api.json;
    let request = match DapiRequest::parse(payload, limits) {
        Ok(request) => request,
        Err(e) => return (false, crate::dapi::DapiError::from(e).err_payload()),
    };
    let Some(snapshot) = view.snapshot(shell) else {
        return (
            false,
            crate::dapi::DapiError::Internal("not a master".into()).err_payload(),
        );
    };
    let data = match request.function() {
        "/cluster/healthcheck" => {
            // Upstream wraps the filter in a list, whatever it is.
            let filter = request.arguments().get("filter_node").map(|value| {
                names(Some(&JsonValue::Array(vec![value.clone()]))).unwrap_or_default()
            });
            health_json(&snapshot, filter.as_deref())
        }
        function => match nodes_json(&snapshot, arguments_json(&request).as_bytes()) {
            Ok(json) if function == "/cluster/nodes/:node_name" => {
                first_item(&json, &limits.answer)
            }
            Ok(json) => json,
            Err(text) => return (false, text),
        },
    };
    (true, format!("{{\"error\": 0, \"data\": {data}}}"))
}

/// The request's arguments without `wait_for_complete`, as JSON text.
fn arguments_json(request: &DapiRequest) -> String {
    let mut arguments = request.arguments().clone();
    arguments.remove("wait_for_complete");
    JsonValue::Object(arguments).to_python_json()
}

/// A node-name filter: a name, a list of names, or nothing.
fn names(value: Option<&JsonValue>) -> Option<Vec<String>> {
    match value? {
        JsonValue::Str(name) => Some(vec![name.clone()]),
        JsonValue::Array(items) => Some(
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// `items[0]` of a `get_nodes` answer, or `{}` (3.9.5 `get_node`).
fn first_item(nodes: &str, limits: &JsonLimits) -> String {
    let first = JsonValue::parse(nodes.as_bytes(), limits)
        .ok()
        .and_then(|value| match value {
            JsonValue::Object(object) => match object.get("items") {
                Some(JsonValue::Array(items)) => items.first().cloned(),
                _ => None,
            },
            _ => None,
        });
    first.map_or_else(|| "{}".to_owned(), |item| item.to_python_json())
}

/// The answer of a `get_nodes` refusal: `WazuhException <code> <text>` keeps its code.
fn failure_answer(text: &str) -> String {
    let parsed = text
        .strip_prefix("WazuhException ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(code, message)| Some((code.parse::<u16>().ok()?, message)));
    match parsed {
        Some((code, message)) => error_answer(message, code),
        None => error_answer(text, 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code() {
        assert_eq!(
            failure_answer("WazuhException 1728 Invalid node type"),
            r#"{"message": "Invalid node type", "error": 1728}"#
        );
        assert_eq!(
            failure_answer("expected a list"),
            r#"{"message": "expected a list", "error": 1000}"#
        );
    }

    #[test]
    fn the_first_node_or_nothing() {
        let limits = JsonLimits::default();
        assert_eq!(
            first_item(r#"{"totalItems": 1, "items": [{"name": "w1"}]}"#, &limits),
            r#"{"name": "w1"}"#
        );
        assert_eq!(
            first_item(r#"{"totalItems": 0, "items": []}"#, &limits),
            "{}"
        );
    }
}
