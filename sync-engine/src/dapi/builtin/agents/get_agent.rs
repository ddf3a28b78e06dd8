//! `Agent.get_agent` (`/agents/:agent_id`): one agent's fields, as 3.9.5's
//! `Agent.get_basic_information` answers them: the fields of `select` (all but `internal_key`
//! without one) whose value is set and not empty, `os` nested.
//!
//! Upstream finds the agent with the query `id=<agent_id>` (so `1`, `001` and `0001` name the
//! same agent, and an id with query characters in it is read as a query, as upstream reads it);
//! none: 1701. A `select` that is given but not a `{"fields": [...]}` fails as upstream fails
//! on it.
//!
//! ```text
//! {"agent_id": "1", "select": {"fields": ["name", "os.platform"]}}
//! → {"name": "agent-one", "os": {"platform": "ubuntu"}}
//! ```

use super::Field;
use super::database::AgentSource;
use super::query::{self, QueryArguments, QueryMode};
use super::table::AgentTable;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::{ArgDefault, bind, str_of};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::dapi::merge::{get, iterate, truthy};
use crate::integrity::storage::{Storage, Timestamp};

/// `Agent.get_agent(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// 1701 for an agent that is not there; upstream's answers for a bad `select`.
pub(in crate::dapi::builtin) fn get_agent<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    let [agent_id, select] = bind(
        "get_agent",
        &[
            ("agent_id", ArgDefault::Required),
            ("select", ArgDefault::None),
        ],
        arguments,
    )?;
    let table = AgentTable::load(install, agents)?;
    basic_information(&table, &agent_id, &select, now)
}

/// `Agent(agent_id).get_basic_information(select)` over `table`.
///
/// # Errors
/// As [`get_agent`].
pub(super) fn basic_information(
    table: &AgentTable,
    agent_id: &JsonValue,
    select: &JsonValue,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    // `_load_info_from_DB`: the query `id=<agent_id>`, internal key kept.
    let answer = query::run(
        table,
        QueryArguments {
            offset: &JsonValue::Int(0),
            limit: &JsonValue::Null,
            sort: &JsonValue::Null,
            search: &JsonValue::Null,
            select,
            q: JsonValue::from(format!("id={}", str_of(agent_id))),
            filters: &JsonValue::Object(JsonObject::new()),
        },
        QueryMode {
            count: false,
            data: true,
            remove_extra_fields: false,
        },
        now,
    )?;
    let Some(loaded) = answer.items.into_iter().next() else {
        let extra = truthy(agent_id).then(|| str_of(agent_id));
        return Err(FunctionError::wazuh(1701, extra.as_deref()));
    };
    // The fields asked for (all but the internal key by default), by their attribute: `os.*`
    // all read the `os` attribute.
    let wanted: Vec<Field> = if *select == JsonValue::Null {
        Field::ALL
            .into_iter()
            .filter(|f| *f != Field::InternalKey)
            .collect()
    } else {
        let requested = iterate(get(select, "fields")?)?;
        Field::ALL
            .into_iter()
            .filter(|f| requested.iter().any(|r| r.as_str() == Some(f.api_name())))
            .collect()
    };
    let mut information = JsonObject::new();
    for field in wanted {
        let attribute = if field.os_key().is_some() {
            "os"
        } else {
            field.api_name()
        };
        if let Some(value) = loaded.get(attribute).filter(|value| truthy(value)) {
            information.insert(attribute, value.clone());
        }
    }
    Ok(JsonValue::Object(information))
}
