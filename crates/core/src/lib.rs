//! Sans-IO building blocks for Novita API adapters: everything a client does except the
//! I/O.
//!
//! This is the crate for adapter authors. `novita-ureq` and `novita-reqwest` are each an
//! HTTP client wrapped around the pieces here, and an adapter for another HTTP client
//! needs only these too:
//!
//! - [`CallDriver`]: one state machine per call, in the style of quinn-proto. It owns the
//!   [`Request`], answers [`poll`](CallDriver::poll) with [`Poll::Send`] (an [`Attempt`]:
//!   URL, body, model, delivery), [`Poll::Wait`] or [`Poll::Failed`], and takes outcomes
//!   back through its `handle_*` inputs. It reads no clock, so it runs on virtual time too.
//! - [`ClientCore`]: what every call of a client shares: settings, the policy, the state
//!   lock over the retry budget, breakers and pacing, the clock and the seeded jitter.
//! - [`wire`]: the OpenAI-compatible request and response types, the server-sent-events
//!   decoder, the stream parser and the assembler that rebuilds a streamed answer.
//! - [`Error`] with its [`ErrorKind`], [`Report`] and [`Answer`]: what a call ends with.
//! - [`Options`], [`Settings`], [`Timeouts`] and the redacted [`ApiKey`]: where settings come
//!   from (code, then the environment, then Novita's defaults).
//! - [`store`]: the exchange with a state store shared by many processes (Redis, in
//!   `novita-redis`), for fleet-wide hints, breakers, limits and retry budget.
//! - `metrics` (feature `metrics`): Prometheus-style metrics through the `metrics` facade.
//!
//! What it is not: the decisions themselves (that is `novita-policy`, which this crate
//! drives and re-exports as [`policy`]) nor any I/O: no sockets, no sleeping, no clock
//! reads inside the driver. It emits `tracing` events (target [`TRACING_TARGET`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use novita_core::{CallDriver, ClientCore, Options, Poll, Request, wire::ChatRequest};
//!
//! let mut options = Options::default();
//! options.api_key = Some("sk_example".into());
//! options.seed = Some(7);
//! let core = Arc::new(ClientCore::new(options, |_| None)?);
//! let request = Request::chat(&ChatRequest::new("m", "Hi"));
//! let mut driver = CallDriver::new(Arc::clone(&core), request, Duration::ZERO);
//!
//! let Poll::Send(attempt) = driver.poll(Duration::ZERO) else { unreachable!() };
//! assert_eq!(attempt.url, "https://api.novita.ai/openai/v1/chat/completions");
//! // The server answers 429 and asks for two seconds.
//! let clock = novita_core::policy::Clock { now: Duration::ZERO, wall: std::time::SystemTime::now() };
//! driver.handle_response(429, &[("retry-after", "2")], b"", clock);
//! assert!(matches!(driver.poll(Duration::ZERO), Poll::Wait(wait) if wait == Duration::from_secs(2)));
//! assert!(matches!(driver.poll(Duration::from_secs(2)), Poll::Send(_)));
//! # Ok::<(), novita_core::Error>(())
//! ```

mod client;
mod driver;
mod error;
mod key;
#[cfg(feature = "metrics")]
pub mod metrics;
mod report;
mod request;
mod settings;
pub mod store;
pub mod wire;

pub use client::ClientCore;
pub use driver::{Attempt, CallDriver, Poll, Received, TRACING_TARGET};
pub use error::{BoxError, Error, ErrorKind};
pub use key::{API_KEY_VAR, ApiKey, KeySource};
pub use report::{Answer, Report};
pub use request::{CHARS_PER_TOKEN, DEFAULT_ANSWER_TOKENS, Reassembly, Request};
pub use settings::{
    BASE_URL_VAR, DEFAULT_BASE_URL, DEFAULT_MAX_ERROR_BODY, DEFAULT_MAX_SUCCESS_BODY, DEFAULT_NAME,
    LITELLM_BASE_URL_VAR, MAX_NAME_CHARS, Options, Settings, Timeouts,
};

pub use novita_policy as policy;

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
