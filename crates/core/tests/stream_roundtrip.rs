//! Property: any completion a server could send, streamed as its chunks, cut into reads at
//! any bytes and reassembled, equals the buffered answer.
//!
//! The streaming side is novita-mock's `chat_chunks` (a separate implementation of how a
//! server disassembles a completion, documented rule by rule), so the assembler is checked
//! against an independent inverse rather than against itself.

use novita_core::wire::{Assembler, ChatCompletion, Next, StreamParser};
use novita_mock::arbitrary::completion;
use proptest::prelude::*;
use serde_json::json;

/// How the server ends its lines: SSE allows LF, CRLF and a lone CR.
#[derive(Clone, Copy, Debug)]
enum LineEnd {
    Lf,
    CrLf,
    Cr,
}

fn with_line_ends(body: &[u8], end: LineEnd, bom: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2 + 3);
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    for &byte in body {
        match (byte, end) {
            (b'\n', LineEnd::CrLf) => out.extend_from_slice(b"\r\n"),
            (b'\n', LineEnd::Cr) => out.push(b'\r'),
            _ => out.push(byte),
        }
    }
    out
}

/// Feeds `body` to a parser in reads cut at `cuts`, and assembles what comes out.
fn reassemble(body: &[u8], cuts: &[usize]) -> Result<ChatCompletion, String> {
    let mut parser = StreamParser::new();
    let mut assembler = Assembler::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(body.len());
    let mut finished = false;
    for end in ends {
        parser.feed(&body[start..end.max(start)]);
        start = end.max(start);
        loop {
            match parser.next_item() {
                Next::Chunk(chunk) => assembler.push(&chunk).map_err(|e| e.to_string())?,
                Next::NeedBytes => break,
                Next::End => {
                    finished = true;
                    break;
                }
                other => return Err(format!("stream broke: {other:?}")),
            }
        }
    }
    if !finished {
        parser.close();
        match parser.next_item() {
            Next::End => {}
            other => return Err(format!("stream did not end cleanly: {other:?}")),
        }
    }
    Ok(assembler.finish())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_stream_cut_anywhere_reassembles_into_the_buffered_answer(
        completion in completion(),
        piece_chars in 1..12usize,
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        end in prop_oneof![Just(LineEnd::Lf), Just(LineEnd::CrLf), Just(LineEnd::Cr)],
        bom in any::<bool>(),
    ) {
        let buffered: ChatCompletion = serde_json::from_value(completion.clone())
            .expect("the generated completion decodes buffered");
        let chunks = novita_mock::chat_chunks(&completion, piece_chars);
        let body = with_line_ends(&novita_mock::sse_body(&chunks), end, bom);
        let streamed = reassemble(&body, &cuts).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&streamed, &buffered);
        // What a `post_json` caller gets is the reassembled answer as JSON; it must say what
        // the buffered body said.
        prop_assert_eq!(
            serde_json::to_value(&streamed).unwrap(),
            serde_json::to_value(&buffered).unwrap()
        );
    }

    #[test]
    fn one_byte_reads_reassemble_too(completion in completion()) {
        let buffered: ChatCompletion = serde_json::from_value(completion.clone()).unwrap();
        let body = novita_mock::sse_body(&novita_mock::chat_chunks(&completion, 3));
        let cuts: Vec<usize> = (0..body.len()).collect();
        let streamed = reassemble(&body, &cuts).map_err(TestCaseError::fail)?;
        prop_assert_eq!(streamed, buffered);
    }
}

#[test]
fn a_tool_call_answer_with_reasoning_comes_back_whole() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "deepseek/deepseek-r1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "reasoning_content": "The user wants the weather, so call the tool.",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
        }}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
                  "completion_tokens_details": {"reasoning_tokens": 20}},
    });
    let body = novita_mock::sse_body(&novita_mock::chat_chunks(&completion, 4));
    let streamed = reassemble(&body, &[7, 100, 101, 333]).unwrap();
    assert_eq!(
        streamed.reasoning(),
        Some("The user wants the weather, so call the tool.")
    );
    let calls = streamed.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "call_1");
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(streamed.choices[0].message.content, None);
    assert_eq!(
        streamed.usage.as_ref().unwrap().reasoning_tokens(),
        Some(20)
    );
}
