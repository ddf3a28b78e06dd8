//! The start-up sweep of `queue/cluster/`: what a node received or built there belongs to the
//! tasks of its previous run, which are gone, so no task can claim it any more.
//!
//! Upstream 3.9.5 does the same at start (`cluster.clean_up()`: everything in `queue/cluster/`
//! but the local socket). Without it, files a peer sent and nobody claimed stayed forever, across
//! restarts, and every name a `hello` ever used left a directory. The running node sweeps what its
//! links leave behind itself (`unclaimed_file_timeout`, and each link's close); this covers a
//! crash or a kill, before the node's first effect runs.

use crate::integrity::path::InstallPath;
use crate::integrity::storage::{EntryKind, Storage, StorageError, StorageErrorKind};

/// The local socket's name in `queue/cluster/` (kept: a running daemon may be serving on it;
/// the adapter replaces a stale one itself).
const LOCAL_SOCKET: &str = "c-internal.sock";

/// What the sweep removed and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftoverSweep {
    /// Entries of `queue/cluster/` removed (a directory with everything below it counts once).
    pub removed: Vec<InstallPath>,
    /// Entries that could not be removed (the sweep went on with the others).
    pub failed: Vec<StorageError>,
}

/// Removes everything in `/queue/cluster/` but the local socket: each node's directory with its
/// contents, and the files beside them. A missing `queue/cluster/` has nothing to sweep.
pub fn remove_cluster_leftovers<S: Storage + ?Sized>(storage: &mut S) -> LeftoverSweep {
    let mut sweep = LeftoverSweep::default();
    let Ok(queue) = InstallPath::new("/queue/cluster") else {
        return sweep;
    };
    let entries = match storage.list_dir(&queue) {
        Ok(entries) => entries,
        Err(e) if e.kind == StorageErrorKind::NotFound => return sweep,
        Err(e) => {
            sweep.failed.push(e);
            return sweep;
        }
    };
    for entry in entries {
        if entry.name == LOCAL_SOCKET {
            continue;
        }
        let Ok(path) = queue.join(&entry.name) else {
            continue;
        };
        let removed = match entry.kind {
            EntryKind::Dir => storage.remove_dir_all(&path),
            EntryKind::File | EntryKind::Symlink => storage.remove_file(&path),
            // A socket or a FIFO of someone else's: not ours to remove.
            EntryKind::Other => continue,
        };
        match removed {
            Ok(true) => sweep.removed.push(path),
            Ok(false) => {}
            Err(e) => sweep.failed.push(e),
        }
    }
    sweep
}
