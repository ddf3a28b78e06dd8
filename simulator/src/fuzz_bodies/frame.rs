//! Frame decoding: any bytes, cut at any points.
//!
//! Input: byte 0 seeds the cut points, the rest is the stream. The stream is decoded once whole and
//! once in pieces of 1 to 64 bytes; both must give the same frames and the same first error (the
//! decoder is a pure function of the stream, not of how reads cut it), the decoder never buffers
//! more than a header plus the payload bound, and every frame re-encodes to a frame that decodes
//! back to itself.

use bytes::BytesMut;
use wazuh_cluster_protocol::frame::{Frame, FrameDecoder, FrameError, HEADER_LEN, encode_frame};
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

use super::Input;

/// A small payload bound, so that the fuzzer reaches "too large" and "complete" alike.
const MAX_PAYLOAD: u32 = 4096;

/// The frames decoded before the first error, and that error (or the end-of-stream check).
fn decode(pieces: impl Iterator<Item = impl AsRef<[u8]>>) -> (Vec<Frame>, Result<(), FrameError>) {
    let mut decoder = FrameDecoder::new(Profile::V3_9, MAX_PAYLOAD);
    let mut frames = Vec::new();
    for piece in pieces {
        let mut rest = piece.as_ref();
        while !rest.is_empty() {
            match decoder.decode_slice(&mut rest) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {}
                Err(error) => return (frames, Err(error)),
            }
            assert!(
                decoder.buffered_len() <= HEADER_LEN + MAX_PAYLOAD as usize,
                "decoder buffers {} bytes",
                decoder.buffered_len()
            );
        }
    }
    (frames, decoder.finish())
}

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut rng = Rng::from_seed(u64::from(input.byte()));
    let stream = input.rest();

    let whole = decode(std::iter::once(stream));
    let mut pieces = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let take = (1 + rng.below(64) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(take);
        pieces.push(piece);
        rest = tail;
    }
    let cut = decode(pieces.iter());
    assert_eq!(whole, cut, "cutting the stream changed the result");

    for frame in &whole.0 {
        assert!(frame.payload.len() <= MAX_PAYLOAD as usize);
        let mut out = BytesMut::new();
        encode_frame(
            Profile::V3_9,
            frame.counter,
            &frame.command,
            &frame.payload,
            &mut out,
        )
        .expect("a decoded frame re-encodes");
        let (again, end) = decode(std::iter::once(&out[..]));
        assert_eq!(end, Ok(()));
        assert_eq!(
            again,
            vec![frame.clone()],
            "re-encoded frame decodes differently"
        );
    }
}
