//! `logs/cluster.log`, written and rotated as upstream's `CustomFileRotatingHandler`.
//!
//! Upstream appends to `logs/cluster.log` (mode 0660, owner `ossec`) and rotates it at midnight:
//! the day's file is renamed `cluster.log.<YYYY-MM-DD>`, gzipped to
//! `logs/cluster/<year>/<Mon>/cluster-<DD>.log.gz` (directories 0750, archive 0640) and removed,
//! and a new `cluster.log` is started. A log that already holds lines of an earlier day when the
//! daemon starts (its modification time) is rotated at the first line, as Python's
//! `TimedRotatingFileHandler` does. We do the same on the first line of a new day. Days are UTC,
//! as the lines' times are.
//!
//! Two choices of ours: an archive that already exists (two rotations of one day, e.g. the clock
//! set back) gets a second gzip member appended instead of being overwritten (`zcat` reads both);
//! and a `cluster.log.<date>` left by a crash between the rename and the compression is archived
//! at start.
//!
//! A log that cannot be written (disk full, permissions, a missing `logs/`) never stops the
//! cluster: the line is dropped, the file is reopened at the next line, and the first failure is
//! said once on standard error.
//!
//! Test seam: the clock is a plain `fn() -> SystemTime` given to [`ClusterLog::new`]
//! (`SystemTime::now` in the daemon), so tests move the day without waiting for one.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::Compression;
use flate2::write::GzEncoder;
use wazuh_cluster_fs::owner::Owner;

use wazuh_cluster_sync::calendar::CivilDate;

use crate::logging::civil_date_of;

