//! The file-transfer sub-protocol (PROTOCOL.md §6): `new_file`, `file_upd`…, `file_end`.
//!
//! Why streaming in both directions: upstream holds neither side's file in memory, and neither do
//! we. The sender does not own the file: the connection asks the layer above for each chunk
//! ([`Event::FileChunkWanted`](super::Event::FileChunkWanted)) once `new_file` was acknowledged
//! and while the chunks in flight leave room in the window, so the adapter reads the disk as an
//! effect and backpressure is built in. The
//! receiver hands every chunk out as an event as it arrives and keeps only a running SHA-256 and a
//! byte count per open file.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::frame::Command;

use super::error::{PeerError, SendFileError};
use super::receive::Refusal;

/// Length of the SHA-256 digest `file_end` carries after the path and a space.
const DIGEST_LEN: usize = 32;

/// An outgoing file: its path, running hash and where it stands.
///
/// Chunks are pipelined within the connection's `file_window`: the next one is asked for as soon
/// as the chunks sent and not yet acknowledged leave room for it, so a file is not one round trip
/// per chunk. The peer answers requests in order, so the acknowledgements pop the oldest chunk.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingFile {
    pub(crate) path: Bytes,
    /// `new_file` was acknowledged.
    opened: bool,
    /// A [`FileChunkWanted`](super::Event::FileChunkWanted) is out and not yet answered.
    pub(crate) wanting: bool,
    /// `file_end` was sent.
    pub(crate) ending: bool,
    /// Lengths of the chunks sent and not yet acknowledged, oldest first.
    unacked: VecDeque<usize>,
    unacked_bytes: usize,
    /// Largest chunk: `request_chunk - len(path) - 1`, so every `file_upd` payload fits
    /// `request_chunk` exactly as upstream cuts it.
    pub(crate) chunk_max: usize,
    pub(crate) bytes_sent: u64,
    hasher: Sha256,
}

/// What an acknowledgement of an outgoing file's request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// A step before the end: the transfer goes on.
    Step,
    /// `file_end`: the peer has the whole file.
    End,
}

impl OutgoingFile {
    /// Validates the path (non-empty, no space: the receiver splits on the first one), the room
    /// left for data in a chunk, and the room for `file_end <path> <digest>`: checked here, so
    /// that a transfer that could never end is refused before it starts rather than at its end.
    pub(crate) fn new(path: &[u8], request_chunk: usize) -> Result<OutgoingFile, SendFileError> {
        if path.is_empty() {
            return Err(SendFileError::BadPath {
                reason: "empty path",
            });
        }
        if path.contains(&b' ') {
            return Err(SendFileError::BadPath {
                reason: "path contains a space",
            });
        }
        let chunk_max = request_chunk.saturating_sub(path.len() + 1);
        if chunk_max == 0 {
            return Err(SendFileError::BadPath {
                reason: "path leaves no room for data in a chunk",
            });
        }
        if path.len() + 1 + DIGEST_LEN > request_chunk {
            return Err(SendFileError::BadPath {
                reason: "path leaves no room for the checksum in file_end",
            });
        }
        Ok(OutgoingFile {
            path: Bytes::copy_from_slice(path),
            opened: false,
            wanting: false,
            ending: false,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            chunk_max,
            bytes_sent: 0,
            hasher: Sha256::new(),
        })
    }

    /// Hashes a chunk about to be sent and counts it unacknowledged.
    pub(crate) fn account(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.count(chunk.len());
    }

    /// The running hash once `chunk`, the next one, is sent; the file is left as it is (the chunk
    /// is being sealed ahead).
    pub(crate) fn hash_ahead(&self, chunk: &[u8]) -> Sha256 {
        let mut hasher = self.hasher.clone();
        hasher.update(chunk);
        hasher
    }

    /// Counts a chunk of `len` bytes sealed ahead and about to be sent unacknowledged; `hasher`
    /// is the running hash [`OutgoingFile::hash_ahead`] gave for it.
    pub(crate) fn account_sealed(&mut self, len: usize, hasher: Sha256) {
        self.hasher = hasher;
        self.count(len);
    }

    fn count(&mut self, len: usize) {
        self.bytes_sent += len as u64;
        self.unacked.push_back(len);
        self.unacked_bytes += len;
        self.wanting = false;
    }

