//! Client-side congestion control for one model: how fast calls may start.
//!
//! A 429 is a congestion signal, and many calls in flight at once get it together. Reacting
//! to each response would cut the rate once per call: sixteen concurrent 429s would halve
//! it sixteen times. So, as TCP does once per window of data and AWS's adaptive client rate
//! limiter once per throttling event, a burst is one signal: a 429 to an attempt that was
//! sent before the last decrease belongs to the congestion event already answered and
//! changes nothing.
//!
//! The algorithm:
//! - **Measure.** The sending rate is measured over windows of `measure_window` and
//!   smoothed (weight 0.8 on the newest window, as AWS's client does).
//! - **Decrease once per event.** On a 429 without a server hint, to an attempt sent after
//!   the last decrease, the rate limit becomes `decrease` × the rate in force (the measured
//!   rate when none was), never below `min_rate`; the rate before the cut is remembered as
//!   `W_max`.
//! - **Grow back as CUBIC does** (RFC 8312, the curve AWS's adaptive mode also uses): at
//!   time `t` after the decrease the limit is `C·(t − K)³ + W_max`, with
//!   `K = ∛(W_max·(1 − decrease)/C)` and `C = cubic_scale`: fast at first, flat near the old
//!   maximum (probing carefully where the trouble began), then fast again. It never runs
//!   further ahead than twice the measured rate, and pacing switches off once the limit is
//!   twice `W_max`. With the defaults a client back at `W_max` within about
//!   `∛(W_max·0.75)` seconds: 3 s at 30 calls a second.
//! - **Honour hints exactly.** A 429 that says how long to wait blocks every call to the
//!   model until then. A call's first 429 with a hint cuts nothing: the server is doing
//!   the flow control, and cutting on every hinted 429 would collapse the rate of a server
//!   that hints on every first attempt. A 429 to a call that already waited out one is
//!   congestion the hint did not clear, and counts as a signal like a 429 without a hint.
//! - **Overload after an outage is congestion.** From the probe that finds the model healthy
//!   until pacing ends, a 503 is the outage's backlog meeting a server whose capacity is
//!   unknown (Novita's 503 is "often caused by high system load or throttling"): it is a
//!   signal like a 429 without a hint, one per burst, and the policy charges its retry as a
//!   throttled one, since the retry waits for a paced slot. Anywhere else a 503 stays a
//!   transient failure: random 503s must not drive the rate down, as they would every
//!   round trip (the collapse AIMD suffers under random loss), even while 429s pace the
//!   model.
//! - **Release after an outage slowly.** When a probe finds the model healthy again, calls
//!   start at `release_rate` and the rate doubles every `measure_window` (TCP's slow
//!   start), so the calls held during the outage do not return as a herd; the ramp ends
//!   once it runs four times ahead of what the client sends.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of client-side congestion control.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PacingConfig {
    /// The factor the rate is multiplied by on a congestion event. Default 0.7, CUBIC's
    /// β and AWS's: a gentler cut than halving, since the 429s of a burst count once.
    /// Above 0 and below 1.
    pub decrease: f64,
    /// CUBIC's `C`, in calls per second per second cubed: how fast the rate grows back.
    /// Default 0.4 (RFC 8312 and AWS). From 0.001 to 1000.
    pub cubic_scale: f64,
    /// The lowest rate pacing imposes, in calls per second. Default 0.5. From 0.001 (one
    /// call in 1000 s) to 1,000,000.
    pub min_rate: f64,
    /// The rate calls start at when an outage ends, in calls per second. Default 10. From
    /// `min_rate` to 1,000,000.
    pub release_rate: f64,
    /// The window the sending rate is measured over, and the doubling period of the ramp
    /// after an outage. Default 500 ms (AWS's measurement bucket). From 10 ms to 60 s.
    #[serde(with = "humantime_serde")]
    pub measure_window: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            decrease: 0.7,
            cubic_scale: 0.4,
            min_rate: 0.5,
            release_rate: 10.0,
            measure_window: Duration::from_millis(500),
        }
    }
}

/// The weight of the newest window in the measured rate.
const SMOOTHING: f64 = 0.8;

/// How the limit grows after it was set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Growth {
    /// Along the CUBIC curve around `W_max`.
    Cubic,
    /// Doubling every measurement window from `from` (after an outage).
    SlowStart { from: f64 },
}

