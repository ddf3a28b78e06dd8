//! Where a DAPI request runs: the decision of 3.9.5 `DistributedAPI.distribute_function`
//! (PROTOCOL.md §13.1) and the master's choice of the node(s) holding a request's data,
//! `get_solver_node` with the argument rewriting of `forward_request` (§13.4). Pure functions
//! over the request and a small view of the node; the DAPI part acts on what they return.
//!
//! ```text
//!   request ──route_request──► ExecuteHere          run it on this node
//!                          ├─► ForwardToMaster      worker: `dapi` to the master
//!                          └─► ChooseSolverNodes    master: plan_solvers → one request per node
//!                                                   (Local / Worker / AllWorkers), answers merged
//!                                                   (merge::merge_answers) when more than one
//! ```
//!
//! The decision: run here when the distributed API is disabled, the cluster is disabled, the
//! route is `local_any`, it is `local_master` on the master, or it is `distributed_master` and
//! already placed (`from_cluster`); else the master places a `distributed_master` request and a
//! worker sends anything else to the master. Before deciding, an unknown route is refused
//! (error 1000), `wait_for_complete` is filled in, and a node whose cluster is disabled refuses
//! `cluster` routes other than `/cluster/status`, `/cluster/config` and `/cluster/node` (3013).
//!
//! The placement, in upstream's order of checks:
//! * `agent_id` a list: the agents found, grouped by the node they report to, nodes in
//!   descending name order (upstream sorts its query by `node_name DESC`), agents in id order
//!   within a node; ids not found go to the master's entry (added last when the master holds
//!   none of them). An empty list, or one holding only `all`, selects every agent, as upstream's
//!   query filter then drops the condition; `all` itself is never found.
//! * `agent_id` a string: that agent's node; an unknown agent is error 1701, an agent without a
//!   node name upstream's `KeyError` (1000, `'node_name'`).
//! * `node_id`: that node, and the argument is removed from the request.
//! * a route containing `cluster`: `fw_all_nodes` (every worker) and the master.
//! * otherwise every node that has agents (`unknown` included: the manager's own agent reports
//!   there), in descending name order.
//!
//! Each entry then runs on the master itself when its node is `unknown`, empty or the master's
//! name, on every worker for `fw_all_nodes`, and on that worker otherwise. The request each entry
//! gets is upstream's shared dict at that entry's turn: `from_cluster` set, and `agent_id` set to
//! the entry's agents when it has some and the argument is absent or a list (so a single agent id
//! stays a string).
//!
//! Upstream's peculiarities kept on purpose (they change answers): when agents report to both
//! `unknown` and the master, both entries run on the master and their answers are merged (totals
//! counted twice); ids not found are sent to the master, which answers for them. Deliberate
//! differences: ids not found keep their request order (upstream: a Python set's order), ids are
//! matched as exact strings (upstream's database also matches `1` with `001`), and an `agent_id` or
//! `node_id` of a type the API never sends is [`DapiError::BadArgument`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use wazuh_cluster_sync::dapi::request::{DapiLimits, DapiRequest};
//! use wazuh_cluster_sync::dapi::routing::{Destination, NodeContext, SolverTarget, plan_solvers, route_request};
//! use wazuh_cluster_sync::integrity::items::NodeType;
//!
//! let text = br#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001"}, "from_cluster": false}"#;
//! let mut request = DapiRequest::parse(text, &DapiLimits::default()).unwrap();
//! let master = NodeContext::new(NodeType::Master, "master01");
//! assert_eq!(route_request(&mut request, &master), Ok(Destination::ChooseSolverNodes));
//!
//! let agents = BTreeMap::from([("001".to_owned(), "worker1".to_owned())]);
//! let plan = plan_solvers(&request, "master01", &agents).unwrap();
//! let [entry] = plan.entries() else { panic!("one node") };
//! assert_eq!(entry.target, SolverTarget::Worker("worker1".into()));
//! assert_eq!(
//!     entry.request.to_python_json(),
//!     r#"{"function": "/syscollector/:agent_id/os", "arguments": {"agent_id": "001", "wait_for_complete": false}, "from_cluster": true}"#
//! );
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::error::{DapiError, python_repr};
use super::json::{JsonObject, JsonValue};
use super::names::ALL_WORKERS;
use super::request::DapiRequest;
use super::routes::RequestType;
use crate::integrity::items::NodeType;

