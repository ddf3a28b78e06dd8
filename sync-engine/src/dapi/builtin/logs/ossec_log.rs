//! `manager.ossec_log` (`/manager/logs`, `/cluster/:node_id/logs`): the entries among the last
//! 2000 lines of `logs/ossec.log`, as 3.9.5 returns them:
//! `{"items": [{"timestamp", "tag", "level", "description"}, ...], "totalItems": N}`.
//!
//! Arguments (upstream's signature): `type_log` (`all` or a level, any case), `category` (`all`
//! or a tag), `months` (3: entries older than the first day of the month that many months back
//! are left out), `offset` (0), `limit` (500, at most 1000, `None` for all), `sort`
//! (`{"fields": [...], "order": "asc"|"desc"}`; default newest first), `search`
//! (`{"value": text, "negation": 0|1}`, case-blind, on every field).
//!
//! Upstream's ways, kept: a line that is not an entry continues the description of the entry
//! before it when the last entry line read had the same tag and level (even one left out by the
//! filters); with a `type_log` filter, every `ERROR: statfs(` entry becomes one plain string item
//! (which later makes a continuation line, a search or a sort fail as they fail upstream).
//!
//! The read: upstream's `tail` reads 1 KiB blocks from the end, each decoded on its own
//! (undecodable bytes become U+FFFD), until it has counted 2000 newlines. Here the same blocks,
//! but never more than the last 8 MiB of the file: with longer lines than that, fewer lines.
//!
//! ```text
//! 2019/07/11 08:39:52 ossec-analysisd: ERROR: Rule 31 failed
//!   details of the failure
//! → {"timestamp": "2019-07-11 08:39:52", "tag": "ossec-analysisd", "level": "error",
//!    "description": " Rule 31 failed\n  details of the failure"}
//! ```

use super::{OSSEC_LOG, parse_line, previous_month};
use crate::dapi::builtin::MAXIMUM_LIMIT;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::python::{ArgDefault, bind, int_of, str_method, str_of, unorderable};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::dapi::merge::{get, python_slice, sort_array, truthy};
use crate::integrity::storage::{EntryKind, Storage, Timestamp};

/// Lines upstream's `tail` keeps.
const TAIL_LINES: usize = 2000;

/// Upstream's `tail` block.
const BLOCK: u64 = 1024;

/// Most bytes read from the end of the log.
const MAX_TAIL_BYTES: u64 = 8 << 20;

/// Blocks read from the storage at once.
const BLOCKS_PER_READ: u64 = 64;

/// The item upstream puts in place of `statfs` errors.
const STATFS_ERROR: &str = "ERROR: statfs('******') produced error: No such file or directory";

