//! The behaviour table, as data: a fault script, and the outcome each adapter must reach.

use novita_mock::{Fault, Route};
use novita_ureq::ChatRequest;
use novita_ureq::{Escalation, Stop};

use crate::{FALLBACK, MODEL, for_each_adapter};

/// What a scenario expects of the call.
enum Expect {
    /// An answer from `model` after `attempts` attempts.
    Answer {
        attempts: u32,
        model: &'static str,
        fell_back: bool,
        streamed: bool,
    },
    /// A give-up after `attempts` attempts.
    GiveUp {
        status: Option<u16>,
        stop: Stop,
        attempts: u32,
        first_advice: Escalation,
        message: Option<&'static str>,
    },
}

struct Scenario {
    name: &'static str,
    /// Faults for the primary model, played in order.
    primary: Vec<Fault>,
    /// Whether the client has the fallback model configured.
    fallback: bool,
    /// A wrong key instead of the mock's.
    wrong_key: bool,
    /// The model to ask for (the mock knows `MODEL` and `FALLBACK`).
    model: &'static str,
    expect: Expect,
}

impl Scenario {
    fn new(name: &'static str, primary: Vec<Fault>, expect: Expect) -> Self {
        Self {
            name,
            primary,
            fallback: false,
            wrong_key: false,
            model: MODEL,
            expect,
        }
    }

    fn with_fallback(mut self) -> Self {
        self.fallback = true;
        self
    }
}

fn answer(attempts: u32) -> Expect {
    Expect::Answer {
        attempts,
        model: MODEL,
        fell_back: false,
        streamed: false,
    }
}

fn give_up(status: u16, stop: Stop, attempts: u32, first_advice: Escalation) -> Expect {
    Expect::GiveUp {
        status: Some(status),
        stop,
        attempts,
        first_advice,
        message: None,
    }
}

fn check(scenario: &Scenario) {
    for_each_adapter(
        |server, setup| {
            server.script(
                Route::ChatCompletions,
                Some(MODEL),
                scenario.primary.clone(),
            );
            if scenario.fallback {
                setup.fallback_models = vec![FALLBACK.to_owned()];
            }
            if scenario.wrong_key {
                setup.api_key = "sk_wrong_key_1234".to_owned();
            }
        },
        |client, server| {
            let context = format!("{} / {}", scenario.name, client.name());
            let result = client.chat(&ChatRequest::new(scenario.model, "Say hi"));
            let sent = server.requests().len();
            match (&scenario.expect, result) {
                (
                    Expect::Answer {
                        attempts,
                        model,
                        fell_back,
                        streamed,
                    },
                    Ok(answer),
                ) => {
                    assert_eq!(
                        answer.report.attempts, *attempts,
                        "{context}: {}",
                        answer.report
                    );
                    assert_eq!(sent, *attempts as usize, "{context}: requests the mock saw");
                    assert_eq!(answer.report.model, *model, "{context}");
                    assert_eq!(
                        answer.report.fell_back_from.is_some(),
                        *fell_back,
                        "{context}"
                    );
                    assert_eq!(answer.report.switched_to_streaming, *streamed, "{context}");
                    assert_eq!(
                        answer.text(),
                        format!("Mock reply from {model}: Say hi"),
                        "{context}"
                    );
                }
                (
                    Expect::GiveUp {
                        status,
                        stop,
                        attempts,
                        first_advice,
                        message,
                    },
                    Err(error),
                ) => {
                    let give_up = error
                        .give_up()
                        .unwrap_or_else(|| panic!("{context}: {error}"));
                    assert_eq!(give_up.status, *status, "{context}: {error}");
                    assert_eq!(give_up.stop, *stop, "{context}: {error}");
                    assert_eq!(give_up.attempts, *attempts, "{context}: {error}");
                    assert_eq!(sent, *attempts as usize, "{context}: requests the mock saw");
                    assert_eq!(
                        give_up.advice.first(),
                        Some(first_advice),
                        "{context}: {:?}",
                        give_up.advice
                    );
                    if let Some(message) = message {
                        assert_eq!(give_up.message.as_deref(), Some(*message), "{context}");
                    }
                    let advice = error.advice();
                    assert!(
                        advice.contains(first_advice.advice()),
                        "{context}: {advice}"
                    );
                }
                (_, Ok(answer)) => panic!(
                    "{context}: expected a give-up, got an answer: {}",
                    answer.report
                ),
                (_, Err(error)) => panic!("{context}: expected an answer, got: {}", error.advice()),
            }
        },
    );
}