/// Cluster routes a node with its cluster disabled still answers.
const ROUTES_WITHOUT_CLUSTER: [&str; 3] = ["/cluster/status", "/cluster/config", "/cluster/node"];

/// Routes a worker's local server sends to the master as `dapi_cluster` (3.9.5
/// `LocalServerHandlerWorker`): the master answers them from its own state, at once.
const CLUSTER_CONTROL_ROUTES: [&str; 3] = [
    "/cluster/nodes",
    "/cluster/nodes/:node_name",
    "/cluster/healthcheck",
];

/// The node name upstream's agent database gives agents without a known node (the manager's own
/// agent `000` among them).
pub const UNKNOWN_NODE: &str = "unknown";

/// What the decision reads of the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// Master or worker.
    pub node_type: NodeType,
    /// This node's name (the master's, on the master).
    pub node_name: String,
    /// `distributed_api.enabled` of cluster.json; when off every request runs where received.
    pub dapi_enabled: bool,
    /// False where requests are decided without a running cluster (upstream checks this only in
    /// the API process); a cluster node passes true.
    pub cluster_enabled: bool,
}

impl NodeContext {
    /// A node of a running cluster with the distributed API on.
    pub fn new(node_type: NodeType, node_name: impl Into<String>) -> Self {
        NodeContext {
            node_type,
            node_name: node_name.into(),
            dapi_enabled: true,
            cluster_enabled: true,
        }
    }
}

/// What a node does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Run it on this node (`execute_local_request`).
    ExecuteHere,
    /// Worker: send it to the master as `dapi` (`execute_remote_request`).
    ForwardToMaster,
    /// Master: place it on the node(s) holding its data ([`plan_solvers`], `forward_request`).
    ChooseSolverNodes,
}

/// The decision itself, over the route's type and `from_cluster`.
pub fn decide(request_type: RequestType, from_cluster: bool, node: &NodeContext) -> Destination {
    let master = node.node_type == NodeType::Master;
    let here = !node.dapi_enabled
        || !node.cluster_enabled
        || request_type == RequestType::LocalAny
        || (request_type == RequestType::LocalMaster && master)
        || (request_type == RequestType::DistributedMaster && from_cluster);
    if here {
        Destination::ExecuteHere
    } else if request_type == RequestType::DistributedMaster && master {
        Destination::ChooseSolverNodes
    } else {
        Destination::ForwardToMaster
    }
}

/// Upstream's `distribute_function` up to the decision: looks the route up, fills
/// `wait_for_complete` (which every forwarded copy then carries), refuses `cluster` routes when
/// the cluster is disabled, and decides.
///
/// # Errors
/// [`DapiError::UnknownFunction`] for a route not in the table, [`DapiError::ClusterDisabled`].
pub fn route_request(
    request: &mut DapiRequest,
    node: &NodeContext,
) -> Result<Destination, DapiError> {
    let route = request.route()?;
    request.fill_wait_for_complete();
    let function = request.function();
    if !node.cluster_enabled
        && function.contains("cluster")
        && !ROUTES_WITHOUT_CLUSTER.contains(&function)
    {
        return Err(DapiError::ClusterDisabled);
    }
    Ok(decide(route.request_type, request.from_cluster(), node))
}

/// How a worker's local server passes on a `dapi` from a local client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerLocalDapi {
    /// `dapi_cluster <request JSON>` to the master, reply `Sent request to master node`; the
    /// master's answer goes to the client as `control_res`.
    ClusterControl,
    /// `dapi <client name> <request JSON>` to the master, reply
    /// `Added request to API requests queue`; the answer comes back as `dapi_res`.
    Forward,
}

