//! The one place that runs [`Effect`]s against a [`Storage`]: the [`EffectExecutor`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Effect, EffectError, EffectOutput, EffectResult, IncomingFileId};
use crate::dapi::builtin::{AgentDatabase, AgentRecord, NoAgentDatabase};
use crate::dapi::{ApiCall, BuiltinExecutor};
use crate::integrity::agents::{KeysFile, client_keys_path, parse_client_keys};
use crate::integrity::apply::{
    DIR_MODE, KnownAgents, apply_streamed_master_package, apply_worker_package, may_stream_member,
};
use crate::integrity::compare::SyncPlan;
use crate::integrity::items::ClusterItems;
use crate::integrity::merged::{merge_dir, merge_from_storage, min_mtime, unmerge};
use crate::integrity::metadata::scan::ScanRequest;
use crate::integrity::metadata::{
    FileMetadata, IntegrityMetadata, MergeType, MetadataScanner, ScanError,
};
use crate::integrity::package::{PackageError, PackageReader};
use crate::integrity::path::InstallPath;
use crate::integrity::spliced_package::SplicedPackage;
use crate::integrity::staged_package::{PackageTarget, StagedPackage, build_master_package};
use crate::integrity::storage::{
    EntryKind, FileAttrs, PositionalReader, Storage, StorageError, StorageErrorKind, Timestamp,
    WriteId,
};
use crate::integrity::streamed_members::{MemberStream, Span, StreamedMember, received_package};
use crate::roles::config::{DESCRIPTORS_PER_INCOMING_FILE, NodeConfig, NodeLimits, NodeType};
use crate::roles::sync_kind::SyncKind;

/// Permission bits of package files and merged files the node writes (upstream: umask 0o007).
pub const PACKAGE_MODE: u32 = 0o660;

/// Attributes of the packages the node builds.
const PACKAGE_ATTRS: FileAttrs = FileAttrs {
    mode: PACKAGE_MODE,
    mtime: None,
};

/// Most descriptors the executor keeps open from one effect to the next for large package
/// members: a master's members left in their files (one each, until the package is removed) and
/// a worker's members streamed into staged writes (a file and its directory each, until the
/// apply). Taken from the adapter's reserve for the node's own disk work
/// (`RESERVED_DESCRIPTORS` of the host adapter, 128), not from the budget of files being
/// received. Past it a package is built, or received, as without splices: members copied.
pub const MAX_HELD_DESCRIPTORS: usize = 32;

/// Largest `client.keys` read to learn the known agents (the same bound as the removed-agent
/// comparison's).
pub use crate::integrity::agents::MAX_CLIENT_KEYS;

/// Runs [`Effect`]s against a [`Storage`]; keeps the incremental scanner caches and the staged
/// writes of files being received.
#[derive(Debug)]
pub struct EffectExecutor<S: Storage> {
    storage: S,
    items: ClusterItems,
    node_name: String,
    limits: NodeLimits,
    /// Cache of the master-owned items' scan (master recalculation, worker integrity package).
    scanner: MetadataScanner,
    /// Separate cache for the worker-type scan (agent-info): a scan replaces its scanner's cache.
    worker_scanner: MetadataScanner,
    /// The storage's staged write of each file being received.
    open_writes: BTreeMap<IncomingFileId, WriteId>,
    /// The package path and member walk of each package being received (a file the node says
    /// is the master's package, [`Effect::BeginFile`]: see [`crate::integrity::streamed_members`]).
    receiving: BTreeMap<IncomingFileId, (InstallPath, MemberStream)>,
    /// The members streamed into staged writes of the received packages waiting to be applied,
    /// by package path (each staged write is committed by the apply or dropped).
    streamed_packages: BTreeMap<InstallPath, Vec<StreamedMember>>,
    /// The master packages built with members left in their own files, by package path:
    /// [`Effect::ReadChunk`] reads them through this, and [`Effect::RemoveFile`] drops them.
    spliced_packages: BTreeMap<InstallPath, SplicedPackage>,
    /// The install's agent database (`var/db/global.db`) as rows, when it has one.
    agent_database: Option<Vec<AgentRecord>>,
    /// The `client.keys` text the master last parsed, and what it parsed to: a master applies
    /// one agent-info package per worker per round, and parsing the same 100,000-agent file each
    /// time cost more than comparing it to the last one.
    known_agents: Option<(Vec<u8>, KnownAgents)>,
}

