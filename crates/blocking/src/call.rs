//! The attempt loop: ask the run, send, read, hand the outcome back, sleep.

use std::io::Read;
use std::time::SystemTime;

use novita_policy::adapter::{After, Answer, BoxError, CallError, Go, Job, Received, Run};
use novita_policy::wire::{Assembler, ChatCompletion, ChatRequest, Model, ModelList};
use novita_policy::{Clock, Delivery, NO_HEADERS, Outcome, Phase};
use serde_json::Value;

use crate::stream::{ChatStream, Step};
use crate::transport::classify;
use crate::{Client, Error};

/// The most bytes of a successful body read into memory (answers are far smaller).
const MAX_SUCCESS_BODY: u64 = 64 * 1024 * 1024;

type Response = ureq::http::Response<ureq::Body>;

impl Client {
    /// A chat completion. Errors are retried, waited out, escalated (a 504 re-issues the
    /// call as streaming and reassembles the answer; a failing model hands over to the
    /// fallback models) or turned into an [`Error`] carrying advice.
    ///
    /// # Errors
    /// [`Error::GaveUp`] when the policy stops; [`Error::Encode`] / [`Error::Decode`] for
    /// JSON that cannot be written or read.
    pub fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, Error> {
        let job = Job::chat(request, Delivery::Buffered, &self.inner.fallback_models);
        self.execute(
            job,
            Delivery::Buffered,
            |response, delivery, model| match delivery {
                Delivery::Buffered => read_json(response, "chat completion"),
                Delivery::Streamed => assemble(ChatStream::new(response, model.to_owned())),
            },
        )
    }

    /// A streamed chat completion: the policy applies until the stream starts, then the
    /// chunks arrive through the returned iterator. A stream that breaks yields an
    /// [`Error::Stream`] item instead of ending quietly, so a cut answer is never taken for
    /// a whole one.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat), for everything before the first byte of the stream.
    pub fn chat_stream(&self, request: &ChatRequest) -> Result<Answer<ChatStream>, Error> {
        let job = Job::chat(request, Delivery::Streamed, &self.inner.fallback_models);
        self.execute(job, Delivery::Streamed, |response, _, model| {
            Received::Value(ChatStream::new(response, model.to_owned()))
        })
    }

    /// The models this key may use (`GET /models`).
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn models(&self) -> Result<Answer<Vec<Model>>, Error> {
        self.execute(Job::get("models"), Delivery::Buffered, |response, _, _| {
            read_json::<ModelList>(response, "model list").map(|list| list.data)
        })
    }

