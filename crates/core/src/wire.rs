//! The OpenAI-compatible wire format Novita speaks, and the streaming decoder.
//!
//! Pure data and parsing shared by both adapters: request and response types for chat
//! completions and the models list, an incremental server-sent-events decoder, and the
//! assembler that turns a stream of chunks back into one [`ChatCompletion`] (used when the
//! policy switches a buffered call to streaming, so the caller never notices).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from the user.
    #[must_use]
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".to_owned(),
            content: content.into(),
        }
    }

    /// A system prompt.
    #[must_use]
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".to_owned(),
            content: content.into(),
        }
    }
}

/// A chat-completion request. Fields beyond the common ones go in `extra` and are sent as
/// they are, so every parameter Novita accepts can be used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model to ask; with fallback models configured, the first choice.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The most tokens to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Whether to stream; the adapters set this themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Any other parameter, sent verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl ChatRequest {
    /// A request for `model` with one user message.
    #[must_use]
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            messages: vec![Message::user(prompt)],
            max_tokens: None,
            temperature: None,
            stream: false,
            extra: serde_json::Map::new(),
        }
    }
}

/// Token counts of a completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
}

/// One answer of a chat completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The assistant's message.
    pub message: Message,
    /// Why generation stopped (`stop`, `length`, …).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A complete (non-streamed, or reassembled) chat completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time of creation.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The answers; usually one.
    pub choices: Vec<Choice>,
    /// Token counts, when the server reports them.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl ChatCompletion {
    /// The first choice's text, the usual answer.
    #[must_use]
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .map_or("", |choice| choice.message.content.as_str())
    }
}

/// The incremental part of a streamed choice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first chunk.
    #[serde(default)]
    pub role: Option<String>,
    /// The next piece of text.
    #[serde(default)]
    pub content: Option<String>,
}

/// One streamed choice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The new text.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the last chunk of the choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One chunk of a streamed chat completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The completion's id (the same on every chunk).
    #[serde(default)]
    pub id: String,
    /// Unix time of creation.
    #[serde(default)]
    pub created: u64,
    /// The model that answers.
    #[serde(default)]
    pub model: String,
    /// The new pieces.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token counts, usually only on the last chunk.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl ChatChunk {
    /// The first choice's new text, if any.
    #[must_use]
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|choice| choice.delta.content.as_deref())
            .unwrap_or("")
    }
}

/// A model the key may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// The name to put in requests.
    pub id: String,
    /// Who serves it.
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// The answer of `GET /models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The models.
    pub data: Vec<Model>,
}

/// One decoded server-sent event of a chat stream.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
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

/// Why a stream event could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed stream event")]
pub struct StreamDecodeError(#[source] serde_json::Error);

/// Splits a byte stream into server-sent events, however the bytes are chunked.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    data: Vec<u8>,
}

impl SseDecoder {
    /// A decoder with nothing buffered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the events they complete, in order.
    ///
    /// # Errors
    /// A complete event whose data is neither `[DONE]` nor a chunk or error object.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, StreamDecodeError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    events.push(decode_event(&data)?);
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data
                    .extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
            }
            // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing we use.
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are buffered (a stream that ends here was cut).
    #[must_use]
    pub fn has_partial_event(&self) -> bool {
        !self.data.is_empty() || self.buffer.iter().any(|b| !b.is_ascii_whitespace())
    }
}

