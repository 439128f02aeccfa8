//! Scripted faults: ordering, matching, and what each kind puts on the wire.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant, SystemTime};

use common::{bearer, chat, chat_body, path, send};
use novita_mock::{Fault, MockServer, Route};
use serde_json::Value;

const MODEL: &str = "deepseek/deepseek-v3";
const OTHER: &str = "qwen/qwen-2.5-72b-instruct";

fn ask(server: &MockServer) -> common::Reply {
    chat(server, &chat_body(MODEL, "hi there", false))
}

#[test]
fn a_script_plays_in_order_then_normal_behaviour_resumes() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [
            Fault::status(503),
            Fault::status(429).retry_after_secs(2),
            Fault::ok(),
        ],
    );

    let first = ask(&server);
    assert_eq!(first.status, 503);
    assert_eq!(first.json()["code"], 503);
    assert_eq!(first.json()["reason"], "SERVICE_NOT_AVAILABLE");
    assert_eq!(first.json()["metadata"], serde_json::json!({}));
    assert!(first.header("x-request-id").is_some());

    let second = ask(&server);
    assert_eq!(second.status, 429);
    assert_eq!(second.json()["reason"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(second.header("retry-after"), Some("2"));

    assert_eq!(ask(&server).status, 200);
    assert_eq!(ask(&server).status, 200);

    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 429, 200, 200]);
}

#[test]
fn faults_only_hit_their_route_and_model() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        Some(OTHER),
        [Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
    );
    server.script(Route::Models, None, [Fault::status(502)]);

    assert_eq!(ask(&server).status, 200);
    let other = chat(&server, &chat_body(OTHER, "hi", false));
    assert_eq!(other.status, 500);
    assert_eq!(other.json()["reason"], "MODEL_NOT_AVAILABLE");
    assert_eq!(chat(&server, &chat_body(OTHER, "hi", false)).status, 200);

    let auth = bearer(&server);
    let models = send(
        &server,
        "GET",
        &path(&server, "/models"),
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(models.status, 502);
}

#[test]
fn queued_faults_win_over_always_until_cleared() {
    let server = MockServer::start();
    server.always(Route::ChatCompletions, None, Fault::status(503));
    server.always(Route::ChatCompletions, Some(OTHER), Fault::status(504));
    server.script(Route::ChatCompletions, None, [Fault::status(429)]);

    assert_eq!(ask(&server).status, 429);
    assert_eq!(ask(&server).status, 503);
    assert_eq!(ask(&server).status, 503);
    assert_eq!(chat(&server, &chat_body(OTHER, "hi", false)).status, 504);

    server.clear_faults();
    assert_eq!(ask(&server).status, 200);
    assert_eq!(chat(&server, &chat_body(OTHER, "hi", false)).status, 200);
}

#[test]
fn auth_is_checked_before_faults_and_does_not_consume_them() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let body = chat_body(MODEL, "hi", false);
    let unauthorized = send(
        &server,
        "POST",
        &path(&server, "/chat/completions"),
        &[],
        body.as_bytes(),
    );
    assert_eq!(unauthorized.status, 401);
    assert_eq!(ask(&server).status, 503);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn every_retry_after_form_becomes_its_header() {
    let server = MockServer::start();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    server.script(
        Route::ChatCompletions,
        None,
        [
            Fault::status(429).retry_after_secs(7),
            Fault::status(429).retry_after_date(at),
            Fault::status(429).retry_after_ms(1500),
            Fault::status(503)
                .header("x-ratelimit-remaining-tokens", "0")
                .header("x-request-id", "req-from-fault"),
        ],
    );
    assert_eq!(ask(&server).header("retry-after"), Some("7"));

    let dated = ask(&server);
    let date = dated.header("retry-after").unwrap();
    assert_eq!(date, "Sun, 17 Mar 2030 17:46:40 GMT");
    assert_eq!(httpdate::parse_http_date(date).unwrap(), at);

    let millis = ask(&server);
    assert_eq!(millis.header("retry-after-ms"), Some("1500"));
    assert_eq!(millis.header("retry-after"), None);

    let custom = ask(&server);
    assert_eq!(custom.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(custom.header("x-request-id"), Some("req-from-fault"));
}

#[test]
fn error_bodies_take_every_shape() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [
            Fault::status(429)
                .reason("TOKEN_LIMIT_EXCEEDED")
                .message("Too many tokens per minute.")
                .gateway_shape(),
            Fault::status(502).plain_text("Bad Gateway from the proxy"),
            Fault::status(500).raw_body(&b"{\"code\": 500, \"reas"[..]),
            Fault::status(403).message("Verify your identity first."),
        ],
    );

    let gateway = ask(&server);
    assert_eq!(gateway.status, 429);
    let error = &gateway.json()["error"];
    assert_eq!(error["message"], "Too many tokens per minute.");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(error["code"], "TOKEN_LIMIT_EXCEEDED");
    assert_eq!(error["metadata"], serde_json::json!({}));

    let plain = ask(&server);
    assert_eq!(plain.status, 502);
    assert!(
        plain
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(plain.text(), "Bad Gateway from the proxy");

    let raw = ask(&server);
    assert_eq!(raw.status, 500);
    assert_eq!(raw.header("content-type"), Some("application/json"));
    assert_eq!(raw.body, b"{\"code\": 500, \"reas");

    let flat = ask(&server);
    assert_eq!(flat.json()["reason"], "ACCESS_DENY");
    assert_eq!(flat.json()["message"], "Verify your identity first.");
}

