//! Proactive per-model rate limits: requests and tokens per minute, kept by GCRA.
//!
//! Novita limits each account's requests per minute (RPM) and tokens per minute (TPM) per
//! model. The reactive policy honours the 429s that enforce them; when the limits are known
//! ([`PolicyConfig::limits`](crate::PolicyConfig::limits)), this module keeps a client from
//! crossing them in the first place, so [`Policy::admit`](crate::Policy::admit) makes a call
//! wait rather than provoke the 429.
//!
//! # GCRA
//!
//! The generic cell rate algorithm comes from ATM networks (the ATM Forum's Traffic
//! Management specification and ITU-T I.371, which police a cell stream against a peak
//! rate with a delay-variation tolerance). Brandur Leach's "Rate limiting, cells, and
//! GCRA" and the `redis-cell` Redis module made it the usual choice for API limits, and the
//! `governor` crate implements it for Rust. It is a token bucket in disguise, kept as one
//! number:
//!
//! - Each unit (a request, or a token) has an **emission interval** `T = 60 s / limit`.
//! - The state is the **theoretical arrival time** `TAT`: when the units admitted so far
//!   would have finished arriving at exactly the limit's pace.
//! - A call costing `n` units adds `n·T` to the TAT (from `now` if the TAT is in the past).
//!   It conforms, and may go, when the new TAT is at most `now + τ`, the **tolerance**:
//!   how far ahead of the steady pace a client may run. So a call may go at
//!   `allowed_at = TAT + n·T − τ` (never before `now`).
//!
//! Why it suits a client-side limiter shared by many calls (and, later, many processes):
//! the whole state is **one timestamp per model and per dimension** (no counters, no
//! windows, no timers to refill a bucket), the arithmetic is **exact** (integer
//! nanoseconds, emission intervals rounded up so rounding never lets a unit too many
//! through), and the **burst** is the tolerance, one setting. The decision is a pure
//! function, `(TAT, now, cost, limit) → (allowed_at, new TAT)` ([`Gcra::verdict`]), so a
//! shared store only has to run the same arithmetic atomically on one value per key.
//!
//! Two choices beyond the textbook:
//!
//! - **A call dearer than the tolerance** (a 6,000-token prompt under a one-second
//!   tolerance of 1,667 tokens) could never conform. It goes when the TAT has caught up with
//!   `now` (the bucket is full) and its cost holds back the calls after it: large calls are
//!   served, one at a time, at the limit's pace.
//! - **A bounded debt.** No call adds more than one period (one minute) to the TAT, and a
//!   correction never pushes it further than a period and the tolerance past `now`, so no
//!   wait the limiter asks for is longer than about two minutes, whatever the estimates.
//!
//! # The burst (tolerance)
//!
//! [`ModelLimits::burst`] is the tolerance as a duration: the limiter lets a client run
//! that far ahead of the steady pace, so an idle client may start `limit × burst / 60 s`
//! units at once. Over any sliding minute, GCRA lets through at most
//! `limit + ⌈burst / T⌉ − 1` units (plus the excess of one call dearer than the tolerance).
//!
//! The default is **one second**: an idle client may send one second's allowance at once
//! (one call at once up to 60 RPM, where calls are then spaced exactly `60 s / rpm`
//! apart and no minute ever sees more than `rpm` of them; ten at 600 RPM). It is small on
//! purpose: the limiter's only job is to avoid 429s, and
//! - a burst of a full minute's allowance (what `governor`'s `Quota::per_minute` does)
//!   lets through up to twice the limit in a sliding minute, which a server counting
//!   sliding windows answers with 429s;
//! - OpenAI documents that its per-minute limits are enforced over shorter periods
//!   ("60,000 requests/minute may be enforced as 1,000 requests/second"), and Novita does
//!   not document how it counts; a one-second tolerance stays within a per-second
//!   enforcement of the same limit.
//!
//! A user who knows the server counts fixed minutes may raise it up to `60s`.
//!
//! # Estimates and corrections
//!
//! A call's tokens are not known before its answer, so the caller charges an estimate
//! (the prompt's size and the most the answer may take, see
//! [`Call::with_estimated_tokens`](crate::Call::with_estimated_tokens)) when the attempt is
//! admitted, and corrects the TAT by the difference once `usage` says how many it took
//! ([`ClientState::correct_tokens`](crate::ClientState::correct_tokens)). Every admitted
//! attempt is charged, failed ones included: a conservative count, since a server that
//! counted the failed attempt's tokens would otherwise see more than the limiter allowed.

