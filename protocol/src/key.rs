//! The cluster key: the shared secret every TCP frame is sealed with.
//!
//! Upstream builds its Fernet key as `base64(key.encode())`, so the 32 ASCII characters of the key
//! *are* the Fernet key material: characters 0..16 key the HMAC, 16..32 the AES cipher
//! (PROTOCOL.md §2). Validation follows upstream's configuration check (non-empty, 32 characters of
//! `\w`), restricted to ASCII because a non-ASCII word character would make upstream's key longer
//! than 32 bytes and its Fernet construction fail. The key never appears in `Debug` output or in
//! error messages, so it cannot leak through logs.

/// Length of a cluster key in characters (= bytes, the key being ASCII).
pub const KEY_LEN: usize = 32;

/// A validated cluster key: exactly 32 characters of `[A-Za-z0-9_]`.
#[derive(Clone)]
pub struct ClusterKey {
    bytes: [u8; KEY_LEN],
}

impl ClusterKey {
    /// Validates `key` as upstream's configuration check does.
    ///
    /// # Errors
    /// [`KeyError::Empty`] for `""` (upstream "Unspecified key"), [`KeyError::Invalid`] for any
    /// other length or a character outside `[A-Za-z0-9_]`.
    pub fn new(key: &str) -> Result<ClusterKey, KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        let chars = key.chars().count();
        if chars != KEY_LEN {
            return Err(KeyError::Invalid {
                chars,
                bad_position: None,
            });
        }
        if let Some(position) = key
            .chars()
            .position(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(KeyError::Invalid {
                chars,
                bad_position: Some(position),
            });
        }
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(key.as_bytes());
        Ok(ClusterKey { bytes })
    }

    /// The Fernet key material (the key's ASCII bytes), for [`crate::fernet::Fernet::new`] only.
    pub(crate) fn material(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl core::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

impl core::str::FromStr for ClusterKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClusterKey::new(s)
    }
}

/// Why a string is not a usable cluster key. Never contains the key itself.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty (upstream error 3004 "Unspecified key").
    #[error("Unspecified key")]
    Empty,
    /// Wrong length or a character outside `[A-Za-z0-9_]` (upstream error 3004 text).
    #[error(
        "Key must be 32 characters long and only have alphanumeric characters (got {chars} characters{})",
        match bad_position {
            Some(p) => format!(", character {p} is not in [A-Za-z0-9_]"),
            None => String::new(),
        }
    )]
    Invalid {
        /// Number of characters of the rejected key.
        chars: usize,
        /// Index (in characters) of the first character outside `[A-Za-z0-9_]`, if any.
        bad_position: Option<usize>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_upstream_interop_key() {
        let key = ClusterKey::new("wazuh395interopkey0123456789abcd").unwrap();
        assert_eq!(key.material(), b"wazuh395interopkey0123456789abcd");
    }

    #[test]
    fn rejects_like_upstream_and_never_prints_the_key() {
        assert_eq!(ClusterKey::new("").unwrap_err(), KeyError::Empty);
        assert_eq!(
            ClusterKey::new("short").unwrap_err(),
            KeyError::Invalid {
                chars: 5,
                bad_position: None
            }
        );
        let with_dash = "wazuh395interopkey0123456789abc-";
        let err = ClusterKey::new(with_dash).unwrap_err();
        assert_eq!(
            err,
            KeyError::Invalid {
                chars: 32,
                bad_position: Some(31)
            }
        );
        assert_eq!(
            err.to_string(),
            "Key must be 32 characters long and only have alphanumeric characters \
             (got 32 characters, character 31 is not in [A-Za-z0-9_])"
        );
        // 32 characters but 33 bytes: a non-ASCII word character upstream would accept then fail on.
        let accented = "wazuh395interopkey0123456789abcé";
        assert_eq!(
            ClusterKey::new(accented).unwrap_err(),
            KeyError::Invalid {
                chars: 32,
                bad_position: Some(31)
            }
        );
        let key = ClusterKey::new("wazuh395interopkey0123456789abcd").unwrap();
        assert_eq!(format!("{key:?}"), "ClusterKey(<redacted>)");
    }
}
