//! A circuit breaker per model (or endpoint), driven entirely by the caller's `now`.
//!
//! Closed: calls flow; consecutive failures are counted. Open: calls fail fast (or go to a
//! fallback model) until `open_for` has passed. Half-open: one probe call is let through;
//! its success closes the breaker, its failure opens it again. A probe that never reports
//! back (its call was dropped) is assumed lost after `open_for`, so the breaker cannot
//! stick half-open.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of every circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures (5xx, timeouts, connection errors) that open the breaker.
    /// Default 10: a run that long is one in 170,000 when 30 % of requests fail at random
    /// (so a flaky but working model stays reachable), and an outage reaches it within
    /// a call or two.
    pub failure_threshold: u32,
    /// How long an open breaker fails fast before letting a probe through. Default 15 s:
    /// a few probes a minute during an outage, and little lost time after recovery.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            open_for: Duration::from_secs(15),
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the given instant (on the caller's clock).
    Open {
        /// When a probe may go through.
        until: Duration,
    },
    /// One probe call is (or may be) in flight.
    HalfOpen,
}

/// One circuit breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaker {
    consecutive_failures: u32,
    opened_at: Option<Duration>,
    probe_since: Option<Duration>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Breaker {
    /// A closed breaker.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            consecutive_failures: 0,
            opened_at: None,
            probe_since: None,
        }
    }

    /// Where the breaker stands at `now`.
    #[must_use]
    pub fn state(&self, now: Duration, config: &BreakerConfig) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(opened) => {
                let until = opened.saturating_add(config.open_for);
                if now < until {
                    BreakerState::Open { until }
                } else {
                    BreakerState::HalfOpen
                }
            }
        }
    }

    /// Whether a call may go through at `now`; in half-open, this claims the probe.
    pub fn try_pass(&mut self, now: Duration, config: &BreakerConfig) -> bool {
        match self.state(now, config) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => {
                let probe_lost = self
                    .probe_since
                    .is_none_or(|since| now >= since.saturating_add(config.open_for));
                if probe_lost {
                    self.probe_since = Some(now);
                }
                probe_lost
            }
        }
    }

    /// Records a call that reached a healthy server: closes the breaker.
    pub fn on_success(&mut self) {
        *self = Self::new();
    }

    /// Records a failure at `now`; returns `true` if this failure opened the breaker.
    pub fn on_failure(&mut self, now: Duration, config: &BreakerConfig) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let reopen = self.probe_since.is_some();
        if reopen
            || (self.opened_at.is_none() && self.consecutive_failures >= config.failure_threshold)
        {
            self.opened_at = Some(now);
            self.probe_since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_secs(10),
    };

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn opens_after_the_threshold_and_fails_fast() {
        let mut breaker = Breaker::new();
        assert!(!breaker.on_failure(at(0), &CONFIG));
        assert!(!breaker.on_failure(at(1), &CONFIG));
        assert!(breaker.try_pass(at(1), &CONFIG));
        assert!(breaker.on_failure(at(2), &CONFIG), "third failure opens");
        assert_eq!(
            breaker.state(at(3), &CONFIG),
            BreakerState::Open { until: at(12) }
        );
        assert!(!breaker.try_pass(at(11), &CONFIG));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let mut breaker = Breaker::new();
        for second in 0..3 {
            breaker.on_failure(at(second), &CONFIG);
        }
        assert_eq!(breaker.state(at(12), &CONFIG), BreakerState::HalfOpen);
        assert!(breaker.try_pass(at(12), &CONFIG), "the probe");
        assert!(!breaker.try_pass(at(13), &CONFIG), "only one probe");
        breaker.on_success();
        assert_eq!(breaker.state(at(13), &CONFIG), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let mut breaker = Breaker::new();
        for second in 0..3 {
            breaker.on_failure(at(second), &CONFIG);
        }
        assert!(breaker.try_pass(at(12), &CONFIG));
        assert!(breaker.on_failure(at(12), &CONFIG));
        assert_eq!(
            breaker.state(at(13), &CONFIG),
            BreakerState::Open { until: at(22) }
        );
    }

    #[test]
    fn a_lost_probe_is_replaced_after_open_for() {
        let mut breaker = Breaker::new();
        for second in 0..3 {
            breaker.on_failure(at(second), &CONFIG);
        }
        assert!(breaker.try_pass(at(12), &CONFIG));
        assert!(!breaker.try_pass(at(21), &CONFIG));
        assert!(
            breaker.try_pass(at(22), &CONFIG),
            "the first probe never reported back"
        );
    }

    #[test]
    fn success_resets_the_count() {
        let mut breaker = Breaker::new();
        breaker.on_failure(at(0), &CONFIG);
        breaker.on_failure(at(0), &CONFIG);
        breaker.on_success();
        assert!(!breaker.on_failure(at(1), &CONFIG));
        assert_eq!(breaker.state(at(1), &CONFIG), BreakerState::Closed);
    }
}