/// The congestion state of one model: its rate limit, its measured sending rate and any
/// block a server hint imposed. All times are the caller's `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pacer {
    /// The rate limit at `since`, in calls per second; `None` when not paced.
    limit: Option<f64>,
    /// The rate before the last decrease (CUBIC's `W_max`).
    w_max: f64,
    /// When the limit was last set (a decrease or a release).
    since: Duration,
    growth: Growth,
    /// Whether this pacing began with the release after an outage (see
    /// [`Pacer::is_recovering`]).
    recovering: bool,
    next_slot: Duration,
    blocked_until: Duration,
    window_start: Duration,
    window_sends: u32,
    measured: f64,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            limit: None,
            w_max: 0.0,
            since: Duration::ZERO,
            growth: Growth::Cubic,
            recovering: false,
            next_slot: Duration::ZERO,
            blocked_until: Duration::ZERO,
            window_start: Duration::ZERO,
            window_sends: 0,
            measured: 0.0,
        }
    }
}

impl Pacer {
    /// The rate limit at `now`, in calls per second; `None` when calls are not paced.
    #[must_use]
    pub fn rate(&self, now: Duration, config: &PacingConfig) -> Option<f64> {
        let limit = self.limit?;
        let grown = self.grown(now, config)?;
        // Along the CUBIC curve the limit never runs further ahead than twice what the
        // client sends (AWS's rule); a ramp after an outage doubles regardless, and ends
        // once demand falls behind it.
        let ceiling = match self.growth {
            Growth::Cubic => (2.0 * self.measured).max(limit),
            Growth::SlowStart { .. } => f64::INFINITY,
        };
        let rate = grown.min(ceiling).max(config.min_rate);
        rate.is_finite().then_some(rate)
    }

    /// The limit the growth curve reaches at `now`, before the measured rate caps it.
    fn grown(&self, now: Duration, config: &PacingConfig) -> Option<f64> {
        let limit = self.limit?;
        let elapsed = now.saturating_sub(self.since).as_secs_f64();
        let grown = match self.growth {
            Growth::Cubic => {
                let scale = config.cubic_scale;
                let k = (self.w_max * (1.0 - config.decrease) / scale).cbrt();
                scale * (elapsed - k).powi(3) + self.w_max
            }
            Growth::SlowStart { from } => {
                let window = config.measure_window.as_secs_f64().max(1e-3);
                from * 2f64.powf((elapsed / window).min(1000.0))
            }
        };
        let grown = grown.max(limit);
        grown.is_finite().then_some(grown)
    }

    /// Whether the model is recovering from an outage: from the probe that found it
    /// healthy until pacing ends, decreases on the way included. The outage's backlog then
    /// meets a server whose capacity is unknown, so its overload is congestion.
    #[must_use]
    pub fn is_recovering(&self) -> bool {
        self.recovering && self.limit.is_some()
    }

    /// The interval between call starts at `now`; zero when calls are not paced.
    #[must_use]
    pub fn interval(&self, now: Duration, config: &PacingConfig) -> Duration {
        self.rate(now, config)
            .and_then(|rate| Duration::try_from_secs_f64(1.0 / rate).ok())
            .unwrap_or(Duration::ZERO)
    }

    /// The smoothed sending rate, in calls per second.
    #[must_use]
    pub fn measured_rate(&self) -> f64 {
        self.measured
    }

    /// How long a call starting at `now` must wait, without reserving anything.
    #[must_use]
    pub fn wait(&self, now: Duration) -> Duration {
        self.next_slot.max(self.blocked_until).saturating_sub(now)
    }

    /// When a server hint stops holding calls back (`now` or earlier when it does not).
    #[must_use]
    pub fn blocked_until(&self) -> Duration {
        self.blocked_until
    }

    /// Takes the slot of a call starting at `now`, which must not have to wait (see
    /// [`wait`](Self::wait)): the send is measured, and the next call may start one
    /// interval later.
    pub fn take_slot(&mut self, now: Duration, config: &PacingConfig) {
        debug_assert!(
            self.wait(now).is_zero(),
            "a slot is only taken when it is free"
        );
        self.measure(now, config);
        self.window_sends = self.window_sends.saturating_add(1);
        self.settle(now, config);
        let interval = self.interval(now, config);
        if !interval.is_zero() {
            self.next_slot = now.saturating_add(interval);
        }
    }

