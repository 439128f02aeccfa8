//! Policy settings: built in code or read from TOML, with documented defaults.
//!
//! ```toml
//! # Every key is optional; these are the defaults.
//! max_attempts = 8
//! deadline = "5m"
//! hint_ceiling = "60s"
//! switch_to_streaming_on_timeout = true
//!
//! [attempts]          # attempts per kind of failure, on one model
//! throttled = 5
//! transient = 6
//! server_fault = 2
//! transport = 4
//!
//! [backoff]
//! base = "100ms"            # transient failures: 503, 500, refused connections
//! throttled_base = "1s"     # 429s without a hint
//! timeout_base = "500ms"    # 504s and client timeouts
//! cap = "20s"
//! multiplier = 2.0
//! jitter = "full"     # none | full | equal | decorrelated
//!
//! [budget]
//! capacity = 500
//! throttled_cost = 1
//! transient_cost = 14
//! timeout_cost = 20
//! success_deposit = 1
//!
//! [breaker]
//! failure_threshold = 10
//! open_for = "2s"
//! max_open_for = "16s"
//! when_open = "hold"  # hold | fail_fast
//! max_held = 1000
//! maintenance_for = "60s"
//!
//! [pacing]            # congestion control after 429s without a hint
//! decrease = 0.7
//! cubic_scale = 0.4
//! min_rate = 0.5
//! release_rate = 10.0
//! measure_window = "500ms"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Backoff, BreakerConfig, BudgetConfig, PacingConfig};

/// Everything the policy can be told. `PolicyConfig::default()` is the recommended setup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Attempts per call across every cause, fallback models included. Default 8: a hard
    /// stop however the per-kind limits combine.
    pub max_attempts: u32,
    /// The whole call, retries and waits included, must end within this; no retry is made
    /// whose wait would cross it. Default 5 minutes: one slow non-streaming generation
    /// (Novita advises client timeouts above 60 s) plus a streamed retry. `None`: no limit.
    #[serde(with = "humantime_serde")]
    pub deadline: Option<Duration>,
    /// The longest server-requested wait the client accepts; a longer hint gives up at once
    /// with the hint in the error rather than sleeping. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub hint_ceiling: Duration,
    /// Re-issue a non-streaming call as streaming after a 504 or a timeout (once).
    /// Default true, as Novita advises for long generations.
    pub switch_to_streaming_on_timeout: bool,
    /// Attempts per kind of failure on one model.
    pub attempts: AttemptLimits,
    /// Backoff for retries without a server hint.
    pub backoff: Backoff,
    /// The retry budget shared by all calls of a client.
    pub budget: BudgetConfig,
    /// The circuit breaker kept per model.
    pub breaker: BreakerConfig,
    /// Client-side pacing after repeated 429s.
    pub pacing: PacingConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            deadline: Some(Duration::from_secs(300)),
            hint_ceiling: Duration::from_secs(60),
            switch_to_streaming_on_timeout: true,
            attempts: AttemptLimits::default(),
            backoff: Backoff::default(),
            budget: BudgetConfig::default(),
            breaker: BreakerConfig::default(),
            pacing: PacingConfig::default(),
        }
    }
}

/// How many attempts each kind of failure may take on one model before the policy stops
/// retrying it (and falls back to another model where the catalog says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AttemptLimits {
    /// 429s. Default 5: enough to ride out a per-minute window with server hints.
    pub throttled: u32,
    /// 503, 504 and undocumented 5xx. Default 6: with 30 % of requests failing at random,
    /// six attempts succeed 99.93 % of the time. The retry budget and the breaker, not this
    /// count, keep an outage from multiplying load.
    pub transient: u32,
    /// 500s. Default 2: a crash rarely heals on the spot; the fallback model is better.
    pub server_fault: u32,
    /// Connection failures, resets and timeouts. Default 4.
    pub transport: u32,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self {
            throttled: 5,
            transient: 6,
            server_fault: 2,
            transport: 4,
        }
    }
}

