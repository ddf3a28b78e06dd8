//! `get_nodes` and `get_health` answers in 3.9.5's exact shape (PROTOCOL.md §14): key order as
//! upstream's dicts are built, `json.dumps` separators (`", "`, `": "`), dates as Python's
//! `str(datetime)`.
//!
//! Written by hand rather than through `serde_json::Value`, whose maps sort their keys: the order
//! is part of the bytes an upstream `cluster_control` prints.
//!
//! The master builds a [`ClusterSnapshot`] of itself and its workers; this module only formats
//! it, so the documents read nothing of the node's inside.
//!
//! Differences: dates are UTC (upstream prints the master's local time); `n_active_agents`
//! comes from the master's last census of its agent database (`master::census`, at most a few
//! seconds old where upstream queries at once), and before the first census has answered it
//! counts the agents whose agent-info the master took from that node (the master's own: 0).

use std::fmt::Write as _;

use serde::Deserialize;

use super::sync_kind::{PerKind, SyncKind};
use crate::integrity::compare::SyncCounts;
use crate::integrity::metadata::format_mod_time;
use crate::integrity::storage::Timestamp;

/// A date as upstream's health shows it: `str(datetime)`, `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub(crate) fn date(t: Timestamp) -> String {
    format_mod_time(t)
}

/// Start and end of the last synchronisation of one kind (`None` prints `n/a`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dates {
    start: Option<String>,
    end: Option<String>,
}

/// What `get_health` reports of one worker's synchronisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkerHealth {
    /// Last round of each kind.
    dates: PerKind<Dates>,
    /// Counts of the last comparison; `compared` switches to upstream's post-comparison key order.
    integrity_counts: SyncCounts,
    compared: bool,
    total_agent_info: Option<usize>,
    total_extra_valid: Option<usize>,
}

impl WorkerHealth {
    /// A round of `kind` started at `date`.
    pub(crate) fn started(&mut self, kind: SyncKind, date: String) {
        self.dates.get_mut(kind).start = Some(date);
    }

    /// A round of `kind` ended at `date`.
    pub(crate) fn ended(&mut self, kind: SyncKind, date: String) {
        self.dates.get_mut(kind).end = Some(date);
    }

    /// A worker package was applied; 3.9.5 then reports the number of agents it knows.
    pub(crate) fn applied(&mut self, kind: SyncKind, known_agents: usize) {
        match kind {
            SyncKind::AgentInfo => self.total_agent_info = Some(known_agents),
            SyncKind::ExtraValid => self.total_extra_valid = Some(known_agents),
            SyncKind::Integrity => {}
        }
    }

    /// The counts of the last integrity comparison.
    pub(crate) fn set_counts(&mut self, counts: SyncCounts) {
        self.integrity_counts = counts;
        self.compared = true;
    }
}

fn push_str(out: &mut String, s: &str) {
    // serde_json escapes like json.dumps for ASCII; non-ASCII differs (\u escapes upstream) but
    // names and versions are ASCII by our name rule.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

fn push_date(out: &mut String, d: &Option<String>) {
    push_str(out, d.as_deref().unwrap_or("n/a"));
}

/// One row of `get_nodes`: name, type, version, ip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeRow {
    /// Its name.
    pub(crate) name: String,
    /// `master` or what the worker's `hello` said.
    pub(crate) node_type: String,
    /// Its version.
    pub(crate) version: String,
    /// Its address (the master's configured one; a worker's connection host).
    pub(crate) ip: String,
}

impl NodeRow {
    fn field(&self, key: &str) -> Option<&str> {
        match key {
            "name" => Some(&self.name),
            "type" => Some(&self.node_type),
            "version" => Some(&self.version),
            "ip" => Some(&self.ip),
            _ => None,
        }
    }
}

const NODE_FIELDS: [&str; 4] = ["name", "type", "version", "ip"];

/// What `get_health` shows of one registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerStatus {
    /// Its `get_nodes` row.
    pub(crate) row: NodeRow,
    /// Agents reporting to it.
    pub(crate) active_agents: usize,
    /// Whether each kind's lock is free.
    pub(crate) locks_free: PerKind<bool>,
    /// Its rounds.
    pub(crate) health: WorkerHealth,
    /// Its last keepalive (or its registration), as a date.
    pub(crate) last_keepalive: String,
}

/// The master and its registered workers (in registration order), as the documents show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterSnapshot {
    /// The master's row.
    pub(crate) master: NodeRow,
    /// Agents reporting to the master itself.
    pub(crate) master_active_agents: usize,
    /// The workers.
    pub(crate) workers: Vec<WorkerStatus>,
}

