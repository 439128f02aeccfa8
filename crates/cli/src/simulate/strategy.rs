//! The retry strategies under comparison, each behind the same small [`Client`] trait.
//!
//! Every client of a run owns one strategy instance, and every call of that client gets
//! its per-call state from it. Only `novita` reads the server's `Retry-After`; the others
//! ignore it, as their users typically do: neither crate reads responses (backon's
//! `adjust` hook can be wired to a hint by hand, which this comparison does not do).
//!
//! `retry-policies` is the one peer that cannot be replayed exactly: its
//! `ExponentialBackoff` draws jitter from `rand`'s thread RNG and answers with a
//! wall-clock instant, so its row varies a little from run to run.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use novita_policy::{
    Admission, Call, ClientState, Clock, Decision, Delivery, Outcome, Policy, PolicyConfig,
    SplitMix64,
};
use retry_policies::policies::ExponentialBackoff;
use retry_policies::{RetryDecision, RetryPolicy};

use super::fleet::{self, Tally, Workload};
use super::scenario::Scenario;
use super::server::Answer;

/// A retry strategy, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Strategy {
    /// Our policy: `PolicyConfig::default()` with a 120 s deadline.
    Novita,
    /// One attempt per call: the load the fleet causes without retrying.
    NoRetry,
    /// Retry every second, up to 10 times, ignoring hints.
    NaiveFixed,
    /// 0.5 s doubling to a 30 s cap, no jitter, up to 5 retries, ignoring hints.
    Exponential,
    /// The `backon` crate: exponential from 0.5 s to 30 s with its jitter, up to 5 retries.
    Backon,
    /// The `retry-policies` crate: exponential from 0.5 s to 30 s with full jitter, up to 5
    /// retries.
    RetryPolicies,
}

impl Strategy {
    /// Every strategy, in report order (ours first, then the baseline).
    pub(crate) const ALL: [Strategy; 6] = [
        Strategy::Novita,
        Strategy::NoRetry,
        Strategy::NaiveFixed,
        Strategy::Exponential,
        Strategy::Backon,
        Strategy::RetryPolicies,
    ];

    /// The name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Strategy::Novita => "novita",
            Strategy::NoRetry => "no-retry",
            Strategy::NaiveFixed => "naive-fixed",
            Strategy::Exponential => "exponential",
            Strategy::Backon => "backon",
            Strategy::RetryPolicies => "retry-policies",
        }
    }
}

/// Runs `scenario` with every client of `workload` using `strategy`.
pub(crate) fn run(strategy: Strategy, scenario: Scenario, workload: &Workload, seed: u64) -> Tally {
    match strategy {
        Strategy::Novita => {
            let policy = novita_policy();
            fleet::run(scenario, workload, seed, |client| {
                NovitaClient::new(policy.clone(), fleet::client_seed(seed, client))
            })
        }
        Strategy::NoRetry => fleet::run(scenario, workload, seed, |_| Schedule::NoRetry),
        Strategy::NaiveFixed => fleet::run(scenario, workload, seed, |_| Schedule::NaiveFixed),
        Strategy::Exponential => fleet::run(scenario, workload, seed, |_| Schedule::Exponential),
        Strategy::Backon => fleet::run(scenario, workload, seed, |client| {
            BackonClient::new(seed ^ client as u64)
        }),
        Strategy::RetryPolicies => {
            fleet::run(scenario, workload, seed, |_| RetryPoliciesClient::new())
        }
    }
}

/// May an attempt go out now?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send at once.
    Send,
    /// Not yet: ask again after this long.
    Wait(Duration),
    /// Do not send: the call fails without reaching the server.
    Refuse,
}

/// What follows an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The call is over (it succeeded, or it failed in a way nobody retries).
    Done,
    /// Attempt again after `delay`.
    Retry {
        /// How long to wait first.
        delay: Duration,
    },
    /// The call failed and will not be retried.
    GiveUp,
}

/// One client's retry strategy: its shared state, and per call a [`Client::Call`].
pub(crate) trait Client {
    /// What the strategy remembers about one call.
    type Call;

    /// Starts a call at `now`.
    fn start_call(&mut self, now: Duration) -> Self::Call;

