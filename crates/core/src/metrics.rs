//! Prometheus-style metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`).
//!
//! **The policy stays pure.** [`Policy::decide`](novita_policy::Policy::decide) and
//! [`Policy::admit`](novita_policy::Policy::admit) never record anything: this module is a
//! set of helpers the [`CallDriver`](crate::CallDriver) calls right after a decision or an
//! admission and when a call ends, so the recording code exists once for every adapter
//! (`novita-ureq` and `novita-reqwest` turn it on with their own `metrics` feature). The
//! library only emits through the facade; the application installs the recorder (an
//! exporter) it wants. Without the feature neither this module nor the `metrics` crate is
//! compiled.
//!
//! Every series carries `client`, the name the client's builder gave it (`.name(..)`,
//! default `"default"`), so several clients in one process keep their own series, gauges
//! included. Every label value is bounded: `client` by the clients an application builds;
//! `model` by [`Labels`]: the models a client was configured with (its fallback models and
//! the keys of its policy's `[limits]`) by name, any other model by name for the first
//! [`MAX_UNCONFIGURED_MODELS`] a client meets, then [`OTHER_MODEL`]; every other label comes
//! from a fixed vocabulary. No prompt, request id or message is ever a label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `novita_requests_total` | counter | `model`, `status`, `class` | every attempt that ended: `status` is the HTTP code (`"200"`, `"503"`) or `"transport"`; `class` is `"success"` below 400, the catalog class name for errors (`client_fault`, `auth`, `permission`, `throttled`, `transient`, `server_fault`, `unknown`), `"transport"` for transport failures |
//! | `novita_throttled_total` | counter | `model`, `limit` | every 429: `limit` is `"tpm"`, `"rpm"` or `"unknown"` |
//! | `novita_retries_total` | counter | `model`, `class` | every [`Decision::Retry`] |
//! | `novita_escalations_total` | counter | `model`, `action` | every [`Decision::Escalate`]: `action` is `"switch_to_streaming"`, `"fall_back"` or `"reduce_rate"` |
//! | `novita_calls_total` | counter | `model`, `outcome` | every logical call: `outcome` is `"success"` or `"gave_up"` (and `"error"` for a call whose successful response could not be used, see [`unusable`]) |
//! | `novita_give_ups_total` | counter | `model`, `reason`, `class` | every give-up: `reason` is the [`Stop`] in snake_case (`not_retryable`, `attempts_exhausted`, `hint_above_ceiling`, `past_deadline`, `budget_exhausted`, `circuit_open`, `not_an_http_status`); `class` as above, or `"none"` when no attempt had a response or a transport failure (a rejection at admission) |
//! | `novita_wait_seconds` | histogram | `model`, `kind` | every wait: `kind` is `"backoff"` for retry and escalation delays, `"pacing"` for [`Admission::Wait`] |
//! | `novita_call_duration_seconds` | histogram | `model`, `outcome` | wall time of each logical call |
//! | `novita_attempt_duration_seconds` | histogram | `model`, `status` | each attempt, from sending it to its outcome (see [`attempted`]) |
//! | `novita_tokens_total` | counter | `model`, `kind` | tokens an answer's usage reports: `kind` is `"prompt"` or `"completion"` (reasoning included), so their sum is what a TPM limit counts |
//! | `novita_reasoning_tokens_total` | counter | `model` | the part of the completion tokens spent reasoning, when the server says |
//! | `novita_retry_budget_tokens` | gauge | (`client` only) | tokens left in the client's retry budget after each decision |
//! | `novita_breaker_state` | gauge | `model`, `state` | one series per state (`closed`, `half_open`, `open`): `1` for the model's current state, `0` for the others, after each decision or admission on that model |
//! | `novita_pacing_interval_seconds` | gauge | `model` | the model's pacing interval after each decision (`0` when not paced) |
//! | `novita_store_fallbacks_total` | counter | (`client` only) | outages of the shared state store, each met by going on with the client's own state |
//!
//! The histograms' buckets are in [`HISTOGRAM_BUCKETS`], for exporters that need them
//! (`metrics-exporter-prometheus` renders a histogram without buckets as a summary).
//!
//! For calls, `model` is the model the last attempt went to (the fallback that answered,
//! or the one the policy gave up on).
//!
//! The driver calls, each under `#[cfg(feature = "metrics")]`:
//!
//! ```text
//! describe_once();                                   // before the first call
//! let series = core.metric_labels().series(model);   // once per model of the call
//! let admission = policy.admit(&mut state, &mut call, model, now);
//! metrics::admitted(&state, model, &series, &admission, now); // pacing waits, breaker
//! let decision = policy.decide(&mut state, &mut call, model, &outcome, clock, draw);
//! metrics::decided(&state, model, &series, &outcome, &decision, clock.now);
//! metrics::succeeded(&series, report.elapsed);       // the call answered
//! metrics::gave_up(&series, &give_up);               // the call gave up (decided or rejected)
//! metrics::attempted(&series, status, elapsed);      // an attempt's outcome reached the driver
//! metrics::tokens(&series, &usage);                  // the answer's usage, once per call
//! metrics::unusable(&series, status, elapsed);       // a success status, unusable body
//! metrics::store_failed(labels.client());            // a shared-store outage began
//! ```
//!
//! The model a policy call is about (`model`, the key of the client's state) and its label
//! (`series`) are passed apart: past the cap, many models share the label `other`.
//!
//! The same table is in `crates/core/METRICS.md`.

use std::collections::HashMap;
use std::sync::{Arc, Once, PoisonError, RwLock};
use std::time::Duration;

