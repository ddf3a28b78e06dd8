//! A connection core fed arbitrary chunks, sealed frames, timeouts and commands.
//!
//! Input: byte 0 chooses the side, the key (none or the vector key), the hello gate and whether
//! the link starts authenticated; then a program of operations, each an opcode byte and its
//! arguments ([`Op`]). Raw chunks exercise the decoder and the decrypt-failure paths; sealed
//! frames (built and, with a key, encrypted here) reach the request handling behind the crypto, so
//! the fuzzer need not forge Fernet tokens. Small bounds make every limit reachable.
//!
//! Checked after every operation: every table within its bound, everything the core wrote decodes
//! (and decrypts) as frames, a reply to an unanswered request is accepted exactly once, and
//! nothing happens after [`Event::Closed`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, FileChunkError, ReplyError, Side, TransferId, WallClock,
};
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{Command, FrameDecoder, encode_frame};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

use super::Input;

/// The key of the recorded vectors, so that recorded sealed frames in the seeds open.
use wazuh_cluster_vectors::CLUSTER_KEY as KEY;
/// Unix time at the origin instant (2026-01-01T00:00:00Z).
const ORIGIN_UNIX: u64 = 1_767_225_600;

/// Commands the sealed-frame and request operations pick from (index = byte % len).
const COMMANDS: &[&[u8]] = &[
    b"hello",
    b"echo",
    b"echo-c",
    b"echo-m",
    b"new_file",
    b"file_upd",
    b"file_end",
    b"new_str",
    b"str_upd",
    b"ok",
    b"err",
    b"ok-m",
    b"ok-c",
    b"dapi",
    b"sync_i_w_m_p",
    b"foo",
];

/// One step of the program (opcode = byte % 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `0`, len: u16, bytes — fed as they are.
    Raw,
    /// `1`, counter: u32, command: u8, flags: u8, len: u16, bytes — one frame, sealed with the
    /// key when there is one; flag bit 0 prefixes the payload with the last string id the core
    /// handed out (`<id> `), bit 1 uses the counter of our last request (a reply), bit 2 feeds the
    /// frame one byte at a time.
    Sealed,
    /// `2`, millis: u16 — time moves by `millis * 10` ms, then `handle_timeout`.
    Advance,
    /// `3` — time jumps to `poll_timeout` (if any), then `handle_timeout`.
    JumpToTimeout,
    /// `4`, command: u8, len: u16, bytes — `send_request`.
    Request,
    /// `5`, kind: u8, len: u16 — `send_string` of `len` bytes (even kind) or `send_file` with a
    /// path of `len % 64` bytes (odd kind).
    Transfer,
    /// `6` — `set_authenticated`.
    Authenticate,
    /// `7`, which: u8 — reply to the oldest unanswered request (even), or to a counter nobody sent
    /// (odd; must be refused).
    Reply,
}

impl Op {
    fn from_byte(byte: u8) -> Op {
        match byte % 8 {
            0 => Op::Raw,
            1 => Op::Sealed,
            2 => Op::Advance,
            3 => Op::JumpToTimeout,
            4 => Op::Request,
            5 => Op::Transfer,
            6 => Op::Authenticate,
            _ => Op::Reply,
        }
    }
}

/// Bounds small enough for a fuzzer to hit.
fn small_config(key: Option<ClusterKey>, require_hello: bool, t0: Instant) -> ConnectionConfig {
    let claimed = [Command::HELLO, Command::from_static(b"dapi")];
    let mut config =
        ConnectionConfig::new(Profile::V3_9, key, WallClock::new(t0, ORIGIN_UNIX)).claim(claimed);
    config.max_frame_payload = 16 * 1024;
    config.request_chunk = 1024;
    config.max_pending_requests = 8;
    config.max_incoming_files = 3;
    config.max_file_size = 8 * 1024;
    config.max_file_path_len = 64;
    config.max_incoming_strings = 3;
    config.max_string_size = 4 * 1024;
    config.max_incoming_strings_bytes = 6 * 1024;
    config.max_outgoing_transfers = 3;
    config.max_queued_transmit = 32 * 1024;
    config.max_unanswered_requests = 4;
    config.require_hello = require_hello;
    config
}

