//! Pure decisions for Novita API errors: retry, back off, escalate, or give up with advice.
//!
//! This crate decides; it never acts. It does no I/O, reads no clock, never sleeps, draws
//! no randomness of its own and keeps no global state: the time (`now`, and wall-clock time
//! for HTTP-dates) and random draws are arguments, so the same inputs always give the same
//! decision and every scenario replays exactly in a test. It does not log or record
//! metrics either: `novita-core` drives these decisions through a call and reports on them,
//! and the adapters `novita-ureq` and `novita-reqwest` own the clock, the sleeping and the
//! I/O.
//!
//! What it decides from: the outcome of one attempt (a status with headers and error body,
//! or a transport failure), the call's history ([`Call`]), and the client's shared state
//! ([`ClientState`]: retry budget, per-model circuit breakers, pacing and the proactive
//! rate limits of [`limits`]). What it answers:
//! a [`Decision`].
//!
//! Settings ([`PolicyConfig`]) are built in code or, with the default `toml` feature, read
//! from TOML. What this crate is not: an HTTP client, a call loop, or a wire format; those
//! live in `novita-core` and the adapters.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use novita_policy::{Clock, Decision, Delivery, Draw, Outcome, Policy};
//!
//! let policy = Policy::default();
//! let mut state = policy.client_state();
//! let now = Duration::ZERO;
//! let mut call = policy.start_call(now, Delivery::Buffered, 1);
//!
//! let headers = [("retry-after", "2")];
//! let body = br#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"slow down"}"#;
//! let outcome = Outcome::Response { status: 429, headers: &headers, body };
//! let clock = Clock { now, wall: SystemTime::UNIX_EPOCH };
//! let decision = policy.decide(&mut state, &mut call, "some-model", &outcome, clock, Draw::HALF);
//! // Exactly as long as the server asked.
//! assert!(matches!(decision, Decision::Retry { delay, .. } if delay == Duration::from_secs(2)));
//! ```

mod backoff;
mod body;
mod breaker;
mod budget;
mod config;
mod decision;
pub mod hints;
pub mod limits;
mod outcome;
mod pacing;
mod policy;
mod random;
pub mod shared;

pub use backoff::{Backoff, Jitter, RetryKind};
pub use body::{ErrorBody, MAX_MESSAGE_CHARS, Shape};
pub use breaker::{Breaker, BreakerConfig, BreakerState, WhenOpen};
pub use budget::{BudgetConfig, RetryBudget};
pub use config::{AttemptLimits, ConfigError, PolicyConfig};
pub use decision::{Action, Cause, Decision, GiveUp, Seconds, Stop};
pub use hints::{Headers, NO_HEADERS};
pub use limits::ModelLimits;
pub use outcome::{Delivery, Outcome, Phase, Transport};
pub use pacing::{Pacer, PacingConfig};
pub use policy::{Admission, Call, ClientState, Clock, Policy};
pub use random::{Draw, SplitMix64};
pub use shared::Facts;

pub use novita_catalog as catalog;
