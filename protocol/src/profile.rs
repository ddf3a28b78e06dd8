//! Which upstream protocol generation a connection speaks.
//!
//! The two generations share the 20-byte header but differ in how the 12-byte command field is
//! laid out: 3.9 allows 12-byte commands (no separator at all), 4.x reserves the last byte for the
//! "divided message" flag and so allows 11. Everything that depends on the generation is a method
//! here, so that adding `V4_X` means adding match arms in this file rather than `if`s across the
//! codec (PROTOCOL.md §1.3, §19).

/// Length in bytes of the command field of every frame header (all generations).
pub const COMMAND_FIELD_LEN: usize = 12;

/// The protocol generation spoken on a connection.
///
/// Only profile 3.9 (upstream Wazuh 3.9.5) exists today; 4.x slots in as another variant, which is
/// why the enum is `#[non_exhaustive]`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Profile {
    /// Upstream Wazuh 3.9.5: commands of up to 12 bytes, no divided messages, text errors.
    #[default]
    V3_9,
}

impl Profile {
    /// Longest command a sender may put in the command field (3.9: 12, upstream `msg_build`).
    #[must_use]
    pub const fn max_command_len(self) -> usize {
        match self {
            Profile::V3_9 => COMMAND_FIELD_LEN,
        }
    }

    /// Builds the 12-byte command field for `command` (already checked against
    /// [`max_command_len`](Self::max_command_len)).
    ///
    /// 3.9 rule (upstream `command + b" " + b"-" * (12 - len - 1)`, truncated to 12 bytes): the
    /// command, one space, then `-` up to 12 bytes; a 12-byte command fills the field with no
    /// separator, an 11-byte one gets exactly the space. A command with trailing spaces (`ok `) is
    /// encoded by the same rule, giving `ok  --------`.
    pub(crate) fn encode_command_field(self, command: &[u8]) -> [u8; COMMAND_FIELD_LEN] {
        match self {
            Profile::V3_9 => {
                debug_assert!(command.len() <= COMMAND_FIELD_LEN);
                let mut field = [b'-'; COMMAND_FIELD_LEN];
                field[..command.len()].copy_from_slice(command);
                if command.len() < COMMAND_FIELD_LEN {
                    field[command.len()] = b' ';
                }
                field
            }
        }
    }

    /// Extracts the command name from a received 12-byte field: 3.9 takes everything before the
    /// first space (upstream `field.split(b" ")[0]`), the whole field when there is none.
    pub(crate) fn decode_command_field(self, field: &[u8; COMMAND_FIELD_LEN]) -> &[u8] {
        match self {
            Profile::V3_9 => {
                let end = field
                    .iter()
                    .position(|&b| b == b' ')
                    .unwrap_or(COMMAND_FIELD_LEN);
                &field[..end]
            }
        }
    }

    /// The upstream version string this profile interoperates with (as sent in `hello`).
    #[must_use]
    pub const fn upstream_version(self) -> &'static str {
        match self {
            Profile::V3_9 => "3.9.5",
        }
    }
}

impl core::fmt::Display for Profile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Profile::V3_9 => f.write_str("3.9"),
        }
    }
}

impl core::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// Parses `3.9` (the spelling used on the command line and in configuration).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "3.9" => Ok(Profile::V3_9),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }
}

/// A profile name that is not supported (only `3.9` is today).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol profile {0:?} (supported: 3.9)")]
pub struct UnknownProfile(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_9_field_encoding_matches_protocol_md() {
        let p = Profile::V3_9;
        assert_eq!(&p.encode_command_field(b"hello"), b"hello ------");
        assert_eq!(&p.encode_command_field(b"ok "), b"ok  --------");
        assert_eq!(&p.encode_command_field(b"sync_m_c_ok"), b"sync_m_c_ok ");
        assert_eq!(&p.encode_command_field(b"sync_i_w_m_p"), b"sync_i_w_m_p");
        assert_eq!(p.decode_command_field(b"ok-m  ------"), b"ok-m");
        assert_eq!(p.decode_command_field(b"dapi_forward"), b"dapi_forward");
        assert_eq!(p.decode_command_field(b" -----------"), b"");
    }

    #[test]
    fn profile_parses_and_prints() {
        assert_eq!("3.9".parse::<Profile>(), Ok(Profile::V3_9));
        assert_eq!(Profile::V3_9.to_string(), "3.9");
        assert_eq!(
            "4.9".parse::<Profile>(),
            Err(UnknownProfile("4.9".to_owned()))
        );
    }
}
