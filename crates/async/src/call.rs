//! The attempt loop: poll the driver, send or sleep, feed the outcome back.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use novita_core::policy::{Delivery, Phase, Transport};
use novita_core::store::{Exchange, StoreError, Verdict};
use novita_core::wire::{
    Assembler, ChatCompletion, ChatRequest, Model, ModelList, StreamBreak, Usage,
};
use novita_core::{Answer, Attempt, BoxError, CallDriver, ClientCore, Poll, Received, Request};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use tracing::Instrument;

use crate::stream::{Bounds, ChatStream, Step};
use crate::transport::classify;
use crate::{Client, Error};

/// The header values every request sends, as statics: cloning one copies no bytes, where a
/// `&str` would be validated and copied on each request.
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

impl Client {
    /// A chat completion. Errors are retried, waited out, escalated (a 504 re-issues the
    /// call as streaming and reassembles the answer; a failing model hands over to the
    /// fallback models) or turned into an [`Error`] carrying advice.
    ///
    /// # Errors
    /// [`Error::GaveUp`] when the policy stops; [`Error::Encode`] / [`Error::Decode`] for
    /// JSON that cannot be written or read.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, Error> {
        let bounds = self.bounds();
        self.execute(
            Request::chat(request),
            chat_usage,
            |response, attempt| async move {
                match attempt.delivery {
                    Delivery::Buffered => read_json(response, "chat completion", bounds).await,
                    Delivery::Streamed => {
                        assemble(ChatStream::new(response, attempt.model, bounds)).await
                    }
                }
            },
        )
        .await
    }

    /// A streamed chat completion: the policy applies until the stream starts, then the
    /// chunks arrive through the returned [`ChatStream`], which also carries the call's
    /// [`Report`](crate::Report). A stream that breaks yields an [`Error::Stream`] item
    /// instead of ending quietly, so a cut answer is never taken for a whole one.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat), for everything before the first byte of the stream.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, Error> {
        let bounds = self.bounds();
        let answer = self
            .execute(
                Request::chat_stream(request),
                no_usage,
                |response, attempt| async move {
                    Received::Value(ChatStream::new(response, attempt.model, bounds))
                },
            )
            .await?;
        Ok(answer.value.with_report(answer.report))
    }

    /// The models this key may use (`GET /models`).
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub async fn models(&self) -> Result<Answer<Vec<Model>>, Error> {
        let bounds = self.bounds();
        self.execute(Request::get("models"), no_usage, |response, _| async move {
            read_json::<ModelList>(response, "model list", bounds)
                .await
                .map(|list| list.data)
        })
        .await
    }

    /// Any JSON `POST` on the API (`route` such as `completions`), under the same policy.
    /// A `model` field in the body takes part in fallback; a chat route also in the switch
    /// to streaming.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub async fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, Error> {
        let bounds = self.bounds();
        self.execute(
            Request::post(route, body),
            Usage::in_body,
            |response, attempt| async move {
                match attempt.delivery {
                    // Only the chat route is ever switched to streaming.
                    Delivery::Streamed => {
                        assemble(ChatStream::new(response, attempt.model, bounds))
                            .await
                            .into_json()
                    }
                    Delivery::Buffered => read_json(response, "response", bounds).await,
                }
            },
        )
        .await
    }

    /// Runs one call to its end: the driver decides, this loop sends, reads and sleeps.
    /// The driver takes the state lock only inside its own synchronous methods, so no lock
    /// is ever held across an `.await`.
    async fn execute<T, F, Fut>(
        &self,
        request: Request,
        usage_of: fn(&T) -> Option<Usage>,
        mut on_success: F,
    ) -> Result<Answer<T>, Error>
    where
        F: FnMut(reqwest::Response, Attempt) -> Fut,
        Fut: Future<Output = Received<T>>,
    {
        let core = &self.core;
        let mut driver = CallDriver::new(Arc::clone(core), request, core.now());
        let span = driver.span().clone();
        async move {
            loop {
                let mut attempt = match driver.poll(core.now()) {
                    Poll::Send(attempt) => attempt,
                    Poll::Wait(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Poll::Failed(error) => return Err(error),
                    Poll::Share(exchange) => {
                        let verdict = share(core, &exchange).await;
                        driver.handle_shared(verdict, core.now());
                        continue;
                    }
                };
                match self.send(&mut attempt).await {
                    Err((failure, error)) => {
                        driver.handle_transport(failure, Some(error), core.clock());
                    }
                    Ok(mut response) if response.status().as_u16() >= 400 => {
                        let idle = core.timeouts().stream_idle;
                        let body = read_bounded(&mut response, core.max_error_body(), idle).await;
                        let status = response.status().as_u16();
                        driver.handle_response(status, response.headers(), &body, core.clock());
                        // The response drops here: the unread rest of the body is discarded.
                    }
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let received = on_success(response, attempt).await;
                        let clock = core.clock();
                        if let Some(answer) = driver.handle_received(status, received, clock) {
                            if let Some(usage) = usage_of(&answer.value) {
                                driver.handle_usage(&usage, clock.now);
                            }
                            return Ok(answer);
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Sends one attempt and waits for the response headers: a `POST` of its body, or a
    /// `GET` when there is none. The attempt is bounded as a whole by its
    /// [`time_limit`](Attempt::time_limit), body included, however slowly the bytes come;
    /// a streamed one also by [`headers_within`](Attempt::headers_within) until its
    /// headers arrive, and then by the idle timeout between pieces. The body moves into
    /// the request, so it is not copied.
    async fn send(
        &self,
        attempt: &mut Attempt,
    ) -> Result<reqwest::Response, (Transport, BoxError)> {
        let builder = match attempt.body.take() {
            None => self.http.get(&attempt.url),
            Some(bytes) => self
                .http
                .post(&attempt.url)
                .header(CONTENT_TYPE, JSON.clone())
                .body(bytes),
        };
        let builder = match self.core.authorization() {
            Some(authorization) => builder.header(AUTHORIZATION, authorization.clone()),
            None => builder,
        }
        .timeout(attempt.time_limit);
        let sent = match attempt.delivery {
            Delivery::Buffered => builder.send().await,
            Delivery::Streamed => {
                let builder = builder.header(ACCEPT, EVENT_STREAM.clone());
                let within = attempt.headers_within;
                match tokio::time::timeout(within, builder.send()).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        let error = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no response headers within {} ms", within.as_millis()),
                        );
                        return Err((Transport::TimeoutBeforeHeaders, Box::new(error)));
                    }
                }
            }
        };
        sent.map_err(|error| {
            (
                classify(&error, Phase::Headers),
                Box::new(error) as BoxError,
            )
        })
    }

    /// What bounds reading a response of this client.
    fn bounds(&self) -> Bounds {
        Bounds {
            idle: self.core.timeouts().stream_idle,
            max_success_body: self.core.max_success_body(),
            stream_limits: self.core.stream_limits(),
        }
    }
}

/// Runs one exchange with the client's shared state store, within
/// [`Timeouts::store`](crate::Timeouts::store).
pub(crate) async fn share(core: &ClientCore, exchange: &Exchange) -> Result<Verdict, StoreError> {
    let within = core.timeouts().store;
    match tokio::time::timeout(within, core.exchange_async(exchange)).await {
        Ok(verdict) => verdict,
        Err(_) => Err(StoreError(
            format!("no answer within {} ms", within.as_millis()).into(),
        )),
    }
}

/// Reads at most `limit` bytes of an error body, piece by piece, each piece within `idle`.
/// The caller then drops the response: the rest is discarded and the connection closed
/// rather than drained, so a huge body costs nothing more.
pub(crate) async fn read_bounded(
    response: &mut reqwest::Response,
    limit: usize,
    idle: Duration,
) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        // A body that breaks off or stalls still says what it said so far.
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(Ok(None) | Err(_)) | Err(_) => break,
        }
    }
    body
}

