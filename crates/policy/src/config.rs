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
//!
//! # [limits."deepseek/deepseek-r1"]   # proactive per-model limits; none by default
//! # rpm = 60              # requests per minute
//! # tpm = 100000          # tokens per minute (prompt and answer)
//! # burst = "1s"          # how far ahead of the steady pace calls may run
//! ```
//!
//! # Bounds
//!
//! [`PolicyConfig::validate`] (and so [`PolicyConfig::from_toml`]) rejects what cannot
//! work, naming the first offending key and, from TOML, its line: `` policy setting
//! `backoff.cap` (line 3): must be at most 24h ``.
//!
//! - **Every duration at most 24 h**: `deadline`, `hint_ceiling`, the backoff's `base`,
//!   `throttled_base`, `timeout_base` and `cap`, the breaker's `open_for`, `max_open_for`
//!   and `maintenance_for`. Every wait the policy asks for comes from one of them, so no
//!   decision or admission ever asks for more than a day (a longer server hint gives up at
//!   once instead). A day is the longest window any rate limit resets on; beyond it a
//!   caller is better served by a give-up with advice, and a model probed less than daily
//!   would stay unused long after it recovered.
//! - `max_attempts` and `breaker.failure_threshold` at least 1.
//! - `backoff.base` at most `backoff.cap` (the throttled and timeout bases are clamped to
//!   the cap instead); `backoff.multiplier` a finite number of at least 1.
//! - Each of the budget's costs at most `budget.capacity`.
//! - `breaker.open_for` at most `breaker.max_open_for`.
//! - Pacing: `decrease` above 0 and below 1; `cubic_scale` from 0.001 to 1000; `min_rate`
//!   from 0.001 to 1,000,000 calls a second (so a paced interval is at most 1000 s);
//!   `release_rate` from `min_rate` to 1,000,000; `measure_window` from 10 ms to 60 s.
//!   NaN and infinities are rejected everywhere.
//! - Limits, per model: `rpm` or `tpm` (or both) set; `rpm` from 1 to 10,000,000;
//!   `tpm` from 1 to 10,000,000,000; `burst` at most 60 s. Errors name the model:
//!   `` policy setting `limits."deepseek/deepseek-r1".rpm` (line 2): must be between 1
//!   and 10000000 requests a minute ``.
//!
//! Counts (attempts, costs, `max_held`) may be anything a `u32` holds: the arithmetic on
//! them saturates. A configuration that validates never makes the policy panic, whatever
//! the outcomes, server hints and times it is given (a property test checks it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Backoff, BreakerConfig, BudgetConfig, ModelLimits, PacingConfig};

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
    /// At most 24 h.
    #[serde(with = "humantime_serde")]
    pub deadline: Option<Duration>,
    /// The longest server-requested wait the client accepts; a longer hint gives up at once
    /// with the hint in the error rather than sleeping. Default 60 s. At most 24 h.
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
    /// Proactive rate limits per model key (`[limits."model-name"] rpm = 60, tpm =
    /// 100000`), enforced before sending by GCRA (see [`limits`](crate::limits)): a call
    /// that would exceed one waits at admission instead of provoking a 429. Each model of a
    /// call, fallbacks included, is held to its own entry; a model without one is not
    /// limited. Default: none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, ModelLimits>,
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
            limits: BTreeMap::new(),
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
    /// count, keep an outage from multiplying load. A 503 while the model recovers from
    /// an outage is congestion, not counted here: pacing bounds those retries, with `max_attempts` and
    /// the deadline (see [`Pacer`](crate::Pacer)).
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