    /// Whether the next attempt of `call` may go out at `now`. Default: at once.
    fn admit(&mut self, _call: &mut Self::Call, _now: Duration) -> Gate {
        Gate::Send
    }

    /// What follows `answer`, received at `now`.
    fn on_answer(&mut self, call: &mut Self::Call, answer: Answer, now: Duration) -> Next;
}

/// The one model every call goes to.
const MODEL: &str = "simulated-model";

/// Our policy as the simulation runs it: the defaults, with a 120 s deadline.
fn novita_policy() -> Policy {
    let mut config = PolicyConfig::default();
    config.deadline = Some(Duration::from_secs(120));
    Policy::new(config)
}

/// A client using `novita-policy`: one [`ClientState`] (retry budget, breaker, pacing)
/// shared by its calls, and its own seeded random stream.
#[derive(Debug)]
pub(crate) struct NovitaClient {
    policy: Policy,
    state: ClientState,
    rng: SplitMix64,
}

impl NovitaClient {
    /// A client with fresh state, drawing from `seed`.
    pub(crate) fn new(policy: Policy, seed: u64) -> Self {
        let state = policy.client_state();
        Self {
            policy,
            state,
            rng: SplitMix64::new(seed),
        }
    }
}

impl Client for NovitaClient {
    type Call = Call;

    fn start_call(&mut self, now: Duration) -> Call {
        self.policy.start_call(now, Delivery::Buffered, 1)
    }

    /// As the adapters do: send, or wait and ask again (a hint that arrives meanwhile still
    /// counts), or give up when the policy rejects the call.
    fn admit(&mut self, call: &mut Call, now: Duration) -> Gate {
        loop {
            match self.policy.admit(&mut self.state, call, MODEL, now) {
                Admission::Send => return Gate::Send,
                Admission::Wait(wait) => return Gate::Wait(wait),
                // The call moved to its next model; with one model this never happens, and
                // each fallback moves the call on, so the loop ends.
                Admission::FallBack { .. } => {}
                Admission::Reject(_) => return Gate::Refuse,
            }
        }
    }

    fn on_answer(&mut self, call: &mut Call, answer: Answer, now: Duration) -> Next {
        let retry_after = answer.retry_after().map(|wait| wait.as_secs().to_string());
        let headers: Vec<(&str, &str)> = retry_after
            .as_deref()
            .map(|value| ("retry-after", value))
            .into_iter()
            .collect();
        let outcome = Outcome::Response {
            status: answer.status(),
            headers: &headers,
            body: b"",
        };
        let clock = Clock {
            now,
            wall: SystemTime::UNIX_EPOCH + now,
        };
        let draw = self.rng.draw();
        match self
            .policy
            .decide(&mut self.state, call, MODEL, &outcome, clock, draw)
        {
            Decision::Done => Next::Done,
            // Fallback cannot happen with one model; switching to streaming and pacing
            // change nothing this server sees, so every escalation is a retry here.
            Decision::Retry { delay, .. } | Decision::Escalate { delay, .. } => {
                Next::Retry { delay }
            }
            Decision::GiveUp(_) => Next::GiveUp,
        }
    }
}

/// The hand-written loops: a fixed schedule of delays that ignores the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Never retry.
    NoRetry,
    /// 1 s between attempts, up to 10 retries.
    NaiveFixed,
    /// 0.5 s × 2^n, capped at 30 s, no jitter, up to 5 retries.
    Exponential,
}

impl Schedule {
    /// The delay before retry number `retry` (0 for the first), or `None` to stop.
    fn delay(self, retry: u32) -> Option<Duration> {
        match self {
            Schedule::NoRetry => None,
            Schedule::NaiveFixed => (retry < 10).then_some(Duration::from_secs(1)),
            Schedule::Exponential => (retry < 5).then(|| {
                let exponential = Duration::from_millis(500).saturating_mul(1 << retry.min(16));
                exponential.min(Duration::from_secs(30))
            }),
        }
    }
}

impl Client for Schedule {
    /// Retries so far.
    type Call = u32;

    fn start_call(&mut self, _now: Duration) -> u32 {
        0
    }

