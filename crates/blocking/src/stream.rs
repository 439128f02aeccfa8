//! A streamed chat completion as a blocking iterator of chunks.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;

use novita_policy::adapter::CallError;
use novita_policy::wire::{ChatChunk, SseDecoder, StreamEvent};
use novita_policy::{ErrorBody, Transport};

use crate::Error;
use crate::transport::{Phase, classify_io};

/// The chunks of a streamed chat completion, as they arrive.
///
/// Yields `Ok(chunk)` per chunk and ends after the server's `[DONE]`. If the stream breaks
/// (the connection drops, or the server reports an error inside the stream) it yields one
/// [`Error::Stream`] and then ends: a cut answer is never passed off as a whole one.
pub struct ChatStream {
    reader: ureq::BodyReader<'static>,
    decoder: SseDecoder,
    pending: VecDeque<ChatChunk>,
    model: String,
    delivered: usize,
    finished: bool,
    /// How the stream stopped short, delivered after the chunks that arrived before it.
    ending: Option<StreamEnd>,
}

/// How a stream stopped short, before it is turned into an error for the caller or fed
/// back to the policy.
pub(crate) enum StreamEnd {
    Broken(Transport, Option<ureq::Error>),
    ServerError { status: u16, body: Vec<u8> },
    Invalid(Error),
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("model", &self.model)
            .field("delivered", &self.delivered)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    pub(crate) fn new(response: ureq::http::Response<ureq::Body>, model: String) -> Self {
        Self {
            reader: response.into_body().into_reader(),
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            model,
            delivered: 0,
            finished: false,
            ending: None,
        }
    }

    /// The model that is answering.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The next chunk, `Ok(None)` after `[DONE]`, or how the stream stopped short.
    pub(crate) fn next_event(&mut self) -> Result<Option<ChatChunk>, StreamEnd> {
        let mut buffer = [0_u8; 8192];
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.delivered += 1;
                return Ok(Some(chunk));
            }
            if let Some(ending) = self.ending.take() {
                return Err(ending);
            }
            if self.finished {
                return Ok(None);
            }
            let read = match self.reader.read(&mut buffer) {
                Ok(read) => read,
                Err(error) => {
                    self.finished = true;
                    let transport = classify_io(&error, Phase::Body);
                    return Err(StreamEnd::Broken(transport, Some(ureq::Error::Io(error))));
                }
            };
            if read == 0 {
                self.finished = true;
                return Err(StreamEnd::Broken(Transport::Reset, None));
            }
            let events = self.decoder.feed(&buffer[..read]).map_err(|error| {
                self.finished = true;
                StreamEnd::Invalid(CallError::Decode {
                    what: "stream event",
                    status: 200,
                    source: Box::new(error),
                })
            })?;
            for event in events {
                match event {
                    StreamEvent::Chunk(chunk) => self.pending.push_back(chunk),
                    StreamEvent::Done => {
                        self.finished = true;
                        break;
                    }
                    StreamEvent::Error(body) => {
                        self.finished = true;
                        let status = error_status(&body);
                        self.ending = Some(StreamEnd::ServerError { status, body });
                        break;
                    }
                    _ => {}
                }
            }
        }
    }

    fn error_for(&self, end: StreamEnd) -> Error {
        let (problem, source): (String, Option<Box<dyn std::error::Error + Send + Sync>>) =
            match end {
                StreamEnd::Broken(transport, error) => {
                    let problem = if error.is_none() {
                        "the connection closed before [DONE]".to_owned()
                    } else {
                        transport.describe().to_owned()
                    };
                    (problem, error.map(|error| Box::new(error) as _))
                }
                StreamEnd::ServerError { status, body } => {
                    let message = ErrorBody::parse(&body)
                        .message
                        .unwrap_or_else(|| "no message".to_owned());
                    (
                        format!("the server reported an error (code {status}): {message}"),
                        None,
                    )
                }
                StreamEnd::Invalid(error) => (error.to_string(), Some(Box::new(error) as _)),
            };
        CallError::Stream {
            model: self.model.clone(),
            chunks: self.delivered,
            problem,
            source,
        }
    }
}

/// The status a mid-stream error event carries (`code` or `error.code`), 500 if none.
pub(crate) fn error_status(body: &[u8]) -> u16 {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = value
        .get("code")
        .or_else(|| value.get("error").and_then(|error| error.get("code")));
    code.and_then(serde_json::Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500)
}

impl Iterator for ChatStream {
    type Item = Result<ChatChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => None,
            Err(end) => Some(Err(self.error_for(end))),
        }
    }
}
