//! A package's large stored members written to their targets' staged writes as the package
//! arrives: [`MemberStream`], the receiving side's counterpart of
//! [`SplicedPackage`].
//!
//! Why: a worker received a 500 MiB file into the package (500 MiB written to the page cache),
//! then its apply read the member twice (the CRC check, then the copy) and wrote it again into
//! the target's staged write: on this project's test machine over half of the worker's CPU
//! went to the two page-cache writes, and the copy came after the last chunk, with the master
//! idle. Here the bytes of a large stored member go straight into a staged write of its target
//! as they arrive, CRC-32 computed on the way; the package file gets everything else (it is
//! "compact", like a master's spliced package), and the apply adopts the staged write (commits
//! it) instead of copying, once it has checked the package as it checks any: the member must be
//! one it would write, its central directory entry must name the same local header, size and
//! CRC, and the CRC must be the one computed. Anything else is refused as before, and the staged
//! write is dropped.
//!
//! Which files: only the master's package a worker waits for (the node says so in
//! [`Effect::BeginFile`](crate::roles::Effect::BeginFile): the first file named as a package for
//! it, `<worker>-….zip`, after it answered the master's `sync_m_c`). Never another file: one for
//! the distributed API is read from the disk by other programs, and here the package file lacks
//! what was streamed out of it.
//!
//! Which members: stored, of [`SPLICE_MIN`] bytes or more, no data descriptor, a name the
//! caller accepts (the caller opens the staged write, and only in a directory that exists: a
//! staged file is created before the package is checked, so only where the apply could write
//! it). At most [`MAX_SPLICES`] per package. Anything the walk does not understand ends it:
//! the rest goes to the package file as it came, and the apply reads it as before.
//!
//! Memory: a local header (30 bytes) and a member name (at most 64 KiB) at a time.
//!
//! ```
//! use wazuh_cluster_sync::integrity::streamed_members::{MemberStream, Span};
//! use wazuh_cluster_sync::integrity::storage::WriteId;
//!
//! // A local header of stored member "a" (4 bytes, CRC-32 of "data"), its data, then the
//! // central directory's signature.
//! let crc = crc32fast::hash(b"data");
//! let mut zip = vec![0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
//! zip.extend_from_slice(&crc.to_le_bytes());
//! zip.extend_from_slice(&4u32.to_le_bytes());
//! zip.extend_from_slice(&4u32.to_le_bytes());
//! zip.extend_from_slice(&[1, 0, 0, 0, b'a']);
//! zip.extend_from_slice(b"data");
//! zip.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
//!
//! let mut stream = MemberStream::with_min_size(1);
//! let spans = stream.feed(&zip, &mut |key, _size| {
//!     assert_eq!(key.as_str(), "/a");
//!     Some(WriteId(7))
//! });
//! assert_eq!(spans, [Span::Package(0..31), Span::Member(WriteId(7), 31..35), Span::Package(35..39)]);
//! let members = stream.finish();
//! assert_eq!((members[0].data_at, members[0].size, members[0].crc_ok), (31, 4, true));
//! ```

use std::ops::Range;

use super::package::{LOCAL_HEADER, LocalHeader, member_key};
use super::path::InstallPath;
use super::spliced_package::{MAX_SPLICES, SPLICE_MIN, SplicedPackage};
use super::storage::{FileReader, StorageError, WriteId};

/// A member whose data went to a staged write of its target instead of the package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedMember {
    /// The member's key (its target).
    pub key: InstallPath,
    /// The staged write holding its data.
    pub write: WriteId,
    /// Where its local header starts in the package.
    pub local_at: u64,
    /// Where its data starts in the package.
    pub data_at: u64,
    /// Its size (stored: the same compressed and not).
    pub size: u64,
    /// The CRC-32 its local header declares.
    pub crc: u32,
    /// Whether every byte arrived and their CRC-32 is the declared one.
    pub crc_ok: bool,
}

/// Where a piece of what was fed goes: the package file, or a member's staged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// These bytes of the fed data belong in the package file.
    Package(Range<usize>),
    /// These bytes of the fed data are the member's whose staged write is this.
    Member(WriteId, Range<usize>),
}

/// Where the walk is.
#[derive(Debug)]
enum State {
    /// Gathering a local header.
    Header {
        buf: [u8; LOCAL_HEADER],
        have: usize,
    },
    /// Gathering a member's name (and skipping its extra field).
    Name {
        header: LocalHeader,
        name: Vec<u8>,
        extra_left: usize,
    },
    /// In a member's data.
    Data {
        left: u64,
        streamed: Option<(usize, crc32fast::Hasher)>,
    },
    /// Past the members, or lost: the rest goes to the package file.
    Done,
}

/// Walks a package's bytes as they arrive, routing large stored members to staged writes. See
/// the [module documentation](self).
#[derive(Debug)]
pub struct MemberStream {
    /// Bytes fed so far.
    offset: u64,
    state: State,
    members: Vec<StreamedMember>,
    /// Smallest member streamed.
    min_size: u64,
}

impl Default for MemberStream {
    fn default() -> Self {
        Self::with_min_size(SPLICE_MIN)
    }
}

impl MemberStream {
    /// A walk streaming members of `min_size` bytes or more (the default: [`SPLICE_MIN`]).
    pub fn with_min_size(min_size: u64) -> Self {
        MemberStream {
            offset: 0,
            state: State::Header {
                buf: [0; LOCAL_HEADER],
                have: 0,
            },
            members: Vec::new(),
            min_size,
        }
    }

