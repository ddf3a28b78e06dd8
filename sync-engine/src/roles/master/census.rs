//! The master's census of active agents per node, for `get_health`'s `n_active_agents`.
//!
//! 3.9.5 asks its agent database, for each node it reports, how many agents in status `Active`
//! name that node (`Agent.get_agents_overview(filters={'status': 'Active', 'node_name': …})`),
//! which counts the agents reporting to the master itself as well. The node reads no database
//! (no I/O here): it asks the adapter for the counts as an [`ApiCall`] of the built-in census
//! ([`ACTIVE_AGENTS_BY_NODE`], over the install's `var/db/global.db`), and keeps the answer.
//!
//! ```text
//!   get_health / healthcheck ──► snapshot: counts of the last census (asks for a new one)
//!   after the input          ──► Output::ApiCall (census) when the last is over MAX_AGE old
//!   handle_api_done          ──► counts kept
//! ```
//!
//! When: an answer built from the master's cluster snapshot (`get_health`, `get_nodes` and their
//! API routes) marks the census wanted, and once the input is handled a census starts if none
//! runs and the last one is over [`MAX_AGE`] old; so a cluster nobody asks reads nothing. An
//! answer uses the counts of the last census taken (at most [`MAX_AGE`] old while health is
//! asked regularly). Before the first census has answered (the first health request
//! after the master starts), or when a census fails (an install without the database answers
//! 2000), a node's count is the agents whose agent-info the master took from it (the master's
//! own: 0).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::dapi::builtin::ACTIVE_AGENTS_BY_NODE;
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
            "{{\"function\": \"{ACTIVE_AGENTS_BY_NODE}\", \"arguments\": {{}}, \"from_cluster\": false}}"
        );
        let call = ApiCall {
            function: ACTIVE_AGENTS_BY_NODE.to_owned(),
            framework_function: ACTIVE_AGENTS_BY_NODE,
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
        if let Some(counts) = counts_of(answer, limits) {
            self.counts = Some(counts);
        }
    }
}

/// The counts of a census answer `{"data": {"<node>": <count>, ...}, "error": 0}`.
fn counts_of(answer: &str, limits: &JsonLimits) -> Option<BTreeMap<String, usize>> {
    let JsonValue::Object(answer) = JsonValue::parse(answer.as_bytes(), limits).ok()? else {
        return None;
    };
    if answer.get("error") != Some(&JsonValue::Int(0)) {
        return None;
    }
    let Some(JsonValue::Object(data)) = answer.get("data") else {
        return None;
    };
    data.iter()
        .map(|(node, count)| match count {
            JsonValue::Int(count) => Some((node.to_owned(), usize::try_from(*count).ok()?)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_census_answer_is_read_or_refused_whole() {
        let limits = JsonLimits::default();
        let counts = counts_of(
            r#"{"data": {"master01": 1, "worker1": 3}, "error": 0}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(counts.get("worker1"), Some(&3));
        assert_eq!(
            counts_of(r#"{"message": "x", "error": 2003}"#, &limits),
            None
        );
        assert_eq!(
            counts_of(r#"{"data": {"w": -1}, "error": 0}"#, &limits),
            None
        );
        assert_eq!(
            counts_of(r#"{"data": {"w": "1"}, "error": 0}"#, &limits),
            None
        );
        assert_eq!(counts_of("garbage", &limits), None);
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