/// The longest any duration setting may be. Every wait the policy asks for comes from one
/// of them (a backoff up to `cap`, a server hint up to `hint_ceiling`, a hold behind an
/// open breaker), so no decision asks a caller to sleep longer than a day.
const LONGEST_SETTING: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a policy configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML could not be read: a syntax error, an unknown key, a wrong type.
    #[cfg(feature = "toml")]
    #[error("invalid policy config")]
    Toml(#[source] toml::de::Error),
    /// A value is out of its allowed range, or does not fit with another setting.
    ///
    /// Reads `` policy setting `backoff.cap` (line 3): must be at most 24h ``; the line is
    /// there when the configuration was read with [`PolicyConfig::from_toml`]. For a
    /// model's limit it names the model: `` policy setting `limits."some/model".rpm` ``.
    #[error("policy setting `{}`{}: {problem}", key_path(.field, .model), on_line(.line))]
    #[non_exhaustive]
    OutOfRange {
        /// The offending key, as dotted TOML path (as written, for an alias); for a
        /// model's limit, without the model (`limits.rpm`, `limits.tpm`, `limits.burst`).
        field: &'static str,
        /// For a model's limit, the model key it is set under.
        model: Option<String>,
        /// What is wrong with it.
        problem: &'static str,
        /// The line of the key in the TOML text, counted from 1; `None` for a
        /// configuration built in code (or a key left out of the text).
        line: Option<usize>,
        /// The column the key starts at on that line, counted from 1 in characters.
        column: Option<usize>,
    },
}

/// The key as a user writes it: `limits.rpm` of model `m` is `limits."m".rpm`.
fn key_path(field: &str, model: &Option<String>) -> String {
    match (model, field.split_once('.')) {
        (Some(model), Some((table, key))) => format!("{table}.{model:?}.{key}"),
        _ => field.to_owned(),
    }
}

/// ` (line N)`, or nothing when the line is unknown.
fn on_line(line: &Option<usize>) -> OnLine {
    OnLine(*line)
}

struct OnLine(Option<usize>);

impl std::fmt::Display for OnLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
    }
}

/// One range a configuration keeps to.
#[derive(Clone, Copy, Debug)]
struct Rule {
    ok: bool,
    field: &'static str,
    problem: &'static str,
    /// For a rule between two settings: the other one, and the problem as seen from it,
    /// reported instead when only the other one is written in the TOML text.
    other: Option<(&'static str, &'static str)>,
}

impl Rule {
    const fn new(ok: bool, field: &'static str, problem: &'static str) -> Self {
        Self {
            ok,
            field,
            problem,
            other: None,
        }
    }

    fn at_most_a_day(value: Duration, field: &'static str) -> Self {
        Self::new(value <= LONGEST_SETTING, field, "must be at most 24h")
    }

    const fn or_else(mut self, field: &'static str, problem: &'static str) -> Self {
        self.other = Some((field, problem));
        self
    }

    fn error(
        field: &'static str,
        problem: &'static str,
        at: Option<(usize, usize)>,
    ) -> ConfigError {
        ConfigError::OutOfRange {
            field,
            model: None,
            problem,
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
        }
    }

    /// The error, at the key's place in `text` (the other setting's, when only that one
    /// is written there).
    #[cfg(feature = "toml")]
    fn located(self, text: &str) -> ConfigError {
        let Ok(document) = toml::de::DeTable::parse(text) else {
            return Self::error(self.field, self.problem, None);
        };
        std::iter::once((self.field, self.problem))
            .chain(self.other)
            .find_map(|(field, problem)| {
                let (written, offset) = key_offset(document.get_ref(), field)?;
                Some(Self::error(
                    written,
                    problem,
                    Some(line_and_column(text, offset)),
                ))
            })
            .unwrap_or_else(|| Self::error(self.field, self.problem, None))
    }
}

/// A model's limit out of range: `[limits."model"] key`.
struct BrokenLimit<'a> {
    model: &'a str,
    /// The key under the model's table: `rpm`, `tpm` or `burst`.
    key: &'static str,
    problem: &'static str,
}

