//! The properties the fuzz targets `hints`, `error_body` and `config_toml` check
//! (`cargo xtask fuzz`, docs/RELIABILITY.md), as proptests that run with every
//! `cargo test`: header values, error bodies and TOML text of any shape never panic, and
//! what the parsers give back keeps its promises.

use std::time::{Duration, SystemTime};

use novita_policy::hints::{self, Headers};
use novita_policy::{ErrorBody, MAX_MESSAGE_CHARS, Shape};
use proptest::prelude::*;

/// Headers as an HTTP client may hold them: names as text, values as any bytes.
#[derive(Debug)]
struct RawHeaders(Vec<(String, Vec<u8>)>);

impl Headers for RawHeaders {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

const HINT_HEADERS: [&str; 8] = [
    "retry-after",
    "Retry-After",
    "RETRY-AFTER-MS",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "X-RateLimit-Reset-Tokens",
    "x-ratelimit-reset",
];

/// 2026-11-26T00:00:00Z.
fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200)
}

/// Values that are almost hints, hints, and anything at all.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0_u64..100_000).prop_map(|n| n.to_string().into_bytes()),
        "-?[0-9]{0,25}(\\.[0-9]{0,12})?".prop_map(String::into_bytes),
        "([0-9]{1,4}(\\.[0-9]{1,3})?(h|m|s|ms|us|µs|ns|x)){1,4}".prop_map(String::into_bytes),
        (-100_000_i64..100_000).prop_map(|offset| {
            let at = if offset < 0 {
                wall() - Duration::from_secs(offset.unsigned_abs())
            } else {
                wall() + Duration::from_secs(offset.unsigned_abs())
            };
            httpdate::fmt_http_date(at).into_bytes()
        }),
        "[ \t]{0,2}[A-Za-z]{3}, [0-9]{1,2} [A-Za-z]{3} [0-9]{2,5} [0-9:]{5,9} GMT[ \t]{0,2}"
            .prop_map(String::into_bytes),
        "\\PC{0,30}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn raw_headers() -> impl Strategy<Value = RawHeaders> {
    proptest::collection::vec(
        (
            prop_oneof![
                4 => proptest::sample::select(HINT_HEADERS.as_slice()).prop_map(str::to_owned),
                1 => "[a-zA-Z-]{0,12}",
            ],
            header_value(),
        ),
        0..8,
    )
    .prop_map(RawHeaders)
}

/// Wall clocks from the epoch to far in the future, and the usual one.
fn any_wall() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        3 => Just(wall()),
        1 => (0_u64..=u64::from(u32::MAX) * 8).prop_map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
    ]
}

/// Error bodies: Novita's flat JSON, a gateway's wrapper, text, HTML, and noise, with
/// strings that hold control characters, long runs and odd whitespace.
fn error_body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        "\\PC{0,40}",
        "[ \t\r\n\u{0}-\u{1f}\u{7f}\u{85}\u{a0}\u{2028}a-z]{0,40}",
        (1_usize..1200).prop_map(|n| "wörd ".repeat(n)),
    ];
    let json = (
        proptest::option::of(400_u16..600),
        proptest::option::of(text.clone()),
        proptest::option::of(text.clone()),
        proptest::option::of(text.clone()),
        any::<bool>(),
    )
        .prop_map(|(code, reason, message, id, wrapped)| {
            let mut object = serde_json::Map::new();
            if let Some(code) = code {
                object.insert("code".into(), code.into());
            }
            if let Some(reason) = reason {
                object.insert("reason".into(), reason.into());
            }
            if let Some(message) = message {
                object.insert("message".into(), message.into());
            }
            if let Some(id) = id {
                object.insert("metadata".into(), serde_json::json!({ "request_id": id }));
            }
            let value = if wrapped {
                serde_json::json!({ "error": object })
            } else {
                serde_json::Value::Object(object)
            };
            value.to_string().into_bytes()
        });
    prop_oneof![
        json,
        text.clone().prop_map(String::into_bytes),
        text.prop_map(|title| format!(
            "<!DOCTYPE html><html><head><title>{title}</title></head></html>"
        )
        .into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6675_7a7a),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `retry_after` never panics and agrees with `retry_after_value` on the
    /// `Retry-After` header: a readable one is always a hint, and it is the hint unless a
    /// `retry-after-ms` header came too.
    #[test]
    fn hints_agree_with_the_retry_after_header(headers in raw_headers(), now in any_wall()) {
        let hint = hints::retry_after(&headers, now);
        let _ = hints::exhausted_limit(&headers);
        for (_, value) in &headers.0 {
            let _ = hints::retry_after_value(value, now);
            let _ = hints::limit_named_in(&String::from_utf8_lossy(value));
        }
        if let Some(value) = headers.get("retry-after")
            && let Some(wait) = hints::retry_after_value(value, now)
        {
            prop_assert!(hint.is_some(), "{headers:?}");
            if headers.get("retry-after-ms").is_none() {
                prop_assert_eq!(hint, Some(wait), "{:?}", headers);
            }
        }
    }

    /// An error body of any shape parses without panicking into a short, printable
    /// message, and only a blank body is `Empty`.
    #[test]
    fn error_bodies_give_short_printable_messages(body in error_body()) {
        let parsed = ErrorBody::parse(&body);
        prop_assert_eq!(parsed.shape == Shape::Empty, body.trim_ascii().is_empty());
        if let Some(message) = &parsed.message {
            prop_assert!(!message.is_empty());
            prop_assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{message:?}");
            prop_assert!(!message.chars().any(char::is_control), "{message:?}");
        }
        for field in [&parsed.reason, &parsed.request_id].into_iter().flatten() {
            prop_assert!(!field.trim().is_empty(), "{parsed:?}");
        }
    }
}

