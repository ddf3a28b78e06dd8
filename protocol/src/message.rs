//! Typed messages of the common layer of profile 3.9 (upstream 3.9.5 `common.py`, `server.py`,
//! `client.py`), with the exact texts upstream puts on the wire.
//!
//! Why a module of its own: the connection core answers these requests itself and must produce the
//! same bytes as upstream, including upstream's typos (`Sucessful`, `Unkown`) and the Python
//! `repr()` of bytes that leaks into error texts (`unknown command 'b'foo''`). Keeping every literal
//! here means one place to check against the golden vectors (PROTOCOL.md §1.7, §3.1, §4.1–§4.3).
//!
//! Two directions:
//! * requests the core receives: [`CommonRequest::parse`] turns a `(command, payload)` into a typed
//!   request, or into the exact error text upstream would reply with;
//! * replies the core receives: [`Reply`] keeps the reply command and payload, and
//!   [`Reply::upstream_value`] rebuilds the value upstream's `process_response` hands to its caller.

use bytes::Bytes;
use std::fmt::Write as _;

/// Command names of the common layer (3.9.5), as bytes.
pub mod cmd {
    /// `echo`: answered with `ok` and the same payload by any peer.
    pub const ECHO: &[u8] = b"echo";
    /// `echo-c`: the worker's keepalive, answered by the server side with `ok-m `.
    pub const ECHO_C: &[u8] = b"echo-c";
    /// `echo-m`: the master's echo, answered by the client side with `ok-c`.
    pub const ECHO_M: &[u8] = b"echo-m";
    /// `hello`: the worker's handshake (handled by the layer above).
    pub const HELLO: &[u8] = b"hello";
    /// `ok`: successful reply.
    pub const OK: &[u8] = b"ok";
    /// `ok ` (trailing space): upstream's reply command to `new_file`; parses back to `ok`.
    pub const OK_SPACE: &[u8] = b"ok ";
    /// `ok-m`: reply to `echo-c` as parsed.
    pub const OK_M: &[u8] = b"ok-m";
    /// `ok-m ` (trailing space): the reply command upstream sends to `echo-c`.
    pub const OK_M_SPACE: &[u8] = b"ok-m ";
    /// `ok-c`: reply to `echo-m`.
    pub const OK_C: &[u8] = b"ok-c";
    /// `err`: error reply (text payload in 3.9.5).
    pub const ERR: &[u8] = b"err";
    /// `new_file`: opens a file transfer.
    pub const NEW_FILE: &[u8] = b"new_file";
    /// `file_upd`: one chunk of a file transfer.
    pub const FILE_UPD: &[u8] = b"file_upd";
    /// `file_end`: closes a file transfer with its SHA-256.
    pub const FILE_END: &[u8] = b"file_end";
    /// `new_str`: opens a long-string transfer.
    pub const NEW_STR: &[u8] = b"new_str";
    /// `str_upd`: one chunk of a long string.
    pub const STR_UPD: &[u8] = b"str_upd";
}

