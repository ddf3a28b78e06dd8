//! Applying a received package to the local install tree, through a [`Storage`]
//! (PROTOCOL.md §9.5, §9.6).
//!
//! Two directions, two functions:
//! * [`apply_master_package`] (on a worker): when the package carries `etc/client.keys`, first
//!   remove the files of the agents it drops (3.9.5 `_check_removed_agents`, see
//!   [`super::agents`]); then write every `missing` and `shared` file, split the
//!   `agent-groups-shared.merged` entry into `queue/agent-groups/<id>`, remove every `extra` file,
//!   then remove the directories an `extra` removal left empty where the item asks for it.
//! * [`apply_worker_package`] (on the master): take back the worker's agent-groups (extra-valid,
//!   `agent-groups.merged`) and agent-info (`agent-info.merged`) parts of agents the master knows
//!   ([`KnownAgents`], from its `client.keys`), when the worker's copy is not older (3.9.5's rule:
//!   local mtime truncated to seconds vs the part's header time).
//!
//! Why the shape: upstream extracts the package first and validates little (3.9.5 concatenates
//! `WAZUH_PATH + key`, so a peer's `..` or a key in another item writes anywhere the daemon can).
//! Here each apply runs in two phases. *Validate* touches nothing: it parses `cluster_control.json`,
//! resolves every path a peer named (metadata key, ZIP member, merged part name) to a target inside
//! the directory of an integrity item allowed for this direction, checks the member list against
//! the control document, reads every member to its end (size caps, CRC), splits the merged
//! files and compares a received `client.keys` with the installed one (a large member a worker
//! streamed into a staged write of its target as the package arrived had its CRC checked then:
//! [`apply_streamed_master_package`]). Any fault refuses the **whole** package with a typed
//! [`ApplyError`] and nothing is written. *Write* then performs the plan through staged writes
//! (temporary file in the same directory) committed as one batch
//! ([`Storage::commit_write_deferred`], then one [`Storage::sync_deferred`] before the removals:
//! the data of all files is flushed together and each directory synced once, instead of two
//! fsyncs per file; the removals are one deferred batch too, [`Storage::remove_file_deferred`]
//! and a second sync), so a crash at any point leaves each file old or new, never torn, and
//! running the apply again converges. The removed agents'
//! files go before any write, so before the new `client.keys` is in place: a crash in between
//! leaves the old one, and the next apply finds the same agents to clean up.
//!
//! Direction rules (ours, stricter than upstream):
//! * master → worker: files of items whose `source` is `master` (or `all`), at a path the item's
//!   walk would select (inside its directory, direct child unless recursive, a selected name, no
//!   excluded component); the one merged entry allowed is
//!   `/queue/cluster/<this worker>/agent-groups-shared.merged`, whose parts land in the
//!   `/queue/agent-groups/` item.
//! * worker → master: only `/queue/cluster/<that worker>/agent-groups.merged` into an extra-valid
//!   item and `/queue/cluster/<that worker>/agent-info.merged` into a worker-sourced item; any
//!   other entry refuses the package, except `client.keys`, which upstream refuses with error 3007
//!   as a warning: it is skipped and reported.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, Write};

use super::agents::{
    AgentCleanup, AgentRemovalPlan, AgentWarning, KeysFile, MAX_CLIENT_KEYS, agent_info_name,
    client_keys_path, plan_agent_removal, remove_agent_files,
};
use super::items::{ClusterItems, IntegrityItem, ItemSource, NodeType};
use super::merged::{MergedError, MergedLimits, unmerge};
use super::metadata::{FileMetadata, IntegrityMetadata, MergeType, MetadataError, parse_mod_time};
use super::package::{PackageError, PackageReader};
use super::path::InstallPath;
use super::storage::{EntryKind, FileAttrs, Storage, StorageError, Timestamp, WriteId};
use super::streamed_members::StreamedMember;
use crate::integrity::compare::SyncPlan;

/// Permission bits of directories created while applying (upstream `mkdir_with_mode`, 0o770).
pub const DIR_MODE: u32 = 0o770;

/// Most entries accepted in a `cluster_control.json` (all groups together).
pub const DEFAULT_MAX_ENTRIES: usize = 400_000;

