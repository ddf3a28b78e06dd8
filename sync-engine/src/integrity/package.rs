//! Integrity packages of profile 3.9: the stored ZIP that carries files between master and worker
//! (PROTOCOL.md §9.4).
//!
//! A package holds one member per file, named by its metadata key without the leading `/`
//! (`etc/client.keys`), plus `cluster_control.json`: the worker's metadata `{path: metadata}` on the
//! way up, the comparison `{"missing", "extra", "shared", "extra_valid"}` on the way down. The JSON
//! bytes come from the caller (the item model serialises them the way upstream does); this module
//! only moves bytes in and out of the archive.
//!
//! Why a room of its own: the package is the one place where a hostile peer hands us a whole file
//! tree at once. Upstream trusts it (3.9.5 extracts with `zipfile`, 4.9.2 joins peer paths
//! unchecked). [`PackageReader`] therefore checks everything it can before a single content byte
//! is read: the member count (from the end-of-central-directory record, before the ZIP library
//! allocates its table), every member name ([`NameProblem`]), duplicates, the entry type (no
//! directories, symlinks or special files), encryption, the compression method and the declared
//! sizes against [`PackageLimits`]. While reading, each member is capped at its declared size and at
//! the per-member limit, so a deflate bomb stops inflating at the cap; the CRC is checked at the end
//! of every member.
//!
//! [`PackageBuilder`] writes member by member into any `Write + Seek` sink (a `Cursor<Vec<u8>>` in
//! memory, a file in an adapter): a 1 GiB package never has to exist as one buffer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::path::{InstallPath, PathError, validate_file_name};
use super::storage::{EntryKind, FileStat, Storage, StorageError, StorageErrorKind, Timestamp};
use crate::calendar::UtcTime;

/// Name of the control member every 3.9 package carries.
pub const CONTROL_MEMBER: &str = "cluster_control.json";

/// Bytes copied per step when streaming member content.
const CHUNK: usize = 64 * 1024;

/// Size of the end-of-central-directory record without comment.
const EOCD_LEN: u64 = 22;
/// Size of the ZIP64 end-of-central-directory locator.
const ZIP64_LOCATOR_LEN: u64 = 20;

/// Bounds applied when reading a package from a peer. Every one is checked before the data it
/// bounds is allocated or inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Most file members (not counting `cluster_control.json`).
    pub max_members: usize,
    /// Largest single member, declared and actual (inflated) size.
    pub max_member_size: u64,
    /// Largest sum of declared member sizes (and so of actual sizes).
    pub max_total_size: u64,
    /// Largest `cluster_control.json`.
    pub max_control_size: u64,
}

impl Default for PackageLimits {
    /// 100,000 files, 1 GiB per file and in total (upstream 4.x's `max_zip_size`), 64 MiB of
    /// control JSON (about 400,000 metadata entries).
    fn default() -> Self {
        PackageLimits {
            max_members: 100_000,
            max_member_size: 1 << 30,
            max_total_size: 1 << 30,
            max_control_size: 64 << 20,
        }
    }
}

/// Why a member name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is not valid UTF-8 (or the archive's own decoding disagrees with UTF-8).
    NotUtf8,
    /// The name starts with `/`.
    Absolute,
    /// The name has a `..` or `.` component.
    DotComponent,
    /// The name has an empty component (`a//b`) or is empty.
    EmptyComponent,
    /// The name holds a backslash.
    Backslash,
    /// The name holds a NUL byte.
    Nul,
    /// The name ends with `/` (a directory entry).
    Directory,
    /// The name is longer than the install-path limit, or one component is longer than 255 bytes.
    TooLong,
}

