//! novita-reqwest against novita-mock: the attempt loop, escalations, streams, cancellation.

use std::time::Duration;

use futures_util::StreamExt;
use novita_mock::{Fault, MockServer, Route};
use novita_reqwest::{ChatRequest, Client, Config, Error, Timeouts};

const MODEL: &str = "deepseek/deepseek-v3";
const FALLBACK: &str = "qwen/qwen-2.5-72b-instruct";

/// A policy with millisecond backoff, so retries without a server hint cost no time.
fn quick_policy() -> Config {
    let mut config = Config::default();
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(20);
    config
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .policy(quick_policy())
        .seed(7)
        .build()
        .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::new(MODEL, "hello there my friend")
}

#[tokio::test]
async fn a_healthy_call_answers_at_once() {
    let server = MockServer::start();
    let answer = client(&server).chat(&request()).await.unwrap();
    assert!(
        answer.text().contains("hello there my friend"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.report.attempts, 1);
    assert_eq!(answer.report.model, MODEL);
    assert_eq!(answer.report.fell_back_from, None);
    assert!(!answer.report.switched_to_streaming);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].authorized);
    assert!(!requests[0].stream);
    assert_eq!(requests[0].model.as_deref(), Some(MODEL));
    assert!(
        requests[0]
            .header("user-agent")
            .unwrap()
            .starts_with("novita-reqwest/"),
        "{:?}",
        requests[0].headers
    );
}

#[tokio::test]
async fn two_503s_then_success_takes_three_attempts() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(503), Fault::status(503)],
    );
    let answer = client(&server).chat(&request()).await.unwrap();
    assert_eq!(answer.report.attempts, 3);
    assert_eq!(server.requests().len(), 3);
    assert!(!answer.text().is_empty());
}

#[tokio::test]
async fn a_400_is_not_retried_and_says_why() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(400).message("max_tokens must be at most 4096")],
    );
    let error = client(&server).chat(&request()).await.unwrap_err();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(error.status(), Some(400));
    assert!(matches!(error, Error::GaveUp { .. }), "{error:?}");
    let give_up = error.give_up().unwrap();
    assert_eq!(give_up.attempts, 1);
    let advice = error.advice();
    assert!(
        advice.contains("max_tokens must be at most 4096"),
        "{advice}"
    );
    assert!(advice.contains(MODEL), "{advice}");
}

#[tokio::test]
async fn a_wrong_key_says_where_the_key_came_from_and_never_shows_it() {
    let server = MockServer::start();
    let secret = "sk_wrong_secret_key";
    let client = Client::builder()
        .api_key(secret)
        .base_url(server.base_url())
        .policy(quick_policy())
        .build()
        .unwrap();
    let error = client.chat(&request()).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(server.requests().len(), 1);
    let advice = error.advice();
    assert!(
        advice.contains("the key passed to the client builder"),
        "{advice}"
    );
    for text in [
        advice,
        error.to_string(),
        format!("{error:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn a_429_waits_as_long_as_the_server_asks() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(429).retry_after_secs(1)],
    );
    let answer = client(&server).chat(&request()).await.unwrap();
    assert_eq!(answer.report.attempts, 2);
    assert!(
        answer.report.waited >= Duration::from_secs(1),
        "{}",
        answer.report
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn a_504_on_a_buffered_call_is_answered_through_streaming() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(504)]);
    let answer = client(&server).chat(&request()).await.unwrap();
    assert!(answer.report.switched_to_streaming, "{}", answer.report);
    assert_eq!(answer.report.attempts, 2);
    assert!(
        answer.text().contains("hello there my friend"),
        "{}",
        answer.text()
    );
    assert_eq!(
        answer.finish_reason(),
        Some(&novita_reqwest::FinishReason::Stop)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(!requests[0].stream);
    assert!(requests[1].stream);
    assert_eq!(requests[1].header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn a_stream_cut_while_reassembling_is_retried() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(504), Fault::stream_cut_after(1)],
    );
    let answer = client(&server).chat(&request()).await.unwrap();
    assert_eq!(answer.report.attempts, 3);
    assert!(answer.report.switched_to_streaming);
    assert!(
        answer.text().contains("hello there my friend"),
        "{}",
        answer.text()
    );
    let streamed: Vec<_> = server.requests().iter().map(|r| r.stream).collect();
    assert_eq!(streamed, [false, true, true]);
}

#[tokio::test]
async fn a_streamed_call_is_retried_until_the_stream_starts() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let answer = client(&server).chat_stream(&request()).await.unwrap();
    assert_eq!(answer.report().attempts, 2);
    assert!(
        !answer.report().switched_to_streaming,
        "it streamed from the start"
    );
    let chunks: Vec<_> = answer.collect().await;
    assert!(chunks.iter().all(Result::is_ok), "{chunks:?}");
    assert!(server.requests().iter().all(|r| r.stream));
}

#[tokio::test]
async fn a_model_in_maintenance_hands_over_to_the_fallback() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        Some(MODEL),
        [Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
    );
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .policy(quick_policy())
        .fallback_models([FALLBACK])
        .build()
        .unwrap();
    let answer = client.chat(&request()).await.unwrap();
    assert_eq!(answer.report.fell_back_from.as_deref(), Some(MODEL));
    assert_eq!(answer.report.model, FALLBACK);
    assert_eq!(answer.report.attempts, 2);
    let models: Vec<_> = server.requests().into_iter().map(|r| r.model).collect();
    assert_eq!(models, [Some(MODEL.to_owned()), Some(FALLBACK.to_owned())]);
}

