//! A package written straight into a staged write of the [`Storage`], never whole in memory:
//! [`StagedPackage`].
//!
//! Why not [`PackageBuilder`](super::package::PackageBuilder): that one writes to any
//! `Write + Seek` sink through the `zip` crate; this one streams into the storage's staged write
//! (the rename that commits it is what makes it atomic). Every member is stored (as upstream's
//! packages are) and its size is known from the opened file, so its local header is written
//! before the data with the CRC-32 left blank, the file is read once, copied and hashed in the
//! same pass, and the CRC is patched into the header ([`Storage::write_at`]) and the central
//! directory afterwards. The copy is exactly the size measured when the file was opened: a file
//! that shrinks meanwhile fails the build, and the caller scans again, as for a file that
//! vanished; what was copied is what the CRC covers, whatever the file does.
//!
//! Large members may also stay in their own files ([`StagedPackage::allow_splices`]): the
//! package file then holds the rest, and the [`SplicedPackage`] [`StagedPackage::finish`] gives
//! back reads the whole package (see [`super::spliced_package`]).
//!
//! The finished package is committed volatile ([`Storage::commit_write_volatile`]): it is sent
//! and deleted within seconds, and nothing reads it after a restart (`queue/cluster/` is emptied
//! at start), so flushing it to the disk would only cost time.
//!
//! Memory: one read buffer, and the central directory (46 bytes plus the name per member, so a
//! few MiB at the 100,000-member limit). The package's size is bounded by the caller's limit,
//! checked before each member is written. Layout: what the ZIP reader of this crate and Python's
//! `zipfile` read: local headers without data descriptors, version 2.0, "made by" Unix with the
//! member's permission bits, names flagged UTF-8 when not ASCII, and ZIP64 end records when there
//! are more than 65,535 members (every offset and size stays below 4 GiB: the package limit is
//! far below it).

use std::collections::BTreeSet;

use super::compare::SyncPlan;
use super::merged::{MergedError, MergedLimits, merge_from_storage};
use super::package::{CONTROL_MEMBER, PackageError, claim_member_name, dos_time, file_to_package};
use super::path::InstallPath;
use super::spliced_package::{MAX_SPLICES, SPLICE_MIN, SplicedPackage};
use super::storage::{
    FileAttrs, FileReader, Storage, StorageError, StorageErrorKind, Timestamp, WriteId,
};

/// Read buffer size.
const CHUNK: usize = 64 * 1024;
/// Version 2.0: what stored members with directories in their names need.
const VERSION: u16 = 20;
/// Version 4.5: ZIP64 end records.
const VERSION_ZIP64: u16 = 45;
/// "Made by" Unix (high byte 3), so readers take the permission bits from the external
/// attributes.
const MADE_BY_UNIX: u16 = (3 << 8) | VERSION;
/// General purpose flag bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// Regular-file type bits of a Unix mode.
const S_IFREG: u32 = 0o100_000;
/// Where the CRC-32 sits in a local file header and in a central directory entry.
const LOCAL_CRC_AT: u64 = 14;
const CENTRAL_CRC_AT: usize = 16;

/// Where a member's two headers are: the local one in the staged write (an offset of the
/// package file, which lacks the members left in their files), the central one in
/// [`StagedPackage::central`].
#[derive(Debug, Clone, Copy)]
struct MemberAt {
    local: u64,
    central: usize,
}

/// A package being written into a staged write. See the [module documentation](self).
#[derive(Debug)]
pub struct StagedPackage {
    id: WriteId,
    /// Bytes of the package so far (the offset of the next local header).
    written: u64,
    /// Bytes of the package file so far: `written` but the members left in their files.
    physical: u64,
    /// The members left in their files.
    spliced: SplicedPackage,
    /// How many more members may be left in their files.
    splices_left: usize,
    /// Most bytes the finished package may have.
    limit: u64,
    /// Free space of the file system when the build started, when the storage can tell.
    available: Option<u64>,
    /// The central directory, appended at the end.
    central: Vec<u8>,
    entries: u64,
    names: BTreeSet<InstallPath>,
    buf: Vec<u8>,
    /// The package's last bytes, not yet handed to the storage: headers and small members are
    /// gathered into writes of [`CHUNK`] bytes at offsets that are multiples of it, and a CRC
    /// whose header is still here is patched in memory. A write per header, one per member and
    /// a patch per member cost three system calls per file, and every write that ends inside a
    /// page had the kernel zero the rest of it (9% of the master's time in `zero_user_segments`
    /// for 10,000 files of 4 KiB).
    pending: Vec<u8>,
}