/// Everything that can go wrong building or reading a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The bytes are not a ZIP archive we accept (no end record, archive comment, multi-disk,
    /// broken central directory).
    #[error("not an acceptable ZIP archive: {0}")]
    Malformed(String),
    /// A worker's integrity package carries `cluster_control.json` alone (3.9.5's worker sends
    /// nothing else); this one carries file members too.
    #[error(
        "an integrity package carries only cluster_control.json; this one has {count} other members"
    )]
    UnexpectedMembers {
        /// Its file members.
        count: usize,
    },
    /// The archive lists more members than [`PackageLimits::max_members`] allows.
    #[error("package lists {count} file members, more than the limit of {limit}")]
    TooManyMembers {
        /// File members (the control member not counted): those read, or, when the
        /// end-of-central-directory record already lists too many, its count less one.
        count: u64,
        /// [`PackageLimits::max_members`].
        limit: u64,
    },
    /// A member name is refused.
    #[error("member name {name:?} refused: {problem:?}")]
    BadMemberName {
        /// The name, lossily decoded.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// Two members share a name (the central directory lists more entries than distinct names).
    #[error("package lists {listed} members but only {distinct} distinct names")]
    DuplicateMembers {
        /// Entries in the central directory.
        listed: u64,
        /// Distinct names among them.
        distinct: u64,
    },
    /// The same name was added twice to a [`PackageBuilder`].
    #[error("member {0:?} added twice")]
    DuplicateMember(String),
    /// A member is a directory, a symlink or a special file.
    #[error("member {name:?} is not a regular file (mode {mode:#o})")]
    NotARegularFile {
        /// The member name.
        name: String,
        /// Its Unix mode from the external attributes.
        mode: u32,
    },
    /// A member is encrypted.
    #[error("member {0:?} is encrypted")]
    Encrypted(String),
    /// A member uses a compression method other than stored or deflated.
    #[error("member {name:?} uses unsupported compression {method}")]
    UnsupportedCompression {
        /// The member name.
        name: String,
        /// The method as the ZIP library names it.
        method: String,
    },
    /// A member is larger (declared or while inflating) than allowed.
    #[error("member {name:?} is larger than the limit of {limit} bytes")]
    MemberTooLarge {
        /// The member name.
        name: String,
        /// The limit that was exceeded.
        limit: u64,
    },
    /// A package being built would not fit in the free space of its file system.
    #[error("package needs {needed} bytes, the disk has {available} free")]
    NoSpace {
        /// Bytes the package would have with the member being added.
        needed: u64,
        /// Free bytes when the build started.
        available: u64,
    },
    /// The declared sizes add up to more than [`PackageLimits::max_total_size`].
    #[error("package content adds up to more than the limit of {limit} bytes")]
    TotalTooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// A member inflates beyond the size its headers declare (a bomb that lies): it stops at the
    /// declared size plus one byte.
    #[error("member {name:?} inflates beyond its declared {declared} bytes")]
    InflatesBeyondDeclared {
        /// The member name.
        name: String,
        /// Size from the central directory.
        declared: u64,
    },
    /// A member's local header gives another CRC or other sizes than the central directory:
    /// another reader (one that streams the local headers) would extract something else than
    /// what was checked.
    #[error("member {name:?}: its local header disagrees with the central directory")]
    HeaderMismatch {
        /// The member name.
        name: String,
    },
    /// A member's content is not as long as its header declares.
    #[error("member {name:?} declares {declared} bytes but holds {actual}")]
    SizeMismatch {
        /// The member name.
        name: String,
        /// Size from the central directory.
        declared: u64,
        /// Bytes actually read (stops one past the declared size).
        actual: u64,
    },
    /// A member's content is damaged (CRC mismatch, bad deflate stream, truncated archive).
    #[error("member {name:?} is corrupt: {message}")]
    Corrupt {
        /// The member name.
        name: String,
        /// What the ZIP library reported.
        message: String,
    },
    /// The package has no `cluster_control.json`.
    #[error("package has no cluster_control.json")]
    MissingControl,
    /// A member is not announced by `cluster_control.json`.
    #[error("member {0:?} is not listed in cluster_control.json")]
    UnexpectedMember(String),
    /// `cluster_control.json` announces a file the package does not hold.
    #[error("cluster_control.json lists {0:?} but the package does not hold it")]
    MissingMember(String),
    /// [`PackageReader`] was asked for a member it does not hold (caller error).
    #[error("no member named {0:?}")]
    NoSuchMember(String),
    /// A node name that cannot be part of a package path.
    #[error("node name {0:?} is not valid (1 to 64 of [A-Za-z0-9_.-], not starting with '.')")]
    BadNodeName(String),
    /// The sink of a [`PackageBuilder`] failed, or its ZIP writer did.
    #[error("writing the package failed: {0}")]
    Write(String),
    /// Reading a source file through a [`Storage`] failed while building.
    #[error("reading a file to package failed: {0}")]
    Storage(StorageError),
}

/// One file member of a package, as listed by [`PackageReader::members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMember {
    /// The metadata key the member stands for (`/etc/client.keys` for member `etc/client.keys`).
    pub key: InstallPath,
    /// Declared (uncompressed) size in bytes, already checked against the limits.
    pub size: u64,
    /// Where its local header starts in the package (checked to agree with the central
    /// directory's size and CRC).
    pub local_at: u64,
    /// The CRC-32 the central directory declares.
    pub crc: u32,
    /// Stored, not compressed.
    pub stored: bool,
    index: usize,
}

