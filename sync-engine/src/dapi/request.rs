//! The request JSON of 3.9.5 (PROTOCOL.md §13.2): what the API puts on the local socket, what a
//! worker forwards to the master and what the master forwards to the node that holds the data.
//!
//! ```text
//! {"function": "/syscollector/:agent_id/os",
//!  "arguments": {"agent_id": "001", "wait_for_complete": false},
//!  "ossec_path": "/var/ossec", "from_cluster": false}
//! ```
//!
//! [`DapiRequest`] is that document typed: `function` (the route, a string), `arguments` (an
//! object; `wait_for_complete` in it, when present, a bool), `from_cluster` (a bool), the optional
//! `ossec_path` (a string), and any other key kept with its value as plain data. Every key keeps
//! its place, so [`DapiRequest::to_python_json`] writes what upstream's `json.dumps` writes for the
//! same dict — which matters because upstream re-encodes a request each time it forwards it.
//!
//! Nothing in a request is ever interpreted beyond those typed fields: 4.x's object hooks
//! (`__callable__`, `__wazuh_exception__`, `__unhandled_exc__`, ...) are ordinary keys of ordinary
//! objects here, kept and passed on as data, and a `function` that is not a string is refused.
//! Size and depth are bounded ([`DapiLimits`]); a request that breaks a bound or a type is a
//! [`RequestError`].
//!
//! ```
//! use wazuh_cluster_sync::dapi::request::{DapiLimits, DapiRequest};
//!
//! let text = br#"{"function": "/agents", "arguments": {"offset": 0}, "ossec_path": "/var/ossec", "from_cluster": false}"#;
//! let mut request = DapiRequest::parse(text, &DapiLimits::default()).unwrap();
//! assert_eq!(request.function(), "/agents");
//! assert!(!request.wait_for_complete());
//! // As upstream's `distribute_function` does first, then its forward re-encoding:
//! request.fill_wait_for_complete();
//! request.set_from_cluster(true);
//! assert_eq!(
//!     request.to_python_json(),
//!     r#"{"function": "/agents", "arguments": {"offset": 0, "wait_for_complete": false}, "ossec_path": "/var/ossec", "from_cluster": true}"#
//! );
//! ```

use super::error::{DapiError, python_repr};
use super::json::{JsonError, JsonLimits, JsonObject, JsonValue};
use super::routes::Route;
use crate::pyjson;

/// Bounds on the DAPI documents a node reads from peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DapiLimits {
    /// A request (API calls carry a route and a few arguments; agent id lists make them grow).
    pub request: JsonLimits,
    /// An answer read back for merging (a page of up to `limit` items from one node).
    pub answer: JsonLimits,
}

