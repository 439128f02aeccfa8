//! The behaviour table in ARCHITECTURE.md, one test per row (plus the budget, breaker,
//! deadline and advice rules under it), played through the real [`CallDriver`] that the
//! adapters run.
//!
//! A [`Harness`] owns a seeded [`ClientCore`] and a virtual clock. It drives one call the
//! way an adapter does (poll, send, feed the outcome back, sleep) with an in-process fake
//! transport: a script answers each attempt with a status, headers and body, or with a
//! transport failure, and nothing ever sleeps. Every attempt (model, delivery, number, the
//! virtual time it went out) and every wait is recorded, so the tests assert on what the
//! driver did: the delays, the order of models, the deliveries, the [`Report`] or the
//! [`Error`]. Rules that span calls (hints that hold other calls, pacing, the retry budget,
//! the circuit breaker) run several drivers on one core.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use novita_core::policy::catalog::{Escalation, RateLimit};
use novita_core::policy::{
    BreakerState, Clock, Delivery, GiveUp, Jitter, ModelLimits, NO_HEADERS, PolicyConfig, Stop,
    Transport, WhenOpen,
};
use novita_core::wire::{ChatRequest, Usage};
use novita_core::{
    API_KEY_VAR, Attempt, CallDriver, ClientCore, DEFAULT_BASE_URL, Error, ErrorKind, KeySource,
    Options, Poll, Report, Request,
};
use serde_json::Value;

const MODEL: &str = "primary-model";
const FALLBACK: &str = "fallback-model";
/// Where virtual time starts: not zero, so that times measured from a call's start and
/// times on the client's clock cannot be confused.
const START: Duration = Duration::from_secs(100);
/// The wall clock at [`START`], for HTTP-date and Unix-time hints.
const WALL_START: u64 = 1_795_651_200;
const SEED: u64 = 7;

/// A client on virtual time: a seeded core, a monotonic `now` and a wall clock that move
/// together, only when a call waits or an attempt takes time.
struct Harness {
    core: Arc<ClientCore>,
    now: Duration,
    wall: SystemTime,
}

/// One attempt as the fake transport saw it.
#[derive(Debug)]
struct Sent {
    model: String,
    delivery: Delivery,
    number: u32,
    /// When it went out, on the client's virtual clock.
    at: Duration,
    /// The wall clock when it went out.
    wall: SystemTime,
}

/// How the fake transport answers one attempt.
#[derive(Debug)]
struct Reply {
    kind: ReplyKind,
    /// How long the attempt takes before its outcome is known.
    took: Duration,
}

#[derive(Debug)]
enum ReplyKind {
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Transport(Transport),
}

/// What one call did: its attempts and waits, in order, and how it ended.
#[derive(Debug)]
struct Trace {
    started: Duration,
    attempts: Vec<Sent>,
    waits: Vec<Duration>,
    result: Result<Report, Error>,
}

impl Harness {
    fn new() -> Self {
        Self::with(PolicyConfig::default(), &[])
    }

    fn with(config: PolicyConfig, fallbacks: &[&str]) -> Self {
        Self::seeded(config, fallbacks, SEED)
    }

    fn seeded(config: PolicyConfig, fallbacks: &[&str], seed: u64) -> Self {
        let mut options = options(config, fallbacks, seed);
        options.api_key = Some("sk_behaviour_test".to_owned());
        Self::on(ClientCore::new(options, |_| None).expect("valid options"))
    }

    fn on(core: ClientCore) -> Self {
        Self {
            core: Arc::new(core),
            now: START,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_START),
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.now,
            wall: self.wall,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
    }

    /// A driver for `request`, starting now, for tests that interleave calls by hand.
    fn start(&self, request: Request) -> CallDriver {
        CallDriver::new(Arc::clone(&self.core), request, self.now)
    }

    /// Polls `driver` now and expects an attempt.
    fn send(&self, driver: &mut CallDriver) -> Attempt {
        match driver.poll(self.now) {
            Poll::Send(attempt) => attempt,
            other => panic!("expected an attempt at {:?}, got {other:?}", self.now),
        }
    }

    /// Polls `driver` now and expects a wait.
    fn wait(&self, driver: &mut CallDriver) -> Duration {
        match driver.poll(self.now) {
            Poll::Wait(wait) => wait,
            other => panic!("expected a wait at {:?}, got {other:?}", self.now),
        }
    }

    /// Runs `request` to its end as an adapter would, answering every attempt with
    /// `script`: poll; on `Send` ask the script and feed its reply back; on `Wait` move
    /// virtual time on.
    fn call(&mut self, request: Request, mut script: impl FnMut(&Sent) -> Reply) -> Trace {
        let started = self.now;
        let route = request.route().to_owned();
        let chat_route = request.reassembly() == novita_core::Reassembly::Chat;
        let mut driver = self.start(request);
        let mut attempts: Vec<Sent> = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..1_000 {
            match driver.poll(self.now) {
                Poll::Send(attempt) => {
                    check_attempt(&attempt, &route, chat_route, attempts.len());
                    let sent = Sent {
                        model: attempt.model,
                        delivery: attempt.delivery,
                        number: attempt.number,
                        at: self.now,
                        wall: self.wall,
                    };
                    let reply = script(&sent);
                    attempts.push(sent);
                    self.advance(reply.took);
                    let clock = self.clock();
                    match reply.kind {
                        ReplyKind::Status { status, .. } if status < 400 => {
                            let report = driver.handle_success(status, clock);
                            return Trace {
                                started,
                                attempts,
                                waits,
                                result: Ok(report),
                            };
                        }
                        ReplyKind::Status {
                            status,
                            headers,
                            body,
                        } => driver.handle_response(status, &headers, body.as_bytes(), clock),
                        ReplyKind::Transport(failure) => {
                            let source = std::io::Error::other("fake transport failure");
                            driver.handle_transport(failure, Some(Box::new(source)), clock);
                        }
                    }
                }
                Poll::Wait(wait) => {
                    assert!(!wait.is_zero(), "a zero wait would spin the adapter");
                    waits.push(wait);
                    self.advance(wait);
                }
                Poll::Failed(error) => {
                    return Trace {
                        started,
                        attempts,
                        waits,
                        result: Err(error),
                    };
                }
                Poll::Share(_) => panic!("these clients have no store"),
            }
        }
        panic!("the call neither answered nor failed after 1000 polls");
    }
}

fn options(config: PolicyConfig, fallbacks: &[&str], seed: u64) -> Options {
    let mut options = Options::default();
    options.seed = Some(seed);
    options.policy = Some(config);
    options.fallback_models = fallbacks.iter().map(|model| (*model).to_owned()).collect();
    options
}

/// What every attempt must look like, whatever the scenario: numbered from 1 without gaps,
/// sent to the route under the base URL, with a body naming the attempt's model and, on
/// the chat route, asking for the attempt's delivery.
fn check_attempt(attempt: &Attempt, route: &str, chat_route: bool, before: usize) {
    assert_eq!(attempt.number as usize, before + 1, "{attempt:?}");
    assert_eq!(attempt.url, format!("{DEFAULT_BASE_URL}/{route}"));
    let Some(body) = &attempt.body else { return };
    let body: Value = serde_json::from_slice(body).expect("the body is JSON");
    if let Some(model) = body.get("model") {
        assert_eq!(model.as_str(), Some(attempt.model.as_str()), "{body}");
    }
    if chat_route {
        // A typed chat request leaves out `"stream": false`.
        assert_eq!(
            body["stream"].as_bool().unwrap_or(false),
            attempt.delivery == Delivery::Streamed,
            "{body}"
        );
    }
}

impl Trace {
    fn report(&self) -> &Report {
        match &self.result {
            Ok(report) => report,
            Err(error) => panic!("expected an answer, got: {}", error.advice()),
        }
    }

