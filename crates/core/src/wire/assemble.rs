//! Rebuilding one buffered answer from the chunks of a stream, losslessly.
//!
//! The rules, the inverse of how a server streams a completion: the first non-empty `id`,
//! `created` and `model` win; `system_fingerprint` and `usage` take the last value sent
//! (usage usually comes alone in a final chunk with no choices); unknown top-level and
//! choice fields are merged in. Per choice (by `index`, in any interleaving): `role` is
//! set by whichever delta carries it; `content`, `reasoning_content` and `refusal` pieces
//! are concatenated (a field that never came stays `None`, one that came empty is `""`);
//! tool calls are merged by their `index` (`id`, `type` and `name` from the first piece
//! that has them, `arguments` concatenated), or, from servers that send no index, each new
//! `id` starts the next call; log-probability entries are appended; `finish_reason` is the
//! last one sent; unknown delta fields continue when they are strings and replace
//! otherwise.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::chat::{Content, Message, ToolCall};
use super::chunk::{ChatChunk, ChunkChoice, ToolCallDelta};
use super::completion::{ChatCompletion, Choice, Logprobs, Usage};
use super::labels::{FinishReason, Role};
use super::limits::{Limits, StreamDecodeError};
use super::stream::check;

/// Rebuilds one [`ChatCompletion`] from the chunks of a stream.
///
/// ```
/// # use novita_core::wire::{Assembler, ChatChunk};
/// let chunks = [
///     r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
///     r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
///     r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
/// ];
/// let mut assembler = Assembler::new();
/// for chunk in chunks {
///     assembler.push(&serde_json::from_str::<ChatChunk>(chunk)?)?;
/// }
/// let completion = assembler.finish();
/// assert_eq!(completion.tool_calls()[0].function.arguments, r#"{"a":1}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Assembler {
    limits: Limits,
    id: String,
    created: u64,
    model: String,
    system_fingerprint: Option<String>,
    extra: Map<String, Value>,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
}

/// What one choice has gathered so far.
#[derive(Debug, Default)]
struct ChoiceState {
    role: Option<Role>,
    content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<(Option<u32>, ToolCall)>,
    message_extra: Map<String, Value>,
    finish_reason: Option<FinishReason>,
    logprobs: Option<Logprobs>,
    extra: Map<String, Value>,
}

impl Assembler {
    /// An empty assembler with the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An empty assembler that enforces `limits`.
    #[must_use]
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Adds one chunk.
    ///
    /// # Errors
    /// A choice index or a number of tool calls past the [`Limits`]: the stream is not
    /// usable, and what was gathered should be dropped.
    pub fn push(&mut self, chunk: &ChatChunk) -> Result<(), StreamDecodeError> {
        check(chunk, self.limits)?;
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if chunk.system_fingerprint.is_some() {
            self.system_fingerprint
                .clone_from(&chunk.system_fingerprint);
        }
        if chunk.usage.is_some() {
            self.usage.clone_from(&chunk.usage);
        }
        merge_replacing(&mut self.extra, &chunk.extra);
        for part in &chunk.choices {
            let state = self.choices.entry(part.index).or_default();
            state.take(part, self.limits.max_tool_calls)?;
        }
        Ok(())
    }

    /// The completion the chunks add up to.
    #[must_use]
    pub fn finish(self) -> ChatCompletion {
        ChatCompletion {
            id: self.id,
            object: "chat.completion".to_owned(),
            created: self.created,
            model: self.model,
            choices: self
                .choices
                .into_iter()
                .map(|(index, state)| state.finish(index))
                .collect(),
            usage: self.usage,
            system_fingerprint: self.system_fingerprint,
            extra: self.extra,
        }
    }
}