impl Default for DapiLimits {
    /// Requests: 1 MiB, 64 levels. Answers: 16 MiB, 64 levels.
    fn default() -> Self {
        DapiLimits {
            request: JsonLimits::default(),
            answer: JsonLimits {
                max_bytes: 16 << 20,
                max_depth: 64,
            },
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not JSON, or beyond a bound.
    #[error("DAPI request: {0}")]
    Json(#[from] JsonError),
    /// The document is not an object.
    #[error("DAPI request is a JSON {found}, not an object")]
    NotAnObject {
        /// Python type of what was sent.
        found: &'static str,
    },
    /// A required key is absent (`function`, `arguments`, `from_cluster`).
    #[error("DAPI request lacks '{0}'")]
    MissingField(&'static str),
    /// A known key holds a value of the wrong type.
    #[error("DAPI request field '{field}' is of type {found}, expected {expected}")]
    WrongType {
        /// The key (`function`, `arguments`, `from_cluster`, `ossec_path`, `wait_for_complete`).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// Python type of what it is.
        found: &'static str,
    },
}

impl From<RequestError> for DapiError {
    /// Error 1000. For a missing `function` or `arguments` the text is upstream's (`str` of its
    /// `KeyError`); for the other refusals, where upstream would fail later or differently, ours.
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::MissingField(field) => DapiError::Internal(python_repr(field)),
            other => DapiError::Internal(other.to_string()),
        }
    }
}

/// A top-level key of the request, in the order it arrived.
#[derive(Debug, Clone, PartialEq)]
enum RequestKey {
    Function,
    Arguments,
    FromCluster,
    OssecPath,
    /// A key we do not read, kept with its value.
    Other(String, JsonValue),
}

/// A 3.9.5 DAPI request (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DapiRequest {
    function: String,
    arguments: JsonObject,
    from_cluster: bool,
    ossec_path: Option<String>,
    /// Every top-level key in order; the typed ones stand for their field above (`OssecPath` is
    /// here exactly when `ossec_path` is `Some`).
    keys: Vec<RequestKey>,
}

impl DapiRequest {
    /// A request built here, with the keys in the order upstream's API writes them
    /// (`function`, `arguments`, `from_cluster`).
    ///
    /// # Errors
    /// [`RequestError::WrongType`] when `arguments` has a `wait_for_complete` that is not a bool.
    pub fn new(
        function: impl Into<String>,
        arguments: JsonObject,
        from_cluster: bool,
    ) -> Result<Self, RequestError> {
        check_wait_for_complete(&arguments)?;
        Ok(DapiRequest {
            function: function.into(),
            arguments,
            from_cluster,
            ossec_path: None,
            keys: vec![
                RequestKey::Function,
                RequestKey::Arguments,
                RequestKey::FromCluster,
            ],
        })
    }

    /// Reads a request as upstream's `json.loads` does, within `limits.request`, and checks the
    /// types of its known keys.
    ///
    /// # Errors
    /// [`RequestError`]: not JSON or beyond a bound, not an object, a required key missing, a
    /// known key of the wrong type.
    pub fn parse(input: &[u8], limits: &DapiLimits) -> Result<Self, RequestError> {
        let object = match JsonValue::parse(input, &limits.request)? {
            JsonValue::Object(object) => object,
            other => {
                return Err(RequestError::NotAnObject {
                    found: other.python_type_name(),
                });
            }
        };
        let mut function = None;
        let mut arguments = None;
        let mut from_cluster = None;
        let mut ossec_path = None;
        let mut keys = Vec::with_capacity(object.len());
        for (key, value) in object {
            let slot = match key.as_str() {
                "function" => {
                    function = Some(expect_str("function", value)?);
                    RequestKey::Function
                }
                "arguments" => {
                    let JsonValue::Object(object) = value else {
                        return Err(wrong_type("arguments", "an object", &value));
                    };
                    check_wait_for_complete(&object)?;
                    arguments = Some(object);
                    RequestKey::Arguments
                }
                "from_cluster" => {
                    let JsonValue::Bool(flag) = value else {
                        return Err(wrong_type("from_cluster", "a bool", &value));
                    };
                    from_cluster = Some(flag);
                    RequestKey::FromCluster
                }
                "ossec_path" => {
                    ossec_path = Some(expect_str("ossec_path", value)?);
                    RequestKey::OssecPath
                }
                _ => RequestKey::Other(key, value),
            };
            keys.push(slot);
        }
        Ok(DapiRequest {
            function: function.ok_or(RequestError::MissingField("function"))?,
            arguments: arguments.ok_or(RequestError::MissingField("arguments"))?,
            from_cluster: from_cluster.ok_or(RequestError::MissingField("from_cluster"))?,
            ossec_path,
            keys,
        })
    }

    /// The route (`function`), e.g. `/agents` or `PUT/agents/restart`.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The route's entry in the table.
    ///
    /// # Errors
    /// [`DapiError::UnknownFunction`], 3.9.5's answer for a route it does not know.
    pub fn route(&self) -> Result<&'static Route, DapiError> {
        Route::lookup(&self.function)
    }

    /// The arguments, in order.
    pub fn arguments(&self) -> &JsonObject {
        &self.arguments
    }