/// Bounds of an apply, beyond the package reader's own [`super::package::PackageLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyLimits {
    /// Most entries in `cluster_control.json`.
    pub max_entries: usize,
    /// Bounds for splitting merged files.
    pub merged: MergedLimits,
}

impl Default for ApplyLimits {
    fn default() -> Self {
        ApplyLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            merged: MergedLimits::default(),
        }
    }
}

/// Why a path named by the peer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRefusal {
    /// `cluster_item_key` names no item of our cluster.json.
    UnknownItem,
    /// The item exists but may not be written from this peer (wrong `source`, not extra-valid).
    ItemNotAllowed,
    /// The path is not where the item's walk could find it (outside its directory, too deep).
    OutsideItem,
    /// The item would not select this name (not in `files`, or excluded).
    NotSelected,
    /// A merged entry that is not one of the merged files this direction may carry.
    UnexpectedMerged,
    /// A plain (not merged) file from a worker: only merged agent files travel upwards.
    NotMerged,
}

/// A package refused as a whole (nothing written), or a local failure while writing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The ZIP itself is refused (see [`PackageError`]).
    #[error("package refused: {0}")]
    Package(#[from] PackageError),
    /// `cluster_control.json` is not a valid document.
    #[error("cluster_control.json refused: {0}")]
    Control(#[from] MetadataError),
    /// A path named by the peer lies outside what this direction may write.
    #[error("path {path} (item {item_key:?}) refused: {reason:?}")]
    PathRefused {
        /// The path as the peer named it (metadata key, or merged part target).
        path: String,
        /// The `cluster_item_key` the peer gave.
        item_key: String,
        /// Why.
        reason: PathRefusal,
    },
    /// A merged member could not be split (malformed record, bad part name, limits).
    #[error("merged file {path} refused: {error}")]
    Merged {
        /// The merged entry's key.
        path: String,
        /// What the splitter found.
        error: MergedError,
    },
    /// The worker name of this connection cannot be part of a path (caller error).
    #[error("worker name {0:?} is not valid")]
    BadWorkerName(String),
    /// The local storage failed during the write phase (disk full, permissions, crash). Files
    /// written before the failure are complete; running the apply again converges.
    #[error("local storage failed: {0}")]
    Storage(StorageError),
}

/// Why an entry or part was not written (reported, not an error: upstream logs these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SkipReason {
    /// `client.keys` sent by a worker (upstream error 3007).
    ClientKeysFromWorker,
    /// A merged part for an agent the master's `client.keys` does not list.
    UnknownAgent,
    /// The local copy is newer than the part's header time.
    LocalNewer,
    /// The part's header time is not a valid `mod_time`.
    BadTime,
    /// An `extra` file that was already gone.
    AlreadyAbsent,
    /// Removing an `extra` entry, or a removed agent's file, failed (it is a directory,
    /// permissions, ...).
    RemoveFailed,
}

/// What an apply did, for logs and `get_health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Files written (plain files and merged parts).
    pub written: usize,
    /// `extra` files removed.
    pub removed: usize,
    /// Directories removed because an `extra` removal left them empty.
    pub dirs_removed: usize,
    /// Entries not written or removed, with the reason, in the order met.
    pub skipped: Vec<(InstallPath, SkipReason)>,
    /// Worker, when the package carried `etc/client.keys`: the agents it drops and their files
    /// removed (see [`super::agents`]).
    pub agents: AgentCleanup,
}

impl ApplyReport {
    /// How many entries were skipped for `reason`.
    pub fn skipped_for(&self, reason: SkipReason) -> usize {
        self.skipped.iter().filter(|(_, r)| *r == reason).count()
    }
}

