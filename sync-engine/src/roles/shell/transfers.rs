//! The one owner of a link's file transfers: every file the peer sends us and every file we send
//! it, each tracked by its own id from its first frame to its last effect.
//!
//! Why ids and not paths: the protocol core names incoming files by the path the peer sent, but
//! the same path can be sent again while its first copy is still being committed (upstream's
//! workers do it after a failed round), and each copy has its own staged write. So every
//! `new_file` opens a new [`IncomingFileId`], the path only finds the copy that is receiving now,
//! and the owner knows, for every copy, whether its staged write is open. When the link closes,
//! [`Transfers::close`] hands back one abort per copy that may still hold a staged write: the
//! close-time clean-up is that one call.
//!
//! No orphans: a file received whole stays in the table until a role takes it, at most
//! `unclaimed_file_timeout` after its `file_end` ([`Transfers::expire`] hands it back for
//! removal), and a link's close hands back every file it holds that no role took. What the table
//! holds in the link's directory is what counts against the link's quota ([`Transfers::held`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{SealedChunk, TransferId};

use crate::integrity::path::InstallPath;
use crate::roles::effects::{Effect, IncomingFileId};
use crate::roles::error::SendFailure;

/// Where an incoming file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IncomingState {
    /// Chunks are arriving.
    Receiving,
    /// `file_end` matched; the commit is queued or running.
    Committing,
    /// On disk, complete, not yet taken by a role.
    Committed,
    /// Refused, failed on the way or on disk: nothing to take.
    Failed,
}

/// Whether an incoming file's staged write is open, as far as the effects that returned tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StagedWrite {
    /// Its `BeginFile` has not returned (or there is none: a refused path).
    NotBegun,
    /// Begun and neither committed nor aborted.
    Open,
    /// Committed or aborted (or a step failed and the executor dropped it).
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IncomingFile {
    /// The path as the peer sent it.
    wire: Bytes,
    /// Where it is written; `None` when the peer's path was refused (its bytes are dropped).
    target: Option<InstallPath>,
    state: IncomingState,
    write: StagedWrite,
    /// Bytes received (known at its `file_end`).
    size: u64,
    /// When its `file_end` arrived: the unclaimed file's clock.
    ended: Option<Instant>,
}

impl IncomingFile {
    /// Whether the file is (or is about to be) whole in the directory, waiting for a role.
    fn held(&self) -> bool {
        matches!(
            self.state,
            IncomingState::Committing | IncomingState::Committed
        )
    }
}

/// A disk step of an incoming file, as its effect's continuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileStep {
    /// `BeginFile`.
    Begin,
    /// `AppendFile`.
    Append,
    /// `CommitFile`.
    Commit,
    /// `AbortFile`.
    Abort,
}

/// What a `<task> <file>` end message names, once the task is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `<task> Error`: the sender could not send its file.
    NoFile,
    /// The file is on disk: take it with [`Transfers::take`].
    Ready(IncomingFileId),
    /// Its commit is still queued or running: wait for its commit input.
    Committing(IncomingFileId),
    /// No such file was received (or it failed); the path as the peer named it.
    Missing(Bytes),
}

/// A file we send to the peer.
#[derive(Debug)]
struct OutgoingFile {
    path: InstallPath,
    size: u64,
    /// Bytes read so far (those sent, and the chunk read or sealed ahead).
    offset: u64,
    /// The connection asked for the next chunk (largest length): waiting for room or a read.
    wanted: Option<usize>,
    /// The largest chunk the connection asks for (known from its first ask).
    chunk_max: usize,
    /// A chunk read is queued or running; what it holds of the node's output gate.
    reading: Option<u64>,
    /// The next chunk, read and sealed before the connection asked for it, and what it holds
    /// of the node's output gate.
    ahead: Option<(SealedChunk, u64)>,
    /// Reading failed: the transfer is ended early and reported as failed when it completes.
    failed: Option<SendFailure>,
}

/// The first chunk of a file when chunks grow (see [`ChunkSizing`]).
const FIRST_CHUNK: usize = 512 << 10;

/// How long the chunks a link reads are: at most `read_chunk` bytes and the connection's
/// largest; with `growing` (one chunk in flight per file, upstream's way), each chunk at most as
/// long as all before it (and [`FIRST_CHUNK`] for the first), so a file's chunks double from
/// 512 KiB up to the connection's 5 MiB.
///
/// Why growing: one chunk in flight per file means the peer opens chunk k while the sender seals
/// chunk k+1 (read and sealed ahead), so a file goes at the pace of the slower side, but its
/// first chunk is sealed with the peer idle and its last opened with the sender idle. A package
/// of 4 MiB in one chunk was all of that: sealed in about 19 ms, then opened in about 17 ms.
/// Starting small makes both ends short, and doubling keeps a large file's chunk count (and
/// round trips) within a few of what it was. Any chunk length is upstream's: a 3.9.5 receiver
/// appends what each `file_upd` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkSizing {
    pub(crate) read_chunk: usize,
    pub(crate) growing: bool,
}

