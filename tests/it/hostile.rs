//! Hostile servers: bodies that trickle, grow without end or name absurd indexes. Every
//! call ends within its bounds (time and memory) with a typed error that says what
//! happened, on both adapters.

use std::time::{Duration, Instant};

use novita_mock::{Fault, MockServer, Route, Rule};
use novita_ureq::wire::Limits;
use novita_ureq::{ChatRequest, Error as CallError, ErrorKind};
use serde_json::{Value, json};

use crate::{MODEL, Setup, for_each_adapter};

/// A normal answer written one byte at a time with `pause` between bytes: a few hundred
/// bytes take far longer than any bound under test.
fn trickle(pause: Duration) -> Fault {
    Fault::slow_body(pause).write_in_pieces(1, 7)
}

/// How long a trickled call may take before the test calls it unbounded: the bounds under
/// test are 1 s, the trickles would take a minute.
const WELL_PAST_THE_BOUND: Duration = Duration::from_secs(15);

fn with_deadline(setup: &mut Setup, deadline: Duration) {
    setup.policy.deadline = Some(deadline);
}

fn completion(content: &str, extra: Value) -> Value {
    let mut completion = json!({
        "id": "chatcmpl-h", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    });
    if let Value::Object(extra) = extra {
        completion.as_object_mut().unwrap().extend(extra);
    }
    completion
}

#[test]
fn the_deadline_bounds_a_trickled_buffered_body() {
    for_each_adapter(
        |server, setup| {
            with_deadline(setup, Duration::from_secs(1));
            server.always(
                Route::ChatCompletions,
                None,
                trickle(Duration::from_millis(200)),
            );
        },
        |client, _| {
            let started = Instant::now();
            let error = client
                .chat(&ChatRequest::new(MODEL, "hello"))
                .expect_err("a trickled body cannot finish within the deadline");
            let took = started.elapsed();
            assert!(
                took < WELL_PAST_THE_BOUND,
                "{}: took {took:?}",
                client.name()
            );
            assert_eq!(
                error.kind(),
                ErrorKind::Unavailable,
                "{}: {error}",
                client.name()
            );
        },
    );
}

#[test]
fn the_deadline_bounds_a_trickled_stream_after_a_504_switch() {
    for_each_adapter(
        |server, setup| {
            with_deadline(setup, Duration::from_secs(1));
            server.rule(Rule::new(Route::ChatCompletions, Fault::status(504)).buffered_only());
            server.rule(
                Rule::new(Route::ChatCompletions, trickle(Duration::from_millis(200)))
                    .streamed_only(),
            );
        },
        |client, server| {
            let started = Instant::now();
            let error = client
                .chat(&ChatRequest::new(MODEL, "hello"))
                .expect_err("a trickled stream cannot finish within the deadline");
            let took = started.elapsed();
            assert!(
                took < WELL_PAST_THE_BOUND,
                "{}: took {took:?}",
                client.name()
            );
            assert!(
                server.requests().iter().any(|request| request.stream),
                "{}: it never switched to streaming",
                client.name()
            );
            assert_eq!(
                error.kind(),
                ErrorKind::Unavailable,
                "{}: {error}",
                client.name()
            );
        },
    );
}

#[test]
fn a_stream_the_caller_reads_is_bounded_in_total_besides_its_idle_timeout() {
    for_each_adapter(
        |server, setup| {
            setup.stream_total = Some(Duration::from_secs(1));
            server.always(
                Route::ChatCompletions,
                None,
                trickle(Duration::from_millis(100)),
            );
        },
        |client, _| {
            let started = Instant::now();
            let (chunks, error) = client.stream(&ChatRequest::new(MODEL, "hello")).unwrap();
            let took = started.elapsed();
            assert!(
                took < WELL_PAST_THE_BOUND,
                "{}: took {took:?}",
                client.name()
            );
            let error = error.unwrap_or_else(|| {
                panic!(
                    "{}: a trickled stream ended whole ({} chunks)",
                    client.name(),
                    chunks.len()
                )
            });
            assert!(
                matches!(error, CallError::Stream { .. }),
                "{}: {error}",
                client.name()
            );
        },
    );
}

#[test]
fn an_oversized_success_body_is_a_typed_error() {
    let big = "x".repeat(20_000);
    for_each_adapter(
        |server, setup| {
            setup.max_success_body = Some(4096);
            server.always(
                Route::ChatCompletions,
                None,
                Fault::completion(completion(&big, Value::Null)),
            );
        },
        |client, server| {
            let error = client
                .chat(&ChatRequest::new(MODEL, "hello"))
                .expect_err("the body is past the bound");
            assert_eq!(
                error.kind(),
                ErrorKind::InvalidResponse,
                "{}",
                client.name()
            );
            let chain = error_chain(&error);
            assert!(
                chain.contains("larger than 4096 bytes") && chain.contains("max_success_body"),
                "{}: {chain}",
                client.name()
            );
            assert_eq!(
                server.requests().len(),
                1,
                "{}: never retried",
                client.name()
            );
        },
    );
}