#[test]
fn oversized_bodies_are_at_least_the_size_asked() {
    let server = MockServer::start();
    let size = 3 * 1024 * 1024;
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(500).oversized(size)],
    );
    let reply = ask(&server);
    assert_eq!(reply.status, 500);
    assert!(reply.complete);
    assert!(reply.body.len() >= size);
    assert_eq!(reply.json()["reason"], "INTERNAL_SERVER_ERROR");
}

#[test]
fn reset_gives_the_client_a_connection_error() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::reset()]);
    let reply = ask(&server);
    assert_eq!(reply.status, 0);
    assert!(reply.body.is_empty());
    assert_eq!(reply.error, Some(ErrorKind::ConnectionReset));

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, 0);
    assert_eq!(ask(&server).status, 200);
}

#[test]
fn delays_hold_back_the_answer() {
    let delay = Duration::from_millis(200);
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::ok().delay(delay), Fault::status(503).delay(delay)],
    );
    for expected in [200, 503] {
        let started = Instant::now();
        let reply = ask(&server);
        assert_eq!(reply.status, expected);
        assert!(started.elapsed() >= delay);
    }
}

#[test]
fn stream_error_after_sends_an_error_event_and_no_done() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::stream_error_after(2)]);
    let reply = chat(&server, &chat_body(MODEL, "a b c d", true));
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    let events = reply.events();
    assert_eq!(events.len(), 3);
    for chunk in &events[..2] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert_eq!(error["error"]["code"], 500);
    assert!(!reply.text().contains("[DONE]"));
}

#[test]
fn stream_cut_after_aborts_the_connection_mid_stream() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::stream_cut_after(2)]);
    let reply = chat(&server, &chat_body(MODEL, "a b c d", true));
    assert_eq!(reply.status, 200);
    assert!(!reply.complete);
    assert_eq!(reply.error, Some(ErrorKind::ConnectionReset));
    let events = reply.events();
    assert_eq!(events.len(), 2);
    for chunk in &events {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    assert!(!reply.text().contains("[DONE]"));
    assert!(!reply.text().contains("error"));
}

#[test]
fn stream_faults_leave_non_streaming_requests_alone() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::stream_cut_after(1), Fault::stream_error_after(1)],
    );
    for _ in 0..2 {
        let reply = ask(&server);
        assert_eq!(reply.status, 200);
        assert!(reply.complete);
        assert_eq!(reply.json()["object"], "chat.completion");
    }
}

#[test]
fn malformed_success_is_invalid_json() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::malformed_success()]);
    let reply = ask(&server);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

#[test]
fn slow_body_trickles_the_normal_answer() {
    let gap = Duration::from_millis(30);
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::slow_body(gap), Fault::slow_body(gap)],
    );

    let started = Instant::now();
    let reply = ask(&server);
    assert!(started.elapsed() >= gap * 7);
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        format!("Mock reply from {MODEL}: hi there")
    );

    let reply = chat(&server, &chat_body(MODEL, "hi there", true));
    assert!(reply.complete);
    assert_eq!(reply.events().last().map(String::as_str), Some("[DONE]"));
}