use std::time::Duration;

use novita_catalog::RateLimit;
use serde::{Deserialize, Serialize};

/// The window every limit is counted over.
pub const PERIOD: Duration = Duration::from_secs(60);

/// The default tolerance: one second's allowance (see the module documentation).
pub const DEFAULT_BURST: Duration = Duration::from_secs(1);

/// The largest `rpm` a configuration may set.
pub const MAX_RPM: u64 = 10_000_000;
/// The largest `tpm` a configuration may set.
pub const MAX_TPM: u64 = 10_000_000_000;

/// The limits of one model, as configured under `[limits."model-name"]`.
///
/// ```
/// use std::time::Duration;
/// use novita_policy::ModelLimits;
///
/// let limits = ModelLimits::new(Some(60), Some(100_000));
/// assert_eq!(limits.burst, Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelLimits {
    /// Requests per minute; `None`: not limited. From 1 to 10,000,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt and answer); `None`: not limited. From 1 to
    /// 10,000,000,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// How far ahead of the steady pace calls may run (GCRA's tolerance): an idle client
    /// may start `limit × burst / 60 s` units at once. Default 1 s; from 0 to 60 s.
    #[serde(with = "humantime_serde")]
    pub burst: Duration,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            rpm: None,
            tpm: None,
            burst: DEFAULT_BURST,
        }
    }
}

impl ModelLimits {
    /// Limits of `rpm` requests and `tpm` tokens per minute, with the default burst.
    #[must_use]
    pub fn new(rpm: Option<u64>, tpm: Option<u64>) -> Self {
        Self {
            rpm,
            tpm,
            burst: DEFAULT_BURST,
        }
    }

    /// The same limits with this burst (tolerance).
    #[must_use]
    pub fn with_burst(mut self, burst: Duration) -> Self {
        self.burst = burst;
        self
    }

    /// The requests-per-minute limiter, if `rpm` is set.
    #[must_use]
    pub fn requests(&self) -> Option<Gcra> {
        self.rpm.map(|rpm| Gcra::per_minute(rpm, self.burst))
    }

    /// The tokens-per-minute limiter, if `tpm` is set.
    #[must_use]
    pub fn tokens(&self) -> Option<Gcra> {
        self.tpm.map(|tpm| Gcra::per_minute(tpm, self.burst))
    }

    /// The first range this breaks: the key below `[limits."model"]` and the problem.
    pub(crate) fn broken_rule(&self) -> Option<(&'static str, &'static str)> {
        if self.rpm.is_none() && self.tpm.is_none() {
            return Some((
                "rpm",
                "must be set, or tpm (a limit without either does nothing)",
            ));
        }
        if self.rpm.is_some_and(|rpm| rpm == 0 || rpm > MAX_RPM) {
            return Some(("rpm", "must be between 1 and 10000000 requests a minute"));
        }
        if self.tpm.is_some_and(|tpm| tpm == 0 || tpm > MAX_TPM) {
            return Some(("tpm", "must be between 1 and 10000000000 tokens a minute"));
        }
        if self.burst > PERIOD {
            return Some(("burst", "must be at most 60s"));
        }
        None
    }
}

/// One GCRA limiter: `limit` units per [`PERIOD`], with a tolerance. Holds no state: the
/// state is the TAT its caller keeps (one [`Duration`] per model and dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    limit: u64,
    tolerance: Duration,
}

/// What [`Gcra::verdict`] says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The earliest time the call may go; at most `now` when it may go now.
    pub allowed_at: Duration,
    /// The TAT once the call goes at `max(now, allowed_at)`.
    pub new_tat: Duration,
}

impl Verdict {
    /// How long to wait from `now`; zero when the call may go now.
    #[must_use]
    pub fn wait(&self, now: Duration) -> Duration {
        self.allowed_at.saturating_sub(now)
    }
}

impl Gcra {
    /// `limit` units per minute (at least 1 is used), with `tolerance` (at most a
    /// [`PERIOD`] is used).
    #[must_use]
    pub fn per_minute(limit: u64, tolerance: Duration) -> Self {
        Self {
            limit: limit.max(1),
            tolerance: tolerance.min(PERIOD),
        }
    }