/// Reads a whole successful body of at most `bounds.max_success_body` bytes and decodes
/// it. A body announced or found larger is refused without reading the rest.
async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
    what: &'static str,
    bounds: Bounds,
) -> Received<T> {
    let status = response.status().as_u16();
    let limit = bounds.max_success_body;
    let too_large = || {
        Received::Invalid(Error::body_too_large(
            what,
            status,
            u64::try_from(limit).unwrap_or(u64::MAX),
        ))
    };
    let announced = response.content_length().unwrap_or(0);
    if usize::try_from(announced).map_or(true, |announced| announced > limit) {
        return too_large();
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    loop {
        match response.chunk().await {
            Ok(Some(piece)) => {
                if piece.len() > limit - body.len() {
                    return too_large();
                }
                body.extend_from_slice(&piece);
            }
            Ok(None) => break,
            Err(error) => {
                return Received::Broken(classify(&error, Phase::Body), Some(Box::new(error)));
            }
        }
    }
    match serde_json::from_slice(&body) {
        Ok(value) => Received::Value(value),
        Err(error) => Received::Invalid(Error::Decode {
            what,
            status,
            source: Box::new(error),
        }),
    }
}

/// The usage a chat answer reports, to correct the call's token estimate.
fn chat_usage(completion: &ChatCompletion) -> Option<Usage> {
    completion.usage.clone()
}

/// For answers that carry no usage (model lists, streams still to be read).
fn no_usage<T>(_: &T) -> Option<Usage> {
    None
}

/// Reads a whole stream and reassembles it into one completion.
async fn assemble(mut stream: ChatStream) -> Received<ChatCompletion> {
    let mut assembler = Assembler::with_limits(stream.limits());
    loop {
        match stream.step().await {
            Step::Chunk(chunk) => {
                if let Err(error) = assembler.push(&chunk) {
                    return Received::from_break(
                        StreamBreak::Malformed(error),
                        None,
                        stream.model(),
                    );
                }
            }
            Step::End => return Received::Value(assembler.finish()),
            Step::Broken(ending, failure) => {
                return Received::from_break(ending, failure, stream.model());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use novita_mock::{Fault, MockServer, Route};

    use super::*;

    #[tokio::test]
    async fn error_bodies_are_read_up_to_the_bound_only() {
        let server = MockServer::start();
        server.script(
            Route::Models,
            None,
            [Fault::status(500).oversized(1024 * 1024)],
        );
        let http = crate::test_http();
        let mut response = http
            .get(format!("{}/models", server.base_url()))
            .bearer_auth(server.api_key())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 500);
        let body = read_bounded(&mut response, 1000, Duration::from_secs(10)).await;
        assert_eq!(body.len(), 1000);
        assert!(
            body.starts_with(b"{"),
            "{:?}",
            String::from_utf8_lossy(&body[..20])
        );
    }
}