/// The choice of 3.9.5 `LocalServerHandlerWorker` for a request's `function`.
pub fn worker_local_dapi(function: &str) -> WorkerLocalDapi {
    if CLUSTER_CONTROL_ROUTES.contains(&function) {
        WorkerLocalDapi::ClusterControl
    } else {
        WorkerLocalDapi::Forward
    }
}

/// The master's view of which node each agent reports to (its agent database: `id` →
/// `node_name`).
pub trait AgentNodes {
    /// The node `agent_id` reports to, `None` when there is no such agent.
    fn node_of(&self, agent_id: &str) -> Option<&str>;

    /// Every agent with its node.
    fn agents(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl AgentNodes for BTreeMap<String, String> {
    fn node_of(&self, agent_id: &str) -> Option<&str> {
        self.get(agent_id).map(String::as_str)
    }

    fn agents(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(id, node)| (id.as_str(), node.as_str()))
    }
}

/// Where one entry of a plan runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolverTarget {
    /// On the master itself (node `unknown`, empty, or the master's name).
    Local,
    /// On one worker (`dapi_forward <node> <json>`).
    Worker(String),
    /// On every worker (`dapi_forward fw_all_nodes <json>`); the first answer counts.
    AllWorkers,
}

/// One node of a plan and the request it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct SolverEntry {
    /// Upstream's key for the node: a node name, `fw_all_nodes`, `unknown` or empty.
    pub node: String,
    /// Where the request runs.
    pub target: SolverTarget,
    /// The request as this node gets it.
    pub request: DapiRequest,
}

/// The nodes a master sends a `distributed_master` request to, in upstream's order (the order
/// answers are merged in).
#[derive(Debug, Clone, PartialEq)]
pub struct SolverPlan {
    entries: Vec<SolverEntry>,
}

impl SolverPlan {
    /// The entries, never empty.
    pub fn entries(&self) -> &[SolverEntry] {
        &self.entries
    }

    /// True when the answers must be merged ([`super::merge::merge_answers`]); a single answer is
    /// passed on as it is.
    pub fn needs_merge(&self) -> bool {
        self.entries.len() > 1
    }

    /// The arguments the merge reads (`offset`, `limit`, `sort`): the request as it stands after
    /// every entry's rewrite, as upstream's shared dict does when it merges.
    pub fn merge_arguments(&self) -> &JsonObject {
        // A plan is never empty (plan_solvers refuses that); the fallback keeps this total.
        self.entries
            .last()
            .map_or(&EMPTY_ARGUMENTS, |entry| entry.request.arguments())
    }
}

static EMPTY_ARGUMENTS: JsonObject = JsonObject::new();

/// Chooses the node(s) for a `distributed_master` request on the master named `master_name`,
/// and the request each gets (see the module docs).
///
/// # Errors
/// [`DapiError::AgentNotFound`] (1701) for a single unknown agent; 1000 with upstream's text for
/// a single agent without a node name, or when no node has agents; [`DapiError::BadArgument`] for
/// an `agent_id` / `node_id` of the wrong type.
pub fn plan_solvers(
    request: &DapiRequest,
    master_name: &str,
    agents: &impl AgentNodes,
) -> Result<SolverPlan, DapiError> {
    let mut request = request.clone();
    let groups = solver_nodes(&mut request, master_name, agents)?;
    if groups.is_empty() {
        // Upstream takes the first of no nodes inside a coroutine.
        return Err(DapiError::Internal("coroutine raised StopIteration".into()));
    }
    request.set_from_cluster(true);
    let entries = groups
        .into_iter()
        .map(|(node, agent_ids)| {
            let arguments = request.arguments_mut();
            let absent_or_list =
                matches!(arguments.get("agent_id"), None | Some(JsonValue::Array(_)));
            if !agent_ids.is_empty() && absent_or_list {
                let ids = agent_ids.into_iter().map(JsonValue::Str).collect();
                arguments.insert("agent_id", JsonValue::Array(ids));
            }
            let target = if node == UNKNOWN_NODE || node.is_empty() || node == master_name {
                SolverTarget::Local
            } else if node == ALL_WORKERS {
                SolverTarget::AllWorkers
            } else {
                SolverTarget::Worker(node.clone())
            };
            SolverEntry {
                node,
                target,
                request: request.clone(),
            }
        })
        .collect();
    Ok(SolverPlan { entries })
}

