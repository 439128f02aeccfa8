//! One logical call as an adapter drives it, without the I/O.
//!
//! [`Run`] wraps the policy's [`Call`] with what every adapter needs around it: the model
//! chain, the time spent waiting, the report of a success, the error of a give-up, and the
//! `tracing` events (target `novita`) and metrics of every step. An adapter's loop is then
//! only its own I/O:
//!
//! ```text
//! let mut run = Run::start(&policy, now, delivery, models, streams, key_source, route);
//! loop {
//!     let go = run.admit(&policy, &mut state.lock(), now); // the lock ends here
//!     let (model, delivery) = match go {
//!         Go::Send { model, delivery } => (model, delivery),
//!         Go::Wait(wait) => { sleep(wait); continue }
//!         Go::Stop(error) => return Err(error),
//!     };
//!     match send(model, delivery) {
//!         Ok(answer) => return Ok(Answer { value: answer, report: run.succeeded(..) }),
//!         Err(outcome) => match run.failed(&policy, &mut state, &outcome, clock, draw, source) {
//!             After::Sleep(delay) => sleep(delay),
//!             After::Stop(error) => return Err(error),
//!         },
//!     }
//! }
//! ```

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::adapter::{BoxError, CallError, KeySource, Report};
use crate::{
    Action, Admission, Call, ClientState, Clock, Decision, Delivery, Draw, GiveUp, NO_HEADERS,
    Outcome, Policy,
};

/// The `tracing` target of every event a run emits.
pub const TRACING_TARGET: &str = "novita";

/// Whether the adapter can honour a switch to streaming for this call, by reading the
/// stream and reassembling the answer (chat completions can; other routes cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reassembly {
    /// Chat completions: a switch to streaming is honoured.
    Chat,
    /// Any other route: every attempt stays buffered.
    Unsupported,
}

