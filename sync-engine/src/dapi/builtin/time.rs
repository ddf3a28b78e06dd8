//! Calendar time for the built-in functions, without a clock and without a time zone database.
//!
//! Upstream writes and compares local times (`datetime(mtime, 'unixepoch', 'localtime')`,
//! `datetime.now()`, `strftime("%z")`). A node has no time zone of its own here, so every
//! built-in function takes UTC as the local time: dates come out in UTC and `tz_offset` /
//! `tz_name` say `+0000` / `UTC`. Differences between two local times, which is what the agent
//! status and the filters compute, are the same in any zone.
//!
//! ```text
//! 1562000000  ↔  2019-07-01 16:53:20   (`%Y-%m-%d %H:%M:%S`)
//! ```

use std::fmt;

use crate::calendar::{CivilDate, UtcTime};

/// Seconds of the earliest time the dates here reach: 0000-01-01 00:00:00.
pub(super) const MIN_SECS: i64 = -62_167_219_200;

/// Seconds of the latest time the dates here reach: 9999-12-31 23:59:59 (SQLite's and
/// Python's last year).
pub(super) const MAX_SECS: i64 = 253_402_300_799;

/// A calendar date and time of day (proleptic Gregorian, no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DateTime {
    /// Year (may be 0 or negative before 0001; the formats here stop at 0000).
    pub(super) year: i64,
    /// 1..=12.
    pub(super) month: u32,
    /// 1..=31.
    pub(super) day: u32,
    /// 0..=23.
    pub(super) hour: u32,
    /// 0..=59.
    pub(super) minute: u32,
    /// 0..=59.
    pub(super) second: u32,
}

impl DateTime {
    /// The time `secs` seconds after 1970-01-01 00:00:00.
    pub(super) fn from_unix(secs: i64) -> DateTime {
        let UtcTime {
            date: CivilDate { year, month, day },
            hour,
            minute,
            second,
        } = UtcTime::from_unix(secs);
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// Seconds since 1970-01-01 00:00:00.
    pub(super) fn to_unix(self) -> i64 {
        CivilDate {
            year: self.year,
            month: self.month,
            day: self.day,
        }
        .to_days()
            * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The first day of this time's month, at 00:00:00.
    pub(super) fn first_of_month(self) -> DateTime {
        DateTime {
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            ..self
        }
    }

    /// Reads `YYYY-MM-DD HH:MM:SS` as SQLite's date functions read such a text (also
    /// `YYYY-MM-DD` and `YYYY-MM-DD HH:MM`, and `T` for the space); `None` for anything else.
    pub(super) fn parse_sqlite(text: &str) -> Option<DateTime> {
        let bytes = text.trim().as_bytes();
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = bytes.get(range)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        };
        if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
            return None;
        }
        let year = i64::from(number(0..4)?);
        let month = number(5..7)?;
        let day = number(8..10)?;
        let (hour, minute, second) = match bytes.len() {
            10 => (0, 0, 0),
            16 | 19 if matches!(bytes[10], b' ' | b'T') && bytes[13] == b':' => {
                let second = if bytes.len() == 19 {
                    if bytes[16] != b':' {
                        return None;
                    }
                    number(17..19)?
                } else {
                    0
                };
                (number(11..13)?, number(14..16)?, second)
            }
            _ => return None,
        };
        let valid = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

impl fmt::Display for DateTime {
    /// `%Y-%m-%d %H:%M:%S`, the year on four digits (what SQLite's `datetime()` and Python's
    /// `str(datetime)` write).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days in `month` of `year`.
pub(super) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_round_trips_through_the_calendar() {
        // python3: datetime.utcfromtimestamp(t)
        for (secs, text) in [
            (0, "1970-01-01 00:00:00"),
            (1_562_000_000, "2019-07-01 16:53:20"),
            (951_782_400, "2000-02-29 00:00:00"),
            (-1, "1969-12-31 23:59:59"),
            (MAX_SECS, "9999-12-31 23:59:59"),
            (-62_135_596_800, "0001-01-01 00:00:00"),
        ] {
            let date = DateTime::from_unix(secs);
            assert_eq!(date.to_string(), text);
            assert_eq!(date.to_unix(), secs);
            assert_eq!(DateTime::parse_sqlite(text), Some(date));
        }
    }

    #[test]
    fn sqlite_date_texts() {
        assert_eq!(
            DateTime::parse_sqlite("2019-07-01").map(|d| d.to_string()),
            Some("2019-07-01 00:00:00".into())
        );
        assert_eq!(
            DateTime::parse_sqlite("2019-07-01T10:20").map(|d| d.to_string()),
            Some("2019-07-01 10:20:00".into())
        );
        for bad in [
            "2019-13-01",
            "2019/07/01",
            "yesterday",
            "2019-07-01 10:20:3",
        ] {
            assert_eq!(DateTime::parse_sqlite(bad), None, "{bad}");
        }
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }
}