    fn error(&self) -> &Error {
        match &self.result {
            Ok(report) => panic!("expected a failure, got an answer: {report}"),
            Err(error) => error,
        }
    }

    fn give_up(&self) -> &GiveUp {
        self.error().give_up().expect("the call gave up")
    }

    /// The model the give-up names.
    fn gave_up_on(&self) -> &str {
        match self.error() {
            Error::GaveUp { model, .. } => model,
            other => panic!("expected a give-up, got {other:?}"),
        }
    }

    fn models(&self) -> Vec<&str> {
        self.attempts
            .iter()
            .map(|sent| sent.model.as_str())
            .collect()
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.attempts.iter().map(|sent| sent.delivery).collect()
    }

    /// The time between consecutive attempts going out.
    fn gaps(&self) -> Vec<Duration> {
        self.attempts
            .windows(2)
            .map(|pair| pair[1].at - pair[0].at)
            .collect()
    }

    fn total_wait(&self) -> Duration {
        self.waits.iter().sum()
    }
}

fn chat(model: &str) -> Request {
    Request::chat(&ChatRequest::new(model, "Hello"))
}

fn chat_stream(model: &str) -> Request {
    Request::chat_stream(&ChatRequest::new(model, "Hello"))
}

fn ok() -> Reply {
    status(200, "")
}

fn status(status: u16, body: &str) -> Reply {
    Reply {
        kind: ReplyKind::Status {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        },
        took: Duration::ZERO,
    }
}

/// An error response with Novita's JSON error body.
fn novita(code: u16, reason: &str, message: &str) -> Reply {
    status(
        code,
        &format!(r#"{{"code":{code},"reason":"{reason}","message":"{message}","metadata":{{}}}}"#),
    )
}

fn transport(failure: Transport) -> Reply {
    Reply {
        kind: ReplyKind::Transport(failure),
        took: Duration::ZERO,
    }
}

impl Reply {
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        match &mut self.kind {
            ReplyKind::Status { headers, .. } => headers.push((name.to_owned(), value.into())),
            ReplyKind::Transport(_) => panic!("a transport failure has no headers"),
        }
        self
    }

    fn took(mut self, took: Duration) -> Self {
        self.took = took;
        self
    }
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn row_400_is_never_retried_and_quotes_the_message() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        novita(
            400,
            "INVALID_REQUEST_BODY",
            "temperature must be between 0 and 2",
        )
    });
    assert_eq!(trace.attempts.len(), 1);
    assert!(trace.waits.is_empty(), "{:?}", trace.waits);
    let error = trace.error();
    assert_eq!(error.kind(), ErrorKind::BadRequest);
    assert_eq!(error.status(), Some(400));
    assert_eq!(trace.gave_up_on(), MODEL);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.attempts, 1);
    assert_eq!(
        give_up.message.as_deref(),
        Some("temperature must be between 0 and 2")
    );
    assert_eq!(give_up.advice.first(), Some(&Escalation::FixRequest));
    let advice = error.advice();
    assert!(
        advice.contains("\nserver said: temperature must be between 0 and 2"),
        "{advice}"
    );
}

#[test]
fn row_401_is_never_retried_and_points_at_the_key() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        novita(401, "FAILED_TO_AUTH", "invalid key")
    });
    assert_eq!(trace.attempts.len(), 1);
    assert!(trace.waits.is_empty());
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.attempts, 1);
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckCredentials));
    let error = trace.error();
    assert_eq!(error.kind(), ErrorKind::Auth);
    assert!(matches!(
        error,
        Error::GaveUp {
            key_source: KeySource::Argument,
            ..
        }
    ));
    let advice = error.advice();
    assert!(
        advice.contains("the API key came from the key passed to the client builder"),
        "{advice}"
    );
    assert!(
        !advice.contains("sk_behaviour_test"),
        "never the key itself"
    );

    // A key read from the environment says so.
    let mut options = options(PolicyConfig::default(), &[], SEED);
    options.api_key = None;
    let core = ClientCore::new(options, |name| {
        (name == API_KEY_VAR).then(|| "sk_from_env".to_owned())
    })
    .unwrap();
    let mut h = Harness::on(core);
    let trace = h.call(chat(MODEL), |_| status(401, ""));
    let advice = trace.error().advice();
    assert!(
        advice.contains("the API key came from the NOVITA_API_KEY environment variable"),
        "{advice}"
    );
    assert!(!advice.contains("sk_from_env"), "never the key itself");
}

#[test]
fn row_403_advice_depends_on_the_reason() {
    let cases = [
        (
            "INVALID_API_KEY",
            Escalation::SetApiKey,
            None,
            ErrorKind::Auth,
        ),
        (
            "NOT_ENOUGH_BALANCE",
            Escalation::TopUpBalance,
            Some(Escalation::VerifyIdentity),
            ErrorKind::Permission,
        ),
        (
            "ACCESS_DENY",
            Escalation::VerifyIdentity,
            Some(Escalation::TopUpBalance),
            ErrorKind::Permission,
        ),
        (
            "SOMETHING_NEW",
            Escalation::VerifyIdentity,
            Some(Escalation::TopUpBalance),
            ErrorKind::Permission,
        ),
    ];
    for (reason, first, absent, kind) in cases {
        let mut h = Harness::new();
        let trace = h.call(chat(MODEL), |_| novita(403, reason, "denied"));
        assert_eq!(trace.attempts.len(), 1, "{reason}");
        let give_up = trace.give_up();
        assert_eq!(give_up.stop, Stop::NotRetryable, "{reason}");
        assert_eq!(give_up.reason.as_deref(), Some(reason), "kept verbatim");
        assert_eq!(give_up.advice.first(), Some(&first), "{reason}");
        if let Some(absent) = absent {
            assert!(
                !give_up.advice.contains(&absent),
                "{reason}: {:?}",
                give_up.advice
            );
        }
        assert_eq!(trace.error().kind(), kind, "{reason}");
    }
}

#[test]
fn row_404_tells_a_missing_model_from_a_wrong_url() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        novita(404, "MODEL_NOT_FOUND", "model foo/bar not found")
    });
    assert_eq!(trace.attempts.len(), 1);
    assert_eq!(
        trace.give_up().advice,
        [Escalation::CheckModelName, Escalation::ListModels]
    );
    assert_eq!(trace.error().kind(), ErrorKind::BadRequest);

    let trace = h.call(chat(MODEL), |_| status(404, "404 page not found"));
    assert_eq!(trace.attempts.len(), 1);
    let give_up = trace.give_up();
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckBaseUrl));
    assert_eq!(give_up.message.as_deref(), Some("404 page not found"));
    assert_eq!(trace.error().kind(), ErrorKind::BadRequest);
}

