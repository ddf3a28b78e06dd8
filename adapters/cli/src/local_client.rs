//! The local-socket client (upstream's `local_client.py`), shared by `control`, `api` and `demo`:
//! one request to a node over `<wazuh-path>/queue/cluster/c-internal.sock` (plaintext, the
//! 20-byte framing, no `hello`, PROTOCOL.md §15) through the protocol crate's [`Connection`],
//! and the JSON document it produces.
//!
//! Where the document comes from, as 3.9.5's `LocalClient.send_api_request` and
//! `LocalClientHandler.process_request` take it:
//!
//! ```text
//!   get_nodes / get_health / get_config ──► ok <document>                (a master)
//!                                       └─► ok Sent request to master node, later
//!                                           control_res <document>       (a worker)
//!   dapi / dapi_forward ──► ok Added request to API requests queue | Request forwarded to …,
//!                           later new_str + str_upd (a long string), then dapi_res <string id>
//!                                 or dapi_err <text>                 → {"error": 3009, "message": text}
//!                       └─► ok There are no connected worker nodes   → {}
//!   any command        ──► err <text>                                → ClientError::Node
//! ```
//!
//! After `dapi` and `dapi_forward` every `ok` reply but the last one above is an acknowledgement
//! and the answer follows (upstream waits by command, not by text); after any other command only
//! `Sent request to master node` is. Each later request is acknowledged as upstream's client does
//! (`ok` `Distributed api response received` / `Response received`), or refused with `err`
//! `Error processing request: …` when it carries an error text or names a string that never
//! came, which then becomes the 3009 document (upstream's `process_error_from_peer`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::Value;
use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Event, Side, WallClock};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::dapi::{JsonObject, JsonValue};

/// The local socket under an install root.
const SOCKET_RELATIVE_PATH: &str = "queue/cluster/c-internal.sock";

/// `get_nodes <kwargs>`: the cluster's nodes.
pub const GET_NODES: Command = Command::from_static(b"get_nodes");
/// `get_health <filter>`: the cluster's health.
pub const GET_HEALTH: Command = Command::from_static(b"get_health");
/// `get_config`: the node's cluster configuration.
pub const GET_CONFIG: Command = Command::from_static(b"get_config");
/// `dapi <request>`: a distributed API request, answered later.
pub const DAPI: Command = Command::from_static(b"dapi");
/// `dapi_forward <node> <request>` (a master only): a request for one worker (`fw_all_nodes`:
/// every worker), answered later.
pub const DAPI_FORWARD: Command = Command::from_static(b"dapi_forward");

/// The request carrying a worker's forwarded answer to `get_nodes` / `get_health` (and to the
/// three cluster routes of `dapi`).
const CONTROL_RES: Command = Command::from_static(b"control_res");
/// The request naming the long string that holds a distributed API answer.
const DAPI_RES: Command = Command::from_static(b"dapi_res");
/// The request carrying a distributed API failure text.
const DAPI_ERR: Command = Command::from_static(b"dapi_err");
/// A worker's reply when it forwards the request to its master.
const SENT_TO_MASTER: &[u8] = b"Sent request to master node";
/// A master's reply to `dapi_forward fw_all_nodes` without workers: upstream takes it as the
/// answer `{}`.
const NO_WORKERS: &[u8] = b"There are no connected worker nodes";
/// What upstream's local client answers to `control_res`, `dapi_err` and `err`.
const RESPONSE_RECEIVED: &[u8] = b"Response received";
/// What upstream's local client answers to `dapi_res`.
const DAPI_RESPONSE_RECEIVED: &[u8] = b"Distributed api response received";
/// What upstream's local client puts before the text of a later request it refuses.
const ERROR_PROCESSING: &str = "Error processing request: ";
/// Upstream's code for "Error executing distributed API request": the error of every document
/// the client makes of a failure text.
const DAPI_FAILED: i64 = 3009;

/// Which node to ask: the command-line options of every command that talks to a node's local
/// socket.
#[derive(Debug, Clone, Args)]
pub struct NodeSocketArgs {
    /// Install root of the node to ask: its socket is DIR/queue/cluster/c-internal.sock
    /// (control -i also reads the cluster name from DIR/etc/ossec.conf).
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    pub wazuh_path: PathBuf,

    /// The node's local socket, instead of the one under --wazuh-path (control -i then asks the
    /// node for the cluster name).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl NodeSocketArgs {
    /// The node's local socket: `--socket`, else the one under `--wazuh-path`.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.wazuh_path.join(SOCKET_RELATIVE_PATH))
    }
}

