//! `Agent.get_agents_summary` (`/agents/summary`): how many agents there are, and how many in
//! each status, as 3.9.5 counts them with its status filters:
//! `{"Total": n, "Active": n, "Disconnected": n, "Never connected": n, "Pending": n}`.
//!
//! Upstream counts through the SQL of its `status` filter, not through the status it shows per
//! agent: agent 000 counts as active, and a pending agent that stopped reporting counts both as
//! disconnected and as pending.
//!
//! ```text
//! → {"Total": 5, "Active": 3, "Disconnected": 1, "Never connected": 1, "Pending": 0}
//! ```

use super::database::AgentSource;
use super::query::{self, QueryArguments, QueryMode};
use super::table::AgentTable;
use crate::dapi::builtin::failure::FunctionResult;
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::bind;
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::{Storage, Timestamp};

/// The counts after the total, with the statuses upstream queries them by.
const STATUSES: [&str; 4] = ["Active", "Disconnected", "Never connected", "Pending"];

/// `Agent.get_agents_summary(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// Any argument (the function takes none); a file of the install that cannot be read.
pub(in crate::dapi::builtin) fn get_agents_summary<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    bind::<0>("get_agents_summary", &[], arguments)?;
    let table = AgentTable::load(install, agents)?;
    let count = |q: String| -> FunctionResult<i64> {
        let answer = query::run(
            &table,
            QueryArguments {
                offset: &JsonValue::Int(0),
                limit: &JsonValue::Null,
                sort: &JsonValue::Null,
                search: &JsonValue::Null,
                select: &JsonValue::Null,
                q: JsonValue::from(q),
                filters: &JsonValue::Object(JsonObject::new()),
            },
            QueryMode {
                count: true,
                data: false,
                remove_extra_fields: true,
            },
            now,
        )?;
        Ok(answer.total_items)
    };
    let mut data = JsonObject::new();
    data.insert("Total", JsonValue::Int(count(String::new())?));
    for status in STATUSES {
        data.insert(status, JsonValue::Int(count(format!("status={status}"))?));
    }
    Ok(JsonValue::Object(data))
}
