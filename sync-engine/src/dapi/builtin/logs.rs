//! `logs/ossec.log` as 3.9.5 `manager.py` reads it: the line pattern of
//! `__get_ossec_log_fields`, the date check `datetime.strptime` makes, and `previous_month`, the
//! start of the window both log functions look at. The functions: [`ossec_log`] (the lines,
//! filtered, searched, sorted and cut) and [`summary`] (counts per daemon and level).
//!
//! A line is a log entry when it matches
//! `^(\d\d\d\d/\d\d/\d\d\s\d\d:\d\d:\d\d)\s(\S+)(?:\[.*)?:\s(DEBUG|INFO|CRITICAL|ERROR|WARNING):(.*)$`
//! (the tag is the longest run of non-blanks that lets the rest match, a tag containing
//! `rootcheck` reads `ossec-rootcheck`, the level is lower-cased, the description keeps its
//! leading space); its date must then be a real date (`2019/02/30` makes upstream's `strptime`
//! raise, and the function fails with that error).
//!
//! Differences: `\d` is an ASCII digit here (Python's also takes other scripts' digits, which
//! no daemon writes).
//!
//! ```text
//! 2019/07/11 08:39:52 ossec-remoted: INFO: (unix_domain) Maximum send buffer set to: '212992'.
//! → timestamp 2019-07-11 08:39:52, tag ossec-remoted, level info,
//!   description " (unix_domain) Maximum send buffer set to: '212992'."
//! ```

#[cfg(test)]
mod end_to_end;
pub(super) mod ossec_log;
pub(super) mod summary;

use super::failure::{FunctionError, FunctionResult};
use super::python::{int_of, is_python_space};
use super::time::{DateTime, days_in_month};
use crate::integrity::storage::Timestamp;

/// The log file.
const OSSEC_LOG: &str = "logs/ossec.log";

/// The levels of the pattern, in its alternation order, as they appear in a line.
const LEVELS: [&str; 5] = ["DEBUG", "INFO", "CRITICAL", "ERROR", "WARNING"];

/// One entry line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogEntry<'l> {
    /// When.
    date: DateTime,
    /// The daemon (`ossec-remoted`, `wazuh-modulesd:syscollector`).
    tag: &'l str,
    /// `debug`, `info`, `critical`, `error` or `warning`.
    level: &'static str,
    /// The rest of the line after `<LEVEL>:`.
    description: &'l str,
}

/// `__get_ossec_log_fields(line)`: the entry, `None` for a line that does not match.
///
/// # Errors
/// The `ValueError` of `strptime` for a matching line whose date is not a real one.
fn parse_line(line: &str) -> FunctionResult<Option<LogEntry<'_>>> {
    let Some((date_text, rest)) = split_date(line) else {
        return Ok(None);
    };
    let Some((tag, level, description)) = split_tag(rest) else {
        return Ok(None);
    };
    let date = strptime(date_text)?;
    let tag = if tag.contains("rootcheck") {
        "ossec-rootcheck"
    } else {
        tag
    };
    Ok(Some(LogEntry {
        date,
        tag,
        level,
        description,
    }))
}

/// `\d\d\d\d/\d\d/\d\d\s\d\d:\d\d:\d\d\s` at the start: the date text and what follows the
/// blank after it.
fn split_date(line: &str) -> Option<(&str, &str)> {
    let mut chars = line.char_indices();
    let mut expect = |class: fn(char) -> bool| chars.next().filter(|(_, c)| class(*c));
    let digit = |c: char| c.is_ascii_digit();
    for class in [
        digit,
        digit,
        digit,
        digit,
        |c| c == '/',
        digit,
        digit,
        |c| c == '/',
        digit,
        digit,
        is_python_space,
        digit,
        digit,
        |c| c == ':',
        digit,
        digit,
        |c| c == ':',
        digit,
        digit,
    ] {
        expect(class)?;
    }
    let (blank_at, _) = expect(is_python_space)?;
    let after_blank = chars.next().map_or(line.len(), |(i, _)| i);
    Some((&line[..blank_at], &line[after_blank..]))
}

