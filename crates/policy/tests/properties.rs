//! Invariants that must hold for any sequence of outcomes, any jitter and any seed.

use std::time::{Duration, SystemTime};

use novita_policy::{
    Admission, Clock, Decision, Delivery, Jitter, Outcome, Policy, PolicyConfig, SplitMix64,
    Transport,
};
use proptest::prelude::*;

/// One scripted answer: a status with optional hint headers, or a transport failure.
#[derive(Clone, Debug)]
enum Answer {
    Status {
        status: u16,
        retry_after: Option<String>,
        retry_after_ms: Option<String>,
        reason: Option<&'static str>,
    },
    Transport(Transport),
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        Just(200_u16),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(418),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        Just(504),
        400_u16..600,
        600_u16..1000,
    ];
    let retry_after = proptest::option::of(prop_oneof![
        (0_u64..200).prop_map(|secs| secs.to_string()),
        Just("-5".to_owned()),
        Just(String::new()),
        Just("garbage".to_owned()),
        Just("99999999999999999999999".to_owned()),
        (0_u64..200).prop_map(|secs| httpdate::fmt_http_date(wall() + Duration::from_secs(secs))),
    ]);
    let retry_after_ms = proptest::option::of((0_u64..120_000).prop_map(|ms| ms.to_string()));
    let reason = proptest::option::of(prop_oneof![
        Just("RATE_LIMIT_EXCEEDED"),
        Just("TOKEN_LIMIT_EXCEEDED"),
        Just("MODEL_NOT_AVAILABLE"),
        Just("NOT_ENOUGH_BALANCE"),
        Just("whatever"),
    ]);
    let transport = prop_oneof![
        Just(Transport::Connect),
        Just(Transport::Reset),
        Just(Transport::TimeoutBeforeHeaders),
        Just(Transport::TimeoutAfterHeaders),
        Just(Transport::Tls),
        Just(Transport::BodyRead),
    ];
    prop_oneof![
        4 => (status, retry_after, retry_after_ms, reason).prop_map(|(status, retry_after, retry_after_ms, reason)| {
            Answer::Status { status, retry_after, retry_after_ms, reason }
        }),
        1 => transport.prop_map(Answer::Transport),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200)
}

/// What one run observed, decision by decision.
#[derive(Debug, PartialEq)]
struct Step {
    status: Option<u16>,
    hint: Option<Duration>,
    decision: Decision,
    elapsed_after: Duration,
    tokens: u32,
}

/// Plays `answers` (cycled) through one call on `models` models until the policy stops.
fn run(
    config: &PolicyConfig,
    answers: &[Answer],
    seed: u64,
    models: usize,
    delivery: Delivery,
) -> Vec<Step> {
    let policy = Policy::new(config.clone());
    let mut state = policy.client_state();
    let mut rng = SplitMix64::new(seed);
    let start = Duration::from_secs(1000);
    let mut now = start;
    let mut call = policy
        .start_call(now, delivery, models)
        .with_estimated_tokens(estimate(answers.len()));
    let mut steps = Vec::new();
    for answer in answers.iter().cycle().take(64) {
        let key = ["m0", "m1", "m2"][call.model()];
        match policy.admit(&mut state, &mut call, key, now) {
            Admission::Send => {}
            Admission::Wait(wait) => {
                now = now.saturating_add(wait);
                continue;
            }
            Admission::FallBack { .. } => continue,
            Admission::Reject(_) => break,
        }
        let clock = Clock {
            now,
            wall: wall()
                .checked_add(now.saturating_sub(start))
                .unwrap_or_else(wall),
        };
        let (decision, status, hint) = match answer {
            Answer::Status {
                status,
                retry_after,
                retry_after_ms,
                reason,
            } => {
                let mut headers: Vec<(&str, &str)> = Vec::new();
                if let Some(value) = retry_after {
                    headers.push(("retry-after", value));
                }
                if let Some(value) = retry_after_ms {
                    headers.push(("retry-after-ms", value));
                }
                let body = reason
                    .map(|reason| format!(r#"{{"code":{status},"reason":"{reason}"}}"#))
                    .unwrap_or_default();
                let hint = novita_policy::hints::retry_after(&headers, clock.wall);
                let outcome = Outcome::Response {
                    status: *status,
                    headers: &headers,
                    body: body.as_bytes(),
                };
                (
                    policy.decide(&mut state, &mut call, key, &outcome, clock, rng.draw()),
                    Some(*status),
                    hint,
                )
            }
            Answer::Transport(transport) => {
                let outcome = Outcome::Transport(*transport);
                (
                    policy.decide(&mut state, &mut call, key, &outcome, clock, rng.draw()),
                    None,
                    None,
                )
            }
        };
        if let Some(delay) = decision.delay() {
            now = now.saturating_add(delay);
        }
        let stop = matches!(decision, Decision::Done | Decision::GiveUp(_));
        steps.push(Step {
            status,
            hint,
            decision,
            elapsed_after: now.saturating_sub(start),
            tokens: state.budget().tokens(),
        });
        if stop {
            break;
        }
    }
    steps
}

/// Durations from nothing to the largest a TOML file can name.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_millis(1)),
        (0_u64..100_000).prop_map(Duration::from_millis),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
    ]
}

