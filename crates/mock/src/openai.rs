//! The OpenAI-compatible answers: request validation, completion bodies, SSE events and
//! Novita's error bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value, json};

use crate::Route;
use crate::chunks::{DONE, STREAM_PIECE_CHARS, chat_chunks, sse_event};

/// Content type of JSON bodies.
pub(crate) const JSON: &str = "application/json";
/// Content type of server-sent event streams.
pub(crate) const EVENT_STREAM: &str = "text/event-stream";
/// Content type of plain-text bodies.
pub(crate) const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

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
    sse_event(&error)
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

/// A scripted completion: `completion` verbatim, or its [`chat_chunks`] as an event stream.
pub(crate) fn scripted(completion: &Value, stream: bool) -> Answer {
    if stream {
        chat_events(completion)
    } else {
        Answer::json(StatusCode::OK, completion)
    }
}

/// The event stream of a chat completion: its chunks, then `data: [DONE]`.
fn chat_events(completion: &Value) -> Answer {
    let chunks = chat_chunks(completion, STREAM_PIECE_CHARS);
    events_answer(chunks.iter().map(sse_event).collect())
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
    model: String,
    stream: bool,
    prompt_tokens: usize,
    ask: Ask,
}

/// What a validated request asks for.
enum Ask {
    Chat(Chat),
    /// A text completion of this prompt.
    Text(String),
}

/// What a validated chat request asks for.
struct Chat {
    /// The text of the last message, which the reply echoes.
    last: String,
    /// The text of the last user message, which a tool call passes on as its input.
    last_user: String,
    /// How many choices to answer with (`n`).
    choices: usize,
    /// The function to call, when the answer is a tool call rather than text.
    call: Option<String>,
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
        let (ask, prompt_tokens) = match input {
            Input::Messages => parse_chat(&fields)?,
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
            model,
            stream,
            prompt_tokens,
            ask,
        })
    }

    fn complete(self, n: u64) -> Answer {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match &self.ask {
            Ask::Chat(chat) => {
                let completion = chat.completion(&self, n, created);
                if self.stream {
                    chat_events(&completion)
                } else {
                    Answer::json(StatusCode::OK, &completion)
                }
            }
            Ask::Text(prompt) => {
                let content = format!("Mock completion from {}: {prompt}", self.model);
                let reply = TextReply {
                    id: format!("cmpl-mock-{n}"),
                    created,
                    usage: json!({
                        "prompt_tokens": self.prompt_tokens,
                        "completion_tokens": words(&content),
                        "total_tokens": self.prompt_tokens + words(&content),
                    }),
                    model: self.model,
                    content,
                };
                if self.stream {
                    reply.events()
                } else {
                    Answer::json(StatusCode::OK, &reply.completion())
                }
            }
        }
    }
}

impl Chat {
    /// The buffered `chat.completion`, the one source of both the JSON and the streamed
    /// answer.
    fn completion(&self, request: &Request, n: u64, created: u64) -> Value {
        let model = &request.model;
        let mut message = Map::new();
        message.insert("role".to_owned(), json!("assistant"));
        let (finish_reason, mut completion_tokens) = match &self.call {
            Some(name) => {
                let arguments = json!({ "input": self.last_user }).to_string();
                let tokens = words(name) + words(&arguments);
                message.insert("content".to_owned(), Value::Null);
                let call = json!({
                    "id": format!("call_mock_{n}_0"),
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                });
                message.insert("tool_calls".to_owned(), json!([call]));
                ("tool_calls", tokens)
            }
            None => {
                let content = format!("Mock reply from {model}: {}", self.last);
                let tokens = words(&content);
                message.insert("content".to_owned(), json!(content));
                ("stop", tokens)
            }
        };
        let reasoning = is_reasoning_model(model).then(|| format!("Thinking about: {}", self.last));
        let reasoning_tokens = reasoning.as_deref().map_or(0, words);
        if let Some(reasoning) = reasoning {
            message.insert("reasoning_content".to_owned(), json!(reasoning));
            completion_tokens += reasoning_tokens;
        }
        let choices: Vec<Value> = (0..self.choices)
            .map(|index| {
                json!({ "index": index, "message": message, "finish_reason": finish_reason })
            })
            .collect();
        let completion_tokens = completion_tokens * self.choices;
        let mut usage = json!({
            "prompt_tokens": request.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": request.prompt_tokens + completion_tokens,
        });
        if is_reasoning_model(model) {
            usage["completion_tokens_details"] =
                json!({ "reasoning_tokens": reasoning_tokens * self.choices });
        }
        json!({
            "id": format!("chatcmpl-mock-{n}"),
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            "usage": usage,
        })
    }
}

