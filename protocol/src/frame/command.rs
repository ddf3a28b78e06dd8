//! Command names: at most 12 bytes, stored inline so that a `Command` is `Copy` and building or
//! decoding one never allocates.

use super::FrameError;
use crate::profile::{COMMAND_FIELD_LEN, Profile};

/// A command name as carried in a frame header's 12-byte command field.
///
/// Two origins:
/// * **to send** ([`Command::new`], the constants): printable ASCII without spaces, optionally
///   followed by spaces. Upstream really sends the reply commands `ok ` (to `new_file`) and `ok-m `
///   (to `echo-c`); the field is built by the usual rule, so `ok ` becomes `ok  --------` and a
///   receiver reads `ok`. [`Command::name`] gives that receiver's view.
/// * **decoded** ([`FrameDecoder`](super::FrameDecoder)): the field up to its first space, taken
///   as it is (any bytes but a space, possibly empty): judging an unknown command is the job of the
///   layer above, which answers it with `err` as upstream does.
///
/// Equality compares the literal bytes, so `Command::OK_NEW_FILE != Command::OK`; compare
/// [`name`](Self::name)s to ask "would a receiver see the same command".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Command {
    bytes: [u8; COMMAND_FIELD_LEN],
    len: u8,
}

impl Command {
    /// `hello`: the worker's first request (`<name> <cluster> <type> <version>`).
    pub const HELLO: Command = Command::from_static(b"hello");
    /// `ok`: the usual successful reply.
    pub const OK: Command = Command::from_static(b"ok");
    /// `ok ` (trailing space): upstream's reply to `new_file`, on the wire `ok  --------`.
    pub const OK_NEW_FILE: Command = Command::from_static(b"ok ");
    /// `ok-m ` (trailing space): the server's reply to `echo-c`, on the wire `ok-m  ------`.
    pub const OK_M: Command = Command::from_static(b"ok-m ");
    /// `ok-c`: the client's reply to `echo-m`.
    pub const OK_C: Command = Command::from_static(b"ok-c");
    /// `err`: an error reply (3.9: text payload).
    pub const ERR: Command = Command::from_static(b"err");
    /// `echo`: any peer answers `ok` with the same payload.
    pub const ECHO: Command = Command::from_static(b"echo");
    /// `echo-c`: the client's keepalive to the server.
    pub const ECHO_C: Command = Command::from_static(b"echo-c");
    /// `echo-m`: the server's keepalive to the client.
    pub const ECHO_M: Command = Command::from_static(b"echo-m");
    /// `new_file`: start of a file transfer (payload: relative path).
    pub const NEW_FILE: Command = Command::from_static(b"new_file");
    /// `file_upd`: one chunk of a file transfer (`<path> <chunk>`).
    pub const FILE_UPD: Command = Command::from_static(b"file_upd");
    /// `file_end`: end of a file transfer (`<path> <checksum>`).
    pub const FILE_END: Command = Command::from_static(b"file_end");
    /// `new_str`: start of a long-string transfer (payload: total length).
    pub const NEW_STR: Command = Command::from_static(b"new_str");
    /// `str_upd`: one chunk of a long-string transfer (`<id> <chunk>`).
    pub const STR_UPD: Command = Command::from_static(b"str_upd");

    /// A command to send under `profile`.
    ///
    /// # Errors
    /// [`FrameError::CommandTooLong`] above [`Profile::max_command_len`] (upstream 3.9.5 raises
    /// "Length of command ... exceeds limit (13/12)"), [`FrameError::InvalidCommand`] when empty,
    /// not printable ASCII, or with a space before the last non-space byte.
    pub fn new(profile: Profile, command: &[u8]) -> Result<Command, FrameError> {
        let max = profile.max_command_len();
        if command.len() > max {
            return Err(FrameError::CommandTooLong {
                command: escape(command),
                len: command.len(),
                max,
            });
        }
        if let Err(reason) = check_sendable(command) {
            return Err(FrameError::InvalidCommand {
                command: escape(command),
                reason,
            });
        }
        Ok(Command::copy_of(command))
    }