use metrics::{
    SharedString, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use novita_policy::catalog::RateLimit;

use novita_policy::{
    Action, Admission, BreakerState, ClientState, Decision, GiveUp, Outcome, Stop,
};

use crate::wire::Usage;

/// Counter: every attempt that ended (`client`, `model`, `status`, `class`).
pub const REQUESTS_TOTAL: &str = "novita_requests_total";
/// Counter: every 429 (`client`, `model`, `limit`).
pub const THROTTLED_TOTAL: &str = "novita_throttled_total";
/// Counter: every retry decision (`client`, `model`, `class`).
pub const RETRIES_TOTAL: &str = "novita_retries_total";
/// Counter: every escalation decision (`client`, `model`, `action`).
pub const ESCALATIONS_TOTAL: &str = "novita_escalations_total";
/// Counter: every logical call (`client`, `model`, `outcome`).
pub const CALLS_TOTAL: &str = "novita_calls_total";
/// Counter: every give-up (`client`, `model`, `reason`, `class`).
pub const GIVE_UPS_TOTAL: &str = "novita_give_ups_total";
/// Histogram, seconds: every wait between attempts (`client`, `model`, `kind`).
pub const WAIT_SECONDS: &str = "novita_wait_seconds";
/// Histogram, seconds: wall time of each logical call (`client`, `model`, `outcome`).
pub const CALL_DURATION_SECONDS: &str = "novita_call_duration_seconds";
/// Gauge: tokens left in the client's retry budget (`client`).
pub const RETRY_BUDGET_TOKENS: &str = "novita_retry_budget_tokens";
/// Gauge: a model's circuit breaker, one series per state, 1 for the current one and 0
/// for the others (`client`, `model`, `state`: `closed`, `half_open`, `open`).
pub const BREAKER_STATE: &str = "novita_breaker_state";
/// Gauge, seconds: a model's pacing interval, 0 when not paced (`client`, `model`).
pub const PACING_INTERVAL_SECONDS: &str = "novita_pacing_interval_seconds";
/// Histogram, seconds: each attempt, from sending it to its outcome (`client`, `model`,
/// `status`).
pub const ATTEMPT_DURATION_SECONDS: &str = "novita_attempt_duration_seconds";
/// Counter: tokens an answer's usage reports (`client`, `model`, `kind`: `prompt` or
/// `completion`).
pub const TOKENS_TOTAL: &str = "novita_tokens_total";
/// Counter: the completion tokens spent reasoning, when the server says (`client`,
/// `model`).
pub const REASONING_TOKENS_TOTAL: &str = "novita_reasoning_tokens_total";
/// Counter: times a client's shared state store failed and the client went on with its own
/// state (once per outage, not per call; `client`).
pub const STORE_FALLBACKS_TOTAL: &str = "novita_store_fallbacks_total";

/// The most models outside its configuration a client labels by name: past them, any model
/// it has not met yet is labelled [`OTHER_MODEL`]. The models it was configured with (its
/// fallback models and the keys of its policy's `[limits]`) are always labelled by name and
/// do not count. Requests name their model freely, so without a cap a client fed model
/// names from its callers would create series without bound.
pub const MAX_UNCONFIGURED_MODELS: usize = 32;

/// The `model` label of every model past [`MAX_UNCONFIGURED_MODELS`].
pub const OTHER_MODEL: &str = "other";

/// The label values of one client's metrics: its name (`client`) and the bounded `model`
/// labels. A [`ClientCore`](crate::ClientCore) keeps one; the
/// [`CallDriver`](crate::CallDriver) asks it for a [`Series`] once per model of a call, so
/// recording allocates no label string.
#[derive(Debug)]
pub struct Labels {
    client: SharedString,
    /// The configured models: read without a lock.
    configured: HashMap<String, SharedString>,
    /// The other models met so far, at most [`MAX_UNCONFIGURED_MODELS`]; a read lock on
    /// the common path, a write lock only the first time a model is met.
    met: RwLock<HashMap<String, SharedString>>,
}

impl Labels {
    /// The labels of the client named `client`, configured with the models `configured`.
    pub fn new<'a>(client: &str, configured: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            client: shared(client),
            configured: configured
                .into_iter()
                .map(|model| (model.to_owned(), shared(model)))
                .collect(),
            met: RwLock::new(HashMap::new()),
        }
    }

    /// The `client` label.
    #[must_use]
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The label values of the series about `model`: the client's name, and `model` itself
    /// when it is configured or among the first [`MAX_UNCONFIGURED_MODELS`] others met,
    /// [`OTHER_MODEL`] otherwise.
    #[must_use]
    pub fn series(&self, model: &str) -> Series {
        Series {
            client: self.client.clone(),
            model: self.model(model),
        }
    }

    fn model(&self, model: &str) -> SharedString {
        if let Some(label) = self.configured.get(model) {
            return label.clone();
        }
        {
            let met = self.met.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(label) = met.get(model) {
                return label.clone();
            }
            if met.len() >= MAX_UNCONFIGURED_MODELS {
                return SharedString::const_str(OTHER_MODEL);
            }
        }
        let mut met = self.met.write().unwrap_or_else(PoisonError::into_inner);
        // Another call may have taken the last place, or named the model, meanwhile.
        if let Some(label) = met.get(model) {
            return label.clone();
        }
        if met.len() >= MAX_UNCONFIGURED_MODELS {
            return SharedString::const_str(OTHER_MODEL);
        }
        let label = shared(model);
        met.insert(model.to_owned(), label.clone());
        label
    }
}

/// The `client` and `model` label values of the series about one model of one client;
/// cloning one clones two reference counts.
#[derive(Clone, Debug)]
pub struct Series {
    client: SharedString,
    model: SharedString,
}

impl Series {
    /// The `client` label.
    #[must_use]
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The `model` label: the model's name, or [`OTHER_MODEL`].
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }
}

/// A label value shared by reference count, so every series that carries it clones a
/// pointer rather than the text.
fn shared(value: &str) -> SharedString {
    SharedString::from(Arc::<str>::from(value))
}

/// Bucket upper bounds, in seconds, of `novita_call_duration_seconds`: from a quick answer
/// to the policy's default 5-minute deadline (a call cannot outlast its deadline, except a
/// stream the caller asked for, which `+Inf` holds), finest where LLM answers land.
pub const CALL_DURATION_BUCKETS: [f64; 14] = [
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0,
];

/// Bucket upper bounds, in seconds, of `novita_attempt_duration_seconds`: from a fast
/// failure (a refused connection, an immediate 429) to the default 120 s request timeout.
pub const ATTEMPT_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0,
];

/// Bucket upper bounds, in seconds, of `novita_wait_seconds`: from the shortest jittered
/// backoff to the default 60 s hint ceiling and the pacing and breaker holds beyond it.
pub const WAIT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 300.0,
];

/// The buckets of every histogram this module records, by metric name.
///
/// `metrics-exporter-prometheus` renders a histogram as a summary (quantiles computed in
/// the process, which cannot be aggregated across processes) unless it is given buckets;
/// with these, it renders `_bucket` series that `histogram_quantile` aggregates:
///
/// ```text
/// let mut builder = PrometheusBuilder::new();
/// for (name, buckets) in novita_core::metrics::HISTOGRAM_BUCKETS {
///     builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)?;
/// }
/// ```
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 3] = [
    (CALL_DURATION_SECONDS, &CALL_DURATION_BUCKETS),
    (ATTEMPT_DURATION_SECONDS, &ATTEMPT_DURATION_BUCKETS),
    (WAIT_SECONDS, &WAIT_BUCKETS),
];

