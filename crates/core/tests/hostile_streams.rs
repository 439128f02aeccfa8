//! Hostile streams: whatever bytes a server sends, cut into reads anywhere, the stream
//! parser and the assembler never panic, keep to their [`Limits`], and answer a stream
//! that breaks a limit with the typed [`StreamDecodeError`].
//!
//! The proptest twin of the `sse_assembler` fuzz target (`cargo xtask fuzz`,
//! docs/RELIABILITY.md), run by every `cargo test`.

use novita_core::wire::{
    Assembler, ChatChunk, Limits, Next, StreamBreak, StreamDecodeError, StreamParser,
};
use proptest::prelude::*;

/// How a stream ended, comparable across runs.
#[derive(Debug, PartialEq)]
enum Ending {
    Done,
    ClosedEarly,
    ServerError { status: u16, body: Vec<u8> },
    TooLarge,
    TooManyChoices,
    TooManyToolCalls,
    Json(String),
}

impl From<StreamBreak> for Ending {
    fn from(broken: StreamBreak) -> Self {
        match broken {
            StreamBreak::ClosedEarly => Ending::ClosedEarly,
            StreamBreak::ServerError { status, body } => Ending::ServerError { status, body },
            StreamBreak::Malformed(StreamDecodeError::EventTooLarge { .. }) => Ending::TooLarge,
            StreamBreak::Malformed(StreamDecodeError::TooManyChoices { .. }) => {
                Ending::TooManyChoices
            }
            StreamBreak::Malformed(StreamDecodeError::TooManyToolCalls { .. }) => {
                Ending::TooManyToolCalls
            }
            StreamBreak::Malformed(StreamDecodeError::Json(error)) => {
                Ending::Json(error.to_string())
            }
            other => panic!("a break these tests never cause: {other:?}"),
        }
    }
}

#[derive(Debug)]
struct Run {
    chunks: Vec<ChatChunk>,
    ending: Ending,
}

/// Feeds `body` in reads ending at `ends` (increasing; a repeated end is an empty read, as
/// an HTTP/2 data frame may be), then closes.
fn run(body: &[u8], ends: &[usize], limits: Limits) -> Run {
    let mut parser = StreamParser::with_limits(limits);
    let mut chunks = Vec::new();
    let mut ending = None;
    let mut start = 0;
    for &end in ends.iter().chain([&body.len()]) {
        let end = end.max(start);
        parser.feed(&body[start..end]);
        start = end;
        drain(&mut parser, &mut chunks, &mut ending);
    }
    parser.close();
    drain(&mut parser, &mut chunks, &mut ending);
    assert!(
        matches!(parser.next_item(), Next::End),
        "the stream stays over"
    );
    assert!(!parser.wants_bytes());
    assert_eq!(parser.delivered(), chunks.len());
    for chunk in &chunks {
        for choice in &chunk.choices {
            assert!((choice.index as usize) < limits.max_choices, "{chunk:?}");
            assert!(
                choice.delta.tool_calls.len() <= limits.max_tool_calls,
                "{chunk:?}"
            );
        }
    }
    Run {
        chunks,
        ending: ending.expect("a closed stream ends"),
    }
}

fn drain(parser: &mut StreamParser, chunks: &mut Vec<ChatChunk>, ending: &mut Option<Ending>) {
    loop {
        match parser.next_item() {
            Next::Chunk(chunk) => {
                assert!(ending.is_none(), "a chunk after the end: {chunk:?}");
                chunks.push(chunk);
            }
            Next::Broken(broken) => {
                assert!(ending.is_none(), "a second ending: {broken:?}");
                *ending = Some(broken.into());
            }
            Next::End => {
                ending.get_or_insert(Ending::Done);
                return;
            }
            Next::NeedBytes => return,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Pushes `chunks` into an assembler; it fails only with the typed limit errors, and what
/// it builds keeps to the limits.
fn assemble(chunks: &[ChatChunk], limits: Limits) {
    let mut assembler = Assembler::with_limits(limits);
    for chunk in chunks {
        if let Err(error) = assembler.push(chunk) {
            assert!(
                matches!(
                    error,
                    StreamDecodeError::TooManyToolCalls { .. }
                        | StreamDecodeError::TooManyChoices { .. }
                ),
                "{error:?}"
            );
            return;
        }
    }
    let completion = assembler.finish();
    assert!(completion.choices.len() <= limits.max_choices);
    for choice in &completion.choices {
        assert!(choice.message.tool_calls.len() <= limits.max_tool_calls);
    }
}

/// Pieces a hostile stream is made of: SSE syntax, chunk JSON, line ends of every kind,
/// limits-breaking indices, and raw bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "data: ",
        "data:",
        "event: error\n",
        "event: ping\n",
        "id: 1\n",
        "retry: 99999999999999999999999\n",
        ": comment\n",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "\u{feff}",
        "[DONE]",
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}"#,
        r#"{"choices":[{"index":1,"delta":{"reasoning_content":"r"},"finish_reason":"stop"}]}"#,
        r#"{"choices":[{"index":4294967295,"delta":{}}]}"#,
        r#"{"choices":[{"index":4294967296,"delta":{}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":9,"function":{"arguments":"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b"},{"id":"c"},{"id":"d"}]}}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        r#"{"error":{"message":"boom","code":503}}"#,
        r#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"slow down"}"#,
        r#"{"id":"c","x":"#,
    ];
    prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(|token| token.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
        1 => (any::<u8>(), 0_usize..300).prop_map(|(byte, n)| vec![byte; n]),
    ]
}

fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat())
}

