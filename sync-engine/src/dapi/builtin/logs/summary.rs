//! `manager.ossec_log_summary` (`/manager/logs/summary`, `/cluster/:node_id/logs/summary`): how
//! many entries of each level every daemon wrote, as 3.9.5 counts them:
//! `{"<tag>": {"all": n, "info": n, "error": n, "critical": n, "warning": n, "debug": n}, ...}`,
//! tags in the order they first appear.
//!
//! Upstream's way, kept: it reads `logs/ossec.log` from its *start*, at most 50001 lines, and
//! stops at the first entry older than the first day of the month `months` (3) months back, so a
//! log that begins with an old entry has an empty summary.
//!
//! The read: upstream iterates the file as UTF-8 text; here the first 16 MiB of it (a longer log
//! is summed up to its last whole line within them). An undecodable byte fails the function
//! when upstream's reader would reach it, with Python's message: upstream decodes in 8 KiB
//! chunks, so the failure comes with the first line that needs the chunk holding the bad byte,
//! and the position it reports counts from that chunk (plus the bytes of a character begun in
//! the chunk before).
//!
//! ```text
//! 2019/07/11 08:39:52 ossec-remoted: INFO: Started
//! 2019/07/11 08:39:53 ossec-remoted: ERROR: Lost
//! → {"ossec-remoted": {"all": 2, "info": 1, "error": 1, "critical": 0, "warning": 0, "debug": 0}}
//! ```

use super::{OSSEC_LOG, parse_line, previous_month};
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::{ArgDefault, bind};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::{EntryKind, Storage, StorageError, StorageErrorKind, Timestamp};

/// Most bytes read from the start of the log.
const MAX_SUMMARY_BYTES: u64 = 16 << 20;

/// Upstream reads lines while it has counted no more than this many.
const MAX_LINES_COUNTED: usize = 50_000;

/// The chunk Python's text reader decodes at once.
const TEXT_CHUNK: usize = 8192;

/// The counters of a tag, in upstream's order.
const COUNTERS: [&str; 6] = ["all", "info", "error", "critical", "warning", "debug"];

/// `manager.ossec_log_summary(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// Upstream's answers for a bad `months`, a missing log, an impossible date or an undecodable
/// byte in it.
pub(in crate::dapi::builtin) fn ossec_log_summary<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    let [months] = bind(
        "ossec_log_summary",
        &[("months", ArgDefault::Int(3))],
        arguments,
    )?;
    let first_date = previous_month(now, &months)?;
    let text = LogText::read(install)?;
    let mut categories = JsonObject::new();
    for (counted, line) in text.lines().enumerate() {
        // Python reads the line (and fails decoding it) before it checks the count.
        let line = line?;
        if counted > MAX_LINES_COUNTED {
            break;
        }
        let Some(entry) = parse_line(line)? else {
            continue;
        };
        if entry.date < first_date {
            break;
        }
        let counters = categories
            .get_mut(entry.tag)
            .and_then(|counters| match counters {
                JsonValue::Object(counters) => Some(counters),
                _ => None,
            });
        match counters {
            Some(counters) => {
                increment(counters, "all");
                increment(counters, entry.level);
            }
            None => {
                let mut counters: JsonObject = COUNTERS
                    .iter()
                    .map(|name| {
                        (
                            (*name).to_owned(),
                            JsonValue::Int(i64::from(*name == "all")),
                        )
                    })
                    .collect();
                increment(&mut counters, entry.level);
                categories.insert(entry.tag, JsonValue::Object(counters));
            }
        }
    }
    Ok(JsonValue::Object(categories))
}

fn increment(counters: &mut JsonObject, name: &str) {
    if let Some(JsonValue::Int(count)) = counters.get_mut(name) {
        *count += 1;
    }
}

/// The start of the log as Python's text reader delivers it. See the
/// [module documentation](self).
struct LogText {
    /// The text up to the first undecodable byte (or all of what was read).
    text: String,
    /// Where the reader stops delivering lines, and why.
    failure: Option<DecodeFailure>,
}

/// An undecodable byte: lines ending at or after `delivered_up_to` fail with `message`.
struct DecodeFailure {
    delivered_up_to: usize,
    message: String,
}

