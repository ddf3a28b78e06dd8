//! Shared helpers of the connection tests: configs, and an in-memory pair of cores (quinn's
//! `Pair`): both sides' output is moved to the other side's input in a chosen split, time jumps to
//! the next `poll_timeout`, and tests can drop or hold bytes to inject faults.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, FileChunkError, Side, TransferId, WallClock,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;
use wazuh_cluster_testkit::origin;

/// Unix time the tests pretend `origin()` is (2026-01-01T00:00:00Z).
pub const ORIGIN_UNIX: u64 = 1_767_225_600;

/// A profile-3.9 config with upstream defaults, `key` ("" = plaintext), the commands a master or
/// worker `Node` would claim (hello, sync permission, dapi...), and no hello gate.
pub fn config(key: &str, t0: Instant) -> ConnectionConfig {
    let key = (!key.is_empty()).then(|| ClusterKey::new(key).expect("valid test key"));
    let claimed = [
        &b"hello"[..],
        b"sync_i_w_m_p",
        b"sync_e_w_m_p",
        b"sync_a_w_m_p",
        b"sync_i_w_m_e",
        b"sync_i_w_m_r",
        b"get_nodes",
        b"dapi",
    ]
    .map(|c| Command::new(Profile::V3_9, c).expect("valid command"));
    let mut config =
        ConnectionConfig::new(Profile::V3_9, key, WallClock::new(t0, ORIGIN_UNIX)).claim(claimed);
    // These tests exercise the transport as upstream serves it (no hello gate); the gate has its
    // own test in pair.rs.
    config.require_hello = false;
    config
}

/// How bytes travel between the two cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each `poll_transmit` blob in one `handle_input`.
    Whole,
    /// One byte per `handle_input` call.
    ByteByByte,
    /// Random pieces of 1..=max bytes (seeded).
    RandomSplit {
        /// Largest piece.
        max: usize,
    },
}

/// Which core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The client (worker) core.
    Client,
    /// The server (master) core.
    Server,
}

/// An outgoing file the pair feeds chunk by chunk on `FileChunkWanted`, as a disk effect would.
#[derive(Debug)]
pub struct FileSource {
    /// The transfer it feeds.
    pub transfer: TransferId,
    /// The whole file.
    pub data: Bytes,
    /// Bytes handed to the core so far.
    pub offset: usize,
}

/// Two cores wired in memory.
pub struct Pair {
    /// The client (worker) core.
    pub client: Connection,
    /// The server (master) core.
    pub server: Connection,
    /// Current virtual time.
    pub now: Instant,
    /// How bytes are cut on the way.
    pub delivery: Delivery,
    split_rng: Rng,
    /// Events seen so far, per side, in order (FileChunk data is folded into the sinks below).
    pub client_events: Vec<Event>,
    /// Server events (see `client_events`).
    pub server_events: Vec<Event>,
    /// Outgoing files the pair feeds from memory, keyed by sender.
    pub client_files: Vec<FileSource>,
    /// Received file bytes (server side), hashed and counted instead of kept.
    pub server_file_sha: Sha256,
    /// Received file bytes (server side), counted.
    pub server_file_len: u64,
    /// When false, bytes written by that side are dropped (a dead link in one direction).
    pub client_to_server_open: bool,
    /// See `client_to_server_open`.
    pub server_to_client_open: bool,
    /// Claimed requests the server answers automatically with `ok` + same payload.
    pub server_auto_reply: bool,
    /// When set, every blob moved is recorded here with its sender, in order.
    pub wire_log: Option<Vec<(Who, Bytes)>>,
}

impl Pair {
    /// A client and a server core with [`config`], seeded from `seed`.
    pub fn new(key: &str, seed: u64, delivery: Delivery) -> Pair {
        let now = origin();
        let root = Rng::from_seed(seed);
        let client = Connection::new(config(key, now), Side::Client, root.fork(1), now);
        let server = Connection::new(config(key, now), Side::Server, root.fork(2), now);
        Pair::from_cores(client, server, now, delivery, root.fork(3))
    }

    /// A pair around existing cores.
    pub fn from_cores(
        client: Connection,
        server: Connection,
        now: Instant,
        delivery: Delivery,
        split_rng: Rng,
    ) -> Pair {
        Pair {
            client,
            server,
            now,
            delivery,
            split_rng,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_files: Vec::new(),
            server_file_sha: Sha256::new(),
            server_file_len: 0,
            client_to_server_open: true,
            server_to_client_open: true,
            server_auto_reply: true,
            wire_log: None,
        }
    }

