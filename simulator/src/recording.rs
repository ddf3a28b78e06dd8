//! The recorded upstream 3.9.5 session (`vectors/v3.9/session`) in the forms conformance tests
//! compare against: the link's frames in order, split into flows, rounds and payload shapes; the
//! recorded peers' replies and requests as a script a stand-in peer can play; the packages the
//! frames carried; the install trees before the run and the state on disk after it.
//!
//! Why one module: two tests replay the same recording — the simulator's conformance test (our
//! master and our worker on virtual time) and the tokio adapter's session test (a scripted
//! upstream peer against one of our nodes over real TCP) — and both must judge "answers in kind"
//! the same way. One reading of the recording, one notion of shape, round and flow, so the two
//! cannot drift apart.
//!
//! ```text
//!   raw/conn1_w2m.bin ─┐ decrypted, full plaintext,        ┌─► exchanges() ─► rounds()  (compare)
//!   raw/conn1_m2w.bin ─┼─► literal command fields ──► link ├─► script() / Replies        (replay)
//!   <role>_frames.jsonl┘ (order as one process saw it)     └─► packages()                (compare)
//! ```
//!
//! What is left out: DAPI (`dapi*` and the `new_str` / `str_upd` string transfers it rides on) is
//! a later issue; [`Flow::Dapi`] keeps those frames apart so tests can say what they skip.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, FrameDecoder, HEADER_LEN};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_sync::integrity::metadata::timestamp_from_py_float;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{Storage, Timestamp};
use wazuh_cluster_sync::roles::NodeConfig;

use crate::fixtures::recorded_intervals;
use crate::tap::{TapFrame, literal_command};
use crate::tree::TreeFile;

/// The recording's cluster key (README: 32 ASCII characters).
pub const KEY: &str = "wazuh395interopkey0123456789abcd";
/// The recorded master's node name.
pub const MASTER_NAME: &str = "master01";
/// The recorded worker's node name.
pub const WORKER_NAME: &str = "worker1";
/// Unix time at the start of the run `trees.json` was taken for: its agent-info files are dated
/// "start of the run minus 60 s" (mtime 1795683021).
pub const TREES_START: u64 = 1_795_683_081;

/// Largest file of a recorded tree read back from a storage.
const MAX_READ: u64 = 1 << 20;

/// Which of the two recorded nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `master01`.
    Master,
    /// `worker1`.
    Worker,
}

impl Role {
    /// The other node.
    pub fn other(self) -> Role {
        match self {
            Role::Master => Role::Worker,
            Role::Worker => Role::Master,
        }
    }

    /// The raw byte stream this node sent.
    fn raw_file(self) -> &'static str {
        match self {
            Role::Master => "v3.9/session/raw/conn1_m2w.bin",
            Role::Worker => "v3.9/session/raw/conn1_w2m.bin",
        }
    }

    /// The frames this node's process logged.
    fn frames_file(self) -> &'static str {
        match self {
            Role::Master => "v3.9/session/master_frames.jsonl",
            Role::Worker => "v3.9/session/worker_frames.jsonl",
        }
    }

    /// The handler class of the TCP link in this node's log (local-socket handlers are others).
    fn handler(self) -> &'static str {
        match self {
            Role::Master => "MasterHandler",
            Role::Worker => "WorkerHandler",
        }
    }
}

/// Why the recording could not be read as expected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// A vector file does not have the layout its README describes.
    #[error("vector {file}: {what}")]
    Vector {
        /// The vector file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// A storage could not be read back.
    #[error("reading a tree: {0}")]
    Storage(String),
    /// The frames of a file transfer do not make a readable package.
    #[error("package {name}: {what}")]
    Package {
        /// The transferred file's name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

fn bad(file: &str, what: impl Into<String>) -> RecordingError {
    RecordingError::Vector {
        file: file.to_owned(),
        what: what.into(),
    }
}

fn field<'a>(v: &'a Value, key: &str, file: &str) -> Result<&'a Value, RecordingError> {
    v.get(key)
        .ok_or_else(|| bad(file, format!("no field {key}")))
}

fn str_field<'a>(v: &'a Value, key: &str, file: &str) -> Result<&'a str, RecordingError> {
    field(v, key, file)?
        .as_str()
        .ok_or_else(|| bad(file, format!("{key} is not a string")))
}

fn u64_field(v: &Value, key: &str, file: &str) -> Result<u64, RecordingError> {
    field(v, key, file)?
        .as_u64()
        .ok_or_else(|| bad(file, format!("{key} is not a whole number")))
}

fn f64_field(v: &Value, key: &str, file: &str) -> Result<f64, RecordingError> {
    field(v, key, file)?
        .as_f64()
        .ok_or_else(|| bad(file, format!("{key} is not a number")))
}

fn array<'a>(v: &'a Value, key: &str, file: &str) -> Result<&'a Vec<Value>, RecordingError> {
    field(v, key, file)?
        .as_array()
        .ok_or_else(|| bad(file, format!("{key} is not an array")))
}

fn object<'a>(
    v: &'a Value,
    key: &str,
    file: &str,
) -> Result<&'a serde_json::Map<String, Value>, RecordingError> {
    field(v, key, file)?
        .as_object()
        .ok_or_else(|| bad(file, format!("{key} is not an object")))
}

fn strings(v: &Value, key: &str, file: &str) -> Result<Vec<String>, RecordingError> {
    array(v, key, file)?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(file, format!("{key} holds a non-string")))
        })
        .collect()
}

/// The recording's Fernet (the cluster key of the README).
pub fn fernet() -> Result<Fernet, RecordingError> {
    let key = ClusterKey::new(KEY).map_err(|e| bad("README.md", e.to_string()))?;
    Ok(Fernet::new(&key))
}

// ------------------------------------------------------------------------------------------------
// The link

/// One frame on the link between the two nodes, reduced to what comparisons look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFrame {
    /// When it was seen, from the first frame of the link.
    pub at: Duration,
    /// Who sent it.
    pub by: Role,
    /// Header counter (a reply carries its request's).
    pub counter: u32,
    /// The command as the receiver reads it (`ok` for the field `ok  --------`).
    pub command: String,
    /// The command as the sender wrote it (`ok ` for the same field): upstream answers
    /// `new_file` with `ok ` and `echo-c` with `ok-m `, and a faithful peer must too.
    pub literal: String,
    /// Plaintext payload (the tap keeps a prefix only, see [`crate::tap::PREVIEW_LEN`]).
    pub payload: Vec<u8>,
}

