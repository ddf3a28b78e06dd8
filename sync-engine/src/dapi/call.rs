//! A distributed API request that a node runs itself, as it hands it to its adapter's executor.
//!
//! The node answers on its own what it knows (the cluster routes); the other routes run a
//! framework function of the install (agents, manager status, logs, ...), which the node asks
//! the adapter for as an [`ApiCall`] so that a slow function never holds up keepalives.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{DapiRequest, JsonValue};

/// One call of a framework function: see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// The request's route, e.g. `/agents` or `PUT/agents/restart`.
    pub function: String,
    /// The framework function upstream's table names for it (`Agent.get_agents_overview`).
    pub framework_function: &'static str,
    /// The arguments as upstream passes them to the function: the request's `arguments`
    /// without `wait_for_complete`, as a JSON object (`json.dumps` form).
    pub arguments: String,
    /// The whole request, as this node received it (`json.dumps` form).
    pub request: String,
    /// How long the node waits for the answer (upstream's `timeout_api_exe`; `None`:
    /// `wait_for_complete`). After it, the node answers 3021 and drops a late answer.
    pub timeout: Option<Duration>,
    /// What the node knows that the function needs: on a master, the node each agent reports
    /// to (3.9.5 reads it from its agent database's `node_name`).
    pub agent_nodes: BTreeMap<String, String>,
}

impl ApiCall {
    /// The call of `request`, which must name a known route (its framework function).
    pub fn new(
        request: &DapiRequest,
        framework_function: &'static str,
        timeout: Option<Duration>,
        agent_nodes: BTreeMap<String, String>,
    ) -> ApiCall {
        let mut arguments = request.arguments().clone();
        arguments.remove("wait_for_complete");
        ApiCall {
            function: request.function().to_owned(),
            framework_function,
            arguments: JsonValue::Object(arguments).to_python_json(),
            request: request.to_python_json(),
            timeout,
            agent_nodes,
        }
    }
}

/// The answer for a call no executor of this node serves: error 1000 naming the route and the
/// framework function (so an operator sees what to install or configure).
pub fn not_served(call: &ApiCall) -> String {
    super::merge::error_answer(
        &format!(
            "{} ({}) is not served by this node: run it with an API executor (node --api-exec)",
            call.function, call.framework_function
        ),
        1000,
    )
}