    /// `from_cluster`: the request was already placed by the master.
    pub fn from_cluster(&self) -> bool {
        self.from_cluster
    }

    /// `ossec_path`, when the request carries one.
    pub fn ossec_path(&self) -> Option<&str> {
        self.ossec_path.as_deref()
    }

    /// `arguments.wait_for_complete`; absent means `false`, as upstream fills it.
    pub fn wait_for_complete(&self) -> bool {
        matches!(
            self.arguments.get("wait_for_complete"),
            Some(JsonValue::Bool(true))
        )
    }

    /// The top-level keys this type does not read, with their values, in order.
    pub fn other_fields(&self) -> impl Iterator<Item = (&str, &JsonValue)> {
        self.keys.iter().filter_map(|key| match key {
            RequestKey::Other(name, value) => Some((name.as_str(), value)),
            _ => None,
        })
    }

    /// Adds `"wait_for_complete": false` at the end of the arguments when absent (the first thing
    /// upstream's `distribute_function` does, so every request it forwards carries it).
    pub fn fill_wait_for_complete(&mut self) {
        if !self.arguments.contains_key("wait_for_complete") {
            self.arguments
                .insert("wait_for_complete", JsonValue::Bool(false));
        }
    }

    /// Sets `from_cluster` in place (the master sets it before forwarding).
    pub fn set_from_cluster(&mut self, from_cluster: bool) {
        self.from_cluster = from_cluster;
    }

    /// The arguments, for the routing code's rewrites (`agent_id`, `node_id`); it leaves
    /// `wait_for_complete` alone, so that key stays a bool.
    pub(super) fn arguments_mut(&mut self) -> &mut JsonObject {
        &mut self.arguments
    }

    /// The `tmp_file` argument when it is a string: a file of the install (relative to its root,
    /// as 3.9.5's API names `tmp/api_tmp_file_….xml`) that goes to the node running the request
    /// before the request.
    pub fn tmp_file(&self) -> Option<&str> {
        self.arguments.get("tmp_file").and_then(JsonValue::as_str)
    }

    /// Points `tmp_file` at `path` (where the file was sent, relative to the install root).
    pub fn set_tmp_file(&mut self, path: &str) {
        if let Some(value) = self.arguments.get_mut("tmp_file") {
            *value = JsonValue::Str(path.to_owned());
        }
    }

    /// The request as upstream's `json.dumps` writes the same dict.
    pub fn to_python_json(&self) -> String {
        let mut out = String::new();
        pyjson::write_object(
            &mut out,
            self.keys.iter().map(|key| (key.name(), key)),
            |out, key| match key {
                RequestKey::Function => pyjson::write_str(out, &self.function),
                RequestKey::Arguments => self.arguments.write_python_json(out),
                RequestKey::FromCluster => {
                    out.push_str(if self.from_cluster { "true" } else { "false" });
                }
                RequestKey::OssecPath => {
                    pyjson::write_str(out, self.ossec_path.as_deref().unwrap_or_default());
                }
                RequestKey::Other(_, value) => value.write_python_json(out),
            },
        );
        out
    }
}

impl RequestKey {
    fn name(&self) -> &str {
        match self {
            RequestKey::Function => "function",
            RequestKey::Arguments => "arguments",
            RequestKey::FromCluster => "from_cluster",
            RequestKey::OssecPath => "ossec_path",
            RequestKey::Other(name, _) => name,
        }
    }
}

fn check_wait_for_complete(arguments: &JsonObject) -> Result<(), RequestError> {
    match arguments.get("wait_for_complete") {
        None | Some(JsonValue::Bool(_)) => Ok(()),
        Some(other) => Err(wrong_type("wait_for_complete", "a bool", other)),
    }
}

fn expect_str(field: &'static str, value: JsonValue) -> Result<String, RequestError> {
    match value {
        JsonValue::Str(s) => Ok(s),
        other => Err(wrong_type(field, "a string", &other)),
    }
}

