//! `get_nodes` and `get_health` answers in 3.9.5's exact shape (PROTOCOL.md §14): key order as
//! upstream's dicts are built, `json.dumps` separators (`", "`, `": "`), dates as Python's
//! `str(datetime)`.
//!
//! Written by hand rather than through `serde_json::Value`, whose maps sort their keys: the order
//! is part of the bytes an upstream `cluster_control` prints.
//!
//! Differences: dates are UTC (upstream prints the master's local time); `n_active_agents`
//! counts the agents whose agent-info the master took from that node (upstream asks its agent
//! database for agents in status `Active`), so the master itself reports 0.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Deserialize;

use super::master::WorkerInfo;
use super::node::{Node, Role, Session};
use super::output::SyncKind;
use crate::integrity::compare::SyncCounts;
use crate::integrity::metadata::format_mod_time;
use crate::integrity::storage::Timestamp;

/// A date as upstream's health shows it: `str(datetime)`, `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub(super) fn date(t: Timestamp) -> String {
    format_mod_time(t)
}

/// Start and end of the last synchronisation of one kind (`None` prints `n/a`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Dates {
    pub(super) start: Option<String>,
    pub(super) end: Option<String>,
}

/// What `get_health` reports of one worker's synchronisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WorkerHealth {
    pub(super) integrity: Dates,
    /// Counts of the last comparison; `compared` switches to upstream's post-comparison key order.
    pub(super) integrity_counts: SyncCounts,
    pub(super) compared: bool,
    pub(super) agent_info: Dates,
    pub(super) total_agent_info: Option<usize>,
    pub(super) extra_valid: Dates,
    pub(super) total_extra_valid: Option<usize>,
}

impl WorkerHealth {
    fn dates(&mut self, kind: SyncKind) -> &mut Dates {
        match kind {
            SyncKind::Integrity => &mut self.integrity,
            SyncKind::ExtraValid => &mut self.extra_valid,
            SyncKind::AgentInfo => &mut self.agent_info,
        }
    }

    pub(super) fn started(&mut self, kind: SyncKind, date: String) {
        self.dates(kind).start = Some(date);
    }

    pub(super) fn ended(&mut self, kind: SyncKind, date: String) {
        self.dates(kind).end = Some(date);
    }

    /// A worker package was applied; 3.9.5 then reports the number of agents it knows.
    pub(super) fn applied(&mut self, kind: SyncKind, known_agents: usize) {
        match kind {
            SyncKind::AgentInfo => self.total_agent_info = Some(known_agents),
            SyncKind::ExtraValid => self.total_extra_valid = Some(known_agents),
            SyncKind::Integrity => {}
        }
    }

    pub(super) fn set_counts(&mut self, counts: SyncCounts) {
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

fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One row of `get_nodes`: name, type, version, ip.
#[derive(Debug, Clone)]
struct NodeRow {
    name: String,
    node_type: String,
    version: String,
    ip: String,
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

/// Registered workers with their connection address, in registration order.
fn workers(node: &Node) -> Vec<(&WorkerInfo, &str, Option<Instant>)> {
    let mut out: Vec<(&WorkerInfo, &str, Option<Instant>)> = node
        .peers
        .values()
        .filter_map(|p| match &p.session {
            Session::Master(m) => m
                .worker
                .as_deref()
                .map(|w| (w, p.addr.as_str(), p.conn.last_keepalive())),
            Session::Worker | Session::Local => None,
        })
        .collect();
    out.sort_by_key(|(w, _, _)| w.join_seq);
    out
}

fn rows(node: &Node) -> Vec<NodeRow> {
    let mut rows = vec![NodeRow {
        name: node.config.node_name.clone(),
        node_type: "master".to_owned(),
        version: node.config.version.clone(),
        ip: node.config.address.clone(),
    }];
    for (w, addr, _) in workers(node) {
        rows.push(NodeRow {
            name: w.name.clone(),
            node_type: w.node_type.clone(),
            version: w.version.clone(),
            ip: host_of(addr).to_owned(),
        });
    }
    rows
}

fn active_agents(node: &Node, name: &str) -> usize {
    match &node.role {
        Role::Master(m) => m.routes.values().filter(|w| *w == name).count(),
        Role::Worker(_) => 0,
    }
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
fn push_round(out: &mut String, w: &WorkerInfo, kind: SyncKind, keys: [&str; 2], dates: &Dates) {
    let [free_key, last_key] = keys;
    push_str(out, free_key);
    out.push_str(": ");
    push_bool(out, w.locks[kind.index()].is_none());
    out.push_str(", ");
    push_str(out, last_key);
    out.push_str(": {\"date_start_master\": ");
    push_date(out, &dates.start);
    out.push_str(", \"date_end_master\": ");
    push_date(out, &dates.end);
}

fn push_status(out: &mut String, node: &Node, w: &WorkerInfo, last_keepalive: Option<Instant>) {
    let h = &w.health;
    let c = h.integrity_counts;
    out.push('{');
    let integrity = ["sync_integrity_free", "last_sync_integrity"];
    push_round(out, w, SyncKind::Integrity, integrity, &h.integrity);
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
            &h.agent_info,
            ["total_agentinfo", "total_agent_info"],
            h.total_agent_info,
        ),
        (
            SyncKind::ExtraValid,
            ["sync_extravalid_free", "last_sync_agentgroups"],
            &h.extra_valid,
            ["total_agentgroups", "total_extra_valid"],
            h.total_extra_valid,
        ),
    ];
    for (kind, keys, dates, [placeholder_key, known_key], known) in agent_rounds {
        out.push_str(", ");
        push_round(out, w, kind, keys, dates);
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
    let last = last_keepalive.unwrap_or(w.joined).max(w.joined);
    push_str(out, &date(node.unix_time(last)));
    out.push('}');
}

/// `get_health(filter)`: workers (in registration order) that `filter` names (all when `None`
/// or empty), then the master when `filter` is `None` or names it.
pub(super) fn health_json(node: &Node, _now: Instant, filter: Option<&[String]>) -> String {
    let wanted = |name: &str| filter.is_none_or(|f| f.is_empty() || f.iter().any(|n| n == name));
    let rows = rows(node);
    let selected: Vec<(&WorkerInfo, &str, Option<Instant>)> = workers(node)
        .into_iter()
        .filter(|(w, _, _)| wanted(&w.name))
        .collect();
    let mut out = format!("{{\"n_connected_nodes\": {}, \"nodes\": {{", selected.len());
    let mut first = true;
    for (w, addr, last) in &selected {
        if !first {
            out.push_str(", ");
        }
        first = false;
        push_str(&mut out, &w.name);
        out.push_str(": {\"info\": ");
        let row = NodeRow {
            name: w.name.clone(),
            node_type: w.node_type.clone(),
            version: w.version.clone(),
            ip: host_of(addr).to_owned(),
        };
        push_info(&mut out, &row, active_agents(node, &w.name));
        out.push_str(", \"status\": ");
        push_status(&mut out, node, w, *last);
        out.push('}');
    }
    let master_wanted = filter.is_none_or(|f| f.contains(&node.config.node_name));
    if master_wanted && let Some(master) = rows.first() {
        if !first {
            out.push_str(", ");
        }
        push_str(&mut out, &master.name);
        out.push_str(": {\"info\": ");
        push_info(&mut out, master, active_agents(node, &master.name));
        out.push('}');
    }
    out.push_str("}}");
    out
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
pub(super) fn nodes_json(node: &Node, payload: &[u8]) -> Result<String, String> {
    let args: NodesArgs = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut rows = rows(node);
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
