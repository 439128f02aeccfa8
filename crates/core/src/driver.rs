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
//!                 // A chat answer's usage corrects the token estimate of a TPM limit.
//!                 if let Some(usage) = usage_of(&answer.value) {
//!                     driver.handle_usage(usage, core.now());
//!                 }
//!                 return Ok(answer);
//!             }
//!         }
//!         Poll::Wait(wait) => sleep(wait),
//!         Poll::Failed(error) => return Err(error),
//!         // A client with a shared state store: one bounded round trip to it.
//!         Poll::Share(exchange) => driver.handle_shared(exchange_with_store(exchange), core.now()),
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

mod sharing;

use sharing::{Share, Snapshot};

use crate::client::ClientCore;
use crate::error::{BoxError, Error};
use crate::report::{Answer, Report};
use crate::request::{Reassembly, Request, model_chain};
use crate::store::Exchange;
use crate::wire::{ChatCompletion, StreamBreak, Usage};

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
    /// Run this exchange with the client's shared state store (see
    /// [`store`](crate::store)), bounded by [`Timeouts::store`](crate::Timeouts::store), and
    /// feed the result to [`CallDriver::handle_shared`]. Only for a client with a store.
    Share(Exchange),
}

/// One attempt to send: where, what, to which model, and how the answer should come.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The full URL: the client's base URL and the request's route.
    pub url: String,
    /// The JSON body to `POST`; `None` for a `GET`, and for a
    /// [relayed](Request::relayed) request, whose sender re-sends its own body naming
    /// [`model`](Self::model).
    pub body: Option<Vec<u8>>,
    /// The model this attempt goes to (the route, for calls that name no model).
    pub model: String,
    /// Buffered or streamed: whether to ask for server-sent events.
    pub delivery: Delivery,
    /// Which attempt of the call this is, from 1.
    pub number: u32,
    /// How long to wait for the response headers: the request timeout, cut to what is left
    /// of the call's deadline.
    pub headers_within: Duration,
    /// How long the whole attempt may take, from sending to the last byte of the body: for a
    /// buffered attempt the request timeout, for a stream the total stream timeout; cut to
    /// what is left of the call's deadline, except for a stream the caller asked for (its
    /// deadline ends when the stream starts). Adapters enforce it however slowly the bytes
    /// arrive.
    pub time_limit: Duration,
}

/// The least time an attempt is given, so that timers always arm.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(1);

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
    /// An exchange with the shared store is out; then back to this stage.
    Sharing(Box<Stage>),
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
    models: Vec<String>,
    /// The metrics' labels of each model of `models`, resolved once per call.
    #[cfg(feature = "metrics")]
    series: Vec<crate::metrics::Series>,
    call: Call,
    stage: Stage,
    started: Duration,
    waited: Duration,
    /// Whether the answer's usage has corrected the token estimate (once per call).
    usage_corrected: bool,
    /// When the attempt in flight (or the last one) was sent, for its latency.
    attempt_sent: Duration,
    /// Where the next attempt stands with the shared store (unused without one).
    share: Share,
    /// This call learnt something the other processes must hear of at once.
    urgent_news: bool,
    span: tracing::Span,
}

