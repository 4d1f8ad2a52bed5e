//! CF time units: `"<unit> since <date>[ <time>][ <zone>]"` to nanoseconds since the Unix epoch,
//! on the standard (proleptic Gregorian) calendar, as xarray decodes them.

/// A decoded `units` attribute: nanoseconds per unit and the epoch in Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnits {
    pub unit_ns: i128,
    pub epoch_ns: i128,
}

impl TimeUnits {
    /// Parses CF time units; `None` when they are not a time (or use months/years, whose length
    /// CF leaves undefined).
    pub fn parse(units: &str) -> Option<TimeUnits> {
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
        let epoch_ns = parse_date(units[idx + 7..].trim())?;
        Some(TimeUnits { unit_ns, epoch_ns })
    }

    /// `value` units after the epoch, in Unix nanoseconds; `None` if not finite or out of range.
    pub fn to_ns(&self, value: f64) -> Option<i64> {
        if !value.is_finite() {
            return None;
        }
        let whole = value.trunc();
        if whole.abs() > 1e18 {
            return None;
        }
        let ns = self.epoch_ns
            + (whole as i128) * self.unit_ns
            + ((value - whole) * self.unit_ns as f64).round() as i128;
        i64::try_from(ns).ok()
    }
}

/// Whether a `calendar` attribute names the standard calendar (or is absent).
pub fn standard_calendar(calendar: Option<&str>) -> bool {
    matches!(
        calendar.map(|c| c.trim().to_ascii_lowercase()).as_deref(),
        None | Some("standard" | "gregorian" | "proleptic_gregorian" | "")
    )
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

/// `YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][ ](Z|UTC|GMT|±hh[:mm])` to Unix nanoseconds.
fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let mut parts = date.splitn(3, '-');
    let (neg, y) = {
        let first = parts.next()?;
        (false, first)
    };
    let y: i64 = y.parse().ok()?;
    let y = if neg { -y } else { y };
    let m: i64 = parts.next().unwrap_or("1").parse().ok()?;
    let d: i64 = parts.next().unwrap_or("1").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ns = days_from_civil(y, m, d) as i128 * 86_400_000_000_000;
    // Time of day, then an optional zone.
    let (time, zone) = match rest.find(|c: char| c == ' ' || c == 'Z' || c == '+' || (c == '-')) {
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
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i128 = 86_400_000_000_000;

    #[test]
    fn argo_and_ersst_units_decode_to_the_same_instant_scale() {
        let argo = TimeUnits::parse("days since 1950-01-01 00:00:00 UTC").unwrap();
        assert_eq!(argo.epoch_ns, -7305 * DAY);
        let ersst = TimeUnits::parse("days since 1854-01-15 00:00").unwrap();
        // 2012-01-15 is day 57708 after 1854-01-15 (the value in ersst.v5.201201.nc).
        assert_eq!(ersst.to_ns(57708.0), Some(1_326_585_600_000_000_000));
        let godas = TimeUnits::parse("hours since 1800-1-1 00:00:0.0").unwrap();
        assert_eq!(godas.epoch_ns, days_from_civil(1800, 1, 1) as i128 * DAY);
    }

    #[test]
    fn units_that_are_not_times_or_have_no_fixed_length_are_refused() {
        assert_eq!(TimeUnits::parse("degree_Celsius"), None);
        assert_eq!(TimeUnits::parse("months since 2000-01-01"), None);
        assert_eq!(TimeUnits::parse("days since yesterday"), None);
    }

    #[test]
    fn zones_and_fractions_shift_the_epoch() {
        let a = TimeUnits::parse("seconds since 1970-01-01T01:00:00+01:00").unwrap();
        assert_eq!(a.epoch_ns, 0);
        let b = TimeUnits::parse("hours since 1970-01-01 00:00:30.5").unwrap();
        assert_eq!(b.epoch_ns, 30_500_000_000);
        assert_eq!(b.to_ns(1.5), Some(30_500_000_000 + 5_400_000_000_000));
        assert_eq!(b.to_ns(f64::NAN), None);
    }
}
