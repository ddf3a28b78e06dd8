//! A package whose large members stay in their own files: [`SplicedPackage`], what
//! [`StagedPackage`](super::staged_package::StagedPackage) gives back when it was allowed to
//! leave members where they are.
//!
//! Why: a master's package is read once, chunk by chunk, to be sent, and removed. Copying a
//! 500 MiB file into it cost the master about 600 ms before the first chunk could go (the
//! copy is 500 MiB of fresh page cache on top of the read), with the worker idle all along.
//! A member of [`SPLICE_MIN`] bytes or more is therefore read once for its CRC-32 (its local
//! header needs it up front), kept open, and its bytes are read from its own file when the
//! package is sent; the package file on disk holds everything else (headers, small members,
//! `cluster_control.json`, the central directory) and is "compact": a member left out takes no
//! room in it. The bytes read through [`SplicedPackage::read_at`] are exactly those of the
//! same package built with every member copied.
//!
//! A member is read from the file opened when the package was built, so replacing the file
//! (a rename over it, how Wazuh writes its shared files) changes nothing; a file cut shorter
//! while the package goes fails the read ("file changed while it was sent"), and one rewritten
//! in place with the same size reaches the worker with another CRC-32 than its header's, which
//! the worker's apply refuses before writing anything (and the next round sends it again).
//!
//! ```
//! use wazuh_cluster_sync::integrity::memory::MemoryStorage;
//! use wazuh_cluster_sync::integrity::path::InstallPath;
//! use wazuh_cluster_sync::integrity::spliced_package::SplicedPackage;
//! use wazuh_cluster_sync::integrity::staged_package::StagedPackage;
//! use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};
//!
//! let mut storage = MemoryStorage::new();
//! let big = InstallPath::new("/etc/shared/default/big.bin").unwrap();
//! storage
//!     .add_file(&big, vec![7u8; 2 << 20], Timestamp::from_secs(1_600_000_000), 0o660)
//!     .unwrap();
//! let path = InstallPath::new("/queue/cluster/w1/package.zip").unwrap();
//! storage.create_dir_all(&path.parent().unwrap(), 0o770).unwrap();
//!
//! let mut package = StagedPackage::begin(&mut storage, &path, 1 << 30).unwrap();
//! package.allow_splices(4);
//! package.add_member_from_storage(&mut storage, &big).unwrap();
//! let attrs = FileAttrs { mode: 0o660, mtime: None };
//! let built = package.finish(&mut storage, b"{}", Timestamp::from_secs(0), &attrs).unwrap();
//!
//! let spliced: &SplicedPackage = built.spliced.as_ref().unwrap();
//! assert!(storage.stat(&path).unwrap().unwrap().size < 4096); // the member is not in it
//! let mut buf = vec![0u8; 100];
//! let n = spliced
//!     .read_at(100, &mut buf, |at, buf| storage.read_at(&path, at, buf))
//!     .unwrap();
//! assert_eq!(&buf[..n], &[7u8; 100][..n]); // the member's bytes, from its own file
//! ```

use std::fmt;

use super::path::InstallPath;
use super::storage::{FileReader, StorageError, StorageErrorKind};

/// Members this long or longer may stay in their own files. Below it the copy costs less than
/// the extra CRC pass and the open file kept until the package is sent.
pub const SPLICE_MIN: u64 = 1 << 20;

/// Most members one package leaves in their files: each keeps a file open until the package
/// is removed, so a package of a thousand 1 MiB files copies all but these.
pub const MAX_SPLICES: usize = 16;

/// A member left in its own file.
struct Splice {
    /// Where its data starts in the package.
    at: u64,
    /// Its length.
    len: u64,
    /// Bytes of the members left out before this one (what the compact file lacks before it).
    before: u64,
    /// The member's file, opened when the package was built.
    file: Box<dyn FileReader>,
    /// The member's path, for errors.
    key: InstallPath,
}

/// A package's bytes: the compact package file, with the members left in their files spliced
/// in at their places. See the [module documentation](self).
pub struct SplicedPackage {
    size: u64,
    splices: Vec<Splice>,
}

impl fmt::Debug for SplicedPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<(&str, u64, u64)> = self
            .splices
            .iter()
            .map(|s| (s.key.as_str(), s.at, s.len))
            .collect();
        f.debug_struct("SplicedPackage")
            .field("size", &self.size)
            .field("members", &members)
            .finish()
    }
}

impl SplicedPackage {
    /// An empty list for a package being built (members are added in package order).
    pub(crate) fn new() -> Self {
        SplicedPackage {
            size: 0,
            splices: Vec::new(),
        }
    }