impl ChoiceState {
    fn take(&mut self, part: &ChunkChoice, max_calls: usize) -> Result<(), StreamDecodeError> {
        let delta = &part.delta;
        if delta.role.is_some() {
            self.role.clone_from(&delta.role);
        }
        append(&mut self.content, delta.content.as_deref());
        append(&mut self.reasoning, delta.reasoning_content.as_deref());
        append(&mut self.refusal, delta.refusal.as_deref());
        for piece in &delta.tool_calls {
            self.take_call(piece, max_calls)?;
        }
        for (key, value) in &delta.extra {
            match (self.message_extra.get_mut(key), value) {
                (Some(Value::String(text)), Value::String(more)) => text.push_str(more),
                _ => {
                    self.message_extra.insert(key.clone(), value.clone());
                }
            }
        }
        if part.finish_reason.is_some() {
            self.finish_reason.clone_from(&part.finish_reason);
        }
        if let Some(logprobs) = &part.logprobs {
            let gathered = self.logprobs.get_or_insert_with(Logprobs::default);
            extend(&mut gathered.content, logprobs.content.as_deref());
            extend(&mut gathered.refusal, logprobs.refusal.as_deref());
            merge_replacing(&mut gathered.extra, &logprobs.extra);
        }
        merge_replacing(&mut self.extra, &part.extra);
        Ok(())
    }

    fn take_call(
        &mut self,
        piece: &ToolCallDelta,
        max_calls: usize,
    ) -> Result<(), StreamDecodeError> {
        let position = match piece.index {
            Some(index) => self
                .tool_calls
                .iter()
                .rposition(|(known, _)| *known == Some(index)),
            None => match (&piece.id, self.tool_calls.last()) {
                (Some(id), Some((_, last))) if !last.id.is_empty() && last.id != *id => None,
                (_, Some(_)) => Some(self.tool_calls.len() - 1),
                (_, None) => None,
            },
        };
        let position = match position {
            Some(position) => position,
            None if self.tool_calls.len() >= max_calls => {
                return Err(StreamDecodeError::TooManyToolCalls { limit: max_calls });
            }
            None => {
                self.tool_calls
                    .push((piece.index, ToolCall::function("", "", "")));
                self.tool_calls.len() - 1
            }
        };
        let call = &mut self.tool_calls[position].1;
        if let Some(id) = &piece.id
            && call.id.is_empty()
        {
            call.id.clone_from(id);
        }
        if let Some(kind) = &piece.kind {
            call.kind.clone_from(kind);
        }
        if let Some(function) = &piece.function {
            if let Some(name) = &function.name
                && call.function.name.is_empty()
            {
                call.function.name.clone_from(name);
            }
            if let Some(arguments) = &function.arguments {
                call.function.arguments.push_str(arguments);
            }
            merge_replacing(&mut call.function.extra, &function.extra);
        }
        merge_replacing(&mut call.extra, &piece.extra);
        Ok(())
    }

    fn finish(self, index: u32) -> Choice {
        let mut tool_calls = self.tool_calls;
        if tool_calls.iter().all(|(index, _)| index.is_some()) {
            tool_calls.sort_by_key(|(index, _)| *index);
        }
        let mut message = Message {
            content: self.content.map(Content::Text),
            tool_calls: tool_calls.into_iter().map(|(_, call)| call).collect(),
            reasoning_content: self.reasoning,
            refusal: self.refusal,
            ..Message::new(self.role.unwrap_or(Role::Assistant), "")
        };
        // Message fields a delta has no typed place for arrive among its unknown fields.
        for (key, value) in self.message_extra {
            match (key.as_str(), value) {
                ("name", Value::String(name)) => message.name = Some(name),
                ("tool_call_id", Value::String(id)) => message.tool_call_id = Some(id),
                (_, value) => {
                    message.extra.insert(key, value);
                }
            }
        }
        Choice {
            index,
            message,
            finish_reason: self.finish_reason,
            logprobs: self.logprobs,
            extra: self.extra,
        }
    }
}

fn append(gathered: &mut Option<String>, piece: Option<&str>) {
    if let Some(piece) = piece {
        gathered.get_or_insert_with(String::new).push_str(piece);
    }
}

fn extend<T: Clone>(gathered: &mut Option<Vec<T>>, entries: Option<&[T]>) {
    if let Some(entries) = entries {
        gathered
            .get_or_insert_with(Vec::new)
            .extend_from_slice(entries);
    }
}

