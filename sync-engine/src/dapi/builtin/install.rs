//! The install tree as the built-in functions read it: every read bounded, every path a fixed
//! place under the install root, and the failures worded as Python's `open()` words them.
//!
//! Upstream names files by absolute path in its messages (`[Errno 2] No such file or directory:
//! '/var/ossec/logs/ossec.log'`). A node does not know where its install root is mounted, so the
//! absolute path is the `DIRECTORY` that `etc/ossec-init.conf` records, `/var/ossec` when the
//! file does not say (upstream's default `ossec_path`).
//!
//! ```text
//! etc/ossec-init.conf:  DIRECTORY="/opt/wazuh"
//! logs/ossec.log missing  →  [Errno 2] No such file or directory: '/opt/wazuh/logs/ossec.log'
//! ```

use super::failure::FunctionError;
use crate::dapi::error::python_repr;
use crate::integrity::path::InstallPath;
use crate::integrity::storage::{DirEntry, FileStat, Storage, StorageError, StorageErrorKind};

/// Upstream's install directory when nothing says otherwise.
const DEFAULT_DIRECTORY: &str = "/var/ossec";

/// Where the installation describes itself. Upstream reads the system-wide
/// `/etc/ossec-init.conf`; a node reads the copy inside its install root (the only tree it may
/// read).
pub(super) const OSSEC_INIT: &str = "etc/ossec-init.conf";

/// Largest `ossec-init.conf` read (the real one is a few lines).
const MAX_OSSEC_INIT: u64 = 64 << 10;

/// What `etc/ossec-init.conf` says, as upstream's `Wazuh.get_ossec_init` reads it: each line
/// matching `(^\w+)="(.+)"`, keys lower-cased, the last line of a key winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct OssecInit {
    /// `DIRECTORY`.
    pub(super) directory: Option<String>,
    /// `NAME` (`Wazuh`).
    pub(super) name: Option<String>,
    /// `VERSION` (`v3.9.5`).
    pub(super) version: Option<String>,
    /// `DATE`, the compilation date.
    pub(super) date: Option<String>,
    /// `TYPE` (`server` / `agent`).
    pub(super) install_type: Option<String>,
}

impl OssecInit {
    /// Reads the file's text; `None` when it is not UTF-8 (upstream's read raises, and it
    /// answers 1005).
    pub(super) fn parse(bytes: &[u8]) -> Option<OssecInit> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut init = OssecInit::default();
        for (key, value) in python_lines(text).filter_map(quoted_assignment) {
            let slot = match key.to_lowercase().as_str() {
                "directory" => &mut init.directory,
                "name" => &mut init.name,
                "version" => &mut init.version,
                "date" => &mut init.date,
                "type" => &mut init.install_type,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        Some(init)
    }
}

/// `re.match(r'(^\w+)="(.+)"', line)`: the key, and the value up to the line's last `"`.
pub(super) fn quoted_assignment(line: &str) -> Option<(&str, &str)> {
    let key_len: usize = line
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if key_len == 0 {
        return None;
    }
    let rest = line[key_len..].strip_prefix("=\"")?;
    // `.+` is greedy, then backtracks to the line's last `"`.
    let end = rest.rfind('"')?;
    (end > 0).then(|| (&line[..key_len], &rest[..end]))
}

/// The lines of `text` as iterating a Python text file gives them (universal newlines: `\n`,
/// `\r\n` and `\r` end a line), without their line ends: what upstream's patterns see, since
/// each line's end reads as a `\n` that `.` and `$` leave out.
pub(super) fn python_lines(text: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, tail) = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => (&rest[..i], &rest[i + 2..]),
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        Some(line)
    })
}

/// The install tree, for one function call. See the [module documentation](self).
pub(super) struct Install<'s, S: Storage + ?Sized> {
    storage: &'s S,
    directory: String,
}

impl<'s, S: Storage + ?Sized> Install<'s, S> {
    /// The install of `storage`; its directory from `etc/ossec-init.conf`.
    pub(super) fn new(storage: &'s S) -> Self {
        let mut install = Install {
            storage,
            directory: DEFAULT_DIRECTORY.to_owned(),
        };
        if let Ok(Some(init)) = install.ossec_init()
            && let Some(directory) = init.directory
        {
            install.directory = directory;
        }
        install
    }

    /// `etc/ossec-init.conf`: `Ok(None)` when it is missing or unreadable as text (upstream:
    /// 1005).
    ///
    /// # Errors
    /// A storage failure other than a missing file.
    pub(super) fn ossec_init(&self) -> Result<Option<OssecInit>, StorageError> {
        Ok(self
            .read_prefix(OSSEC_INIT, MAX_OSSEC_INIT)?
            .and_then(|bytes| OssecInit::parse(&bytes)))
    }

    /// The install directory upstream would name (see the module docs).
    pub(super) fn directory(&self) -> &str {
        &self.directory
    }

    /// `relative` as upstream names it: under [`Install::directory`].
    pub(super) fn absolute(&self, relative: &str) -> String {
        format!("{}/{relative}", self.directory.trim_end_matches('/'))
    }

