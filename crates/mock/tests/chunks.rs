//! `chat_chunks` against an assembler written from its documented rules: generated
//! completions of every shape (several choices, reasoning, refusals, tool calls, log
//! probabilities, unknown fields, multi-byte text) reassemble exactly, at every piece size.

mod common;

use common::assemble;
use novita_mock::{chat_chunks, sse_body};
use serde_json::{Map, Value, json};

/// A small seeded generator (SplitMix64), so every failing case replays from its seed.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, in_four: usize) -> bool {
        self.below(4) < in_four
    }

    fn text(&mut self) -> String {
        const ALPHABET: [&str; 12] = [
            "a", "b", " ", "é", "🦀", "\n", "\r\n", "\"", "\\", "{", "ß", "日本",
        ];
        let len = self.below(14);
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len())])
            .collect()
    }

    fn maybe_text(&mut self) -> Value {
        if self.chance(1) {
            Value::Null
        } else {
            json!(self.text())
        }
    }

    fn logprob_entries(&mut self) -> Value {
        match self.below(4) {
            0 => Value::Null,
            n => {
                let entries: Vec<Value> = (1..n)
                    .map(|_| json!({ "token": self.text(), "logprob": -0.5, "bytes": [97] }))
                    .collect();
                json!(entries)
            }
        }
    }

    fn tool_call(&mut self, i: usize) -> Value {
        let mut call = json!({
            "id": format!("call_{i}"),
            "type": "function",
            "function": { "name": format!("f{i}"), "arguments": self.text() },
        });
        if self.chance(1) {
            call["function"]["strict"] = json!(true);
        }
        if self.chance(1) {
            call["provider_extra"] = json!({ "n": i });
        }
        call
    }

    fn message(&mut self) -> Value {
        let mut message = Map::new();
        message.insert("role".to_owned(), json!("assistant"));
        message.insert("content".to_owned(), self.maybe_text());
        if self.chance(2) {
            message.insert("reasoning_content".to_owned(), json!(self.text()));
        }
        if self.chance(1) {
            message.insert("refusal".to_owned(), json!(self.text()));
        }
        if self.chance(2) {
            // Not zero: an empty `tool_calls` has no delta to stream (see the rules).
            let calls: Vec<Value> = (0..1 + self.below(3)).map(|i| self.tool_call(i)).collect();
            message.insert("tool_calls".to_owned(), json!(calls));
        }
        if self.chance(1) {
            message.insert("annotations".to_owned(), json!([{ "type": "url" }]));
        }
        if self.chance(1) {
            message.insert("audio".to_owned(), Value::Null);
        }
        Value::Object(message)
    }

    fn choice(&mut self, index: usize) -> Value {
        let finish_reason = match self.below(4) {
            0 => Value::Null,
            1 => json!("length"),
            2 => json!("tool_calls"),
            _ => json!("stop"),
        };
        let mut choice = json!({
            "index": index,
            "message": self.message(),
            "finish_reason": finish_reason,
        });
        if self.chance(2) {
            let mut logprobs = json!({ "content": self.logprob_entries() });
            if self.chance(2) {
                logprobs["refusal"] = self.logprob_entries();
            }
            choice["logprobs"] = logprobs;
        }
        if self.chance(1) {
            choice["stop_reason"] = json!(self.below(100));
        }
        choice
    }

    fn completion(&mut self) -> Value {
        let choices: Vec<Value> = (0..1 + self.below(3)).map(|i| self.choice(i)).collect();
        let mut completion = json!({
            "id": format!("chatcmpl-{}", self.below(1000)),
            "object": "chat.completion",
            "created": 1_700_000_000 + self.below(1000),
            "model": "lab/model",
            "choices": choices,
        });
        if self.chance(2) {
            completion["system_fingerprint"] = json!("fp_x");
        }
        if self.chance(2) {
            completion["usage"] = json!({
                "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                "completion_tokens_details": { "reasoning_tokens": 2 },
            });
        }
        if self.chance(1) {
            completion["service_tier"] = json!("default");
        }
        completion
    }
}

const PIECE_SIZES: [usize; 6] = [1, 2, 3, 5, 8, 1000];

#[test]
fn generated_completions_reassemble_exactly_at_every_piece_size() {
    for seed in 0..400 {
        let completion = Draws(seed).completion();
        for size in PIECE_SIZES {
            let chunks = chat_chunks(&completion, size);
            assert_eq!(
                assemble(&chunks),
                completion,
                "seed {seed}, piece size {size}, chunks {chunks:#?}"
            );
        }
    }
}

#[test]
fn generated_chunks_keep_the_shape_rules() {
    for seed in 0..400 {
        let completion = Draws(seed).completion();
        for size in PIECE_SIZES {
            let chunks = chat_chunks(&completion, size);
            let has_usage = completion.get("usage").is_some();
            for (at, chunk) in chunks.iter().enumerate() {
                assert_eq!(chunk["object"], "chat.completion.chunk");
                assert_eq!(chunk["id"], completion["id"]);
                assert_eq!(chunk["created"], completion["created"]);
                assert_eq!(
                    chunk["system_fingerprint"],
                    completion["system_fingerprint"]
                );
                assert_eq!(
                    chunk.get("service_tier").is_some(),
                    at == 0 && completion.get("service_tier").is_some()
                );
                let choices = chunk["choices"].as_array().unwrap();
                let usage_chunk = has_usage && at == chunks.len() - 1;
                assert_eq!(choices.len(), usize::from(!usage_chunk), "seed {seed}");
                assert_eq!(chunk.get("usage").is_some(), usage_chunk);
                for entry in choices {
                    for piece in text_pieces(&entry["delta"]) {
                        let chars = piece.chars().count();
                        assert!(chars <= size, "seed {seed}: {piece:?} is over {size}");
                    }
                }
            }
        }
    }
}

/// The streamed text of a delta: its text fields and tool-call argument pieces.
fn text_pieces(delta: &Value) -> Vec<String> {
    let mut pieces: Vec<String> = ["reasoning_content", "content", "refusal"]
        .iter()
        .filter_map(|key| delta.get(*key).and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
        pieces.extend(
            calls
                .iter()
                .filter_map(|call| call["function"]["arguments"].as_str())
                .map(str::to_owned),
        );
    }
    pieces
}

#[test]
fn an_empty_piece_only_stands_for_an_empty_field() {
    for seed in 0..200 {
        let completion = Draws(seed).completion();
        for chunk in chat_chunks(&completion, 3) {
            for entry in chunk["choices"].as_array().unwrap() {
                let delta = &entry["delta"];
                let index = entry["index"].as_u64().unwrap() as usize;
                let message = &completion["choices"][index]["message"];
                for key in ["reasoning_content", "content", "refusal"] {
                    if delta.get(key) == Some(&json!("")) {
                        assert_eq!(message[key], "", "seed {seed}: {key}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_sse_body_parses_back_into_the_chunks() {
    let completion = Draws(7).completion();
    let chunks = chat_chunks(&completion, 4);
    let body = String::from_utf8(sse_body(&chunks)).unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap())
        .collect();
    let (done, events) = events.split_last().unwrap();
    assert_eq!(*done, "[DONE]");
    let parsed: Vec<Value> = events
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    assert_eq!(parsed, chunks);
}
