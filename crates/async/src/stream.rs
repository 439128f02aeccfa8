//! A streamed chat completion as an async stream of chunks.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http_body_util::BodyStream;
use novita_core::policy::{Phase, Transport};
use novita_core::wire::{ChatChunk, Limits, Next, StreamBreak, StreamParser};
use novita_core::{BoxError, Report};
use tokio::time::{Instant, Sleep};

use crate::Error;
use crate::transport::classify;

/// The chunks of a streamed chat completion, as they arrive.
///
/// A [`Stream`](futures_util::Stream) of `Ok(chunk)` items that ends after the server's
/// `[DONE]`; [`next_chunk`](Self::next_chunk) reads it without importing a stream trait.
/// If the stream breaks (the connection drops, the server falls silent for longer than
/// [`Timeouts::stream_idle`](crate::Timeouts::stream_idle), or the server reports an error
/// inside the stream) it yields one [`Error::Stream`] and then ends: a cut answer is never
/// passed off as a whole one.
///
/// [`report`](Self::report) says how the call got this far: attempts, waits, fallback.
///
/// Dropping it closes the connection.
pub struct ChatStream {
    body: BodyStream<reqwest::Body>,
    idle: Duration,
    /// When the silence since the last piece becomes too long.
    deadline: Pin<Box<Sleep>>,
    parser: StreamParser,
    limits: Limits,
    model: String,
    report: Report,
    /// The HTTP client's error behind a [`StreamBreak::Failed`], handed on as the source.
    failure: Option<BoxError>,
}

/// What bounds reading one response: the silence between pieces, the size of a buffered
/// body, and what a stream may make the client hold. (The attempt's whole time is bounded
/// by the request's own timeout.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) idle: Duration,
    pub(crate) max_success_body: usize,
    pub(crate) stream_limits: Limits,
}

/// What the next step of a stream produced, for the adapter's own use.
#[expect(
    clippy::large_enum_variant,
    reason = "chunks are nearly every step; boxing them would cost an allocation each"
)]
pub(crate) enum Step {
    Chunk(ChatChunk),
    End,
    Broken(StreamBreak, Option<BoxError>),
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

impl ChatStream {
    /// Must be called inside a tokio runtime (it arms the idle timer).
    pub(crate) fn new(response: reqwest::Response, model: String, bounds: Bounds) -> Self {
        let idle = bounds.idle;
        Self {
            body: BodyStream::new(reqwest::Body::from(response)),
            idle,
            deadline: Box::pin(tokio::time::sleep_until(deadline_after(idle))),
            parser: StreamParser::with_limits(bounds.stream_limits),
            limits: bounds.stream_limits,
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

    /// The next chunk; `None` once the stream has ended (after `[DONE]`, or after the one
    /// [`Error::Stream`] of a broken stream).
    pub async fn next_chunk(&mut self) -> Option<Result<ChatChunk, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads until the parser has something: a chunk, the end, or the break.
    pub(crate) async fn step(&mut self) -> Step {
        std::future::poll_fn(|cx| self.poll_step(cx)).await
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        loop {
            match self.parser.next_item() {
                Next::Chunk(chunk) => return Poll::Ready(Step::Chunk(chunk)),
                Next::Broken(ending) => {
                    return Poll::Ready(Step::Broken(ending, self.failure.take()));
                }
                Next::NeedBytes => {}
                _ => return Poll::Ready(Step::End),
            }
            match Pin::new(&mut self.body).poll_next(cx) {
                Poll::Pending => {
                    if self.deadline.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.parser.fail(Transport::TimeoutAfterHeaders);
                    let silence = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing arrived for {} ms", self.idle.as_millis()),
                    );
                    self.failure = Some(Box::new(silence));
                }
                Poll::Ready(None) => self.parser.close(),
                Poll::Ready(Some(Err(error))) => {
                    self.parser.fail(classify(&error, Phase::Body));
                    self.failure = Some(Box::new(error));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing we use.
                    if let Ok(bytes) = frame.into_data() {
                        self.deadline.as_mut().reset(deadline_after(self.idle));
                        self.parser.feed(&bytes);
                    }
                }
            }
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let step = match this.poll_step(cx) {
            Poll::Ready(step) => step,
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(match step {
            Step::Chunk(chunk) => Some(Ok(chunk)),
            Step::End => None,
            Step::Broken(ending, failure) => {
                let problem = ending.problem();
                let source: Option<BoxError> = match ending {
                    StreamBreak::Malformed(error) => Some(Box::new(error)),
                    _ => failure,
                };
                Some(Err(Error::Stream {
                    model: this.model.clone(),
                    chunks: this.parser.delivered(),
                    problem,
                    source,
                }))
            }
        })
    }
}

/// `idle` from now, or a far future for an idle timeout too long to represent.
fn deadline_after(idle: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(idle)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_streams_are_send_sync_and_unpin() {
        fn assert_bounds<T: Send + Sync + Unpin + 'static>() {}
        assert_bounds::<ChatStream>();
    }
}
