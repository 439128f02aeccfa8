//! Scripted faults: what a [`Fault`] describes and the answer it makes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::openai::{self, Answer, JSON, PLAIN_TEXT};

/// One scripted misbehaviour (or a deliberate normal answer) for a matching request.
///
/// Build one with a constructor such as [`Fault::status`] or [`Fault::reset`], then refine it
/// with the chained methods. Body methods ([`reason`](Fault::reason),
/// [`message`](Fault::message), [`gateway_shape`](Fault::gateway_shape),
/// [`plain_text`](Fault::plain_text), [`raw_body`](Fault::raw_body),
/// [`oversized`](Fault::oversized)) only shape [`Fault::status`] answers; headers,
/// [`delay`](Fault::delay) and [`write_in_pieces`](Fault::write_in_pieces) apply to every
/// kind.
#[derive(Clone, Debug)]
pub struct Fault {
    pub(crate) kind: Kind,
    reason: Option<String>,
    message: Option<String>,
    body: ErrorBody,
    min_size: usize,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) delay: Duration,
    /// The largest piece and the seed of [`Fault::write_in_pieces`].
    pub(crate) pieces: Option<(usize, u64)>,
}

/// What a fault does to the answer.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Status(StatusCode),
    Ok,
    Completion(Arc<Value>),
    Reset,
    MalformedSuccess,
    SlowBody(Duration),
    StreamErrorAfter(usize),
    StreamCutAfter(usize),
}

/// The shape of an error answer's body.
#[derive(Clone, Debug)]
enum ErrorBody {
    Flat,
    Gateway,
    PlainText(String),
    Raw(Vec<u8>),
}

impl Fault {
    fn new(kind: Kind) -> Fault {
        Fault {
            kind,
            reason: None,
            message: None,
            body: ErrorBody::Flat,
            min_size: 0,
            headers: Vec::new(),
            delay: Duration::ZERO,
            pieces: None,
        }
    }

    /// An error answer with this status and Novita's flat body
    /// `{"code", "reason", "message", "metadata"}`, with a default reason and message per status.
    ///
    /// # Panics
    ///
    /// Panics if `code` is not a valid HTTP status (100 to 999).
    pub fn status(code: u16) -> Fault {
        match StatusCode::from_u16(code) {
            Ok(status) => Fault::new(Kind::Status(status)),
            Err(_) => panic!("novita-mock: {code} is not a valid HTTP status"),
        }
    }

    /// The normal answer, for scripts that interleave successes (e.g. with a
    /// [`delay`](Fault::delay)).
    pub fn ok() -> Fault {
        Fault::new(Kind::Ok)
    }

    /// A success whose body is exactly `completion` (serialized as it is, byte for byte),
    /// instead of the answer the mock would have made, for tests of payload shapes the mock
    /// does not generate: tool calls, reasoning, refusals, log probabilities, unknown fields.
    ///
    /// A request with `"stream": true` gets the chunks that [`chat_chunks`](crate::chat_chunks)
    /// makes of `completion` with pieces of [`STREAM_PIECE_CHARS`](crate::STREAM_PIECE_CHARS),
    /// then `data: [DONE]`, so the stream reassembles into exactly `completion` (which should
    /// therefore be a `chat.completion` object). The request is not validated, and the
    /// server's [latency](crate::Builder::latency) applies as to a normal answer.
    ///
    /// ```
    /// use novita_mock::{Fault, MockServer, Route};
    /// use serde_json::json;
    ///
    /// let server = MockServer::start();
    /// let refusal = json!({
    ///     "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    ///     "choices": [{"index": 0, "finish_reason": "stop",
    ///                  "message": {"role": "assistant", "content": null, "refusal": "No."}}],
    /// });
    /// server.script(Route::ChatCompletions, None, [Fault::completion(refusal)]);
    /// ```
    pub fn completion(completion: Value) -> Fault {
        Fault::new(Kind::Completion(Arc::new(completion)))
    }

    /// Reads the request, then aborts the TCP connection with a reset and no response; the
    /// recorded status is 0.
    pub fn reset() -> Fault {
        Fault::new(Kind::Reset)
    }

    /// A `200` with `content-type: application/json` whose body is truncated, invalid JSON.
    pub fn malformed_success() -> Fault {
        Fault::new(Kind::MalformedSuccess)
    }