/// A hint header set, written against the wall clock of the attempt it answers.
type Hint = fn(SystemTime) -> Vec<(&'static str, String)>;

#[test]
fn row_429_waits_exactly_as_long_as_each_hint_form_asks() {
    let rpm_body = r#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"too many requests"}"#;
    let plain_body = r#"{"error":{"message":"rate limited"}}"#;
    let cases: [(&str, Hint, &str, Duration, RateLimit); 7] = [
        (
            "delta-seconds",
            |_| vec![("retry-after", "3".to_owned())],
            rpm_body,
            secs(3),
            RateLimit::RequestsPerMinute,
        ),
        (
            "HTTP-date",
            |wall| vec![("retry-after", httpdate::fmt_http_date(wall + secs(7)))],
            rpm_body,
            secs(7),
            RateLimit::RequestsPerMinute,
        ),
        (
            "milliseconds",
            |_| vec![("retry-after-ms", "1500".to_owned())],
            rpm_body,
            ms(1500),
            RateLimit::RequestsPerMinute,
        ),
        (
            "any case, padded",
            |_| vec![("Retry-After", " 2 ".to_owned())],
            rpm_body,
            secs(2),
            RateLimit::RequestsPerMinute,
        ),
        (
            "requests reset",
            |_| {
                vec![
                    ("x-ratelimit-remaining-requests", "0".to_owned()),
                    ("x-ratelimit-reset-requests", "2s".to_owned()),
                ]
            },
            plain_body,
            secs(2),
            RateLimit::RequestsPerMinute,
        ),
        (
            "tokens reset",
            |_| {
                vec![
                    ("x-ratelimit-remaining-tokens", "0".to_owned()),
                    ("x-ratelimit-reset-tokens", "6s500ms".to_owned()),
                ]
            },
            plain_body,
            ms(6500),
            RateLimit::TokensPerMinute,
        ),
        (
            "reset as a Unix time",
            |wall| {
                let reset = wall.duration_since(SystemTime::UNIX_EPOCH).unwrap() + secs(4);
                vec![
                    ("x-ratelimit-remaining-requests", "0".to_owned()),
                    ("x-ratelimit-reset", reset.as_secs().to_string()),
                ]
            },
            plain_body,
            secs(4),
            RateLimit::RequestsPerMinute,
        ),
    ];
    let throttled = PolicyConfig::default().attempts.throttled;
    for (form, hint, body, expected, limit) in cases {
        let mut h = Harness::new();
        let trace = h.call(chat(MODEL), |sent| {
            hint(sent.wall)
                .into_iter()
                .fold(status(429, body), |reply, (name, value)| {
                    reply.header(name, value)
                })
        });
        let retries = throttled as usize - 1;
        assert_eq!(trace.attempts.len(), throttled as usize, "{form}");
        // Exactly as long as asked: never sooner, and no later (pacing included).
        assert_eq!(trace.waits, vec![expected; retries], "{form}");
        assert_eq!(trace.gaps(), vec![expected; retries], "{form}");
        let give_up = trace.give_up();
        assert_eq!(give_up.stop, Stop::AttemptsExhausted, "{form}");
        assert_eq!(give_up.server_hint, Some(expected), "{form}");
        assert_eq!(give_up.rate_limit, Some(limit), "{form}");
        assert_eq!(trace.error().kind(), ErrorKind::RateLimited, "{form}");
    }

    // And a call that is let through after one hint reports that wait.
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(429, rpm_body).header("retry-after", "3")
        } else {
            ok()
        }
    });
    let report = trace.report();
    assert_eq!((report.attempts, report.waited), (2, secs(3)));
}

#[test]
fn row_429_hint_blocks_other_calls_to_the_model() {
    let mut h = Harness::new();
    let mut first = h.start(chat(MODEL));
    let _ = h.send(&mut first);
    first.handle_response(429, &[("retry-after", "4")], b"", h.clock());
    assert_eq!(h.wait(&mut first), secs(4));

    // A second call starting a second later waits out the rest of the hint...
    h.advance(secs(1));
    let mut second = h.start(chat(MODEL));
    assert_eq!(h.wait(&mut second), secs(3));
    // ...while a call to another model goes out at once.
    let mut other = h.start(chat(FALLBACK));
    let _ = h.send(&mut other);

    h.advance(secs(3));
    assert_eq!(h.send(&mut first).number, 2);
    assert_eq!(h.send(&mut second).number, 1);
    let report = second.handle_success(200, h.clock());
    assert_eq!(report.waited, secs(3));
    assert_eq!(report.elapsed, secs(3));
}

#[test]
fn row_429_tells_tpm_from_rpm_and_advises_fewer_tokens() {
    let tpm: [(&[(&str, &str)], &str); 3] = [
        (
            &[],
            r#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"slow down"}"#,
        ),
        (
            &[("x-ratelimit-remaining-tokens", "0")],
            r#"{"error":{"message":"rate limited"}}"#,
        ),
        (
            &[],
            r#"{"error":{"message":"Token rate limit exceeded for this model"}}"#,
        ),
    ];
    let rpm: [(&[(&str, &str)], &str); 2] = [
        (
            &[],
            r#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"slow down"}"#,
        ),
        (
            &[("x-ratelimit-remaining-requests", "0")],
            r#"{"error":{"message":"rate limited"}}"#,
        ),
    ];
    let cases = tpm
        .iter()
        .map(|case| (case, RateLimit::TokensPerMinute))
        .chain(rpm.iter().map(|case| (case, RateLimit::RequestsPerMinute)));
    for ((headers, body), limit) in cases {
        let mut config = PolicyConfig::default();
        config.attempts.throttled = 1;
        let mut h = Harness::with(config, &[]);
        let trace = h.call(chat(MODEL), |_| {
            headers
                .iter()
                .fold(status(429, body), |reply, (name, value)| {
                    reply.header(name, *value)
                })
        });
        assert_eq!(trace.attempts.len(), 1, "{body}");
        let give_up = trace.give_up();
        assert_eq!(give_up.rate_limit, Some(limit), "{body}");
        let text = give_up.to_string();
        let tokens_advised = give_up.advice.contains(&Escalation::ReduceTokens);
        if limit == RateLimit::TokensPerMinute {
            assert_eq!(
                give_up.advice.first(),
                Some(&Escalation::ReduceTokens),
                "{body}"
            );
        } else {
            assert!(!tokens_advised, "{body}: {:?}", give_up.advice);
            assert_eq!(
                give_up.advice.first(),
                Some(&Escalation::ReduceRate),
                "{body}"
            );
        }
        // The headline names the limit that was hit, and only that one.
        let tpm_named = text.contains("tokens per minute (TPM) limit")
            || text.contains("tokens-per-minute (TPM) limit");
        let rpm_named = text.contains("requests per minute (RPM) limit")
            || text.contains("requests-per-minute (RPM) limit");
        assert_eq!(
            (tpm_named, rpm_named),
            (
                limit == RateLimit::TokensPerMinute,
                limit == RateLimit::RequestsPerMinute
            ),
            "{text}"
        );
        assert_eq!(trace.error().kind(), ErrorKind::RateLimited);
    }
}

#[test]
fn row_429_gives_up_at_once_on_an_absurd_hint() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        status(429, "").header("retry-after", "86400")
    });
    assert_eq!(trace.attempts.len(), 1);
    assert!(trace.waits.is_empty(), "{:?}", trace.waits);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::HintAboveCeiling);
    assert_eq!(give_up.server_hint, Some(secs(86_400)));
    assert_eq!(give_up.attempts, 1);
    assert!(
        give_up
            .to_string()
            .contains("server asked to wait 24 h 0 min"),
        "{give_up}"
    );
    assert_eq!(trace.error().kind(), ErrorKind::RateLimited);
    // The refused hint does not hold the model for a day either.
    let next = h.call(chat(MODEL), |_| ok());
    assert!(next.waits.is_empty(), "{:?}", next.waits);
}

