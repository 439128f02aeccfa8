//! The OpenAI-compatible answers: request validation, completion bodies, SSE events and
//! Novita's error bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value, json};

use crate::Route;

/// Content type of JSON bodies.
pub(crate) const JSON: &str = "application/json";
/// Content type of server-sent event streams.
pub(crate) const EVENT_STREAM: &str = "text/event-stream";
/// Content type of plain-text bodies.
pub(crate) const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// The final event of a successful stream.
const DONE: &str = "data: [DONE]\n\n";

/// A complete answer before faults reshape it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) payload: Payload,
}

/// An answer's body: one piece, or SSE events ending with `data: [DONE]`.
#[derive(Debug)]
pub(crate) enum Payload {
    Whole(Bytes),
    Events(Vec<Bytes>),
}

impl Answer {
    fn json(status: StatusCode, value: &Value) -> Answer {
        Answer::bytes(status, JSON, serde_json::to_vec(value).unwrap_or_default())
    }

    /// An answer whose body is exactly these bytes.
    pub(crate) fn bytes(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Answer {
        Answer {
            status,
            content_type,
            payload: Payload::Whole(body.into()),
        }
    }

    /// Novita's flat error answer.
    pub(crate) fn error(status: StatusCode, reason: &str, message: &str) -> Answer {
        Answer::json(status, &flat_error(status.as_u16(), reason, message))
    }

    /// The plain-text page Novita's router sends for unknown paths.
    pub(crate) fn page_not_found() -> Answer {
        Answer::bytes(StatusCode::NOT_FOUND, PLAIN_TEXT, "404 page not found")
    }
}

/// Novita's flat error body: `{"code", "reason", "message", "metadata"}`.
pub(crate) fn flat_error(code: u16, reason: &str, message: &str) -> Value {
    json!({ "code": code, "reason": reason, "message": message, "metadata": {} })
}

/// The OpenAI-style gateway error body: `{"error": {"message", "type", "code", "metadata"}}`.
pub(crate) fn gateway_error(code: &Value, status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "api_error",
    };
    json!({ "error": { "message": message, "type": kind, "code": code, "metadata": {} } })
}

/// Novita's reason and a short message for a status, used when a fault does not set its own.
pub(crate) fn default_reason(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("INVALID_REQUEST_BODY", "The request body is invalid."),
        401 => ("FAILED_TO_AUTH", "Authentication failed."),
        403 => ("ACCESS_DENY", "Access to this resource is denied."),
        404 => ("MODEL_NOT_FOUND", "The requested model was not found."),
        429 => (
            "RATE_LIMIT_EXCEEDED",
            "Rate limit exceeded: too many requests per minute.",
        ),
        500 => ("INTERNAL_SERVER_ERROR", "The server hit an internal error."),
        503 => (
            "SERVICE_NOT_AVAILABLE",
            "The service is temporarily unavailable.",
        ),
        504 => ("GATEWAY_TIMEOUT", "The upstream model timed out."),
        _ => ("UNKNOWN", "The mock server returned an error."),
    }
}

/// The SSE event that reports a failure in the middle of a stream.
pub(crate) fn stream_error_event() -> Bytes {
    let error = json!({ "error": {
        "message": "The model failed while streaming the response.",
        "type": "server_error",
        "code": 500,
    }});
    event(&error)
}

/// A `200` body that claims to be JSON but is cut off in the middle.
pub(crate) fn malformed_success() -> Answer {
    Answer::bytes(
        StatusCode::OK,
        JSON,
        r#"{"id":"chatcmpl-mock","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Mock repl"#,
    )
}

/// The normal answer for an authorized request on `route`; `n` numbers the completion id.
pub(crate) fn answer(route: Route, body: &[u8], models: &[String], n: u64) -> Answer {
    let result = match route {
        Route::Models => return models_list(models),
        Route::ChatCompletions => Request::parse(body, models, Input::Messages),
        Route::Completions => Request::parse(body, models, Input::Prompt),
    };
    match result {
        Ok(request) => request.complete(n),
        Err(rejection) => rejection,
    }
}