impl ChunkSizing {
    /// The length of the chunk at `offset` of a file with `left` bytes to go, the connection
    /// asking for at most `max_len`.
    fn len(self, offset: u64, left: u64, max_len: usize) -> usize {
        let mut len = max_len.min(self.read_chunk);
        if self.growing {
            len = len.min(
                usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .max(FIRST_CHUNK),
            );
        }
        len.min(usize::try_from(left).unwrap_or(usize::MAX))
    }
}

impl OutgoingFile {
    /// The read of its next chunk, at most `max_len` bytes and as `sizing` says.
    fn read(
        &self,
        transfer: TransferId,
        max_len: usize,
        sizing: ChunkSizing,
        ahead: bool,
    ) -> Piece {
        let len = sizing.len(self.offset, self.size - self.offset, max_len);
        Piece::Read {
            transfer,
            effect: Effect::ReadChunk {
                path: self.path.clone(),
                offset: self.offset,
                len,
            },
            payload_len: self.path.as_str().len() + 1 + len,
            ahead,
        }
    }

    /// Whether its next chunk may be read ahead: a chunk went already (the first one is read
    /// when asked for, so a file of one chunk is exchanged exactly as before), more follow,
    /// and nothing is asked for, read or sealed for it now.
    fn may_read_ahead(&self) -> bool {
        self.offset > 0
            && self.offset < self.size
            && self.wanted.is_none()
            && self.reading.is_none()
            && self.ahead.is_none()
            && self.failed.is_none()
    }
}

/// The next piece of output a link's transfers want to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Read this chunk of `transfer`'s file, then send it (or seal it, when read `ahead` of the
    /// connection's asking and still not asked for when read); its `file_upd` payload is
    /// `payload_len` bytes.
    Read {
        transfer: TransferId,
        effect: Effect,
        payload_len: usize,
        ahead: bool,
    },
    /// Send the chunk of `transfer` sealed ahead, now asked for (it holds its place at the
    /// output gate since its read).
    Sealed(TransferId),
    /// `transfer`'s whole file went out: end it (a short frame, never paced).
    Finish(TransferId),
    /// The next piece of long string `transfer`, `frame_len` bytes on the wire.
    String {
        transfer: TransferId,
        frame_len: usize,
    },
}

/// A finished outgoing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentFile {
    /// The file.
    pub(crate) path: InstallPath,
    /// `None`: the peer confirmed it.
    pub(crate) failure: Option<SendFailure>,
    /// The output-gate charge of a chunk read still under way for it (0: none).
    pub(crate) read_held: u64,
    /// The output-gate charge of the chunk it had sealed ahead (0: none).
    pub(crate) sealed_held: u64,
}

/// The transfers of one link. See the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    incoming: BTreeMap<IncomingFileId, IncomingFile>,
    /// The copy of each path that is receiving now (the protocol names chunks by path).
    receiving: BTreeMap<Bytes, IncomingFileId>,
    outgoing: BTreeMap<TransferId, OutgoingFile>,
    /// Long strings we send, until delivered or failed, with the frame length of the piece the
    /// connection asked for and that is not sent yet.
    strings: BTreeMap<TransferId, Option<usize>>,
}

impl Transfers {
    /// The peer opened `wire` as transfer `id`, to be written at `target` (`None`: refused);
    /// `package`: the master's package the worker waits for. Returns the effects to queue, in
    /// order: the abort of an older copy of the same path that was still receiving (reopening a
    /// path restarts it), then the new copy's `BeginFile`.
    ///
    /// `keep` bounds the table: past it, finished copies whose staged write is closed are forgotten.
    pub(crate) fn open(
        &mut self,
        id: IncomingFileId,
        wire: Bytes,
        target: Option<InstallPath>,
        keep: usize,
        package: bool,
    ) -> Vec<(IncomingFileId, FileStep, Effect)> {
        let mut effects = Vec::new();
        if let Some(old) = self.receiving.remove(&wire)
            && let Some(abort) = self.fail(old)
        {
            effects.push((old, FileStep::Abort, abort));
        }
        let state = match &target {
            Some(path) => {
                self.receiving.insert(wire.clone(), id);
                effects.push((
                    id,
                    FileStep::Begin,
                    Effect::BeginFile {
                        path: path.clone(),
                        file: id,
                        package,
                    },
                ));
                IncomingState::Receiving
            }
            // Refused: remembered (so its `_e` fails) but not receiving.
            None => IncomingState::Failed,
        };
        self.incoming.insert(
            id,
            IncomingFile {
                wire,
                target,
                state,
                write: StagedWrite::NotBegun,
                size: 0,
                ended: None,
            },
        );
        if self.incoming.len() > keep {
            // Forget failed copies whose staged write is closed (or was never asked for); a copy
            // whose begin may still run is kept so that a close aborts it, and a file on disk is
            // kept until it is taken or expires (the quota bounds those).
            self.incoming.retain(|_, f| {
                let nothing_open = f.write == StagedWrite::Closed
                    || (f.write == StagedWrite::NotBegun && f.target.is_none());
                !(f.state == IncomingState::Failed && nothing_open)
            });
        }
        effects
    }