/// Exact texts upstream 3.9.5 puts on the wire or hands to callers.
pub mod text {
    /// Reply payload to `new_file` (command `ok `).
    pub const READY_NEW_FILE: &[u8] = b"Ready to receive new file";
    /// Reply payload to `file_upd`.
    pub const FILE_UPDATED: &[u8] = b"File updated";
    /// Reply payload to a `file_end` whose checksum matches.
    pub const FILE_RECEIVED: &[u8] = b"File received correctly";
    /// `err` payload to a `file_end` whose checksum differs.
    pub const FILE_CHECKSUM_MISMATCH: &[u8] =
        b"File wasn't correctly received. Checksums aren't equal.";
    /// Reply payload to `str_upd` (3.9.5; 4.x says `String updated`).
    pub const CHUNK_RECEIVED: &[u8] = b"Chunk received";
    /// The keepalive payload the worker sends with `echo-c`.
    pub const KEEPALIVE: &[u8] = b"keepalive";
    /// What a frame that fails to decrypt becomes (3.9.5 replaces payload and command with `err`).
    pub const DECRYPT_FAILED: &[u8] = b"Could not decrypt message. Check key is correct.";
    /// Prefix upstream adds to an `err` reply that is not a `WazuhException`.
    pub const ERROR_PROCESSING: &[u8] = b"Error processing request: ";
    /// Prefix of an `ok-m` reply value (typo is upstream's).
    pub const FROM_MASTER: &[u8] = b"Sucessful response from master: ";
    /// Prefix of an `ok-c` reply value (typo is upstream's).
    pub const FROM_CLIENT: &[u8] = b"Sucessful response from client: ";
    /// Prefix of the value of any other reply command (typo is upstream's).
    pub const UNKNOWN_RESPONSE: &[u8] = b"Unkown response command received: ";
    /// Value upstream's `send_request` returns on timeout.
    pub const TIMEOUT: &[u8] = b"Error sending request: timeout expired.";
    /// Our `err` payload when a `new_str` declares more than the configured bound (HEAD's text; 3.9.5
    /// has no bound).
    pub const STRING_TOO_LARGE: &[u8] = b"Requested size exceeds maximum allowed limit";
    /// Our `err` payload when a `new_str` would make the strings held exceed their aggregate bound.
    pub const STRINGS_TOTAL_TOO_LARGE: &[u8] = b"Strings in flight exceed the allowed total size";
    /// Our `err` payload when a peer has more requests awaiting our reply than the configured bound.
    pub const TOO_MANY_REQUESTS: &[u8] = b"Too many requests awaiting a reply";
    /// Our `err` payload when a peer opens more transfers than the configured bound.
    pub const TOO_MANY_TRANSFERS: &[u8] = b"Too many concurrent transfers";
    /// Our `err` payload to a `new_file` beyond the node's budget of files received at once (all
    /// links together, or this link's share of it): the node holds descriptors for each.
    pub const FILE_BUDGET_EXHAUSTED: &[u8] =
        b"Too many files being received by this node, try again later";
    /// Our `err` payload to a `new_str` beyond the node's memory budget (all links together, or
    /// this link's share of it).
    pub const MEMORY_BUDGET_EXHAUSTED: &[u8] =
        b"Not enough memory on this node for the string, try again later";
    /// Our `err` payload to a request refused before `hello` (upstream has no such gate).
    pub const BEFORE_HELLO: &[u8] = b"Command not allowed before hello";
    /// Our `err` payload to a `new_file` outside the link's directory (`queue/cluster/<name>/`).
    pub const FILE_OUTSIDE_INBOX: &[u8] =
        b"Error: file path refused (outside this node's directory)";
    /// Our `err` payload when a file grows beyond the configured bound.
    pub const FILE_TOO_LARGE: &[u8] = b"File exceeds maximum allowed size";
}

/// Python's `repr()` of a `bytes` object, byte for byte as CPython 3 renders it.
///
/// Quote choice: single quotes, unless the value contains `'` and no `"` (then double quotes).
/// Escapes: `\\`, the chosen quote, `\t`, `\n`, `\r`, and `\xNN` (lower-case hex) for every byte
/// below 0x20 or from 0x7f up.
pub fn python_bytes_repr(value: &[u8]) -> String {
    let quote = if value.contains(&b'\'') && !value.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(value.len() + 3);
    out.push('b');
    out.push(char::from(quote));
    for &byte in value {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if byte == quote => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(char::from(quote));
    out
}

/// The `err` payload upstream replies to a command nobody handles:
/// `unknown command '<repr of the command bytes>'`, e.g. `unknown command 'b'foo''`.
pub fn unknown_command_text(command: &[u8]) -> Vec<u8> {
    format!("unknown command '{}'", python_bytes_repr(command)).into_bytes()
}

/// The text of Python's `str(KeyError(key))` for a bytes key: its repr, e.g. `b'999'`. Upstream
/// replies this when `str_upd`/`file_upd`/`file_end` name an unknown string id or file.
pub fn key_error_text(key: &[u8]) -> Vec<u8> {
    python_bytes_repr(key).into_bytes()
}

/// Python's `ValueError` text for `a, b = data.split(b" ", 1)` on data without a space.
pub const UNPACK_2_GOT_1: &[u8] = b"not enough values to unpack (expected 2, got 1)";

/// Python's `ValueError` text for `int(data)` when `data` is not a decimal number.
pub fn invalid_int_text(value: &[u8]) -> Vec<u8> {
    format!(
        "invalid literal for int() with base 10: {}",
        python_bytes_repr(value)
    )
    .into_bytes()
}

/// A request of the common layer, parsed from its command and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommonRequest {
    /// `echo <payload>`.
    Echo(Bytes),
    /// `echo-c <payload>` (keepalive towards the server side).
    EchoC(Bytes),
    /// `echo-m <payload>` (echo towards the client side).
    EchoM(Bytes),
    /// `new_file <path>`.
    NewFile {
        /// Path as sent (upstream: relative to the install root, with a leading `/`).
        path: Bytes,
    },
    /// `file_upd <path> SP <chunk>`.
    FileUpd {
        /// Path naming an open transfer.
        path: Bytes,
        /// Raw chunk bytes.
        chunk: Bytes,
    },
    /// `file_end <path> SP <sha256>`.
    FileEnd {
        /// Path naming an open transfer.
        path: Bytes,
        /// The digest bytes as sent (32 raw bytes from a well-behaved peer).
        digest: Bytes,
    },
    /// `new_str <decimal length>`.
    NewStr {
        /// Declared total length.
        len: u64,
    },
    /// `str_upd <id> SP <chunk>`.
    StrUpd {
        /// String id as sent (decimal ASCII).
        id: Bytes,
        /// Raw chunk bytes.
        chunk: Bytes,
    },
}

