//! `Agent.get_agent_by_name` (`/agents/name/:agent_name`): the agent of that name (the lowest
//! id when several share it; names compare exactly), answered as `get_agent` answers it; none:
//! 1701.
//!
//! ```text
//! {"agent_name": "agent-one", "select": {"fields": ["id"]}}  →  {"id": "001"}
//! ```

use super::database::AgentSource;
use super::get_agent::basic_information;
use super::table::AgentTable;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::{ArgDefault, bind, str_of};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::dapi::merge::truthy;
use crate::integrity::storage::{Storage, Timestamp};

/// `Agent.get_agent_by_name(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// 1701 for a name no agent has; a name of a type SQLite cannot bind (a list, a dict); those of
/// `get_agent`.
pub(in crate::dapi::builtin) fn get_agent_by_name<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    let [agent_name, select] = bind(
        "get_agent_by_name",
        &[
            ("agent_name", ArgDefault::Required),
            ("select", ArgDefault::None),
        ],
        arguments,
    )?;
    // `SELECT id FROM agent WHERE name = :name`: the name column is text, so a number matches
    // the name written like it; `None` matches nothing.
    let name = match &agent_name {
        JsonValue::Array(_) | JsonValue::Object(_) => {
            return Err(FunctionError::database(
                "Error binding parameter :name - probably unsupported type.",
            ));
        }
        JsonValue::Null => None,
        JsonValue::Bool(b) => Some(i64::from(*b).to_string()),
        other => Some(str_of(other)),
    };
    let table = AgentTable::load(install, agents)?;
    let Some(row) = name.and_then(|name| table.rows.iter().find(|row| row.name == name)) else {
        let extra = truthy(&agent_name).then(|| str_of(&agent_name));
        return Err(FunctionError::wazuh(1701, extra.as_deref()));
    };
    let agent_id = JsonValue::from(format!("{:0>3}", row.id));
    basic_information(&table, &agent_id, &select, now)
}
