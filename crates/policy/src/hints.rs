//! What the server's headers ask for: how long to wait, and which limit was hit.
//!
//! Novita itself is not documented to send `Retry-After` or `x-ratelimit-*`, but gateways
//! and proxies in front of it do, and a client that ignores them retries too early. Every
//! parser here is total: garbage, negative or empty values read as "no hint", so the
//! policy falls back to its own backoff.

use std::time::{Duration, SystemTime};

use novita_catalog::RateLimit;

/// Read access to a response's headers, borrowed from whatever HTTP client produced them.
///
/// Implemented for slices and arrays of `(name, value)` string pairs, and for
/// `http::HeaderMap` with the `http` feature (the type both reqwest and ureq expose).
pub trait Headers {
    /// The value of the first header called `name` (compared without regard to ASCII
    /// case), as raw bytes.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

impl<S: AsRef<str>> Headers for [(S, S)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref().as_bytes())
    }
}

impl<S: AsRef<str>, const N: usize> Headers for [(S, S); N] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Headers::get(self.as_slice(), name)
    }
}

impl<S: AsRef<str>> Headers for Vec<(S, S)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Headers::get(self.as_slice(), name)
    }
}

/// Lets a borrowed slice of pairs (`&[(name, value)]`) stand where `&dyn Headers` is needed.
impl<T: Headers + ?Sized> Headers for &T {
    fn get(&self, name: &str) -> Option<&[u8]> {
        (**self).get(name)
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        http::HeaderMap::get(self, name).map(http::HeaderValue::as_bytes)
    }
}

/// No headers at all, for outcomes that have none.
pub const NO_HEADERS: [(&str, &str); 0] = [];

/// How long the server asked the client to wait, from the first header that says so:
/// `retry-after-ms`, then `Retry-After` (delta-seconds or any of the three HTTP-date
/// forms, measured against `wall_now`), then the reset header of an exhausted
/// `x-ratelimit-*` dimension.
///
/// A date in the past means "now" (`Some(Duration::ZERO)`); a value too large to
/// represent (a number too long for an `f64`, a reset time past what `SystemTime` holds)
/// saturates to [`Duration::MAX`] so that the caller's ceiling rejects it. Negative
/// numbers, NaN and garbage are no hint. Never panics, whatever the bytes or the clock.
#[must_use]
pub fn retry_after(headers: &dyn Headers, wall_now: SystemTime) -> Option<Duration> {
    if let Some(wait) = headers.get("retry-after-ms").and_then(milliseconds) {
        return Some(wait);
    }
    if let Some(wait) = headers
        .get("retry-after")
        .and_then(|value| retry_after_value(value, wall_now))
    {
        return Some(wait);
    }
    rate_limit_reset(headers, wall_now)
}

/// Which limit the `x-ratelimit-remaining-*` headers say is exhausted, if any.
#[must_use]
pub fn exhausted_limit(headers: &dyn Headers) -> Option<RateLimit> {
    let exhausted = |name: &str| {
        headers
            .get(name)
            .and_then(number)
            .is_some_and(|left| left <= 0.0)
    };
    if exhausted("x-ratelimit-remaining-tokens") {
        Some(RateLimit::TokensPerMinute)
    } else if exhausted("x-ratelimit-remaining-requests") {
        Some(RateLimit::RequestsPerMinute)
    } else {
        None
    }
}

/// A `Retry-After` value: delta-seconds (fractions tolerated) or an HTTP-date.
#[must_use]
pub fn retry_after_value(value: &[u8], wall_now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        let decimal = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        return if decimal { seconds(text) } else { None };
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(wall_now).unwrap_or(Duration::ZERO))
}

fn rate_limit_reset(headers: &dyn Headers, wall_now: SystemTime) -> Option<Duration> {
    let reset_name = match exhausted_limit(headers)? {
        RateLimit::TokensPerMinute => "x-ratelimit-reset-tokens",
        _ => "x-ratelimit-reset-requests",
    };
    headers
        .get(reset_name)
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(go_duration)
        .or_else(|| {
            headers
                .get("x-ratelimit-reset")
                .and_then(|value| reset_instant(value, wall_now))
        })
}

