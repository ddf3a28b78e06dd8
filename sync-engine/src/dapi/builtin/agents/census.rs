//! How many active agents report to each node, as 3.9.5's `get_health` counts them for each
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
//! Not an upstream function: the node asks for it ([`ACTIVE_AGENTS_BY_NODE`]) and the built-in
//! executor always answers it, whatever runs the other calls.
//!
//! ```text
//! → {"data": {"master01": 1, "unknown": 1, "worker1": 3}, "error": 0}
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
pub const ACTIVE_AGENTS_BY_NODE: &str = "cluster.active_agents_by_node";

/// The active agents of each `node_name` at `now`. See the [module documentation](self).
///
/// # Errors
/// Any argument (it takes none); no database (2000), or one that cannot be read (2003).
pub(in crate::dapi::builtin) fn active_agents_by_node(
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    bind::<0>(ACTIVE_AGENTS_BY_NODE, &[], arguments)?;
    let records = agents
        .database
        .agent_records()
        .map_err(|e| FunctionError::database(&e.0))?
        .ok_or_else(|| FunctionError::wazuh(2000, None))?;
    let table = AgentTable::from_records(records);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for row in query::matching_rows(&table, "status=active", now)? {
        if let Some(node) = &row.node_name {
            *counts.entry(node.clone()).or_default() += 1;
        }
    }
    Ok(JsonValue::Object(
        counts
            .into_iter()
            .map(|(node, count)| (node, JsonValue::Int(count)))
            .collect(),
    ))
}
