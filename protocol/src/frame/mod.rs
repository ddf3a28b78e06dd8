//! The frame layer: a 20-byte header (`!2I12s`: u32 BE counter, u32 BE payload length, 12-byte
//! command field) followed by the payload (a Fernet token on TCP, raw bytes on the local socket).
//!
//! ```text
//!  0        4        8                       20
//!  ┌────────┬────────┬────────────────────────┬──────────── payload_len bytes ─┐
//!  │counter │ length │ command field (12)     │ payload                         │
//!  └────────┴────────┴────────────────────────┴─────────────────────────────────┘
//!                     "hello ------", "ok  --------", "sync_i_w_m_p"
//! ```
//!
//! Why a module of its own: this is the only place that turns bytes from a peer into values, so it
//! is where the limits live. [`FrameDecoder`] keeps explicit state (waiting for a header / header
//! parsed, waiting for the payload), so it accepts a stream cut at any byte, unlike upstream, which
//! loses a message when a read ends exactly after a header and crashes when it ends inside one
//! (PROTOCOL.md §1.4). It checks the declared length against a bound before allocating anything,
//! where upstream pre-allocates whatever u32 the peer sends.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use wazuh_cluster_protocol::frame::{encode_frame, Command, FrameDecoder, DEFAULT_MAX_PAYLOAD};
//! use wazuh_cluster_protocol::profile::Profile;
//!
//! let mut wire = BytesMut::new();
//! encode_frame(Profile::V3_9, 7, &Command::ECHO_C, b"keepalive", &mut wire).unwrap();
//! assert_eq!(&wire[8..20], b"echo-c -----");
//!
//! let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
//! let mut input = wire.freeze();
//! let frame = decoder.decode(&mut input).unwrap().expect("one whole frame");
//! assert_eq!((frame.counter, frame.command.as_bytes()), (7, &b"echo-c"[..]));
//! assert_eq!(&frame.payload[..], b"keepalive");
//! ```

mod command;
mod decode;
mod encode;

pub use command::Command;
pub use decode::FrameDecoder;
pub(crate) use encode::header_bytes;
pub use encode::{encode_frame, encode_header};

use bytes::Bytes;

/// Length of every frame header: counter (4) + payload length (4) + command field (12).
pub const HEADER_LEN: usize = 20;

/// Default bound on one frame's payload (8 MiB).
///
/// Upstream 3.9.5 sends plaintext requests of at most 5 MiB (`request_chunk`); its Fernet token is
/// 6 990 604 bytes, and replies are unbounded upstream. 8 MiB admits every frame a real 3.9.5 node
/// sends in practice while bounding what a hostile peer can make us buffer.
pub const DEFAULT_MAX_PAYLOAD: u32 = 8 * 1024 * 1024;

/// One decoded message: counter, command name and payload (still encrypted when a key is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message id: requests take the sender's next counter, replies reuse the request's.
    pub counter: u32,
    /// The command name, as the receiver sees it (the field up to the first space).
    pub command: Command,
    /// The payload bytes exactly as on the wire (a Fernet token on TCP).
    pub payload: Bytes,
}

/// Why a frame could not be built or decoded.
///
/// Decoding errors are the peer's fault and end the connection; building errors are the caller's.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A received header declares more payload bytes than the decoder accepts.
    #[error(
        "frame at byte offset {offset} declares a payload of {declared} bytes, above the limit of {max} bytes"
    )]
    PayloadTooLarge {
        /// Length field of the header.
        declared: u32,
        /// The decoder's bound.
        max: u32,
        /// Stream offset of the frame's first header byte.
        offset: u64,
    },
    /// A command to send is longer than the profile allows (upstream: "Length of command ...
    /// exceeds limit (13/12)").
    #[error("length of command '{command}' exceeds limit ({len}/{max})")]
    CommandTooLong {
        /// The command, escaped for display.
        command: String,
        /// Its length in bytes.
        len: usize,
        /// The profile's limit.
        max: usize,
    },
    /// A command to send is empty, contains a byte that is not printable ASCII, or has a space
    /// before its last non-space byte (a receiver would cut it there).
    #[error("invalid command '{command}': {reason}")]
    InvalidCommand {
        /// The command, escaped for display.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A payload to send does not fit the header's u32 length field.
    #[error(
        "payload of {len} bytes does not fit a frame (at most {} bytes)",
        u32::MAX
    )]
    PayloadLengthOverflow {
        /// Length of the payload.
        len: usize,
    },
    /// The stream ended inside a frame.
    #[error(
        "stream ends inside the frame starting at byte offset {offset}: {have} of its {need} bytes \
         (header + payload) present"
    )]
    Truncated {
        /// Stream offset of the frame's first header byte.
        offset: u64,
        /// Bytes of that frame received.
        have: u64,
        /// Bytes the frame needs (20 while the header is incomplete).
        need: u64,
    },
}
