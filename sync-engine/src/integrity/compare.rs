//! Comparing the master's metadata with a worker's: the [`SyncPlan`] of what the worker lacks
//! (`missing`), has in excess (`extra`), has to send back (`extra_valid`) and has in another
//! version (`shared`) — 3.9.5 `cluster.compare_files(good=master, check=worker)`, PROTOCOL.md §9.3.
//!
//! Both documents are `BTreeMap`s, so the comparison is one sorted merge over the two key
//! sequences: O(n + m), no hashing, deterministic output.
//!
//! Upstream rules kept:
//! * `missing` = master keys not on the worker (master metadata); `extra` / `extra_valid` = worker
//!   keys not on the master, split by the `extra_valid` flag of the item named by the *worker
//!   entry's* `cluster_item_key`; `shared` = common keys whose `md5` differ (master metadata);
//! * changed files of the extra-valid agent-groups item become **one** entry
//!   `/queue/cluster/<worker>/agent-groups-shared.merged`, metadata
//!   `{"cluster_item_key": "/queue/agent-groups/", "merged": true, "merge-type": "agent-groups"}`,
//!   whose content the package builder makes from the master's files
//!   ([`SyncPlan::shared_merged_sources`], [`crate::integrity::merged`]);
//! * counts are the sizes of the four maps (`shared` counts the merged entry once).
//!
//! Decided here (upstream raises a `KeyError` and the whole sync fails, or trusts the worker): a
//! worker-only entry is only listed as `extra` or `extra_valid` when its `cluster_item_key` names
//! a known master-side item, its path lies where that item's walk could find it (inside the
//! directory; a direct child if the item is not recursive), its name is one the item selects and no
//! exclusion applies. Anything else goes to [`SyncPlan::rejected`] with the reason and is neither
//! deleted on the worker nor accepted on the master: a worker (or a forged document) could
//! otherwise make our worker delete `/etc/ossec.conf` or make the master import files outside the
//! integrity items. Rejected entries are not part of the upstream JSON.
//!
//! A second decision: only changed files lying *directly* in `/queue/agent-groups/` are merged
//! (upstream merges by base name, which would collapse files of subdirectories, and hard-codes
//! that directory whatever item is extra-valid); changed files of any other extra-valid location
//! stay ordinary `shared` entries.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::items::{ClusterItems, NodeType};
use super::metadata::{FileMetadata, IntegrityMetadata, MergeType, MetadataError, write_entries};
use super::path::InstallPath;
use crate::pyjson;

/// The directory whose changed files are merged into `agent-groups-shared.merged`.
pub const AGENT_GROUPS_DIR: &str = "/queue/agent-groups";

/// `cluster_item_key` written on the merged shared entry (hard-coded upstream).
pub const AGENT_GROUPS_ITEM_KEY: &str = "/queue/agent-groups/";

/// Why a worker entry was left out of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Its `cluster_item_key` names no item of our cluster.json.
    UnknownItem(String),
    /// The item exists but is not compared in integrity (its `source` is `worker`).
    NotMasterItem(String),
    /// The path is not where the item's walk could find it.
    OutsideItem(String),
    /// The item would not select this file (name not in `files`, or excluded).
    NotSelected(String),
}

/// Why a comparison could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// The worker name cannot be a directory name (`/queue/cluster/<worker>/`).
    #[error("worker name {0:?} is not a valid directory name")]
    BadWorkerName(String),
}

/// Sizes of the four groups, as upstream's `count` dict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// Entries in `missing`.
    pub missing: usize,
    /// Entries in `extra`.
    pub extra: usize,
    /// Entries in `extra_valid`.
    pub extra_valid: usize,
    /// Entries in `shared` (the merged entry counts once).
    pub shared: usize,
}

