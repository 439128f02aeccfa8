//! Fuzz target `error_body`: `ErrorBody::parse` on arbitrary bytes (Novita's flat JSON,
//! gateways' `{"error": {...}}`, text, HTML, and everything in between).
//!
//! Checks: nothing panics; the shape is `Empty` exactly when the body is only whitespace;
//! a message is never empty, holds no control characters and is at most
//! `MAX_MESSAGE_CHARS` characters plus the ellipsis; a reason or request id is never
//! blank.

#![no_main]

use libfuzzer_sys::fuzz_target;
use novita_policy::{ErrorBody, MAX_MESSAGE_CHARS, Shape};

fuzz_target!(|data: &[u8]| {
    let body = ErrorBody::parse(data);
    assert_eq!(
        body.shape == Shape::Empty,
        data.trim_ascii().is_empty(),
        "{body:?}"
    );
    if let Some(message) = &body.message {
        assert!(!message.is_empty(), "{body:?}");
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{body:?}");
        assert!(!message.chars().any(char::is_control), "{body:?}");
    }
    for field in [&body.reason, &body.request_id].into_iter().flatten() {
        assert!(!field.trim().is_empty(), "{body:?}");
    }
    assert_eq!(ErrorBody::parse(data), body, "parsing is deterministic");
});
