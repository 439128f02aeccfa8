//! From server-sent events to chat chunks: what each event means, how a stream ends or
//! breaks, and the parser both adapters feed with whatever bytes their HTTP client reads.

use std::collections::VecDeque;

use serde_json::Value;

use super::chunk::ChatChunk;
use super::limits::{Limits, StreamDecodeError};
use super::sse::{SseDecoder, SseEvent};

/// One decoded server-sent event of a chat stream.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "chunks are nearly every value; boxing them would cost an allocation each"
)]
pub enum StreamEvent {
    /// A chunk of the answer.
    Chunk(ChatChunk),
    /// `data: [DONE]`: the answer is complete.
    Done,
    /// The server reported an error inside the stream.
    Error {
        /// The status the event carries (`code` or `error.code`), 500 when it names none.
        status: u16,
        /// The raw event data, an error body for [`ErrorBody::parse`](novita_policy::ErrorBody::parse).
        body: Vec<u8>,
    },
}

impl StreamEvent {
    /// What a server-sent event means for a chat stream: `None` for events of other named
    /// types (a `ping`, say), which carry nothing for the answer.
    ///
    /// # Errors
    /// Data that is neither `[DONE]` nor a chunk or error object.
    pub fn decode(event: &SseEvent) -> Option<Result<StreamEvent, StreamDecodeError>> {
        let data = event.data.as_bytes();
        match event.event.as_str() {
            "message" => {}
            "error" => {
                let value = serde_json::from_slice(data).unwrap_or(Value::Null);
                return Some(Ok(StreamEvent::Error {
                    status: error_status(&value),
                    body: data.to_vec(),
                }));
            }
            _ => return None,
        }
        if data.trim_ascii() == b"[DONE]" {
            return Some(Ok(StreamEvent::Done));
        }
        // Chunks are the common case: decode them directly, and look for an error object
        // only when that fails (an error event has no `choices` and must not pass as a
        // chunk, so check its marks first when they are cheap to see).
        if !looks_like_error(data)
            && let Ok(chunk) = serde_json::from_slice::<ChatChunk>(data)
        {
            return Some(Ok(StreamEvent::Chunk(chunk)));
        }
        let value: Value = match serde_json::from_slice(data) {
            Ok(value) => value,
            Err(error) => return Some(Err(StreamDecodeError::Json(error))),
        };
        let has_error = value.get("error").is_some_and(|error| !error.is_null());
        if has_error || value.get("code").is_some_and(Value::is_number) {
            return Some(Ok(StreamEvent::Error {
                status: error_status(&value),
                body: data.to_vec(),
            }));
        }
        Some(
            serde_json::from_value(value)
                .map(StreamEvent::Chunk)
                .map_err(StreamDecodeError::Json),
        )
    }
}

/// Whether `data` may be an error object rather than a chunk (a cheap byte search; a false
/// alarm only costs the slower path).
fn looks_like_error(data: &[u8]) -> bool {
    memchr::memmem::find(data, b"\"error\"").is_some()
        || memchr::memmem::find(data, b"\"code\"").is_some()
}

/// The status a mid-stream error event carries (`code` or `error.code`), 500 if none.
fn error_status(event: &Value) -> u16 {
    let code = event
        .get("code")
        .or_else(|| event.get("error").and_then(|error| error.get("code")));
    code.and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500)
}

/// How a stream stopped short of `[DONE]`.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamBreak {
    /// The connection closed cleanly before `[DONE]`.
    ClosedEarly,
    /// Reading failed below HTTP.
    Failed(novita_policy::Transport),
    /// The server reported an error inside the stream.
    ServerError {
        /// The status the event carries.
        status: u16,
        /// The event data, an error body.
        body: Vec<u8>,
    },
    /// An event could not be decoded, or went past a limit.
    Malformed(StreamDecodeError),
}

impl StreamBreak {
    /// The transport failure this break amounts to, when it is one (a cut or failed read,
    /// which a retry may cure); `None` for a server error or a malformed event.
    #[must_use]
    pub fn transport(&self) -> Option<novita_policy::Transport> {
        match self {
            StreamBreak::ClosedEarly => Some(novita_policy::Transport::Reset),
            StreamBreak::Failed(transport) => Some(*transport),
            _ => None,
        }
    }

    /// What went wrong, for the caller's error message.
    #[must_use]
    pub fn problem(&self) -> String {
        match self {
            StreamBreak::ClosedEarly => "the connection closed before [DONE]".to_owned(),
            StreamBreak::Failed(transport) => transport.describe().to_owned(),
            StreamBreak::ServerError { status, body } => {
                let message = novita_policy::ErrorBody::parse(body)
                    .message
                    .unwrap_or_else(|| "no message".to_owned());
                format!("the server reported an error (code {status}): {message}")
            }
            StreamBreak::Malformed(error) => error.to_string(),
        }
    }
}

