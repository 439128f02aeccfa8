//! Fuzz target `sse_assembler`: arbitrary bytes, cut into reads at arbitrary points, into
//! `StreamParser` (and so `SseDecoder`), every chunk it yields into `Assembler`, under
//! small `Limits` so that no input can make the fuzzer hold much memory.
//!
//! The input: byte 0 picks the limits, byte 1 picks the cuts (0: one byte per read,
//! 1: the whole body in one read, others: up to 16 cuts drawn from a generator seeded with
//! it), the rest is the body as a server would send it.
//!
//! Checks: nothing panics; chunks come out in order and then exactly one ending; every
//! chunk and the assembled answer stay within the limits; the assembler fails only with
//! the typed limit errors; and the cuts change nothing (the same chunks and the same
//! ending as one read), except that a partial line held across a cut counts against the
//! event bound, so a cut stream may break with `EventTooLarge` earlier than one read,
//! after a prefix of its chunks. Empty reads are not generated (see docs/RELIABILITY.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use novita_core::wire::{
    Assembler, ChatChunk, Limits, Next, StreamBreak, StreamDecodeError, StreamParser,
};
use novita_policy::SplitMix64;

#[derive(Debug, PartialEq)]
enum Ending {
    Done,
    ClosedEarly,
    ServerError { status: u16, body: Vec<u8> },
    TooLarge,
    TooManyChoices,
    TooManyToolCalls,
    Json(String),
    Other(String),
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
            other => Ending::Other(format!("{other:?}")),
        }
    }
}

#[derive(Debug)]
struct Run {
    chunks: Vec<ChatChunk>,
    ending: Ending,
}

fn limits(selector: u8) -> Limits {
    let event_bytes = [64, 256, 1024, 4096][usize::from(selector & 3)];
    let choices = [1, 2, 4, 16][usize::from((selector >> 2) & 3)];
    let tool_calls = [1, 2, 8, 64][usize::from((selector >> 4) & 3)];
    Limits::default()
        .with_max_event_bytes(event_bytes)
        .with_max_choices(choices)
        .with_max_tool_calls(tool_calls)
}

/// The end offsets of the reads, increasing; a repeated offset is an empty read.
fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut ends: Vec<usize> = match seed {
        0 => (1..=len).collect(),
        1 => vec![len],
        _ => {
            let mut rng = SplitMix64::new(u64::from(seed) ^ (len as u64).rotate_left(17));
            let count = 1 + rng.next_u64() % 16;
            (0..count)
                .map(|_| usize::try_from(rng.next_u64() % (len as u64 + 1)).unwrap_or(len))
                .chain([len])
                .collect()
        }
    };
    ends.sort_unstable();
    ends
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

fn run(body: &[u8], ends: &[usize], limits: Limits) -> Run {
    let mut parser = StreamParser::with_limits(limits);
    let mut chunks = Vec::new();
    let mut ending = None;
    let mut start = 0;
    for &end in ends {
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
    let ending = ending.expect("a closed stream ends");
    for chunk in &chunks {
        for choice in &chunk.choices {
            assert!((choice.index as usize) < limits.max_choices, "{chunk:?}");
            assert!(
                choice.delta.tool_calls.len() <= limits.max_tool_calls,
                "{chunk:?}"
            );
        }
    }
    Run { chunks, ending }
}

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
        assert!((choice.index as usize) < limits.max_choices);
        assert!(choice.message.tool_calls.len() <= limits.max_tool_calls);
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, seed, body @ ..] = data else {
        return;
    };
    let limits = limits(*selector);
    let whole = run(body, &cuts(1, body.len()), limits);
    let cut = run(body, &cuts(*seed, body.len()), limits);
    assemble(&whole.chunks, limits);
    assemble(&cut.chunks, limits);
    if cut.ending == Ending::TooLarge {
        assert!(
            whole.chunks.starts_with(&cut.chunks),
            "cut: {cut:?}\nwhole: {whole:?}"
        );
    } else {
        assert_eq!(cut.chunks, whole.chunks, "the cuts changed the chunks");
        assert_eq!(cut.ending, whole.ending, "the cuts changed the ending");
    }
});
