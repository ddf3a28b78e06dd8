//! The master's agent census from the agent database: which node each agent reports to (its
//! `node_name`, what 3.9.5's `get_solver_node` reads to place a distributed API request), and
//! how many active agents report to each node, as 3.9.5's `get_health` counts them for each
//! node's `n_active_agents`: `Agent.get_agents_overview(filters={'status': 'Active',
//! 'node_name': <node>})['totalItems']`, once per node. Here in one pass over the table: the
//! rows upstream's `status=active` filter keeps (its SQL, so agent 000 counts, for the node its
//! row names), grouped by `node_name` as stored. Upstream's node filter compares without case
//! (`COLLATE NOCASE`): a node's count is the sum of the names equal to its own but for ASCII
//! case, which the node does when it reads the answer.
//!
//! Only from the agent database: without one it fails as upstream's query would (2000, `No such
//! database file`), and the master keeps its own count (the table the files give could not name
//! the node of an agent whose agent-info came from a worker without a `_node_name` line, and
//! would count it nowhere).
//!
//! Not an upstream function: the node asks for it ([`AGENT_CENSUS`]) and the built-in executor
//! always answers it, whatever runs the other calls. Every agent of the table is in `nodes` (ids
//! as upstream writes them, `000`; a row without `node_name` as `""`), within the table's own
//! bound ([`MAX_AGENT_RECORDS`](super::database::MAX_AGENT_RECORDS)).
//!
//! ```text
//! → {"data": {"active": {"master01": 1, "unknown": 1, "worker1": 3},
//!             "nodes": {"000": "master01", "001": "worker1", ...}}, "error": 0}
//! ```

use std::collections::BTreeMap;

use super::database::AgentSource;
use super::query;
use super::table::AgentTable;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::python::bind;
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::Timestamp;

/// The framework function name the node asks the census by.
pub const AGENT_CENSUS: &str = "cluster.agent_census";

/// The node of each agent and the active agents of each `node_name` at `now`. See the
/// [module documentation](self).
///
/// # Errors
/// Any argument (it takes none); no database (2000), or one that cannot be read (2003).
pub(in crate::dapi::builtin) fn agent_census(
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    bind::<0>(AGENT_CENSUS, &[], arguments)?;
    let records = agents
        .database
        .agent_records()
        .map_err(|e| FunctionError::database(&e.0))?
        .ok_or_else(|| FunctionError::wazuh(2000, None))?;
    let nodes: BTreeMap<String, JsonValue> = records
        .iter()
        .map(|record| {
            let node = record.node_name.clone().unwrap_or_default();
            (format!("{:03}", record.id), JsonValue::Str(node))
        })
        .collect();
    let table = AgentTable::from_records(records);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for row in query::matching_rows(&table, "status=active", now)? {
        if let Some(node) = &row.node_name {
            *counts.entry(node.clone()).or_default() += 1;
        }
    }
    let active: JsonObject = counts
        .into_iter()
        .map(|(node, count)| (node, JsonValue::Int(count)))
        .collect();
    Ok(JsonValue::Object(
        [
            ("active".to_owned(), JsonValue::Object(active)),
            (
                "nodes".to_owned(),
                JsonValue::Object(nodes.into_iter().collect()),
            ),
        ]
        .into_iter()
        .collect(),
    ))
}