/// The `system_fingerprint` of the mock's chat completions.
const SYSTEM_FINGERPRINT: &str = "fp_mock";

/// The most choices a request may ask for with `n`.
const MAX_CHOICES: u64 = 8;

/// Whether the mock answers this model with reasoning first: ids containing `r1`, like
/// DeepSeek's R1 family.
fn is_reasoning_model(model: &str) -> bool {
    model.to_ascii_lowercase().contains("r1")
}

fn parse_chat(fields: &Map<String, Value>) -> Result<(Ask, usize), Answer> {
    let messages = match fields.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return Err(bad_request("Field `messages` must not be empty."));
        }
        Some(_) => return Err(bad_request("Field `messages` must be an array.")),
        None => return Err(bad_request("Field `messages` is required.")),
    };
    for (i, message) in messages.iter().enumerate() {
        if role(message) != Some("tool") {
            continue;
        }
        match message.get("tool_call_id") {
            Some(Value::String(_)) => {}
            Some(_) => {
                return Err(bad_request(&format!(
                    "Field `messages[{i}].tool_call_id` must be a string."
                )));
            }
            None => {
                return Err(bad_request(&format!(
                    "Field `messages[{i}].tool_call_id` is required in a message with role `tool`."
                )));
            }
        }
    }
    let texts: Vec<String> = messages
        .iter()
        .map(|message| text_of(message.get("content")))
        .collect();
    let prompt_tokens = texts.iter().map(|text| words(text)).sum();
    let last = texts.last().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .zip(&texts)
        .rfind(|(message, _)| role(message) == Some("user"))
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    let answering_a_tool = messages.last().and_then(role) == Some("tool");
    let call = parse_tools(fields)?.filter(|_| !answering_a_tool);
    let chat = Chat {
        last,
        last_user,
        choices: parse_n(fields)?,
        call,
    };
    Ok((Ask::Chat(chat), prompt_tokens))
}

/// A message's `role`, if it is a string.
fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The function a tool-calling answer would call, from `tools` and `tool_choice`: `None`
/// when there are no tools or `tool_choice` is `"none"`.
fn parse_tools(fields: &Map<String, Value>) -> Result<Option<String>, Answer> {
    let names: Vec<String> = match fields.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                function_name(tool).ok_or_else(|| {
                    bad_request(&format!(
                        "Field `tools[{i}].function.name` is required and must be a string."
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad_request("Field `tools` must be an array.")),
    };
    let first = names.first().cloned();
    match fields.get("tool_choice").unwrap_or(&Value::Null) {
        Value::Null => Ok(first),
        Value::String(mode) if mode == "auto" => Ok(first),
        Value::String(mode) if mode == "none" => Ok(None),
        Value::String(mode) if mode == "required" => first.map(Some).ok_or_else(|| {
            bad_request("Field `tool_choice` is \"required\" but `tools` is empty.")
        }),
        choice => match function_name(choice) {
            Some(name) if names.contains(&name) => Ok(Some(name)),
            Some(name) => Err(bad_request(&format!(
                "Field `tool_choice` names function `{name}`, which is not among `tools`."
            ))),
            None => Err(bad_request(
                "Field `tool_choice` must be \"none\", \"auto\", \"required\" or \
                 {\"type\": \"function\", \"function\": {\"name\": ...}}.",
            )),
        },
    }
}

/// `value.function.name`, the name of a tool or of the function a `tool_choice` names.
fn function_name(value: &Value) -> Option<String> {
    let name = value.get("function")?.get("name")?.as_str()?;
    Some(name.to_owned())
}

/// The number of choices asked for: `n`, 1 when absent or `null`.
fn parse_n(fields: &Map<String, Value>) -> Result<usize, Answer> {
    match fields.get("n") {
        None | Some(Value::Null) => Ok(1),
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=MAX_CHOICES).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                bad_request(&format!(
                    "Field `n` must be an integer from 1 to {MAX_CHOICES}, not {n}."
                ))
            }),
    }
}