impl LinkFrame {
    /// A reply (`ok`, `ok-m`, `err`, ...) rather than a request.
    pub fn is_reply(&self) -> bool {
        is_reply(&self.command)
    }
}

/// True for reply commands (as the receiver reads them): every `ok…` and `err`.
pub fn is_reply(command: &str) -> bool {
    command.starts_with("ok") || command == "err"
}

/// Every frame one recorded node sent, decrypted (`at` is zero: the raw streams carry no time).
///
/// # Errors
/// A frame that does not decode or decrypt.
pub fn recorded_stream(by: Role) -> Result<Vec<LinkFrame>, RecordingError> {
    let file = by.raw_file();
    let fernet = fernet()?;
    let bytes = wazuh_cluster_vectors::read(file);
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::from(bytes);
    let mut out = Vec::new();
    loop {
        // The decoder keeps only the receiver's view of the command field; the literal one is
        // read from the header before it is consumed.
        let literal = input
            .get(8..HEADER_LEN)
            .map(literal_command)
            .unwrap_or_default();
        let Some(frame) = decoder
            .decode(&mut input)
            .map_err(|e| bad(file, e.to_string()))?
        else {
            break;
        };
        let payload = fernet
            .decrypt(&frame.payload)
            .map_err(|e| bad(file, format!("frame {}: {e}", frame.counter)))?;
        out.push(LinkFrame {
            at: Duration::ZERO,
            by,
            counter: frame.counter,
            command: String::from_utf8_lossy(frame.command.name()).into_owned(),
            literal,
            payload,
        });
    }
    decoder.finish().map_err(|e| bad(file, e.to_string()))?;
    Ok(out)
}

/// The recorded link as `view`'s process saw it: both raw streams (full plaintext, literal
/// command fields), interleaved in the order of that process's frame log, timed from its first
/// frame. Local-socket frames are not on the link and are not included.
///
/// # Errors
/// The log and the raw streams disagree (counter or command), or a file is malformed.
pub fn recorded_link(view: Role) -> Result<Vec<LinkFrame>, RecordingError> {
    let file = view.frames_file();
    let mut own = recorded_stream(view)?.into_iter();
    let mut other = recorded_stream(view.other())?.into_iter();
    let mut out = Vec::new();
    let mut start = None;
    for line in wazuh_cluster_vectors::jsonl(file) {
        if line.get("event").is_some() || str_field(&line, "conn", file)? != view.handler() {
            continue;
        }
        let t = f64_field(&line, "t", file)?;
        let t0 = *start.get_or_insert(t);
        let sent = str_field(&line, "dir", file)? == "SEND";
        let mut frame = if sent { own.next() } else { other.next() }
            .ok_or_else(|| bad(file, "more frames logged than the raw streams hold"))?;
        let counter = u64_field(&line, "counter", file)?;
        let command = str_field(&line, "cmd", file)?.trim_end();
        if u64::from(frame.counter) != counter || frame.command != command {
            return Err(bad(
                file,
                format!(
                    "logged {counter} {command}, raw stream has {} {}",
                    frame.counter, frame.command
                ),
            ));
        }
        frame.at = Duration::from_secs_f64((t - t0).max(0.0));
        out.push(frame);
    }
    if own.next().is_some() || other.next().is_some() {
        return Err(bad(file, "the raw streams hold frames the log does not"));
    }
    Ok(out)
}