#[test]
fn row_429_repeated_slows_down_then_advises_a_higher_limit() {
    // Backoff of a millisecond, so that any longer gap between attempts is pacing.
    let mut config = PolicyConfig::default();
    config.backoff.base = ms(1);
    config.backoff.throttled_base = ms(1);
    config.backoff.timeout_base = ms(1);
    config.backoff.cap = ms(1);
    let mut h = Harness::with(config, &[]);
    let throttled = || novita(429, "RATE_LIMIT_EXCEEDED", "too many requests");
    let trace = h.call(chat(MODEL), |_| throttled());

    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::AttemptsExhausted);
    assert_eq!(give_up.attempts, PolicyConfig::default().attempts.throttled);
    assert_eq!(trace.attempts.len(), give_up.attempts as usize);
    assert!(give_up.advice.contains(&Escalation::ReduceRate));
    assert!(give_up.advice.contains(&Escalation::RequestHigherLimit));

    // Every 429 here answers an attempt sent after the last cut, so each is a congestion
    // event of its own: the rate falls each time and the attempts spread out.
    let interval = h.core.pacing(MODEL, h.now);
    assert!(interval > Duration::ZERO, "pacing engaged");
    let gaps = trace.gaps();
    assert!(
        gaps[0] <= ms(1),
        "the first retry is not paced yet: {gaps:?}"
    );
    assert!(gaps[1] >= ms(500), "paced after the first cut: {gaps:?}");
    assert!(
        gaps.windows(2).skip(1).all(|pair| pair[1] >= pair[0]),
        "each cut slows the pace further: {gaps:?}"
    );
    assert!(
        trace.waits.len() > gaps.len(),
        "pacing adds waits of its own: {:?}",
        trace.waits
    );

    // The next call to the model is paced too, and the rate grows back with time.
    let next = h.call(chat(MODEL), |_| ok());
    let first_wait = next.waits.first().copied().unwrap_or_default();
    assert!(
        first_wait > Duration::ZERO && first_wait <= interval,
        "{:?}",
        next.waits
    );
    assert_eq!(next.attempts[0].at - next.started, first_wait);
    assert!(h.core.pacing(MODEL, h.now + secs(5)) < interval);
    // Another model is not paced.
    assert_eq!(h.core.pacing(FALLBACK, h.now), Duration::ZERO);
}

#[test]
fn row_429_a_burst_of_concurrent_429s_slows_down_once() {
    let mut h = Harness::new();
    // Sixteen calls go out together, as the first of a busy second.
    let mut calls: Vec<CallDriver> = (0..16).map(|_| h.start(chat(MODEL))).collect();
    for call in &mut calls {
        let _ = h.send(call);
    }
    h.advance(ms(20));
    let clock = h.clock();
    let throttled = novita(429, "RATE_LIMIT_EXCEEDED", "too many requests");
    let ReplyKind::Status { body, .. } = &throttled.kind else {
        unreachable!()
    };
    calls[0].handle_response(429, &NO_HEADERS, body.as_bytes(), clock);
    let after_one = h.core.pacing(MODEL, h.now);
    for call in &mut calls[1..] {
        call.handle_response(429, &NO_HEADERS, body.as_bytes(), clock);
    }
    assert!(after_one > Duration::ZERO);
    assert_eq!(
        h.core.pacing(MODEL, h.now),
        after_one,
        "the other fifteen 429s belong to the same congestion event"
    );
    // Sixteen calls in the first half second is 32 a second; cut to 70 %.
    let rate = 1.0 / after_one.as_secs_f64();
    assert!((rate - 22.4).abs() < 0.5, "{rate} calls a second");
}

#[test]
fn row_429_a_zero_or_past_hint_means_the_clients_own_backoff() {
    let mut config = PolicyConfig::default();
    config.backoff.jitter = Jitter::None;
    for hint in [
        ("retry-after", "0"),
        ("retry-after-ms", "0"),
        ("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ] {
        let mut h = Harness::with(config.clone(), &[]);
        let mut first = true;
        let trace = h.call(chat(MODEL), |_| {
            if std::mem::take(&mut first) {
                status(429, "").header(hint.0, hint.1)
            } else {
                ok()
            }
        });
        assert_eq!(
            trace.gaps(),
            [config.backoff.throttled_base],
            "{hint:?} waits the throttled backoff, not zero"
        );
    }
}

#[test]
fn row_500_retries_once_then_falls_back() {
    let mut h = Harness::with(PolicyConfig::default(), &[FALLBACK]);
    let trace = h.call(chat(MODEL), |sent| {
        if sent.model == MODEL {
            novita(500, "INTERNAL_SERVER_ERROR", "engine crashed")
        } else {
            ok()
        }
    });
    assert_eq!(trace.models(), [MODEL, MODEL, FALLBACK]);
    assert_eq!(
        trace.waits.len(),
        1,
        "one backoff, then an immediate fallback"
    );
    assert_eq!(trace.gaps()[1], Duration::ZERO);
    let report = trace.report();
    assert_eq!(report.model, FALLBACK);
    assert_eq!(report.fell_back_from.as_deref(), Some(MODEL));
    assert_eq!(report.attempts, 3);
}

#[test]
fn row_500_model_in_maintenance_falls_back_at_once() {
    let mut h = Harness::with(PolicyConfig::default(), &[FALLBACK]);
    let trace = h.call(chat(MODEL), |sent| {
        if sent.model == MODEL {
            novita(500, "MODEL_NOT_AVAILABLE", "model under maintenance")
        } else {
            ok()
        }
    });
    assert_eq!(trace.models(), [MODEL, FALLBACK]);
    assert!(trace.waits.is_empty(), "{:?}", trace.waits);
    assert_eq!(trace.gaps(), [Duration::ZERO]);
    let report = trace.report();
    assert_eq!(report.fell_back_from.as_deref(), Some(MODEL));
    assert!(!report.switched_to_streaming);
}

#[test]
fn row_500_without_fallback_gives_up_with_the_request_id() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        novita(500, "INTERNAL_SERVER_ERROR", "crash").header("x-request-id", "req-42")
    });
    assert_eq!(trace.models(), [MODEL, MODEL]);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::AttemptsExhausted);
    assert_eq!(give_up.attempts, 2);
    assert_eq!(give_up.request_id.as_deref(), Some("req-42"));
    assert!(give_up.advice.contains(&Escalation::ContactSupport));
    let error = trace.error();
    assert_eq!(error.kind(), ErrorKind::ServerFault);
    assert!(error.advice().contains("\nrequest id: req-42"));
}

#[test]
fn row_503_backs_off_with_jitter_under_the_cap_then_succeeds() {
    let mut config = PolicyConfig::default();
    config.backoff.cap = secs(2);
    let backoff = config.backoff;
    assert_eq!(backoff.jitter, Jitter::Full);
    let failures = config.attempts.transient - 1;
    let run = |seed: u64| {
        let mut h = Harness::seeded(config.clone(), &[], seed);
        h.call(chat(MODEL), |sent| {
            if sent.number <= failures {
                novita(503, "SERVICE_NOT_AVAILABLE", "busy")
            } else {
                ok()
            }
        })
    };
    let trace = run(SEED);
    let report = trace.report();
    assert_eq!(report.attempts, failures + 1);
    assert_eq!(trace.waits.len(), failures as usize);
    assert_eq!(report.waited, trace.total_wait());
    assert_eq!(trace.gaps(), trace.waits);
    // Capped exponential: each wait is at most base * 2^n, and never above the cap...
    for (n, wait) in trace.waits.iter().enumerate() {
        let ceiling = backoff.base.mul_f64(backoff.multiplier.powi(n as i32));
        assert!(
            *wait <= ceiling.min(backoff.cap),
            "wait {n}: {wait:?} {:?}",
            trace.waits
        );
    }
    // ...and jittered: not the bare exponential, and not the same twice.
    assert!(
        trace.waits.iter().enumerate().any(|(n, wait)| *wait
            < backoff
                .base
                .mul_f64(backoff.multiplier.powi(n as i32))
                .min(backoff.cap)),
        "{:?}",
        trace.waits
    );
    let mut distinct = trace.waits.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), trace.waits.len(), "{:?}", trace.waits);
    // The jitter is the seeded stream's: the same seed replays, another one does not.
    assert_eq!(run(SEED).waits, trace.waits);
    assert_ne!(run(SEED + 1).waits, trace.waits);
}

