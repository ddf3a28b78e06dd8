//! The errors a 3.9.5 node answers to a DAPI request, with upstream's codes and exact texts
//! (3.9.5 `exception.py` `WazuhException.ERRORS`, and the literal texts of `dapi.py`,
//! `master.py`, `local_client.py`, `local_server.py`).
//!
//! Upstream writes an error answer in one of two shapes, and which one depends on where it was
//! made: `DistributedAPI.print_json` (request execution, routing, merging) writes
//! `{"message": <text>, "error": <code>}`, while the transport layers (`MasterHandler.execute`,
//! the local client, the worker's local server) write `{"error": <code>, "message": <text>}`.
//! [`DapiError::answer_json`] picks the shape upstream uses for each variant.
//!
//! ```
//! use wazuh_cluster_sync::dapi::error::DapiError;
//!
//! let unknown = DapiError::UnknownNode("worker-2".into());
//! assert_eq!(unknown.code(), 3022);
//! assert_eq!(unknown.answer_json(), r#"{"message": "Unknown node ID: worker-2", "error": 3022}"#);
//! // As an `err` reply on a link (3.9.5 `Handler.dispatch`):
//! assert_eq!(unknown.err_payload(), "WazuhException 3022 Unknown node ID: worker-2");
//! // A forwarded request nobody answered in time (`MasterHandler.execute`):
//! assert_eq!(DapiError::Timeout.answer_json(), r#"{"error": 3000, "message": "Timeout exceeded"}"#);
//! ```

use super::merge::error_answer;
use crate::pyjson;

/// An error answer of the distributed API, as a 3.9.5 node gives it.
///
/// `Display` is upstream's message (`WazuhException.message`, or the literal text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DapiError {
    /// 1000: the `function` of the request is not a route of upstream's table. Upstream looks it
    /// up with `functions[route]` and answers `str(KeyError)`, Python's `repr` of the route.
    #[error("{}", python_repr(.0))]
    UnknownFunction(String),
    /// 1000: any other failure; the message is the text as given (upstream: `str(e)` of the
    /// exception that stopped the request).
    #[error("{0}")]
    Internal(String),
    /// 1000: an argument the master reads to place a request (`agent_id`, `node_id`) has a type
    /// the API never sends. Ours: upstream would go on with it and fail somewhere later.
    #[error("argument '{argument}' must be {expected}")]
    BadArgument {
        /// The argument.
        argument: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// 1402: merging sorted the items with an order other than `asc` / `desc`.
    #[error("Invalid order. Order must be 'asc' or 'desc'")]
    InvalidSortOrder,
    /// 1403: merging sorted the items by fields their first item lacks.
    #[error("{}", invalid_sort_field_message(.allowed, .fields))]
    InvalidSortField {
        /// The first item's keys (upstream lists a Python `set`, in no fixed order; we keep the
        /// item's key order).
        allowed: Vec<String>,
        /// The requested fields it lacks, in request order.
        fields: Vec<String>,
    },
    /// 1404: merging sorted objects without naming a field.
    #[error("A field must be specified to order the data")]
    SortFieldRequired,
    /// 1701: the single `agent_id` of a request the master must place is not registered.
    #[error("Agent does not exist: {0}")]
    AgentNotFound(String),
    /// 3000: a request forwarded to another node got no answer within `timeout_api_request`
    /// (`MasterHandler.execute`).
    #[error("Timeout exceeded")]
    Timeout,
    /// 3000: the master refused a `dapi_cluster` / control request of the worker's local server;
    /// the text is the failure the worker got (`LocalServerHandlerWorker.get_api_response`).
    #[error("Cluster: {0}")]
    ControlFailed(String),
    /// 3009: the peer answered a forwarded request with an error (`err` reply or `dapi_err`);
    /// the text is the peer's, as is (`MasterHandler.execute`, `LocalClientHandler`).
    #[error("{0}")]
    PeerError(String),
    /// 3009: the local client could not complete the request (3.9.5 `LocalClient`).
    #[error("Error executing distributed API request: {0}")]
    RequestFailed(String),
    /// 3012: the local socket refused the connection.
    #[error("Cluster is not running")]
    ClusterNotRunning,
    /// 3013: a cluster route asked of a node whose cluster is disabled.
    #[error("Cluster is disabled")]
    ClusterDisabled,
    /// 3020: the local client waited `timeout_api_request` for the answer.
    #[error("Timeout sending request")]
    SendTimeout,
    /// 3021: local execution took longer than `timeout_api_exe`.
    #[error("Timeout executing API request")]
    ExecutionTimeout,
    /// 3022: a request was forwarded to a node that is not connected.
    #[error("Unknown node ID: {0}")]
    UnknownNode(String),
    /// 3023: a worker's local server has no link to the master.
    #[error("Worker node is not connected to master")]
    MasterNotConnected,
}