/// The frames a simulation's tap decoded, as link frames (`worker1` is the worker, any other
/// sender the master).
pub fn link_of_tap(frames: &[TapFrame]) -> Vec<LinkFrame> {
    frames
        .iter()
        .map(|f| LinkFrame {
            at: f.at.offset(),
            by: if f.from == WORKER_NAME {
                Role::Worker
            } else {
                Role::Master
            },
            counter: f.counter,
            command: f.command.clone(),
            literal: f.literal_command.clone(),
            payload: f.preview.clone(),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Flows, exchanges, rounds

/// What a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    /// `hello`.
    Hello,
    /// `echo-c` keepalives.
    Keepalive,
    /// `sync_i_w_m*` rounds and the master's answer (`sync_m_c*`, `sync_m_c_ok`).
    Integrity,
    /// `sync_e_w_m*`: the worker sends back the extra-valid files (agent-groups).
    ExtraValid,
    /// `sync_a_w_m*`: agent-info.
    AgentInfo,
    /// `get_nodes` / `get_health` (a worker forwards its local clients' to the master) and
    /// `control_res`.
    Control,
    /// DAPI (`dapi`, `dapi_res`, `dapi_err`, `dapi_cluster`, `dapi_forward`) and the string
    /// transfers it uses (`new_str`, `str_upd`): a later issue, never compared.
    Dapi,
    /// Anything else (a command the recording does not have).
    Other,
}

impl Flow {
    /// The flows both the simulator and the socket replay compare.
    pub const SYNC: [Flow; 5] = [
        Flow::Hello,
        Flow::Keepalive,
        Flow::Integrity,
        Flow::ExtraValid,
        Flow::AgentInfo,
    ];

    /// A synchronisation flow: the file transfers its sender makes next belong to it.
    fn carries_files(self) -> bool {
        matches!(self, Flow::Integrity | Flow::ExtraValid | Flow::AgentInfo)
    }
}

/// The flow of a request command; `None` for `new_file` / `file_upd` / `file_end`, which belong
/// to their sender's current synchronisation (see [`request_flows`]).
pub fn flow_of(command: &str) -> Option<Flow> {
    Some(match command {
        "hello" => Flow::Hello,
        "echo-c" => Flow::Keepalive,
        "new_file" | "file_upd" | "file_end" => return None,
        "get_nodes" | "get_health" | "control_res" => Flow::Control,
        "new_str" | "str_upd" => Flow::Dapi,
        c if c.starts_with("sync_i_w_m") || c.starts_with("sync_m_c") => Flow::Integrity,
        c if c.starts_with("sync_e_w_m") => Flow::ExtraValid,
        c if c.starts_with("sync_a_w_m") => Flow::AgentInfo,
        c if c.starts_with("dapi") => Flow::Dapi,
        _ => Flow::Other,
    })
}

/// The bytes of `payload` before its first space (a transfer's file name).
fn first_token(payload: &[u8]) -> &[u8] {
    let end = payload
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(payload.len());
    &payload[..end]
}

/// The flow of each frame of `link` (`None` for replies). A file transfer step (`new_file`,
/// `file_upd`, `file_end`, each starting with the file's name) belongs to the synchronisation
/// whose `sync_*_e` (`<task> <file>`) names that file: two rounds of one node may run at once
/// (integrity and agent-info are independent timers, upstream's as asyncio tasks), and then
/// their transfers interleave on the link. A transfer no `_e` names (the link ended first)
/// goes to its sender's latest synchronisation.
pub fn request_flows(link: &[LinkFrame]) -> Vec<Option<Flow>> {
    let mut named: BTreeMap<(Role, &[u8]), Flow> = BTreeMap::new();
    for f in link.iter().filter(|f| f.command.ends_with("_e")) {
        if let Some(flow) = flow_of(&f.command).filter(|flow| flow.carries_files())
            && let Some(space) = f.payload.iter().position(|&b| b == b' ')
        {
            named.insert((f.by, &f.payload[space + 1..]), flow);
        }
    }
    let mut current: BTreeMap<Role, Flow> = BTreeMap::new();
    link.iter()
        .map(|f| {
            if f.is_reply() {
                return None;
            }
            Some(match flow_of(&f.command) {
                Some(flow) => {
                    if flow.carries_files() {
                        current.insert(f.by, flow);
                    }
                    flow
                }
                None => named
                    .get(&(f.by, first_token(&f.payload)))
                    .or_else(|| current.get(&f.by))
                    .copied()
                    .unwrap_or(Flow::Other),
            })
        })
        .collect()
}

/// Index of the reply to request `i` of `link`: the first later frame of the other side that
/// is a reply with the same counter.
fn reply_index(link: &[LinkFrame], i: usize) -> Option<usize> {
    let request = link.get(i)?;
    link.iter()
        .enumerate()
        .skip(i + 1)
        .find(|(_, r)| r.by != request.by && r.counter == request.counter && r.is_reply())
        .map(|(j, _)| j)
}

/// Digits replaced by one `N` a run (task ids, times, sizes, the random part of file names), so
/// payloads of two runs compare; `HH:MM:SS.ffffff` dates lose their fraction, which Python's
/// `str(datetime)` leaves out when it is zero.
pub fn shape(text: &[u8]) -> String {
    let mut out = String::new();
    for ch in String::from_utf8_lossy(text).chars() {
        if ch.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(ch);
        }
    }
    out.replace("N:N:N.N", "N:N:N")
}

/// [`shape`] of a request's payload; for `file_upd` / `file_end` (`<path> <bytes>`) the path's
/// shape only, the bytes being a ZIP chunk or a digest.
pub fn payload_shape(command: &str, payload: &[u8]) -> String {
    match command {
        "file_upd" | "file_end" => format!("{} <bytes>", shape(first_token(payload))),
        _ => shape(payload),
    }
}

/// One request and its reply, reduced to what must match: who asked, the commands (the reply's
/// as written), the payload shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The requester.
    pub by: Role,
    /// Request command.
    pub request: String,
    /// [`payload_shape`] of the request.
    pub request_shape: String,
    /// The reply's literal command field (`None`: not answered on this link).
    pub reply: Option<String>,
    /// [`shape`] of the reply's payload (empty when not answered).
    pub reply_shape: String,
}

/// Every request of `link` with its reply, by flow, in request order.
pub fn exchanges(link: &[LinkFrame]) -> BTreeMap<Flow, Vec<Exchange>> {
    let mut out: BTreeMap<Flow, Vec<Exchange>> = BTreeMap::new();
    for (i, (f, flow)) in link.iter().zip(request_flows(link)).enumerate() {
        let Some(flow) = flow else { continue };
        let reply = reply_index(link, i).and_then(|j| link.get(j));
        out.entry(flow).or_default().push(Exchange {
            by: f.by,
            request: f.command.clone(),
            request_shape: payload_shape(&f.command, &f.payload),
            reply: reply.map(|r| r.literal.clone()),
            reply_shape: reply.map_or_else(String::new, |r| shape(&r.payload)),
        });
    }
    out
}

/// A request that opens a round of its flow: a permission request (`_p`), `hello`, a
/// keepalive, a control request.
fn opens_round(command: &str) -> bool {
    command.ends_with("_p") || matches!(command, "hello" | "echo-c" | "get_nodes" | "get_health")
}

/// The exchanges of one flow split into rounds, each starting at a request that
/// [opens a round](opens_round); the master's answer to an integrity round (`sync_m_c*` or
/// `sync_m_c_ok`) stays in the round it answers.
pub fn rounds(exchanges: &[Exchange]) -> Vec<Vec<Exchange>> {
    let mut out: Vec<Vec<Exchange>> = Vec::new();
    for e in exchanges {
        match out.last_mut() {
            Some(last) if !opens_round(&e.request) => last.push(e.clone()),
            _ => out.push(vec![e.clone()]),
        }
    }
    out
}

/// Rounds one per paragraph, one exchange a line, for assertion messages.
pub fn dump(rounds: &[Vec<Exchange>]) -> String {
    rounds
        .iter()
        .map(|r| {
            r.iter()
                .map(|e| {
                    format!(
                        "{:?} {}({}) -> {}({})",
                        e.by,
                        e.request,
                        e.request_shape,
                        e.reply.as_deref().unwrap_or("<none>"),
                        e.reply_shape
                    )
                })
                .collect::<Vec<_>>()
                .join("\n  ")
        })
        .collect::<Vec<_>>()
        .join("\n---\n  ")
}

/// Flows in the order their first request appears on the link.
pub fn flow_order(link: &[LinkFrame]) -> Vec<Flow> {
    let mut order = Vec::new();
    for flow in request_flows(link).into_iter().flatten() {
        if !order.contains(&flow) {
            order.push(flow);
        }
    }
    order
}

