//! The policy as a [reqwest-middleware](reqwest_middleware) [`Middleware`]: for programs that
//! send their own requests through a `ClientWithMiddleware` (with reqwest-tracing,
//! OpenTelemetry, auth layers of their own) and want Novita's error handling around them.
//!
//! Every request through it is one call under the policy, with the state shared by every
//! request through the same [`NovitaMiddleware`] (and its clones): server hints
//! (`Retry-After`, `retry-after-ms`, `x-ratelimit-reset-*`) hold every request to the
//! model, failures are retried with jittered backoff under the retry budget, the per-model
//! circuit breaker holds calls behind a probe during an outage, pacing slows down a
//! congested model, and a JSON body's `model` is rewritten to the next fallback model when
//! the asked one keeps failing or is in maintenance. The request's own URL and
//! `Authorization` header are used as they are.
//!
//! What only the typed [`Client`](crate::Client) does: re-issuing a buffered chat call that
//! keeps timing out (504) as a stream and reassembling the answer (a middleware cannot
//! change what its caller reads), bounding and decoding successful bodies, and correcting
//! a tokens-per-minute estimate from the answer's `usage`. Here a 504 is retried like a
//! 503.
//!
//! Place it where retries belong in the chain: a layer added before it (closer to
//! `ClientBuilder::new`) sees the whole call once, a layer added after it sees each
//! attempt. Do not also add reqwest-retry, or failures are retried twice.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use novita_reqwest::middleware::NovitaMiddleware;
//!
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(NovitaMiddleware::builder().fallback_models(["qwen/qwen-2.5-72b-instruct"]).build()?)
//!     .build();
//! let response = http
//!     .post("https://api.novita.ai/openai/v1/chat/completions")
//!     .bearer_auth(std::env::var("NOVITA_API_KEY")?)
//!     .json(&serde_json::json!({
//!         "model": "deepseek/deepseek-v3",
//!         "messages": [{"role": "user", "content": "Hello!"}],
//!     }))
//!     .send()
//!     .await?;
//! if let Some(error) = response.extensions().get::<std::sync::Arc<novita_reqwest::Error>>() {
//!     eprintln!("{}", error.advice()); // the policy gave up: what a human should do
//! }
//! # Ok(())
//! # }
//! ```

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use novita_core::policy::{Delivery, Phase, Transport};
use novita_core::{Attempt, BoxError, CallDriver, ClientCore, Options, Poll};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use crate::call::read_bounded;
use crate::transport::classify;
use crate::{BreakerState, Error, PolicyConfig, Timeouts};

/// Novita's error policy for any request sent through a reqwest-middleware client.
///
/// Cheap to clone: clones share the policy's state (retry budget, circuit breakers,
/// pacing, server hints), as every request through one middleware does.
///
/// What a request gets back:
/// - a success: the response, untouched (its body unread), with the call's
///   [`Report`](crate::Report) in its extensions;
/// - an error status the policy gave up on: that response, its body as read (up to
///   [`max_error_body`](MiddlewareBuilder::max_error_body) bytes), with the policy's
///   `Arc<`[`Error`]`>` (the advice) in its extensions, so the caller's own status handling
///   still works;
/// - a call that ended without a response (refused before sending, or a failure below
///   HTTP): `reqwest_middleware::Error::Middleware` wrapping the [`Error`], whose
///   [`source`](std::error::Error::source) is reqwest's own error when there was one.
///
/// A request whose body cannot be cloned (a stream) is sent once: it still waits for the
/// policy's admission and teaches the policy what happened, but it is not retried.
#[derive(Clone, Debug)]
pub struct NovitaMiddleware {
    core: Arc<ClientCore>,
}

impl NovitaMiddleware {
    /// A middleware with the default policy ([`PolicyConfig::default`]).
    ///
    /// # Errors
    /// None in practice: the defaults validate. The `Result` is the builder's.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A builder for every setting.
    pub fn builder() -> MiddlewareBuilder {
        MiddlewareBuilder::default()
    }

