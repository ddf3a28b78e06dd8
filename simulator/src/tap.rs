//! A wire tap: decodes what crosses each link back into frames, as the recording proxy of the
//! upstream session did.
//!
//! The simulator knows the cluster key, so it can open every Fernet token it carries and keep, per
//! frame, the counter, the command and the start of the plaintext. Conformance tests compare these
//! command sequences with the frames real Wazuh nodes exchanged; other tests use them to measure
//! (for instance the gaps between keepalives). The tap sees bytes when they *arrive*, i.e. in the
//! order and at the time the receiving node reads them.

use std::collections::BTreeMap;

use bytes::BytesMut;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, FrameDecoder};
use wazuh_cluster_protocol::profile::Profile;

use crate::clock::VirtualTime;
use crate::net::{LinkId, Side};

/// How many plaintext bytes of each frame the tap keeps (the recording kept 4096 too).
pub const PREVIEW_LEN: usize = 4096;

/// Payloads longer than this on the wire are not opened (file chunks of a big package): the
/// tap keeps their header only, so watching a 200 MiB transfer costs no second decryption.
pub const MAX_OPENED_PAYLOAD: usize = 256 * 1024;

/// One frame seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    /// When its last byte reached the receiver.
    pub at: VirtualTime,
    /// The link it crossed.
    pub link: LinkId,
    /// Name of the sending node.
    pub from: String,
    /// Name of the receiving node.
    pub to: String,
    /// Header counter.
    pub counter: u32,
    /// Command name (`ok-m` for the `ok-m ------` field, as the recording writes it).
    pub command: String,
    /// Payload length on the wire (the Fernet token).
    pub wire_len: usize,
    /// Plaintext length; `None` when the payload was not opened (see [`MAX_OPENED_PAYLOAD`]) or
    /// did not decrypt.
    pub plain_len: Option<usize>,
    /// The first [`PREVIEW_LEN`] plaintext bytes (empty when not opened).
    pub preview: Vec<u8>,
}

impl TapFrame {
    /// The preview as text (lossy UTF-8), convenient for assertions on short payloads.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.preview).into_owned()
    }
}

/// Per-direction decoders and the frames decoded so far.
#[derive(Debug)]
pub struct Tap {
    fernet: Option<Fernet>,
    decoders: BTreeMap<(LinkId, Side), (FrameDecoder, BytesMut)>,
    frames: Vec<TapFrame>,
}

impl Tap {
    /// A tap opening payloads with `fernet` (`None`: payloads kept as they are).
    pub fn new(fernet: Option<Fernet>) -> Tap {
        Tap {
            fernet,
            decoders: BTreeMap::new(),
            frames: Vec::new(),
        }
    }

    /// Feeds bytes arriving at the `to` end of `link`.
    pub fn feed(
        &mut self,
        at: VirtualTime,
        link: LinkId,
        to: Side,
        names: (&str, &str),
        bytes: &[u8],
    ) {
        let (decoder, buf) = self.decoders.entry((link, to)).or_insert_with(|| {
            (
                FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD * 2),
                BytesMut::new(),
            )
        });
        buf.extend_from_slice(bytes);
        // A decoding error means the stream is garbage from here on; the node under test reports
        // it, the tap simply stops decoding that direction.
        while let Ok(Some(frame)) = decoder.decode_buf(buf) {
            let plain = if frame.payload.len() > MAX_OPENED_PAYLOAD {
                None
            } else {
                match &self.fernet {
                    Some(f) => f.decrypt(&frame.payload).ok(),
                    None => Some(frame.payload.to_vec()),
                }
            };
            let plain = plain.as_deref();
            let command = String::from_utf8_lossy(frame.command.name()).into_owned();
            self.frames.push(TapFrame {
                at,
                link,
                from: names.0.to_owned(),
                to: names.1.to_owned(),
                counter: frame.counter,
                command,
                wire_len: frame.payload.len(),
                plain_len: plain.map(<[u8]>::len),
                preview: plain.map_or_else(Vec::new, |p| p[..p.len().min(PREVIEW_LEN)].to_vec()),
            });
        }
    }

    /// Every frame decoded so far, in arrival order.
    pub fn frames(&self) -> &[TapFrame] {
        &self.frames
    }
}