impl<S: Storage> EffectExecutor<S> {
    /// An executor for the node described by `config`, over `storage` (its install root).
    pub fn new(storage: S, config: &NodeConfig) -> Self {
        EffectExecutor {
            storage,
            items: config.items.clone(),
            node_name: config.node_name.clone(),
            limits: config.limits.clone(),
            scanner: MetadataScanner::new(),
            worker_scanner: MetadataScanner::new(),
            open_writes: BTreeMap::new(),
            receiving: BTreeMap::new(),
            streamed_packages: BTreeMap::new(),
            spliced_packages: BTreeMap::new(),
            agent_database: None,
            known_agents: None,
        }
    }

    /// Gives the install an agent database holding `records` (`None`: no database), which the
    /// built-in API functions then read as the real adapter reads `var/db/global.db`.
    pub fn set_agent_database(&mut self, records: Option<Vec<AgentRecord>>) {
        self.agent_database = records;
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, mutably (tests and simulations edit files between rounds).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Staged writes currently open (files being received).
    pub fn open_writes(&self) -> usize {
        self.open_writes.len()
    }

    /// The files whose staged write is open, in id order (to check them against what the node
    /// believes is open: [`Node::open_incoming_files`](crate::roles::Node::open_incoming_files)).
    pub fn open_files(&self) -> Vec<IncomingFileId> {
        self.open_writes.keys().copied().collect()
    }

    /// Runs one effect. `now_unix` is the wall-clock time used for scans (racy window, the
    /// worker's 30-minute filter), merged-file and package dates.
    pub fn execute(&mut self, effect: &Effect, now_unix: Timestamp) -> EffectResult {
        match effect {
            Effect::ScanIntegrity => {
                let output = self.scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Master,
                        node_name: &self.node_name,
                        now: now_unix,
                    },
                )?;
                Ok(EffectOutput::Scanned {
                    metadata: output.metadata,
                    stats: output.stats,
                })
            }
            Effect::BuildWorkerPackage {
                kind,
                path,
                extra_valid,
            } => self.build_worker_package(*kind, path, extra_valid, now_unix),
            Effect::ReadWorkerIntegrity { path, max_entries } => {
                let reader = self.open_package(path)?;
                if !reader.members().is_empty() {
                    let count = reader.members().len();
                    return Err(PackageError::UnexpectedMembers { count }.into());
                }
                let metadata = IntegrityMetadata::from_json(
                    reader.control_json(),
                    (*max_entries).min(self.limits.apply.max_entries),
                )?;
                Ok(EffectOutput::WorkerMetadata(metadata))
            }
            Effect::BuildMasterPackage { path, plan } => {
                self.ensure_parent(path)?;
                // A package built again at the same path replaces the earlier one.
                self.spliced_packages.remove(path);
                let splices = MAX_HELD_DESCRIPTORS.saturating_sub(self.held_descriptors());
                let target = PackageTarget {
                    path,
                    limit: self.limits.max_package_file,
                    attrs: &PACKAGE_ATTRS,
                    splices,
                };
                let built = build_master_package(
                    &mut self.storage,
                    target,
                    plan,
                    &self.limits.merged,
                    now_unix,
                )?;
                if let Some(spliced) = built.spliced {
                    self.spliced_packages.insert(path.clone(), spliced);
                }
                let members = plan.missing.len() + plan.shared.len();
                let entries = members + plan.extra.len() + plan.extra_valid.len();
                Ok(EffectOutput::PackageBuilt {
                    members,
                    entries,
                    size: built.size,
                })
            }
            Effect::ApplyMasterPackage { path } => self.apply_master(path),
            Effect::ApplyWorkerPackage { kind, worker, path } => {
                self.apply_worker(*kind, worker, path)
            }
            Effect::ReadChunk { path, offset, len } => {
                let mut buf = vec![0u8; *len];
                let mut filled = 0;
                let spliced = self.spliced_packages.get(path);
                while filled < buf.len() {
                    let at = offset + filled as u64;
                    let into = &mut buf[filled..];
                    let n = match spliced {
                        Some(package) => package
                            .read_at(at, into, |at, into| self.storage.read_at(path, at, into))?,
                        None => self.storage.read_at(path, at, into)?,
                    };
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(EffectOutput::Chunk(Bytes::from(buf)))
            }
            Effect::BeginFile {
                path,
                file,
                package,
            } => {
                if let Some(parent) = path.parent()
                    && self.storage.stat(&parent)?.is_none()
                {
                    self.storage.create_dir_all(&parent, DIR_MODE)?;
                }
                let id = self.storage.begin_write(path)?;
                if let Some(stale) = self.open_writes.insert(*file, id) {
                    // Ids are never reused: a second begin of one file is the node's bug; the
                    // older staged write is not left behind.
                    let _ = self.storage.abort_write(stale);
                    self.stop_receiving(*file);
                }
                if *package {
                    self.receiving
                        .insert(*file, (path.clone(), MemberStream::default()));
                }
                Ok(EffectOutput::Done)
            }
            Effect::AppendFile { file, data } => {
                let id = self.open_write(*file)?;
                let appended = match self.receiving.remove(file) {
                    None => self.storage.append(id, data),
                    Some((path, mut stream)) => {
                        let appended = self.append_streamed(id, &mut stream, data);
                        self.receiving.insert(*file, (path, stream));
                        appended
                    }
                };
                if let Err(e) = appended {
                    self.open_writes.remove(file);
                    let _ = self.storage.abort_write(id);
                    self.stop_receiving(*file);
                    return Err(e.into());
                }
                Ok(EffectOutput::Done)
            }
            Effect::CommitFile { file } => {
                let id = self.open_write(*file)?;
                self.open_writes.remove(file);
                let streamed = self.receiving.remove(file);
                let attrs = FileAttrs {
                    mode: PACKAGE_MODE,
                    mtime: None,
                };
                // In place at once (the next effect reads it) and volatile: a received file
                // lives in this link's directory under `queue/cluster/`, is consumed within the
                // round and removed, and nothing reads one after a restart (the directory is
                // emptied at start). What the apply writes from it is made durable there.
                let committed = self.storage.commit_write_volatile(id, &attrs);
                if let Some((path, stream)) = streamed {
                    let members = stream.finish();
                    if committed.is_err() {
                        self.drop_streamed(&members);
                    } else if !members.is_empty()
                        && let Some(older) = self.streamed_packages.insert(path, members)
                    {
                        self.drop_streamed(&older);
                    }
                }
                committed?;
                Ok(EffectOutput::Done)
            }
            Effect::AbortFile { file } => {
                self.stop_receiving(*file);
                if let Some(id) = self.open_writes.remove(file) {
                    self.storage.abort_write(id)?;
                }
                Ok(EffectOutput::Done)
            }
            Effect::StatFile { path } => Ok(EffectOutput::Stat(self.storage.stat(path)?)),
            Effect::RemoveFile { path } => {
                self.spliced_packages.remove(path);
                if let Some(members) = self.streamed_packages.remove(path) {
                    self.drop_streamed(&members);
                }
                self.storage.remove_file(path)?;
                Ok(EffectOutput::Done)
            }
            Effect::ReadClientKeys => {
                let text = match self.storage.read(&client_keys_path()?, MAX_CLIENT_KEYS) {
                    Ok(text) => text,
                    Err(e) if e.kind == StorageErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                Ok(EffectOutput::ClientKeys(parse_client_keys(
                    &text,
                    KeysFile::Installed,
                )?))
            }
            Effect::RemoveEmptyDir { path } => {
                self.storage.remove_empty_dir(path)?;
                Ok(EffectOutput::Done)
            }
            Effect::CreateDir { path } => {
                if self.storage.stat(path)?.is_none() {
                    self.storage.create_dir_all(path, DIR_MODE)?;
                }
                Ok(EffectOutput::Done)
            }
        }
    }

    /// Runs a distributed API call ([`Output::ApiCall`](crate::roles::Output::ApiCall)) with the
    /// executor built into the node, over the same storage; the answer for
    /// [`Node::handle_api_done`](crate::roles::Node::handle_api_done).
    pub fn run_api_call(&mut self, call: &ApiCall, now_unix: Timestamp) -> String {
        let database: &dyn AgentDatabase = match &self.agent_database {
            Some(records) => records,
            None => &NoAgentDatabase,
        };
        BuiltinExecutor.run_with_agents(&self.storage, database, call, now_unix)
    }

    /// Appends `data` of a received package: large stored members to staged writes of their
    /// targets (opened here, only in a directory that exists and where the apply could write
    /// them), the rest to the package's staged write `id`.
    fn append_streamed(
        &mut self,
        id: WriteId,
        stream: &mut MemberStream,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let mut held =
            self.held_descriptors() + DESCRIPTORS_PER_INCOMING_FILE * stream.members().len();
        let (storage, items) = (&mut self.storage, &self.items);
        let spans = stream.feed(data, &mut |key, _size| {
            if held + DESCRIPTORS_PER_INCOMING_FILE > MAX_HELD_DESCRIPTORS
                || !may_stream_member(items, key)
            {
                return None;
            }
            let parent = key.parent()?;
            if !matches!(storage.stat(&parent), Ok(Some(st)) if st.kind == EntryKind::Dir) {
                return None;
            }
            let write = storage.begin_write(key).ok()?;
            storage.write_behind(write);
            held += DESCRIPTORS_PER_INCOMING_FILE;
            Some(write)
        });
        for span in spans {
            match span {
                Span::Package(range) => storage.append(id, &data[range])?,
                Span::Member(write, range) => storage.append(write, &data[range])?,
            }
        }
        Ok(())
    }

    /// The descriptors held for large package members now (see [`MAX_HELD_DESCRIPTORS`]); a
    /// walk under way (taken out of `receiving` while it runs) counts its own.
    fn held_descriptors(&self) -> usize {
        let spliced: usize = self
            .spliced_packages
            .values()
            .map(SplicedPackage::len)
            .sum();
        let streamed: usize = self
            .receiving
            .values()
            .map(|(_, stream)| stream.members().len())
            .chain(self.streamed_packages.values().map(Vec::len))
            .sum();
        spliced + DESCRIPTORS_PER_INCOMING_FILE * streamed
    }

    /// Stops walking received file `file`: its streamed members' staged writes are dropped.
    fn stop_receiving(&mut self, file: IncomingFileId) {
        if let Some((_, stream)) = self.receiving.remove(&file) {
            self.drop_streamed(&stream.finish());
        }
    }

    /// Drops the staged writes of streamed members (one committed already is not there any
    /// more: nothing to drop).
    fn drop_streamed(&mut self, members: &[StreamedMember]) {
        for member in members {
            let _ = self.storage.abort_write(member.write);
        }
    }

    fn open_write(&self, file: IncomingFileId) -> Result<WriteId, EffectError> {
        self.open_writes
            .get(&file)
            .copied()
            .ok_or(EffectError::NoOpenWrite(file))
    }

    /// Removes a file whose removal failing changes nothing for the caller (a consumed package):
    /// a leftover is overwritten or cleaned by the next round.
    fn remove_quietly(&mut self, path: &InstallPath) {
        let _ = self.storage.remove_file(path);
    }

    /// `/queue/cluster/<this node>/<file>`, created if needed.
    fn own_cluster_file(&mut self, file: &str) -> Result<InstallPath, EffectError> {
        let bad = |e: crate::integrity::path::PathError| {
            EffectError::Scan(ScanError::BadNodeName(format!("{}: {e}", self.node_name)))
        };
        let dir = InstallPath::new("/queue/cluster")
            .and_then(|q| q.join(&self.node_name))
            .map_err(bad)?;
        if self.storage.stat(&dir)?.is_none() {
            self.storage.create_dir_all(&dir, DIR_MODE)?;
        }
        dir.join(file).map_err(bad)
    }

    /// Writes this node's merged file `key` (under `queue/cluster/`, dated `now`) for a package:
    /// in place at once, not durable (see [`Storage::commit_write_volatile`]).
    fn write_scratch(
        &mut self,
        key: &InstallPath,
        data: &[u8],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let attrs = FileAttrs {
            mode: PACKAGE_MODE,
            mtime: Some(now),
        };
        let id = self.storage.begin_write(key)?;
        match self.storage.append(id, data) {
            Ok(()) => self.storage.commit_write_volatile(id, &attrs),
            Err(e) => {
                let _ = self.storage.abort_write(id);
                Err(e)
            }
        }
    }

    /// Creates the directory of `path` unless it exists.
    fn ensure_parent(&mut self, path: &InstallPath) -> Result<(), EffectError> {
        if let Some(parent) = path.parent()
            && self.storage.stat(&parent)?.is_none()
        {
            self.storage.create_dir_all(&parent, DIR_MODE)?;
        }
        Ok(())
    }

    fn build_worker_package(
        &mut self,
        kind: SyncKind,
        path: &InstallPath,
        extra_valid: &[InstallPath],
        now: Timestamp,
    ) -> EffectResult {
        // The files to pack, decided first; packed once the package's staged write is open.
        let mut members: Vec<InstallPath> = Vec::new();
        // `entries`: files described (integrity) or merged parts sent (extra-valid, agent-info).
        let (entries, control) = match kind {
            SyncKind::Integrity => {
                let output = self.scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Master,
                        node_name: &self.node_name,
                        now,
                    },
                )?;
                (0, output.metadata)
            }
            SyncKind::ExtraValid => {
                let merged =
                    merge_from_storage(&self.storage, extra_valid, None, &self.limits.merged)?;
                if merged.parts == 0 {
                    return Ok(EffectOutput::NothingToSend);
                }
                let key = self.own_cluster_file("agent-groups.merged")?;
                self.write_scratch(&key, &merged.bytes, now)?;
                members.push(key.clone());
                let meta = FileMetadata {
                    mod_time: None,
                    cluster_item_key: "/queue/agent-groups/".to_owned(),
                    merged: true,
                    merge_type: Some(MergeType::AgentGroups),
                    merge_name: Some(key.as_str().to_owned()),
                    merge_type_hyphen: None,
                    md5: None,
                };
                (
                    merged.parts,
                    Arc::new(IntegrityMetadata([(key, meta)].into_iter().collect())),
                )
            }
            SyncKind::AgentInfo => {
                let newer_than = self.items.sync_options.get_agentinfo_newer_than;
                let merged = merge_dir(
                    &self.storage,
                    MergeType::AgentInfo,
                    None,
                    min_mtime(now, newer_than),
                    &self.limits.merged,
                )?;
                if merged.parts == 0 {
                    return Ok(EffectOutput::NothingToSend);
                }
                let key = self.own_cluster_file("agent-info.merged")?;
                self.write_scratch(&key, &merged.bytes, now)?;
                // 3.9.5 takes the metadata from a worker-type walk, which finds the merged file.
                let output = self.worker_scanner.scan(
                    &self.storage,
                    &self.items,
                    &ScanRequest {
                        node_type: NodeType::Worker,
                        node_name: &self.node_name,
                        now,
                    },
                )?;
                if output.metadata.is_empty() {
                    return Ok(EffectOutput::NothingToSend);
                }
                members.extend(output.metadata.0.keys().cloned());
                (merged.parts, output.metadata)
            }
        };
        let entries = if kind == SyncKind::Integrity {
            control.len()
        } else {
            entries
        };
        self.ensure_parent(path)?;
        let mut package =
            StagedPackage::begin(&mut self.storage, path, self.limits.max_package_file)?;
        for key in &members {
            if let Err(e) = package.add_member_from_storage(&mut self.storage, key) {
                package.abort(&mut self.storage);
                return Err(e.into());
            }
        }
        let size = package
            .finish(
                &mut self.storage,
                control.to_upstream_json().as_bytes(),
                now,
                &PACKAGE_ATTRS,
            )?
            .size;
        Ok(EffectOutput::PackageBuilt {
            members: members.len(),
            entries,
            size,
        })
    }

    /// Opens the received package at `path` for reading entry by entry from its file (never
    /// whole in memory), then removes the path (the open file stays readable): a package is
    /// consumed once, applied or refused. Members streamed as it arrived are dropped: only a
    /// worker's apply of the master's package adopts them ([`Self::open_streamed_package`]), and
    /// the others read as zeros, failing their CRC.
    fn open_package(
        &mut self,
        path: &InstallPath,
    ) -> Result<PackageReader<PositionalReader>, EffectError> {
        let (reader, streamed) = self.open_streamed_package(path)?;
        self.drop_streamed(&streamed);
        Ok(reader)
    }

    /// [`Self::open_package`] with the members streamed as the package arrived, which the
    /// caller adopts or drops ([`Self::drop_streamed`]).
    fn open_streamed_package(
        &mut self,
        path: &InstallPath,
    ) -> Result<(PackageReader<PositionalReader>, Vec<StreamedMember>), EffectError> {
        let streamed = self.streamed_packages.remove(path).unwrap_or_default();
        match self.open_received(path, &streamed) {
            Ok(reader) => Ok((reader, streamed)),
            Err(e) => {
                self.drop_streamed(&streamed);
                Err(e)
            }
        }
    }

    /// The received package at `path`, read as it was sent: the members `streamed` out of it
    /// read as zeros (see [`received_package`]).
    fn open_received(
        &mut self,
        path: &InstallPath,
        streamed: &[StreamedMember],
    ) -> Result<PackageReader<PositionalReader>, EffectError> {
        let file = self.storage.open_reader(path);
        self.remove_quietly(path);
        let file = PositionalReader::new(received_package(file?, streamed));
        let limit = self.limits.max_package_file;
        if file.size() > limit {
            return Err(StorageError::new(
                StorageErrorKind::TooLarge,
                path,
                format!("file is larger than the limit of {limit} bytes"),
            )
            .into());
        }
        Ok(PackageReader::open(file, self.limits.package)?)
    }

    fn apply_master(&mut self, path: &InstallPath) -> EffectResult {
        let (mut reader, streamed) = self.open_streamed_package(path)?;
        let applied = match SyncPlan::from_upstream_json(
            reader.control_json(),
            self.limits.apply.max_entries,
        ) {
            Ok(plan) => apply_streamed_master_package(
                &mut reader,
                &mut self.storage,
                &self.items,
                &self.node_name,
                &self.limits.apply,
                &streamed,
            )
            .map(|report| (plan, report))
            .map_err(EffectError::from),
            Err(e) => Err(e.into()),
        };
        // The ones adopted are committed; the others go.
        self.drop_streamed(&streamed);
        let (plan, report) = applied?;
        // Applied files carry the master's mtimes: one may match the cached (size, mtime) of the
        // content it replaced, and the incremental scan would keep the old digest.
        self.scanner.clear_cache();
        // Only files of an extra-valid item go back: the master names them, and any other path
        // would have the worker read that file and send it to the master.
        let counts = plan.counts();
        let (extra_valid, refused_extra_valid) = plan.extra_valid.0.into_keys().partition(|path| {
            self.items
                .item_for_path(path)
                .is_some_and(|item| item.extra_valid)
        });
        Ok(EffectOutput::MasterApplied {
            report,
            counts,
            extra_valid,
            refused_extra_valid,
        })
    }

    fn apply_worker(&mut self, kind: SyncKind, worker: &str, path: &InstallPath) -> EffectResult {
        let mut reader = self.open_package(path)?;
        let keys = match self.storage.read(&client_keys_path()?, MAX_CLIENT_KEYS) {
            Ok(keys) => keys,
            Err(e) if e.kind == StorageErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let agents = match self.known_agents.take() {
            Some((text, agents)) if text == keys => (text, agents),
            _ => {
                let agents = KnownAgents::from_client_keys(&keys);
                (keys, agents)
            }
        };
        let agents = &self.known_agents.insert(agents).1;
        // Part names, read before the apply consumes nothing but needs the reader mutably.
        let control =
            IntegrityMetadata::from_json(reader.control_json(), self.limits.apply.max_entries)?;
        let mut names: Vec<(MergeType, String)> = Vec::new();
        for (key, meta) in &control.0 {
            let (true, Some(merge_type)) = (meta.merged, meta.merge_type) else {
                continue;
            };
            // Bounded before inflating: the apply below refuses a larger one.
            let Ok(bytes) = reader.read_member(key, self.limits.apply.merged.max_total) else {
                continue;
            };
            for part in unmerge(&bytes, &self.limits.merged).into_result()? {
                names.push((merge_type, part.name.to_owned()));
            }
        }
        let report = apply_worker_package(
            &mut reader,
            &mut self.storage,
            &self.items,
            worker,
            agents,
            &self.limits.apply,
        )?;
        if kind == SyncKind::ExtraValid && report.written > 0 {
            // Agent-groups are master-owned items written with the worker's header times: see
            // `apply_master`.
            self.scanner.clear_cache();
        }
        let skipped: Vec<&InstallPath> = report.skipped.iter().map(|(p, _)| p).collect();
        let routed = names
            .iter()
            .filter(|(t, name)| {
                *t == MergeType::AgentInfo
                    && kind == SyncKind::AgentInfo
                    && InstallPath::new(&format!("/queue/agent-info/{name}"))
                        .is_ok_and(|p| !skipped.contains(&&p))
            })
            .map(|(_, name)| name.clone())
            .collect();
        Ok(EffectOutput::WorkerApplied {
            parts: names.len(),
            agents: routed,
            known_agents: agents.len() + 1,
            report,
        })
    }
}
