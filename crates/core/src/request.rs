//! What one call sends: its route, its body, the model it names and the delivery it asks
//! for. The [`CallDriver`](crate::CallDriver) owns it and writes each attempt's body from it.

use std::borrow::Cow;
use std::fmt;

use novita_policy::Delivery;
use serde_json::Value;

use crate::error::Error;
use crate::wire::ChatRequest;

/// The chat-completions route, the one route whose calls can switch to streaming.
const CHAT_ROUTE: &str = "chat/completions";

/// Characters per token in the estimate of a prompt's size: OpenAI's rule of thumb for
/// English text ("one token is about four characters"). Rough for code and other
/// languages, but the estimate only has to hold until the answer's `usage` corrects it.
pub const CHARS_PER_TOKEN: u64 = 4;

/// The answer's tokens in the estimate when a request sets neither `max_tokens` nor
/// `max_completion_tokens`: a short chat answer. Reserving a model's whole context instead
/// would hold a client far below its tokens-per-minute limit when answers are short, and
/// the correction from `usage` repays or charges the difference once the answer is in.
pub const DEFAULT_ANSWER_TOKENS: u64 = 256;

/// One call's request, before the policy picks the model and delivery of each attempt.
///
/// ```
/// # use novita_core::{Request, wire::ChatRequest};
/// let chat = Request::chat(&ChatRequest::new("deepseek/deepseek-v3", "Hello"));
/// assert_eq!(chat.route(), "chat/completions");
/// assert_eq!(chat.model(), Some("deepseek/deepseek-v3"));
/// assert_eq!(Request::get("models").model(), None);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    route: Cow<'static, str>,
    body: Body,
    delivery: Delivery,
}

/// A request's body.
#[derive(Clone, Debug, PartialEq)]
enum Body {
    None,
    Chat(ChatJson),
    Json(Value),
    /// A request somebody else wrote and sends to `url`: its JSON (or `null`) is only read.
    Relayed {
        url: String,
        json: Value,
    },
}

/// A chat request, written as JSON once from the caller's struct, which is neither copied
/// nor kept (copying it cost a call more than the rest of its request's handling): every
/// attempt to the model and delivery it was written for sends these bytes. Another model
/// or a switch to streaming, which only a failure brings, rewrites them through
/// `serde_json::Value` (too slow for every call, where the typed struct is written
/// directly, but not for a retry).
#[derive(Clone, PartialEq)]
struct ChatJson {
    /// The body for `model` and `streamed`, or why the request cannot be written (the
    /// first attempt then fails with that encoding error).
    json: Result<Vec<u8>, String>,
    /// The model `json` names.
    model: String,
    /// Whether `json` asks for a stream.
    streamed: bool,
    /// [`Request::estimated_tokens`], counted while the typed request was at hand.
    estimated_tokens: u64,
}

impl ChatJson {
    fn new(request: &ChatRequest, streamed: bool) -> Self {
        let json = if request.stream == streamed {
            serde_json::to_vec(request)
        } else {
            // Only for a caller's struct whose `stream` disagrees with the call (a stream
            // asked for through `chat_stream`, say): the flag is the call's to set.
            let mut request = request.clone();
            request.stream = streamed;
            serde_json::to_vec(&request)
        };
        Self {
            json: json.map_err(|error| error.to_string()),
            model: request.model.clone(),
            streamed,
            estimated_tokens: estimate(
                chat_chars(request),
                request
                    .max_completion_tokens
                    .or(request.max_tokens)
                    .map(u64::from),
            ),
        }
    }