/// `x-ratelimit-reset`: seconds to wait, or (when it is clearly a Unix time) the instant
/// the window resets.
fn reset_instant(value: &[u8], wall_now: SystemTime) -> Option<Duration> {
    /// Values above this are Unix times rather than waits: 2001-09-09, over 31 years.
    const UNIX_TIME_THRESHOLD: f64 = 1.0e9;
    let value = number(value)?;
    if value >= UNIX_TIME_THRESHOLD {
        // A reset too far in the future to represent is an absurd wait, not no wait.
        let reset = seconds_from_f64(value)
            .and_then(|since_epoch| SystemTime::UNIX_EPOCH.checked_add(since_epoch));
        Some(reset.map_or(Duration::MAX, |reset| {
            reset.duration_since(wall_now).unwrap_or(Duration::ZERO)
        }))
    } else {
        seconds_from_f64(value)
    }
}

fn milliseconds(value: &[u8]) -> Option<Duration> {
    number(value).and_then(|ms| seconds_from_f64(ms / 1000.0))
}

fn seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>().ok().and_then(seconds_from_f64)
}

/// A non-negative number of seconds; absurdly large values (up to a run of digits too
/// long for an `f64`, which parses as infinity) saturate to [`Duration::MAX`]. Negative
/// values and NaN are no hint.
fn seconds_from_f64(value: f64) -> Option<Duration> {
    if value.is_nan() || value < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX))
}

/// A plain decimal number, as a header value; `None` for anything else.
fn number(value: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    if plain { text.parse().ok() } else { None }
}

/// Durations as rate-limit headers write them: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, or a
/// plain number of seconds.
fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    // Only digits and a point: `f64`'s parser would also take `inf`, `NaN` and `1e9`.
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds(text);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    seconds_from_f64(total)
}

