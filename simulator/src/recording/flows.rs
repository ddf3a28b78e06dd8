//! What the frames of a link mean, as the comparisons see them: the flow each request belongs
//! to, each request paired with its reply, the rounds of a flow, and payload shapes with the
//! digits that differ from run to run masked.

use std::collections::BTreeMap;

use super::{LinkFrame, Role};

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
    /// transfers it uses (`new_str`, `str_upd`): not compared by the sync replays.
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
pub(super) fn first_token(payload: &[u8]) -> &[u8] {
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
pub(super) fn reply_index(link: &[LinkFrame], i: usize) -> Option<usize> {
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
pub(super) fn opens_round(command: &str) -> bool {
    command.ends_with("_p") || matches!(command, "hello" | "echo-c" | "get_nodes" | "get_health")
}

/// The exchanges of one flow split into rounds, each starting at a request that opens a round
/// (a permission request, `hello`, a keepalive, a control request); the master's answer to an integrity round (`sync_m_c*` or
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::recording::recorded_link;

    #[test]
    fn flows_rounds_and_the_dapi_frames_left_out() {
        let l = recorded_link(Role::Worker).unwrap();
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
        assert_eq!(exchanges(&l).get(&Flow::Other).map_or(0, Vec::len), 0);
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
}