#[tokio::test]
async fn a_stream_delivers_every_chunk_then_ends() {
    let server = MockServer::start();
    let answer = client(&server).chat_stream(&request()).await.unwrap();
    assert_eq!(answer.report().attempts, 1);
    let mut stream = answer;
    assert_eq!(stream.model(), MODEL);
    let mut text = String::new();
    while let Some(chunk) = stream.next_chunk().await {
        text.push_str(chunk.unwrap().text());
    }
    assert!(text.contains("hello there my friend"), "{text}");
    assert!(
        stream.next_chunk().await.is_none(),
        "an ended stream stays ended"
    );
    assert!(server.requests()[0].stream);
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_not_quietly() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::stream_cut_after(2)]);
    let answer = client(&server).chat_stream(&request()).await.unwrap();
    // Through the `Stream` trait this time.
    let items: Vec<_> = answer.collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[0].is_ok() && items[1].is_ok(), "{items:?}");
    match &items[2] {
        Err(Error::Stream {
            model,
            chunks,
            problem,
            ..
        }) => {
            assert_eq!(model, MODEL);
            assert_eq!(*chunks, 2);
            assert!(problem.contains("reset"), "{problem}");
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_inside_a_stream_is_reported() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::stream_error_after(1)]);
    let mut stream = client(&server).chat_stream(&request()).await.unwrap();
    assert!(stream.next_chunk().await.unwrap().is_ok());
    let error = stream.next_chunk().await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::Stream { chunks: 1, problem, .. } if problem.contains("code 500")),
        "{error}"
    );
    assert!(stream.next_chunk().await.is_none());
}

#[tokio::test]
async fn a_silent_stream_times_out() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::slow_body(Duration::from_secs(5))],
    );
    let mut timeouts = Timeouts::default();
    timeouts.stream_idle = Duration::from_millis(200);
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .policy(quick_policy())
        .timeouts(timeouts)
        .build()
        .unwrap();
    let stream = client.chat_stream(&request()).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    match items.last() {
        Some(Err(Error::Stream { problem, .. })) => {
            assert!(problem.contains("timed out"), "{problem}");
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
}

#[tokio::test]
async fn models_and_raw_json_go_through_the_policy() {
    let server = MockServer::start();
    server.script(Route::Models, None, [Fault::status(503)]);
    let client = client(&server);
    let models = client.models().await.unwrap();
    assert_eq!(models.report.attempts, 2);
    let ids: Vec<_> = models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, server.models());

    server.script(Route::Completions, None, [Fault::status(503)]);
    let body = serde_json::json!({ "model": MODEL, "prompt": "once upon a time" });
    let answer = client.post_json("/completions", &body).await.unwrap();
    assert_eq!(answer.report.attempts, 2);
    assert!(answer["choices"][0]["text"].is_string(), "{}", answer.value);
}

#[tokio::test]
async fn dropping_a_call_mid_backoff_leaves_nothing_running() {
    let server = MockServer::start();
    // 30 s is within the policy's 60 s hint ceiling, so the policy decides to wait it out.
    server.always(
        Route::ChatCompletions,
        None,
        Fault::status(503).retry_after_secs(30),
    );
    let client = client(&server);
    let budget = client.retry_budget();
    let cut = tokio::time::timeout(Duration::from_millis(500), client.chat(&request())).await;
    assert!(cut.is_err(), "the call should still be waiting: {cut:?}");
    assert_eq!(server.requests().len(), 1, "exactly one attempt went out");
    assert!(
        client.retry_budget() < budget,
        "the retry was decided before the drop"
    );

    server.clear_faults();
    let answer = client.chat(&request()).await.unwrap();
    assert_eq!(answer.report.attempts, 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "no attempt of the dropped call went out");
    assert_eq!(requests[1].status, 200);
}

#[tokio::test]
async fn an_unreachable_server_gives_up_with_advice() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::builder()
        .api_key("k")
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .policy(quick_policy())
        .build()
        .unwrap();
    let error = client.chat(&request()).await.unwrap_err();
    let give_up = error.give_up().unwrap();
    assert_eq!(give_up.transport, Some(novita_reqwest::Transport::Connect));
    assert!(give_up.attempts > 1, "connection failures are retried");
    assert!(
        std::error::Error::source(&error).is_some(),
        "reqwest's error is kept"
    );
}

#[test]
fn the_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    // A plain-HTTP base URL, so this also builds with no TLS feature on.
    let client = Client::builder()
        .api_key("k")
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let request = request();
    assert_send(&client.chat(&request));
    assert_send(&client.chat_stream(&request));
    assert_send(&client.models());
    let body = serde_json::json!({});
    assert_send(&client.post_json("completions", &body));
}

#[tokio::test]
async fn your_own_reqwest_client_carries_the_calls_under_the_same_policy() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-team",
        reqwest::header::HeaderValue::from_static("search"),
    );
    // This crate builds reqwest without a TLS provider of its own (see the README's TLS
    // section): a program that builds its own client installs one first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let own = reqwest::Client::builder()
        .user_agent("my-app/1.0")
        .default_headers(headers)
        .build()
        .unwrap();
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .policy(quick_policy())
        .http_client(own)
        .build()
        .unwrap();
    let answer = client.chat(&request()).await.unwrap();
    assert_eq!(answer.report.attempts, 2, "the 503 was retried");
    let requests = server.requests();
    for sent in &requests {
        assert_eq!(sent.header("user-agent"), Some("my-app/1.0"));
        assert_eq!(sent.header("x-team"), Some("search"));
        assert!(sent.authorized);
    }
}
