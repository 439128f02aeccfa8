//! Payload fidelity over HTTP: tool calls, reasoning, several choices, content parts and
//! scripted completions, buffered and streamed, with streamed answers always reassembling
//! into the buffered ones; and bodies written in pseudo-random pieces.

mod common;

use common::{assemble, chat, chat_body};
use novita_mock::{
    DEFAULT_MODELS, Fault, MockServer, Route, STREAM_PIECE_CHARS, chat_chunks, sse_body,
};
use serde_json::{Value, json};

const MODEL: &str = "deepseek/deepseek-v3";
const REASONER: &str = "deepseek/deepseek-r1";

fn tools() -> Value {
    json!([
        { "type": "function", "function": { "name": "search", "parameters": { "type": "object" } } },
        { "type": "function", "function": { "name": "weather" } },
    ])
}

/// Sends `body` buffered and streamed, and returns both answers with the streamed chunks.
fn both(server: &MockServer, mut body: Value) -> (Value, Vec<Value>) {
    body["stream"] = json!(false);
    let buffered = chat(server, &body.to_string());
    assert_eq!(buffered.status, 200, "{}", buffered.text());
    body["stream"] = json!(true);
    let streamed = chat(server, &body.to_string());
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed.complete);
    (buffered.json(), streamed.chunks())
}

/// The buffered answer with the id, time and tool call ids of the streamed one, which was
/// another request.
fn as_streamed(mut buffered: Value, chunks: &[Value]) -> Value {
    let id = chunks[0]["id"].as_str().unwrap();
    let n = id.strip_prefix("chatcmpl-mock-").unwrap();
    buffered["id"] = json!(id);
    buffered["created"] = chunks[0]["created"].clone();
    for choice in buffered["choices"].as_array_mut().unwrap() {
        if let Some(calls) = choice["message"].get_mut("tool_calls") {
            for call in calls.as_array_mut().unwrap() {
                call["id"] = json!(format!("call_mock_{n}_0"));
            }
        }
    }
    buffered
}

#[test]
fn the_reasoning_model_is_listed_after_the_others() {
    assert_eq!(DEFAULT_MODELS.len(), 4);
    assert_eq!(DEFAULT_MODELS[3], REASONER);
    assert_eq!(MockServer::start().models(), DEFAULT_MODELS);
}

#[test]
fn every_streamed_answer_is_the_chunks_of_the_buffered_one() {
    let server = MockServer::start();
    let cases = [
        json!({ "model": MODEL, "messages": [{ "role": "user", "content": "plain words" }] }),
        json!({ "model": REASONER, "messages": [{ "role": "user", "content": "why is é" }] }),
        json!({ "model": REASONER, "n": 3, "tools": tools(),
                "messages": [{ "role": "user", "content": "find 🦀 crabs" }] }),
        json!({ "model": MODEL, "n": 2, "stream_options": { "include_usage": true },
                "messages": [{ "role": "user", "content": "two of them" }] }),
    ];
    for request in cases {
        let (buffered, chunks) = both(&server, request.clone());
        let expected = as_streamed(buffered, &chunks);
        assert_eq!(
            chunks,
            chat_chunks(&expected, STREAM_PIECE_CHARS),
            "{request}"
        );
        assert_eq!(assemble(&chunks), expected, "{request}");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"], expected["usage"]);
    }
}

