//! `wazuh-cluster api FUNCTION [ARGUMENTS_JSON]`: one distributed API request sent to a node
//! over its local socket, as 3.9.5's API sent it, and the node's answer printed.
//!
//! ```sh
//! wazuh-cluster api /cluster/nodes
//! wazuh-cluster api /agents '{"filters": {"status": "Active"}, "limit": 10}'
//! wazuh-cluster api /syscollector/:agent_id/os '{"agent_id": "001"}' --wazuh-path /var/ossec
//! ```
//!
//! The request is `dapi {"function": FUNCTION, "arguments": ARGUMENTS, "from_cluster": false}`
//! written as Python's `json.dumps` writes it (the arguments keep their order, `1.0` stays a
//! float); the node places it (on the master, on the worker that holds the agent, on every
//! node) and answers in 3.9.5's `print_json` shape, `{"data": ..., "error": 0}` or
//! `{"message": ..., "error": code}`, which is printed as it came. The exit status is 0 when
//! `error` is 0 and 1 otherwise, so scripts can test it; a node that refuses the request
//! (`err`) gets the document upstream's local client makes of the refusal, and a node that
//! cannot be reached a message on standard error.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use wazuh_cluster_sync::dapi::{DapiRequest, JsonLimits, JsonObject, JsonValue, RequestError};

use crate::local_client::{DAPI, NodeSocketArgs, request};

/// How long the node's answer is awaited by default: upstream's `timeout_api_request`.
const DEFAULT_TIMEOUT_SECS: u64 = 200;

/// Exit status when the answer is an error, or there is none.
const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line that cannot make a request (clap's, for usage errors).
const EXIT_USAGE: u8 = 2;

/// `api` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  wazuh-cluster api /cluster/nodes
  wazuh-cluster api /agents '{\"filters\": {\"status\": \"Active\"}, \"limit\": 10}'
  wazuh-cluster api /syscollector/:agent_id/os '{\"agent_id\": \"001\"}' --socket /var/ossec/queue/cluster/c-internal.sock

Prints the answer ({\"data\": ..., \"error\": 0} or {\"message\": ..., \"error\": CODE}) and exits 0 when
its error is 0, 1 otherwise.")]
pub struct ApiArgs {
    /// The route, as 3.9.5's API names it: /agents, /cluster/nodes, PUT/agents/restart,
    /// /syscollector/:agent_id/os, ...
    #[arg(value_name = "FUNCTION")]
    function: String,

    /// The route's arguments, a JSON object (default {}), e.g. '{"agent_id": "001"}'.
    #[arg(value_name = "ARGUMENTS_JSON", value_parser = parse_arguments)]
    arguments: Option<JsonObject>,

    #[command(flatten)]
    node: NodeSocketArgs,

    /// Seconds to wait for the answer [default: 200, upstream's timeout_api_request; none with
    /// --wait-for-complete].
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,

    /// Ask the node to wait for the call to complete, however long it takes (sets
    /// "wait_for_complete": true in the arguments, false when neither this nor the arguments
    /// say), and wait for it as long.
    #[arg(long)]
    wait_for_complete: bool,
}

/// `ARGUMENTS_JSON`: a JSON object, read as Python's `json.loads` reads it (key order kept).
fn parse_arguments(text: &str) -> Result<JsonObject, String> {
    let value = JsonValue::parse(text.as_bytes(), &JsonLimits::default())
        .map_err(|e| format!("not JSON: {e}"))?;
    match value {
        JsonValue::Object(arguments) => Ok(arguments),
        other => Err(format!(
            "must be a JSON object, e.g. '{{\"agent_id\": \"001\"}}', not a {}",
            other.python_type_name()
        )),
    }
}

impl ApiArgs {
    /// The request sent, as `json.dumps` writes it. The arguments always carry
    /// `wait_for_complete`, as upstream's API sends them: a 3.9.5 master deletes that key from
    /// every request it forwards and fails with error 3000 when it is missing.
    ///
    /// # Errors
    /// [`RequestError::WrongType`] when the arguments' `wait_for_complete` is not a bool
    /// (upstream's API would fail on it).
    fn request(&self) -> Result<String, RequestError> {
        let mut arguments = self.arguments.clone().unwrap_or_default();
        if self.wait_for_complete {
            arguments.insert("wait_for_complete", JsonValue::Bool(true));
        } else if arguments.get("wait_for_complete").is_none() {
            arguments.insert("wait_for_complete", JsonValue::Bool(false));
        }
        let request = DapiRequest::new(self.function.as_str(), arguments, false)?;
        Ok(request.to_python_json())
    }

    /// How long to wait for the answer: `--timeout`, else none for a call that waits for
    /// completion (upstream's local client waits without limit then), else the default.
    fn timeout(&self) -> Option<Duration> {
        let waits = self.wait_for_complete
            || matches!(
                self.arguments
                    .as_ref()
                    .and_then(|arguments| arguments.get("wait_for_complete")),
                Some(JsonValue::Bool(true))
            );
        match (self.timeout, waits) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, true) => None,
            (None, false) => Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
        }
    }
}

/// What the answer's `error` says of it, for the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// `"error": 0`.
    Success,
    /// Another `error`.
    Failure,
    /// Not a JSON object with an integer `error`: why.
    Unreadable(String),
}

