//! The confinement walk: how every path of an [`FsStorage`](crate::FsStorage) is reached from
//! the install root without leaving it (the crate docs' "Confinement" is the why).
//!
//! The root is opened once ([`ConfinedRoot::open`]). Every directory is then opened from that
//! descriptor one component at a time with `openat(O_DIRECTORY | O_NOFOLLOW)`: a symlink anywhere
//! on the way fails the walk with [`StorageErrorKind::OutsideRoot`] instead of being followed, and
//! the check is the open itself, so there is no window between checking and using. A component
//! must be one plain name: `..`, an absolute name, an empty name, `.` and a name holding `/` are
//! refused as `OutsideRoot` before any system call, because the kernel would resolve them past
//! this check. [`InstallPath`] never yields such components; the walk refuses them anyway, so it
//! stays confined whoever calls it (the remover of stale staged files walks names it listed).
//!
//! The directory last reached is kept open: the stats and reads of its entries that follow (what
//! every scan and every hashing pass does) then skip the component walk.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{StorageError, StorageErrorKind};

use crate::errno::error;

/// Flags for walking directories: never follow, never inherit.
pub(crate) fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The install root, opened once, and the directory last reached from it.
#[derive(Debug)]
pub(crate) struct ConfinedRoot {
    fd: OwnedFd,
    path: PathBuf,
    /// The directory last listed or used. Dropped ([`ConfinedRoot::forget_dir`]) by every
    /// operation that changes directories.
    last_dir: RefCell<Option<(InstallPath, Rc<OwnedFd>)>>,
}

impl ConfinedRoot {
    /// Opens `install_root`, which must be a directory. The operator's path is followed, symlinks
    /// included, once, here; everything afterwards is resolved inside it.
    pub(crate) fn open(install_root: &Path) -> Result<ConfinedRoot, StorageError> {
        let fd = rustix::fs::openat(
            rustix::fs::CWD,
            install_root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let mut err = error(e, &InstallPath::root(), "opening the install root");
            err.message = format!("{} ({})", err.message, install_root.display());
            err
        })?;
        Ok(ConfinedRoot {
            fd,
            path: install_root.to_path_buf(),
            last_dir: RefCell::new(None),
        })
    }

    /// The install root as given to [`ConfinedRoot::open`] (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The root's own descriptor (to `fstat` the root itself).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// A new descriptor of the root directory, where a walk for `path` starts.
    pub(crate) fn open_root_dir(&self, path: &InstallPath) -> Result<OwnedFd, StorageError> {
        rustix::fs::openat(&self.fd, c".", dir_flags(), Mode::empty())
            .map_err(|e| error(e, path, "opening the install root"))
    }

    /// Opens directory `dir`, refusing any symlink on the way (`OutsideRoot`).
    pub(crate) fn open_dir(&self, dir: &InstallPath) -> Result<OwnedFd, StorageError> {
        let mut current = self.open_root_dir(dir)?;
        for component in dir.components() {
            current = open_child_dir(&current, component, dir)?;
        }
        Ok(current)
    }

    /// Opens `dir` afresh (a listing must see the directory now at `dir`) and keeps it as the
    /// directory last reached, for the stats and reads of its entries that follow.
    pub(crate) fn open_listed_dir(&self, dir: &InstallPath) -> Result<Rc<OwnedFd>, StorageError> {
        let fd = Rc::new(self.open_dir(dir)?);
        *self.last_dir.borrow_mut() = Some((dir.clone(), Rc::clone(&fd)));
        Ok(fd)
    }

    /// The parent directory of `path`, opened (the directory last reached when it is that one),
    /// and the final name. The install root has no parent: `WrongKind`.
    pub(crate) fn open_parent<'p>(
        &self,
        path: &'p InstallPath,
    ) -> Result<(Rc<OwnedFd>, &'p str), StorageError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StorageError::new(
                StorageErrorKind::WrongKind,
                path,
                "the install root is a directory",
            ));
        };
        let cached = self
            .last_dir
            .borrow()
            .as_ref()
            .and_then(|(dir, fd)| (dir == &parent).then(|| Rc::clone(fd)));
        match cached {
            Some(fd) => Ok((fd, name)),
            None => {
                let fd = Rc::new(self.open_dir(&parent)?);
                *self.last_dir.borrow_mut() = Some((parent, Rc::clone(&fd)));
                Ok((fd, name))
            }
        }
    }

    /// Forgets the directory last reached (the next operation walks from the root again).
    pub(crate) fn forget_dir(&self) {
        self.last_dir.borrow_mut().take();
    }
}

/// Opens directory `name` inside `parent` (for `path`, in errors). A name that is not one plain
/// component is `OutsideRoot` (see the module docs), a symlink there `OutsideRoot`, anything
/// else that is not a directory `WrongKind`, nothing there `NotFound`.
pub(crate) fn open_child_dir(
    parent: &OwnedFd,
    name: &str,
    path: &InstallPath,
) -> Result<OwnedFd, StorageError> {
    if !is_plain_component(name) {
        return Err(StorageError::new(
            StorageErrorKind::OutsideRoot,
            path,
            format!("component {name:?} is not one plain name; refused"),
        ));
    }
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
            let symlink = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            if symlink {
                Err(StorageError::new(
                    StorageErrorKind::OutsideRoot,
                    path,
                    format!("component {name:?} is a symlink; symlinks are never followed"),
                ))
            } else {
                Err(error(
                    e,
                    path,
                    &format!("component {name:?} is not a directory"),
                ))
            }
        }
        Err(e) => Err(error(
            e,
            path,
            &format!("opening directory component {name:?}"),
        )),
    }
}