    /// How far ahead of the steady pace calls may run.
    #[must_use]
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The time `cost` units take at the limit's pace (`cost × 60 s / limit`), rounded up
    /// to the nanosecond and at most one [`PERIOD`].
    #[must_use]
    pub fn increment(&self, cost: u64) -> Duration {
        let period = PERIOD.as_nanos();
        let nanos = u128::from(cost)
            .saturating_mul(period)
            .div_ceil(u128::from(self.limit))
            .min(period);
        // At most a minute's nanoseconds, so it fits.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The pure GCRA step: when a call costing `cost` units may go, given the TAT `tat`,
    /// and the TAT after it goes. Nothing changes until the caller stores `new_tat`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use novita_policy::limits::Gcra;
    ///
    /// // 60 requests a minute, no burst beyond one: one a second.
    /// let gcra = Gcra::per_minute(60, Duration::ZERO);
    /// let first = gcra.verdict(Duration::ZERO, Duration::ZERO, 1);
    /// assert_eq!(first.wait(Duration::ZERO), Duration::ZERO);
    /// let second = gcra.verdict(first.new_tat, Duration::ZERO, 1);
    /// assert_eq!(second.wait(Duration::ZERO), Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn verdict(&self, tat: Duration, now: Duration, cost: u64) -> Verdict {
        step(tat, now, self.increment(cost), self.tolerance)
    }

    /// The TAT after a call charged `estimated` units turned out to cost `actual`: moved
    /// by the difference, never below `now` (unused allowance does not carry into the
    /// past) and never beyond `now + PERIOD + tolerance` (the debt stays bounded).
    #[must_use]
    pub fn correct(&self, tat: Duration, now: Duration, estimated: u64, actual: u64) -> Duration {
        shift(
            tat,
            now,
            self.increment(estimated.abs_diff(actual)),
            actual < estimated,
            PERIOD.saturating_add(self.tolerance),
        )
    }
}

/// The GCRA step for a call whose units take `increment` at the limit's pace, under
/// `tolerance` (what [`Gcra::verdict`] computes from a limit and a cost): a call dearer than
/// the tolerance goes once the TAT has caught up with `now`. A shared store runs the same
/// step on increments its clients computed.
#[must_use]
pub fn step(tat: Duration, now: Duration, increment: Duration, tolerance: Duration) -> Verdict {
    let ahead = tolerance.saturating_sub(increment);
    Verdict {
        allowed_at: tat.saturating_sub(ahead),
        new_tat: tat.max(now).saturating_add(increment),
    }
}

/// The TAT `tat` moved by `by` (earlier when `back`), never below `now` (unused allowance
/// does not carry into the past) and never beyond `max(tat, now + ceiling)` (the debt stays
/// bounded): [`Gcra::correct`]'s move, for a store that is told the amounts.
#[must_use]
pub fn shift(
    tat: Duration,
    now: Duration,
    by: Duration,
    back: bool,
    ceiling: Duration,
) -> Duration {
    let moved = if back {
        tat.saturating_sub(by)
    } else {
        tat.saturating_add(by)
    };
    moved.max(now).min(now.saturating_add(ceiling).max(tat))
}

/// The TATs of one model: one per dimension. `Duration::ZERO` is "idle since the origin".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tats {
    pub(crate) requests: Duration,
    pub(crate) tokens: Duration,
}

impl Tats {
    /// How long a call costing `tokens` must wait under `limits` at `now`, and the
    /// dimension that holds it longest; `None` when it may go now.
    pub(crate) fn wait(
        &self,
        limits: &ModelLimits,
        tokens: u64,
        now: Duration,
    ) -> Option<(RateLimit, Duration)> {
        let requests = limits.requests().map_or(Duration::ZERO, |gcra| {
            gcra.verdict(self.requests, now, 1).wait(now)
        });
        let token_wait = limits.tokens().map_or(Duration::ZERO, |gcra| {
            gcra.verdict(self.tokens, now, tokens).wait(now)
        });
        if requests.is_zero() && token_wait.is_zero() {
            None
        } else if token_wait > requests {
            Some((RateLimit::TokensPerMinute, token_wait))
        } else {
            Some((RateLimit::RequestsPerMinute, requests))
        }
    }

    /// Charges one request and `tokens` tokens at `now` (the call goes now).
    pub(crate) fn charge(&mut self, limits: &ModelLimits, tokens: u64, now: Duration) {
        if let Some(gcra) = limits.requests() {
            self.requests = gcra.verdict(self.requests, now, 1).new_tat;
        }
        if let Some(gcra) = limits.tokens() {
            self.tokens = gcra.verdict(self.tokens, now, tokens).new_tat;
        }
    }