/// Describes every metric (one-line help text and unit) to the installed recorder.
///
/// Call it after installing the recorder; describing again is harmless.
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Attempts that ended, by model, HTTP status (or transport) and error class."
    );
    describe_counter!(
        THROTTLED_TOTAL,
        Unit::Count,
        "429 responses, by model and the rate limit hit (tpm, rpm or unknown)."
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Retries the policy decided, by model and error class."
    );
    describe_counter!(
        ESCALATIONS_TOTAL,
        Unit::Count,
        "Escalations the policy decided (switch to streaming, fall back, reduce rate), by model."
    );
    describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Logical calls that ended, by model and outcome."
    );
    describe_counter!(
        GIVE_UPS_TOTAL,
        Unit::Count,
        "Calls the policy gave up on, by model, reason and error class."
    );
    describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "Waits between attempts, by model and kind (backoff or pacing)."
    );
    describe_histogram!(
        CALL_DURATION_SECONDS,
        Unit::Seconds,
        "Wall time of each logical call, waits included, by model and outcome."
    );
    describe_gauge!(
        RETRY_BUDGET_TOKENS,
        Unit::Count,
        "Tokens left in the client's retry budget after the latest decision."
    );
    describe_gauge!(
        BREAKER_STATE,
        Unit::Count,
        "A model's circuit breaker: 1 on the series of its current state (closed, half_open, open), 0 on the others."
    );
    describe_gauge!(
        PACING_INTERVAL_SECONDS,
        Unit::Seconds,
        "A model's client-side pacing interval between call starts; 0 when not paced."
    );
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        Unit::Seconds,
        "Each attempt, from sending it to its outcome, by model and HTTP status (or transport)."
    );
    describe_counter!(
        TOKENS_TOTAL,
        Unit::Count,
        "Tokens answers' usage reports, by model and kind (prompt or completion, reasoning included)."
    );
    describe_counter!(
        REASONING_TOKENS_TOTAL,
        Unit::Count,
        "Completion tokens spent reasoning, by model, when the server reports them."
    );
    describe_counter!(
        STORE_FALLBACKS_TOTAL,
        Unit::Count,
        "Outages of the shared state store, each met by going on with the client's own state."
    );
}

/// [`describe`], once per process: what the adapters call before their first call, so the
/// descriptions reach the recorder installed by then.
pub fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

/// Records the attempt that ended with `outcome` on `model` (labelled as `series`) and the
/// policy's `decision`: `novita_requests_total`, `novita_throttled_total` (429s),
/// `novita_retries_total` or `novita_escalations_total` with the backoff wait, and the
/// budget, breaker and pacing gauges read from `state` at `now`. Give-ups are counted by
/// [`gave_up`], which also covers rejections at admission.
pub fn decided(
    state: &ClientState,
    model: &str,
    series: &Series,
    outcome: &Outcome<'_>,
    decision: &Decision,
    now: Duration,
) {
    let (status, class) = match *outcome {
        Outcome::Transport(_) => (SharedString::const_str("transport"), "transport"),
        Outcome::Response { status, .. } => {
            let class = if status < 400 {
                "success"
            } else {
                // The class as the policy saw it: the status refined by the body's reason.
                let entry = match decision {
                    Decision::GiveUp(give_up) => give_up.entry,
                    Decision::Retry { cause, .. } | Decision::Escalate { cause, .. } => cause.entry,
                    Decision::Done => None,
                };
                entry.map_or("unknown", |entry| entry.class.name())
            };
            (status_label(status), class)
        }
    };
    request(series, status, class);

    if matches!(*outcome, Outcome::Response { status: 429, .. }) {
        let rate_limit = match decision {
            Decision::Retry { cause, .. } | Decision::Escalate { cause, .. } => cause.rate_limit,
            Decision::GiveUp(give_up) => give_up.rate_limit,
            Decision::Done => None,
        };
        let limit = limit_label(rate_limit);
        counter!(
            THROTTLED_TOTAL,
            "client" => series.client.clone(),
            "model" => series.model.clone(),
            "limit" => limit
        )
        .increment(1);
    }

    match decision {
        Decision::Retry { delay, .. } => {
            counter!(
                RETRIES_TOTAL,
                "client" => series.client.clone(),
                "model" => series.model.clone(),
                "class" => class
            )
            .increment(1);
            wait(series, "backoff", *delay);
        }
        Decision::Escalate { action, delay, .. } => {
            let action = action_label(*action);
            counter!(
                ESCALATIONS_TOTAL,
                "client" => series.client.clone(),
                "model" => series.model.clone(),
                "action" => action
            )
            .increment(1);
            wait(series, "backoff", *delay);
        }
        Decision::Done | Decision::GiveUp(_) => {}
    }

    gauge!(RETRY_BUDGET_TOKENS, "client" => series.client.clone())
        .set(f64::from(state.budget().tokens()));
    breaker(state, model, series, now);
    gauge!(
        PACING_INTERVAL_SECONDS,
        "client" => series.client.clone(),
        "model" => series.model.clone()
    )
    .set(state.pacing_interval(model, now).as_secs_f64());
}

/// Records what [`Policy::admit`](novita_policy::Policy::admit) answered for `model`
/// (labelled as `series`) at `now`: a pacing wait in `novita_wait_seconds` and the model's
/// breaker gauge. A rejection is counted by [`gave_up`].
pub fn admitted(
    state: &ClientState,
    model: &str,
    series: &Series,
    admission: &Admission,
    now: Duration,
) {
    if let Admission::Wait(delay) = admission {
        wait(series, "pacing", *delay);
    }
    breaker(state, model, series, now);
}

/// Records a call that answered: `novita_calls_total` and `novita_call_duration_seconds`
/// with outcome `success`. `series` is that of the model that answered.
pub fn succeeded(series: &Series, elapsed: Duration) {
    call(series, "success", elapsed);
}

/// Records one attempt from its sending to its outcome reaching the driver:
/// `novita_attempt_duration_seconds`, with `status` the HTTP status of the response (for a
/// stream, of its headers) or `None` for a transport failure (label `"transport"`).
pub fn attempted(series: &Series, status: Option<u16>, elapsed: Duration) {
    let status = status.map_or(SharedString::const_str("transport"), status_label);
    histogram!(
        ATTEMPT_DURATION_SECONDS,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "status" => status
    )
    .record(elapsed.as_secs_f64());
}