    /// A chunk of `wire`: the append to queue, if that path is receiving into a file.
    pub(crate) fn chunk(&self, wire: &Bytes, data: Bytes) -> Option<(IncomingFileId, Effect)> {
        let id = *self.receiving.get(wire)?;
        Some((id, Effect::AppendFile { file: id, data }))
    }

    /// `wire` arrived whole (`size` bytes) with a matching checksum at `now`: the commit to
    /// queue.
    pub(crate) fn received(
        &mut self,
        wire: &Bytes,
        size: u64,
        now: Instant,
    ) -> Option<(IncomingFileId, Effect)> {
        let id = self.receiving.remove(wire)?;
        let file = self.incoming.get_mut(&id)?;
        file.state = IncomingState::Committing;
        file.size = size;
        file.ended = Some(now);
        Some((id, Effect::CommitFile { file: id }))
    }

    /// Files received whole that no role took yet, and their bytes: what the link's directory
    /// holds for it beyond the transfers open.
    pub(crate) fn held(&self) -> (usize, u64) {
        self.incoming
            .values()
            .filter(|f| f.held())
            .fold((0, 0), |(files, bytes), f| (files + 1, bytes + f.size))
    }

    /// When the oldest file on disk that no role took expires (`timeout` after its `file_end`).
    pub(crate) fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.incoming
            .values()
            .filter(|f| f.state == IncomingState::Committed)
            .filter_map(|f| f.ended)
            .min()
            .map(|ended| ended + timeout)
    }

    /// Forgets the files on disk that no role took within `timeout` of their `file_end`, and
    /// returns where they are (to remove). A commit still running waits for its result.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<InstallPath> {
        let expired: Vec<IncomingFileId> = self
            .incoming
            .iter()
            .filter(|(_, f)| {
                f.state == IncomingState::Committed
                    && f.ended.is_some_and(|ended| ended + timeout <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.incoming.remove(&id)?.target)
            .collect()
    }

    /// `wire` failed on the way (checksum, size, connection): the abort to queue, if it had a
    /// staged write.
    pub(crate) fn failed(&mut self, wire: &Bytes) -> Option<(IncomingFileId, Effect)> {
        let id = self.receiving.remove(wire)?;
        self.fail(id).map(|abort| (id, abort))
    }

    fn fail(&mut self, id: IncomingFileId) -> Option<Effect> {
        let file = self.incoming.get_mut(&id)?;
        file.state = IncomingState::Failed;
        file.target.as_ref()?;
        Some(Effect::AbortFile { file: id })
    }

    /// A disk step of file `id` returned. Returns `Some(committed)` when it was the commit (the
    /// role waiting for the file hears of it either way).
    pub(crate) fn step_done(
        &mut self,
        id: IncomingFileId,
        step: FileStep,
        ok: bool,
    ) -> Option<bool> {
        let file = self.incoming.get_mut(&id)?;
        match (step, ok) {
            (FileStep::Begin, true) => file.write = StagedWrite::Open,
            (FileStep::Append, true) => {}
            (FileStep::Commit, true) => {
                file.write = StagedWrite::Closed;
                if file.state == IncomingState::Committing {
                    file.state = IncomingState::Committed;
                }
            }
            (FileStep::Abort, _) => file.write = StagedWrite::Closed,
            // A failed begin opened nothing; a failed append or commit dropped the staged write.
            (FileStep::Begin | FileStep::Append | FileStep::Commit, false) => {
                file.write = StagedWrite::Closed;
                file.state = IncomingState::Failed;
                if self.receiving.get(&file.wire) == Some(&id) {
                    self.receiving.remove(&file.wire);
                }
            }
        }
        (step == FileStep::Commit).then(|| file.state == IncomingState::Committed)
    }

    /// Upstream's lookup for `<task> <file>`: the newest copy of `wire`.
    pub(crate) fn ended(&self, wire: Bytes) -> Ended {
        let newest = self
            .incoming
            .iter()
            .rev()
            .find(|(_, f)| f.wire == wire)
            .map(|(id, f)| (*id, f.state));
        match newest {
            Some((id, IncomingState::Committed)) => Ended::Ready(id),
            Some((id, IncomingState::Committing)) => Ended::Committing(id),
            _ => Ended::Missing(wire),
        }
    }

    /// Hands a committed file over to its consumer (the effect that reads it deletes it).
    pub(crate) fn take(&mut self, id: IncomingFileId) -> Option<InstallPath> {
        let file = self.incoming.get(&id)?;
        if file.state != IncomingState::Committed {
            return None;
        }
        self.incoming.remove(&id).and_then(|f| f.target)
    }

    /// The files whose staged write is open, as far as returned effects tell.
    pub(crate) fn open_files(&self) -> impl Iterator<Item = IncomingFileId> + '_ {
        self.incoming
            .iter()
            .filter(|(_, f)| f.write == StagedWrite::Open)
            .map(|(id, _)| *id)
    }

    /// Starts tracking an outgoing file.
    pub(crate) fn send(&mut self, transfer: TransferId, path: InstallPath, size: u64) {
        self.outgoing.insert(
            transfer,
            OutgoingFile {
                path,
                size,
                offset: 0,
                wanted: None,
                chunk_max: 0,
                reading: None,
                ahead: None,
                failed: None,
            },
        );
    }

    /// The connection asks for the next chunk of `transfer` (at most `max_len` bytes).
    pub(crate) fn wanted(&mut self, transfer: TransferId, max_len: usize) {
        if let Some(file) = self.outgoing.get_mut(&transfer) {
            file.wanted = Some(max_len);
            file.chunk_max = max_len;
        }
    }

    /// The first piece wanted and not under way: the chunk sealed ahead, a chunk to read (as
    /// long as `sizing` says) or the end of a file that asked for a chunk and has no read
    /// running (or whose read ahead failed), or a string piece. Failing those and with
    /// `read_ahead`, the read of a file's next chunk before it is asked for, when no file of
    /// the link holds one sealed ahead already.
    pub(crate) fn next_piece(&self, sizing: ChunkSizing, read_ahead: bool) -> Option<Piece> {
        let file = self.outgoing.iter().find_map(|(transfer, file)| {
            let max_len = file.wanted.filter(|_| file.reading.is_none())?;
            if file.ahead.is_some() {
                return Some(Piece::Sealed(*transfer));
            }
            if file.offset >= file.size || file.failed.is_some() {
                return Some(Piece::Finish(*transfer));
            }
            Some(file.read(*transfer, max_len, sizing, false))
        });
        let string = || {
            self.strings.iter().find_map(|(transfer, wanted)| {
                wanted.map(|frame_len| Piece::String {
                    transfer: *transfer,
                    frame_len,
                })
            })
        };
        let ahead = || {
            if !read_ahead || self.outgoing.values().any(|f| f.ahead.is_some()) {
                return None;
            }
            self.outgoing.iter().find_map(|(transfer, file)| {
                file.may_read_ahead()
                    .then(|| file.read(*transfer, file.chunk_max, sizing, true))
            })
        };
        file.or_else(string).or_else(ahead)
    }

    /// `transfer`'s end is being sent.
    pub(crate) fn finishing(&mut self, transfer: TransferId) {
        if let Some(file) = self.outgoing.get_mut(&transfer) {
            file.wanted = None;
        }
    }

    /// A read of `transfer`'s next chunk was queued, holding `charge` bytes of the output gate.
    pub(crate) fn reading(&mut self, transfer: TransferId, charge: u64) {
        if let Some(file) = self.outgoing.get_mut(&transfer) {
            file.reading = Some(charge);
        }
    }

    /// A chunk read of `transfer` returned `data` (`Err`: why the file cannot be sent on). On
    /// `Ok` the chunk is accounted as read; on `Err` the transfer must be finished early (at
    /// once when the connection asked for the chunk, else on its next ask). The read's charge
    /// on the output gate and whether the connection asked for the chunk (else it was read
    /// ahead, and is still wanted by nobody); `None` for a transfer that is gone.
    pub(crate) fn chunk_read(
        &mut self,
        transfer: TransferId,
        data: Result<usize, SendFailure>,
    ) -> Option<(u64, bool)> {
        let file = self.outgoing.get_mut(&transfer)?;
        let charge = file.reading.take().unwrap_or(0);
        let asked = file.wanted.take().is_some();
        match data {
            Ok(len) => file.offset += len as u64,
            Err(failure) => file.failed = Some(failure),
        }
        Some((charge, asked))
    }

    /// The chunk read ahead for `transfer` is sealed: kept, with its `charge` on the output
    /// gate, until the connection asks for it. `false` (and nothing kept) for a transfer that
    /// is gone.
    pub(crate) fn sealed_ahead(
        &mut self,
        transfer: TransferId,
        sealed: SealedChunk,
        charge: u64,
    ) -> bool {
        match self.outgoing.get_mut(&transfer) {
            Some(file) => {
                file.ahead = Some((sealed, charge));
                true
            }
            None => false,
        }
    }

    /// The chunk sealed ahead for `transfer`, now asked for, and its charge on the output gate.
    pub(crate) fn take_sealed(&mut self, transfer: TransferId) -> Option<(SealedChunk, u64)> {
        let file = self.outgoing.get_mut(&transfer)?;
        let ahead = file.ahead.take()?;
        file.wanted = None;
        Some(ahead)
    }

    /// `transfer` ended (`failure`: as the connection reports it); `None` for an unknown one.
    /// A read failure recorded earlier wins over the connection's success.
    pub(crate) fn sent(
        &mut self,
        transfer: TransferId,
        failure: Option<SendFailure>,
    ) -> Option<SentFile> {
        let file = self.outgoing.remove(&transfer)?;
        Some(SentFile {
            path: file.path,
            failure: file.failed.or(failure),
            read_held: file.reading.unwrap_or(0),
            sealed_held: file.ahead.map_or(0, |(_, charge)| charge),
        })
    }

    /// Starts tracking an outgoing long string.
    pub(crate) fn send_string(&mut self, transfer: TransferId) {
        self.strings.insert(transfer, None);
    }

    /// The connection asks for the next piece of string `transfer` (`frame_len` on the wire).
    pub(crate) fn string_wanted(&mut self, transfer: TransferId, frame_len: usize) {
        if let Some(wanted) = self.strings.get_mut(&transfer) {
            *wanted = Some(frame_len);
        }
    }

    /// The piece of string `transfer` asked for is sent.
    pub(crate) fn string_piece_sent(&mut self, transfer: TransferId) {
        if let Some(wanted) = self.strings.get_mut(&transfer) {
            *wanted = None;
        }
    }

    /// Whether `transfer` was a string of ours, forgetting it.
    pub(crate) fn string_ended(&mut self, transfer: TransferId) -> bool {
        self.strings.remove(&transfer).is_some()
    }

    /// The link closed: one abort per incoming file that may still hold a staged write (a
    /// `BeginFile` not yet returned included: an abort of a file with nothing open is no
    /// error), and the files to remove: those received whole that no role took, and the
    /// outgoing files being sent.
    pub(crate) fn close(self) -> (Vec<(IncomingFileId, Effect)>, Vec<InstallPath>) {
        let mut aborts = Vec::new();
        let mut remove = Vec::new();
        for (file, f) in self.incoming {
            let held = f.held();
            let Some(target) = f.target else { continue };
            if f.write != StagedWrite::Closed {
                aborts.push((file, Effect::AbortFile { file }));
            }
            if held {
                remove.push(target);
            }
        }
        remove.extend(self.outgoing.into_values().map(|f| f.path));
        (aborts, remove)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazuh_cluster_testkit::origin;

    fn path(text: &str) -> InstallPath {
        InstallPath::new(text).unwrap()
    }

    const KEEP: usize = 64;

    /// Opens the path `wire` as file `id`, to be written where the peer named it.
    fn open(
        t: &mut Transfers,
        id: IncomingFileId,
        wire: &str,
        keep: usize,
    ) -> Vec<(IncomingFileId, FileStep, Effect)> {
        let target = Some(path(wire));
        t.open(
            id,
            Bytes::copy_from_slice(wire.as_bytes()),
            target,
            keep,
            false,
        )
    }

    #[test]
    fn a_path_sent_again_while_its_first_copy_commits_is_a_second_file() {
        let mut t = Transfers::default();
        let wire = Bytes::from_static(b"/queue/cluster/w1/a.zip");
        let (first, second) = (IncomingFileId(1), IncomingFileId(2));
        open(&mut t, first, "/queue/cluster/w1/a.zip", KEEP);
        t.step_done(first, FileStep::Begin, true);
        assert_eq!(
            t.received(&wire, 0, origin()).map(|(id, _)| id),
            Some(first)
        );
        // The same path again while the first commit is queued.
        let effects = open(&mut t, second, "/queue/cluster/w1/a.zip", KEEP);
        assert_eq!(
            effects
                .iter()
                .map(|(id, step, _)| (*id, *step))
                .collect::<Vec<_>>(),
            [(second, FileStep::Begin)],
            "the committing copy is not aborted"
        );
        assert_eq!(t.ended(wire.clone()), Ended::Missing(wire.clone()));
        assert_eq!(t.step_done(first, FileStep::Commit, true), Some(true));
        // `_e` finds the newest copy, which is still receiving.
        assert_eq!(t.ended(wire.clone()), Ended::Missing(wire.clone()));
        t.step_done(second, FileStep::Begin, true);
        assert_eq!(t.open_files().collect::<Vec<_>>(), [second]);
        // Closing now aborts the second copy only: the first is committed.
        let (aborts, _) = t.close();
        assert_eq!(aborts, [(second, Effect::AbortFile { file: second })]);
    }

    #[test]
    fn reopening_a_receiving_path_aborts_the_older_copy_first() {
        let mut t = Transfers::default();
        let wire = Bytes::from_static(b"/queue/cluster/w1/a.zip");
        open(&mut t, IncomingFileId(1), "/queue/cluster/w1/a.zip", KEEP);
        let effects = open(&mut t, IncomingFileId(2), "/queue/cluster/w1/a.zip", KEEP);
        assert_eq!(
            effects.into_iter().map(|(_, _, e)| e).collect::<Vec<_>>(),
            [
                Effect::AbortFile {
                    file: IncomingFileId(1)
                },
                Effect::BeginFile {
                    path: path("/queue/cluster/w1/a.zip"),
                    file: IncomingFileId(2),
                    package: false,
                }
            ]
        );
        assert_eq!(
            t.chunk(&wire, Bytes::from_static(b"x")).map(|(id, _)| id),
            Some(IncomingFileId(2))
        );
    }

    #[test]
    fn a_refused_path_gets_no_staged_write_and_its_end_is_missing() {
        let mut t = Transfers::default();
        let wire = Bytes::from_static(b"/etc/passwd");
        assert!(
            t.open(IncomingFileId(1), wire.clone(), None, KEEP, false)
                .is_empty()
        );
        assert_eq!(t.chunk(&wire, Bytes::from_static(b"x")), None);
        assert_eq!(t.received(&wire, 0, origin()), None);
        assert_eq!(t.ended(wire.clone()), Ended::Missing(wire));
        assert!(t.close().0.is_empty());
    }

    #[test]
    fn a_file_that_fails_while_its_begin_is_queued_is_still_aborted_at_close() {
        let mut t = Transfers::default();
        let wire = Bytes::from_static(b"/queue/cluster/w1/a.zip");
        open(&mut t, IncomingFileId(7), "/queue/cluster/w1/a.zip", KEEP);
        // The checksum fails before the begin returned: an abort is queued...
        assert!(t.failed(&wire).is_some());
        // ...but the queue is dropped with the link: the close hands the abort back again.
        let (aborts, _) = t.close();
        let file = IncomingFileId(7);
        assert_eq!(aborts, [(file, Effect::AbortFile { file })]);
    }

    #[test]
    fn the_table_forgets_only_failed_files_with_closed_writes() {
        let mut t = Transfers::default();
        let now = origin();
        for n in 0..15 {
            let wire = Bytes::from(format!("/queue/cluster/w1/{n}.zip"));
            let id = IncomingFileId(n);
            open(&mut t, id, &format!("/queue/cluster/w1/{n}.zip"), 4);
            t.step_done(id, FileStep::Begin, true);
            match n % 3 {
                0 => {
                    t.received(&wire, 10, now);
                    t.step_done(id, FileStep::Commit, true);
                }
                1 => {
                    t.failed(&wire);
                    t.step_done(id, FileStep::Abort, true);
                }
                _ => {}
            }
        }
        // Failed copies beyond the bound are forgotten; open ones and files on disk are kept
        // (a forgotten file on disk would be an orphan).
        assert_eq!(t.open_files().count(), 5);
        assert_eq!(t.held(), (5, 50));
        assert!(t.incoming.len() <= 10 + 1);
    }

    #[test]
    fn a_file_no_role_takes_expires_and_a_close_removes_what_was_not_taken() {
        let mut t = Transfers::default();
        let t0 = origin();
        let timeout = Duration::from_secs(300);
        let receive = |t: &mut Transfers, n: u64, at: Instant| {
            let wire = Bytes::from(format!("/queue/cluster/w1/{n}.zip"));
            let id = IncomingFileId(n);
            open(t, id, &format!("/queue/cluster/w1/{n}.zip"), KEEP);
            t.step_done(id, FileStep::Begin, true);
            t.received(&wire, 100, at);
            id
        };
        let a = receive(&mut t, 1, t0);
        let b = receive(&mut t, 2, t0 + Duration::from_secs(10));
        assert_eq!(t.held(), (2, 200), "committing files count");
        assert_eq!(
            t.next_expiry(timeout),
            None,
            "a commit running is not swept"
        );
        t.step_done(a, FileStep::Commit, true);
        t.step_done(b, FileStep::Commit, true);
        assert_eq!(t.next_expiry(timeout), Some(t0 + timeout));
        assert!(
            t.expire(t0 + timeout - Duration::from_secs(1), timeout)
                .is_empty()
        );
        assert_eq!(
            t.expire(t0 + timeout, timeout),
            [path("/queue/cluster/w1/1.zip")]
        );
        assert_eq!(t.held(), (1, 100));
        // A file taken is the role's; what is left is removed with the link.
        let c = receive(&mut t, 3, t0 + timeout);
        t.step_done(c, FileStep::Commit, true);
        assert_eq!(t.take(c), Some(path("/queue/cluster/w1/3.zip")));
        let (aborts, remove) = t.close();
        assert!(aborts.is_empty());
        assert_eq!(remove, [path("/queue/cluster/w1/2.zip")]);
    }

    /// Chunks of at most 4 bytes, not growing.
    const FOUR: ChunkSizing = ChunkSizing {
        read_chunk: 4,
        growing: false,
    };

    #[test]
    fn growing_chunks_double_from_the_first_up_to_the_largest() {
        const MIB: usize = 1 << 20;
        let largest = 5 * MIB - 30;
        let sizing = ChunkSizing {
            read_chunk: 5 * MIB,
            growing: true,
        };
        let size = 20 * MIB as u64;
        let mut offset = 0u64;
        let mut lens = Vec::new();
        while offset < size {
            let len = sizing.len(offset, size - offset, largest);
            lens.push(len);
            offset += len as u64;
        }
        let kib = |n: usize| n << 10;
        assert_eq!(
            lens,
            [
                kib(512),
                kib(512),
                MIB,
                2 * MIB,
                4 * MIB,
                largest,
                largest,
                20 * MIB - 8 * MIB - 2 * largest
            ]
        );
        // A small file is one chunk either way; without growing, every chunk is the largest.
        assert_eq!(sizing.len(0, 1000, largest), 1000);
        let flat = ChunkSizing {
            growing: false,
            ..sizing
        };
        assert_eq!(flat.len(0, size, largest), largest);
        // The connection's and the read's bounds still hold while growing.
        assert_eq!(sizing.len(0, size, 100), 100);
        let small_reads = ChunkSizing {
            read_chunk: 4096,
            ..sizing
        };
        assert_eq!(small_reads.len(8 * MIB as u64, size, largest), 4096);
    }

    #[test]
    fn an_outgoing_file_is_read_chunk_by_chunk_then_finished() {
        let mut t = Transfers::default();
        let transfer = TransferId(3);
        let file = path("/queue/cluster/w1/p.zip");
        t.send(transfer, file.clone(), 10);
        assert_eq!(t.next_piece(FOUR, false), None, "nothing asked yet");
        t.wanted(transfer, 100);
        let read = Piece::Read {
            transfer,
            effect: Effect::ReadChunk {
                path: file.clone(),
                offset: 0,
                len: 4,
            },
            payload_len: file.as_str().len() + 1 + 4,
            ahead: false,
        };
        assert_eq!(
            t.next_piece(FOUR, false),
            Some(read.clone()),
            "asking twice is no change"
        );
        assert_eq!(t.next_piece(FOUR, false), Some(read));
        t.reading(transfer, 77);
        t.wanted(transfer, 100);
        assert_eq!(t.next_piece(FOUR, false), None, "one read at a time");
        assert_eq!(t.chunk_read(transfer, Ok(10)), Some((77, true)));
        t.wanted(transfer, 100);
        assert_eq!(t.next_piece(FOUR, false), Some(Piece::Finish(transfer)));
        t.finishing(transfer);
        assert_eq!(t.next_piece(FOUR, false), None);
        assert_eq!(
            t.sent(transfer, None),
            Some(SentFile {
                path: file,
                failure: None,
                read_held: 0,
                sealed_held: 0
            })
        );
        // A string's piece is wanted until it is sent.
        t.send_string(TransferId(4));
        assert_eq!(t.next_piece(FOUR, false), None);
        t.string_wanted(TransferId(4), 99);
        let piece = Piece::String {
            transfer: TransferId(4),
            frame_len: 99,
        };
        assert_eq!(t.next_piece(FOUR, false), Some(piece));
        t.string_piece_sent(TransferId(4));
        assert_eq!(t.next_piece(FOUR, false), None);
        assert!(t.string_ended(TransferId(4)));
    }

    /// A chunk sealed by a connection sending `path` (its first transfer).
    fn sealed(path: &InstallPath, data: &[u8]) -> SealedChunk {
        use wazuh_cluster_protocol::connection::{Connection, ConnectionConfig, Side, WallClock};
        use wazuh_cluster_protocol::profile::Profile;
        use wazuh_cluster_protocol::rng::Rng;
        let now = origin();
        let config = ConnectionConfig::new(Profile::V3_9, None, WallClock::new(now, 0));
        let mut conn = Connection::new(config, Side::Client, Rng::from_seed(1), now);
        let transfer = conn.send_file(now, path.as_str().as_bytes()).unwrap();
        conn.seal_chunk(now, transfer, data).unwrap()
    }

    #[test]
    fn a_files_next_chunk_is_read_ahead_once_one_went_and_sent_sealed_when_asked() {
        let mut t = Transfers::default();
        let (transfer, other) = (TransferId(0), TransferId(1));
        let file = path("/queue/cluster/w1/p.zip");
        t.send(transfer, file.clone(), 10);
        t.send(other, path("/queue/cluster/w1/q.zip"), 10);
        // Nothing went yet: the first chunk of a file is read when asked for.
        assert_eq!(t.next_piece(FOUR, true), None);
        t.wanted(transfer, 4);
        t.reading(transfer, 50);
        assert_eq!(t.chunk_read(transfer, Ok(4)), Some((50, true)));
        let ahead = |offset, len| Piece::Read {
            transfer,
            effect: Effect::ReadChunk {
                path: file.clone(),
                offset,
                len,
            },
            payload_len: file.as_str().len() + 1 + len,
            ahead: true,
        };
        assert_eq!(t.next_piece(FOUR, false), None, "only when allowed");
        assert_eq!(t.next_piece(FOUR, true), Some(ahead(4, 4)));
        t.reading(transfer, 60);
        assert_eq!(t.next_piece(FOUR, true), None, "one read at a time");
        // Not asked for when read: kept sealed. The other file gets no chunk ahead meanwhile.
        assert_eq!(t.chunk_read(transfer, Ok(4)), Some((60, false)));
        assert!(t.sealed_ahead(transfer, sealed(&file, b"abcd"), 60));
        t.wanted(other, 4);
        t.reading(other, 70);
        t.chunk_read(other, Ok(4));
        assert_eq!(
            t.next_piece(FOUR, true),
            None,
            "one chunk sealed ahead per link"
        );
        t.wanted(transfer, 4);
        assert_eq!(t.next_piece(FOUR, true), Some(Piece::Sealed(transfer)));
        let (chunk, charge) = t.take_sealed(transfer).unwrap();
        assert_eq!((chunk.chunk_len(), charge), (4, 60));
        assert_eq!(t.next_piece(FOUR, false), None, "no longer asked for");
        // The last 2 bytes are read ahead too; a file sent whole has nothing to read ahead.
        assert_eq!(t.next_piece(FOUR, true), Some(ahead(8, 2)));
        t.reading(transfer, 80);
        t.chunk_read(transfer, Ok(2));
        assert!(t.sealed_ahead(transfer, sealed(&file, b"ef"), 80));
        t.wanted(transfer, 4);
        t.take_sealed(transfer);
        assert!(matches!(
            t.next_piece(FOUR, true),
            Some(Piece::Read { transfer: t, ahead: true, .. }) if t == other
        ));
        // A chunk sealed ahead and never asked for is given back with the transfer's end.
        t.reading(other, 90);
        t.chunk_read(other, Ok(4));
        assert!(t.sealed_ahead(other, sealed(&file, b"wxyz"), 90));
        let sent = t
            .sent(other, Some(SendFailure::Refused("err".into())))
            .unwrap();
        assert_eq!((sent.read_held, sent.sealed_held), (0, 90));
    }

    #[test]
    fn a_read_ahead_that_fails_ends_the_transfer_when_the_next_chunk_is_asked_for() {
        let mut t = Transfers::default();
        let transfer = TransferId(0);
        t.send(transfer, path("/queue/cluster/w1/p.zip"), 10);
        t.wanted(transfer, 4);
        t.reading(transfer, 50);
        t.chunk_read(transfer, Ok(4));
        t.reading(transfer, 50);
        assert_eq!(
            t.chunk_read(transfer, Err(SendFailure::ShortFile)),
            Some((50, false))
        );
        assert_eq!(t.next_piece(FOUR, true), None, "not before it is asked for");
        t.wanted(transfer, 4);
        assert_eq!(t.next_piece(FOUR, true), Some(Piece::Finish(transfer)));
        assert_eq!(
            t.sent(transfer, None).and_then(|s| s.failure),
            Some(SendFailure::ShortFile)
        );
    }

    #[test]
    fn a_read_failure_wins_over_the_peers_confirmation() {
        let mut t = Transfers::default();
        t.send(TransferId(1), path("/queue/cluster/w1/p.zip"), 10);
        t.chunk_read(TransferId(1), Err(SendFailure::ShortFile));
        assert_eq!(
            t.sent(TransferId(1), None).and_then(|s| s.failure),
            Some(SendFailure::ShortFile)
        );
    }
}
