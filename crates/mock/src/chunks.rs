//! Disassembly of a buffered `chat.completion` into the `chat.completion.chunk` objects a
//! streaming server sends, and their rendering as server-sent events.
//!
//! The mock builds every chat answer as the buffered completion first and streams
//! [`chat_chunks`] of it, so a streamed answer always reassembles into exactly the
//! buffered one. The rules of the disassembly are a contract, documented on
//! [`chat_chunks`] (public, unlike this module): a client's stream assembler implements
//! their inverse, and `assemble(chat_chunks(c, k)) == c` must hold for every well-formed
//! completion `c` and piece size `k`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// The most characters in one streamed piece of text or tool arguments when the mock streams
/// a completion, its own or a scripted one: about a word, so streams keep a word-by-word feel.
pub const STREAM_PIECE_CHARS: usize = 8;

/// The final event of a successful stream.
pub(crate) const DONE: &str = "data: [DONE]\n\n";

/// The top-level fields every chunk copies from the completion.
const HEADER: [&str; 4] = ["id", "created", "model", "system_fingerprint"];
/// The top-level fields the rules handle; any other is copied onto the first chunk.
const TOP_LEVEL: [&str; 7] = [
    "id",
    "object",
    "created",
    "model",
    "system_fingerprint",
    "choices",
    "usage",
];
/// The message fields streamed as their own deltas rather than in the opening delta.
const STREAMED_MESSAGE_FIELDS: [&str; 5] = [
    "role",
    "content",
    "reasoning_content",
    "refusal",
    "tool_calls",
];
/// The text fields of a message, in the order they are streamed.
const TEXT_FIELDS: [&str; 3] = ["reasoning_content", "content", "refusal"];
/// The choice fields the rules handle; any other goes on the choice's last chunk.
const CHOICE_FIELDS: [&str; 4] = ["index", "message", "finish_reason", "logprobs"];
/// The log-probability arrays that are streamed one entry per chunk, in this order.
const LOGPROB_ARRAYS: [&str; 2] = ["content", "refusal"];

