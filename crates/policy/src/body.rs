//! Reading Novita's error bodies, whatever shape they arrive in.
//!
//! Three shapes reach a client: Novita's flat `{"code", "reason", "message", "metadata"}`,
//! the `{"error": {...}}` wrapper that OpenAI-style gateways and proxies use, and plain
//! text or HTML (unknown routes, proxies). [`ErrorBody::parse`] takes any bytes and never
//! fails: what it cannot read it leaves out.

use serde_json::{Map, Value};

/// The longest message kept from a body, in characters; the rest is cut with an ellipsis
/// so one runaway proxy page cannot flood logs or error messages.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The shape an error body arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shape {
    /// Novita's flat JSON object with `code`, `reason`, `message`, `metadata`.
    Flat,
    /// A gateway's `{"error": {...}}` wrapper.
    Wrapped,
    /// Not JSON: plain text or HTML.
    Text,
    /// No body at all (or only whitespace).
    Empty,
}

/// What an error body says, as far as it can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The shape the body arrived in.
    pub shape: Shape,
    /// Novita's machine-readable reason (`RATE_LIMIT_EXCEEDED`), or a gateway's string code.
    pub reason: Option<String>,
    /// The human-readable message, whitespace-collapsed and cut to [`MAX_MESSAGE_CHARS`].
    pub message: Option<String>,
    /// A request id found in the body, for support tickets.
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// Reads an error body of any shape; never fails, never panics.
    ///
    /// ```
    /// use novita_policy::{ErrorBody, Shape};
    ///
    /// let flat = ErrorBody::parse(br#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"slow down"}"#);
    /// assert_eq!(flat.shape, Shape::Flat);
    /// assert_eq!(flat.reason.as_deref(), Some("TOKEN_LIMIT_EXCEEDED"));
    ///
    /// let text = ErrorBody::parse(b"404 page not found");
    /// assert_eq!(text.message.as_deref(), Some("404 page not found"));
    /// ```
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Self {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Self {
                shape: Shape::Empty,
                reason: None,
                message: None,
                request_id: None,
            };
        }
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Object(object)) => from_object(&object),
            Ok(other) => Self {
                shape: Shape::Text,
                reason: None,
                message: clean(&other.to_string()),
                request_id: None,
            },
            Err(_) => from_text(trimmed),
        }
    }
}

fn from_object(object: &Map<String, Value>) -> ErrorBody {
    if let Some(inner) = object.get("error") {
        return match inner {
            Value::Object(inner) => ErrorBody {
                shape: Shape::Wrapped,
                reason: text_field(inner, "reason").or_else(|| text_field(inner, "code")),
                message: text_field(inner, "message").and_then(|message| clean(&message)),
                request_id: request_id(inner).or_else(|| request_id(object)),
            },
            Value::String(message) => ErrorBody {
                shape: Shape::Wrapped,
                reason: text_field(object, "reason"),
                message: clean(message),
                request_id: request_id(object),
            },
            _ => flat(object),
        };
    }
    flat(object)
}

fn flat(object: &Map<String, Value>) -> ErrorBody {
    ErrorBody {
        shape: Shape::Flat,
        reason: text_field(object, "reason"),
        message: text_field(object, "message")
            .or_else(|| text_field(object, "msg"))
            .or_else(|| text_field(object, "detail"))
            .and_then(|message| clean(&message)),
        request_id: request_id(object),
    }
}

/// A non-empty string field; numbers are not taken as reasons (a numeric `code` is the
/// status repeated, not a reason).
fn text_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        _ => None,
    }
}

fn request_id(object: &Map<String, Value>) -> Option<String> {
    const KEYS: [&str; 3] = ["request_id", "requestId", "trace_id"];
    KEYS.iter()
        .find_map(|key| text_field(object, key))
        .or_else(|| match object.get("metadata") {
            Some(Value::Object(metadata)) => KEYS.iter().find_map(|key| text_field(metadata, key)),
            _ => None,
        })
}

fn from_text(bytes: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(bytes);
    let message = if looks_like_html(&text) {
        html_title(&text).and_then(clean).or_else(|| {
            Some("an HTML page (probably from a proxy) instead of an API error".to_owned())
        })
    } else {
        clean(&text)
    };
    ErrorBody {
        shape: Shape::Text,
        reason: None,
        message,
        request_id: None,
    }
}