    /// Records that `len` bytes at `at` of the package are `file`'s from its start.
    pub(crate) fn push(&mut self, at: u64, len: u64, file: Box<dyn FileReader>, key: InstallPath) {
        let before = self.spliced_bytes();
        self.splices.push(Splice {
            at,
            len,
            before,
            file,
            key,
        });
    }

    /// Bytes of all the members left in their files.
    pub(crate) fn spliced_bytes(&self) -> u64 {
        self.splices.last().map_or(0, |s| s.before + s.len)
    }

    /// Sets the finished package's size (the compact file's plus the members left out).
    pub(crate) fn set_size(&mut self, size: u64) {
        self.size = size;
    }

    /// Members left in their files.
    pub fn len(&self) -> usize {
        self.splices.len()
    }

    /// True when every member was copied into the package file.
    pub fn is_empty(&self) -> bool {
        self.splices.is_empty()
    }

    /// The package's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads up to `buf.len()` bytes of the package from `offset`; how many (0 at its end).
    /// `compact` reads the package file at a position of its own. A read stops at the edge of
    /// a member left in its file, as a file read may stop short.
    ///
    /// # Errors
    /// What `compact` or a member's file returns; `Io` when a member's file ended before the
    /// length it had when the package was built.
    pub fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        compact: impl FnOnce(u64, &mut [u8]) -> Result<usize, StorageError>,
    ) -> Result<usize, StorageError> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        // The first member left out that ends after `offset`.
        let next = self.splices.partition_point(|s| s.at + s.len <= offset);
        let before = self
            .splices
            .get(next)
            .map_or(self.spliced_bytes(), |s| s.before);
        match self.splices.get(next) {
            Some(splice) if offset >= splice.at => {
                let within = offset - splice.at;
                let want = fit(buf.len(), splice.len - within);
                let n = splice.file.read_at(within, &mut buf[..want])?;
                if n == 0 {
                    return Err(StorageError::new(
                        StorageErrorKind::Io,
                        &splice.key,
                        "file changed while it was sent",
                    ));
                }
                Ok(n)
            }
            following => {
                let end = following.map_or(self.size, |s| s.at);
                let want = fit(buf.len(), end - offset);
                compact(offset - before, &mut buf[..want])
            }
        }
    }
}

/// `len`, at most `left`.
fn fit(len: usize, left: u64) -> usize {
    usize::try_from(left).map_or(len, |left| len.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that was `len` bytes long when opened and holds only its first `left` now.
    struct Shrunk {
        len: u64,
        left: u64,
    }

    impl FileReader for Shrunk {
        fn size(&self) -> u64 {
            self.len
        }

        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
            let n = fit(buf.len(), self.left.saturating_sub(offset));
            buf[..n].fill(b'm');
            Ok(n)
        }
    }

    /// A package of 10 compact bytes, a 20-byte member, 5 compact bytes.
    fn package(left: u64) -> SplicedPackage {
        let mut package = SplicedPackage::new();
        let key = InstallPath::new("/etc/shared/default/big.bin").unwrap();
        package.push(10, 20, Box::new(Shrunk { len: 20, left }), key);
        package.set_size(35);
        package
    }

    fn compact(at: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let n = fit(buf.len(), 15u64.saturating_sub(at));
        buf[..n].fill(b'c');
        Ok(n)
    }

    #[test]
    fn reads_stop_at_member_edges_and_map_the_compact_file() {
        let package = package(20);
        let mut buf = [0u8; 64];
        assert_eq!(package.read_at(0, &mut buf, compact), Ok(10));
        assert_eq!(package.read_at(8, &mut buf, compact), Ok(2));
        assert_eq!(package.read_at(10, &mut buf, compact), Ok(20));
        assert_eq!(&buf[..20], &[b'm'; 20]);
        // After the member: the compact file's bytes 10.. (it lacks the member's 20).
        let at = std::cell::Cell::new(None);
        let seen = |offset: u64, buf: &mut [u8]| {
            at.set(Some(offset));
            compact(offset, buf)
        };
        assert_eq!(package.read_at(31, &mut buf, seen), Ok(4));
        assert_eq!(at.get(), Some(11));
        assert_eq!(package.read_at(35, &mut buf, compact), Ok(0));
    }

    #[test]
    fn a_member_cut_shorter_since_the_build_fails_the_read() {
        let package = package(12);
        let mut buf = [0u8; 64];
        assert_eq!(package.read_at(10, &mut buf, compact), Ok(12));
        let error = package.read_at(22, &mut buf, compact).unwrap_err();
        assert_eq!(error.kind, StorageErrorKind::Io);
        assert!(
            error.to_string().contains("changed while it was sent"),
            "{error}"
        );
    }
}