impl DapiError {
    /// Upstream's error code.
    pub fn code(&self) -> u16 {
        match self {
            DapiError::UnknownFunction(_)
            | DapiError::Internal(_)
            | DapiError::BadArgument { .. } => 1000,
            DapiError::InvalidSortOrder => 1402,
            DapiError::InvalidSortField { .. } => 1403,
            DapiError::SortFieldRequired => 1404,
            DapiError::AgentNotFound(_) => 1701,
            DapiError::Timeout | DapiError::ControlFailed(_) => 3000,
            DapiError::PeerError(_) | DapiError::RequestFailed(_) => 3009,
            DapiError::ClusterNotRunning => 3012,
            DapiError::ClusterDisabled => 3013,
            DapiError::SendTimeout => 3020,
            DapiError::ExecutionTimeout => 3021,
            DapiError::UnknownNode(_) => 3022,
            DapiError::MasterNotConnected => 3023,
        }
    }

    /// The answer a 3.9.5 node sends for this error, in the shape upstream uses for it (see the
    /// module docs): `{"error": code, "message": text}` for [`DapiError::Timeout`],
    /// [`DapiError::ControlFailed`] and [`DapiError::PeerError`], `print_json`'s
    /// `{"message": text, "error": code}` for the others.
    pub fn answer_json(&self) -> String {
        let message = self.to_string();
        match self {
            DapiError::Timeout | DapiError::ControlFailed(_) | DapiError::PeerError(_) => {
                let mut out = String::new();
                out.push_str("{\"error\": ");
                out.push_str(&self.code().to_string());
                out.push_str(", \"message\": ");
                pyjson::write_str(&mut out, &message);
                out.push('}');
                out
            }
            _ => error_answer(&message, self.code()),
        }
    }

    /// The payload of the `err` reply that carries this error on a link (3.9.5
    /// `Handler.dispatch`): `WazuhException <code> <message>`.
    pub fn err_payload(&self) -> String {
        format!("WazuhException {} {self}", self.code())
    }
}

/// The 1403 text of `utils.sort_array` (one place for the two error types that carry it).
pub(crate) fn invalid_sort_field_message(allowed: &[String], fields: &[String]) -> String {
    format!(
        "Sort field invalid: Allowed sort fields: {}. Fields: {}",
        allowed.join(", "),
        fields.join(", ")
    )
}

