//! Merged files: many small agent files (agent-info, agent-groups) shipped as one
//! (PROTOCOL.md §10).
//!
//! Format: records `<size> SP <name> SP <mtime>\n` followed by exactly `size` raw bytes, no
//! separator; `mtime` is `str(datetime.utcfromtimestamp(st_mtime))` and so contains a space.
//!
//! Building ([`merge_parts`], [`merge_from_storage`]) reproduces 3.9.5 `merge_agent_info` byte for
//! byte, in the order the caller gives (upstream: `os.listdir` order), with its age filter
//! (`st_mtime < now - limit` is skipped; no limit for agent-groups). One deliberate difference: the
//! size written is the number of bytes actually read, not a `stat` taken before reading, so a file
//! that changes during the merge cannot produce a torn record.
//!
//! Parsing ([`unmerge`]) is the hostile-input side: the master parses what a worker sends, the
//! worker what the master sends. It is bounded ([`MergedLimits`]: parts, part size, total size,
//! header length), borrows from the input instead of allocating a declared size, refuses part
//! names that could leave `queue/<type>/` (`/`, `\`, `..`, leading `.`, NUL, empty), and never
//! panics. Like upstream it stops at the first malformed record and keeps the parts before it
//! (the vector's "malformed" case); [`Unmerged::error`] says why it stopped, and
//! [`Unmerged::into_result`] turns that into a hard error for callers that want all or nothing.

use super::metadata::{MergeType, format_mod_time, parse_mod_time};
use super::path::InstallPath;
use super::storage::{EntryKind, Storage, StorageError, StorageErrorKind, Timestamp};

/// Longest header line accepted (`<size> <name> <mtime>`); a name is at most 255 bytes.
pub const MAX_HEADER_LEN: usize = 512;

/// Bounds applied by [`unmerge`] and by [`merge_from_storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedLimits {
    /// Most parts in one merged file.
    pub max_parts: usize,
    /// Largest single part, in bytes.
    pub max_part_size: u64,
    /// Largest merged file, in bytes.
    pub max_total: u64,
}

impl Default for MergedLimits {
    /// 100,000 agents, 1 MiB per agent file, 256 MiB in all.
    fn default() -> Self {
        MergedLimits {
            max_parts: 100_000,
            max_part_size: 1 << 20,
            max_total: 256 << 20,
        }
    }
}

/// Why parsing stopped, or why a merge could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergedError {
    /// The whole input is larger than `max_total`.
    #[error("merged file of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Input size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More parts than `max_parts`.
    #[error("merged file has more than {0} parts")]
    TooManyParts(usize),
    /// A header line without its `\n` within [`MAX_HEADER_LEN`] bytes, or at end of input.
    #[error("record at byte {offset}: header line is not terminated")]
    UnterminatedHeader {
        /// Offset of the record.
        offset: usize,
    },
    /// A header that is not `<size> <name> <mtime>` (upstream: a warning, parsing stops).
    #[error("record at byte {offset}: malformed header")]
    MalformedHeader {
        /// Offset of the record.
        offset: usize,
    },
    /// A part name that could leave its directory or is not a file name.
    #[error("record at byte {offset}: part name {name:?} is not allowed")]
    BadName {
        /// Offset of the record.
        offset: usize,
        /// The name (lossy UTF-8).
        name: String,
    },
    /// A declared size above `max_part_size`.
    #[error("record at byte {offset}: part of {size} bytes exceeds the limit of {limit}")]
    PartTooLarge {
        /// Offset of the record.
        offset: usize,
        /// Declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A declared size larger than what is left of the input.
    #[error("record at byte {offset}: declares {size} bytes but only {available} remain")]
    Truncated {
        /// Offset of the record.
        offset: usize,
        /// Declared size.
        size: u64,
        /// Bytes left after the header.
        available: usize,
    },
    /// Reading a part from storage failed.
    #[error("reading part: {0}")]
    Storage(StorageError),
}

/// One part to merge: a file of `queue/<type>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeInput<'a> {
    /// Base name (`agent-one-10.0.0.1`, `001`).
    pub name: &'a str,
    /// Content.
    pub content: &'a [u8],
    /// Modification time (written as `mod_time`, and used by the age filter).
    pub mtime: Timestamp,
}

/// A built merged file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutput {
    /// The merged bytes.
    pub bytes: Vec<u8>,
    /// How many parts went in (upstream's `files_to_send`; 0 means nothing to send).
    pub parts: usize,
}

