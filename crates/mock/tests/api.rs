//! The normal, fault-free behaviour of the mock's OpenAI-compatible API.

mod common;

use std::time::{Duration, Instant};

use common::{bearer, chat, chat_body, path, send};
use novita_mock::{
    DEFAULT_API_KEY, DEFAULT_MODELS, DEFAULT_PREFIX, MockServer, STREAM_PIECE_CHARS,
};
use serde_json::Value;

const MODEL: &str = "deepseek/deepseek-v3";

#[test]
fn chat_completion_has_the_openai_shape() {
    let server = MockServer::start();
    assert_eq!(server.api_key(), DEFAULT_API_KEY);
    assert_eq!(
        server.base_url(),
        format!("http://{}{DEFAULT_PREFIX}", server.addr())
    );

    let reply = chat(&server, &chat_body(MODEL, "hello mock world", false));
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some("mock-req-1"));
    let json = reply.json();
    assert_eq!(json["id"], "chatcmpl-mock-1");
    assert_eq!(json["object"], "chat.completion");
    assert!(json["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(json["model"], MODEL);
    let choice = &json["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        format!("Mock reply from {MODEL}: hello mock world")
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &json["usage"];
    assert_eq!(usage["prompt_tokens"], 3);
    assert_eq!(usage["completion_tokens"], 7);
    assert_eq!(usage["total_tokens"], 10);
}

#[test]
fn streaming_pieces_add_up_to_the_plain_content() {
    let server = MockServer::start();
    let plain = chat(&server, &chat_body(MODEL, "tell me a story", false)).json();
    let expected = plain["choices"][0]["message"]["content"].as_str().unwrap();

    let reply = chat(&server, &chat_body(MODEL, "tell me a story", true));
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(reply.text().ends_with("data: [DONE]\n\n"));

    let events = reply.events();
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done, "[DONE]");
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], MODEL);
        assert_eq!(chunk["system_fingerprint"], "fp_mock");
    }
    let (usage, choices) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"], plain["usage"]);
    let (finish, pieces) = choices.split_last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let (opening, pieces) = pieces.split_first().unwrap();
    assert_eq!(
        opening["choices"][0]["delta"],
        serde_json::json!({ "role": "assistant" })
    );
    assert!(pieces.len() >= 3);
    let mut content = String::new();
    for chunk in pieces {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
        let piece = chunk["choices"][0]["delta"]["content"].as_str().unwrap();
        assert!((1..=STREAM_PIECE_CHARS).contains(&piece.chars().count()));
        content.push_str(piece);
    }
    assert_eq!(content, expected);
}

#[test]
fn missing_or_wrong_key_is_401_and_never_echoed() {
    let server = MockServer::start();
    let chat_path = path(&server, "/chat/completions");
    let body = chat_body(MODEL, "hi", false);

    let missing = send(&server, "POST", &chat_path, &[], body.as_bytes());
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["reason"], "FAILED_TO_AUTH");
    assert_eq!(missing.json()["code"], 401);
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap()
            .contains("No API key")
    );
    assert!(missing.header("x-request-id").is_some());

    let secret = "sk_secret_wrong_key_123";
    let wrong_auth = format!("Bearer {secret}");
    let wrong = send(
        &server,
        "POST",
        &chat_path,
        &[("authorization", &wrong_auth)],
        body.as_bytes(),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["reason"], "FAILED_TO_AUTH");
    assert!(wrong.json()["message"].as_str().unwrap().contains("wrong"));
    assert!(!wrong.text().contains(secret));

    let models = send(&server, "GET", &path(&server, "/models"), &[], b"");
    assert_eq!(models.status, 401);
}

#[test]
fn bad_body_is_400_naming_the_field() {
    let server = MockServer::start();
    let reply = chat(&server, &format!(r#"{{"model":"{MODEL}"}}"#));
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["reason"], "INVALID_REQUEST_BODY");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    let reply = chat(&server, "{not json");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["reason"], "INVALID_REQUEST_BODY");
}

#[test]
fn unknown_model_is_404_model_not_found() {
    let server = MockServer::start();
    let reply = chat(&server, &chat_body("nobody/no-model", "hi", false));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["reason"], "MODEL_NOT_FOUND");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("nobody/no-model")
    );
}

#[test]
fn unknown_route_is_a_plain_text_404() {
    let server = MockServer::start();
    let auth = bearer(&server);
    for (method, route) in [
        ("POST", "/openai/v1/embeddings".to_owned()),
        ("POST", "/chat/completions".to_owned()),
        ("GET", path(&server, "/chat/completions")),
    ] {
        let reply = send(&server, method, &route, &[("authorization", &auth)], b"");
        assert_eq!(reply.status, 404, "{method} {route}");
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(reply.text(), "404 page not found");
        assert!(reply.header("x-request-id").is_some());
    }
}

#[test]
fn models_are_listed() {
    let server = MockServer::start();
    let auth = bearer(&server);
    let reply = send(
        &server,
        "GET",
        &path(&server, "/models"),
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["object"], "list");
    let ids: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, DEFAULT_MODELS);
    assert_eq!(json["data"][0]["object"], "model");
    assert_eq!(json["data"][0]["owned_by"], "novita-mock");
}

#[test]
fn text_completions_answer_the_prompt() {
    let server = MockServer::start();
    let auth = bearer(&server);
    let body = format!(r#"{{"model":"{MODEL}","prompt":"once upon"}}"#);
    let reply = send(
        &server,
        "POST",
        &path(&server, "/completions"),
        &[("authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["object"], "text_completion");
    assert_eq!(
        json["choices"][0]["text"],
        format!("Mock completion from {MODEL}: once upon")
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["usage"]["prompt_tokens"], 2);
}

#[test]
fn builder_sets_key_prefix_and_models() {
    let server = MockServer::builder()
        .api_key("sk_custom")
        .prefix("/v3/openai/")
        .models(["only/model"])
        .start();
    assert_eq!(server.api_key(), "sk_custom");
    assert!(server.base_url().ends_with("/v3/openai"));
    assert_eq!(server.models(), ["only/model"]);
    let reply = chat(&server, &chat_body("only/model", "hi", false));
    assert_eq!(reply.status, 200);
    let reply = chat(&server, &chat_body(MODEL, "hi", false));
    assert_eq!(reply.status, 404);

    let bare = MockServer::builder().prefix("").start();
    assert_eq!(bare.base_url(), format!("http://{}", bare.addr()));
    let reply = chat(&bare, &chat_body(MODEL, "hi", false));
    assert_eq!(reply.status, 200);
    assert_eq!(bare.requests()[0].path, "/chat/completions");
}

#[test]
fn request_ids_increase() {
    let server = MockServer::start();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let reply = chat(&server, &chat_body(MODEL, "hi", false));
            reply.header("x-request-id").unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, ["mock-req-1", "mock-req-2", "mock-req-3"]);
}

#[test]
fn latency_is_added_before_normal_answers() {
    let latency = Duration::from_millis(150);
    let server = MockServer::builder().latency(latency).start();
    let started = Instant::now();
    let reply = chat(&server, &chat_body(MODEL, "hi", false));
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= latency);
}