impl ClusterSnapshot {
    fn rows(&self) -> Vec<NodeRow> {
        std::iter::once(self.master.clone())
            .chain(self.workers.iter().map(|w| w.row.clone()))
            .collect()
    }
}

/// The host part of `host:port` (`[v6]:port` too).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn push_info(out: &mut String, row: &NodeRow, active: usize) {
    out.push_str("{\"name\": ");
    push_str(out, &row.name);
    out.push_str(", \"type\": ");
    push_str(out, &row.node_type);
    out.push_str(", \"version\": ");
    push_str(out, &row.version);
    out.push_str(", \"ip\": ");
    push_str(out, &row.ip);
    let _ = write!(out, ", \"n_active_agents\": {active}}}");
}

fn push_bool(out: &mut String, b: bool) {
    out.push_str(if b { "true" } else { "false" });
}

/// One kind's lock and last round: `"<free_key>": <free>, "<last_key>": {"date_start_master": …,
/// "date_end_master": …` — the round's object is left open for the totals that follow.
fn push_round(out: &mut String, w: &WorkerStatus, kind: SyncKind, keys: [&str; 2]) {
    let [free_key, last_key] = keys;
    let dates = w.health.dates.get(kind);
    push_str(out, free_key);
    out.push_str(": ");
    push_bool(out, *w.locks_free.get(kind));
    out.push_str(", ");
    push_str(out, last_key);
    out.push_str(": {\"date_start_master\": ");
    push_date(out, &dates.start);
    out.push_str(", \"date_end_master\": ");
    push_date(out, &dates.end);
}

fn push_status(out: &mut String, w: &WorkerStatus) {
    let h = &w.health;
    let c = h.integrity_counts;
    out.push('{');
    let integrity = ["sync_integrity_free", "last_sync_integrity"];
    push_round(out, w, SyncKind::Integrity, integrity);
    if h.compared {
        let _ = write!(
            out,
            ", \"total_files\": {{\"missing\": {}, \"extra\": {}, \"extra_valid\": {}, \"shared\": {}}}}}",
            c.missing, c.extra, c.extra_valid, c.shared
        );
    } else {
        let _ = write!(
            out,
            ", \"total_files\": {{\"missing\": {}, \"shared\": {}, \"extra\": {}, \"extra_valid\": {}}}}}",
            c.missing, c.shared, c.extra, c.extra_valid
        );
    }
    // Agent-info and agent-groups rounds: the same block, each under its own keys.
    let agent_rounds = [
        (
            SyncKind::AgentInfo,
            ["sync_agentinfo_free", "last_sync_agentinfo"],
            ["total_agentinfo", "total_agent_info"],
            h.total_agent_info,
        ),
        (
            SyncKind::ExtraValid,
            ["sync_extravalid_free", "last_sync_agentgroups"],
            ["total_agentgroups", "total_extra_valid"],
            h.total_extra_valid,
        ),
    ];
    for (kind, keys, [placeholder_key, known_key], known) in agent_rounds {
        out.push_str(", ");
        push_round(out, w, kind, keys);
        // Upstream's `0` placeholder, then, once a package of the kind was applied, the agents
        // the master knows.
        out.push_str(", ");
        push_str(out, placeholder_key);
        out.push_str(": 0");
        if let Some(n) = known {
            out.push_str(", ");
            push_str(out, known_key);
            let _ = write!(out, ": {n}");
        }
        out.push('}');
    }
    out.push_str(", \"last_keep_alive\": ");
    push_str(out, &w.last_keepalive);
    out.push('}');
}

/// `get_health(filter)`: workers (in registration order) that `filter` names (all when `None`
/// or empty), then the master when `filter` is `None` or names it.
pub(crate) fn health_json(snapshot: &ClusterSnapshot, filter: Option<&[String]>) -> String {
    let wanted = |name: &str| filter.is_none_or(|f| f.is_empty() || f.iter().any(|n| n == name));
    let selected: Vec<&WorkerStatus> = snapshot
        .workers
        .iter()
        .filter(|w| wanted(&w.row.name))
        .collect();
    let mut out = format!("{{\"n_connected_nodes\": {}, \"nodes\": {{", selected.len());
    let mut first = true;
    for w in &selected {
        if !first {
            out.push_str(", ");
        }
        first = false;
        push_str(&mut out, &w.row.name);
        out.push_str(": {\"info\": ");
        push_info(&mut out, &w.row, w.active_agents);
        out.push_str(", \"status\": ");
        push_status(&mut out, w);
        out.push('}');
    }
    let master = &snapshot.master;
    if filter.is_none_or(|f| f.contains(&master.name)) {
        if !first {
            out.push_str(", ");
        }
        push_str(&mut out, &master.name);
        out.push_str(": {\"info\": ");
        push_info(&mut out, master, snapshot.master_active_agents);
        out.push('}');
    }
    out.push_str("}}");
    out
}