/// `manager.ossec_log(**arguments)` at `now`. See the [module documentation](self).
///
/// # Errors
/// Upstream's answers for bad arguments, a missing log, or an impossible date in it.
pub(in crate::dapi::builtin) fn ossec_log<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
    now: Timestamp,
) -> FunctionResult<JsonValue> {
    let [type_log, category, months, offset, limit, sort, search] = bind(
        "ossec_log",
        &[
            ("type_log", ArgDefault::Str("all")),
            ("category", ArgDefault::Str("all")),
            ("months", ArgDefault::Int(3)),
            ("offset", ArgDefault::Int(0)),
            ("limit", ArgDefault::Int(500)),
            ("sort", ArgDefault::None),
            ("search", ArgDefault::None),
        ],
        arguments,
    )?;
    let first_date = previous_month(now, &months)?;
    let mut logs: Vec<JsonValue> = Vec::new();
    // The tag and level of the last entry line read, kept or not.
    let mut last_entry: Option<(String, &'static str)> = None;
    let all = JsonValue::from("all");
    for line in tail(install)? {
        let Some(entry) = parse_line(&line)? else {
            if let Some((tag, level)) = &last_entry
                && !line.is_empty()
                && let Some(last) = logs.last_mut()
            {
                append_continuation(last, tag, level, &line)?;
            }
            continue;
        };
        last_entry = Some((entry.tag.to_owned(), entry.level));
        if entry.date < first_date {
            continue;
        }
        if category != all && category.as_str() != Some(entry.tag) {
            continue;
        }
        let item = log_item(&entry);
        if type_log == all {
            logs.push(item);
        } else if str_method(&type_log, "lower")?.to_lowercase() == entry.level {
            if line.contains("ERROR: statfs(") {
                if !logs.iter().any(|l| l.as_str() == Some(STATFS_ERROR)) {
                    logs.push(JsonValue::from(STATFS_ERROR));
                }
            } else {
                logs.push(item);
            }
        }
    }
    if truthy(&search) {
        let text = get(&search, "value")?;
        let negation = truthy(get(&search, "negation")?);
        logs = search_array(logs, text, negation)?;
    }
    logs = if truthy(&sort) {
        let fields = get(&sort, "fields")?;
        let order = get(&sort, "order")?;
        if truthy(fields) {
            sort_array(logs, fields, order)?
        } else {
            sort_array(logs, &timestamp_field(), order)?
        }
    } else {
        sort_array(logs, &timestamp_field(), &JsonValue::from("desc"))?
    };
    let total = i64::try_from(logs.len()).unwrap_or(i64::MAX);
    let mut data = JsonObject::new();
    data.insert("items", JsonValue::Array(cut_array(logs, &offset, &limit)?));
    data.insert("totalItems", JsonValue::Int(total));
    Ok(JsonValue::Object(data))
}

fn timestamp_field() -> JsonValue {
    JsonValue::Array(vec![JsonValue::from("timestamp")])
}

fn log_item(entry: &super::LogEntry<'_>) -> JsonValue {
    let mut item = JsonObject::new();
    item.insert("timestamp", JsonValue::from(entry.date.to_string()));
    item.insert("tag", JsonValue::from(entry.tag));
    item.insert("level", JsonValue::from(entry.level));
    item.insert("description", JsonValue::from(entry.description));
    JsonValue::Object(item)
}

/// `if log_category == logs[-1]['tag'] and level == logs[-1]['level']: logs[-1]['description']
/// += "\n" + line`.
fn append_continuation(
    last: &mut JsonValue,
    tag: &str,
    level: &str,
    line: &str,
) -> FunctionResult<()> {
    let JsonValue::Object(last) = last else {
        // The statfs string item.
        return Err(FunctionError::python("string indices must be integers"));
    };
    let same = last.get("tag").and_then(JsonValue::as_str) == Some(tag)
        && last.get("level").and_then(JsonValue::as_str) == Some(level);
    if same && let Some(JsonValue::Str(description)) = last.get_mut("description") {
        description.push('\n');
        description.push_str(line);
    }
    Ok(())
}

/// `utils.search_array(items, text, negation)`: the items with (or, negated, without) a value
/// containing `text`, case-blind.
fn search_array(
    items: Vec<JsonValue>,
    text: &JsonValue,
    negation: bool,
) -> FunctionResult<Vec<JsonValue>> {
    if items.is_empty() {
        return Ok(items);
    }
    let text = str_method(text, "lower")?.to_lowercase();
    Ok(items
        .into_iter()
        .filter(|item| {
            let found = match item {
                JsonValue::Object(object) => object
                    .iter()
                    .any(|(_, value)| str_of(value).to_lowercase().contains(&text)),
                other => str_of(other).to_lowercase().contains(&text),
            };
            found != negation
        })
        .collect())
}

/// `utils.cut_array(items, offset, limit)`.
fn cut_array(
    items: Vec<JsonValue>,
    offset: &JsonValue,
    limit: &JsonValue,
) -> FunctionResult<Vec<JsonValue>> {
    match limit {
        JsonValue::Null => return Ok(items),
        JsonValue::Int(_) | JsonValue::Bool(_) | JsonValue::Float(_) => {}
        other => return Err(unorderable(">", other, "int")),
    }
    let beyond_maximum = match limit {
        JsonValue::Int(l) => *l > MAXIMUM_LIMIT,
        JsonValue::Float(l) => *l > MAXIMUM_LIMIT as f64,
        _ => false,
    };
    if beyond_maximum {
        return Err(FunctionError::wazuh(1405, Some(&str_of(limit))));
    }
    let zero = match limit {
        JsonValue::Int(l) => *l == 0,
        JsonValue::Float(l) => *l == 0.0,
        JsonValue::Bool(b) => !b,
        _ => false,
    };
    if zero {
        return Err(FunctionError::wazuh(1406, None));
    }
    let offset = int_of(offset)?;
    let limit = int_of(limit)?;
    if offset < 0 {
        return Err(FunctionError::wazuh(1400, None));
    }
    if limit < 1 {
        return Err(FunctionError::wazuh(1401, None));
    }
    Ok(python_slice(items, offset, offset.saturating_add(limit)))
}

/// `utils.tail(ossec_log, 2000)`: the last lines, split as `str.splitlines` splits.
///
/// # Errors
/// The log cannot be opened (missing, a directory, unreadable).
fn tail<S: Storage + ?Sized>(install: &Install<'_, S>) -> FunctionResult<Vec<String>> {
    let stat = install
        .stat(OSSEC_LOG)
        .map_err(|e| install.os_error(OSSEC_LOG, &e))?
        .ok_or_else(|| install.not_found(OSSEC_LOG))?;
    if stat.kind == EntryKind::Dir {
        return Err(install.os_error(
            OSSEC_LOG,
            &crate::integrity::storage::StorageError::new(
                crate::integrity::storage::StorageErrorKind::WrongKind,
                OSSEC_LOG,
                "a directory",
            ),
        ));
    }
    let size = stat.size;
    // Blocks from the end: block k covers `[size - k * BLOCK, size - (k - 1) * BLOCK)`, the
    // last one cut at the start of the file.
    let mut blocks: Vec<String> = Vec::new();
    let mut newlines = 0usize;
    let mut block_end = size;
    while newlines < TAIL_LINES && block_end > 0 && size - block_end < MAX_TAIL_BYTES {
        let read_start = block_end.saturating_sub(BLOCK * BLOCKS_PER_READ);
        let bytes = install
            .read_range(OSSEC_LOG, read_start, block_end - read_start)
            .map_err(|e| install.os_error(OSSEC_LOG, &e))?
            .ok_or_else(|| install.not_found(OSSEC_LOG))?;
        // The file may have shrunk since its size was read: what was read is what there is.
        let mut end = bytes.len();
        while end > 0 && newlines < TAIL_LINES && size - block_end < MAX_TAIL_BYTES {
            let start = end.saturating_sub(BLOCK as usize);
            let block = String::from_utf8_lossy(&bytes[start..end]).into_owned();
            newlines += block.matches('\n').count();
            blocks.push(block);
            block_end = block_end.saturating_sub((end - start) as u64);
            end = start;
        }
        if bytes.is_empty() {
            break;
        }
    }
    blocks.reverse();
    let text = blocks.concat();
    let lines = python_splitlines(&text);
    let keep = lines.len().saturating_sub(TAIL_LINES);
    Ok(lines[keep..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect())
}

/// `str.splitlines()`: lines end at `\n`, `\r\n`, `\r`, `\v`, `\f`, U+001C..U+001E, U+0085,
/// U+2028 and U+2029.
fn python_splitlines(text: &str) -> Vec<&str> {
    let is_break = |c: char| {
        matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        )
    };
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(is_break) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") {
            2
        } else {
            rest[at..].chars().next().map_or(1, char::len_utf8)
        };
        rest = &rest[at + skip..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}