/// The agents a master knows, from its `etc/client.keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownAgents {
    ids: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl KnownAgents {
    /// Parses `client.keys`: lines `<id> <name> <ip> <key>`; blank lines, comment lines (`#`) and
    /// removed agents (name starting with `!` or `#`) are skipped, as are lines without the four
    /// fields.
    pub fn from_client_keys(text: &[u8]) -> Self {
        let mut agents = KnownAgents::default();
        for line in text.split(|b| *b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(id), Some(name), Some(_ip), Some(_key)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if name.starts_with(['!', '#']) || id.starts_with('!') {
                continue;
            }
            agents.ids.insert(id.to_owned());
            agents.names.insert(name.to_owned());
        }
        agents
    }

    /// True when `id` (`001`) is a registered agent: the part names of agent-groups.
    pub fn has_id(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// True when agent-info part `part` (`agent-one-10.0.0.1`) belongs to a registered agent:
    /// its [`agent_info_name`] is one. The address is not compared, since agents registered with
    /// `any` report the address they connect from.
    pub fn has_info_part(&self, part: &str) -> bool {
        self.names.contains(agent_info_name(part))
    }

    /// Number of registered agents.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no agent is registered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Content of one planned write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// Streamed from the package member with this key.
    Member(InstallPath),
    /// Bytes already in memory (a merged part).
    Bytes(Vec<u8>),
    /// Already in this staged write of the target, written as the package arrived
    /// ([`super::streamed_members`]), its CRC checked then.
    Staged(WriteId),
}

/// One validated write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedWrite {
    target: InstallPath,
    content: Content,
    attrs: FileAttrs,
}

/// The validated plan of the write phase.
#[derive(Debug, Default)]
struct WritePlan {
    writes: Vec<PlannedWrite>,
    removals: Vec<InstallPath>,
    /// Directories to remove when empty (or holding only excluded names) after the removals.
    cleanup_dirs: BTreeSet<InstallPath>,
    skipped: Vec<(InstallPath, SkipReason)>,
    /// The files of the agents a received `client.keys` drops, removed before any write.
    agents: AgentRemovalPlan,
}

/// Applies a master → worker package on worker `worker_name`. See the module docs.
pub fn apply_master_package<R, S>(
    reader: &mut PackageReader<R>,
    storage: &mut S,
    items: &ClusterItems,
    worker_name: &str,
    limits: &ApplyLimits,
) -> Result<ApplyReport, ApplyError>
where
    R: Read + Seek,
    S: Storage + ?Sized,
{
    apply_streamed_master_package(reader, storage, items, worker_name, limits, &[])
}

/// [`apply_master_package`] for a package some of whose members were written to staged writes
/// of their targets as it arrived (`streamed`, [`super::streamed_members`]; the package file
/// lacks their data). A streamed member is adopted (its staged write committed, nothing
/// copied) when the package is applied and it is one the apply writes as it is, at the local
/// header, size and CRC its central directory entry declares, and the CRC computed as it
/// arrived is that one; any other reads as zeros and refuses the package. The caller drops the
/// staged writes left (all of them when the package is refused).
pub fn apply_streamed_master_package<R, S>(
    reader: &mut PackageReader<R>,
    storage: &mut S,
    items: &ClusterItems,
    worker_name: &str,
    limits: &ApplyLimits,
    streamed: &[StreamedMember],
) -> Result<ApplyReport, ApplyError>
where
    R: Read + Seek,
    S: Storage + ?Sized,
{
    let plan = plan_master_package(reader, &*storage, items, worker_name, limits, streamed)?;
    execute(plan, reader, storage, items)
}

/// Whether member `key` of a master → worker package may be streamed into a staged write of
/// its target as it arrives ([`super::streamed_members`]): a file of an item the master may
/// write, at a path that item selects, and one the apply writes as it is (not `client.keys`,
/// which it reads, nor a merged file, which it splits: merged files live under
/// `queue/cluster/`, which no item covers).
pub fn may_stream_member(items: &ClusterItems, key: &InstallPath) -> bool {
    let is_keys = client_keys_path().is_ok_and(|keys| &keys == key);
    !is_keys
        && items.item_for_path(key).is_some_and(|item| {
            item.source.applies_to(NodeType::Master)
                && check_selected(items, item, key, true).is_ok()
        })
}