#[cfg(feature = "toml")]
mod toml_text {
    use novita_policy::PolicyConfig;
    use proptest::prelude::*;

    /// Lines a policy file is made of: every key with values of the right type and the
    /// wrong one, section headers, comments, and noise.
    fn line() -> impl Strategy<Value = String> {
        const KEYS: &[&str] = &[
            "max_attempts",
            "deadline",
            "hint_ceiling",
            "switch_to_streaming_on_timeout",
            "throttled",
            "transient",
            "server_fault",
            "transport",
            "base",
            "throttled_base",
            "timeout_base",
            "cap",
            "multiplier",
            "jitter",
            "capacity",
            "throttled_cost",
            "transient_cost",
            "timeout_cost",
            "success_deposit",
            "failure_threshold",
            "open_for",
            "max_open_for",
            "when_open",
            "max_held",
            "maintenance_for",
            "decrease",
            "cubic_scale",
            "min_rate",
            "release_rate",
            "measure_window",
        ];
        const SECTIONS: &[&str] = &[
            "[attempts]",
            "[backoff]",
            "[budget]",
            "[breaker]",
            "[pacing]",
            "[nope]",
        ];
        let value = prop_oneof![
            (0_u64..20_000).prop_map(|n| n.to_string()),
            Just("4294967295".to_owned()),
            Just("-1".to_owned()),
            "[0-9]{1,3}\\.[0-9]{1,3}".prop_map(|f| f),
            Just("1e300".to_owned()),
            Just("nan".to_owned()),
            Just("inf".to_owned()),
            "\"[0-9]{1,6}(ns|us|ms|s|m|h|d|days|weeks|months|years)\"",
            Just("\"584542046090years\"".to_owned()),
            Just("\"full\"".to_owned()),
            Just("\"decorrelated\"".to_owned()),
            Just("\"fail_fast\"".to_owned()),
            Just("true".to_owned()),
            "\\PC{0,8}",
        ];
        prop_oneof![
            4 => (proptest::sample::select(KEYS), value).prop_map(|(key, value)| format!("{key} = {value}")),
            1 => proptest::sample::select(SECTIONS).prop_map(str::to_owned),
            1 => "#\\PC{0,10}",
            1 => "\\PC{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x746f_6d6c),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any text: `from_toml` never panics, and what it accepts validates, writes back
        /// as TOML and reads again as the same configuration.
        #[test]
        fn accepted_configurations_validate_and_round_trip(
            lines in proptest::collection::vec(line(), 0..10),
        ) {
            let text = lines.join("\n");
            if let Ok(config) = PolicyConfig::from_toml(&text) {
                prop_assert!(config.validate().is_ok(), "{text}");
                let written = toml::to_string(&config).expect("a configuration writes as TOML");
                let again = PolicyConfig::from_toml(&written);
                prop_assert!(again.is_ok(), "{written}\n{again:?}");
                prop_assert_eq!(again.ok(), Some(config), "{}", written);
            }
        }

        /// Arbitrary characters, not only policy-shaped lines.
        #[test]
        fn any_text_never_panics(text in "\\PC{0,200}") {
            let _ = PolicyConfig::from_toml(&text);
        }
    }
}
