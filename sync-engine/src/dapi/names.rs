//! Who a DAPI answer goes back to: the `*` name chains of 3.9.5 and the payloads of `dapi`,
//! `dapi_res`, `dapi_err` and `dapi_forward` (PROTOCOL.md §13.3, §4.4, §4.5, §15).
//!
//! A node queues each request it must answer as `<names> SP <request JSON>`, where `names` is
//! split once on `*`: the first name is the connection to answer on (a worker's name, `master`,
//! or a local client's name), the second, when present, is the id the answer must carry:
//!
//! | received | chain | answer on | answer payloads |
//! |---|---|---|---|
//! | master, `dapi <LC> <json>` from worker `w` | `w*<LC>` | link to `w` | `dapi_res <LC> <sid>` / `dapi_err <LC> <text>` |
//! | worker, `dapi <id> <json>` from the master | `master*<id>` | link to the master | `dapi_res <id> <sid>` / `dapi_err <id> <text>` |
//! | master, `dapi <json>` from local client `n` | `n` | local client `n` | `dapi_res <sid>` / `dapi_err <text>` |
//!
//! (`<sid>` is the id of the string that carried the answer, sent first with `new_str`/`str_upd`.)
//! On a TCP link `dapi`, `dapi_res` and `dapi_err` start with a name; on the local socket they do
//! not ([`Channel`]). `dapi_forward <node> <json>` (local client → master's local server) names
//! the worker to run the request, or `fw_all_nodes` for all of them.
//!
//! Every name is a [`ChainName`]: 1 to [`MAX_NAME_LEN`] bytes of printable ASCII without space or
//! `*` (upstream's names are decimal ids, `master` and node names; ours follow the node-name
//! rule). Payloads are split, never copied: the JSON and error texts are borrowed slices for the
//! caller to bound and parse.
//!
//! ```
//! use wazuh_cluster_sync::dapi::names::{Channel, DapiCall, DapiResult, NameChain};
//!
//! // The master receives a worker's request for one of its local clients...
//! let call = DapiCall::parse(br#"346023 {"function": "/agents"}"#, Channel::Link).unwrap();
//! let chain = NameChain::new("worker1".parse().unwrap(), call.prefix.clone());
//! assert_eq!(chain.to_string(), "worker1*346023");
//! // ...and answers on the worker's link with the local client's name first.
//! let answer = chain.result("2806467436".parse().unwrap());
//! assert_eq!(answer.to_payload(), b"346023 2806467436");
//! assert_eq!(DapiResult::parse(b"346023 2806467436", Channel::Link).unwrap(), answer);
//! ```

use std::fmt;
use std::str::FromStr;

/// Longest name accepted in a chain (node names are at most 64 bytes).
pub const MAX_NAME_LEN: usize = 64;

/// The chain's first name when the answer goes back to the master (3.9.5 worker).
pub const MASTER: &str = "master";

/// The `dapi_forward` target meaning every connected worker.
pub const ALL_WORKERS: &str = "fw_all_nodes";

/// Why a name or a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamesError {
    /// The payload lacks the space that separates its name from the rest.
    #[error("DAPI payload has no space after its name")]
    MissingSeparator,
    /// An empty name.
    #[error("empty DAPI name")]
    EmptyName,
    /// A name longer than [`MAX_NAME_LEN`].
    #[error("DAPI name of {0} bytes is longer than {MAX_NAME_LEN}")]
    NameTooLong(usize),
    /// A byte that is not printable ASCII, or a `*`.
    #[error("DAPI name holds byte 0x{0:02x}")]
    BadNameByte(u8),
}

/// One name of a chain: a node name, `master`, a local client's name, a request id or a string
/// id (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainName(String);

