//! One test per row of DESIGN.md's behaviour table, on virtual time with a seeded RNG.

use std::time::{Duration, SystemTime};

use novita_policy::catalog::{Escalation, RateLimit};
use novita_policy::{
    Action, Admission, BreakerState, Call, ClientState, Clock, Decision, Delivery, GiveUp, Outcome,
    Policy, PolicyConfig, SplitMix64, Stop, Transport,
};

const MODEL: &str = "primary-model";
const FALLBACK: &str = "fallback-model";

/// A client on virtual time: admits, decides, and advances the clock by every wait.
struct Client {
    policy: Policy,
    state: ClientState,
    rng: SplitMix64,
    now: Duration,
    wall: SystemTime,
    models: Vec<&'static str>,
}

impl Client {
    fn new() -> Self {
        Self::with(PolicyConfig::default(), &[MODEL])
    }

    fn with(config: PolicyConfig, models: &[&'static str]) -> Self {
        let policy = Policy::new(config);
        Self {
            state: policy.client_state(),
            policy,
            rng: SplitMix64::new(7),
            now: Duration::from_secs(100),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200),
            models: models.to_vec(),
        }
    }

    fn call(&self) -> Call {
        self.policy
            .start_call(self.now, Delivery::Buffered, self.models.len())
    }

    fn streaming_call(&self) -> Call {
        self.policy
            .start_call(self.now, Delivery::Streamed, self.models.len())
    }

    /// Admits `call`, sleeping (on virtual time) through every wait and following every
    /// fallback, as an adapter does.
    fn admit(&mut self, call: &mut Call) -> Admission {
        loop {
            let key = self.models[call.model()];
            match self.policy.admit(&mut self.state, call, key, self.now) {
                Admission::Wait(wait) => self.now += wait,
                Admission::FallBack { .. } => {}
                other => return other,
            }
        }
    }

    fn respond(
        &mut self,
        call: &mut Call,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Decision {
        let outcome = Outcome::Response {
            status,
            headers: &headers,
            body: body.as_bytes(),
        };
        self.decide(call, &outcome)
    }

    fn fail(&mut self, call: &mut Call, transport: Transport) -> Decision {
        self.decide(call, &Outcome::Transport(transport))
    }

    fn decide(&mut self, call: &mut Call, outcome: &Outcome<'_>) -> Decision {
        let key = self.models[call.model()];
        let clock = Clock {
            now: self.now,
            wall: self.wall,
        };
        let decision =
            self.policy
                .decide(&mut self.state, call, key, outcome, clock, self.rng.draw());
        if let Some(delay) = decision.delay() {
            self.now += delay;
            self.wall += delay;
        }
        decision
    }

    /// Sends `call` until the policy stops, answering every attempt with `answer`.
    fn run(
        &mut self,
        call: &mut Call,
        mut answer: impl FnMut(u32) -> (u16, Vec<(&'static str, String)>, String),
    ) -> (Vec<Decision>, Option<Box<GiveUp>>) {
        let mut decisions = Vec::new();
        loop {
            if let Admission::Reject(give_up) = self.admit(call) {
                return (decisions, Some(give_up));
            }
            let (status, headers, body) = answer(call.attempts());
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let decision = self.respond(call, status, &headers, &body);
            match decision {
                Decision::Done => {
                    decisions.push(decision);
                    return (decisions, None);
                }
                Decision::GiveUp(give_up) => return (decisions, Some(give_up)),
                other => decisions.push(other),
            }
        }
    }
}

fn novita(code: u16, reason: &str, message: &str) -> String {
    format!(r#"{{"code":{code},"reason":"{reason}","message":"{message}","metadata":{{}}}}"#)
}

fn expect_give_up(decision: Decision) -> Box<GiveUp> {
    match decision {
        Decision::GiveUp(give_up) => give_up,
        other => panic!("expected a give-up, got {other:?}"),
    }
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

#[test]
fn row_400_is_never_retried_and_quotes_the_message() {
    let mut client = Client::new();
    let mut call = client.call();
    let body = novita(
        400,
        "INVALID_REQUEST_BODY",
        "temperature must be between 0 and 2",
    );
    let give_up = expect_give_up(client.respond(&mut call, 400, &[], &body));
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.attempts, 1);
    assert_eq!(
        give_up.message.as_deref(),
        Some("temperature must be between 0 and 2")
    );
    assert_eq!(give_up.advice.first(), Some(&Escalation::FixRequest));
    let text = format!("{give_up:#}");
    assert!(
        text.contains("server said: temperature must be between 0 and 2"),
        "{text}"
    );
}

#[test]
fn row_401_is_never_retried_and_points_at_the_key() {
    let mut client = Client::new();
    let mut call = client.call();
    let give_up = expect_give_up(client.respond(
        &mut call,
        401,
        &[],
        &novita(401, "FAILED_TO_AUTH", "invalid key"),
    ));
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.attempts, 1);
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckCredentials));
}

#[test]
fn row_403_advice_depends_on_the_reason() {
    let cases = [
        ("INVALID_API_KEY", Escalation::SetApiKey, None),
        (
            "NOT_ENOUGH_BALANCE",
            Escalation::TopUpBalance,
            Some(Escalation::VerifyIdentity),
        ),
        (
            "ACCESS_DENY",
            Escalation::VerifyIdentity,
            Some(Escalation::TopUpBalance),
        ),
        (
            "SOMETHING_NEW",
            Escalation::VerifyIdentity,
            Some(Escalation::TopUpBalance),
        ),
    ];
    for (reason, first, absent) in cases {
        let mut client = Client::new();
        let mut call = client.call();
        let give_up =
            expect_give_up(client.respond(&mut call, 403, &[], &novita(403, reason, "denied")));
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
    }
}

#[test]
fn row_404_tells_a_missing_model_from_a_wrong_url() {
    let mut client = Client::new();
    let mut call = client.call();
    let body = novita(404, "MODEL_NOT_FOUND", "model foo/bar not found");
    let give_up = expect_give_up(client.respond(&mut call, 404, &[], &body));
    assert_eq!(
        give_up.advice,
        [Escalation::CheckModelName, Escalation::ListModels]
    );

    let mut call = client.call();
    let give_up = expect_give_up(client.respond(&mut call, 404, &[], "404 page not found"));
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckBaseUrl));
    assert_eq!(give_up.message.as_deref(), Some("404 page not found"));
}