/// Splits `payload` at its first space, as upstream's `data.split(b" ", 1)`; `Err` carries the
/// `ValueError` text upstream replies when there is no space.
fn split_first_space(payload: &Bytes) -> Result<(Bytes, Bytes), Vec<u8>> {
    match payload.iter().position(|&b| b == b' ') {
        Some(at) => Ok((payload.slice(..at), payload.slice(at + 1..))),
        None => Err(UNPACK_2_GOT_1.to_vec()),
    }
}

/// Parses a decimal ASCII length. Upstream uses `int()`, which also accepts surrounding
/// whitespace, `_` separators and a sign; we accept digits only (a negative or decorated length is
/// refused, with upstream's text for non-numbers).
pub fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

impl CommonRequest {
    /// Parses a common-layer request. `Ok(None)`: the command is not one of the common layer.
    /// `Err(text)`: the command is common but the payload is malformed; `text` is the exact `err`
    /// payload upstream would reply.
    pub fn parse(command: &[u8], payload: &Bytes) -> Result<Option<CommonRequest>, Vec<u8>> {
        let request = match command {
            cmd::ECHO => CommonRequest::Echo(payload.clone()),
            cmd::ECHO_C => CommonRequest::EchoC(payload.clone()),
            cmd::ECHO_M => CommonRequest::EchoM(payload.clone()),
            cmd::NEW_FILE => CommonRequest::NewFile {
                path: payload.clone(),
            },
            cmd::FILE_UPD => {
                let (path, chunk) = split_first_space(payload)?;
                CommonRequest::FileUpd { path, chunk }
            }
            cmd::FILE_END => {
                let (path, digest) = split_first_space(payload)?;
                CommonRequest::FileEnd { path, digest }
            }
            cmd::NEW_STR => match parse_decimal(payload) {
                Some(len) => CommonRequest::NewStr { len },
                None => return Err(invalid_int_text(payload)),
            },
            cmd::STR_UPD => {
                let (id, chunk) = split_first_space(payload)?;
                CommonRequest::StrUpd { id, chunk }
            }
            _ => return Ok(None),
        };
        Ok(Some(request))
    }
}

/// A reply received for one of our requests, as `(command, payload)`, before upstream's
/// `process_response` folded it into one byte string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// `ok` (or `ok `): the payload.
    Ok(Bytes),
    /// `err`: the peer's error text (raw, without upstream's `Error processing request: ` prefix).
    Err(Bytes),
    /// `ok-m`: the master's answer to our `echo-c`.
    OkFromMaster(Bytes),
    /// `ok-c`: the client's answer to our `echo-m`.
    OkFromClient(Bytes),
    /// Any other reply command.
    Other {
        /// The reply command as parsed.
        command: Bytes,
        /// Its payload.
        payload: Bytes,
    },
}

