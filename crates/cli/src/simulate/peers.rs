//! The strategies ours is compared with: a no-retry baseline, two hand-written loops and
//! the ecosystem's `backon` and `retry-policies` crates.
//!
//! Each is a sequence of retry delays run by the same small call machine, [`Retrying`],
//! which takes the shape of `novita-core`'s driver: send, then after a failed answer wait
//! the next delay and send again, or fail once the delays run out. None of them reads the
//! server's `Retry-After`, as their users typically do not: neither crate reads responses
//! (backon's `adjust` hook can be wired to a hint by hand, which this comparison does not
//! do).
//!
//! `retry-policies` is the one peer that cannot be replayed exactly: its
//! `ExponentialBackoff` draws jitter from `rand`'s thread RNG and answers with a
//! wall-clock instant, so its row varies a little from run to run.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use retry_policies::policies::ExponentialBackoff;
use retry_policies::{RetryDecision, RetryPolicy};

use super::client::{Call, Client, Fed, Step};
use super::server::Answer;

/// One call of a peer: the delays before its retries, in order, and where it stands.
#[derive(Clone, Debug)]
pub(crate) struct Retrying<D> {
    delays: D,
    stage: Stage,
}

/// Where a peer's call stands between two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Ready to send, no earlier than `not_before`.
    Ready { not_before: Duration },
    /// A request went out; its answer is awaited.
    InFlight,
    /// The delays ran out: the call failed.
    Exhausted,
}

impl<D: Iterator<Item = Duration>> Retrying<D> {
    /// A call started at `now` that retries after each of `delays` in turn.
    pub(crate) fn new(delays: D, now: Duration) -> Self {
        Self {
            delays,
            stage: Stage::Ready { not_before: now },
        }
    }
}

impl<D: Iterator<Item = Duration>> Call for Retrying<D> {
    /// # Panics
    /// When polled with a request in flight: a bug in the fleet, as it is for the driver.
    fn poll(&mut self, now: Duration) -> Step {
        match self.stage {
            Stage::Ready { not_before } if now < not_before => Step::Wait(not_before - now),
            Stage::Ready { .. } => {
                self.stage = Stage::InFlight;
                Step::Send
            }
            Stage::InFlight => panic!("a call was polled with a request in flight"),
            Stage::Exhausted => Step::Failed,
        }
    }

    fn feed(&mut self, answer: Answer, now: Duration) -> Fed {
        debug_assert_eq!(self.stage, Stage::InFlight, "an answer nobody asked for");
        if answer == Answer::Ok {
            return Fed::Answered;
        }
        self.stage = match self.delays.next() {
            Some(delay) => Stage::Ready {
                not_before: now.saturating_add(delay),
            },
            None => Stage::Exhausted,
        };
        Fed::Pending
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

/// One call's walk through a [`Schedule`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScheduleDelays {
    schedule: Schedule,
    /// Retries so far.
    retries: u32,
}

impl Iterator for ScheduleDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.schedule.delay(self.retries)?;
        self.retries += 1;
        Some(delay)
    }
}

impl Client for Schedule {
    type Call = Retrying<ScheduleDelays>;

    fn start(&mut self, now: Duration) -> Self::Call {
        let delays = ScheduleDelays {
            schedule: *self,
            retries: 0,
        };
        Retrying::new(delays, now)
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
    type Call = Retrying<<ExponentialBuilder as BackoffBuilder>::Backoff>;

    fn start(&mut self, now: Duration) -> Self::Call {
        Retrying::new(self.builder.build(), now)
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

/// One call's walk through `retry-policies`' decisions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPoliciesDelays {
    policy: ExponentialBackoff,
    /// Retries so far.
    retries: u32,
}

impl Iterator for RetryPoliciesDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // `ExponentialBackoff` ignores the start time (only its timed variant reads it).
        let asked_at = SystemTime::now();
        match self.policy.should_retry(asked_at, self.retries) {
            RetryDecision::Retry { execute_after } => {
                self.retries += 1;
                Some(
                    execute_after
                        .duration_since(asked_at)
                        .unwrap_or(Duration::ZERO),
                )
            }
            RetryDecision::DoNotRetry => None,
        }
    }
}

impl Client for RetryPoliciesClient {
    type Call = Retrying<RetryPoliciesDelays>;

    fn start(&mut self, now: Duration) -> Self::Call {
        let delays = RetryPoliciesDelays {
            policy: self.policy,
            retries: 0,
        };
        Retrying::new(delays, now)
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
    fn a_schedule_call_walks_its_schedule() {
        let call = Schedule::Exponential.start(Duration::ZERO);
        let walked: Vec<Duration> = call.delays.collect();
        assert_eq!(walked, delays(Schedule::Exponential));
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
    fn retry_policies_stops_after_five_retries_within_its_bounds() {
        let delays: Vec<Duration> = RetryPoliciesClient::new()
            .start(Duration::ZERO)
            .delays
            .collect();
        assert_eq!(delays.len(), 5);
        assert!(delays.iter().all(|delay| *delay <= Duration::from_secs(30)));
    }

    #[test]
    fn a_call_waits_its_delay_then_sends_once() {
        let ms = Duration::from_millis;
        let mut call = Schedule::NaiveFixed.start(Duration::ZERO);
        assert_eq!(call.poll(Duration::ZERO), Step::Send);
        assert_eq!(call.feed(Answer::Unavailable, ms(100)), Fed::Pending);
        assert_eq!(call.poll(ms(100)), Step::Wait(ms(1_000)));
        assert_eq!(call.poll(ms(1_100)), Step::Send);
        assert_eq!(call.feed(Answer::Ok, ms(1_200)), Fed::Answered);
    }

    #[test]
    fn a_zero_delay_retry_sends_on_the_next_poll_only() {
        let mut call = Retrying::new(std::iter::once(Duration::ZERO), Duration::ZERO);
        assert_eq!(call.poll(Duration::ZERO), Step::Send);
        assert_eq!(call.feed(Answer::Unavailable, Duration::ZERO), Fed::Pending);
        assert_eq!(call.poll(Duration::ZERO), Step::Send);
        assert_eq!(call.feed(Answer::Unavailable, Duration::ZERO), Fed::Pending);
        assert_eq!(call.poll(Duration::ZERO), Step::Failed);
    }

    #[test]
    #[should_panic(expected = "in flight")]
    fn polling_with_a_request_in_flight_is_a_bug() {
        let mut call = Schedule::NoRetry.start(Duration::ZERO);
        assert_eq!(call.poll(Duration::ZERO), Step::Send);
        let _ = call.poll(Duration::ZERO);
    }
}