/// The state of one run.
struct Harness {
    conn: Connection,
    now: Instant,
    fernet: Option<Fernet>,
    iv_rng: Rng,
    /// Decodes what the core writes, to check it and learn string ids.
    out_decoder: FrameDecoder,
    /// Counters of `Event::Request`s not answered yet.
    unanswered: VecDeque<u32>,
    /// Outgoing files fed from a counter, by transfer.
    files: Vec<(TransferId, usize)>,
    last_string_id: Option<Bytes>,
    last_request: Option<u32>,
    closed: bool,
}

impl Harness {
    /// Drains and checks the core's output and events after an input or command.
    fn settle(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let frame = self
                    .out_decoder
                    .decode_slice(&mut rest)
                    .expect("the core writes valid frames");
                let Some(frame) = frame else { break };
                let payload = match &self.fernet {
                    Some(fernet) => Bytes::from(
                        fernet
                            .decrypt(&frame.payload)
                            .expect("the core's tokens open"),
                    ),
                    None => frame.payload,
                };
                // The reply to `new_str` is `ok <id>`: remember ids so `str_upd` can name them.
                if frame.command == Command::OK
                    && !payload.is_empty()
                    && payload.iter().all(u8::is_ascii_digit)
                {
                    self.last_string_id = Some(payload);
                }
            }
        }
        assert_eq!(self.conn.queued_transmit_bytes(), 0);
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            match event {
                Event::Request { counter, .. } => self.unanswered.push_back(counter),
                Event::StringComplete { id } if id.is_multiple_of(2) && !self.conn.is_closed() => {
                    assert!(self.conn.take_string(id).is_some(), "complete string {id}");
                }
                Event::FileChunkWanted { transfer, max_len } => self.feed_file(transfer, max_len),
                Event::Closed { .. } => {
                    self.closed = true;
                    self.unanswered.clear();
                }
                _ => {}
            }
        }
        self.check_bounds();
    }

    fn feed_file(&mut self, transfer: TransferId, max_len: usize) {
        let Some(index) = self.files.iter().position(|(t, _)| *t == transfer) else {
            return;
        };
        let left = self.files[index].1;
        let result = if left == 0 {
            self.files.remove(index);
            self.conn.finish_file(self.now, transfer)
        } else {
            let len = left.min(max_len);
            self.files[index].1 -= len;
            self.conn.file_chunk(self.now, transfer, &vec![b'f'; len])
        };
        match result {
            Ok(()) | Err(FileChunkError::TransmitQueueFull { .. }) => {}
            Err(error) => panic!("feeding {transfer}: {error}"),
        }
    }

    fn check_bounds(&self) {
        let config = self.conn.config();
        assert!(self.conn.pending_requests() <= config.max_pending_requests);
        assert!(self.conn.incoming_files() <= config.max_incoming_files);
        assert!(self.conn.incoming_strings() <= config.max_incoming_strings);
        assert!(self.conn.incoming_strings_reserved() <= config.max_incoming_strings_bytes);
        assert!(self.conn.unanswered_requests() <= config.max_unanswered_requests);
        assert_eq!(self.conn.unanswered_requests(), self.unanswered.len());
        if self.conn.is_closed() {
            assert_eq!(self.conn.poll_timeout(), None);
        }
    }

    /// `handle_timeout(now)` processes everything due at `now`: what is left is later.
    fn fire_timeouts(&mut self) {
        self.conn.handle_timeout(self.now);
        if let Some(at) = self.conn.poll_timeout() {
            assert!(
                at > self.now,
                "a timeout due at {at:?} survived handle_timeout"
            );
        }
    }

    /// A frame as a peer would send it.
    fn sealed(&mut self, counter: u32, command: &[u8], payload: &[u8]) -> BytesMut {
        let command = Command::new(Profile::V3_9, command).expect("table command");
        let body = match &self.fernet {
            Some(fernet) => fernet.encrypt(payload, self.iv_rng.next_iv(), ORIGIN_UNIX),
            None => payload.to_vec(),
        };
        let mut out = BytesMut::new();
        encode_frame(Profile::V3_9, counter, &command, &body, &mut out).expect("frame");
        out
    }

    fn step(&mut self, op: Op, input: &mut Input<'_>) {
        match op {
            Op::Raw => {
                let len = usize::from(input.u16());
                self.conn.handle_input(self.now, input.bytes(len));
            }
            Op::Sealed => {
                let counter = input.u32();
                let command = COMMANDS[usize::from(input.byte()) % COMMANDS.len()];
                let flags = input.byte();
                let len = usize::from(input.u16());
                let mut payload = Vec::new();
                if flags & 1 != 0 {
                    payload.extend_from_slice(self.last_string_id.as_deref().unwrap_or(b"0"));
                    payload.push(b' ');
                }
                payload.extend_from_slice(input.bytes(len));
                let counter = match (flags & 2 != 0, self.last_request) {
                    (true, Some(ours)) => ours,
                    _ => counter,
                };
                let frame = self.sealed(counter, command, &payload);
                if flags & 4 != 0 {
                    for byte in frame.chunks(1) {
                        self.conn.handle_input(self.now, byte);
                    }
                } else {
                    self.conn.handle_input(self.now, &frame);
                }
            }
            Op::Advance => {
                self.now += Duration::from_millis(u64::from(input.u16()) * 10);
                self.fire_timeouts();
            }
            Op::JumpToTimeout => {
                if let Some(at) = self.conn.poll_timeout() {
                    self.now = self.now.max(at);
                    self.fire_timeouts();
                }
            }
            Op::Request => {
                let command = COMMANDS[usize::from(input.byte()) % COMMANDS.len()];
                let command = Command::new(Profile::V3_9, command).expect("table command");
                let len = usize::from(input.u16());
                if let Ok(counter) = self.conn.send_request(self.now, command, input.bytes(len)) {
                    self.last_request = Some(counter);
                }
            }
            Op::Transfer => {
                let kind = input.byte();
                let len = usize::from(input.u16());
                if kind.is_multiple_of(2) {
                    let _ = self
                        .conn
                        .send_string(self.now, Bytes::from(vec![b's'; len]));
                } else {
                    let path = vec![b'p'; len % 64];
                    if let Ok(transfer) = self.conn.send_file(self.now, &path) {
                        self.files.push((transfer, len));
                    }
                }
            }
            Op::Authenticate => self.conn.set_authenticated(self.now),
            Op::Reply => {
                let which = input.byte();
                if which.is_multiple_of(2) {
                    if let Some(counter) = self.unanswered.pop_front() {
                        let result = self.conn.reply(self.now, counter, Command::OK, b"done");
                        assert_eq!(result, Ok(()), "reply to unanswered request {counter}");
                        // A peer may reuse a counter; only when none is left must a second reply fail.
                        if !self.unanswered.contains(&counter) {
                            let again = self.conn.reply(self.now, counter, Command::OK, b"again");
                            assert_eq!(
                                again,
                                Err(ReplyError::NotAwaitingReply { counter }),
                                "second reply to {counter}"
                            );
                        }
                    }
                } else {
                    let counter = u32::from(which).wrapping_mul(0x9E37_79B9);
                    if !self.unanswered.contains(&counter) {
                        let result = self.conn.reply(self.now, counter, Command::OK, b"x");
                        assert!(
                            result.is_err(),
                            "reply to unknown counter {counter} accepted"
                        );
                    }
                }
            }
        }
        self.settle();
    }
}

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let side = if flags & 1 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let key = (flags & 2 != 0).then(|| ClusterKey::new(KEY).expect("vector key"));
    let t0 = origin();
    let config = small_config(key.clone(), flags & 4 != 0, t0);
    let fernet = key.as_ref().map(Fernet::new);
    let mut conn = Connection::new(config, side, Rng::from_seed(u64::from(flags)), t0);
    if flags & 8 != 0 {
        conn.set_authenticated(t0);
    }
    let mut harness = Harness {
        conn,
        now: t0,
        fernet,
        iv_rng: Rng::from_seed(7),
        out_decoder: FrameDecoder::new(Profile::V3_9, u32::MAX),
        unanswered: VecDeque::new(),
        files: Vec::new(),
        last_string_id: None,
        last_request: None,
        closed: false,
    };
    harness.settle();
    // Bounded work per input: at most 256 operations.
    for _ in 0..256 {
        if input.is_empty() {
            break;
        }
        let op = Op::from_byte(input.byte());
        harness.step(op, &mut input);
    }
}

/// The origin of virtual time: the core never reads the clock, it only needs some `Instant`.
fn origin() -> Instant {
    Instant::now()
}