impl StagedPackage {
    /// Opens a staged write of `path` (its directory must exist) for a package of at most
    /// `limit` bytes, and of no more than the free space of the disk it goes to
    /// ([`Storage::available_space`], asked once, here): a build that would fill the disk stops
    /// before the member that would, with [`PackageError::NoSpace`].
    pub fn begin<S: Storage + ?Sized>(
        storage: &mut S,
        path: &InstallPath,
        limit: u64,
    ) -> Result<Self, PackageError> {
        let dir = path.parent().unwrap_or_else(InstallPath::root);
        let available = storage
            .available_space(&dir)
            .map_err(PackageError::Storage)?;
        let id = storage.begin_write(path).map_err(PackageError::Storage)?;
        Ok(StagedPackage {
            id,
            written: 0,
            physical: 0,
            spliced: SplicedPackage::new(),
            splices_left: 0,
            limit,
            available,
            central: Vec::new(),
            entries: 0,
            names: BTreeSet::new(),
            buf: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Lets up to `count` (at most [`MAX_SPLICES`]) of the members added from here on that are
    /// [`SPLICE_MIN`] bytes or more stay in their own files: read once for their CRC-32, kept
    /// open, and read from there when the package is read through the [`SplicedPackage`] that
    /// [`StagedPackage::finish`] returns. The package file alone is then not the package.
    pub fn allow_splices(&mut self, count: usize) {
        self.splices_left = count.min(MAX_SPLICES);
    }

    /// File members added so far.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True before the first member.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Bytes of the package so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Adds member `key` with `data` from memory (a merged file, bounded by its own limits).
    pub fn add_member<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        key: &InstallPath,
        mtime: Timestamp,
        mode: u32,
        data: &[u8],
    ) -> Result<(), PackageError> {
        self.claim(key)?;
        let crc = crc32fast::hash(data);
        self.member_header(storage, key.relative(), mtime, mode, crc, data.len() as u64)?;
        self.append(storage, data)
    }

    /// Adds file `key` read from `storage` (its own mtime and permission bits, as upstream's
    /// `zipfile.write` records them) in chunks, copied and hashed in one pass; its CRC is patched
    /// in afterwards. A large one may instead be read for its CRC only and left in its file
    /// ([`StagedPackage::allow_splices`]). Returns the member's size.
    pub fn add_member_from_storage<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        key: &InstallPath,
    ) -> Result<u64, PackageError> {
        let stat = file_to_package(&*storage, key)?;
        let file = storage.open_reader(key).map_err(PackageError::Storage)?;
        let size = file.size();
        self.claim(key)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        if size >= SPLICE_MIN && self.splices_left > 0 {
            let crc = read_through(&*file, size, &mut buf, key, |_| Ok(()));
            self.buf = buf;
            self.member_header(storage, key.relative(), stat.mtime, stat.mode, crc?, size)?;
            self.spliced.push(self.written, size, file, key.clone());
            self.written += size;
            self.splices_left -= 1;
            return Ok(size);
        }
        let result = (|| {
            let member =
                self.member_header(storage, key.relative(), stat.mtime, stat.mode, 0, size)?;
            let crc = read_through(&*file, size, &mut buf, key, |chunk| {
                self.append(storage, chunk)
            })?;
            self.set_crc(storage, member, crc)
        })();
        self.buf = buf;
        result.map(|()| size)
    }

    /// Writes `cluster_control.json` (dated `now`) and the central directory, and commits the
    /// package: its size, and how to read it when members were left in their files.
    pub fn finish<S: Storage + ?Sized>(
        mut self,
        storage: &mut S,
        control_json: &[u8],
        now: Timestamp,
        attrs: &FileAttrs,
    ) -> Result<BuiltPackage, PackageError> {
        let crc = crc32fast::hash(control_json);
        self.member_header(
            storage,
            CONTROL_MEMBER,
            now,
            0o600,
            crc,
            control_json.len() as u64,
        )?;
        self.append(storage, control_json)?;
        let central_offset = self.written;
        let central = std::mem::take(&mut self.central);
        self.append(storage, &central)?;
        let central_size = central.len() as u64;
        let end = end_records(self.entries, central_size, central_offset, self.written);
        self.append(storage, &end)?;
        if !self.pending.is_empty() {
            storage
                .append(self.id, &self.pending)
                .map_err(PackageError::Storage)?;
        }
        storage
            .commit_write_volatile(self.id, attrs)
            .map_err(PackageError::Storage)?;
        self.spliced.set_size(self.written);
        Ok(BuiltPackage {
            size: self.written,
            spliced: (!self.spliced.is_empty()).then_some(self.spliced),
        })
    }

    /// Drops the staged write (a failed build leaves nothing behind).
    pub fn abort<S: Storage + ?Sized>(self, storage: &mut S) {
        let _ = storage.abort_write(self.id);
    }

    fn claim(&mut self, key: &InstallPath) -> Result<(), PackageError> {
        claim_member_name(&mut self.names, key)
    }

    /// Writes the local header of a member and records its central directory entry; refuses a
    /// member that would take the package over its limit (counting the records still to come).
    /// Returns where both headers are, for [`StagedPackage::set_crc`].
    fn member_header<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        name: &str,
        mtime: Timestamp,
        mode: u32,
        crc: u32,
        size: u64,
    ) -> Result<MemberAt, PackageError> {
        let name_len = name.len() as u64;
        let after = self
            .written
            .saturating_add(30 + name_len)
            .saturating_add(size)
            .saturating_add(self.central.len() as u64 + 46 + name_len)
            .saturating_add(END_RECORDS_MAX);
        if after > self.limit {
            return Err(PackageError::TotalTooLarge { limit: self.limit });
        }
        if let Some(available) = self.available
            && after > available
        {
            return Err(PackageError::NoSpace {
                needed: after,
                available,
            });
        }
        // Both fit in 32 bits: the limit is checked above and stays far below 4 GiB.
        let (Ok(size32), Ok(offset32), Ok(name16)) = (
            u32::try_from(size),
            u32::try_from(self.written),
            u16::try_from(name.len()),
        ) else {
            return Err(PackageError::TotalTooLarge { limit: self.limit });
        };
        let flags = if name.is_ascii() { 0 } else { FLAG_UTF8 };
        let time = dos_time(mtime);
        let (dos_time, dos_date) = (time.timepart(), time.datepart());

        let mut local = Vec::with_capacity(30 + name.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&VERSION.to_le_bytes());
        local.extend_from_slice(&flags.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&dos_time.to_le_bytes());
        local.extend_from_slice(&dos_date.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&size32.to_le_bytes());
        local.extend_from_slice(&size32.to_le_bytes());
        local.extend_from_slice(&name16.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        local.extend_from_slice(name.as_bytes());

        let at = MemberAt {
            local: self.physical,
            central: self.central.len(),
        };
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&MADE_BY_UNIX.to_le_bytes());
        c.extend_from_slice(&VERSION.to_le_bytes());
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&dos_time.to_le_bytes());
        c.extend_from_slice(&dos_date.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&size32.to_le_bytes());
        c.extend_from_slice(&name16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // extra
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&((S_IFREG | (mode & 0o7777)) << 16).to_le_bytes());
        c.extend_from_slice(&offset32.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.entries += 1;
        self.append(storage, &local)?;
        Ok(at)
    }