/// Upstream's `get_solver_node`: node → agent ids, in order. Removes `node_id` from `request`.
fn solver_nodes(
    request: &mut DapiRequest,
    master_name: &str,
    agents: &impl AgentNodes,
) -> Result<Vec<(String, Vec<String>)>, DapiError> {
    let arguments = request.arguments();
    if let Some(agent_id) = arguments.get("agent_id") {
        return match agent_id {
            JsonValue::Array(ids) => {
                let ids = ids
                    .iter()
                    .map(|id| id.as_str().ok_or(BAD_AGENT_ID))
                    .collect::<Result<Vec<&str>, _>>()?;
                Ok(agents_by_node(&ids, master_name, agents))
            }
            JsonValue::Str(id) => match agents.node_of(id) {
                None => Err(DapiError::AgentNotFound(id.clone())),
                // Upstream leaves falsy fields out of the agent's record, then indexes it.
                Some("") => Err(DapiError::Internal(python_repr("node_name"))),
                Some(node) => Ok(vec![(node.to_owned(), vec![id.clone()])]),
            },
            _ => Err(BAD_AGENT_ID),
        };
    }
    if let Some(node_id) = arguments.get("node_id") {
        let JsonValue::Str(node) = node_id else {
            return Err(DapiError::BadArgument {
                argument: "node_id",
                expected: "a string",
            });
        };
        let node = node.clone();
        request.arguments_mut().remove("node_id");
        return Ok(vec![(node, Vec::new())]);
    }
    if request.function().contains("cluster") {
        return Ok(vec![
            (ALL_WORKERS.to_owned(), Vec::new()),
            (master_name.to_owned(), Vec::new()),
        ]);
    }
    let nodes: BTreeSet<&str> = agents.agents().map(|(_, node)| node).collect();
    Ok(nodes
        .into_iter()
        .rev()
        .map(|node| (node.to_owned(), Vec::new()))
        .collect())
}

const BAD_AGENT_ID: DapiError = DapiError::BadArgument {
    argument: "agent_id",
    expected: "a string or a list of strings",
};

/// The list case of `get_solver_node`: found agents grouped by node (node names descending,
/// agent ids ascending within a node), then the ids not found added to the master's entry.
fn agents_by_node(
    requested: &[&str],
    master_name: &str,
    agents: &impl AgentNodes,
) -> Vec<(String, Vec<String>)> {
    // `all` is not a filter value upstream: with nothing else, the filter is dropped.
    let filter: BTreeSet<&str> = requested
        .iter()
        .copied()
        .filter(|&id| id != "all")
        .collect();
    let mut found: Vec<(&str, &str)> = if filter.is_empty() {
        agents.agents().collect()
    } else {
        filter
            .iter()
            .filter_map(|&id| agents.node_of(id).map(|node| (id, node)))
            .collect()
    };
    found.sort_by(|(id_a, node_a), (id_b, node_b)| {
        node_b.cmp(node_a).then_with(|| agent_id_order(id_a, id_b))
    });
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (id, node) in &found {
        match groups.last_mut() {
            Some((last, ids)) if last == node => ids.push((*id).to_owned()),
            _ => groups.push(((*node).to_owned(), vec![(*id).to_owned()])),
        }
    }
    let found_ids: BTreeSet<&str> = found.iter().map(|(id, _)| *id).collect();
    let mut seen = BTreeSet::new();
    let not_found: Vec<String> = requested
        .iter()
        .filter(|id| !found_ids.contains(*id) && seen.insert(**id))
        .map(|id| (*id).to_owned())
        .collect();
    if !not_found.is_empty() {
        match groups.iter_mut().find(|(node, _)| node == master_name) {
            Some((_, ids)) => ids.extend(not_found),
            None => groups.push((master_name.to_owned(), not_found)),
        }
    }
    groups
}

/// Agent ids in the database's order: numerically when both are numbers (upstream stores them
/// as integers and zero-pads them on output), else as text.
fn agent_id_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests;