/// How many requests of each flow got their reply on `link`.
pub fn answered(link: &[LinkFrame]) -> BTreeMap<Flow, usize> {
    let mut out = BTreeMap::new();
    for flow in exchanges(link) {
        let n = flow.1.iter().filter(|e| e.reply.is_some()).count();
        out.insert(flow.0, n);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Playing one side

/// A reply to send: literal command field, payload.
pub type Reply = (String, Vec<u8>);

/// The recorded replies to one request command and the next one to give.
#[derive(Debug, Clone, Default)]
struct ReplyQueue {
    list: Vec<Reply>,
    next: usize,
}

/// The replies one recorded node gave to the other's requests, by request command, in order:
/// what a stand-in for that node answers.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    table: BTreeMap<String, ReplyQueue>,
}

impl Replies {
    /// The replies `by` gave on `link` (DAPI requests included: a test decides what it sends).
    pub fn recorded(by: Role, link: &[LinkFrame]) -> Replies {
        let mut table: BTreeMap<String, ReplyQueue> = BTreeMap::new();
        for (i, f) in link.iter().enumerate() {
            if f.by == by || f.is_reply() {
                continue;
            }
            if let Some(r) = reply_index(link, i).and_then(|j| link.get(j)) {
                table
                    .entry(f.command.clone())
                    .or_default()
                    .list
                    .push((r.literal.clone(), r.payload.clone()));
            }
        }
        Replies { table }
    }

    /// The reply (literal command, payload) to the next request `command`: the recorded replies
    /// to that command in turn, the last one again once they run out; `None` when the recording
    /// never answered `command`.
    pub fn answer(&mut self, command: &str) -> Option<Reply> {
        let queue = self.table.get_mut(command)?;
        let reply = queue
            .list
            .get(queue.next)
            .or_else(|| queue.list.last())
            .cloned();
        queue.next += 1;
        reply
    }
}

/// A request that ends a round, after which the recorded peer may have sent something in
/// response: `sync_*_e` and `sync_m_c_ok`.
pub fn ends_round(command: &str) -> bool {
    command.starts_with("sync_") && (command.ends_with("_e") || command == "sync_m_c_ok")
}

/// A request of the other node, counted: (command, how many of those so far).
pub type Trigger = (String, usize);

/// A run of requests one recorded node sent, each after the previous one's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The flow the requests belong to.
    pub flow: Flow,
    /// When the first request was sent, from the first frame of the link.
    pub at: Duration,
    /// The other node's last round-ending request ([`ends_round`]) the recorded node had
    /// received before: (command, how many of those), e.g. `("sync_i_w_m_e", 2)` for the
    /// master's answer to the second integrity round. A stand-in waits for it, so cause and
    /// effect keep their recorded order.
    pub after: Option<Trigger>,
    /// The requests, as recorded.
    pub frames: Vec<LinkFrame>,
    /// The other node's recorded reply payload to each request (empty when unanswered).
    pub replies: Vec<Vec<u8>>,
}

impl Turn {
    /// The payload to send for request `index`, given the replies this run got to the earlier
    /// requests of the turn (`ours`): a recorded task id at the start of the payload (`<task>
    /// <file>` of `sync_*_e`) is replaced by the one this run's peer gave for the same request.
    pub fn payload(&self, index: usize, ours: &[Vec<u8>]) -> Vec<u8> {
        let Some(frame) = self.frames.get(index) else {
            return Vec::new();
        };
        for (recorded, given) in self.replies.iter().zip(ours).take(index) {
            let is_task = !recorded.is_empty() && recorded.iter().all(u8::is_ascii_digit);
            if let Some(rest) = frame.payload.strip_prefix(recorded.as_slice())
                && is_task
                && rest.first() == Some(&b' ')
            {
                return [given.as_slice(), rest].concat();
            }
        }
        frame.payload.clone()
    }
}

/// A request that starts a turn: one that [opens a round](opens_round), or the master's answer
/// to an integrity round.
fn opens_turn(command: &str) -> bool {
    opens_round(command) || matches!(command, "sync_m_c" | "sync_m_c_ok")
}

/// The requests `role` sent on `link`, as turns in the order they started, leaving out
/// [`Flow::Dapi`] and [`Flow::Other`]; requests of different flows that upstream interleaved
/// (a keepalive in the middle of an agent-info round) go to their own flow's turn.
pub fn script(role: Role, link: &[LinkFrame]) -> Vec<Turn> {
    let flows = request_flows(link);
    let mut turns: Vec<Turn> = Vec::new();
    let mut open: BTreeMap<Flow, usize> = BTreeMap::new();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_end: Option<Trigger> = None;
    let t0 = link.first().map_or(Duration::ZERO, |f| f.at);
    for (i, (f, flow)) in link.iter().zip(flows).enumerate() {
        let Some(flow) = flow else { continue };
        if f.by != role {
            if ends_round(&f.command) {
                let n = ends.entry(f.command.clone()).or_default();
                *n += 1;
                last_end = Some((f.command.clone(), *n));
            }
            continue;
        }
        if matches!(flow, Flow::Dapi | Flow::Other) {
            continue;
        }
        let index = match open.get(&flow) {
            Some(&index) if !opens_turn(&f.command) => index,
            _ => {
                turns.push(Turn {
                    flow,
                    at: f.at.saturating_sub(t0),
                    after: last_end.clone(),
                    frames: Vec::new(),
                    replies: Vec::new(),
                });
                open.insert(flow, turns.len() - 1);
                turns.len() - 1
            }
        };
        let reply = reply_index(link, i)
            .and_then(|j| link.get(j))
            .map_or_else(Vec::new, |r| r.payload.clone());
        if let Some(turn) = turns.get_mut(index) {
            turn.frames.push(f.clone());
            turn.replies.push(reply);
        }
    }
    turns
}

// ------------------------------------------------------------------------------------------------
// Packages

/// A package (the ZIP of a file transfer) reduced to what two runs share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    /// Member names (install paths), sorted: upstream writes them in its dict's order, which
    /// carries no meaning.
    pub members: Vec<String>,
    /// [`shape`] of `cluster_control.json` with its object keys sorted.
    pub control: String,
}

/// A JSON value printed with object keys sorted, whatever order the writer used.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// Summarises one package.
///
/// # Errors
/// [`RecordingError::Package`] when `zip` is not a readable package.
pub fn package_summary(name: &str, zip: Vec<u8>) -> Result<PackageSummary, RecordingError> {
    let fail = |what: String| RecordingError::Package {
        name: name.to_owned(),
        what,
    };
    let reader = PackageReader::open(Cursor::new(zip), PackageLimits::default())
        .map_err(|e| fail(e.to_string()))?;
    let control: Value =
        serde_json::from_slice(reader.control_json()).map_err(|e| fail(e.to_string()))?;
    let mut members: Vec<String> = reader
        .members()
        .iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    members.sort();
    Ok(PackageSummary {
        members,
        control: shape(canonical(&control).as_bytes()),
    })
}