/// Checks a member name and turns it into the metadata key it stands for.
pub fn member_key(raw: &[u8]) -> Result<InstallPath, PackageError> {
    let lossy = || String::from_utf8_lossy(raw).into_owned();
    let bad = |problem| PackageError::BadMemberName {
        name: lossy(),
        problem,
    };
    let name = std::str::from_utf8(raw).map_err(|_| bad(NameProblem::NotUtf8))?;
    if name.contains('\0') {
        return Err(bad(NameProblem::Nul));
    }
    if name.contains('\\') {
        return Err(bad(NameProblem::Backslash));
    }
    if name.starts_with('/') {
        return Err(bad(NameProblem::Absolute));
    }
    if name.ends_with('/') {
        return Err(bad(NameProblem::Directory));
    }
    for component in name.split('/') {
        match component {
            "" => return Err(bad(NameProblem::EmptyComponent)),
            "." | ".." => return Err(bad(NameProblem::DotComponent)),
            c if validate_file_name(c).is_err() => return Err(bad(NameProblem::TooLong)),
            _ => {}
        }
    }
    InstallPath::new(&format!("/{name}")).map_err(|e| match e {
        PathError::TooLong(_) => bad(NameProblem::TooLong),
        _ => bad(NameProblem::EmptyComponent),
    })
}

/// Whether the file a peer names `wire` (a path) is named as a package for `worker` is
/// ([`package_file_name`]): `<worker>-<anything>.zip`.
pub fn is_package_name(wire: &[u8], worker: &str) -> bool {
    let name = wire.rsplit(|&b| b == b'/').next().unwrap_or(wire);
    name.len() > worker.len() + 5
        && name.starts_with(worker.as_bytes())
        && name[worker.len()] == b'-'
        && name.ends_with(b".zip")
}

/// The relative path (under the install root) of a package file:
/// `/queue/cluster/<worker>/<worker>-<time>-<random digits>.zip`.
///
/// Both directions name the package after the worker (PROTOCOL.md §9.4). `now` is rendered like
/// Python's `repr(time.time())` (`1795682923.4069414`), `random_digits` stands for the digits of
/// `random.random()`; both come from the caller (sans-IO: no clock, no OS randomness here).
pub fn package_file_name(
    worker: &str,
    now: Timestamp,
    random_digits: u64,
) -> Result<InstallPath, PackageError> {
    let valid = (1..=64).contains(&worker.len())
        && !worker.starts_with('.')
        && worker
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(PackageError::BadNodeName(worker.to_owned()));
    }
    let mut time = format!("{}", now.as_f64());
    if !time.contains('.') {
        time.push_str(".0");
    }
    InstallPath::new(&format!(
        "/queue/cluster/{worker}/{worker}-{time}-{random_digits}.zip"
    ))
    .map_err(|_| PackageError::BadNodeName(worker.to_owned()))
}

/// Writes a package member by member into `W`.
///
/// ```
/// # use std::io::Cursor;
/// # use wazuh_cluster_sync::integrity::package::{PackageBuilder, PackageReader, PackageLimits};
/// # use wazuh_cluster_sync::integrity::{path::InstallPath, storage::Timestamp};
/// let mut builder = PackageBuilder::new(Cursor::new(Vec::new()));
/// let key = InstallPath::new("/etc/client.keys").unwrap();
/// builder.add_member(&key, Timestamp::from_secs(1_562_000_000), 0o640, b"001 a any k\n").unwrap();
/// let zip = builder.finish(br#"{"missing": {}}"#, Timestamp::from_secs(1_562_000_000)).unwrap();
/// let mut reader = PackageReader::open(Cursor::new(zip.into_inner()), PackageLimits::default()).unwrap();
/// assert_eq!(reader.read_member(&key, u64::MAX).unwrap(), b"001 a any k\n");
/// ```
pub struct PackageBuilder<W: Write + Seek> {
    zip: ZipWriter<W>,
    names: BTreeSet<InstallPath>,
    open: bool,
    /// Read buffer of [`Self::add_member_from_storage`], kept across members.
    buf: Vec<u8>,
}

impl<W: Write + Seek> PackageBuilder<W> {
    /// A builder writing into `sink` (which should be empty and positioned at its start).
    pub fn new(sink: W) -> Self {
        PackageBuilder {
            zip: ZipWriter::new(sink),
            names: BTreeSet::new(),
            open: false,
            buf: Vec::new(),
        }
    }

    /// Number of file members started so far.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True before the first member.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Starts the member for metadata key `key`; content follows with [`Self::write_chunk`].
    /// `mtime` becomes the member's (2-second, UTC) DOS time and `mode` its Unix permission bits,
    /// as upstream's `zipfile.write` records them.
    pub fn start_member(
        &mut self,
        key: &InstallPath,
        mtime: Timestamp,
        mode: u32,
    ) -> Result<(), PackageError> {
        claim_member_name(&mut self.names, key)?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(dos_time(mtime))
            .unix_permissions(mode & 0o7777);
        self.zip
            .start_file(key.relative(), options)
            .map_err(|e| PackageError::Write(e.to_string()))?;
        self.open = true;
        Ok(())
    }