impl BrokenLimit<'_> {
    fn error(&self, at: Option<(usize, usize)>) -> ConfigError {
        let field = match self.key {
            "rpm" => "limits.rpm",
            "tpm" => "limits.tpm",
            _ => "limits.burst",
        };
        ConfigError::OutOfRange {
            field,
            model: Some(self.model.to_owned()),
            problem: self.problem,
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
        }
    }

    /// The error at the key's place in `text` (the model's table, when the key is not
    /// written).
    #[cfg(feature = "toml")]
    fn located(&self, text: &str) -> ConfigError {
        let Ok(document) = toml::de::DeTable::parse(text) else {
            return self.error(None);
        };
        let offset = path_offset(document.get_ref(), ["limits", self.model, self.key])
            .or_else(|| path_offset(document.get_ref(), ["limits", self.model]));
        self.error(offset.map(|offset| line_and_column(text, offset)))
    }
}

/// Where the key `field` (a dotted path) starts in `document`, and its name as written
/// (an alias, if that is what the text uses).
#[cfg(feature = "toml")]
fn key_offset(
    document: &toml::de::DeTable<'_>,
    field: &'static str,
) -> Option<(&'static str, usize)> {
    const ALIASES: [(&str, &str); 1] = [("budget.transient_cost", "budget.retry_cost")];
    let alias = ALIASES
        .iter()
        .find(|(name, _)| *name == field)
        .map(|&(_, alias)| alias);
    [Some(field), alias]
        .into_iter()
        .flatten()
        .find_map(|name| Some((name, path_offset(document, name.split('.'))?)))
}

/// Where the key at the end of `path` (its segments) starts in `document`.
#[cfg(feature = "toml")]
fn path_offset<'a>(
    document: &toml::de::DeTable<'_>,
    path: impl IntoIterator<Item = &'a str>,
) -> Option<usize> {
    let mut table = document;
    let mut segments = path.into_iter().peekable();
    while let Some(segment) = segments.next() {
        let (key, value) = table.iter().find(|(key, _)| key.get_ref() == segment)?;
        if segments.peek().is_none() {
            return Some(key.span().start);
        }
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => return None,
        }
    }
    None
}