    /// The normal answer with its body trickled out: SSE streams one event at a time, other
    /// bodies in 8 pieces, with `chunk_delay` between pieces.
    pub fn slow_body(chunk_delay: Duration) -> Fault {
        Fault::new(Kind::SlowBody(chunk_delay))
    }

    /// For `stream: true` requests: `chunks` normal SSE chunks, then an error event
    /// `data: {"error": {...}}` and the end of the body without `data: [DONE]`.
    ///
    /// Requests that do not stream get the normal answer.
    pub fn stream_error_after(chunks: usize) -> Fault {
        Fault::new(Kind::StreamErrorAfter(chunks))
    }

    /// For `stream: true` requests: `chunks` normal SSE chunks, then a connection reset with
    /// neither `data: [DONE]` nor an error event.
    ///
    /// Requests that do not stream get the normal answer.
    pub fn stream_cut_after(chunks: usize) -> Fault {
        Fault::new(Kind::StreamCutAfter(chunks))
    }

    /// Sets the error body's `reason` (e.g. `TOKEN_LIMIT_EXCEEDED`) instead of the status default.
    pub fn reason(mut self, reason: impl Into<String>) -> Fault {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the error body's `message` instead of the status default.
    pub fn message(mut self, message: impl Into<String>) -> Fault {
        self.message = Some(message.into());
        self
    }

    /// Wraps the error the way OpenAI-style gateways do:
    /// `{"error": {"message", "type", "code", "metadata"}}`.
    ///
    /// `code` is the reason string when [`reason`](Fault::reason) was set, else the status number.
    pub fn gateway_shape(mut self) -> Fault {
        self.body = ErrorBody::Gateway;
        self
    }

    /// Sends this text as the body, with `content-type: text/plain`.
    pub fn plain_text(mut self, text: impl Into<String>) -> Fault {
        self.body = ErrorBody::PlainText(text.into());
        self
    }

    /// Sends exactly these bytes (e.g. malformed JSON), with `content-type: application/json`.
    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Fault {
        self.body = ErrorBody::Raw(body.into());
        self
    }

    /// Pads the JSON error body's message so the body is at least `min_bytes` long, to test
    /// bounded error-body reads.
    pub fn oversized(mut self, min_bytes: usize) -> Fault {
        self.min_size = min_bytes;
        self
    }

    /// Adds a response header (e.g. `x-request-id`, `x-ratelimit-remaining-tokens`), replacing
    /// the server's own value for that name.
    ///
    /// # Panics
    ///
    /// Panics if `name` or `value` is not a valid HTTP header name or value.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Fault {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Ok(header) = HeaderName::try_from(name) else {
            panic!("novita-mock: {name:?} is not a valid header name");
        };
        let Ok(value) = HeaderValue::try_from(value) else {
            panic!("novita-mock: {value:?} is not a valid value for header {name}");
        };
        self.headers.push((header, value));
        self
    }

    /// Adds `Retry-After: <secs>`, the delay-seconds form.
    pub fn retry_after_secs(self, secs: u64) -> Fault {
        self.header("retry-after", secs.to_string())
    }

    /// Adds `Retry-After: <HTTP-date>` in IMF-fixdate form (whole seconds).
    pub fn retry_after_date(self, at: SystemTime) -> Fault {
        self.header("retry-after", httpdate::fmt_http_date(at))
    }

    /// Adds `retry-after-ms: <ms>`, the millisecond header some gateways send.
    pub fn retry_after_ms(self, ms: u64) -> Fault {
        self.header("retry-after-ms", ms.to_string())
    }

    /// Writes the body in pieces of pseudo-random sizes from 1 to `max_piece` bytes, flushing
    /// the connection after each, so a client's decoders meet every split: inside a UTF-8
    /// character, inside `\r\n` or `\n\n`, inside a JSON token, across SSE events.
    ///
    /// The sizes are drawn from a sequence seeded with `seed`, so the same fault cuts the same
    /// body at the same places. It applies to every answer with a body (normal, scripted,
    /// error or broken stream); the body's bytes and framing are unchanged (`content-length`
    /// stays when the answer had one). Combined with [`slow_body`](Fault::slow_body), the
    /// pause comes between every two pieces.
    ///
    /// # Panics
    ///
    /// Panics if `max_piece` is 0.
    pub fn write_in_pieces(mut self, max_piece: usize, seed: u64) -> Fault {
        assert!(
            max_piece > 0,
            "novita-mock: write_in_pieces needs pieces of at least 1 byte"
        );
        self.pieces = Some((max_piece, seed));
        self
    }

    /// Waits this long before sending the response headers (or the reset), for any fault kind.
    pub fn delay(mut self, delay: Duration) -> Fault {
        self.delay = delay;
        self
    }

    /// The error answer of a [`Kind::Status`] fault.
    pub(crate) fn error_answer(&self, status: StatusCode) -> Answer {
        let code = status.as_u16();
        let (default_reason, default_message) = openai::default_reason(code);
        let reason = self.reason.as_deref().unwrap_or(default_reason);
        let message = self.message.as_deref().unwrap_or(default_message);
        let render = |message: &str| match self.body {
            ErrorBody::Gateway => {
                let code = match &self.reason {
                    Some(reason) => Value::from(reason.as_str()),
                    None => Value::from(code),
                };
                openai::gateway_error(&code, status.as_u16(), message)
            }
            _ => openai::flat_error(code, reason, message),
        };
        match &self.body {
            ErrorBody::PlainText(text) => Answer::bytes(status, PLAIN_TEXT, text.clone()),
            ErrorBody::Raw(bytes) => Answer::bytes(status, JSON, bytes.clone()),
            ErrorBody::Flat | ErrorBody::Gateway => {
                let mut body = render(message).to_string();
                if body.len() < self.min_size {
                    // The padding is plain ASCII, so it grows the JSON byte for byte.
                    let padded = format!("{message}{}", "x".repeat(self.min_size - body.len()));
                    body = render(&padded).to_string();
                }
                Answer::bytes(status, JSON, Bytes::from(body))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Payload;

    fn body(answer: &Answer) -> &[u8] {
        match &answer.payload {
            Payload::Whole(bytes) => bytes,
            Payload::Events(_) => panic!("expected a whole body"),
        }
    }

    fn json(answer: &Answer) -> Value {
        serde_json::from_slice(body(answer)).unwrap()
    }

    #[test]
    fn default_reasons_follow_the_status() {
        for (code, reason) in [
            (400, "INVALID_REQUEST_BODY"),
            (401, "FAILED_TO_AUTH"),
            (403, "ACCESS_DENY"),
            (404, "MODEL_NOT_FOUND"),
            (429, "RATE_LIMIT_EXCEEDED"),
            (500, "INTERNAL_SERVER_ERROR"),
            (503, "SERVICE_NOT_AVAILABLE"),
            (504, "GATEWAY_TIMEOUT"),
            (418, "UNKNOWN"),
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            let value = json(&Fault::status(code).error_answer(status));
            assert_eq!(value["code"], code);
            assert_eq!(value["reason"], reason);
            assert!(!value["message"].as_str().unwrap().is_empty());
            assert_eq!(value["metadata"], serde_json::json!({}));
        }
    }

    #[test]
    fn gateway_code_is_the_reason_when_one_was_set() {
        let status = StatusCode::TOO_MANY_REQUESTS;
        let plain = json(&Fault::status(429).gateway_shape().error_answer(status));
        assert_eq!(plain["error"]["code"], 429);
        assert_eq!(plain["error"]["type"], "rate_limit_error");
        let named = Fault::status(429)
            .reason("TOKEN_LIMIT_EXCEEDED")
            .message("tpm")
            .gateway_shape();
        let named = json(&named.error_answer(status));
        assert_eq!(named["error"]["code"], "TOKEN_LIMIT_EXCEEDED");
        assert_eq!(named["error"]["message"], "tpm");
    }

    #[test]
    fn oversized_pads_to_at_least_the_size_and_stays_json() {
        for min in [0, 10, 1000, 100_000] {
            let answer = Fault::status(500)
                .oversized(min)
                .error_answer(StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body(&answer).len() >= min);
            json(&answer);
        }
        let answer = Fault::status(500)
            .oversized(5000)
            .error_answer(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(&answer).len(), 5000);
    }
}