    /// Appends content to the member opened by [`Self::start_member`].
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<(), PackageError> {
        if !self.open {
            return Err(PackageError::Write(
                "write_chunk before start_member".to_owned(),
            ));
        }
        self.zip
            .write_all(data)
            .map_err(|e| PackageError::Write(e.to_string()))
    }

    /// Adds a whole member from memory.
    pub fn add_member(
        &mut self,
        key: &InstallPath,
        mtime: Timestamp,
        mode: u32,
        data: &[u8],
    ) -> Result<(), PackageError> {
        self.start_member(key, mtime, mode)?;
        self.write_chunk(data)
    }

    /// Adds file `key` read from `storage` in chunks (never whole in memory), with its own mtime
    /// and permission bits (upstream's `zipfile.write` records the file's `st_mode`). Returns the
    /// bytes copied.
    pub fn add_member_from_storage<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
        key: &InstallPath,
    ) -> Result<u64, PackageError> {
        let stat = file_to_package(storage, key)?;
        self.start_member(key, stat.mtime, stat.mode)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        let result = self.copy_from_storage(storage, key, &mut buf);
        self.buf = buf;
        result
    }

    fn copy_from_storage<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
        key: &InstallPath,
        buf: &mut [u8],
    ) -> Result<u64, PackageError> {
        let mut offset = 0u64;
        loop {
            let n = storage
                .read_at(key, offset, buf)
                .map_err(PackageError::Storage)?;
            if n == 0 {
                return Ok(offset);
            }
            self.write_chunk(&buf[..n])?;
            offset += n as u64;
        }
    }

    /// Writes `cluster_control.json` (dated `now`) and the central directory, and gives the sink
    /// back.
    pub fn finish(mut self, control_json: &[u8], now: Timestamp) -> Result<W, PackageError> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(dos_time(now))
            .unix_permissions(0o600);
        let write = |e: zip::result::ZipError| PackageError::Write(e.to_string());
        self.zip
            .start_file(CONTROL_MEMBER, options)
            .map_err(write)?;
        self.zip
            .write_all(control_json)
            .map_err(|e| PackageError::Write(e.to_string()))?;
        self.zip.finish().map_err(write)
    }
}

/// What [`Storage::stat`] says of file `key`, to be packed: a regular file, else `NotFound` (it
/// vanished since the scan, or is no longer a file).
pub(crate) fn file_to_package<S: Storage + ?Sized>(
    storage: &S,
    key: &InstallPath,
) -> Result<FileStat, PackageError> {
    let gone = || StorageError::new(StorageErrorKind::NotFound, key, "file to package is gone");
    storage
        .stat(key)
        .map_err(PackageError::Storage)?
        .filter(|s| s.kind == EntryKind::File)
        .ok_or_else(|| PackageError::Storage(gone()))
}

/// Builds a whole package in memory (small packages, tests).
pub fn build_package_in_memory<'a>(
    members: impl IntoIterator<Item = (&'a InstallPath, Timestamp, u32, &'a [u8])>,
    control_json: &[u8],
    now: Timestamp,
) -> Result<Vec<u8>, PackageError> {
    let mut builder = PackageBuilder::new(io::Cursor::new(Vec::new()));
    for (key, mtime, mode, data) in members {
        builder.add_member(key, mtime, mode, data)?;
    }
    Ok(builder.finish(control_json, now)?.into_inner())
}

/// A package opened for reading, every member already checked against the limits and name rules.
pub struct PackageReader<R: Read + Seek> {
    archive: ZipArchive<R>,
    members: Vec<PackageMember>,
    /// Position in `members` of each key: an apply looks up every member by key, and a linear
    /// search made a 50,000-member package cost O(n²).
    positions: BTreeMap<InstallPath, usize>,
    control: Vec<u8>,
    limits: PackageLimits,
}

impl<R: Read + Seek> std::fmt::Debug for PackageReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageReader")
            .field("members", &self.members)
            .field("control_len", &self.control.len())
            .finish()
    }
}

