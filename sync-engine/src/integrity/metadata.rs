//! The 3.9 integrity metadata document: `{path: {mod_time, cluster_item_key, merged, ..., md5}}`,
//! what each node computes over its integrity items and what the worker sends in `sync_i_w_m`.
//!
//! Upstream builds it in `cluster.walk_dir` / `get_files_status` (PROTOCOL.md §9.1). We keep it as a
//! [`BTreeMap`] keyed by validated [`InstallPath`]s, so every walk and every comparison is ordered
//! and deterministic, and a hostile peer's `..` key is refused at parse time instead of reaching a
//! file-system join. [`IntegrityMetadata::to_upstream_json`] writes the document byte for byte as
//! Python's `json.dumps` does (field order of `walk_dir`, `", "`/`": "` separators, ASCII escapes).
//!
//! Scanning (walking a [`Storage`](super::storage::Storage) and hashing) lives in [`scan`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::path::InstallPath;
use super::storage::Timestamp;
use crate::calendar::{CivilDate, UtcTime};
use crate::pyjson;

mod bounded;
pub mod scan;

pub(crate) use bounded::parse_plan_groups;

pub use scan::{MetadataScanner, ScanError, ScanOutput, ScanPlan, ScanStats, hash_file};

/// Which merged file an entry is (`merge_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MergeType {
    /// `agent-info`: one part per agent, `<name>-<ip>` (worker → master).
    #[serde(rename = "agent-info")]
    AgentInfo,
    /// `agent-groups`: one part per agent id (both directions).
    #[serde(rename = "agent-groups")]
    AgentGroups,
}

impl MergeType {
    /// The upstream spelling, also the directory under `queue/`.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeType::AgentInfo => "agent-info",
            MergeType::AgentGroups => "agent-groups",
        }
    }

    /// 3.9.5 `walk_dir`: `agent-info` if the file name contains `agent-info`, else `agent-groups`.
    pub fn from_file_name(name: &str) -> Self {
        if name.contains("agent-info") {
            MergeType::AgentInfo
        } else {
            MergeType::AgentGroups
        }
    }
}

/// The metadata of one file, with upstream's field names and (declaration = serialisation) order.
///
/// Peer documents may leave fields out (the agent-info entry has no `md5`; the
/// `agent-groups-shared.merged` entry of a comparison has neither `mod_time` nor `md5` and spells
/// `merge-type` with a hyphen), so every field but `cluster_item_key` and `merged` is optional.
/// Unknown fields are ignored, as upstream ignores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// `str(datetime.utcfromtimestamp(st_mtime))`; informative only, never compared (and any
    /// string from a peer is accepted: upstream does not parse it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mod_time: Option<String>,
    /// Key of the cluster.json item the file belongs to (`/etc/shared/`).
    pub cluster_item_key: String,
    /// True iff the file name contains `.merged`.
    pub merged: bool,
    /// Merged files only: what they merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_type: Option<MergeType>,
    /// Merged files only: `dirname + "/" + name`, with `dirname` as upstream's `walk_dir` got it
    /// (an item key keeps its trailing `/`: `/etc/lists//x.merged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_name: Option<String>,
    /// Only on the comparison's `agent-groups-shared.merged` entry (3.9.5 spells it with a hyphen).
    #[serde(
        default,
        rename = "merge-type",
        skip_serializing_if = "Option::is_none"
    )]
    pub merge_type_hyphen: Option<MergeType>,
    /// 32 lowercase hex digits of the content's MD5 (absent on agent-info entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

impl FileMetadata {
    /// Metadata of a plain (not merged) file, as `walk_dir` builds it.
    pub fn plain(mod_time: String, cluster_item_key: &str, md5: Option<String>) -> Self {
        FileMetadata {
            mod_time: Some(mod_time),
            cluster_item_key: cluster_item_key.to_owned(),
            merged: false,
            merge_type: None,
            merge_name: None,
            merge_type_hyphen: None,
            md5,
        }
    }

    /// Appends this entry as `json.dumps` writes the dict `walk_dir` / `compare_files` built.
    pub(crate) fn write_upstream_json(&self, out: &mut String) {
        let mut fields: Vec<(&str, Field<'_>)> = Vec::with_capacity(7);
        if let Some(t) = &self.mod_time {
            fields.push(("mod_time", Field::Str(t)));
        }
        fields.push(("cluster_item_key", Field::Str(&self.cluster_item_key)));
        fields.push(("merged", Field::Bool(self.merged)));
        if let Some(t) = self.merge_type {
            fields.push(("merge_type", Field::Str(t.as_str())));
        }
        if let Some(n) = &self.merge_name {
            fields.push(("merge_name", Field::Str(n)));
        }
        if let Some(t) = self.merge_type_hyphen {
            fields.push(("merge-type", Field::Str(t.as_str())));
        }
        if let Some(m) = &self.md5 {
            fields.push(("md5", Field::Str(m)));
        }
        pyjson::write_object(out, fields, |out, field| match field {
            Field::Str(s) => pyjson::write_str(out, s),
            Field::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        });
    }
}

enum Field<'a> {
    Str(&'a str),
    Bool(bool),
}

/// Why a metadata document from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Not JSON, or not the expected shape.
    #[error("metadata document is malformed: {0}")]
    Malformed(String),
    /// A key is not a valid install path (`..`, relative, NUL, ...).
    #[error("metadata key {0:?} is not a valid install path")]
    BadPath(String),
    /// More entries than the caller's limit.
    #[error("metadata document has more than {0} entries")]
    TooManyEntries(usize),
}

/// The metadata document: path (with leading `/`) → [`FileMetadata`], in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityMetadata(pub BTreeMap<InstallPath, FileMetadata>);