    /// Holds every call to the model until `hint` after `now`, as a 429's hint asks.
    pub fn block(&mut self, now: Duration, hint: Duration) {
        self.blocked_until = self.blocked_until.max(now.saturating_add(hint));
    }

    /// Records a congestion signal at `now` (a 429) to an attempt sent at `sent_at`.
    /// Returns `true` when this was a new congestion event and the rate was cut.
    pub fn on_congestion(
        &mut self,
        sent_at: Duration,
        now: Duration,
        config: &PacingConfig,
    ) -> bool {
        if self.limit.is_some() && sent_at < self.since {
            // Part of the burst the last decrease already answered.
            return false;
        }
        self.measure(now, config);
        let current = self
            .rate(now, config)
            .unwrap_or_else(|| self.sending_rate(now, config));
        self.w_max = current.max(config.min_rate);
        self.limit = Some((self.w_max * config.decrease).max(config.min_rate));
        self.since = now;
        self.growth = Growth::Cubic;
        true
    }

    /// Records the success of a probe after an outage: calls start again at the release
    /// rate and ramp up by doubling.
    pub fn on_release(&mut self, now: Duration, config: &PacingConfig) {
        self.limit = Some(config.release_rate.max(config.min_rate));
        self.since = now;
        self.recovering = true;
        self.growth = Growth::SlowStart {
            from: config.release_rate.max(config.min_rate),
        };
        self.next_slot = self.next_slot.min(now);
    }

    /// Records a success at `now`: pacing switches off once the limit is far above what
    /// troubled the model.
    pub fn on_success(&mut self, now: Duration, config: &PacingConfig) {
        self.settle(now, config);
    }

    /// Ends pacing when the grown limit leaves nothing to limit.
    fn settle(&mut self, now: Duration, config: &PacingConfig) {
        let Some(grown) = self.grown(now, config) else {
            self.limit = None;
            self.recovering = false;
            return;
        };
        let done = match self.growth {
            Growth::Cubic => grown >= 2.0 * self.w_max,
            // A ramp ends once it runs well ahead of what the client sends.
            Growth::SlowStart { .. } => {
                now.saturating_sub(self.since) >= config.measure_window
                    && grown >= 4.0 * self.measured.max(config.min_rate)
            }
        };
        if done {
            self.limit = None;
            self.recovering = false;
        }
    }

    /// Closes the measurement window if it is over.
    fn measure(&mut self, now: Duration, config: &PacingConfig) {
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed >= config.measure_window && !elapsed.is_zero() {
            let sample = f64::from(self.window_sends) / elapsed.as_secs_f64();
            self.measured = SMOOTHING * sample + (1.0 - SMOOTHING) * self.measured;
            self.window_start = now;
            self.window_sends = 0;
        }
    }