impl<R: Read + Seek> PackageReader<R> {
    /// Opens a package: checks the end record and member count before the ZIP library builds its
    /// table, then every entry (name, type, encryption, compression, declared size), then reads
    /// `cluster_control.json` (bounded). No file content is read yet.
    pub fn open(mut reader: R, limits: PackageLimits) -> Result<Self, PackageError> {
        let listed = listed_entries(&mut reader)?;
        let max_entries = limits.max_members as u64 + 1;
        if listed > max_entries {
            // The control member is not a file member: at least this many are.
            return Err(PackageError::TooManyMembers {
                count: listed - 1,
                limit: limits.max_members as u64,
            });
        }
        let mut archive =
            ZipArchive::new(reader).map_err(|e| PackageError::Malformed(e.to_string()))?;
        if archive.len() as u64 != listed {
            return Err(PackageError::DuplicateMembers {
                listed,
                distinct: archive.len() as u64,
            });
        }
        let mut members = Vec::with_capacity(archive.len().saturating_sub(1));
        let mut control_index = None;
        let mut total = 0u64;
        let mut headers = Vec::with_capacity(archive.len());
        for index in 0..archive.len() {
            let entry = archive
                .by_index_raw(index)
                .map_err(|e| PackageError::Malformed(e.to_string()))?;
            let raw = entry.name_raw();
            let key = member_key(raw)?;
            // The library may decode a name without the UTF-8 flag as CP437; refuse any
            // disagreement so that what we check is what we extract.
            if entry.name().as_bytes() != raw {
                return Err(PackageError::BadMemberName {
                    name: entry.name().to_owned(),
                    problem: NameProblem::NotUtf8,
                });
            }
            let name = key.relative().to_owned();
            if let Some(mode) = entry.unix_mode() {
                let kind = mode & 0o170000;
                if kind != 0 && kind != 0o100000 {
                    return Err(PackageError::NotARegularFile { name, mode });
                }
            }
            if entry.is_dir() {
                return Err(PackageError::NotARegularFile {
                    name,
                    mode: entry.unix_mode().unwrap_or(0),
                });
            }
            if entry.encrypted() {
                return Err(PackageError::Encrypted(name));
            }
            let method = entry.compression();
            if method != CompressionMethod::Stored && method != CompressionMethod::Deflated {
                return Err(PackageError::UnsupportedCompression {
                    name,
                    method: format!("{method:?}"),
                });
            }
            let size = entry.size();
            let is_control = name == CONTROL_MEMBER;
            let limit = if is_control {
                limits.max_control_size
            } else {
                limits.max_member_size
            };
            if size > limit {
                return Err(PackageError::MemberTooLarge { name, limit });
            }
            let (local_at, crc) = (entry.header_start(), entry.crc32());
            headers.push(CentralHeader {
                name: name.clone(),
                local_at,
                crc,
                compressed: entry.compressed_size(),
                size,
            });
            total = total.saturating_add(size);
            if total
                > limits
                    .max_total_size
                    .saturating_add(limits.max_control_size)
            {
                return Err(PackageError::TotalTooLarge {
                    limit: limits.max_total_size,
                });
            }
            drop(entry);
            if is_control {
                control_index = Some(index);
            } else {
                members.push(PackageMember {
                    key,
                    size,
                    local_at,
                    crc,
                    stored: method == CompressionMethod::Stored,
                    index,
                });
            }
        }
        let file_total: u64 = members.iter().map(|m| m.size).sum();
        if file_total > limits.max_total_size {
            return Err(PackageError::TotalTooLarge {
                limit: limits.max_total_size,
            });
        }
        if members.len() > limits.max_members {
            return Err(PackageError::TooManyMembers {
                count: members.len() as u64,
                limit: limits.max_members as u64,
            });
        }
        let control_index = control_index.ok_or(PackageError::MissingControl)?;
        let mut reader = archive.into_inner();
        for header in &headers {
            header.check_local(&mut reader)?;
        }
        // Parsed again from the same bytes (the library gives no other way back to its reader):
        // the count and names were checked above and cannot differ.
        let archive =
            ZipArchive::new(reader).map_err(|e| PackageError::Malformed(e.to_string()))?;
        let positions = members
            .iter()
            .enumerate()
            .map(|(position, m)| (m.key.clone(), position))
            .collect();
        let mut this = PackageReader {
            archive,
            members,
            positions,
            control: Vec::new(),
            limits,
        };
        let mut control = Vec::new();
        this.copy_index(control_index, CONTROL_MEMBER, &mut control)?;
        this.control = control;
        Ok(this)
    }

    /// The bytes of `cluster_control.json`.
    pub fn control_json(&self) -> &[u8] {
        &self.control
    }

    /// The file members in archive order.
    pub fn members(&self) -> &[PackageMember] {
        &self.members
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> PackageLimits {
        self.limits
    }

    /// Checks that the file members are exactly `expected` (the keys `cluster_control.json`
    /// announces): an extra member or a missing one refuses the package.
    pub fn check_members<'a>(
        &self,
        expected: impl IntoIterator<Item = &'a InstallPath>,
    ) -> Result<(), PackageError> {
        let expected: BTreeSet<&InstallPath> = expected.into_iter().collect();
        let present: BTreeSet<&InstallPath> = self.members.iter().map(|m| &m.key).collect();
        if let Some(extra) = present.difference(&expected).next() {
            return Err(PackageError::UnexpectedMember(extra.relative().to_owned()));
        }
        if let Some(missing) = expected.difference(&present).next() {
            return Err(PackageError::MissingMember(missing.relative().to_owned()));
        }
        Ok(())
    }