    fn on_answer(&mut self, retries: &mut u32, answer: Answer, _now: Duration) -> Next {
        if answer == Answer::Ok {
            return Next::Done;
        }
        match self.delay(*retries) {
            Some(delay) => {
                *retries += 1;
                Next::Retry { delay }
            }
            None => Next::GiveUp,
        }
    }
}

/// A client using `backon`: one backoff iterator per call, built from a builder seeded
/// with `seed ^ client` (so every call of a client replays the same jitter sequence, as
/// it would in a program that builds its builder once).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackonClient {
    builder: ExponentialBuilder,
}

impl BackonClient {
    /// A client whose backoffs draw their jitter from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(5)
            .with_jitter()
            .with_jitter_seed(seed);
        Self { builder }
    }
}

impl Client for BackonClient {
    type Call = <ExponentialBuilder as BackoffBuilder>::Backoff;

    fn start_call(&mut self, _now: Duration) -> Self::Call {
        self.builder.build()
    }

    fn on_answer(&mut self, backoff: &mut Self::Call, answer: Answer, _now: Duration) -> Next {
        if answer == Answer::Ok {
            return Next::Done;
        }
        match backoff.next() {
            Some(delay) => Next::Retry { delay },
            None => Next::GiveUp,
        }
    }
}

/// A client using `retry-policies`.
///
/// Not reproducible: `ExponentialBackoff::should_retry` draws its jitter from `rand`'s
/// thread RNG (no seed can be passed) and answers with `execute_after`, a wall-clock
/// instant computed from `SystemTime::now()`. The delay is recovered by subtracting the
/// real time read just before asking, which overstates it by the nanoseconds between the
/// two clock reads and never comes out negative.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPoliciesClient {
    policy: ExponentialBackoff,
}

impl RetryPoliciesClient {
    /// A client with the comparison's settings.
    pub(crate) fn new() -> Self {
        let policy = ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(500), Duration::from_secs(30))
            .jitter(retry_policies::Jitter::Full)
            .build_with_max_retries(5);
        Self { policy }
    }
}

impl Client for RetryPoliciesClient {
    /// Retries so far.
    type Call = u32;

    fn start_call(&mut self, _now: Duration) -> u32 {
        0
    }

    fn on_answer(&mut self, retries: &mut u32, answer: Answer, _now: Duration) -> Next {
        if answer == Answer::Ok {
            return Next::Done;
        }
        // `ExponentialBackoff` ignores the start time (only its timed variant reads it).
        let asked_at = SystemTime::now();
        match self.policy.should_retry(asked_at, *retries) {
            RetryDecision::Retry { execute_after } => {
                *retries += 1;
                let delay = execute_after
                    .duration_since(asked_at)
                    .unwrap_or(Duration::ZERO);
                Next::Retry { delay }
            }
            RetryDecision::DoNotRetry => Next::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(schedule: Schedule) -> Vec<Duration> {
        (0..).map_while(|retry| schedule.delay(retry)).collect()
    }

    #[test]
    fn the_hand_written_schedules_are_as_described() {
        assert!(delays(Schedule::NoRetry).is_empty());
        assert_eq!(
            delays(Schedule::NaiveFixed),
            vec![Duration::from_secs(1); 10]
        );
        let millis: Vec<u128> = delays(Schedule::Exponential)
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(millis, [500, 1_000, 2_000, 4_000, 8_000]);
    }

    #[test]
    fn backon_replays_its_seeded_jitter() {
        let client = BackonClient::new(7);
        let first: Vec<Duration> = client.builder.build().collect();
        let second: Vec<Duration> = client.builder.build().collect();
        assert_eq!(first.len(), 5);
        assert_eq!(first, second);
        assert!(first[0] >= Duration::from_millis(500) && first[0] < Duration::from_secs(1));
    }

    #[test]
    fn novita_waits_exactly_as_long_as_a_429_asks() {
        let mut client = NovitaClient::new(novita_policy(), 1);
        let mut call = client.start_call(Duration::ZERO);
        let next = client.on_answer(
            &mut call,
            Answer::Throttled { retry_after: 1 },
            Duration::from_millis(100),
        );
        assert_eq!(
            next,
            Next::Retry {
                delay: Duration::from_secs(1)
            }
        );
    }
}