impl Reply {
    /// Classifies a reply by its parsed command.
    pub fn from_wire(command: &[u8], payload: Bytes) -> Reply {
        match command {
            cmd::OK => Reply::Ok(payload),
            cmd::ERR => Reply::Err(payload),
            cmd::OK_M => Reply::OkFromMaster(payload),
            cmd::OK_C => Reply::OkFromClient(payload),
            other => Reply::Other {
                command: Bytes::copy_from_slice(other),
                payload,
            },
        }
    }

    /// The payload of the reply, whatever its command.
    pub fn payload(&self) -> &Bytes {
        match self {
            Reply::Ok(p) | Reply::Err(p) | Reply::OkFromMaster(p) | Reply::OkFromClient(p) => p,
            Reply::Other { payload, .. } => payload,
        }
    }

    /// The value upstream 3.9.5's `process_response` returns to the waiting caller (PROTOCOL.md
    /// §1.7, §3.1), typos included. Useful where that value reaches the wire again (e.g. a DAPI
    /// answer relayed to a local client).
    pub fn upstream_value(&self) -> Vec<u8> {
        match self {
            Reply::Ok(p) => p.to_vec(),
            Reply::Err(p) => process_error_from_peer(p),
            Reply::OkFromMaster(p) => [text::FROM_MASTER, p].concat(),
            Reply::OkFromClient(p) => [text::FROM_CLIENT, p].concat(),
            Reply::Other { command, .. } => [text::UNKNOWN_RESPONSE, command].concat(),
        }
    }

    /// Upstream's success test: a reply is a failure iff its value starts with `Error` (every `err`
    /// reply that is not a `WazuhException`, and an `ok` whose payload starts with `Error`).
    pub fn is_upstream_error(&self) -> bool {
        self.upstream_value().starts_with(b"Error")
    }
}

/// 3.9.5 `process_error_from_peer`: `WazuhException <code> <message>` becomes
/// `WazuhException <code> <text after the first ':' of message>` (keeping its leading space, hence
/// upstream's double space); anything else gets the `Error processing request: ` prefix.
pub fn process_error_from_peer(payload: &[u8]) -> Vec<u8> {
    if payload.starts_with(b"WazuhException") {
        let mut parts = payload.splitn(3, |&b| b == b' ');
        let _kind = parts.next();
        let code = parts.next().unwrap_or_default();
        let message = parts.next().unwrap_or_default();
        // Python: message.split(':', 1)[1] when there is a ':'; without one upstream raises
        // IndexError inside its error path — we keep the whole message instead.
        let kept = match message.iter().position(|&b| b == b':') {
            Some(at) => &message[at + 1..],
            None => message,
        };
        [b"WazuhException ".as_slice(), code, b" ", kept].concat()
    } else {
        [text::ERROR_PROCESSING, payload].concat()
    }
}

/// The `hello` payload: `<node_name> SP <cluster_name> SP <node_type> SP <version>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Worker node name.
    pub name: Bytes,
    /// Cluster name.
    pub cluster: Bytes,
    /// Node type (`worker`).
    pub node_type: Bytes,
    /// Software version (`3.9.5`).
    pub version: Bytes,
}