fn wrong_type(field: &'static str, expected: &'static str, found: &JsonValue) -> RequestError {
    RequestError::WrongType {
        field,
        expected,
        found: found.python_type_name(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Result<DapiRequest, RequestError> {
        DapiRequest::parse(text.as_bytes(), &DapiLimits::default())
    }

    /// The request the 3.9.5 API sent to a worker's local socket (dapi_via_worker.json).
    const RECORDED: &str = r#"{"function": "/agents", "arguments": {"offset": 0, "limit": 500, "select": {"fields": ["id", "name", "node_name"]}, "wait_for_complete": false}, "ossec_path": "/var/ossec-worker1", "from_cluster": false}"#;

    #[test]
    fn typed_fields_and_byte_exact_round_trip() {
        let request = parse(RECORDED).unwrap();
        assert_eq!(request.function(), "/agents");
        assert_eq!(request.ossec_path(), Some("/var/ossec-worker1"));
        assert!(!request.from_cluster());
        assert!(!request.wait_for_complete());
        assert_eq!(request.arguments().get("limit"), Some(&JsonValue::Int(500)));
        assert_eq!(request.to_python_json(), RECORDED);
        // Compact input comes out in json.dumps form, keys where they were.
        let compact = r#"{"from_cluster":true,"x":[1,{"y":null}],"function":"/rules","arguments":{"wait_for_complete":true}}"#;
        let request = parse(compact).unwrap();
        assert!(request.wait_for_complete());
        assert_eq!(
            request.to_python_json(),
            r#"{"from_cluster": true, "x": [1, {"y": null}], "function": "/rules", "arguments": {"wait_for_complete": true}}"#
        );
    }

    #[test]
    fn fill_and_set_keep_positions() {
        let mut request = parse(
            r#"{"function": "/agents", "arguments": {"a": 1}, "from_cluster": false, "z": 0}"#,
        )
        .unwrap();
        request.fill_wait_for_complete();
        request.fill_wait_for_complete();
        request.set_from_cluster(true);
        assert_eq!(
            request.to_python_json(),
            r#"{"function": "/agents", "arguments": {"a": 1, "wait_for_complete": false}, "from_cluster": true, "z": 0}"#
        );
        let built = DapiRequest::new("/agents", JsonObject::new(), false).unwrap();
        assert_eq!(
            built.to_python_json(),
            r#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#
        );
    }

    #[test]
    fn hostile_keys_are_plain_data() {
        // 4.x object-hook tags mean nothing here: kept, passed on, never acted upon.
        let text = r#"{"function": "/agents", "arguments": {"q": {"__unhandled_exc__": {"__class__": "exit", "__args__": []}}}, "from_cluster": false, "__callable__": {"__name__": "system", "__module__": "os"}}"#;
        let request = parse(text).unwrap();
        assert_eq!(request.to_python_json(), text);
        assert_eq!(
            request.other_fields().map(|(k, _)| k).collect::<Vec<_>>(),
            ["__callable__"]
        );
        // A function given as an encoded callable is not a route.
        assert_eq!(
            parse(
                r#"{"function": {"__callable__": {"__name__": "get_agents", "__module__": "wazuh.agent"}}, "arguments": {}, "from_cluster": false}"#
            ),
            Err(RequestError::WrongType {
                field: "function",
                expected: "a string",
                found: "dict"
            })
        );
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        let cases = [
            ("[]", RequestError::NotAnObject { found: "list" }),
            (
                r#"{"arguments": {}, "from_cluster": false}"#,
                RequestError::MissingField("function"),
            ),
            (
                r#"{"function": "/a", "from_cluster": false}"#,
                RequestError::MissingField("arguments"),
            ),
            (
                r#"{"function": "/a", "arguments": {}}"#,
                RequestError::MissingField("from_cluster"),
            ),
            (
                r#"{"function": "/a", "arguments": [], "from_cluster": false}"#,
                RequestError::WrongType {
                    field: "arguments",
                    expected: "an object",
                    found: "list",
                },
            ),
            (
                r#"{"function": "/a", "arguments": {}, "from_cluster": 0}"#,
                RequestError::WrongType {
                    field: "from_cluster",
                    expected: "a bool",
                    found: "int",
                },
            ),
            (
                r#"{"function": "/a", "arguments": {"wait_for_complete": "yes"}, "from_cluster": false}"#,
                RequestError::WrongType {
                    field: "wait_for_complete",
                    expected: "a bool",
                    found: "str",
                },
            ),
            (
                r#"{"function": "/a", "arguments": {}, "from_cluster": false, "ossec_path": null}"#,
                RequestError::WrongType {
                    field: "ossec_path",
                    expected: "a string",
                    found: "NoneType",
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Err(expected), "{text}");
        }
        assert!(matches!(
            parse(&format!(
                r#"{{"function": "/a", "arguments": {}, "from_cluster": false}}"#,
                "{\"a\":".repeat(70) + "1" + &"}".repeat(70)
            )),
            Err(RequestError::Json(JsonError::TooDeep { .. }))
        ));
        let tight = DapiLimits {
            request: JsonLimits {
                max_bytes: 16,
                max_depth: 8,
            },
            ..DapiLimits::default()
        };
        assert_eq!(
            DapiRequest::parse(RECORDED.as_bytes(), &tight),
            Err(RequestError::Json(JsonError::TooLarge {
                size: RECORDED.len(),
                limit: 16
            }))
        );
        assert_eq!(
            DapiRequest::new(
                "/a",
                [("wait_for_complete".to_owned(), JsonValue::Int(1))]
                    .into_iter()
                    .collect(),
                false
            ),
            Err(RequestError::WrongType {
                field: "wait_for_complete",
                expected: "a bool",
                found: "int"
            })
        );
    }

    #[test]
    fn errors_answer_as_upstream_where_it_has_an_answer() {
        // Upstream reads `input_json['function']` / `['arguments']` first: a KeyError, error 1000.
        assert_eq!(
            DapiError::from(RequestError::MissingField("function")).answer_json(),
            r#"{"message": "'function'", "error": 1000}"#
        );
        assert_eq!(
            DapiError::from(RequestError::NotAnObject { found: "list" }).code(),
            1000
        );
    }

    proptest! {
        /// Any bytes: a request or a typed error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = DapiRequest::parse(&bytes, &DapiLimits::default());
        }

        /// Any mix of known and unknown keys in any order comes back byte for byte.
        #[test]
        fn round_trip_keeps_order(
            extra in prop::collection::vec(("[a-z_]{1,6}", any::<i64>()), 0..4),
            order in Just((0..3).collect::<Vec<usize>>()).prop_shuffle(),
            with_path: bool,
            wait: Option<bool>,
        ) {
            let mut fields: Vec<String> = vec![
                r#""function": "/agents""#.to_owned(),
                match wait {
                    Some(w) => format!(r#""arguments": {{"wait_for_complete": {w}}}"#),
                    None => r#""arguments": {}"#.to_owned(),
                },
                r#""from_cluster": false"#.to_owned(),
            ];
            fields = order.iter().map(|&i| fields[i].clone()).collect();
            if with_path {
                fields.insert(1, r#""ossec_path": "/var/ossec""#.to_owned());
            }
            for (key, value) in &extra {
                if !["function", "arguments", "from_cluster", "ossec_path"].contains(&key.as_str())
                    && !fields.iter().any(|f| f.starts_with(&format!("\"{key}\"")))
                {
                    fields.push(format!(r#""{key}": {value}"#));
                }
            }
            let text = format!("{{{}}}", fields.join(", "));
            let request = DapiRequest::parse(text.as_bytes(), &DapiLimits::default()).unwrap();
            prop_assert_eq!(request.to_python_json(), text);
            prop_assert_eq!(request.wait_for_complete(), wait == Some(true));
        }
    }
}