/// `(\S+)(?:\[.*)?:\s(LEVEL):(.*)$` on `rest`, with the regex engine's backtracking: the tag is
/// tried from the longest run of non-blanks down; at each length the optional `[...` group is
/// tried first, its greedy `.*` reaching the last place the tail matches.
fn split_tag(rest: &str) -> Option<(&str, &'static str, &str)> {
    // Every place where `:\s(LEVEL):` starts, with its level and description.
    let tails: Vec<(usize, &'static str, &str)> = rest
        .match_indices(':')
        .filter_map(|(at, _)| level_tail(&rest[at..]).map(|(l, d)| (at, l, d)))
        .collect();
    let tail_at = |at: usize| {
        tails
            .binary_search_by_key(&at, |(start, ..)| *start)
            .ok()
            .map(|i| tails[i])
    };
    let run: Vec<usize> = rest
        .char_indices()
        .take_while(|(_, c)| !is_python_space(*c))
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    for &tag_end in run.iter().rev() {
        if rest[tag_end..].starts_with('[')
            && let Some((_, level, description)) =
                tails.last().filter(|(start, ..)| *start > tag_end)
        {
            return Some((&rest[..tag_end], level, description));
        }
        if let Some((_, level, description)) = tail_at(tag_end) {
            return Some((&rest[..tag_end], level, description));
        }
    }
    None
}

/// `:\s(LEVEL):(.*)$` at the start of `text`: the level (lower-cased) and the description.
fn level_tail(text: &str) -> Option<(&'static str, &str)> {
    let mut chars = text.strip_prefix(':')?.chars();
    let blank = chars.next().filter(|c| is_python_space(*c))?;
    let after = &text[1 + blank.len_utf8()..];
    LEVELS.iter().find_map(|level| {
        let description = after.strip_prefix(level)?.strip_prefix(':')?;
        // `.` matches anything but a newline, and `$` may sit before a final one.
        let description = description.strip_suffix('\n').unwrap_or(description);
        (!description.contains('\n')).then(|| (lowercase_level(level), description))
    })
}

fn lowercase_level(level: &str) -> &'static str {
    match level {
        "DEBUG" => "debug",
        "INFO" => "info",
        "CRITICAL" => "critical",
        "ERROR" => "error",
        _ => "warning",
    }
}

/// `datetime.strptime(date, '%Y/%m/%d %H:%M:%S')` on a text of the line pattern's shape.
///
/// # Errors
/// Python's `ValueError` texts: a field out of the format's ranges, a day past the month's end,
/// year 0, a leap second.
fn strptime(text: &str) -> FunctionResult<DateTime> {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u32, |value, digit| value * 10 + digit)
    };
    // The pattern matched: 14 ASCII digits.
    if digits.len() != 14 {
        return Err(no_match(text));
    }
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(8..10), number(10..12), number(12..14));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 61
    {
        return Err(no_match(text));
    }
    if year == 0 {
        return Err(FunctionError::python("year 0 is out of range"));
    }
    if day > days_in_month(i64::from(year), month) {
        return Err(FunctionError::python("day is out of range for month"));
    }
    if second > 59 {
        return Err(FunctionError::python("second must be in 0..59"));
    }
    Ok(DateTime {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
    })
}

fn no_match(text: &str) -> FunctionError {
    FunctionError::python(format!(
        "time data {} does not match format '%Y/%m/%d %H:%M:%S'",
        crate::dapi::error::python_repr(text)
    ))
}

