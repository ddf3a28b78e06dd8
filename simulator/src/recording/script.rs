//! Playing one recorded node: the replies it gave, to answer as it did, and the requests it sent,
//! as turns a stand-in peer sends in the recorded order of cause and effect.

use std::collections::BTreeMap;
use std::time::Duration;

use super::flows::{opens_round, reply_index};
use super::{Flow, LinkFrame, Role, request_flows};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::recorded_link;

    #[test]
    fn the_masters_script_answers_each_integrity_round_after_its_end() {
        let l = recorded_link(Role::Master).unwrap();
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
        let l = recorded_link(Role::Worker).unwrap();
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
        let l = recorded_link(Role::Master).unwrap();
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
}