#[test]
fn row_503_respects_a_retry_after_beside_backoff() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(503, "").header("retry-after", "5")
        } else {
            ok()
        }
    });
    let base = PolicyConfig::default().backoff.base;
    assert_eq!(trace.waits.len(), 1);
    assert!(
        trace.waits[0] >= secs(5) && trace.waits[0] <= secs(5) + base,
        "{:?}",
        trace.waits
    );
    assert_eq!(trace.report().attempts, 2);
}

#[test]
fn row_503_outage_is_bounded_by_the_budget() {
    // Breakers that never open, so that the budget alone has to hold the line.
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = u32::MAX;
    let mut h = Harness::with(config.clone(), &[]);
    let models = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut retries = 0_u32;
    let mut last = None;
    for index in 0..200 {
        let trace = h.call(chat(models[index % models.len()]), |_| status(503, ""));
        retries += trace.attempts.len() as u32 - 1;
        assert_eq!(trace.error().kind(), ErrorKind::Unavailable);
        last = Some(trace);
    }
    let most = config.budget.capacity / config.budget.transient_cost;
    assert!(retries > 0, "the budget allowed some retries");
    assert!(retries <= most, "{retries} retries, budget allows {most}");
    assert!(
        h.core.retry_budget() < config.budget.transient_cost,
        "the outage drained the budget"
    );
    let last = last.unwrap();
    assert_eq!(last.attempts.len(), 1, "no retry without budget");
    assert_eq!(last.give_up().stop, Stop::BudgetExhausted);
}

#[test]
fn row_503_breaker_opens_and_fails_fast_then_probes() {
    let mut config = PolicyConfig::default();
    config.breaker.when_open = WhenOpen::FailFast;
    let mut h = Harness::with(config.clone(), &[]);
    let first = h.call(chat(MODEL), |_| status(503, ""));
    assert_eq!(first.give_up().stop, Stop::AttemptsExhausted);
    assert_eq!(first.attempts.len() as u32, config.attempts.transient);
    let second = h.call(chat(MODEL), |_| status(503, ""));
    assert_eq!(
        (first.attempts.len() + second.attempts.len()) as u32,
        config.breaker.failure_threshold,
        "the breaker opened on the threshold's failure"
    );
    assert_eq!(second.give_up().stop, Stop::CircuitOpen);
    assert!(matches!(
        h.core.breaker(MODEL, h.now),
        BreakerState::Open { .. }
    ));

    // Open: calls fail fast, without sending.
    let rejected = h.call(chat(MODEL), |_| panic!("nothing is sent"));
    assert!(rejected.attempts.is_empty());
    let give_up = rejected.give_up();
    assert_eq!(give_up.stop, Stop::CircuitOpen);
    assert_eq!(give_up.attempts, 0);
    assert_eq!(rejected.error().kind(), ErrorKind::Unavailable);

    // Half-open: one probe at a time; its success closes the breaker.
    h.advance(config.breaker.open_for);
    let mut probe = h.start(chat(MODEL));
    let _ = h.send(&mut probe);
    let other = h.call(chat(MODEL), |_| panic!("nothing is sent"));
    assert!(other.attempts.is_empty(), "one probe at a time");
    assert_eq!(other.give_up().stop, Stop::CircuitOpen);
    let report = probe.handle_success(200, h.clock());
    assert_eq!(report.attempts, 1);
    assert_eq!(h.core.breaker(MODEL, h.now), BreakerState::Closed);
    let after = h.call(chat(MODEL), |_| ok());
    assert_eq!(after.report().attempts, 1);
}

#[test]
fn row_503_open_breaker_hands_over_to_the_fallback() {
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = 3;
    let mut h = Harness::with(config, &[FALLBACK]);
    let serve = |sent: &Sent| {
        if sent.model == MODEL {
            status(503, "")
        } else {
            ok()
        }
    };
    let trace = h.call(chat(MODEL), serve);
    assert_eq!(trace.models(), [MODEL, MODEL, MODEL, FALLBACK]);
    assert_eq!(
        trace.gaps()[2],
        Duration::ZERO,
        "the hand-over is immediate"
    );
    assert_eq!(trace.report().fell_back_from.as_deref(), Some(MODEL));

    // New calls skip the open primary at admission.
    let next = h.call(chat(MODEL), serve);
    assert_eq!(next.models(), [FALLBACK]);
    assert!(next.waits.is_empty());
    let report = next.report();
    assert_eq!(report.model, FALLBACK);
    assert_eq!(report.fell_back_from.as_deref(), Some(MODEL));
}

#[test]
fn row_504_on_a_buffered_call_switches_to_streaming_once() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| status(504, ""));
    let deliveries = trace.deliveries();
    assert_eq!(
        deliveries.len() as u32,
        PolicyConfig::default().attempts.transient + 1,
        "the buffered 504 does not count against the streamed attempts"
    );
    assert_eq!(deliveries[0], Delivery::Buffered);
    assert!(
        deliveries[1..].iter().all(|d| *d == Delivery::Streamed),
        "switched once and stayed streamed: {deliveries:?}"
    );
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::AttemptsExhausted);
    assert!(
        !give_up.advice.contains(&Escalation::SwitchToStreaming),
        "streaming was tried: {:?}",
        give_up.advice
    );
    assert_eq!(trace.error().kind(), ErrorKind::Unavailable);

    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(504, "")
        } else {
            ok()
        }
    });
    assert_eq!(trace.deliveries(), [Delivery::Buffered, Delivery::Streamed]);
    assert!(trace.report().switched_to_streaming);

    // A call that streams from the start has nothing to switch.
    let trace = h.call(chat_stream(MODEL), |sent| {
        if sent.number == 1 {
            status(504, "")
        } else {
            ok()
        }
    });
    assert_eq!(trace.deliveries(), [Delivery::Streamed, Delivery::Streamed]);
    assert!(!trace.report().switched_to_streaming);
}

#[test]
fn row_504_switch_can_be_turned_off() {
    let mut config = PolicyConfig::default();
    config.switch_to_streaming_on_timeout = false;
    let mut h = Harness::with(config, &[]);
    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(504, "")
        } else {
            ok()
        }
    });
    assert_eq!(trace.deliveries(), [Delivery::Buffered, Delivery::Buffered]);
    assert!(!trace.report().switched_to_streaming);
}

#[test]
fn row_other_4xx_is_not_retried_and_5xx_is() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        status(418, r#"{"message":"I'm a teapot"}"#)
    });
    assert_eq!(trace.attempts.len(), 1);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.advice.first(), Some(&Escalation::ReadMessage));
    assert!(
        give_up
            .to_string()
            .starts_with("418: an undocumented client-side error"),
        "{give_up}"
    );
    assert!(
        trace
            .error()
            .advice()
            .contains("\nserver said: I'm a teapot")
    );
    assert_eq!(trace.error().kind(), ErrorKind::Undocumented);

    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(502, "<html><title>502 Bad Gateway</title></html>")
        } else {
            ok()
        }
    });
    assert_eq!(trace.report().attempts, 2);
    assert_eq!(trace.waits.len(), 1);

    let trace = h.call(chat(MODEL), |_| status(777, ""));
    assert_eq!(trace.attempts.len(), 1);
    assert_eq!(trace.give_up().stop, Stop::NotAnHttpStatus);
    assert_eq!(trace.error().kind(), ErrorKind::Undocumented);
}