/// Why a policy configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML could not be read: a syntax error, an unknown key, a wrong type.
    #[cfg(feature = "toml")]
    #[error("invalid policy config")]
    Toml(#[source] toml::de::Error),
    /// A value is out of its allowed range.
    #[error("invalid policy config: `{field}` {problem}")]
    OutOfRange {
        /// The offending key, as dotted TOML path.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl PolicyConfig {
    /// Reads a configuration from TOML; missing keys take their defaults, unknown keys are
    /// rejected (a typo must not silently fall back to a default).
    ///
    /// ```
    /// let config = novita_policy::PolicyConfig::from_toml("max_attempts = 3\n[backoff]\ncap = \"5s\"").unwrap();
    /// assert_eq!(config.max_attempts, 3);
    /// assert_eq!(config.backoff.cap, std::time::Duration::from_secs(5));
    ///
    /// let error = novita_policy::PolicyConfig::from_toml("max_atempts = 3").unwrap_err();
    /// assert!(std::error::Error::source(&error).unwrap().to_string().contains("max_atempts"));
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Toml`] for unreadable TOML, unknown keys and wrong types;
    /// [`ConfigError::OutOfRange`] for values [`validate`](Self::validate) rejects.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(ConfigError::Toml)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges a sensible configuration keeps to.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pacing = &self.pacing;
        let budget = &self.budget;
        let checks: [(bool, &'static str, &'static str); 11] = [
            (self.max_attempts >= 1, "max_attempts", "must be at least 1"),
            // The throttled and timeout bases are clamped to the cap rather than checked
            // against it, so lowering `cap` alone keeps working.
            (
                self.backoff.base <= self.backoff.cap,
                "backoff.base",
                "must not exceed backoff.cap",
            ),
            (
                self.backoff.multiplier.is_finite() && self.backoff.multiplier >= 1.0,
                "backoff.multiplier",
                "must be a finite number of at least 1",
            ),
            (
                self.breaker.failure_threshold >= 1,
                "breaker.failure_threshold",
                "must be at least 1",
            ),
            (
                self.breaker.open_for <= self.breaker.max_open_for,
                "breaker.open_for",
                "must not exceed breaker.max_open_for",
            ),
            (
                pacing.decrease > 0.0 && pacing.decrease < 1.0,
                "pacing.decrease",
                "must be above 0 and below 1",
            ),
            (
                pacing.cubic_scale.is_finite()
                    && pacing.cubic_scale >= 1e-3
                    && pacing.cubic_scale <= 1e3,
                "pacing.cubic_scale",
                "must be between 0.001 and 1000",
            ),
            (
                pacing.min_rate.is_finite() && pacing.min_rate >= 1e-3 && pacing.min_rate <= 1e6,
                "pacing.min_rate",
                "must be between 0.001 and 1000000 calls a second",
            ),
            (
                pacing.release_rate.is_finite()
                    && pacing.release_rate >= pacing.min_rate
                    && pacing.release_rate <= 1e6,
                "pacing.release_rate",
                "must be at least pacing.min_rate and at most 1000000 calls a second",
            ),
            (
                pacing.measure_window >= Duration::from_millis(10)
                    && pacing.measure_window <= Duration::from_secs(60),
                "pacing.measure_window",
                "must be between 10 ms and 60 s",
            ),
            (
                budget.throttled_cost <= budget.capacity
                    && budget.transient_cost <= budget.capacity
                    && budget.timeout_cost <= budget.capacity,
                "budget.transient_cost",
                "and budget.throttled_cost and budget.timeout_cost must not exceed budget.capacity",
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, field, problem)) => Err(ConfigError::OutOfRange { field, problem }),
            None => Ok(()),
        }
    }
}

#[cfg(all(test, feature = "toml"))]
mod tests {
    use super::*;
    use crate::Jitter;

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(
            PolicyConfig::from_toml("").unwrap(),
            PolicyConfig::default()
        );
    }

    #[test]
    fn the_documented_example_is_the_default() {
        let module_doc = include_str!("config.rs");
        let example: String = module_doc
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(example.contains("[pacing]"), "{example}");
        assert_eq!(
            PolicyConfig::from_toml(&example).unwrap(),
            PolicyConfig::default()
        );
    }

    #[test]
    fn reads_every_section() {
        let config = PolicyConfig::from_toml(
            r#"
            max_attempts = 3
            deadline = "90s"
            hint_ceiling = "2m"
            switch_to_streaming_on_timeout = false
            [attempts]
            throttled = 9
            [backoff]
            base = "100ms"
            jitter = "decorrelated"
            [budget]
            capacity = 50
            [breaker]
            open_for = "10s"
            [pacing]
            decrease = 0.5
            "#,
        )
        .unwrap();
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.deadline, Some(Duration::from_secs(90)));
        assert_eq!(config.hint_ceiling, Duration::from_secs(120));
        assert!(!config.switch_to_streaming_on_timeout);
        assert_eq!(config.attempts.throttled, 9);
        assert_eq!(
            config.attempts.transient, 6,
            "unset keys keep their defaults"
        );
        assert_eq!(config.backoff.base, Duration::from_millis(100));
        assert_eq!(config.backoff.jitter, Jitter::Decorrelated);
        assert_eq!(config.budget.capacity, 50);
        assert_eq!(config.breaker.open_for, Duration::from_secs(10));
        assert!((config.pacing.decrease - 0.5).abs() < f64::EPSILON);
    }

    fn toml_error(text: &str) -> String {
        let error = PolicyConfig::from_toml(text).unwrap_err();
        assert!(matches!(error, ConfigError::Toml(_)), "{error:?}");
        let source = std::error::Error::source(&error).expect("the TOML error is the source");
        format!("{error}: {source}")
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_clearly() {
        let message = toml_error("max_atempts = 3");
        assert!(message.contains("unknown field `max_atempts`"), "{message}");
        let message = toml_error("[backoff]\njiter = \"full\"");
        assert!(message.contains("unknown field `jiter`"), "{message}");
        let message = toml_error("[backoff]\njitter = \"wild\"");
        assert!(message.contains("wild"), "{message}");
        let message = toml_error("deadline = \"soon\"");
        assert!(message.contains("deadline"), "{message}");
        let message = toml_error("max_attempts = -1");
        assert!(message.contains("max_attempts"), "{message}");
        let message = toml_error("max_attempts = ");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        for (text, field) in [
            ("max_attempts = 0", "max_attempts"),
            ("[backoff]\nbase = \"1m\"\ncap = \"1s\"", "backoff.base"),
            ("[backoff]\nmultiplier = 0.5", "backoff.multiplier"),
            (
                "[breaker]\nfailure_threshold = 0",
                "breaker.failure_threshold",
            ),
            ("[pacing]\ndecrease = 1.0", "pacing.decrease"),
            ("[pacing]\nmin_rate = 0.0", "pacing.min_rate"),
            ("[pacing]\nrelease_rate = 0.1", "pacing.release_rate"),
            (
                "[pacing]\nmeasure_window = \"1ms\"",
                "pacing.measure_window",
            ),
            ("[breaker]\nopen_for = \"1m\"", "breaker.open_for"),
            ("[budget]\ncapacity = 3", "budget.transient_cost"),
        ] {
            let error = PolicyConfig::from_toml(text).unwrap_err();
            match error {
                ConfigError::OutOfRange { field: found, .. } => assert_eq!(found, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let text = toml::to_string(&PolicyConfig::default()).unwrap();
        assert_eq!(
            PolicyConfig::from_toml(&text).unwrap(),
            PolicyConfig::default()
        );
    }
}