/// Why a node's answer could not be had over its local socket.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket path.
    #[error("is the node running? no socket at {} ({reason})", .path.display())]
    NoSocket {
        /// The socket path tried.
        path: PathBuf,
        /// The system's words.
        reason: String,
    },
    /// A read or write failed.
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's words.
        message: String,
    },
    /// The node did not answer in time.
    #[error("no answer from the node within {} s", .after.as_secs())]
    Timeout {
        /// The time waited.
        after: Duration,
    },
    /// The node closed the connection before answering.
    #[error("the node closed the connection before answering{}", match reason {
        Some(reason) => format!(": {reason}"),
        None => String::new(),
    })]
    Closed {
        /// Why, when the connection knows.
        reason: Option<String>,
    },
    /// The node refused the request (an `err` reply): nothing else comes.
    #[error("Error: {message}")]
    Node {
        /// The reply's text, e.g. `WazuhException 3022 Unknown node ID: worker9`.
        message: String,
    },
    /// The node's answer is not the JSON document expected.
    #[error("unexpected answer from the node: {message}")]
    BadAnswer {
        /// What is wrong with it.
        message: String,
    },
}

impl ClientError {
    /// The answer upstream's local client makes of the node's refusal
    /// (`process_error_from_peer`): `WazuhException <code> <message>` is `{"error": code,
    /// "message": message}`, any other text `{"error": 3009, "message": text}`. `None` for the
    /// other errors, where the node gave no answer.
    pub fn refusal_document(&self) -> Option<Vec<u8>> {
        let ClientError::Node { message } = self else {
            return None;
        };
        let coded = message
            .strip_prefix("WazuhException ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(code, text)| Some((code.parse().ok()?, text)));
        Some(match coded {
            Some((code, text)) => error_document(code, text),
            None => error_document(DAPI_FAILED, message),
        })
    }
}

/// Sends `command` with `payload` to the node at `socket` and parses its answer as JSON.
pub fn request_json(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Option<Duration>,
) -> Result<Value, ClientError> {
    let answer = request(socket, command, payload, timeout)?;
    serde_json::from_slice(&answer).map_err(|error| ClientError::BadAnswer {
        message: format!(
            "{error} in {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ),
    })
}

/// One local-client exchange (upstream `LocalClient.execute`): connect, send one request, return
/// the document it produces (see the [module documentation](self)), waiting at most `timeout`
/// for it (`None`: as long as the node keeps the connection, upstream's `wait_for_complete`).
pub fn request(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Option<Duration>,
) -> Result<Vec<u8>, ClientError> {
    tracing::debug!(socket = %socket.display(), %command, "asking the node");
    let mut stream = UnixStream::connect(socket).map_err(|error| match error.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NoSocket {
            path: socket.to_owned(),
            reason: error.to_string(),
        },
        _ => io_error(&format!("cannot connect to {}", socket.display()), &error),
    })?;
    let start = Instant::now();
    let deadline = timeout.map(|timeout| start + timeout);
    let mut connection = local_client(start, timeout);
    connection
        .send_request(start, command, payload)
        .map_err(protocol_error)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        flush(&mut connection, &mut stream)?;
        while let Some(event) = connection.poll_event() {
            if let Some(answer) = on_event(&mut connection, event)? {
                flush(&mut connection, &mut stream)?;
                return Ok(answer);
            }
        }
        let now = Instant::now();
        if let (Some(deadline), Some(timeout)) = (deadline, timeout)
            && now >= deadline
        {
            return Err(ClientError::Timeout { after: timeout });
        }
        // Without a deadline nor a timer of the connection's, block until the node speaks.
        let wake_at = match (connection.poll_timeout(), deadline) {
            (Some(at), Some(deadline)) => Some(at.min(deadline)),
            (at, deadline) => at.or(deadline),
        };
        let wait = wake_at.map(|at| {
            at.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        stream
            .set_read_timeout(wait)
            .map_err(|error| io_error("cannot set the socket timeout", &error))?;
        match stream.read(&mut buffer) {
            Ok(0) => connection.close(),
            Ok(n) => connection.handle_input(Instant::now(), &buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                connection.handle_timeout(Instant::now());
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error("cannot read from the node", &error)),
        }
    }
}

/// The connection core configured as upstream's local client: no key, no `hello`, and the
/// requests a node sends it claimed. The reply to our request is awaited `timeout`, or
/// upstream's `timeout_cluster_request` (the core's default) without one.
fn local_client(now: Instant, timeout: Option<Duration>) -> Connection {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(now, unix_secs));
    config.require_hello = false;
    if let Some(timeout) = timeout {
        config.request_timeout = timeout;
    }
    config.claimed_commands = [CONTROL_RES, DAPI_RES, DAPI_ERR, Command::ERR].into();
    Connection::new(config, Side::Client, Rng::from_seed(os_seed()), now)
}

/// What one event means for the exchange: `Some(document)` when it is the answer.
fn on_event(connection: &mut Connection, event: Event) -> Result<Option<Vec<u8>>, ClientError> {
    match event {
        Event::Response {
            command,
            reply: Reply::Ok(payload),
            ..
        } => Ok(reply_document(&command, &payload)),
        Event::Response {
            reply: Reply::Err(payload),
            ..
        } => Err(ClientError::Node {
            message: String::from_utf8_lossy(&payload).into_owned(),
        }),
        Event::Response { reply, .. } => Err(ClientError::BadAnswer {
            message: format!("reply {reply:?}"),
        }),
        Event::Request {
            counter,
            command,
            payload,
        } => {
            let answer = later_answer(connection, &command, &payload);
            connection
                .reply(Instant::now(), counter, answer.reply, &answer.reply_text)
                .map_err(protocol_error)?;
            Ok(Some(answer.document))
        }
        Event::TimedOut { .. } => Err(ClientError::Timeout {
            after: connection.config().request_timeout,
        }),
        Event::Closed { error } => Err(ClientError::Closed {
            reason: error.map(|error| error.to_string()),
        }),
        Event::Aborted { .. } => Err(ClientError::Closed { reason: None }),
        _ => Ok(None),
    }
}

/// What the node's `ok` reply to `command` means: the document, or `None` when the answer
/// follows as a request of the node's (upstream's `send_api_request`).
fn reply_document(command: &Command, payload: &[u8]) -> Option<Vec<u8>> {
    if payload == NO_WORKERS {
        return Some(b"{}".to_vec());
    }
    let answer_follows = *command == DAPI || *command == DAPI_FORWARD || payload == SENT_TO_MASTER;
    (!answer_follows).then(|| payload.to_vec())
}

/// A request of the node's that carries the answer: the document, and the reply upstream's
/// local client gives it.
struct LaterAnswer {
    document: Vec<u8>,
    reply: Command,
    reply_text: Vec<u8>,
}

impl LaterAnswer {
    /// The document, acknowledged with `ok` `text`.
    fn taken(document: Vec<u8>, text: &[u8]) -> LaterAnswer {
        LaterAnswer {
            document,
            reply: Command::OK,
            reply_text: text.to_vec(),
        }
    }