fn parse_prompt(fields: &Map<String, Value>) -> Result<(Ask, usize), Answer> {
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
    Ok((Ask::Text(prompt), tokens))
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

/// A generated text completion, rendered as a whole body or as SSE events.
struct TextReply {
    id: String,
    created: u64,
    model: String,
    content: String,
    usage: Value,
}

impl TextReply {
    fn completion(&self) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "text": self.content, "finish_reason": "stop" }],
            "usage": self.usage,
        })
    }

    fn chunk(&self, choice: &Value) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    fn events(&self) -> Answer {
        let mut events: Vec<Bytes> = self
            .content
            .split_inclusive(' ')
            .map(|piece| {
                let choice = json!({ "index": 0, "text": piece, "finish_reason": null });
                sse_event(&self.chunk(&choice))
            })
            .collect();
        let choice = json!({ "index": 0, "text": "", "finish_reason": "stop" });
        let mut last = self.chunk(&choice);
        last["usage"] = self.usage.clone();
        events.push(sse_event(&last));
        events_answer(events)
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

    fn chat(body: &Value) -> Answer {
        let models = ["m".to_owned(), "lab/Model-R1-distill".to_owned()];
        answer(
            Route::ChatCompletions,
            body.to_string().as_bytes(),
            &models,
            7,
        )
    }

    fn rejection(body: &Value) -> String {
        let answer = chat(body);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        let value = json_body(&answer);
        assert_eq!(value["reason"], "INVALID_REQUEST_BODY");
        value["message"].as_str().unwrap().to_owned()
    }

    fn tools() -> Value {
        json!([
            { "type": "function", "function": { "name": "lookup", "parameters": {} } },
            { "type": "function", "function": { "name": "weather" } },
        ])
    }

    fn user(text: &str) -> Value {
        json!({ "role": "user", "content": text })
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

    #[test]
    fn a_streamed_chat_is_the_chunks_of_the_buffered_one() {
        let buffered = json!({ "model": "m", "messages": [user("one two three four")], "n": 2 });
        let mut streamed = buffered.clone();
        streamed["stream"] = json!(true);
        let answer = chat(&streamed);
        assert_eq!(answer.content_type, EVENT_STREAM);
        let Payload::Events(events) = answer.payload else {
            panic!("expected events");
        };
        let (done, events) = events.split_last().unwrap();
        assert_eq!(done.as_ref(), DONE.as_bytes());
        let chunks: Vec<Value> = events
            .iter()
            .map(|event| {
                let text = std::str::from_utf8(event).unwrap();
                serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap()
            })
            .collect();
        let mut completion = json_body(&chat(&buffered));
        // Built at another instant, which may be another second.
        completion["created"] = chunks[0]["created"].clone();
        assert_eq!(chunks, chat_chunks(&completion, STREAM_PIECE_CHARS));
        assert!(chunks.len() > 8, "streamed in pieces: {}", chunks.len());
    }

    #[test]
    fn tools_make_a_tool_call_of_the_first_tool() {
        let body = json!({ "model": "m", "tools": tools(),
                           "messages": [user("find cats"), { "role": "system", "content": "x" }] });
        let value = json_body(&chat(&body));
        let choice = &value["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let message = &choice["message"];
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([{ "id": "call_mock_7_0", "type": "function",
                     "function": { "name": "lookup", "arguments": "{\"input\":\"find cats\"}" } }])
        );
        assert_eq!(value["system_fingerprint"], "fp_mock");
        // The words of `lookup` and of `{"input":"find cats"}`.
        assert_eq!(value["usage"]["completion_tokens"], 3);
    }

    #[test]
    fn tool_choice_picks_the_named_tool_or_none() {
        let named = json!({ "model": "m", "tools": tools(), "messages": [user("hi")],
            "tool_choice": { "type": "function", "function": { "name": "weather" } } });
        let value = json_body(&chat(&named));
        let call = &value["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");

        for choice in [json!("auto"), json!("required"), Value::Null] {
            let body = json!({ "model": "m", "tools": tools(), "messages": [user("hi")],
                               "tool_choice": choice });
            let value = json_body(&chat(&body));
            assert_eq!(
                value["choices"][0]["finish_reason"], "tool_calls",
                "{choice}"
            );
        }
        let none = json!({ "model": "m", "tools": tools(), "messages": [user("hi")],
                           "tool_choice": "none" });
        let value = json_body(&chat(&none));
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            value["choices"][0]["message"]["content"],
            "Mock reply from m: hi"
        );
        let no_tools = json!({ "model": "m", "tools": [], "messages": [user("hi")] });
        let value = json_body(&chat(&no_tools));
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn a_tool_result_gets_a_text_answer() {
        let body = json!({ "model": "m", "tools": tools(), "messages": [
            user("find cats"),
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1",
              "type": "function", "function": { "name": "lookup", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "3 cats" },
        ] });
        let value = json_body(&chat(&body));
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            value["choices"][0]["message"]["content"],
            "Mock reply from m: 3 cats"
        );
        assert!(value["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn tool_validation_names_the_field() {
        let missing_id = json!({ "model": "m", "messages": [
            user("hi"), { "role": "tool", "content": "result" } ] });
        let message = rejection(&missing_id);
        assert!(
            message.contains("`messages[1].tool_call_id` is required"),
            "{message}"
        );
        let numeric_id = json!({ "model": "m", "messages": [
            { "role": "tool", "tool_call_id": 3, "content": "result" } ] });
        assert!(rejection(&numeric_id).contains("`messages[0].tool_call_id` must be a string"));

        let unknown = json!({ "model": "m", "tools": tools(), "messages": [user("hi")],
            "tool_choice": { "type": "function", "function": { "name": "nope" } } });
        let message = rejection(&unknown);
        assert!(
            message.contains("`tool_choice`") && message.contains("`nope`"),
            "{message}"
        );
        let without_tools = json!({ "model": "m", "messages": [user("hi")],
            "tool_choice": { "type": "function", "function": { "name": "lookup" } } });
        assert!(rejection(&without_tools).contains("not among `tools`"));
        let required = json!({ "model": "m", "messages": [user("hi")], "tool_choice": "required" });
        assert!(rejection(&required).contains("`tools` is empty"));
        for odd in [json!("sometimes"), json!(3), json!({ "type": "function" })] {
            let body = json!({ "model": "m", "tools": tools(), "messages": [user("hi")],
                               "tool_choice": odd });
            assert!(rejection(&body).contains("`tool_choice` must be"), "{odd}");
        }
        let not_array = json!({ "model": "m", "tools": {}, "messages": [user("hi")] });
        assert!(rejection(&not_array).contains("`tools` must be an array"));
        let nameless = json!({ "model": "m", "tools": [{ "type": "function" }],
                               "messages": [user("hi")] });
        assert!(rejection(&nameless).contains("`tools[0].function.name`"));
    }

    #[test]
    fn n_asks_for_that_many_choices_and_counts_their_tokens() {
        let body = json!({ "model": "m", "messages": [user("a b")], "n": 3 });
        let value = json_body(&chat(&body));
        let choices = value["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3);
        for (i, choice) in choices.iter().enumerate() {
            assert_eq!(choice["index"], i);
            assert_eq!(choice["message"]["content"], "Mock reply from m: a b");
        }
        assert_eq!(value["usage"]["completion_tokens"], 3 * 6);
        assert_eq!(value["usage"]["total_tokens"], 2 + 3 * 6);

        let null = json!({ "model": "m", "messages": [user("a")], "n": null });
        assert_eq!(
            json_body(&chat(&null))["choices"].as_array().unwrap().len(),
            1
        );
        for n in [json!(0), json!(9), json!(-1), json!(2.5), json!("2")] {
            let body = json!({ "model": "m", "messages": [user("a")], "n": n });
            let message = rejection(&body);
            assert!(
                message.contains("Field `n` must be an integer from 1 to 8"),
                "{message}"
            );
        }
    }

    #[test]
    fn reasoning_models_think_first_and_count_reasoning_tokens() {
        let body = json!({ "model": "lab/Model-R1-distill", "messages": [user("why sky")] });
        let value = json_body(&chat(&body));
        let message = &value["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], "Thinking about: why sky");
        assert_eq!(
            message["content"],
            "Mock reply from lab/Model-R1-distill: why sky"
        );
        let usage = &value["usage"];
        assert_eq!(usage["completion_tokens"], 6 + 4);
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 4);
        assert_eq!(usage["total_tokens"], 2 + 10);

        let plain = json_body(&chat(&json!({ "model": "m", "messages": [user("why")] })));
        assert!(
            plain["choices"][0]["message"]
                .get("reasoning_content")
                .is_none()
        );
        assert!(plain["usage"].get("completion_tokens_details").is_none());
        assert!(is_reasoning_model("deepseek/deepseek-r1"));
        assert!(!is_reasoning_model("deepseek/deepseek-v3"));
    }

    #[test]
    fn scripted_completions_are_sent_verbatim_or_as_their_chunks() {
        let completion = json!({ "id": "x", "object": "chat.completion", "zeta": 1, "alpha": 2,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hé" },
                          "finish_reason": "stop" }] });
        let buffered = scripted(&completion, false);
        let Payload::Whole(bytes) = &buffered.payload else {
            panic!("expected a whole body");
        };
        assert_eq!(bytes.as_ref(), serde_json::to_vec(&completion).unwrap());
        let Payload::Events(events) = scripted(&completion, true).payload else {
            panic!("expected events");
        };
        let chunks = chat_chunks(&completion, STREAM_PIECE_CHARS);
        assert_eq!(events.concat(), crate::sse_body(&chunks));
    }
}