/// Small limits, so that hostile bodies of a few hundred bytes cross them.
fn small_limits() -> impl Strategy<Value = Limits> {
    (
        prop_oneof![Just(64_usize), Just(256), Just(4096)],
        1_usize..4,
        1_usize..4,
    )
        .prop_map(|(bytes, choices, calls)| {
            Limits::default()
                .with_max_event_bytes(bytes)
                .with_max_choices(choices)
                .with_max_tool_calls(calls)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any bytes in any reads: no panic, chunks then one ending, limits kept, and the
    /// cuts change nothing, except that a partial line held across a cut counts against
    /// the event bound (so a cut stream may break with `EventTooLarge` after a prefix of
    /// the chunks one read gives).
    #[test]
    fn any_bytes_cut_anywhere_never_panic_and_keep_the_limits(
        body in hostile_body(),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
        limits in small_limits(),
    ) {
        let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
        ends.sort_unstable();
        let whole = run(&body, &[], limits);
        let cut = run(&body, &ends, limits);
        assemble(&whole.chunks, limits);
        assemble(&cut.chunks, limits);
        if cut.ending == Ending::TooLarge {
            prop_assert!(whole.chunks.starts_with(&cut.chunks), "cut: {cut:?}\nwhole: {whole:?}");
        } else {
            prop_assert_eq!(&cut.chunks, &whole.chunks);
            prop_assert_eq!(&cut.ending, &whole.ending);
        }
    }

    /// One byte per read, the hardest cut for the decoder's line and BOM state.
    #[test]
    fn one_byte_reads_give_what_one_read_gives(body in hostile_body(), limits in small_limits()) {
        let ends: Vec<usize> = (1..body.len()).collect();
        let whole = run(&body, &[], limits);
        let cut = run(&body, &ends, limits);
        if cut.ending == Ending::TooLarge {
            prop_assert!(whole.chunks.starts_with(&cut.chunks));
        } else {
            prop_assert_eq!(&cut.chunks, &whole.chunks);
            prop_assert_eq!(&cut.ending, &whole.ending);
        }
    }
}

fn ending_of(body: &str, limits: Limits) -> Run {
    run(body.as_bytes(), &[], limits)
}

#[test]
fn an_event_past_the_byte_bound_is_event_too_large() {
    let limits = Limits::default().with_max_event_bytes(64);
    let body = format!("data: {}\n\n", "x".repeat(100));
    let mut parser = StreamParser::with_limits(limits);
    parser.feed(body.as_bytes());
    match parser.next_item() {
        Next::Broken(StreamBreak::Malformed(StreamDecodeError::EventTooLarge { limit })) => {
            assert_eq!(limit, 64);
        }
        other => panic!("{other:?}"),
    }
    // A line that never ends, fed a byte at a time, is cut off at the bound too.
    let endless = "data: ".to_owned() + &"y".repeat(1000);
    let ends: Vec<usize> = (1..endless.len()).collect();
    let cut = run(endless.as_bytes(), &ends, limits);
    assert_eq!(cut.ending, Ending::TooLarge);
}

#[test]
fn a_choice_index_past_the_bound_is_too_many_choices() {
    let limits = Limits::default().with_max_choices(2);
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
                data: {\"choices\":[{\"index\":2,\"delta\":{}}]}\n\n";
    let mut parser = StreamParser::with_limits(limits);
    parser.feed(body.as_bytes());
    assert!(
        matches!(parser.next_item(), Next::Chunk(_)),
        "the chunk before the break"
    );
    match parser.next_item() {
        Next::Broken(StreamBreak::Malformed(StreamDecodeError::TooManyChoices {
            index,
            limit,
        })) => assert_eq!((index, limit), (2, 2)),
        other => panic!("{other:?}"),
    }
    // The largest index a chunk can carry is refused the same way, and one past it is
    // malformed JSON, not a panic or a wrap-around.
    let largest = "data: {\"choices\":[{\"index\":4294967295,\"delta\":{}}]}\n\n";
    assert_eq!(
        ending_of(largest, Limits::default()).ending,
        Ending::TooManyChoices
    );
    let past = "data: {\"choices\":[{\"index\":4294967296,\"delta\":{}}]}\n\n";
    assert!(matches!(
        ending_of(past, Limits::default()).ending,
        Ending::Json(_)
    ));
}

#[test]
fn a_tool_call_index_past_the_bound_is_too_many_tool_calls() {
    let limits = Limits::default().with_max_tool_calls(4);
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":\
                [{\"index\":4,\"id\":\"x\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n";
    assert_eq!(ending_of(body, limits).ending, Ending::TooManyToolCalls);
    let largest = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":\
                   [{\"index\":4294967295}]}}]}\n\n";
    assert_eq!(
        ending_of(largest, Limits::default()).ending,
        Ending::TooManyToolCalls
    );
}

#[test]
fn tool_calls_without_indices_past_the_bound_stop_the_assembler() {
    // Each new id without an index starts the next call: the assembler counts them across
    // chunks, which the parser's per-chunk check cannot.
    let limits = Limits::default().with_max_tool_calls(2);
    let chunk = |id: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"id\":\"{id}\"}}]}}}}]}}\n\n"
        )
    };
    let body = [
        chunk("a"),
        chunk("b"),
        chunk("c"),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let stream = ending_of(&body, limits);
    assert_eq!(stream.ending, Ending::Done);
    let mut assembler = Assembler::with_limits(limits);
    assembler.push(&stream.chunks[0]).unwrap();
    assembler.push(&stream.chunks[1]).unwrap();
    match assembler.push(&stream.chunks[2]) {
        Err(StreamDecodeError::TooManyToolCalls { limit }) => assert_eq!(limit, 2),
        other => panic!("{other:?}"),
    }
}