/// The result of comparing a worker's metadata with the master's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// On the master, not on the worker: ship them (master metadata).
    pub missing: IntegrityMetadata,
    /// On the worker only, item not extra-valid: the worker removes them (worker metadata).
    pub extra: IntegrityMetadata,
    /// Different content: ship the master's version (master metadata, plus the merged entry).
    pub shared: IntegrityMetadata,
    /// On the worker only, item extra-valid: the worker sends them to the master (worker metadata).
    pub extra_valid: IntegrityMetadata,
    /// Key of the `agent-groups-shared.merged` entry of `shared`, when there is one.
    pub shared_merged: Option<InstallPath>,
    /// Master files whose content goes into the merged entry, in path order (empty on a plan
    /// parsed from a peer).
    pub shared_merged_sources: Vec<InstallPath>,
    /// Worker entries left out, with the reason (see the module docs). Not serialised.
    pub rejected: BTreeMap<InstallPath, Rejection>,
}

impl SyncPlan {
    /// `compare_files(master, worker)` for worker `worker_name`. See the module docs.
    pub fn compare(
        master: &IntegrityMetadata,
        worker: &IntegrityMetadata,
        items: &ClusterItems,
        worker_name: &str,
    ) -> Result<SyncPlan, CompareError> {
        let merged_path = InstallPath::new("/queue/cluster")
            .and_then(|q| q.join(worker_name))
            .and_then(|d| d.join("agent-groups-shared.merged"))
            .map_err(|_| CompareError::BadWorkerName(worker_name.to_owned()))?;
        let agent_groups_dir = InstallPath::new(AGENT_GROUPS_DIR).ok();
        // Item lookups by key, resolved once per distinct key (a handful) rather than per entry.
        let mut extra_valid_by_key: BTreeMap<&str, bool> = BTreeMap::new();
        for item in items.items() {
            extra_valid_by_key.insert(item.key.as_str(), item.extra_valid);
        }

        let mut missing = Vec::new();
        let mut extra = Vec::new();
        let mut extra_valid = Vec::new();
        let mut shared = Vec::new();
        let mut merged_sources = Vec::new();
        let mut rejected = Vec::new();

        let mut worker_only =
            |path: &InstallPath, meta: &FileMetadata| match check_worker_entry(items, path, meta) {
                Ok(true) => extra_valid.push((path.clone(), meta.clone())),
                Ok(false) => extra.push((path.clone(), meta.clone())),
                Err(reason) => rejected.push((path.clone(), reason)),
            };
        let mut m = master.0.iter().peekable();
        let mut w = worker.0.iter().peekable();
        loop {
            let order = match (m.peek(), w.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((mk, _)), Some((wk, _))) => mk.cmp(wk),
            };
            match order {
                Ordering::Less => {
                    if let Some((path, meta)) = m.next() {
                        missing.push((path.clone(), meta.clone()));
                    }
                }
                Ordering::Greater => {
                    if let Some((path, meta)) = w.next() {
                        worker_only(path, meta);
                    }
                }
                Ordering::Equal => {
                    let (Some((path, mm)), Some((_, wm))) = (m.next(), w.next()) else {
                        break;
                    };
                    if mm.md5.is_some() && mm.md5 == wm.md5 {
                        continue;
                    }
                    let extra_valid_item = extra_valid_by_key
                        .get(mm.cluster_item_key.as_str())
                        .copied()
                        .unwrap_or(false);
                    if extra_valid_item && path.parent() == agent_groups_dir {
                        merged_sources.push(path.clone());
                    } else {
                        shared.push((path.clone(), mm.clone()));
                    }
                }
            }
        }

