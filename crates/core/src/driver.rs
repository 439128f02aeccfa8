//! The call driver: one state machine per logical call, with no I/O.
//!
//! A [`CallDriver`] owns the call's [`Request`] and its history under the policy. The
//! adapter asks it what to do with [`poll`](CallDriver::poll) and tells it what happened
//! through the `handle_*` inputs; every decision, wait, report, error, `tracing` event
//! (target [`TRACING_TARGET`]) and metric comes from here. An adapter's loop is then only
//! its own I/O:
//!
//! ```text
//! let mut driver = CallDriver::new(Arc::clone(&core), request, core.now());
//! loop {
//!     match driver.poll(core.now()) {
//!         Poll::Send(attempt) => {
//!             let received = send(attempt);           // the adapter's HTTP client
//!             if let Some(answer) = driver.handle_received(received, core.clock()) {
//!                 return Ok(answer);
//!             }
//!         }
//!         Poll::Wait(wait) => sleep(wait),
//!         Poll::Failed(error) => return Err(error),
//!     }
//! }
//! ```
//!
//! The driver reads no clock: `now` is handed in, so the same driver runs on virtual time
//! in tests and in `novita simulate`. It takes the client's state lock only inside its own
//! methods, never across the adapter's I/O or sleeping.

use std::sync::Arc;
use std::time::Duration;

use novita_policy::{
    Action, Admission, Call, Clock, Decision, Delivery, Draw, GiveUp, Headers, NO_HEADERS, Outcome,
    Transport,
};
use tracing::{debug, info, warn};

use crate::client::ClientCore;
use crate::error::{BoxError, Error};
use crate::report::{Answer, Report};
use crate::request::{Reassembly, Request, model_chain};
use crate::wire::{ChatCompletion, StreamBreak};

/// The `tracing` target of every event a call emits.
pub const TRACING_TARGET: &str = "novita";

/// What the adapter should do next, as [`CallDriver::poll`] answers.
#[derive(Debug)]
#[must_use]
pub enum Poll {
    /// Send this attempt now, then feed its outcome back.
    Send(Attempt),
    /// Sleep this long (backoff, a server hint, pacing), then poll again.
    Wait(Duration),
    /// The call is over without an answer.
    Failed(Error),
}

/// One attempt to send: where, what, to which model, and how the answer should come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The full URL: the client's base URL and the request's route.
    pub url: String,
    /// The JSON body to `POST`; `None` for a `GET`.
    pub body: Option<Vec<u8>>,
    /// The model this attempt goes to (the route, for calls that name no model).
    pub model: String,
    /// Buffered or streamed: whether to ask for server-sent events.
    pub delivery: Delivery,
    /// Which attempt of the call this is, from 1.
    pub number: u32,
}

/// What an adapter made of a response with a success status (below 400): the answer, or
/// why there is none. Error statuses go to [`CallDriver::handle_response`] instead.
#[derive(Debug)]
#[must_use]
pub enum Received<T> {
    /// The answer.
    Value(T),
    /// The body broke off: fed back to the policy like any other failed attempt.
    Broken(Transport, Option<BoxError>),
    /// The server reported an error inside a stream: fed back like an error response.
    ServerError {
        /// The status the error event carries.
        status: u16,
        /// The event, an error body.
        body: Vec<u8>,
    },
    /// The answer cannot be used (malformed JSON): the call ends with this error.
    Invalid(Error),
}

impl<T> Received<T> {
    /// Where a stream that broke while the adapter reassembled it goes: a cut or failed
    /// read back to the policy, a server error as an error response, a malformed event as
    /// a decode error.
    pub fn from_break(ending: StreamBreak, failure: Option<BoxError>, model: &str) -> Self {
        if let Some(transport) = ending.transport() {
            return Received::Broken(transport, failure);
        }
        match ending {
            StreamBreak::ServerError { status, body } => Received::ServerError { status, body },
            StreamBreak::Malformed(error) => Received::Invalid(Error::Decode {
                what: "stream event",
                status: 200,
                source: Box::new(error),
            }),
            other => Received::Invalid(Error::Stream {
                model: model.to_owned(),
                chunks: 0,
                problem: other.problem(),
                source: None,
            }),
        }
    }