impl CallDriver {
    /// Starts `request` at `now` (the core's [`now`](ClientCore::now), or virtual time) on
    /// `core`: the model chain is the request's model, then the client's fallback models.
    /// Each attempt is charged [`Request::estimated_tokens`] against the model's
    /// tokens-per-minute limit, if the policy sets one (the estimate is only computed when
    /// the policy has limits).
    #[must_use]
    pub fn new(core: Arc<ClientCore>, request: Request, now: Duration) -> Self {
        #[cfg(feature = "metrics")]
        crate::metrics::describe_once();
        let models = model_chain(&request, core.fallback_models());
        #[cfg(feature = "metrics")]
        let series = models
            .iter()
            .map(|model| core.metric_labels().series(model))
            .collect();
        let span = tracing::info_span!(
            target: TRACING_TARGET,
            "novita.call",
            route = request.route(),
            model = %models[0]
        );
        let call = core
            .policy()
            .start_call(now, request.delivery(), models.len());
        let call = match request.reassembly() {
            Reassembly::Chat => call,
            Reassembly::Unsupported => call.without_streaming_switch(),
        };
        // Counting the prompt costs a pass over it: only worth it when a limit will read it.
        let call = if core.config().limits.is_empty() {
            call
        } else {
            call.with_estimated_tokens(request.estimated_tokens())
        };
        Self {
            core,
            request,
            models,
            #[cfg(feature = "metrics")]
            series,
            call,
            stage: Stage::Ready { not_before: now },
            started: now,
            waited: Duration::ZERO,
            usage_corrected: false,
            attempt_sent: now,
            share: Share::Due,
            urgent_news: false,
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
            Stage::Failed(_) if self.urgent_news => {
                // What ended the call (a hint, say) reaches the others before the error
                // reaches the caller.
                if let Some(exchange) = self.exchange_due(now, now) {
                    return Poll::Share(exchange);
                }
                return self.poll(now);
            }
            Stage::Failed(error) => {
                let error = error.take().expect("CallDriver polled after it failed");
                return Poll::Failed(error);
            }
            Stage::InFlight => panic!("CallDriver polled with an attempt in flight"),
            Stage::Sharing(_) => panic!("CallDriver polled with an exchange out"),
            Stage::Answered => panic!("CallDriver polled after the call answered"),
        };
        if let Some(exchange) = self.exchange_due(now, not_before) {
            return Poll::Share(exchange);
        }
        if now < not_before {
            return Poll::Wait(not_before - now);
        }
        match self.admit(now) {
            Admitted::Send => self.next_attempt(now),
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
            // The call moved to a fallback model, whose shared state comes first.
            Admitted::Exchange => match self.exchange_due(now, now) {
                Some(exchange) => Poll::Share(exchange),
                None => self.poll(now),
            },
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
            crate::metrics::admitted(
                &shared.state,
                &self.models[model],
                &self.series[model],
                &admission,
                now,
            );
            let sent = matches!(admission, Admission::Send);
            Self::settle_charge(&mut self.share, &mut shared, sent, &self.models[model]);
            match admission {
                Admission::Send => return Admitted::Send,
                Admission::Wait(wait) => {
                    let limited = shared.state.limit_wait(
                        &self.models[model],
                        self.call.estimated_tokens(),
                        now,
                    );
                    match limited {
                        Some((limit, held)) => debug!(
                            target: TRACING_TARGET,
                            wait_ms = wait.as_millis(),
                            limit = limit.abbreviation(),
                            limit_wait_ms = held.as_millis(),
                            estimated_tokens = self.call.estimated_tokens(),
                            "rate limit: waiting"
                        ),
                        None => {
                            debug!(target: TRACING_TARGET, wait_ms = wait.as_millis(), "pacing")
                        }
                    }
                    return Admitted::Wait(wait);
                }
                Admission::FallBack { model } => {
                    info!(target: TRACING_TARGET, to = %self.models[model], "circuit open, falling back");
                    if self.exchange_before_fallback(&shared, now) {
                        return Admitted::Exchange;
                    }
                }
                Admission::Reject(give_up) => {
                    warn!(target: TRACING_TARGET, stop = ?give_up.stop, "call rejected before sending");
                    return Admitted::Rejected(self.give_up_error(give_up, None));
                }
            }
        }
    }

    fn next_attempt(&mut self, now: Duration) -> Poll {
        let delivery = self.call.delivery();
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
        let (headers_within, time_limit) = self.time_bounds(delivery, now);
        self.stage = Stage::InFlight;
        self.attempt_sent = now;
        Poll::Send(Attempt {
            // Built for each attempt rather than kept and cloned: most calls make one.
            url: self.request.relayed_url().map_or_else(
                || self.core.settings().url(self.request.route()),
                ToOwned::to_owned,
            ),
            body,
            model,
            delivery,
            number,
            headers_within,
            time_limit,
        })
    }