impl ChainName {
    /// Checks `name` against the rule.
    ///
    /// # Errors
    /// [`NamesError`]: empty, too long, or a byte outside `!`..=`~` or `*`.
    pub fn new(name: &[u8]) -> Result<Self, NamesError> {
        if name.is_empty() {
            return Err(NamesError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NamesError::NameTooLong(name.len()));
        }
        if let Some(&bad) = name
            .iter()
            .find(|&&b| !(b'!'..=b'~').contains(&b) || b == b'*')
        {
            return Err(NamesError::BadNameByte(bad));
        }
        // Checked above: every byte is ASCII.
        Ok(ChainName(name.iter().copied().map(char::from).collect()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChainName {
    type Err = NamesError;

    fn from_str(name: &str) -> Result<Self, NamesError> {
        ChainName::new(name.as_bytes())
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a payload travels: a TCP link between nodes, or the local socket between a node and a
/// local client (the API). On a link `dapi`, `dapi_res` and `dapi_err` start with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Master ⇄ worker.
    Link,
    /// Node ⇄ local client.
    LocalSocket,
}

/// `<reply_to>[*<answer_prefix>]`: where a queued request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameChain {
    /// The connection the answer goes out on: a worker, [`MASTER`], or a local client.
    pub reply_to: ChainName,
    /// The name the answer payloads start with, when it goes over a link.
    pub answer_prefix: Option<ChainName>,
}

impl NameChain {
    /// A chain of one or two names.
    pub fn new(reply_to: ChainName, answer_prefix: Option<ChainName>) -> Self {
        NameChain {
            reply_to,
            answer_prefix,
        }
    }

    /// Splits `names` once on `*`.
    ///
    /// # Errors
    /// [`NamesError`] when either name breaks the rule (a second `*` included).
    pub fn parse(names: &[u8]) -> Result<Self, NamesError> {
        let (first, second) = match names.iter().position(|&b| b == b'*') {
            Some(star) => (&names[..star], Some(&names[star + 1..])),
            None => (names, None),
        };
        Ok(NameChain {
            reply_to: ChainName::new(first)?,
            answer_prefix: second.map(ChainName::new).transpose()?,
        })
    }

    /// The `dapi_res` that answers through this chain with the string `string_id`.
    pub fn result(&self, string_id: ChainName) -> DapiResult {
        DapiResult {
            prefix: self.answer_prefix.clone(),
            string_id,
        }
    }

    /// The `dapi_err` that answers through this chain with `text`.
    pub fn failure<'t>(&self, text: &'t [u8]) -> DapiFailure<'t> {
        DapiFailure {
            prefix: self.answer_prefix.clone(),
            text,
        }
    }
}

impl fmt::Display for NameChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.answer_prefix {
            Some(prefix) => write!(f, "{}*{prefix}", self.reply_to),
            None => write!(f, "{}", self.reply_to),
        }
    }
}

/// A queued request, `<names> SP <request JSON>` (3.9.5 `APIRequestQueue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest<'a> {
    /// Where the answer goes.
    pub names: NameChain,
    /// The request, unparsed.
    pub request_json: &'a [u8],
}

impl<'a> QueuedRequest<'a> {
    /// Splits a queue item.
    ///
    /// # Errors
    /// [`NamesError`]: no space, or a bad name.
    pub fn parse(item: &'a [u8]) -> Result<Self, NamesError> {
        let (names, request_json) = split_name(item)?;
        Ok(QueuedRequest {
            names: NameChain::parse(names)?,
            request_json,
        })
    }

    /// The queue item.
    pub fn to_bytes(&self) -> Vec<u8> {
        joined(self.names.to_string().as_bytes(), self.request_json)
    }
}

/// The payload of `dapi`: `<prefix> SP <request JSON>` on a link, `<request JSON>` from a local
/// client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DapiCall<'a> {
    /// On a link: the local client's name (worker → master, or master → worker for a local
    /// client of the master) or the master's request id (master → worker).
    pub prefix: Option<ChainName>,
    /// The request, unparsed.
    pub request_json: &'a [u8],
}

impl<'a> DapiCall<'a> {
    /// Reads a `dapi` payload received on `channel`.
    ///
    /// # Errors
    /// [`NamesError`] on a link: no space, or a bad name.
    pub fn parse(payload: &'a [u8], channel: Channel) -> Result<Self, NamesError> {
        let (prefix, request_json) = split_prefix(payload, channel)?;
        Ok(DapiCall {
            prefix,
            request_json,
        })
    }

    /// The payload.
    pub fn to_payload(&self) -> Vec<u8> {
        with_prefix(self.prefix.as_ref(), self.request_json)
    }
}

/// The payload of `dapi_res`: `<prefix> SP <string id>` on a link, `<string id>` to a local
/// client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DapiResult {
    /// The local client's name or the request id the answer is for (on a link).
    pub prefix: Option<ChainName>,
    /// The id of the string holding the answer.
    pub string_id: ChainName,
}

impl DapiResult {
    /// Reads a `dapi_res` payload received on `channel`.
    ///
    /// # Errors
    /// [`NamesError`]: no space on a link, or a bad name or string id.
    pub fn parse(payload: &[u8], channel: Channel) -> Result<Self, NamesError> {
        let (prefix, string_id) = split_prefix(payload, channel)?;
        Ok(DapiResult {
            prefix,
            string_id: ChainName::new(string_id)?,
        })
    }