/// Appends one record.
pub fn write_record(out: &mut Vec<u8>, name: &str, content: &[u8], mtime: Timestamp) {
    out.extend_from_slice(
        format!("{} {} {}\n", content.len(), name, format_mod_time(mtime)).as_bytes(),
    );
    out.extend_from_slice(content);
}

/// Merges `parts` in the order given, skipping those older than `min_mtime` (`now - limit`, or
/// `None` for no age filter, as upstream's `time_limit_seconds=0`).
pub fn merge_parts<'a>(
    parts: impl IntoIterator<Item = MergeInput<'a>>,
    min_mtime: Option<Timestamp>,
) -> MergeOutput {
    let mut out = MergeOutput::default();
    for part in parts {
        if min_mtime.is_some_and(|min| part.mtime < min) {
            continue;
        }
        write_record(&mut out.bytes, part.name, part.content, part.mtime);
        out.parts += 1;
    }
    out
}

/// `now - age`, the `min_mtime` of 3.9.5's `merge_agent_info(time_limit_seconds=age)`
/// (`None` when `age` is zero: no filter).
pub fn min_mtime(now: Timestamp, age: std::time::Duration) -> Option<Timestamp> {
    if age.is_zero() {
        return None;
    }
    let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    let mut t = Timestamp {
        secs: now.secs.saturating_sub(secs),
        nanos: now.nanos,
    };
    let sub_nanos = age.subsec_nanos();
    if t.nanos >= sub_nanos {
        t.nanos -= sub_nanos;
    } else {
        t.secs = t.secs.saturating_sub(1);
        t.nanos = t.nanos + 1_000_000_000 - sub_nanos;
    }
    Some(t)
}

/// Merges files of `sources` read through `storage`, in the order given, with the age filter of
/// [`merge_parts`]. Entries that are not regular files (symlinks, directories) or have vanished
/// are skipped; the result is bounded by `limits`.
pub fn merge_from_storage<S: Storage + ?Sized>(
    storage: &S,
    sources: &[InstallPath],
    min_mtime: Option<Timestamp>,
    limits: &MergedLimits,
) -> Result<MergeOutput, MergedError> {
    let mut out = MergeOutput::default();
    for path in sources {
        let stat = match storage.stat(path) {
            Ok(Some(stat)) if stat.kind == EntryKind::File => stat,
            Ok(_) => continue,
            Err(e) if e.kind == StorageErrorKind::NotFound => continue,
            Err(e) => return Err(MergedError::Storage(e)),
        };
        if min_mtime.is_some_and(|min| stat.mtime < min) {
            continue;
        }
        let Some(name) = path.file_name() else {
            continue;
        };
        let content = match storage.read(path, limits.max_part_size) {
            Ok(content) => content,
            Err(e) if e.kind == StorageErrorKind::NotFound => continue,
            Err(e) if e.kind == StorageErrorKind::TooLarge => {
                return Err(MergedError::PartTooLarge {
                    offset: out.bytes.len(),
                    size: stat.size,
                    limit: limits.max_part_size,
                });
            }
            Err(e) => return Err(MergedError::Storage(e)),
        };
        if out.parts >= limits.max_parts {
            return Err(MergedError::TooManyParts(limits.max_parts));
        }
        write_record(&mut out.bytes, name, &content, stat.mtime);
        out.parts += 1;
        if out.bytes.len() as u64 > limits.max_total {
            return Err(MergedError::TooLarge {
                size: out.bytes.len() as u64,
                limit: limits.max_total,
            });
        }
    }
    Ok(out)
}

/// Merges every regular file of `dir` (in listing order, i.e. by name), or only those whose
/// names are in `only`: 3.9.5 `merge_agent_info(merge_type, files=…)` over `queue/<merge_type>/`.
pub fn merge_dir<S: Storage + ?Sized>(
    storage: &S,
    merge_type: MergeType,
    only: Option<&[&str]>,
    min_mtime: Option<Timestamp>,
    limits: &MergedLimits,
) -> Result<MergeOutput, MergedError> {
    let dir = InstallPath::new(&format!("/queue/{}", merge_type.as_str())).map_err(|e| {
        MergedError::Storage(StorageError::new(
            StorageErrorKind::Io,
            "/queue",
            e.to_string(),
        ))
    })?;
    let entries = match storage.list_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(MergeOutput::default()),
        Err(e) => return Err(MergedError::Storage(e)),
    };
    let sources: Vec<InstallPath> = entries
        .into_iter()
        .filter(|e| {
            e.kind == EntryKind::File && only.is_none_or(|names| names.contains(&e.name.as_str()))
        })
        .filter_map(|e| dir.join(&e.name).ok())
        .collect();
    merge_from_storage(storage, &sources, min_mtime, limits)
}

