//! Capped exponential backoff with a choice of jitter.
//!
//! Jitter spreads the retries of many clients apart so that they do not hit a recovering
//! server in lockstep; "full" jitter does that best for the least total work, which is why
//! it is the default (see the AWS Architecture Blog's "Exponential Backoff And Jitter").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Draw;

/// How a backoff delay is randomised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: exactly the exponential delay. Clients that failed together retry
    /// together; only for tests and single-client tools.
    None,
    /// Anywhere from zero to the exponential delay: the best spread for the least work.
    #[default]
    Full,
    /// Half the exponential delay plus up to half again: never retries almost at once.
    Equal,
    /// Grows from the previous delay (between `base` and three times it), capped.
    Decorrelated,
}

/// What kind of failure a retry answers; retries of each kind cost and wait differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryKind {
    /// A 429: the client is over a limit.
    Throttled,
    /// Overload or a server fault (500, 503, other 5xx) or a failed connection.
    Transient,
    /// A timeout: a 504, or no answer within the client's timeout.
    Timeout,
}

/// The backoff schedule for retries without a server hint.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay before the first retry of a transient failure (503, 500, a refused
    /// connection), before jitter. Default 100 ms: with full jitter half the retries go out
    /// within 50 ms, so a random failure costs the caller little (AWS's standard mode uses
    /// 50 ms); the retry budget, not the delay, is what keeps an outage from multiplying
    /// load. Tuned with `novita simulate`: see docs/BENCHMARKS.md. At most `cap`.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// The delay before the first retry of a 429 that carries no hint. Default 1 s, as in
    /// AWS's standard mode: a limit that is hit does not clear in milliseconds. At most
    /// 24 h; used as `cap` when above it.
    #[serde(with = "humantime_serde")]
    pub throttled_base: Duration,
    /// The delay before the first retry after a timeout. Default 500 ms: the request held
    /// a server slot for the whole timeout, and the retry may be the switch to streaming.
    /// At most 24 h; used as `cap` when above it.
    #[serde(with = "humantime_serde")]
    pub timeout_base: Duration,
    /// The largest delay, before jitter. Default 20 s: beyond that a caller is better
    /// served by a give-up with advice than by a longer wait. At most 24 h.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// How much the delay grows per retry. Default 2. A finite number of at least 1.
    pub multiplier: f64,
    /// How the delay is randomised. Default full jitter.
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            throttled_base: Duration::from_secs(1),
            timeout_base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// The first delay for retries of `kind`, before jitter.
    #[must_use]
    pub fn base_for(&self, kind: RetryKind) -> Duration {
        match kind {
            RetryKind::Throttled => self.throttled_base,
            RetryKind::Transient => self.base,
            RetryKind::Timeout => self.timeout_base,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry) of a transient
    /// failure; see [`delay_for`](Self::delay_for).
    #[must_use]
    pub fn delay(&self, retry: u32, previous: Duration, draw: Draw) -> Duration {
        self.delay_for(RetryKind::Transient, retry, previous, draw)
    }

    /// The delay before retry number `retry` (1 for the first retry) of a failure of
    /// `kind`, given the previous delay (used by decorrelated jitter) and a random draw.
    /// Never above `cap`.
    #[must_use]
    pub fn delay_for(
        &self,
        kind: RetryKind,
        retry: u32,
        previous: Duration,
        draw: Draw,
    ) -> Duration {
        let cap = self.cap.as_secs_f64();
        let base = self.base_for(kind).as_secs_f64().min(cap);
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        // A zero base stays zero however large the growth (0 × ∞ would be NaN); a growth
        // that overflows, or a multiplier that is not a number, reaches the cap.
        let exponential = if base > 0.0 {
            let grown = base * self.multiplier.powi(exponent);
            if grown.is_nan() { cap } else { grown.min(cap) }
        } else {
            0.0
        };
        let r = draw.get();
        let seconds = match self.jitter {
            Jitter::None => exponential,
            Jitter::Full => exponential * r,
            Jitter::Equal => exponential / 2.0 + exponential / 2.0 * r,
            Jitter::Decorrelated => {
                let upper = (previous.as_secs_f64() * 3.0).max(base);
                (base + (upper - base) * r).min(cap)
            }
        };
        // `cap` as seconds may round up past what a `Duration` holds (2^64 s): saturate
        // to the cap rather than panic, and never exceed it.
        Duration::try_from_secs_f64(seconds.clamp(0.0, cap))
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            multiplier: 2.0,
            jitter,
            ..Backoff::default()
        }
    }

    fn draw(value: f64) -> Draw {
        Draw::new(value).unwrap()
    }

    #[test]
    fn no_jitter_grows_exponentially_up_to_the_cap() {
        let b = backoff(Jitter::None);
        let delays: Vec<u64> = (1..=6)
            .map(|n| b.delay(n, Duration::ZERO, Draw::HALF).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            b.delay(u32::MAX, Duration::ZERO, Draw::HALF),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_exponential_delay() {
        let b = backoff(Jitter::Full);
        assert_eq!(b.delay(3, Duration::ZERO, Draw::MIN), Duration::ZERO);
        assert_eq!(
            b.delay(3, Duration::ZERO, draw(0.5)),
            Duration::from_secs(2)
        );
        assert!(b.delay(3, Duration::ZERO, draw(0.999_999)) < Duration::from_secs(4));
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let b = backoff(Jitter::Equal);
        assert_eq!(
            b.delay(3, Duration::ZERO, Draw::MIN),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.delay(3, Duration::ZERO, draw(0.5)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay() {
        let b = backoff(Jitter::Decorrelated);
        assert_eq!(
            b.delay(1, Duration::ZERO, Draw::MIN),
            Duration::from_secs(1)
        );
        assert_eq!(
            b.delay(2, Duration::from_secs(2), draw(0.5)),
            Duration::from_millis(3500)
        );
        assert_eq!(
            b.delay(9, Duration::from_secs(9), draw(0.9)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_zero_base_stays_zero_however_many_retries() {
        // 2^1024 overflows to infinity, and 0 × ∞ is NaN: this used to come out as `cap`.
        let b = Backoff {
            base: Duration::ZERO,
            ..backoff(Jitter::None)
        };
        assert_eq!(b.delay(1025, Duration::ZERO, Draw::HALF), Duration::ZERO);
        assert_eq!(
            b.delay(u32::MAX, Duration::ZERO, Draw::HALF),
            Duration::ZERO
        );
    }

    #[test]
    fn the_largest_duration_saturates_instead_of_panicking() {
        // `u64::MAX` seconds is 2^64 as an `f64`, one past what a `Duration` holds: this
        // panicked with "cannot convert float seconds to Duration" on the first 503.
        let most = Duration::from_secs(u64::MAX);
        for jitter in [
            Jitter::None,
            Jitter::Decorrelated,
            Jitter::Equal,
            Jitter::Full,
        ] {
            let b = Backoff {
                base: most,
                cap: most,
                ..backoff(jitter)
            };
            assert!(b.delay(1, Duration::ZERO, draw(0.999_999)) <= most);
        }
    }

    #[test]
    fn odd_settings_stay_within_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(50),
            multiplier: 1e300,
            ..backoff(Jitter::Equal)
        };
        assert_eq!(
            b.delay(400, Duration::MAX, draw(0.7)),
            Duration::from_millis(8500)
        );
        let b = Backoff {
            jitter: Jitter::Decorrelated,
            ..b
        };
        assert_eq!(
            b.delay(400, Duration::MAX, draw(0.7)),
            Duration::from_secs(10)
        );
    }
}