    /// Any JSON `POST` on the API (`route` such as `completions`), under the same policy.
    /// A `model` field in the body takes part in fallback; a chat route also in the switch
    /// to streaming.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, Error> {
        let job = Job::post(route, body, &self.inner.fallback_models);
        self.execute(
            job,
            Delivery::Buffered,
            |response, delivery, model| match delivery {
                // Only the chat route is ever switched to streaming (see `Job::post`).
                Delivery::Streamed => {
                    assemble(ChatStream::new(response, model.to_owned())).into_json()
                }
                Delivery::Buffered => read_json(response, "response"),
            },
        )
    }

    /// Runs one logical call to completion under the policy: every decision, wait, report
    /// and log line comes from [`Run`]; this loop only sends, reads and sleeps.
    fn execute<T>(
        &self,
        mut job: Job,
        delivery: Delivery,
        mut on_success: impl FnMut(Response, Delivery, &str) -> Received<T>,
    ) -> Result<Answer<T>, Error> {
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
        let _entered = span.enter();

        loop {
            // The lock is released before any sleep: other threads keep calling meanwhile.
            let go = {
                let now = self.now();
                run.admit(&inner.policy, &mut self.lock().state, now)
            };
            let (model, delivery) = match go {
                Go::Send { model, delivery } => (model, delivery),
                Go::Wait(wait) => {
                    std::thread::sleep(wait);
                    continue;
                }
                Go::Stop(error) => return Err(error),
            };
            let body = job.body_for(&model, delivery)?;
            let after = match self.send(&url, body, delivery) {
                Err(error) => {
                    let outcome = Outcome::Transport(classify(&error, Phase::Headers));
                    self.failed(&mut run, &outcome, Some(Box::new(error)))
                }
                Ok(mut response) if response.status().as_u16() >= 400 => {
                    let status = response.status().as_u16();
                    let body = read_bounded(&mut response, inner.max_error_body);
                    let outcome = Outcome::Response {
                        status,
                        headers: response.headers(),
                        body: &body,
                    };
                    self.failed(&mut run, &outcome, None)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    match on_success(response, delivery, &model) {
                        Received::Value(value) => {
                            let clock = self.clock();
                            let report =
                                run.succeeded(&inner.policy, &mut self.lock().state, status, clock);
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
                After::Sleep(delay) => std::thread::sleep(delay),
                After::Stop(error) => return Err(error),
            }
        }
    }

    /// Sends one attempt: a `POST` of `body`, or a `GET` when there is none. A buffered
    /// attempt is bounded as a whole by the request timeout; a streamed one only until its
    /// headers arrive, then by the idle timeout between reads.
    fn send(
        &self,
        url: &str,
        body: Option<Vec<u8>>,
        delivery: Delivery,
    ) -> Result<Response, ureq::Error> {
        let inner = &self.inner;
        let authorization = inner.settings.key.bearer();
        let Some(body) = body else {
            return inner
                .agent
                .get(url)
                .header("authorization", &authorization)
                .config()
                .timeout_global(Some(inner.timeouts.request))
                .build()
                .call();
        };
        let builder = inner
            .agent
            .post(url)
            .header("authorization", &authorization)
            .content_type("application/json");
        let builder = match delivery {
            Delivery::Buffered => builder
                .config()
                .timeout_global(Some(inner.timeouts.request))
                .build(),
            Delivery::Streamed => builder
                .header("accept", "text/event-stream")
                .config()
                .timeout_recv_response(Some(inner.timeouts.request))
                .timeout_per_read(Some(inner.timeouts.stream_idle))
                .build(),
        };
        builder.send(&body[..])
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.now(),
            wall: SystemTime::now(),
        }
    }

    /// Hands a failed attempt to the run, under the state lock.
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

/// Reads at most `limit` bytes of an error body and discards the rest (the connection is
/// then closed rather than drained, so a huge body costs nothing more).
fn read_bounded(response: &mut Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    // A body that breaks off while being read still says what it said so far.
    let _ = response
        .body_mut()
        .as_reader()
        .take(limit)
        .read_to_end(&mut body);
    body
}

fn read_json<T: serde::de::DeserializeOwned>(
    mut response: Response,
    what: &'static str,
) -> Received<T> {
    let status = response.status().as_u16();
    match response
        .body_mut()
        .with_config()
        .limit(MAX_SUCCESS_BODY)
        .read_to_vec()
    {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Received::Value(value),
            Err(error) => Received::Invalid(CallError::Decode {
                what,
                status,
                source: Box::new(error),
            }),
        },
        Err(ureq::Error::BodyExceedsLimit(limit)) => Received::Invalid(CallError::Decode {
            what,
            status,
            source: format!("the body is larger than {limit} bytes").into(),
        }),
        Err(error) => Received::Broken(classify(&error, Phase::Body), Some(Box::new(error))),
    }
}

/// Reads a whole stream and reassembles it into one completion.
fn assemble(mut stream: ChatStream) -> Received<ChatCompletion> {
    let mut assembler = Assembler::new();
    loop {
        match stream.step() {
            Step::Chunk(chunk) => assembler.push(&chunk),
            Step::End => return Received::Value(assembler.finish()),
            Step::Broken(ending, failure) => {
                let failure = failure.map(|error| Box::new(error) as BoxError);
                return Received::from_break(ending, failure, stream.model());
            }
        }
    }
}