    /// Corrects the token TAT from an estimate to the actual count.
    pub(crate) fn correct(
        &mut self,
        limits: &ModelLimits,
        estimated: u64,
        actual: u64,
        now: Duration,
    ) {
        if let Some(gcra) = limits.tokens() {
            self.tokens = gcra.correct(self.tokens, now, estimated, actual);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: Duration = Duration::ZERO;

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// Sends as soon as allowed, `calls` times, and returns the send times.
    fn schedule(gcra: Gcra, cost: u64, calls: usize) -> Vec<Duration> {
        let (mut tat, mut now, mut sent) = (ZERO, ZERO, Vec::new());
        for _ in 0..calls {
            let verdict = gcra.verdict(tat, now, cost);
            now += verdict.wait(now);
            let verdict = gcra.verdict(tat, now, cost);
            assert_eq!(verdict.wait(now), ZERO, "allowed once waited");
            tat = verdict.new_tat;
            sent.push(now);
        }
        sent
    }

    /// The most sends in any half-open window of `width`.
    fn most_in_any_window(sent: &[Duration], width: Duration) -> usize {
        sent.iter()
            .map(|&start| {
                sent.iter()
                    .filter(|&&at| at >= start && at < start + width)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn exactly_the_limit_in_any_minute_with_the_smallest_burst() {
        for rpm in [1, 7, 60] {
            let sent = schedule(Gcra::per_minute(rpm, ZERO), 1, 3 * rpm as usize);
            assert_eq!(most_in_any_window(&sent, PERIOD), rpm as usize, "{rpm}");
            // Evenly spaced, rounded up: never a unit early.
            let interval = Gcra::per_minute(rpm, ZERO).increment(1);
            assert!(interval.as_nanos() * u128::from(rpm) >= PERIOD.as_nanos());
            for pair in sent.windows(2) {
                assert_eq!(pair[1] - pair[0], interval, "{rpm}");
            }
        }
        // The default one-second burst is the same below 60 RPM.
        let sent = schedule(Gcra::per_minute(30, DEFAULT_BURST), 1, 90);
        assert_eq!(most_in_any_window(&sent, PERIOD), 30);
    }

    #[test]
    fn a_burst_lets_an_idle_client_run_ahead_then_paces_it() {
        // 600 RPM (one per 100 ms) with a one-second burst: ten at once, then one per 100 ms.
        let gcra = Gcra::per_minute(600, secs(1));
        let sent = schedule(gcra, 1, 20);
        assert!(sent[..10].iter().all(|&at| at == ZERO), "{sent:?}");
        assert_eq!(sent[10], Duration::from_millis(100));
        assert_eq!(sent[19], Duration::from_millis(1000));
        // The documented bound: limit + ceil(burst / T) - 1 in any sliding minute.
        let sent = schedule(gcra, 1, 2000);
        assert_eq!(most_in_any_window(&sent, PERIOD), 600 + 10 - 1);

        // A full minute's burst: the whole allowance at once.
        let sent = schedule(Gcra::per_minute(6, PERIOD), 1, 7);
        assert!(sent[..6].iter().all(|&at| at == ZERO), "{sent:?}");
        assert_eq!(sent[6], secs(10));
    }

    #[test]
    fn tokens_are_paced_by_their_cost() {
        // 6,000 tokens a minute is 10 ms a token; a 1,000-token call holds 10 s.
        let gcra = Gcra::per_minute(6_000, secs(10));
        let first = gcra.verdict(ZERO, ZERO, 1_000);
        assert_eq!((first.allowed_at, first.new_tat), (ZERO, secs(10)));
        let second = gcra.verdict(first.new_tat, ZERO, 500);
        assert_eq!(
            second.wait(ZERO),
            secs(5),
            "TAT 10 s + 5 s - tolerance 10 s"
        );
        assert_eq!(second.new_tat, secs(15));
        // A call dearer than the tolerance goes once the TAT has caught up.
        let big = gcra.verdict(first.new_tat, ZERO, 3_000);
        assert_eq!((big.wait(ZERO), big.new_tat), (secs(10), secs(40)));
        let idle = gcra.verdict(ZERO, secs(100), 3_000);
        assert_eq!((idle.wait(secs(100)), idle.new_tat), (ZERO, secs(130)));
    }

    #[test]
    fn corrections_move_the_tat_by_the_difference_never_below_now() {
        let gcra = Gcra::per_minute(6_000, ZERO);
        let tat = gcra.verdict(ZERO, ZERO, 1_000).new_tat;
        assert_eq!(tat, secs(10));
        assert_eq!(gcra.correct(tat, ZERO, 1_000, 1_500), secs(15));
        assert_eq!(gcra.correct(tat, ZERO, 1_000, 400), secs(4));
        assert_eq!(gcra.correct(tat, ZERO, 1_000, 1_000), tat);
        // Used far less than estimated, corrected late: never below now.
        assert_eq!(gcra.correct(tat, secs(8), 1_000, 0), secs(8));
        // Far more: the debt stays within a period (plus the tolerance) from now.
        assert_eq!(gcra.correct(tat, ZERO, 0, u64::MAX), PERIOD);
        // A TAT already further ahead is neither pushed further nor pulled back.
        assert_eq!(gcra.correct(secs(100), ZERO, 0, 1), secs(100));
    }

    #[test]
    fn huge_values_saturate_without_panicking() {
        for limit in [0, 1, MAX_RPM, MAX_TPM, u64::MAX] {
            for tolerance in [ZERO, secs(1), PERIOD, Duration::MAX] {
                let gcra = Gcra::per_minute(limit, tolerance);
                for cost in [0, 1, u64::MAX] {
                    assert!(gcra.increment(cost) <= PERIOD);
                    for tat in [ZERO, secs(5), Duration::MAX] {
                        for now in [ZERO, secs(3), Duration::MAX] {
                            let verdict = gcra.verdict(tat, now, cost);
                            assert!(verdict.new_tat >= verdict.allowed_at.min(now));
                            let _ = gcra.correct(tat, now, cost, 0);
                            let _ = gcra.correct(tat, now, 0, cost);
                        }
                    }
                }
            }
        }
        // The most a single call holds the next back is one period.
        let gcra = Gcra::per_minute(1, ZERO);
        let verdict = gcra.verdict(ZERO, ZERO, u64::MAX);
        assert_eq!(verdict.new_tat, PERIOD);
        assert_eq!(gcra.verdict(verdict.new_tat, ZERO, 1).wait(ZERO), PERIOD);
        // A zero-cost call is never held by the tokens it did not ask for, once idle.
        assert_eq!(gcra.verdict(ZERO, secs(1), 0).wait(secs(1)), ZERO);
    }

    fn limited(rpm: Option<u64>, tpm: Option<u64>, deadline: u64) -> crate::Policy {
        let limits = [("m".to_owned(), ModelLimits::new(rpm, tpm))].into();
        crate::Policy::new(crate::PolicyConfig {
            deadline: Some(secs(deadline)),
            limits,
            ..crate::PolicyConfig::default()
        })
    }

    fn admit(
        policy: &crate::Policy,
        state: &mut crate::ClientState,
        call: &mut crate::Call,
        key: &str,
        now: Duration,
    ) -> crate::Admission {
        policy.admit(state, call, key, now)
    }

    #[test]
    fn admit_holds_a_second_call_inside_the_rpm_interval_exactly() {
        use crate::{Admission, Delivery};
        let policy = limited(Some(20), None, 300);
        let mut state = policy.client_state();
        let start = secs(100);
        let mut first = policy.start_call(start, Delivery::Buffered, 1);
        assert_eq!(
            admit(&policy, &mut state, &mut first, "m", start),
            Admission::Send
        );
        let mut second = policy.start_call(start + secs(1), Delivery::Buffered, 1);
        // 20 RPM: one every 3 s.
        let at = start + secs(1);
        assert_eq!(
            admit(&policy, &mut state, &mut second, "m", at),
            Admission::Wait(secs(2))
        );
        assert_eq!(
            admit(&policy, &mut state, &mut second, "m", at),
            Admission::Wait(secs(2)),
            "a wait reserves nothing"
        );
        assert_eq!(
            state.limit_wait("m", 0, at),
            Some((RateLimit::RequestsPerMinute, secs(2)))
        );
        assert_eq!(
            admit(&policy, &mut state, &mut second, "m", start + secs(3)),
            Admission::Send
        );
        // Other models are not limited.
        let mut other = policy.start_call(at, Delivery::Buffered, 1);
        assert_eq!(
            admit(&policy, &mut state, &mut other, "other", at),
            Admission::Send
        );
        assert_eq!(state.limit_wait("other", 0, at), None);
    }

    #[test]
    fn admit_charges_estimated_tokens_and_corrects_them() {
        use crate::{Admission, Delivery};
        // 6,000 TPM (10 ms a token), one-second burst (100 tokens).
        let policy = limited(None, Some(6_000), 300);
        let mut state = policy.client_state();
        let now = secs(100);
        let mut first = policy
            .start_call(now, Delivery::Buffered, 1)
            .with_estimated_tokens(1_000);
        assert_eq!(first.estimated_tokens(), 1_000);
        assert_eq!(
            admit(&policy, &mut state, &mut first, "m", now),
            Admission::Send
        );
        // The next 100 tokens fit once the TAT (now + 10 s) is within the burst.
        let mut second = policy
            .start_call(now, Delivery::Buffered, 1)
            .with_estimated_tokens(100);
        assert_eq!(
            admit(&policy, &mut state, &mut second, "m", now),
            Admission::Wait(secs(10))
        );
        // The answer used 400 tokens, not 1,000: 6 s of the wait go.
        state.correct_tokens("m", 1_000, 400, now);
        assert_eq!(
            admit(&policy, &mut state, &mut second, "m", now),
            Admission::Wait(secs(4))
        );
        // More than estimated pushes it out; a model without limits ignores corrections.
        state.correct_tokens("m", 400, 700, now);
        assert_eq!(
            state.limit_wait("m", 100, now),
            Some((RateLimit::TokensPerMinute, secs(7)))
        );
        state.correct_tokens("free", 0, 1_000_000, now);
        assert_eq!(state.limit_wait("free", 1_000_000, now), None);
    }

    #[test]
    fn admit_rejects_a_call_the_limit_holds_past_its_deadline() {
        use crate::{Admission, Delivery, Stop, catalog::Escalation};
        // 6,000 TPM; a call of 6,000 tokens holds the model a minute; the deadline is 30 s.
        let policy = limited(Some(600), Some(6_000), 30);
        let mut state = policy.client_state();
        let now = secs(100);
        let mut big = policy
            .start_call(now, Delivery::Buffered, 1)
            .with_estimated_tokens(6_000);
        assert_eq!(
            admit(&policy, &mut state, &mut big, "m", now),
            Admission::Send
        );
        let mut next = policy
            .start_call(now, Delivery::Buffered, 1)
            .with_estimated_tokens(10);
        let Admission::Reject(give_up) = admit(&policy, &mut state, &mut next, "m", now) else {
            panic!("a rejection");
        };
        assert_eq!(give_up.stop, Stop::PastDeadline);
        assert_eq!(give_up.status, None, "no attempt of its own");
        assert_eq!(give_up.rate_limit, Some(RateLimit::TokensPerMinute));
        assert!(give_up.entry.is_some_and(|entry| entry.status.covers(429)));
        assert!(
            give_up.advice.contains(&Escalation::ReduceTokens),
            "{give_up:?}"
        );
        assert_eq!(give_up.attempts, 0);
    }

    #[test]
    fn fallback_models_keep_their_own_limits() {
        use crate::{Admission, Delivery};
        let mut config = crate::PolicyConfig::default();
        config
            .limits
            .insert("a".to_owned(), ModelLimits::new(Some(1), None));
        config
            .limits
            .insert("b".to_owned(), ModelLimits::new(Some(2), None));
        let policy = crate::Policy::new(config);
        let mut state = policy.client_state();
        let now = secs(100);
        for key in ["a", "b"] {
            let mut call = policy.start_call(now, Delivery::Buffered, 2);
            assert_eq!(
                admit(&policy, &mut state, &mut call, key, now),
                Admission::Send
            );
        }
        assert_eq!(
            state.limit_wait("a", 0, now),
            Some((RateLimit::RequestsPerMinute, secs(60)))
        );
        assert_eq!(
            state.limit_wait("b", 0, now),
            Some((RateLimit::RequestsPerMinute, secs(30)))
        );
    }

    #[test]
    fn the_longest_dimension_holds_the_call() {
        let limits = ModelLimits::new(Some(60), Some(6_000)).with_burst(ZERO);
        let mut tats = Tats::default();
        assert_eq!(tats.wait(&limits, 100, ZERO), None);
        tats.charge(&limits, 100, ZERO);
        // RPM: 1 s; TPM: 100 tokens at 10 ms = 1 s, and the next 500 tokens wait that too.
        assert_eq!(
            tats.wait(&limits, 500, ZERO),
            Some((RateLimit::RequestsPerMinute, secs(1)))
        );
        tats.correct(&limits, 100, 400, ZERO);
        assert_eq!(
            tats.wait(&limits, 500, ZERO),
            Some((RateLimit::TokensPerMinute, secs(4)))
        );
    }
}