    /// Writes a member's CRC-32 into its local header (already in the staged write) and its
    /// central directory entry (still in memory).
    fn set_crc<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        at: MemberAt,
        crc: u32,
    ) -> Result<(), PackageError> {
        let crc = crc.to_le_bytes();
        // The bytes before `flushed` are in the staged write, the others still in `pending`.
        let flushed = self.physical - self.pending.len() as u64;
        let local = at.local + LOCAL_CRC_AT;
        let in_file = usize::try_from(flushed.saturating_sub(local))
            .unwrap_or(usize::MAX)
            .min(crc.len());
        if in_file > 0 {
            storage
                .write_at(self.id, local, &crc[..in_file])
                .map_err(PackageError::Storage)?;
        }
        if in_file < crc.len() {
            let from = usize::try_from(local + in_file as u64 - flushed).unwrap_or(usize::MAX);
            self.pending[from..from + crc.len() - in_file].copy_from_slice(&crc[in_file..]);
        }
        let central = at.central + CENTRAL_CRC_AT;
        self.central[central..central + crc.len()].copy_from_slice(&crc);
        Ok(())
    }

    /// Adds `data` to the package: gathered in `pending` up to a whole [`CHUNK`], whole chunks
    /// of a large member straight from `data` (no copy).
    fn append<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        mut data: &[u8],
    ) -> Result<(), PackageError> {
        self.written += data.len() as u64;
        self.physical += data.len() as u64;
        if !self.pending.is_empty() || data.len() < CHUNK {
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < CHUNK {
                return Ok(());
            }
            storage
                .append(self.id, &self.pending)
                .map_err(PackageError::Storage)?;
            self.pending.clear();
        }
        let whole = data.len() / CHUNK * CHUNK;
        if whole > 0 {
            storage
                .append(self.id, &data[..whole])
                .map_err(PackageError::Storage)?;
        }
        self.pending.extend_from_slice(&data[whole..]);
        Ok(())
    }
}

/// A finished package.
#[derive(Debug)]
pub struct BuiltPackage {
    /// Its size in bytes.
    pub size: u64,
    /// How to read it, when members were left in their files (the package file alone is then
    /// not the package); `None` when the package file is the whole package.
    pub spliced: Option<SplicedPackage>,
}