#[test]
fn row_429_waits_exactly_as_long_as_each_hint_form_asks() {
    let date =
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200 + 7));
    let cases: [(&str, &str, Duration); 4] = [
        ("retry-after", "3", secs(3)),
        ("retry-after", date.as_str(), secs(7)),
        ("retry-after-ms", "1500", Duration::from_millis(1500)),
        ("Retry-After", " 2 ", secs(2)),
    ];
    for (name, value, expected) in cases {
        let mut client = Client::new();
        let mut call = client.call();
        let body = novita(429, "RATE_LIMIT_EXCEEDED", "too many requests");
        match client.respond(&mut call, 429, &[(name, value)], &body) {
            Decision::Retry { delay, cause } => {
                assert_eq!(delay, expected, "{name}: {value}");
                assert_eq!(cause.server_hint, Some(expected));
                assert_eq!(cause.rate_limit, Some(RateLimit::RequestsPerMinute));
            }
            other => panic!("{name}: {value}: {other:?}"),
        }
    }
}

#[test]
fn row_429_hint_blocks_other_calls_to_the_model() {
    let mut client = Client::new();
    let mut first = client.call();
    let start = client.now;
    let decision = {
        let clock = Clock {
            now: start,
            wall: client.wall,
        };
        let outcome = Outcome::Response {
            status: 429,
            headers: &[("retry-after", "4")],
            body: b"",
        };
        client.policy.decide(
            &mut client.state,
            &mut first,
            MODEL,
            &outcome,
            clock,
            client.rng.draw(),
        )
    };
    assert_eq!(decision.delay(), Some(secs(4)));
    // A second call starting a second later waits out the rest of the hint.
    let mut second = client
        .policy
        .start_call(start + secs(1), Delivery::Buffered, 1);
    let admission = client
        .policy
        .admit(&mut client.state, &mut second, MODEL, start + secs(1));
    assert_eq!(admission, Admission::Wait(secs(3)));
}

