//! The distributed API (DAPI) of profile 3.9, in pure pieces (PROTOCOL.md §13, §15; design
//! document "Distributed API requests"): what a request is, where it runs, how it travels and
//! what is answered. No state, no I/O, no clock: the node's DAPI part owns the requests in
//! flight, their ids, the string transfers and the timeouts, and calls these.
//!
//! ```text
//!  API ──local socket──► worker ──TCP──► master ──TCP──► worker holding the agent
//!   `dapi <json>`          `dapi <LC> <json>`  `dapi <id> <json>`
//!   ◄── `dapi_res <sid>` ── ◄── `dapi_res <LC> <sid>` ── ◄── `dapi_res <id> <sid>`
//!
//!  on each node:  names (payload → chain + JSON) → request (typed, bounded)
//!                 → routing (run here │ send to master │ plan the solver nodes)
//!                 → [run / forward] → merge (several answers → one) → error (answers on failure)
//!
//!  routes   the 118 routes of 3.9.5 and their request types (data)
//!  json     bounded JSON values, read like `json.loads`, written like `json.dumps`
//! ```
//!
//! Everything a peer sends is bounded ([`DapiLimits`], [`names::MAX_NAME_LEN`],
//! [`json::MAX_DEPTH`]) and refused with a typed error, never a panic. A request is plain data:
//! its `function` is looked up in a fixed table and nothing else in it selects code, so 4.x's
//! object hooks (CVE-2025-24016's `__unhandled_exc__`, `__callable__`) are inert keys here.
//! What goes on the wire — requests forwarded, answers merged, errors — is byte-identical to what
//! a 3.9.5 node writes for the same inputs.
//!
//! A master placing a worker's request on the worker that holds the agent, then merging:
//!
//! ```
//! use std::collections::BTreeMap;
//! use wazuh_cluster_sync::dapi::names::{Channel, DapiCall, NameChain};
//! use wazuh_cluster_sync::dapi::routing::{plan_solvers, route_request, NodeContext, SolverTarget};
//! use wazuh_cluster_sync::dapi::{merge, DapiLimits, DapiRequest, Destination};
//! use wazuh_cluster_sync::integrity::items::NodeType;
//!
//! // `dapi` from worker1 on behalf of its local client 346023.
//! let payload = br#"346023 {"function": "PUT/agents/restart", "arguments": {"agent_id": ["001", "002"]}, "from_cluster": false}"#;
//! let call = DapiCall::parse(payload, Channel::Link).unwrap();
//! let answer_to = NameChain::new("worker1".parse().unwrap(), call.prefix);
//! let mut request = DapiRequest::parse(call.request_json, &DapiLimits::default()).unwrap();
//!
//! let master = NodeContext::new(NodeType::Master, "master01");
//! assert_eq!(route_request(&mut request, &master), Ok(Destination::ChooseSolverNodes));
//! let agents = BTreeMap::from([
//!     ("001".to_owned(), "worker1".to_owned()),
//!     ("002".to_owned(), "master01".to_owned()),
//! ]);
//! let plan = plan_solvers(&request, "master01", &agents).unwrap();
//! let targets: Vec<_> = plan.entries().iter().map(|e| e.target.clone()).collect();
//! assert_eq!(targets, [SolverTarget::Worker("worker1".into()), SolverTarget::Local]);
//!
//! // The DAPI part sends / runs each entry's request, then merges the answers in plan order.
//! let answers = [
//!     r#"{"data": {"msg": "All selected agents were restarted", "affected_agents": ["001"]}, "error": 0}"#,
//!     r#"{"data": {"msg": "Some agents were not restarted", "failed_ids": ["002"]}, "error": 0}"#,
//! ];
//! let merged = merge::merged_answer(&answers, plan.merge_arguments(), &DapiLimits::default().answer);
//! assert_eq!(
//!     merged,
//!     r#"{"data": {"msg": "Some agents were not restarted", "affected_agents": ["001"], "failed_ids": ["002"]}, "error": 0}"#
//! );
//! // It goes back to worker1 as a string, then `dapi_res 346023 <string id>`.
//! assert_eq!(answer_to.to_string(), "worker1*346023");
//! assert_eq!(answer_to.result("7".parse().unwrap()).to_payload(), b"346023 7");
//! ```

pub mod builtin;
pub mod call;
pub mod error;
pub mod json;
pub mod merge;
pub mod names;
pub mod request;
pub mod routes;
pub mod routing;

pub use builtin::BuiltinExecutor;
pub use call::ApiCall;
pub use error::DapiError;
pub use json::{JsonLimits, JsonObject, JsonValue};
pub use request::{DapiLimits, DapiRequest, RequestError};
pub use routes::{RequestType, Route};
pub use routing::{Destination, SolverPlan};