    /// A failure `text` the node sent (`dapi_err`, `err`): the 3009 document, acknowledged.
    fn failure(text: &str) -> LaterAnswer {
        LaterAnswer::taken(error_document(DAPI_FAILED, text), RESPONSE_RECEIVED)
    }

    /// An answer that cannot be taken for `text`: the 3009 document, refused with `err`.
    fn refused(text: &str) -> LaterAnswer {
        LaterAnswer {
            document: error_document(DAPI_FAILED, text),
            reply: Command::ERR,
            reply_text: format!("{ERROR_PROCESSING}{text}").into_bytes(),
        }
    }
}

/// The answer the node's request `command` `payload` carries (upstream's
/// `LocalClientHandler.process_request`; only claimed commands arrive here).
fn later_answer(connection: &mut Connection, command: &Command, payload: &[u8]) -> LaterAnswer {
    let text = String::from_utf8_lossy(payload);
    if *command == DAPI_RES || *command == CONTROL_RES {
        if text.starts_with("Error") {
            return LaterAnswer::refused(&text);
        }
        if *command == CONTROL_RES {
            return LaterAnswer::taken(payload.to_vec(), RESPONSE_RECEIVED);
        }
        return match text.parse().ok().and_then(|id| connection.take_string(id)) {
            Some(string) => LaterAnswer::taken(string.to_vec(), DAPI_RESPONSE_RECEIVED),
            None => LaterAnswer::refused(&format!("Error receiving string: ID {text} not found.")),
        };
    }
    // dapi_err, err.
    LaterAnswer::failure(&text)
}

/// `{"error": code, "message": message}`, as upstream's local client writes it with
/// `json.dumps`.
fn error_document(code: i64, message: &str) -> Vec<u8> {
    let mut document = JsonObject::new();
    document.insert("error", JsonValue::Int(code));
    document.insert("message", JsonValue::from(message));
    document.to_python_json().into_bytes()
}

/// Writes everything the connection has queued.
fn flush(connection: &mut Connection, stream: &mut UnixStream) -> Result<(), ClientError> {
    while let Some(bytes) = connection.poll_transmit() {
        stream
            .write_all(&bytes)
            .map_err(|error| io_error("cannot write to the node", &error))?;
    }
    Ok(())
}

fn io_error(context: &str, error: &std::io::Error) -> ClientError {
    ClientError::Io {
        context: context.to_owned(),
        message: error.to_string(),
    }
}

/// A command of the protocol core refused (`send_request` or `reply`: each has its own error).
fn protocol_error(error: impl std::error::Error) -> ClientError {
    ClientError::BadAnswer {
        message: error.to_string(),
    }
}

/// A seed from the OS for the connection's counters (the adapter's job, not the core's).
fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .is_ok();
    if from_urandom {
        u64::from_le_bytes(bytes)
    } else {
        // Only the request counter depends on it: time and pid are unpredictable enough.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        (nanos as u64) ^ (u64::from(std::process::id()) << 32)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    use bytes::BytesMut;
    use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, Frame, FrameDecoder, encode_frame};