/// The log under the install root.
pub const LOG_FILE: &str = "logs/cluster.log";
/// The archives' folder under the install root.
const ARCHIVE_DIR: &str = "logs/cluster";
/// Upstream's modes.
const LOG_MODE: u32 = 0o660;
const ARCHIVE_MODE: u32 = 0o640;
const ARCHIVE_DIR_MODE: u32 = 0o750;
/// `calendar.month_abbr` in the C locale.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Why a log line could not be written or the log rotated.
#[derive(Debug, thiserror::Error)]
pub enum ClusterLogError {
    /// `cluster.log` cannot be opened or written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Yesterday's log cannot be moved aside or archived.
    #[error("cannot rotate {path}: {source}")]
    Rotate {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The writer behind the daemon's log lines: `logs/cluster.log`, and standard error too with
/// `-f`. Each `write` is one whole line (the logging layer writes lines whole).
pub struct ClusterLog {
    root: PathBuf,
    owner: Option<Owner>,
    clock: fn() -> SystemTime,
    echo_to_stderr: bool,
    /// The open log and the day its lines belong to.
    open: Option<(File, CivilDate)>,
    /// Leftover `cluster.log.<date>` files were looked for (once, at the first line).
    leftovers_archived: bool,
    /// The first failure was said on standard error.
    failure_reported: bool,
}

impl ClusterLog {
    /// The log of the install at `root`; files and folders it creates are given to `owner`
    /// (the daemon's user when it starts as root; `None` leaves them to whoever we run as).
    pub fn new(
        root: &Path,
        owner: Option<Owner>,
        clock: fn() -> SystemTime,
        echo_to_stderr: bool,
    ) -> ClusterLog {
        ClusterLog {
            root: root.to_path_buf(),
            owner,
            clock,
            echo_to_stderr,
            open: None,
            leftovers_archived: false,
            failure_reported: false,
        }
    }

    /// Writes one line to the log, rotating first when its day is over.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), ClusterLogError> {
        let today = civil_date_of((self.clock)());
        if !self.leftovers_archived {
            self.leftovers_archived = true;
            self.archive_leftovers()?;
        }
        if let Some((_, day)) = self.open.take_if(|(_, day)| *day != today) {
            self.rotate(day)?;
        }
        if self.open.is_none() {
            let (file, day) = self.open_log(today)?;
            let file = if day == today {
                file
            } else {
                drop(file);
                self.rotate(day)?;
                self.open_log(today)?.0
            };
            self.open = Some((file, today));
        }
        let path = self.root.join(LOG_FILE);
        let Some((file, _)) = self.open.as_mut() else {
            return Ok(());
        };
        file.write_all(line).map_err(|source| {
            // Reopened at the next line: a full disk may have room again, a removed log is
            // recreated.
            self.open = None;
            ClusterLogError::Write { path, source }
        })
    }

    /// Opens (creating) `cluster.log` with upstream's mode and owner; the day its lines belong to
    /// is the day it was last written, or `today` when it is empty.
    fn open_log(&self, today: CivilDate) -> Result<(File, CivilDate), ClusterLogError> {
        let path = self.root.join(LOG_FILE);
        let failed = |source| ClusterLogError::Write {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(LOG_MODE)
            .open(&path)
            .map_err(failed)?;
        let metadata = file.metadata().map_err(failed)?;
        file.set_permissions(std::fs::Permissions::from_mode(LOG_MODE))
            .map_err(failed)?;
        if let Some(owner) = self.owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(failed)?;
        }
        let day = match metadata.modified() {
            Ok(modified) if metadata.len() > 0 => civil_date_of(modified),
            _ => today,
        };
        Ok((file, day))
    }

    /// Moves `cluster.log` (lines of `day`) aside and archives it.
    fn rotate(&self, day: CivilDate) -> Result<(), ClusterLogError> {
        let log = self.root.join(LOG_FILE);
        let rotated = self.root.join(format!(
            "{LOG_FILE}.{:04}-{:02}-{:02}",
            day.year, day.month, day.day
        ));
        std::fs::rename(&log, &rotated).map_err(|source| ClusterLogError::Rotate {
            path: log.clone(),
            source,
        })?;
        self.archive(&rotated, day)
    }

    /// Gzips `rotated` to `logs/cluster/<year>/<Mon>/cluster-<DD>.log.gz` and removes it.
    fn archive(&self, rotated: &Path, day: CivilDate) -> Result<(), ClusterLogError> {
        let month = MONTHS[usize::try_from(day.month.clamp(1, 12) - 1).unwrap_or(0)];
        let relative = PathBuf::from(ARCHIVE_DIR)
            .join(day.year.to_string())
            .join(month);
        let dir = self.create_archive_dirs(&relative)?;
        let archive = dir.join(format!("cluster-{:02}.log.gz", day.day));
        let failed = |source| ClusterLogError::Rotate {
            path: archive.clone(),
            source,
        };
        let mut input = File::open(rotated).map_err(|source| ClusterLogError::Rotate {
            path: rotated.to_path_buf(),
            source,
        })?;
        let output = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(ARCHIVE_MODE)
            .open(&archive)
            .map_err(failed)?;
        let mut encoder = GzEncoder::new(output, Compression::default());
        io::copy(&mut input, &mut encoder).map_err(failed)?;
        let output = encoder.finish().map_err(failed)?;
        output.sync_all().map_err(failed)?;
        output
            .set_permissions(std::fs::Permissions::from_mode(ARCHIVE_MODE))
            .map_err(failed)?;
        if let Some(owner) = self.owner {
            std::os::unix::fs::fchown(&output, Some(owner.uid), Some(owner.gid)).map_err(failed)?;
        }
        std::fs::remove_file(rotated).map_err(|source| ClusterLogError::Rotate {
            path: rotated.to_path_buf(),
            source,
        })
    }

    /// Creates `relative` under the root folder by folder (0750, given to the owner), so that
    /// every folder it makes, not only the last, has upstream's mode and owner.
    fn create_archive_dirs(&self, relative: &Path) -> Result<PathBuf, ClusterLogError> {
        let mut dir = self.root.clone();
        for part in relative.iter() {
            dir.push(part);
            match DirBuilder::new().mode(ARCHIVE_DIR_MODE).create(&dir) {
                Ok(()) => {
                    if let Some(owner) = self.owner {
                        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid)).map_err(
                            |source| ClusterLogError::Rotate {
                                path: dir.clone(),
                                source,
                            },
                        )?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(ClusterLogError::Rotate { path: dir, source }),
            }
        }
        Ok(dir)
    }

    /// Archives the `cluster.log.<YYYY-MM-DD>` files a crash left between rename and compression.
    fn archive_leftovers(&self) -> Result<(), ClusterLogError> {
        let Some(logs) = self.root.join(LOG_FILE).parent().map(Path::to_path_buf) else {
            return Ok(());
        };
        let Ok(entries) = std::fs::read_dir(&logs) else {
            // No logs/ folder: opening the log says so.
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|name| name.strip_prefix("cluster.log."))
                .and_then(parse_day)
            else {
                continue;
            };
            self.archive(&entry.path(), day)?;
        }
        Ok(())
    }

    /// Says the first failure on standard error; later ones are dropped with their line.
    fn report(&mut self, error: &ClusterLogError) {
        if !self.failure_reported {
            self.failure_reported = true;
            eprintln!(
                "wazuh-clusterd: {error}; the cluster keeps running without it (log lines that \
                 cannot be written are dropped; this is said once)"
            );
        }
    }
}

