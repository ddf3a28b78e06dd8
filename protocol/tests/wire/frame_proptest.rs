//! Property tests of the frame codec: any frames survive encoding and any cutting of the stream;
//! oversized declarations are refused before anything is buffered; garbage never panics.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wazuh_cluster_protocol::frame::{
    Command, Frame, FrameDecoder, FrameError, HEADER_LEN, encode_frame,
};
use wazuh_cluster_protocol::profile::Profile;

const P: Profile = Profile::V3_9;

/// A command a sender may use: 1..=12 printable non-space bytes, then optional spaces (`ok `).
fn command() -> impl Strategy<Value = Command> {
    (proptest::collection::vec(0x21u8..=0x7e, 1..=12), 0usize..=3).prop_map(|(mut name, spaces)| {
        let spaces = spaces.min(12 - name.len());
        name.extend(std::iter::repeat_n(b' ', spaces));
        Command::new(P, &name).expect("generated commands are valid")
    })
}

fn frame() -> impl Strategy<Value = (u32, Command, Vec<u8>)> {
    (
        any::<u32>(),
        command(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..=64),
            proptest::collection::vec(any::<u8>(), 0..=8192),
        ],
    )
}

/// Cuts `stream` into consecutive pieces of the given sizes (cycled; 1-byte pieces included).
fn cut(stream: &[u8], sizes: &[usize]) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == stream.len() {
            break;
        }
        let end = (at + size).min(stream.len());
        pieces.push(Bytes::copy_from_slice(&stream[at..end]));
        at = end;
    }
    pieces
}

fn decode_all(decoder: &mut FrameDecoder, pieces: Vec<Bytes>) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    for mut piece in pieces {
        while let Some(frame) = decoder.decode(&mut piece)? {
            frames.push(frame);
        }
        assert!(piece.is_empty(), "Ok(None) leaves no input behind");
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn round_trip_through_any_cutting(
        frames in proptest::collection::vec(frame(), 1..6),
        sizes in proptest::collection::vec(1usize..=300, 1..8),
    ) {
        let mut stream = BytesMut::new();
        for (counter, command, payload) in &frames {
            encode_frame(P, *counter, command, payload, &mut stream).unwrap();
        }
        let mut decoder = FrameDecoder::new(P, 8192);
        let decoded = decode_all(&mut decoder, cut(&stream, &sizes)).unwrap();
        prop_assert_eq!(decoder.finish(), Ok(()));
        prop_assert_eq!(decoder.stream_offset(), stream.len() as u64);
        prop_assert_eq!(decoded.len(), frames.len());
        for (got, (counter, command, payload)) in decoded.iter().zip(&frames) {
            prop_assert_eq!(got.counter, *counter);
            // The receiver sees the name: a sender's trailing spaces (`ok `) are separators.
            prop_assert_eq!(got.command.as_bytes(), command.name());
            prop_assert_eq!(&got.payload[..], &payload[..]);
        }
        // One byte at a time through the slice path gives the same frames.
        let mut bytewise = FrameDecoder::new(P, 8192);
        let mut again = Vec::new();
        for byte in stream.chunks(1) {
            let mut input = byte;
            while let Some(frame) = bytewise.decode_slice(&mut input).unwrap() {
                again.push(frame);
            }
        }
        prop_assert_eq!(again, decoded);
    }

    #[test]
    fn oversized_declaration_is_refused_before_buffering(
        max in 0u32..=4096,
        excess in 1u32..=u32::MAX - 4096,
        counter in any::<u32>(),
        header_split in 0usize..HEADER_LEN,
        following in proptest::collection::vec(any::<u8>(), 0..=512),
    ) {
        let declared = max + excess;
        let mut header = Vec::new();
        header.extend_from_slice(&counter.to_be_bytes());
        header.extend_from_slice(&declared.to_be_bytes());
        header.extend_from_slice(b"echo -------");
        let mut decoder = FrameDecoder::new(P, max);
        let mut first = Bytes::copy_from_slice(&header[..header_split]);
        prop_assert_eq!(decoder.decode(&mut first), Ok(None));
        let mut rest = Bytes::from([&header[header_split..], &following[..]].concat());
        let expected = FrameError::PayloadTooLarge { declared, max, offset: 0 };
        prop_assert_eq!(decoder.decode(&mut rest), Err(expected.clone()));
        // Only the header was consumed: the payload stayed in the caller's input, unbuffered.
        prop_assert_eq!(rest.len(), following.len());
        prop_assert_eq!(decoder.buffered_len(), 0);
        prop_assert!(!decoder.is_awaiting_payload());
        // Poisoned: the same error every time, and the stream cannot end cleanly.
        prop_assert_eq!(decoder.decode(&mut rest), Err(expected.clone()));
        prop_assert_eq!(decoder.finish(), Err(expected));
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded(
        garbage in proptest::collection::vec(any::<u8>(), 0..=4096),
        sizes in proptest::collection::vec(1usize..=64, 1..5),
        max in 0u32..=2048,
    ) {
        let mut decoder = FrameDecoder::new(P, max);
        let mut consumed = 0usize;
        for mut piece in cut(&garbage, &sizes) {
            let len = piece.len();
            loop {
                match decoder.decode(&mut piece) {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.payload.len() <= max as usize);
                        prop_assert!(frame.command.len() <= 12);
                    }
                    Ok(None) => break,
                    Err(FrameError::PayloadTooLarge { declared, max: m, .. }) => {
                        prop_assert!(declared > m);
                        prop_assert_eq!(m, max);
                        break;
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
            consumed += len - piece.len();
            prop_assert!(decoder.buffered_len() <= HEADER_LEN + max as usize);
        }
        prop_assert!(decoder.stream_offset() == consumed as u64);
    }
}
