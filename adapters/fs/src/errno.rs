//! How a failed system call becomes a typed [`StorageError`]: the `errno` decides the kind the
//! engine acts on (a missing file, a refused permission, a symlink met where none may be), the
//! message keeps what was being done and the system's words.

use rustix::io::Errno;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{StorageError, StorageErrorKind};

/// The error of `what` failing on `path` with `errno`. `ELOOP` is what `O_NOFOLLOW` answers on a
/// symlink, hence [`StorageErrorKind::OutsideRoot`].
pub(crate) fn error(errno: Errno, path: &InstallPath, what: &str) -> StorageError {
    let kind = match errno {
        Errno::NOENT => StorageErrorKind::NotFound,
        Errno::ACCESS | Errno::PERM | Errno::ROFS => StorageErrorKind::PermissionDenied,
        Errno::LOOP => StorageErrorKind::OutsideRoot,
        Errno::NOTDIR | Errno::ISDIR | Errno::NOTEMPTY => StorageErrorKind::WrongKind,
        _ => StorageErrorKind::Io,
    };
    StorageError::new(kind, path, format!("{what}: {errno}"))
}

/// [`error`] for a failure reported through `std::io` (writes and fsyncs of a `File`).
pub(crate) fn io_error(e: &std::io::Error, path: &InstallPath, what: &str) -> StorageError {
    match e.raw_os_error() {
        Some(code) => error(Errno::from_raw_os_error(code), path, what),
        None => StorageError::new(StorageErrorKind::Io, path, format!("{what}: {e}")),
    }
}