    /// The payload.
    pub fn to_payload(&self) -> Vec<u8> {
        with_prefix(self.prefix.as_ref(), self.string_id.as_str().as_bytes())
    }
}

/// The payload of `dapi_err`: `<prefix> SP <text>` on a link, `<text>` to a local client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DapiFailure<'a> {
    /// The local client's name or the request id the error is for (on a link).
    pub prefix: Option<ChainName>,
    /// The error text (any bytes; a local client decodes it as UTF-8 and answers 3009 with it).
    pub text: &'a [u8],
}

impl<'a> DapiFailure<'a> {
    /// Reads a `dapi_err` payload received on `channel`.
    ///
    /// # Errors
    /// [`NamesError`] on a link: no space, or a bad name.
    pub fn parse(payload: &'a [u8], channel: Channel) -> Result<Self, NamesError> {
        let (prefix, text) = split_prefix(payload, channel)?;
        Ok(DapiFailure { prefix, text })
    }

    /// The payload.
    pub fn to_payload(&self) -> Vec<u8> {
        with_prefix(self.prefix.as_ref(), self.text)
    }
}

/// Which workers a `dapi_forward` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    /// `fw_all_nodes`: every connected worker.
    AllWorkers,
    /// One worker.
    Node(ChainName),
}

/// The payload of `dapi_forward` (local client → master's local server):
/// `<node or fw_all_nodes> SP <request JSON>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DapiForward<'a> {
    /// Who runs the request.
    pub target: ForwardTarget,
    /// The request, unparsed.
    pub request_json: &'a [u8],
}

impl<'a> DapiForward<'a> {
    /// Reads a `dapi_forward` payload.
    ///
    /// # Errors
    /// [`NamesError`]: no space, or a bad node name.
    pub fn parse(payload: &'a [u8]) -> Result<Self, NamesError> {
        let (node, request_json) = split_name(payload)?;
        let target = if node == ALL_WORKERS.as_bytes() {
            ForwardTarget::AllWorkers
        } else {
            ForwardTarget::Node(ChainName::new(node)?)
        };
        Ok(DapiForward {
            target,
            request_json,
        })
    }

    /// The payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let node = match &self.target {
            ForwardTarget::AllWorkers => ALL_WORKERS,
            ForwardTarget::Node(name) => name.as_str(),
        };
        joined(node.as_bytes(), self.request_json)
    }
}

/// `payload.split(b' ', 1)` where both parts are required.
fn split_name(payload: &[u8]) -> Result<(&[u8], &[u8]), NamesError> {
    let space = payload
        .iter()
        .position(|&b| b == b' ')
        .ok_or(NamesError::MissingSeparator)?;
    Ok((&payload[..space], &payload[space + 1..]))
}

fn split_prefix(
    payload: &[u8],
    channel: Channel,
) -> Result<(Option<ChainName>, &[u8]), NamesError> {
    match channel {
        Channel::LocalSocket => Ok((None, payload)),
        Channel::Link => {
            let (name, rest) = split_name(payload)?;
            Ok((Some(ChainName::new(name)?), rest))
        }
    }
}

fn with_prefix(prefix: Option<&ChainName>, rest: &[u8]) -> Vec<u8> {
    match prefix {
        Some(prefix) => joined(prefix.as_str().as_bytes(), rest),
        None => rest.to_vec(),
    }
}