impl Hello {
    /// Builds the payload bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        [
            &self.name[..],
            b" ",
            &self.cluster,
            b" ",
            &self.node_type,
            b" ",
            &self.version,
        ]
        .concat()
    }

    /// Parses a payload the way upstream does (`data.split(b" ")` unpacked into four names);
    /// `Err` carries Python's exact `ValueError` text, which upstream replies as `err`.
    pub fn parse(payload: &Bytes) -> Result<Hello, Vec<u8>> {
        let fields: Vec<Bytes> = {
            let mut out = Vec::with_capacity(4);
            let mut start = 0;
            for (i, &b) in payload.iter().enumerate() {
                if b == b' ' {
                    out.push(payload.slice(start..i));
                    start = i + 1;
                    if out.len() > 4 {
                        break;
                    }
                }
            }
            if out.len() <= 4 {
                out.push(payload.slice(start..));
            }
            out
        };
        match <[Bytes; 4]>::try_from(fields) {
            Ok([name, cluster, node_type, version]) => Ok(Hello {
                name,
                cluster,
                node_type,
                version,
            }),
            Err(fields) if fields.len() < 4 => Err(format!(
                "not enough values to unpack (expected 4, got {})",
                fields.len()
            )
            .into_bytes()),
            Err(_) => Err(b"too many values to unpack (expected 4)".to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_cpython() {
        assert_eq!(python_bytes_repr(b"foo"), "b'foo'");
        assert_eq!(python_bytes_repr(b""), "b''");
        assert_eq!(python_bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(python_bytes_repr(b"a'b\"c"), "b'a\\'b\"c'");
        assert_eq!(python_bytes_repr(b"\"q\""), "b'\"q\"'");
        assert_eq!(python_bytes_repr(b"\t\n\r\\"), "b'\\t\\n\\r\\\\'");
        assert_eq!(
            python_bytes_repr(&[0, 0x1f, 0x7f, 0x80, 0xff]),
            "b'\\x00\\x1f\\x7f\\x80\\xff'"
        );
        assert_eq!(python_bytes_repr(b" ~"), "b' ~'");
    }

    #[test]
    fn unknown_command_matches_vector_text() {
        assert_eq!(unknown_command_text(b"foo"), b"unknown command 'b'foo''");
        assert_eq!(unknown_command_text(b"err"), b"unknown command 'b'err''");
    }

    #[test]
    fn parse_common_requests() {
        let p = Bytes::from_static(b"/a/b chunk with spaces");
        assert_eq!(
            CommonRequest::parse(b"file_upd", &p),
            Ok(Some(CommonRequest::FileUpd {
                path: Bytes::from_static(b"/a/b"),
                chunk: Bytes::from_static(b"chunk with spaces")
            }))
        );
        assert_eq!(
            CommonRequest::parse(b"file_upd", &Bytes::from_static(b"nospace")),
            Err(UNPACK_2_GOT_1.to_vec())
        );
        assert_eq!(
            CommonRequest::parse(b"new_str", &Bytes::from_static(b"1000")),
            Ok(Some(CommonRequest::NewStr { len: 1000 }))
        );
        assert_eq!(
            CommonRequest::parse(b"new_str", &Bytes::from_static(b"x1")),
            Err(b"invalid literal for int() with base 10: b'x1'".to_vec())
        );
        assert_eq!(CommonRequest::parse(b"hello", &Bytes::new()), Ok(None));
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn reply_values_match_upstream() {
        let p = Bytes::from_static(b"keepalive");
        assert_eq!(
            Reply::from_wire(b"ok-m", p.clone()).upstream_value(),
            b"Sucessful response from master: keepalive"
        );
        assert_eq!(
            Reply::from_wire(b"ok-c", p.clone()).upstream_value(),
            b"Sucessful response from client: keepalive"
        );
        assert_eq!(
            Reply::from_wire(b"dapi", p.clone()).upstream_value(),
            b"Unkown response command received: dapi"
        );
        let err = Reply::from_wire(b"err", Bytes::from_static(b"boom"));
        assert_eq!(err.upstream_value(), b"Error processing request: boom");
        assert!(err.is_upstream_error());
        assert!(!Reply::from_wire(b"ok", p).is_upstream_error());
        assert_eq!(
            process_error_from_peer(b"WazuhException 3022 Unknown node ID: worker-2"),
            b"WazuhException 3022  worker-2"
        );
    }

    #[test]
    fn hello_parse_texts() {
        let ok = Hello::parse(&Bytes::from_static(b"worker1 wazuh worker 3.9.5")).unwrap();
        assert_eq!(ok.to_payload(), b"worker1 wazuh worker 3.9.5");
        assert_eq!(
            Hello::parse(&Bytes::from_static(b"worker1 wazuh worker")),
            Err(b"not enough values to unpack (expected 4, got 3)".to_vec())
        );
        assert_eq!(
            Hello::parse(&Bytes::from_static(b"a b c d e f")),
            Err(b"too many values to unpack (expected 4)".to_vec())
        );
    }
}