/// Factors from tiny to absurd, finite or not.
fn any_factor() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1e-300),
        Just(0.5),
        Just(1.0),
        Just(2.0),
        Just(1e300),
        Just(f64::INFINITY),
        Just(f64::NAN),
        0.0_f64..10.0,
    ]
}

fn any_count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0_u32), Just(1), 1_u32..20, Just(u32::MAX)]
}

/// Any configuration at all; the tests keep those that pass validation.
fn any_config() -> impl Strategy<Value = PolicyConfig> {
    (
        (
            any_count(),
            proptest::option::of(any_duration()),
            any_duration(),
            jitter(),
        ),
        (
            any_duration(),
            any_duration(),
            any_duration(),
            any_duration(),
            any_factor(),
        ),
        (
            any_count(),
            any_count(),
            any_count(),
            any_count(),
            any_count(),
        ),
        (
            any_count(),
            any_duration(),
            any_duration(),
            any_count(),
            any_duration(),
        ),
        (
            any_factor(),
            any_factor(),
            any_factor(),
            any_factor(),
            any_duration(),
        ),
        proptest::collection::btree_map(
            prop_oneof![Just("m0"), Just("m1"), Just("m2")],
            (
                proptest::option::of(any_limit()),
                proptest::option::of(any_limit()),
                any_duration(),
            ),
            0..3,
        ),
    )
        .prop_map(|(top, backoff, budget, breaker, pacing, limits)| {
            let mut config = PolicyConfig::default();
            (
                config.max_attempts,
                config.deadline,
                config.hint_ceiling,
                config.backoff.jitter,
            ) = top;
            (
                config.backoff.base,
                config.backoff.throttled_base,
                config.backoff.timeout_base,
                config.backoff.cap,
                config.backoff.multiplier,
            ) = backoff;
            (
                config.budget.capacity,
                config.budget.throttled_cost,
                config.budget.transient_cost,
                config.budget.timeout_cost,
                config.budget.success_deposit,
            ) = budget;
            (
                config.breaker.failure_threshold,
                config.breaker.open_for,
                config.breaker.max_open_for,
                config.breaker.max_held,
                config.breaker.maintenance_for,
            ) = breaker;
            (
                config.pacing.decrease,
                config.pacing.cubic_scale,
                config.pacing.min_rate,
                config.pacing.release_rate,
                config.pacing.measure_window,
            ) = pacing;
            config.limits = limits
                .into_iter()
                .map(|(model, (rpm, tpm, burst))| {
                    let limits = novita_policy::ModelLimits::new(rpm, tpm).with_burst(burst);
                    (model.to_owned(), limits)
                })
                .collect();
            config
        })
}

/// A per-minute limit, from nothing to absurd.
fn any_limit() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0_u64),
        Just(1),
        1_u64..100_000,
        Just(novita_policy::limits::MAX_TPM),
        Just(u64::MAX)
    ]
}

/// A call's token estimate, from nothing to absurd.
fn estimate(index: usize) -> u64 {
    [0, 1, 1_000, 100_000, u64::MAX][index % 5]
}

