//! proptest strategies for the payloads a Novita-compatible server sends (feature
//! `proptest`), so every crate checks its decoders and assemblers against the same space of
//! completions: text in every script, tool calls, reasoning, refusals, log probabilities,
//! usage details, several choices, and fields no client knows yet.
//!
//! ```
//! use novita_mock::arbitrary::completion;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::deterministic();
//! let value = completion().new_tree(&mut runner).unwrap().current();
//! assert_eq!(value["object"], "chat.completion");
//! ```

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Text the way models write it: ASCII, accents, CJK, emoji, quotes, escapes, newlines.
pub fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z ,.]{1,6}",
            1 => Just("é".to_owned()),
            1 => Just("日本".to_owned()),
            1 => Just("🦀".to_owned()),
            1 => Just("\"q\"\\".to_owned()),
            1 => Just("\n\r\n".to_owned()),
            1 => Just("data: [DONE]".to_owned()),
        ],
        0..8,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Fields a future server version might add, at any level (names start with `x_`).
pub fn extras() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "x_[a-z]{1,4}",
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            text().prop_map(Value::from),
            Just(json!({"nested": [1, "two", null]})),
        ],
        0..2,
    )
    .prop_map(|fields| fields.into_iter().collect())
}

/// The tool call at `position` of a message (id `call_<position>`), with arguments that
/// need not be JSON, as a model's may not be.
pub fn tool_call(position: usize) -> impl Strategy<Value = Value> {
    (text(), "[a-z_]{1,12}", extras()).prop_map(move |(arguments, name, extra)| {
        let mut call = json!({
            "id": format!("call_{position}"),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        });
        call.as_object_mut().unwrap().extend(extra);
        call
    })
}

/// One log-probability entry with its bytes and a few alternatives.
pub fn token_logprob() -> impl Strategy<Value = Value> {
    (text(), -20.0f64..0.0, 0..3usize).prop_map(|(token, logprob, alternatives)| {
        let bytes: Vec<u8> = token.bytes().collect();
        let top: Vec<Value> = (0..alternatives)
            .map(|i| json!({"token": format!("t{i}"), "logprob": -1.5 * i as f64, "bytes": null}))
            .collect();
        json!({"token": token, "logprob": logprob, "bytes": bytes, "top_logprobs": top})
    })
}

/// An assistant message: content (or `null`), reasoning, refusal, tool calls, extras.
pub fn message() -> impl Strategy<Value = Value> {
    (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        (0..4usize).prop_flat_map(|calls| (0..calls).map(tool_call).collect::<Vec<_>>()),
        extras(),
    )
        .prop_map(|(content, reasoning, refusal, tool_calls, extra)| {
            let mut message = Map::new();
            message.insert("role".into(), json!("assistant"));
            message.insert("content".into(), content.map_or(Value::Null, Value::from));
            if let Some(reasoning) = reasoning {
                message.insert("reasoning_content".into(), reasoning.into());
            }
            if let Some(refusal) = refusal {
                message.insert("refusal".into(), refusal.into());
            }
            if !tool_calls.is_empty() {
                message.insert("tool_calls".into(), tool_calls.into());
            }
            message.extend(extra);
            Value::Object(message)
        })
}

/// The choice at `index`, with any finish reason (or none) and maybe log probabilities.
pub fn choice(index: usize) -> impl Strategy<Value = Value> {
    (
        message(),
        prop_oneof![
            Just(Value::Null),
            Just(json!("stop")),
            Just(json!("length")),
            Just(json!("tool_calls")),
            Just(json!("content_filter")),
            Just(json!("eos")),
        ],
        prop::option::of(prop::collection::vec(token_logprob(), 0..4)),
        extras(),
    )
        .prop_map(move |(message, finish, logprobs, extra)| {
            let mut choice = json!({"index": index, "message": message, "finish_reason": finish});
            if let Some(entries) = logprobs {
                choice["logprobs"] = json!({"content": entries});
            }
            choice.as_object_mut().unwrap().extend(extra);
            choice
        })
}

/// Token usage, sometimes with cached-prompt and reasoning details.
pub fn usage() -> impl Strategy<Value = Value> {
    (
        0..5000u64,
        0..5000u64,
        prop::option::of(0..100u64),
        prop::option::of(0..800u64),
    )
        .prop_map(|(prompt, completion, cached, reasoning)| {
            let mut usage = json!({
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            });
            if let Some(cached) = cached {
                usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
            }
            if let Some(reasoning) = reasoning {
                usage["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
            }
            usage
        })
}

/// A `chat.completion` as a server might send it: one to three choices, each with
/// optional content, reasoning and refusal, up to three tool calls, optional log
/// probabilities and finish reason; optional usage with details and fingerprint; and fields
/// unknown to any client at every level.
pub fn completion() -> impl Strategy<Value = Value> {
    (
        (1..4usize).prop_flat_map(|n| (0..n).map(choice).collect::<Vec<_>>()),
        prop::option::of(usage()),
        prop::option::of("fp_[a-z0-9]{1,8}"),
        extras(),
    )
        .prop_map(|(choices, usage, fingerprint, extra)| {
            let mut completion = json!({
                "id": "chatcmpl-prop",
                "object": "chat.completion",
                "created": 1_733_000_000,
                "model": "deepseek/deepseek-r1",
                "choices": choices,
            });
            if let Some(usage) = usage {
                completion["usage"] = usage;
            }
            if let Some(fingerprint) = fingerprint {
                completion["system_fingerprint"] = fingerprint.into();
            }
            completion.as_object_mut().unwrap().extend(extra);
            completion
        })
}