/// Where and how a package is built.
#[derive(Debug, Clone, Copy)]
pub struct PackageTarget<'a> {
    /// The package file.
    pub path: &'a InstallPath,
    /// Most bytes the package may have.
    pub limit: u64,
    /// What the package file is committed with.
    pub attrs: &'a FileAttrs,
    /// How many large members may stay in their own files ([`StagedPackage::allow_splices`]).
    pub splices: usize,
}

/// Builds the master → worker package of `plan` at `target` (PROTOCOL.md §9.3–§9.4): the
/// merged `agent-groups-shared.merged` entry first (built from
/// [`SyncPlan::shared_merged_sources`], dated `now`), then every other `missing` and `shared`
/// file streamed from `storage` (large ones maybe left in their files: `target.splices`), then
/// `cluster_control.json` = [`SyncPlan::to_upstream_json`].
///
/// A file that vanished or changed since the scan makes the build fail (`Storage`) and leaves
/// nothing at `target.path`: the caller rescans and compares again rather than sending a package that
/// contradicts its control document.
pub fn build_master_package<S: Storage + ?Sized>(
    storage: &mut S,
    target: PackageTarget<'_>,
    plan: &SyncPlan,
    merged_limits: &MergedLimits,
    now: Timestamp,
) -> Result<BuiltPackage, PackageError> {
    let mut package = StagedPackage::begin(storage, target.path, target.limit)?;
    package.allow_splices(target.splices);
    let built = (|| {
        if let Some(key) = &plan.shared_merged {
            let merged =
                merge_from_storage(&*storage, &plan.shared_merged_sources, None, merged_limits)
                    .map_err(|e| match e {
                        MergedError::Storage(e) => PackageError::Storage(e),
                        other => PackageError::Write(other.to_string()),
                    })?;
            package.add_member(storage, key, now, 0o660, &merged.bytes)?;
        }
        for key in plan.missing.0.keys().chain(plan.shared.0.keys()) {
            if Some(key) != plan.shared_merged.as_ref() {
                package.add_member_from_storage(storage, key)?;
            }
        }
        Ok(())
    })();
    match built {
        Ok(()) => package.finish(
            storage,
            plan.to_upstream_json().as_bytes(),
            now,
            target.attrs,
        ),
        Err(e) => {
            package.abort(storage);
            Err(e)
        }
    }
}

/// The largest end records: ZIP64 end record (56) and locator (20), then the end record (22).
const END_RECORDS_MAX: u64 = 56 + 20 + 22;

/// Reads the first `size` bytes of `file` chunk by chunk into `each`; their CRC-32. A file
/// shorter than `size` changed since it was measured.
fn read_through(
    file: &dyn FileReader,
    size: u64,
    buf: &mut [u8],
    key: &InstallPath,
    mut each: impl FnMut(&[u8]) -> Result<(), PackageError>,
) -> Result<u32, PackageError> {
    let mut hasher = crc32fast::Hasher::new();
    let mut offset = 0u64;
    while offset < size {
        let want = buf
            .len()
            .min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        let n = file
            .read_at(offset, &mut buf[..want])
            .map_err(PackageError::Storage)?;
        if n == 0 {
            return Err(changed(key));
        }
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
        offset += n as u64;
    }
    Ok(hasher.finalize())
}

fn changed(key: &InstallPath) -> PackageError {
    PackageError::Storage(StorageError::new(
        StorageErrorKind::Io,
        key,
        "file changed while it was packaged",
    ))
}

/// The end of central directory record, preceded by the ZIP64 end record and locator when the
/// entry count does not fit in 16 bits.
fn end_records(entries: u64, central_size: u64, central_offset: u64, zip64_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(END_RECORDS_MAX as usize);
    let entries16 = u16::try_from(entries).ok().filter(|&n| n != u16::MAX);
    if entries16.is_none() {
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of the record
        out.extend_from_slice(&((3 << 8) | VERSION_ZIP64).to_le_bytes());
        out.extend_from_slice(&VERSION_ZIP64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // this disk
        out.extend_from_slice(&0u32.to_le_bytes()); // disk of the central directory
        out.extend_from_slice(&entries.to_le_bytes());
        out.extend_from_slice(&entries.to_le_bytes());
        out.extend_from_slice(&central_size.to_le_bytes());
        out.extend_from_slice(&central_offset.to_le_bytes());
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // disk of the ZIP64 end record
        out.extend_from_slice(&zip64_offset.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // disks
    }
    let entries16 = entries16.unwrap_or(u16::MAX);
    // Below 4 GiB by the package limit (checked member by member).
    let size32 = u32::try_from(central_size).unwrap_or(u32::MAX);
    let offset32 = u32::try_from(central_offset).unwrap_or(u32::MAX);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&entries16.to_le_bytes());
    out.extend_from_slice(&entries16.to_le_bytes());
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&offset32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment
    out
}
