//! A file chunk sealed before the connection asks for it: see [`SealedChunk`].
//!
//! Why: one chunk in flight per file (upstream's stop-and-wait, `file_window` 0) runs the sender's
//! and the receiver's work one after the other: the sender reads and seals chunk k+1 (AES-CBC,
//! HMAC-SHA256, base64 and the running SHA-256 of the file: about 10 ms for 5 MiB on one core)
//! only once the peer acknowledged chunk k, and the peer sits idle meanwhile. Sealing chunk k+1
//! while chunk k crosses the link and the peer opens it takes the sender's half off the round
//! trip, without a second chunk on the wire (which a 3.9.5 receiver cannot always take).
//!
//! The same bytes either way: a token depends on the next IV of the connection's IV stream and on
//! the second of `now`. A frame queued between the sealing and the sending (a reply, a keepalive)
//! draws an IV first, and the second may turn meanwhile. So a sealed chunk remembers the stream as
//! it was and the second it used, and [`Connection::send_sealed_chunk`](super::Connection::send_sealed_chunk)
//! sends it as it is only while both still hold; otherwise it opens the token (its plaintext is
//! the chunk, so nothing else is kept meanwhile) and seals it again, exactly as
//! [`Connection::file_chunk`](super::Connection::file_chunk) would have at that moment.

use bytes::BytesMut;
use sha2::Sha256;

use crate::rng::Rng;

use super::event::TransferId;

/// The next `file_upd` of an outgoing file, built ahead by
/// [`Connection::seal_chunk`](super::Connection::seal_chunk) and sent by
/// [`Connection::send_sealed_chunk`](super::Connection::send_sealed_chunk) once the connection
/// asks for that chunk. It holds [`SealedChunk::frame_len`] bytes, the frame as it goes on the
/// wire; the layer above counts them in its memory bounds while it keeps it.
pub struct SealedChunk {
    pub(super) transfer: TransferId,
    /// Bytes of the file sent before it: it is the transfer's next chunk only while that holds.
    pub(super) offset: u64,
    /// Bytes of file data it carries.
    pub(super) chunk_len: usize,
    /// The frame with its header left blank (the counter is drawn when it is sent): the Fernet
    /// token of `<path> <chunk>`, or those bytes in clear without a key.
    pub(super) frame: BytesMut,
    /// With a key: the IV stream before the draw the token used, and the token's timestamp.
    pub(super) sealed_with: Option<(Rng, u64)>,
    /// The file's running SHA-256 once this chunk is sent (for `file_end`).
    pub(super) hasher: Sha256,
}

impl SealedChunk {
    /// The transfer whose chunk it is.
    pub fn transfer(&self) -> TransferId {
        self.transfer
    }

    /// Bytes of file data it carries.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Bytes it holds: its frame on the wire, header included.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }
}

impl core::fmt::Debug for SealedChunk {
    // Not the frame's bytes (megabytes) nor the IV stream's state.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealedChunk")
            .field("transfer", &self.transfer)
            .field("offset", &self.offset)
            .field("chunk_len", &self.chunk_len)
            .field("frame_len", &self.frame.len())
            .finish_non_exhaustive()
    }
}
