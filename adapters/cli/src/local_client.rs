//! The local-socket client (upstream's `local_client.py`), shared by `control` and `demo`: one
//! request to a node over `<wazuh-path>/queue/cluster/c-internal.sock` (plaintext, the 20-byte
//! framing, no `hello`, PROTOCOL.md §15) through the protocol crate's [`Connection`].
//!
//! On a master the answer is the reply itself; on a worker the reply is `ok` `Sent request to
//! master node` and the document arrives later as a `control_res` request, which is acknowledged
//! with `Response received` as upstream's local client does.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Event, Side, WallClock};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

/// The commands `control` sends (checked at compile time).
pub const GET_NODES: Command = Command::from_static(b"get_nodes");
pub const GET_HEALTH: Command = Command::from_static(b"get_health");
pub const GET_CONFIG: Command = Command::from_static(b"get_config");
/// The request carrying a worker's forwarded answer.
const CONTROL_RES: Command = Command::from_static(b"control_res");
/// A worker's reply when it forwards the request to its master.
const SENT_TO_MASTER: &[u8] = b"Sent request to master node";
/// What upstream's local client answers to `control_res`.
const RESPONSE_RECEIVED: &[u8] = b"Response received";

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
    /// The node answered with an error.
    #[error("Error: {message}")]
    Node {
        /// The node's error text.
        message: String,
    },
    /// The node's answer is not the JSON document expected.
    #[error("unexpected answer from the node: {message}")]
    BadAnswer {
        /// What is wrong with it.
        message: String,
    },
}

/// Sends `command` with `payload` to the node at `socket` and parses its answer as JSON.
pub fn request_json(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Duration,
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
/// the document it produces, whether in the reply (master) or in a later `control_res` request
/// (worker).
pub fn request(
    socket: &Path,
    command: Command,
    payload: &[u8],
    timeout: Duration,
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
    let deadline = start + timeout;
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
        if now >= deadline {
            return Err(ClientError::Timeout { after: timeout });
        }
        let until = connection
            .poll_timeout()
            .map_or(deadline, |at| at.min(deadline));
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        stream
            .set_read_timeout(Some(wait))
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

/// The connection core configured as upstream's local client: no key, no `hello`, and the two
/// requests a node sends it (`control_res` with the document, `err` with an error) claimed.
fn local_client(now: Instant, timeout: Duration) -> Connection {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(now, unix_secs));
    config.require_hello = false;
    config.request_timeout = timeout;
    config.claimed_commands = [CONTROL_RES, Command::ERR].into();
    Connection::new(config, Side::Client, Rng::from_seed(os_seed()), now)
}

/// What one event means for the exchange: `Some(document)` when it is the answer.
fn on_event(connection: &mut Connection, event: Event) -> Result<Option<Vec<u8>>, ClientError> {
    match event {
        // A worker forwards the question to its master: the answer comes as control_res.
        Event::Response {
            reply: Reply::Ok(payload),
            ..
        } if payload == SENT_TO_MASTER => Ok(None),
        Event::Response {
            reply: Reply::Ok(payload),
            ..
        } => Ok(Some(payload.to_vec())),
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
            connection
                .reply(Instant::now(), counter, Command::OK, RESPONSE_RECEIVED)
                .map_err(protocol_error)?;
            // Upstream's local client takes a control_res starting with "Error" as a failure.
            if command == Command::ERR || payload.starts_with(b"Error") {
                Err(ClientError::Node {
                    message: String::from_utf8_lossy(&payload).into_owned(),
                })
            } else {
                Ok(Some(payload.to_vec()))
            }
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
        fn receive(&mut self) -> Option<Frame> {
            let mut buffer = [0u8; 4096];
            loop {
                let n = self.stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
                let mut input = &buffer[..n];
                if let Some(frame) = self.decoder.decode_slice(&mut input).unwrap() {
                    return Some(frame);
                }
            }
        }

        fn send(&mut self, counter: u32, command: &'static [u8], payload: &[u8]) {
            let mut out = BytesMut::new();
            let command = Command::from_static(command);
            encode_frame(Profile::V3_9, counter, &command, payload, &mut out).unwrap();
            self.stream.write_all(&out).unwrap();
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
            request(socket, GET_NODES, NODES_PAYLOAD, Duration::from_secs(10))
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
        // Upstream's local client takes a control_res starting with "Error" as a failure.
        let forwarded = ask(|node, request| {
            node.send(request.counter, b"ok", SENT_TO_MASTER);
            node.send(3, b"control_res", b"Error 3012: unknown node");
            node.receive();
        });
        assert_eq!(
            forwarded,
            Err(ClientError::Node {
                message: "Error 3012: unknown node".to_owned()
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
        let answer = request(&socket, GET_HEALTH, b"null", Duration::from_secs(1));
        assert!(
            matches!(&answer, Err(ClientError::NoSocket { path, .. }) if *path == socket),
            "{answer:?}"
        );
    }

    #[test]
    fn an_answer_that_is_not_json_is_a_bad_answer() {
        let answer = with_node(
            |node, request| node.send(request.counter, b"ok", b"not json"),
            |socket| request_json(socket, GET_NODES, NODES_PAYLOAD, Duration::from_secs(10)),
        );
        assert!(
            matches!(answer, Err(ClientError::BadAnswer { .. })),
            "{answer:?}"
        );
    }
}
