//! The policy: from one attempt's outcome to the next step.
//!
//! A call driver's loop (`novita-core` has the real one), in full:
//!
//! ```text
//! let mut call = policy.start_call(now, delivery, models.len());
//! loop {
//!     match policy.admit(&mut state, &mut call, key, now) {      // breaker, pacing, limits
//!         Admission::Send => {}
//!         Admission::Wait(wait) => { sleep(wait); continue }        // then ask again
//!         Admission::FallBack { .. } => continue,                   // key changed
//!         Admission::Reject(give_up) => return Err(give_up),
//!     }
//!     let outcome = send(models[call.model()], call.delivery());
//!     match policy.decide(&mut state, &mut call, key, &outcome, clock, draw) {
//!         Decision::Done => return Ok(..),
//!         Decision::Retry { delay, .. } | Decision::Escalate { delay, .. } => sleep(delay),
//!         Decision::GiveUp(give_up) => return Err(give_up),
//!     }
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use novita_catalog::{Class, Entry, Escalation, RateLimit, Retry};

use crate::breaker::Maintenance;
use crate::decision::{Action, Cause, Decision, GiveUp, Stop};
use crate::limits::Tats;
use crate::{
    Breaker, BreakerConfig, BreakerState, Delivery, Draw, ErrorBody, Facts, Headers, ModelLimits,
    Outcome, Pacer, PacingConfig, PolicyConfig, RetryBudget, RetryKind, Transport, WhenOpen, hints,
};

/// The catalog name of the 500 a model in maintenance answers (`MODEL_NOT_AVAILABLE`).
const MAINTENANCE: &str = "model_not_available";

/// How often a held call asks again whether it may go: short enough that released calls
/// start promptly, long enough to cost nothing.
const HOLD_POLL: Duration = Duration::from_millis(250);
/// The shortest wait a call in line is given, so that calls behind the head do not spin
/// while the head goes out.
const LINE_POLL: Duration = Duration::from_millis(10);
/// A held call not heard of for this long was dropped by its caller; its place in line
/// is given up, so it cannot hold up the calls behind it.
const HOLD_STALE: Duration = Duration::from_secs(2);

/// The two clocks a decision reads, passed in by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic time since an origin the caller picks (the same origin for every call of
    /// one client).
    pub now: Duration,
    /// Wall-clock time, used only to read HTTP-date hints.
    pub wall: SystemTime,
}

/// Whether the next attempt may go out now.
///
/// Exhaustive on purpose, like [`Decision`]: a driver must handle every answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Send now; a pacing slot (if the model is paced) has been taken, and the model's
    /// limits (if it has any) charged one request and the call's estimated tokens.
    Send,
    /// Not yet: pacing, a server's hint or the model's limits hold calls to this model.
    /// Sleep this long, then ask again; nothing was reserved, so a hint that arrives
    /// meanwhile still counts.
    Wait(Duration),
    /// The model's circuit breaker is open: the call moved to the model at this index;
    /// ask again with that model's key.
    FallBack {
        /// Index into the caller's model list.
        model: usize,
    },
    /// The breaker is open and no fallback is left, or the wait would cross the deadline.
    Reject(Box<GiveUp>),
}

/// The history of one logical call across its attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    started: Duration,
    delivery: Delivery,
    switched_to_streaming: bool,
    streaming_switch: bool,
    model: usize,
    models: usize,
    attempts: u32,
    retries: u32,
    on_model: FailureCounts,
    previous_delay: Duration,
    last_retry_cost: Option<u32>,
    /// What the last failed attempt said, so a call stopped at admission still reports it.
    last_failure: Option<Box<Failure>>,
    /// When the last attempt was admitted, to tell a new congestion event from the burst
    /// already answered.
    sent_at: Duration,
    /// The call's place in line on its current model, while it is held.
    ticket: Option<Ticket>,
    /// The tokens each attempt is charged against a model's tokens-per-minute limit.
    estimated_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FailureCounts {
    throttled: u32,
    transient: u32,
    server_fault: u32,
    transport: u32,
}

impl Call {
    /// Attempts decided so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Index of the model the next attempt goes to (0 is the primary).
    #[must_use]
    pub fn model(&self) -> usize {
        self.model
    }

    /// How the next attempt should deliver its answer.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// When the call started, on the caller's monotonic clock.
    #[must_use]
    pub fn started(&self) -> Duration {
        self.started
    }

    /// This call, kept buffered whatever happens: for routes whose answer cannot be read
    /// as a stream, so a timeout is retried as it is and the advice still suggests
    /// streaming.
    #[must_use]
    pub fn without_streaming_switch(mut self) -> Self {
        self.streaming_switch = false;
        self
    }