    /// Streams member `key` into `out`, capped at its declared size; checks length and CRC.
    /// Returns the bytes copied.
    pub fn copy_member(
        &mut self,
        key: &InstallPath,
        out: &mut dyn Write,
    ) -> Result<u64, PackageError> {
        let index = self.index_of(key)?;
        self.copy_index(index, key.relative(), out)
    }

    /// Member `key`.
    pub fn member(&self, key: &InstallPath) -> Option<&PackageMember> {
        self.positions
            .get(key)
            .map(|&position| &self.members[position])
    }

    /// The declared (uncompressed) size of member `key`, already within the package limits.
    pub fn member_size(&self, key: &InstallPath) -> Option<u64> {
        self.positions
            .get(key)
            .map(|&position| self.members[position].size)
    }

    /// Reads member `key` into memory, refusing it (`MemberTooLarge` with `limit`) before
    /// inflating a byte when its declared size is over `limit`: the caller names the bound of
    /// what it will hold (a merged file's, a `client.keys`'), which is often far below the
    /// package's per-member limit. Inflating stops at the declared size, whatever the data.
    pub fn read_member(&mut self, key: &InstallPath, limit: u64) -> Result<Vec<u8>, PackageError> {
        let index = self.index_of(key)?;
        let size = self.member_size(key).unwrap_or(0);
        if size > limit {
            return Err(PackageError::MemberTooLarge {
                name: key.relative().to_owned(),
                limit,
            });
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(CHUNK * 16));
        self.copy_index(index, key.relative(), &mut out)?;
        Ok(out)
    }

    /// Reads every member to the end (discarding the bytes) so that size and CRC faults are found
    /// before anything is written.
    pub fn verify_all(&mut self) -> Result<(), PackageError> {
        self.verify_all_but(&BTreeSet::new())
    }

    /// [`PackageReader::verify_all`] but for the members in `checked` (checked already, as they
    /// arrived: see [`super::streamed_members`]).
    pub fn verify_all_but(&mut self, checked: &BTreeSet<InstallPath>) -> Result<(), PackageError> {
        let list: Vec<(usize, String)> = self
            .members
            .iter()
            .filter(|m| !checked.contains(&m.key))
            .map(|m| (m.index, m.key.relative().to_owned()))
            .collect();
        for (index, name) in list {
            self.copy_index(index, &name, &mut io::sink())?;
        }
        Ok(())
    }

    fn index_of(&self, key: &InstallPath) -> Result<usize, PackageError> {
        self.positions
            .get(key)
            .map(|&position| self.members[position].index)
            .ok_or_else(|| PackageError::NoSuchMember(key.relative().to_owned()))
    }

    fn copy_index(
        &mut self,
        index: usize,
        name: &str,
        out: &mut dyn Write,
    ) -> Result<u64, PackageError> {
        let corrupt = |e: &dyn std::fmt::Display| PackageError::Corrupt {
            name: name.to_owned(),
            message: e.to_string(),
        };
        let mut file = self.archive.by_index(index).map_err(|e| corrupt(&e))?;
        let declared = file.size();
        // Never read more than one byte past the declared size: a member that inflates further is
        // refused there, whatever its compressed form would expand to.
        let mut limited = (&mut file).take(declared.saturating_add(1));
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(declared).unwrap_or(CHUNK) + 1)];
        let mut copied = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(&e)),
            };
            if n == 0 {
                break;
            }
            copied += n as u64;
            if copied > declared {
                return Err(PackageError::InflatesBeyondDeclared {
                    name: name.to_owned(),
                    declared,
                });
            }
            out.write_all(&buf[..n])
                .map_err(|e| PackageError::Write(e.to_string()))?;
        }
        if copied != declared {
            return Err(PackageError::SizeMismatch {
                name: name.to_owned(),
                declared,
                actual: copied,
            });
        }
        Ok(copied)
    }
}

/// What the central directory says of a member, to hold its local header to.
struct CentralHeader {
    name: String,
    local_at: u64,
    crc: u32,
    compressed: u64,
    size: u64,
}