/// `config` with every field validation rejects put back to its default, so the extreme
/// values validation accepts are all that is left.
fn repaired(mut config: PolicyConfig) -> PolicyConfig {
    let defaults = PolicyConfig::default();
    let day = Duration::from_secs(24 * 60 * 60);
    while let Err(novita_policy::ConfigError::OutOfRange { field, .. }) = config.validate() {
        match field {
            "max_attempts" => config.max_attempts = defaults.max_attempts,
            // Durations above a day become exactly a day: the largest valid value.
            "deadline" => config.deadline = config.deadline.map(|deadline| deadline.min(day)),
            "hint_ceiling" => config.hint_ceiling = config.hint_ceiling.min(day),
            "backoff.throttled_base" => config.backoff.throttled_base = day,
            "backoff.timeout_base" => config.backoff.timeout_base = day,
            "backoff.cap" => config.backoff.cap = day,
            "breaker.max_open_for" => config.breaker.max_open_for = day,
            "breaker.maintenance_for" => config.breaker.maintenance_for = day,
            "backoff.base" => config.backoff.base = config.backoff.cap.min(defaults.backoff.base),
            "backoff.multiplier" => config.backoff.multiplier = defaults.backoff.multiplier,
            "breaker.failure_threshold" => {
                config.breaker.failure_threshold = defaults.breaker.failure_threshold;
            }
            "breaker.open_for" => {
                config.breaker.open_for = config.breaker.max_open_for.min(day);
            }
            "pacing.decrease" => config.pacing.decrease = defaults.pacing.decrease,
            "pacing.cubic_scale" => config.pacing.cubic_scale = defaults.pacing.cubic_scale,
            "pacing.min_rate" => config.pacing.min_rate = defaults.pacing.min_rate,
            "pacing.release_rate" => {
                config.pacing.release_rate = config
                    .pacing
                    .min_rate
                    .max(defaults.pacing.release_rate)
                    .min(1e6)
            }
            "pacing.measure_window" => {
                config.pacing.measure_window = defaults.pacing.measure_window
            }
            "budget.throttled_cost" | "budget.transient_cost" | "budget.timeout_cost" => {
                config.budget = defaults.budget;
            }
            "limits.rpm" | "limits.tpm" | "limits.burst" => {
                // Keep the valid models' limits, drop the first broken one.
                let model = config
                    .limits
                    .iter()
                    .find(|(_, limits)| {
                        let mut alone = PolicyConfig::default();
                        alone.limits.insert(String::new(), **limits);
                        alone.validate().is_err()
                    })
                    .map(|(model, _)| model.clone())
                    .expect("a broken limit");
                config.limits.remove(&model);
            }
            other => panic!("no repair for `{other}`"),
        }
    }
    config
}

fn config(jitter: Jitter, deadline_secs: u64) -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config.backoff.jitter = jitter;
    config.deadline = Some(Duration::from_secs(deadline_secs));
    config
}

proptest! {
    // A fixed seed and no regression files: the policy's tests, like the policy, take no
    // randomness from the operating system and touch no files. Same cases every run.
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e6f_7669_7461),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn delays_stay_under_the_cap_unless_the_server_asked_for_more(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, jitter in jitter(), models in 1_usize..=3,
    ) {
        let config = config(jitter, 300);
        for step in run(&config, &answers, seed, models, Delivery::Buffered) {
            if let Some(delay) = step.decision.delay() {
                match step.hint {
                    Some(hint) => prop_assert!(
                        delay <= config.backoff.cap.max(hint) && delay <= config.backoff.cap.max(config.hint_ceiling),
                        "{step:?}"
                    ),
                    None => prop_assert!(delay <= config.backoff.cap, "{step:?}"),
                }
            }
        }
    }

    #[test]
    fn never_earlier_than_a_hint(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, jitter in jitter(),
    ) {
        for step in run(&config(jitter, 300), &answers, seed, 1, Delivery::Buffered) {
            if let (Some(hint), Some(delay), Some(status)) = (step.hint, step.decision.delay(), step.status) {
                // A fallback to another model is not a retry of the throttled one.
                let fallback = matches!(step.decision, Decision::Escalate { action: novita_policy::Action::FallBack { .. }, .. });
                if novita_policy::catalog::lookup(status).is_some_and(novita_policy::catalog::Entry::is_retryable) && !fallback {
                    prop_assert!(delay >= hint, "{step:?}");
                }
            }
        }
    }

    #[test]
    fn never_retries_a_never_class(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64,
    ) {
        for step in run(&config(Jitter::Full, 300), &answers, seed, 1, Delivery::Buffered) {
            if let Some(status) = step.status
                && (400..600).contains(&status)
                && novita_policy::catalog::lookup(status).is_some_and(|entry| !entry.is_retryable())
            {
                prop_assert!(matches!(step.decision, Decision::GiveUp(_)), "{step:?}");
            }
        }
    }

    #[test]
    fn never_past_the_deadline(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, jitter in jitter(), deadline in 1_u64..120, models in 1_usize..=3,
    ) {
        for step in run(&config(jitter, deadline), &answers, seed, models, Delivery::Buffered) {
            if step.decision.delay().is_some() {
                prop_assert!(step.elapsed_after <= Duration::from_secs(deadline), "{step:?}");
            }
        }
    }

    #[test]
    fn the_budget_stays_within_its_bounds_and_pays_for_every_retry(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, capacity in 0_u32..40,
    ) {
        let mut config = config(Jitter::Full, 300);
        config.budget.capacity = capacity;
        config.budget.throttled_cost = config.budget.throttled_cost.min(capacity);
        config.budget.transient_cost = config.budget.transient_cost.min(capacity);
        config.budget.timeout_cost = config.budget.timeout_cost.min(capacity);
        let cheapest = config
            .budget
            .throttled_cost
            .min(config.budget.transient_cost)
            .min(config.budget.timeout_cost);
        let steps = run(&config, &answers, seed, 2, Delivery::Buffered);
        let retries = steps.iter().filter(|step| step.decision.delay().is_some()).count();
        for step in &steps {
            prop_assert!(step.tokens <= capacity, "{step:?}");
        }
        if let Some(most) = capacity.checked_div(cheapest) {
            prop_assert!(retries as u32 <= most, "{retries} retries");
        }
    }

    #[test]
    fn same_seed_same_decisions(
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, jitter in jitter(), models in 1_usize..=3,
    ) {
        let config = config(jitter, 300);
        let first = run(&config, &answers, seed, models, Delivery::Buffered);
        let second = run(&config, &answers, seed, models, Delivery::Buffered);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn a_configuration_that_validates_never_panics(
        config in any_config(),
        answers in proptest::collection::vec(answer(), 1..12),
        seed: u64, models in 1_usize..=3,
    ) {
        let config = repaired(config);
        prop_assert!(config.validate().is_ok());
        let _ = run(&config, &answers, seed, models, Delivery::Buffered);
        let _ = run(&config, &answers, seed, models, Delivery::Streamed);
    }
}