fn models_list(models: &[String]) -> Answer {
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "novita-mock" }))
        .collect();
    Answer::json(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// Which field carries the input: chat `messages` or a text `prompt`.
#[derive(Clone, Copy)]
enum Input {
    Messages,
    Prompt,
}

/// A validated completion request.
struct Request {
    input: Input,
    model: String,
    stream: bool,
    /// The text the reply echoes: the last message's content, or the prompt.
    last: String,
    prompt_tokens: usize,
}

fn bad_request(message: &str) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY", message)
}

impl Request {
    fn parse(body: &[u8], models: &[String], input: Input) -> Result<Request, Answer> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| bad_request(&format!("The request body is not valid JSON: {err}.")))?;
        let Value::Object(fields) = value else {
            return Err(bad_request("The request body must be a JSON object."));
        };
        let model = match fields.get("model") {
            Some(Value::String(model)) => model.clone(),
            Some(_) => return Err(bad_request("Field `model` must be a string.")),
            None => return Err(bad_request("Field `model` is required.")),
        };
        let (last, prompt_tokens) = match input {
            Input::Messages => parse_messages(&fields)?,
            Input::Prompt => parse_prompt(&fields)?,
        };
        if !models.contains(&model) {
            return Err(Answer::error(
                StatusCode::NOT_FOUND,
                "MODEL_NOT_FOUND",
                &format!(
                    "Model `{model}` was not found; list the available models with GET /models."
                ),
            ));
        }
        let stream = fields.get("stream").and_then(Value::as_bool) == Some(true);
        Ok(Request {
            input,
            model,
            stream,
            last,
            prompt_tokens,
        })
    }

    fn complete(self, n: u64) -> Answer {
        let label = match self.input {
            Input::Messages => "reply",
            Input::Prompt => "completion",
        };
        let content = format!("Mock {label} from {}: {}", self.model, self.last);
        let reply = Reply {
            id: match self.input {
                Input::Messages => format!("chatcmpl-mock-{n}"),
                Input::Prompt => format!("cmpl-mock-{n}"),
            },
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            usage: json!({
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": words(&content),
                "total_tokens": self.prompt_tokens + words(&content),
            }),
            model: self.model,
            content,
        };
        match (self.input, self.stream) {
            (Input::Messages, false) => Answer::json(StatusCode::OK, &reply.chat()),
            (Input::Messages, true) => reply.chat_events(),
            (Input::Prompt, false) => Answer::json(StatusCode::OK, &reply.text()),
            (Input::Prompt, true) => reply.text_events(),
        }
    }
}

fn parse_messages(fields: &Map<String, Value>) -> Result<(String, usize), Answer> {
    let messages = match fields.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return Err(bad_request("Field `messages` must not be empty."));
        }
        Some(_) => return Err(bad_request("Field `messages` must be an array.")),
        None => return Err(bad_request("Field `messages` is required.")),
    };
    let texts: Vec<String> = messages
        .iter()
        .map(|message| text_of(message.get("content")))
        .collect();
    let prompt_tokens = texts.iter().map(|text| words(text)).sum();
    let last = texts.last().cloned().unwrap_or_default();
    Ok((last, prompt_tokens))
}

fn parse_prompt(fields: &Map<String, Value>) -> Result<(String, usize), Answer> {
    let prompt = match fields.get("prompt") {
        Some(Value::String(prompt)) => prompt.clone(),
        Some(Value::Array(parts)) if parts.iter().all(Value::is_string) => {
            parts.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return Err(bad_request(
                "Field `prompt` must be a string or an array of strings.",
            ));
        }
        None => return Err(bad_request("Field `prompt` is required.")),
    };
    let tokens = words(&prompt);
    Ok((prompt, tokens))
}

/// The text of a message's content: a string, or the `text` of each part of an array.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The mock's deterministic token count: whitespace-separated words.
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The generated completion, rendered as whole bodies or as SSE events.
struct Reply {
    id: String,
    created: u64,
    model: String,
    content: String,
    usage: Value,
}