    /// The policy's settings.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        self.core.config()
    }

    /// Tokens left in the shared retry budget.
    #[must_use]
    pub fn retry_budget(&self) -> u32 {
        self.core.retry_budget()
    }

    /// The circuit breaker of `model` right now (for requests naming no model, of the
    /// URL's path).
    #[must_use]
    pub fn breaker(&self, model: &str) -> BreakerState {
        self.core.breaker(model, self.core.now())
    }

    /// The pacing interval imposed on requests to `model` (zero when not paced).
    #[must_use]
    pub fn pacing(&self, model: &str) -> Duration {
        self.core.pacing(model, self.core.now())
    }

    /// Sends `request` through the rest of the chain as one call under the policy.
    async fn relay(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let core = &self.core;
        let original = Original::of(&request, !core.config().limits.is_empty());
        let mut driver = CallDriver::new(
            Arc::clone(core),
            novita_core::Request::relayed(request.url().as_str(), original.json),
            core.now(),
        );
        let span = driver.span().clone();
        let mut template = Some(request);
        let mut last_response = None;
        async move {
            loop {
                let attempt = match driver.poll(core.now()) {
                    Poll::Send(attempt) => attempt,
                    Poll::Wait(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Poll::Share(exchange) => {
                        let verdict = crate::call::share(core, &exchange).await;
                        driver.handle_shared(verdict, core.now());
                        continue;
                    }
                    Poll::Failed(error) => {
                        return match last_response.take() {
                            Some(mut response) => {
                                attach_error(&mut response, error);
                                Ok(response)
                            }
                            None => Err(reqwest_middleware::Error::middleware(error)),
                        };
                    }
                };
                // One clone per attempt keeps the template for the next; a request whose
                // body cannot be cloned (a stream) goes once, as the last attempt.
                let (request, last) = match template.as_ref().and_then(Request::try_clone) {
                    Some(copy) => (copy, false),
                    None => match template.take() {
                        Some(request) => (request, true),
                        None => return Err(reqwest_middleware::Error::middleware(sent_once())),
                    },
                };
                let request = prepare(request, &attempt, original.model.as_deref());
                match send(request, extensions, next.clone(), &attempt).await {
                    Sent::Response(mut response) if response.status().as_u16() < 400 => {
                        let status = response.status().as_u16();
                        let report = driver.handle_success(status, core.clock());
                        response.extensions_mut().insert(report);
                        return Ok(response);
                    }
                    Sent::Response(response) => {
                        let status = response.status().as_u16();
                        let (response, body) = buffered(response, core).await;
                        driver.handle_response(status, response.headers(), &body, core.clock());
                        if last {
                            return Ok(response);
                        }
                        last_response = Some(response);
                    }
                    Sent::Failed(failure, error) => {
                        last_response = None;
                        if last {
                            driver.handle_transport(failure, None, core.clock());
                            return Err(error);
                        }
                        let source: BoxError = match error {
                            reqwest_middleware::Error::Reqwest(error) => Box::new(error),
                            reqwest_middleware::Error::Middleware(error) => error.into(),
                        };
                        driver.handle_transport(failure, Some(source), core.clock());
                    }
                    // Another layer refused: not the server's failure, so not retried.
                    Sent::Refused(error) => return Err(error),
                }
            }
        }
        .instrument(span)
        .await
    }
}

#[async_trait::async_trait]
impl Middleware for NovitaMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.relay(request, extensions, next).await
    }
}

/// Builds a [`NovitaMiddleware`]; every setting has a documented default. The key and the
/// base URL are not among them: each request carries its own.
#[derive(Debug, Default)]
#[must_use]
pub struct MiddlewareBuilder {
    options: Options,
}

impl MiddlewareBuilder {
    /// The policy's settings. Default: [`PolicyConfig::default`].
    pub fn policy(mut self, config: PolicyConfig) -> Self {
        self.options.policy = Some(config);
        self
    }

    /// The policy's settings as TOML (see [`PolicyConfig::from_toml`]); checked by `build`.
    #[cfg(feature = "toml")]
    pub fn policy_toml(mut self, toml: impl Into<String>) -> Self {
        self.options.policy_toml = Some(toml.into());
        self
    }

    /// Models to fall back to, in order, when the requested one keeps failing or is in
    /// maintenance: the `model` field of a JSON body is rewritten for the attempts that go
    /// to them. Default: none.
    pub fn fallback_models(mut self, models: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.fallback_models = models.into_iter().map(Into::into).collect();
        self
    }

    /// The timeouts per attempt: `request` bounds a buffered attempt (the response body the
    /// caller reads included), `stream_total` an attempt that asks for a stream, and
    /// `stream_idle` each read of an error body. A shorter timeout set on the request
    /// itself wins. `connect` belongs to the `reqwest::Client` underneath and is not used.
    /// Default: [`Timeouts::default`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.options.timeouts = timeouts;
        self
    }

    /// The most bytes of an error body read for the policy and handed back; the rest is
    /// discarded. Default 64 KiB.
    pub fn max_error_body(mut self, bytes: usize) -> Self {
        self.options.max_error_body = Some(bytes);
        self
    }

    /// The middleware's name: the `client` label of every metric it emits (feature `metrics`),
    /// so that several clients and middlewares in one process keep their own series, gauges included. Not
    /// empty, at most 64 characters, no control characters or surrounding whitespace;
    /// checked by `build`. Default: `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Seeds the jitter, for reproducible runs. Default: a random seed per middleware.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Builds the middleware. Needs no async runtime; its requests do (tokio).
    ///
    /// # Errors
    /// An invalid policy configuration or an unusable name.
    pub fn build(self) -> Result<NovitaMiddleware, Error> {
        Ok(NovitaMiddleware {
            core: Arc::new(ClientCore::relay(self.options)?),
        })
    }
}

