//! Distributed API requests and answers (PROTOCOL.md §13): the request JSON, the name chains of
//! the payloads, the master's routing and solver plan, and the merge of several answers.
//!
//! Input: a request document, or two answers split at the first `\n`. Checked: a request that
//! parses writes back to text that parses to the same request (its own output is accepted,
//! byte for byte); routing, planning and merging never panic and give bounded JSON; payload
//! parsers either refuse or write back the same bytes.

use std::collections::BTreeMap;

use wazuh_cluster_sync::dapi::json::JsonLimits;
use wazuh_cluster_sync::dapi::merge::merged_answer;
use wazuh_cluster_sync::dapi::names::{Channel, DapiCall, DapiForward, DapiResult};
use wazuh_cluster_sync::dapi::routing::{NodeContext, plan_solvers, route_request};
use wazuh_cluster_sync::dapi::{DapiLimits, DapiRequest, Destination, JsonObject, JsonValue};
use wazuh_cluster_sync::integrity::items::NodeType;

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let json = JsonLimits {
        max_bytes: 64 * 1024,
        max_depth: 32,
    };
    let limits = DapiLimits {
        request: json,
        answer: json,
    };
    if let Ok(request) = DapiRequest::parse(data, &limits) {
        let text = request.to_python_json();
        let again = DapiRequest::parse(text.as_bytes(), &DapiLimits::default())
            .expect("a request's own text parses");
        assert_eq!(again.to_python_json(), text, "written twice, two texts");
        for node_type in [NodeType::Master, NodeType::Worker] {
            let mut routed = request.clone();
            let node = NodeContext::new(node_type, "master01");
            if let Ok(Destination::ChooseSolverNodes) = route_request(&mut routed, &node) {
                let agents = BTreeMap::from([
                    ("001".to_owned(), "worker1".to_owned()),
                    ("002".to_owned(), "unknown".to_owned()),
                ]);
                if let Ok(plan) = plan_solvers(&routed, "master01", &agents) {
                    assert!(!plan.entries().is_empty());
                    for entry in plan.entries() {
                        assert!(entry.request.from_cluster());
                        let written = entry.request.to_python_json();
                        assert!(
                            DapiRequest::parse(written.as_bytes(), &DapiLimits::default()).is_ok()
                        );
                    }
                }
            }
        }
    }
    for channel in [Channel::Link, Channel::LocalSocket] {
        if let Ok(call) = DapiCall::parse(data, channel) {
            assert_eq!(call.to_payload(), data);
        }
        if let Ok(result) = DapiResult::parse(data, channel) {
            assert_eq!(result.to_payload(), data);
        }
    }
    if let Ok(forward) = DapiForward::parse(data) {
        assert_eq!(forward.to_payload(), data);
    }
    let (first, second) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let merged = merged_answer(&[first, second], &JsonObject::new(), &json);
    let parsed = JsonValue::parse(merged.as_bytes(), &DapiLimits::default().answer)
        .expect("a merged answer is JSON");
    assert!(matches!(parsed, JsonValue::Object(_)), "{merged}");
}