impl Reply {
    fn chat(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.content },
                "finish_reason": "stop",
            }],
            "usage": self.usage,
        })
    }

    fn text(&self) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "text": self.content, "finish_reason": "stop" }],
            "usage": self.usage,
        })
    }

    fn chunk(&self, object: &str, choice: &Value) -> Value {
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    fn chat_events(&self) -> Answer {
        let pieces = self.content.split_inclusive(' ').enumerate();
        let mut events: Vec<Bytes> = pieces
            .map(|(i, piece)| {
                let delta = if i == 0 {
                    json!({ "role": "assistant", "content": piece })
                } else {
                    json!({ "content": piece })
                };
                let choice = json!({ "index": 0, "delta": delta, "finish_reason": null });
                event(&self.chunk("chat.completion.chunk", &choice))
            })
            .collect();
        let choice = json!({ "index": 0, "delta": {}, "finish_reason": "stop" });
        events.push(self.last_event("chat.completion.chunk", &choice));
        events_answer(events)
    }

    fn text_events(&self) -> Answer {
        let mut events: Vec<Bytes> = self
            .content
            .split_inclusive(' ')
            .map(|piece| {
                let choice = json!({ "index": 0, "text": piece, "finish_reason": null });
                event(&self.chunk("text_completion", &choice))
            })
            .collect();
        let choice = json!({ "index": 0, "text": "", "finish_reason": "stop" });
        events.push(self.last_event("text_completion", &choice));
        events_answer(events)
    }

    fn last_event(&self, object: &str, choice: &Value) -> Bytes {
        let mut chunk = self.chunk(object, choice);
        chunk["usage"] = self.usage.clone();
        event(&chunk)
    }
}

fn events_answer(mut events: Vec<Bytes>) -> Answer {
    events.push(Bytes::from_static(DONE.as_bytes()));
    Answer {
        status: StatusCode::OK,
        content_type: EVENT_STREAM,
        payload: Payload::Events(events),
    }
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<String> {
        vec!["m".to_owned()]
    }

    fn json_body(answer: &Answer) -> Value {
        match &answer.payload {
            Payload::Whole(bytes) => serde_json::from_slice(bytes).unwrap(),
            Payload::Events(_) => panic!("expected a whole body"),
        }
    }

    #[test]
    fn chat_reply_echoes_the_last_message_and_counts_words() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}"#;
        let answer = answer(Route::ChatCompletions, body, &models(), 7);
        assert_eq!(answer.status, StatusCode::OK);
        let value = json_body(&answer);
        assert_eq!(value["id"], "chatcmpl-mock-7");
        assert_eq!(
            value["choices"][0]["message"]["content"],
            "Mock reply from m: hello there"
        );
        assert_eq!(value["usage"]["prompt_tokens"], 4);
        assert_eq!(value["usage"]["completion_tokens"], 6);
        assert_eq!(value["usage"]["total_tokens"], 10);
    }

    #[test]
    fn content_parts_are_joined() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        let value = json_body(&answer(Route::ChatCompletions, body, &models(), 1));
        assert_eq!(
            value["choices"][0]["message"]["content"],
            "Mock reply from m: ab"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not valid JSON"),
            (b"[1]", "JSON object"),
            (br#"{"messages":[]}"#, "`model` is required"),
            (br#"{"model":1,"messages":[]}"#, "`model` must be a string"),
            (br#"{"model":"m"}"#, "`messages` is required"),
            (
                br#"{"model":"m","messages":{}}"#,
                "`messages` must be an array",
            ),
        ];
        for (body, expected) in cases {
            let answer = answer(Route::ChatCompletions, body, &models(), 1);
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            let value = json_body(&answer);
            assert_eq!(value["reason"], "INVALID_REQUEST_BODY");
            let message = value["message"].as_str().unwrap();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn completions_accept_string_or_string_array_prompts() {
        for body in [
            br#"{"model":"m","prompt":"one two"}"#.as_slice(),
            br#"{"model":"m","prompt":["one ","two"]}"#.as_slice(),
        ] {
            let value = json_body(&answer(Route::Completions, body, &models(), 3));
            assert_eq!(value["object"], "text_completion");
            assert_eq!(
                value["choices"][0]["text"],
                "Mock completion from m: one two"
            );
        }
        let answer = answer(Route::Completions, br#"{"model":"m"}"#, &models(), 3);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn text_completion_streams_too() {
        let body = br#"{"model":"m","prompt":"x y","stream":true}"#;
        let answer = answer(Route::Completions, body, &models(), 3);
        let Payload::Events(events) = answer.payload else {
            panic!("expected events");
        };
        assert_eq!(events.last().unwrap().as_ref(), DONE.as_bytes());
        assert!(events.len() >= 5);
    }
}
