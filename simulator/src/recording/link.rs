//! The link between the two recorded nodes: every frame both sent, decrypted, with the literal
//! command fields, in the order one process logged them; and the frames a simulation's tap saw,
//! in the same form, so the two can be compared.

use std::time::Duration;

use bytes::Bytes;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, FrameDecoder, HEADER_LEN};
use wazuh_cluster_protocol::profile::Profile;

use super::fields::{bad, f64_field, str_field, u64_field};
use super::{RecordingError, Role, WORKER_NAME, fernet};
use crate::tap::{TapFrame, literal_command};

/// One frame on the link between the two nodes, reduced to what comparisons look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFrame {
    /// When it was seen, from the first frame of the link.
    pub at: Duration,
    /// Who sent it.
    pub by: Role,
    /// Header counter (a reply carries its request's).
    pub counter: u32,
    /// The command as the receiver reads it (`ok` for the field `ok  --------`).
    pub command: String,
    /// The command as the sender wrote it (`ok ` for the same field): upstream answers
    /// `new_file` with `ok ` and `echo-c` with `ok-m `, and a faithful peer must too.
    pub literal: String,
    /// Plaintext payload (the tap keeps a prefix only, see [`crate::tap::PREVIEW_LEN`]).
    pub payload: Vec<u8>,
}

impl LinkFrame {
    /// A reply (`ok`, `ok-m`, `err`, ...) rather than a request.
    pub fn is_reply(&self) -> bool {
        is_reply(&self.command)
    }
}

/// True for reply commands (as the receiver reads them): every `ok…` and `err`.
pub fn is_reply(command: &str) -> bool {
    command.starts_with("ok") || command == "err"
}

/// Every frame one recorded node sent, decrypted (`at` is zero: the raw streams carry no time).
///
/// # Errors
/// A frame that does not decode or decrypt.
pub fn recorded_stream(by: Role) -> Result<Vec<LinkFrame>, RecordingError> {
    let file = by.raw_file();
    let fernet = fernet()?;
    let bytes = wazuh_cluster_vectors::read(file);
    let mut decoder = FrameDecoder::new(Profile::V3_9, DEFAULT_MAX_PAYLOAD);
    let mut input = Bytes::from(bytes);
    let mut out = Vec::new();
    loop {
        // The decoder keeps only the receiver's view of the command field; the literal one is
        // read from the header before it is consumed.
        let literal = input
            .get(8..HEADER_LEN)
            .map(literal_command)
            .unwrap_or_default();
        let Some(frame) = decoder
            .decode(&mut input)
            .map_err(|e| bad(file, e.to_string()))?
        else {
            break;
        };
        let payload = fernet
            .decrypt(&frame.payload)
            .map_err(|e| bad(file, format!("frame {}: {e}", frame.counter)))?;
        out.push(LinkFrame {
            at: Duration::ZERO,
            by,
            counter: frame.counter,
            command: String::from_utf8_lossy(frame.command.name()).into_owned(),
            literal,
            payload,
        });
    }
    decoder.finish().map_err(|e| bad(file, e.to_string()))?;
    Ok(out)
}

/// The recorded link as `view`'s process saw it: both raw streams (full plaintext, literal
/// command fields), interleaved in the order of that process's frame log, timed from its first
/// frame. Local-socket frames are not on the link and are not included.
///
/// # Errors
/// The log and the raw streams disagree (counter or command), or a file is malformed.
pub fn recorded_link(view: Role) -> Result<Vec<LinkFrame>, RecordingError> {
    let file = view.frames_file();
    let mut own = recorded_stream(view)?.into_iter();
    let mut other = recorded_stream(view.other())?.into_iter();
    let mut out = Vec::new();
    let mut start = None;
    for line in wazuh_cluster_vectors::jsonl(file) {
        if line.get("event").is_some() || str_field(&line, "conn", file)? != view.handler() {
            continue;
        }
        let t = f64_field(&line, "t", file)?;
        let t0 = *start.get_or_insert(t);
        let sent = str_field(&line, "dir", file)? == "SEND";
        let mut frame = if sent { own.next() } else { other.next() }
            .ok_or_else(|| bad(file, "more frames logged than the raw streams hold"))?;
        let counter = u64_field(&line, "counter", file)?;
        let command = str_field(&line, "cmd", file)?.trim_end();
        if u64::from(frame.counter) != counter || frame.command != command {
            return Err(bad(
                file,
                format!(
                    "logged {counter} {command}, raw stream has {} {}",
                    frame.counter, frame.command
                ),
            ));
        }
        frame.at = Duration::from_secs_f64((t - t0).max(0.0));
        out.push(frame);
    }
    if own.next().is_some() || other.next().is_some() {
        return Err(bad(file, "the raw streams hold frames the log does not"));
    }
    Ok(out)
}

/// The frames a simulation's tap decoded, as link frames (`worker1` is the worker, any other
/// sender the master).
pub fn link_of_tap(frames: &[TapFrame]) -> Vec<LinkFrame> {
    frames
        .iter()
        .map(|f| LinkFrame {
            at: f.at.offset(),
            by: if f.from == WORKER_NAME {
                Role::Worker
            } else {
                Role::Master
            },
            counter: f.counter,
            command: f.command.clone(),
            literal: f.literal_command.clone(),
            payload: f.preview.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{Flow, exchanges};

    #[test]
    fn both_views_hold_every_frame_of_both_streams_with_literal_fields() {
        for view in [Role::Master, Role::Worker] {
            let l = recorded_link(view).unwrap();
            assert_eq!(l.len(), 244);
            assert_eq!(l.iter().filter(|f| f.by == Role::Worker).count(), 122);
            assert_eq!((l[0].command.as_str(), l[0].by), ("hello", Role::Worker));
            assert_eq!(l[0].payload, b"worker1 wazuh worker 3.9.5");
            assert_eq!(l[0].at, Duration::ZERO);
        }
        let l = recorded_link(Role::Master).unwrap();
        // The reply fields as upstream writes them: `ok ` to new_file, `ok-m ` to echo-c.
        let ex = exchanges(&l);
        let keepalive = &ex[&Flow::Keepalive][0];
        assert_eq!(keepalive.reply.as_deref(), Some("ok-m "));
        let new_file = ex[&Flow::Integrity]
            .iter()
            .find(|e| e.request == "new_file")
            .unwrap();
        assert_eq!(new_file.reply.as_deref(), Some("ok "));
        assert_eq!(new_file.reply_shape, "Ready to receive new file");
        let hello = &ex[&Flow::Hello][0];
        assert_eq!(
            (hello.reply.as_deref(), hello.reply_shape.as_str()),
            (Some("ok"), "Client workerN added")
        );
    }
}
