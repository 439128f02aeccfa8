//! Client-side pacing: after repeated throttling, space out the next calls to one model.
//!
//! Additive-increase, multiplicative-decrease on the sending rate, kept as the interval
//! between call starts: each 429 (once pacing is engaged) multiplies the interval by
//! `slowdown`, so the rate shrinks multiplicatively; each success shrinks the interval by
//! `recovery`, so the rate climbs back gradually until pacing switches itself off. A
//! server hint also blocks the whole model until it has passed, so concurrent calls do
//! not spend the wait hammering the same limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of client-side pacing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PacingConfig {
    /// Consecutive 429s on one model before pacing engages. Default 2: one 429 is a blip,
    /// two in a row mean the client is over its limit.
    pub after_throttles: u32,
    /// The interval between call starts when pacing engages. Default 200 ms (5 calls per
    /// second per model and client).
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// The longest interval pacing will impose. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Factor applied to the interval on each further 429. Default 2 (the rate halves).
    pub slowdown: f64,
    /// Factor applied to the interval on each success. Default 0.9 (the rate climbs ~11%).
    pub recovery: f64,
    /// Below this interval pacing switches off. Default 10 ms.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            after_throttles: 2,
            initial_interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(10),
            slowdown: 2.0,
            recovery: 0.9,
            min_interval: Duration::from_millis(10),
        }
    }
}

/// The pacing state of one model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    interval: Duration,
    next_slot: Duration,
    blocked_until: Duration,
    consecutive_throttles: u32,
}

impl Pacer {
    /// The current interval between call starts; zero when not pacing.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a call starting at `now` must wait, without reserving anything.
    #[must_use]
    pub fn wait(&self, now: Duration) -> Duration {
        self.next_slot.max(self.blocked_until).saturating_sub(now)
    }

    /// Takes the slot of a call starting at `now`, which must not have to wait (see
    /// [`wait`](Self::wait)): the next call may start one interval later.
    pub fn take_slot(&mut self, now: Duration) {
        debug_assert!(
            self.wait(now).is_zero(),
            "a slot is only taken when it is free"
        );
        if !self.interval.is_zero() {
            self.next_slot = now.saturating_add(self.interval);
        }
    }

    /// Records a 429 at `now` with the server's hint, if any; returns `true` when this
    /// throttle engaged pacing or slowed it further.
    pub fn on_throttle(
        &mut self,
        now: Duration,
        hint: Option<Duration>,
        config: &PacingConfig,
    ) -> bool {
        self.consecutive_throttles = self.consecutive_throttles.saturating_add(1);
        if let Some(hint) = hint {
            self.blocked_until = self.blocked_until.max(now.saturating_add(hint));
        }
        if self.consecutive_throttles < config.after_throttles {
            return false;
        }
        self.interval = if self.interval.is_zero() {
            config.initial_interval
        } else {
            self.interval
                .mul_f64(config.slowdown.max(1.0))
                .min(config.max_interval)
        };
        true
    }

    /// Records a success: the run of throttles ends and the interval recovers a step.
    pub fn on_success(&mut self, config: &PacingConfig) {
        self.consecutive_throttles = 0;
        if !self.interval.is_zero() {
            self.interval = self.interval.mul_f64(config.recovery.clamp(0.0, 1.0));
            if self.interval < config.min_interval {
                self.interval = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn engages_after_repeated_throttles_and_slows_multiplicatively() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        assert!(!pacer.on_throttle(ms(0), None, &config));
        assert_eq!(pacer.interval(), Duration::ZERO);
        assert!(pacer.on_throttle(ms(10), None, &config));
        assert_eq!(pacer.interval(), ms(200));
        assert!(pacer.on_throttle(ms(20), None, &config));
        assert_eq!(pacer.interval(), ms(400));
        for _ in 0..20 {
            pacer.on_throttle(ms(30), None, &config);
        }
        assert_eq!(pacer.interval(), config.max_interval);
    }

    #[test]
    fn spaces_calls_apart() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        pacer.on_throttle(ms(0), None, &config);
        pacer.on_throttle(ms(0), None, &config);
        assert_eq!(pacer.wait(ms(1000)), ms(0));
        pacer.take_slot(ms(1000));
        assert_eq!(pacer.wait(ms(1000)), ms(200));
        assert_eq!(pacer.wait(ms(1050)), ms(150));
        assert_eq!(pacer.wait(ms(1200)), ms(0));
    }

    #[test]
    fn a_hint_blocks_every_call_to_the_model() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        pacer.on_throttle(ms(100), Some(ms(2000)), &config);
        assert_eq!(
            pacer.interval(),
            Duration::ZERO,
            "one throttle does not pace"
        );
        assert_eq!(pacer.wait(ms(500)), ms(1600));
        assert_eq!(pacer.wait(ms(2100)), ms(0));
    }

    #[test]
    fn recovers_gradually_then_switches_off() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        pacer.on_throttle(ms(0), None, &config);
        pacer.on_throttle(ms(0), None, &config);
        pacer.on_success(&config);
        assert_eq!(pacer.interval(), ms(180));
        let mut successes = 1;
        while !pacer.interval().is_zero() {
            pacer.on_success(&config);
            successes += 1;
        }
        assert!((20..40).contains(&successes), "{successes}");
    }
}