    /// Applies `f` to the answer, keeping every other case as it is.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Received<U> {
        match self {
            Received::Value(value) => Received::Value(f(value)),
            Received::Broken(transport, error) => Received::Broken(transport, error),
            Received::ServerError { status, body } => Received::ServerError { status, body },
            Received::Invalid(error) => Received::Invalid(error),
        }
    }
}

impl Received<ChatCompletion> {
    /// A reassembled completion as JSON, for adapters' generic JSON calls.
    pub fn into_json(self) -> Received<serde_json::Value> {
        match self {
            Received::Value(completion) => match serde_json::to_value(completion) {
                Ok(value) => Received::Value(value),
                Err(error) => Received::Invalid(Error::Encode(error)),
            },
            Received::Broken(transport, error) => Received::Broken(transport, error),
            Received::ServerError { status, body } => Received::ServerError { status, body },
            Received::Invalid(error) => Received::Invalid(error),
        }
    }
}

/// Where the call stands between two inputs.
#[derive(Debug)]
enum Stage {
    /// Ready to ask the policy for admission, no earlier than `not_before`.
    Ready { not_before: Duration },
    /// An attempt went out; its outcome is awaited.
    InFlight,
    /// The call failed; `poll` hands the error over once.
    Failed(Option<Error>),
    /// The call answered.
    Answered,
}

/// One logical call under the policy: owns the request, admits and decides each attempt,
/// counts waits, and ends in a [`Report`] or an [`Error`]. See the module documentation
/// for the loop that drives it.
#[derive(Debug)]
pub struct CallDriver {
    core: Arc<ClientCore>,
    request: Request,
    url: String,
    models: Vec<String>,
    reassembly: Reassembly,
    call: Call,
    stage: Stage,
    started: Duration,
    waited: Duration,
    span: tracing::Span,
}

impl CallDriver {
    /// Starts `request` at `now` (the core's [`now`](ClientCore::now), or virtual time) on
    /// `core`: the model chain is the request's model, then the client's fallback models.
    #[must_use]
    pub fn new(core: Arc<ClientCore>, request: Request, now: Duration) -> Self {
        #[cfg(feature = "metrics")]
        crate::metrics::describe_once();
        let models = model_chain(&request, core.fallback_models());
        let span = tracing::info_span!(
            target: TRACING_TARGET,
            "novita.call",
            route = request.route(),
            model = %models[0]
        );
        let call = core
            .policy()
            .start_call(now, request.delivery(), models.len());
        Self {
            url: core.settings().url(request.route()),
            reassembly: request.reassembly(),
            core,
            request,
            models,
            call,
            stage: Stage::Ready { not_before: now },
            started: now,
            waited: Duration::ZERO,
            span,
        }
    }