#[test]
fn row_400_one_attempt_quotes_the_server() {
    check(&Scenario::new(
        "400",
        vec![Fault::status(400).message("max_tokens must be at most 4096")],
        Expect::GiveUp {
            status: Some(400),
            stop: Stop::NotRetryable,
            attempts: 1,
            first_advice: Escalation::FixRequest,
            message: Some("max_tokens must be at most 4096"),
        },
    ));
}

#[test]
fn row_401_one_attempt_checks_the_key() {
    let mut scenario = Scenario::new(
        "401",
        vec![],
        give_up(401, Stop::NotRetryable, 1, Escalation::CheckCredentials),
    );
    scenario.wrong_key = true;
    check(&scenario);
}

#[test]
fn row_403_reasons_change_the_advice() {
    for (reason, first) in [
        ("NOT_ENOUGH_BALANCE", Escalation::TopUpBalance),
        ("ACCESS_DENY", Escalation::VerifyIdentity),
        ("INVALID_API_KEY", Escalation::SetApiKey),
    ] {
        check(&Scenario::new(
            "403",
            vec![Fault::status(403).reason(reason)],
            give_up(403, Stop::NotRetryable, 1, first),
        ));
    }
}

#[test]
fn row_404_unknown_model_suggests_listing_models() {
    let mut scenario = Scenario::new(
        "404 model",
        vec![],
        give_up(404, Stop::NotRetryable, 1, Escalation::CheckModelName),
    );
    scenario.model = "no/such-model";
    check(&scenario);
}

#[test]
fn row_404_plain_text_points_at_the_base_url() {
    check(&Scenario::new(
        "404 route",
        vec![Fault::status(404).plain_text("404 page not found")],
        Expect::GiveUp {
            status: Some(404),
            stop: Stop::NotRetryable,
            attempts: 1,
            first_advice: Escalation::CheckBaseUrl,
            message: Some("404 page not found"),
        },
    ));
}

#[test]
fn row_429_retries_after_the_hint_then_succeeds() {
    check(&Scenario::new(
        "429",
        vec![Fault::status(429).retry_after_ms(50)],
        answer(2),
    ));
}

#[test]
fn row_429_tpm_advises_fewer_tokens() {
    let throttled = || {
        Fault::status(429)
            .reason("TOKEN_LIMIT_EXCEEDED")
            .retry_after_ms(1)
    };
    check(&Scenario::new(
        "429 TPM",
        vec![
            throttled(),
            throttled(),
            throttled(),
            throttled(),
            throttled(),
        ],
        give_up(429, Stop::AttemptsExhausted, 5, Escalation::ReduceTokens),
    ));
}

#[test]
fn row_429_absurd_hint_gives_up_at_once() {
    check(&Scenario::new(
        "429 absurd hint",
        vec![Fault::status(429).retry_after_secs(3600)],
        give_up(429, Stop::HintAboveCeiling, 1, Escalation::ReduceRate),
    ));
}

#[test]
fn row_500_falls_back_to_the_next_model() {
    check(
        &Scenario::new(
            "500 twice",
            vec![Fault::status(500), Fault::status(500)],
            Expect::Answer {
                attempts: 3,
                model: FALLBACK,
                fell_back: true,
                streamed: false,
            },
        )
        .with_fallback(),
    );
}

