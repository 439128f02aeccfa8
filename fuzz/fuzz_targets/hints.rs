//! Fuzz target `hints`: the parsers of the server's waiting hints (`Retry-After`,
//! `retry-after-ms`, `x-ratelimit-remaining-*`, `x-ratelimit-reset-*`,
//! `x-ratelimit-reset`) on arbitrary header values, raw bytes included.
//!
//! The input is text, one header per line (`name: value`, the value kept byte for byte
//! after the colon); a first line `@<digits>` sets the wall clock in Unix seconds
//! (default 2026-11-26T00:00:00Z). Checks: nothing panics, and `retry_after` agrees with
//! `retry_after_value` on the `Retry-After` header it reads.

#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use novita_policy::hints::{self, Headers};

/// Headers as an HTTP client may hold them: names as text, values as any bytes.
struct RawHeaders(Vec<(String, Vec<u8>)>);

impl Headers for RawHeaders {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

fn wall(line: &[u8]) -> Option<SystemTime> {
    let digits = std::str::from_utf8(line.strip_prefix(b"@")?).ok()?;
    let secs: u64 = digits.trim().parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n').peekable();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200);
    if let Some(first) = lines.peek()
        && first.starts_with(b"@")
    {
        now = wall(first).unwrap_or(now);
        lines.next();
    }
    let raw = RawHeaders(
        lines
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
                Some((name, line[colon + 1..].to_vec()))
            })
            .collect(),
    );

    let hint = hints::retry_after(&raw, now);
    let _ = hints::exhausted_limit(&raw);
    for (_, value) in &raw.0 {
        let _ = hints::retry_after_value(value, now);
        let _ = hints::limit_named_in(&String::from_utf8_lossy(value));
    }
    // `Retry-After` is read only when `retry-after-ms` gives nothing, and then it wins
    // over the rate-limit headers.
    if let Some(value) = raw.get("retry-after")
        && let Some(wait) = hints::retry_after_value(value, now)
    {
        assert!(
            hint.is_some(),
            "Retry-After {value:?} read as {wait:?} but no hint"
        );
        if raw.get("retry-after-ms").is_none() {
            assert_eq!(hint, Some(wait), "Retry-After {value:?}");
        }
    }

    // The same headers as text pairs, through the library's own `Headers` for slices.
    let text: Vec<(String, String)> = raw
        .0
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
        .collect();
    let _ = hints::retry_after(&text, now);
    let _ = hints::exhausted_limit(&text);
});
