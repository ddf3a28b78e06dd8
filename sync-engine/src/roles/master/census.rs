//! The master's census of its agents from the agent database: the node each agent reports to
//! (its `node_name`, where 3.9.5's `get_solver_node` places a distributed API request for it)
//! and the active agents per node (`get_health`'s `n_active_agents`).
//!
//! 3.9.5 asks its agent database, for each node it reports, how many agents in status `Active`
//! name that node (`Agent.get_agents_overview(filters={'status': 'Active', 'node_name': …})`),
//! which counts the agents reporting to the master itself as well; and, for each request that
//! names agents, their `node_name` (`get_agents_overview(select=['node_name'], filters={'id': …})`
//! or `get_agent`). The node reads no database (no I/O here): it asks the adapter for both as an
//! [`ApiCall`] of the built-in census ([`AGENT_CENSUS`], over the install's
//! `var/db/global.db`), and keeps the answer.
//!
//! ```text
//!   start                     ──► the first census, at once
//!   get_health / healthcheck  ──► snapshot: counts of the last census (asks for a new one)
//!   a request placed by agent ──► nodes of the last census (asks for a new one)
//!   after the input           ──► Output::ApiCall (census) when the last is over MAX_AGE old
//!   handle_api_done           ──► counts and nodes kept
//! ```
//!
//! When: the master takes a census as it starts, so the first health answer and the first
//! placement already have one (the executor answers it within milliseconds, long before a
//! worker has joined). Afterwards a reader marks the census wanted, and once the input is handled
//! a census starts if none runs and the last one is over [`MAX_AGE`] old; so a cluster nobody
//! asks reads nothing, and an answer uses a census at most [`MAX_AGE`] old while it is asked
//! regularly (upstream reads the database per request: an agent that moved to another worker in
//! the last seconds may be placed on its former one, which answers as if it had never had it).
//! Without a census (an install without the database answers 2000, or a request in the
//! milliseconds before the first answer) a node's count is the agents whose agent-info the
//! master took from it (the master's own: 0), and an agent's node the one its agent-info came
//! from.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::dapi::builtin::AGENT_CENSUS;
use crate::dapi::{ApiCall, JsonLimits, JsonValue};
use crate::roles::ids::ApiCallId;
use crate::roles::shell::Shell;

/// The census's call ids start here; the distributed API part numbers its calls from 0, so the
/// two never meet and the node routes each answer by its id alone.
const CENSUS_IDS: u64 = 1 << 62;

/// How old the last census may be before a health answer asks for a new one.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(5);

/// How long a census may run before another may start (its late answer is then ignored).
const CALL_TIME: Duration = Duration::from_secs(10);

/// Whether call `id` is a census (its answer is the master's, not the API part's).
pub(crate) fn is_census_call(id: ApiCallId) -> bool {
    id.0 >= CENSUS_IDS
}

/// The census. See the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct AgentCensus {
    /// Active agents by `node_name` as the database writes it (`None` before the first census).
    counts: Option<BTreeMap<String, usize>>,
    /// Agent id (`001`) → its `node_name` (`None` before the first census).
    nodes: Option<BTreeMap<String, String>>,
    /// When the last census answered.
    taken_at: Option<Instant>,
    /// The census running, and when another may start regardless.
    running: Option<(ApiCallId, Instant)>,
    next_id: u64,
    /// A health answer read the counts since the last input: a census may be due.
    wanted: Cell<bool>,
}

