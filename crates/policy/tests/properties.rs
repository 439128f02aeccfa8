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
    let mut call = policy.start_call(now, delivery, models);
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
    )
        .prop_map(|(top, backoff, budget, breaker, pacing)| {
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
            config
        })
}

/// `config` with every field validation rejects put back to its default, so the extreme
/// values validation accepts are all that is left.
fn repaired(mut config: PolicyConfig) -> PolicyConfig {
    let defaults = PolicyConfig::default();
    while let Err(novita_policy::ConfigError::OutOfRange { field, .. }) = config.validate() {
        match field {
            "max_attempts" => config.max_attempts = defaults.max_attempts,
            "backoff.base" => config.backoff.base = config.backoff.cap.min(defaults.backoff.base),
            "backoff.multiplier" => config.backoff.multiplier = defaults.backoff.multiplier,
            "breaker.failure_threshold" => {
                config.breaker.failure_threshold = defaults.breaker.failure_threshold;
            }
            "breaker.open_for" => config.breaker.open_for = config.breaker.max_open_for,
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
            _ => config.budget = defaults.budget,
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
