//! `Agent.get_agents_overview` (`/agents`): the agents, filtered, searched, sorted and cut, as
//! 3.9.5 answers them: `{"items": [...], "totalItems": N}` (`totalItems` before the cut).
//!
//! Arguments (upstream's signature): `offset` (0), `limit` (500), `sort`, `search`, `select`,
//! `filters` (`{}`), `q` (`""`); what each does and refuses is the query's (see `query`). The
//! items hold the selected fields that are set, `id` always (see the module documentation of
//! `agents` for where each comes from).
//!
//! ```text
//! {"select": {"fields": ["id", "name", "node_name"]}, "q": "status=active"}
//! → {"items": [{"id": "000", "name": "localhost", "node_name": "master01"}, ...], "totalItems": 3}
//! ```

use super::database::AgentSource;
use super::query::{self, QueryArguments, QueryMode};
use super::table::AgentTable;
use crate::dapi::builtin::failure::FunctionResult;
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::{ArgDefault, bind};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::{Storage, Timestamp};

/// `Agent.get_agents_overview(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// Upstream's answers for the arguments it refuses; a file of the install that cannot be read.
pub(in crate::dapi::builtin) fn get_agents_overview<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    let [offset, limit, sort, search, select, filters, q] = bind(
        "get_agents_overview",
        &[
            ("offset", ArgDefault::Int(0)),
            ("limit", ArgDefault::Int(500)),
            ("sort", ArgDefault::None),
            ("search", ArgDefault::None),
            ("select", ArgDefault::None),
            ("filters", ArgDefault::EmptyDict),
            ("q", ArgDefault::Str("")),
        ],
        arguments,
    )?;
    let table = AgentTable::load(install, agents)?;
    let answer = query::run(
        &table,
        QueryArguments {
            offset: &offset,
            limit: &limit,
            sort: &sort,
            search: &search,
            select: &select,
            q,
            filters: &filters,
        },
        QueryMode {
            count: true,
            data: true,
            remove_extra_fields: true,
        },
        now,
    )?;
    let mut data = JsonObject::new();
    data.insert(
        "items",
        JsonValue::Array(answer.items.into_iter().map(JsonValue::Object).collect()),
    );
    data.insert("totalItems", JsonValue::Int(answer.total_items));
    Ok(JsonValue::Object(data))
}
