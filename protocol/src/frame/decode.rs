//! Incremental frame decoding with explicit state and a bound checked before any allocation.

use bytes::{Buf, Bytes, BytesMut};

use super::{Command, Frame, FrameError, HEADER_LEN};
use crate::profile::{COMMAND_FIELD_LEN, Profile};

/// Turns a byte stream cut into arbitrary pieces back into [`Frame`]s.
///
/// State is explicit: *awaiting header* (0–19 header bytes kept in a fixed array) or *awaiting
/// payload* (header parsed, payload accumulating in a buffer of exactly the declared length). So a
/// read that ends inside a header, or exactly after one, is simply "more to come", where upstream
/// loses or crashes (PROTOCOL.md §1.4, `receive_quirks` vectors).
///
/// Bounds: the declared length is checked against `max_payload` before any allocation, and at most
/// one frame is buffered (the 20-byte header array plus one payload of at most `max_payload`).
/// When the whole payload is already in the input, [`decode`](Self::decode) hands out a zero-copy
/// slice of it. A decoding error poisons the decoder: every later call returns the same error,
/// since the stream cannot be resynchronised and the connection must close.
///
/// Call [`decode`](Self::decode) until it returns `Ok(None)`, which means the input was consumed
/// entirely; each `Ok(Some(frame))` consumed exactly the bytes of that frame (or its rest).
#[derive(Debug)]
pub struct FrameDecoder {
    profile: Profile,
    max_payload: u32,
    state: State,
    /// Stream offset of the next byte to be consumed (for error positions).
    consumed: u64,
    poisoned: Option<FrameError>,
}

#[derive(Debug)]
enum State {
    AwaitingHeader {
        buf: [u8; HEADER_LEN],
        filled: usize,
    },
    AwaitingPayload {
        counter: u32,
        command: Command,
        /// Capacity is exactly `declared`.
        payload: BytesMut,
        declared: usize,
    },
}

const EMPTY_HEADER: State = State::AwaitingHeader {
    buf: [0; HEADER_LEN],
    filled: 0,
};

impl FrameDecoder {
    /// A decoder for `profile` accepting payloads of at most `max_payload` bytes
    /// (usually [`DEFAULT_MAX_PAYLOAD`](super::DEFAULT_MAX_PAYLOAD)).
    #[must_use]
    pub fn new(profile: Profile, max_payload: u32) -> FrameDecoder {
        FrameDecoder {
            profile,
            max_payload,
            state: EMPTY_HEADER,
            consumed: 0,
            poisoned: None,
        }
    }