    /// The body of an attempt to `model`, streamed or not; rewritten first when either
    /// differs from what the bytes say.
    fn body_for(&mut self, model: &str, streamed: bool) -> Result<Vec<u8>, serde_json::Error> {
        let json = self
            .json
            .as_mut()
            .map_err(<serde_json::Error as serde::ser::Error>::custom)?;
        if self.model != model || self.streamed != streamed {
            let mut value: Value = serde_json::from_slice(json)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("model".to_owned(), Value::from(model));
                if streamed {
                    object.insert("stream".to_owned(), Value::Bool(true));
                } else if self.streamed {
                    // As the typed struct writes it: no `stream` field when not streaming.
                    object.remove("stream");
                }
            }
            *json = serde_json::to_vec(&value)?;
            model.clone_into(&mut self.model);
            self.streamed = streamed;
        }
        Ok(json.clone())
    }
}

impl fmt::Debug for ChatJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self
            .json
            .as_ref()
            .map(|bytes| String::from_utf8_lossy(bytes));
        f.debug_struct("ChatJson")
            .field("json", &json)
            .field("model", &self.model)
            .field("streamed", &self.streamed)
            .field("estimated_tokens", &self.estimated_tokens)
            .finish()
    }
}

/// Whether a switch to streaming can be honoured for a call: its answer can be read as a
/// stream and reassembled (chat completions can; other routes cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reassembly {
    /// Chat completions: a switch to streaming is honoured.
    Chat,
    /// Any other route: every attempt stays buffered.
    Unsupported,
}

impl Request {
    /// A buffered chat completion (the policy may switch it to streaming after a timeout).
    #[must_use]
    pub fn chat(request: &ChatRequest) -> Self {
        Self::chat_with(request, Delivery::Buffered)
    }

    /// A streamed chat completion: every attempt asks for server-sent events.
    #[must_use]
    pub fn chat_stream(request: &ChatRequest) -> Self {
        Self::chat_with(request, Delivery::Streamed)
    }

    fn chat_with(request: &ChatRequest, delivery: Delivery) -> Self {
        Self {
            route: Cow::Borrowed(CHAT_ROUTE),
            body: Body::Chat(ChatJson::new(request, delivery == Delivery::Streamed)),
            delivery,
        }
    }

    /// Any JSON `POST` on `route`; a `model` field in the body takes part in fallback, and
    /// on the chat route the call may also switch to streaming.
    #[must_use]
    pub fn post(route: &str, body: &Value) -> Self {
        Self {
            route: Cow::Owned(route.trim_start_matches('/').to_owned()),
            body: Body::Json(body.clone()),
            delivery: Delivery::Buffered,
        }
    }

    /// A `GET` of `route`, which names no model.
    #[must_use]
    pub fn get(route: &str) -> Self {
        Self {
            route: Cow::Owned(route.trim_start_matches('/').to_owned()),
            body: Body::None,
            delivery: Delivery::Buffered,
        }
    }

    /// A request the application built and sends itself, which a middleware relays: the
    /// policy sees its model (the body's `model` field, when `json` has one) and its
    /// delivery (`"stream": true` asks for a stream), and picks each attempt's model, but
    /// writes no body ([`Attempt::body`](crate::Attempt::body) is `None`): the sender
    /// re-sends its own, naming [`Attempt::model`](crate::Attempt::model). It never
    /// switches to streaming, since nobody here can reassemble the answer. `url` is where
    /// every attempt goes; the route is its path. `json` is `Value::Null` for a body that
    /// is not JSON, or none.
    ///
    /// ```
    /// # use novita_core::Request;
    /// # use novita_core::policy::Delivery;
    /// let body = serde_json::json!({"model": "m", "stream": true, "messages": []});
    /// let relayed = Request::relayed("https://gateway.example/v1/chat/completions", body);
    /// assert_eq!(relayed.route(), "v1/chat/completions");
    /// assert_eq!(relayed.model(), Some("m"));
    /// assert_eq!(relayed.delivery(), Delivery::Streamed);
    /// ```
    #[must_use]
    pub fn relayed(url: &str, json: Value) -> Self {
        let path = url
            .find("://")
            .map_or(url, |scheme| &url[scheme + 3..])
            .split_once('/')
            .map_or("", |(_, path)| path);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let delivery = if json.get("stream").and_then(Value::as_bool) == Some(true) {
            Delivery::Streamed
        } else {
            Delivery::Buffered
        };
        Self {
            route: Cow::Owned(path.to_owned()),
            body: Body::Relayed {
                url: url.to_owned(),
                json,
            },
            delivery,
        }
    }

