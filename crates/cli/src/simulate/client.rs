//! The shape every strategy takes in the fleet: the sans-IO loop of `novita-core`'s
//! `CallDriver`, which the adapters run.
//!
//! A [`Client`] is what a simulated client keeps across its calls (for `novita`, its
//! `ClientCore`); every call it starts is a [`Call`], a state machine the fleet drives as an
//! adapter drives its driver:
//!
//! ```text
//! loop {
//!     match call.poll(now) {
//!         Step::Send => match call.feed(server.answer(), now + LATENCY) {
//!             Fed::Answered => return success,
//!             Fed::Pending => {}              // poll again
//!         },
//!         Step::Wait(wait) => sleep(wait),
//!         Step::Failed => return failure,
//!     }
//! }
//! ```
//!
//! A call in flight has exactly one request outstanding: [`Call::poll`] is asked again
//! only after that request's answer was fed back, so a retry scheduled with no delay sends
//! once, on that poll, and never twice.

use std::time::Duration;

use super::server::Answer;

/// One simulated client's strategy: its shared state, and a [`Call`] per call.
pub(crate) trait Client {
    /// One call under this strategy.
    type Call: Call;

    /// Starts a call at `now`.
    fn start(&mut self, now: Duration) -> Self::Call;
}

/// One call: asked what to do next, told what each request it sent came to.
pub(crate) trait Call {
    /// What to do at `now`.
    ///
    /// Only asked when the call has no request in flight: at its start, when a wait it
    /// asked for ends, and right after an answer that did not end it was fed back.
    fn poll(&mut self, now: Duration) -> Step;

    /// Feeds back `answer` to the request the last [`Step::Send`] sent, received at `now`.
    fn feed(&mut self, answer: Answer, now: Duration) -> Fed;
}

/// What a call does next, as [`Call::poll`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send a request now, then feed its answer back.
    Send,
    /// Wait this long (backoff, a server hint, pacing), then poll again.
    Wait(Duration),
    /// The call is over without success (given up, or refused before sending).
    Failed,
}

/// What feeding an answer back came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// The call succeeded and is over.
    Answered,
    /// The call goes on: poll it again.
    Pending,
}
