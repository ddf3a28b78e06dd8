//! A wire tap: decodes what crosses each link back into frames, as the recording proxy of the
//! upstream session did.
//!
//! The simulator knows the cluster key, so it can open every Fernet token it carries and keep, per
//! frame, the counter, the command and the start of the plaintext. Conformance tests compare these
//! command sequences with the frames real Wazuh nodes exchanged; other tests use them to measure
//! (for instance the gaps between keepalives). The tap sees bytes when they *arrive*, i.e. in the
//! order and at the time the receiving node reads them.

use std::collections::{BTreeMap, VecDeque};

use bytes::BytesMut;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, FrameDecoder, HEADER_LEN};
use wazuh_cluster_protocol::profile::Profile;

use crate::clock::VirtualTime;
use crate::net::{LinkEnd, LinkId};

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
    /// Command name as the receiver reads it (the field up to its first space: `ok-m` for
    /// `ok-m ------`).
    pub command: String,
    /// The command as the sender wrote it (`ok ` for the field `ok  --------`).
    pub literal_command: String,
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

/// Follows a byte stream's frame boundaries to keep each header's literal command field, which
/// [`FrameDecoder`] reduces to the receiver's view (the bytes before the first space): upstream
/// really sends `ok ` to `new_file`, and conformance checks want to see it.
#[derive(Debug, Default)]
struct Fields {
    header: Vec<u8>,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
    /// Literal commands of headers seen whose frame the decoder has not yielded yet.
    pending: VecDeque<String>,
}

impl Fields {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == HEADER_LEN {
                let mut len = [0u8; 4];
                len.copy_from_slice(&self.header[4..8]);
                self.skip = u32::from_be_bytes(len) as usize;
                self.pending
                    .push_back(literal_command(&self.header[8..HEADER_LEN]));
                self.header.clear();
            }
        }
    }
}

/// The command as the sender wrote it. Upstream builds the field as `cmd + ' ' + '-' * (11 -
/// len(cmd))` below 12 bytes and as `cmd` at 12, so a field without a space is a 12-byte command,
/// and otherwise the `-` padding and then exactly one space go: `ok  --------` → `ok `,
/// `sync_m_c_ok ` → `sync_m_c_ok`, `hello ------` → `hello`.
pub fn literal_command(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    if !text.contains(' ') {
        return text.into_owned();
    }
    let unpadded = text.trim_end_matches('-');
    unpadded.strip_suffix(' ').unwrap_or(unpadded).to_owned()
}

/// One direction of one link: its decoder, its input buffer and its header follower.
#[derive(Debug)]
struct Direction {
    decoder: FrameDecoder,
    buf: BytesMut,
    fields: Fields,
}

/// Per-direction decoders and the frames decoded so far.
#[derive(Debug)]
pub struct Tap {
    fernet: Option<Fernet>,
    directions: BTreeMap<(LinkId, LinkEnd), Direction>,
    frames: Vec<TapFrame>,
}

impl Tap {
    /// A tap opening payloads with `fernet` (`None`: payloads kept as they are).
    pub fn new(fernet: Option<Fernet>) -> Tap {
        Tap {
            fernet,
            directions: BTreeMap::new(),
            frames: Vec::new(),
        }
    }

    /// Feeds bytes arriving at the `to` end of `link`.
    pub fn feed(
        &mut self,
        at: VirtualTime,
        link: LinkId,
        to: LinkEnd,
        names: (&str, &str),
        bytes: &[u8],
    ) {
        let dir = self
            .directions
            .entry((link, to))
            .or_insert_with(|| Direction {
                decoder: FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD * 2),
                buf: BytesMut::new(),
                fields: Fields::default(),
            });
        dir.buf.extend_from_slice(bytes);
        dir.fields.feed(bytes);
        // A decoding error means the stream is garbage from here on; the node under test reports
        // it, the tap simply stops decoding that direction.
        while let Ok(Some(frame)) = dir.decoder.decode_buf(&mut dir.buf) {
            let literal = dir.fields.pending.pop_front().unwrap_or_default();
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
                literal_command: literal,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use wazuh_cluster_protocol::frame::{Command, encode_frame};

    #[test]
    fn literal_commands_survive_any_split() {
        let mut wire = BytesMut::new();
        for (counter, cmd, payload) in [
            (1, Command::OK_NEW_FILE, &b"Ready to receive new file"[..]),
            (2, Command::from_static(b"sync_i_w_m_p"), b""),
            (3, Command::OK_M, b"keepalive"),
            (4, Command::HELLO, b"worker1 wazuh worker 3.9.5"),
            (5, Command::from_static(b"sync_m_c_ok"), b""),
        ] {
            encode_frame(Profile::V3_9, counter, &cmd, payload, &mut wire).unwrap();
        }
        for piece in [1, 7, 20, wire.len()] {
            let mut tap = Tap::new(None);
            for chunk in wire.chunks(piece) {
                tap.feed(
                    VirtualTime::ZERO,
                    LinkId(0),
                    LinkEnd::Acceptor,
                    ("w", "m"),
                    chunk,
                );
            }
            let got: Vec<(&str, &str, String)> = tap
                .frames()
                .iter()
                .map(|f| (f.command.as_str(), f.literal_command.as_str(), f.text()))
                .collect();
            assert_eq!(
                got,
                [
                    ("ok", "ok ", "Ready to receive new file".to_owned()),
                    ("sync_i_w_m_p", "sync_i_w_m_p", String::new()),
                    ("ok-m", "ok-m ", "keepalive".to_owned()),
                    ("hello", "hello", "worker1 wazuh worker 3.9.5".to_owned()),
                    ("sync_m_c_ok", "sync_m_c_ok", String::new()),
                ],
                "pieces of {piece}"
            );
        }
    }
}