    /// The bound for frames whose header is read from now on (a frame under way keeps the
    /// bound it was checked against).
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
    }

    /// Consumes bytes from the front of `input` and returns the next complete frame, or `Ok(None)`
    /// once `input` is exhausted without completing one. A payload wholly inside `input` is handed
    /// out without copying (`Bytes::split_to`).
    ///
    /// # Errors
    /// [`FrameError::PayloadTooLarge`] for a header declaring more than `max_payload` bytes (the
    /// header's bytes are consumed, nothing is allocated); then the decoder is poisoned.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Frame>, FrameError> {
        self.decode_from(input)
    }

    /// As [`decode`](Self::decode), from a `BytesMut` (zero-copy as well: `split_to` + `freeze`).
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn decode_buf(&mut self, input: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        self.decode_from(input)
    }

    /// As [`decode`](Self::decode), from a borrowed slice that is advanced past the consumed bytes;
    /// payloads are copied (once) into their own buffer.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn decode_slice(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, FrameError> {
        self.decode_from(input)
    }

    /// Checks that the stream may end here: `Ok` at a frame boundary.
    ///
    /// # Errors
    /// [`FrameError::Truncated`] when a header or payload is incomplete; the poisoning error if any.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        let (have, need) = match &self.state {
            State::AwaitingHeader { filled: 0, .. } => return Ok(()),
            State::AwaitingHeader { filled, .. } => (*filled, HEADER_LEN),
            State::AwaitingPayload {
                payload, declared, ..
            } => (HEADER_LEN + payload.len(), HEADER_LEN + *declared),
        };
        Err(FrameError::Truncated {
            offset: self.consumed - have as u64,
            have: have as u64,
            need: need as u64,
        })
    }

    /// The profile this decoder reads.
    #[must_use]
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The payload bound.
    #[must_use]
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Total bytes consumed so far (the stream offset of the next byte).
    #[must_use]
    pub fn stream_offset(&self) -> u64 {
        self.consumed
    }

    /// Bytes of an incomplete frame held by the decoder (header bytes plus payload bytes).
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        match &self.state {
            State::AwaitingHeader { filled, .. } => *filled,
            State::AwaitingPayload { payload, .. } => HEADER_LEN + payload.len(),
        }
    }

    /// Bytes the decoder holds allocated: the header bytes read, or, once a header is parsed and
    /// its payload incomplete, the header plus the whole declared payload (allocated at once).
    #[must_use]
    pub fn held_len(&self) -> usize {
        match &self.state {
            State::AwaitingHeader { filled, .. } => *filled,
            State::AwaitingPayload { declared, .. } => HEADER_LEN + *declared,
        }
    }

    /// The payload received so far of the frame whose header is parsed and payload incomplete,
    /// and its declared length. The layer above may work on these bytes in place while the rest
    /// arrives (the connection opens a large Fernet token as it comes): the frame is handed out
    /// with them as they are then.
    pub fn partial_payload_mut(&mut self) -> Option<(&mut [u8], usize)> {
        match &mut self.state {
            State::AwaitingPayload {
                payload, declared, ..
            } => Some((&mut payload[..], *declared)),
            State::AwaitingHeader { .. } => None,
        }
    }

    /// True when a header has been parsed and its payload is not complete yet: the moment a
    /// connection arms its "deliver the declared payload in time" timer.
    #[must_use]
    pub fn is_awaiting_payload(&self) -> bool {
        matches!(self.state, State::AwaitingPayload { .. })
    }

    fn decode_from<B: Buf>(&mut self, input: &mut B) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        match &mut self.state {
            State::AwaitingHeader { buf, filled } => {
                // Earlier calls' header bytes are already counted in `consumed`.
                let header_start = self.consumed - *filled as u64;
                let header = if *filled == 0 && input.remaining() >= HEADER_LEN {
                    let mut header = [0u8; HEADER_LEN];
                    input.copy_to_slice(&mut header);
                    header
                } else {
                    let n = (HEADER_LEN - *filled).min(input.remaining());
                    input.copy_to_slice(&mut buf[*filled..*filled + n]);
                    *filled += n;
                    if *filled < HEADER_LEN {
                        self.consumed += n as u64;
                        return Ok(None);
                    }
                    *buf
                };
                self.consumed = header_start + HEADER_LEN as u64;
                self.state = EMPTY_HEADER;
                self.start_payload(header, header_start, input)
            }
            State::AwaitingPayload {
                payload, declared, ..
            } => {
                let n = (*declared - payload.len()).min(input.remaining());
                append_from(input, payload, n);
                self.consumed += n as u64;
                if payload.len() < *declared {
                    return Ok(None);
                }
                let State::AwaitingPayload {
                    counter,
                    command,
                    payload,
                    ..
                } = core::mem::replace(&mut self.state, EMPTY_HEADER)
                else {
                    unreachable!("matched AwaitingPayload above")
                };
                Ok(Some(Frame {
                    counter,
                    command,
                    payload: payload.freeze(),
                }))
            }
        }
    }

    /// A header was just completed (its bytes are consumed): check the bound, then deliver the
    /// frame if the payload is all in `input`, else start accumulating it.
    fn start_payload<B: Buf>(
        &mut self,
        header: [u8; HEADER_LEN],
        header_start: u64,
        input: &mut B,
    ) -> Result<Option<Frame>, FrameError> {
        let counter = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let declared = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if declared > self.max_payload {
            let error = FrameError::PayloadTooLarge {
                declared,
                max: self.max_payload,
                offset: header_start,
            };
            self.poisoned = Some(error.clone());
            return Err(error);
        }
        let mut field = [0u8; COMMAND_FIELD_LEN];
        field.copy_from_slice(&header[8..]);
        let command = Command::decoded(self.profile.decode_command_field(&field));
        let declared = declared as usize;
        if input.remaining() >= declared {
            self.consumed += declared as u64;
            return Ok(Some(Frame {
                counter,
                command,
                // Zero-copy for `Bytes` and `BytesMut` (`split_to`), one copy for a slice.
                payload: input.copy_to_bytes(declared),
            }));
        }
        let mut payload = BytesMut::with_capacity(declared);
        let n = input.remaining();
        append_from(input, &mut payload, n);
        self.consumed += n as u64;
        self.state = State::AwaitingPayload {
            counter,
            command,
            payload,
            declared,
        };
        Ok(None)
    }
}