fn looks_like_html(text: &str) -> bool {
    let start = text
        .trim_start()
        .get(..15)
        .unwrap_or(text)
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html") || start.starts_with("<head")
}

fn html_title(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    text.get(start..end)
}

/// Collapses whitespace and cuts the text to [`MAX_MESSAGE_CHARS`]; `None` when nothing
/// printable is left.
fn clean(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_CHARS + 4));
    for (count, word) in text.split_whitespace().enumerate() {
        if count > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > MAX_MESSAGE_CHARS {
            let cut = out
                .char_indices()
                .nth(MAX_MESSAGE_CHARS)
                .map_or(out.len(), |(at, _)| at);
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out.retain(|c| !c.is_control());
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        bytes: &[u8],
        shape: Shape,
        reason: Option<&str>,
        message: Option<&str>,
        id: Option<&str>,
    ) {
        let body = ErrorBody::parse(bytes);
        let input = String::from_utf8_lossy(bytes);
        assert_eq!(body.shape, shape, "{input}");
        assert_eq!(body.reason.as_deref(), reason, "{input}");
        assert_eq!(body.message.as_deref(), message, "{input}");
        assert_eq!(body.request_id.as_deref(), id, "{input}");
    }

    #[test]
    fn reads_every_shape() {
        check(
            br#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"too many requests","metadata":{}}"#,
            Shape::Flat,
            Some("RATE_LIMIT_EXCEEDED"),
            Some("too many requests"),
            None,
        );
        check(
            br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE","message":"m","metadata":{"request_id":"r-1"}}"#,
            Shape::Flat,
            Some("MODEL_NOT_AVAILABLE"),
            Some("m"),
            Some("r-1"),
        );
        check(
            br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
            Shape::Wrapped,
            Some("rate_limit_exceeded"),
            Some("Rate limit reached"),
            None,
        );
        check(
            br#"{"error":{"message":"boom","code":503,"metadata":{}},"request_id":"gw-9"}"#,
            Shape::Wrapped,
            None,
            Some("boom"),
            Some("gw-9"),
        );
        check(
            br#"{"error":"plain string"}"#,
            Shape::Wrapped,
            None,
            Some("plain string"),
            None,
        );
        check(
            b"404 page not found\n",
            Shape::Text,
            None,
            Some("404 page not found"),
            None,
        );
        check(
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            Shape::Text,
            None,
            Some("502 Bad Gateway"),
            None,
        );
        check(
            b"<html><body>no title</body></html>",
            Shape::Text,
            None,
            Some("an HTML page (probably from a proxy) instead of an API error"),
            None,
        );
        check(b"", Shape::Empty, None, None, None);
        check(b" \r\n\t ", Shape::Empty, None, None, None);
    }

    #[test]
    fn tolerates_odd_but_valid_json() {
        check(b"[1,2]", Shape::Text, None, Some("[1,2]"), None);
        check(
            b"\"just a string\"",
            Shape::Text,
            None,
            Some("\"just a string\""),
            None,
        );
        check(
            br#"{"reason":42,"message":null}"#,
            Shape::Flat,
            None,
            None,
            None,
        );
        check(br#"{"error":7}"#, Shape::Flat, None, None, None);
        check(
            br#"{"detail":"Not Found"}"#,
            Shape::Flat,
            None,
            Some("Not Found"),
            None,
        );
    }

    #[test]
    fn malformed_json_is_kept_as_text() {
        check(
            br#"{"code":429,"reason":"RATE_LIM"#,
            Shape::Text,
            None,
            Some(r#"{"code":429,"reason":"RATE_LIM"#),
            None,
        );
    }

    #[test]
    fn long_messages_are_cut_and_control_characters_dropped() {
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
        let message = ErrorBody::parse(long.as_bytes()).message.unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
        let message = ErrorBody::parse(b"bad\x07 bell\x00 here").message.unwrap();
        assert_eq!(message, "bad bell here");
    }

    #[test]
    fn invalid_utf8_never_fails() {
        let body = ErrorBody::parse(&[0xff, 0xfe, b'h', b'i', 0x80]);
        assert_eq!(body.shape, Shape::Text);
        assert!(body.message.unwrap().contains("hi"));
    }
}