/// Which limit a message's wording points to, for bodies that carry no `reason`.
#[must_use]
pub fn limit_named_in(message: &str) -> Option<RateLimit> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("token") || lower.contains("tpm") {
        Some(RateLimit::TokensPerMinute)
    } else if lower.contains("request") || lower.contains("rpm") {
        Some(RateLimit::RequestsPerMinute)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26T00:00:00Z, the fixed "now" of these tests.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200)
    }

    fn secs(value: u64) -> Option<Duration> {
        Some(Duration::from_secs(value))
    }

    #[test]
    fn retry_after_values() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", secs(0)),
            ("7", secs(7)),
            ("  12  ", secs(12)),
            ("\t3\r", secs(3)),
            ("1.5", Some(Duration::from_millis(1500))),
            ("007", secs(7)),
            ("99999999999999999999999", Some(Duration::MAX)),
            ("18446744073709551616", Some(Duration::MAX)),
            (&"9".repeat(400), Some(Duration::MAX)),
            (
                "Fri, 31 Dec 9999 23:59:59 GMT",
                secs(253_402_300_799 - 1_795_651_200),
            ),
            ("Thu, 01 Jan 1970 00:00:00 GMT", secs(0)),
            ("1e400", None),
            ("-1", None),
            ("-0.5", None),
            ("", None),
            ("   ", None),
            ("soon", None),
            ("NaN", None),
            ("inf", None),
            ("12 seconds", None),
            ("0x10", None),
            // IMF-fixdate, RFC 850 and asctime, all 30 s after `now`.
            ("Thu, 26 Nov 2026 00:00:30 GMT", secs(30)),
            ("Thursday, 26-Nov-26 00:00:30 GMT", secs(30)),
            ("Thu Nov 26 00:00:30 2026", secs(30)),
            ("  Thu, 26 Nov 2026 00:01:00 GMT ", secs(60)),
            // In the past: retry now.
            ("Wed, 25 Nov 2026 23:59:00 GMT", secs(0)),
            ("Thu, 26 Nov 2026 25:00:00 GMT", None),
            ("Thu, 32 Nov 2026 00:00:00 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                retry_after_value(value.as_bytes(), now()),
                *expected,
                "Retry-After: {value:?}"
            );
        }
        assert_eq!(retry_after_value(&[0xff, b'1'], now()), None);
    }

    #[test]
    fn retry_after_ms_wins_and_is_precise() {
        let headers = [("Retry-After", "2"), ("retry-after-ms", "1250")];
        assert_eq!(
            retry_after(&headers, now()),
            Some(Duration::from_millis(1250))
        );
        let headers = [("Retry-After-Ms", "12.5")];
        assert_eq!(
            retry_after(&headers, now()),
            Some(Duration::from_micros(12_500))
        );
        // A garbage retry-after-ms does not hide a valid Retry-After.
        let headers = [("retry-after-ms", "-3"), ("retry-after", "4")];
        assert_eq!(retry_after(&headers, now()), secs(4));
        let headers = [("retry-after-ms", "abc")];
        assert_eq!(retry_after(&headers, now()), None);
    }

    #[test]
    fn rate_limit_headers_name_the_limit_and_the_reset() {
        let headers = [
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ];
        assert_eq!(exhausted_limit(&headers), Some(RateLimit::TokensPerMinute));
        assert_eq!(retry_after(&headers, now()), secs(360));

        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "250ms"),
        ];
        assert_eq!(
            exhausted_limit(&headers),
            Some(RateLimit::RequestsPerMinute)
        );
        assert_eq!(
            retry_after(&headers, now()),
            Some(Duration::from_millis(250))
        );

        // Nothing exhausted: the reset headers are not a hint.
        let headers = [
            ("x-ratelimit-remaining-requests", "3"),
            ("x-ratelimit-reset-requests", "9s"),
        ];
        assert_eq!(exhausted_limit(&headers), None);
        assert_eq!(retry_after(&headers, now()), None);
    }

    #[test]
    fn generic_reset_is_seconds_or_a_unix_time() {
        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset", "5"),
        ];
        assert_eq!(retry_after(&headers, now()), secs(5));
        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset", "1795651220"),
        ];
        assert_eq!(retry_after(&headers, now()), secs(20));
        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset", "1700000000"),
        ];
        assert_eq!(retry_after(&headers, now()), secs(0));
        // Past anything a clock can hold: an absurd wait, which the policy's ceiling
        // refuses, rather than no hint at all.
        let far = "9".repeat(400);
        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset", far.as_str()),
        ];
        assert_eq!(retry_after(&headers, now()), Some(Duration::MAX));
        let headers = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset", "18446744073709551615"),
        ];
        assert_eq!(retry_after(&headers, now()), Some(Duration::MAX));
        for garbage in ["-5", "NaN", "inf", "1e30", "--1", ""] {
            let headers = [
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset", garbage),
            ];
            assert_eq!(retry_after(&headers, now()), None, "{garbage:?}");
        }
    }

    #[test]
    fn go_style_durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("1s", secs(1)),
            ("6m0s", secs(360)),
            ("1h2m3.5s", Some(Duration::from_millis(3_723_500))),
            ("20ms", Some(Duration::from_millis(20))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("", None),
            ("s", None),
            ("5x", None),
            ("-1s", None),
            ("inf", None),
            ("NaN", None),
            ("1e5", None),
            ("1000000h", secs(3_600_000_000)),
            (&format!("{}h", "9".repeat(400)), Some(Duration::MAX)),
        ];
        for (text, expected) in cases {
            assert_eq!(go_duration(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn messages_name_limits() {
        assert_eq!(
            limit_named_in("Token rate limit exceeded"),
            Some(RateLimit::TokensPerMinute)
        );
        assert_eq!(
            limit_named_in("exceeded your TPM"),
            Some(RateLimit::TokensPerMinute)
        );
        assert_eq!(
            limit_named_in("too many requests"),
            Some(RateLimit::RequestsPerMinute)
        );
        assert_eq!(limit_named_in("slow down"), None);
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let headers = vec![("RETRY-AFTER".to_owned(), "9".to_owned())];
        assert_eq!(retry_after(&headers, now()), secs(9));
        assert_eq!(retry_after(&NO_HEADERS, now()), None);
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_header_maps_feed_the_parsers() {
        let mut map = http::HeaderMap::new();
        map.insert("retry-after", http::HeaderValue::from_static("3"));
        map.insert(
            "x-ratelimit-remaining-tokens",
            http::HeaderValue::from_static("0"),
        );
        assert_eq!(retry_after(&map, now()), secs(3));
        assert_eq!(exhausted_limit(&map), Some(RateLimit::TokensPerMinute));
    }
}
