//! A package is built, sent and applied through the executor without ever being held whole:
//! every storage call of both nodes moves at most one chunk, while the package is 64 times
//! larger (issue 13: packages used to be built and read whole in memory).

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use wazuh_cluster_sync::integrity::compare::SyncPlan;
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::metadata::scan::ScanRequest;
use wazuh_cluster_sync::integrity::metadata::{IntegrityMetadata, MetadataScanner};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{
    DirEntry, FileAttrs, FileReader, FileStat, Storage, StorageError, Timestamp, WriteId,
};
use wazuh_cluster_sync::roles::{Effect, EffectExecutor, EffectOutput, IncomingFileId, NodeType};

use std::time::Duration;

use crate::support::{Cluster, config, master_storage, origin, p, unix0};

/// The most bytes any single storage call may move in this test.
const CHUNK: usize = 64 * 1024;

/// A storage that records the largest number of bytes one call moved (read, appended, written,
/// or read through an opened file), and the bytes read through opened files.
struct ChunkBound {
    inner: MemoryStorage,
    largest: Rc<Cell<usize>>,
    read_through: Rc<Cell<u64>>,
}

impl ChunkBound {
    fn new(inner: MemoryStorage) -> Self {
        ChunkBound {
            inner,
            largest: Rc::new(Cell::new(0)),
            read_through: Rc::new(Cell::new(0)),
        }
    }

    fn moved(&self, n: usize) {
        self.largest.set(self.largest.get().max(n));
    }
}

struct BoundReader {
    inner: Box<dyn FileReader>,
    largest: Rc<Cell<usize>>,
    read_through: Rc<Cell<u64>>,
}

impl FileReader for BoundReader {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.largest.set(self.largest.get().max(buf.len()));
        let n = self.inner.read_at(offset, buf)?;
        self.read_through.set(self.read_through.get() + n as u64);
        Ok(n)
    }
}

