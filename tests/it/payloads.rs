//! Payload fidelity on real HTTP: any completion the server sends comes back whole through
//! `chat` and `post_json`, also when a 504 switched the call to streaming and the stream
//! arrived cut into arbitrary pieces; tool calls and reasoning survive every path.

use novita_mock::{Fault, MockServer, Route, Rule, arbitrary};
use novita_ureq::{ChatCompletion, ChatRequest, Tool};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{Adapter, KINDS, Setup, adapter, for_each_adapter};

const REASONING_MODEL: &str = "deepseek/deepseek-r1";

/// Every buffered chat request gets a 504; every streamed one gets `completion`, written in
/// pieces of 1 to `max_piece` bytes.
fn switch_to_streaming(server: &MockServer, completion: Value, max_piece: usize, seed: u64) {
    server.rule(Rule::new(Route::ChatCompletions, Fault::status(504)).buffered_only());
    server.rule(
        Rule::new(
            Route::ChatCompletions,
            Fault::completion(completion).write_in_pieces(max_piece, seed),
        )
        .streamed_only(),
    );
}

fn check_switched(
    client: &dyn Adapter,
    server: &MockServer,
    buffered: &ChatCompletion,
) -> Result<(), TestCaseError> {
    let request = ChatRequest::new(REASONING_MODEL, "anything");
    let answer = client
        .chat(&request)
        .map_err(|error| TestCaseError::fail(format!("{}: chat: {error}", client.name())))?;
    prop_assert!(answer.report.switched_to_streaming, "{}", client.name());
    prop_assert_eq!(&answer.value, buffered, "{}: chat", client.name());

    let body = serde_json::to_value(&request).unwrap();
    let raw = client
        .post_json("chat/completions", &body)
        .map_err(|error| TestCaseError::fail(format!("{}: post_json: {error}", client.name())))?;
    prop_assert!(raw.report.switched_to_streaming, "{}", client.name());
    prop_assert_eq!(
        &raw.value,
        &serde_json::to_value(buffered).unwrap(),
        "{}: post_json",
        client.name()
    );
    let streamed: Vec<bool> = server.requests().iter().map(|r| r.stream).collect();
    prop_assert_eq!(streamed, [false, true, false, true]);
    Ok(())
}

proptest! {
    // Each case is eight HTTP exchanges on loopback (two calls, two adapters).
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_completion_survives_a_504_switch_on_both_adapters(
        completion in arbitrary::completion(),
        max_piece in 1..64usize,
        seed in any::<u64>(),
    ) {
        let buffered: ChatCompletion = serde_json::from_value(completion.clone())
            .expect("the generated completion decodes");
        for kind in KINDS {
            let server = MockServer::start();
            switch_to_streaming(&server, completion.clone(), max_piece, seed);
            let client = adapter(kind, &Setup::new(&server));
            check_switched(client.as_ref(), &server, &buffered)?;
        }
    }
}

fn weather_tool() -> Tool {
    Tool::function(
        "get_weather",
        "The weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}},
               "required": ["city"]}),
    )
}

fn tool_request() -> ChatRequest {
    ChatRequest::new(REASONING_MODEL, "What is the weather in Paris?").tool(weather_tool())
}

/// The mock's own answer to a tool-calling request on its reasoning model, the same
/// buffered and streamed.
fn assert_whole_tool_call(answer: &ChatCompletion, adapter: &str) {
    let reasoning = answer
        .reasoning()
        .unwrap_or_else(|| panic!("{adapter}: no reasoning in {answer:?}"));
    assert!(
        reasoning.starts_with("Thinking about: "),
        "{adapter}: {reasoning}"
    );
    let calls = answer.tool_calls();
    assert_eq!(calls.len(), 1, "{adapter}: {answer:?}");
    assert_eq!(calls[0].function.name, "get_weather", "{adapter}");
    assert!(
        calls[0].id.starts_with("call_mock_"),
        "{adapter}: {}",
        calls[0].id
    );
    let arguments: Value = calls[0]
        .function
        .parse_arguments()
        .unwrap_or_else(|error| panic!("{adapter}: arguments are not JSON: {error}"));
    assert!(arguments.is_object(), "{adapter}: {arguments}");
    assert_eq!(
        answer.finish_reason(),
        Some(&novita_ureq::FinishReason::ToolCalls),
        "{adapter}"
    );
    assert!(
        answer
            .usage
            .as_ref()
            .and_then(novita_ureq::Usage::reasoning_tokens)
            .is_some_and(|tokens| tokens > 0),
        "{adapter}: {:?}",
        answer.usage
    );
}