impl CentralHeader {
    /// Refuses a local header whose CRC or sizes differ from the central directory's. With a
    /// data descriptor (flag bit 3) the local fields may be zero; a ZIP64 local size
    /// (`0xFFFFFFFF`) is in its extra field, which the central directory already gave.
    fn check_local<R: Read + Seek>(&self, reader: &mut R) -> Result<(), PackageError> {
        let mut local = [0u8; LOCAL_HEADER];
        reader
            .seek(SeekFrom::Start(self.local_at))
            .and_then(|_| reader.read_exact(&mut local))
            .map_err(|e| PackageError::Malformed(e.to_string()))?;
        let mismatch = || PackageError::HeaderMismatch {
            name: self.name.clone(),
        };
        let local = LocalHeader::parse(self.local_at, &local).ok_or_else(mismatch)?;
        let descriptor = local.has_descriptor();
        let agrees = |local: u64, central: u64| {
            local == central || local == u64::from(u32::MAX) || (descriptor && local == 0)
        };
        let crc_agrees = local.crc == self.crc || (descriptor && local.crc == 0);
        if !crc_agrees
            || !agrees(local.compressed, self.compressed)
            || !agrees(local.size, self.size)
        {
            return Err(mismatch());
        }
        Ok(())
    }
}

/// Length of a ZIP local file header before its name.
pub(crate) const LOCAL_HEADER: usize = 30;

/// General purpose flag bit 3: sizes and CRC in a data descriptor after the data.
const FLAG_DESCRIPTOR: u16 = 1 << 3;

/// What a ZIP local file header says (its fixed 30 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalHeader {
    /// Where it starts in the package.
    pub(crate) at: u64,
    pub(crate) flags: u16,
    pub(crate) method: u16,
    pub(crate) crc: u32,
    pub(crate) compressed: u64,
    pub(crate) size: u64,
    pub(crate) name_len: usize,
    pub(crate) extra_len: usize,
}