#[test]
fn an_event_past_the_bound_breaks_the_stream_with_advice() {
    let blob = "y".repeat(10_000);
    for_each_adapter(
        |server, setup| {
            setup.stream_limits = Some(Limits::default().with_max_event_bytes(2048));
            // Unknown top-level fields ride on the first chunk: one 10 kB event.
            server.always(
                Route::ChatCompletions,
                None,
                Fault::completion(completion("hi", json!({"x_blob": blob}))),
            );
        },
        |client, _| {
            let (chunks, error) = client.stream(&ChatRequest::new(MODEL, "hello")).unwrap();
            assert!(chunks.is_empty(), "{}", client.name());
            let error = error.unwrap_or_else(|| panic!("{}: no error", client.name()));
            let chain = error_chain(&error);
            assert!(
                chain.contains("grew past 2048 bytes") && chain.contains("max_event_bytes"),
                "{}: {chain}",
                client.name()
            );
        },
    );
}

#[test]
fn an_absurd_choice_index_after_a_504_switch_is_an_error_not_an_abort() {
    let hostile = json!({
        "id": "chatcmpl-h", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 4_294_967_295_u64, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "boom"}}],
    });
    for_each_adapter(
        |server, _| {
            server.rule(Rule::new(Route::ChatCompletions, Fault::status(504)).buffered_only());
            server.rule(
                Rule::new(Route::ChatCompletions, Fault::completion(hostile.clone()))
                    .streamed_only(),
            );
        },
        |client, _| {
            let error = client
                .chat(&ChatRequest::new(MODEL, "hello"))
                .expect_err("the stream names a choice past the bound");
            let chain = error_chain(&error);
            assert!(
                chain.contains("choice 4294967295") && chain.contains("max_choices"),
                "{}: {chain}",
                client.name()
            );
            let body = serde_json::to_value(ChatRequest::new(MODEL, "hello")).unwrap();
            let error = client
                .post_json("chat/completions", &body)
                .expect_err("the same through post_json");
            assert!(
                error_chain(&error).contains("choice 4294967295"),
                "{}",
                client.name()
            );
        },
    );
}

/// A server that never sends its headers cannot hold a call past its deadline either.
#[test]
fn the_deadline_bounds_the_wait_for_headers() {
    for_each_adapter(
        |server, setup| {
            with_deadline(setup, Duration::from_secs(1));
            server.always(
                Route::ChatCompletions,
                None,
                Fault::ok().delay(Duration::from_secs(60)),
            );
        },
        |client, _| {
            let started = Instant::now();
            let error = client.chat(&ChatRequest::new(MODEL, "hello")).unwrap_err();
            let took = started.elapsed();
            assert!(
                took < WELL_PAST_THE_BOUND,
                "{}: took {took:?}",
                client.name()
            );
            assert_eq!(
                error.kind(),
                ErrorKind::Unavailable,
                "{}: {error}",
                client.name()
            );
        },
    );
}

/// The error's message and every source below it, one per line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push('\n');
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[test]
fn setup_mistakes_are_configuration_errors_before_any_request() {
    let server = MockServer::start();
    for base_url in ["http://[::1", "http://127.0.0.1:65536/v1"] {
        for kind in crate::KINDS {
            let mut setup = Setup::new(&server);
            setup.base_url = base_url.to_owned();
            let Err(error) = crate::adapters::try_adapter(kind, &setup) else {
                panic!("{kind:?}: the base URL {base_url} was accepted");
            };
            assert_eq!(error.kind(), ErrorKind::Config, "{base_url}: {error}");
            assert!(error.to_string().contains(base_url), "{error}");
        }
    }
    for kind in crate::KINDS {
        let mut setup = Setup::new(&server);
        setup.api_key = format!("{}\nX-Injected: 1", server.api_key());
        let Err(error) = crate::adapters::try_adapter(kind, &setup) else {
            panic!("{kind:?}: a key with a newline was accepted");
        };
        assert_eq!(error.kind(), ErrorKind::Config, "{error}");
        assert!(error.to_string().contains("line break"), "{error}");
        assert!(
            !error.to_string().contains(server.api_key()),
            "the key leaked: {error}"
        );
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

/// A failure below HTTP keeps the HTTP client's own words in the advice, so "could not
/// connect" says whether it was refused, reset or timed out.
#[test]
fn a_refused_connection_says_so_in_the_advice() {
    let server = MockServer::start();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for kind in crate::KINDS {
        let mut setup = Setup::new(&server);
        setup.base_url = format!("http://127.0.0.1:{closed}/v1");
        let client = crate::adapter(kind, &setup);
        let error = client.chat(&ChatRequest::new(MODEL, "hello")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{kind:?}: {error}");
        let advice = error.advice();
        let said = advice
            .lines()
            .find_map(|line| line.strip_prefix("the HTTP client said: "))
            .unwrap_or_else(|| panic!("{kind:?}: no cause in the advice:\n{advice}"));
        assert!(said.to_lowercase().contains("refused"), "{kind:?}: {said}");
    }
}
