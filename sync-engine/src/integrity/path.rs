//! Paths inside a Wazuh install root, validated once at the edge.
//!
//! Upstream 3.9.5 builds every path by string concatenation (`WAZUH_PATH + key`) and so trusts a
//! peer's `..` and absolute paths. Here a path from a peer or from a listing becomes an
//! [`InstallPath`] first: a `/`-rooted, normalised, relative-to-the-install-root path with no `.`
//! or `..` component, no empty component, no backslash and no NUL. Whether a valid path is *allowed*
//! (inside the right integrity item for the direction) is decided above, by the item rules.

use std::fmt;

/// Longest accepted install path, in bytes (Linux `PATH_MAX` is 4096 including the root prefix).
pub const MAX_INSTALL_PATH_LEN: usize = 3072;
/// Longest single name (file or directory) in a path, in bytes: Linux's `NAME_MAX`.
pub const MAX_NAME_LEN: usize = 255;

/// Why a string is not a valid [`InstallPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty or does not start with `/`.
    #[error("path {0:?} must start with '/' (relative to the install root)")]
    NotRooted(String),
    /// A component is `.`, `..` or empty (`//`).
    #[error("path {0:?} has an empty, '.' or '..' component")]
    BadComponent(String),
    /// The path holds a NUL or a backslash.
    #[error("path {0:?} holds a NUL or a backslash")]
    BadCharacter(String),
    /// The path is longer than [`MAX_INSTALL_PATH_LEN`].
    #[error("path of {0} bytes is longer than the limit of {MAX_INSTALL_PATH_LEN}")]
    TooLong(usize),
    /// A component is longer than [`MAX_NAME_LEN`] bytes (the file systems' `NAME_MAX`): it
    /// could never be created, and the disk would only answer a bare I/O error.
    #[error("path {path:?} has a name of {len} bytes, longer than the limit of {MAX_NAME_LEN}")]
    NameTooLong {
        /// The path.
        path: String,
        /// The longest name's length.
        len: usize,
    },
    /// A single name (file or directory) is not acceptable.
    #[error("name {0:?} is not a valid file name")]
    BadName(String),
}

/// A path inside the install root, written as upstream 3.9 writes metadata keys: `/etc/client.keys`.
///
/// The root itself is `/`. Directories have no trailing slash (`/etc/shared`); the integrity item
/// keys of cluster.json (`/etc/shared/`) are a separate type in the item model.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstallPath(String);

impl InstallPath {
    /// The install root, `/`.
    pub fn root() -> Self {
        InstallPath("/".to_owned())
    }

    /// Validates `text` as an install path. A single trailing `/` is accepted and dropped
    /// (`/etc/shared/` names the directory `/etc/shared`).
    pub fn new(text: &str) -> Result<Self, PathError> {
        if text.len() > MAX_INSTALL_PATH_LEN {
            return Err(PathError::TooLong(text.len()));
        }
        if text.contains('\0') || text.contains('\\') {
            return Err(PathError::BadCharacter(text.to_owned()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PathError::NotRooted(text.to_owned()));
        };
        if rest.is_empty() {
            return Ok(Self::root());
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(PathError::BadComponent(text.to_owned()));
        }
        if let Some(len) = rest
            .split('/')
            .map(str::len)
            .filter(|l| *l > MAX_NAME_LEN)
            .max()
        {
            return Err(PathError::NameTooLong {
                path: text.to_owned(),
                len,
            });
        }
        Ok(InstallPath(format!("/{rest}")))
    }

    /// The path as text, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the install root `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path without its leading `/` (how ZIP members and file-system joins want it).
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The components, root excluded: `/etc/shared/default` → `etc`, `shared`, `default`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|c| !c.is_empty())
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<InstallPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(Self::root()),
            Some(i) => Some(InstallPath(self.0[..i].to_owned())),
            None => None,
        }
    }

    /// This path with one more component. `name` must be a single valid file name.
    pub fn join(&self, name: &str) -> Result<InstallPath, PathError> {
        validate_file_name(name)?;
        // Hot in every walk (once per file): build the string directly, not through `format!`.
        let mut joined = String::with_capacity(self.0.len() + 1 + name.len());
        if !self.is_root() {
            joined.push_str(&self.0);
        }
        joined.push('/');
        joined.push_str(name);
        Ok(InstallPath(joined))
    }

    /// True when `self` is `dir` or lies below it (component-wise: `/etc/sharedx` is not below
    /// `/etc/shared`).
    pub fn starts_with(&self, dir: &InstallPath) -> bool {
        if dir.is_root() {
            return true;
        }
        self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }
}

/// Checks that `name` is one acceptable directory entry name: non-empty, not `.` or `..`, no `/`,
/// backslash or NUL, at most 255 bytes.
pub fn validate_file_name(name: &str) -> Result<(), PathError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\\', '\0']);
    if bad {
        Err(PathError::BadName(name.to_owned()))
    } else {
        Ok(())
    }
}

impl fmt::Display for InstallPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstallPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_upstream_keys_and_normalises_trailing_slash() {
        assert_eq!(
            InstallPath::new("/etc/client.keys").unwrap().as_str(),
            "/etc/client.keys"
        );
        assert_eq!(
            InstallPath::new("/etc/shared/").unwrap().as_str(),
            "/etc/shared"
        );
        assert!(InstallPath::new("/").unwrap().is_root());
    }

    #[test]
    fn a_name_longer_than_name_max_is_refused_with_its_length() {
        let long = format!("/queue/agent-info/{}", "a".repeat(256));
        assert_eq!(
            InstallPath::new(&long),
            Err(PathError::NameTooLong {
                path: long.clone(),
                len: 256
            })
        );
        let fits = format!("/queue/agent-info/{}", "a".repeat(255));
        assert!(InstallPath::new(&fits).is_ok());
    }

    #[test]
    fn refuses_escapes_and_odd_characters() {
        for bad in [
            "etc/x",
            "",
            "/etc/../x",
            "/./x",
            "/a//b",
            "/a\\b",
            "/a\0b",
            "/..",
        ] {
            assert!(InstallPath::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parent_join_and_prefix_are_component_wise() {
        let p = InstallPath::new("/etc/shared/default/agent.conf").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/etc/shared/default");
        assert_eq!(
            InstallPath::new("/etc").unwrap().parent().unwrap(),
            InstallPath::root()
        );
        assert_eq!(InstallPath::root().parent(), None);
        let shared = InstallPath::new("/etc/shared").unwrap();
        assert!(p.starts_with(&shared));
        assert!(
            !InstallPath::new("/etc/sharedx/a")
                .unwrap()
                .starts_with(&shared)
        );
        assert_eq!(shared.join("x").unwrap().as_str(), "/etc/shared/x");
        assert!(shared.join("../x").is_err());
        assert_eq!(
            p.components().collect::<Vec<_>>(),
            ["etc", "shared", "default", "agent.conf"]
        );
    }
}