/// Turns a `chat.completion` object into the `chat.completion.chunk` objects a streaming
/// server sends for it (without the `data: [DONE]` marker), so that the mock's streamed and
/// buffered answers agree and a client's stream assembler can be checked against its
/// inverse: `assemble(chat_chunks(c, k)) == c` for every well-formed completion `c`.
///
/// `piece_chars` is the most characters in one piece of text or tool arguments; 0 is taken
/// as 1.
///
/// # Rules
///
/// 1. **Header.** Every chunk has `"object": "chat.completion.chunk"` and copies `"id"`,
///    `"created"`, `"model"` and `"system_fingerprint"` from the completion (each only when
///    the completion has it). Every other top-level field of the completion (besides those,
///    `"object"`, `"choices"` and `"usage"`) is copied onto the first chunk only.
/// 2. **One choice per chunk.** Each chunk carries exactly one entry in `"choices"` (the
///    usage chunk of rule 8 carries none). With several choices the chunks are interleaved
///    round-robin: the first chunk of choice 0, of choice 1, ..., then the second of each,
///    and so on; a choice that has run out of chunks is skipped. Each entry keeps the
///    `"index"` of its choice (the choice's position when it has none).
/// 3. **Opening delta.** A choice's first chunk has `"delta": {"role": role}` plus every
///    field of the message other than `role`, `content`, `reasoning_content`, `refusal` and
///    `tool_calls`, copied verbatim, in this delta only. `role` is left out when the message
///    has none; a choice without a `"message"` object is treated as an empty message.
/// 4. **Text deltas**, in this order: `reasoning_content`, `content`, `refusal`. Each one
///    that is a string is split into pieces of at most `piece_chars` characters (at
///    character boundaries, never an empty piece), one delta `{"<field>": piece}` per
///    chunk; an empty string is one delta with `""`. A field that is absent, `null` or not
///    a string gives no delta at all.
/// 5. **Tool calls**, after the text, in the order of the message's `tool_calls`. For the
///    call at position `i`, the first delta is `{"tool_calls": [{"index": i, "id": id,
///    "type": type, "function": {"name": name, "arguments": first piece}}]}` carrying, on
///    the call and on its function, every other field they have (an `index` field of the
///    call itself is replaced by `i`); each further piece of `arguments` is a delta
///    `{"tool_calls": [{"index": i, "function": {"arguments": piece}}]}`. `arguments` is
///    split like the text of rule 4 (`""` is one piece); a non-string value is copied whole
///    into the first delta. Fields the call lacks are left out; a `function` that is not an
///    object is copied verbatim; entries that are not objects give no delta.
/// 6. **Log probabilities**, after the tool calls, each chunk with an empty delta `{}`. If
///    the choice's `"logprobs"` is an object whose `content` and/or `refusal` is a non-empty
///    array, each entry `e` gets its own chunk: `"logprobs": {"content": [e]}` for every
///    content entry, then `"logprobs": {"refusal": [e]}` for every refusal entry; every other
///    key of the object (including a `content` or `refusal` that is `null` or empty) is
///    copied onto the first of these chunks. If the object has no such entry, or
///    `"logprobs"` is not an object, one chunk carries `"logprobs"` verbatim. A `null` or
///    absent `"logprobs"` gives no chunk.
/// 7. **Finish.** Every chunk of a choice before its last has `"finish_reason": null`. The
///    last has `"delta": {}`, the choice's `"finish_reason"` (`null` when absent) and every
///    field of the choice other than `index`, `message`, `finish_reason` and `logprobs`,
///    copied verbatim onto that chunk only.
/// 8. **Usage.** When the completion has a non-null `"usage"`, one final chunk carries
///    `"choices": []` and that usage.
///
/// A completion that is not a JSON object gives no chunks, and so does one with neither
/// choices nor usage. The `data: [DONE]` marker is not a chunk: [`sse_body`] adds it.
///
/// Well-formed here means what servers send: the rules stream nothing for a `content` that
/// is `null` or absent, an empty `tool_calls` array, or a `null` `logprobs` or `usage`, so
/// an assembler cannot tell those apart from one another (it reads a missing `content` as
/// `null` and leaves the others out).
///
/// # Example
///
/// ```
/// use novita_mock::chat_chunks;
/// use serde_json::json;
///
/// let completion = json!({
///     "id": "c1", "object": "chat.completion", "created": 5, "model": "m",
///     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
///                  "finish_reason": "stop"}],
/// });
/// let chunks = chat_chunks(&completion, 3);
/// let deltas: Vec<_> = chunks.iter().map(|c| c["choices"][0]["delta"].clone()).collect();
/// assert_eq!(deltas, [
///     json!({"role": "assistant"}),
///     json!({"content": "Hel"}),
///     json!({"content": "lo"}),
///     json!({}),
/// ]);
/// assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
/// ```
pub fn chat_chunks(completion: &Value, piece_chars: usize) -> Vec<Value> {
    let Some(fields) = completion.as_object() else {
        return Vec::new();
    };
    let piece_chars = piece_chars.max(1);
    let mut header = Map::new();
    header.insert("object".to_owned(), json!("chat.completion.chunk"));
    for key in HEADER {
        if let Some(value) = fields.get(key) {
            header.insert(key.to_owned(), value.clone());
        }
    }
    let with_choices = |choices: Vec<Value>| {
        let mut chunk = header.clone();
        chunk.insert("choices".to_owned(), Value::Array(choices));
        chunk
    };

    let mut queues: Vec<std::vec::IntoIter<Value>> = fields
        .get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .enumerate()
                .filter_map(|(position, choice)| {
                    let choice = choice.as_object()?;
                    Some(choice_entries(choice, position, piece_chars).into_iter())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut chunks: Vec<Map<String, Value>> = Vec::new();
    loop {
        let round: Vec<Value> = queues.iter_mut().filter_map(Iterator::next).collect();
        if round.is_empty() {
            break;
        }
        chunks.extend(round.into_iter().map(|entry| with_choices(vec![entry])));
    }
    if let Some(usage) = fields.get("usage").filter(|usage| !usage.is_null()) {
        let mut chunk = with_choices(Vec::new());
        chunk.insert("usage".to_owned(), usage.clone());
        chunks.push(chunk);
    }
    if let Some(first) = chunks.first_mut() {
        first.extend(others(fields, &TOP_LEVEL));
    }
    chunks.into_iter().map(Value::Object).collect()
}

/// Renders chunks as the body of a server-sent event stream: `data: <json>\n\n` per chunk,
/// then `data: [DONE]\n\n`, the bytes a streaming OpenAI-compatible server writes.
pub fn sse_body(chunks: &[Value]) -> Vec<u8> {
    let mut body: Vec<u8> = chunks.iter().flat_map(sse_event).collect();
    body.extend_from_slice(DONE.as_bytes());
    body
}

/// One server-sent event carrying `value` as its data.
pub(crate) fn sse_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The `choices` entries of one choice's chunks, in order (rules 3 to 7).
fn choice_entries(choice: &Map<String, Value>, position: usize, piece_chars: usize) -> Vec<Value> {
    let index = choice
        .get("index")
        .cloned()
        .unwrap_or_else(|| json!(position));
    let empty = Map::new();
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    let mut opening = others(message, &STREAMED_MESSAGE_FIELDS);
    if let Some(role) = message.get("role") {
        opening.insert("role".to_owned(), role.clone());
    }
    let mut deltas = vec![Value::Object(opening)];
    for field in TEXT_FIELDS {
        if let Some(text) = message.get(field).and_then(Value::as_str) {
            deltas.extend(pieces(text, piece_chars).map(|piece| json!({ field: piece })));
        }
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            if let Some(call) = call.as_object() {
                deltas.extend(tool_call_deltas(call, i, piece_chars));
            }
        }
    }

    let entry = |delta: Value| json!({ "index": index, "delta": delta, "finish_reason": null });
    let mut entries: Vec<Value> = deltas.into_iter().map(entry).collect();
    for logprobs in logprob_pieces(choice.get("logprobs")) {
        let mut piece = entry(json!({}));
        piece["logprobs"] = logprobs;
        entries.push(piece);
    }
    let mut last = others(choice, &CHOICE_FIELDS);
    last.insert("index".to_owned(), index);
    last.insert("delta".to_owned(), json!({}));
    let finish_reason = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
    last.insert("finish_reason".to_owned(), finish_reason);
    entries.push(Value::Object(last));
    entries
}

/// The deltas of the tool call at position `i` (rule 5).
fn tool_call_deltas(call: &Map<String, Value>, i: usize, piece_chars: usize) -> Vec<Value> {
    let mut first = others(call, &["index", "id", "type", "function"]);
    first.insert("index".to_owned(), json!(i));
    for key in ["id", "type"] {
        if let Some(value) = call.get(key) {
            first.insert(key.to_owned(), value.clone());
        }
    }
    let mut rest = Vec::new();
    match call.get("function") {
        Some(Value::Object(function)) => {
            let mut head = others(function, &["arguments"]);
            match function.get("arguments") {
                Some(Value::String(arguments)) => {
                    let mut pieces = pieces(arguments, piece_chars);
                    if let Some(piece) = pieces.next() {
                        head.insert("arguments".to_owned(), json!(piece));
                    }
                    rest.extend(pieces.map(|piece| {
                        json!({ "tool_calls": [{ "index": i, "function": { "arguments": piece } }] })
                    }));
                }
                Some(other) => {
                    head.insert("arguments".to_owned(), other.clone());
                }
                None => {}
            }
            first.insert("function".to_owned(), Value::Object(head));
        }
        Some(other) => {
            first.insert("function".to_owned(), other.clone());
        }
        None => {}
    }
    let mut deltas = vec![json!({ "tool_calls": [first] })];
    deltas.extend(rest);
    deltas
}

/// The `logprobs` value of each log-probability chunk of a choice (rule 6).
fn logprob_pieces(logprobs: Option<&Value>) -> Vec<Value> {
    let logprobs = match logprobs {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(logprobs)) => logprobs,
        Some(other) => return vec![other.clone()],
    };
    let streamed = |key: &str| {
        LOGPROB_ARRAYS.contains(&key)
            && logprobs
                .get(key)
                .and_then(Value::as_array)
                .is_some_and(|entries| !entries.is_empty())
    };
    let mut pieces: Vec<Value> = LOGPROB_ARRAYS
        .iter()
        .filter(|key| streamed(key))
        .flat_map(|&key| {
            let entries = logprobs.get(key).and_then(Value::as_array);
            entries
                .into_iter()
                .flatten()
                .map(move |entry| json!({ key: [entry] }))
        })
        .collect();
    let rest: Map<String, Value> = logprobs
        .iter()
        .filter(|(key, _)| !streamed(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    match pieces.first_mut() {
        None => vec![Value::Object(logprobs.clone())],
        Some(Value::Object(first)) => {
            first.extend(rest);
            pieces
        }
        Some(_) => pieces,
    }
}

/// The fields of `object` whose keys are not in `handled`, copied.
fn others(object: &Map<String, Value>, handled: &[&str]) -> Map<String, Value> {
    object
        .iter()
        .filter(|(key, _)| !handled.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `text` cut into pieces of at most `max_chars` characters (at least 1); `""` is one
/// empty piece, and no other piece is empty.
fn pieces(text: &str, max_chars: usize) -> impl Iterator<Item = &str> {
    let max_chars = max_chars.max(1);
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let cut = text
            .char_indices()
            .nth(max_chars)
            .map_or(text.len(), |(at, _)| at);
        let (piece, tail) = text.split_at(cut);
        rest = (!tail.is_empty()).then_some(tail);
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(choices: Value) -> Value {
        let mut completion =
            json!({ "id": "c1", "object": "chat.completion", "created": 5, "model": "m" });
        completion["choices"] = choices;
        completion
    }

    fn one(message: Value) -> Value {
        let mut choice = json!({ "index": 0, "finish_reason": "stop" });
        choice["message"] = message;
        completion(json!([choice]))
    }

    fn entries(chunks: &[Value]) -> Vec<Value> {
        chunks.iter().map(|c| c["choices"][0].clone()).collect()
    }

    fn deltas(chunks: &[Value]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| c["choices"][0]["delta"].clone())
            .collect()
    }

    #[test]
    fn pieces_respect_char_boundaries_and_never_come_out_empty() {
        let split = |text, max| pieces(text, max).collect::<Vec<_>>();
        assert_eq!(split("", 3), [""]);
        assert_eq!(split("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(split("abcdef", 3), ["abc", "def"]);
        assert_eq!(split("héllo wörld", 2), ["hé", "ll", "o ", "wö", "rl", "d"]);
        assert_eq!(split("🦀🦀🦀", 1), ["🦀", "🦀", "🦀"]);
        assert_eq!(split("ab", 0), ["a", "b"]);
        assert_eq!(split("ab", 100), ["ab"]);
    }

    #[test]
    fn every_chunk_carries_the_header_and_extras_go_on_the_first_only() {
        let mut value = one(json!({ "role": "assistant", "content": "hi" }));
        value["system_fingerprint"] = json!("fp_x");
        value["service_tier"] = json!("default");
        value["usage"] = json!({ "total_tokens": 3 });
        let chunks = chat_chunks(&value, 8);
        assert_eq!(chunks.len(), 4);
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "c1");
            assert_eq!(chunk["created"], 5);
            assert_eq!(chunk["model"], "m");
            assert_eq!(chunk["system_fingerprint"], "fp_x");
        }
        assert_eq!(chunks[0]["service_tier"], "default");
        assert!(chunks[1..].iter().all(|c| c.get("service_tier").is_none()));

        let bare = json!({ "choices": [{ "message": { "content": "x" } }] });
        let chunks = chat_chunks(&bare, 8);
        assert!(chunks.iter().all(|c| {
            let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
            keys.sort();
            keys == ["choices", "object"]
        }));
    }

    #[test]
    fn the_opening_delta_has_the_role_and_unknown_message_fields() {
        let message = json!({
            "role": "assistant", "content": "hi", "annotations": [], "audio": null,
        });
        let chunks = chat_chunks(&one(message), 8);
        assert_eq!(
            deltas(&chunks),
            [
                json!({ "role": "assistant", "annotations": [], "audio": null }),
                json!({ "content": "hi" }),
                json!({}),
            ]
        );
        let roleless = chat_chunks(&one(json!({ "content": "hi" })), 8);
        assert_eq!(deltas(&roleless)[0], json!({}));
        let messageless = chat_chunks(&completion(json!([{ "finish_reason": "stop" }])), 8);
        assert_eq!(
            entries(&messageless),
            [
                json!({ "index": 0, "delta": {}, "finish_reason": null }),
                json!({ "index": 0, "delta": {}, "finish_reason": "stop" }),
            ]
        );
    }

    #[test]
    fn text_is_streamed_reasoning_then_content_then_refusal() {
        let message = json!({
            "role": "assistant", "refusal": "no", "content": "abcde",
            "reasoning_content": "thinks",
        });
        let chunks = chat_chunks(&one(message), 4);
        assert_eq!(
            deltas(&chunks),
            [
                json!({ "role": "assistant" }),
                json!({ "reasoning_content": "thin" }),
                json!({ "reasoning_content": "ks" }),
                json!({ "content": "abcd" }),
                json!({ "content": "e" }),
                json!({ "refusal": "no" }),
                json!({}),
            ]
        );
    }

    #[test]
    fn null_absent_and_empty_text_fields() {
        let null = chat_chunks(&one(json!({ "role": "assistant", "content": null })), 4);
        assert_eq!(deltas(&null), [json!({ "role": "assistant" }), json!({})]);
        let absent = chat_chunks(&one(json!({ "role": "assistant" })), 4);
        assert_eq!(deltas(&absent), deltas(&null));
        let not_text = chat_chunks(&one(json!({ "role": "assistant", "refusal": 3 })), 4);
        assert_eq!(deltas(&not_text), deltas(&null));
        let empty = json!({ "role": "assistant", "content": "", "reasoning_content": "" });
        assert_eq!(
            deltas(&chat_chunks(&one(empty), 4)),
            [
                json!({ "role": "assistant" }),
                json!({ "reasoning_content": "" }),
                json!({ "content": "" }),
                json!({}),
            ]
        );
    }

    #[test]
    fn tool_calls_open_with_their_identity_then_stream_arguments() {
        let message = json!({
            "role": "assistant", "content": null,
            "tool_calls": [
                { "id": "call_a", "type": "function", "extra": 1,
                  "function": { "name": "lookup", "arguments": "{\"q\":1}", "strict": true } },
                { "id": "call_b", "type": "function",
                  "function": { "name": "noop", "arguments": "" } },
            ],
        });
        let chunks = chat_chunks(&one(message), 4);
        assert_eq!(
            deltas(&chunks),
            [
                json!({ "role": "assistant" }),
                json!({ "tool_calls": [{ "index": 0, "id": "call_a", "type": "function",
                    "extra": 1,
                    "function": { "name": "lookup", "arguments": "{\"q\"", "strict": true } }] }),
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": ":1}" } }] }),
                json!({ "tool_calls": [{ "index": 1, "id": "call_b", "type": "function",
                    "function": { "name": "noop", "arguments": "" } }] }),
                json!({}),
            ]
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn odd_tool_calls_keep_their_positions() {
        let message = json!({
            "role": "assistant",
            "tool_calls": [
                "not an object",
                { "index": 9, "id": "x", "function": { "name": "f", "arguments": { "a": 1 } } },
                { "id": "y", "function": "verbatim" },
                { "id": "z" },
            ],
        });
        let chunks = chat_chunks(&one(message), 4);
        assert_eq!(
            deltas(&chunks)[1..4],
            [
                json!({ "tool_calls": [{ "index": 1, "id": "x",
                    "function": { "name": "f", "arguments": { "a": 1 } } }] }),
                json!({ "tool_calls": [{ "index": 2, "id": "y", "function": "verbatim" }] }),
                json!({ "tool_calls": [{ "index": 3, "id": "z" }] }),
            ]
        );
    }

    #[test]
    fn only_the_last_chunk_of_a_choice_finishes_and_carries_unknown_choice_fields() {
        let value = completion(json!([{
            "index": 0, "message": { "role": "assistant", "content": "abc" },
            "finish_reason": "length", "stop_reason": 42, "native_finish_reason": null,
        }]));
        let entries = entries(&chat_chunks(&value, 1));
        let (last, before) = entries.split_last().unwrap();
        for entry in before {
            assert_eq!(entry["finish_reason"], Value::Null);
            assert_eq!(entry.as_object().unwrap().len(), 3, "{entry}");
        }
        assert_eq!(
            *last,
            json!({ "index": 0, "delta": {}, "finish_reason": "length", "stop_reason": 42,
                    "native_finish_reason": null })
        );
        let unfinished = completion(json!([{ "index": 0, "message": { "content": "" } }]));
        let entries = super::tests::entries(&chat_chunks(&unfinished, 1));
        assert_eq!(entries.last().unwrap()["finish_reason"], Value::Null);
        assert!(entries.last().unwrap().get("finish_reason").is_some());
    }

    #[test]
    fn several_choices_interleave_round_robin_keeping_their_indexes() {
        let value = completion(json!([
            { "index": 0, "message": { "role": "assistant", "content": "aaa" },
              "finish_reason": "stop" },
            { "index": 1, "message": { "role": "assistant", "content": "b" },
              "finish_reason": "length" },
            { "index": 2, "message": { "role": "assistant", "content": "cc" },
              "finish_reason": "stop" },
        ]));
        let chunks = chat_chunks(&value, 1);
        assert!(
            chunks
                .iter()
                .all(|c| c["choices"].as_array().unwrap().len() == 1)
        );
        let order: Vec<(u64, Value)> = entries(&chunks)
            .iter()
            .map(|e| (e["index"].as_u64().unwrap(), e["delta"].clone()))
            .collect();
        let role = json!({ "role": "assistant" });
        let text = |t: &str| json!({ "content": t });
        assert_eq!(
            order,
            [
                (0, role.clone()),
                (1, role.clone()),
                (2, role),
                (0, text("a")),
                (1, text("b")),
                (2, text("c")),
                (0, text("a")),
                (1, json!({})),
                (2, text("c")),
                (0, text("a")),
                (2, json!({})),
                (0, json!({})),
            ]
        );
        let unindexed = json!({ "choices": [{ "message": {} }, { "message": {} }] });
        let indexes: Vec<Value> = entries(&chat_chunks(&unindexed, 1))
            .iter()
            .map(|e| e["index"].clone())
            .collect();
        assert_eq!(indexes, [json!(0), json!(1), json!(0), json!(1)]);
    }

    #[test]
    fn logprob_entries_get_a_chunk_each_before_the_last() {
        let value = completion(json!([{
            "index": 0, "message": { "role": "assistant", "content": "ab" },
            "finish_reason": "stop",
            "logprobs": { "content": [{ "token": "a" }, { "token": "b" }],
                          "refusal": [{ "token": "r" }], "extra": true },
        }]));
        let entries = entries(&chat_chunks(&value, 8));
        assert_eq!(entries.len(), 6);
        let logprobs: Vec<Value> = entries[2..5]
            .iter()
            .map(|e| {
                assert_eq!(e["delta"], json!({}));
                assert_eq!(e["finish_reason"], Value::Null);
                e["logprobs"].clone()
            })
            .collect();
        assert_eq!(
            logprobs,
            [
                json!({ "content": [{ "token": "a" }], "extra": true }),
                json!({ "content": [{ "token": "b" }] }),
                json!({ "refusal": [{ "token": "r" }] }),
            ]
        );
        assert!(entries[..2].iter().all(|e| e.get("logprobs").is_none()));
        assert!(entries[5].get("logprobs").is_none());
    }

    #[test]
    fn logprobs_without_entries_come_verbatim_in_one_chunk_and_null_gives_none() {
        let with = |logprobs: Value| {
            let value = completion(json!([{
                "index": 0, "message": { "role": "assistant", "content": "a" },
                "finish_reason": "stop", "logprobs": logprobs,
            }]));
            entries(&chat_chunks(&value, 8))
                .iter()
                .filter_map(|e| e.get("logprobs").cloned())
                .collect::<Vec<_>>()
        };
        let empty = json!({ "content": [], "refusal": null });
        assert_eq!(with(empty.clone()), [empty]);
        assert_eq!(with(json!("odd")), [json!("odd")]);
        assert!(with(Value::Null).is_empty());
        let mixed = json!({ "content": [{ "token": "a" }], "refusal": null });
        assert_eq!(
            with(mixed),
            [json!({ "content": [{ "token": "a" }], "refusal": null })]
        );
        let refusal_only = json!({ "content": [], "refusal": [{ "token": "r" }] });
        assert_eq!(
            with(refusal_only),
            [json!({ "content": [], "refusal": [{ "token": "r" }] })]
        );
    }

    #[test]
    fn usage_comes_last_in_a_chunk_without_choices() {
        let mut value = one(json!({ "role": "assistant", "content": "a" }));
        value["usage"] = json!({ "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 });
        let chunks = chat_chunks(&value, 8);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"], value["usage"]);
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.get("usage").is_none())
        );

        value["usage"] = Value::Null;
        assert!(
            chat_chunks(&value, 8)
                .iter()
                .all(|c| c.get("usage").is_none())
        );
    }

    #[test]
    fn degenerate_completions_give_few_or_no_chunks() {
        assert!(chat_chunks(&json!("text"), 8).is_empty());
        assert!(chat_chunks(&json!({ "id": "x", "choices": [] }), 8).is_empty());
        let usage_only = json!({ "id": "x", "choices": [], "usage": { "total_tokens": 0 },
                                 "extra": 1 });
        let chunks = chat_chunks(&usage_only, 8);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0]["extra"], 1);
        assert_eq!(chunks[0]["choices"], json!([]));
        let odd_choices = json!({ "choices": [1, { "message": { "content": "a" } }] });
        let entries = entries(&chat_chunks(&odd_choices, 8));
        assert!(entries.iter().all(|e| e["index"] == 1));
    }

    #[test]
    fn sse_body_renders_each_chunk_then_done() {
        let chunks = [json!({ "a": 1 }), json!({ "b": "x\ny" })];
        let body = String::from_utf8(sse_body(&chunks)).unwrap();
        assert_eq!(
            body,
            "data: {\"a\":1}\n\ndata: {\"b\":\"x\\ny\"}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(sse_body(&[]), DONE.as_bytes());
    }
}
