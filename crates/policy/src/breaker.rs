//! A circuit breaker per model (or endpoint), driven entirely by the caller's `now`.
//!
//! Closed: calls flow; consecutive failures are counted. Open: no call goes to the model
//! until the open period has passed; calls move to a fallback model, or wait behind the
//! probe (the default, [`WhenOpen::Hold`]), or fail fast ([`WhenOpen::FailFast`]).
//! Half-open: one probe call is let through; its success closes the breaker, its failure
//! opens it again for twice as long as before (up to `max_open_for`), so probes back off
//! through a long outage. Each open period is shortened at random by up to half, so the
//! clients of a fleet, which all open when an outage begins, do not probe in step. A probe
//! that never reports back (its call was dropped) is assumed lost after `max_open_for`, so
//! the breaker cannot stick half-open.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Draw;

/// What an open breaker does with calls that have no fallback model left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WhenOpen {
    /// Hold them, oldest first, until a probe finds the model healthy or their
    /// deadline would pass: a call rides out an outage shorter than its deadline.
    #[default]
    Hold,
    /// Fail them at once, without sending.
    FailFast,
}

/// Settings of every circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures (5xx, timeouts, connection errors) that open the breaker.
    /// Default 10: a run that long is one in 170,000 when 30 % of requests fail at random
    /// (so a flaky but working model stays reachable), and an outage reaches it within
    /// a call or two. At least 1.
    pub failure_threshold: u32,
    /// How long the breaker stays open before its first probe. Default 2 s: a short outage
    /// costs callers little. At most `max_open_for`. Each period the breaker is open is
    /// this (or the doubled period after a failed probe) shortened at random by up to half.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// The longest open period: each failed probe doubles the period up to this. Default
    /// 16 s: about four probes a minute through a long outage. At most 24 h.
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
    /// What happens to calls with no fallback model while the breaker is open. Default
    /// `hold`.
    pub when_open: WhenOpen,
    /// The most calls one client holds per model; more fail fast. Default 1000.
    pub max_held: u32,
    /// How long a model that answers `MODEL_NOT_AVAILABLE` (maintenance) is passed over
    /// for calls that have a fallback model, before one call probes it again. Default 60 s.
    /// At most 24 h.
    #[serde(with = "humantime_serde")]
    pub maintenance_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            open_for: Duration::from_secs(2),
            max_open_for: Duration::from_secs(16),
            when_open: WhenOpen::Hold,
            max_held: 1000,
            maintenance_for: Duration::from_secs(60),
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// No call goes to the model until the given instant (on the caller's clock).
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
    open_until: Option<Duration>,
    /// How long the breaker was last open; a failed probe doubles it.
    open_period: Duration,
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
            open_until: None,
            open_period: Duration::ZERO,
            probe_since: None,
        }
    }

    /// Where the breaker stands at `now`.
    #[must_use]
    pub fn state(&self, now: Duration, _config: &BreakerConfig) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open { until },
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go through at `now`, without claiming anything: closed, or
    /// half-open with no probe out.
    #[must_use]
    pub fn would_pass(&self, now: Duration, config: &BreakerConfig) -> bool {
        match self.state(now, config) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => self.probe_lost(now, config),
        }
    }

    /// Whether a call may go through at `now`; in half-open, this claims the probe.
    pub fn try_pass(&mut self, now: Duration, config: &BreakerConfig) -> bool {
        match self.state(now, config) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => {
                let free = self.probe_lost(now, config);
                if free {
                    self.probe_since = Some(now);
                }
                free
            }
        }
    }

    fn probe_lost(&self, now: Duration, config: &BreakerConfig) -> bool {
        self.probe_since
            .is_none_or(|since| now >= since.saturating_add(config.max_open_for))
    }

    /// Records a call that reached a healthy server: closes the breaker. Returns `true`
    /// when the breaker was open or half-open, so the caller can release held calls.
    pub fn on_success(&mut self) -> bool {
        let recovered = self.open_until.is_some();
        *self = Self::new();
        recovered
    }

    /// Records a failure at `now`; returns `true` if this failure opened the breaker.
    ///
    /// The breaker stays open for its period shortened by up to half at random (`draw`:
    /// [`Draw::MIN`] keeps the whole period), so that clients that opened together, as
    /// every client of a fleet does when an outage begins, do not probe together, and a
    /// probe that keeps landing at the same moment of a server's rate window does not keep
    /// failing there.
    pub fn on_failure(&mut self, now: Duration, config: &BreakerConfig, draw: Draw) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let period = if self.probe_since.is_some() {
            // The probe failed: open again, for twice as long.
            self.open_period
                .saturating_mul(2)
                .min(config.max_open_for)
                .max(config.open_for.min(config.max_open_for))
        } else if self.open_until.is_none() && self.consecutive_failures >= config.failure_threshold
        {
            config.open_for.min(config.max_open_for)
        } else {
            return false;
        };
        self.open(
            now.saturating_add(period.mul_f64(1.0 - 0.5 * draw.get())),
            period,
        );
        true
    }

    /// Keeps the breaker open until at least `until`, as another process sharing the
    /// account found it (see [`Facts`](crate::Facts)); a probe of this process's is then no
    /// longer counted on.
    pub fn hold_open_until(&mut self, now: Duration, until: Duration) {
        if self.open_until.is_none_or(|open_until| open_until < until) {
            self.open(until, until.saturating_sub(now).max(self.open_period));
        }
    }

    /// Opens until `until`; `period` is what the next failed probe doubles.
    fn open(&mut self, until: Duration, period: Duration) {
        self.open_until = Some(until);
        self.open_period = period;
        self.probe_since = None;
    }
}

/// A model in maintenance: passed over by calls that can fall back, until one call probes
/// it again after `maintenance_for`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Maintenance {
    until: Option<Duration>,
    probe_since: Option<Duration>,
}