    /// This call, charging `tokens` against a model's tokens-per-minute limit
    /// ([`PolicyConfig::limits`]) on every attempt it sends: an estimate of the prompt and
    /// the answer, corrected once the answer's usage is known
    /// ([`ClientState::correct_tokens`]). Default 0: only requests are counted.
    #[must_use]
    pub fn with_estimated_tokens(mut self, tokens: u64) -> Self {
        self.estimated_tokens = tokens;
        self
    }

    /// The tokens each attempt is charged (see [`with_estimated_tokens`](Self::with_estimated_tokens)).
    #[must_use]
    pub fn estimated_tokens(&self) -> u64 {
        self.estimated_tokens
    }

    /// What the call's last failed attempt said, for a give-up at admission.
    fn failure_so_far(&self) -> Option<Failure> {
        self.last_failure.as_deref().cloned()
    }

    fn has_fallback(&self) -> bool {
        self.model + 1 < self.models
    }
}

/// State that outlives one call and is shared by every call of a client: the retry budget
/// and, per model key, a circuit breaker, a pacer and the theoretical arrival times of its
/// limits (one per dimension, see [`limits`](crate::limits)).
///
/// It is a plain struct; adapters share it between threads or tasks behind a lock.
#[derive(Clone, Debug)]
pub struct ClientState {
    budget: RetryBudget,
    /// Whether a shared store enforces the models' limits (see [`ClientState::share_limits`]).
    limits_shared: bool,
    breaker_config: BreakerConfig,
    pacing_config: PacingConfig,
    limits: BTreeMap<String, ModelLimits>,
    models: HashMap<String, ModelState>,
}

#[derive(Clone, Debug, Default)]
struct ModelState {
    breaker: Breaker,
    pacer: Pacer,
    maintenance: Maintenance,
    line: HoldLine,
    tats: Tats,
    /// A shared store's limiter holds calls until then, for this limit.
    shared_limit: Option<(RateLimit, Duration)>,
}

/// The calls held while a model's breaker is open, oldest first. Each holds a
/// ticket and says when it last asked; a ticket not asked about for [`HOLD_STALE`] is given
/// up (its call was dropped).
#[derive(Clone, Debug, Default)]
struct HoldLine {
    next_ticket: u64,
    waiting: BTreeMap<Ticket, Duration>,
}

/// A place in a model's line: the call's start, then the order of joining. The oldest call
/// goes first, so a call that lost its place (it was sent, and failed again) takes it back
/// ahead of younger calls: with one deadline per client, oldest first is earliest deadline
/// first.
type Ticket = (Duration, u64);

/// One end of a line.
#[derive(Clone, Copy)]
enum End {
    Oldest,
    Youngest,
}

impl HoldLine {
    /// The oldest live ticket, dropping the stale ones before it.
    fn head(&mut self, now: Duration) -> Option<Ticket> {
        self.live_end(now, End::Oldest)
    }

    /// The youngest live ticket, dropping the stale ones after it.
    fn youngest(&mut self, now: Duration) -> Option<Ticket> {
        self.live_end(now, End::Youngest)
    }

    /// The live ticket at `end` of the line: a ticket not asked about for [`HOLD_STALE`]
    /// is dropped on the way, since its call was dropped.
    fn live_end(&mut self, now: Duration, end: End) -> Option<Ticket> {
        loop {
            let (&ticket, &seen) = match end {
                End::Oldest => self.waiting.first_key_value(),
                End::Youngest => self.waiting.last_key_value(),
            }?;
            if now.saturating_sub(seen) <= HOLD_STALE {
                return Some(ticket);
            }
            self.waiting.remove(&ticket);
        }
    }

    /// The call's ticket (a new one at the back if it has none), marked as seen at `now`;
    /// `None` when the line is full.
    fn join(
        &mut self,
        ticket: Option<Ticket>,
        started: Duration,
        now: Duration,
        max_held: u32,
    ) -> Option<Ticket> {
        if let Some(ticket) = ticket
            && let Some(seen) = self.waiting.get_mut(&ticket)
        {
            *seen = now;
            return Some(ticket);
        }
        if self.waiting.len() >= usize::try_from(max_held).unwrap_or(usize::MAX) {
            return None;
        }
        let ticket = (started, self.next_ticket);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.waiting.insert(ticket, now);
        Some(ticket)
    }

    fn leave(&mut self, ticket: Option<Ticket>) {
        if let Some(ticket) = ticket {
            self.waiting.remove(&ticket);
        }
    }
}

impl ClientState {
    /// Fresh state: a full budget, every breaker closed, no pacing.
    #[must_use]
    pub fn new(config: &PolicyConfig) -> Self {
        Self {
            budget: RetryBudget::new(config.budget),
            limits_shared: false,
            breaker_config: config.breaker,
            pacing_config: config.pacing,
            limits: config.limits.clone(),
            models: HashMap::new(),
        }
    }