impl LocalHeader {
    /// The header in `b`, found at `at`; `None` without the local header signature.
    pub(crate) fn parse(at: u64, b: &[u8; LOCAL_HEADER]) -> Option<Self> {
        if b[..4] != [0x50, 0x4b, 0x03, 0x04] {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(LocalHeader {
            at,
            flags: u16_at(6),
            method: u16_at(8),
            crc: u32_at(14),
            compressed: u64::from(u32_at(18)),
            size: u64::from(u32_at(22)),
            name_len: usize::from(u16_at(26)),
            extra_len: usize::from(u16_at(28)),
        })
    }

    /// Flag bit 3: CRC and sizes follow the data (the local fields may be zero).
    pub(crate) fn has_descriptor(&self) -> bool {
        self.flags & FLAG_DESCRIPTOR != 0
    }

    /// Whether the member's data is its content, of a length known here (stored, not ZIP64,
    /// no data descriptor).
    pub(crate) fn is_plain_stored(&self) -> bool {
        self.method == 0
            && !self.has_descriptor()
            && self.compressed == self.size
            && self.size != u64::from(u32::MAX)
    }
}

/// Reads the end-of-central-directory record (and its ZIP64 form when present) and returns the
/// number of entries it lists. The record must end the file: upstream writes no archive comment,
/// and refusing one removes any doubt about which record the ZIP library would pick.
fn listed_entries<R: Read + Seek>(reader: &mut R) -> Result<u64, PackageError> {
    let malformed = |m: &str| PackageError::Malformed(m.to_owned());
    let io_err = |e: io::Error| PackageError::Malformed(e.to_string());
    let len = reader.seek(SeekFrom::End(0)).map_err(io_err)?;
    if len < EOCD_LEN {
        return Err(malformed("shorter than an end-of-central-directory record"));
    }
    let mut eocd = [0u8; EOCD_LEN as usize];
    reader
        .seek(SeekFrom::Start(len - EOCD_LEN))
        .map_err(io_err)?;
    reader.read_exact(&mut eocd).map_err(io_err)?;
    if eocd[..4] != [0x50, 0x4b, 0x05, 0x06] {
        return Err(malformed(
            "no end-of-central-directory record at the end (archive comment or trailing data)",
        ));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if u16_at(&eocd, 4) != 0 || u16_at(&eocd, 6) != 0 {
        return Err(malformed("multi-disk archives are not supported"));
    }
    let this_disk = u16_at(&eocd, 8);
    let total = u16_at(&eocd, 10);
    if this_disk != total {
        return Err(malformed("entry counts of the end record disagree"));
    }
    let zip64 =
        total == 0xFFFF || u32_at(&eocd, 12) == 0xFFFF_FFFF || u32_at(&eocd, 16) == 0xFFFF_FFFF;
    if !zip64 {
        return Ok(u64::from(total));
    }
    if len < EOCD_LEN + ZIP64_LOCATOR_LEN {
        return Err(malformed("ZIP64 locator missing"));
    }
    let mut locator = [0u8; ZIP64_LOCATOR_LEN as usize];
    reader
        .seek(SeekFrom::Start(len - EOCD_LEN - ZIP64_LOCATOR_LEN))
        .map_err(io_err)?;
    reader.read_exact(&mut locator).map_err(io_err)?;
    if locator[..4] != [0x50, 0x4b, 0x06, 0x07] {
        return Err(malformed("ZIP64 locator missing"));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&locator[8..16]);
    let record_at = u64::from_le_bytes(off);
    if record_at.saturating_add(56) > len {
        return Err(malformed("ZIP64 end record out of range"));
    }
    let mut record = [0u8; 56];
    reader.seek(SeekFrom::Start(record_at)).map_err(io_err)?;
    reader.read_exact(&mut record).map_err(io_err)?;
    if record[..4] != [0x50, 0x4b, 0x06, 0x06] {
        return Err(malformed("ZIP64 end record missing"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&record[32..40]);
    reader.seek(SeekFrom::Start(0)).map_err(io_err)?;
    Ok(u64::from_le_bytes(count))
}

/// Records `key` as a member of the package being built: the root and the control member's name
/// are not member names, and no name goes in twice.
pub(crate) fn claim_member_name(
    names: &mut BTreeSet<InstallPath>,
    key: &InstallPath,
) -> Result<(), PackageError> {
    if key.is_root() || key.relative() == CONTROL_MEMBER {
        return Err(PackageError::BadMemberName {
            name: key.relative().to_owned(),
            problem: NameProblem::EmptyComponent,
        });
    }
    if !names.insert(key.clone()) {
        return Err(PackageError::DuplicateMember(key.relative().to_owned()));
    }
    Ok(())
}

/// DOS date-time of `t` in UTC (upstream runs with TZ=UTC in the recordings), clamped to the
/// representable 1980–2107 range (Python's `zipfile` would raise instead).
pub(crate) fn dos_time(t: Timestamp) -> zip::DateTime {
    let (year, month, day, hour, minute, second) = utc_fields(t.secs);
    let fallback = zip::DateTime::default();
    if year < 1980 {
        return fallback;
    }
    if year > 2107 {
        return zip::DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58).unwrap_or(fallback);
    }
    // In range by construction: year checked above, the rest comes from a valid civil date.
    zip::DateTime::from_date_and_time(year as u16, month, day, hour, minute, second)
        .unwrap_or(fallback)
}

/// Civil UTC fields (year, month, day, hour, minute, second) of a Unix time.
fn utc_fields(secs: i64) -> (i64, u8, u8, u8, u8, u8) {
    let t = UtcTime::from_unix(secs);
    // Each is below 60 (or a day/month number): the casts are exact.
    (
        t.date.year,
        t.date.month as u8,
        t.date.day as u8,
        t.hour as u8,
        t.minute as u8,
        t.second as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fields_match_known_dates() {
        assert_eq!(utc_fields(1_562_000_000), (2019, 7, 1, 16, 53, 20));
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn member_names_are_checked() {
        let problem = |n: &[u8]| match member_key(n) {
            Err(PackageError::BadMemberName { problem, .. }) => Some(problem),
            _ => None,
        };
        assert_eq!(
            member_key(b"etc/client.keys").unwrap().as_str(),
            "/etc/client.keys"
        );
        assert_eq!(problem(b"/etc/x"), Some(NameProblem::Absolute));
        assert_eq!(problem(b"etc/../x"), Some(NameProblem::DotComponent));
        assert_eq!(problem(b"etc\\x"), Some(NameProblem::Backslash));
        assert_eq!(problem(b"etc/\0x"), Some(NameProblem::Nul));
        assert_eq!(problem(b"etc/"), Some(NameProblem::Directory));
        assert_eq!(problem(b"etc//x"), Some(NameProblem::EmptyComponent));
        assert_eq!(problem(b""), Some(NameProblem::EmptyComponent));
        assert_eq!(problem(b"etc/\xff"), Some(NameProblem::NotUtf8));
    }

    #[test]
    fn package_file_name_follows_upstream() {
        let t = Timestamp {
            secs: 1_795_682_923,
            nanos: 406_941_400,
        };
        assert_eq!(
            package_file_name("worker1", t, 4_841_727_390_577_477)
                .unwrap()
                .as_str(),
            "/queue/cluster/worker1/worker1-1795682923.4069414-4841727390577477.zip"
        );
        assert_eq!(
            package_file_name("w", Timestamp::from_secs(10), 7)
                .unwrap()
                .as_str(),
            "/queue/cluster/w/w-10.0-7.zip"
        );
        assert_eq!(
            package_file_name("../x", t, 1),
            Err(PackageError::BadNodeName("../x".into()))
        );
        assert_eq!(
            package_file_name("", t, 1),
            Err(PackageError::BadNodeName(String::new()))
        );
    }
}