    /// The peer acknowledged `command` of this transfer.
    pub(crate) fn acked(&mut self, command: &Command) -> Acked {
        if *command == Command::FILE_END {
            return Acked::End;
        }
        if *command == Command::NEW_FILE {
            self.opened = true;
        } else if let Some(len) = self.unacked.pop_front() {
            self.unacked_bytes -= len;
        }
        Acked::Step
    }

    /// Whether chunks sent wait for their acknowledgement.
    pub(crate) fn has_unacked(&self) -> bool {
        !self.unacked.is_empty()
    }

    /// Whether the next chunk (or the end) may be asked for now: opened, not ended, not asked
    /// already, and the window has room for a full chunk (or nothing is unacknowledged).
    pub(crate) fn may_want(&self, window: usize) -> bool {
        self.opened
            && !self.ending
            && !self.wanting
            && (self.unacked_bytes == 0 || self.unacked_bytes + self.chunk_max <= window)
    }

    /// The SHA-256 of everything sent, for `file_end`.
    pub(crate) fn digest(&self) -> [u8; DIGEST_LEN] {
        self.hasher.clone().finalize().into()
    }
}

/// A file being received: running hash and size, and its clocks.
#[derive(Debug, Clone)]
struct IncomingFile {
    hasher: Sha256,
    size: u64,
    /// When its `new_file` arrived.
    opened: Instant,
    /// When its `new_file` or its last `file_upd` arrived.
    last: Instant,
}

/// How long an incoming file may take (see
/// [`ConnectionConfig::incoming_file_idle_timeout`](super::ConnectionConfig::incoming_file_idle_timeout)
/// and [`ConnectionConfig::incoming_file_lifetime`](super::ConnectionConfig::incoming_file_lifetime)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileClocks {
    pub(crate) idle: Duration,
    pub(crate) lifetime: Duration,
}

impl IncomingFile {
    /// When it is given up: `idle` after its last step, or `lifetime` after its `new_file`.
    fn deadline(&self, clocks: FileClocks) -> Instant {
        (self.last + clocks.idle).min(self.opened + clocks.lifetime)
    }

    /// Why it is given up at `now`, if it is.
    fn abandoned(&self, path: &Bytes, clocks: FileClocks, now: Instant) -> Option<PeerError> {
        let path = path.clone();
        if self.opened + clocks.lifetime <= now {
            Some(PeerError::FileNotFinished {
                path,
                lifetime: clocks.lifetime,
            })
        } else if self.last + clocks.idle <= now {
            Some(PeerError::FileIdle {
                path,
                idle: clocks.idle,
            })
        } else {
            None
        }
    }
}

/// Longest file name (the last component of a `new_file` path) accepted, in bytes: Linux's
/// `NAME_MAX`; a longer one could never be written.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Where 3.9.5's API puts a request's temporary file (`tmp/api_tmp_file_….xml` under the install
/// root). Its `dapi.py` `send_tmp_file` sends that file before the request as
/// `new_file /tmp/<name>` (the path relative to the install root), and its receiver writes it
/// there. A link confined to an inbox takes this one form besides its inbox: see
/// [`upstream_tmp_name`].
pub const UPSTREAM_TMP_DIR: &[u8] = b"/tmp";

/// `<name>` when `path` is `/tmp/<name>` (see [`UPSTREAM_TMP_DIR`]) with one plain name: not
/// empty, no further `/`, not `.` or `..`. The name's length and characters are checked as any
/// file name's; the layer above stores the file in the link's inbox under that name.
pub fn upstream_tmp_name(path: &[u8]) -> Option<&[u8]> {
    path.strip_prefix(UPSTREAM_TMP_DIR)?
        .strip_prefix(b"/")
        .filter(|name| plain_name(name))
}

/// One directory entry's name: not empty, no `/`, not `.` or `..`.
fn plain_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'/') && name != b"." && name != b".."
}

/// The most files and bytes a link's directory may hold: the files being received plus those
/// received whole and not yet claimed by the layer above (see
/// [`Connection::set_inbox_quota`](super::Connection::set_inbox_quota)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxQuota {
    /// Most files.
    pub files: usize,
    /// Most bytes.
    pub bytes: u64,
}