/// The line and column (both from 1, the column in characters) of byte `offset` in `text`.
#[cfg(feature = "toml")]
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |line| line.chars().count());
    (before.matches('\n').count() + 1, column + 1)
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
    ///
    /// let error = novita_policy::PolicyConfig::from_toml("[backoff]\nbase = \"1s\"\ncap = \"2d\"").unwrap_err();
    /// assert_eq!(error.to_string(), "policy setting `backoff.cap` (line 3): must be at most 24h");
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Toml`] for unreadable TOML, unknown keys and wrong types;
    /// [`ConfigError::OutOfRange`] for values [`validate`](Self::validate) rejects, with
    /// the line and column of the key. When a value does not fit with another setting
    /// that the text leaves at its default (`cap = "50ms"` under the default 100 ms
    /// `base`), the error names the key that is written.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(ConfigError::Toml)?;
        if let Some(rule) = config.broken_rule() {
            return Err(rule.located(text));
        }
        if let Some(limit) = config.broken_limit() {
            return Err(limit.located(text));
        }
        Ok(config)
    }

    /// Checks the ranges a sensible configuration keeps to (the module documentation
    /// lists them): what passes never makes the policy panic nor ask for a wait longer
    /// than a day.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first offending field (without a line).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rule) = self.broken_rule() {
            return Err(Rule::error(rule.field, rule.problem, None));
        }
        if let Some(limit) = self.broken_limit() {
            return Err(limit.error(None));
        }
        Ok(())
    }

    /// The first model whose limits break a range, in key order.
    fn broken_limit(&self) -> Option<BrokenLimit<'_>> {
        self.limits.iter().find_map(|(model, limits)| {
            let (key, problem) = limits.broken_rule()?;
            Some(BrokenLimit {
                model,
                key,
                problem,
            })
        })
    }

    /// The first rule this configuration breaks, in the order of the documented example.
    fn broken_rule(&self) -> Option<Rule> {
        let (backoff, budget, breaker, pacing) =
            (&self.backoff, &self.budget, &self.breaker, &self.pacing);
        let cost_rule = |cost: u32, field: &'static str, problem: &'static str| {
            Rule::new(
                cost <= budget.capacity,
                field,
                "must not exceed budget.capacity",
            )
            .or_else("budget.capacity", problem)
        };
        let rules = [
            Rule::new(self.max_attempts >= 1, "max_attempts", "must be at least 1"),
            Rule::at_most_a_day(self.deadline.unwrap_or_default(), "deadline"),
            Rule::at_most_a_day(self.hint_ceiling, "hint_ceiling"),
            Rule::at_most_a_day(backoff.base, "backoff.base"),
            Rule::at_most_a_day(backoff.throttled_base, "backoff.throttled_base"),
            Rule::at_most_a_day(backoff.timeout_base, "backoff.timeout_base"),
            Rule::at_most_a_day(backoff.cap, "backoff.cap"),
            // The throttled and timeout bases are clamped to the cap rather than checked
            // against it, so lowering `cap` alone keeps working.
            Rule::new(
                backoff.base <= backoff.cap,
                "backoff.base",
                "must not exceed backoff.cap",
            )
            .or_else("backoff.cap", "must not be below backoff.base"),
            Rule::new(
                backoff.multiplier.is_finite() && backoff.multiplier >= 1.0,
                "backoff.multiplier",
                "must be a finite number of at least 1",
            ),
            cost_rule(
                budget.throttled_cost,
                "budget.throttled_cost",
                "must be at least budget.throttled_cost",
            ),
            cost_rule(
                budget.transient_cost,
                "budget.transient_cost",
                "must be at least budget.transient_cost",
            ),
            cost_rule(
                budget.timeout_cost,
                "budget.timeout_cost",
                "must be at least budget.timeout_cost",
            ),
            Rule::new(
                breaker.failure_threshold >= 1,
                "breaker.failure_threshold",
                "must be at least 1",
            ),
            Rule::at_most_a_day(breaker.open_for, "breaker.open_for"),
            Rule::at_most_a_day(breaker.max_open_for, "breaker.max_open_for"),
            Rule::new(
                breaker.open_for <= breaker.max_open_for,
                "breaker.open_for",
                "must not exceed breaker.max_open_for",
            )
            .or_else("breaker.max_open_for", "must not be below breaker.open_for"),
            Rule::at_most_a_day(breaker.maintenance_for, "breaker.maintenance_for"),
            Rule::new(
                pacing.decrease > 0.0 && pacing.decrease < 1.0,
                "pacing.decrease",
                "must be above 0 and below 1",
            ),
            Rule::new(
                pacing.cubic_scale.is_finite()
                    && pacing.cubic_scale >= 1e-3
                    && pacing.cubic_scale <= 1e3,
                "pacing.cubic_scale",
                "must be between 0.001 and 1000",
            ),
            Rule::new(
                pacing.min_rate.is_finite() && pacing.min_rate >= 1e-3 && pacing.min_rate <= 1e6,
                "pacing.min_rate",
                "must be between 0.001 and 1000000 calls a second",
            ),
            Rule::new(
                pacing.release_rate.is_finite() && pacing.release_rate <= 1e6,
                "pacing.release_rate",
                "must be a number of at most 1000000 calls a second",
            ),
            Rule::new(
                pacing.release_rate >= pacing.min_rate,
                "pacing.release_rate",
                "must be at least pacing.min_rate",
            )
            .or_else("pacing.min_rate", "must not exceed pacing.release_rate"),
            Rule::new(
                pacing.measure_window >= Duration::from_millis(10)
                    && pacing.measure_window <= Duration::from_secs(60),
                "pacing.measure_window",
                "must be between 10ms and 60s",
            ),
        ];
        rules.into_iter().find(|rule| !rule.ok)
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
            ("[budget]\ncapacity = 3", "budget.capacity"),
            (
                "[budget]\ncapacity = 3\ntransient_cost = 4",
                "budget.transient_cost",
            ),
            ("[budget]\nretry_cost = 501", "budget.retry_cost"),
            ("deadline = \"25h\"", "deadline"),
            ("hint_ceiling = \"2d\"", "hint_ceiling"),
            (
                "[backoff]\ntimeout_base = \"1000y\"",
                "backoff.timeout_base",
            ),
            ("[backoff]\ncap = \"50ms\"", "backoff.cap"),
            ("[breaker]\nmax_open_for = \"1s\"", "breaker.max_open_for"),
            (
                "[breaker]\nmaintenance_for = \"24h 1ns\"",
                "breaker.maintenance_for",
            ),
            ("[pacing]\nrelease_rate = nan", "pacing.release_rate"),
            ("[pacing]\nmin_rate = 20.0", "pacing.min_rate"),
            ("[backoff]\nmultiplier = inf", "backoff.multiplier"),
        ] {
            let error = PolicyConfig::from_toml(text).unwrap_err();
            match error {
                ConfigError::OutOfRange { field: found, .. } => assert_eq!(found, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    fn out_of_range(text: &str) -> (String, &'static str, Option<usize>, Option<usize>) {
        match PolicyConfig::from_toml(text).unwrap_err() {
            error @ ConfigError::OutOfRange {
                field,
                line,
                column,
                ..
            } => (error.to_string(), field, line, column),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn out_of_range_errors_name_the_key_and_its_line() {
        let (message, field, line, column) =
            out_of_range("# limits\n[backoff]\nbase = \"1s\"\ncap = \"48h\"\n");
        assert_eq!(
            message,
            "policy setting `backoff.cap` (line 4): must be at most 24h"
        );
        assert_eq!((field, line, column), ("backoff.cap", Some(4), Some(1)));

        // Dotted keys, inline tables, indentation, CRLF and non-ASCII text before the key.
        let (message, _, line, column) = out_of_range("# é\r\n  backoff.cap = \"48h\"");
        assert_eq!(
            message,
            "policy setting `backoff.cap` (line 2): must be at most 24h"
        );
        assert_eq!((line, column), (Some(2), Some(11)));
        let (message, _, line, column) = out_of_range(
            "max_attempts = 2\nbreaker = { open_for = \"1s\", failure_threshold = 0 }",
        );
        assert_eq!(
            message,
            "policy setting `breaker.failure_threshold` (line 2): must be at least 1"
        );
        assert_eq!((line, column), (Some(2), Some(30)));

        // Between two settings, the error names the one that is written.
        let (message, ..) = out_of_range("[backoff]\ncap = \"50ms\"");
        assert_eq!(
            message,
            "policy setting `backoff.cap` (line 2): must not be below backoff.base"
        );
        let (message, ..) = out_of_range("[backoff]\nbase = \"5s\"\ncap = \"1s\"");
        assert_eq!(
            message,
            "policy setting `backoff.base` (line 2): must not exceed backoff.cap"
        );

        // Built in code, there is no line.
        let mut config = PolicyConfig::default();
        config.backoff.cap = Duration::from_secs(86_401);
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "policy setting `backoff.cap`: must be at most 24h"
        );
    }

    #[test]
    fn the_historical_panics_are_rejected_up_front() {
        // One 503 under this panicked in backoff.rs ("cannot convert float seconds to
        // Duration"); the backoff now saturates, and validation refuses the setting.
        let (message, ..) = out_of_range(
            "[backoff]\nbase = \"18446744073709551615s\"\ncap = \"18446744073709551615s\"\njitter = \"none\"",
        );
        assert_eq!(
            message,
            "policy setting `backoff.base` (line 2): must be at most 24h"
        );
        // The other (`slowdown = 1e300` in pacing.rs) has no key left; its heirs are
        // bounded.
        let (message, ..) = out_of_range("[pacing]\ncubic_scale = 1e300");
        assert_eq!(
            message,
            "policy setting `pacing.cubic_scale` (line 2): must be between 0.001 and 1000"
        );
    }

    #[test]
    fn documented_examples_and_the_bounds_themselves_are_valid() {
        // The top-level README's example.
        PolicyConfig::from_toml(
            "deadline = \"2m\"\nhint_ceiling = \"30s\"\n[backoff]\njitter = \"full\"\n[budget]\ncapacity = 200",
        )
        .unwrap();
        PolicyConfig::from_toml(
            r#"
            deadline = "24h"
            hint_ceiling = "24h"
            [backoff]
            base = "24h"
            throttled_base = "24h"
            timeout_base = "24h"
            cap = "24h"
            multiplier = 1.0
            [breaker]
            open_for = "24h"
            max_open_for = "24h"
            maintenance_for = "24h"
            [pacing]
            decrease = 0.999
            cubic_scale = 1000.0
            min_rate = 0.001
            release_rate = 1000000.0
            measure_window = "60s"
            "#,
        )
        .unwrap();
    }

    #[test]
    fn reads_per_model_limits() {
        let config = PolicyConfig::from_toml(
            r#"
            [limits."deepseek/deepseek-r1"]
            rpm = 60
            tpm = 100000
            [limits."meta-llama/llama-3.1-8b-instruct"]
            tpm = 5000
            burst = "10s"
            "#,
        )
        .unwrap();
        let r1 = config.limits["deepseek/deepseek-r1"];
        assert_eq!((r1.rpm, r1.tpm), (Some(60), Some(100_000)));
        assert_eq!(r1.burst, Duration::from_secs(1), "the default burst");
        let llama = config.limits["meta-llama/llama-3.1-8b-instruct"];
        assert_eq!((llama.rpm, llama.tpm), (None, Some(5_000)));
        assert_eq!(llama.burst, Duration::from_secs(10));
        assert!(PolicyConfig::default().limits.is_empty());
        let message = toml_error(
            "[limits.m]
rps = 3",
        );
        assert!(message.contains("unknown field `rps`"), "{message}");
        let text = toml::to_string(&config).unwrap();
        assert_eq!(PolicyConfig::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn out_of_range_limits_name_the_model_and_the_line() {
        let (message, field, line, column) =
            out_of_range("max_attempts = 3\n[limits.\"deepseek/deepseek-r1\"]\nrpm = 0\n");
        assert_eq!(
            message,
            "policy setting `limits.\"deepseek/deepseek-r1\".rpm` (line 3): must be between 1 and 10000000 requests a minute"
        );
        assert_eq!((field, line, column), ("limits.rpm", Some(3), Some(1)));
        for (text, field) in [
            ("[limits.m]\nrpm = 10000001", "limits.rpm"),
            ("[limits.m]\ntpm = 0", "limits.tpm"),
            ("[limits.m]\ntpm = 10000000001", "limits.tpm"),
            ("[limits.m]\nrpm = 1\nburst = \"61s\"", "limits.burst"),
        ] {
            assert_eq!(out_of_range(text).1, field, "{text}");
        }
        // Neither limit: the error points at the model's table.
        let (message, _, line, _) = out_of_range("\n[limits.\"a.b\"]\nburst = \"2s\"");
        assert_eq!(
            message,
            "policy setting `limits.\"a.b\".rpm` (line 2): must be set, or tpm (a limit without either does nothing)"
        );
        assert_eq!(line, Some(2));
        // Inline tables, and built in code (no line).
        let (_, _, line, column) = out_of_range("limits = { m = { tpm = 0 } }");
        assert_eq!((line, column), (Some(1), Some(18)));
        let mut config = PolicyConfig::default();
        config
            .limits
            .insert("m".to_owned(), crate::ModelLimits::new(Some(0), None));
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "policy setting `limits.\"m\".rpm`: must be between 1 and 10000000 requests a minute"
        );
        // The bounds themselves are valid.
        PolicyConfig::from_toml(
            "[limits.a]\nrpm = 1\ntpm = 1\nburst = \"0s\"\n[limits.b]\nrpm = 10000000\ntpm = 10000000000\nburst = \"60s\"",
        )
        .unwrap();
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
