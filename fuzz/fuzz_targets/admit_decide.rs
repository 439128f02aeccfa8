//! Fuzz target `admit_decide`: `Policy::admit` and `Policy::decide` driven through an
//! arbitrary sequence of calls, outcomes and times under an arbitrary valid configuration,
//! on virtual time, the way `novita_core::CallDriver` drives them.
//!
//! The input is read with `arbitrary`: a mirror of `PolicyConfig` (kept only when
//! `validate()` accepts it), then steps: start a call (buffered or streamed, one to four
//! models), admit one, answer one (any status with any hint headers and body, or a
//! transport failure), drop one (the caller gave up on it), let time pass, or move the wall
//! clock. Up to 16 calls share one `ClientState`, as a client's calls do.
//!
//! Checks: nothing panics (arithmetic overflow included: fuzz builds keep overflow
//! checks), fallbacks stay within the call's model list, and the retry budget never holds
//! more than its capacity. The state's read accessors (breaker, pacing interval, held
//! calls) are read after every step, as the metrics do.

#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use novita_policy::{
    Admission, Call, Clock, Decision, Delivery, Draw, Jitter, Outcome, Policy, PolicyConfig,
    Transport, WhenOpen,
};

/// A duration from nothing to the largest `Duration`, mostly of sensible sizes.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dur {
    Zero,
    Millis(u16),
    Secs(u16),
    Any(u64, u32),
    Max,
}

impl Dur {
    fn get(self) -> Duration {
        match self {
            Dur::Zero => Duration::ZERO,
            Dur::Millis(ms) => Duration::from_millis(u64::from(ms)),
            Dur::Secs(secs) => Duration::from_secs(u64::from(secs)),
            Dur::Any(secs, nanos) => Duration::new(secs, nanos % 1_000_000_000),
            Dur::Max => Duration::MAX,
        }
    }
}

/// A count, often small, sometimes zero or the largest.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Count {
    Small(u8),
    Any(u32),
    Max,
}

impl Count {
    fn get(self) -> u32 {
        match self {
            Count::Small(n) => u32::from(n),
            Count::Any(n) => n,
            Count::Max => u32::MAX,
        }
    }
}

/// A factor: a fraction of one, a ratio (infinite when divided by zero), or any `f64`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Factor {
    Fraction(u16),
    Ratio(u16, u16),
    Any(f64),
}

impl Factor {
    fn get(self) -> f64 {
        match self {
            Factor::Fraction(n) => f64::from(n) / f64::from(u16::MAX),
            Factor::Ratio(a, b) => f64::from(a) / f64::from(b),
            Factor::Any(x) => x,
        }
    }
}

/// Every field of `PolicyConfig`, which is `#[non_exhaustive]` and so is built from its
/// default and assigned field by field.
#[derive(Arbitrary, Debug)]
struct ConfigMirror {
    max_attempts: Count,
    deadline: Option<Dur>,
    hint_ceiling: Dur,
    switch_to_streaming_on_timeout: bool,
    attempts: [Count; 4],
    base: Dur,
    throttled_base: Dur,
    timeout_base: Dur,
    cap: Dur,
    multiplier: Factor,
    jitter: u8,
    budget: [Count; 5],
    failure_threshold: Count,
    open_for: Dur,
    max_open_for: Dur,
    fail_fast: bool,
    max_held: Count,
    maintenance_for: Dur,
    decrease: Factor,
    cubic_scale: Factor,
    min_rate: Factor,
    release_rate: Factor,
    measure_window: Dur,
}

impl ConfigMirror {
    fn build(&self) -> PolicyConfig {
        let mut config = PolicyConfig::default();
        config.max_attempts = self.max_attempts.get();
        config.deadline = self.deadline.map(Dur::get);
        config.hint_ceiling = self.hint_ceiling.get();
        config.switch_to_streaming_on_timeout = self.switch_to_streaming_on_timeout;
        let [throttled, transient, server_fault, transport] = self.attempts.map(Count::get);
        config.attempts.throttled = throttled;
        config.attempts.transient = transient;
        config.attempts.server_fault = server_fault;
        config.attempts.transport = transport;
        config.backoff.base = self.base.get();
        config.backoff.throttled_base = self.throttled_base.get();
        config.backoff.timeout_base = self.timeout_base.get();
        config.backoff.cap = self.cap.get();
        config.backoff.multiplier = self.multiplier.get();
        config.backoff.jitter = match self.jitter % 4 {
            0 => Jitter::None,
            1 => Jitter::Full,
            2 => Jitter::Equal,
            _ => Jitter::Decorrelated,
        };
        let [
            capacity,
            throttled_cost,
            transient_cost,
            timeout_cost,
            deposit,
        ] = self.budget.map(Count::get);
        config.budget.capacity = capacity;
        config.budget.throttled_cost = throttled_cost;
        config.budget.transient_cost = transient_cost;
        config.budget.timeout_cost = timeout_cost;
        config.budget.success_deposit = deposit;
        config.breaker.failure_threshold = self.failure_threshold.get();
        config.breaker.open_for = self.open_for.get();
        config.breaker.max_open_for = self.max_open_for.get();
        config.breaker.when_open = if self.fail_fast {
            WhenOpen::FailFast
        } else {
            WhenOpen::Hold
        };
        config.breaker.max_held = self.max_held.get();
        config.breaker.maintenance_for = self.maintenance_for.get();
        config.pacing.decrease = self.decrease.get();
        config.pacing.cubic_scale = self.cubic_scale.get();
        config.pacing.min_rate = self.min_rate.get();
        config.pacing.release_rate = self.release_rate.get();
        config.pacing.measure_window = self.measure_window.get();
        config
    }
}