/// The packages sent on `link`, by sender and flow, in order: the `file_upd` chunks (`<path>
/// <chunk>`) between a `new_file` and its `file_end`. Needs whole payloads (not a tap's prefix).
///
/// # Errors
/// A transfer that is not a readable package.
pub fn packages(
    link: &[LinkFrame],
) -> Result<BTreeMap<(Role, Flow), Vec<PackageSummary>>, RecordingError> {
    let mut out: BTreeMap<(Role, Flow), Vec<PackageSummary>> = BTreeMap::new();
    // Transfers in progress, by sender and file name (two may interleave, see request_flows).
    let mut open: BTreeMap<(Role, &[u8]), Vec<u8>> = BTreeMap::new();
    for (f, flow) in link.iter().zip(request_flows(link)) {
        let Some(flow) = flow else { continue };
        let name = first_token(&f.payload);
        match f.command.as_str() {
            "new_file" => {
                open.insert((f.by, name), Vec::new());
            }
            "file_upd" => {
                if let (Some(zip), Some(chunk)) =
                    (open.get_mut(&(f.by, name)), f.payload.get(name.len() + 1..))
                {
                    zip.extend_from_slice(chunk);
                }
            }
            "file_end" => {
                if let Some(zip) = open.remove(&(f.by, name)) {
                    let summary = package_summary(&String::from_utf8_lossy(name), zip)?;
                    out.entry((f.by, flow)).or_default().push(summary);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Local clients

/// One frame of a local client's call on a node's Unix socket (plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFrame {
    /// Sent by the client (else by the node's local server).
    pub from_client: bool,
    /// Header counter.
    pub counter: u32,
    /// Command.
    pub command: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One recorded call of a local client (`cluster_control` or the API) to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCall {
    /// The recording's title (`control.get_nodes()`).
    pub title: String,
    /// When the node received it, from the first frame of its TCP link.
    pub at: Duration,
    /// The frames, in order.
    pub frames: Vec<LocalFrame>,
}

/// Text the recording stores as latin-1 (one char a byte), back to bytes.
fn latin1(text: &str, file: &str) -> Result<Vec<u8>, RecordingError> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad(file, "payload is not latin-1")))
        .collect()
}

/// The `get_nodes` / `get_health` calls made to `role`'s local socket (the recording's
/// `control.*` calls; the `dapi` ones are DAPI's), timed from `role`'s frame log.
///
/// # Errors
/// A malformed vector, or a call the frame log does not show.
pub fn local_control_calls(role: Role) -> Result<Vec<LocalCall>, RecordingError> {
    let file = match role {
        Role::Master => "v3.9/dapi_via_master.json",
        Role::Worker => "v3.9/dapi_via_worker.json",
    };
    let log = role.frames_file();
    let lines = wazuh_cluster_vectors::jsonl(log);
    let mut link_start = None;
    let mut received: BTreeMap<u64, f64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get("event").is_none()) {
        let conn = str_field(line, "conn", log)?;
        let t = f64_field(line, "t", log)?;
        if conn == role.handler() {
            link_start.get_or_insert(t);
        } else if str_field(line, "dir", log)? == "RECV" {
            received.insert(u64_field(line, "counter", log)?, t);
        }
    }
    let t0 = link_start.ok_or_else(|| bad(log, "no frame on the link"))?;
    let doc = wazuh_cluster_vectors::json(file);
    let mut out = Vec::new();
    for call in array(&doc, "calls", file)? {
        let title = str_field(call, "title", file)?;
        if !title.starts_with("control.") {
            continue;
        }
        let mut frames = Vec::new();
        for f in array(call, "local_frames", file)? {
            let counter = u64_field(f, "counter", file)?;
            frames.push(LocalFrame {
                from_client: str_field(f, "dir", file)? == "client->local_server",
                counter: u32::try_from(counter).map_err(|_| bad(file, "counter"))?,
                command: str_field(f, "cmd", file)?.to_owned(),
                payload: latin1(str_field(f, "payload", file)?, file)?,
            });
        }
        let first = frames
            .first()
            .ok_or_else(|| bad(file, format!("{title}: no frames")))?;
        let t = received
            .get(&u64::from(first.counter))
            .ok_or_else(|| bad(log, format!("{title}: not in the log")))?;
        out.push(LocalCall {
            title: title.to_owned(),
            at: Duration::from_secs_f64((t - t0).max(0.0)),
            frames,
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Trees and the end state

/// One of the recorded install trees as it was before a run starting at Unix time `start`
/// (`trees.json`), every file with mode 0660. The worker's agent-info files are dated 60 s before
/// the start, as in the recorded run: a worker sends only agent-info newer than
/// `get_agentinfo_newer_than` (30 min), so on the real clock they must be recent.
///
/// # Errors
/// A malformed entry.
pub fn recorded_tree(role: Role, start: Timestamp) -> Result<Vec<TreeFile>, RecordingError> {
    let file = "v3.9/session/trees.json";
    let key = match role {
        Role::Master => "master_tree",
        Role::Worker => "worker_tree",
    };
    let trees = wazuh_cluster_vectors::json(file);
    array(&trees, key, file)?
        .iter()
        .map(|e| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(str_field(e, "content_b64", file)?)
                .map_err(|err| bad(file, err.to_string()))?;
            let path = format!("/{}", str_field(e, "path", file)?);
            let mtime = if path.starts_with("/queue/agent-info/") {
                Timestamp {
                    secs: start.secs - 60,
                    nanos: start.nanos,
                }
            } else {
                timestamp_from_py_float(f64_field(e, "mtime", file)?)
            };
            Ok(TreeFile {
                mode: 0o660,
                ..TreeFile::new(&path, data, mtime)
            })
        })
        .collect()
}

/// An agent-info file as the end state lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentInfoFile {
    /// Modification time.
    pub mtime: Timestamp,
    /// Size in bytes.
    pub size: u64,
}

/// The state on disk after the recorded run (`check.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCheck {
    /// Integrity files the master's items select on the master.
    pub master_files: usize,
    /// The same on the worker.
    pub worker_files: usize,
    /// Master integrity files the worker lacks.
    pub missing_on_worker: Vec<String>,
    /// Worker files of master items the master lacks.
    pub extra_on_worker: Vec<String>,
    /// Files whose content differs.
    pub different: Vec<String>,
    /// The master's `queue/agent-info` (no `ghost-*`: unknown agent).
    pub master_agent_info: BTreeMap<String, AgentInfoFile>,
    /// The master's `queue/agent-groups`, name → content.
    pub master_agent_groups: BTreeMap<String, String>,
    /// The worker's `queue/agent-groups`.
    pub worker_agent_groups: BTreeMap<String, String>,
    /// The worker's `etc/shared` directories (`oldgroup` gone).
    pub worker_dirs_etc_shared: Vec<String>,
    /// The recorder's verdict: both trees hold the same master files.
    pub equal: bool,
}

/// `check.json`.
///
/// # Errors
/// A malformed field.
pub fn recorded_check() -> Result<RecordedCheck, RecordingError> {
    let file = "v3.9/session/check.json";
    let check = wazuh_cluster_vectors::json(file);
    let count = |key: &str| -> Result<usize, RecordingError> {
        usize::try_from(u64_field(&check, key, file)?).map_err(|_| bad(file, key))
    };
    let groups = |key: &str| -> Result<BTreeMap<String, String>, RecordingError> {
        object(&check, key, file)?
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().ok_or_else(|| bad(file, format!("{key}.{k}")))?;
                Ok((k.clone(), text.to_owned()))
            })
            .collect()
    };
    let master_agent_info = object(&check, "master_agent_info", file)?
        .iter()
        .map(|(name, v)| {
            let info = AgentInfoFile {
                mtime: timestamp_from_py_float(f64_field(v, "mtime", file)?),
                size: u64_field(v, "size", file)?,
            };
            Ok((name.clone(), info))
        })
        .collect::<Result<_, RecordingError>>()?;
    Ok(RecordedCheck {
        master_files: count("master_files")?,
        worker_files: count("worker_files")?,
        missing_on_worker: strings(&check, "missing_on_worker", file)?,
        extra_on_worker: strings(&check, "extra_on_worker", file)?,
        different: strings(&check, "different", file)?,
        master_agent_info,
        master_agent_groups: groups("master_agent_groups")?,
        worker_agent_groups: groups("worker_agent_groups")?,
        worker_dirs_etc_shared: strings(&check, "worker_dirs_etc_shared", file)?,
        equal: field(&check, "equal", file)?
            .as_bool()
            .ok_or_else(|| bad(file, "equal"))?,
    })
}