/// What a [`StreamParser`] has ready.
#[derive(Debug)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "chunks are nearly every value; boxing them would cost an allocation each"
)]
pub enum Next {
    /// A chunk of the answer.
    Chunk(ChatChunk),
    /// The stream stopped short; it yields nothing more after this.
    Broken(StreamBreak),
    /// The stream is over: after `[DONE]`, or after its break was taken.
    End,
    /// Nothing is ready: feed more bytes (or report the end of the body).
    NeedBytes,
}

/// The state of one chat stream, fed with whatever bytes the HTTP client reads: chunks come
/// out in order, then either the end or exactly one break. Chunks that arrived before an
/// error event are delivered before the break, never dropped. Chunks past the
/// [`Limits`] (a choice index or a tool-call index beyond its bound) break the stream.
#[derive(Debug)]
pub struct StreamParser {
    decoder: SseDecoder,
    limits: Limits,
    pending: VecDeque<ChatChunk>,
    ending: Option<StreamBreak>,
    done: bool,
    over: bool,
    delivered: usize,
}

impl Default for StreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamParser {
    /// A parser at the start of a stream, with the default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A parser at the start of a stream that enforces `limits`.
    #[must_use]
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            decoder: SseDecoder::with_max_event_bytes(limits.max_event_bytes),
            limits,
            pending: VecDeque::new(),
            ending: None,
            done: false,
            over: false,
            delivered: 0,
        }
    }

    /// Chunks handed out so far.
    #[must_use]
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// Whether more bytes are wanted: the stream has neither finished nor broken.
    #[must_use]
    pub fn wants_bytes(&self) -> bool {
        !self.done && self.ending.is_none() && !self.over
    }

    /// The next thing the stream has ready.
    pub fn next_item(&mut self) -> Next {
        if let Some(chunk) = self.pending.pop_front() {
            self.delivered += 1;
            return Next::Chunk(chunk);
        }
        if let Some(ending) = self.ending.take() {
            self.over = true;
            return Next::Broken(ending);
        }
        if self.done || self.over {
            Next::End
        } else {
            Next::NeedBytes
        }
    }

    /// Feeds bytes read from the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.wants_bytes() {
            return;
        }
        let limits = self.limits;
        let mut outcome: Result<(), StreamBreak> = Ok(());
        let mut done = false;
        let pending = &mut self.pending;
        let fed = self.decoder.feed_with(bytes, |event| {
            if outcome.is_err() || done {
                return;
            }
            match StreamEvent::decode(&event) {
                None => {}
                Some(Ok(StreamEvent::Chunk(chunk))) => match check(&chunk, limits) {
                    Ok(()) => pending.push_back(chunk),
                    Err(error) => outcome = Err(StreamBreak::Malformed(error)),
                },
                Some(Ok(StreamEvent::Done)) => done = true,
                Some(Ok(StreamEvent::Error { status, body })) => {
                    outcome = Err(StreamBreak::ServerError { status, body });
                }
                Some(Err(error)) => outcome = Err(StreamBreak::Malformed(error)),
            }
        });
        if done {
            self.done = true;
        } else if let Err(ending) = outcome {
            self.ending = Some(ending);
        } else if let Err(error) = fed {
            self.ending = Some(StreamBreak::Malformed(error));
        }
    }

    /// Reports that the body ended (cleanly); before `[DONE]` that is a break.
    pub fn close(&mut self) {
        if self.wants_bytes() {
            self.ending = Some(StreamBreak::ClosedEarly);
        }
    }

    /// Reports that reading the body failed.
    pub fn fail(&mut self, transport: novita_policy::Transport) {
        if self.wants_bytes() {
            self.ending = Some(StreamBreak::Failed(transport));
        }
    }
}