/// What to do before the next attempt. It owns what it says, so the adapter can release
/// its state lock before acting on it (sleeping while holding the lock would stall every
/// other call of the client).
#[derive(Debug)]
pub enum Go {
    /// Send the attempt now, to this model, asking for this delivery.
    Send {
        /// The model the attempt goes to.
        model: String,
        /// Buffered or streamed.
        delivery: Delivery,
    },
    /// Sleep this long (pacing, or a server hint holding the model), then ask again.
    Wait(Duration),
    /// Stop: the call was refused before sending (open breaker, deadline).
    Stop(CallError),
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub enum After {
    /// Sleep this long, then ask [`Run::admit`] again.
    Sleep(Duration),
    /// Stop with this error.
    Stop(CallError),
}

/// One logical call under the policy. See the module documentation for the loop.
#[derive(Debug)]
pub struct Run {
    call: Call,
    models: Vec<String>,
    requested: Delivery,
    reassembly: Reassembly,
    started: Duration,
    waited: Duration,
    key_source: KeySource,
    span: tracing::Span,
}

impl Run {
    /// Starts a call at `now` that may try `models` (the requested model first, then the
    /// fallbacks; at least one entry, which for calls naming no model is the route).
    #[must_use]
    pub fn start(
        policy: &Policy,
        now: Duration,
        delivery: Delivery,
        models: Vec<String>,
        reassembly: Reassembly,
        key_source: KeySource,
        route: &str,
    ) -> Self {
        #[cfg(feature = "metrics")]
        crate::metrics::describe_once();
        let models = if models.is_empty() {
            vec![route.to_owned()]
        } else {
            models
        };
        let span =
            tracing::info_span!(target: TRACING_TARGET, "novita.call", route, model = %models[0]);
        Self {
            call: policy.start_call(now, delivery, models.len()),
            models,
            requested: delivery,
            reassembly,
            started: now,
            waited: Duration::ZERO,
            key_source,
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

    /// Asks whether the next attempt may go out at `now`, following an open breaker to the
    /// fallback models.
    pub fn admit(&mut self, policy: &Policy, state: &mut ClientState, now: Duration) -> Go {
        loop {
            let model = self.call.model();
            let admission = policy.admit(state, &mut self.call, &self.models[model], now);
            #[cfg(feature = "metrics")]
            crate::metrics::admitted(state, &self.models[model], &admission, now);
            match admission {
                Admission::Send => break,
                Admission::Wait(wait) => {
                    debug!(target: TRACING_TARGET, wait_ms = wait.as_millis(), "pacing");
                    self.waited += wait;
                    return Go::Wait(wait);
                }
                Admission::FallBack { model } => {
                    info!(target: TRACING_TARGET, to = %self.models[model], "circuit open, falling back");
                }
                Admission::Reject(give_up) => {
                    warn!(target: TRACING_TARGET, stop = ?give_up.stop, "call rejected before sending");
                    return Go::Stop(self.stop(give_up, None));
                }
            }
        }
        let delivery = match self.reassembly {
            Reassembly::Chat => self.call.delivery(),
            Reassembly::Unsupported => Delivery::Buffered,
        };
        let model = self.models[self.call.model()].clone();
        debug!(
            target: TRACING_TARGET,
            attempt = self.call.attempts() + 1,
            %model,
            streaming = delivery == Delivery::Streamed,
            "sending"
        );
        Go::Send { model, delivery }
    }

    /// Records a failed attempt (an error status, a transport failure, a broken stream)
    /// and says what follows; `source` is the HTTP client's own error, kept as the cause.
    pub fn failed(
        &mut self,
        policy: &Policy,
        state: &mut ClientState,
        outcome: &Outcome<'_>,
        clock: Clock,
        draw: Draw,
        source: Option<BoxError>,
    ) -> After {
        let model = self.call.model();
        let decision = policy.decide(
            state,
            &mut self.call,
            &self.models[model],
            outcome,
            clock,
            draw,
        );
        #[cfg(feature = "metrics")]
        crate::metrics::decided(state, &self.models[model], outcome, &decision, clock.now);
        match decision {
            Decision::Retry { delay, cause } => {
                info!(target: TRACING_TARGET, %cause, delay_ms = delay.as_millis(), "retrying");
                self.waited += delay;
                After::Sleep(delay)
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
                self.waited += delay;
                After::Sleep(delay)
            }
            Decision::GiveUp(give_up) => {
                warn!(
                    target: TRACING_TARGET,
                    stop = ?give_up.stop,
                    status = ?give_up.status,
                    attempts = give_up.attempts,
                    "giving up"
                );
                After::Stop(self.stop(give_up, source))
            }
            // Adapters hand only failures here (statuses of 400 and above, transport
            // failures, broken streams); a success goes through `succeeded`. Should one
            // arrive anyway, the call stops rather than sending the request again.
            Decision::Done => {
                debug_assert!(false, "Run::failed was given a successful outcome");
                After::Stop(CallError::Decode {
                    what: "response",
                    status: outcome_status(outcome),
                    source: "a successful status was reported as a failure".into(),
                })
            }
        }
    }

    /// Records the successful attempt (status below 400) and returns the call's report.
    pub fn succeeded(
        &mut self,
        policy: &Policy,
        state: &mut ClientState,
        status: u16,
        clock: Clock,
    ) -> Report {
        let model = self.call.model();
        let outcome = Outcome::Response {
            status,
            headers: &NO_HEADERS,
            body: b"",
        };
        let decision = policy.decide(
            state,
            &mut self.call,
            &self.models[model],
            &outcome,
            clock,
            Draw::MIN,
        );
        debug_assert_eq!(decision, Decision::Done);
        #[cfg(feature = "metrics")]
        crate::metrics::decided(state, &self.models[model], &outcome, &decision, clock.now);
        let report = Report {
            model: self.models[model].clone(),
            fell_back_from: (model > 0).then(|| self.models[0].clone()),
            switched_to_streaming: self.reassembly == Reassembly::Chat
                && self.requested == Delivery::Buffered
                && self.call.delivery() == Delivery::Streamed,
            attempts: self.call.attempts(),
            waited: self.waited,
            elapsed: clock.now.saturating_sub(self.started),
        };
        info!(target: TRACING_TARGET, attempts = report.attempts, elapsed_ms = report.elapsed.as_millis(), "done");
        #[cfg(feature = "metrics")]
        crate::metrics::succeeded(&report.model, report.elapsed);
        report
    }

    /// Records a call whose successful response could not be used (malformed JSON, a
    /// stream that broke the protocol), which ends it with `error`.
    #[must_use]
    pub fn unusable(&self, status: u16, now: Duration, error: CallError) -> CallError {
        warn!(target: TRACING_TARGET, status, %error, "unusable response");
        #[cfg(feature = "metrics")]
        crate::metrics::unusable(self.model(), status, now.saturating_sub(self.started));
        #[cfg(not(feature = "metrics"))]
        let _ = (status, now);
        error
    }

    fn stop(&self, give_up: Box<GiveUp>, source: Option<BoxError>) -> CallError {
        let model = self.models[give_up.model.min(self.models.len() - 1)].clone();
        #[cfg(feature = "metrics")]
        crate::metrics::gave_up(&model, &give_up);
        CallError::GaveUp {
            give_up,
            model,
            key_source: self.key_source,
            source,
        }
    }
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

    fn clock(now: Duration) -> Clock {
        Clock {
            now,
            wall: SystemTime::UNIX_EPOCH + now,
        }
    }

    fn run(policy: &Policy, reassembly: Reassembly) -> Run {
        let models = vec!["primary".to_owned(), "fallback".to_owned()];
        Run::start(
            policy,
            Duration::ZERO,
            Delivery::Buffered,
            models,
            reassembly,
            KeySource::Argument,
            "chat/completions",
        )
    }

    #[test]
    fn a_retried_success_reports_attempts_and_waits() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut run = run(&policy, Reassembly::Chat);
        assert!(
            matches!(run.admit(&policy, &mut state, Duration::ZERO), Go::Send { ref model, .. } if model == "primary")
        );
        let outcome = Outcome::Response {
            status: 429,
            headers: &[("retry-after", "2")],
            body: b"",
        };
        let after = run.failed(
            &policy,
            &mut state,
            &outcome,
            clock(Duration::ZERO),
            Draw::HALF,
            None,
        );
        assert!(matches!(after, After::Sleep(delay) if delay == Duration::from_secs(2)));
        assert!(matches!(
            run.admit(&policy, &mut state, Duration::from_secs(2)),
            Go::Send { .. }
        ));
        let report = run.succeeded(&policy, &mut state, 200, clock(Duration::from_secs(3)));
        assert_eq!(report.attempts, 2);
        assert_eq!(report.waited, Duration::from_secs(2));
        assert_eq!(report.elapsed, Duration::from_secs(3));
        assert_eq!(report.model, "primary");
        assert_eq!(report.fell_back_from, None);
    }

    #[test]
    fn a_switch_to_streaming_needs_reassembly() {
        let policy = Policy::default();
        let timeout = Outcome::Response {
            status: 504,
            headers: &NO_HEADERS,
            body: b"",
        };
        for (reassembly, expected) in [
            (Reassembly::Chat, Delivery::Streamed),
            (Reassembly::Unsupported, Delivery::Buffered),
        ] {
            let mut state = policy.client_state();
            let mut run = run(&policy, reassembly);
            let _ = run.admit(&policy, &mut state, Duration::ZERO);
            let _ = run.failed(
                &policy,
                &mut state,
                &timeout,
                clock(Duration::ZERO),
                Draw::MIN,
                None,
            );
            match run.admit(&policy, &mut state, Duration::from_secs(1)) {
                Go::Send { delivery, .. } => assert_eq!(delivery, expected, "{reassembly:?}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_fallback_answer_says_where_it_came_from() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut run = run(&policy, Reassembly::Chat);
        let _ = run.admit(&policy, &mut state, Duration::ZERO);
        let maintenance = br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE"}"#;
        let outcome = Outcome::Response {
            status: 500,
            headers: &NO_HEADERS,
            body: maintenance,
        };
        let _ = run.failed(
            &policy,
            &mut state,
            &outcome,
            clock(Duration::ZERO),
            Draw::MIN,
            None,
        );
        assert!(
            matches!(run.admit(&policy, &mut state, Duration::ZERO), Go::Send { ref model, .. } if model == "fallback")
        );
        let report = run.succeeded(&policy, &mut state, 200, clock(Duration::ZERO));
        assert_eq!(report.fell_back_from.as_deref(), Some("primary"));
        assert_eq!(report.model, "fallback");
    }

    #[test]
    fn a_give_up_names_the_model_and_the_key_source() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut run = run(&policy, Reassembly::Chat);
        let _ = run.admit(&policy, &mut state, Duration::ZERO);
        let outcome = Outcome::Response {
            status: 401,
            headers: &NO_HEADERS,
            body: b"",
        };
        let After::Stop(error) = run.failed(
            &policy,
            &mut state,
            &outcome,
            clock(Duration::ZERO),
            Draw::MIN,
            None,
        ) else {
            panic!("a 401 stops");
        };
        assert!(
            matches!(&error, CallError::GaveUp { model, key_source: KeySource::Argument, .. } if model == "primary")
        );
        assert!(
            error
                .to_string()
                .contains("the key passed to the client builder"),
            "{error}"
        );
    }
}