/// Applies a worker → master package (extra-valid agent-groups or agent-info) from worker
/// `worker_name` on the master. See the module docs.
pub fn apply_worker_package<R, S>(
    reader: &mut PackageReader<R>,
    storage: &mut S,
    items: &ClusterItems,
    worker_name: &str,
    agents: &KnownAgents,
    limits: &ApplyLimits,
) -> Result<ApplyReport, ApplyError>
where
    R: Read + Seek,
    S: Storage + ?Sized,
{
    let plan = plan_worker_package(reader, storage, items, worker_name, agents, limits)?;
    execute(plan, reader, storage, items)
}

/// The worker's metadata from its integrity package (`sync_i_w_m`): `cluster_control.json` only.
/// A package that carries any file member is refused: that flow ships no files, so a member
/// there could only be smuggled.
pub fn worker_metadata_from_package<R: Read + Seek>(
    reader: &PackageReader<R>,
    limits: &ApplyLimits,
) -> Result<IntegrityMetadata, ApplyError> {
    reader.check_members(std::iter::empty())?;
    Ok(IntegrityMetadata::from_json(
        reader.control_json(),
        limits.max_entries,
    )?)
}

/// `/queue/cluster/<worker>/<file>`: where merged files of this worker are named.
fn worker_merged_key(worker: &str, file: &str) -> Result<InstallPath, ApplyError> {
    InstallPath::new("/queue/cluster")
        .and_then(|q| q.join(worker))
        .and_then(|d| d.join(file))
        .map_err(|_| ApplyError::BadWorkerName(worker.to_owned()))
}

fn refused(path: &InstallPath, meta_key: &str, reason: PathRefusal) -> ApplyError {
    ApplyError::PathRefused {
        path: path.as_str().to_owned(),
        item_key: meta_key.to_owned(),
        reason,
    }
}

/// Checks that `path` is a file item `item` would select: inside its directory (direct child
/// unless recursive), a selected name (when `by_name`: merged parts are not selected by name, the
/// item's `files` names the merged file) and no excluded component below the item directory.
fn check_selected(
    items: &ClusterItems,
    item: &IntegrityItem,
    path: &InstallPath,
    by_name: bool,
) -> Result<(), PathRefusal> {
    if !item.covers(path) {
        return Err(PathRefusal::OutsideItem);
    }
    // The most specific item must be this one: `/etc/shared/x` belongs to `/etc/shared/`, so a
    // peer cannot write it under the rules (permissions, selection) of another item.
    if items.item_for_path(path).map(|i| &i.key) != Some(&item.key) {
        return Err(PathRefusal::OutsideItem);
    }
    let name = path.file_name().unwrap_or_default();
    let excluded = path
        .components()
        .skip(item.key.dir().components().count())
        .any(|c| items.is_excluded(c));
    if (by_name && !item.files.selects(name)) || excluded {
        return Err(PathRefusal::NotSelected);
    }
    Ok(())
}

/// The item named by `meta`, if it may be written from the master.
fn master_item<'a>(
    items: &'a ClusterItems,
    path: &InstallPath,
    meta: &FileMetadata,
) -> Result<&'a IntegrityItem, ApplyError> {
    let key = &meta.cluster_item_key;
    let item = items
        .item(key)
        .ok_or_else(|| refused(path, key, PathRefusal::UnknownItem))?;
    if !item.source.applies_to(NodeType::Master) {
        return Err(refused(path, key, PathRefusal::ItemNotAllowed));
    }
    Ok(item)
}

/// The item whose directory is `/queue/<merge type>` and that this direction may write.
fn merged_target_item<'a>(
    items: &'a ClusterItems,
    path: &InstallPath,
    meta: &FileMetadata,
    merge_type: MergeType,
    allowed: impl Fn(&IntegrityItem) -> bool,
) -> Result<&'a IntegrityItem, ApplyError> {
    let key = &meta.cluster_item_key;
    let item = items
        .item(key)
        .ok_or_else(|| refused(path, key, PathRefusal::UnknownItem))?;
    let expected_dir = format!("/queue/{}", merge_type.as_str());
    if item.key.dir().as_str() != expected_dir {
        return Err(refused(path, key, PathRefusal::UnexpectedMerged));
    }
    if !allowed(item) {
        return Err(refused(path, key, PathRefusal::ItemNotAllowed));
    }
    Ok(item)
}