    /// Corrects model `key`'s tokens-per-minute state once an answer's usage is known: an
    /// attempt charged `estimated` tokens at admission took `actual`. The difference moves
    /// the model's theoretical arrival time, never below `now` (unused tokens do not become
    /// credit in the past) and never more than a minute and the burst past it. Nothing
    /// happens for a model without a `tpm` limit.
    pub fn correct_tokens(&mut self, key: &str, estimated: u64, actual: u64, now: Duration) {
        if estimated == actual {
            return;
        }
        let Some(limits) = self.limits.get(key).copied() else {
            return;
        };
        self.model_mut(key)
            .tats
            .correct(&limits, estimated, actual, now);
    }

    /// How long model `key`'s limits hold a call charging `tokens` at `now`, and the limit
    /// that holds it longest; `None` when they let it go now (or the model has none).
    #[must_use]
    pub fn limit_wait(
        &self,
        key: &str,
        tokens: u64,
        now: Duration,
    ) -> Option<(RateLimit, Duration)> {
        let limits = self.limits.get(key)?;
        let tats = self
            .models
            .get(key)
            .map(|model| model.tats)
            .unwrap_or_default();
        tats.wait(limits, tokens, now)
    }

    /// The retry budget.
    #[must_use]
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Sets the retry budget's balance, as a budget shared with other processes stands.
    pub fn set_budget_tokens(&mut self, tokens: u32) {
        self.budget.set_tokens(tokens);
    }

    /// What other processes sharing the account must know of model `key` at `now`.
    #[must_use]
    pub fn facts(&self, key: &str, now: Duration) -> Facts {
        let Some(model) = self.models.get(key) else {
            return Facts::default();
        };
        let open_for = match model.breaker.state(now, &self.breaker_config) {
            BreakerState::Open { until } => until.saturating_sub(now),
            _ => Duration::ZERO,
        };
        Facts::new(
            model.pacer.blocked_until().saturating_sub(now),
            model
                .maintenance
                .until()
                .map_or(Duration::ZERO, |until| until.saturating_sub(now)),
            open_for,
        )
    }

    /// Folds in what other processes know of model `key` at `now`: a hint blocks the
    /// model here too, and a maintenance mark or an open breaker lasts at least as long
    /// here as there. Nothing this process knows is shortened.
    pub fn learn(&mut self, key: &str, facts: &Facts, now: Duration) {
        if !facts.any() {
            return;
        }
        let model = self.model_mut(key);
        if !facts.blocked_for.is_zero() {
            model.pacer.block(now, facts.blocked_for);
        }
        if !facts.maintenance_for.is_zero() {
            model
                .maintenance
                .hold_until(now.saturating_add(facts.maintenance_for));
        }
        if !facts.open_for.is_zero() {
            model
                .breaker
                .hold_open_until(now, now.saturating_add(facts.open_for));
        }
    }

    /// Hands the models' limits ([`PolicyConfig::limits`]) to a shared store (`true`), or
    /// takes them back (`false`, the default, and whenever the store is unreachable).
    /// While shared, [`Policy::admit`] leaves the limits to the store and only honours the
    /// holds it reports ([`hold_for_limit`](Self::hold_for_limit)).
    pub fn share_limits(&mut self, shared: bool) {
        self.limits_shared = shared;
    }

    /// Whether a shared store enforces the models' limits.
    #[must_use]
    pub fn limits_shared(&self) -> bool {
        self.limits_shared
    }

    /// Holds calls to model `key` until the instant given, because the shared store's
    /// limit says so, or (`None`) lets them go again; [`Policy::admit`] treats a hold like
    /// a limit of its own (waits, or rejects a call the hold would carry past its
    /// deadline).
    pub fn hold_for_limit(&mut self, key: &str, hold: Option<(RateLimit, Duration)>) {
        self.model_mut(key).shared_limit = hold;
    }

    /// The shared store's hold on model `key` at `now` and how long it has left, if any.
    #[must_use]
    pub fn limit_hold(&self, key: &str, now: Duration) -> Option<(RateLimit, Duration)> {
        let (limit, until) = self.models.get(key)?.shared_limit?;
        (until > now).then(|| (limit, until - now))
    }

    /// The breaker of model `key` at `now`.
    #[must_use]
    pub fn breaker(&self, key: &str, now: Duration) -> BreakerState {
        self.models.get(key).map_or(BreakerState::Closed, |model| {
            model.breaker.state(now, &self.breaker_config)
        })
    }

    /// The interval between call starts on model `key` at `now`; zero when its calls are
    /// not paced.
    #[must_use]
    pub fn pacing_interval(&self, key: &str, now: Duration) -> Duration {
        self.models.get(key).map_or(Duration::ZERO, |model| {
            model.pacer.interval(now, &self.pacing_config)
        })
    }