    use super::*;

    /// The node's end of one connection: reads the client's frames, writes its own.
    struct NodeEnd {
        stream: UnixStream,
        decoder: FrameDecoder,
    }

    impl NodeEnd {
        /// The client's next frame (`None` once it closed).
        fn receive(&mut self) -> Option<Frame> {
            let mut buffer = [0u8; 4096];
            loop {
                let n = self.stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
                let mut input = &buffer[..n];
                if let Some(frame) = self.decoder.decode_slice(&mut input).unwrap() {
                    assert!(input.is_empty(), "one frame at a time from the client");
                    return Some(frame);
                }
            }
        }

        /// The client's reply to our request `counter`: its command and payload.
        fn receive_reply(&mut self, counter: u32) -> (Command, String) {
            let frame = self.receive().expect("the client's reply");
            assert_eq!(frame.counter, counter);
            let text = String::from_utf8(frame.payload.to_vec()).unwrap();
            (frame.command, text)
        }

        fn send(&mut self, counter: u32, command: &'static [u8], payload: &[u8]) {
            let mut out = BytesMut::new();
            let command = Command::from_static(command);
            encode_frame(Profile::V3_9, counter, &command, payload, &mut out).unwrap();
            self.stream.write_all(&out).unwrap();
        }

        /// Sends `text` as a long string (`new_str`, one `str_upd`) from counter `counter` on,
        /// as a 3.9.5 local server does; returns the id the client gave it.
        fn send_string(&mut self, counter: u32, text: &str) -> String {
            self.send(counter, b"new_str", text.len().to_string().as_bytes());
            let (command, id) = self.receive_reply(counter);
            assert_eq!(command, Command::OK);
            self.send(counter + 1, b"str_upd", format!("{id} {text}").as_bytes());
            assert_eq!(
                self.receive_reply(counter + 1),
                (Command::OK, "Chunk received".to_owned())
            );
            id
        }
    }