fn decode_event(data: &[u8]) -> Result<StreamEvent, StreamDecodeError> {
    if data.trim_ascii() == b"[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let value: Value = serde_json::from_slice(data).map_err(StreamDecodeError)?;
    if value.get("error").is_some() || value.get("code").is_some_and(Value::is_number) {
        return Ok(StreamEvent::Error {
            status: error_status(&value),
            body: data.to_vec(),
        });
    }
    serde_json::from_value(value)
        .map(StreamEvent::Chunk)
        .map_err(StreamDecodeError)
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
    /// An event could not be decoded.
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
/// error event are delivered before the break, never dropped.
#[derive(Debug, Default)]
pub struct StreamParser {
    decoder: SseDecoder,
    pending: std::collections::VecDeque<ChatChunk>,
    ending: Option<StreamBreak>,
    done: bool,
    over: bool,
    delivered: usize,
}

impl StreamParser {
    /// A parser at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
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
        match self.decoder.feed(bytes) {
            Ok(events) => {
                for event in events {
                    match event {
                        StreamEvent::Chunk(chunk) => self.pending.push_back(chunk),
                        StreamEvent::Done => {
                            self.done = true;
                            return;
                        }
                        StreamEvent::Error { status, body } => {
                            self.ending = Some(StreamBreak::ServerError { status, body });
                            return;
                        }
                    }
                }
            }
            Err(error) => self.ending = Some(StreamBreak::Malformed(error)),
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

/// Rebuilds one [`ChatCompletion`] from the chunks of a stream.
#[derive(Debug, Default)]
pub struct Assembler {
    id: String,
    created: u64,
    model: String,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

impl Assembler {
    /// An empty assembler.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
            self.model.clone_from(&chunk.model);
        }
        for part in &chunk.choices {
            let index = part.index as usize;
            while self.choices.len() <= index {
                let next = u32::try_from(self.choices.len()).unwrap_or(u32::MAX);
                self.choices.push(Choice {
                    index: next,
                    message: Message {
                        role: "assistant".to_owned(),
                        content: String::new(),
                    },
                    finish_reason: None,
                });
            }
            let choice = &mut self.choices[index];
            if let Some(role) = &part.delta.role {
                choice.message.role.clone_from(role);
            }
            if let Some(content) = &part.delta.content {
                choice.message.content.push_str(content);
            }
            if part.finish_reason.is_some() {
                choice.finish_reason.clone_from(&part.finish_reason);
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    /// The completion the chunks add up to.
    #[must_use]
    pub fn finish(self) -> ChatCompletion {
        ChatCompletion {
            id: self.id,
            object: "chat.completion".to_owned(),
            created: self.created,
            model: self.model,
            choices: self.choices,
            usage: self.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        ": keep-alive\n\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    );

    fn decode_in_pieces(size: usize) -> Vec<StreamEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for piece in STREAM.as_bytes().chunks(size) {
            events.extend(decoder.feed(piece).unwrap());
        }
        assert!(!decoder.has_partial_event());
        events
    }

    #[test]
    fn decodes_however_the_bytes_are_split() {
        let whole = decode_in_pieces(STREAM.len());
        assert_eq!(whole.len(), 4);
        assert_eq!(whole.last(), Some(&StreamEvent::Done));
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(decode_in_pieces(size), whole, "pieces of {size}");
        }
    }

    #[test]
    fn assembles_the_same_completion_as_a_buffered_call() {
        let mut assembler = Assembler::new();
        for event in decode_in_pieces(5) {
            if let StreamEvent::Chunk(chunk) = event {
                assembler.push(&chunk);
            }
        }
        let completion = assembler.finish();
        assert_eq!(completion.text(), "Hello");
        assert_eq!(completion.id, "c1");
        assert_eq!(completion.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(completion.usage.map(|usage| usage.total_tokens), Some(3));
    }

    #[test]
    fn error_events_and_garbage() {
        let mut decoder = SseDecoder::new();
        let events = decoder
            .feed(b"data: {\"error\":{\"message\":\"engine died\",\"code\":500}}\n\n")
            .unwrap();
        assert!(
            matches!(&events[..], [StreamEvent::Error { status: 500, body: data }] if data.starts_with(b"{\"error\""))
        );
        assert!(decoder.feed(b"data: {not json\n\n").is_err());
        let mut decoder = SseDecoder::new();
        decoder.feed(b"data: {\"id\":\"x\"").unwrap();
        assert!(decoder.has_partial_event(), "a cut stream is noticed");
    }

    #[test]
    fn error_events_carry_their_status() {
        let mut decoder = SseDecoder::new();
        for (data, status) in [
            (r#"{"error":{"code":503,"message":"x"}}"#, 503),
            (r#"{"code":429}"#, 429),
            (r#"{"error":{"code":"oops"}}"#, 500),
            (r#"{"error":{"code":200}}"#, 500),
        ] {
            let events = decoder
                .feed(format!("data: {data}\n\n").as_bytes())
                .unwrap();
            assert!(
                matches!(events[..], [StreamEvent::Error { status: found, .. }] if found == status),
                "{data}"
            );
        }
    }

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
        assert_eq!(texts.concat(), "Hello");
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
    fn requests_serialise_extra_parameters_verbatim() {
        let mut request = ChatRequest::new("m", "hi");
        request.max_tokens = Some(16);
        request.extra.insert("top_p".to_owned(), Value::from(0.5));
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["top_p"], 0.5);
        assert_eq!(json["max_tokens"], 16);
        assert!(
            json.get("stream").is_none(),
            "stream is only sent when true"
        );
        assert!(json.get("temperature").is_none());
    }
}