    /// Where every attempt of a relayed request goes; `None` for the others, which go to
    /// the client's base URL and the route.
    #[must_use]
    pub fn relayed_url(&self) -> Option<&str> {
        match &self.body {
            Body::Relayed { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The route, such as `chat/completions`.
    #[must_use]
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The model the request names, if any; only a request that names one falls back.
    #[must_use]
    pub fn model(&self) -> Option<&str> {
        match &self.body {
            Body::None => None,
            Body::Chat(chat) => Some(&chat.model),
            Body::Json(body) | Body::Relayed { json: body, .. } => {
                body.get("model").and_then(Value::as_str)
            }
        }
    }

    /// The delivery the caller asked for.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The tokens this request is expected to cost, charged against a model's
    /// tokens-per-minute limit ([`PolicyConfig::limits`](novita_policy::PolicyConfig::limits))
    /// on each attempt and corrected from the answer's `usage`:
    ///
    /// - the prompt: every character of the messages' text (text parts included, and the
    ///   arguments of the tool calls they carry), or of a `prompt` or `input` field,
    ///   divided by [`CHARS_PER_TOKEN`] and rounded up;
    /// - the answer: `max_completion_tokens`, else `max_tokens`, else
    ///   [`DEFAULT_ANSWER_TOKENS`] for a request with a prompt.
    ///
    /// A `GET` costs nothing.
    ///
    /// ```
    /// # use novita_core::{Request, wire::ChatRequest};
    /// let mut chat = ChatRequest::new("m", "Hello, world"); // 12 characters: 3 tokens
    /// chat.max_tokens = Some(100);
    /// assert_eq!(Request::chat(&chat).estimated_tokens(), 103);
    /// assert_eq!(Request::get("models").estimated_tokens(), 0);
    /// ```
    #[must_use]
    pub fn estimated_tokens(&self) -> u64 {
        let (chars, answer) = match &self.body {
            Body::None => return 0,
            Body::Chat(chat) => return chat.estimated_tokens,
            Body::Json(body) | Body::Relayed { json: body, .. } => {
                let chars = ["prompt", "input"]
                    .iter()
                    .filter_map(|field| body.get(field))
                    .chain(
                        body.get("messages")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|message| message.get("content")),
                    )
                    .map(text_chars)
                    .sum::<u64>();
                let answer = ["max_completion_tokens", "max_tokens"]
                    .iter()
                    .find_map(|field| body.get(field).and_then(Value::as_u64));
                (chars, answer)
            }
        };
        estimate(chars, answer)
    }

    /// Whether a switch to streaming can be honoured.
    #[must_use]
    pub fn reassembly(&self) -> Reassembly {
        if self.route == CHAT_ROUTE && matches!(self.body, Body::Chat(_) | Body::Json(_)) {
            Reassembly::Chat
        } else {
            Reassembly::Unsupported
        }
    }

    /// The body of one attempt to `model` with `delivery`, as JSON bytes; `None` for a
    /// `GET`. The model (when the body names one) and, on the chat route, the stream flag
    /// are set for this attempt.
    pub(crate) fn body_for(
        &mut self,
        model: &str,
        delivery: Delivery,
    ) -> Result<Option<Vec<u8>>, Error> {
        let streamed = delivery == Delivery::Streamed;
        let chat_route = self.route == CHAT_ROUTE;
        let bytes = match &mut self.body {
            Body::None | Body::Relayed { .. } => return Ok(None),
            Body::Chat(chat) => chat.body_for(model, streamed),
            Body::Json(body) => {
                if let Some(object) = body.as_object_mut() {
                    if object.contains_key("model") {
                        object.insert("model".to_owned(), Value::from(model));
                    }
                    if chat_route {
                        object.insert("stream".to_owned(), Value::from(streamed));
                    }
                }
                serde_json::to_vec(body)
            }
        };
        bytes.map(Some).map_err(Error::Encode)
    }
}

/// The estimate of a request with `chars` characters of prompt and `answer` tokens of
/// answer at most (see [`Request::estimated_tokens`]).
fn estimate(chars: u64, answer: Option<u64>) -> u64 {
    let answer = answer.unwrap_or(if chars > 0 { DEFAULT_ANSWER_TOKENS } else { 0 });
    chars.div_ceil(CHARS_PER_TOKEN).saturating_add(answer)
}

/// The characters of text in a chat request's messages: their text (text parts included)
/// and the arguments of the tool calls they carry.
fn chat_chars(request: &ChatRequest) -> u64 {
    let chars = request
        .messages
        .iter()
        .map(|message| {
            let calls = message
                .tool_calls
                .iter()
                .map(|call| call.function.arguments.chars().count());
            message.text().chars().count() + calls.sum::<usize>()
        })
        .sum::<usize>();
    chars as u64
}

/// The characters of text in a JSON prompt: a string, or an array of strings and of text
/// parts (`{"type": "text", "text": ...}`).
fn text_chars(value: &Value) -> u64 {
    let chars = |text: &str| text.chars().count() as u64;
    match value {
        Value::String(text) => chars(text),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => chars(text),
                Value::Object(part) => part.get("text").and_then(Value::as_str).map_or(0, chars),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// The models a call may try, in order: the one it names, then the fallbacks other than
/// it. A call that names no model is keyed by its route and has no fallbacks.
pub(crate) fn model_chain(request: &Request, fallbacks: &[String]) -> Vec<String> {
    let Some(model) = request.model() else {
        return vec![request.route.clone().into_owned()];
    };
    let mut chain = Vec::with_capacity(1 + fallbacks.len());
    chain.push(model.to_owned());
    chain.extend(
        fallbacks
            .iter()
            .filter(|fallback| *fallback != model)
            .cloned(),
    );
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: Option<Vec<u8>>) -> Value {
        serde_json::from_slice(&bytes.expect("a body")).unwrap()
    }

    #[test]
    fn attempts_set_the_model_and_stream_flag() {
        let mut chat = Request::chat(&ChatRequest::new("a", "hi"));
        assert_eq!(
            model_chain(&chat, &["b".to_owned(), "a".to_owned()]),
            ["a", "b"],
            "the requested model is not its own fallback"
        );
        let body = json(chat.body_for("b", Delivery::Streamed).unwrap());
        assert_eq!(
            (body["model"].as_str(), body["stream"].as_bool()),
            (Some("b"), Some(true))
        );
        assert_eq!(chat.reassembly(), Reassembly::Chat);

        let mut other = Request::post(
            "/completions",
            &serde_json::json!({"model": "a", "prompt": "x"}),
        );
        let body = json(other.body_for("a", Delivery::Streamed).unwrap());
        assert!(
            body.get("stream").is_none(),
            "only the chat route is switched to streaming"
        );
        assert_eq!(other.reassembly(), Reassembly::Unsupported);

        let mut raw_chat = Request::post("chat/completions", &serde_json::json!({"model": "a"}));
        assert_eq!(raw_chat.reassembly(), Reassembly::Chat);
        let body = json(raw_chat.body_for("a", Delivery::Buffered).unwrap());
        assert_eq!(body["stream"].as_bool(), Some(false));
    }

    #[test]
    fn a_rewritten_chat_body_changes_only_the_model_and_the_stream_flag() {
        use crate::wire::{Message, Tool};
        let mut typed = ChatRequest::conversation(
            "a",
            vec![
                Message::system("Answer in French \"quoted\" é"),
                Message::user("Weather in Paris?"),
            ],
        );
        typed.temperature = Some(0.1);
        typed.max_tokens = Some(64);
        typed.tools.push(Tool::function(
            "get_weather",
            "The weather in a city",
            serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        ));
        typed
            .extra
            .insert("top_a".to_owned(), serde_json::json!(1e-7));
        let typed_json = serde_json::to_value(&typed).unwrap();
        let mut chat = Request::chat(&typed);
        let estimate = chat.estimated_tokens();
        let first = chat.body_for("a", Delivery::Buffered).unwrap().unwrap();
        assert_eq!(
            first,
            serde_json::to_vec(&typed).unwrap(),
            "the struct as written"
        );

        for (model, delivery) in [
            ("b", Delivery::Buffered),
            ("b", Delivery::Streamed),
            ("a", Delivery::Streamed),
            ("a", Delivery::Buffered),
        ] {
            let mut expected = typed_json.clone();
            expected["model"] = Value::from(model);
            if delivery == Delivery::Streamed {
                expected["stream"] = Value::Bool(true);
            }
            let body = json(chat.body_for(model, delivery).unwrap());
            assert_eq!(body, expected, "{model} {delivery:?}");
            assert_eq!(chat.model(), Some(model));
        }
        assert_eq!(chat.estimated_tokens(), estimate);

        // A struct asking for a stream itself is written as the call says.
        typed.stream = true;
        let buffered = json(
            Request::chat(&typed)
                .body_for("a", Delivery::Buffered)
                .unwrap(),
        );
        assert_eq!(buffered, typed_json);
        let streamed = json(
            Request::chat_stream(&ChatRequest::new("a", "hi"))
                .body_for("a", Delivery::Streamed)
                .unwrap(),
        );
        assert_eq!(streamed["stream"], true);
    }

    #[test]
    fn the_token_estimate_counts_the_prompt_and_the_answer_cap() {
        use crate::wire::{ContentPart, Message};
        // 5 + 9 characters: 14 / 4 rounded up is 4; no cap: the default answer.
        let mut chat = ChatRequest::new("m", "Hello");
        chat.messages
            .push(Message::user(vec![ContentPart::text("and again")]));
        assert_eq!(
            Request::chat(&chat).estimated_tokens(),
            4 + DEFAULT_ANSWER_TOKENS
        );
        chat.max_tokens = Some(50);
        assert_eq!(Request::chat_stream(&chat).estimated_tokens(), 54);
        chat.max_completion_tokens = Some(70);
        assert_eq!(
            Request::chat(&chat).estimated_tokens(),
            74,
            "the newer name wins"
        );

        // Raw JSON: messages with text or parts, a prompt, an input.
        let body = serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "12345678"},
                {"role": "user", "content": [{"type": "text", "text": "1234"}, {"type": "image_url"}]},
            ],
            "max_tokens": 10,
        });
        assert_eq!(
            Request::post("chat/completions", &body).estimated_tokens(),
            3 + 10
        );
        let body = serde_json::json!({"model": "m", "prompt": ["abcd", "e"]});
        assert_eq!(
            Request::post("completions", &body).estimated_tokens(),
            2 + DEFAULT_ANSWER_TOKENS
        );
        let body = serde_json::json!({"model": "m"});
        assert_eq!(Request::post("embeddings", &body).estimated_tokens(), 0);
        // Multi-byte text is counted in characters.
        let mut capped = ChatRequest::new("m", "日本語です");
        capped.max_tokens = Some(0);
        assert_eq!(Request::chat(&capped).estimated_tokens(), 2);
    }

    #[test]
    fn a_request_without_a_model_is_keyed_by_its_route() {
        let mut list = Request::get("models");
        assert_eq!(list.route(), "models");
        assert_eq!(model_chain(&list, &["fallback".to_owned()]), ["models"]);
        assert!(
            list.body_for("models", Delivery::Buffered)
                .unwrap()
                .is_none()
        );
        let nameless = Request::post("embeddings", &serde_json::json!({"input": "x"}));
        assert_eq!(
            model_chain(&nameless, &["fallback".to_owned()]),
            ["embeddings"]
        );
    }
}