#[test]
fn row_429_tells_tpm_from_rpm_and_advises_fewer_tokens() {
    let sources: [(&[(&str, &str)], &str); 3] = [
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
    for (headers, body) in sources {
        let mut config = PolicyConfig::default();
        config.attempts.throttled = 1;
        let mut client = Client::with(config, &[MODEL]);
        let mut call = client.call();
        let give_up = expect_give_up(client.respond(&mut call, 429, headers, body));
        assert_eq!(
            give_up.rate_limit,
            Some(RateLimit::TokensPerMinute),
            "{body}"
        );
        assert_eq!(
            give_up.advice.first(),
            Some(&Escalation::ReduceTokens),
            "{body}"
        );
        assert!(give_up.to_string().contains("TPM"), "{give_up}");
    }
}

#[test]
fn row_429_gives_up_at_once_on_an_absurd_hint() {
    let mut client = Client::new();
    let mut call = client.call();
    let give_up = expect_give_up(client.respond(&mut call, 429, &[("retry-after", "86400")], ""));
    assert_eq!(give_up.stop, Stop::HintAboveCeiling);
    assert_eq!(give_up.server_hint, Some(secs(86_400)));
    assert_eq!(give_up.attempts, 1);
    assert!(
        give_up
            .to_string()
            .contains("server asked to wait 24 h 0 min"),
        "{give_up}"
    );
}

#[test]
fn row_429_repeated_slows_down_then_advises_a_higher_limit() {
    let mut client = Client::new();
    let mut call = client.call();
    let body = novita(429, "RATE_LIMIT_EXCEEDED", "too many requests");
    let (decisions, give_up) = client.run(&mut call, |_| (429, vec![], body.clone()));
    let give_up = give_up.expect("gives up");
    assert!(
        decisions.iter().any(|d| matches!(
            d,
            Decision::Escalate {
                action: Action::ReduceRate { .. },
                ..
            }
        )),
        "{decisions:?}"
    );
    assert!(client.state.pacing_interval(MODEL) > Duration::ZERO);
    assert_eq!(give_up.stop, Stop::AttemptsExhausted);
    assert_eq!(give_up.attempts, PolicyConfig::default().attempts.throttled);
    assert!(give_up.advice.contains(&Escalation::ReduceRate));
    assert!(give_up.advice.contains(&Escalation::RequestHigherLimit));
}

#[test]
fn row_500_retries_once_then_falls_back() {
    let mut client = Client::with(PolicyConfig::default(), &[MODEL, FALLBACK]);
    let mut call = client.call();
    let body = novita(500, "INTERNAL_SERVER_ERROR", "engine crashed");
    assert!(matches!(
        client.respond(&mut call, 500, &[], &body),
        Decision::Retry { .. }
    ));
    let decision = client.respond(&mut call, 500, &[], &body);
    assert!(
        matches!(
            decision,
            Decision::Escalate {
                action: Action::FallBack { model: 1 },
                ..
            }
        ),
        "{decision:?}"
    );
    assert_eq!(call.model(), 1);
    assert_eq!(client.respond(&mut call, 200, &[], ""), Decision::Done);
}

#[test]
fn row_500_model_in_maintenance_falls_back_at_once() {
    let mut client = Client::with(PolicyConfig::default(), &[MODEL, FALLBACK]);
    let mut call = client.call();
    let body = novita(500, "MODEL_NOT_AVAILABLE", "model under maintenance");
    let decision = client.respond(&mut call, 500, &[], &body);
    assert_eq!(decision.delay(), Some(Duration::ZERO));
    assert!(
        matches!(
            decision,
            Decision::Escalate {
                action: Action::FallBack { model: 1 },
                ..
            }
        ),
        "{decision:?}"
    );
}

#[test]
fn row_500_without_fallback_gives_up_with_the_request_id() {
    let mut client = Client::new();
    let mut call = client.call();
    let (_, give_up) = client.run(&mut call, |_| {
        (
            500,
            vec![("x-request-id", "req-42".to_owned())],
            novita(500, "INTERNAL_SERVER_ERROR", "crash"),
        )
    });
    let give_up = give_up.unwrap();
    assert_eq!(give_up.stop, Stop::AttemptsExhausted);
    assert_eq!(give_up.attempts, 2);
    assert_eq!(give_up.request_id.as_deref(), Some("req-42"));
    assert!(give_up.advice.contains(&Escalation::ContactSupport));
    assert!(format!("{give_up:#}").contains("request id: req-42"));
}

#[test]
fn row_503_backs_off_with_jitter_under_the_cap_then_succeeds() {
    let mut client = Client::new();
    let mut call = client.call();
    let (decisions, give_up) = client.run(&mut call, |attempt| {
        if attempt < 3 {
            (503, vec![], novita(503, "SERVICE_NOT_AVAILABLE", "busy"))
        } else {
            (200, vec![], String::new())
        }
    });
    assert!(give_up.is_none());
    assert_eq!(decisions.len(), 4);
    for decision in &decisions[..3] {
        let Decision::Retry { delay, cause } = decision else {
            panic!("{decision:?}")
        };
        assert!(*delay <= PolicyConfig::default().backoff.cap);
        assert_eq!(cause.status, Some(503));
    }
}

#[test]
fn row_503_respects_a_retry_after_beside_backoff() {
    let mut client = Client::new();
    let mut call = client.call();
    let decision = client.respond(&mut call, 503, &[("retry-after", "5")], "");
    assert!(decision.delay().unwrap() >= secs(5));
}

#[test]
fn row_503_outage_is_bounded_by_the_budget() {
    // Breakers that never open, so that the budget alone has to hold the line.
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = u32::MAX;
    let mut client = Client::with(config.clone(), &[MODEL]);
    let mut retries = 0_u32;
    let calls = 200_u32;
    for index in 0..calls {
        client.models = vec![["a", "b", "c", "d", "e", "f", "g", "h"][index as usize % 8]];
        let mut call = client.call();
        let (_, give_up) = client.run(&mut call, |attempt| {
            retries += u32::from(attempt > 0);
            (503, vec![], String::new())
        });
        assert!(give_up.is_some());
    }
    let most = config.budget.capacity / config.budget.retry_cost;
    assert!(retries <= most, "{retries} retries, budget allows {most}");
    assert!(
        client.state.budget().tokens() < config.budget.retry_cost,
        "the outage drained the budget"
    );
}

#[test]
fn row_503_breaker_opens_and_fails_fast_then_probes() {
    let mut client = Client::new();
    for _ in 0..2 {
        let mut call = client.call();
        client.run(&mut call, |_| (503, vec![], String::new()));
    }
    assert!(matches!(
        client.state.breaker(MODEL, client.now),
        BreakerState::Open { .. }
    ));
    let mut call = client.call();
    let Admission::Reject(give_up) = client.admit(&mut call) else {
        panic!("expected fail-fast")
    };
    assert_eq!(give_up.stop, Stop::CircuitOpen);
    assert_eq!(give_up.attempts, 0);

    client.now += PolicyConfig::default().breaker.open_for;
    let mut probe = client.call();
    assert!(matches!(client.admit(&mut probe), Admission::Send));
    let mut other = client.call();
    assert!(
        matches!(client.admit(&mut other), Admission::Reject(_)),
        "one probe at a time"
    );
    assert_eq!(client.respond(&mut probe, 200, &[], ""), Decision::Done);
    assert_eq!(
        client.state.breaker(MODEL, client.now),
        BreakerState::Closed
    );
}

#[test]
fn row_503_open_breaker_hands_over_to_the_fallback() {
    let mut config = PolicyConfig::default();
    config.breaker.failure_threshold = 3;
    let mut client = Client::with(config, &[MODEL, FALLBACK]);
    let mut call = client.call();
    let (decisions, give_up) = client.run(&mut call, |attempt| {
        if attempt < 3 {
            (503, vec![], String::new())
        } else {
            (200, vec![], String::new())
        }
    });
    assert!(give_up.is_none(), "{give_up:?}");
    assert!(decisions.iter().any(|d| matches!(
        d,
        Decision::Escalate {
            action: Action::FallBack { model: 1 },
            ..
        }
    )));
    // New calls skip the open primary at admission.
    let mut next = client.call();
    assert!(matches!(client.admit(&mut next), Admission::Send));
    assert_eq!(next.model(), 1);
}

#[test]
fn row_504_on_a_buffered_call_switches_to_streaming_once() {
    let mut client = Client::new();
    let mut call = client.call();
    let decision = client.respond(&mut call, 504, &[], "");
    assert!(
        matches!(
            decision,
            Decision::Escalate {
                action: Action::SwitchToStreaming,
                ..
            }
        ),
        "{decision:?}"
    );
    assert_eq!(call.delivery(), Delivery::Streamed);
    let decision = client.respond(&mut call, 504, &[], "");
    assert!(matches!(decision, Decision::Retry { .. }), "{decision:?}");

    let mut streamed = client.streaming_call();
    assert!(matches!(
        client.respond(&mut streamed, 504, &[], ""),
        Decision::Retry { .. }
    ));
}

#[test]
fn row_504_switch_can_be_turned_off() {
    let mut config = PolicyConfig::default();
    config.switch_to_streaming_on_timeout = false;
    let mut client = Client::with(config, &[MODEL]);
    let mut call = client.call();
    assert!(matches!(
        client.respond(&mut call, 504, &[], ""),
        Decision::Retry { .. }
    ));
    assert_eq!(call.delivery(), Delivery::Buffered);
}

#[test]
fn row_other_4xx_is_not_retried_and_5xx_is() {
    let mut client = Client::new();
    let mut call = client.call();
    let give_up =
        expect_give_up(client.respond(&mut call, 418, &[], r#"{"message":"I'm a teapot"}"#));
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.advice.first(), Some(&Escalation::ReadMessage));
    assert!(
        give_up
            .to_string()
            .starts_with("418: an undocumented client-side error"),
        "{give_up}"
    );

    let mut call = client.call();
    assert!(matches!(
        client.respond(
            &mut call,
            502,
            &[],
            "<html><title>502 Bad Gateway</title></html>"
        ),
        Decision::Retry { .. }
    ));

    let mut call = client.call();
    let give_up = expect_give_up(client.respond(&mut call, 777, &[], ""));
    assert_eq!(give_up.stop, Stop::NotAnHttpStatus);
}

#[test]
fn row_transport_failures() {
    for transport in [
        Transport::Connect,
        Transport::Reset,
        Transport::BodyRead,
        Transport::Other,
    ] {
        let mut client = Client::new();
        let mut call = client.streaming_call();
        let decision = client.fail(&mut call, transport);
        assert!(
            matches!(decision, Decision::Retry { cause, .. } if cause.transport == Some(transport)),
            "{transport:?}"
        );
    }
    let mut client = Client::new();
    let mut call = client.call();
    let decision = client.fail(&mut call, Transport::TimeoutBeforeHeaders);
    assert!(
        matches!(
            decision,
            Decision::Escalate {
                action: Action::SwitchToStreaming,
                ..
            }
        ),
        "{decision:?}"
    );

    let mut call = client.call();
    let give_up = expect_give_up(client.fail(&mut call, Transport::Tls));
    assert_eq!(give_up.stop, Stop::NotRetryable);
    assert_eq!(give_up.advice.first(), Some(&Escalation::CheckBaseUrl));
}

#[test]
fn a_timeout_costs_more_budget_than_a_retry() {
    let mut client = Client::new();
    let full = client.state.budget().tokens();
    let mut call = client.streaming_call();
    client.fail(&mut call, Transport::TimeoutAfterHeaders);
    let after_timeout = client.state.budget().tokens();
    let mut call = client.streaming_call();
    client.fail(&mut call, Transport::Reset);
    assert_eq!(full - after_timeout, 10);
    assert_eq!(after_timeout - client.state.budget().tokens(), 5);
}

#[test]
fn success_refunds_the_last_retry() {
    let mut client = Client::new();
    let full = client.state.budget().tokens();
    let mut call = client.call();
    client.respond(&mut call, 503, &[], "");
    assert_eq!(client.state.budget().tokens(), full - 5);
    client.respond(&mut call, 200, &[], "");
    assert_eq!(client.state.budget().tokens(), full);
}

#[test]
fn no_retry_crosses_the_deadline() {
    let mut config = PolicyConfig::default();
    config.deadline = Some(secs(10));
    let mut client = Client::with(config, &[MODEL]);
    let mut call = client.call();
    let give_up = expect_give_up(client.respond(&mut call, 429, &[("retry-after", "30")], ""));
    assert_eq!(give_up.stop, Stop::PastDeadline);
    assert_eq!(give_up.server_hint, Some(secs(30)));
}

#[test]
fn give_ups_read_as_advice() {
    let mut client = Client::new();
    let mut call = client.call();
    let body = novita(403, "NOT_ENOUGH_BALANCE", "insufficient balance");
    let give_up = expect_give_up(client.respond(&mut call, 403, &[("x-request-id", "abc")], &body));
    assert_eq!(
        give_up.to_string(),
        "403 Forbidden (NOT_ENOUGH_BALANCE): the account's balance is too low to pay for this call; \
         gave up after 1 attempt in 0 ms: retrying cannot fix this error"
    );
    let full = format!("{give_up:#}");
    assert!(
        full.contains("\nserver said: insufficient balance"),
        "{full}"
    );
    assert!(full.contains("\nrequest id: abc"), "{full}");
    assert!(
        full.contains("\nwhat to do:\n  - Top up the account balance"),
        "{full}"
    );
}