#[test]
fn tools_get_a_tool_call_and_a_tool_result_gets_text() {
    let server = MockServer::start();
    let ask = json!({ "model": MODEL, "tools": tools(),
                      "messages": [{ "role": "user", "content": "find crabs" }] });
    let (answer, chunks) = both(&server, ask);
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_mock_1_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "input": "find crabs" }));
    let streamed_call = &assemble(&chunks)["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(streamed_call["id"], "call_mock_2_0");
    assert_eq!(streamed_call["function"], call["function"]);

    let result = json!({ "model": MODEL, "tools": tools(), "messages": [
        { "role": "user", "content": "find crabs" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": "call_mock_1_0", "content": "two crabs" },
    ] });
    let reply = chat(&server, &result.to_string());
    assert_eq!(reply.status, 200);
    let choice = &reply.json()["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        choice["message"]["content"],
        format!("Mock reply from {MODEL}: two crabs")
    );
}

#[test]
fn tool_mistakes_are_400_naming_the_field() {
    let server = MockServer::start();
    let cases = [
        (
            json!({ "model": MODEL, "messages": [
                { "role": "user", "content": "hi" }, { "role": "tool", "content": "x" } ] }),
            "tool_call_id",
        ),
        (
            json!({ "model": MODEL, "tools": tools(), "messages": [{ "role": "user", "content": "hi" }],
                    "tool_choice": { "type": "function", "function": { "name": "launch" } } }),
            "launch",
        ),
        (
            json!({ "model": MODEL, "n": 9, "messages": [{ "role": "user", "content": "hi" }] }),
            "`n`",
        ),
    ];
    for (body, named) in cases {
        let reply = chat(&server, &body.to_string());
        assert_eq!(reply.status, 400, "{body}");
        let json = reply.json();
        assert_eq!(json["reason"], "INVALID_REQUEST_BODY");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(named), "{message:?} lacks {named:?}");
    }
}

#[test]
fn reasoning_comes_before_the_content_and_is_counted() {
    let server = MockServer::start();
    let (answer, chunks) = both(
        &server,
        serde_json::from_str(&chat_body(REASONER, "one two", false)).unwrap(),
    );
    let message = &answer["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Thinking about: one two");
    assert_eq!(
        message["content"],
        format!("Mock reply from {REASONER}: one two")
    );
    assert_eq!(answer["usage"]["completion_tokens"], 4 + 6);
    assert_eq!(
        answer["usage"]["completion_tokens_details"]["reasoning_tokens"],
        4
    );
    let kinds: Vec<&str> = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"].as_object())
        .filter_map(|delta| delta.keys().next().map(String::as_str))
        .collect();
    let first_content = kinds.iter().position(|k| *k == "content").unwrap();
    let last_reasoning = kinds
        .iter()
        .rposition(|k| *k == "reasoning_content")
        .unwrap();
    assert!(last_reasoning < first_content, "{kinds:?}");
}

#[test]
fn content_parts_are_joined_and_images_ignored() {
    let server = MockServer::start();
    let body = json!({ "model": MODEL, "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "what is " },
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
        { "type": "text", "text": "this" },
    ] }] });
    let reply = chat(&server, &body.to_string());
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        format!("Mock reply from {MODEL}: what is this")
    );
}

/// A completion no request makes the mock generate: reasoning, a refusal, two tool calls with
/// multi-byte arguments, log probabilities and fields the mock does not know.
fn scripted() -> Value {
    json!({
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1_750_000_000,
        "model": "lab/any-model", "system_fingerprint": "fp_script", "service_tier": "flex",
        "choices": [{
            "index": 0, "finish_reason": "tool_calls", "native_finish_reason": "tool_use",
            "logprobs": { "content": [{ "token": "Hé", "logprob": -0.1, "bytes": [72, 195, 169] }],
                          "refusal": null },
            "message": {
                "role": "assistant", "content": "Let me look — 🦀.",
                "reasoning_content": "The user wants crabs.\nSearch twice.",
                "refusal": null, "annotations": [],
                "tool_calls": [
                    { "id": "call_a", "type": "function",
                      "function": { "name": "search", "arguments": "{\"q\":\"crabe 🦀\"}" } },
                    { "id": "call_b", "type": "function",
                      "function": { "name": "weather", "arguments": "{}" } },
                ],
            },
        }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 21, "total_tokens": 30,
                   "completion_tokens_details": { "reasoning_tokens": 7 } },
    })
}