#[test]
fn row_transport_failures() {
    let limit = PolicyConfig::default().attempts.transport;
    for failure in [
        Transport::Connect,
        Transport::Reset,
        Transport::BodyRead,
        Transport::Other,
    ] {
        let mut h = Harness::new();
        let trace = h.call(chat_stream(MODEL), |_| transport(failure));
        assert_eq!(trace.attempts.len() as u32, limit, "{failure:?}");
        assert_eq!(trace.waits.len() as u32, limit - 1, "{failure:?}");
        let give_up = trace.give_up();
        assert_eq!(give_up.stop, Stop::AttemptsExhausted, "{failure:?}");
        assert_eq!(give_up.transport, Some(failure));
        let error = trace.error();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{failure:?}");
        let source = std::error::Error::source(error).expect("the HTTP client's error");
        assert_eq!(source.to_string(), "fake transport failure");

        let mut h = Harness::new();
        let trace = h.call(chat_stream(MODEL), |sent| {
            if sent.number == 1 {
                transport(failure)
            } else {
                ok()
            }
        });
        assert_eq!(trace.report().attempts, 2, "{failure:?}");
    }

    // A timeout before the headers is handled like a 504.
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            transport(Transport::TimeoutBeforeHeaders)
        } else {
            ok()
        }
    });
    assert_eq!(trace.deliveries(), [Delivery::Buffered, Delivery::Streamed]);
    assert!(trace.report().switched_to_streaming);

    let trace = h.call(chat(MODEL), |_| transport(Transport::Tls));
    assert_eq!(trace.attempts.len(), 1);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckBaseUrl));
}

#[test]
fn a_timeout_costs_more_budget_than_a_retry() {
    let h = Harness::new();
    let full = h.core.retry_budget();
    let mut call = h.start(chat_stream(MODEL));
    let _ = h.send(&mut call);
    call.handle_transport(Transport::TimeoutAfterHeaders, None, h.clock());
    let after_timeout = h.core.retry_budget();

    let mut call = h.start(chat_stream(FALLBACK));
    let _ = h.send(&mut call);
    call.handle_transport(Transport::Reset, None, h.clock());
    let budget = PolicyConfig::default().budget;
    assert_eq!(full - after_timeout, budget.timeout_cost);
    assert_eq!(after_timeout - h.core.retry_budget(), budget.transient_cost);
    assert!(budget.timeout_cost > budget.transient_cost);
}

#[test]
fn success_refunds_the_last_retry() {
    let mut h = Harness::new();
    let core = Arc::clone(&h.core);
    let full = core.retry_budget();
    let mut during = None;
    let trace = h.call(chat(MODEL), |sent| {
        if sent.number == 1 {
            status(503, "")
        } else {
            during = Some(core.retry_budget());
            ok()
        }
    });
    assert_eq!(trace.report().attempts, 2);
    assert_eq!(
        during,
        Some(full - PolicyConfig::default().budget.transient_cost),
        "the retry was paid for"
    );
    assert_eq!(h.core.retry_budget(), full, "and refunded on success");
}

#[test]
fn no_retry_crosses_the_deadline() {
    let deadline = secs(10);
    let mut config = PolicyConfig::default();
    config.deadline = Some(deadline);
    let mut h = Harness::with(config, &[]);
    let trace = h.call(chat(MODEL), |_| status(429, "").header("retry-after", "30"));
    assert_eq!(trace.attempts.len(), 1);
    assert!(trace.waits.is_empty(), "{:?}", trace.waits);
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::PastDeadline);
    assert_eq!(give_up.server_hint, Some(secs(30)));
    assert!(
        give_up.to_string().contains("server asked to wait 30 s"),
        "{give_up}"
    );

    // Slow failures: the call stops before a retry would start past the deadline.
    let trace = h.call(chat(FALLBACK), |_| status(503, "").took(secs(4)));
    let give_up = trace.give_up();
    assert_eq!(give_up.stop, Stop::PastDeadline);
    assert!(
        (trace.attempts.len() as u32) < PolicyConfig::default().attempts.transient,
        "the deadline, not the attempt limit, ended it"
    );
    for sent in &trace.attempts {
        assert!(sent.at - trace.started <= deadline, "{sent:?}");
    }
    assert!(give_up.elapsed >= deadline - secs(4), "{give_up}");
}

#[test]
fn give_ups_read_as_advice() {
    let mut h = Harness::new();
    let trace = h.call(chat(MODEL), |_| {
        novita(403, "NOT_ENOUGH_BALANCE", "insufficient balance").header("x-request-id", "abc")
    });
    let give_up = trace.give_up();
    let headline = "403 Forbidden (NOT_ENOUGH_BALANCE): the account's balance is too low to pay \
                    for this call; gave up after 1 attempt in 0 ms: retrying cannot fix this error";
    assert_eq!(give_up.to_string(), headline);
    let error = trace.error();
    assert_eq!(
        error.to_string(),
        format!(
            "{headline} (model {MODEL}); the API key came from the key passed to the client builder"
        )
    );
    let full = error.advice();
    assert!(
        full.starts_with(&format!("{headline}\nserver said: insufficient balance")),
        "{full}"
    );
    assert!(full.contains("\nrequest id: abc"), "{full}");
    assert!(
        full.contains("\nwhat to do:\n  - Top up the account balance"),
        "{full}"
    );
    assert!(full.contains(&format!("\nmodel: {MODEL}")), "{full}");

    // A give-up without a status says what failed instead.
    let trace = h.call(chat_stream(MODEL), |_| transport(Transport::Connect));
    let full = trace.error().advice();
    assert!(
        full.starts_with("could not connect to the server; gave up after 4 attempts"),
        "{full}"
    );
    assert!(full.contains("\n  - Check the base URL"), "{full}");
}

/// What calls run together came to: each call's result, and every attempt as (call, time
/// sent), in order.
type Together = (Vec<Result<Report, Error>>, Vec<(usize, Duration)>);

/// Drives `calls` together on the harness's clock until every one has ended, answering
/// each attempt with `serve(attempt, now)`.
fn run_together(
    h: &mut Harness,
    mut calls: Vec<CallDriver>,
    mut serve: impl FnMut(&Attempt, Duration) -> Reply,
) -> Together {
    let mut results: Vec<Option<Result<Report, Error>>> = calls.iter().map(|_| None).collect();
    let mut wake: Vec<Duration> = vec![h.now; calls.len()];
    let mut sent = Vec::new();
    for _ in 0..100_000 {
        let Some(next) = (0..calls.len())
            .filter(|&i| results[i].is_none())
            .min_by_key(|&i| (wake[i], i))
        else {
            return (results.into_iter().map(Option::unwrap).collect(), sent);
        };
        if wake[next] > h.now {
            let by = wake[next] - h.now;
            h.advance(by);
        }
        match calls[next].poll(h.now) {
            Poll::Send(attempt) => {
                sent.push((next, h.now));
                let reply = serve(&attempt, h.now);
                let clock = h.clock();
                match reply.kind {
                    ReplyKind::Status { status, .. } if status < 400 => {
                        results[next] = Some(Ok(calls[next].handle_success(status, clock)));
                    }
                    ReplyKind::Status {
                        status,
                        headers,
                        body,
                    } => calls[next].handle_response(status, &headers, body.as_bytes(), clock),
                    ReplyKind::Transport(failure) => {
                        calls[next].handle_transport(failure, None, clock);
                    }
                }
            }
            Poll::Wait(wait) => {
                assert!(!wait.is_zero(), "a zero wait would spin the adapter");
                wake[next] = h.now + wait;
            }
            Poll::Failed(error) => results[next] = Some(Err(error)),
            Poll::Share(_) => panic!("these clients have no store"),
        }
    }
    panic!("the calls did not end");
}