/// A merged part ready to write: target, content, header time.
type SplitPart = (InstallPath, Vec<u8>, Option<Timestamp>);

/// Reads and splits merged member `key`; every part's target is checked against `item`.
/// Refuses merged member `key` by its declared size when it is over the merged-file limit: before
/// a byte of it is inflated (not even by `verify_all`), so a bomb costs neither memory nor time.
fn check_merged_size<R: Read + Seek>(
    reader: &PackageReader<R>,
    key: &InstallPath,
    limits: &MergedLimits,
) -> Result<(), ApplyError> {
    match reader.member_size(key) {
        Some(size) if size > limits.max_total => Err(ApplyError::Merged {
            path: key.as_str().to_owned(),
            error: MergedError::TooLarge {
                size,
                limit: limits.max_total,
            },
        }),
        _ => Ok(()),
    }
}

fn split_member<R: Read + Seek>(
    reader: &mut PackageReader<R>,
    items: &ClusterItems,
    item: &IntegrityItem,
    key: &InstallPath,
    merge_type: MergeType,
    limits: &ApplyLimits,
) -> Result<Vec<SplitPart>, ApplyError> {
    let merged_err = |error| ApplyError::Merged {
        path: key.as_str().to_owned(),
        error,
    };
    check_merged_size(reader, key, &limits.merged)?;
    let bytes = reader.read_member(key, limits.merged.max_total)?;
    let parts = unmerge(&bytes, &limits.merged)
        .into_result()
        .map_err(merged_err)?;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let target = part.install_path(merge_type).map_err(|_| {
            merged_err(MergedError::BadName {
                offset: 0,
                name: part.name.to_owned(),
            })
        })?;
        check_selected(items, item, &target, false)
            .map_err(|reason| refused(&target, item.key.as_str(), reason))?;
        out.push((target, part.content.to_vec(), part.mtime()));
    }
    Ok(out)
}

fn plan_master_package<R: Read + Seek, S: Storage + ?Sized>(
    reader: &mut PackageReader<R>,
    storage: &S,
    items: &ClusterItems,
    worker_name: &str,
    limits: &ApplyLimits,
    streamed: &[StreamedMember],
) -> Result<WritePlan, ApplyError> {
    let shared_merged_key = worker_merged_key(worker_name, "agent-groups-shared.merged")?;
    let plan = SyncPlan::from_upstream_json(reader.control_json(), limits.max_entries)?;
    let shipped: Vec<&InstallPath> = plan.missing.0.keys().chain(plan.shared.0.keys()).collect();
    reader.check_members(shipped.iter().copied())?;

    let mut out = WritePlan::default();
    let mut merged_members = Vec::new();
    for (path, meta) in plan.missing.0.iter().chain(plan.shared.0.iter()) {
        if meta.merged {
            let merge_type = meta.merge_type_hyphen.or(meta.merge_type);
            if path != &shared_merged_key || merge_type != Some(MergeType::AgentGroups) {
                return Err(refused(
                    path,
                    &meta.cluster_item_key,
                    PathRefusal::UnexpectedMerged,
                ));
            }
            let item = merged_target_item(items, path, meta, MergeType::AgentGroups, |i| {
                i.source.applies_to(NodeType::Master)
            })?;
            check_merged_size(reader, path, &limits.merged)?;
            merged_members.push((path.clone(), item));
            continue;
        }
        let item = master_item(items, path, meta)?;
        check_selected(items, item, path, true)
            .map_err(|r| refused(path, &meta.cluster_item_key, r))?;
        let mtime = meta.mod_time.as_deref().and_then(parse_mod_time);
        out.writes.push(PlannedWrite {
            target: path.clone(),
            content: Content::Member(path.clone()),
            attrs: FileAttrs {
                mode: item.permissions,
                mtime,
            },
        });
    }
    for (path, meta) in &plan.extra.0 {
        let item = master_item(items, path, meta)?;
        check_selected(items, item, path, true)
            .map_err(|r| refused(path, &meta.cluster_item_key, r))?;
        out.removals.push(path.clone());
        // Never the item directory itself (upstream would rmtree `etc/shared` when an extra
        // file lay directly in it and it became empty).
        if let Some(dir) = path.parent().filter(|_| item.remove_subdirs_if_empty)
            && dir.starts_with(item.key.dir())
            && &dir != item.key.dir()
        {
            out.cleanup_dirs.insert(dir);
        }
    }
    let keys_path = client_keys_path().map_err(ApplyError::Storage)?;
    let checked = adopt_streamed(&mut out.writes, reader, streamed, &keys_path);
    // Sizes and CRCs of every member before anything is written (a streamed member's were
    // checked as it arrived).
    reader.verify_all_but(&checked)?;
    if out.writes.iter().any(|w| w.target == keys_path) {
        out.agents = plan_received_keys(reader, storage, &keys_path)?;
    }
    for (key, item) in merged_members {
        for (target, data, mtime) in
            split_member(reader, items, item, &key, MergeType::AgentGroups, limits)?
        {
            out.writes.push(PlannedWrite {
                target,
                content: Content::Bytes(data),
                attrs: FileAttrs {
                    mode: item.permissions,
                    mtime,
                },
            });
        }
    }
    Ok(out)
}