#[test]
fn a_scripted_completion_comes_back_byte_identical_or_as_its_chunks() {
    let server = MockServer::start();
    let completion = scripted();
    server.script(
        Route::ChatCompletions,
        None,
        [
            Fault::completion(completion.clone()),
            Fault::completion(completion.clone()),
        ],
    );
    let buffered = chat(&server, &chat_body(MODEL, "anything", false));
    assert_eq!(buffered.status, 200);
    assert_eq!(buffered.header("content-type"), Some("application/json"));
    assert_eq!(buffered.body, serde_json::to_vec(&completion).unwrap());

    let streamed = chat(&server, &chat_body(MODEL, "anything", true));
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    let chunks = chat_chunks(&completion, STREAM_PIECE_CHARS);
    assert_eq!(streamed.chunks(), chunks);
    assert_eq!(streamed.body, sse_body(&chunks));

    // The script is used up: the mock answers for itself again.
    let normal = chat(&server, &chat_body(MODEL, "anything", false));
    assert_eq!(normal.json()["id"], "chatcmpl-mock-3");
}

#[test]
fn a_scripted_completion_skips_validation_but_not_auth() {
    let server = MockServer::start();
    server.always(Route::ChatCompletions, None, Fault::completion(scripted()));
    let reply = chat(
        &server,
        r#"{"model":"nobody/unknown","messages":"not even an array"}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), scripted());
    let unauthorized = common::send(
        &server,
        "POST",
        &common::path(&server, "/chat/completions"),
        &[],
        chat_body(MODEL, "hi", false).as_bytes(),
    );
    assert_eq!(unauthorized.status, 401);
}

#[test]
fn bodies_written_in_pieces_arrive_unchanged() {
    let server = MockServer::start();
    let completion = scripted();
    let pieces = |seed| Fault::completion(completion.clone()).write_in_pieces(3, seed);
    server.script(
        Route::ChatCompletions,
        None,
        [
            pieces(1),
            pieces(2),
            Fault::ok().write_in_pieces(5, 3),
            Fault::ok().write_in_pieces(1, 4),
            Fault::status(429).retry_after_secs(1).write_in_pieces(2, 5),
            Fault::stream_error_after(2).write_in_pieces(4, 6),
        ],
    );
    let buffered = chat(&server, &chat_body(MODEL, "x", false));
    assert!(buffered.complete);
    assert_eq!(
        buffered.header("content-length").map(str::to_owned),
        Some(buffered.body.len().to_string())
    );
    assert_eq!(buffered.body, serde_json::to_vec(&completion).unwrap());

    let streamed = chat(&server, &chat_body(MODEL, "x", true));
    assert!(streamed.complete);
    assert_eq!(
        streamed.body,
        sse_body(&chat_chunks(&completion, STREAM_PIECE_CHARS))
    );

    let normal = chat(&server, &chat_body(REASONER, "crabe 🦀 é", false));
    assert_eq!(normal.status, 200);
    assert_eq!(
        normal.json()["choices"][0]["message"]["reasoning_content"],
        "Thinking about: crabe 🦀 é"
    );
    let normal_stream = chat(&server, &chat_body(REASONER, "crabe 🦀 é", true));
    let chunks = normal_stream.chunks();
    assert_eq!(
        assemble(&chunks)["choices"][0]["message"]["content"],
        format!("Mock reply from {REASONER}: crabe 🦀 é")
    );

    let limited = chat(&server, &chat_body(MODEL, "x", false));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.json()["reason"], "RATE_LIMIT_EXCEEDED");

    let broken = chat(&server, &chat_body(MODEL, "a b c d", true));
    let events = broken.events();
    assert_eq!(events.len(), 3);
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(error["error"]["code"], 500);
}

#[test]
fn write_in_pieces_needs_a_positive_size() {
    let result = std::panic::catch_unwind(|| Fault::ok().write_in_pieces(0, 1));
    let message = *result.unwrap_err().downcast::<&str>().unwrap();
    assert!(message.contains("at least 1 byte"), "{message}");
}