impl Maintenance {
    /// Marks the model unavailable from `now` for `config.maintenance_for`.
    pub(crate) fn mark(&mut self, now: Duration, config: &BreakerConfig) {
        self.until = Some(now.saturating_add(config.maintenance_for));
        self.probe_since = None;
    }

    /// Whether a call that can fall back should skip the model at `now`; the first call
    /// after the mark expires is let through as the probe (and claims it).
    pub(crate) fn skip(&mut self, now: Duration, config: &BreakerConfig) -> bool {
        let Some(until) = self.until else {
            return false;
        };
        if now < until {
            return true;
        }
        let probe_out = self
            .probe_since
            .is_some_and(|since| now < since.saturating_add(config.maintenance_for));
        if !probe_out {
            self.probe_since = Some(now);
        }
        probe_out
    }

    /// When the mark ends, if the model is marked.
    pub(crate) fn until(&self) -> Option<Duration> {
        self.until
    }

    /// Keeps the model marked until at least `until`, as another process found it.
    pub(crate) fn hold_until(&mut self, until: Duration) {
        if self.until.is_none_or(|marked| marked < until) {
            self.until = Some(until);
            self.probe_since = None;
        }
    }

    /// The model answered: the maintenance is over.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_secs(10),
        max_open_for: Duration::from_secs(40),
        when_open: WhenOpen::Hold,
        max_held: 10,
        maintenance_for: Duration::from_secs(60),
    };

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn opens_after_the_threshold_and_fails_fast() {
        let mut breaker = Breaker::new();
        assert!(!breaker.on_failure(at(0), &CONFIG, Draw::MIN));
        assert!(!breaker.on_failure(at(1), &CONFIG, Draw::MIN));
        assert!(breaker.try_pass(at(1), &CONFIG));
        assert!(
            breaker.on_failure(at(2), &CONFIG, Draw::MIN),
            "third failure opens"
        );
        assert_eq!(
            breaker.state(at(3), &CONFIG),
            BreakerState::Open { until: at(12) }
        );
        assert!(!breaker.try_pass(at(11), &CONFIG));
    }

    #[test]
    fn the_open_period_is_shortened_at_random_by_up_to_half() {
        let opened_with = |draw: f64| {
            let mut breaker = Breaker::new();
            let draw = Draw::new(draw).expect("in [0, 1)");
            for second in 0..3 {
                breaker.on_failure(at(second), &CONFIG, draw);
            }
            breaker.state(at(2), &CONFIG)
        };
        // Opened at 2 s for 10 s: clients that opened together probe apart, within
        // [7 s, 12 s].
        assert_eq!(opened_with(0.0), BreakerState::Open { until: at(12) });
        assert_eq!(
            opened_with(0.5),
            BreakerState::Open {
                until: Duration::from_millis(9_500)
            }
        );
        let BreakerState::Open { until } = opened_with(0.999_999) else {
            panic!("open");
        };
        assert!(
            until > at(7) && until < Duration::from_millis(7_001),
            "{until:?}"
        );
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let mut breaker = Breaker::new();
        for second in 0..3 {
            breaker.on_failure(at(second), &CONFIG, Draw::MIN);
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
            breaker.on_failure(at(second), &CONFIG, Draw::MIN);
        }
        assert!(breaker.try_pass(at(12), &CONFIG));
        assert!(breaker.on_failure(at(12), &CONFIG, Draw::MIN));
        assert_eq!(
            breaker.state(at(13), &CONFIG),
            BreakerState::Open { until: at(32) },
            "the second period is twice the first"
        );
        assert!(breaker.try_pass(at(32), &CONFIG));
        assert!(breaker.on_failure(at(32), &CONFIG, Draw::MIN));
        assert!(
            breaker.try_pass(at(72), &CONFIG),
            "40 s: the longest period"
        );
        assert!(breaker.on_failure(at(72), &CONFIG, Draw::MIN));
        assert_eq!(
            breaker.state(at(73), &CONFIG),
            BreakerState::Open { until: at(112) }
        );
        assert!(breaker.on_success(), "a success after opening recovers");
        assert!(!breaker.on_success());
    }

    #[test]
    fn a_lost_probe_is_replaced_after_open_for() {
        let mut breaker = Breaker::new();
        for second in 0..3 {
            breaker.on_failure(at(second), &CONFIG, Draw::MIN);
        }
        assert!(breaker.try_pass(at(12), &CONFIG));
        assert!(!breaker.would_pass(at(51), &CONFIG));
        assert!(!breaker.try_pass(at(51), &CONFIG));
        assert!(
            breaker.try_pass(at(52), &CONFIG),
            "the first probe never reported back"
        );
    }

    #[test]
    fn success_resets_the_count() {
        let mut breaker = Breaker::new();
        breaker.on_failure(at(0), &CONFIG, Draw::MIN);
        breaker.on_failure(at(0), &CONFIG, Draw::MIN);
        breaker.on_success();
        assert!(!breaker.on_failure(at(1), &CONFIG, Draw::MIN));
        assert_eq!(breaker.state(at(1), &CONFIG), BreakerState::Closed);
    }

    #[test]
    fn maintenance_skips_the_model_then_lets_one_probe_through() {
        let mut maintenance = Maintenance::default();
        assert!(!maintenance.skip(at(0), &CONFIG));
        maintenance.mark(at(0), &CONFIG);
        assert!(maintenance.skip(at(59), &CONFIG));
        assert!(!maintenance.skip(at(60), &CONFIG), "the probe");
        assert!(maintenance.skip(at(61), &CONFIG), "one probe at a time");
        maintenance.clear();
        assert!(!maintenance.skip(at(61), &CONFIG));
    }
}