/// Records an answer's token usage (`series` of the model that answered):
/// `novita_tokens_total` with kind `prompt` and `completion` (both, zero included, so a
/// model's series exist together), and `novita_reasoning_tokens_total` when the server
/// reports reasoning tokens. Call it once per call: the counters add what they are given.
pub fn tokens(series: &Series, usage: &Usage) {
    counter!(
        TOKENS_TOTAL,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "kind" => "prompt"
    )
    .increment(usage.prompt_tokens);
    counter!(
        TOKENS_TOTAL,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "kind" => "completion"
    )
    .increment(usage.completion_tokens);
    if let Some(reasoning) = usage.reasoning_tokens() {
        counter!(
            REASONING_TOKENS_TOTAL,
            "client" => series.client.clone(),
            "model" => series.model.clone()
        )
        .increment(reasoning);
    }
}

/// Records the start of an outage of the shared store of the client named `client`:
/// `novita_store_fallbacks_total`.
pub fn store_failed(labels: &Labels) {
    counter!(STORE_FALLBACKS_TOTAL, "client" => labels.client.clone()).increment(1);
}

/// Records a call the policy gave up on, after an attempt or at admission:
/// `novita_give_ups_total`, and `novita_calls_total` and `novita_call_duration_seconds`
/// (from [`GiveUp::elapsed`]) with outcome `gave_up`. `series` is that of the model the
/// last attempt went to.
pub fn gave_up(series: &Series, give_up: &GiveUp) {
    let class = match (give_up.transport, give_up.status) {
        (Some(_), _) => "transport",
        (None, Some(_)) => give_up.entry.map_or("unknown", |entry| entry.class.name()),
        (None, None) => "none",
    };
    counter!(
        GIVE_UPS_TOTAL,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "reason" => stop_label(give_up.stop),
        "class" => class
    )
    .increment(1);
    call(series, "gave_up", give_up.elapsed);
}

/// Records a call whose last attempt got a success status (`status`, below 400) but whose
/// body could not be used (undecodable JSON, a stream that broke the protocol): the attempt
/// in `novita_requests_total` (class `success`: the exchange succeeded at the HTTP level,
/// and the policy was not asked), and the call with outcome `error`.
pub fn unusable(series: &Series, status: u16, elapsed: Duration) {
    request(series, status_label(status), "success");
    call(series, "error", elapsed);
}

fn request(series: &Series, status: SharedString, class: &'static str) {
    counter!(
        REQUESTS_TOTAL,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "status" => status,
        "class" => class
    )
    .increment(1);
}

fn call(series: &Series, outcome: &'static str, elapsed: Duration) {
    counter!(
        CALLS_TOTAL,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "outcome" => outcome
    )
    .increment(1);
    histogram!(
        CALL_DURATION_SECONDS,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
}

fn wait(series: &Series, kind: &'static str, delay: Duration) {
    histogram!(
        WAIT_SECONDS,
        "client" => series.client.clone(),
        "model" => series.model.clone(),
        "kind" => kind
    )
    .record(delay.as_secs_f64());
}

/// The values of the breaker's `state` label, in the order of the policy's states.
pub const BREAKER_STATES: [&str; 3] = ["closed", "half_open", "open"];

/// Sets the breaker series of `model`: 1 on its current state, 0 on the other two, so that
/// `novita_breaker_state{state="open"} == 1` selects open breakers and a sum over `state`
/// is 1.
fn breaker(state: &ClientState, model: &str, series: &Series, now: Duration) {
    let current = match state.breaker(model, now) {
        BreakerState::Closed => "closed",
        BreakerState::Open { .. } => "open",
        // Probing; a state added to the policy later is neither fully closed nor open.
        _ => "half_open",
    };
    for label in BREAKER_STATES {
        gauge!(
            BREAKER_STATE,
            "client" => series.client.clone(),
            "model" => series.model.clone(),
            "state" => label
        )
        .set(if label == current { 1.0 } else { 0.0 });
    }
}

/// The status as a label, without allocating for the statuses Novita documents.
fn status_label(status: u16) -> SharedString {
    let known = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => return SharedString::from(status.to_string()),
    };
    SharedString::const_str(known)
}

fn limit_label(limit: Option<RateLimit>) -> &'static str {
    match limit {
        Some(RateLimit::TokensPerMinute) => "tpm",
        Some(RateLimit::RequestsPerMinute) => "rpm",
        _ => "unknown",
    }
}

fn action_label(action: Action) -> &'static str {
    match action {
        Action::SwitchToStreaming => "switch_to_streaming",
        Action::FallBack { .. } => "fall_back",
        Action::ReduceRate { .. } => "reduce_rate",
        _ => "other",
    }
}

