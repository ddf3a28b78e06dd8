//! The distributed API functions a node runs itself, over its install's files (through a
//! [`Storage`], so a test or the simulator runs them on an in-memory tree exactly as the daemon
//! does on disk), answering exactly as 3.9.5's `DistributedAPI.execute_local_request` does:
//! `{"data": <result>, "error": 0}` or `{"message": <text>, "error": <code>}`, written as
//! `json.dumps` writes upstream's dicts.
//!
//! | framework function | routes | module |
//! |---|---|---|
//! | `Agent.get_agents_overview` | `/agents` | `agents::overview` |
//! | `Agent.get_agent` | `/agents/:agent_id` | `agents::get_agent` |
//! | `Agent.get_agent_by_name` | `/agents/name/:agent_name` | `agents::get_agent_by_name` |
//! | `Agent.get_agents_summary` | `/agents/summary` | `agents::summary` |
//! | (the master's census: agents' nodes, `n_active_agents`) | none: [`AGENT_CENSUS`] | `agents::census` |
//! | `manager.status` | `/manager/status`, `/cluster/:node_id/status` | `manager_status` |
//! | `manager.get_info` | `/manager/info`, `/cluster/:node_id/info` | `manager_info` |
//! | `manager.ossec_log` | `/manager/logs`, `/cluster/:node_id/logs` | `logs::ossec_log` |
//! | `manager.ossec_log_summary` | `/manager/logs/summary`, `/cluster/:node_id/logs/summary` | `logs::summary` |
//!
//! The agent functions read the install's agent database `var/db/global.db` through the
//! [`AgentDatabase`] an adapter gives [`BuiltinExecutor::run_with_agents`] (the core reads no
//! SQLite), and without one they build the same table from the install's files
//! (`etc/client.keys`, `queue/agent-info`, ...; see `agents` for what that leaves out).
//!
//! A route without a built-in function is answered with
//! [`not_served`]: an adapter may run those with the install's own
//! framework instead (the daemon's `--api-exec`).
//!
//! How a call runs, as upstream's does: the basic daemons are checked first
//! (`check_wazuh_status`: a failed, restarting or stopped one refuses every function but the
//! status routes, see `manager_status`), then the call's `arguments` are bound to the function's
//! parameters as Python binds keyword arguments (an unknown one is Python's `TypeError`, error
//! 1000), then the function runs. An argument of a type the API never sends fails with the
//! answer upstream gives for it: the `WazuhException` its checks raise, or error 1000 with the
//! text of the Python exception it runs into. Nothing a caller sends can make a function panic,
//! and every file is read with a bound (the modules say which).
//!
//! Time: the functions take `now` as the wall-clock reading and UTC as local time (see
//! `time`): dates come out in UTC.
//!
//! ```
//! use std::collections::BTreeMap;
//! use wazuh_cluster_sync::dapi::{ApiCall, BuiltinExecutor};
//! use wazuh_cluster_sync::integrity::memory::MemoryStorage;
//! use wazuh_cluster_sync::integrity::path::InstallPath;
//! use wazuh_cluster_sync::integrity::storage::Timestamp;
//!
//! let mut install = MemoryStorage::new();
//! let pid = InstallPath::new("/var/run/ossec-execd-811.pid").unwrap();
//! install.add_file(&pid, b"811\n".to_vec(), Timestamp::from_secs(0), 0o640).unwrap();
//!
//! let call = ApiCall {
//!     function: "/manager/status".into(),
//!     framework_function: "manager.status",
//!     arguments: "{}".into(),
//!     request: r#"{"function": "/manager/status", "arguments": {}}"#.into(),
//!     timeout: None,
//!     agent_nodes: BTreeMap::new(),
//! };
//! assert!(BuiltinExecutor.serves(&call));
//! let answer = BuiltinExecutor.run(&install, &call, Timestamp::from_secs(1_562_000_000));
//! assert!(answer.starts_with(r#"{"data": {"ossec-agentlessd": "stopped", "#));
//! assert!(answer.contains(r#""ossec-execd": "running""#));
//! ```

mod agents;
mod failure;
#[cfg(test)]
mod hostile_arguments;
mod install;
mod logs;
mod manager_info;
mod manager_status;
mod python;
#[cfg(test)]
mod test_support;
mod time;

pub use self::agents::census::AGENT_CENSUS;
pub use self::agents::database::{
    AgentDatabase, AgentDatabaseError, AgentRecord, MAX_AGENT_COLUMN_BYTES, MAX_AGENT_RECORDS,
    NoAgentDatabase,
};
pub use self::manager_status::BASIC_SERVICES;

use self::agents::database::AgentSource;
use self::failure::{FunctionError, FunctionResult};
use self::install::Install;
use super::call::{ApiCall, not_served};
use super::json::{JsonLimits, JsonObject, JsonValue, MAX_DEPTH};
use super::merge::data_answer;
use crate::integrity::storage::{Storage, Timestamp};