    /// Up to the first `max` bytes of regular file `relative`; `Ok(None)` when nothing is there.
    ///
    /// # Errors
    /// Any other storage failure.
    pub(super) fn read_prefix(
        &self,
        relative: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_range(relative, 0, max)
    }

    /// Up to `len` bytes of regular file `relative` from `offset`; `Ok(None)` when nothing is
    /// there.
    ///
    /// # Errors
    /// Any other storage failure.
    pub(super) fn read_range(
        &self,
        relative: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let path = install_path(relative)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while (out.len() as u64) < len {
            let want = usize::try_from(len - out.len() as u64)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = match self
                .storage
                .read_at(&path, offset + out.len() as u64, &mut buf[..want])
            {
                Ok(n) => n,
                Err(e) if e.kind == StorageErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(Some(out))
    }

    /// What is at `relative` (not following a final symlink); `None` when nothing is.
    ///
    /// # Errors
    /// A storage failure.
    pub(super) fn stat(&self, relative: &str) -> Result<Option<FileStat>, StorageError> {
        self.storage.stat(&install_path(relative)?)
    }

    /// The entries of directory `relative`, sorted by name; none when it does not exist.
    ///
    /// # Errors
    /// Any other storage failure.
    pub(super) fn list(&self, relative: &str) -> Result<Vec<DirEntry>, StorageError> {
        match self.storage.list_dir(&install_path(relative)?) {
            Ok(entries) => Ok(entries),
            Err(e)
                if matches!(
                    e.kind,
                    StorageErrorKind::NotFound | StorageErrorKind::WrongKind
                ) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// The `OSError` Python raises opening `relative` after `error`, as upstream answers it
    /// (error 1000).
    pub(super) fn os_error(&self, relative: &str, error: &StorageError) -> FunctionError {
        let errno = match error.kind {
            StorageErrorKind::NotFound => Some("[Errno 2] No such file or directory"),
            StorageErrorKind::PermissionDenied => Some("[Errno 13] Permission denied"),
            StorageErrorKind::WrongKind => Some("[Errno 21] Is a directory"),
            _ => None,
        };
        match errno {
            Some(errno) => FunctionError::python(format!(
                "{errno}: {}",
                python_repr(&self.absolute(relative))
            )),
            None => FunctionError::python(error.to_string()),
        }
    }

    /// [`Install::os_error`] for a file found missing.
    pub(super) fn not_found(&self, relative: &str) -> FunctionError {
        self.os_error(
            relative,
            &StorageError::new(StorageErrorKind::NotFound, relative, "not found"),
        )
    }
}

/// `/<relative>` as an install path.
fn install_path(relative: &str) -> Result<InstallPath, StorageError> {
    InstallPath::new(&format!("/{relative}"))
        .map_err(|e| StorageError::new(StorageErrorKind::Io, relative, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dapi::builtin::test_support::add;
    use crate::integrity::memory::MemoryStorage;

    #[test]
    fn ossec_init_is_read_as_upstream_reads_it() {
        let text = b"DIRECTORY=\"/opt/wazuh\"\r\nNAME=\"Wazuh\"\nVERSION=\"v3.9.5\" # \"x\"\nDATE=\"\"\nTYPE=\"server\"\nversion=\"v3.9.4\"";
        let init = OssecInit::parse(text).unwrap();
        assert_eq!(init.directory.as_deref(), Some("/opt/wazuh"));
        assert_eq!(init.name.as_deref(), Some("Wazuh"));
        // `.+` is greedy up to the last quote of the line; keys are case-blind, the last wins.
        assert_eq!(init.version.as_deref(), Some("v3.9.4"));
        assert_eq!(
            quoted_assignment("VERSION=\"v3.9.5\" # \"x\""),
            Some(("VERSION", "v3.9.5\" # \"x"))
        );
        // `(.+)` needs one character.
        assert_eq!(init.date, None);
        assert_eq!(init.install_type.as_deref(), Some("server"));
        assert_eq!(OssecInit::parse(b"\xff"), None);
    }

    #[test]
    fn messages_name_the_recorded_directory() {
        let mut storage = MemoryStorage::new();
        add(
            &mut storage,
            "/etc/ossec-init.conf",
            "DIRECTORY=\"/opt/wazuh\"\n",
            0,
        );
        let install = Install::new(&storage);
        assert_eq!(
            install.not_found("logs/ossec.log").message,
            "[Errno 2] No such file or directory: '/opt/wazuh/logs/ossec.log'"
        );
        assert_eq!(install.read_prefix("logs/ossec.log", 10), Ok(None));
        assert_eq!(
            Install::new(&MemoryStorage::new()).absolute("etc/ossec.conf"),
            "/var/ossec/etc/ossec.conf"
        );
    }

    #[test]
    fn python_lines_use_universal_newlines() {
        let lines: Vec<&str> = python_lines("a\r\nb\rc\nd").collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
    }
}
