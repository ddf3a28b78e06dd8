//! Distributed API (DAPI) pieces of profile 3.9 (PROTOCOL.md §13, §15): pure values and
//! functions, no state, no I/O, for the node's DAPI part to compose.
//!
//! ```text
//!   API process ──local socket──► node ──TCP──► master / worker ──► node that owns the data
//!        (request JSON)             │
//!                                   ▼
//!   dapi/ (this module)   json: bounded Python-compatible JSON values
//!                         merge: several nodes' answers into one (`merge_results`, `print_json`)
//!                         error: the error answers, with upstream's codes and texts
//!                         names: `*` name chains, `dapi*` payloads
//!                         request: the request JSON, typed, bounded, re-encoded byte for byte
//!                         routes: the 118 routes and their request types
//!                         routing: run here / send to the master / place on the solver nodes
//! ```
//!
//! ```
//! use wazuh_cluster_sync::dapi::json::{JsonLimits, JsonValue};
//!
//! let request = br#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#;
//! let value = JsonValue::parse(request, &JsonLimits::default()).unwrap();
//! assert_eq!(value.to_python_json().as_bytes(), request);
//! ```

pub mod error;
pub mod json;
pub mod merge;
pub mod names;
pub mod request;
pub mod routes;
pub mod routing;