fn storage_error(e: impl std::fmt::Display) -> RecordingError {
    RecordingError::Storage(e.to_string())
}

/// Names in `dir` of `storage`, sorted (empty when it does not exist).
///
/// # Errors
/// A storage error other than a missing directory.
pub fn dir_names<S: Storage>(storage: &S, dir: &str) -> Result<Vec<String>, RecordingError> {
    let dir = InstallPath::new(dir).map_err(storage_error)?;
    if storage.stat(&dir).map_err(storage_error)?.is_none() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = storage
        .list_dir(&dir)
        .map_err(storage_error)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    Ok(names)
}

/// `queue/agent-info` of `storage`: name → mtime and size.
///
/// # Errors
/// A storage error.
pub fn agent_info<S: Storage>(
    storage: &S,
) -> Result<BTreeMap<String, AgentInfoFile>, RecordingError> {
    let dir = "/queue/agent-info";
    let mut out = BTreeMap::new();
    for name in dir_names(storage, dir)? {
        let path = InstallPath::new(&format!("{dir}/{name}")).map_err(storage_error)?;
        if let Some(st) = storage.stat(&path).map_err(storage_error)? {
            let info = AgentInfoFile {
                mtime: st.mtime,
                size: st.size,
            };
            out.insert(name, info);
        }
    }
    Ok(out)
}

/// `queue/agent-groups` of `storage`: agent id → content.
///
/// # Errors
/// A storage error, or a file that is not text.
pub fn agent_groups<S: Storage>(storage: &S) -> Result<BTreeMap<String, String>, RecordingError> {
    let dir = "/queue/agent-groups";
    let mut out = BTreeMap::new();
    for name in dir_names(storage, dir)? {
        let path = InstallPath::new(&format!("{dir}/{name}")).map_err(storage_error)?;
        let data = storage.read(&path, MAX_READ).map_err(storage_error)?;
        out.insert(name, String::from_utf8(data).map_err(storage_error)?);
    }
    Ok(out)
}