    fn deliver(delivery: Delivery, rng: &mut Rng, to: &mut Connection, now: Instant, bytes: &[u8]) {
        match delivery {
            Delivery::Whole => to.handle_input(now, bytes),
            Delivery::ByteByByte => {
                for byte in bytes.chunks(1) {
                    to.handle_input(now, byte);
                }
            }
            Delivery::RandomSplit { max } => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let take = (1 + rng.below(max as u64) as usize).min(rest.len());
                    let (piece, tail) = rest.split_at(take);
                    to.handle_input(now, piece);
                    rest = tail;
                }
            }
        }
    }

    /// Moves what `from` has to send to the other side (or drops it when that direction is
    /// closed); true when anything was sent.
    fn pump(&mut self, from: Who) -> bool {
        let (source, sink, open) = match from {
            Who::Client => (
                &mut self.client,
                &mut self.server,
                self.client_to_server_open,
            ),
            Who::Server => (
                &mut self.server,
                &mut self.client,
                self.server_to_client_open,
            ),
        };
        let mut moved = false;
        while let Some(bytes) = source.poll_transmit() {
            moved = true;
            if let Some(log) = &mut self.wire_log {
                log.push((from, bytes.clone()));
            }
            if open {
                Self::deliver(self.delivery, &mut self.split_rng, sink, self.now, &bytes);
            }
        }
        moved
    }

    /// Moves bytes and reacts to events until neither side has anything to send.
    pub fn drive(&mut self) {
        loop {
            let mut moved = self.pump(Who::Client);
            moved |= self.pump(Who::Server);
            moved |= self.react();
            if !moved {
                break;
            }
        }
    }

    /// Handles the events both sides produced; true when any was seen.
    fn react(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.client.poll_event() {
            any = true;
            if let Event::FileChunkWanted { transfer, max_len } = event {
                // Files started with `client_send_file` are fed from memory; others are the
                // test's business.
                if let Some(source) = self
                    .client_files
                    .iter_mut()
                    .find(|s| s.transfer == transfer)
                {
                    let fed = if source.offset == source.data.len() {
                        self.client.finish_file(self.now, transfer)
                    } else {
                        let end = source.data.len().min(source.offset + max_len);
                        let chunk = source.data.slice(source.offset..end);
                        source.offset = end;
                        self.client.file_chunk(self.now, transfer, &chunk)
                    };
                    // With chunks pipelined, a refusal read in the same input as an earlier
                    // answer fails the transfer before its queued `FileChunkWanted` is seen.
                    match fed {
                        Ok(()) | Err(FileChunkError::UnknownTransfer(_)) => {}
                        Err(error) => panic!("feeding {transfer:?}: {error}"),
                    }
                }
            }
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_event() {
            any = true;
            match event {
                Event::FileChunk { data, .. } => {
                    self.server_file_sha.update(&data);
                    self.server_file_len += data.len() as u64;
                    continue;
                }
                Event::Request {
                    counter,
                    ref payload,
                    ..
                } if self.server_auto_reply => {
                    self.server
                        .reply(self.now, counter, Command::OK, payload)
                        .expect("reply");
                }
                _ => {}
            }
            self.server_events.push(event);
        }
        any
    }

    /// Jumps to the earliest `poll_timeout` of the two sides (if any), fires it, and drives.
    /// Returns the instant jumped to.
    pub fn jump_to_next_timeout(&mut self) -> Option<Instant> {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()?;
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
        Some(next)
    }

    /// Sets time to `at` (not earlier than now), fires timeouts and drives.
    pub fn advance_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
    }

    /// Starts sending `data` as a file from the client.
    pub fn client_send_file(&mut self, path: &[u8], data: Bytes) -> TransferId {
        let transfer = self.client.send_file(self.now, path).expect("send_file");
        self.client_files.push(FileSource {
            transfer,
            data,
            offset: 0,
        });
        transfer
    }
}

/// `data` of `len` seeded random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Bytes {
    let mut rng = Rng::from_seed(seed);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    Bytes::from(data)
}

/// The hex of a vector field as bytes.
pub fn wire(value: &serde_json::Value) -> Vec<u8> {
    wazuh_cluster_vectors::unhex(value.as_str().expect("hex string"))
}

/// A duration helper.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