    /// The best estimate of the sending rate at `now`, counting the open window when no
    /// window has closed yet.
    fn sending_rate(&self, now: Duration, config: &PacingConfig) -> f64 {
        if self.measured > 0.0 {
            return self.measured;
        }
        let elapsed = now
            .saturating_sub(self.window_start)
            .max(config.measure_window)
            .as_secs_f64();
        f64::from(self.window_sends) / elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// A pacer that has sent `per_second` calls a second for two seconds.
    fn busy(per_second: u32, config: &PacingConfig) -> Pacer {
        let mut pacer = Pacer::default();
        let step = 1000 / u64::from(per_second);
        for i in 0..u64::from(per_second) * 2 {
            pacer.take_slot(ms(i * step), config);
        }
        pacer
    }

    #[test]
    fn a_burst_of_concurrent_throttles_is_one_congestion_event() {
        let config = PacingConfig::default();
        let mut pacer = busy(20, &config);
        let measured = pacer.measured_rate();
        assert!((15.0..=25.0).contains(&measured), "{measured}");
        // Sixteen calls sent together at 1.9 s all come back throttled at 2 s.
        assert!(pacer.on_congestion(ms(1900), ms(2000), &config));
        let after_first = pacer.rate(ms(2000), &config).unwrap();
        for _ in 0..15 {
            assert!(!pacer.on_congestion(ms(1900), ms(2000), &config));
        }
        assert_eq!(pacer.rate(ms(2000), &config), Some(after_first));
        assert!((after_first - 0.7 * measured).abs() < 1.0, "{after_first}");
        // An attempt sent after the decrease that is throttled too is a new event.
        assert!(pacer.on_congestion(ms(2100), ms(2200), &config));
        assert!(pacer.rate(ms(2200), &config).unwrap() < after_first);
    }

    #[test]
    fn the_rate_grows_back_along_the_cubic_curve_within_seconds() {
        let config = PacingConfig::default();
        let mut pacer = busy(30, &config);
        pacer.on_congestion(ms(1990), ms(2000), &config);
        let w_max = pacer.w_max;
        let cut = pacer.rate(ms(2000), &config).unwrap();
        // Keep sending at the limit so the measured rate follows it.
        let mut now = ms(2000);
        let mut back_at = None;
        while now < ms(20_000) {
            pacer.on_success(now, &config);
            if pacer.wait(now).is_zero() {
                pacer.take_slot(now, &config);
            }
            let rate = pacer.rate(now, &config);
            if back_at.is_none() && rate.is_none_or(|rate| rate >= w_max) {
                back_at = Some(now);
            }
            now += ms(10);
        }
        let back_at = back_at.expect("the rate comes back");
        let seconds = (back_at - ms(2000)).as_secs_f64();
        let k = (w_max * 0.3 / 0.4).cbrt();
        assert!(cut < w_max);
        assert!((seconds - k).abs() < 0.5, "back after {seconds} s, K = {k}");
    }

    #[test]
    fn a_hint_blocks_every_call_to_the_model() {
        let config = PacingConfig::default();
        let mut pacer = busy(20, &config);
        pacer.block(ms(2000), ms(2000));
        assert_eq!(pacer.rate(ms(2000), &config), None);
        assert_eq!(pacer.wait(ms(2500)), ms(1500));
        assert_eq!(pacer.wait(ms(4000)), ms(0));
        assert_eq!(pacer.blocked_until(), ms(4000));
    }

    #[test]
    fn paced_calls_are_spaced_by_the_rate() {
        let config = PacingConfig::default();
        let mut pacer = busy(20, &config);
        pacer.on_congestion(ms(1990), ms(2000), &config);
        let interval = pacer.interval(ms(2000), &config);
        assert!(interval > ms(50), "{interval:?}");
        pacer.take_slot(ms(2000), &config);
        let wait = pacer.wait(ms(2000));
        assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
    }

    #[test]
    fn the_first_throttle_with_no_history_uses_the_open_window() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        for _ in 0..16 {
            pacer.take_slot(ms(0), &config);
        }
        assert!(pacer.on_congestion(ms(0), ms(5), &config));
        let rate = pacer.rate(ms(5), &config).unwrap();
        // 16 calls in the first window: 32 a second, cut to 70 %.
        assert!((rate - 22.4).abs() < 0.5, "{rate}");
    }

    #[test]
    fn after_an_outage_calls_ramp_up_from_the_release_rate() {
        let config = PacingConfig::default();
        let mut pacer = Pacer::default();
        pacer.on_release(ms(10_000), &config);
        assert_eq!(pacer.interval(ms(10_000), &config), ms(100));
        // Held calls take every slot for two seconds: the rate doubles as it is used.
        let mut now = ms(10_000);
        let mut sent = 0;
        while now < ms(12_000) {
            if pacer.wait(now).is_zero() {
                pacer.take_slot(now, &config);
                sent += 1;
            }
            now += ms(1);
        }
        assert!(sent > 30, "the ramp grows: {sent} calls in 2 s");
        assert!(sent < 150, "not a herd: {sent} calls in 2 s");
        // Demand stops: the ramp outruns it and pacing switches off.
        pacer.on_success(ms(13_000), &config);
        pacer.take_slot(ms(13_000), &config);
        pacer.on_success(ms(13_600), &config);
        assert_eq!(pacer.rate(ms(13_600), &config), None);
    }

    #[test]
    fn absurd_settings_never_panic() {
        let config = PacingConfig {
            decrease: 0.999_999,
            cubic_scale: 1e-300,
            min_rate: 1e-300,
            release_rate: 1e300,
            measure_window: Duration::MAX,
        };
        let mut pacer = Pacer::default();
        pacer.take_slot(Duration::MAX, &config);
        pacer.on_congestion(Duration::ZERO, Duration::MAX, &config);
        pacer.block(Duration::MAX, Duration::MAX);
        let _ = pacer.interval(Duration::MAX, &config);
        pacer.on_release(Duration::MAX, &config);
        let _ = pacer.wait(Duration::MAX);
        let _ = pacer.interval(Duration::ZERO, &config);
    }
}