    /// Runs `client` against a node on a fresh socket that serves the connection with `node`
    /// (given the client's request).
    fn with_node<T>(
        node: impl FnOnce(&mut NodeEnd, Frame) + Send + 'static,
        client: impl FnOnce(&Path) -> T,
    ) -> T {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("c-internal.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let serving: JoinHandle<()> = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
            let mut end = NodeEnd { stream, decoder };
            let request = end.receive().expect("a request");
            node(&mut end, request);
        });
        let answer = client(&socket);
        serving.join().unwrap();
        answer
    }

    /// A `get_nodes` payload (what it says does not matter to the client).
    const NODES_PAYLOAD: &[u8] = br#"{"filter_node": null}"#;

    /// `get_nodes` asked of a node that serves it with `node`.
    fn ask(
        node: impl FnOnce(&mut NodeEnd, Frame) + Send + 'static,
    ) -> Result<Vec<u8>, ClientError> {
        with_node(node, |socket| {
            request(
                socket,
                GET_NODES,
                NODES_PAYLOAD,
                Some(Duration::from_secs(10)),
            )
        })
    }

    #[test]
    fn a_master_answers_in_its_reply() {
        let answer = ask(|node, request| {
            assert_eq!(request.command, GET_NODES);
            assert_eq!(&request.payload[..], NODES_PAYLOAD);
            node.send(request.counter, b"ok", br#"{"items": []}"#);
        });
        assert_eq!(answer.unwrap(), br#"{"items": []}"#);
    }

    #[test]
    fn a_worker_answers_with_control_res_which_is_acknowledged() {
        let answer = ask(|node, request| {
            node.send(request.counter, b"ok", SENT_TO_MASTER);
            node.send(7, b"control_res", b"{}");
            let ack = node.receive().expect("the client's reply");
            assert_eq!((ack.counter, ack.command), (7, Command::OK));
            assert_eq!(&ack.payload[..], RESPONSE_RECEIVED);
        });
        assert_eq!(answer.unwrap(), b"{}");
    }

    #[test]
    fn an_error_from_the_node_is_its_message() {
        let in_reply = ask(|node, request| node.send(request.counter, b"err", b"no master"));
        assert_eq!(
            in_reply,
            Err(ClientError::Node {
                message: "no master".to_owned()
            })
        );
        // Upstream's local client refuses a control_res that is an error text, and answers
        // with the 3009 document made of it.
        let forwarded = ask(|node, request| {
            node.send(request.counter, b"ok", SENT_TO_MASTER);
            node.send(3, b"control_res", b"Error 3012: unknown node");
            assert_eq!(
                node.receive_reply(3),
                (
                    Command::ERR,
                    "Error processing request: Error 3012: unknown node".to_owned()
                )
            );
        });
        assert_eq!(
            String::from_utf8(forwarded.unwrap()).unwrap(),
            r#"{"error": 3009, "message": "Error 3012: unknown node"}"#
        );
    }

    /// `command` `payload` asked of a node that serves it with `node`, waiting `timeout`.
    fn ask_with(
        command: Command,
        payload: &'static [u8],
        timeout: Option<Duration>,
        node: impl FnOnce(&mut NodeEnd, Frame) + Send + 'static,
    ) -> Result<String, ClientError> {
        with_node(node, |socket| request(socket, command, payload, timeout))
            .map(|answer| String::from_utf8(answer).unwrap())
    }

    const AGENTS: &[u8] = br#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#;
    const ANSWER: &str = r#"{"data": {"items": [], "totalItems": 0}, "error": 0}"#;

    #[test]
    fn a_dapi_answer_is_the_string_dapi_res_names_which_is_acknowledged() {
        let answer = ask_with(
            DAPI,
            AGENTS,
            Some(Duration::from_secs(10)),
            |node, request| {
                assert_eq!((request.command, &request.payload[..]), (DAPI, AGENTS));
                node.send(
                    request.counter,
                    b"ok",
                    b"Added request to API requests queue",
                );
                let id = node.send_string(40, ANSWER);
                node.send(42, b"dapi_res", id.as_bytes());
                assert_eq!(
                    node.receive_reply(42),
                    (Command::OK, "Distributed api response received".to_owned())
                );
            },
        );
        assert_eq!(answer.unwrap(), ANSWER);
    }

    #[test]
    fn dapi_forward_waits_for_the_workers_answer_or_takes_no_workers_as_empty() {
        let forward = b"worker1 {\"function\": \"/cluster/node\", \"arguments\": {}}";
        for acknowledgement in [
            &b"Request forwarded to worker node"[..],
            b"Request forwarded to all worker nodes",
        ] {
            let answer = ask_with(DAPI_FORWARD, forward, None, move |node, request| {
                node.send(request.counter, b"ok", acknowledgement);
                let id = node.send_string(7, ANSWER);
                node.send(9, b"dapi_res", id.as_bytes());
                node.receive_reply(9);
            });
            assert_eq!(answer.unwrap(), ANSWER);
        }
        let none = ask_with(DAPI_FORWARD, forward, None, |node, request| {
            node.send(request.counter, b"ok", NO_WORKERS);
        });
        assert_eq!(none.unwrap(), "{}");
    }

    #[test]
    fn a_dapi_request_a_worker_sends_to_its_master_is_answered_with_control_res() {
        let nodes = br#"{"function": "/cluster/nodes", "arguments": {}, "from_cluster": false}"#;
        let answer = ask_with(DAPI, nodes, None, |node, request| {
            node.send(request.counter, b"ok", SENT_TO_MASTER);
            node.send(5, b"control_res", ANSWER.as_bytes());
            assert_eq!(
                node.receive_reply(5),
                (Command::OK, "Response received".to_owned())
            );
        });
        assert_eq!(answer.unwrap(), ANSWER);
    }

    #[test]
    fn dapi_err_and_err_requests_become_the_3009_document() {
        for command in [&b"dapi_err"[..], b"err"] {
            let answer = ask_with(DAPI, AGENTS, None, move |node, request| {
                node.send(
                    request.counter,
                    b"ok",
                    b"Added request to API requests queue",
                );
                let command = Command::new(Profile::V3_9, command).unwrap();
                let mut out = BytesMut::new();
                let text = "Error in distributed API: \"gone\"";
                encode_frame(Profile::V3_9, 11, &command, text.as_bytes(), &mut out).unwrap();
                node.stream.write_all(&out).unwrap();
                assert_eq!(
                    node.receive_reply(11),
                    (Command::OK, "Response received".to_owned())
                );
            });
            assert_eq!(
                answer.unwrap(),
                r#"{"error": 3009, "message": "Error in distributed API: \"gone\""}"#
            );
        }
    }

    #[test]
    fn a_dapi_res_naming_no_string_is_refused_and_becomes_the_3009_document() {
        let answer = ask_with(DAPI, AGENTS, None, |node, request| {
            node.send(
                request.counter,
                b"ok",
                b"Added request to API requests queue",
            );
            node.send(12, b"dapi_res", b"99");
            assert_eq!(
                node.receive_reply(12),
                (
                    Command::ERR,
                    "Error processing request: Error receiving string: ID 99 not found.".to_owned()
                )
            );
        });
        assert_eq!(
            answer.unwrap(),
            r#"{"error": 3009, "message": "Error receiving string: ID 99 not found."}"#
        );
    }

    #[test]
    fn a_dapi_refused_by_the_node_is_its_message() {
        let answer = ask_with(DAPI_FORWARD, b"worker9 {}", None, |node, request| {
            let text = b"WazuhException 3022 Unknown node ID: worker9";
            node.send(request.counter, b"err", text);
        });
        let refusal = answer.unwrap_err();
        assert_eq!(
            refusal,
            ClientError::Node {
                message: "WazuhException 3022 Unknown node ID: worker9".to_owned()
            }
        );
        // As upstream's local client makes it an answer.
        assert_eq!(
            String::from_utf8(refusal.refusal_document().unwrap()).unwrap(),
            r#"{"error": 3022, "message": "Unknown node ID: worker9"}"#
        );
        let other = ClientError::Node {
            message: "Command not allowed before hello".to_owned(),
        };
        assert_eq!(
            String::from_utf8(other.refusal_document().unwrap()).unwrap(),
            r#"{"error": 3009, "message": "Command not allowed before hello"}"#
        );
        let no_answer = ClientError::Closed { reason: None };
        assert_eq!(no_answer.refusal_document(), None);
    }

    #[test]
    fn an_acknowledged_request_whose_answer_never_comes_times_out() {
        let answer = ask_with(
            DAPI,
            AGENTS,
            Some(Duration::from_millis(300)),
            |node, request| {
                node.send(
                    request.counter,
                    b"ok",
                    b"Added request to API requests queue",
                );
                // Hold the connection until the client gives up.
                assert!(node.receive().is_none());
            },
        );
        assert_eq!(
            answer,
            Err(ClientError::Timeout {
                after: Duration::from_millis(300)
            })
        );
    }

    #[test]
    fn a_node_that_closes_without_answering_is_closed() {
        let answer = ask(|_, _| {});
        assert!(
            matches!(answer, Err(ClientError::Closed { .. })),
            "{answer:?}"
        );
    }

    #[test]
    fn no_socket_says_which_path() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let answer = request(&socket, GET_HEALTH, b"null", Some(Duration::from_secs(1)));
        assert!(
            matches!(&answer, Err(ClientError::NoSocket { path, .. }) if *path == socket),
            "{answer:?}"
        );
    }

    #[test]
    fn an_answer_that_is_not_json_is_a_bad_answer() {
        let answer = with_node(
            |node, request| node.send(request.counter, b"ok", b"not json"),
            |socket| {
                request_json(
                    socket,
                    GET_NODES,
                    NODES_PAYLOAD,
                    Some(Duration::from_secs(10)),
                )
            },
        );
        assert!(
            matches!(answer, Err(ClientError::BadAnswer { .. })),
            "{answer:?}"
        );
    }
}