/// Turns the planned copies of streamed members into commits of their staged writes, where the
/// package's central directory agrees with what arrived (see [`apply_streamed_master_package`]);
/// the keys of the members adopted.
fn adopt_streamed<R: Read + Seek>(
    writes: &mut [PlannedWrite],
    reader: &PackageReader<R>,
    streamed: &[StreamedMember],
    keys_path: &InstallPath,
) -> BTreeSet<InstallPath> {
    let mut adopted = BTreeSet::new();
    for write in writes {
        let Content::Member(key) = &write.content else {
            continue;
        };
        let Some(member) = streamed.iter().find(|s| &s.key == key) else {
            continue;
        };
        let agrees = reader.member(key).is_some_and(|m| {
            m.stored
                && m.local_at == member.local_at
                && m.size == member.size
                && m.crc == member.crc
        });
        if agrees && member.crc_ok && key != keys_path && write.target == *key {
            adopted.insert(key.clone());
            write.content = Content::Staged(member.write);
        }
    }
    adopted
}

/// Compares the received `client.keys` (member `key`, already verified) with the installed one.
fn plan_received_keys<R: Read + Seek, S: Storage + ?Sized>(
    reader: &mut PackageReader<R>,
    storage: &S,
    key: &InstallPath,
) -> Result<AgentRemovalPlan, ApplyError> {
    let size = reader.member_size(key).unwrap_or(0);
    if size > MAX_CLIENT_KEYS {
        return Ok(AgentRemovalPlan {
            warnings: vec![AgentWarning::KeysTooLarge {
                file: KeysFile::Received,
                size,
            }],
            ..AgentRemovalPlan::default()
        });
    }
    let received = reader.read_member(key, MAX_CLIENT_KEYS)?;
    plan_agent_removal(storage, &received).map_err(ApplyError::Storage)
}

