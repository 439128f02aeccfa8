//! The policy as reqwest-middleware's `Middleware`: requests the application builds and
//! authorises itself, sent through a `ClientWithMiddleware` to novita-mock.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::Extensions;
use novita_mock::{Fault, MockServer, Route};
use novita_reqwest::middleware::NovitaMiddleware;
use novita_reqwest::{Config, Error, ErrorKind, Report, WhenOpen};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use serde_json::{Value, json};

const MODEL: &str = "deepseek/deepseek-v3";
const FALLBACK: &str = "qwen/qwen-2.5-72b-instruct";

fn chain(middleware: NovitaMiddleware) -> ClientWithMiddleware {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

fn fast() -> Config {
    let mut config = Config::default();
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(20);
    config
}

fn middleware(config: Config) -> NovitaMiddleware {
    NovitaMiddleware::builder()
        .policy(config)
        .fallback_models([FALLBACK])
        .seed(7)
        .build()
        .unwrap()
}

fn chat_body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.25,
        "metadata": {"kept": ["as", "sent"]},
    })
}

async fn post(
    http: &ClientWithMiddleware,
    server: &MockServer,
    body: &Value,
) -> reqwest_middleware::Result<reqwest::Response> {
    http.post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(server.api_key())
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn failures_are_retried_and_the_answer_comes_back_untouched_with_its_report() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(503), Fault::status(502)],
    );
    let http = chain(middleware(fast()));
    let response = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = response.extensions().get::<Report>().cloned().unwrap();
    assert_eq!(report.attempts, 3);
    assert_eq!(report.model, MODEL);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], MODEL);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert!(
            request.authorized,
            "the caller's Authorization header goes as it is"
        );
        // Nothing about the body changes while the model stays.
        assert_eq!(
            serde_json::from_slice::<Value>(&request.body).unwrap(),
            chat_body(MODEL)
        );
    }
}

#[tokio::test]
async fn a_retry_after_hint_is_waited_out_exactly() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(429).retry_after_secs(1)],
    );
    let http = chain(middleware(fast()));
    let response = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(response.status(), 200);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
}

#[tokio::test]
async fn a_model_in_maintenance_moves_the_body_to_the_fallback_model_and_nothing_else() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        Some(MODEL),
        [Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
    );
    let nova = middleware(fast());
    let http = chain(nova.clone());
    let response = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = response.extensions().get::<Report>().unwrap();
    assert_eq!(report.model, FALLBACK);
    assert_eq!(report.fell_back_from.as_deref(), Some(MODEL));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].model.as_deref(), Some(FALLBACK));
    assert_eq!(
        serde_json::from_slice::<Value>(&requests[1].body).unwrap(),
        chat_body(FALLBACK),
        "only `model` is rewritten"
    );
    // The mark is shared: the next request through the same middleware skips the model.
    server.clear_requests();
    let response = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        server.requests()[0].model.as_deref(),
        Some(FALLBACK),
        "{:?}",
        nova.breaker(MODEL)
    );
}

