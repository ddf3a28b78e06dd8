//! How a deferred batch of many files is made durable: one `fsync` per file on the sync pool, or
//! one `syncfs` of each file system the batch wrote to.
//!
//! Why: every `fsync` of a new file on ext4 costs a flush of the device (and, without a journal,
//! a write of its directory), and even 64 of them side by side leave the device doing one small
//! flush after another: for 1,000 files of 4 KiB, ~75 ms here on a quiet machine, against
//! ~17 ms for one `syncfs` after the same writes (the device writes everything in one go and
//! flushes once; measured with the same files both ways, three times each). A `syncfs` also
//! writes every other unwritten page of the file system, so it pays only while there is little
//! of it: it is taken only when the system's unwritten bytes (`Dirty` + `Writeback` of
//! `/proc/meminfo`, every file system's: an over-estimate) minus the batch's own are at most
//! [`FOREIGN_BASE`] plus [`FOREIGN_PER_FILE`] per file it replaces the `fsync` of (what one
//! `fsync` costs here in device time, converted at the disk's sequential speed: ~75 µs at
//! ~450 MB/s).
//!
//! When: with the batch's size told up front ([`Storage::expect_deferred`], as the apply does),
//! the choice is made at its first file: the whole batch waits for the `syncfs` when that pays
//! then, else every file gets its `fsync` on the pool while the next ones are staged, as
//! before. Without it, the first [`WHOLE_FS_FROM`] files go to the pool and the rest wait for
//! the barrier. Either way, the rule is checked again at the barrier (other data may have
//! become unwritten meanwhile); when it no longer holds, the waiting files are reopened by name
//! and `fsync`ed side by side.
//!
//! Errors: `syncfs` reports a writeback error of its file system that happened since the
//! descriptor it is given was opened (Linux 5.8 on). It is given the descriptor of a directory
//! of the batch, opened before any of the batch's files in it were written, so an error in
//! writing them back is reported; an error of another file since then fails the batch too (it
//! is retried at the next round), never the other way round.
//!
//! [`Storage::expect_deferred`]: wazuh_cluster_sync::integrity::storage::Storage::expect_deferred

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::rc::Rc;

/// Files in a batch of unknown size from which the rest of it waits for one `syncfs` instead of
/// an `fsync` each.
pub const WHOLE_FS_FROM: usize = 32;

/// Other unwritten bytes a `syncfs` may always take along (~35 ms of this disk).
pub const FOREIGN_BASE: u64 = 16 << 20;

/// Other unwritten bytes a `syncfs` may take along for each `fsync` it saves.
pub const FOREIGN_PER_FILE: u64 = 32 << 10;

/// How [`FsStorage`](crate::FsStorage) makes a deferred batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchBarrier {
    /// An `fsync` per file, always.
    PerFile,
    /// One `syncfs` for the files past the first [`WHOLE_FS_FROM`] (all of them when the size
    /// was told up front and is at least that) when the system's other unwritten data is small
    /// enough (see the [module documentation](self)); the default.
    Auto,
    /// The same whatever else is unwritten (tests, and measuring the two ways against each
    /// other).
    WholeFs,
}

/// How the files of the last deferred batch were made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchDurability {
    /// Files that got an `fsync` of their own.
    pub fsynced: usize,
    /// Files made durable by a `syncfs` of their file system.
    pub by_syncfs: usize,
}

/// How the deferred batch being staged will be made durable.
#[derive(Debug, Default)]
pub(crate) enum BatchMode {
    /// Size unknown: the pool, until [`WHOLE_FS_FROM`] files (the rest wait for the barrier).
    #[default]
    Undecided,
    /// Every file on the pool (decided at the first file, with the size known).
    Pool,
    /// Files from `WholeFsPart::from` on wait for the barrier.
    WholeFs(WholeFsPart),
}

/// The files of a batch that wait for the barrier, closed without an `fsync`.
#[derive(Debug, Default)]
pub(crate) struct WholeFsPart {
    /// Index in the batch of its first file.
    pub(crate) from: usize,
    /// Bytes its files hold.
    pub(crate) bytes: u64,
    /// One directory descriptor per file system (by device number) its files are on.
    pub(crate) file_systems: BTreeMap<u64, Rc<OwnedFd>>,
}

impl WholeFsPart {
    /// Starts at batch index `from`.
    pub(crate) fn starting_at(from: usize) -> WholeFsPart {
        WholeFsPart {
            from,
            ..WholeFsPart::default()
        }
    }

    /// Counts a file of `bytes` on device `dev`, whose directory is `dir`.
    pub(crate) fn add(&mut self, dev: u64, dir: &Rc<OwnedFd>, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.file_systems
            .entry(dev)
            .or_insert_with(|| Rc::clone(dir));
    }

    /// Whether one `syncfs` per file system is the cheaper barrier for `files` files, with
    /// `unwritten` bytes (the system's) waiting for the disk.
    pub(crate) fn pays(&self, files: usize, unwritten: u64) -> bool {
        let foreign = unwritten.saturating_sub(self.bytes);
        let allowed = FOREIGN_BASE.saturating_add(FOREIGN_PER_FILE.saturating_mul(files as u64));
        foreign <= allowed
    }
}

/// The system's bytes waiting for a disk (`Dirty` + `Writeback` of `/proc/meminfo`); `None`
/// when it cannot be read.
pub(crate) fn unwritten_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_unwritten(&text))
}

/// `Dirty` + `Writeback` of a `/proc/meminfo` text, in bytes; `None` without both.
fn parse_unwritten(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib = rest.trim().strip_suffix("kB")?.trim();
            kib.parse::<u64>().ok()?.checked_mul(1024)
        })
    };
    field("Dirty")?.checked_add(field("Writeback")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_bytes_are_dirty_plus_writeback_and_nothing_without_them() {
        let meminfo = "MemTotal:       24584396 kB\nDirty:              1200 kB\n\
                       Writeback:            24 kB\nWritebackTmp:         0 kB\n";
        assert_eq!(parse_unwritten(meminfo), Some((1200 + 24) * 1024));
        assert_eq!(parse_unwritten("Dirty: 12 kB\n"), None);
        assert_eq!(parse_unwritten("Dirty: x kB\nWriteback: 0 kB\n"), None);
        assert!(
            unwritten_bytes().is_some(),
            "this Linux has a /proc/meminfo"
        );
    }

    #[test]
    fn a_syncfs_pays_while_the_foreign_unwritten_bytes_stay_under_the_allowance() {
        let mut part = WholeFsPart::starting_at(WHOLE_FS_FROM);
        part.bytes = 40 << 20;
        // 1,000 files: 16 MiB + 1,000 x 32 KiB = 47.25 MiB of others' data may go along.
        let allowed = FOREIGN_BASE + 1_000 * FOREIGN_PER_FILE;
        assert!(part.pays(1_000, part.bytes + allowed));
        assert!(!part.pays(1_000, part.bytes + allowed + 1));
        // The batch's own bytes are never counted against it.
        assert!(part.pays(1_000, 0));
        assert!(part.pays(1, part.bytes + FOREIGN_BASE));
    }
}