    /// The bounds of an attempt sent at `now` with `delivery`: the wait for headers and the
    /// whole attempt (see [`Attempt::time_limit`]). Never zero, so an adapter's timer
    /// always arms.
    fn time_bounds(&self, delivery: Delivery, now: Duration) -> (Duration, Duration) {
        let timeouts = self.core.timeouts();
        let left = self
            .core
            .config()
            .deadline
            .map_or(Duration::MAX, |deadline| {
                deadline.saturating_sub(now.saturating_sub(self.started))
            })
            .max(MIN_ATTEMPT_TIME);
        let headers_within = timeouts.request.min(left);
        let time_limit = match (self.request.delivery(), delivery) {
            (_, Delivery::Buffered) => timeouts.request.min(left),
            (Delivery::Buffered, Delivery::Streamed) => timeouts.stream_total.min(left),
            (Delivery::Streamed, Delivery::Streamed) => timeouts.stream_total,
        };
        (headers_within.min(time_limit), time_limit)
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
        self.record_attempt(Some(status), clock.now);
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
        self.record_attempt(None, clock.now);
        self.failed(&Outcome::Transport(failure), clock, source);
    }

    /// Feeds back the attempt that succeeded with `status` (below 400) and returns the
    /// call's report: the call is over.
    pub fn handle_success(&mut self, status: u16, clock: Clock) -> Report {
        self.record_attempt(Some(status), clock.now);
        let model = self.call.model();
        self.record_answer(status, clock);
        #[cfg(feature = "metrics")]
        crate::metrics::decided(
            &self.core.lock().state,
            &self.models[model],
            &self.series[model],
            &Outcome::Response {
                status,
                headers: &NO_HEADERS,
                body: b"",
            },
            &Decision::Done,
            clock.now,
        );
        let report = Report {
            model: self.models[model].clone(),
            fell_back_from: (model > 0).then(|| self.models[0].clone()),
            switched_to_streaming: self.request.delivery() == Delivery::Buffered
                && self.call.delivery() == Delivery::Streamed,
            attempts: self.call.attempts(),
            waited: self.waited,
            elapsed: clock.now.saturating_sub(self.started),
        };
        info!(target: TRACING_TARGET, attempts = report.attempts, elapsed_ms = report.elapsed.as_millis(), "done");
        #[cfg(feature = "metrics")]
        crate::metrics::succeeded(&self.series[model], report.elapsed);
        self.stage = Stage::Answered;
        report
    }

    /// Feeds back an attempt whose success status came with an answer that cannot be used
    /// (malformed JSON, a stream that broke the protocol): the call ends with `error`,
    /// which the next [`poll`](Self::poll) hands over. The model did answer, so its breaker,
    /// pacing and the retry budget learn of a success.
    pub fn handle_unusable(&mut self, status: u16, error: Error, clock: Clock) {
        warn!(target: TRACING_TARGET, status, %error, "unusable response");
        self.record_attempt(Some(status), clock.now);
        self.record_answer(status, clock);
        #[cfg(feature = "metrics")]
        crate::metrics::unusable(
            &self.series[self.call.model()],
            status,
            clock.now.saturating_sub(self.started),
        );
        self.stage = Stage::Failed(Some(error));
    }