fn joined(name: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1 + rest.len());
    out.extend_from_slice(name);
    out.push(b' ');
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn name(text: &str) -> ChainName {
        text.parse().unwrap()
    }

    /// PROTOCOL.md §13.3's table, with names taken from the recorded session (dapi_frames.json).
    #[test]
    fn chains_answer_where_upstream_answers() {
        // Master: `dapi 346023 <json>` from worker1 → `worker1*346023`.
        let call = DapiCall::parse(b"346023 {}", Channel::Link).unwrap();
        let chain = NameChain::new(name("worker1"), call.prefix);
        assert_eq!(chain.to_string(), "worker1*346023");
        assert_eq!(
            chain.result(name("2806467436")).to_payload(),
            b"346023 2806467436"
        );
        assert_eq!(chain.failure(b"Error x").to_payload(), b"346023 Error x");
        // Worker: `dapi 50 <json>` from the master → `master*50`.
        let call = DapiCall::parse(b"50 {}", Channel::Link).unwrap();
        let chain = NameChain::new(name(MASTER), call.prefix);
        assert_eq!(chain.to_string(), "master*50");
        assert_eq!(
            chain.result(name("3371053167")).to_payload(),
            b"50 3371053167"
        );
        // Master's local server: `dapi <json>` from local client 1036534 → `1036534`.
        let call = DapiCall::parse(b"{}", Channel::LocalSocket).unwrap();
        assert_eq!(call.prefix, None);
        let chain = NameChain::new(name("1036534"), call.prefix);
        assert_eq!(chain.to_string(), "1036534");
        assert_eq!(chain.result(name("2037982443")).to_payload(), b"2037982443");
        assert_eq!(chain.failure(b"Error x").to_payload(), b"Error x");
    }

    #[test]
    fn payloads_round_trip() {
        let item = QueuedRequest::parse(br#"worker1*346023 {"a": 1} x"#).unwrap();
        assert_eq!(item.names.reply_to, name("worker1"));
        assert_eq!(item.names.answer_prefix, Some(name("346023")));
        assert_eq!(item.request_json, br#"{"a": 1} x"#);
        assert_eq!(item.to_bytes(), br#"worker1*346023 {"a": 1} x"#);

        let forward = DapiForward::parse(br#"worker1 {"function": "/x"}"#).unwrap();
        assert_eq!(forward.target, ForwardTarget::Node(name("worker1")));
        assert_eq!(forward.to_payload(), br#"worker1 {"function": "/x"}"#);
        let all = DapiForward::parse(b"fw_all_nodes {}").unwrap();
        assert_eq!(all.target, ForwardTarget::AllWorkers);
        assert_eq!(all.to_payload(), b"fw_all_nodes {}");

        let failure = DapiFailure::parse(b"346023 ", Channel::Link).unwrap();
        assert_eq!(failure.text, b"");
        let local = DapiResult::parse(b"2545661560", Channel::LocalSocket).unwrap();
        assert_eq!(local.prefix, None);
        assert_eq!(local.to_payload(), b"2545661560");
    }

    #[test]
    fn bad_names_and_payloads_are_typed_errors() {
        assert_eq!(
            DapiCall::parse(b"{}", Channel::Link),
            Err(NamesError::MissingSeparator)
        );
        assert_eq!(
            DapiResult::parse(b"346023", Channel::Link),
            Err(NamesError::MissingSeparator)
        );
        assert_eq!(
            DapiResult::parse(b" 1", Channel::Link),
            Err(NamesError::EmptyName)
        );
        assert_eq!(
            DapiResult::parse(b"1 2 3", Channel::Link),
            Err(NamesError::BadNameByte(b' '))
        );
        assert_eq!(
            NameChain::parse(b"a*b*c"),
            Err(NamesError::BadNameByte(b'*'))
        );
        assert_eq!(NameChain::parse(b"a*"), Err(NamesError::EmptyName));
        assert_eq!(
            ChainName::new(&[b'a'; MAX_NAME_LEN + 1]),
            Err(NamesError::NameTooLong(MAX_NAME_LEN + 1))
        );
        assert_eq!(
            ChainName::new("é".as_bytes()),
            Err(NamesError::BadNameByte(0xc3))
        );
        assert_eq!(
            DapiForward::parse(b"\x00 {}"),
            Err(NamesError::BadNameByte(0))
        );
    }

    proptest! {
        /// Any payload: parsed or a typed error, never a panic; what parses formats back to the
        /// same bytes.
        #[test]
        fn parsing_never_panics_and_round_trips(
            payload in prop::collection::vec(any::<u8>(), 0..100),
            on_link: bool,
        ) {
            let channel = if on_link { Channel::Link } else { Channel::LocalSocket };
            if let Ok(call) = DapiCall::parse(&payload, channel) {
                prop_assert_eq!(call.to_payload(), payload.clone());
            }
            if let Ok(result) = DapiResult::parse(&payload, channel) {
                prop_assert_eq!(result.to_payload(), payload.clone());
            }
            if let Ok(failure) = DapiFailure::parse(&payload, channel) {
                prop_assert_eq!(failure.to_payload(), payload.clone());
            }
            if let Ok(forward) = DapiForward::parse(&payload) {
                prop_assert_eq!(forward.to_payload(), payload.clone());
            }
            if let Ok(item) = QueuedRequest::parse(&payload) {
                prop_assert_eq!(item.to_bytes(), payload.clone());
            }
        }
    }
}
