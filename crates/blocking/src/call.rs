//! The attempt loop: poll the driver, send or sleep, feed the outcome back.

use std::io::Read;
use std::sync::Arc;

use novita_core::policy::{Delivery, Phase};
use novita_core::wire::{
    Assembler, ChatCompletion, ChatRequest, Model, ModelList, StreamBreak, Usage,
};
use novita_core::{Answer, Attempt, BoxError, CallDriver, Poll, Received, Request};
use serde_json::Value;
use ureq::http::HeaderValue;
use ureq::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use crate::stream::{ChatStream, Step};
use crate::transport::classify;
use crate::{Client, Error};

type Response = ureq::http::Response<ureq::Body>;

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
    pub fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, Error> {
        self.execute(
            Request::chat(request),
            chat_usage,
            |response, attempt| match attempt.delivery {
                Delivery::Buffered => read_json(response, "chat completion", self.success_limit()),
                Delivery::Streamed => assemble(self.open_stream(response, attempt.model)),
            },
        )
    }

    /// A streamed chat completion: the policy applies until the stream starts, then the
    /// chunks arrive through the returned iterator, which also carries the call's
    /// [`Report`](crate::Report). A stream that breaks yields an [`Error::Stream`] item
    /// instead of ending quietly, so a cut answer is never taken for a whole one.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat), for everything before the first byte of the stream.
    pub fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, Error> {
        let answer = self.execute(
            Request::chat_stream(request),
            no_usage,
            |response, attempt| Received::Value(self.open_stream(response, attempt.model)),
        )?;
        Ok(answer.value.with_report(answer.report))
    }

    /// The models this key may use (`GET /models`).
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn models(&self) -> Result<Answer<Vec<Model>>, Error> {
        self.execute(Request::get("models"), no_usage, |response, _| {
            read_json::<ModelList>(response, "model list", self.success_limit())
                .map(|list| list.data)
        })
    }

    /// Any JSON `POST` on the API (`route` such as `completions`), under the same policy.
    /// A `model` field in the body takes part in fallback; a chat route also in the switch
    /// to streaming.
    ///
    /// # Errors
    /// As for [`chat`](Self::chat).
    pub fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, Error> {
        self.execute(
            Request::post(route, body),
            Usage::in_body,
            |response, attempt| {
                match attempt.delivery {
                    // Only the chat route is ever switched to streaming.
                    Delivery::Streamed => {
                        assemble(self.open_stream(response, attempt.model)).into_json()
                    }
                    Delivery::Buffered => read_json(response, "response", self.success_limit()),
                }
            },
        )
    }

    /// Runs one call to its end: the driver decides, this loop sends, reads and sleeps.
    fn execute<T>(
        &self,
        request: Request,
        usage_of: fn(&T) -> Option<Usage>,
        mut on_success: impl FnMut(Response, Attempt) -> Received<T>,
    ) -> Result<Answer<T>, Error> {
        let core = &self.core;
        let mut driver = CallDriver::new(Arc::clone(core), request, core.now());
        let span = driver.span().clone();
        let _entered = span.enter();
        loop {
            let attempt = match driver.poll(core.now()) {
                Poll::Send(attempt) => attempt,
                Poll::Wait(wait) => {
                    std::thread::sleep(wait);
                    continue;
                }
                Poll::Failed(error) => return Err(error),
                Poll::Share(exchange) => {
                    let verdict = core.exchange_blocking(&exchange);
                    driver.handle_shared(verdict, core.now());
                    continue;
                }
            };
            match self.send(&attempt) {
                Err(error) => driver.handle_transport(
                    classify(&error, Phase::Headers),
                    Some(Box::new(error)),
                    core.clock(),
                ),
                Ok(mut response) if response.status().as_u16() >= 400 => {
                    let body = read_bounded(&mut response, core.max_error_body());
                    let status = response.status().as_u16();
                    driver.handle_response(status, response.headers(), &body, core.clock());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let received = on_success(response, attempt);
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

    /// Sends one attempt: a `POST` of its body, or a `GET` when there is none. The attempt
    /// is bounded as a whole by its [`time_limit`](Attempt::time_limit), body included,
    /// however slowly the bytes come; a streamed one also by
    /// [`headers_within`](Attempt::headers_within) until its headers arrive and by the idle
    /// timeout between reads.
    fn send(&self, attempt: &Attempt) -> Result<Response, ureq::Error> {
        let authorization = self.core.authorization();
        let Some(body) = &attempt.body else {
            return authorize(self.agent.get(&attempt.url), authorization)
                .config()
                .http_status_as_error(false)
                .timeout_global(Some(attempt.time_limit))
                .build()
                .call();
        };
        let builder = authorize(self.agent.post(&attempt.url), authorization)
            .header(CONTENT_TYPE, JSON.clone());
        let builder = match attempt.delivery {
            Delivery::Streamed => builder
                .header(ACCEPT, EVENT_STREAM.clone())
                .config()
                .http_status_as_error(false)
                .timeout_global(Some(attempt.time_limit))
                .timeout_recv_response(Some(attempt.headers_within))
                .timeout_per_read(Some(self.core.timeouts().stream_idle))
                .build(),
            Delivery::Buffered => builder
                .config()
                .http_status_as_error(false)
                .timeout_global(Some(attempt.time_limit))
                .build(),
        };
        builder.send(&body[..])
    }

    /// The most bytes of a successful body this client reads.
    fn success_limit(&self) -> u64 {
        u64::try_from(self.core.max_success_body()).unwrap_or(u64::MAX)
    }

    /// A stream over `response`, held to this client's stream limits.
    fn open_stream(&self, response: Response, model: String) -> ChatStream {
        ChatStream::new(response, model, self.core.stream_limits())
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

/// Reads a whole successful body of at most `limit` bytes and decodes it.
fn read_json<T: serde::de::DeserializeOwned>(
    mut response: Response,
    what: &'static str,
    limit: u64,
) -> Received<T> {
    let status = response.status().as_u16();
    match response.body_mut().with_config().limit(limit).read_to_vec() {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Received::Value(value),
            Err(error) => Received::Invalid(Error::Decode {
                what,
                status,
                source: Box::new(error),
            }),
        },
        Err(ureq::Error::BodyExceedsLimit(limit)) => {
            Received::Invalid(Error::body_too_large(what, status, limit))
        }
        Err(error) => Received::Broken(classify(&error, Phase::Body), Some(Box::new(error))),
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
fn assemble(mut stream: ChatStream) -> Received<ChatCompletion> {
    let mut assembler = Assembler::with_limits(stream.limits());
    loop {
        match stream.step() {
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
                let failure = failure.map(|error| Box::new(error) as BoxError);
                return Received::from_break(ending, failure, stream.model());
            }
        }
    }
}

/// Adds the client's `Authorization` header (a core always holds its key when built from a
/// builder's options), built once per client.
fn authorize<B>(
    builder: ureq::RequestBuilder<B>,
    value: Option<&HeaderValue>,
) -> ureq::RequestBuilder<B> {
    match value {
        Some(value) => builder.header(AUTHORIZATION, value.clone()),
        None => builder,
    }
}