    /// Records how long the attempt in flight took, ending at `now` with `status` (`None`:
    /// below HTTP), as the `novita_attempt_duration_seconds` metric.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    fn record_attempt(&self, status: Option<u16>, now: Duration) {
        #[cfg(feature = "metrics")]
        crate::metrics::attempted(
            &self.series[self.call.model()],
            status,
            now.saturating_sub(self.attempt_sent),
        );
    }

    /// Tells the policy the model answered with a success status.
    fn record_answer(&mut self, status: u16, clock: Clock) {
        let model = self.call.model();
        let outcome = Outcome::Response {
            status,
            headers: &NO_HEADERS,
            body: b"",
        };
        let mut shared = self.core.lock();
        let before = Snapshot::taken(&self.core, &shared.state, &self.models[model], clock.now);
        let decision = self.core.policy().decide(
            &mut shared.state,
            &mut self.call,
            &self.models[model],
            &outcome,
            clock,
            Draw::MIN,
        );
        debug_assert_eq!(decision, Decision::Done);
        Self::note_news(
            &mut self.urgent_news,
            &mut shared,
            &self.models[model],
            before,
            clock.now,
        );
    }

    /// Feeds back the answer's token usage (`usage` of a chat completion, or of the last
    /// chunk of a stream that asked for it), once the call has answered: the model's
    /// tokens-per-minute state is corrected from the call's estimate
    /// ([`Request::estimated_tokens`]) to `usage.total_tokens`. Only the first report
    /// counts; before an answer, or without a `tpm` limit on the model, it changes
    /// nothing. An answer without usage (most streams) is simply not corrected.
    pub fn handle_usage(&mut self, usage: &Usage, now: Duration) {
        if !matches!(self.stage, Stage::Answered) || self.usage_corrected {
            return;
        }
        self.usage_corrected = true;
        let estimated = self.call.estimated_tokens();
        debug!(
            target: TRACING_TARGET,
            estimated_tokens = estimated,
            total_tokens = usage.total_tokens,
            "token usage"
        );
        let model = &self.models[self.call.model()];
        #[cfg(feature = "metrics")]
        crate::metrics::tokens(&self.series[self.call.model()], usage);
        let mut shared = self.core.lock();
        shared
            .state
            .correct_tokens(model, estimated, usage.total_tokens, now);
        Self::note_usage(
            &self.core,
            &mut shared,
            model,
            estimated,
            usage.total_tokens,
        );
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
            Received::Invalid(error) => self.handle_unusable(status, error, clock),
        }
        None
    }

    /// Hands a failed attempt to the policy and sets up what follows.
    fn failed(&mut self, outcome: &Outcome<'_>, clock: Clock, source: Option<BoxError>) {
        let model = self.call.model();
        let decision = {
            let mut shared = self.core.lock();
            let before = Snapshot::taken(&self.core, &shared.state, &self.models[model], clock.now);
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
                &self.series[model],
                outcome,
                &decision,
                clock.now,
            );
            Self::note_news(
                &mut self.urgent_news,
                &mut shared,
                &self.models[model],
                before,
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
        let index = give_up.model.min(self.models.len() - 1);
        let model = self.models[index].clone();
        #[cfg(feature = "metrics")]
        crate::metrics::gave_up(&self.series[index], &give_up);
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
    /// Exchange with the shared store before going on (the call changed models).
    Exchange,
}

fn outcome_status(outcome: &Outcome<'_>) -> u16 {
    match outcome {
        Outcome::Response { status, .. } => *status,
        Outcome::Transport(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::key::KeySource;
    use crate::settings::Options;
    use crate::wire::ChatRequest;

    fn core() -> Arc<ClientCore> {
        let options = Options {
            api_key: Some("sk_unit_test".to_owned()),
            seed: Some(7),
            fallback_models: vec!["fallback".to_owned()],
            ..Options::default()
        };
        Arc::new(ClientCore::new(options, |_| None).expect("valid options"))
    }

    fn clock(now: Duration) -> Clock {
        Clock {
            now,
            wall: SystemTime::UNIX_EPOCH + now,
        }
    }

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn chat() -> Request {
        Request::chat(&ChatRequest::new("primary", "hi"))
    }

    fn send(driver: &mut CallDriver, now: Duration) -> Attempt {
        match driver.poll(now) {
            Poll::Send(attempt) => attempt,
            other => panic!("expected an attempt at {now:?}, got {other:?}"),
        }
    }

    fn wait(driver: &mut CallDriver, now: Duration) -> Duration {
        match driver.poll(now) {
            Poll::Wait(wait) => wait,
            other => panic!("expected a wait at {now:?}, got {other:?}"),
        }
    }

    fn failed(driver: &mut CallDriver, now: Duration) -> Error {
        match driver.poll(now) {
            Poll::Failed(error) => error,
            other => panic!("expected the call to fail at {now:?}, got {other:?}"),
        }
    }

    fn body(attempt: &Attempt) -> serde_json::Value {
        serde_json::from_slice(attempt.body.as_deref().expect("a body")).expect("JSON")
    }

    #[test]
    fn attempts_are_bounded_by_what_is_left_of_the_deadline() {
        // Default policy deadline 5 min, request timeout 120 s, stream total 30 min.
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let first = send(&mut driver, secs(1));
        assert_eq!(
            (first.headers_within, first.time_limit),
            (secs(120), secs(120))
        );
        driver.handle_response(429, &[("retry-after", "30")], b"", clock(secs(250)));
        assert_eq!(wait(&mut driver, secs(250)), secs(30));
        let late = send(&mut driver, secs(280));
        assert_eq!((late.headers_within, late.time_limit), (secs(20), secs(20)));

        // A 504 switches to streaming: the stream is held to the deadline too.
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        driver.handle_response(504, &NO_HEADERS, b"", clock(secs(100)));
        let backoff = wait(&mut driver, secs(100));
        let streamed = send(&mut driver, secs(100) + backoff);
        assert_eq!(streamed.delivery, Delivery::Streamed);
        assert_eq!(streamed.headers_within, secs(120));
        assert_eq!(streamed.time_limit, secs(200) - backoff);

        // A stream the caller asked for: its deadline ends when it starts, so only the
        // stream's own total bounds it.
        let request = Request::chat_stream(&ChatRequest::new("primary", "hi"));
        let mut driver = CallDriver::new(core(), request, Duration::ZERO);
        let own = send(&mut driver, Duration::ZERO);
        assert_eq!(
            (own.headers_within, own.time_limit),
            (secs(120), secs(30 * 60))
        );
    }

    #[test]
    fn a_retried_success_reports_attempts_and_waits() {
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let attempt = send(&mut driver, Duration::ZERO);
        assert_eq!((attempt.model.as_str(), attempt.number), ("primary", 1));
        assert_eq!(driver.model(), "primary");
        driver.handle_response(429, &[("retry-after", "2")], b"", clock(Duration::ZERO));
        assert_eq!(wait(&mut driver, Duration::ZERO), secs(2));
        let attempt = send(&mut driver, secs(2));
        assert_eq!((attempt.model.as_str(), attempt.number), ("primary", 2));
        let report = driver.handle_success(200, clock(secs(3)));
        assert_eq!(report.attempts, 2);
        assert_eq!(report.waited, secs(2));
        assert_eq!(report.elapsed, secs(3));
        assert_eq!(report.model, "primary");
        assert_eq!(report.fell_back_from, None);
        assert!(!report.switched_to_streaming);
    }

    #[test]
    fn polling_during_a_delay_answers_the_time_left() {
        let core = core();
        // A delay the policy decided (a server hint).
        let mut first = CallDriver::new(Arc::clone(&core), chat(), Duration::ZERO);
        let _ = send(&mut first, Duration::ZERO);
        first.handle_response(429, &[("retry-after", "4")], b"", clock(Duration::ZERO));
        assert_eq!(wait(&mut first, Duration::ZERO), secs(4));
        assert_eq!(wait(&mut first, ms(500)), ms(3500));
        assert_eq!(wait(&mut first, ms(3900)), ms(100));

        // A wait admission imposed (the hint holds every call to the model).
        let mut second = CallDriver::new(Arc::clone(&core), chat(), secs(1));
        assert_eq!(wait(&mut second, secs(1)), secs(3));
        assert_eq!(wait(&mut second, secs(2)), secs(2));
        assert_eq!(wait(&mut second, ms(3500)), ms(500));

        assert_eq!(send(&mut first, secs(4)).number, 2);
        assert_eq!(send(&mut second, secs(4)).number, 1);
        let first = first.handle_success(200, clock(secs(4)));
        let second = second.handle_success(200, clock(secs(4)));
        assert_eq!(first.waited, secs(4), "early polls are not counted again");
        assert_eq!(second.waited, secs(3), "early polls are not counted again");
        assert_eq!(second.elapsed, secs(3));
    }

    #[test]
    fn a_switch_to_streaming_needs_reassembly() {
        let completions = Request::post(
            "completions",
            &serde_json::json!({"model": "primary", "prompt": "hi"}),
        );
        for (request, expected) in [
            (chat(), Delivery::Streamed),
            (completions, Delivery::Buffered),
        ] {
            let route = request.route().to_owned();
            let mut driver = CallDriver::new(core(), request, Duration::ZERO);
            let first = send(&mut driver, Duration::ZERO);
            assert_eq!(first.delivery, Delivery::Buffered, "{route}");
            driver.handle_response(504, &NO_HEADERS, b"", clock(Duration::ZERO));
            let delay = wait(&mut driver, Duration::ZERO);
            let attempt = send(&mut driver, delay);
            assert_eq!(attempt.delivery, expected, "{route}");
            assert_eq!(
                body(&attempt)
                    .get("stream")
                    .and_then(serde_json::Value::as_bool),
                (route == "chat/completions").then_some(true),
                "{route}"
            );
            let report = driver.handle_success(200, clock(delay));
            assert_eq!(
                report.switched_to_streaming,
                expected == Delivery::Streamed,
                "{route}"
            );
        }
    }

    #[test]
    fn a_fallback_answer_says_where_it_came_from() {
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        let maintenance = br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE"}"#;
        driver.handle_response(500, &NO_HEADERS, maintenance, clock(Duration::ZERO));
        assert_eq!(driver.model(), "fallback");
        let attempt = send(&mut driver, Duration::ZERO);
        assert_eq!((attempt.model.as_str(), attempt.number), ("fallback", 2));
        assert_eq!(body(&attempt)["model"], "fallback");
        let report = driver.handle_success(200, clock(Duration::ZERO));
        assert_eq!(report.fell_back_from.as_deref(), Some("primary"));
        assert_eq!(report.model, "fallback");
        assert_eq!(report.waited, Duration::ZERO);
    }

    #[test]
    fn a_give_up_names_the_model_and_the_key_source() {
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        driver.handle_response(401, &NO_HEADERS, b"", clock(Duration::ZERO));
        let error = failed(&mut driver, Duration::ZERO);
        assert!(
            matches!(&error, Error::GaveUp { model, key_source: KeySource::Argument, .. } if model == "primary"),
            "{error:?}"
        );
        assert_eq!(error.status(), Some(401));
        assert!(
            error
                .to_string()
                .contains("the key passed to the client builder"),
            "{error}"
        );
    }

    #[test]
    fn a_streamed_call_streams_every_attempt() {
        let request = Request::chat_stream(&ChatRequest::new("primary", "hi"));
        let mut driver = CallDriver::new(core(), request, Duration::ZERO);
        let mut now = Duration::ZERO;
        for number in 1..=3 {
            let attempt = send(&mut driver, now);
            assert_eq!(attempt.number, number);
            assert_eq!(attempt.delivery, Delivery::Streamed);
            assert_eq!(body(&attempt)["stream"], true);
            if number < 3 {
                driver.handle_response(504, &NO_HEADERS, b"", clock(now));
                now += wait(&mut driver, now);
            }
        }
        let report = driver.handle_success(200, clock(now));
        assert!(!report.switched_to_streaming, "it streamed from the start");
        assert_eq!(report.attempts, 3);
    }

    #[test]
    fn a_call_without_a_model_is_keyed_by_its_route() {
        let mut driver = CallDriver::new(core(), Request::get("/models"), Duration::ZERO);
        let attempt = send(&mut driver, Duration::ZERO);
        assert_eq!(attempt.url, "https://api.novita.ai/openai/v1/models");
        assert_eq!(attempt.body, None);
        assert_eq!(attempt.model, "models");
        assert_eq!(attempt.delivery, Delivery::Buffered);
        // No model named, so no fallback: a 500 in maintenance gives up on the route.
        let maintenance = br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE"}"#;
        driver.handle_response(500, &NO_HEADERS, maintenance, clock(Duration::ZERO));
        let error = failed(&mut driver, Duration::ZERO);
        assert!(
            matches!(&error, Error::GaveUp { model, .. } if model == "models"),
            "{error:?}"
        );
    }

    #[test]
    fn a_server_error_inside_a_stream_is_an_error_response() {
        let overloaded = br#"{"code":503,"reason":"SERVICE_NOT_AVAILABLE","message":"busy"}"#;
        // Two clients with the same seed: one told through `handle_response`, the other
        // through `handle_received`, decide alike.
        let (direct_core, received_core) = (core(), core());
        let mut direct = CallDriver::new(Arc::clone(&direct_core), chat(), Duration::ZERO);
        let mut received = CallDriver::new(Arc::clone(&received_core), chat(), Duration::ZERO);
        let _ = send(&mut direct, Duration::ZERO);
        let _ = send(&mut received, Duration::ZERO);
        direct.handle_response(503, &NO_HEADERS, overloaded, clock(Duration::ZERO));
        let answer = received.handle_received(
            200,
            Received::<()>::ServerError {
                status: 503,
                body: overloaded.to_vec(),
            },
            clock(Duration::ZERO),
        );
        assert!(answer.is_none());
        let delay = wait(&mut direct, Duration::ZERO);
        assert_eq!(wait(&mut received, Duration::ZERO), delay);
        assert_eq!(received_core.retry_budget(), direct_core.retry_budget());
        assert!(
            received_core.retry_budget() < core().retry_budget(),
            "a retry"
        );

        // A broken body is a transport failure; an answer ends the call with its report.
        assert_eq!(send(&mut received, delay).number, 2);
        let broken = Received::<u32>::Broken(Transport::Reset, Some("cut".into()));
        assert!(
            received
                .handle_received(200, broken, clock(delay))
                .is_none()
        );
        let later = delay + wait(&mut received, delay);
        assert_eq!(send(&mut received, later).number, 3);
        let answer = received
            .handle_received(200, Received::Value(42_u32), clock(later))
            .expect("an answer");
        assert_eq!(answer.value, 42);
        assert_eq!(answer.report.attempts, 3);

        // A non-retryable error event ends the call like the same status would.
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        let denied = Received::<()>::ServerError {
            status: 403,
            body: br#"{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"top up"}"#.to_vec(),
        };
        assert!(
            driver
                .handle_received(200, denied, clock(Duration::ZERO))
                .is_none()
        );
        let error = failed(&mut driver, Duration::ZERO);
        assert_eq!(error.status(), Some(403));
        assert_eq!(
            error
                .give_up()
                .and_then(|give_up| give_up.message.as_deref()),
            Some("top up")
        );
    }

    #[test]
    fn an_unusable_answer_ends_the_call_on_the_next_poll() {
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        let error = Error::Decode {
            what: "response",
            status: 200,
            source: "expected value at line 1 column 1".into(),
        };
        driver.handle_unusable(200, error, clock(secs(1)));
        let error = failed(&mut driver, secs(1));
        assert!(
            matches!(error, Error::Decode { status: 200, .. }),
            "{error:?}"
        );
        assert_eq!(error.kind(), crate::ErrorKind::InvalidResponse);

        // The same through `handle_received`.
        let mut driver = CallDriver::new(core(), chat(), Duration::ZERO);
        let _ = send(&mut driver, Duration::ZERO);
        let invalid = Received::<()>::Invalid(Error::Stream {
            model: "primary".into(),
            chunks: 2,
            problem: "no [DONE]".into(),
            source: None,
        });
        assert!(
            driver
                .handle_received(200, invalid, clock(secs(1)))
                .is_none()
        );
        let error = failed(&mut driver, secs(1));
        assert!(
            matches!(error, Error::Stream { chunks: 2, .. }),
            "{error:?}"
        );
    }

    fn core_with(config: novita_policy::PolicyConfig) -> Arc<ClientCore> {
        let options = Options {
            api_key: Some("sk_unit_test".to_owned()),
            seed: Some(7),
            policy: Some(config),
            ..Options::default()
        };
        Arc::new(ClientCore::new(options, |_| None).expect("valid options"))
    }

    #[test]
    fn a_call_held_past_its_deadline_by_others_429s_is_rate_limited() {
        let mut config = novita_policy::PolicyConfig::default();
        config.deadline = Some(secs(10));
        let core = core_with(config);
        let mut throttled = CallDriver::new(Arc::clone(&core), chat(), Duration::ZERO);
        let _ = send(&mut throttled, Duration::ZERO);
        throttled.handle_response(429, &[("retry-after", "12")], b"", clock(Duration::ZERO));
        assert_eq!(
            failed(&mut throttled, Duration::ZERO).kind(),
            crate::ErrorKind::RateLimited
        );

        let mut held = CallDriver::new(Arc::clone(&core), chat(), secs(1));
        let error = failed(&mut held, secs(1));
        assert_eq!(error.kind(), crate::ErrorKind::RateLimited, "{error}");
        let give_up = error.give_up().expect("a give-up");
        assert_eq!(give_up.stop, novita_policy::Stop::PastDeadline);
        assert_eq!(give_up.attempts, 0);
    }

    #[test]
    fn a_call_stopped_at_admission_keeps_what_its_last_attempt_said() {
        let mut config = novita_policy::PolicyConfig::default();
        config.deadline = Some(secs(10));
        let core = core_with(config);
        let mut call = CallDriver::new(Arc::clone(&core), chat(), Duration::ZERO);
        let _ = send(&mut call, Duration::ZERO);
        let overloaded = br#"{"code":503,"reason":"SERVICE_NOT_AVAILABLE","message":"busy"}"#;
        call.handle_response(503, &NO_HEADERS, overloaded, clock(Duration::ZERO));
        let delay = wait(&mut call, Duration::ZERO);
        // Meanwhile another call's 429 holds the model past this call's deadline.
        let mut other = CallDriver::new(Arc::clone(&core), chat(), Duration::ZERO);
        let _ = send(&mut other, Duration::ZERO);
        other.handle_response(429, &[("retry-after", "30")], b"", clock(Duration::ZERO));
        let error = failed(&mut call, delay);
        let give_up = error.give_up().expect("a give-up");
        assert_eq!(give_up.stop, novita_policy::Stop::PastDeadline);
        assert_eq!(give_up.status, Some(503));
        assert_eq!(give_up.message.as_deref(), Some("busy"));
        assert_eq!(error.kind(), crate::ErrorKind::Unavailable);
    }

    #[test]
    fn a_route_that_cannot_stream_still_advises_streaming() {
        let body = serde_json::json!({"model": "primary", "prompt": "x"});
        let mut driver =
            CallDriver::new(core(), Request::post("completions", &body), Duration::ZERO);
        let mut now = Duration::ZERO;
        let error = loop {
            match driver.poll(now) {
                Poll::Send(attempt) => {
                    assert_eq!(attempt.delivery, Delivery::Buffered);
                    driver.handle_response(504, &NO_HEADERS, b"", clock(now));
                }
                Poll::Wait(wait) => now += wait,
                Poll::Failed(error) => break error,
                Poll::Share(_) => panic!("no store, no exchange"),
            }
        };
        let give_up = error.give_up().expect("a give-up");
        assert!(
            give_up
                .advice
                .contains(&novita_policy::catalog::Escalation::SwitchToStreaming),
            "{error:#}"
        );
    }

    #[test]
    fn an_unusable_answer_to_a_probe_closes_the_breaker() {
        let mut config = novita_policy::PolicyConfig::default();
        config.breaker.failure_threshold = 1;
        let core = core_with(config);
        let mut failing = CallDriver::new(Arc::clone(&core), chat(), Duration::ZERO);
        let _ = send(&mut failing, Duration::ZERO);
        failing.handle_response(503, &NO_HEADERS, b"", clock(Duration::ZERO));
        assert!(matches!(
            core.breaker("primary", Duration::ZERO),
            novita_policy::BreakerState::Open { .. }
        ));
        let later = core.config().breaker.open_for + secs(1);
        let mut probe = CallDriver::new(Arc::clone(&core), chat(), later);
        let _ = send(&mut probe, later);
        let error = Error::Decode {
            what: "chat completion",
            status: 200,
            source: "truncated".into(),
        };
        probe.handle_unusable(200, error, clock(later));
        assert_eq!(
            core.breaker("primary", later),
            novita_policy::BreakerState::Closed
        );
    }
}