/// The files the peer is sending us, by path.
#[derive(Debug)]
pub(crate) struct IncomingFiles {
    files: BTreeMap<Bytes, IncomingFile>,
    max_files: usize,
    /// The layer above's allowance, below `max_files` when the node's budget is short.
    allowance: Option<usize>,
    max_size: u64,
    max_path_len: usize,
    /// When set, the only directory files may be written into (`<inbox>/<name>`).
    inbox: Option<Bytes>,
    quota: Option<InboxQuota>,
    /// Files (and their bytes) received whole and still held in the directory, as the layer
    /// above last said, plus those completed since.
    held_files: usize,
    held_bytes: u64,
    clocks: FileClocks,
    /// The files given up lately (at most `max_files`, oldest forgotten first), so that their
    /// next `file_upd` or `file_end` is told why rather than answered with a bare unknown key.
    abandoned: VecDeque<PeerError>,
}

/// A completed incoming file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

impl IncomingFiles {
    pub(crate) fn new(
        max_files: usize,
        max_size: u64,
        max_path_len: usize,
        clocks: FileClocks,
    ) -> Self {
        IncomingFiles {
            files: BTreeMap::new(),
            max_files,
            allowance: None,
            max_size,
            max_path_len,
            inbox: None,
            quota: None,
            held_files: 0,
            held_bytes: 0,
            clocks,
            abandoned: VecDeque::new(),
        }
    }