/// The recorded intervals ([`recorded_intervals`]) divided by `divisor`: the same cadence, run
/// faster, for tests on the real clock.
pub fn recorded_intervals_divided(config: &mut NodeConfig, divisor: u32) {
    recorded_intervals(config);
    let divisor = divisor.max(1);
    let i = &mut config.items.intervals;
    for d in [
        &mut i.worker.sync_integrity,
        &mut i.worker.sync_files,
        &mut i.worker.keep_alive,
        &mut i.worker.connection_retry,
        &mut i.master.recalculate_integrity,
        &mut i.master.check_worker_lastkeepalive,
        &mut i.master.max_allowed_time_without_keepalive,
    ] {
        *d /= divisor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(view: Role) -> Vec<LinkFrame> {
        recorded_link(view).unwrap()
    }

    fn count(flow: Flow, link: &[LinkFrame]) -> usize {
        exchanges(link).get(&flow).map_or(0, Vec::len)
    }

    #[test]
    fn both_views_hold_every_frame_of_both_streams_with_literal_fields() {
        for view in [Role::Master, Role::Worker] {
            let l = link(view);
            assert_eq!(l.len(), 244);
            assert_eq!(l.iter().filter(|f| f.by == Role::Worker).count(), 122);
            assert_eq!((l[0].command.as_str(), l[0].by), ("hello", Role::Worker));
            assert_eq!(l[0].payload, b"worker1 wazuh worker 3.9.5");
            assert_eq!(l[0].at, Duration::ZERO);
        }
        let l = link(Role::Master);
        // The reply fields as upstream writes them: `ok ` to new_file, `ok-m ` to echo-c.
        let ex = exchanges(&l);
        let keepalive = &ex[&Flow::Keepalive][0];
        assert_eq!(keepalive.reply.as_deref(), Some("ok-m "));
        let new_file = ex[&Flow::Integrity]
            .iter()
            .find(|e| e.request == "new_file")
            .unwrap();
        assert_eq!(new_file.reply.as_deref(), Some("ok "));
        assert_eq!(new_file.reply_shape, "Ready to receive new file");
        let hello = &ex[&Flow::Hello][0];
        assert_eq!(
            (hello.reply.as_deref(), hello.reply_shape.as_str()),
            (Some("ok"), "Client workerN added")
        );
    }

    #[test]
    fn flows_rounds_and_the_dapi_frames_left_out() {
        let l = link(Role::Worker);
        let ex = exchanges(&l);
        let n_rounds = |flow| rounds(&ex[&flow]).len();
        assert_eq!(
            [
                Flow::Hello,
                Flow::Keepalive,
                Flow::Integrity,
                Flow::ExtraValid,
                Flow::AgentInfo,
                Flow::Control
            ]
            .map(n_rounds),
            [1, 11, 7, 1, 5, 3]
        );
        // First integrity round: the worker's six requests, then the master's package.
        let integrity = rounds(&ex[&Flow::Integrity]);
        let first: Vec<(Role, &str)> = integrity[0]
            .iter()
            .map(|e| (e.by, e.request.as_str()))
            .collect();
        assert_eq!(
            first,
            [
                (Role::Worker, "sync_i_w_m_p"),
                (Role::Worker, "sync_i_w_m"),
                (Role::Worker, "new_file"),
                (Role::Worker, "file_upd"),
                (Role::Worker, "file_end"),
                (Role::Worker, "sync_i_w_m_e"),
                (Role::Master, "sync_m_c"),
                (Role::Master, "new_file"),
                (Role::Master, "file_upd"),
                (Role::Master, "file_end"),
                (Role::Master, "sync_m_c_e"),
            ]
        );
        // DAPI: 10 worker requests (dapi ×2, dapi_cluster ×2, new_str/str_upd/dapi_res ×2) and
        // 8 master requests (dapi ×2, new_str/str_upd/dapi_res ×2), each with its reply.
        let dapi = &ex[&Flow::Dapi];
        assert_eq!(dapi.len(), 18);
        assert_eq!(dapi.iter().filter(|e| e.by == Role::Worker).count(), 10);
        assert!(dapi.iter().all(|e| e.reply.is_some()));
        assert_eq!(count(Flow::Other, &l), 0);
        assert_eq!(
            flow_order(&l),
            [
                Flow::Hello,
                Flow::Keepalive,
                Flow::Integrity,
                Flow::ExtraValid,
                Flow::AgentInfo,
                Flow::Dapi,
                Flow::Control
            ]
        );
        let answered = answered(&l);
        assert_eq!(answered[&Flow::Integrity], 7 * 6 + 5 + 6);
    }

    #[test]
    fn interleaved_transfers_belong_to_the_round_that_names_their_file() {
        let frame = |command: &str, payload: &str| LinkFrame {
            at: Duration::ZERO,
            by: Role::Worker,
            counter: 0,
            command: command.to_owned(),
            literal: command.to_owned(),
            payload: payload.as_bytes().to_vec(),
        };
        let link = [
            frame("sync_i_w_m_p", ""),
            frame("sync_i_w_m", ""),
            frame("new_file", "/a.zip"),
            frame("sync_a_w_m_p", ""),
            frame("sync_a_w_m", ""),
            frame("new_file", "/b.zip"),
            frame("file_upd", "/a.zip x"),
            frame("file_upd", "/b.zip y"),
            frame("file_end", "/a.zip z"),
            frame("sync_i_w_m_e", "1 /a.zip"),
            frame("file_end", "/b.zip z"),
            frame("sync_a_w_m_e", "2 /b.zip"),
            frame("new_file", "/c.zip"),
        ];
        let (i, a) = (Some(Flow::Integrity), Some(Flow::AgentInfo));
        // /c.zip: no `_e` names it; the sender's latest synchronisation was agent-info.
        assert_eq!(
            request_flows(&link),
            [i, i, i, a, a, a, i, a, i, i, a, a, a]
        );
        let ex = exchanges(&link);
        let requests = |flow| -> Vec<String> {
            ex[&flow]
                .iter()
                .map(|e| format!("{} {}", e.request, e.request_shape))
                .collect()
        };
        assert_eq!(
            requests(Flow::Integrity),
            [
                "sync_i_w_m_p ",
                "sync_i_w_m ",
                "new_file /a.zip",
                "file_upd /a.zip <bytes>",
                "file_end /a.zip <bytes>",
                "sync_i_w_m_e N /a.zip"
            ]
        );
    }

    #[test]
    fn shapes_mask_digits_and_date_fractions() {
        assert_eq!(shape(b"128142615"), "N");
        assert_eq!(
            shape(b"/queue/cluster/worker1/worker1-1795682923.4069414-48417.zip"),
            "/queue/cluster/workerN/workerN-N.N-N.zip"
        );
        assert_eq!(
            shape(b"2026-11-26 08:48:43.441797"),
            shape(b"2026-11-26 08:48:43")
        );
        assert_eq!(
            payload_shape("file_end", b"/queue/x1.zip \x01\xff 9"),
            "/queue/xN.zip <bytes>"
        );
    }

    #[test]
    fn the_masters_script_answers_each_integrity_round_after_its_end() {
        let l = link(Role::Master);
        let turns = script(Role::Master, &l);
        let summary: Vec<(Flow, usize, Option<Trigger>)> = turns
            .iter()
            .map(|t| (t.flow, t.frames.len(), t.after.clone()))
            .collect();
        let mut want = vec![(Flow::Integrity, 5, Some(("sync_i_w_m_e".to_owned(), 1)))];
        for k in 2..=7 {
            want.push((Flow::Integrity, 1, Some(("sync_i_w_m_e".to_owned(), k))));
        }
        assert_eq!(summary, want);
        // sync_m_c_e carries the task id the worker gave in its sync_m_c reply.
        let first = &turns[0];
        assert_eq!(first.replies[0], b"3340084035");
        let ours = [b"77".to_vec(), vec![], vec![], vec![]];
        let end = first.payload(4, &ours);
        assert!(
            end.starts_with(b"77 /queue/cluster/worker1/worker1-"),
            "{end:?}"
        );
        assert_eq!(first.payload(1, &ours), first.frames[1].payload);
    }

    #[test]
    fn the_workers_script_sends_extra_valid_after_the_masters_package() {
        let l = link(Role::Worker);
        let turns = script(Role::Worker, &l);
        let flows: Vec<Flow> = turns.iter().map(|t| t.flow).collect();
        let n = |flow| flows.iter().filter(|f| **f == flow).count();
        assert_eq!(
            [
                Flow::Hello,
                Flow::Keepalive,
                Flow::Integrity,
                Flow::ExtraValid,
                Flow::AgentInfo,
                Flow::Control
            ]
            .map(n),
            [1, 11, 7, 1, 5, 3]
        );
        // Nothing else: the DAPI requests are not part of the script.
        assert_eq!(turns.len(), 28);
        assert_eq!(
            flows[..4],
            [
                Flow::Hello,
                Flow::Keepalive,
                Flow::Integrity,
                Flow::ExtraValid
            ]
        );
        assert_eq!(
            (turns[0].at, turns[0].after.clone()),
            (Duration::ZERO, None)
        );
        assert_eq!(turns[3].after, Some(("sync_m_c_e".to_owned(), 1)));
        // A keepalive upstream sent in the middle of an agent-info round is a turn of its own;
        // the agent-info turn keeps its six requests.
        assert!(
            turns
                .iter()
                .filter(|t| t.flow == Flow::AgentInfo)
                .all(|t| t.frames.len() == 6)
        );
        let end = turns[2].payload(5, &[vec![], b"42".to_vec()]);
        assert!(end.starts_with(b"42 /queue/cluster/worker1/"), "{end:?}");
    }

    #[test]
    fn replies_follow_the_recording_then_repeat_the_last() {
        let l = link(Role::Master);
        let mut replies = Replies::recorded(Role::Master, &l);
        let tasks: Vec<Vec<u8>> = (0..8)
            .map(|_| replies.answer("sync_i_w_m").unwrap().1)
            .collect();
        assert_eq!(tasks[0], b"128142615");
        assert_eq!(tasks[6], tasks[7]);
        assert_ne!(tasks[0], tasks[1]);
        assert_eq!(
            replies.answer("new_file"),
            Some(("ok ".to_owned(), b"Ready to receive new file".to_vec()))
        );
        assert_eq!(replies.answer("sync_x"), None);
        let mut worker = Replies::recorded(Role::Worker, &l);
        assert_eq!(
            worker.answer("sync_m_c_ok"),
            Some(("ok".to_owned(), b"Thanks".to_vec()))
        );
    }

    #[test]
    fn packages_of_the_recording() {
        let p = packages(&link(Role::Master)).unwrap();
        let master = &p[&(Role::Master, Flow::Integrity)];
        assert_eq!(master.len(), 1);
        assert_eq!(
            master[0].members,
            [
                "/etc/client.keys",
                "/etc/lists/amazon/aws-eventnames",
                "/etc/lists/audit-keys.cdb",
                "/etc/rules/local_rules.xml",
                "/etc/shared/default/merged.mg",
                "/etc/shared/group2/merged.mg",
                "/queue/cluster/worker1/agent-groups-shared.merged",
                "/var/multigroups/e4f9f5fa/merged.mg",
            ]
        );
        assert!(
            master[0].control.starts_with("{\"extra\":{"),
            "{}",
            master[0].control
        );
        assert_eq!(p[&(Role::Worker, Flow::Integrity)].len(), 7);
        assert!(p[&(Role::Worker, Flow::Integrity)][0].members.is_empty());
        assert_eq!(
            p[&(Role::Worker, Flow::AgentInfo)][0].members,
            ["/queue/cluster/worker1/agent-info.merged"]
        );
        assert_eq!(
            p[&(Role::Worker, Flow::ExtraValid)][0].members,
            ["/queue/cluster/worker1/agent-groups.merged"]
        );
    }

    #[test]
    fn local_control_calls_of_the_worker() {
        let calls = local_control_calls(Role::Worker).unwrap();
        let titles: Vec<&str> = calls.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "control.get_nodes()",
                "control.get_health()",
                "control.get_health(filter_node=[\"worker1\"])"
            ]
        );
        let cmds: Vec<(bool, &str)> = calls[0]
            .frames
            .iter()
            .map(|f| (f.from_client, f.command.as_str()))
            .collect();
        assert_eq!(
            cmds,
            [
                (true, "get_nodes"),
                (false, "ok"),
                (false, "control_res"),
                (true, "ok")
            ]
        );
        assert_eq!(calls[0].frames[1].payload, b"Sent request to master node");
        assert!(calls[0].at > Duration::from_secs(7) && calls[0].at < calls[1].at);
    }

    #[test]
    fn trees_and_end_state() {
        let start = Timestamp::from_secs(TREES_START as i64);
        let master = recorded_tree(Role::Master, start).unwrap();
        let worker = recorded_tree(Role::Worker, start).unwrap();
        assert_eq!((master.len(), worker.len()), (17, 17));
        let file = |tree: &[TreeFile], path: &str| tree.iter().find(|f| f.path == path).cloned();
        let ghost = "/queue/agent-info/ghost-10.9.9.9";
        // At the recorded start, the recorded dates; later, the same age.
        assert_eq!(
            file(&worker, ghost).unwrap().mtime,
            Timestamp::from_secs(TREES_START as i64 - 60)
        );
        let later = recorded_tree(Role::Worker, Timestamp::from_secs(1_900_000_000)).unwrap();
        assert_eq!(
            file(&later, ghost).unwrap().mtime,
            Timestamp::from_secs(1_900_000_000 - 60)
        );
        let keys = "/etc/client.keys";
        assert_eq!(file(&later, keys), file(&worker, keys));
        let check = recorded_check().unwrap();
        assert_eq!((check.master_files, check.worker_files), (12, 12));
        assert!(check.equal && check.different.is_empty());
        assert_eq!(check.worker_dirs_etc_shared, ["default", "group2"]);
        assert_eq!(
            check.master_agent_info["agent-one-10.0.0.1"],
            AgentInfoFile {
                mtime: Timestamp::from_secs(1_795_682_858),
                size: 220
            }
        );
        let storage = crate::tree::storage_from(worker).unwrap();
        assert_eq!(agent_groups(&storage).unwrap()["004"], "group2\n");
        assert_eq!(agent_info(&storage).unwrap().len(), 4);
        assert_eq!(
            dir_names(&storage, "/etc/shared").unwrap(),
            ["group2", "oldgroup"]
        );
        assert_eq!(
            dir_names(&storage, "/nothing").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn intervals_divided() {
        let wall = wazuh_cluster_protocol::connection::WallClock::new(
            std::time::Instant::now(),
            1_800_000_000,
        );
        let mut c = NodeConfig::new(wazuh_cluster_sync::roles::NodeType::Worker, "w", None, wall);
        recorded_intervals_divided(&mut c, 4);
        let i = &c.items.intervals;
        assert_eq!(i.worker.sync_integrity, Duration::from_millis(750));
        assert_eq!(i.worker.keep_alive, Duration::from_millis(500));
        assert_eq!(i.master.recalculate_integrity, Duration::from_millis(250));
        assert_eq!(
            i.master.max_allowed_time_without_keepalive,
            Duration::from_millis(7500)
        );
    }
}