impl LogText {
    fn read<S: Storage + ?Sized>(install: &Install<'_, S>) -> FunctionResult<LogText> {
        let stat = install
            .stat(OSSEC_LOG)
            .map_err(|e| install.os_error(OSSEC_LOG, &e))?
            .ok_or_else(|| install.not_found(OSSEC_LOG))?;
        if stat.kind == EntryKind::Dir {
            let error = StorageError::new(StorageErrorKind::WrongKind, OSSEC_LOG, "a directory");
            return Err(install.os_error(OSSEC_LOG, &error));
        }
        let mut bytes = install
            .read_prefix(OSSEC_LOG, MAX_SUMMARY_BYTES)
            .map_err(|e| install.os_error(OSSEC_LOG, &e))?
            .ok_or_else(|| install.not_found(OSSEC_LOG))?;
        let whole_file = (bytes.len() as u64) < MAX_SUMMARY_BYTES || stat.size <= MAX_SUMMARY_BYTES;
        if !whole_file {
            // Up to the last whole line within the bound.
            let end = bytes
                .iter()
                .rposition(|b| matches!(b, b'\n' | b'\r'))
                .map_or(0, |i| i + 1);
            bytes.truncate(end);
        }
        Ok(match std::str::from_utf8(&bytes) {
            Ok(_) => LogText {
                text: String::from_utf8(bytes).unwrap_or_default(),
                failure: None,
            },
            Err(error) => {
                let valid = error.valid_up_to();
                let failure = decode_failure(&bytes, valid, error.error_len(), whole_file);
                bytes.truncate(valid);
                LogText {
                    text: String::from_utf8(bytes).unwrap_or_default(),
                    failure,
                }
            }
        })
    }

    /// The lines (without their ends), each `Err` from the first one the reader cannot deliver.
    fn lines(&self) -> impl Iterator<Item = FunctionResult<&str>> + '_ {
        let mut rest = self.text.as_str();
        let mut offset = 0usize;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let end = rest.find(['\n', '\r']);
            let (line, consumed) = match end {
                Some(i) if rest[i..].starts_with("\r\n") => (&rest[..i], i + 2),
                Some(i) => (&rest[..i], i + 1),
                None => (rest, rest.len()),
            };
            if let Some(failure) = &self.failure
                && (end.is_none() || offset + consumed > failure.delivered_up_to)
            {
                failed = true;
                return Some(Err(FunctionError::python(failure.message.clone())));
            }
            if rest.is_empty() {
                return None;
            }
            rest = &rest[consumed..];
            offset += consumed;
            Some(Ok(line))
        })
    }
}

/// Where Python's chunked UTF-8 reader fails on `bytes`, whose first `valid` bytes decode and
/// whose next `error_len` bytes do not (`None`: a character cut by the end of what was read).
fn decode_failure(
    bytes: &[u8],
    valid: usize,
    error_len: Option<usize>,
    whole_file: bool,
) -> Option<DecodeFailure> {
    let first = bytes[valid];
    let reason = match error_len {
        None if !whole_file => return None,
        None => "unexpected end of data",
        Some(_) if matches!(first, 0x80..=0xc1 | 0xf5..=0xff) => "invalid start byte",
        Some(_) => "invalid continuation byte",
    };
    let len = error_len.unwrap_or(bytes.len() - valid);
    // The byte that shows the error: the bad start byte, or the one after the sequence's start
    // that is not a continuation (the end of the file for a cut character).
    let evident = match reason {
        "invalid start byte" => valid,
        _ => valid + len,
    };
    let chunk_start = if error_len.is_none() {
        // Found by the final decode at the end of the file, of the bytes kept pending.
        valid
    } else {
        evident / TEXT_CHUNK * TEXT_CHUNK
    };
    // Bytes of a character begun before the chunk, kept pending and decoded with it.
    let pending_start = if valid < chunk_start {
        valid
    } else {
        (0..=3)
            .map(|back| chunk_start.saturating_sub(back))
            .find(|&start| start < chunk_start && bytes[start] & 0xc0 != 0x80)
            .filter(|&start| start + utf8_len(bytes[start]) > chunk_start)
            .unwrap_or(chunk_start)
    };
    let position = valid - pending_start;
    let message = if len == 1 {
        format!("'utf-8' codec can't decode byte 0x{first:02x} in position {position}: {reason}")
    } else {
        format!(
            "'utf-8' codec can't decode bytes in position {position}-{}: {reason}",
            position + len - 1
        )
    };
    Some(DecodeFailure {
        delivered_up_to: pending_start,
        message,
    })
}

/// The length of the UTF-8 sequence `lead` starts.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xf0..=0xf7 => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}
