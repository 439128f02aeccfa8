//! The attempt loop: ask the run, send, read, hand the outcome back, sleep.

use std::future::Future;
use std::io;
use std::time::{Duration, SystemTime};

use novita_policy::adapter::{After, Answer, BoxError, CallError, Go, Job, Received, Run};
use novita_policy::wire::{Assembler, ChatCompletion, ChatRequest, Model, ModelList};
use novita_policy::{Clock, Delivery, NO_HEADERS, Outcome, Phase, Transport};
use serde_json::Value;
use tracing::Instrument;

use crate::stream::{ChatStream, Step};
use crate::transport::classify;
use crate::{Client, Error};

impl Client {
    /// A chat completion. Errors are retried, waited out, escalated (a 504 re-issues the
    /// call as streaming and reassembles the answer; a failing model hands over to the
    /// fallback models) or turned into an [`Error`] carrying advice.
    ///
    /// # Errors
    /// [`Error::GaveUp`] when the policy stops; [`Error::Encode`] / [`Error::Decode`] for
    /// JSON that cannot be written or read.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, Error> {
        let job = Job::chat(request, Delivery::Buffered, &self.inner.fallback_models);
        let idle = self.inner.timeouts.stream_idle;
        self.execute(
            job,
            Delivery::Buffered,
            |response, delivery, model| async move {
                match delivery {
                    Delivery::Buffered => read_json(response, "chat completion").await,
                    Delivery::Streamed => assemble(ChatStream::new(response, model, idle)).await,
                }
            },
        )
        .await
    }

    /// A streamed chat completion: the policy applies until the stream starts, then the
    /// chunks arrive through the returned [`ChatStream`]. A stream that breaks yields an
    /// [`Error::Stream`] item instead of ending quietly, so a cut answer is never taken for
    /// a whole one.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat), for everything before the first byte of the stream.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<Answer<ChatStream>, Error> {
        let job = Job::chat(request, Delivery::Streamed, &self.inner.fallback_models);
        let idle = self.inner.timeouts.stream_idle;
        self.execute(job, Delivery::Streamed, |response, _, model| async move {
            Received::Value(ChatStream::new(response, model, idle))
        })
        .await
    }

    /// The models this key may use (`GET /models`).
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub async fn models(&self) -> Result<Answer<Vec<Model>>, Error> {
        self.execute(
            Job::get("models"),
            Delivery::Buffered,
            |response, _, _| async move {
                read_json::<ModelList>(response, "model list")
                    .await
                    .map(|list| list.data)
            },
        )
        .await
    }

    /// Any JSON `POST` on the API (`route` such as `completions`), under the same policy.
    /// A `model` field in the body takes part in fallback; a chat route also in the switch
    /// to streaming.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub async fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, Error> {
        let job = Job::post(route, body, &self.inner.fallback_models);
        let idle = self.inner.timeouts.stream_idle;
        self.execute(
            job,
            Delivery::Buffered,
            |response, delivery, model| async move {
                match delivery {
                    // Only the chat route is ever switched to streaming (see `Job::post`).
                    Delivery::Streamed => assemble(ChatStream::new(response, model, idle))
                        .await
                        .into_json(),
                    Delivery::Buffered => read_json(response, "response").await,
                }
            },
        )
        .await
    }

    /// Runs one logical call to completion under the policy: every decision, wait, report
    /// and log line comes from [`Run`]; this loop only sends, reads and sleeps. The state
    /// lock is only ever taken inside synchronous blocks, never across an `.await`.
    async fn execute<T, F, Fut>(
        &self,
        mut job: Job,
        delivery: Delivery,
        mut on_success: F,
    ) -> Result<Answer<T>, Error>
    where
        F: FnMut(reqwest::Response, Delivery, String) -> Fut,
        Fut: Future<Output = Received<T>>,
    {
        let inner = &self.inner;
        let url = inner.settings.url(job.route());
        let models = job.models().to_vec();
        let mut run = Run::start(
            &inner.policy,
            self.now(),
            delivery,
            models,
            job.reassembly(),
            inner.settings.key_source,
            job.route(),
        );
        let span = run.span().clone();
        async move {
            loop {
                let go = {
                    let now = self.now();
                    run.admit(&inner.policy, &mut self.lock().state, now)
                };
                let (model, delivery) = match go {
                    Go::Send { model, delivery } => (model, delivery),
                    Go::Wait(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Go::Stop(error) => return Err(error),
                };
                let body = job.body_for(&model, delivery)?;
                let after = match self.send(&url, body, delivery).await {
                    Err((transport, error)) => {
                        self.failed(&mut run, &Outcome::Transport(transport), Some(error))
                    }
                    Ok(mut response) if response.status().as_u16() >= 400 => {
                        let status = response.status().as_u16();
                        let body = read_bounded(
                            &mut response,
                            inner.max_error_body,
                            inner.timeouts.stream_idle,
                        )
                        .await;
                        let outcome = Outcome::Response {
                            status,
                            headers: response.headers(),
                            body: &body,
                        };
                        self.failed(&mut run, &outcome, None)
                        // The response drops here: the unread rest of the body is discarded.
                    }
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match on_success(response, delivery, model).await {
                            Received::Value(value) => {
                                let clock = self.clock();
                                let report = run.succeeded(
                                    &inner.policy,
                                    &mut self.lock().state,
                                    status,
                                    clock,
                                );
                                return Ok(Answer { value, report });
                            }
                            Received::Broken(transport, error) => {
                                self.failed(&mut run, &Outcome::Transport(transport), error)
                            }
                            Received::ServerError { status, body } => {
                                let outcome = Outcome::Response {
                                    status,
                                    headers: &NO_HEADERS,
                                    body: &body,
                                };
                                self.failed(&mut run, &outcome, None)
                            }
                            Received::Invalid(error) => {
                                return Err(run.unusable(status, self.now(), error));
                            }
                        }
                    }
                };
                match after {
                    After::Sleep(delay) => tokio::time::sleep(delay).await,
                    After::Stop(error) => return Err(error),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Sends one attempt and waits for the response headers: a `POST` of `body`, or a
    /// `GET` when there is none. A buffered attempt is bounded as a whole by
    /// [`Timeouts::request`](crate::Timeouts::request), body included; a streamed one only
    /// until its headers arrive, after which the stream's idle timeout takes over.
    async fn send(
        &self,
        url: &str,
        body: Option<Vec<u8>>,
        delivery: Delivery,
    ) -> Result<reqwest::Response, (Transport, BoxError)> {
        let inner = &self.inner;
        let timeout = inner.timeouts.request;
        let builder = match body {
            None => inner.http.get(url),
            Some(bytes) => inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
        };
        let builder = builder.header(reqwest::header::AUTHORIZATION, inner.settings.key.bearer());
        let sent = match delivery {
            Delivery::Buffered => builder.timeout(timeout).send().await,
            Delivery::Streamed => {
                let builder = builder.header(reqwest::header::ACCEPT, "text/event-stream");
                match tokio::time::timeout(timeout, builder.send()).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        let error = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no response headers within {} ms", timeout.as_millis()),
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

    fn clock(&self) -> Clock {
        Clock {
            now: self.now(),
            wall: SystemTime::now(),
        }
    }

    /// Hands a failed attempt to the run. The lock is taken and released inside this
    /// synchronous function, so it is never held across an `.await`.
    fn failed(&self, run: &mut Run, outcome: &Outcome<'_>, source: Option<BoxError>) -> After {
        let clock = self.clock();
        let mut shared = self.lock();
        let draw = shared.rng.draw();
        run.failed(
            &self.inner.policy,
            &mut shared.state,
            outcome,
            clock,
            draw,
            source,
        )
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

/// Reads a whole successful body and decodes it.
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &'static str,
) -> Received<T> {
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Received::Value(value),
            Err(error) => Received::Invalid(CallError::Decode {
                what,
                status,
                source: Box::new(error),
            }),
        },
        Err(error) => Received::Broken(classify(&error, Phase::Body), Some(Box::new(error))),
    }
}

/// Reads a whole stream and reassembles it into one completion.
async fn assemble(mut stream: ChatStream) -> Received<ChatCompletion> {
    let mut assembler = Assembler::new();
    loop {
        match stream.step().await {
            Step::Chunk(chunk) => assembler.push(&chunk),
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