/// The choices of `answer` with tool-call ids blanked: the mock numbers them per request.
fn choices_without_call_ids(answer: &ChatCompletion) -> Vec<novita_ureq::wire::Choice> {
    let mut choices = answer.choices.clone();
    for choice in &mut choices {
        for call in &mut choice.message.tool_calls {
            call.id.clear();
        }
    }
    choices
}

#[test]
fn a_tool_call_with_reasoning_comes_back_whole_through_every_path() {
    for_each_adapter(
        |_, _| {},
        |client, server| {
            let name = client.name();
            let buffered = client.chat(&tool_request()).unwrap().value;
            assert_whole_tool_call(&buffered, name);

            // Streamed: the chunks assemble into the buffered answer.
            let (chunks, error) = client.stream(&tool_request()).unwrap();
            assert!(error.is_none(), "{name}: {error:?}");
            let mut assembler = novita_ureq::wire::Assembler::new();
            for chunk in &chunks {
                assembler.push(chunk).unwrap();
            }
            let streamed = assembler.finish();
            assert_whole_tool_call(&streamed, name);
            assert_eq!(
                choices_without_call_ids(&streamed),
                choices_without_call_ids(&buffered),
                "{name}"
            );

            // A 504 on the buffered attempt: the answer comes back through streaming.
            server.script(Route::ChatCompletions, None, [Fault::status(504)]);
            let switched = client.chat(&tool_request()).unwrap();
            assert!(switched.report.switched_to_streaming, "{name}");
            assert_whole_tool_call(&switched.value, name);
            assert_eq!(
                choices_without_call_ids(&switched.value),
                choices_without_call_ids(&buffered),
                "{name}"
            );

            server.script(Route::ChatCompletions, None, [Fault::status(504)]);
            let body = serde_json::to_value(tool_request()).unwrap();
            let raw = client.post_json("chat/completions", &body).unwrap();
            assert!(raw.report.switched_to_streaming, "{name}");
            let decoded: ChatCompletion = serde_json::from_value(raw.value).unwrap();
            assert_whole_tool_call(&decoded, name);
            assert_eq!(
                choices_without_call_ids(&decoded),
                choices_without_call_ids(&buffered),
                "{name}"
            );
        },
    );
}

#[test]
fn a_tool_call_answer_with_null_content_decodes() {
    let answer = json!({
        "id": "chatcmpl-7", "object": "chat.completion", "created": 3, "model": REASONING_MODEL,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "get_time", "arguments": "{}"}},
            ],
        }}],
        "x_server_field": {"kept": true},
    });
    for_each_adapter(
        |server, _| {
            server.always(
                Route::ChatCompletions,
                None,
                Fault::completion(answer.clone()),
            )
        },
        |client, _| {
            let completion = client.chat(&tool_request()).unwrap().value;
            let names: Vec<&str> = completion
                .tool_calls()
                .iter()
                .map(|call| call.function.name.as_str())
                .collect();
            assert_eq!(names, ["get_weather", "get_time"], "{}", client.name());
            assert_eq!(completion.choices[0].message.content, None);
            assert_eq!(completion.text(), "");
            assert_eq!(completion.extra["x_server_field"], json!({"kept": true}));
        },
    );
}