    /// When the next open file is given up (see [`IncomingFiles::pop_abandoned`]).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.files.values().map(|f| f.deadline(self.clocks)).min()
    }

    /// Gives up one file that received nothing for the idle timeout or outlived its lifetime at
    /// `now`: it is dropped, and its next `file_upd` or `file_end` is answered with why. Returns
    /// why (it names the path), to report it and discard what was written.
    pub(crate) fn pop_abandoned(&mut self, now: Instant) -> Option<PeerError> {
        let (path, why) = self
            .files
            .iter()
            .find_map(|(path, f)| Some((path.clone(), f.abandoned(path, self.clocks, now)?)))?;
        self.files.remove(&path);
        self.forget_abandoned(&path);
        if self.abandoned.len() >= self.max_files.max(1) {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(why.clone());
        Some(why)
    }

    /// A `file_upd` or `file_end` for `path`, which is not open: why, if it was given up.
    fn unknown(&self, path: &Bytes) -> Refusal {
        match self
            .abandoned
            .iter()
            .find(|why| why.file_path() == Some(path))
        {
            Some(why) => Refusal::Abandoned(why.clone()),
            None => Refusal::UnknownKey(path.clone()),
        }
    }

    fn forget_abandoned(&mut self, path: &Bytes) {
        self.abandoned.retain(|why| why.file_path() != Some(path));
    }

    /// See [`Connection::set_inbox_quota`](super::Connection::set_inbox_quota).
    pub(crate) fn set_quota(&mut self, quota: InboxQuota) {
        self.quota = Some(quota);
    }

    /// See [`Connection::set_inbox_held`](super::Connection::set_inbox_held).
    pub(crate) fn set_held(&mut self, files: usize, bytes: u64) {
        self.held_files = files;
        self.held_bytes = bytes;
    }

    /// Bytes of the open transfers so far.
    fn open_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Files are accepted only directly inside `dir` from now on.
    pub(crate) fn set_inbox(&mut self, dir: Bytes) {
        self.inbox = Some(dir);
    }

    /// At most `allowance` files open at once from now on (`None`: only `max_files`).
    pub(crate) fn set_allowance(&mut self, allowance: Option<usize>) {
        self.allowance = allowance;
    }

    /// Whether `path` is `<inbox>/<name>` or 3.9.5's `/tmp/<name>` (see [`upstream_tmp_name`]);
    /// any path while no inbox is set.
    fn inside_inbox(&self, path: &[u8]) -> bool {
        let Some(inbox) = &self.inbox else {
            return true;
        };
        let in_inbox = path
            .strip_prefix(&inbox[..])
            .and_then(|rest| rest.strip_prefix(b"/"))
            .is_some_and(plain_name);
        in_inbox || upstream_tmp_name(path).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// `new_file <path>` at `now`. Upstream reopens (truncates) a path that is already open; so
    /// do we.
    pub(crate) fn open(&mut self, path: &Bytes, now: Instant) -> Result<(), Refusal> {
        if path.is_empty() || path.len() > self.max_path_len {
            return Err(Refusal::Peer(PeerError::BadFilePath {
                len: path.len(),
                limit: self.max_path_len,
            }));
        }
        if !self.inside_inbox(path) {
            return Err(Refusal::Peer(PeerError::FileOutsideInbox {
                path: String::from_utf8_lossy(path).into_owned(),
            }));
        }
        let name_len = path.len() - path.iter().rposition(|&b| b == b'/').map_or(0, |at| at + 1);
        if name_len > MAX_FILE_NAME_LEN {
            return Err(Refusal::Peer(PeerError::FileNameTooLong { len: name_len }));
        }
        let reopened = self.files.contains_key(path);
        if !reopened && self.files.len() >= self.max_files {
            return Err(Refusal::Peer(PeerError::TooManyFiles {
                limit: self.max_files,
            }));
        }
        if let Some(limit) = self.allowance
            && !reopened
            && self.files.len() >= limit
        {
            return Err(Refusal::Peer(PeerError::FileBudgetExhausted { limit }));
        }
        if let Some(quota) = self.quota {
            // A reopened path restarts: it does not count twice.
            let open = self.files.len() - usize::from(reopened);
            if self.held_files.saturating_add(open) >= quota.files {
                return Err(Refusal::Peer(PeerError::InboxFilesQuota {
                    limit: quota.files,
                }));
            }
        }
        self.forget_abandoned(path);
        self.files.insert(
            path.clone(),
            IncomingFile {
                hasher: Sha256::new(),
                size: 0,
                opened: now,
                last: now,
            },
        );
        Ok(())
    }

    /// `file_upd <path> <chunk>` at `now`.
    pub(crate) fn update(
        &mut self,
        path: &Bytes,
        chunk: &[u8],
        now: Instant,
    ) -> Result<(), Refusal> {
        let Some(file) = self.files.get_mut(path) else {
            return Err(self.unknown(path));
        };
        let size = file.size + chunk.len() as u64;
        if size > self.max_size {
            self.files.remove(path);
            return Err(Refusal::Peer(PeerError::FileTooLarge {
                path: path.clone(),
                limit: self.max_size,
            }));
        }
        file.size = size;
        file.last = now;
        file.hasher.update(chunk);
        if let Some(quota) = self.quota
            && self.held_bytes.saturating_add(self.open_bytes()) > quota.bytes
        {
            self.files.remove(path);
            return Err(Refusal::Peer(PeerError::InboxBytesQuota {
                path: path.clone(),
                limit: quota.bytes,
            }));
        }
        Ok(())
    }

    /// `file_end <path> <digest>`: closes the transfer and compares the digests.
    pub(crate) fn end(&mut self, path: &Bytes, digest: &[u8]) -> Result<Received, Refusal> {
        let Some(file) = self.files.remove(path) else {
            return Err(self.unknown(path));
        };
        let sha256: [u8; 32] = file.hasher.finalize().into();
        if digest == sha256 {
            // Held in the directory until the layer above says otherwise.
            self.held_files += 1;
            self.held_bytes += file.size;
            Ok(Received {
                size: file.size,
                sha256,
            })
        } else {
            Err(Refusal::Peer(PeerError::ChecksumMismatch {
                path: path.clone(),
            }))
        }
    }

    /// Forgets every open transfer (connection closed); returns their paths.
    pub(crate) fn drain(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.files).into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCKS: FileClocks = FileClocks {
        idle: Duration::from_secs(40),
        lifetime: Duration::from_secs(120),
    };

    #[test]
    fn outgoing_chunk_size_follows_upstream() {
        let file = OutgoingFile::new(b"/queue/cluster/master01/sendme.bin", 400).unwrap();
        assert_eq!(file.chunk_max, 365);
        assert_eq!(
            OutgoingFile::new(b"a b", 400).unwrap_err(),
            SendFileError::BadPath {
                reason: "path contains a space"
            }
        );
        assert_eq!(
            OutgoingFile::new(b"abc", 4).unwrap_err(),
            SendFileError::BadPath {
                reason: "path leaves no room for data in a chunk"
            }
        );
        // 400 - 1 - 32: the longest path whose `file_end` payload fits request_chunk exactly.
        assert!(OutgoingFile::new(&[b'p'; 367], 400).is_ok());
        assert_eq!(
            OutgoingFile::new(&[b'p'; 368], 400).unwrap_err(),
            SendFileError::BadPath {
                reason: "path leaves no room for the checksum in file_end"
            }
        );
    }

    #[test]
    fn the_allowance_refuses_new_files_but_not_a_reopened_one() {
        let mut files = IncomingFiles::new(4, 10, 8, CLOCKS);
        let now = super::super::test_origin();
        let (a, b) = (Bytes::from_static(b"/a"), Bytes::from_static(b"/b"));
        files.set_allowance(Some(1));
        files.open(&a, now).unwrap();
        let refused = files.open(&b, now).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Peer(PeerError::FileBudgetExhausted { limit: 1 })
        );
        assert_eq!(
            refused.reply_text().as_deref(),
            Some(&b"Too many files being received by this node, try again later"[..])
        );
        // Reopening the open path restarts it: no new file.
        files.open(&a, now).unwrap();
        // Room given back: the next one goes through, up to `max_files` again.
        files.set_allowance(None);
        files.open(&b, now).unwrap();
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn incoming_bounds_and_checksums() {
        let mut files = IncomingFiles::new(1, 10, 8, CLOCKS);
        let now = super::super::test_origin();
        let a = Bytes::from_static(b"/a");
        let b = Bytes::from_static(b"/b");
        files.open(&a, now).unwrap();
        assert_eq!(
            files.open(&b, now),
            Err(Refusal::Peer(PeerError::TooManyFiles { limit: 1 }))
        );
        assert_eq!(
            files.open(&Bytes::from_static(b"/toolong/path"), now),
            Err(Refusal::Peer(PeerError::BadFilePath { len: 13, limit: 8 }))
        );
        let unknown = files.update(&b, b"x", now).unwrap_err();
        assert_eq!(unknown, Refusal::UnknownKey(b.clone()));
        assert_eq!(unknown.reply_text(), Some(b"b'/b'".to_vec().into()));
        assert_eq!(files.update(&a, b"hello", now), Ok(()));
        let digest: [u8; 32] = Sha256::digest(b"hello").into();
        assert_eq!(
            files.end(&a, &digest),
            Ok(Received {
                size: 5,
                sha256: digest
            })
        );
        files.open(&a, now).unwrap();
        assert_eq!(
            files.update(&a, b"01234567890", now),
            Err(Refusal::Peer(PeerError::FileTooLarge {
                path: a.clone(),
                limit: 10
            }))
        );
        assert_eq!(files.len(), 0);
        files.open(&a, now).unwrap();
        assert_eq!(
            files.end(&a, b"short"),
            Err(Refusal::Peer(PeerError::ChecksumMismatch {
                path: a.clone()
            }))
        );
    }

    #[test]
    fn an_inbox_takes_its_own_names_and_upstreams_tmp_names_only() {
        let mut files = IncomingFiles::new(8, 1 << 20, 512, CLOCKS);
        let now = super::super::test_origin();
        files.set_inbox(Bytes::from_static(b"/queue/cluster/w1"));
        for good in [
            &b"/queue/cluster/w1/a.zip"[..],
            b"/tmp/api_tmp_file_1.xml",
            b"/tmp/..x",
        ] {
            assert_eq!(files.open(&Bytes::copy_from_slice(good), now), Ok(()));
        }
        let long = [&b"/tmp/"[..], &[b'a'; MAX_FILE_NAME_LEN + 1]].concat();
        assert_eq!(
            files.open(&Bytes::from(long), now),
            Err(Refusal::Peer(PeerError::FileNameTooLong {
                len: MAX_FILE_NAME_LEN + 1
            }))
        );
        for bad in [
            &b"/tmp/../etc/x"[..],
            b"/tmp/a/b",
            b"/tmp/",
            b"/tmp/..",
            b"/tmp",
            b"/tmpx/a",
            b"tmp/a",
            b"/etc/x",
            b"/queue/cluster/w1/../x",
            b"/queue/cluster/w2/a",
        ] {
            assert_eq!(
                files.open(&Bytes::copy_from_slice(bad), now),
                Err(Refusal::Peer(PeerError::FileOutsideInbox {
                    path: String::from_utf8_lossy(bad).into_owned()
                })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn the_inbox_quota_counts_open_and_held_files_and_bytes() {
        let mut files = IncomingFiles::new(8, 1 << 20, 64, CLOCKS);
        let now = super::super::test_origin();
        files.set_quota(InboxQuota {
            files: 2,
            bytes: 10,
        });
        let (a, b, c) = (
            Bytes::from_static(b"/a"),
            Bytes::from_static(b"/b"),
            Bytes::from_static(b"/c"),
        );
        files.open(&a, now).unwrap();
        files.update(&a, b"123456", now).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"123456").into();
        files.end(&a, &digest).unwrap();
        // `a` is held (6 bytes) until the layer above says otherwise; `b` opens, then the bytes
        // run out.
        files.open(&b, now).unwrap();
        files.update(&b, b"1234", now).unwrap();
        let over = files.update(&b, b"5", now).unwrap_err();
        assert_eq!(
            over,
            Refusal::Peer(PeerError::InboxBytesQuota {
                path: b.clone(),
                limit: 10
            })
        );
        assert_eq!(
            over.reply_text().as_deref(),
            Some(&b"Error: file /b refused: this node's directory would exceed its quota of 10 bytes"[..])
        );
        assert_eq!(files.len(), 0, "the refused transfer is dropped");
        files.open(&b, now).unwrap();
        // Two files: one held, one open.
        let full = files.open(&c, now).unwrap_err();
        assert_eq!(full, Refusal::Peer(PeerError::InboxFilesQuota { limit: 2 }));
        assert_eq!(
            full.reply_text().as_deref(),
            Some(&b"Error: this node's directory already holds its quota of 2 files"[..])
        );
        // Reopening an open path is no second file.
        files.open(&b, now).unwrap();
        // The layer above claimed `a`: room again.
        files.set_held(0, 0);
        files.open(&c, now).unwrap();
        files.update(&c, b"0123456789", now).unwrap();
    }

    #[test]
    fn a_silent_or_trickling_file_is_given_up_and_its_next_step_told_why() {
        let t0 = super::super::test_origin();
        let secs = Duration::from_secs;
        let mut files = IncomingFiles::new(2, 1 << 20, 64, CLOCKS);
        let (silent, trickle) = (
            Bytes::from_static(b"/silent"),
            Bytes::from_static(b"/trickle"),
        );
        files.open(&silent, t0).unwrap();
        files.open(&trickle, t0).unwrap();
        assert_eq!(files.next_deadline(), Some(t0 + secs(40)));
        assert_eq!(files.pop_abandoned(t0 + secs(39)), None);
        // One byte every 39 s keeps `trickle` from being idle, not from its lifetime.
        let mut now = t0;
        while now + secs(39) < t0 + secs(120) {
            now += secs(39);
            files.update(&trickle, b"x", now).unwrap();
            if now == t0 + secs(39) {
                let idle = files.pop_abandoned(t0 + secs(40)).unwrap();
                assert_eq!(
                    idle,
                    PeerError::FileIdle {
                        path: silent.clone(),
                        idle: secs(40)
                    }
                );
            }
        }
        assert_eq!(files.next_deadline(), Some(t0 + secs(120)));
        let late = files.pop_abandoned(t0 + secs(120)).unwrap();
        assert_eq!(
            late.reply_text().as_deref(),
            Some(&b"Error: file /trickle given up by this node: not finished within 120 s"[..])
        );
        assert_eq!((files.len(), files.next_deadline()), (0, None));
        // Their next steps are told why, and never reported again.
        let told = files.update(&silent, b"x", t0 + secs(121)).unwrap_err();
        assert_eq!(
            told.reply_text().as_deref(),
            Some(&b"Error: file /silent given up by this node: nothing received for 40 s"[..])
        );
        assert!(matches!(told, Refusal::Abandoned(_)));
        assert!(matches!(
            files.end(&trickle, &[0; 32]),
            Err(Refusal::Abandoned(PeerError::FileNotFinished { .. }))
        ));
        // Opening the path again starts it afresh; the list of files given up stays bounded.
        files.open(&silent, t0 + secs(121)).unwrap();
        files.update(&silent, b"x", t0 + secs(122)).unwrap();
        for n in 0..10 {
            let path = Bytes::from(format!("/f{n}"));
            files.open(&path, t0 + secs(200)).unwrap_or_default();
            files.pop_abandoned(t0 + secs(400));
        }
        assert!(files.abandoned.len() <= 2);
    }
}