const HEADER_NAMES: [&str; 7] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset",
];

const REASONS: [&str; 11] = [
    "INVALID_REQUEST_BODY",
    "FAILED_TO_AUTH",
    "INVALID_API_KEY",
    "NOT_ENOUGH_BALANCE",
    "ACCESS_DENY",
    "MODEL_NOT_FOUND",
    "RATE_LIMIT_EXCEEDED",
    "TOKEN_LIMIT_EXCEEDED",
    "MODEL_NOT_AVAILABLE",
    "SERVICE_NOT_AVAILABLE",
    "SOMETHING_NEW",
];

const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 418, 429, 500, 502, 503, 504, 599];

#[derive(Arbitrary, Debug)]
enum Status {
    Known(u8),
    Any(u16),
}

#[derive(Arbitrary, Debug)]
enum HeaderValue {
    Seconds(u16),
    Millis(u32),
    /// An HTTP-date this many seconds from the wall clock (negative: in the past).
    Date(i32),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Reason(u8),
    Wrapped(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Response {
        status: Status,
        headers: Vec<(u8, HeaderValue)>,
        body: Body,
    },
    Transport(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Start {
        streamed: bool,
        models: u8,
        without_streaming_switch: bool,
    },
    Admit {
        call: u8,
    },
    Answer {
        call: u8,
        answer: Answer,
        draw: u64,
    },
    Drop {
        call: u8,
    },
    Advance(u32),
    WallSkew(i32),
}

struct Live {
    call: Call,
    models: usize,
    sent: bool,
    not_before: Duration,
}

const KEYS: [&str; 4] = ["m0", "m1", "m2", "m3"];
const MAX_CALLS: usize = 16;

struct World {
    policy: Policy,
    state: novita_policy::ClientState,
    calls: Vec<Live>,
    now: Duration,
    wall: SystemTime,
}

impl World {
    /// Admits call `index` as the driver does: at its earliest time, following fallbacks.
    fn admit(&mut self, index: usize) {
        let live = &mut self.calls[index];
        if live.sent {
            return;
        }
        self.now = self.now.max(live.not_before);
        for _ in 0..=KEYS.len() {
            let before = live.call.model();
            let key = KEYS[before];
            match self
                .policy
                .admit(&mut self.state, &mut live.call, key, self.now)
            {
                Admission::Send => {
                    live.sent = true;
                    return;
                }
                Admission::Wait(wait) => {
                    live.not_before = self.now.saturating_add(wait);
                    return;
                }
                Admission::FallBack { model } => {
                    assert!(
                        model < live.models,
                        "fell back to model {model} of {}",
                        live.models
                    );
                    assert!(model > before, "fell back from model {before} to {model}");
                    assert_eq!(live.call.model(), model);
                }
                Admission::Reject(_) => {
                    self.calls.swap_remove(index);
                    return;
                }
            }
        }
        panic!("admission followed more fallbacks than there are models");
    }

    fn answer(&mut self, index: usize, answer: &Answer, draw: u64) {
        self.admit(index);
        let Some(live) = self.calls.get_mut(index) else {
            return;
        };
        if !live.sent {
            return;
        }
        let key = KEYS[live.call.model()];
        let clock = Clock {
            now: self.now,
            wall: self.wall,
        };
        let decision = match answer {
            Answer::Response {
                status,
                headers,
                body,
            } => {
                let status = match *status {
                    Status::Known(i) => STATUSES[usize::from(i) % STATUSES.len()],
                    Status::Any(status) => status,
                };
                let headers: Vec<(&str, String)> = headers
                    .iter()
                    .map(|(name, value)| {
                        let value = match value {
                            HeaderValue::Seconds(s) => s.to_string(),
                            HeaderValue::Millis(ms) => ms.to_string(),
                            HeaderValue::Date(offset) => {
                                let by = Duration::from_secs(u64::from(offset.unsigned_abs()));
                                let date = if *offset < 0 {
                                    self.wall.checked_sub(by)
                                } else {
                                    self.wall.checked_add(by)
                                };
                                date.map(http_date).unwrap_or_default()
                            }
                            HeaderValue::Text(text) => text.clone(),
                        };
                        (HEADER_NAMES[usize::from(*name) % HEADER_NAMES.len()], value)
                    })
                    .collect();
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(name, value)| (*name, value.as_str()))
                    .collect();
                let body: Vec<u8> = match body {
                    Body::Empty => Vec::new(),
                    Body::Reason(i) => format!(
                        r#"{{"code":{status},"reason":"{}","message":"m","metadata":{{}}}}"#,
                        REASONS[usize::from(*i) % REASONS.len()]
                    )
                    .into_bytes(),
                    Body::Wrapped(i) => format!(
                        r#"{{"error":{{"code":"{}","message":"m"}}}}"#,
                        REASONS[usize::from(*i) % REASONS.len()].to_ascii_lowercase()
                    )
                    .into_bytes(),
                    Body::Raw(bytes) => bytes.clone(),
                };
                let outcome = Outcome::Response {
                    status,
                    headers: &headers,
                    body: &body,
                };
                self.policy.decide(
                    &mut self.state,
                    &mut live.call,
                    key,
                    &outcome,
                    clock,
                    Draw::from_bits(draw),
                )
            }
            Answer::Transport(kind) => {
                let transport = [
                    Transport::Connect,
                    Transport::Reset,
                    Transport::TimeoutBeforeHeaders,
                    Transport::TimeoutAfterHeaders,
                    Transport::Tls,
                    Transport::BodyRead,
                    Transport::Other,
                ][usize::from(*kind) % 7];
                let outcome = Outcome::Transport(transport);
                self.policy.decide(
                    &mut self.state,
                    &mut live.call,
                    key,
                    &outcome,
                    clock,
                    Draw::from_bits(draw),
                )
            }
        };
        live.sent = false;
        match decision {
            Decision::Done | Decision::GiveUp(_) => {
                self.calls.swap_remove(index);
            }
            Decision::Retry { delay, .. } => live.not_before = self.now.saturating_add(delay),
            Decision::Escalate { action, delay, .. } => {
                if let novita_policy::Action::FallBack { model } = action {
                    assert!(
                        model < live.models,
                        "escalated to model {model} of {}",
                        live.models
                    );
                }
                assert!(live.call.model() < live.models);
                live.not_before = self.now.saturating_add(delay);
            }
        }
    }

    fn check(&self) {
        let capacity = self.policy.config().budget.capacity;
        assert!(
            self.state.budget().tokens() <= capacity,
            "budget over its capacity"
        );
        for key in KEYS {
            let _ = self.state.breaker(key, self.now);
            let _ = self.state.pacing_interval(key, self.now);
            let _ = self.state.held(key);
        }
        for live in &self.calls {
            assert!(live.call.model() < live.models);
        }
    }
}

/// An HTTP-date header value; `httpdate` formats years 1970 to 9999 only, so outside
/// them the header is left empty.
fn http_date(time: SystemTime) -> String {
    let year_10000 = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    if time < SystemTime::UNIX_EPOCH || time >= year_10000 {
        return String::new();
    }
    httpdate::fmt_http_date(time)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let Ok(mirror) = ConfigMirror::arbitrary(&mut input) else {
        return;
    };
    let config = mirror.build();
    if config.validate().is_err() {
        return;
    }
    let policy = Policy::new(config);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200);
    let mut world = World {
        state: policy.client_state(),
        policy,
        calls: Vec::new(),
        now: Duration::from_secs(1),
        wall,
    };
    let mut skew: i64 = 0;
    // `arbitrary` pads an exhausted input with zeros rather than failing, so stop at its end.
    while !input.is_empty() {
        let Ok(step) = Step::arbitrary(&mut input) else {
            break;
        };
        let pick =
            |call: u8, calls: &[Live]| (!calls.is_empty()).then(|| usize::from(call) % calls.len());
        match step {
            Step::Start {
                streamed,
                models,
                without_streaming_switch,
            } => {
                if world.calls.len() < MAX_CALLS {
                    let models = 1 + usize::from(models) % KEYS.len();
                    let delivery = if streamed {
                        Delivery::Streamed
                    } else {
                        Delivery::Buffered
                    };
                    let mut call = world.policy.start_call(world.now, delivery, models);
                    if without_streaming_switch {
                        call = call.without_streaming_switch();
                    }
                    world.calls.push(Live {
                        call,
                        models,
                        sent: false,
                        not_before: world.now,
                    });
                }
            }
            Step::Admit { call } => {
                if let Some(index) = pick(call, &world.calls) {
                    world.admit(index);
                }
            }
            Step::Answer { call, answer, draw } => {
                if let Some(index) = pick(call, &world.calls) {
                    world.answer(index, &answer, draw);
                }
            }
            Step::Drop { call } => {
                if let Some(index) = pick(call, &world.calls) {
                    world.calls.swap_remove(index);
                }
            }
            Step::Advance(ms) => {
                world.now = world
                    .now
                    .saturating_add(Duration::from_millis(u64::from(ms)))
            }
            Step::WallSkew(secs) => skew = skew.saturating_add(i64::from(secs)),
        }
        let offset = Duration::from_secs(skew.unsigned_abs());
        let base = wall.checked_add(world.now).unwrap_or(wall);
        world.wall = if skew < 0 {
            base.checked_sub(offset)
        } else {
            base.checked_add(offset)
        }
        .unwrap_or(base);
        world.check();
    }
});
