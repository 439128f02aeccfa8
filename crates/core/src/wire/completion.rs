//! What a buffered chat completion says: choices with their messages (text, tool calls,
//! reasoning, refusals), log probabilities, token counts; and the model list.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::chat::{Message, ToolCall};
use super::labels::FinishReason;

/// A complete (non-streamed, or reassembled) chat completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatCompletion {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time of creation.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The answers; one unless `n` asked for more.
    pub choices: Vec<Choice>,
    /// Token counts, when the server reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The backend configuration that answered, for reproducibility with `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletion {
    /// The first choice's text, the usual answer; empty when it only calls tools.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        self.choices
            .first()
            .map_or(Cow::Borrowed(""), |choice| choice.message.text())
    }

    /// The first choice's tool calls.
    #[must_use]
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.choices
            .first()
            .map_or(&[], |choice| choice.message.tool_calls.as_slice())
    }

    /// The first choice's reasoning, for reasoning models.
    #[must_use]
    pub fn reasoning(&self) -> Option<&str> {
        self.choices
            .first()
            .and_then(|choice| choice.message.reasoning_content.as_deref())
    }

    /// The first choice's refusal, when the model declined to answer.
    #[must_use]
    pub fn refusal(&self) -> Option<&str> {
        self.choices
            .first()
            .and_then(|choice| choice.message.refusal.as_deref())
    }

    /// Why the first choice ended.
    #[must_use]
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.choices
            .first()
            .and_then(|choice| choice.finish_reason.as_ref())
    }
}

/// One answer of a chat completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Choice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The assistant's message.
    pub message: Message,
    /// Why generation stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities of the generated tokens, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Logprobs>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token counts of a completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated, reasoning included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// What the prompt tokens were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// What the generated tokens were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Counts with these prompt and completion tokens and their sum.
    #[must_use]
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Self::default()
        }
    }

    /// The `usage` object of a JSON answer body, when it has a readable one (for callers of
    /// `post_json`, whose answers are not typed).
    #[must_use]
    pub fn in_body(body: &Value) -> Option<Self> {
        Self::deserialize(body.get("usage")?).ok()
    }

    /// Tokens spent on reasoning, when the server says.
    #[must_use]
    pub fn reasoning_tokens(&self) -> Option<u64> {
        self.completion_tokens_details
            .as_ref()
            .and_then(|details| details.reasoning_tokens)
    }
}

/// What the prompt tokens were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptTokensDetails {
    /// Tokens served from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Audio input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the generated tokens were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompletionTokensDetails {
    /// Tokens the model spent reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Audio output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Tokens of a predicted output that appeared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    /// Tokens of a predicted output that did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Log probabilities of a choice's tokens.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Logprobs {
    /// One entry per content token.
    #[serde(default)]
    pub content: Option<Vec<TokenLogprob>>,
    /// One entry per refusal token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Vec<TokenLogprob>>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One generated token with its log probability and the likeliest alternatives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes (a character may span tokens).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// The likeliest tokens at this position.
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One alternative token at a position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes.
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A model the key may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Model {
    /// The name to put in requests.
    pub id: String,
    /// Who serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Fields this version does not know (context size, prices, …), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `GET /models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelList {
    /// The models.
    pub data: Vec<Model>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wire::{Content, Role};

    #[test]
    fn a_tool_call_answer_decodes() {
        let json = json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                "finish_reason": "tool_calls",
                "logprobs": null,
            }],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                      "completion_tokens_details": {"reasoning_tokens": 3}},
        });
        let completion: ChatCompletion = serde_json::from_value(json).unwrap();
        assert_eq!(completion.text(), "");
        assert_eq!(completion.finish_reason(), Some(&FinishReason::ToolCalls));
        let call = &completion.tool_calls()[0];
        assert_eq!(call.function.name, "get_weather");
        let arguments: Value = call.function.parse_arguments().unwrap();
        assert_eq!(arguments["city"], "Paris");
        assert_eq!(
            completion.usage.as_ref().and_then(Usage::reasoning_tokens),
            Some(3)
        );
        assert_eq!(completion.system_fingerprint.as_deref(), Some("fp"));
    }

    #[test]
    fn reasoning_refusal_and_unknown_fields_survive() {
        let json = json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "42", "reasoning_content": "think",
                            "refusal": null, "annotations": []},
                "finish_reason": "stop", "stop_reason": 151_643,
                "logprobs": {"content": [{"token": "42", "logprob": -0.5, "bytes": [52, 50],
                              "top_logprobs": [{"token": "41", "logprob": -2.0, "bytes": null}]}]},
            }],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "provider": "novita",
        });
        let completion: ChatCompletion = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(completion.reasoning(), Some("think"));
        assert_eq!(completion.choices[0].message.role, Role::Assistant);
        assert_eq!(
            completion.choices[0].message.content,
            Some(Content::Text("42".into()))
        );
        assert_eq!(completion.choices[0].extra["stop_reason"], 151_643);
        assert_eq!(completion.extra["provider"], "novita");
        let mut expected = json;
        // `refusal: null` is the same as no refusal.
        expected["choices"][0]["message"]
            .as_object_mut()
            .unwrap()
            .remove("refusal");
        assert_eq!(serde_json::to_value(&completion).unwrap(), expected);
    }
}