/// `previous_month(months)` at `now`: the first day, at midnight, of the month `months` months
/// before the current one.
///
/// # Errors
/// `int(months)`'s errors; going back before year 1 (`OverflowError`).
fn previous_month(
    now: Timestamp,
    months: &crate::dapi::json::JsonValue,
) -> FunctionResult<DateTime> {
    let back = int_of(months)?.max(0);
    let today = DateTime::from_unix(now.secs);
    // Months since January of year 1: how far back upstream's loop can step.
    let index = (i128::from(today.year) - 1) * 12 + i128::from(today.month) - 1;
    if back > index {
        return Err(FunctionError::python("date value out of range"));
    }
    let target = index - back;
    // 0 <= target <= index: year and month fit.
    Ok(DateTime {
        year: (target / 12 + 1) as i64,
        month: (target % 12 + 1) as u32,
        ..today.first_of_month()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dapi::json::JsonValue;

    fn entry(line: &str) -> Option<(String, &str, &str, &str)> {
        parse_line(line)
            .unwrap()
            .map(|e| (e.date.to_string(), e.tag, e.level, e.description))
    }

    /// Expected values from upstream's `__get_ossec_log_fields` (python3) on the same lines.
    #[test]
    fn lines_split_as_upstreams_pattern_splits_them() {
        assert_eq!(
            entry("2019/07/11 08:39:52 ossec-remoted: INFO: (unix_domain) x: 1"),
            Some((
                "2019-07-11 08:39:52".into(),
                "ossec-remoted",
                "info",
                " (unix_domain) x: 1"
            ))
        );
        assert_eq!(
            entry("2019/07/11 08:39:52 wazuh-modulesd:syscollector: ERROR: a: WARNING: b"),
            Some((
                "2019-07-11 08:39:52".into(),
                "wazuh-modulesd:syscollector",
                "error",
                " a: WARNING: b"
            ))
        );
        // The `[...` group reaches the last tail that matches.
        assert_eq!(
            entry("2019/07/11 08:39:52 ossec-x[12] y: INFO: a: DEBUG: b"),
            Some(("2019-07-11 08:39:52".into(), "ossec-x", "debug", " b"))
        );
        assert_eq!(
            entry("2019/07/11 08:39:52 rootcheck: WARNING:"),
            Some((
                "2019-07-11 08:39:52".into(),
                "ossec-rootcheck",
                "warning",
                ""
            ))
        );
        for not_an_entry in [
            "2019/07/11 08:39:52 ossec-x [12]: INFO: a",
            "2019/07/11 08:39:52 ossec-x: NOTICE: a",
            "2019/07/11 08:39:52  ossec-x: INFO: a",
            "2019-07-11 08:39:52 ossec-x: INFO: a",
            "Continuation of the previous line",
        ] {
            assert_eq!(entry(not_an_entry), None, "{not_an_entry}");
        }
    }

    #[test]
    fn impossible_dates_fail_as_strptime_fails() {
        for (line, message) in [
            (
                "2019/13/01 00:00:00 a: INFO: x",
                "time data '2019/13/01 00:00:00' does not match format '%Y/%m/%d %H:%M:%S'",
            ),
            (
                "2019/02/29 00:00:00 a: INFO: x",
                "day is out of range for month",
            ),
            ("0000/01/01 00:00:00 a: INFO: x", "year 0 is out of range"),
            ("2016/12/31 23:59:60 a: INFO: x", "second must be in 0..59"),
        ] {
            assert_eq!(parse_line(line).unwrap_err().message, message, "{line}");
        }
    }

    #[test]
    fn previous_month_steps_back_whole_months() {
        // 2019-07-15 10:00:00 UTC
        let now = Timestamp::from_secs(1_563_184_800);
        let months = |n: i64| previous_month(now, &JsonValue::Int(n)).map(|d| d.to_string());
        assert_eq!(months(3), Ok("2019-04-01 00:00:00".into()));
        assert_eq!(months(7), Ok("2018-12-01 00:00:00".into()));
        assert_eq!(months(-2), Ok("2019-07-01 00:00:00".into()));
        assert_eq!(months(2018 * 12 + 6), Ok("0001-01-01 00:00:00".into()));
        assert_eq!(
            months(2018 * 12 + 7).unwrap_err().message,
            "date value out of range"
        );
        assert_eq!(
            previous_month(now, &JsonValue::from("3")).map(|d| d.to_string()),
            Ok("2019-04-01 00:00:00".into())
        );
    }
}