// ---------------------------------------------------------------------------------------
// Extreme configurations read from TOML, extreme server hints, extreme times.
// ---------------------------------------------------------------------------------------

/// The longest wait any decision or admission may ask for: validation keeps every duration
/// setting (backoff cap, hint ceiling, ...) at or below 24 hours, and pacing intervals are
/// at most 1000 s. Anything longer would be a wait an adapter cannot schedule
/// (`Instant + Duration` panics near its end) and no caller wants.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Header values a gateway might send, from ordinary to hostile.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0_u64..120).prop_map(|n| n.to_string()),
        Just("0".to_owned()),
        Just("0.0001".to_owned()),
        Just("1.5".to_owned()),
        Just("-1".to_owned()),
        Just("-0".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("9".repeat(400)),
        Just(format!("{}.5", "9".repeat(320))),
        Just("1e400".to_owned()),
        Just("NaN".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just(String::new()),
        Just("1h2m3.5s".to_owned()),
        Just("99999999999999h".to_owned()),
        Just(format!("{}h", "9".repeat(400))),
        Just("1000000000".to_owned()),
        Just("1795651260".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
        Just("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
        (0_u64..400).prop_map(|secs| httpdate::fmt_http_date(wall() + Duration::from_secs(secs))),
        "\\PC{0,24}",
        "[0-9.\\-]{0,30}",
    ]
}

const HINT_HEADERS: [&str; 7] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset",
];

fn hint_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                3 => proptest::sample::select(HINT_HEADERS.as_slice()).prop_map(str::to_owned),
                1 => Just("x-ratelimit-remaining-tokens".to_owned()),
            ],
            prop_oneof![3 => header_value(), 1 => Just("0".to_owned())],
        ),
        0..5,
    )
}

/// How far the clock moves before an event: not at all, a little, a lot, or to the end of
/// time.
fn time_jump() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => Just(Duration::ZERO),
        8 => (0_u64..5_000).prop_map(Duration::from_millis),
        2 => (0_u64..100_000).prop_map(Duration::from_secs),
        1 => Just(Duration::from_secs(u64::MAX / 2)),
        1 => Just(Duration::MAX),
    ]
}

/// One event of a long run: the clock moves, then call slot `slot` acts; if its attempt
/// goes out, it ends with `outcome`.
#[derive(Clone, Debug)]
struct Event {
    jump: Duration,
    slot: usize,
    wall_skew: Option<i64>,
    outcome: Scripted,
}

#[derive(Clone, Debug)]
enum Scripted {
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        reason: Option<&'static str>,
    },
    Transport(Transport),
}

fn event() -> impl Strategy<Value = Event> {
    let status = prop_oneof![
        2 => Just(200_u16),
        4 => Just(429),
        1 => Just(500),
        2 => Just(503),
        2 => Just(504),
        1 => Just(400),
        1 => 100_u16..1000,
    ];
    let reason = proptest::option::of(prop_oneof![
        Just("RATE_LIMIT_EXCEEDED"),
        Just("TOKEN_LIMIT_EXCEEDED"),
        Just("MODEL_NOT_AVAILABLE"),
        Just("SERVICE_NOT_AVAILABLE"),
    ]);
    let transport = prop_oneof![
        Just(Transport::Connect),
        Just(Transport::Reset),
        Just(Transport::TimeoutBeforeHeaders),
        Just(Transport::TimeoutAfterHeaders),
        Just(Transport::Tls),
        Just(Transport::BodyRead),
        Just(Transport::Other),
    ];
    let outcome = prop_oneof![
        5 => (status, hint_headers(), reason)
            .prop_map(|(status, headers, reason)| Scripted::Status { status, headers, reason }),
        1 => transport.prop_map(Scripted::Transport),
    ];
    let wall_skew = proptest::option::of(prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        -4_000_000_000_i64..4_000_000_000,
    ]);
    (time_jump(), 0_usize..4, wall_skew, outcome).prop_map(|(jump, slot, wall_skew, outcome)| {
        Event {
            jump,
            slot,
            wall_skew,
            outcome,
        }
    })
}

