//! The attempt loop: admit, send, let the policy decide, sleep, act on escalations.

use std::io::Read;
use std::time::SystemTime;

use novita_policy::adapter::{After, Answer, BoxError, CallError, Go, Reassembly, Run};
use novita_policy::wire::{Assembler, ChatCompletion, ChatRequest, ModelList, StreamBreak};
use novita_policy::{Clock, Delivery, NO_HEADERS, Outcome, Transport};
use serde_json::Value;

use crate::stream::{ChatStream, Step};
use crate::transport::classify;
use crate::{Client, Error};
use novita_policy::Phase;

/// The most bytes of a successful body read into memory (answers are far smaller).
const MAX_SUCCESS_BODY: u64 = 64 * 1024 * 1024;

/// What to send: a route, and for JSON bodies the body and whether it names a model.
struct Job<'a> {
    route: &'a str,
    body: Option<Value>,
    /// The model chain (requested model first, then fallbacks); one entry keyed by the
    /// route for calls that name no model.
    models: Vec<String>,
    /// Whether a switch to streaming can be honoured by reassembling chat chunks.
    chat: bool,
}

/// What the handler of a successful response produced.
pub(crate) enum Received<T> {
    Value(T),
    /// The body broke off: fed back to the policy like any other failed attempt.
    Broken(Transport, Option<BoxError>),
    /// The server reported an error inside the stream: fed back like an error response.
    ServerError {
        status: u16,
        body: Vec<u8>,
    },
    Invalid(Error),
}

impl Client {
    /// A chat completion. Errors are retried, waited out, escalated (a 504 re-issues the
    /// call as streaming and reassembles the answer; a failing model hands over to the
    /// fallback models) or turned into an [`Error`] carrying advice.
    ///
    /// # Errors
    /// [`Error::GaveUp`] when the policy stops; [`Error::Encode`] / [`Error::Decode`] for
    /// JSON that cannot be written or read.
    pub fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, Error> {
        let mut request = request.clone();
        request.stream = false;
        let job = self.chat_job(&request)?;
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
        let mut request = request.clone();
        request.stream = true;
        let job = self.chat_job(&request)?;
        self.execute(job, Delivery::Streamed, |response, _, model| {
            Received::Value(ChatStream::new(response, model.to_owned()))
        })
    }

    /// The models this key may use (`GET /models`).
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn models(&self) -> Result<Answer<Vec<novita_policy::wire::Model>>, Error> {
        let job = Job {
            route: "models",
            body: None,
            models: vec!["models".to_owned()],
            chat: false,
        };
        let answer = self.execute(job, Delivery::Buffered, |response, _, _| {
            match read_json::<ModelList>(response, "model list") {
                Received::Value(list) => Received::Value(list.data),
                Received::Broken(transport, error) => Received::Broken(transport, error),
                Received::ServerError { status, body } => Received::ServerError { status, body },
                Received::Invalid(error) => Received::Invalid(error),
            }
        })?;
        Ok(answer)
    }

    /// Any JSON `POST` on the API (`route` such as `completions`), under the same policy.
    /// A `model` field in the body takes part in fallback; a chat route also in the switch
    /// to streaming.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, Error> {
        let route = route.trim_start_matches('/');
        let chat = route == "chat/completions";
        let models = match body.get("model").and_then(Value::as_str) {
            Some(model) => self.model_chain(model),
            None => vec![route.to_owned()],
        };
        let job = Job {
            route,
            body: Some(body.clone()),
            models,
            chat,
        };
        self.execute(
            job,
            Delivery::Buffered,
            |response, delivery, model| match delivery {
                Delivery::Streamed if chat => {
                    match assemble(ChatStream::new(response, model.to_owned())) {
                        Received::Value(completion) => match serde_json::to_value(completion) {
                            Ok(value) => Received::Value(value),
                            Err(error) => Received::Invalid(CallError::Encode(error)),
                        },
                        Received::Broken(transport, error) => Received::Broken(transport, error),
                        Received::ServerError { status, body } => {
                            Received::ServerError { status, body }
                        }
                        Received::Invalid(error) => Received::Invalid(error),
                    }
                }
                _ => read_json(response, "response"),
            },
        )
    }

    fn chat_job(&self, request: &ChatRequest) -> Result<Job<'static>, Error> {
        let body = serde_json::to_value(request).map_err(CallError::Encode)?;
        Ok(Job {
            route: "chat/completions",
            body: Some(body),
            models: self.model_chain(&request.model),
            chat: true,
        })
    }

    fn model_chain(&self, model: &str) -> Vec<String> {
        let mut chain = vec![model.to_owned()];
        chain.extend(
            self.inner
                .fallback_models
                .iter()
                .filter(|fallback| *fallback != model)
                .cloned(),
        );
        chain
    }

    /// Runs one logical call to completion under the policy: every decision, wait, report
    /// and log line comes from [`Run`]; this loop only sends, reads and sleeps.
    fn execute<T>(
        &self,
        mut job: Job<'_>,
        delivery: Delivery,
        mut on_success: impl FnMut(ureq::http::Response<ureq::Body>, Delivery, &str) -> Received<T>,
    ) -> Result<Answer<T>, Error> {
        let inner = &self.inner;
        let url = inner.settings.url(job.route);
        let reassembly = if job.chat {
            Reassembly::Chat
        } else {
            Reassembly::Unsupported
        };
        let models = std::mem::take(&mut job.models);
        let mut run = Run::start(
            &inner.policy,
            self.now(),
            delivery,
            models,
            reassembly,
            inner.settings.key_source,
            job.route,
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
            let after = match self.request(&url, &mut job, &model, delivery) {
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

    /// Sends one attempt. The body gets this attempt's model and stream flag.
    fn request(
        &self,
        url: &str,
        job: &mut Job<'_>,
        model: &str,
        delivery: Delivery,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let inner = &self.inner;
        let authorization = inner.settings.key.bearer();
        let Some(body) = job.body.as_mut() else {
            return inner
                .agent
                .get(url)
                .header("authorization", &authorization)
                .config()
                .timeout_global(Some(inner.timeouts.request))
                .build()
                .call();
        };
        if let Some(object) = body.as_object_mut() {
            if object.contains_key("model") {
                object.insert("model".to_owned(), Value::from(model));
            }
            if job.chat {
                object.insert(
                    "stream".to_owned(),
                    Value::from(delivery == Delivery::Streamed),
                );
            }
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
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
        builder.send(&bytes[..])
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
fn read_bounded(response: &mut ureq::http::Response<ureq::Body>, limit: usize) -> Vec<u8> {
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
    mut response: ureq::http::Response<ureq::Body>,
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
                if let Some(transport) = ending.transport() {
                    return Received::Broken(
                        transport,
                        failure.map(|error| Box::new(error) as BoxError),
                    );
                }
                return match ending {
                    StreamBreak::ServerError { status, body } => {
                        Received::ServerError { status, body }
                    }
                    StreamBreak::Malformed(error) => Received::Invalid(CallError::Decode {
                        what: "stream event",
                        status: 200,
                        source: Box::new(error),
                    }),
                    other => Received::Invalid(CallError::Stream {
                        model: stream.model().to_owned(),
                        chunks: 0,
                        problem: other.problem(),
                        source: None,
                    }),
                };
            }
        }
    }
}