/// Python's `repr` of a `str` (what `str(KeyError(key))` gives): single quotes unless the text
/// holds a `'` and no `"`; backslash, the quote, `\t` `\n` `\r` escaped; other control characters
/// as `\xNN`; characters Python deems unprintable as `\xNN` / `\uNNNN` / `\UNNNNNNNN`.
///
/// Printability is Unicode-database knowledge std does not carry: we escape the control, format,
/// separator and private-use characters listed in [`is_python_unprintable`] and keep the rest, so
/// an unassigned code point (which Python escapes) is kept as is.
pub(crate) fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_ascii() || is_python_unprintable(c) => {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code <= 0xffff {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Non-ASCII characters of the Unicode categories Python's `str.isprintable` refuses (Cc, Cf, Zs,
/// Zl, Zp, Co, and the noncharacters of Cn), as of Unicode 11 (Python 3.7).
fn is_python_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0xa0 | 0xad
                | 0x600..=0x605
                | 0x61c
                | 0x6dd
                | 0x70f
                | 0x8e2
                | 0x1680
                | 0x180e
                | 0x2000..=0x200f
                | 0x2028..=0x202f
                | 0x205f..=0x2064
                | 0x2066..=0x206f
                | 0x3000
                | 0xe000..=0xf8ff
                | 0xfdd0..=0xfdef
                | 0xfeff
                | 0xfff9..=0xfffb
                | 0x110bd
                | 0x110cd
                | 0x1bca0..=0x1bca3
                | 0x1d173..=0x1d17a
                | 0xe0001
                | 0xe0020..=0xe007f
                | 0xf0000..=0x10ffff
        )
        || u32::from(c) & 0xfffe == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant: code, message, answer and `err` payload as python3.7 computes them from
    /// upstream 3.9.5 `exception.py` (`WazuhException(code, extra)`), `print_json` and the
    /// literal dicts of `master.py` / `local_server.py` — except `BadArgument`, whose text is ours.
    #[test]
    fn codes_texts_and_answers_match_upstream() {
        let cases: Vec<(DapiError, u16, &str, &str)> = vec![
            (
                DapiError::UnknownFunction("/foo".into()),
                1000,
                "'/foo'",
                r#"{"message": "'/foo'", "error": 1000}"#,
            ),
            (
                DapiError::Internal("coroutine raised StopIteration".into()),
                1000,
                "coroutine raised StopIteration",
                r#"{"message": "coroutine raised StopIteration", "error": 1000}"#,
            ),
            (
                DapiError::BadArgument {
                    argument: "agent_id",
                    expected: "a string or a list of strings",
                },
                1000,
                "argument 'agent_id' must be a string or a list of strings",
                r#"{"message": "argument 'agent_id' must be a string or a list of strings", "error": 1000}"#,
            ),
            (
                DapiError::InvalidSortOrder,
                1402,
                "Invalid order. Order must be 'asc' or 'desc'",
                r#"{"message": "Invalid order. Order must be 'asc' or 'desc'", "error": 1402}"#,
            ),
            (
                DapiError::InvalidSortField {
                    allowed: vec!["id".into(), "name".into()],
                    fields: vec!["foo".into()],
                },
                1403,
                "Sort field invalid: Allowed sort fields: id, name. Fields: foo",
                r#"{"message": "Sort field invalid: Allowed sort fields: id, name. Fields: foo", "error": 1403}"#,
            ),
            (
                DapiError::SortFieldRequired,
                1404,
                "A field must be specified to order the data",
                r#"{"message": "A field must be specified to order the data", "error": 1404}"#,
            ),
            (
                DapiError::AgentNotFound("999".into()),
                1701,
                "Agent does not exist: 999",
                r#"{"message": "Agent does not exist: 999", "error": 1701}"#,
            ),
            (
                DapiError::Timeout,
                3000,
                "Timeout exceeded",
                r#"{"error": 3000, "message": "Timeout exceeded"}"#,
            ),
            (
                DapiError::ControlFailed("Error processing request: x".into()),
                3000,
                "Cluster: Error processing request: x",
                r#"{"error": 3000, "message": "Cluster: Error processing request: x"}"#,
            ),
            (
                DapiError::PeerError("Error sending request: timeout expired.".into()),
                3009,
                "Error sending request: timeout expired.",
                r#"{"error": 3009, "message": "Error sending request: timeout expired."}"#,
            ),
            (
                DapiError::RequestFailed("boom".into()),
                3009,
                "Error executing distributed API request: boom",
                r#"{"message": "Error executing distributed API request: boom", "error": 3009}"#,
            ),
            (
                DapiError::ClusterNotRunning,
                3012,
                "Cluster is not running",
                r#"{"message": "Cluster is not running", "error": 3012}"#,
            ),
            (
                DapiError::ClusterDisabled,
                3013,
                "Cluster is disabled",
                r#"{"message": "Cluster is disabled", "error": 3013}"#,
            ),
            (
                DapiError::SendTimeout,
                3020,
                "Timeout sending request",
                r#"{"message": "Timeout sending request", "error": 3020}"#,
            ),
            (
                DapiError::ExecutionTimeout,
                3021,
                "Timeout executing API request",
                r#"{"message": "Timeout executing API request", "error": 3021}"#,
            ),
            (
                DapiError::UnknownNode("worker-2".into()),
                3022,
                "Unknown node ID: worker-2",
                r#"{"message": "Unknown node ID: worker-2", "error": 3022}"#,
            ),
            (
                DapiError::MasterNotConnected,
                3023,
                "Worker node is not connected to master",
                r#"{"message": "Worker node is not connected to master", "error": 3023}"#,
            ),
        ];
        for (error, code, message, answer) in cases {
            assert_eq!(error.code(), code, "{error:?}");
            assert_eq!(error.to_string(), message, "{error:?}");
            assert_eq!(error.answer_json(), answer, "{error:?}");
            assert_eq!(
                error.err_payload(),
                format!("WazuhException {code} {message}"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn unknown_function_is_python_repr_of_the_route() {
        // python3.7: str(KeyError(route)) then print_json.
        let cases = [
            ("/a'b", r#"{"message": "\"/a'b\"", "error": 1000}"#),
            ("a\"b", r#"{"message": "'a\"b'", "error": 1000}"#),
            ("a'\"b", r#"{"message": "'a\\'\"b'", "error": 1000}"#),
            ("tab\there", r#"{"message": "'tab\\there'", "error": 1000}"#),
            ("é", r#"{"message": "'\u00e9'", "error": 1000}"#),
            ("\u{7f}", r#"{"message": "'\\x7f'", "error": 1000}"#),
            ("\u{a0}", r#"{"message": "'\\xa0'", "error": 1000}"#),
            ("\u{200b}", r#"{"message": "'\\u200b'", "error": 1000}"#),
            (
                "\u{1F600}",
                r#"{"message": "'\ud83d\ude00'", "error": 1000}"#,
            ),
            ("\u{e000}", r#"{"message": "'\\ue000'", "error": 1000}"#),
            (
                "back\\slash",
                r#"{"message": "'back\\\\slash'", "error": 1000}"#,
            ),
        ];
        for (route, answer) in cases {
            assert_eq!(
                DapiError::UnknownFunction(route.into()).answer_json(),
                answer,
                "{route:?}"
            );
        }
    }
}