    /// The members streamed so far.
    pub fn members(&self) -> &[StreamedMember] {
        &self.members
    }

    /// The next bytes of the package: where each piece goes. `open(key, size)` is asked at the
    /// start of each member that may be streamed and answers with the staged write its data
    /// goes to (`None`: into the package file).
    pub fn feed(
        &mut self,
        data: &[u8],
        open: &mut dyn FnMut(&InstallPath, u64) -> Option<WriteId>,
    ) -> Vec<Span> {
        let mut spans = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            let taken = match &mut self.state {
                State::Done => rest.len(),
                State::Header { buf, have } => {
                    let n = (LOCAL_HEADER - *have).min(rest.len());
                    buf[*have..*have + n].copy_from_slice(&rest[..n]);
                    *have += n;
                    if *have == LOCAL_HEADER {
                        let start = self.offset + at as u64 + n as u64 - LOCAL_HEADER as u64;
                        self.state = match LocalHeader::parse(start, buf) {
                            Some(header) => State::Name {
                                header,
                                name: Vec::with_capacity(header.name_len),
                                extra_left: header.extra_len,
                            },
                            None => State::Done,
                        };
                    }
                    n
                }
                State::Name {
                    header,
                    name,
                    extra_left,
                } => {
                    let n = (header.name_len - name.len()).min(rest.len());
                    name.extend_from_slice(&rest[..n]);
                    let m = (*extra_left).min(rest.len() - n);
                    *extra_left -= m;
                    if name.len() == header.name_len && *extra_left == 0 {
                        let data_at = self.offset + (at + n + m) as u64;
                        let (header, name) = (*header, std::mem::take(name));
                        self.state = self.member_starts(header, &name, data_at, open);
                    }
                    n + m
                }
                State::Data { left, streamed } => {
                    let n = usize::try_from(*left).map_or(rest.len(), |l| l.min(rest.len()));
                    *left -= n as u64;
                    let range = at..at + n;
                    match streamed {
                        Some((index, crc)) => {
                            crc.update(&rest[..n]);
                            spans.push(Span::Member(self.members[*index].write, range));
                        }
                        None => push_package(&mut spans, range),
                    }
                    if *left == 0 {
                        if let Some((index, crc)) = streamed.take() {
                            let member = &mut self.members[index];
                            member.crc_ok = crc.finalize() == member.crc;
                        }
                        self.state = State::Header {
                            buf: [0; LOCAL_HEADER],
                            have: 0,
                        };
                    }
                    at += n;
                    continue;
                }
            };
            push_package(&mut spans, at..at + taken);
            at += taken;
        }
        self.offset += data.len() as u64;
        spans
    }

    /// The members streamed (a member whose bytes did not all arrive is not `crc_ok`).
    pub fn finish(self) -> Vec<StreamedMember> {
        self.members
    }

    /// A member's header and name are in: where its data goes.
    fn member_starts(
        &mut self,
        header: LocalHeader,
        name: &[u8],
        data_at: u64,
        open: &mut dyn FnMut(&InstallPath, u64) -> Option<WriteId>,
    ) -> State {
        let streamed = if header.is_plain_stored()
            && header.size >= self.min_size
            && self.members.len() < MAX_SPLICES
            && let Ok(key) = member_key(name)
            && let Some(write) = open(&key, header.size)
        {
            self.members.push(StreamedMember {
                key,
                write,
                local_at: header.at,
                data_at,
                size: header.size,
                crc: header.crc,
                crc_ok: false,
            });
            Some((self.members.len() - 1, crc32fast::Hasher::new()))
        } else {
            None
        };
        if header.has_descriptor() && header.compressed == 0 {
            // Where its data ends is not known here: the rest goes to the package file.
            return State::Done;
        }
        State::Data {
            left: header.compressed,
            streamed,
        }
    }
}

/// Adds `range` to the package spans, merged with the last one when they touch.
fn push_package(spans: &mut Vec<Span>, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    if let Some(Span::Package(last)) = spans.last_mut()
        && last.end == range.start
    {
        last.end = range.end;
        return;
    }
    spans.push(Span::Package(range));
}

/// The received package file (`compact`: it lacks the streamed members' data) read as the
/// package it was: each streamed member's data reads as zeros, which the apply never reads for
/// a member it adopts, and which fails the CRC of any other.
pub fn received_package(
    compact: Box<dyn FileReader>,
    members: &[StreamedMember],
) -> Box<dyn FileReader> {
    if members.is_empty() {
        return compact;
    }
    let mut layout = SplicedPackage::new();
    for member in members {
        layout.push(
            member.data_at,
            member.size,
            Box::new(Absent(member.size)),
            member.key.clone(),
        );
    }
    layout.set_size(compact.size() + layout.spliced_bytes());
    Box::new(ReceivedPackage { compact, layout })
}

/// A streamed member's place in the package: zeros.
struct Absent(u64);

impl FileReader for Absent {
    fn size(&self) -> u64 {
        self.0
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let n = usize::try_from(self.0.saturating_sub(offset))
            .map_or(buf.len(), |left| left.min(buf.len()));
        buf[..n].fill(0);
        Ok(n)
    }
}

/// See [`received_package`].
struct ReceivedPackage {
    compact: Box<dyn FileReader>,
    layout: SplicedPackage,
}

impl FileReader for ReceivedPackage {
    fn size(&self) -> u64 {
        self.layout.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.layout
            .read_at(offset, buf, |at, buf| self.compact.read_at(at, buf))
    }
}
