//! What one call sends: its route, its body, the model it names and the delivery it asks
//! for. The [`CallDriver`](crate::CallDriver) owns it and writes each attempt's body from it.

use novita_policy::Delivery;
use serde_json::Value;

use crate::error::Error;
use crate::wire::ChatRequest;

/// The chat-completions route, the one route whose calls can switch to streaming.
const CHAT_ROUTE: &str = "chat/completions";

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
    route: String,
    body: Body,
    delivery: Delivery,
}

/// A request's body. A chat request stays typed, so each attempt serialises the struct
/// directly (going through `serde_json::Value` costs more than the policy itself).
#[derive(Clone, Debug, PartialEq)]
enum Body {
    None,
    Chat(Box<ChatRequest>),
    Json(Value),
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
        let mut request = request.clone();
        request.stream = delivery == Delivery::Streamed;
        Self {
            route: CHAT_ROUTE.to_owned(),
            body: Body::Chat(Box::new(request)),
            delivery,
        }
    }

    /// Any JSON `POST` on `route`; a `model` field in the body takes part in fallback, and
    /// on the chat route the call may also switch to streaming.
    #[must_use]
    pub fn post(route: &str, body: &Value) -> Self {
        Self {
            route: route.trim_start_matches('/').to_owned(),
            body: Body::Json(body.clone()),
            delivery: Delivery::Buffered,
        }
    }

    /// A `GET` of `route`, which names no model.
    #[must_use]
    pub fn get(route: &str) -> Self {
        Self {
            route: route.trim_start_matches('/').to_owned(),
            body: Body::None,
            delivery: Delivery::Buffered,
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
            Body::Chat(request) => Some(&request.model),
            Body::Json(body) => body.get("model").and_then(Value::as_str),
        }
    }

    /// The delivery the caller asked for.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Whether a switch to streaming can be honoured.
    #[must_use]
    pub fn reassembly(&self) -> Reassembly {
        if self.route == CHAT_ROUTE && !matches!(self.body, Body::None) {
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
            Body::None => return Ok(None),
            Body::Chat(request) => {
                if request.model != model {
                    model.clone_into(&mut request.model);
                }
                request.stream = streamed;
                serde_json::to_vec(request)
            }
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

/// The models a call may try, in order: the one it names, then the fallbacks other than
/// it. A call that names no model is keyed by its route and has no fallbacks.
pub(crate) fn model_chain(request: &Request, fallbacks: &[String]) -> Vec<String> {
    let Some(model) = request.model() else {
        return vec![request.route.clone()];
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