#[test]
fn row_503_an_open_breaker_holds_calls_through_an_outage_then_releases_them_in_order() {
    let mut h = Harness::new();
    let outage_ends = h.now + secs(20);
    let calls: Vec<CallDriver> = (0..16).map(|_| h.start(chat(MODEL))).collect();
    let mut outage_requests = 0;
    let (results, sent) = run_together(&mut h, calls, |_, now| {
        if now < outage_ends {
            outage_requests += 1;
            status(503, "")
        } else {
            ok()
        }
    });
    assert!(
        results.iter().all(Result::is_ok),
        "every call rides out a 20 s outage within its deadline: {results:?}"
    );
    assert!(
        outage_requests <= 16 + 10,
        "the breaker keeps the outage from multiplying load: {outage_requests} requests"
    );
    // Probes back off: the open periods grow.
    let during: Vec<Duration> = sent
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at < outage_ends)
        .collect();
    let probe_gaps: Vec<Duration> = during
        .windows(2)
        .map(|w| w[1] - w[0])
        .rev()
        .take(3)
        .collect();
    assert!(
        probe_gaps[0] > probe_gaps[2],
        "probes back off: {probe_gaps:?}"
    );
    // After the probe succeeds, the held calls go out paced and oldest first.
    let released: Vec<(usize, Duration)> = sent
        .iter()
        .copied()
        .filter(|(_, at)| *at >= outage_ends)
        .collect();
    assert_eq!(released.len(), 16);
    let spread = released.last().unwrap().1 - released[1].1;
    assert!(spread >= ms(500), "not a herd: {released:?}");
    assert_eq!(h.core.held(MODEL), 0);
}

#[test]
fn row_503_a_held_call_never_waits_past_its_deadline() {
    let mut config = PolicyConfig::default();
    config.deadline = Some(secs(5));
    let mut h = Harness::with(config, &[]);
    let trace = h.call(chat(MODEL), |_| status(503, ""));
    let first = trace.give_up();
    assert!(trace.started + secs(5) >= h.now, "{first}");
    let held = h.call(chat(MODEL), |_| status(503, ""));
    let give_up = held.give_up();
    assert_eq!(held.error().kind(), ErrorKind::Unavailable);
    assert!(give_up.elapsed <= secs(5), "{give_up}");
}

#[test]
fn row_504_concurrent_timeouts_never_close_the_streaming_path() {
    let mut h = Harness::new();
    let calls: Vec<CallDriver> = (0..16).map(|_| h.start(chat(MODEL))).collect();
    let (results, _) = run_together(&mut h, calls, |attempt, _| match attempt.delivery {
        Delivery::Buffered => status(504, ""),
        Delivery::Streamed => ok(),
    });
    for result in &results {
        let report = result.as_ref().expect("every call answers by streaming");
        assert!(report.switched_to_streaming);
        assert_eq!(report.model, MODEL, "no fallback was needed");
    }
    assert_eq!(h.core.breaker(MODEL, h.now), BreakerState::Closed);
}

#[test]
fn row_500_maintenance_sends_later_calls_straight_to_the_fallback() {
    let mut h = Harness::with(PolicyConfig::default(), &[FALLBACK]);
    let serve = |sent: &Sent| {
        if sent.model == MODEL {
            novita(500, "MODEL_NOT_AVAILABLE", "model under maintenance")
        } else {
            ok()
        }
    };
    let first = h.call(chat(MODEL), serve);
    assert_eq!(first.models(), [MODEL, FALLBACK]);
    let second = h.call(chat(MODEL), serve);
    assert_eq!(second.models(), [FALLBACK], "the primary is passed over");
    assert_eq!(second.report().fell_back_from.as_deref(), Some(MODEL));
    // After the maintenance window one call probes the primary again.
    h.advance(PolicyConfig::default().breaker.maintenance_for);
    let probe = h.call(chat(MODEL), |_| ok());
    assert_eq!(probe.models(), [MODEL]);
    let after = h.call(chat(MODEL), |_| ok());
    assert_eq!(after.models(), [MODEL]);
}

#[test]
fn row_503_held_calls_do_not_spin_while_the_probe_is_out() {
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = 1;
    let mut h = Harness::with(config.clone(), &[]);
    let mut first = h.start(chat(MODEL));
    let _ = h.send(&mut first);
    first.handle_response(503, &NO_HEADERS, b"", h.clock());
    h.advance(config.breaker.open_for);
    // The probe goes out and takes its time; the calls behind it wait in line.
    let mut probe = h.start(chat(MODEL));
    let _ = h.send(&mut probe);
    let mut held: Vec<CallDriver> = (0..16).map(|_| h.start(chat(MODEL))).collect();
    for call in &mut held {
        let wait = h.wait(call);
        assert!(
            wait >= ms(100),
            "a held call polls, it does not spin: {wait:?}"
        );
    }
    // The probe succeeds: the line leaves oldest first, paced, none spinning.
    let report = probe.handle_success(200, h.clock());
    assert_eq!(report.attempts, 1);
    let mut order = Vec::new();
    let mut polls = 0;
    let released = h.now;
    let mut call_wakes = std::collections::HashMap::new();
    for _ in 0..2_000 {
        if order.len() == held.len() {
            break;
        }
        let mut soonest = secs(1);
        for (index, call) in held.iter_mut().enumerate() {
            if order.contains(&index) {
                continue;
            }
            if call_wakes.get(&index).is_some_and(|at| *at > h.now) {
                soonest = soonest.min(call_wakes[&index] - h.now);
                continue;
            }
            polls += 1;
            match call.poll(h.now) {
                Poll::Send(_) => {
                    order.push(index);
                    let _ = call.handle_success(200, h.clock());
                }
                Poll::Wait(wait) => {
                    call_wakes.insert(index, h.now + wait);
                    soonest = soonest.min(wait);
                }
                Poll::Failed(error) => panic!("{error}"),
                Poll::Share(_) => panic!("these clients have no store"),
            }
        }
        h.advance(soonest);
    }
    assert_eq!(order, (0..16).collect::<Vec<_>>(), "oldest first");
    let took = h.now - released;
    assert!(took >= ms(500), "released paced, not as a herd: {took:?}");
    // Each call asks about once per slot ahead of it, not every millisecond.
    assert!(polls <= 16 * 16 * 2, "{polls} polls in {took:?}");
}

/// One call meets two 503s in a row, which opens a breaker whose threshold is 2; the call
/// is left waiting behind it.
fn fail_twice_in_a_row(h: &mut Harness) {
    let mut first = h.start(chat(MODEL));
    for _ in 0..2 {
        loop {
            match first.poll(h.now) {
                Poll::Send(_) => break,
                Poll::Wait(wait) => h.advance(wait),
                other => panic!("{other:?}"),
            }
        }
        first.handle_response(503, &NO_HEADERS, b"", h.clock());
    }
    assert!(matches!(
        h.core.breaker(MODEL, h.now),
        BreakerState::Open { .. }
    ));
}

#[test]
fn row_503_after_an_outage_a_burst_of_503s_is_one_signal() {
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = 2;
    let mut h = Harness::with(config.clone(), &[]);
    // An outage opens the breaker; a probe finds the model back.
    fail_twice_in_a_row(&mut h);
    h.advance(config.breaker.open_for);
    let mut probe = h.start(chat(MODEL));
    let _ = h.send(&mut probe);
    let _ = probe.handle_success(200, h.clock());
    // Sixteen calls go out at the release's pace and all meet an overloaded server.
    let full = h.core.retry_budget();
    let mut calls: Vec<CallDriver> = (0..16).map(|_| h.start(chat(MODEL))).collect();
    for call in &mut calls {
        loop {
            match call.poll(h.now) {
                Poll::Send(_) => break,
                Poll::Wait(wait) => h.advance(wait),
                other => panic!("{other:?}"),
            }
        }
    }
    h.advance(ms(20));
    let clock = h.clock();
    calls[0].handle_response(503, &NO_HEADERS, b"", clock);
    let slowed = h.core.pacing(MODEL, h.now);
    for call in &mut calls[1..] {
        call.handle_response(503, &NO_HEADERS, b"", clock);
    }
    assert_eq!(
        h.core.pacing(MODEL, h.now),
        slowed,
        "the other fifteen 503s belong to the same congestion event"
    );
    assert_eq!(
        h.core.breaker(MODEL, h.now),
        BreakerState::Closed,
        "sixteen 503s of one burst count once, below the breaker's threshold of 2"
    );
    assert_eq!(
        full - h.core.retry_budget(),
        16 * config.budget.throttled_cost,
        "a retry that waits for a paced slot costs what a throttled retry costs"
    );
    // Every call then goes out again at the paced rate, and succeeds.
    let (results, sent) = run_together(&mut h, calls, |_, _| ok());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let spread = sent.last().unwrap().1 - sent.first().unwrap().1;
    assert!(spread >= slowed * 10, "paced, not at once: {sent:?}");
}