    /// The calls held behind model `key`'s open breaker (live or not yet found stale).
    #[must_use]
    pub fn held(&self, key: &str) -> usize {
        self.models
            .get(key)
            .map_or(0, |model| model.line.waiting.len())
    }

    /// Every model key with state, for metrics.
    pub fn model_keys(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    fn model_mut(&mut self, key: &str) -> &mut ModelState {
        if !self.models.contains_key(key) {
            self.models.insert(key.to_owned(), ModelState::default());
        }
        self.models.get_mut(key).expect("inserted above")
    }
}

/// What the policy knows about a failed attempt while deciding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Failure {
    status: Option<u16>,
    entry: Option<&'static Entry>,
    reason: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    rate_limit: Option<RateLimit>,
    hint: Option<Duration>,
    transport: Option<Transport>,
}

impl Failure {
    fn cause(&self) -> Cause {
        Cause {
            status: self.status,
            transport: self.transport,
            rate_limit: self.rate_limit,
            server_hint: self.hint,
            entry: self.entry,
        }
    }
}

/// The retry-or-not decisions for Novita calls. Immutable and cheap to share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    config: PolicyConfig,
}

impl Policy {
    /// A policy with these settings.
    #[must_use]
    pub fn new(config: PolicyConfig) -> Self {
        Self { config }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Fresh client state for this policy's settings.
    #[must_use]
    pub fn client_state(&self) -> ClientState {
        ClientState::new(&self.config)
    }

    /// Starts a call at `now` that may try `models` models (at least 1) in order.
    #[must_use]
    pub fn start_call(&self, now: Duration, delivery: Delivery, models: usize) -> Call {
        Call {
            started: now,
            delivery,
            switched_to_streaming: false,
            streaming_switch: true,
            model: 0,
            models: models.max(1),
            attempts: 0,
            retries: 0,
            on_model: FailureCounts::default(),
            previous_delay: Duration::ZERO,
            last_retry_cost: None,
            last_failure: None,
            sent_at: now,
            ticket: None,
            estimated_tokens: 0,
        }
    }

    /// Asks whether the next attempt of `call` may go to model `key` at `now`.
    ///
    /// In order: a model in maintenance or behind an open breaker sends the call to its
    /// next fallback model; with none left, an open breaker holds the call in line (or
    /// rejects it, with [`WhenOpen::FailFast`]); calls leave the line oldest first (by
    /// when they started); pacing, server hints and the model's limits
    /// ([`PolicyConfig::limits`]: one more request, and the call's
    /// [estimated tokens](Call::with_estimated_tokens), must fit) may ask for a wait; a
    /// half-open breaker lets one probe through, carried by the youngest call that asks.
    /// Nothing is reserved by a wait, so a hint that arrives meanwhile still counts, and the limits
    /// are charged only when the answer is [`Admission::Send`]. A wait that would cross the
    /// call's deadline rejects it instead ([`Stop::PastDeadline`], reported as the 429 of
    /// the limit that held it back unless an attempt of its own failed).
    pub fn admit(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        now: Duration,
    ) -> Admission {
        let breaker_config = &self.config.breaker;
        let has_fallback = call.has_fallback();
        let limits_shared = state.limits_shared;
        let model = state.model_mut(key);
        let passes = model.breaker.would_pass(now, breaker_config);
        let in_maintenance = has_fallback && model.maintenance.skip(now, breaker_config);
        if !passes || in_maintenance {
            if has_fallback {
                model.line.leave(call.ticket.take());
                self.move_to_next_model(call);
                return Admission::FallBack { model: call.model };
            }
            return self.hold(model, call, now);
        }
        let probing = model.breaker.state(now, breaker_config) == BreakerState::HalfOpen;
        let behind = if probing {
            // The youngest call carries the probe: it has the most time left, and the
            // oldest keep their attempts for the release. A call not in line (new, or back
            // from a backoff) goes only if no held call is younger.
            model
                .line
                .youngest(now)
                .is_some_and(|youngest| match call.ticket {
                    Some(ticket) => ticket != youngest,
                    None => call.started < youngest.0,
                })
        } else {
            // Calls released after an outage go oldest first.
            model
                .line
                .head(now)
                .is_some_and(|head| call.ticket != Some(head))
        };
        if behind {
            return self.hold(model, call, now);
        }
        let limits = if limits_shared {
            None
        } else {
            self.config.limits.get(key)
        };
        let limited = match model.shared_limit {
            Some((limit, until)) if until > now => Some((limit, until - now)),
            _ => limits.and_then(|limits| model.tats.wait(limits, call.estimated_tokens, now)),
        };
        let paced = model.pacer.wait(now);
        let wait = limited.map_or(paced, |(_, wait)| wait.max(paced));
        if !wait.is_zero() {
            if self.crosses_deadline(call, now, wait) {
                model.line.leave(call.ticket.take());
                // Only throttling holds a model back, so a call that never got an answer
                // of its own was stopped by the 429s of others, or by the limit it would
                // have crossed.
                let failure = call.failure_so_far().unwrap_or_else(|| match limited {
                    Some((limit, limit_wait)) if limit_wait >= paced => Failure {
                        entry: novita_catalog::lookup_reason(429, limit_reason(limit)),
                        rate_limit: Some(limit),
                        ..Failure::default()
                    },
                    _ => Failure {
                        entry: novita_catalog::lookup(429),
                        ..Failure::default()
                    },
                });
                return Admission::Reject(self.give_up(call, Stop::PastDeadline, failure, now));
            }
            if call.ticket.is_some() {
                // Keep the place in line alive while waiting for the slot.
                model
                    .line
                    .join(call.ticket, call.started, now, breaker_config.max_held);
                return Admission::Wait(wait.min(HOLD_POLL));
            }
            return Admission::Wait(wait);
        }
        if !model.breaker.try_pass(now, breaker_config) {
            return self.hold(model, call, now);
        }
        model.line.leave(call.ticket.take());
        model.pacer.take_slot(now, &self.config.pacing);
        if let Some(limits) = limits {
            model.tats.charge(limits, call.estimated_tokens, now);
        }
        call.sent_at = now;
        Admission::Send
    }

    /// Keeps `call` in the model's line (or rejects it when the breaker fails fast, the
    /// line is full, or the wait would cross its deadline).
    fn hold(&self, model: &mut ModelState, call: &mut Call, now: Duration) -> Admission {
        let config = &self.config.breaker;
        if config.when_open == WhenOpen::FailFast {
            return Admission::Reject(self.give_up(
                call,
                Stop::CircuitOpen,
                call.failure_so_far().unwrap_or_default(),
                now,
            ));
        }
        let wait = match model.breaker.state(now, config) {
            BreakerState::Open { until } => until.saturating_sub(now).min(HOLD_POLL),
            // A probe is out: its answer decides, and it takes a round trip.
            BreakerState::HalfOpen => HOLD_POLL,
            // Released, behind earlier calls: ask again about when the head has gone.
            _ => model
                .pacer
                .wait(now)
                .max(model.pacer.interval(now, &self.config.pacing))
                .clamp(LINE_POLL, HOLD_POLL),
        };
        if self.crosses_deadline(call, now, wait) {
            model.line.leave(call.ticket.take());
            return Admission::Reject(self.give_up(
                call,
                Stop::CircuitOpen,
                call.failure_so_far().unwrap_or_default(),
                now,
            ));
        }
        match model
            .line
            .join(call.ticket, call.started, now, config.max_held)
        {
            Some(ticket) => {
                call.ticket = Some(ticket);
                Admission::Wait(wait)
            }
            None => Admission::Reject(self.give_up(
                call,
                Stop::CircuitOpen,
                call.failure_so_far().unwrap_or_default(),
                now,
            )),
        }
    }

    /// Decides what follows the attempt that just ended with `outcome` on model `key`.
    pub fn decide(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        outcome: &Outcome<'_>,
        clock: Clock,
        draw: Draw,
    ) -> Decision {
        call.attempts = call.attempts.saturating_add(1);
        match *outcome {
            Outcome::Response { status, .. } if status < 400 => {
                if let Some(model) = state.models.get_mut(key) {
                    if model.breaker.on_success() {
                        // The outage is over: the held calls go back at a paced rate.
                        model.pacer.on_release(clock.now, &self.config.pacing);
                    }
                    model.maintenance.clear();
                    model.pacer.on_success(clock.now, &self.config.pacing);
                }
                state.budget.on_success(call.last_retry_cost);
                Decision::Done
            }
            Outcome::Response {
                status,
                headers,
                body,
            } => self.on_error_response(state, call, key, status, headers, body, clock, draw),
            Outcome::Transport(transport) => {
                self.on_transport(state, call, key, transport, clock, draw)
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "private; the pieces of one outcome"
    )]
    fn on_error_response(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        status: u16,
        headers: &dyn Headers,
        body: &[u8],
        clock: Clock,
        draw: Draw,
    ) -> Decision {
        let body = ErrorBody::parse(body);
        let entry = match body.reason.as_deref() {
            Some(reason) => novita_catalog::lookup_reason(status, reason),
            None => novita_catalog::lookup(status),
        };
        let request_id = body.request_id.or_else(|| {
            ["x-request-id", "request-id", "x-novita-request-id"]
                .iter()
                .find_map(|name| {
                    let value = std::str::from_utf8(headers.get(name)?).ok()?.trim();
                    (!value.is_empty()).then(|| value.to_owned())
                })
        });
        let mut failure = Failure {
            status: Some(status),
            entry,
            reason: body.reason,
            message: body.message,
            request_id,
            ..Failure::default()
        };
        let Some(entry) = entry else {
            return Decision::GiveUp(self.give_up(call, Stop::NotAnHttpStatus, failure, clock.now));
        };
        if entry.class == Class::Throttled {
            failure.rate_limit = entry
                .rate_limit
                .or_else(|| hints::exhausted_limit(headers))
                .or_else(|| failure.message.as_deref().and_then(hints::limit_named_in));
        }
        if entry.is_retryable() {
            // A zero or past hint says nothing about how long to wait: the client's own
            // backoff applies, not an immediate retry.
            failure.hint = hints::retry_after(headers, clock.wall).filter(|hint| !hint.is_zero());
        }

        match entry.retry {
            Retry::Never => {
                let model = state.model_mut(key);
                if entry.name == MAINTENANCE {
                    // Later calls that can fall back go straight to their fallback.
                    model.maintenance.mark(clock.now, &self.config.breaker);
                } else if model.breaker.on_success() {
                    // The server answered, so the model is up, whatever the request's
                    // fault.
                    model.pacer.on_release(clock.now, &self.config.pacing);
                }
                if entry.suggests(Escalation::FallbackModel) && call.has_fallback() {
                    return self.fall_back(state, call, failure, clock.now);
                }
                Decision::GiveUp(self.give_up(call, Stop::NotRetryable, failure, clock.now))
            }
            Retry::AfterServerHint => self.on_throttled(state, call, key, failure, clock.now, draw),
            Retry::Limited => self.on_server_fault(state, call, key, failure, clock.now, draw),
            // `Retry` is non-exhaustive; anything new is handled as the safe default.
            _ => {
                let timeout_like = status == 504;
                self.on_overload(state, call, key, failure, timeout_like, clock.now, draw)
            }
        }
    }

    fn on_transport(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        transport: Transport,
        clock: Clock,
        draw: Draw,
    ) -> Decision {
        let failure = Failure {
            transport: Some(transport),
            entry: transport
                .is_timeout()
                .then(|| novita_catalog::lookup(504))
                .flatten(),
            ..Failure::default()
        };
        if transport == Transport::Tls {
            return Decision::GiveUp(self.give_up(call, Stop::NotRetryable, failure, clock.now));
        }
        self.on_overload(
            state,
            call,
            key,
            failure,
            transport.is_timeout(),
            clock.now,
            draw,
        )
    }

    fn on_throttled(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        failure: Failure,
        now: Duration,
        draw: Draw,
    ) -> Decision {
        let block_for = failure
            .hint
            .filter(|hint| *hint <= self.config.hint_ceiling);
        let pacer = &mut state.model_mut(key).pacer;
        if let Some(hint) = block_for {
            pacer.block(now, hint);
        }
        // A first 429 with a hint is the server's flow control; a 429 without one, or to a
        // call that already waited one out, is congestion the client must answer.
        let congested = block_for.is_none() || call.on_model.throttled > 0;
        let slowed = congested && pacer.on_congestion(call.sent_at, now, &self.config.pacing);
        let interval = pacer.interval(now, &self.config.pacing);
        call.on_model.throttled = call.on_model.throttled.saturating_add(1);
        if call.on_model.throttled >= self.config.attempts.throttled {
            return Decision::GiveUp(self.give_up(call, Stop::AttemptsExhausted, failure, now));
        }
        if let Some(stop) = self.hint_refusal(call, now, failure.hint) {
            return Decision::GiveUp(self.give_up(call, stop, failure, now));
        }
        // Exactly what the server asked for: never sooner, and no later than needed.
        let delay = failure
            .hint
            .unwrap_or_else(|| self.backoff(call, RetryKind::Throttled, draw));
        let action = slowed.then_some(Action::ReduceRate { interval });
        let cost = self.config.budget.cost(RetryKind::Throttled);
        self.retry(state, call, failure, cost, delay, action, now)
    }

    fn on_server_fault(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        failure: Failure,
        now: Duration,
        draw: Draw,
    ) -> Decision {
        let opened = state
            .model_mut(key)
            .breaker
            .on_failure(now, &self.config.breaker, draw);
        call.on_model.server_fault = call.on_model.server_fault.saturating_add(1);
        if opened || call.on_model.server_fault >= self.config.attempts.server_fault {
            if call.has_fallback() {
                return self.fall_back(state, call, failure, now);
            }
            let stop = if opened {
                Stop::CircuitOpen
            } else {
                Stop::AttemptsExhausted
            };
            return Decision::GiveUp(self.give_up(call, stop, failure, now));
        }
        if let Some(stop) = self.hint_refusal(call, now, failure.hint) {
            return Decision::GiveUp(self.give_up(call, stop, failure, now));
        }
        let delay = self
            .backoff(call, RetryKind::Transient, draw)
            .max(failure.hint.unwrap_or_default());
        let cost = self.config.budget.cost(RetryKind::Transient);
        self.retry(state, call, failure, cost, delay, None, now)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "private; the pieces of one failure"
    )]
    fn on_overload(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        key: &str,
        failure: Failure,
        timeout_like: bool,
        now: Duration,
        draw: Draw,
    ) -> Decision {
        let kind = if timeout_like {
            RetryKind::Timeout
        } else {
            RetryKind::Transient
        };
        let cost = self.config.budget.cost(kind);
        let hint = failure.hint.unwrap_or_default();

        // A buffered call that timed out is re-issued as streaming before the timeout
        // counts against the model: a model that answers streamed calls is healthy, and
        // concurrent timeouts must not open the breaker that the streamed calls need.
        if timeout_like
            && call.delivery == Delivery::Buffered
            && !call.switched_to_streaming
            && call.streaming_switch
            && self.config.switch_to_streaming_on_timeout
        {
            call.switched_to_streaming = true;
            call.delivery = Delivery::Streamed;
            if let Some(stop) = self.hint_refusal(call, now, failure.hint) {
                return Decision::GiveUp(self.give_up(call, stop, failure, now));
            }
            let delay = self.backoff(call, kind, draw).max(hint);
            return self.retry(
                state,
                call,
                failure,
                cost,
                delay,
                Some(Action::SwitchToStreaming),
                now,
            );
        }
        // While calls return from an outage, a 503 is the overload pacing answers, not a
        // model failing: it is a congestion signal, a burst of them counts once (to pacing
        // and to the breaker alike), and its retry waits for a paced slot, so it costs what
        // a throttled retry costs and is bounded by `max_attempts` and the deadline instead
        // of the transient limit.
        let model = state.model_mut(key);
        let congested = !timeout_like && failure.transport.is_none() && model.pacer.is_recovering();
        let (cost, action) = if congested {
            let slowed = model
                .pacer
                .on_congestion(call.sent_at, now, &self.config.pacing);
            let action = slowed.then(|| Action::ReduceRate {
                interval: model.pacer.interval(now, &self.config.pacing),
            });
            (self.config.budget.cost(RetryKind::Throttled), action)
        } else {
            (cost, None)
        };
        let opened = (!congested || action.is_some())
            && model.breaker.on_failure(now, &self.config.breaker, draw);
        let (count, limit) = if failure.transport.is_some() {
            call.on_model.transport = call.on_model.transport.saturating_add(1);
            (call.on_model.transport, self.config.attempts.transport)
        } else if congested {
            (0, u32::MAX)
        } else {
            call.on_model.transient = call.on_model.transient.saturating_add(1);
            (call.on_model.transient, self.config.attempts.transient)
        };
        if opened && call.has_fallback() {
            return self.fall_back(state, call, failure, now);
        }
        if opened && self.config.breaker.when_open == WhenOpen::FailFast {
            return Decision::GiveUp(self.give_up(call, Stop::CircuitOpen, failure, now));
        }
        if count >= limit && !opened {
            // This model has had its chances; another one may be healthy.
            if call.has_fallback() {
                return self.fall_back(state, call, failure, now);
            }
            return Decision::GiveUp(self.give_up(call, Stop::AttemptsExhausted, failure, now));
        }
        if let Some(stop) = self.hint_refusal(call, now, failure.hint) {
            return Decision::GiveUp(self.give_up(call, stop, failure, now));
        }
        // Jittered backoff, but never sooner than the server asked. When this failure
        // opened the breaker, the call waits in line behind the probe instead.
        let delay = self.backoff(call, kind, draw).max(hint);
        self.retry(state, call, failure, cost, delay, action, now)
    }

    fn fall_back(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        failure: Failure,
        now: Duration,
    ) -> Decision {
        self.move_to_next_model(call);
        let action = Action::FallBack { model: call.model };
        let cost = self.config.budget.cost(RetryKind::Transient);
        self.retry(
            state,
            call,
            failure,
            cost,
            Duration::ZERO,
            Some(action),
            now,
        )
    }

    fn move_to_next_model(&self, call: &mut Call) {
        debug_assert!(call.has_fallback());
        call.model += 1;
        call.on_model = FailureCounts::default();
    }

    /// The common gate of every retry: overall attempts, deadline, then the budget (last,
    /// so that no tokens are spent on a retry that is refused anyway).
    #[allow(
        clippy::too_many_arguments,
        reason = "private; the pieces of one retry"
    )]
    fn retry(
        &self,
        state: &mut ClientState,
        call: &mut Call,
        failure: Failure,
        cost: u32,
        delay: Duration,
        action: Option<Action>,
        now: Duration,
    ) -> Decision {
        if call.attempts >= self.config.max_attempts {
            return Decision::GiveUp(self.give_up(call, Stop::AttemptsExhausted, failure, now));
        }
        if self.crosses_deadline(call, now, delay) {
            return Decision::GiveUp(self.give_up(call, Stop::PastDeadline, failure, now));
        }
        if !state.budget.try_withdraw(cost) {
            return Decision::GiveUp(self.give_up(call, Stop::BudgetExhausted, failure, now));
        }
        call.retries = call.retries.saturating_add(1);
        call.previous_delay = delay;
        call.last_retry_cost = Some(cost);
        let cause = failure.cause();
        call.last_failure = Some(Box::new(failure));
        match action {
            Some(action) => Decision::Escalate {
                action,
                delay,
                cause,
            },
            None => Decision::Retry { delay, cause },
        }
    }

    /// Refuses a server hint that is above the ceiling or would cross the deadline.
    fn hint_refusal(&self, call: &Call, now: Duration, hint: Option<Duration>) -> Option<Stop> {
        let hint = hint?;
        if hint > self.config.hint_ceiling {
            Some(Stop::HintAboveCeiling)
        } else if self.crosses_deadline(call, now, hint) {
            Some(Stop::PastDeadline)
        } else {
            None
        }
    }

    fn crosses_deadline(&self, call: &Call, now: Duration, wait: Duration) -> bool {
        self.config.deadline.is_some_and(|deadline| {
            now.saturating_sub(call.started).saturating_add(wait) > deadline
        })
    }

    fn backoff(&self, call: &Call, kind: RetryKind, draw: Draw) -> Duration {
        self.config.backoff.delay_for(
            kind,
            call.retries.saturating_add(1),
            call.previous_delay,
            draw,
        )
    }

    fn give_up(&self, call: &Call, stop: Stop, failure: Failure, now: Duration) -> Box<GiveUp> {
        let advice = advice(stop, &failure, call);
        Box::new(GiveUp {
            stop,
            status: failure.status,
            entry: failure.entry,
            reason: failure.reason,
            message: failure.message,
            request_id: failure.request_id,
            rate_limit: failure.rate_limit,
            server_hint: failure.hint,
            transport: failure.transport,
            attempts: call.attempts,
            elapsed: now.saturating_sub(call.started),
            model: call.model,
            advice,
        })
    }
}