/// The [`Stop`] in snake_case.
fn stop_label(stop: Stop) -> &'static str {
    match stop {
        Stop::NotRetryable => "not_retryable",
        Stop::AttemptsExhausted => "attempts_exhausted",
        Stop::HintAboveCeiling => "hint_above_ceiling",
        Stop::PastDeadline => "past_deadline",
        Stop::BudgetExhausted => "budget_exhausted",
        Stop::CircuitOpen => "circuit_open",
        Stop::NotAnHttpStatus => "not_an_http_status",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use metrics_util::MetricKind;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use novita_policy::{Call, Clock, Delivery, Draw, Policy};

    const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";
    const CLIENT: &str = "checkout";

    /// The labels of `MODEL` on a client named `CLIENT` configured with no model.
    fn series() -> Series {
        Labels::new(CLIENT, std::iter::empty()).series(MODEL)
    }

    /// One recorded metric: kind, name, labels (sorted) and value.
    #[derive(Debug)]
    struct Recorded {
        kind: MetricKind,
        name: String,
        labels: Vec<(String, String)>,
        value: DebugValue,
    }

    /// Runs `f` with a fresh local recorder and returns everything it recorded.
    fn record(f: impl FnOnce()) -> Vec<Recorded> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                labels.sort();
                Recorded {
                    kind,
                    name: key.name().to_owned(),
                    labels,
                    value,
                }
            })
            .collect()
    }

    /// The value of the metric of this kind and name with exactly these labels; panics,
    /// listing what was recorded, when there is none.
    fn find<'a>(
        recorded: &'a [Recorded],
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
    ) -> &'a DebugValue {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        wanted.sort();
        recorded
            .iter()
            .find(|metric| metric.kind == kind && metric.name == name && metric.labels == wanted)
            .map(|metric| &metric.value)
            .unwrap_or_else(|| panic!("no {name}{labels:?} among {recorded:#?}"))
    }

    fn counter(recorded: &[Recorded], name: &str, labels: &[(&str, &str)]) -> u64 {
        match find(recorded, MetricKind::Counter, name, labels) {
            DebugValue::Counter(value) => *value,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    /// Every counter, histogram and gauge this module emits.
    const COUNTERS: [&str; 9] = [
        REQUESTS_TOTAL,
        THROTTLED_TOTAL,
        RETRIES_TOTAL,
        ESCALATIONS_TOTAL,
        CALLS_TOTAL,
        GIVE_UPS_TOTAL,
        TOKENS_TOTAL,
        REASONING_TOKENS_TOTAL,
        STORE_FALLBACKS_TOTAL,
    ];
    const HISTOGRAMS: [&str; 3] = [
        WAIT_SECONDS,
        CALL_DURATION_SECONDS,
        ATTEMPT_DURATION_SECONDS,
    ];
    const GAUGES: [&str; 3] = [RETRY_BUDGET_TOKENS, BREAKER_STATE, PACING_INTERVAL_SECONDS];

    /// Fails one call a second from second `from` until the breaker on [`MODEL`] is open;
    /// returns the second it is open at.
    fn open_breaker(policy: &Policy, state: &mut ClientState, from: u64) -> u64 {
        let mut now = from;
        while !matches!(
            state.breaker(MODEL, Duration::from_secs(now)),
            BreakerState::Open { .. }
        ) {
            let mut call = policy.start_call(Duration::from_secs(now), Delivery::Buffered, 1);
            let failure = Outcome::Response {
                status: 503,
                headers: &novita_policy::NO_HEADERS,
                body: b"",
            };
            let _ = policy.decide(state, &mut call, MODEL, &failure, clock(now), Draw::HALF);
            now += 1;
        }
        now
    }

    /// This client's and model's `novita_requests_total` for `status` and `class`.
    fn requests(recorded: &[Recorded], status: &str, class: &str) -> u64 {
        by_class(recorded, REQUESTS_TOTAL, ("status", status), class)
    }

    /// This client's and model's `novita_give_ups_total` for `reason` and `class`.
    fn give_ups(recorded: &[Recorded], reason: &str, class: &str) -> u64 {
        by_class(recorded, GIVE_UPS_TOTAL, ("reason", reason), class)
    }

    /// The counter `name` of this client and model with one more label and a `class`.
    fn by_class(recorded: &[Recorded], name: &str, label: (&str, &str), class: &str) -> u64 {
        let labels = [
            ("client", CLIENT),
            ("model", MODEL),
            label,
            ("class", class),
        ];
        counter(recorded, name, &labels)
    }

    fn gauge(recorded: &[Recorded], name: &str, labels: &[(&str, &str)]) -> f64 {
        match find(recorded, MetricKind::Gauge, name, labels) {
            DebugValue::Gauge(value) => value.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram(recorded: &[Recorded], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match find(recorded, MetricKind::Histogram, name, labels) {
            DebugValue::Histogram(values) => {
                values.iter().map(|value| value.into_inner()).collect()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// The state of the breaker series of `client` and `model` that is 1, checking that
    /// there is one series per state and the others are 0.
    fn breaker_state(recorded: &[Recorded], client: &str, model: &str) -> &'static str {
        let mut current = Vec::new();
        for state in BREAKER_STATES {
            let labels = [("client", client), ("model", model), ("state", state)];
            match gauge(recorded, BREAKER_STATE, &labels) {
                1.0 => current.push(state),
                0.0 => {}
                other => panic!("{labels:?} is {other}, neither 0 nor 1"),
            }
        }
        assert_eq!(current.len(), 1, "one state at a time: {current:?}");
        current[0]
    }

    fn names(recorded: &[Recorded]) -> Vec<&str> {
        recorded.iter().map(|metric| metric.name.as_str()).collect()
    }

    fn clock(secs: u64) -> Clock {
        Clock {
            now: Duration::from_secs(secs),
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    /// Decides `outcome` and records it, as an adapter does.
    fn decide(
        policy: &Policy,
        state: &mut ClientState,
        call: &mut Call,
        outcome: &Outcome<'_>,
        now: u64,
    ) -> Decision {
        let decision = policy.decide(state, call, MODEL, outcome, clock(now), Draw::HALF);
        decided(state, MODEL, &series(), outcome, &decision, clock(now).now);
        decision
    }

    #[test]
    fn a_success_counts_the_attempt_and_the_call() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let recorded = record(|| {
            let admission = policy.admit(&mut state, &mut call, MODEL, Duration::ZERO);
            admitted(&state, MODEL, &series(), &admission, Duration::ZERO);
            let outcome = Outcome::Response {
                status: 200,
                headers: &novita_policy::NO_HEADERS,
                body: b"",
            };
            let decision = decide(&policy, &mut state, &mut call, &outcome, 1);
            assert_eq!(decision, Decision::Done);
            succeeded(&series(), Duration::from_millis(1500));
        });

        assert_eq!(requests(&recorded, "200", "success"), 1);
        let calls = [("client", CLIENT), ("model", MODEL), ("outcome", "success")];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
        assert_eq!(histogram(&recorded, CALL_DURATION_SECONDS, &calls), [1.5]);
        assert_eq!(
            gauge(&recorded, RETRY_BUDGET_TOKENS, &[("client", CLIENT)]),
            500.0
        );
        assert_eq!(breaker_state(&recorded, CLIENT, MODEL), "closed");
        assert_eq!(
            gauge(
                &recorded,
                PACING_INTERVAL_SECONDS,
                &[("client", CLIENT), ("model", MODEL)]
            ),
            0.0
        );
        for absent in [
            RETRIES_TOTAL,
            ESCALATIONS_TOTAL,
            THROTTLED_TOTAL,
            GIVE_UPS_TOTAL,
            WAIT_SECONDS,
        ] {
            assert!(!names(&recorded).contains(&absent), "{absent} recorded");
        }
    }

    #[test]
    fn a_429_tpm_retry_counts_the_throttle_the_retry_and_the_wait() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let recorded = record(|| {
            let headers = [("retry-after-ms", "200")];
            let outcome = Outcome::Response {
                status: 429,
                headers: &headers,
                body: br#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"slow down"}"#,
            };
            let decision = decide(&policy, &mut state, &mut call, &outcome, 1);
            assert!(matches!(decision, Decision::Retry { .. }), "{decision:?}");
        });

        assert_eq!(requests(&recorded, "429", "throttled"), 1);
        let throttled = [("client", CLIENT), ("model", MODEL), ("limit", "tpm")];
        assert_eq!(counter(&recorded, THROTTLED_TOTAL, &throttled), 1);
        let retries = [("client", CLIENT), ("model", MODEL), ("class", "throttled")];
        assert_eq!(counter(&recorded, RETRIES_TOTAL, &retries), 1);
        let waits = [("client", CLIENT), ("model", MODEL), ("kind", "backoff")];
        assert_eq!(histogram(&recorded, WAIT_SECONDS, &waits), [0.2]);
        let throttled_cost = f64::from(Policy::default().config().budget.throttled_cost);
        assert_eq!(
            gauge(&recorded, RETRY_BUDGET_TOKENS, &[("client", CLIENT)]),
            500.0 - throttled_cost
        );
        assert_eq!(breaker_state(&recorded, CLIENT, MODEL), "closed");
        assert!(!names(&recorded).contains(&CALLS_TOTAL), "the call goes on");
    }

    #[test]
    fn a_429_without_a_hint_escalates_to_pacing_and_shows_the_interval() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let outcome = Outcome::Response {
            status: 429,
            headers: &novita_policy::NO_HEADERS,
            body: b"",
        };
        let start = Duration::from_secs(1);
        assert_eq!(
            policy.admit(&mut state, &mut call, MODEL, start),
            Admission::Send
        );
        let mut interval = Duration::ZERO;
        let recorded = record(|| {
            let decision = decide(&policy, &mut state, &mut call, &outcome, 2);
            assert!(
                matches!(
                    decision,
                    Decision::Escalate {
                        action: Action::ReduceRate { .. },
                        ..
                    }
                ),
                "{decision:?}"
            );
            // The retry takes the model's slot; a second call must wait one interval.
            let now = Duration::from_secs(2);
            interval = state.pacing_interval(MODEL, now);
            let admission = policy.admit(&mut state, &mut call, MODEL, now);
            assert_eq!(admission, Admission::Send);
            admitted(&state, MODEL, &series(), &admission, now);
            let mut other = policy.start_call(now, Delivery::Buffered, 1);
            let admission = policy.admit(&mut state, &mut other, MODEL, now);
            assert_eq!(admission, Admission::Wait(interval));
            admitted(&state, MODEL, &series(), &admission, now);
        });
        assert!(interval > Duration::ZERO);

        let throttled = [("client", CLIENT), ("model", MODEL), ("limit", "unknown")];
        assert_eq!(counter(&recorded, THROTTLED_TOTAL, &throttled), 1);
        let escalations = [
            ("client", CLIENT),
            ("model", MODEL),
            ("action", "reduce_rate"),
        ];
        assert_eq!(counter(&recorded, ESCALATIONS_TOTAL, &escalations), 1);
        assert_eq!(
            gauge(
                &recorded,
                PACING_INTERVAL_SECONDS,
                &[("client", CLIENT), ("model", MODEL)]
            ),
            interval.as_secs_f64()
        );
        let pacing = [("client", CLIENT), ("model", MODEL), ("kind", "pacing")];
        assert_eq!(
            histogram(&recorded, WAIT_SECONDS, &pacing),
            [interval.as_secs_f64()]
        );
    }

    #[test]
    fn a_504_escalates_to_streaming() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let recorded = record(|| {
            let outcome = Outcome::Response {
                status: 504,
                headers: &novita_policy::NO_HEADERS,
                body: b"",
            };
            let decision = decide(&policy, &mut state, &mut call, &outcome, 1);
            assert!(
                matches!(
                    decision,
                    Decision::Escalate {
                        action: Action::SwitchToStreaming,
                        ..
                    }
                ),
                "{decision:?}"
            );
        });

        assert_eq!(requests(&recorded, "504", "transient"), 1);
        let escalations = [
            ("client", CLIENT),
            ("model", MODEL),
            ("action", "switch_to_streaming"),
        ];
        assert_eq!(counter(&recorded, ESCALATIONS_TOTAL, &escalations), 1);
        let waits = histogram(
            &recorded,
            WAIT_SECONDS,
            &[("client", CLIENT), ("model", MODEL), ("kind", "backoff")],
        );
        assert_eq!(waits.len(), 1);
        let timeout_cost = f64::from(policy.config().budget.timeout_cost);
        assert_eq!(
            gauge(&recorded, RETRY_BUDGET_TOKENS, &[("client", CLIENT)]),
            500.0 - timeout_cost,
            "a timeout costs its own price"
        );
        assert!(!names(&recorded).contains(&RETRIES_TOTAL));
    }

    #[test]
    fn a_give_up_counts_reason_class_and_the_call() {
        let policy = Policy::default();
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let recorded = record(|| {
            // The reason refines the class: a 403 is `permission`, this one is `auth`.
            let outcome = Outcome::Response {
                status: 403,
                headers: &novita_policy::NO_HEADERS,
                body: br#"{"code":403,"reason":"INVALID_API_KEY","message":"no key"}"#,
            };
            let decision = decide(&policy, &mut state, &mut call, &outcome, 3);
            let Decision::GiveUp(give_up) = decision else {
                panic!("{decision:?}");
            };
            gave_up(&series(), &give_up);
        });

        assert_eq!(requests(&recorded, "403", "auth"), 1);
        assert_eq!(give_ups(&recorded, "not_retryable", "auth"), 1);
        let calls = [("client", CLIENT), ("model", MODEL), ("outcome", "gave_up")];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
        assert_eq!(histogram(&recorded, CALL_DURATION_SECONDS, &calls), [3.0]);
        assert!(!names(&recorded).contains(&RETRIES_TOTAL));
    }

    #[test]
    fn transport_failures_and_rejections_have_their_own_classes() {
        let mut config = novita_policy::PolicyConfig::default();
        config.breaker.when_open = novita_policy::WhenOpen::FailFast;
        let policy = Policy::new(config);
        let mut state = policy.client_state();
        let mut call = policy.start_call(Duration::ZERO, Delivery::Buffered, 1);
        let recorded = record(|| {
            let outcome = Outcome::Transport(novita_policy::Transport::Tls);
            let Decision::GiveUp(give_up) = decide(&policy, &mut state, &mut call, &outcome, 1)
            else {
                panic!("a TLS failure is not retried");
            };
            gave_up(&series(), &give_up);
            // Open the breaker, then a call is rejected before any attempt.
            let now = open_breaker(&policy, &mut state, 1);
            let mut call = policy.start_call(Duration::from_secs(now), Delivery::Buffered, 1);
            let admission = policy.admit(&mut state, &mut call, MODEL, Duration::from_secs(now));
            admitted(
                &state,
                MODEL,
                &series(),
                &admission,
                Duration::from_secs(now),
            );
            let Admission::Reject(give_up) = admission else {
                panic!("{admission:?}");
            };
            gave_up(&series(), &give_up);
        });

        assert_eq!(requests(&recorded, "transport", "transport"), 1);
        assert_eq!(give_ups(&recorded, "not_retryable", "transport"), 1);
        assert_eq!(give_ups(&recorded, "circuit_open", "none"), 1);
        assert_eq!(breaker_state(&recorded, CLIENT, MODEL), "open");
        let calls = [("client", CLIENT), ("model", MODEL), ("outcome", "gave_up")];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 2);
    }

    #[test]
    fn an_unusable_answer_counts_the_attempt_and_an_error() {
        let recorded = record(|| unusable(&series(), 200, Duration::from_secs(2)));
        assert_eq!(requests(&recorded, "200", "success"), 1);
        let calls = [("client", CLIENT), ("model", MODEL), ("outcome", "error")];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
        assert_eq!(histogram(&recorded, CALL_DURATION_SECONDS, &calls), [2.0]);
    }

    #[test]
    fn usage_counts_prompt_completion_and_reasoning_tokens() {
        let mut usage = Usage::new(1200, 300);
        let recorded = record(|| tokens(&series(), &usage));
        let prompt = [("client", CLIENT), ("model", MODEL), ("kind", "prompt")];
        assert_eq!(counter(&recorded, TOKENS_TOTAL, &prompt), 1200);
        let completion = [("client", CLIENT), ("model", MODEL), ("kind", "completion")];
        assert_eq!(counter(&recorded, TOKENS_TOTAL, &completion), 300);
        assert!(
            !names(&recorded).contains(&REASONING_TOKENS_TOTAL),
            "no reasoning series when the server does not say"
        );

        usage.completion_tokens_details = Some(crate::wire::CompletionTokensDetails {
            reasoning_tokens: Some(250),
            ..Default::default()
        });
        let recorded = record(|| tokens(&series(), &usage));
        assert_eq!(counter(&recorded, TOKENS_TOTAL, &completion), 300);
        let reasoning = [("client", CLIENT), ("model", MODEL)];
        assert_eq!(counter(&recorded, REASONING_TOKENS_TOTAL, &reasoning), 250);

        let recorded = record(|| tokens(&series(), &Usage::default()));
        assert_eq!(
            counter(&recorded, TOKENS_TOTAL, &prompt),
            0,
            "an empty usage still creates both series"
        );
        assert_eq!(counter(&recorded, TOKENS_TOTAL, &completion), 0);
    }

    #[test]
    fn attempts_are_timed_by_status() {
        let recorded = record(|| {
            attempted(&series(), Some(503), Duration::from_millis(250));
            attempted(&series(), None, Duration::from_secs(10));
        });
        let answered = [("client", CLIENT), ("model", MODEL), ("status", "503")];
        assert_eq!(
            histogram(&recorded, ATTEMPT_DURATION_SECONDS, &answered),
            [0.25]
        );
        let transport = [
            ("client", CLIENT),
            ("model", MODEL),
            ("status", "transport"),
        ];
        assert_eq!(
            histogram(&recorded, ATTEMPT_DURATION_SECONDS, &transport),
            [10.0]
        );
    }

    #[test]
    fn every_histogram_has_buckets_that_reach_its_bound() {
        let histograms = [
            CALL_DURATION_SECONDS,
            ATTEMPT_DURATION_SECONDS,
            WAIT_SECONDS,
        ];
        let named: Vec<&str> = HISTOGRAM_BUCKETS.iter().map(|(name, _)| *name).collect();
        assert_eq!(named, histograms);
        for (name, buckets) in HISTOGRAM_BUCKETS {
            assert!(
                buckets.windows(2).all(|pair| pair[0] < pair[1]),
                "{name}: buckets must increase strictly"
            );
            assert!(buckets[0] > 0.0, "{name}");
        }
        // The last finite bucket of each is the bound its values rarely cross.
        let config = novita_policy::PolicyConfig::default();
        let deadline = config.deadline.expect("a default deadline");
        assert_eq!(CALL_DURATION_BUCKETS.last(), Some(&deadline.as_secs_f64()));
        let request = crate::Timeouts::default().request;
        assert_eq!(
            ATTEMPT_DURATION_BUCKETS.last(),
            Some(&request.as_secs_f64())
        );
        assert!(WAIT_BUCKETS.contains(&config.hint_ceiling.as_secs_f64()));
        assert!(WAIT_BUCKETS[0] <= config.backoff.base.as_secs_f64() / 4.0);
    }

    #[test]
    fn every_metric_is_described_with_a_unit() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            describe();
            for name in COUNTERS {
                counter!(name).increment(1);
            }
            for name in HISTOGRAMS {
                histogram!(name).record(1.0);
            }
            for name in GAUGES {
                gauge!(name).set(0.0);
            }
        });
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(snapshot.len(), 15);
        for (key, unit, description, _) in snapshot {
            let name = key.key().name().to_owned();
            assert!(description.is_some_and(|text| !text.is_empty()), "{name}");
            let expected = if name.ends_with("_seconds") {
                Unit::Seconds
            } else {
                Unit::Count
            };
            assert_eq!(unit, Some(expected), "{name}");
        }
    }

    /// A client core named `name` (default when `None`), with one fallback model and a
    /// requests-per-minute limit on another, for calls driven as an adapter drives them.
    fn core(name: Option<&str>) -> std::sync::Arc<crate::ClientCore> {
        let mut config = novita_policy::PolicyConfig::default();
        let mut limits = novita_policy::ModelLimits::default();
        limits.rpm = Some(60_000);
        config.limits.insert("limited".to_owned(), limits);
        let options = crate::Options {
            api_key: Some("sk_metrics_test".to_owned()),
            seed: Some(7),
            fallback_models: vec!["fallback".to_owned()],
            policy: Some(config),
            name: name.map(ToOwned::to_owned),
            ..crate::Options::default()
        };
        std::sync::Arc::new(crate::ClientCore::new(options, |_| None).expect("valid options"))
    }

    fn chat(model: &str) -> crate::Request {
        crate::Request::chat(&crate::wire::ChatRequest::new(model, "hi"))
    }

    /// Polls `driver` at `secs` and expects an attempt.
    fn send(driver: &mut crate::CallDriver, secs: u64) {
        let poll = driver.poll(Duration::from_secs(secs));
        assert!(matches!(poll, crate::Poll::Send(_)), "{poll:?}");
    }

    /// One call on `model` answered at once.
    fn answered(core: &std::sync::Arc<crate::ClientCore>, model: &str, secs: u64) {
        let mut driver = crate::CallDriver::new(
            std::sync::Arc::clone(core),
            chat(model),
            Duration::from_secs(secs),
        );
        send(&mut driver, secs);
        let _ = driver.handle_success(200, clock(secs));
    }

    #[test]
    fn every_series_of_a_client_carries_its_name() {
        let core = core(Some(CLIENT));
        let recorded = record(|| {
            // A 429 on the TPM limit, retried, then an answer with usage.
            let mut driver =
                crate::CallDriver::new(std::sync::Arc::clone(&core), chat(MODEL), Duration::ZERO);
            send(&mut driver, 0);
            let tpm = br#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"slow down"}"#;
            driver.handle_response(429, &[("retry-after-ms", "200")], tpm, clock(1));
            send(&mut driver, 2);
            let _ = driver.handle_success(200, clock(3));
            let mut usage = Usage::new(100, 50);
            usage.completion_tokens_details = Some(crate::wire::CompletionTokensDetails {
                reasoning_tokens: Some(20),
                ..Default::default()
            });
            driver.handle_usage(&usage, Duration::from_secs(3));
            // A 504 switches to streaming, then a 401 gives up.
            let mut driver = crate::CallDriver::new(
                std::sync::Arc::clone(&core),
                chat(MODEL),
                Duration::from_secs(4),
            );
            send(&mut driver, 4);
            driver.handle_response(504, &novita_policy::NO_HEADERS, b"", clock(5));
            let poll = driver.poll(Duration::from_secs(60));
            assert!(matches!(poll, crate::Poll::Send(_)), "{poll:?}");
            driver.handle_response(401, &novita_policy::NO_HEADERS, b"", clock(61));
            let poll = driver.poll(Duration::from_secs(61));
            assert!(matches!(poll, crate::Poll::Failed(_)), "{poll:?}");
            store_failed(core.metric_labels());
        });
        let mut emitted: Vec<&str> = names(&recorded);
        emitted.sort_unstable();
        emitted.dedup();
        let mut every: Vec<&str> = [COUNTERS.as_slice(), &HISTOGRAMS, &GAUGES].concat();
        every.sort_unstable();
        assert_eq!(emitted, every, "the calls above emit every metric");
        for metric in &recorded {
            assert!(
                metric
                    .labels
                    .contains(&("client".to_owned(), CLIENT.to_owned())),
                "{metric:?} lacks client={CLIENT}"
            );
        }
        let calls = [("client", CLIENT), ("model", MODEL), ("outcome", "success")];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
        let reasoning = [("client", CLIENT), ("model", MODEL)];
        assert_eq!(counter(&recorded, REASONING_TOKENS_TOTAL, &reasoning), 20);
    }

    #[test]
    fn two_clients_in_one_process_keep_their_own_gauges() {
        let busy = core(Some("batch"));
        let quiet = core(None);
        assert_eq!(quiet.name(), "default");
        // The busy client's breaker on the model opens at `opened`.
        let opened = open_breaker(busy.policy(), &mut busy.lock().state, 0);
        let recorded = record(|| {
            // Admitted to the busy client: its breaker shows open, the call falls back.
            let mut driver = crate::CallDriver::new(
                std::sync::Arc::clone(&busy),
                chat(MODEL),
                Duration::from_secs(opened),
            );
            send(&mut driver, opened);
            assert_eq!(driver.model(), "fallback");
            let _ = driver.handle_success(200, clock(opened));
            // The quiet client answers after the busy one: its gauges overwrite nothing.
            answered(&quiet, MODEL, opened);
        });
        assert_eq!(breaker_state(&recorded, "batch", MODEL), "open");
        assert_eq!(breaker_state(&recorded, "default", MODEL), "closed");
        assert_eq!(breaker_state(&recorded, "batch", "fallback"), "closed");
        let budget = |client| gauge(&recorded, RETRY_BUDGET_TOKENS, &[("client", client)]);
        assert_eq!(budget("default"), 500.0);
        assert!(budget("batch") < 500.0, "{}", budget("batch"));
        let calls = [
            ("client", "batch"),
            ("model", "fallback"),
            ("outcome", "success"),
        ];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
        let calls = [
            ("client", "default"),
            ("model", MODEL),
            ("outcome", "success"),
        ];
        assert_eq!(counter(&recorded, CALLS_TOTAL, &calls), 1);
    }

    #[test]
    fn the_model_label_is_capped_except_for_configured_models() {
        let labels = Labels::new(CLIENT, ["fallback", "limited"]);
        for index in 0..MAX_UNCONFIGURED_MODELS {
            let model = format!("org/model-{index}");
            assert_eq!(labels.series(&model).model(), model);
        }
        assert_eq!(labels.series("org/one-too-many").model(), OTHER_MODEL);
        assert_eq!(labels.series("org/yet-another").model(), OTHER_MODEL);
        assert_eq!(
            labels.series("org/model-0").model(),
            "org/model-0",
            "a model met before the cap keeps its name"
        );
        for configured in ["fallback", "limited"] {
            assert_eq!(labels.series(configured).model(), configured);
        }
        assert_eq!(labels.series("fallback").client(), CLIENT);
        assert_eq!(labels.client(), CLIENT);

        // Through a client: the fallback models and the `[limits]` keys are configured.
        let core = core(Some(CLIENT));
        let recorded = record(|| {
            for index in 0..=MAX_UNCONFIGURED_MODELS {
                answered(&core, &format!("org/model-{index}"), 0);
            }
            answered(&core, "limited", 0);
            answered(&core, "fallback", 0);
        });
        let calls = |model| {
            let labels = [("client", CLIENT), ("model", model), ("outcome", "success")];
            counter(&recorded, CALLS_TOTAL, &labels)
        };
        assert_eq!(calls("org/model-31"), 1);
        assert_eq!(calls(OTHER_MODEL), 1, "the 33rd unconfigured model");
        assert_eq!(calls("limited"), 1);
        assert_eq!(calls("fallback"), 1);
        let models: std::collections::BTreeSet<&str> = recorded
            .iter()
            .flat_map(|metric| &metric.labels)
            .filter(|(key, _)| key == "model")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(models.len(), MAX_UNCONFIGURED_MODELS + 3, "{models:?}");
    }
}