/// What the policy reads of a request's body, once per call.
struct Original {
    /// The body's `model`, to tell a fallback attempt from one to the asked model.
    model: Option<String>,
    /// The JSON the policy sees: the whole body when limits need its prompt's size, else
    /// only `model` and `stream`; `null` for a body that is not a JSON object.
    json: Value,
}

impl Original {
    fn of(request: &Request, whole: bool) -> Self {
        let Some(bytes) = request.body().and_then(reqwest::Body::as_bytes) else {
            return Self {
                model: None,
                json: Value::Null,
            };
        };
        let json = if whole {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .filter(Value::is_object)
                .unwrap_or(Value::Null)
        } else {
            /// The two fields the policy reads; every other field is skipped unparsed.
            #[derive(Deserialize)]
            struct Fields {
                model: Option<String>,
                stream: Option<bool>,
            }
            match serde_json::from_slice::<Fields>(bytes) {
                Ok(fields) => serde_json::json!({"model": fields.model, "stream": fields.stream}),
                Err(_) => Value::Null,
            }
        };
        Self {
            model: json.get("model").and_then(Value::as_str).map(str::to_owned),
            json,
        }
    }
}

/// The request of one attempt: its body names the attempt's model (rewritten when the
/// policy moved to a fallback), and its timeout is the attempt's, unless the caller's own
/// is shorter.
fn prepare(mut request: Request, attempt: &Attempt, asked: Option<&str>) -> Request {
    if asked.is_some_and(|asked| asked != attempt.model) {
        let rewritten = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
            .and_then(|mut json| {
                json.as_object_mut()?
                    .insert("model".to_owned(), Value::from(attempt.model.as_str()));
                serde_json::to_vec(&json).ok()
            });
        // The body named a model when the call began, so it parses again.
        if let Some(bytes) = rewritten {
            request
                .headers_mut()
                .remove(reqwest::header::CONTENT_LENGTH);
            *request.body_mut() = Some(bytes.into());
        }
    }
    let timeout = request.timeout_mut();
    *timeout = Some(timeout.map_or(attempt.time_limit, |own| own.min(attempt.time_limit)));
    request
}

/// What one attempt through the rest of the chain came to.
enum Sent {
    /// A response, of any status.
    Response(Response),
    /// No response: reqwest's error (or the bound on a stream's headers), and what it means
    /// to the policy.
    Failed(Transport, reqwest_middleware::Error),
    /// Another middleware further down the chain failed.
    Refused(reqwest_middleware::Error),
}

/// Runs the rest of the chain for one attempt; a streamed attempt's headers are bounded by
/// [`Attempt::headers_within`].
async fn send(
    request: Request,
    extensions: &mut Extensions,
    next: Next<'_>,
    attempt: &Attempt,
) -> Sent {
    let sent = next.run(request, extensions);
    let sent = if attempt.delivery == Delivery::Streamed {
        match tokio::time::timeout(attempt.headers_within, sent).await {
            Ok(sent) => sent,
            Err(_) => {
                let late = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no response headers within {} ms",
                        attempt.headers_within.as_millis()
                    ),
                );
                return Sent::Failed(
                    Transport::TimeoutBeforeHeaders,
                    reqwest_middleware::Error::middleware(late),
                );
            }
        }
    } else {
        sent.await
    };
    match sent {
        Ok(response) => Sent::Response(response),
        Err(reqwest_middleware::Error::Reqwest(error)) => {
            Sent::Failed(classify(&error, Phase::Headers), error.into())
        }
        Err(error) => Sent::Refused(error),
    }
}

/// Reads an error response's body (bounded) and rebuilds the response around what was
/// read, so it can still be handed back; the rest of a larger body is discarded.
async fn buffered(mut response: Response, core: &ClientCore) -> (Response, Vec<u8>) {
    let body = read_bounded(
        &mut response,
        core.max_error_body(),
        core.timeouts().stream_idle,
    )
    .await;
    // reqwest keeps a response's URL in a private extension that only its builder sets.
    let url = reqwest::ResponseBuilderExt::url(http::Response::builder(), response.url().clone())
        .body(())
        .map(|response| response.into_parts().0.extensions)
        .unwrap_or_default();
    let (mut parts, _unread) = http::Response::<reqwest::Body>::from(response).into_parts();
    parts.headers.remove(reqwest::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(reqwest::header::CONTENT_LENGTH, body.len().into());
    parts.extensions.extend(url);
    let rebuilt = http::Response::from_parts(parts, reqwest::Body::from(body.clone()));
    (Response::from(rebuilt), body)
}

/// Hands the policy's give-up to the caller with the response it gave up on.
fn attach_error(response: &mut Response, error: Error) {
    response.extensions_mut().insert(Arc::new(error));
}

/// The error for a request asked to go again after its body, a stream, went with an
/// earlier attempt (the relay returns after such an attempt, so this does not happen).
fn sent_once() -> Error {
    Error::Client("the request's body is a stream and was already sent once".into())
}