fn plan_worker_package<R: Read + Seek, S: Storage + ?Sized>(
    reader: &mut PackageReader<R>,
    storage: &S,
    items: &ClusterItems,
    worker_name: &str,
    agents: &KnownAgents,
    limits: &ApplyLimits,
) -> Result<WritePlan, ApplyError> {
    let groups_key = worker_merged_key(worker_name, "agent-groups.merged")?;
    let info_key = worker_merged_key(worker_name, "agent-info.merged")?;
    let control = IntegrityMetadata::from_json(reader.control_json(), limits.max_entries)?;
    reader.check_members(control.0.keys())?;

    let mut out = WritePlan::default();
    let mut merged_members = Vec::new();
    for (path, meta) in &control.0 {
        if path.file_name() == Some("client.keys") {
            out.skipped
                .push((path.clone(), SkipReason::ClientKeysFromWorker));
            continue;
        }
        if !meta.merged {
            return Err(refused(
                path,
                &meta.cluster_item_key,
                PathRefusal::NotMerged,
            ));
        }
        let merge_type = meta.merge_type.or(meta.merge_type_hyphen);
        let (merge_type, allowed): (MergeType, fn(&IntegrityItem) -> bool) = match merge_type {
            Some(MergeType::AgentGroups) if path == &groups_key => {
                (MergeType::AgentGroups, |i| i.extra_valid)
            }
            Some(MergeType::AgentInfo) if path == &info_key => (MergeType::AgentInfo, |i| {
                i.source == ItemSource::Worker || i.source == ItemSource::All
            }),
            _ => {
                return Err(refused(
                    path,
                    &meta.cluster_item_key,
                    PathRefusal::UnexpectedMerged,
                ));
            }
        };
        let item = merged_target_item(items, path, meta, merge_type, allowed)?;
        check_merged_size(reader, path, &limits.merged)?;
        merged_members.push((path.clone(), item, merge_type));
    }
    reader.verify_all()?;
    for (key, item, merge_type) in merged_members {
        for (target, data, mtime) in split_member(reader, items, item, &key, merge_type, limits)? {
            let name = target.file_name().unwrap_or_default();
            let known = match merge_type {
                MergeType::AgentGroups => agents.has_id(name),
                MergeType::AgentInfo => agents.has_info_part(name),
            };
            if !known {
                out.skipped.push((target, SkipReason::UnknownAgent));
                continue;
            }
            let Some(mtime) = mtime else {
                out.skipped.push((target, SkipReason::BadTime));
                continue;
            };
            // 3.9.5: skip when the local file is newer, its mtime truncated to whole seconds.
            if let Ok(Some(local)) = storage.stat(&target)
                && local.kind == EntryKind::File
                && Timestamp::from_secs(local.mtime.secs) > mtime
            {
                out.skipped.push((target, SkipReason::LocalNewer));
                continue;
            }
            out.writes.push(PlannedWrite {
                target,
                content: Content::Bytes(data),
                attrs: FileAttrs {
                    mode: item.permissions,
                    mtime: Some(mtime),
                },
            });
        }
    }
    Ok(out)
}

/// An `io::Write` that appends to a staged write, keeping the storage error for the caller.
struct StagedSink<'a, S: Storage + ?Sized> {
    storage: &'a mut S,
    id: WriteId,
    error: Option<StorageError>,
}