/// True when `openat` resolves `name` to an entry of its directory and nothing else: not empty,
/// not `.` or `..`, no `/` (which would make it absolute or several components), no NUL.
fn is_plain_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazuh_cluster_testkit::ScratchDir;
    use wazuh_cluster_testkit::install_path as p;

    /// An install root holding `etc/shared/default/merged.mg`, and the walk over it.
    fn install() -> (ScratchDir, ConfinedRoot) {
        let scratch = ScratchDir::new("fs-confine");
        std::fs::create_dir_all(scratch.path().join("etc/shared/default")).unwrap();
        std::fs::write(scratch.path().join("etc/shared/default/merged.mg"), b"mg").unwrap();
        let root = ConfinedRoot::open(scratch.path()).unwrap();
        (scratch, root)
    }

    /// The kind of file `name` in open directory `dir`.
    fn kind_in(dir: &OwnedFd, name: &str) -> FileType {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        FileType::from_raw_mode(st.st_mode)
    }

    #[test]
    fn directories_are_reached_from_the_root() {
        let (_scratch, root) = install();
        let dir = root.open_dir(&p("/etc/shared/default")).unwrap();
        assert_eq!(kind_in(&dir, "merged.mg"), FileType::RegularFile);
        let file = p("/etc/shared/default/merged.mg");
        let (parent, name) = root.open_parent(&file).unwrap();
        assert_eq!(
            (kind_in(&parent, name), name),
            (FileType::RegularFile, "merged.mg")
        );
        let whole = root.open_dir(&InstallPath::root()).unwrap();
        assert_eq!(kind_in(&whole, "etc"), FileType::Directory);
    }

    #[test]
    fn the_parent_last_reached_is_reused_until_forgotten() {
        let (_scratch, root) = install();
        let file = p("/etc/shared/default/merged.mg");
        let (first, _) = root.open_parent(&file).unwrap();
        let (again, _) = root.open_parent(&file).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        root.forget_dir();
        let (fresh, _) = root.open_parent(&file).unwrap();
        assert!(!Rc::ptr_eq(&first, &fresh));
        let listed = root.open_listed_dir(&p("/etc/shared/default")).unwrap();
        let (after_listing, _) = root.open_parent(&file).unwrap();
        assert!(Rc::ptr_eq(&listed, &after_listing));
    }

    #[test]
    fn a_symlink_component_is_outside_the_root_even_to_a_directory_inside() {
        let (scratch, root) = install();
        let outside = ScratchDir::new("fs-confine");
        std::os::unix::fs::symlink(outside.path(), scratch.path().join("etc/out")).unwrap();
        std::os::unix::fs::symlink("shared", scratch.path().join("etc/inside")).unwrap();
        for dir in ["/etc/out", "/etc/out/x", "/etc/inside/default"] {
            let err = root.open_dir(&p(dir)).unwrap_err();
            assert_eq!(err.kind, StorageErrorKind::OutsideRoot, "{dir}: {err}");
            assert!(err.message.contains("symlink"), "{err}");
        }
        let err = root.open_parent(&p("/etc/out/secret")).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::OutsideRoot);
    }

    #[test]
    fn a_missing_parent_is_not_found_and_a_file_on_the_way_the_wrong_kind() {
        let (_scratch, root) = install();
        let err = root
            .open_parent(&p("/etc/missing/client.keys"))
            .unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotFound, "{err}");
        // The error names the directory the walk was reaching.
        assert_eq!(err.path, "/etc/missing");
        let err = root
            .open_dir(&p("/etc/shared/default/merged.mg/x"))
            .unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::WrongKind, "{err}");
        let err = root.open_parent(&InstallPath::root()).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::WrongKind, "{err}");
    }

    #[test]
    fn a_component_that_is_not_one_plain_name_is_refused_before_any_open() {
        let (_scratch, root) = install();
        let etc = root.open_dir(&p("/etc")).unwrap();
        // Each of these resolves, through the kernel, to a directory that exists: only the
        // check stands between it and an escape (`..`, `/tmp`, `../..`) or a non-child.
        let tmp = std::env::temp_dir();
        for name in [
            "..",
            tmp.to_str().unwrap(),
            "",
            ".",
            "shared/default",
            "../..",
            "a\0b",
        ] {
            let err = open_child_dir(&etc, name, &p("/etc")).unwrap_err();
            assert_eq!(err.kind, StorageErrorKind::OutsideRoot, "{name:?}: {err}");
            assert!(err.message.contains("not one plain name"), "{err}");
        }
        assert!(open_child_dir(&etc, "shared", &p("/etc/shared")).is_ok());
    }

    #[test]
    fn missing_root_is_a_clear_error() {
        let err = ConfinedRoot::open(Path::new("/nonexistent/wazuh/root")).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotFound);
        assert!(
            err.message.contains("/nonexistent/wazuh/root"),
            "{}",
            err.message
        );
    }
}
