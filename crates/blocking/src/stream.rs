//! A streamed chat completion as a blocking iterator of chunks.

use std::fmt;
use std::io::Read;

use novita_core::policy::Phase;
use novita_core::wire::{ChatChunk, Limits, Next, StreamBreak, StreamParser};
use novita_core::{BoxError, Report};

use crate::Error;
use crate::transport::classify_io;

/// The chunks of a streamed chat completion, as they arrive.
///
/// Yields `Ok(chunk)` per chunk and ends after the server's `[DONE]`. If the stream breaks
/// (the connection drops, or the server reports an error inside the stream) it yields one
/// [`Error::Stream`] and then ends: a cut answer is never passed off as a whole one.
///
/// [`report`](Self::report) says how the call got this far: attempts, waits, fallback.
pub struct ChatStream {
    reader: ureq::BodyReader<'static>,
    parser: StreamParser,
    limits: Limits,
    model: String,
    report: Report,
    /// The HTTP client's error behind a [`StreamBreak::Failed`], handed on as the source.
    failure: Option<ureq::Error>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("model", &self.model)
            .field("report", &self.report)
            .field("delivered", &self.parser.delivered())
            .finish_non_exhaustive()
    }
}

/// What the next step of a stream produced, for the adapter's own use.
#[expect(
    clippy::large_enum_variant,
    reason = "chunks are nearly every step; boxing them would cost an allocation each"
)]
pub(crate) enum Step {
    Chunk(ChatChunk),
    End,
    Broken(StreamBreak, Option<ureq::Error>),
}

impl ChatStream {
    pub(crate) fn new(
        response: ureq::http::Response<ureq::Body>,
        model: String,
        limits: Limits,
    ) -> Self {
        Self {
            reader: response.into_body().into_reader(),
            parser: StreamParser::with_limits(limits),
            limits,
            model,
            report: Report::default(),
            failure: None,
        }
    }

    /// This stream, carrying the report of the call that opened it.
    pub(crate) fn with_report(mut self, report: Report) -> Self {
        self.report = report;
        self
    }

    /// The bounds this stream is held to.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// The model that is answering.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// How the call went until the stream started: attempts, waits, fallback.
    #[must_use]
    pub fn report(&self) -> &Report {
        &self.report
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
                let source: Option<BoxError> = match ending {
                    StreamBreak::Malformed(error) => Some(Box::new(error)),
                    _ => failure.map(|error| Box::new(error) as _),
                };
                Some(Err(Error::Stream {
                    model: self.model.clone(),
                    chunks: self.parser.delivered(),
                    problem,
                    source,
                }))
            }
        }
    }
}
