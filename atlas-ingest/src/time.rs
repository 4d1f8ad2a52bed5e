//! CF time units: `"<unit> since <date>[ <time>][ <zone>]"` to nanoseconds since the Unix epoch.
//!
//! The standard calendar (`standard`, `gregorian`, `proleptic_gregorian`) counts real time. The
//! model calendars `360_day`, `noleap`/`365_day` and `all_leap`/`366_day` count in their own years;
//! a date is worked out in that calendar, then read as the same date on the real one (as
//! xarray's conversion of cftime dates does), with a day the real month lacks (30 February)
//! clamped to its last day.

const DAY_NS: i128 = 86_400_000_000_000;

/// A CF calendar this decoder knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Standard,
    Day360,
    NoLeap,
    AllLeap,
}

impl Calendar {
    /// The calendar of a `calendar` attribute (absent: standard); `None` for ones not decoded
    /// (`julian`, unknown names).
    pub fn parse(calendar: Option<&str>) -> Option<Calendar> {
        match calendar.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "standard" | "gregorian" | "proleptic_gregorian") => {
                Some(Calendar::Standard)
            }
            Some("360_day") => Some(Calendar::Day360),
            Some("noleap" | "365_day") => Some(Calendar::NoLeap),
            Some("all_leap" | "366_day") => Some(Calendar::AllLeap),
            _ => None,
        }
    }

    fn month_days(self, m: i64) -> i64 {
        const DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        match (self, m) {
            (Calendar::Day360, _) => 30,
            (Calendar::AllLeap, 2) => 29,
            _ => DAYS[(m - 1) as usize],
        }
    }

    fn year_days(self) -> i64 {
        match self {
            Calendar::Day360 => 360,
            Calendar::AllLeap => 366,
            _ => 365,
        }
    }

    /// Days since year 0 of a date in a model calendar.
    fn days(self, y: i64, m: i64, d: i64) -> i64 {
        y * self.year_days() + (1..m).map(|k| self.month_days(k)).sum::<i64>() + d - 1
    }

    /// The date `days` after year 0 in a model calendar.
    fn date(self, days: i64) -> (i64, i64, i64) {
        let y = days.div_euclid(self.year_days());
        let mut rest = days.rem_euclid(self.year_days());
        let mut m = 1;
        while rest >= self.month_days(m) {
            rest -= self.month_days(m);
            m += 1;
        }
        (y, m, rest + 1)
    }
}

/// A decoded `units` attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnits {
    /// Nanoseconds per unit.
    pub unit_ns: i128,
    /// The epoch in Unix nanoseconds (standard calendar).
    pub epoch_ns: i128,
    calendar: Calendar,
    /// The epoch as a model-calendar date and time of day.
    epoch_date: (i64, i64, i64, i128),
}

impl TimeUnits {
    /// Parses CF time units on a calendar; `None` when they are not a time, use months or years
    /// (whose length CF leaves undefined), or the calendar is not one this decoder knows.
    pub fn parse(units: &str, calendar: Option<&str>) -> Option<TimeUnits> {
        let calendar = Calendar::parse(calendar)?;
        let units = units.trim();
        let lower = units.to_ascii_lowercase();
        let idx = lower.find(" since ")?;
        let unit_ns: i128 = match lower[..idx].trim() {
            "days" | "day" | "d" => 86_400_000_000_000,
            "hours" | "hour" | "hrs" | "hr" | "h" => 3_600_000_000_000,
            "minutes" | "minute" | "mins" | "min" => 60_000_000_000,
            "seconds" | "second" | "secs" | "sec" | "s" => 1_000_000_000,
            "milliseconds" | "millisecond" | "msecs" | "ms" => 1_000_000,
            "microseconds" | "microsecond" | "us" => 1_000,
            "nanoseconds" | "nanosecond" | "ns" => 1,
            "weeks" | "week" => 7 * 86_400_000_000_000,
            _ => return None,
        };
        let (y, m, d, tod) = parse_date(units[idx + 7..].trim())?;
        if calendar != Calendar::Standard && d > calendar.month_days(m) {
            return None;
        }
        let epoch_ns = days_from_civil(y, m, d) as i128 * DAY_NS + tod;
        Some(TimeUnits {
            unit_ns,
            epoch_ns,
            calendar,
            epoch_date: (y, m, d, tod),
        })
    }