/// One part of a parsed merged file, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedPart<'a> {
    /// Validated base name (a single path component, no leading `.`).
    pub name: &'a str,
    /// The part's bytes.
    pub content: &'a [u8],
    /// The header's time text, as written (`2019-07-01 16:53:20.250000`).
    pub mod_time: &'a str,
}

impl MergedPart<'_> {
    /// Where upstream writes this part: `queue/<merge_type>/<name>` (no leading `/`, as
    /// `unmerge_agent_info` yields it).
    pub fn upstream_path(&self, merge_type: MergeType) -> String {
        format!("queue/{}/{}", merge_type.as_str(), self.name)
    }

    /// The part's target, `/queue/<merge_type>/<name>`.
    pub fn install_path(
        &self,
        merge_type: MergeType,
    ) -> Result<InstallPath, super::path::PathError> {
        InstallPath::new(&format!("/queue/{}", merge_type.as_str()))?.join(self.name)
    }

    /// The header time parsed as 3.9.5's master does (`None` if it is not a valid time).
    pub fn mtime(&self) -> Option<Timestamp> {
        parse_mod_time(self.mod_time)
    }
}

/// The parts parsed before the end of input or before the first bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmerged<'a> {
    /// Valid parts, in file order.
    pub parts: Vec<MergedPart<'a>>,
    /// Why parsing stopped early, if it did.
    pub error: Option<MergedError>,
}

impl<'a> Unmerged<'a> {
    /// All parts, or the error if parsing stopped early.
    pub fn into_result(self) -> Result<Vec<MergedPart<'a>>, MergedError> {
        match self.error {
            None => Ok(self.parts),
            Some(e) => Err(e),
        }
    }
}

/// Checks a part name: non-empty, at most 255 bytes, no `/`, `\`, NUL, not starting with `.`
/// (which also refuses `.` and `..`).
pub fn valid_part_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// Splits a merged file (see the module docs for what is checked).
pub fn unmerge<'a>(input: &'a [u8], limits: &MergedLimits) -> Unmerged<'a> {
    let mut parts = Vec::new();
    if input.len() as u64 > limits.max_total {
        let error = MergedError::TooLarge {
            size: input.len() as u64,
            limit: limits.max_total,
        };
        return Unmerged {
            parts,
            error: Some(error),
        };
    }
    let mut pos = 0;
    while pos < input.len() {
        match parse_record(input, pos, limits) {
            Ok((part, next)) => {
                if parts.len() >= limits.max_parts {
                    return Unmerged {
                        parts,
                        error: Some(MergedError::TooManyParts(limits.max_parts)),
                    };
                }
                parts.push(part);
                pos = next;
            }
            Err(error) => {
                return Unmerged {
                    parts,
                    error: Some(error),
                };
            }
        }
    }
    Unmerged { parts, error: None }
}

fn parse_record<'a>(
    input: &'a [u8],
    offset: usize,
    limits: &MergedLimits,
) -> Result<(MergedPart<'a>, usize), MergedError> {
    let rest = &input[offset..];
    let window = &rest[..rest.len().min(MAX_HEADER_LEN)];
    let newline = window
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(MergedError::UnterminatedHeader { offset })?;
    let header = std::str::from_utf8(&rest[..newline])
        .map_err(|_| MergedError::MalformedHeader { offset })?;
    // Upstream: `line[:-1].split(b' ', 2)` must give exactly three fields.
    let mut fields = header.splitn(3, ' ');
    let (Some(size), Some(name), Some(mod_time)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(MergedError::MalformedHeader { offset });
    };
    if size.is_empty() || size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MergedError::MalformedHeader { offset });
    }
    let size: u64 = size
        .parse()
        .map_err(|_| MergedError::MalformedHeader { offset })?;
    if !valid_part_name(name) {
        return Err(MergedError::BadName {
            offset,
            name: name.to_owned(),
        });
    }
    if size > limits.max_part_size {
        return Err(MergedError::PartTooLarge {
            offset,
            size,
            limit: limits.max_part_size,
        });
    }
    let body_start = newline + 1;
    let available = rest.len() - body_start;
    if size > available as u64 {
        return Err(MergedError::Truncated {
            offset,
            size,
            available,
        });
    }
    let end = body_start + size as usize;
    let part = MergedPart {
        name,
        content: &rest[body_start..end],
        mod_time,
    };
    Ok((part, offset + end))
}