#[test]
fn row_503_while_429s_pace_the_model_stays_a_transient_failure() {
    let config = PolicyConfig::default();
    let mut h = Harness::new();
    let full = h.core.retry_budget();
    let mut throttled = h.start(chat(MODEL));
    let mut failing = h.start(chat(MODEL));
    let _ = h.send(&mut throttled);
    let _ = h.send(&mut failing);
    h.advance(ms(20));
    throttled.handle_response(429, &NO_HEADERS, b"", h.clock());
    assert!(
        h.core.pacing(MODEL, h.now) > Duration::ZERO,
        "the 429 paces the model"
    );
    // A 503 on a paced model is no congestion signal unless the model is back from an
    // outage: random 503s would otherwise drive the rate down every round trip.
    failing.handle_response(503, &NO_HEADERS, b"", h.clock());
    assert_eq!(
        full - h.core.retry_budget(),
        config.budget.throttled_cost + config.budget.transient_cost,
        "the 503's retry is a transient one"
    );
}

#[test]
fn row_503_the_youngest_held_call_probes_and_the_oldest_keep_their_place() {
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = 2;
    // Released calls go a second apart, longer than a first backoff.
    config.pacing.release_rate = 1.0;
    let mut h = Harness::with(config.clone(), &[]);
    fail_twice_in_a_row(&mut h);
    // Three calls are held, arriving half a second apart.
    let mut oldest = h.start(chat(MODEL));
    let _ = h.wait(&mut oldest);
    h.advance(ms(500));
    let mut middle = h.start(chat(MODEL));
    let _ = h.wait(&mut middle);
    h.advance(ms(500));
    let mut youngest = h.start(chat(MODEL));
    let _ = h.wait(&mut youngest);
    // The breaker half-opens: the youngest carries the probe, whoever asks first.
    h.advance(config.breaker.open_for);
    let oldest_wakes = h.now + h.wait(&mut oldest);
    let middle_wakes = h.now + h.wait(&mut middle);
    let _ = h.send(&mut youngest);
    h.advance(ms(100));
    let probe = youngest.handle_success(200, h.clock());
    assert_eq!(probe.attempts, 1);
    // Released oldest first; the oldest fails again on the overloaded server.
    h.advance(oldest_wakes.max(middle_wakes) - h.now);
    let _ = h.send(&mut oldest);
    let mut middle_wakes = h.now + h.wait(&mut middle);
    h.advance(ms(100));
    oldest.handle_response(503, &NO_HEADERS, b"", h.clock());
    let mut oldest_wakes = h.now;
    // Back from its backoff, the oldest takes its place again ahead of the middle call.
    let mut order = Vec::new();
    while order.len() < 2 {
        let (name, call, wakes) = if !order.contains(&"oldest")
            && (order.contains(&"middle") || oldest_wakes <= middle_wakes)
        {
            ("oldest", &mut oldest, &mut oldest_wakes)
        } else {
            ("middle", &mut middle, &mut middle_wakes)
        };
        h.advance(wakes.saturating_sub(h.now));
        let polled = call.poll(h.now);
        match polled {
            Poll::Send(_) => {
                order.push(name);
                let _ = call.handle_success(200, h.clock());
            }
            Poll::Wait(wait) => *wakes = h.now + wait,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        order,
        ["oldest", "middle"],
        "oldest first: earliest deadline first"
    );
}

/// A configuration limiting [`MODEL`] to `rpm` requests and `tpm` tokens a minute.
fn limited(rpm: Option<u64>, tpm: Option<u64>) -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config
        .limits
        .insert(MODEL.to_owned(), ModelLimits::new(rpm, tpm));
    config
}

#[test]
fn limits_spread_calls_so_no_minute_sees_more_than_rpm() {
    let mut h = Harness::with(limited(Some(6), None), &[]);
    let calls: Vec<CallDriver> = (0..20).map(|_| h.start(chat(MODEL))).collect();
    let (results, sent) = run_together(&mut h, calls, |_, _| ok());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let times: Vec<Duration> = sent.iter().map(|(_, at)| *at).collect();
    assert_eq!(times.len(), 20, "one attempt each, no 429 provoked");
    let most_in_a_minute = times
        .iter()
        .map(|&from| {
            times
                .iter()
                .filter(|&&at| at >= from && at < from + secs(60))
                .count()
        })
        .max();
    assert_eq!(most_in_a_minute, Some(6), "{times:?}");
    // Evenly spaced at 60 s / 6, starting at once.
    assert_eq!(times[0], START);
    assert!(
        times.windows(2).all(|pair| pair[1] - pair[0] == secs(10)),
        "{times:?}"
    );
    // The waits are counted in the reports.
    let last = results.last().unwrap().as_ref().unwrap();
    assert_eq!(last.waited, secs(190));
}

#[test]
fn limits_charge_estimated_tokens_and_correct_them_from_usage() {
    // 6,000 tokens a minute: 10 ms a token. Each call: "Hello" (2 tokens) + max_tokens 998.
    let mut h = Harness::with(limited(None, Some(6_000)), &[]);
    let mut request = ChatRequest::new(MODEL, "Hello");
    request.max_tokens = Some(998);
    let request = Request::chat(&request);
    assert_eq!(request.estimated_tokens(), 1_000);

    let mut first = h.start(request.clone());
    let _ = h.send(&mut first);
    let _ = first.handle_success(200, h.clock());
    let mut second = h.start(request.clone());
    assert_eq!(
        h.wait(&mut second),
        secs(10),
        "the estimate of the first holds it"
    );
    // The first answer used 400 tokens: 6 s of the wait go for a call asking now (the
    // second sleeps what it was told, then asks again).
    first.handle_usage(&Usage::new(2, 398), h.now);
    first.handle_usage(&Usage::new(2, 398), h.now);
    let mut third = h.start(request.clone());
    assert_eq!(h.wait(&mut third), secs(4), "corrected once");
    h.advance(secs(4));
    let _ = h.send(&mut third);
    h.advance(secs(6));
    assert_eq!(
        h.wait(&mut second),
        secs(4),
        "behind the third, which went first"
    );

    // A call the limit would hold past its deadline gives up as rate limited, at once.
    let mut config = limited(None, Some(6_000));
    config.deadline = Some(secs(5));
    let mut h = Harness::with(config, &[]);
    let trace = h.call(request.clone(), |_| ok());
    assert!(trace.result.is_ok());
    let held = h.call(request, |_| ok());
    assert_eq!(held.error().kind(), ErrorKind::RateLimited);
    let give_up = held.give_up();
    assert_eq!(give_up.stop, Stop::PastDeadline);
    assert_eq!(give_up.rate_limit, Some(RateLimit::TokensPerMinute));
    assert!(held.attempts.is_empty());
    assert!(give_up.advice.contains(&Escalation::ReduceTokens));
}
