//! A streamed chat completion as a blocking iterator of chunks.

use std::fmt;
use std::io::Read;

use novita_policy::adapter::CallError;
use novita_policy::wire::{ChatChunk, Next, StreamBreak, StreamParser};

use crate::Error;
use crate::transport::classify_io;
use novita_policy::Phase;

/// The chunks of a streamed chat completion, as they arrive.
///
/// Yields `Ok(chunk)` per chunk and ends after the server's `[DONE]`. If the stream breaks
/// (the connection drops, or the server reports an error inside the stream) it yields one
/// [`Error::Stream`] and then ends: a cut answer is never passed off as a whole one.
pub struct ChatStream {
    reader: ureq::BodyReader<'static>,
    parser: StreamParser,
    model: String,
    /// The HTTP client's error behind a [`StreamBreak::Failed`], handed on as the source.
    failure: Option<ureq::Error>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("model", &self.model)
            .field("delivered", &self.parser.delivered())
            .finish_non_exhaustive()
    }
}

/// What the next step of a stream produced, for the adapter's own use.
pub(crate) enum Step {
    Chunk(ChatChunk),
    End,
    Broken(StreamBreak, Option<ureq::Error>),
}

impl ChatStream {
    pub(crate) fn new(response: ureq::http::Response<ureq::Body>, model: String) -> Self {
        Self {
            reader: response.into_body().into_reader(),
            parser: StreamParser::new(),
            model,
            failure: None,
        }
    }

    /// The model that is answering.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Reads until the parser has something: a chunk, the end, or the break.
    pub(crate) fn step(&mut self) -> Step {
        let mut buffer = [0_u8; 8192];
        loop {
            match self.parser.next_item() {
                Next::Chunk(chunk) => return Step::Chunk(chunk),
                Next::Broken(ending) => return Step::Broken(ending, self.failure.take()),
                Next::NeedBytes => match self.reader.read(&mut buffer) {
                    Ok(0) => self.parser.close(),
                    Ok(read) => self.parser.feed(&buffer[..read]),
                    Err(error) => {
                        self.parser.fail(classify_io(&error, Phase::Body));
                        self.failure = Some(ureq::Error::Io(error));
                    }
                },
                _ => return Step::End,
            }
        }
    }
}

impl Iterator for ChatStream {
    type Item = Result<ChatChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Step::Chunk(chunk) => Some(Ok(chunk)),
            Step::End => None,
            Step::Broken(ending, failure) => {
                let problem = ending.problem();
                let source: Option<Box<dyn std::error::Error + Send + Sync>> = match ending {
                    StreamBreak::Malformed(error) => Some(Box::new(error)),
                    _ => failure.map(|error| Box::new(error) as _),
                };
                Some(Err(CallError::Stream {
                    model: self.model.clone(),
                    chunks: self.parser.delivered(),
                    problem,
                    source,
                }))
            }
        }
    }
}