/// Wall-clock time `skew` seconds away from the usual test wall clock, as far as
/// `SystemTime` reaches.
fn skewed_wall(skew: i64) -> SystemTime {
    let magnitude = Duration::from_secs(skew.unsigned_abs());
    let moved = if skew >= 0 {
        wall().checked_add(magnitude)
    } else {
        wall().checked_sub(magnitude)
    };
    moved.unwrap_or_else(wall)
}

/// Plays `events` through up to four concurrent calls sharing one client state, and
/// checks that no wait is longer than [`LONGEST_WAIT`]. Panics are what it looks for.
fn run_events(config: &PolicyConfig, events: &[Event], seed: u64) -> Result<(), TestCaseError> {
    let policy = Policy::new(config.clone());
    let mut state = policy.client_state();
    let mut rng = SplitMix64::new(seed);
    let mut now = Duration::ZERO;
    let mut calls: [Option<novita_policy::Call>; 4] = [None, None, None, None];
    for (index, event) in events.iter().enumerate() {
        now = now.saturating_add(event.jump);
        let slot = &mut calls[event.slot];
        let call = slot.get_or_insert_with(|| {
            let delivery = if index % 2 == 0 {
                Delivery::Buffered
            } else {
                Delivery::Streamed
            };
            policy
                .start_call(now, delivery, 1 + index % 3)
                .with_estimated_tokens(estimate(index))
        });
        let key = ["m0", "m1", "m2"][call.model().min(2)];
        match policy.admit(&mut state, call, key, now) {
            Admission::Send => {}
            Admission::Wait(wait) => {
                prop_assert!(wait <= LONGEST_WAIT, "admission wait {wait:?}");
                continue;
            }
            Admission::FallBack { .. } => continue,
            Admission::Reject(give_up) => {
                let _ = (give_up.to_string(), format!("{give_up:#}"));
                *slot = None;
                continue;
            }
        }
        let wall = event
            .wall_skew
            .map_or_else(|| wall().checked_add(now).unwrap_or_else(wall), skewed_wall);
        let clock = Clock { now, wall };
        let decision = match &event.outcome {
            Scripted::Status {
                status,
                headers,
                reason,
            } => {
                let body = reason
                    .map(|reason| {
                        format!(r#"{{"code":{status},"reason":"{reason}","message":"m"}}"#)
                    })
                    .unwrap_or_default();
                let outcome = Outcome::Response {
                    status: *status,
                    headers,
                    body: body.as_bytes(),
                };
                policy.decide(&mut state, call, key, &outcome, clock, rng.draw())
            }
            Scripted::Transport(transport) => {
                let outcome = Outcome::Transport(*transport);
                policy.decide(&mut state, call, key, &outcome, clock, rng.draw())
            }
        };
        match &decision {
            Decision::Retry { delay, cause } | Decision::Escalate { delay, cause, .. } => {
                prop_assert!(*delay <= LONGEST_WAIT, "{decision:?}");
                let _ = cause.to_string();
                if let Decision::Escalate { action, .. } = &decision {
                    let _ = action.to_string();
                }
            }
            Decision::GiveUp(give_up) => {
                let _ = (give_up.to_string(), format!("{give_up:#}"));
                *slot = None;
            }
            Decision::Done => *slot = None,
        }
        for key in ["m0", "m1", "m2"] {
            let _ = state.pacing_interval(key, now);
            let _ = state.breaker(key, now);
            if let Some((_, wait)) = state.limit_wait(key, u64::MAX, now) {
                prop_assert!(wait <= LONGEST_WAIT, "limit wait {wait:?}");
            }
        }
        if matches!(decision, Decision::Done) {
            state.correct_tokens(key, estimate(index), estimate(index + 2), now);
        }
    }
    Ok(())
}

/// Headers as raw bytes, as `http::HeaderMap` may carry them.
struct RawHeaders(Vec<(String, Vec<u8>)>);

impl novita_policy::Headers for RawHeaders {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e6f_7669_7462),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The same long runs under any configuration that validates, however it was built.
    #[test]
    fn long_runs_under_any_valid_configuration_never_panic(
        config in any_config(),
        events in proptest::collection::vec(event(), 1..160),
        seed: u64,
    ) {
        let config = repaired(config);
        prop_assert!(config.validate().is_ok());
        run_events(&config, &events, seed)?;
    }

    /// Hint parsing is total: any header values, any bytes, any wall-clock time.
    #[test]
    fn hint_parsing_never_panics(
        headers in proptest::collection::vec(
            (
                proptest::sample::select(HINT_HEADERS.as_slice()).prop_map(str::to_owned),
                prop_oneof![
                    header_value().prop_map(String::into_bytes),
                    proptest::collection::vec(any::<u8>(), 0..40),
                ],
            ),
            0..8,
        ),
        skew in prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>(), -4_000_000_000_i64..4_000_000_000],
        message in "\\PC{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let wall = skewed_wall(skew);
        let headers = RawHeaders(headers);
        let _ = novita_policy::hints::retry_after(&headers, wall);
        let _ = novita_policy::hints::exhausted_limit(&headers);
        for (_, value) in &headers.0 {
            if let Some(wait) = novita_policy::hints::retry_after_value(value, wall) {
                // Never negative, and a date in the past reads as "now".
                prop_assert!(wait <= Duration::MAX);
            }
        }
        let _ = novita_policy::hints::limit_named_in(&message);
        let _ = novita_policy::ErrorBody::parse(&body);
    }

    /// Backoff stays within its cap whatever its settings, validated or not.
    #[test]
    fn backoff_never_exceeds_its_cap(
        base in any_duration(), cap in any_duration(), multiplier in any_factor(),
        jitter in jitter(), retry: u32, previous in any_duration(), bits: u64,
    ) {
        let mut backoff = novita_policy::Backoff::default();
        backoff.base = base;
        backoff.throttled_base = base;
        backoff.timeout_base = base;
        backoff.cap = cap;
        backoff.multiplier = multiplier;
        backoff.jitter = jitter;
        let draw = novita_policy::Draw::from_bits(bits);
        for kind in [
            novita_policy::RetryKind::Throttled,
            novita_policy::RetryKind::Transient,
            novita_policy::RetryKind::Timeout,
        ] {
            let delay = backoff.delay_for(kind, retry, previous, draw);
            prop_assert!(delay <= cap, "{delay:?}");
            if base.is_zero() && jitter != Jitter::Decorrelated {
                prop_assert_eq!(delay, Duration::ZERO);
            }
        }
    }
}