/// `get_health` payload: JSON `null` or a list of names (anything else reads as `null`).
pub(crate) fn health_filter(payload: &[u8]) -> Option<Vec<String>> {
    serde_json::from_slice(payload).ok().flatten()
}

/// `get_nodes` arguments (3.9.5 `get_connected_nodes` keyword arguments).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct NodesArgs {
    filter_node: Option<NameFilter>,
    offset: Option<usize>,
    limit: Option<usize>,
    sort: Option<Sort>,
    search: Option<Search>,
    select: Option<Select>,
    filter_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NameFilter {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Sort {
    fields: Vec<String>,
    #[serde(default)]
    order: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Search {
    value: String,
    #[serde(default)]
    negation: bool,
}

#[derive(Debug, Deserialize)]
struct Select {
    fields: Vec<String>,
}

/// `get_nodes(arguments)`: `{"totalItems": n, "items": [...]}` with the master first. `Err` is the
/// `err` payload for arguments upstream refuses: `WazuhException <code> <message>` with 3.9's
/// messages for 1403, 1724, 1728 and 1730 (the text after `: ` is ours).
pub(crate) fn nodes_json(snapshot: &ClusterSnapshot, payload: &[u8]) -> Result<String, String> {
    let args: NodesArgs = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut rows = snapshot.rows();
    match args.filter_type.as_deref() {
        None | Some("all") => {}
        Some(t @ ("master" | "worker")) => rows.retain(|r| r.node_type == t),
        Some(_) => return Err("WazuhException 1728 Invalid node type".to_owned()),
    }
    if let Some(filter) = &args.filter_node {
        let names: Vec<&str> = match filter {
            NameFilter::One(n) => vec![n.as_str()],
            NameFilter::Many(ns) => ns.iter().map(String::as_str).collect(),
        };
        if let Some(unknown) = names.iter().find(|n| !rows.iter().any(|r| r.name == **n)) {
            return Err(format!(
                "WazuhException 1730 Node does not exist: {unknown}"
            ));
        }
        rows.retain(|r| names.contains(&r.name.as_str()));
    }
    if let Some(search) = &args.search {
        let needle = search.value.to_lowercase();
        rows.retain(|r| {
            let hit = NODE_FIELDS
                .iter()
                .filter_map(|f| r.field(f))
                .any(|v| v.to_lowercase().contains(&needle));
            hit != search.negation
        });
    }
    if let Some(sort) = &args.sort {
        if let Some(bad) = sort
            .fields
            .iter()
            .find(|f| !NODE_FIELDS.contains(&f.as_str()))
        {
            return Err(format!("WazuhException 1403 Sort field invalid: {bad}"));
        }
        rows.sort_by(|a, b| {
            let key = |r: &NodeRow| -> Vec<String> {
                sort.fields
                    .iter()
                    .map(|f| r.field(f).unwrap_or_default().to_owned())
                    .collect()
            };
            key(a).cmp(&key(b))
        });
        if sort.order.as_deref() == Some("desc") {
            rows.reverse();
        }
    }
    let fields: Vec<&str> = match &args.select {
        Some(select) => {
            if let Some(bad) = select
                .fields
                .iter()
                .find(|f| !NODE_FIELDS.contains(&f.as_str()))
            {
                return Err(format!(
                    "WazuhException 1724 Not a valid select field: {bad}"
                ));
            }
            NODE_FIELDS
                .iter()
                .copied()
                .filter(|f| select.fields.iter().any(|s| s == f))
                .collect()
        }
        None => NODE_FIELDS.to_vec(),
    };
    let total = rows.len();
    let offset = args.offset.unwrap_or(0);
    let limit = args.limit.unwrap_or(500);
    let mut out = format!("{{\"totalItems\": {total}, \"items\": [");
    for (i, row) in rows.iter().skip(offset).take(limit).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('{');
        for (j, f) in fields.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            push_str(&mut out, f);
            out.push_str(": ");
            push_str(&mut out, row.field(f).unwrap_or_default());
        }
        out.push('}');
    }
    out.push_str("]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_compared_without_ports() {
        assert_eq!(host_of("10.0.0.2:40000"), host_of("10.0.0.2:40001"));
        assert_ne!(host_of("10.0.0.2:40000"), host_of("10.0.0.3:40000"));
        assert_eq!(host_of("[::1]:5"), host_of("[::1]:6"));
        assert_eq!(host_of("worker-a"), "worker-a");
    }
}