/// Novita's `reason` for a 429 of `limit`.
fn limit_reason(limit: RateLimit) -> &'static str {
    match limit {
        RateLimit::TokensPerMinute => "TOKEN_LIMIT_EXCEEDED",
        _ => "RATE_LIMIT_EXCEEDED",
    }
}

/// The advice for a give-up: the catalog's escalations for the error, refined by what the
/// policy learned on the way (the limit that was hit, a transport failure, an outage).
fn advice(stop: Stop, failure: &Failure, call: &Call) -> Vec<Escalation> {
    let mut advice: Vec<Escalation> = Vec::new();
    let mut add = |escalation: Escalation| push_unique(&mut advice, escalation);
    if failure.rate_limit == Some(RateLimit::TokensPerMinute) {
        add(Escalation::ReduceTokens);
    }
    match failure.transport {
        Some(Transport::Connect | Transport::Tls) => add(Escalation::CheckBaseUrl),
        Some(transport) if transport.is_timeout() => {
            if call.delivery == Delivery::Buffered {
                add(Escalation::SwitchToStreaming);
            }
            add(Escalation::RaiseClientTimeout);
        }
        _ => {}
    }
    if let Some(entry) = failure.entry {
        for &escalation in entry.escalations {
            // Streaming was already tried if the call streamed; do not advise it again.
            if escalation == Escalation::SwitchToStreaming && call.delivery == Delivery::Streamed {
                continue;
            }
            add(escalation);
        }
    }
    if matches!(stop, Stop::BudgetExhausted | Stop::CircuitOpen) {
        add(Escalation::FallbackModel);
        add(Escalation::RetryOffPeak);
    }
    if failure.request_id.is_some() && failure.entry.is_some_and(|entry| entry.status.covers(500)) {
        add(Escalation::ContactSupport);
    }
    if advice.is_empty() {
        advice.extend([Escalation::ReadMessage, Escalation::ContactSupport]);
    }
    advice
}

fn push_unique(advice: &mut Vec<Escalation>, escalation: Escalation) {
    if !advice.contains(&escalation) {
        advice.push(escalation);
    }
}