/// Upstream's most items a listing may ask for (`common.maximum_database_limit`).
const MAXIMUM_LIMIT: i64 = 1000;

/// The built-in executor. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct BuiltinExecutor;

/// The functions built in, by upstream's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuiltinFunction {
    AgentsOverview,
    Agent,
    AgentByName,
    AgentsSummary,
    AgentCensus,
    ManagerStatus,
    ManagerInfo,
    OssecLog,
    OssecLogSummary,
}

impl BuiltinFunction {
    /// The function upstream's route table names `framework_function`, if it is built in.
    fn of(framework_function: &str) -> Option<BuiltinFunction> {
        Some(match framework_function {
            "Agent.get_agents_overview" => BuiltinFunction::AgentsOverview,
            "Agent.get_agent" => BuiltinFunction::Agent,
            "Agent.get_agent_by_name" => BuiltinFunction::AgentByName,
            "Agent.get_agents_summary" => BuiltinFunction::AgentsSummary,
            AGENT_CENSUS => BuiltinFunction::AgentCensus,
            "manager.status" => BuiltinFunction::ManagerStatus,
            "manager.get_info" => BuiltinFunction::ManagerInfo,
            "manager.ossec_log" => BuiltinFunction::OssecLog,
            "manager.ossec_log_summary" => BuiltinFunction::OssecLogSummary,
            _ => return None,
        })
    }
}

impl BuiltinExecutor {
    /// Whether `call`'s function is one of the built-in ones.
    pub fn serves(&self, call: &ApiCall) -> bool {
        BuiltinFunction::of(call.framework_function).is_some()
    }

    /// Runs `call` over `storage` at wall-clock time `now`, without an agent database; the
    /// answer in 3.9.5's `print_json` shape.
    pub fn run<S: Storage + ?Sized>(&self, storage: &S, call: &ApiCall, now: Timestamp) -> String {
        self.run_with_agents(storage, &NoAgentDatabase, call, now)
    }

    /// Runs `call` over `storage` at wall-clock time `now`, the agent functions over
    /// `database`'s `agent` table when it has one (read only for those functions).
    pub fn run_with_agents<S: Storage + ?Sized>(
        &self,
        storage: &S,
        database: &dyn AgentDatabase,
        call: &ApiCall,
        now: Timestamp,
    ) -> String {
        let Some(function) = BuiltinFunction::of(call.framework_function) else {
            return not_served(call);
        };
        let agents = AgentSource {
            database,
            agent_nodes: &call.agent_nodes,
        };
        match execute(function, &Install::new(storage), call, agents, now) {
            Ok(data) => data_answer(&data),
            Err(error) => error.answer(),
        }
    }
}

/// `execute_local_request` for a built-in function: the daemons' check, then the call.
fn execute<S: Storage + ?Sized>(
    function: BuiltinFunction,
    install: &Install<'_, S>,
    call: &ApiCall,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    // Upstream's `get_health` counts agents without DAPI's daemon check.
    if function != BuiltinFunction::AgentCensus {
        manager_status::check_wazuh_status(install, &call.function)?;
    }
    // The node accepted the request within its own bounds: the arguments are no larger.
    let limits = JsonLimits {
        max_bytes: call.arguments.len(),
        max_depth: MAX_DEPTH,
    };
    let arguments = match JsonValue::parse(call.arguments.as_bytes(), &limits) {
        Ok(JsonValue::Object(arguments)) => arguments,
        Ok(other) => {
            // `f(**arguments)` with a non-mapping.
            return Err(FunctionError::python(format!(
                "argument after ** must be a mapping, not {}",
                other.python_type_name()
            )));
        }
        Err(e) => return Err(FunctionError::python(e.to_string())),
    };
    run_function(function, install, &arguments, agents, now)
}

fn run_function<S: Storage + ?Sized>(
    function: BuiltinFunction,
    install: &Install<'_, S>,
    arguments: &JsonObject,
    agents: AgentSource<'_>,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    match function {
        BuiltinFunction::AgentsOverview => {
            agents::overview::get_agents_overview(install, arguments, agents, now)
        }
        BuiltinFunction::Agent => agents::get_agent::get_agent(install, arguments, agents, now),
        BuiltinFunction::AgentByName => {
            agents::get_agent_by_name::get_agent_by_name(install, arguments, agents, now)
        }
        BuiltinFunction::AgentsSummary => {
            agents::summary::get_agents_summary(install, arguments, agents, now)
        }
        BuiltinFunction::AgentCensus => agents::census::agent_census(arguments, agents, now),
        BuiltinFunction::ManagerStatus => {
            python::bind::<0>("status", &[], arguments)?;
            manager_status::status(install)
        }
        BuiltinFunction::ManagerInfo => manager_info::get_info(install, arguments),
        BuiltinFunction::OssecLog => logs::ossec_log::ossec_log(install, arguments, now),
        BuiltinFunction::OssecLogSummary => {
            logs::summary::ossec_log_summary(install, arguments, now)
        }
    }
}