impl IntegrityMetadata {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a document received from a peer, refusing invalid paths and more than
    /// `max_entries` entries (the byte size is bounded earlier, by the package reader).
    /// The count is checked while parsing: the parse stops at the first entry past it.
    pub fn from_json(bytes: &[u8], max_entries: usize) -> Result<Self, MetadataError> {
        Self::from_raw(bounded::parse_entries(bytes, max_entries)?, max_entries)
    }

    pub(crate) fn from_raw(
        raw: BTreeMap<String, FileMetadata>,
        max_entries: usize,
    ) -> Result<Self, MetadataError> {
        if raw.len() > max_entries {
            return Err(MetadataError::TooManyEntries(max_entries));
        }
        raw.into_iter()
            .map(|(k, v)| {
                InstallPath::new(&k)
                    .map(|p| (p, v))
                    .map_err(|_| MetadataError::BadPath(k))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(IntegrityMetadata)
    }

    /// The document as `json.dumps(metadata)` writes it, entries in path order.
    pub fn to_upstream_json(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 160 + 2);
        write_entries(&mut out, self.0.iter());
        out
    }

    /// The document as `json.dumps` writes it with the entries in the order of `order` (upstream's
    /// dicts keep `os.listdir` insertion order); paths of `order` not in the document are skipped
    /// and entries not named in `order` follow in path order.
    pub fn to_upstream_json_ordered(&self, order: &[InstallPath]) -> String {
        let mut seen = std::collections::BTreeSet::new();
        let first = order
            .iter()
            .filter_map(|p| self.0.get_key_value(p))
            .filter(|(p, _)| seen.insert(*p));
        let mut entries: Vec<_> = first.collect();
        entries.extend(self.0.iter().filter(|(p, _)| !seen.contains(p)));
        let mut out = String::with_capacity(self.0.len() * 160 + 2);
        write_entries(&mut out, entries);
        out
    }
}

pub(crate) fn write_entries<'a>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a InstallPath, &'a FileMetadata)>,
) {
    pyjson::write_object(
        out,
        entries.into_iter().map(|(p, m)| (p.as_str(), m)),
        |out, m| m.write_upstream_json(out),
    );
}

/// `st_mtime` as CPython computes it from the `stat` timespec: `sec + nsec * 1e-9` in a double.
pub fn py_st_mtime(t: Timestamp) -> f64 {
    t.secs as f64 + f64::from(t.nanos) * 1e-9
}

/// The [`Timestamp`] that Python's `os.utime(path, (t, t))` stores for the float `t` (floor to the
/// nanosecond, as `_PyTime_ObjectToTimespec(..., ROUND_FLOOR)`); how vector mtimes become
/// file times. Non-finite input gives the epoch.
pub fn timestamp_from_py_float(t: f64) -> Timestamp {
    if !t.is_finite() {
        return Timestamp::default();
    }
    let secs = t.floor();
    let mut nanos = ((t - secs) * 1e9).floor();
    let mut secs = secs as i64;
    if nanos >= 1e9 {
        nanos -= 1e9;
        secs += 1;
    }
    Timestamp {
        secs,
        nanos: nanos.clamp(0.0, 999_999_999.0) as u32,
    }
}

/// `str(datetime.utcfromtimestamp(st_mtime))`, reproduced exactly: the float `st_mtime` of
/// [`py_st_mtime`] is split with `modf`, the fraction scaled to microseconds and rounded half-even
/// (CPython `_PyTime_ROUND_HALF_EVEN`), carrying into the seconds; the result prints as
/// `YYYY-MM-DD HH:MM:SS` plus `.ffffff` only when the microseconds are non-zero.
///
/// Years outside Python's 1..=9999 (where Python would raise) are printed anyway, with as many
/// digits as they need.
pub fn format_mod_time(t: Timestamp) -> String {
    let (secs, micros) = py_utc_seconds_micros(py_st_mtime(t));
    format_utc(secs, micros)
}

/// Seconds and microseconds of a float timestamp, as CPython's `datetime.utcfromtimestamp` splits it.
fn py_utc_seconds_micros(d: f64) -> (i64, u32) {
    let int_part = d.trunc();
    let frac = d - int_part;
    let mut micros = round_half_even(frac * 1e6);
    let mut secs = int_part;
    if micros >= 1e6 {
        micros -= 1e6;
        secs += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        secs -= 1.0;
    }
    (secs as i64, micros as u32)
}

fn round_half_even(x: f64) -> f64 {
    let rounded = x.round();
    if (x - rounded).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        rounded
    }
}

fn format_utc(secs: i64, micros: u32) -> String {
    let UtcTime {
        date: CivilDate {
            year: y,
            month: m,
            day: d,
        },
        hour: hh,
        minute: mm,
        second: ss,
    } = UtcTime::from_unix(secs);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{micros:06}")
    }
}

/// Parses a `mod_time` / merged-header time as 3.9.5's master does (`%Y-%m-%d %H:%M:%S.%f`, then
/// `%Y-%m-%d %H:%M:%S`), as UTC. `None` when it matches neither (strict: two-digit fields, 1–6
/// fraction digits, real calendar dates).
pub fn parse_mod_time(text: &str) -> Option<Timestamp> {
    let (main, frac) = match text.split_once('.') {
        Some((main, frac)) => (main, Some(frac)),
        None => (text, None),
    };
    let b = main.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = main.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y == 0
        || !(1..=12).contains(&mo)
        || d == 0
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            let micros: u32 = f.parse().ok()?;
            micros * 10u32.pow(6 - f.len() as u32) * 1000
        }
        Some(_) => return None,
    };
    let date = CivilDate {
        year: i64::from(y),
        month: mo,
        day: d,
    };
    let secs = date.to_days() * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    Some(Timestamp { secs, nanos })
}