    /// `value` units after the epoch, in Unix nanoseconds; `None` if not finite or out of range.
    pub fn to_ns(self, value: f64) -> Option<i64> {
        if !value.is_finite() {
            return None;
        }
        let whole = value.trunc();
        if whole.abs() > 1e18 {
            return None;
        }
        let offset = (whole as i128) * self.unit_ns
            + ((value - whole) * self.unit_ns as f64).round() as i128;
        let ns = match self.calendar {
            Calendar::Standard => self.epoch_ns + offset,
            cal => {
                let (y, m, d, tod) = self.epoch_date;
                let total = cal.days(y, m, d) as i128 * DAY_NS + tod + offset;
                let days = i64::try_from(total.div_euclid(DAY_NS)).ok()?;
                let (y, m, d) = cal.date(days);
                let d = d.min(Calendar::Standard.month_days(m) + i64::from(m == 2 && is_leap(y)));
                days_from_civil(y, m, d) as i128 * DAY_NS + total.rem_euclid(DAY_NS)
            }
        };
        i64::try_from(ns).ok()
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][ ](Z|UTC|GMT|±hh[:mm])` to the date and the nanoseconds
/// into that day (UTC; may fall outside `0..DAY` after a zone shift).
fn parse_date(s: &str) -> Option<(i64, i64, i64, i128)> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().unwrap_or("1").parse().ok()?;
    let d: i64 = parts.next().unwrap_or("1").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ns: i128 = 0;
    // Time of day, then an optional zone.
    let (time, zone) = match rest.find([' ', 'Z', '+', '-']) {
        Some(i) if rest[..i].contains(':') || i == 0 => (rest[..i].trim(), rest[i..].trim()),
        _ if rest.contains(':') => (rest, ""),
        _ => ("", rest),
    };
    if !time.is_empty() {
        let mut hms = time.splitn(3, ':');
        let h: i128 = hms.next()?.parse().ok()?;
        let mi: i128 = hms.next().unwrap_or("0").parse().ok()?;
        let sec: f64 = hms.next().unwrap_or("0").parse().ok()?;
        ns += h * 3_600_000_000_000 + mi * 60_000_000_000 + (sec * 1e9).round() as i128;
    }
    let zone = zone.trim();
    match zone {
        "" | "Z" | "z" | "UTC" | "utc" | "GMT" => {}
        z if z.starts_with('+') || z.starts_with('-') => {
            let sign: i128 = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            let (hh, mm) = match digits.len() {
                1 | 2 => (digits.parse::<i128>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i128>().ok()?,
                    digits[2..].parse::<i128>().ok()?,
                ),
                _ => return None,
            };
            ns -= sign * (hh * 3_600_000_000_000 + mm * 60_000_000_000);
        }
        _ => return None,
    }
    Some((y, m, d, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i128 = 86_400_000_000_000;

    #[test]
    fn argo_and_ersst_units_decode_to_the_same_instant_scale() {
        let argo = TimeUnits::parse("days since 1950-01-01 00:00:00 UTC", None).unwrap();
        assert_eq!(argo.epoch_ns, -7305 * DAY);
        let ersst = TimeUnits::parse("days since 1854-01-15 00:00", Some("gregorian")).unwrap();
        // 2012-01-15 is day 57708 after 1854-01-15 (the value in ersst.v5.201201.nc).
        assert_eq!(ersst.to_ns(57708.0), Some(1_326_585_600_000_000_000));
        let godas = TimeUnits::parse("hours since 1800-1-1 00:00:0.0", None).unwrap();
        assert_eq!(godas.epoch_ns, days_from_civil(1800, 1, 1) as i128 * DAY);
    }

    #[test]
    fn units_that_are_not_times_or_have_no_fixed_length_are_refused() {
        assert_eq!(TimeUnits::parse("degree_Celsius", None), None);
        assert_eq!(TimeUnits::parse("months since 2000-01-01", None), None);
        assert_eq!(TimeUnits::parse("days since yesterday", None), None);
        assert_eq!(
            TimeUnits::parse("days since 2000-01-01", Some("julian")),
            None
        );
    }

    #[test]
    fn zones_and_fractions_shift_the_epoch() {
        let a = TimeUnits::parse("seconds since 1970-01-01T01:00:00+01:00", None).unwrap();
        assert_eq!(a.epoch_ns, 0);
        let b = TimeUnits::parse("hours since 1970-01-01 00:00:30.5", None).unwrap();
        assert_eq!(b.epoch_ns, 30_500_000_000);
        assert_eq!(b.to_ns(1.5), Some(30_500_000_000 + 5_400_000_000_000));
        assert_eq!(b.to_ns(f64::NAN), None);
    }

    #[test]
    fn model_calendars_count_their_own_days_and_land_on_real_dates() {
        // ERSST 2000-2011: "minutes since 2000-01-01 00:00", calendar 360_day.
        let u = TimeUnits::parse("minutes since 2000-01-01 00:00", Some("360_day")).unwrap();
        assert_eq!(u.to_ns(0.0), Some(946_684_800_000_000_000));
        // 30 days of 1440 minutes later is 1 February in a 360-day year.
        assert_eq!(
            u.to_ns(30.0 * 1440.0),
            Some((days_from_civil(2000, 2, 1) as i128 * DAY) as i64)
        );
        // 30 February does not exist: clamped to 29 February 2000.
        assert_eq!(
            u.to_ns(59.0 * 1440.0),
            Some((days_from_civil(2000, 2, 29) as i128 * DAY) as i64)
        );
        let n = TimeUnits::parse("days since 2001-01-01", Some("noleap")).unwrap();
        assert_eq!(
            n.to_ns(365.0),
            Some((days_from_civil(2002, 1, 1) as i128 * DAY) as i64)
        );
        let l = TimeUnits::parse("days since 2001-01-01", Some("366_day")).unwrap();
        assert_eq!(
            l.to_ns(59.0),
            Some((days_from_civil(2001, 2, 28) as i128 * DAY) as i64)
        );
        assert_eq!(
            l.to_ns(60.0),
            Some((days_from_civil(2001, 3, 1) as i128 * DAY) as i64)
        );
    }
}