fn verdict(answer: &[u8]) -> Verdict {
    match serde_json::from_slice::<Value>(answer) {
        Ok(document) => match document.get("error").and_then(Value::as_i64) {
            Some(0) => Verdict::Success,
            Some(_) => Verdict::Failure,
            None => Verdict::Unreadable("the answer has no integer \"error\"".to_owned()),
        },
        Err(e) => Verdict::Unreadable(format!("the answer is not JSON: {e}")),
    }
}

/// Runs `api` and returns the process exit status.
pub fn run(args: ApiArgs) -> ExitCode {
    let request_json = match args.request() {
        Ok(request_json) => request_json,
        Err(error) => {
            eprintln!("wazuh-cluster api: ARGUMENTS_JSON: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let answer = match request(
        &args.node.socket_path(),
        DAPI,
        request_json.as_bytes(),
        args.timeout(),
    ) {
        Ok(answer) => answer,
        Err(error) => match error.refusal_document() {
            Some(document) => document,
            None => {
                eprintln!("wazuh-cluster api: {error}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    println!("{}", String::from_utf8_lossy(&answer));
    match verdict(&answer) {
        Verdict::Success => ExitCode::SUCCESS,
        Verdict::Failure => ExitCode::from(EXIT_FAILURE),
        Verdict::Unreadable(why) => {
            eprintln!("wazuh-cluster api: {why}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `api`'s arguments as the command line gives them.
    #[derive(Debug, Parser)]
    struct Api {
        #[command(flatten)]
        args: ApiArgs,
    }

    fn parse(line: &[&str]) -> Result<ApiArgs, clap::Error> {
        Api::try_parse_from(std::iter::once("api").chain(line.iter().copied())).map(|api| api.args)
    }

    #[test]
    fn the_request_is_upstreams_json_with_the_arguments_as_given() {
        let args = parse(&["/cluster/nodes"]).unwrap();
        assert_eq!(
            args.request().unwrap(),
            r#"{"function": "/cluster/nodes", "arguments": {"wait_for_complete": false}, "from_cluster": false}"#
        );
        assert_eq!(
            args.node.socket_path(),
            std::path::PathBuf::from("/var/ossec/queue/cluster/c-internal.sock")
        );
        // Key order, 1.0, and non-ASCII text as json.dumps writes them.
        let args = parse(&[
            "/agents",
            r#"{"limit":10,"offset":1.0,"search":{"value":"wörk","negation":false}}"#,
        ])
        .unwrap();
        assert_eq!(
            args.request().unwrap(),
            r#"{"function": "/agents", "arguments": {"limit": 10, "offset": 1.0, "search": {"value": "w\u00f6rk", "negation": false}, "wait_for_complete": false}, "from_cluster": false}"#
        );
    }

    #[test]
    fn wait_for_complete_is_asked_of_the_node_and_lifts_the_default_timeout() {
        let plain = parse(&["/agents"]).unwrap();
        assert_eq!(plain.timeout(), Some(Duration::from_secs(200)));
        let waits = parse(&["/agents", r#"{"limit": 1}"#, "--wait-for-complete"]).unwrap();
        assert_eq!(
            waits.request().unwrap(),
            r#"{"function": "/agents", "arguments": {"limit": 1, "wait_for_complete": true}, "from_cluster": false}"#
        );
        assert_eq!(waits.timeout(), None);
        // Already in the arguments: kept in place, and waited for the same way.
        let given = parse(&["/agents", r#"{"wait_for_complete": true, "limit": 1}"#]).unwrap();
        assert_eq!(
            given.request().unwrap(),
            r#"{"function": "/agents", "arguments": {"wait_for_complete": true, "limit": 1}, "from_cluster": false}"#
        );
        assert_eq!(given.timeout(), None);
        let bounded = parse(&["/agents", "--wait-for-complete", "--timeout", "5"]).unwrap();
        assert_eq!(bounded.timeout(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn arguments_that_are_not_a_json_object_are_refused_clearly() {
        let refused = |json: &str| parse(&["/agents", json]).unwrap_err().to_string();
        let list = refused("[1, 2]");
        assert!(
            list.contains(r#"must be a JSON object, e.g. '{"agent_id": "001"}', not a list"#),
            "{list}"
        );
        let broken = refused(r#"{"agent_id": "001""#);
        assert!(
            broken.contains("not JSON: JSON syntax error at byte 18: expected ',' or '}'"),
            "{broken}"
        );
        let flag = parse(&["/agents", r#"{"wait_for_complete": "yes"}"#]).unwrap();
        assert_eq!(
            flag.request().unwrap_err().to_string(),
            "DAPI request field 'wait_for_complete' is of type str, expected a bool"
        );
    }

    #[test]
    fn the_exit_status_follows_the_answers_error() {
        assert_eq!(verdict(br#"{"data": {}, "error": 0}"#), Verdict::Success);
        assert_eq!(
            verdict(br#"{"message": "Agent does not exist", "error": 1701}"#),
            Verdict::Failure
        );
        assert_eq!(
            verdict(b"{}"),
            Verdict::Unreadable("the answer has no integer \"error\"".to_owned())
        );
        assert!(matches!(verdict(b"nope"), Verdict::Unreadable(_)));
    }
}
