//! Streams: complete ones arrive whole; broken ones surface as errors, never as a
//! truncated answer.

use novita_mock::{Fault, Route};
use novita_ureq::ChatRequest;
use novita_ureq::Error as CallError;

use crate::{MODEL, for_each_adapter};

#[test]
fn a_stream_arrives_whole() {
    for_each_adapter(
        |_, _| {},
        |client, server| {
            let (chunks, error) = client
                .stream(&ChatRequest::new(MODEL, "stream please"))
                .unwrap();
            assert!(error.is_none(), "{}: {error:?}", client.name());
            let text: String = chunks.iter().map(novita_ureq::ChatChunk::text).collect();
            assert_eq!(text, format!("Mock reply from {MODEL}: stream please"));
            assert!(server.requests()[0].stream);
        },
    );
}

#[test]
fn an_error_in_the_middle_of_a_stream_is_an_error() {
    for_each_adapter(
        |server, _| server.script(Route::ChatCompletions, None, [Fault::stream_error_after(2)]),
        |client, _| {
            let (chunks, error) = client.stream(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert_eq!(chunks.len(), 2, "{}", client.name());
            let error =
                error.unwrap_or_else(|| panic!("{}: the stream ended quietly", client.name()));
            assert!(
                matches!(error, CallError::Stream { chunks: 2, .. }),
                "{}: {error}",
                client.name()
            );
            assert!(
                error.to_string().contains("broke after 2 chunk(s)"),
                "{error}"
            );
        },
    );
}

#[test]
fn a_cut_stream_is_an_error() {
    for_each_adapter(
        |server, _| server.script(Route::ChatCompletions, None, [Fault::stream_cut_after(2)]),
        |client, _| {
            let (chunks, error) = client.stream(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert_eq!(chunks.len(), 2, "{}", client.name());
            assert!(
                matches!(error, Some(CallError::Stream { .. })),
                "{}: {error:?}",
                client.name()
            );
        },
    );
}

#[test]
fn a_stream_is_retried_until_it_starts() {
    for_each_adapter(
        |server, _| {
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(503), Fault::status(429).retry_after_ms(5)],
            )
        },
        |client, server| {
            let (chunks, error) = client.stream(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert!(error.is_none() && !chunks.is_empty(), "{}", client.name());
            assert_eq!(server.requests().len(), 3);
        },
    );
}

#[test]
fn a_buffered_call_survives_a_broken_stream_after_switching() {
    for_each_adapter(
        |server, _| {
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(504), Fault::stream_cut_after(1)],
            )
        },
        |client, server| {
            let answer = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert!(answer.report.switched_to_streaming, "{}", client.name());
            assert_eq!(answer.report.attempts, 3, "{}", client.name());
            assert_eq!(server.requests().len(), 3);
        },
    );
}
