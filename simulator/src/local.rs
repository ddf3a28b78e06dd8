//! Local clients of the simulated nodes: what `cluster_control` and the API are on a node's Unix
//! socket (plaintext, no `hello`), driven by a scenario. A client sends requests; what comes
//! back is recorded as 3.9.5's local client reads it: the reply to each request, and the answers
//! that come later as requests of the node (`dapi_res` with the string it names, `control_res`,
//! `dapi_err`), each acknowledged as upstream's client acknowledges it.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Event, Side, WallClock};
use wazuh_cluster_protocol::frame::{Command, FrameDecoder};
use wazuh_cluster_protocol::message::Reply;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_sync::roles::PeerId;

use crate::sim::NodeIdx;

/// Identifies one local client of a simulation (in the order they connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalClientId(pub usize);

/// Something a local client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReceived {
    /// The reply to one of its requests: whether it was `ok`, and its payload.
    Reply {
        /// `ok` (else `err`).
        ok: bool,
        /// The payload.
        payload: Bytes,
    },
    /// A later answer: `dapi_res` (the string it names), `control_res` or `dapi_err` (the
    /// payload).
    Answer {
        /// The node's command.
        command: String,
        /// The answer.
        text: Bytes,
    },
}

/// One frame on a local client's socket, decoded (the socket is plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFrame {
    /// Written by the client (else by the node).
    pub from_client: bool,
    /// The command as the receiver reads it.
    pub command: String,
    /// The payload.
    pub payload: Bytes,
}

/// A local client: see the [module documentation](self).
#[derive(Debug)]
pub struct LocalClient {
    pub(crate) node: NodeIdx,
    pub(crate) peer: PeerId,
    conn: Connection,
    received: Vec<LocalReceived>,
    /// Every frame both ways, and the decoders that cut them (node → client, client → node).
    frames: Vec<SocketFrame>,
    decoders: [FrameDecoder; 2],
    closed: bool,
}

impl LocalClient {
    /// A client of node `node`'s local socket, which the node names `peer`.
    pub(crate) fn new(node: NodeIdx, peer: PeerId, seed: u64, now: Instant, unix: u64) -> Self {
        let mut config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(now, unix));
        config.require_hello = false;
        config.claimed_commands = ["control_res", "dapi_res", "dapi_err", "err"]
            .iter()
            .filter_map(|c| Command::new(Profile::V3_9, c.as_bytes()).ok())
            .collect();
        LocalClient {
            node,
            peer,
            conn: Connection::new(config, Side::Client, Rng::from_seed(seed), now),
            received: Vec::new(),
            frames: Vec::new(),
            decoders: [0, 1].map(|_| FrameDecoder::new(Profile::V3_9, u32::MAX)),
            closed: false,
        }
    }

    /// Every frame on the socket so far, both ways, in order.
    pub fn frames(&self) -> &[SocketFrame] {
        &self.frames
    }

    fn log(&mut self, from_client: bool, mut bytes: &[u8]) {
        let decoder = &mut self.decoders[usize::from(from_client)];
        while let Ok(Some(frame)) = decoder.decode_slice(&mut bytes) {
            self.frames.push(SocketFrame {
                from_client,
                command: frame.command.to_string(),
                payload: frame.payload,
            });
        }
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> &[LocalReceived] {
        &self.received
    }

    /// The later answers received so far (`dapi_res` strings, `control_res`, `dapi_err`).
    pub fn answers(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.received.iter().filter_map(|r| match r {
            LocalReceived::Answer { command, text } => Some((command.as_str(), text)),
            LocalReceived::Reply { .. } => None,
        })
    }

    /// Whether the node closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends `command payload`; `false` when the connection refused it (closed, full).
    pub(crate) fn send(&mut self, now: Instant, command: &str, payload: &[u8]) -> bool {
        Command::new(Profile::V3_9, command.as_bytes())
            .ok()
            .is_some_and(|command| self.conn.send_request(now, command, payload).is_ok())
    }

    /// Bytes from the node.
    pub(crate) fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.log(false, bytes);
        self.conn.handle_input(now, bytes);
        while let Some(event) = self.conn.poll_event() {
            self.on_event(now, event);
        }
    }

    /// The node closed the connection.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.conn.close();
    }

    /// What the client writes to the node.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        let bytes = self.conn.poll_transmit()?;
        self.log(true, &bytes);
        Some(bytes)
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Response { reply, .. } => self.received.push(LocalReceived::Reply {
                ok: !matches!(reply, Reply::Err(_)),
                payload: reply.payload().clone(),
            }),
            Event::Request {
                counter,
                command,
                payload,
            } => {
                // 3.9.5 `LocalClientHandler.process_request`.
                let (text, ack): (Bytes, &[u8]) = if command.name() == b"dapi_res" {
                    let id = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|s| s.parse().ok());
                    let string = id.and_then(|id| self.conn.take_string(id));
                    (
                        string.unwrap_or_default(),
                        b"Distributed api response received",
                    )
                } else {
                    (payload, b"Response received")
                };
                let _ = self.conn.reply(now, counter, Command::OK, ack);
                self.received.push(LocalReceived::Answer {
                    command: String::from_utf8_lossy(command.name()).into_owned(),
                    text,
                });
            }
            _ => {}
        }
    }
}
