//! The `until` filter of the prune routes, read as dockerd reads it: a Go
//! duration before now (`24h`, `90m`, `1.5h`), an RFC 3339 time or date, or
//! Unix seconds with an optional fraction.
//!
//! dockerd reports a value it cannot read as a plain error, so these answers
//! are 500, not 400 (moby `daemon/prune.go`, `getUntilFromPruneFilters`).

use axum::http::StatusCode;
use time::format_description::well_known::Rfc3339;
use time::Duration;
use time::OffsetDateTime;
use time::PrimitiveDateTime;

use crate::error::ApiError;
use crate::filters::Filters;

/// The `until` of `f`, if given; `now` is what a duration counts back from.
pub fn from_filters(f: &Filters, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, ApiError> {
    let values: Vec<&String> = f.get("until").collect();
    match values.as_slice() {
        [] => Ok(None),
        [one] => parse(one, now).map(Some),
        _ => Err(plain("more than one until filter specified".into())),
    }
}

fn plain(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// One `until` value, in dockerd's order: a duration (but not `0`), a date
/// or time, then Unix seconds.
pub fn parse(value: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    if value != "0" {
        if let Some(d) = go_duration(value) {
            return Ok(now - d);
        }
    }
    if let Some(t) = date_time(value) {
        return Ok(t);
    }
    unix(value).ok_or_else(|| {
        plain(format!(
            "failed to parse value as time or duration: \"{value}\""
        ))
    })
}

/// Go's `time.ParseDuration`: signed, one or more `<number><unit>` terms.
fn go_duration(s: &str) -> Option<Duration> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    let d = Duration::seconds_f64(total);
    Some(if neg { -d } else { d })
}

/// RFC 3339 forms: with a zone as given, without one in UTC (this daemon's
/// zone), and a bare date at midnight.
fn date_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let local = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second]]][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(s, &local) {
        return Some(t.assume_utc());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Unix seconds with an optional fraction (`1700000000.5`).
fn unix(s: &str) -> Option<OffsetDateTime> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if s.contains('.') {
        let n: i64 = frac.parse().ok()?;
        let digits = i32::try_from(frac.len()).ok()?;
        nanos = (n as f64 * 10f64.powi(9 - digits)) as i64;
    }
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .map(|t| t + Duration::nanoseconds(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse("24h", now()).unwrap(), now() - Duration::hours(24));
        assert_eq!(
            parse("1h30m", now()).unwrap(),
            now() - Duration::minutes(90)
        );
        assert_eq!(
            parse("1.5s", now()).unwrap(),
            now() - Duration::milliseconds(1500)
        );
        assert_eq!(parse("-10m", now()).unwrap(), now() + Duration::minutes(10));
    }

    #[test]
    fn times_dates_and_unix_seconds() {
        let t = parse("2023-11-14T22:13:20Z", now()).unwrap();
        assert_eq!(t, now());
        let t = parse("2023-11-14T23:13:20+01:00", now()).unwrap();
        assert_eq!(t, now());
        let t = parse("2023-11-14T22:13:20", now()).unwrap();
        assert_eq!(t, now());
        let t = parse("2023-11-14", now()).unwrap();
        assert_eq!(t.unix_timestamp(), 1_699_920_000);
        assert_eq!(parse("1700000000", now()).unwrap(), now());
        assert_eq!(parse("0", now()).unwrap().unix_timestamp(), 0);
        let t = parse("1700000000.5", now()).unwrap();
        assert_eq!(t, now() + Duration::milliseconds(500));
    }

    #[test]
    fn bad_values_are_dockerds_500() {
        let e = parse("soon", now()).unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.message,
            "failed to parse value as time or duration: \"soon\""
        );
        let f = Filters::parse(Some(r#"{"until":{"1h":true,"2h":true}}"#)).unwrap();
        let e = from_filters(&f, now()).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "more than one until filter specified"
            )
        );
    }
}