impl Storage for ChunkBound {
    fn list_dir(&self, dir: &InstallPath) -> Result<Vec<DirEntry>, StorageError> {
        self.inner.list_dir(dir)
    }
    fn stat(&self, path: &InstallPath) -> Result<Option<FileStat>, StorageError> {
        self.inner.stat(path)
    }
    fn read_at(
        &self,
        path: &InstallPath,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StorageError> {
        self.moved(buf.len());
        self.inner.read_at(path, offset, buf)
    }
    fn read(&self, path: &InstallPath, limit: u64) -> Result<Vec<u8>, StorageError> {
        let data = self.inner.read(path, limit)?;
        self.moved(data.len());
        Ok(data)
    }
    fn open_reader(&self, path: &InstallPath) -> Result<Box<dyn FileReader>, StorageError> {
        Ok(Box::new(BoundReader {
            inner: self.inner.open_reader(path)?,
            largest: Rc::clone(&self.largest),
            read_through: Rc::clone(&self.read_through),
        }))
    }
    fn available_space(&self, dir: &InstallPath) -> Result<Option<u64>, StorageError> {
        self.inner.available_space(dir)
    }
    fn begin_write(&mut self, path: &InstallPath) -> Result<WriteId, StorageError> {
        self.inner.begin_write(path)
    }
    fn append(&mut self, id: WriteId, data: &[u8]) -> Result<(), StorageError> {
        self.moved(data.len());
        self.inner.append(id, data)
    }
    fn write_at(&mut self, id: WriteId, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.moved(data.len());
        self.inner.write_at(id, offset, data)
    }
    fn commit_write(&mut self, id: WriteId, attrs: &FileAttrs) -> Result<(), StorageError> {
        self.inner.commit_write(id, attrs)
    }
    fn commit_write_volatile(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.inner.commit_write_volatile(id, attrs)
    }
    fn commit_write_deferred(
        &mut self,
        id: WriteId,
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.inner.commit_write_deferred(id, attrs)
    }
    fn sync_deferred(&mut self) -> Result<(), StorageError> {
        self.inner.sync_deferred()
    }
    fn abort_write(&mut self, id: WriteId) -> Result<(), StorageError> {
        self.inner.abort_write(id)
    }
    fn write_atomic(
        &mut self,
        path: &InstallPath,
        data: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), StorageError> {
        self.moved(data.len());
        self.inner.write_atomic(path, data, attrs)
    }
    fn remove_file(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.inner.remove_file(path)
    }
    fn remove_file_deferred(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.inner.remove_file_deferred(path)
    }
    fn create_dir_all(&mut self, path: &InstallPath, mode: u32) -> Result<(), StorageError> {
        self.inner.create_dir_all(path, mode)
    }
    fn remove_dir_all(&mut self, path: &InstallPath) -> Result<bool, StorageError> {
        self.inner.remove_dir_all(path)
    }
    fn set_attrs(&mut self, path: &InstallPath, attrs: &FileAttrs) -> Result<(), StorageError> {
        self.inner.set_attrs(path, attrs)
    }
}

/// A master executor holding `files` and an empty worker's (with `/etc/rules`), both over
/// [`ChunkBound`], and the master's package for the worker built at the path returned, with
/// its size.
fn built(
    t0: std::time::Instant,
    files: &[(InstallPath, Vec<u8>)],
) -> (
    EffectExecutor<ChunkBound>,
    EffectExecutor<ChunkBound>,
    InstallPath,
    u64,
) {
    let items = ClusterItems::defaults_3_9();
    let mut master_tree = MemoryStorage::new();
    for (path, data) in files {
        let mtime = Timestamp::from_secs(1_790_000_000);
        master_tree
            .add_file(path, data.clone(), mtime, 0o660)
            .unwrap();
    }
    let mut worker_tree = MemoryStorage::new();
    worker_tree.create_dir_all(&p("/etc/rules"), 0o770).unwrap();
    let mut master = EffectExecutor::new(
        ChunkBound::new(master_tree),
        &config(NodeType::Master, "master01", t0),
    );
    let worker = EffectExecutor::new(
        ChunkBound::new(worker_tree),
        &config(NodeType::Worker, "worker1", t0),
    );
    let plan = SyncPlan::compare(
        &scan(master.storage(), &items, "master01"),
        &scan(worker.storage(), &items, "worker1"),
        &items,
        "worker1",
    )
    .unwrap();
    assert_eq!(plan.missing.len(), files.len());
    let sent = p("/queue/cluster/worker1/out.zip");
    let build = Effect::BuildMasterPackage {
        path: sent.clone(),
        plan: Box::new(plan),
    };
    let size = match master.execute(&build, unix0()) {
        Ok(EffectOutput::PackageBuilt { size, .. }) => size,
        other => panic!("build: {other:?}"),
    };
    (master, worker, sent, size)
}

/// Sends the package at `sent` from `master` to `received` on `worker` as the nodes do (chunk
/// reads of [`CHUNK`] bytes on one side, appends on the other, then the commit), the byte at
/// offset `flip` (if any) inverted on the way, received as the package the worker waits for
/// when `package`; the bytes received.
fn transfer<M: Storage, W: Storage>(
    master: &mut EffectExecutor<M>,
    sent: &InstallPath,
    worker: &mut EffectExecutor<W>,
    received: &InstallPath,
    flip: Option<u64>,
    package: bool,
) -> Vec<u8> {
    let file = IncomingFileId(1);
    let done = |r: Result<EffectOutput, _>| assert_eq!(r, Ok(EffectOutput::Done));
    done(worker.execute(
        &Effect::BeginFile {
            path: received.clone(),
            file,
            package,
        },
        unix0(),
    ));
    let mut offset = 0u64;
    let mut bytes = Vec::new();
    loop {
        let chunk: Bytes = match master.execute(
            &Effect::ReadChunk {
                path: sent.clone(),
                offset,
                len: CHUNK,
            },
            unix0(),
        ) {
            Ok(EffectOutput::Chunk(chunk)) => chunk,
            other => panic!("read chunk: {other:?}"),
        };
        if chunk.is_empty() {
            break;
        }
        let chunk = match flip.and_then(|at| at.checked_sub(offset)) {
            Some(i) if i < chunk.len() as u64 => {
                let mut altered = chunk.to_vec();
                altered[i as usize] ^= 0xff;
                Bytes::from(altered)
            }
            _ => chunk,
        };
        offset += chunk.len() as u64;
        bytes.extend_from_slice(&chunk);
        done(worker.execute(&Effect::AppendFile { file, data: chunk }, unix0()));
    }
    done(worker.execute(&Effect::CommitFile { file }, unix0()));
    bytes
}

fn scan<S: Storage>(storage: &S, items: &ClusterItems, node: &str) -> IntegrityMetadata {
    let request = ScanRequest {
        node_type: NodeType::Master,
        node_name: node,
        now: unix0(),
    };
    let output = MetadataScanner::new()
        .scan(storage, items, &request)
        .unwrap();
    std::sync::Arc::unwrap_or_clone(output.metadata)
}

#[test]
fn a_package_64_times_larger_than_any_io_is_built_sent_and_applied_in_chunks() {
    let t0 = origin();
    let files: Vec<(InstallPath, Vec<u8>)> = (0..64u32)
        .map(|i| {
            let data: Vec<u8> = (0..CHUNK as u32).map(|b| (b * 7 + i) as u8).collect();
            (p(&format!("/etc/rules/r{i:02}.xml")), data)
        })
        .collect();
    let (mut master, mut worker, sent, size) = built(t0, &files);
    assert!(size > 64 * CHUNK as u64, "package of {size} bytes");
    // Each member's file is read once: copied and hashed in the same pass (it used to be read
    // twice, once for its CRC, once to copy it).
    assert_eq!(master.storage().read_through.get(), 64 * CHUNK as u64);
    // The package is a scratch file: in place at once, never flushed (a crash tears it).
    let mut crashed = master.storage().inner.clone();
    crashed.recover();
    assert_eq!(
        crashed.stat(&sent).unwrap().map(|st| st.size),
        Some(size / 2)
    );

    // The transfer: read chunk by chunk on the master, appended chunk by chunk on the worker.
    let received = p("/queue/cluster/master01/in.zip");
    let bytes = transfer(&mut master, &sent, &mut worker, &received, None, true);
    assert_eq!(bytes.len() as u64, size);
    // So is the received copy.
    let mut crashed = worker.storage().inner.clone();
    crashed.recover();
    assert_eq!(
        crashed.stat(&received).unwrap().map(|st| st.size),
        Some(size / 2)
    );

    // Worker: applied entry by entry from the received file.
    match worker.execute(
        &Effect::ApplyMasterPackage {
            path: received.clone(),
        },
        unix0(),
    ) {
        Ok(EffectOutput::MasterApplied { report, .. }) => assert_eq!(report.written, 64),
        other => panic!("apply: {other:?}"),
    }
    for (path, data) in &files {
        assert_eq!(&worker.storage().inner.read(path, u64::MAX).unwrap(), data);
    }
    assert_eq!(worker.storage().inner.stat(&received).unwrap(), None);
    // Never more than one chunk per storage call, on either side.
    let largest = |e: &EffectExecutor<ChunkBound>| e.storage().largest.get();
    assert!(
        largest(&master) <= CHUNK && largest(&worker) <= CHUNK,
        "largest single I/O: master {} B, worker {} B, package {size} B",
        largest(&master),
        largest(&worker)
    );
}

/// A member of 1 MiB or more stays in its own file: the master reads it once for its CRC-32 and
/// once as the package goes, never copies it into the package file, and the worker gets the
/// files as the package was built. A file replaced after the build goes as it was then (the
/// package keeps the file it opened, as it would have kept a copy), and once the package is
/// removed nothing of it is read any more.
#[test]
fn large_members_are_sent_from_their_own_files() {
    let t0 = origin();
    let pattern = |len: usize, seed: u32| -> Vec<u8> {
        (0..len as u32).map(|b| (b * 13 + seed) as u8).collect()
    };
    let files = vec![
        (p("/etc/rules/big.xml"), pattern((3 << 20) + 17, 1)),
        (p("/etc/rules/small.xml"), pattern(10_000, 2)),
        (p("/etc/rules/whole.xml"), pattern(1 << 20, 3)),
    ];
    let spliced: u64 = (3 << 20) + 17 + (1 << 20);
    let (mut master, mut worker, sent, size) = built(t0, &files);
    // Every member read once to build it (the large ones for their CRC only), and the package
    // file lacks the large ones.
    assert_eq!(master.storage().read_through.get(), spliced + 10_000);
    let on_disk = master.storage().inner.stat(&sent).unwrap().unwrap().size;
    assert_eq!(on_disk, size - spliced);

    // Replaced after the build: the package still carries what was built.
    let mtime = Timestamp::from_secs(1_790_000_100);
    let replaced = pattern((3 << 20) + 17, 9);
    master
        .storage_mut()
        .inner
        .add_file(&files[0].0, replaced, mtime, 0o660)
        .unwrap();

    let received = p("/queue/cluster/master01/in.zip");
    let bytes = transfer(&mut master, &sent, &mut worker, &received, None, true);
    assert_eq!(bytes.len() as u64, size);
    // The large members read a second time, from their files, as they went.
    assert_eq!(master.storage().read_through.get(), 2 * spliced + 10_000);
    // On the worker they went straight into staged writes of their targets, not into the
    // package file; the apply commits those, copying nothing.
    let received_size = worker
        .storage()
        .inner
        .stat(&received)
        .unwrap()
        .unwrap()
        .size;
    assert_eq!(received_size, size - spliced);
    assert_eq!(worker.storage().inner.staged_writes(), 2);
    match worker.execute(&Effect::ApplyMasterPackage { path: received }, unix0()) {
        Ok(EffectOutput::MasterApplied { report, .. }) => assert_eq!(report.written, 3),
        other => panic!("apply: {other:?}"),
    }
    for (path, data) in &files {
        assert!(&worker.storage().inner.read(path, u64::MAX).unwrap() == data);
    }
    assert_eq!(worker.storage().inner.staged_writes(), 0);

    // Removed: the package is gone, not read from the member's file it kept (offset 1,000 is
    // inside `big.xml`, the first member).
    let removed = master.execute(&Effect::RemoveFile { path: sent.clone() }, unix0());
    assert_eq!(removed, Ok(EffectOutput::Done));
    let read = master.execute(
        &Effect::ReadChunk {
            path: sent,
            offset: 1000,
            len: CHUNK,
        },
        unix0(),
    );
    assert!(read.is_err(), "a removed package was still read");
    assert_eq!(master.storage().read_through.get(), 2 * spliced + 10_000);
}

/// A member streamed into a staged write of its target as it arrived is dropped with its
/// package: when a byte of it arrived altered (the apply refuses the whole package, nothing
/// written) and when the package is removed unapplied. A file not received as the package the
/// worker waits for is never walked: it lands whole (a file for the distributed API is read
/// from the disk by other programs), and applied as a package it is copied as before.
#[test]
fn streamed_members_go_with_a_refused_or_removed_package() {
    let t0 = origin();
    let big = p("/etc/rules/big.xml");
    let data: Vec<u8> = (0..(2u32 << 20)).map(|b| (b * 7) as u8).collect();
    for (flip, package) in [(Some(1000), true), (None, true), (None, false)] {
        let (mut master, mut worker, sent, _) = built(t0, &[(big.clone(), data.clone())]);
        let received = p("/queue/cluster/master01/in.zip");
        let bytes = transfer(&mut master, &sent, &mut worker, &received, flip, package);
        let staged = || worker.storage().inner.staged_writes();
        assert_eq!(staged(), usize::from(package), "big.xml streamed");
        let whole = worker.storage().read(&received, u64::MAX).unwrap() == bytes;
        assert_eq!(
            whole, !package,
            "the received file is whole unless it is the package"
        );
        let ended = match (flip, package) {
            // Offset 1,000 is inside big.xml's data, the first member.
            (Some(_), _) | (None, false) => {
                worker.execute(&Effect::ApplyMasterPackage { path: received }, unix0())
            }
            (None, true) => worker.execute(&Effect::RemoveFile { path: received }, unix0()),
        };
        assert_eq!(ended.is_err(), flip.is_some(), "{flip:?}");
        assert_eq!(worker.storage().inner.staged_writes(), 0, "{flip:?}");
        let applied = worker.storage().stat(&big).unwrap().is_some();
        assert_eq!(applied, !package, "{flip:?} {package}");
    }
}

/// Through the nodes: the worker takes the master's package it waits for as such (its large
/// member is streamed), and no other file; the master takes none.
#[test]
fn only_the_package_a_worker_waits_for_is_walked() {
    let t0 = origin();
    let mut tree = master_storage(unix0());
    let large = p("/etc/rules/large.xml");
    let data = vec![b'x'; 3 << 20];
    let mtime = Timestamp::from_secs(1_795_000_000);
    tree.add_file(&large, data.clone(), mtime, 0o660).unwrap();
    let (mut c, m, w) = Cluster::pair(t0, tree);
    c.run_for(Duration::from_secs(12));
    assert!(c.storage(w).read(&large, u64::MAX).unwrap() == data);
    let begun = |member: usize| -> Vec<(String, bool)> {
        c.file_begins
            .iter()
            .filter(|(at, ..)| *at == member)
            .map(|(_, path, package)| (path.file_name().unwrap_or_default().to_owned(), *package))
            .collect()
    };
    let worker = begun(w);
    assert!(
        !worker.is_empty(),
        "the worker received the master's package"
    );
    assert!(
        worker
            .iter()
            .all(|(name, package)| *package && name.starts_with("worker1-")),
        "{worker:?}"
    );
    let master = begun(m);
    assert!(
        !master.is_empty(),
        "the master received the worker's integrity file"
    );
    assert!(master.iter().all(|(_, package)| !package), "{master:?}");
}

/// The descriptors kept open for large members from one effect to the next are bounded for the
/// whole node (`MAX_HELD_DESCRIPTORS`, 32): a master leaves at most 32 members in their files
/// over all its packages (16 a package), a worker streams at most 16 (two descriptors each);
/// past it members are copied as before, and the packages are the same bytes.
#[test]
fn members_held_open_are_bounded_for_the_whole_node() {
    let t0 = origin();
    let files: Vec<(InstallPath, Vec<u8>)> = (0..17u32)
        .map(|i| {
            (
                p(&format!("/etc/rules/l{i:02}.xml")),
                vec![i as u8; 1 << 20],
            )
        })
        .collect();
    let (mut master, mut worker, first, size) = built(t0, &files);
    let on_disk = |e: &EffectExecutor<ChunkBound>, path: &InstallPath| {
        e.storage().inner.stat(path).unwrap().unwrap().size
    };
    // 16 of the 17 left in their files.
    assert_eq!(on_disk(&master, &first), size - 16 * (1 << 20));
    let mut sizes = vec![];
    for name in ["second", "third"] {
        let path = p(&format!("/queue/cluster/worker1/{name}.zip"));
        let plan = SyncPlan::compare(
            &scan(master.storage(), &ClusterItems::defaults_3_9(), "master01"),
            &scan(worker.storage(), &ClusterItems::defaults_3_9(), "worker1"),
            &ClusterItems::defaults_3_9(),
            "worker1",
        )
        .unwrap();
        let build = Effect::BuildMasterPackage {
            path: path.clone(),
            plan: Box::new(plan),
        };
        assert!(matches!(
            master.execute(&build, unix0()),
            Ok(EffectOutput::PackageBuilt { .. })
        ));
        sizes.push(on_disk(&master, &path));
    }
    // The second gets the other 16 places, the third none: built whole.
    assert_eq!(sizes, [size - 16 * (1 << 20), size]);

    // A worker streams 16 members of the first package; the second finds no place left.
    let one = p("/queue/cluster/master01/one.zip");
    let two = p("/queue/cluster/master01/two.zip");
    let bytes = transfer(&mut master, &first, &mut worker, &one, None, true);
    assert_eq!(worker.storage().inner.staged_writes(), 16);
    let second = p("/queue/cluster/worker1/second.zip");
    let again = transfer(&mut master, &second, &mut worker, &two, None, true);
    assert!(again == bytes, "the same package, read through other files");
    assert_eq!(worker.storage().inner.staged_writes(), 16);
    assert_eq!(on_disk(&worker, &two), size, "received whole");
    match worker.execute(&Effect::ApplyMasterPackage { path: two }, unix0()) {
        Ok(EffectOutput::MasterApplied { report, .. }) => assert_eq!(report.written, 17),
        other => panic!("apply: {other:?}"),
    }
}