/// Configurations read from TOML text: only with the `toml` feature.
#[cfg(feature = "toml")]
mod toml_text {
    use super::*;

    /// What a key holds, for picking values in range (mostly at its edges) and out of it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kind {
        /// Any `u32`.
        Count,
        /// A `u32` of at least 1.
        Positive,
        /// A budget's capacity: large more often than its costs.
        Capacity,
        Duration,
        Multiplier,
        /// Strictly between 0 and 1.
        Fraction,
        /// Between 0.001 and 1000.
        Scale,
        /// Between 0.001 and 1000000.
        Rate,
        /// Between 10 ms and 60 s.
        Window,
        Bool,
        Jitter,
        WhenOpen,
    }

    /// Every key `PolicyConfig` reads: section ("" for the top level), key, kind.
    const KEYS: &[(&str, &str, Kind)] = &[
        ("", "max_attempts", Kind::Positive),
        ("", "deadline", Kind::Duration),
        ("", "hint_ceiling", Kind::Duration),
        ("", "switch_to_streaming_on_timeout", Kind::Bool),
        ("attempts", "throttled", Kind::Count),
        ("attempts", "transient", Kind::Count),
        ("attempts", "server_fault", Kind::Count),
        ("attempts", "transport", Kind::Count),
        ("backoff", "base", Kind::Duration),
        ("backoff", "throttled_base", Kind::Duration),
        ("backoff", "timeout_base", Kind::Duration),
        ("backoff", "cap", Kind::Duration),
        ("backoff", "multiplier", Kind::Multiplier),
        ("backoff", "jitter", Kind::Jitter),
        ("budget", "capacity", Kind::Capacity),
        ("budget", "throttled_cost", Kind::Count),
        ("budget", "transient_cost", Kind::Count),
        ("budget", "retry_cost", Kind::Count),
        ("budget", "timeout_cost", Kind::Count),
        ("budget", "success_deposit", Kind::Count),
        ("breaker", "failure_threshold", Kind::Positive),
        ("breaker", "open_for", Kind::Duration),
        ("breaker", "max_open_for", Kind::Duration),
        ("breaker", "when_open", Kind::WhenOpen),
        ("breaker", "max_held", Kind::Count),
        ("breaker", "maintenance_for", Kind::Duration),
        ("pacing", "decrease", Kind::Fraction),
        ("pacing", "cubic_scale", Kind::Scale),
        ("pacing", "min_rate", Kind::Rate),
        ("pacing", "release_rate", Kind::Rate),
        ("pacing", "measure_window", Kind::Window),
    ];

    fn strings(values: &[&'static str]) -> BoxedStrategy<String> {
        proptest::sample::select(values.to_vec())
            .prop_map(str::to_owned)
            .boxed()
    }

    /// A TOML value literal within the range of `kind`, mostly at its edges. The largest
    /// duration weighs most: a `Duration` holds 18446744073709551615 s, and with it the first
    /// historical panic.
    fn in_range(kind: Kind) -> BoxedStrategy<String> {
        match kind {
            Kind::Count => prop_oneof![
                strings(&["0", "1", "4294967295"]),
                (1_u32..30).prop_map(|n| n.to_string())
            ]
            .boxed(),
            Kind::Positive => prop_oneof![
                strings(&["1", "4294967295"]),
                (1_u32..30).prop_map(|n| n.to_string())
            ]
            .boxed(),
            Kind::Capacity => prop_oneof![
                strings(&["0", "4294967295"]),
                (100_u32..10_000).prop_map(|n| n.to_string())
            ]
            .boxed(),
            Kind::Duration => prop_oneof![
                6 => strings(&["\"0s\"", "\"1ns\"", "\"24h\""]),
                1 => strings(&["\"18446744073709551615s\""]),
                3 => (0_u64..100_000).prop_map(|ms| format!("\"{ms}ms\"")),
            ]
            .boxed(),
            Kind::Multiplier => prop_oneof![
                strings(&["1.0", "2.0", "1e300", "1.7976931348623157e308"]),
                (1.0_f64..10.0).prop_map(|x| format!("{x:?}")),
            ]
            .boxed(),
            Kind::Fraction => prop_oneof![
                strings(&["1e-300", "0.7", "0.9999999999999999"]),
                (0.01_f64..0.99).prop_map(|x| format!("{x:?}")),
            ]
            .boxed(),
            Kind::Scale => prop_oneof![
                strings(&["0.001", "1000.0"]),
                (0.001_f64..1000.0).prop_map(|x| format!("{x:?}")),
            ]
            .boxed(),
            Kind::Rate => prop_oneof![
                strings(&["0.001", "1000000.0"]),
                (0.001_f64..100.0).prop_map(|x| format!("{x:?}")),
            ]
            .boxed(),
            Kind::Window => prop_oneof![
                strings(&["\"10ms\"", "\"60s\""]),
                (10_u64..60_000).prop_map(|ms| format!("\"{ms}ms\"")),
            ]
            .boxed(),
            Kind::Bool => strings(&["true", "false"]),
            // No jitter and decorrelated jitter are the edges: the first reaches the cap
            // exactly, the second starts from the base.
            Kind::Jitter => strings(&[
                "\"none\"",
                "\"none\"",
                "\"full\"",
                "\"equal\"",
                "\"decorrelated\"",
                "\"decorrelated\"",
            ]),
            Kind::WhenOpen => strings(&["\"hold\"", "\"fail_fast\""]),
        }
    }

    /// A TOML value literal just outside the range of `kind`, or of the wrong type.
    fn out_of_range(kind: Kind) -> BoxedStrategy<String> {
        let beyond = match kind {
            Kind::Count | Kind::Capacity => strings(&["4294967296", "-1", "9223372036854775807"]),
            Kind::Positive => strings(&["0", "4294967296", "-1"]),
            Kind::Duration => strings(&[
                "\"24h 1ns\"",
                "\"25h\"",
                "\"1000y\"",
                "\"18446744073709551616s\"",
                "\"soon\"",
            ]),
            Kind::Multiplier => strings(&["0.0", "0.5", "-1.0", "nan", "inf", "-inf"]),
            Kind::Fraction => strings(&["0.0", "1.0", "-0.5", "nan", "inf"]),
            Kind::Scale | Kind::Rate => strings(&["0.0", "1e-300", "1e300", "-1.0", "nan", "inf"]),
            Kind::Window => strings(&["\"0s\"", "\"9ms\"", "\"61s\"", "\"18446744073709551615s\""]),
            Kind::Bool => strings(&["\"yes\"", "1"]),
            Kind::Jitter => strings(&["\"wild\"", "\"None\""]),
            Kind::WhenOpen => strings(&["\"never\""]),
        };
        let wrong_type = strings(&["\"text\"", "1.5", "-3", "true", "[]", "{}"]);
        prop_oneof![3 => beyond, 1 => wrong_type].boxed()
    }

    /// How the sections of a generated file are written.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        /// `[backoff]` then `cap = "1s"`.
        Headers,
        /// `backoff.cap = "1s"` at the top level.
        Dotted,
        /// `backoff = { cap = "1s", base = "2s" }`.
        Inline,
    }

    /// A TOML file of some of the known keys with extreme values (now and then a value of the
    /// wrong type), and the line each key is on.
    #[derive(Clone, Debug)]
    struct TomlFile {
        text: String,
        /// (dotted key, 1-based line)
        lines: Vec<(String, usize)>,
    }

    fn toml_file() -> impl Strategy<Value = TomlFile> {
        let values: Vec<BoxedStrategy<Option<String>>> = KEYS
            .iter()
            .map(|&(_, _, kind)| {
                proptest::option::weighted(
                    0.25,
                    prop_oneof![20 => in_range(kind), 1 => out_of_range(kind)],
                )
                .boxed()
            })
            .collect();
        // Now and then every duration gets the same value, as in "set them all to the
        // maximum" (the first historical panic came from `base = cap = "18446744073709551615s"`).
        let same_duration = proptest::option::weighted(
            0.3,
            prop_oneof![
                1 => strings(&["\"18446744073709551615s\""]),
                2 => in_range(Kind::Duration),
                1 => out_of_range(Kind::Duration),
            ],
        );
        let layout = prop_oneof![
            Just(Layout::Headers),
            Just(Layout::Dotted),
            Just(Layout::Inline)
        ];
        (values, same_duration, layout, any::<bool>()).prop_map(
            |(mut values, same, layout, crlf)| {
                // `retry_cost` is another name for `transient_cost`: both is a duplicate key.
                let transient = KEYS.iter().position(|&(_, key, _)| key == "transient_cost");
                let alias = KEYS.iter().position(|&(_, key, _)| key == "retry_cost");
                if let (Some(transient), Some(alias)) = (transient, alias)
                    && values[transient].is_some()
                {
                    values[alias] = None;
                }
                if let Some(same) = same {
                    for (&(_, _, kind), value) in KEYS.iter().zip(&mut values) {
                        if kind == Kind::Duration {
                            *value = Some(same.clone());
                        }
                    }
                }
                let mut text = String::new();
                let mut lines = Vec::new();
                let mut line = 1;
                let newline = if crlf { "\r\n" } else { "\n" };
                // A leading comment, so that no key is on line 1 by accident.
                text.push_str("# generated");
                text.push_str(newline);
                line += 1;
                let mut section = "";
                let mut inline: Vec<String> = Vec::new();
                let flush_inline = |text: &mut String,
                                    line: &mut usize,
                                    section: &str,
                                    inline: &mut Vec<String>| {
                    if !inline.is_empty() {
                        text.push_str(&format!("{section} = {{ {} }}{newline}", inline.join(", ")));
                        *line += 1;
                        inline.clear();
                    }
                };
                for (&(key_section, key, _), value) in KEYS.iter().zip(&values) {
                    let Some(value) = value else { continue };
                    let dotted = if key_section.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{key_section}.{key}")
                    };
                    match layout {
                        Layout::Headers => {
                            if key_section != section {
                                text.push_str(&format!("[{key_section}]{newline}"));
                                line += 1;
                                section = key_section;
                            }
                            text.push_str(&format!("{key} = {value}{newline}"));
                            lines.push((dotted, line));
                            line += 1;
                        }
                        Layout::Dotted => {
                            text.push_str(&format!("{dotted} = {value}{newline}"));
                            lines.push((dotted, line));
                            line += 1;
                        }
                        Layout::Inline if key_section.is_empty() => {
                            text.push_str(&format!("{key} = {value}{newline}"));
                            lines.push((dotted, line));
                            line += 1;
                        }
                        Layout::Inline => {
                            if key_section != section {
                                flush_inline(&mut text, &mut line, section, &mut inline);
                                section = key_section;
                            }
                            inline.push(format!("{key} = {value}"));
                            lines.push((dotted, line));
                        }
                    }
                }
                flush_inline(&mut text, &mut line, section, &mut inline);
                TomlFile { text, lines }
            },
        )
    }

    /// Every message of an error's chain, joined.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e6f_7669_7463),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// A TOML file either fails to load with a message that names one of its keys (and,
        /// for a value out of range, the line it is on), or gives a configuration under which
        /// long runs of throttles with any hints, faults, timeouts and successes, at any
        /// times, never panic and never ask for an absurd wait.
        #[test]
        fn any_toml_either_names_a_key_or_never_panics(
            file in toml_file(),
            events in proptest::collection::vec(event(), 1..160),
            seed: u64,
        ) {
            match PolicyConfig::from_toml(&file.text) {
                Err(error) => {
                    let message = chain(&error);
                    match &error {
                        novita_policy::ConfigError::OutOfRange { field, line, .. } => {
                            let found = file.lines.iter().find(|(key, _)| key == field);
                            prop_assert!(found.is_some(), "{message}\n{}", file.text);
                            let expected = found.map(|(_, line)| *line);
                            prop_assert_eq!(*line, expected, "{}\n{}", message, file.text);
                            let named = format!("policy setting `{field}` (line {}): ", line.unwrap_or(0));
                            prop_assert!(message.starts_with(&named), "{message}");
                        }
                        _ => {
                            let named = file.lines.iter().any(|(key, _)| {
                                message.contains(key.rsplit('.').next().unwrap_or(key))
                            });
                            prop_assert!(named, "{message}\n{}", file.text);
                        }
                    }
                }
                Ok(config) => {
                    prop_assert!(config.validate().is_ok());
                    run_events(&config, &events, seed)?;
                }
            }
        }

    }
}
