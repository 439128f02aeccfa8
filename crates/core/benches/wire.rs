//! Cost of reading a streamed answer: the SSE decoder on one long event fed in small reads,
//! and a whole chat stream (reasoning, text and a tool call, in the chunks a server sends)
//! fed through `StreamParser` into `Assembler`.
//!
//! Run with `cargo bench -p novita-core --bench wire` (about a minute; CI only compiles it);
//! the figures go in `docs/BENCHMARKS.md`, section "SSE decoding and stream assembly".
//!
//! - `sse_long_event/1KiB_reads/*`: one `data:` event of 256 KiB, 1 MiB and 4 MiB fed to
//!   `SseDecoder::feed` 1 KiB at a time. Throughput is in bytes, so a decoder in linear time
//!   shows the same MB/s at every size (a quadratic one loses a factor of 4 per step).
//! - `chat_stream/*`: a chat answer of about 500 chunks of 4 characters, built by
//!   `novita_mock::chat_chunks` and `sse_body` (the mock's own wire shape), fed in 1460-byte
//!   reads (one TCP segment each), then with CRLF line ends in 1-byte reads (every line end
//!   split), and with LF in 1-byte reads to tell the two effects apart. Each iteration
//!   builds a fresh parser and assembler and ends with the `ChatCompletion`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use novita_core::wire::{Assembler, ChatCompletion, Next, SseDecoder, StreamParser};
use serde_json::{Value, json};

const KIB: usize = 1024;

/// One `data:` event whose value is `size` bytes of text (no line breaks), then a blank line.
fn long_event(size: usize) -> Vec<u8> {
    let mut body = b"data: ".to_vec();
    body.extend(text(size).bytes());
    body.extend_from_slice(b"\n\n");
    body
}

/// `len` bytes of ASCII prose, deterministic.
fn text(len: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "weather", "in", "Paris", "is", "mild", "today,", "with", "light", "rain",
        "expected", "after", "noon;", "take", "an", "umbrella", "and", "a", "coat.",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.push_str(WORDS[i % WORDS.len()]);
        out.push(' ');
        i += 1;
    }
    out.truncate(len);
    out
}

/// Decodes `body` fed `read` bytes at a time; returns the length of the one event's data.
fn decode_long(body: &[u8], read: usize) -> usize {
    let mut decoder = SseDecoder::new();
    let mut data = 0;
    for piece in body.chunks(read) {
        for event in decoder.feed(piece).expect("the event is within the bound") {
            data += event.data.len();
        }
    }
    data
}

fn long_events(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_long_event");
    for (label, size) in [
        ("256KiB", 256 * KIB),
        ("1MiB", 1024 * KIB),
        ("4MiB", 4096 * KIB),
    ] {
        let body = long_event(size);
        assert_eq!(decode_long(&body, KIB), size, "one event of {label}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("1KiB_reads", label), &body, |b, body| {
            b.iter(|| decode_long(black_box(body), KIB));
        });
    }
    group.finish();
}

/// A reasoning model's answer with text and one tool call, about 2000 characters in all:
/// in 4-character pieces, about 500 chunks.
fn completion() -> Value {
    json!({
        "id": "chatcmpl-bench-0001",
        "object": "chat.completion",
        "created": 1_795_651_200,
        "model": "deepseek/deepseek-r1",
        "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "reasoning_content": text(700),
                "content": text(1100),
                "tool_calls": [{
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": json!({
                            "city": "Paris",
                            "unit": "celsius",
                            "days": 3,
                            "note": text(120),
                        })
                        .to_string(),
                    },
                }],
            },
        }],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 500,
            "total_tokens": 620,
            "completion_tokens_details": {"reasoning_tokens": 175},
        },
    })
}

/// Parses and assembles `body` fed `read` bytes at a time.
fn assemble(body: &[u8], read: usize) -> ChatCompletion {
    let mut parser = StreamParser::new();
    let mut assembler = Assembler::new();
    for piece in body.chunks(read) {
        parser.feed(piece);
        loop {
            match parser.next_item() {
                Next::Chunk(chunk) => assembler.push(&chunk).expect("within the limits"),
                Next::NeedBytes | Next::End => break,
                Next::Broken(broken) => panic!("the stream broke: {}", broken.problem()),
                _ => unreachable!("no other item"),
            }
        }
    }
    parser.close();
    assert!(
        matches!(parser.next_item(), Next::End),
        "the stream ends with [DONE]"
    );
    assembler.finish()
}

fn chat_stream(c: &mut Criterion) {
    let completion = completion();
    let chunks = novita_mock::chat_chunks(&completion, 4);
    let lf = novita_mock::sse_body(&chunks);
    // Chunk data is one-line JSON (newlines inside strings are escaped), so every `\n` in
    // the body is a line end.
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 64);
    for &byte in &lf {
        if byte == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(byte);
    }
    let buffered: ChatCompletion =
        serde_json::from_value(completion).expect("the completion decodes buffered");
    eprintln!(
        "chat_stream: {} chunks, {} bytes with LF, {} bytes with CRLF",
        chunks.len(),
        lf.len(),
        crlf.len()
    );

    let mut group = c.benchmark_group("chat_stream");
    for (name, body, read) in [
        ("lf_1460B_reads", &lf, 1460),
        ("crlf_1B_reads", &crlf, 1),
        ("lf_1B_reads", &lf, 1),
    ] {
        assert_eq!(
            assemble(body, read),
            buffered,
            "{name} reassembles the answer"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| assemble(black_box(body), read)));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = long_events, chat_stream
}
criterion_main!(benches);