impl AgentCensus {
    /// The active agents reporting to `node` by the last census (names compared without ASCII
    /// case, as upstream's `COLLATE NOCASE` filter), `None` without one. Marks the census wanted.
    pub(super) fn active(&self, node: &str) -> Option<usize> {
        self.wanted.set(true);
        let counts = self.counts.as_ref()?;
        Some(
            counts
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(node))
                .map(|(_, count)| count)
                .sum(),
        )
    }

    /// Agent id → the node it reports to by the last census, `None` without one. Marks the census
    /// wanted.
    pub(super) fn nodes(&self) -> Option<&BTreeMap<String, String>> {
        self.wanted.set(true);
        self.nodes.as_ref()
    }

    /// Takes the first census (the master starts).
    pub(super) fn start(&mut self, shell: &mut Shell, now: Instant) {
        self.wanted.set(true);
        self.refresh(shell, now);
    }

    /// Starts a census if one is wanted and due.
    pub(super) fn refresh(&mut self, shell: &mut Shell, now: Instant) {
        if !self.wanted.replace(false) {
            return;
        }
        if self.running.is_some_and(|(_, until)| now < until)
            || self.taken_at.is_some_and(|taken| now < taken + MAX_AGE)
        {
            return;
        }
        let id = ApiCallId(CENSUS_IDS + self.next_id);
        self.next_id += 1;
        self.running = Some((id, now + CALL_TIME));
        let request = format!(
            "{{\"function\": \"{AGENT_CENSUS}\", \"arguments\": {{}}, \"from_cluster\": false}}"
        );
        let call = ApiCall {
            function: AGENT_CENSUS.to_owned(),
            framework_function: AGENT_CENSUS,
            arguments: "{}".to_owned(),
            request,
            timeout: Some(CALL_TIME),
            agent_nodes: BTreeMap::new(),
        };
        shell.run_api_call(id, call);
    }

    /// Census `id` answered `answer` at `now`. A failed census keeps the previous counts (and
    /// waits [`MAX_AGE`] before the next); an unknown or late id is ignored.
    pub(super) fn done(&mut self, now: Instant, id: ApiCallId, answer: &str, limits: &JsonLimits) {
        if self.running.map(|(running, _)| running) != Some(id) {
            return;
        }
        self.running = None;
        self.taken_at = Some(now);
        if let Some((counts, nodes)) = census_of(answer, limits) {
            self.counts = Some(counts);
            self.nodes = Some(nodes);
        }
    }
}

/// Active agents by node and node by agent.
type Census = (BTreeMap<String, usize>, BTreeMap<String, String>);

/// A census answer `{"data": {"active": {"<node>": <count>, ...}, "nodes": {"<id>": "<node>",
/// ...}}, "error": 0}`, whole or not at all.
fn census_of(answer: &str, limits: &JsonLimits) -> Option<Census> {
    let JsonValue::Object(answer) = JsonValue::parse(answer.as_bytes(), limits).ok()? else {
        return None;
    };
    if answer.get("error") != Some(&JsonValue::Int(0)) {
        return None;
    }
    let data = answer.get("data")?.as_object()?;
    let counts = data
        .get("active")?
        .as_object()?
        .iter()
        .map(|(node, count)| match count {
            JsonValue::Int(count) => Some((node.to_owned(), usize::try_from(*count).ok()?)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let nodes = data
        .get("nodes")?
        .as_object()?
        .iter()
        .map(|(id, node)| Some((id.to_owned(), node.as_str()?.to_owned())))
        .collect::<Option<_>>()?;
    Some((counts, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_census_answer_is_read_or_refused_whole() {
        let limits = JsonLimits::default();
        let (counts, nodes) = census_of(
            r#"{"data": {"active": {"master01": 1, "worker1": 3}, "nodes": {"001": "worker1"}}, "error": 0}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(counts.get("worker1"), Some(&3));
        assert_eq!(nodes.get("001").map(String::as_str), Some("worker1"));
        let refused = [
            r#"{"message": "x", "error": 2003}"#,
            r#"{"data": {"active": {"w": -1}, "nodes": {}}, "error": 0}"#,
            r#"{"data": {"active": {"w": "1"}, "nodes": {}}, "error": 0}"#,
            r#"{"data": {"active": {}, "nodes": {"001": 1}}, "error": 0}"#,
            r#"{"data": {"active": {}}, "error": 0}"#,
            r#"{"data": {"master01": 1}, "error": 0}"#,
            "garbage",
        ];
        for answer in refused {
            assert_eq!(census_of(answer, &limits), None, "{answer}");
        }
    }

    #[test]
    fn node_names_count_without_ascii_case() {
        let census = AgentCensus {
            counts: Some(
                [("Master01".to_owned(), 2), ("master01".to_owned(), 1)]
                    .into_iter()
                    .collect(),
            ),
            ..AgentCensus::default()
        };
        assert_eq!(census.active("MASTER01"), Some(3));
        assert_eq!(census.active("worker1"), Some(0));
        assert!(census.wanted.get());
        assert_eq!(AgentCensus::default().active("master01"), None);
    }
}
