//! A streamed chat completion as an async stream of chunks.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use http_body_util::BodyStream;
use novita_policy::adapter::CallError;
use novita_policy::wire::{ChatChunk, SseDecoder, StreamEvent};
use novita_policy::{ErrorBody, Transport};
use tokio::time::{Instant, Sleep};

use crate::Error;
use crate::call::BoxError;
use crate::transport::{Phase, classify};

/// The chunks of a streamed chat completion, as they arrive.
///
/// A [`Stream`](futures_util::Stream) of `Ok(chunk)` items that ends after the server's
/// `[DONE]`; [`next_chunk`](Self::next_chunk) reads it without importing a stream trait.
/// If the stream breaks (the connection drops, the server falls silent for longer than
/// [`Timeouts::stream_idle`](crate::Timeouts::stream_idle), or the server reports an error
/// inside the stream) it yields one [`Error::Stream`] and then ends: a cut answer is never
/// passed off as a whole one.
///
/// Dropping it closes the connection.
pub struct ChatStream {
    body: BodyStream<reqwest::Body>,
    idle: Duration,
    /// When the silence since the last piece becomes too long.
    deadline: Pin<Box<Sleep>>,
    decoder: SseDecoder,
    pending: VecDeque<ChatChunk>,
    model: String,
    delivered: usize,
    finished: bool,
}

/// How a stream stopped short, before it is turned into an error for the caller or fed
/// back to the policy.
pub(crate) enum StreamEnd {
    Broken(Transport, Option<BoxError>),
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
    /// Must be called inside a tokio runtime (it arms the idle timer).
    pub(crate) fn new(response: reqwest::Response, model: String, idle: Duration) -> Self {
        Self {
            body: BodyStream::new(reqwest::Body::from(response)),
            idle,
            deadline: Box::pin(tokio::time::sleep_until(deadline_after(idle))),
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            model,
            delivered: 0,
            finished: false,
        }
    }

    /// The model that is answering.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The next chunk; `None` once the stream has ended (after `[DONE]`, or after the one
    /// [`Error::Stream`] of a broken stream).
    pub async fn next_chunk(&mut self) -> Option<Result<ChatChunk, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The next chunk, `Ok(None)` after `[DONE]`, or how the stream stopped short.
    pub(crate) async fn next_event(&mut self) -> Result<Option<ChatChunk>, StreamEnd> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<ChatChunk>, StreamEnd>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.delivered += 1;
                return Poll::Ready(Ok(Some(chunk)));
            }
            if self.finished {
                return Poll::Ready(Ok(None));
            }
            let frame = match Pin::new(&mut self.body).poll_next(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    ready!(self.deadline.as_mut().poll(cx));
                    self.finished = true;
                    let silence = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing arrived for {} ms", self.idle.as_millis()),
                    );
                    return Poll::Ready(Err(StreamEnd::Broken(
                        Transport::TimeoutAfterHeaders,
                        Some(Box::new(silence)),
                    )));
                }
            };
            let bytes = match frame {
                None => {
                    self.finished = true;
                    return Poll::Ready(Err(StreamEnd::Broken(Transport::Reset, None)));
                }
                Some(Err(error)) => {
                    self.finished = true;
                    let transport = classify(&error, Phase::Body);
                    return Poll::Ready(Err(StreamEnd::Broken(transport, Some(Box::new(error)))));
                }
                // Trailers carry nothing we use.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(bytes) => bytes,
                    Err(_) => continue,
                },
            };
            self.deadline.as_mut().reset(deadline_after(self.idle));
            let events = match self.decoder.feed(&bytes) {
                Ok(events) => events,
                Err(error) => {
                    self.finished = true;
                    return Poll::Ready(Err(StreamEnd::Invalid(CallError::Decode {
                        what: "stream event",
                        status: 200,
                        source: Box::new(error),
                    })));
                }
            };
            for event in events {
                match event {
                    StreamEvent::Chunk(chunk) => self.pending.push_back(chunk),
                    StreamEvent::Done => {
                        self.finished = true;
                        break;
                    }
                    StreamEvent::Error(body) => {
                        self.finished = true;
                        self.pending.clear();
                        let status = error_status(&body);
                        return Poll::Ready(Err(StreamEnd::ServerError { status, body }));
                    }
                    _ => {}
                }
            }
        }
    }

    fn error_for(&self, end: StreamEnd) -> Error {
        let (problem, source): (String, Option<BoxError>) = match end {
            StreamEnd::Broken(transport, error) => {
                let problem = if error.is_none() {
                    "the connection closed before [DONE]".to_owned()
                } else {
                    transport.describe().to_owned()
                };
                (problem, error)
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

impl Stream for ChatStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Poll::Ready(match ready!(this.poll_event(cx)) {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => None,
            Err(end) => Some(Err(this.error_for(end))),
        })
    }
}

/// `idle` from now, or a far future for an idle timeout too long to represent.
fn deadline_after(idle: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(idle)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 60 * 60))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_carry_their_status() {
        assert_eq!(
            error_status(br#"{"error":{"code":503,"message":"x"}}"#),
            503
        );
        assert_eq!(error_status(br#"{"code":429}"#), 429);
        assert_eq!(error_status(br#"{"error":{"code":"oops"}}"#), 500);
        assert_eq!(error_status(b"not json"), 500);
    }

    #[test]
    fn chat_streams_are_send_sync_and_unpin() {
        fn assert_bounds<T: Send + Sync + Unpin + 'static>() {}
        assert_bounds::<ChatStream>();
    }
}