/// `YYYY-MM-DD`.
fn parse_day(text: &str) -> Option<CivilDate> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let date = CivilDate {
        year: year.parse().ok()?,
        month: month.parse().ok()?,
        day: day.parse().ok()?,
    };
    ((1..=12).contains(&date.month) && (1..=31).contains(&date.day)).then_some(date)
}

impl Write for ClusterLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(error) = self.write_line(buf) {
            self.report(&error);
        }
        if self.echo_to_stderr {
            // A closed standard error loses the echo only.
            let _ = io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use flate2::read::MultiGzDecoder;

    use super::*;

    /// 2026/11/26 23:59:58 UTC, moved by the tests.
    static NOW: AtomicU64 = AtomicU64::new(1_795_737_598);

    fn test_clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW.load(Ordering::SeqCst))
    }

    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn install() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        dir
    }

    // One test moves the shared clock, so the day-change cases live in it.
    #[test]
    fn the_log_rotates_at_midnight_and_at_start_into_gzipped_daily_archives() {
        let dir = install();
        let root = dir.path();
        let mut log = ClusterLog::new(root, None, test_clock, false);
        log.write_all(b"line of the 26th\n").unwrap();
        let path = root.join(LOG_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o660);

        NOW.fetch_add(3, Ordering::SeqCst); // 2026/11/27 00:00:01
        log.write_all(b"line of the 27th\n").unwrap();
        let archive = root.join("logs/cluster/2026/Nov/cluster-26.log.gz");
        assert_eq!(gunzip(&archive), "line of the 26th\n");
        assert_eq!(std::fs::metadata(&archive).unwrap().mode() & 0o777, 0o640);
        for dir in ["logs/cluster", "logs/cluster/2026", "logs/cluster/2026/Nov"] {
            assert_eq!(
                std::fs::metadata(root.join(dir)).unwrap().mode() & 0o777,
                0o750,
                "{dir}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "line of the 27th\n"
        );
        assert!(!root.join("logs/cluster.log.2026-11-26").exists());

        // A restart days later: the log of the 27th is archived at the first line.
        drop(log);
        let mtime = File::options().write(true).open(&path).unwrap();
        mtime.set_modified(test_clock()).unwrap();
        drop(mtime);
        NOW.fetch_add(5 * 86_400, Ordering::SeqCst); // 2026/12/02
        let mut log = ClusterLog::new(root, None, test_clock, false);
        log.write_all(b"line of December\n").unwrap();
        assert_eq!(
            gunzip(&root.join("logs/cluster/2026/Nov/cluster-27.log.gz")),
            "line of the 27th\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "line of December\n"
        );

        // A leftover of a crash mid-rotation is archived; a second rotation of one day appends.
        // The log was written today by the test's clock, whatever the real date is (its mtime
        // decides which day a restart archives it under).
        drop(log);
        let mtime = File::options().write(true).open(&path).unwrap();
        mtime.set_modified(test_clock()).unwrap();
        drop(mtime);
        std::fs::write(
            root.join("logs/cluster.log.2026-11-27"),
            "late line of the 27th\n",
        )
        .unwrap();
        let mut log = ClusterLog::new(root, None, test_clock, false);
        log.write_all(b"second line of December\n").unwrap();
        assert_eq!(
            gunzip(&root.join("logs/cluster/2026/Nov/cluster-27.log.gz")),
            "line of the 27th\nlate line of the 27th\n"
        );
        assert!(!root.join("logs/cluster.log.2026-11-27").exists());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "line of December\nsecond line of December\n"
        );
    }

    #[test]
    fn an_unwritable_log_drops_lines_and_recovers_when_it_can() {
        let dir = tempfile::tempdir().unwrap();
        // No logs/ folder: every write fails, none panics or errors to the caller.
        let mut log = ClusterLog::new(dir.path(), None, SystemTime::now, false);
        assert!(matches!(
            log.write_line(b"lost\n"),
            Err(ClusterLogError::Write { .. })
        ));
        log.write_all(b"lost too\n").unwrap();
        assert!(log.failure_reported);
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        log.write_all(b"kept\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap(),
            "kept\n"
        );
    }

    #[test]
    fn rotated_names_are_read_strictly() {
        assert_eq!(
            parse_day("2019-07-09"),
            Some(CivilDate {
                year: 2019,
                month: 7,
                day: 9
            })
        );
        for bad in [
            "2019-7-09",
            "2019-13-01",
            "2019-07-00",
            "2019-07-09-1",
            "x",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