/// Checks one chunk's indices against the limits before anyone holds on to it.
pub(super) fn check(chunk: &ChatChunk, limits: Limits) -> Result<(), StreamDecodeError> {
    for choice in &chunk.choices {
        if usize::try_from(choice.index).map_or(true, |index| index >= limits.max_choices) {
            return Err(StreamDecodeError::TooManyChoices {
                index: u64::from(choice.index),
                limit: limits.max_choices,
            });
        }
        let too_many = choice.delta.tool_calls.len() > limits.max_tool_calls
            || choice.delta.tool_calls.iter().any(|call| {
                call.index.is_some_and(|index| {
                    usize::try_from(index).map_or(true, |i| i >= limits.max_tool_calls)
                })
            });
        if too_many {
            return Err(StreamDecodeError::TooManyToolCalls {
                limit: limits.max_tool_calls,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\r\n\r\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    );

    fn drain(parser: &mut StreamParser) -> (Vec<String>, Option<StreamBreak>) {
        let mut texts = Vec::new();
        loop {
            match parser.next_item() {
                Next::Chunk(chunk) => texts.push(chunk.text().to_owned()),
                Next::Broken(ending) => return (texts, Some(ending)),
                Next::End | Next::NeedBytes => return (texts, None),
            }
        }
    }

    fn decode(data: &str) -> Option<Result<StreamEvent, StreamDecodeError>> {
        StreamEvent::decode(&SseEvent {
            event: "message".to_owned(),
            data: data.to_owned(),
            id: None,
        })
    }

    #[test]
    fn error_events_carry_their_status() {
        for (data, status) in [
            (r#"{"error":{"code":503,"message":"x"}}"#, 503),
            (r#"{"code":429}"#, 429),
            (r#"{"error":{"code":"oops"}}"#, 500),
            (r#"{"error":{"code":200}}"#, 500),
            (r#"{"error":"plain","choices":[]}"#, 500),
        ] {
            assert!(
                matches!(decode(data), Some(Ok(StreamEvent::Error { status: found, .. })) if found == status),
                "{data}"
            );
        }
        let named = StreamEvent::decode(&SseEvent {
            event: "error".to_owned(),
            data: "overloaded".to_owned(),
            id: None,
        });
        assert!(matches!(
            named,
            Some(Ok(StreamEvent::Error { status: 500, .. }))
        ));
        assert!(matches!(
            decode("{not json"),
            Some(Err(StreamDecodeError::Json(_)))
        ));
        assert!(
            matches!(
                decode(r#"{"choices":[],"code_hint":"no"}"#),
                Some(Ok(StreamEvent::Chunk(_)))
            ),
            "a false alarm still decodes as a chunk"
        );
    }

    #[test]
    fn the_parser_delivers_chunks_before_a_break() {
        let chunk = |text: &str| {
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
        };
        let mut parser = StreamParser::new();
        let bytes = format!(
            "{}{}data: {{\"error\":{{\"code\":500}}}}\n\n{}",
            chunk("a"),
            chunk("b"),
            chunk("c")
        );
        parser.feed(bytes.as_bytes());
        let (texts, ending) = drain(&mut parser);
        assert_eq!(texts, ["a", "b"]);
        assert!(matches!(
            ending,
            Some(StreamBreak::ServerError { status: 500, .. })
        ));
        assert!(
            matches!(parser.next_item(), Next::End),
            "nothing after the break"
        );
        assert_eq!(parser.delivered(), 2);
    }

    #[test]
    fn the_parser_tells_a_whole_stream_from_a_cut_one() {
        let mut parser = StreamParser::new();
        parser.feed(STREAM.as_bytes());
        parser.close();
        let (texts, ending) = drain(&mut parser);
        assert_eq!(texts.concat(), "Hello", "the ping event is skipped");
        assert!(ending.is_none());

        let mut parser = StreamParser::new();
        parser.feed(&STREAM.as_bytes()[..STREAM.len() / 2]);
        assert!(matches!(parser.next_item(), Next::Chunk(_)));
        parser.close();
        let (_, ending) = drain(&mut parser);
        assert_eq!(
            ending.map(|ending| ending.problem()).as_deref(),
            Some("the connection closed before [DONE]")
        );

        let mut parser = StreamParser::new();
        parser.fail(novita_policy::Transport::Reset);
        assert!(matches!(
            parser.next_item(),
            Next::Broken(StreamBreak::Failed(novita_policy::Transport::Reset))
        ));

        let mut parser = StreamParser::new();
        parser.feed(b"data: {broken\n\n");
        assert!(matches!(
            parser.next_item(),
            Next::Broken(StreamBreak::Malformed(_))
        ));
    }

    #[test]
    fn hostile_indices_break_the_stream_instead_of_allocating() {
        let mut parser = StreamParser::new();
        parser.feed(
            b"data: {\"choices\":[{\"index\":4294967295,\"delta\":{\"content\":\"x\"}}]}\n\n",
        );
        let (_, ending) = drain(&mut parser);
        let Some(StreamBreak::Malformed(StreamDecodeError::TooManyChoices { index, limit })) =
            ending
        else {
            panic!("expected a limit break, got {ending:?}");
        };
        assert_eq!((index, limit), (4_294_967_295, 128));

        let mut parser = StreamParser::new();
        parser.feed(
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":4294967295,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n",
        );
        let (_, ending) = drain(&mut parser);
        assert!(matches!(
            ending,
            Some(StreamBreak::Malformed(
                StreamDecodeError::TooManyToolCalls { limit: 1024 }
            ))
        ));

        let mut parser = StreamParser::with_limits(Limits::default().with_max_event_bytes(100));
        parser.feed(&[b'a'; 101]);
        let (_, ending) = drain(&mut parser);
        let message = ending.unwrap().problem();
        assert!(message.contains("grew past 100 bytes"), "{message}");
    }
}
