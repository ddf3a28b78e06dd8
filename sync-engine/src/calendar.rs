//! Calendar arithmetic on Unix times: UTC, proleptic Gregorian, no clock, no zone database.
//!
//! One home for the date maths that ZIP timestamps (DOS times), integrity `mod_time` texts, the
//! built-in API functions and the daemon's log rotation all need.
//!
//! ```
//! use wazuh_cluster_sync::calendar::{CivilDate, UtcTime};
//!
//! let t = UtcTime::from_unix(1_562_000_000);
//! assert_eq!(t.date, CivilDate { year: 2019, month: 7, day: 1 });
//! assert_eq!((t.hour, t.minute, t.second), (16, 53, 20));
//! assert_eq!(t.date.to_days() * 86_400 + 16 * 3600 + 53 * 60 + 20, 1_562_000_000);
//! ```

/// A day of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    /// Year (0 and negative years before 0001).
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
}

impl CivilDate {
    /// The day `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
    pub fn from_days(days: i64) -> CivilDate {
        // Saturating keeps absurd inputs (a hostile mtime) from overflowing; the result is then
        // simply a far date.
        let z = days.saturating_add(719_468);
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        // In range by construction: 1..=31 and 1..=12.
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe
            .saturating_add(era.saturating_mul(400))
            .saturating_add(i64::from(month <= 2));
        CivilDate { year, month, day }
    }

    /// Days from 1970-01-01 to this day (H. Hinnant's `days_from_civil`); the inverse of
    /// [`CivilDate::from_days`] for real dates.
    pub fn to_days(self) -> i64 {
        let year = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let month = i64::from(self.month);
        let mp = if month > 2 { month - 3 } else { month + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

/// The UTC date and time of day of a Unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    /// The day.
    pub date: CivilDate,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

impl UtcTime {
    /// The UTC time `secs` seconds after 1970-01-01 00:00:00.
    pub fn from_unix(secs: i64) -> UtcTime {
        let of_day = secs.rem_euclid(86_400);
        // `of_day` < 86,400: the casts are exact.
        UtcTime {
            date: CivilDate::from_days(secs.div_euclid(86_400)),
            hour: (of_day / 3600) as u32,
            minute: (of_day % 3600 / 60) as u32,
            second: (of_day % 60) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let date = |year, month, day| CivilDate { year, month, day };
        assert_eq!(CivilDate::from_days(0), date(1970, 1, 1));
        assert_eq!(CivilDate::from_days(11_016), date(2000, 2, 29));
        assert_eq!(CivilDate::from_days(-1), date(1969, 12, 31));
        assert_eq!(UtcTime::from_unix(4_107_542_399).date, date(2100, 2, 28));
        let t = UtcTime::from_unix(-1);
        assert_eq!(
            (t.date, t.hour, t.minute, t.second),
            (date(1969, 12, 31), 23, 59, 59)
        );
    }

    #[test]
    fn days_round_trip_over_ten_thousand_years_on_both_sides_of_the_epoch() {
        for days in (-800_000..3_000_000).step_by(97) {
            assert_eq!(CivilDate::from_days(days).to_days(), days, "day {days}");
        }
    }

    #[test]
    fn absurd_days_do_not_overflow() {
        assert!(CivilDate::from_days(i64::MAX).year > 1_000_000);
        assert!(CivilDate::from_days(i64::MIN).year < -1_000_000);
    }
}