    /// A command constant, checked at compile time when used in a `const`.
    ///
    /// # Panics
    /// When `command` is longer than 12 bytes or is not a valid command to send (see
    /// [`Command::new`]); in a `const` item this is a compile error. The profile's own limit is
    /// checked again by [`encode_frame`](super::encode_frame).
    #[must_use]
    pub const fn from_static(command: &'static [u8]) -> Command {
        assert!(
            command.len() <= COMMAND_FIELD_LEN,
            "command longer than the 12-byte field"
        );
        assert!(check_sendable(command).is_ok(), "invalid command constant");
        Command::copy_of(command)
    }

    /// A command read from a received field (no validation: see the type's docs).
    pub(crate) fn decoded(name: &[u8]) -> Command {
        Command::copy_of(name)
    }

    const fn copy_of(command: &[u8]) -> Command {
        let mut bytes = [0u8; COMMAND_FIELD_LEN];
        let mut i = 0;
        while i < command.len() {
            bytes[i] = command[i];
            i += 1;
        }
        Command {
            bytes,
            len: command.len() as u8,
        }
    }

    /// The literal bytes (with trailing spaces for commands such as `ok `).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name a receiver sees: the bytes before the first space.
    #[must_use]
    pub fn name(&self) -> &[u8] {
        let bytes = self.as_bytes();
        let end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
        &bytes[..end]
    }

    /// Length of the literal bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for a decoded empty command (a field starting with a space); never for one to send.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Sendable: non-empty, printable ASCII (`!`..=`~`) name, then only spaces.
const fn check_sendable(command: &[u8]) -> Result<(), &'static str> {
    if command.is_empty() || command[0] == b' ' {
        return Err("the command name is empty");
    }
    let mut i = 0;
    let mut in_trailing_spaces = false;
    while i < command.len() {
        let b = command[i];
        if b == b' ' {
            in_trailing_spaces = true;
        } else if in_trailing_spaces {
            return Err("a space inside the name would cut it for the receiver");
        } else if !b.is_ascii_graphic() {
            return Err("a command is printable ASCII");
        }
        i += 1;
    }
    Ok(())
}

/// Printable ASCII as is, anything else as `\xNN` (commands come from peers too).
fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

impl core::fmt::Display for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.as_bytes().escape_ascii())
    }
}

impl core::fmt::Debug for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Command(\"{}\")", self.as_bytes().escape_ascii())
    }
}

impl AsRef<[u8]> for Command {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_accepts_12_bytes_and_rejects_13_like_upstream() {
        assert_eq!(
            Command::new(Profile::V3_9, b"sync_i_w_m_p")
                .unwrap()
                .as_bytes(),
            b"sync_i_w_m_p"
        );
        assert_eq!(
            Command::new(Profile::V3_9, b"sync_i_w_m_px"),
            Err(FrameError::CommandTooLong {
                command: "sync_i_w_m_px".into(),
                len: 13,
                max: 12
            })
        );
    }

    #[test]
    fn new_rejects_what_a_receiver_would_misread() {
        for (bad, reason) in [
            (&b""[..], "the command name is empty"),
            (b" ok", "the command name is empty"),
            (
                b"o k",
                "a space inside the name would cut it for the receiver",
            ),
            (b"ok\n", "a command is printable ASCII"),
            (b"\xffok", "a command is printable ASCII"),
        ] {
            assert_eq!(
                Command::new(Profile::V3_9, bad),
                Err(FrameError::InvalidCommand {
                    command: escape(bad),
                    reason
                })
            );
        }
    }

    #[test]
    fn trailing_space_commands_keep_their_bytes_and_name() {
        assert_eq!(Command::OK_M.as_bytes(), b"ok-m ");
        assert_eq!(Command::OK_M.name(), b"ok-m");
        assert_eq!(Command::OK_NEW_FILE.name(), Command::OK.name());
        assert_ne!(Command::OK_NEW_FILE, Command::OK);
        assert_eq!(Command::OK_M.to_string(), "ok-m ");
        assert_eq!(
            format!("{:?}", Command::decoded(b"a\x00")),
            "Command(\"a\\x00\")"
        );
    }
}