#[test]
fn row_500_maintenance_falls_back_at_once() {
    check(
        &Scenario::new(
            "500 maintenance",
            vec![Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
            Expect::Answer {
                attempts: 2,
                model: FALLBACK,
                fell_back: true,
                streamed: false,
            },
        )
        .with_fallback(),
    );
}

#[test]
fn row_500_without_fallback_gives_up_with_the_request_id() {
    check(&Scenario::new(
        "500 no fallback",
        vec![Fault::status(500), Fault::status(500)],
        give_up(500, Stop::AttemptsExhausted, 2, Escalation::FallbackModel),
    ));
    for_each_adapter(
        |server, _| {
            server.always(
                Route::ChatCompletions,
                None,
                Fault::status(500).header("x-request-id", "req-77"),
            )
        },
        |client, _| {
            let error = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
            assert_eq!(
                error.give_up().unwrap().request_id.as_deref(),
                Some("req-77"),
                "{}",
                client.name()
            );
            assert!(
                error.advice().contains("request id: req-77"),
                "{}",
                error.advice()
            );
            assert!(
                error.advice().contains("Contact Novita support"),
                "{}",
                error.advice()
            );
        },
    );
}

#[test]
fn row_503_retries_then_succeeds() {
    check(&Scenario::new(
        "503×3",
        vec![Fault::status(503), Fault::status(503), Fault::status(503)],
        answer(4),
    ));
}

#[test]
fn row_503_gateway_shape_and_html_bodies_are_read() {
    check(&Scenario::new(
        "503 shapes",
        vec![
            Fault::status(503).gateway_shape(),
            Fault::status(502).plain_text("<html><title>502</title></html>"),
        ],
        answer(3),
    ));
}

#[test]
fn row_504_buffered_call_ends_as_a_streamed_answer() {
    check(&Scenario::new(
        "504",
        vec![Fault::status(504)],
        Expect::Answer {
            attempts: 2,
            model: MODEL,
            fell_back: false,
            streamed: true,
        },
    ));
    for_each_adapter(
        |server, _| server.script(Route::ChatCompletions, None, [Fault::status(504)]),
        |client, server| {
            client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            let streamed: Vec<bool> = server
                .requests()
                .iter()
                .map(|request| request.stream)
                .collect();
            assert_eq!(streamed, [false, true], "{}", client.name());
        },
    );
}

#[test]
fn row_other_4xx_is_not_retried_and_5xx_is() {
    check(&Scenario::new(
        "418",
        vec![Fault::status(418).message("I'm a teapot")],
        Expect::GiveUp {
            status: Some(418),
            stop: Stop::NotRetryable,
            attempts: 1,
            first_advice: Escalation::ReadMessage,
            message: Some("I'm a teapot"),
        },
    ));
    check(&Scenario::new("502", vec![Fault::status(502)], answer(2)));
}

#[test]
fn transport_reset_is_retried() {
    check(&Scenario::new(
        "reset",
        vec![Fault::reset(), Fault::reset()],
        answer(3),
    ));
}

#[test]
fn oversized_error_bodies_are_bounded_and_retried() {
    check(&Scenario::new(
        "oversized",
        vec![Fault::status(503).oversized(4 * 1024 * 1024)],
        answer(2),
    ));
}

#[test]
fn a_malformed_success_body_is_a_decode_error() {
    for_each_adapter(
        |server, _| server.script(Route::ChatCompletions, None, [Fault::malformed_success()]),
        |client, server| {
            let error = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
            assert!(
                matches!(error, novita_ureq::Error::Decode { status: 200, .. }),
                "{}: {error}",
                client.name()
            );
            assert_eq!(server.requests().len(), 1);
        },
    );
}

#[test]
fn the_models_list_is_read() {
    for_each_adapter(
        |_, _| {},
        |client, _| {
            let models = client.models().unwrap();
            assert!(
                models.contains(&MODEL.to_owned()),
                "{}: {models:?}",
                client.name()
            );
        },
    );
}

#[test]
fn the_key_never_appears_in_errors_or_debug() {
    for_each_adapter(
        |_, setup| setup.api_key = "sk_super_secret_value".to_owned(),
        |client, _| {
            let error = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
            for text in [
                error.to_string(),
                error.advice(),
                format!("{error:?}"),
                client.debug(),
            ] {
                assert!(
                    !text.contains("sk_super_secret_value"),
                    "{}: {text}",
                    client.name()
                );
            }
            assert!(
                error.advice().contains("the NOVITA_API_KEY")
                    || error.advice().contains("passed to the client builder")
            );
        },
    );
}