    /// The call's `tracing` span, for the adapter to enter (or instrument a future with).
    #[must_use]
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The model the next (or current) attempt goes to.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.models[self.call.model()]
    }

    /// The request this call sends.
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// What to do at `now`: send an attempt, wait, or stop. Follows an open breaker to the
    /// fallback models, and answers `Wait` with the time left while a delay runs.
    ///
    /// # Panics
    /// When polled while an attempt is in flight (its outcome must be fed back first), or
    /// after the call has answered or its failure was handed over: both are bugs in the
    /// adapter, like polling a finished future.
    pub fn poll(&mut self, now: Duration) -> Poll {
        let not_before = match &mut self.stage {
            Stage::Ready { not_before } => *not_before,
            Stage::Failed(error) => {
                let error = error.take().expect("CallDriver polled after it failed");
                return Poll::Failed(error);
            }
            Stage::InFlight => panic!("CallDriver polled with an attempt in flight"),
            Stage::Answered => panic!("CallDriver polled after the call answered"),
        };
        if now < not_before {
            return Poll::Wait(not_before - now);
        }
        match self.admit(now) {
            Admitted::Send => self.next_attempt(),
            Admitted::Wait(wait) => {
                self.waited += wait;
                self.stage = Stage::Ready {
                    not_before: now.saturating_add(wait),
                };
                Poll::Wait(wait)
            }
            Admitted::Rejected(error) => {
                self.stage = Stage::Failed(None);
                Poll::Failed(error)
            }
        }
    }

    /// Asks the policy whether the next attempt may go out at `now`, following an open
    /// breaker to the fallback models.
    fn admit(&mut self, now: Duration) -> Admitted {
        let mut shared = self.core.lock();
        loop {
            let model = self.call.model();
            let admission = self.core.policy().admit(
                &mut shared.state,
                &mut self.call,
                &self.models[model],
                now,
            );
            #[cfg(feature = "metrics")]
            crate::metrics::admitted(&shared.state, &self.models[model], &admission, now);
            match admission {
                Admission::Send => return Admitted::Send,
                Admission::Wait(wait) => {
                    debug!(target: TRACING_TARGET, wait_ms = wait.as_millis(), "pacing");
                    return Admitted::Wait(wait);
                }
                Admission::FallBack { model } => {
                    info!(target: TRACING_TARGET, to = %self.models[model], "circuit open, falling back");
                }
                Admission::Reject(give_up) => {
                    warn!(target: TRACING_TARGET, stop = ?give_up.stop, "call rejected before sending");
                    return Admitted::Rejected(self.give_up_error(give_up, None));
                }
            }
        }
    }

    fn next_attempt(&mut self) -> Poll {
        let delivery = match self.reassembly {
            Reassembly::Chat => self.call.delivery(),
            Reassembly::Unsupported => Delivery::Buffered,
        };
        let model = self.models[self.call.model()].clone();
        let body = match self.request.body_for(&model, delivery) {
            Ok(body) => body,
            Err(error) => {
                // Nothing was sent, so the policy has nothing to learn from it.
                self.stage = Stage::Failed(None);
                return Poll::Failed(error);
            }
        };
        let number = self.call.attempts() + 1;
        debug!(
            target: TRACING_TARGET,
            attempt = number,
            %model,
            streaming = delivery == Delivery::Streamed,
            "sending"
        );
        self.stage = Stage::InFlight;
        Poll::Send(Attempt {
            url: self.url.clone(),
            body,
            model,
            delivery,
            number,
        })
    }

    /// Feeds back an attempt that ended with an error status (400 and above), its headers
    /// and as much of its body as the adapter read.
    pub fn handle_response(
        &mut self,
        status: u16,
        headers: &dyn Headers,
        body: &[u8],
        clock: Clock,
    ) {
        let outcome = Outcome::Response {
            status,
            headers,
            body,
        };
        self.failed(&outcome, clock, None);
    }

    /// Feeds back an attempt that failed below HTTP (connect, reset, timeout, TLS, a body
    /// that broke off); `source` is the HTTP client's own error, kept as the cause.
    pub fn handle_transport(&mut self, failure: Transport, source: Option<BoxError>, clock: Clock) {
        self.failed(&Outcome::Transport(failure), clock, source);
    }

    /// Feeds back the attempt that succeeded with `status` (below 400) and returns the
    /// call's report: the call is over.
    pub fn handle_success(&mut self, status: u16, clock: Clock) -> Report {
        let model = self.call.model();
        let outcome = Outcome::Response {
            status,
            headers: &NO_HEADERS,
            body: b"",
        };
        {
            let mut shared = self.core.lock();
            let decision = self.core.policy().decide(
                &mut shared.state,
                &mut self.call,
                &self.models[model],
                &outcome,
                clock,
                Draw::MIN,
            );
            debug_assert_eq!(decision, Decision::Done);
            #[cfg(feature = "metrics")]
            crate::metrics::decided(
                &shared.state,
                &self.models[model],
                &outcome,
                &decision,
                clock.now,
            );
        }
        let report = Report {
            model: self.models[model].clone(),
            fell_back_from: (model > 0).then(|| self.models[0].clone()),
            switched_to_streaming: self.reassembly == Reassembly::Chat
                && self.request.delivery() == Delivery::Buffered
                && self.call.delivery() == Delivery::Streamed,
            attempts: self.call.attempts(),
            waited: self.waited,
            elapsed: clock.now.saturating_sub(self.started),
        };
        info!(target: TRACING_TARGET, attempts = report.attempts, elapsed_ms = report.elapsed.as_millis(), "done");
        #[cfg(feature = "metrics")]
        crate::metrics::succeeded(&report.model, report.elapsed);
        self.stage = Stage::Answered;
        report
    }

    /// Feeds back an attempt whose success status came with an answer that cannot be used
    /// (malformed JSON, a stream that broke the protocol): the call ends with `error`,
    /// which the next [`poll`](Self::poll) hands over.
    pub fn handle_unusable(&mut self, status: u16, error: Error, now: Duration) {
        warn!(target: TRACING_TARGET, status, %error, "unusable response");
        #[cfg(feature = "metrics")]
        crate::metrics::unusable(self.model(), status, now.saturating_sub(self.started));
        #[cfg(not(feature = "metrics"))]
        let _ = now;
        self.stage = Stage::Failed(Some(error));
    }

    /// Feeds back what the adapter made of a success response, through the matching
    /// `handle_*` input; the answer with its report when there is one.
    pub fn handle_received<T>(
        &mut self,
        status: u16,
        received: Received<T>,
        clock: Clock,
    ) -> Option<Answer<T>> {
        match received {
            Received::Value(value) => {
                let report = self.handle_success(status, clock);
                return Some(Answer::new(value, report));
            }
            Received::Broken(transport, source) => {
                self.handle_transport(transport, source, clock);
            }
            Received::ServerError { status, body } => {
                self.handle_response(status, &NO_HEADERS, &body, clock);
            }
            Received::Invalid(error) => self.handle_unusable(status, error, clock.now),
        }
        None
    }

    /// Hands a failed attempt to the policy and sets up what follows.
    fn failed(&mut self, outcome: &Outcome<'_>, clock: Clock, source: Option<BoxError>) {
        let model = self.call.model();
        let decision = {
            let mut shared = self.core.lock();
            let draw = shared.rng.draw();
            let decision = self.core.policy().decide(
                &mut shared.state,
                &mut self.call,
                &self.models[model],
                outcome,
                clock,
                draw,
            );
            #[cfg(feature = "metrics")]
            crate::metrics::decided(
                &shared.state,
                &self.models[model],
                outcome,
                &decision,
                clock.now,
            );
            decision
        };
        let delay = match decision {
            Decision::Retry { delay, cause } => {
                info!(target: TRACING_TARGET, %cause, delay_ms = delay.as_millis(), "retrying");
                delay
            }
            Decision::Escalate {
                action,
                delay,
                cause,
            } => {
                info!(target: TRACING_TARGET, %cause, %action, delay_ms = delay.as_millis(), "escalating");
                if let Action::FallBack { model } = action {
                    info!(target: TRACING_TARGET, to = %self.models[model], "falling back");
                }
                delay
            }
            Decision::GiveUp(give_up) => {
                warn!(
                    target: TRACING_TARGET,
                    stop = ?give_up.stop,
                    status = ?give_up.status,
                    attempts = give_up.attempts,
                    "giving up"
                );
                self.stage = Stage::Failed(Some(self.give_up_error(give_up, source)));
                return;
            }
            // A success belongs to `handle_success`; should one arrive here anyway, the
            // call stops rather than sending the request again.
            Decision::Done => {
                debug_assert!(false, "a successful outcome was fed back as a failure");
                self.stage = Stage::Failed(Some(Error::Decode {
                    what: "response",
                    status: outcome_status(outcome),
                    source: "a successful status was reported as a failure".into(),
                }));
                return;
            }
        };
        self.waited += delay;
        self.stage = Stage::Ready {
            not_before: clock.now.saturating_add(delay),
        };
    }

    fn give_up_error(&self, give_up: Box<GiveUp>, source: Option<BoxError>) -> Error {
        let model = self.models[give_up.model.min(self.models.len() - 1)].clone();
        #[cfg(feature = "metrics")]
        crate::metrics::gave_up(&model, &give_up);
        Error::GaveUp {
            give_up,
            model,
            key_source: self.core.settings().key_source,
            source,
        }
    }
}

/// What admission came to.
enum Admitted {
    Send,
    Wait(Duration),
    Rejected(Error),
}

fn outcome_status(outcome: &Outcome<'_>) -> u16 {
    match outcome {
        Outcome::Response { status, .. } => *status,
        Outcome::Transport(_) => 0,
    }
}
