//! Fuzz target `config_toml`: `PolicyConfig::from_toml` on arbitrary text.
//!
//! Checks: nothing panics; a configuration that reads also validates, writes back to TOML
//! and reads again as the same configuration; and a policy built from it decides a short
//! fixed script of failures (429 with and without hints, 500, 503, 504, transport
//! failures) on two models without panicking.

#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use novita_policy::{
    Admission, Clock, Decision, Delivery, Outcome, Policy, PolicyConfig, SplitMix64, Transport,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = PolicyConfig::from_toml(text) else {
        return;
    };
    assert!(config.validate().is_ok(), "{config:?}");
    let written = toml::to_string(&config).expect("an accepted configuration writes as TOML");
    let again = PolicyConfig::from_toml(&written)
        .unwrap_or_else(|error| panic!("{written}\ndoes not read back: {error:?}"));
    assert_eq!(again, config, "{written}");
    script(config);
});

fn script(config: PolicyConfig) {
    let policy = Policy::new(config);
    let mut state = policy.client_state();
    let mut rng = SplitMix64::new(7);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200);
    let mut now = Duration::from_secs(1);
    let hint = [("retry-after", "3")];
    let none: [(&str, &str); 0] = [];
    let throttled = br#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"tpm"}"#;
    let maintenance = br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE"}"#;
    let outcomes = [
        Outcome::Response {
            status: 429,
            headers: &hint,
            body: throttled,
        },
        Outcome::Response {
            status: 429,
            headers: &none,
            body: b"",
        },
        Outcome::Response {
            status: 503,
            headers: &none,
            body: b"",
        },
        Outcome::Transport(Transport::TimeoutBeforeHeaders),
        Outcome::Response {
            status: 504,
            headers: &none,
            body: b"",
        },
        Outcome::Response {
            status: 500,
            headers: &none,
            body: maintenance,
        },
        Outcome::Transport(Transport::Reset),
        Outcome::Response {
            status: 200,
            headers: &none,
            body: b"",
        },
    ];
    for delivery in [Delivery::Buffered, Delivery::Streamed] {
        let mut call = policy.start_call(now, delivery, 2);
        let mut outcomes = outcomes.iter().cycle().take(24);
        for _ in 0..48 {
            let key = ["m0", "m1"][call.model()];
            match policy.admit(&mut state, &mut call, key, now) {
                Admission::Send => {}
                Admission::Wait(wait) => {
                    now = now.saturating_add(wait);
                    continue;
                }
                Admission::FallBack { model } => {
                    assert!(model < 2, "fell back to model {model} of 2");
                    continue;
                }
                Admission::Reject(_) => break,
            }
            let Some(outcome) = outcomes.next() else {
                break;
            };
            let clock = Clock {
                now,
                wall: wall.checked_add(now).unwrap_or(wall),
            };
            let decision = policy.decide(&mut state, &mut call, key, outcome, clock, rng.draw());
            match decision {
                Decision::Done | Decision::GiveUp(_) => break,
                Decision::Retry { delay, .. } | Decision::Escalate { delay, .. } => {
                    now = now.saturating_add(delay);
                }
            }
            assert!(call.model() < 2);
        }
    }
}
