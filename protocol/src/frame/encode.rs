//! Building frames: header then payload, appended to the caller's buffer so that one buffer can
//! carry many frames to the socket and nothing is copied twice.

use bytes::{BufMut, BytesMut};

use super::{Command, FrameError, HEADER_LEN};
use crate::profile::Profile;

/// Appends one whole frame (header and `payload`) to `out`.
///
/// # Errors
/// [`FrameError::PayloadLengthOverflow`] when `payload` is longer than `u32::MAX`,
/// [`FrameError::CommandTooLong`] when `command` is longer than `profile` allows; `out` is left
/// untouched on error.
pub fn encode_frame(
    profile: Profile,
    counter: u32,
    command: &Command,
    payload: &[u8],
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let header = header_bytes(profile, counter, command, payload.len())?;
    out.reserve(HEADER_LEN + payload.len());
    out.put_slice(&header);
    out.put_slice(payload);
    Ok(())
}

/// Appends only the 20-byte header of a frame whose `payload_len` bytes the caller appends next.
///
/// This lets a sealed frame be built in place: write the header with the token length
/// ([`crate::fernet::token_len`]) and encrypt straight after it into the same buffer
/// ([`crate::fernet::Fernet::encrypt_into`]), without a separate token buffer.
///
/// # Errors
/// As [`encode_frame`].
pub fn encode_header(
    profile: Profile,
    counter: u32,
    command: &Command,
    payload_len: usize,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let header = header_bytes(profile, counter, command, payload_len)?;
    out.put_slice(&header);
    Ok(())
}

/// The 20 header bytes of a frame (see [`encode_header`]).
pub(crate) fn header_bytes(
    profile: Profile,
    counter: u32,
    command: &Command,
    payload_len: usize,
) -> Result<[u8; HEADER_LEN], FrameError> {
    let len = u32::try_from(payload_len)
        .map_err(|_| FrameError::PayloadLengthOverflow { len: payload_len })?;
    let max = profile.max_command_len();
    if command.len() > max {
        return Err(FrameError::CommandTooLong {
            command: command.to_string(),
            len: command.len(),
            max,
        });
    }
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&counter.to_be_bytes());
    header[4..8].copy_from_slice(&len.to_be_bytes());
    header[8..20].copy_from_slice(&profile.encode_command_field(command.as_bytes()));
    Ok(header)
}
