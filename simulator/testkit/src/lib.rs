//! The helpers the workspace's tests share: one definition of each, instead of a copy per test
//! file.
//!
//! ```text
//!  protocol/tests, benches ──┐                           ┌─► wazuh-cluster-protocol
//!  sync-engine/tests ────────┤                           │
//!  adapters/*/tests, src ────┼─► wazuh-cluster-testkit ──┼─► wazuh-cluster-vectors (golden data)
//!  simulator/tests ──────────┘   (dev-dependency only)   │
//!                                                        └─► wazuh-cluster-sync (feature `sync`)
//! ```
//!
//! What is here is what several crates' tests repeated with the same values: the arbitrary
//! origin instant a sans-IO core needs ([`origin`]), the recorded cluster key as a key and a
//! Fernet ([`cluster_key`], [`cluster_fernet`]), an install path from a literal (`install_path`,
//! with the `sync` feature), and a scratch directory removed on drop ([`ScratchDir`]). Helpers
//! that only look alike (node configurations with different addresses, intervals or limits; the
//! in-memory pumps, each shaped by what its tests inject) stay beside their tests.
//!
//! ```
//! use std::time::Duration;
//! use wazuh_cluster_testkit::{ScratchDir, cluster_fernet, origin};
//!
//! let t0 = origin(); // virtual time starts here and moves only when the test says so
//! let deadline = t0 + Duration::from_secs(30);
//! assert!(deadline > t0);
//!
//! let token = cluster_fernet().encrypt(b"hello", [7; 16], 1_767_225_600);
//! assert_eq!(cluster_fernet().decrypt(&token).unwrap(), b"hello");
//!
//! let scratch = ScratchDir::new("doc-example"); // removed, with its files, on drop
//! let capture = scratch.file("capture.bin", &token);
//! assert_eq!(std::fs::read(&capture).unwrap(), token);
//! ```
//!
//! Why a crate: integration tests are separate crates, so a helper module can only be shared
//! within one of them; this one is shared by all. It depends on the crates under test, so it can
//! serve their integration tests, benches and examples, which link the same library, but not
//! their unit tests (`#[cfg(test)]` inside `src/`), which would see a second copy of every type.
//! The recorded key itself lives in `wazuh-cluster-vectors`, which the simulator's library code
//! uses too.
//!
//! The helpers over the engine's types sit behind the `sync` feature, which the engine's and the
//! adapters' tests turn on: the protocol's tests leave it off and so do not wait for the engine to
//! build.

pub mod wire_client;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_vectors::CLUSTER_KEY;

/// An arbitrary origin instant for a test's virtual time: the sans-IO cores never read the clock
/// (their crates forbid `Instant::now`), but a test needs one `Instant` to start from.
pub fn origin() -> Instant {
    Instant::now()
}

/// [`CLUSTER_KEY`], the key the golden vectors were recorded under, as a [`ClusterKey`].
pub fn cluster_key() -> ClusterKey {
    ClusterKey::new(CLUSTER_KEY).expect("the recorded cluster key is a valid key")
}

/// The Fernet of [`cluster_key`]: opens and seals what the recorded nodes exchanged.
pub fn cluster_fernet() -> Fernet {
    Fernet::new(&cluster_key())
}

/// `text` as an install path (`/etc/client.keys`).
///
/// # Panics
/// When `text` is not a valid install path: a test literal would be wrong.
#[cfg(feature = "sync")]
pub fn install_path(text: &str) -> wazuh_cluster_sync::integrity::path::InstallPath {
    wazuh_cluster_sync::integrity::path::InstallPath::new(text)
        .unwrap_or_else(|e| panic!("{text:?} is not an install path: {e}"))
}

/// A fresh, empty directory under the system temp dir, unique to this process and this value,
/// removed with everything in it on drop (also when the test fails).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new directory whose name starts with `wazuh-cluster-<label>-`, so that one left behind
    /// by a killed run says which test made it.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(label: &str) -> ScratchDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wazuh-cluster-{label}-{}-{n}", std::process::id()));
        // A directory of the same name can only be a leftover of a killed run whose pid came back.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        ScratchDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` in the directory and answers its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