impl<S: Storage + ?Sized> Write for StagedSink<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.storage.append(self.id, buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                let text = e.to_string();
                self.error = Some(e);
                Err(io::Error::other(text))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Creates `dir` (and parents) with [`DIR_MODE`] unless it exists.
fn ensure_dir<S: Storage + ?Sized>(
    storage: &mut S,
    dir: &InstallPath,
    known: &mut BTreeSet<InstallPath>,
) -> Result<(), StorageError> {
    if known.contains(dir) {
        return Ok(());
    }
    if storage.stat(dir)?.is_none() {
        storage.create_dir_all(dir, DIR_MODE)?;
    }
    known.insert(dir.clone());
    Ok(())
}

/// Stages one planned write and commits it deferred (put in place by the caller's
/// [`Storage::sync_deferred`]).
fn write_one<R: Read + Seek, S: Storage + ?Sized>(
    write: &PlannedWrite,
    reader: &mut PackageReader<R>,
    storage: &mut S,
) -> Result<(), ApplyError> {
    let id = match &write.content {
        // Filled as the package arrived.
        Content::Staged(id) => *id,
        Content::Bytes(data) => stage(write, storage, |storage, id| {
            storage.append(id, data).map_err(ApplyError::Storage)
        })?,
        Content::Member(key) => stage(write, storage, |storage, id| {
            let mut sink = StagedSink {
                storage,
                id,
                error: None,
            };
            let copied = reader.copy_member(key, &mut sink);
            let error = sink.error.take();
            copied
                .map(|_| ())
                .map_err(|e| error.map_or(ApplyError::Package(e), ApplyError::Storage))
        })?,
    };
    storage
        .commit_write_deferred(id, &write.attrs)
        .map_err(ApplyError::Storage)
}

/// A staged write of `write`'s target filled by `fill` (dropped when that fails).
fn stage<S: Storage + ?Sized>(
    write: &PlannedWrite,
    storage: &mut S,
    fill: impl FnOnce(&mut S, WriteId) -> Result<(), ApplyError>,
) -> Result<WriteId, ApplyError> {
    let id = storage
        .begin_write(&write.target)
        .map_err(ApplyError::Storage)?;
    // Committed durable: a large file's data may go to the disk as it is copied.
    storage.write_behind(id);
    if let Err(e) = fill(storage, id) {
        let _ = storage.abort_write(id);
        return Err(e);
    }
    Ok(id)
}

/// Every planned write, deferred; counted in `report` as they are staged.
fn write_all<R: Read + Seek, S: Storage + ?Sized>(
    writes: &[PlannedWrite],
    reader: &mut PackageReader<R>,
    storage: &mut S,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let mut dirs = BTreeSet::new();
    storage.expect_deferred(writes.len());
    for write in writes {
        if let Some(parent) = write.target.parent() {
            ensure_dir(storage, &parent, &mut dirs).map_err(ApplyError::Storage)?;
        }
        write_one(write, reader, storage)?;
        report.written += 1;
    }
    Ok(())
}

fn execute<R: Read + Seek, S: Storage + ?Sized>(
    plan: WritePlan,
    reader: &mut PackageReader<R>,
    storage: &mut S,
    items: &ClusterItems,
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport {
        skipped: plan.skipped,
        ..ApplyReport::default()
    };
    let mut failed = Vec::new();
    remove_agent_files(storage, plan.agents, &mut report.agents, &mut failed)
        .map_err(ApplyError::Storage)?;
    report.skipped.extend(
        failed
            .into_iter()
            .map(|(path, _)| (path, SkipReason::RemoveFailed)),
    );
    let written = write_all(&plan.writes, reader, storage, &mut report);
    // One sync for the whole batch, also after a failed write (the files committed before it are
    // complete, and nothing may stay pending); before the removals, which list directories.
    let synced = storage.sync_deferred().map_err(ApplyError::Storage);
    written.and(synced)?;
    // The removals as one batch too: each directory synced once, by the sync below.
    for path in &plan.removals {
        match storage.remove_file_deferred(path) {
            Ok(true) => report.removed += 1,
            Ok(false) => report
                .skipped
                .push((path.clone(), SkipReason::AlreadyAbsent)),
            Err(e) if e.kind == super::storage::StorageErrorKind::Crashed => {
                return Err(ApplyError::Storage(e));
            }
            Err(_) => report
                .skipped
                .push((path.clone(), SkipReason::RemoveFailed)),
        }
    }
    storage.sync_deferred().map_err(ApplyError::Storage)?;
    // Deepest first, so that a parent emptied by its child's removal goes too.
    let mut by_depth: BTreeMap<(std::cmp::Reverse<usize>, InstallPath), ()> = BTreeMap::new();
    for dir in plan.cleanup_dirs {
        by_depth.insert((std::cmp::Reverse(dir.components().count()), dir), ());
    }
    for (_, dir) in by_depth.into_keys() {
        let entries = match storage.list_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind == super::storage::StorageErrorKind::NotFound => continue,
            Err(e) => return Err(ApplyError::Storage(e)),
        };
        let removable = entries.iter().all(|e| {
            e.kind == EntryKind::File && items.excluded_files.iter().any(|f| f == &e.name)
        });
        if removable && storage.remove_dir_all(&dir).map_err(ApplyError::Storage)? {
            report.dirs_removed += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_parsing_skips_removed_agents() {
        let keys = b"001 agent-one 10.0.0.1 k1\n002 !agent-two any k2\n# comment\n\n003 agent-three any k3\nbad line\n";
        let agents = KnownAgents::from_client_keys(keys);
        assert!(agents.has_id("001"));
        assert!(!agents.has_id("002"));
        assert!(agents.has_id("003"));
        assert!(agents.has_info_part("agent-one-10.0.0.1"));
        assert!(agents.has_info_part("agent-one-any"));
        assert!(agents.has_info_part("agent-three-10.9.9.9"));
        assert!(!agents.has_info_part("agent-two-10.0.0.2"));
        assert!(!agents.has_info_part("agent-10.0.0.1"));
        assert!(!agents.has_info_part("-agent-one"));
        assert_eq!(agents.len(), 2);
    }
}