fn merge_replacing(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        into.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assemble(chunks: &[Value]) -> ChatCompletion {
        let mut assembler = Assembler::new();
        for chunk in chunks {
            assembler
                .push(&serde_json::from_value(chunk.clone()).unwrap())
                .unwrap();
        }
        assembler.finish()
    }

    fn choice(index: u32, delta: Value, finish: Value) -> Value {
        let mut choice = json!({"index": index});
        choice["delta"] = delta;
        choice["finish_reason"] = finish;
        json!({"id": "c", "created": 9, "model": "m", "choices": [choice]})
    }

    #[test]
    fn tool_calls_merge_by_index_across_interleaved_choices() {
        let completion = assemble(&[
            choice(
                1,
                json!({"role": "assistant", "reasoning_content": "hm"}),
                Value::Null,
            ),
            choice(
                0,
                json!({"role": "assistant", "tool_calls": [
                    {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
                    {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{"}},
                ]}),
                Value::Null,
            ),
            choice(
                0,
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
                Value::Null,
            ),
            choice(
                1,
                json!({"reasoning_content": "m", "content": "ok"}),
                Value::Null,
            ),
            choice(
                0,
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "[]"}}]}),
                json!("tool_calls"),
            ),
            choice(1, json!({}), json!("stop")),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        ]);
        assert_eq!(completion.choices.len(), 2);
        let calls = completion.tool_calls();
        assert_eq!(
            (calls[0].id.as_str(), calls[0].function.arguments.as_str()),
            ("a", "{}")
        );
        assert_eq!(
            (calls[1].id.as_str(), calls[1].function.arguments.as_str()),
            ("b", "[]")
        );
        assert_eq!(
            completion.choices[0].message.content, None,
            "no content delta came"
        );
        assert_eq!(completion.finish_reason(), Some(&FinishReason::ToolCalls));
        let second = &completion.choices[1];
        assert_eq!(second.message.reasoning_content.as_deref(), Some("hmm"));
        assert_eq!(second.message.text(), "ok");
        assert_eq!(completion.usage.map(|usage| usage.total_tokens), Some(3));
        assert_eq!((completion.id.as_str(), completion.created), ("c", 9));
    }

    #[test]
    fn calls_without_an_index_start_at_each_new_id() {
        let completion = assemble(&[
            choice(
                0,
                json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "1"}}]}),
                Value::Null,
            ),
            choice(
                0,
                json!({"tool_calls": [{"function": {"arguments": "2"}}]}),
                Value::Null,
            ),
            choice(
                0,
                json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "3"}}]}),
                Value::Null,
            ),
        ]);
        let calls = completion.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.arguments, "12");
        assert_eq!(calls[1].function.name, "g");
    }

    #[test]
    fn unknown_delta_fields_continue_or_replace() {
        let completion = assemble(&[
            choice(
                0,
                json!({"role": "assistant", "reasoning": "a", "name": "bot", "audio": {"id": 1}}),
                Value::Null,
            ),
            choice(
                0,
                json!({"reasoning": "b", "audio": {"id": 2}}),
                json!("stop"),
            ),
        ]);
        let message = &completion.choices[0].message;
        assert_eq!(message.extra["reasoning"], "ab");
        assert_eq!(message.extra["audio"], json!({"id": 2}));
        assert_eq!(
            message.name.as_deref(),
            Some("bot"),
            "a known field lands in its place"
        );
    }

    #[test]
    fn limits_hold_against_hostile_streams() {
        let mut assembler = Assembler::with_limits(Limits::default().with_max_tool_calls(2));
        let many = choice(
            0,
            json!({"tool_calls": [
                {"id": "a"}, {"id": "b"}, {"id": "c"},
            ]}),
            Value::Null,
        );
        let error = assembler
            .push(&serde_json::from_value(many).unwrap())
            .unwrap_err();
        assert!(matches!(
            error,
            StreamDecodeError::TooManyToolCalls { limit: 2 }
        ));
        // One id at a time, without indices: still counted.
        for id in ["a", "b"] {
            let one = choice(0, json!({"tool_calls": [{"id": id}]}), Value::Null);
            assembler
                .push(&serde_json::from_value(one).unwrap())
                .unwrap();
        }
        let third = choice(0, json!({"tool_calls": [{"id": "c"}]}), Value::Null);
        assert!(
            assembler
                .push(&serde_json::from_value(third).unwrap())
                .is_err()
        );

        let mut assembler = Assembler::new();
        let far = choice(u32::MAX, json!({"content": "x"}), Value::Null);
        assert!(matches!(
            assembler.push(&serde_json::from_value(far).unwrap()),
            Err(StreamDecodeError::TooManyChoices { .. })
        ));
        assert!(
            assembler.finish().choices.is_empty(),
            "nothing was allocated for it"
        );
    }
}