#[tokio::test]
async fn a_give_up_hands_back_the_response_with_the_advice() {
    let server = MockServer::start();
    let http = chain(middleware(fast()));
    let response = http
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("sk_wrong_key")
        .json(&chat_body(MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "the caller's status handling still works"
    );
    let error = response.extensions().get::<Arc<Error>>().cloned().unwrap();
    assert_eq!(error.kind(), ErrorKind::Auth);
    let advice = error.advice();
    assert!(
        advice.contains("the request's own Authorization header"),
        "{advice}"
    );
    assert!(!advice.contains("sk_wrong_key"), "{advice}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["code"], 401,
        "the body read for the policy is handed back"
    );
    assert_eq!(server.requests().len(), 1, "a 401 is never retried");
}

#[tokio::test]
async fn a_give_up_after_retries_keeps_the_last_response() {
    let server = MockServer::start();
    server.always(Route::ChatCompletions, None, Fault::status(503));
    let mut config = fast();
    config.max_attempts = 3;
    let http = chain(NovitaMiddleware::builder().policy(config).build().unwrap());
    let response = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(response.status(), 503);
    let error = response.extensions().get::<Arc<Error>>().unwrap();
    assert_eq!(error.give_up().unwrap().attempts, 3);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_failure_below_http_is_retried_then_typed_with_reqwests_error_as_its_source() {
    // A port nobody listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = fast();
    config.max_attempts = 2;
    let http = chain(NovitaMiddleware::builder().policy(config).build().unwrap());
    let error = http
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .json(&chat_body(MODEL))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected the policy's error, got {error:?}");
    };
    let error = error.downcast_ref::<Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(error.give_up().unwrap().attempts, 2);
    let source = error.source().unwrap();
    assert!(source.is::<reqwest::Error>(), "{source:?}");
}

#[tokio::test]
async fn an_open_breaker_fails_fast_when_asked_to_without_sending() {
    let server = MockServer::start();
    server.always(Route::ChatCompletions, None, Fault::status(503));
    let mut config = fast();
    config.max_attempts = 1;
    config.breaker.failure_threshold = 2;
    config.breaker.when_open = WhenOpen::FailFast;
    let nova = NovitaMiddleware::builder().policy(config).build().unwrap();
    let http = chain(nova.clone());
    for _ in 0..2 {
        assert_eq!(
            post(&http, &server, &chat_body(MODEL))
                .await
                .unwrap()
                .status(),
            503
        );
    }
    server.clear_requests();
    let error = post(&http, &server, &chat_body(MODEL)).await.unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected the policy's error, got {error:?}");
    };
    assert_eq!(
        error.downcast_ref::<Error>().unwrap().kind(),
        ErrorKind::Unavailable
    );
    assert!(server.requests().is_empty(), "nothing sent while open");
}

#[tokio::test]
async fn a_streamed_request_is_retried_as_a_stream_and_handed_back_unread() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(504)]);
    let http = chain(middleware(fast()));
    let mut body = chat_body(MODEL);
    body["stream"] = json!(true);
    let response = post(&http, &server, &body).await.unwrap();
    assert_eq!(response.status(), 200);
    let events = response.bytes_stream().collect::<Vec<_>>().await;
    let text = events
        .into_iter()
        .map(|piece| String::from_utf8(piece.unwrap().to_vec()).unwrap())
        .collect::<String>();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|request| request.stream));
}

#[tokio::test]
async fn a_body_that_cannot_be_cloned_goes_once() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let http = chain(middleware(fast()));
    let bytes = serde_json::to_vec(&chat_body(MODEL)).unwrap();
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
    let response = http
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(server.api_key())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        503,
        "handed back as it came: no copy to resend"
    );
    assert_eq!(server.requests().len(), 1);
}

/// Fails every request, as an auth or signing layer of the application's might.
struct Refuses;

#[async_trait::async_trait]
impl Middleware for Refuses {
    async fn handle(
        &self,
        _: reqwest::Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::middleware(
            std::io::Error::other("refused by the application"),
        ))
    }
}

#[tokio::test]
async fn another_layers_error_is_passed_on_and_not_retried() {
    let server = MockServer::start();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware(fast()))
        .with(Refuses)
        .build();
    let error = post(&http, &server, &chat_body(MODEL)).await.unwrap_err();
    assert_eq!(error.to_string(), "refused by the application");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn concurrent_requests_share_one_policy() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        (0..16).map(|_| Fault::status(503)),
    );
    let http = chain(middleware(fast()));
    let calls = (0..16).map(|_| {
        let http = http.clone();
        let server = &server;
        async move { post(&http, server, &chat_body(MODEL)).await.unwrap() }
    });
    let responses = futures_util::future::join_all(calls).await;
    let statuses = responses
        .iter()
        .map(reqwest::Response::status)
        .collect::<Vec<_>>();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(server.requests().len(), 32);
}

#[tokio::test]
async fn a_hint_one_request_heard_holds_back_the_next() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(429).retry_after_secs(1)],
    );
    let mut config = fast();
    config.max_attempts = 1;
    let http = chain(middleware(config));
    let first = post(&http, &server, &chat_body(MODEL)).await.unwrap();
    assert_eq!(first.status(), 429, "one attempt allowed: handed back");
    let second = post(&http.clone(), &server, &chat_body(MODEL))
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let requests = server.requests();
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(990), "sent after {gap:?}");
}

#[test]
fn a_bad_policy_is_refused_at_build() {
    let error = NovitaMiddleware::builder()
        .policy_toml("[backoff]\nbase = \"soon\"")
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}
