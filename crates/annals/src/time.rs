//! Times as annals stores and shows them: microseconds since the Unix epoch, and RFC 3339 text
//! for every time a store can hold, before 1970 and after 9999 included.
//!
//! Why not `humantime` alone: it panics on a time before 1970 and fails (a panic in `to_string`)
//! after year 9999, and a stored `recorded_at` can be either (a row written by hand, PostgreSQL's
//! `infinity`). A read must never panic on stored data, so formatting here is total: years 0–9999
//! print as RFC 3339 requires, others in ISO 8601's expanded form (`+10000-01-01T00:00:00Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MICROS_PER_SEC: i128 = 1_000_000;
const SECS_PER_DAY: i128 = 86_400;

/// Microseconds since the Unix epoch (negative before it), saturating at `i64`'s range.
pub fn to_micros(t: SystemTime) -> i64 {
    let micros = signed_micros(t);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The time `us` microseconds after (negative: before) the Unix epoch.
pub fn from_micros(us: i64) -> SystemTime {
    let magnitude = Duration::from_micros(us.unsigned_abs());
    if us < 0 {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

fn signed_micros(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_micros()).unwrap_or(i128::MAX),
        // Before the epoch: round down to the microsecond.
        Err(e) => {
            let d = e.duration();
            let whole = i128::try_from(d.as_micros()).unwrap_or(i128::MAX);
            -(whole + i128::from(d.subsec_nanos() % 1_000 != 0))
        }
    }
}

/// `t` as RFC 3339 in UTC to the second: `2026-12-04T20:28:45Z`.
pub fn format_seconds(t: SystemTime) -> String {
    format(t, false)
}

/// `t` as RFC 3339 in UTC to the microsecond: `2026-12-04T20:28:45.123456Z`.
pub fn format_micros(t: SystemTime) -> String {
    format(t, true)
}

fn format(t: SystemTime, micros: bool) -> String {
    let total = signed_micros(t);
    let secs = total.div_euclid(MICROS_PER_SEC);
    let frac = total.rem_euclid(MICROS_PER_SEC);
    let days = secs.div_euclid(SECS_PER_DAY);
    let in_day = secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    let (h, m, s) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    if micros {
        format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:06}Z")
    } else {
        format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// Parses an RFC 3339 time (`2026-12-04T20:28:45Z`, with a fraction of up to nine digits and
/// any offset from `-23:59` to `+23:59`, `t`/`z`/a space accepted as RFC 3339 allows) or a date
/// alone (`2026-12-04`, midnight UTC). Years 0000–9999, before 1970 included. The error says what
/// is wrong.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| format!("`{text}` is not an RFC 3339 time ({why}); e.g. 2026-12-04T20:28:45Z");
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i128, String> {
        let part = b.get(range.clone()).ok_or_else(|| bad("too short"))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad("a digit is missing"));
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i128::from(d - b'0')))
    };
    let expect = |at: usize, what: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if what.contains(c) => Ok(()),
            _ => Err(bad(&format!("expected `{}` at position {}", what[0] as char, at + 1))),
        }
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    expect(4, b"-")?;
    expect(7, b"-")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    let date_secs = days_from_civil(year, month, day) * SECS_PER_DAY;
    if b.len() == 10 {
        return Ok(system_time(date_secs * MICROS_PER_SEC));
    }
    expect(10, b"Tt ")?;
    let (h, m, s) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    expect(13, b":")?;
    expect(16, b":")?;
    // 60 is a leap second: RFC 3339 allows it; it is read as the next second's start.
    if h > 23 || m > 59 || s > 60 {
        return Err(bad("no such time of day"));
    }
    let mut at = 19;
    let mut frac = 0i128;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if end == start || end - start > 9 {
            return Err(bad("a fraction needs 1 to 9 digits"));
        }
        let nanos = b[start..end].iter().fold(0i128, |n, d| n * 10 + i128::from(d - b'0'))
            * 10i128.pow(u32::try_from(9 - (end - start)).unwrap_or(0));
        frac = nanos / 1_000;
        at = end;
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') if b.len() == at + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == at + 6 => {
            expect(at + 3, b":")?;
            let (oh, om) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad("no such offset"));
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        None => return Err(bad("the offset is missing: add Z for UTC or +hh:mm")),
        _ => return Err(bad("the offset must be Z or +hh:mm / -hh:mm, and end the time")),
    };
    let secs = date_secs + h * 3600 + m * 60 + s - offset;
    Ok(system_time(secs * MICROS_PER_SEC + frac))
}

fn system_time(micros: i128) -> SystemTime {
    from_micros(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

fn is_leap(year: i128) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` days after 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i128::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_every_time_a_store_can_hold() {
        assert_eq!(format_seconds(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_micros(from_micros(1)), "1970-01-01T00:00:00.000001Z");
        assert_eq!(format_micros(from_micros(-1)), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_seconds(from_micros(-86_400_000_000)), "1969-12-31T00:00:00Z");
        assert_eq!(
            format_seconds(from_micros(253_402_300_800_000_000)),
            "+10000-01-01T00:00:00Z"
        );
        assert_eq!(format_seconds(from_micros(951_782_400_000_000)), "2000-02-29T00:00:00Z");
        // PostgreSQL's infinity and -infinity, as the driver reads them.
        for extreme in [i64::MAX, i64::MIN] {
            let text = format_micros(from_micros(extreme));
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn parses_rfc_3339_in_all_its_forms() {
        let at = |s: &str| to_micros(parse_rfc3339(s).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        assert_eq!(at("1970-01-01"), 0);
        assert_eq!(at("1970-01-01t00:00:00z"), 0);
        assert_eq!(at("1970-01-01 01:00:00+01:00"), 0);
        assert_eq!(
            at("1970-01-02T09:59:00+14:00"),
            86_400_000_000 - 14 * 3_600_000_000 + 35_940_000_000
        );
        assert_eq!(at("1969-12-31T23:59:59.5Z"), -500_000);
        assert_eq!(at("2026-12-04T20:28:45.123456789Z"), 1_796_416_125_123_456);
        assert_eq!(at("1900-03-01T00:00:00-00:30"), -2_203_891_200_000_000 + 1_800_000_000);
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29T00:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T20:28:45",
            "2026-12-04T20:28:45+2400",
            "2026-12-04T20:28:45.Z",
            "2026-12-04T20:28:45Zjunk",
        ] {
            let e = parse_rfc3339(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn round_trips_through_text() {
        for us in [
            0,
            1,
            -1,
            1_796_416_125_123_456,
            -2_203_891_200_000_000,
            253_402_300_799_999_999,
        ] {
            let t = from_micros(us);
            assert_eq!(to_micros(parse_rfc3339(&format_micros(t)).unwrap()), us, "{us}");
        }
    }
}