        let shared_merged = if merged_sources.is_empty() {
            None
        } else {
            let meta = FileMetadata {
                mod_time: None,
                cluster_item_key: AGENT_GROUPS_ITEM_KEY.to_owned(),
                merged: true,
                merge_type: None,
                merge_name: None,
                merge_type_hyphen: Some(MergeType::AgentGroups),
                md5: None,
            };
            shared.push((merged_path.clone(), meta));
            Some(merged_path)
        };
        Ok(SyncPlan {
            missing: IntegrityMetadata(missing.into_iter().collect()),
            extra: IntegrityMetadata(extra.into_iter().collect()),
            shared: IntegrityMetadata(shared.into_iter().collect()),
            extra_valid: IntegrityMetadata(extra_valid.into_iter().collect()),
            shared_merged,
            shared_merged_sources: merged_sources,
            rejected: rejected.into_iter().collect(),
        })
    }

    /// Sizes of the four groups.
    pub fn counts(&self) -> SyncCounts {
        SyncCounts {
            missing: self.missing.len(),
            extra: self.extra.len(),
            extra_valid: self.extra_valid.len(),
            shared: self.shared.len(),
        }
    }

    /// True when the worker is in sync (upstream then answers `sync_m_c_ok`).
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.shared.is_empty()
            && self.extra_valid.is_empty()
    }

    /// `json.dumps({"missing":…, "extra":…, "shared":…, "extra_valid":…})`, the master→worker
    /// `cluster_control.json`: entries in path order, except that the merged shared entry comes
    /// first in `shared`, where upstream's `itertools.chain` puts it.
    pub fn to_upstream_json(&self) -> String {
        let mut out = String::with_capacity(
            (self.missing.len() + self.extra.len() + self.shared.len() + self.extra_valid.len())
                * 160
                + 64,
        );
        let groups: [(&str, &IntegrityMetadata); 4] = [
            ("missing", &self.missing),
            ("extra", &self.extra),
            ("shared", &self.shared),
            ("extra_valid", &self.extra_valid),
        ];
        pyjson::write_object(&mut out, groups, |out, group| {
            if let (true, Some(key)) = (std::ptr::eq(group, &self.shared), &self.shared_merged) {
                let first = group.0.get_key_value(key);
                let rest = group.0.iter().filter(|(p, _)| *p != key);
                write_entries(out, first.into_iter().chain(rest));
                return;
            }
            write_entries(out, group.0.iter());
        });
        out
    }

    /// `json.dumps(count)`: `{"missing": n, "extra": n, "extra_valid": n, "shared": n}`.
    pub fn counts_upstream_json(&self) -> String {
        let c = self.counts();
        format!(
            "{{\"missing\": {}, \"extra\": {}, \"extra_valid\": {}, \"shared\": {}}}",
            c.missing, c.extra, c.extra_valid, c.shared
        )
    }

    /// Parses a master→worker `cluster_control.json`, refusing invalid paths and more than
    /// `max_entries` entries in all. The merged shared entry is recognised by its `merge-type`.
    pub fn from_upstream_json(bytes: &[u8], max_entries: usize) -> Result<SyncPlan, MetadataError> {
        // The count of all groups together is checked while parsing.
        let [missing, extra, shared, extra_valid] =
            crate::integrity::metadata::parse_plan_groups(bytes, max_entries)?;
        let shared = IntegrityMetadata::from_raw(shared, max_entries)?;
        let shared_merged = shared
            .0
            .iter()
            .find(|(_, m)| m.merge_type_hyphen.is_some())
            .map(|(p, _)| p.clone());
        Ok(SyncPlan {
            missing: IntegrityMetadata::from_raw(missing, max_entries)?,
            extra: IntegrityMetadata::from_raw(extra, max_entries)?,
            shared,
            extra_valid: IntegrityMetadata::from_raw(extra_valid, max_entries)?,
            shared_merged,
            shared_merged_sources: Vec::new(),
            rejected: BTreeMap::new(),
        })
    }
}

/// `Ok(extra_valid)` for a worker-only entry we accept, or why it is rejected.
fn check_worker_entry(
    items: &ClusterItems,
    path: &InstallPath,
    meta: &FileMetadata,
) -> Result<bool, Rejection> {
    let key = &meta.cluster_item_key;
    let item = items
        .item(key)
        .ok_or_else(|| Rejection::UnknownItem(key.clone()))?;
    if !item.source.applies_to(NodeType::Master) {
        return Err(Rejection::NotMasterItem(key.clone()));
    }
    if !item.covers(path) {
        return Err(Rejection::OutsideItem(key.clone()));
    }
    let name = path.file_name().unwrap_or_default();
    let dirs_excluded = path
        .components()
        .skip(item.key.dir().components().count())
        .any(|component| items.is_excluded(component));
    if !item.files.selects(name) || dirs_excluded {
        return Err(Rejection::NotSelected(key.clone()));
    }
    Ok(item.extra_valid)
}