/// Moves `n` bytes from the front of `input` to the end of `dst` (the caller checked that
/// `input` holds them).
fn append_from<B: Buf>(input: &mut B, dst: &mut BytesMut, mut n: usize) {
    while n > 0 {
        let chunk = input.chunk();
        let take = chunk.len().min(n);
        dst.extend_from_slice(&chunk[..take]);
        input.advance(take);
        n -= take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO_HELLO: &[u8] = b"\x00\x00\x00\x01\x00\x00\x00\x05echo -------hello";

    #[test]
    fn zero_length_payload_is_delivered_from_the_header_alone() {
        let mut decoder = FrameDecoder::new(Profile::V3_9, 0);
        let mut input: &[u8] = b"\xff\xff\xff\xff\x00\x00\x00\x00sync_i_w_m_p";
        let frame = decoder.decode_slice(&mut input).unwrap().unwrap();
        assert_eq!(frame.counter, u32::MAX);
        assert_eq!(frame.command.as_bytes(), b"sync_i_w_m_p");
        assert!(frame.payload.is_empty());
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn truncation_reports_where_the_frame_started() {
        let mut decoder = FrameDecoder::new(Profile::V3_9, 100);
        let mut input = Bytes::from_static(ECHO_HELLO);
        assert!(decoder.decode(&mut input).unwrap().is_some());
        let mut input = Bytes::from_static(&ECHO_HELLO[..7]);
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated {
                offset: 25,
                have: 7,
                need: 20
            })
        );
        let mut input = Bytes::from_static(&ECHO_HELLO[7..22]);
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert!(decoder.is_awaiting_payload());
        assert_eq!(decoder.buffered_len(), 22);
        let error = decoder.finish().unwrap_err();
        assert_eq!(
            error,
            FrameError::Truncated {
                offset: 25,
                have: 22,
                need: 25
            }
        );
        assert_eq!(
            error.to_string(),
            "stream ends inside the frame starting at byte offset 25: 22 of its 25 bytes \
             (header + payload) present"
        );
    }

    #[test]
    fn payload_buffer_is_exactly_the_declared_length_and_zero_copy_when_whole() {
        let mut decoder = FrameDecoder::new(Profile::V3_9, 100);
        let mut input = Bytes::from_static(&ECHO_HELLO[..21]);
        assert_eq!(decoder.decode(&mut input), Ok(None));
        match &decoder.state {
            State::AwaitingPayload { payload, .. } => assert_eq!(payload.capacity(), 5),
            State::AwaitingHeader { .. } => panic!("header was complete"),
        }
        let whole = Bytes::from_static(ECHO_HELLO);
        let mut input = whole.clone();
        let mut fresh = FrameDecoder::new(Profile::V3_9, 100);
        let frame = fresh.decode(&mut input).unwrap().unwrap();
        assert_eq!(frame.payload.as_ptr(), whole[20..].as_ptr(), "no copy");
    }
}
