//! Sharing a client's state with other processes through a store (Redis, in
//! `novita-redis`): what a call tells the store and what it learns back, in one exchange.
//!
//! Without a store (the default) every piece of state lives in the client: this module is
//! then unused. With one, the [`CallDriver`](crate::CallDriver) asks the adapter to run an
//! [`Exchange`] before each attempt (`Poll::Share`), and right away
//! after an attempt that taught it something the others must hear of (a server hint, a
//! maintenance mark, an opened breaker). One exchange is one round trip: the news this
//! client gathered since its last exchange goes out, the charge of the next attempt against
//! the model's limits is made, and the shared facts about the model come back. The driver
//! folds those facts into the client's own state, so every decision is still the pure
//! policy's, on the union of what every process knows.
//!
//! Times cross the wire as durations from "now", never as instants: the store measures
//! them on its own clock (Redis `TIME`), so processes on hosts whose clocks disagree still
//! agree on when a hint ends.
//!
//! A store that fails (down, slow, refusing) never fails a call: the adapter bounds the
//! exchange, reports the trouble with `CallDriver::handle_shared`,
//! and the client goes on with its own state (its own limits included) until the store
//! answers again.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use novita_policy::Facts;
use novita_policy::catalog::RateLimit;
use novita_policy::limits::{self, Gcra};

use sha2::{Digest, Sha256};

use crate::error::BoxError;
use crate::key::ApiKey;

/// What one exchange carries to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange {
    /// Whose state this is: a hash of the API key (never the key), so clients of different
    /// accounts never share anything. Stores put it in every key, inside a Redis Cluster
    /// hash tag, so one account's keys live on one shard.
    pub scope: String,
    /// The model the next attempt goes to (the route, for calls that name none); the
    /// shared facts of this model come back.
    pub model: String,
    /// What the client learnt since its last exchange, applied before anything else.
    pub news: Vec<News>,
    /// The change of the shared retry budget since the last exchange (withdrawals
    /// negative); the store keeps the balance within `0..=budget_capacity`.
    pub budget_delta: i64,
    /// The budget's capacity, which is also its balance the first time the store sees it.
    pub budget_capacity: u32,
    /// Charge the next attempt against the model's limits, when it has limits and an
    /// attempt is about to go; `None` for an exchange that only publishes news.
    pub charge: Option<Charge>,
}

impl Exchange {
    /// An exchange for `model` of the account `scope`, with nothing to publish and nothing
    /// to charge (add them through the public fields).
    #[must_use]
    pub fn new(scope: impl Into<String>, model: impl Into<String>, budget_capacity: u32) -> Self {
        Self {
            scope: scope.into(),
            model: model.into(),
            news: Vec::new(),
            budget_delta: 0,
            budget_capacity,
            charge: None,
        }
    }
}

/// Something one process learnt that the others must know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum News {
    /// How long, from now, `model` stays blocked, in maintenance, or behind an open breaker.
    /// The store keeps the later end of what it had and what it is told.
    Facts {
        /// The model.
        model: String,
        /// How long each lasts from now.
        facts: Facts,
    },
    /// The model answered: its maintenance mark and open breaker are over for everyone.
    Recovered {
        /// The model.
        model: String,
    },
    /// Move `model`'s theoretical arrival times by these signed amounts, within bounds: an
    /// attempt that was charged but not sent gives its charge back, and an answer's usage
    /// corrects the estimate it was charged.
    Recharge {
        /// The model.
        model: String,
        /// The requests dimension's change.
        requests: Option<Shift>,
        /// The tokens dimension's change.
        tokens: Option<Shift>,
    },
}

/// One GCRA step for one dimension of a model's limits, computed by the client with
/// [`Gcra`] so that every store runs the same integer arithmetic: the call conforms, and is
/// charged, when `tat - max(0, tolerance - increment) <= now`; then
/// `tat = max(tat, now) + increment`. Otherwise it must wait until then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Step {
    /// The time the call's units take at the limit's pace ([`Gcra::increment`]).
    pub increment: Duration,
    /// How far ahead of the steady pace calls may run (the limit's burst).
    pub tolerance: Duration,
}

impl Step {
    /// A step of these sizes.
    #[must_use]
    pub fn new(increment: Duration, tolerance: Duration) -> Self {
        Self {
            increment,
            tolerance,
        }
    }

    /// The step of a call costing `cost` units under `gcra`.
    #[must_use]
    pub fn of(gcra: &Gcra, cost: u64) -> Self {
        Self {
            increment: gcra.increment(cost),
            tolerance: gcra.tolerance(),
        }
    }
}

/// A signed move of one theoretical arrival time: `tat = tat ± by`, never below now and
/// never past `max(tat, now + ceiling)` (see [`Gcra::correct`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Shift {
    /// How far.
    pub by: Duration,
    /// Back (a refund) rather than forward (more was used than charged).
    pub back: bool,
    /// How far past now the TAT may be pushed: a period and the tolerance.
    pub ceiling: Duration,
}

/// The charge of the next attempt against one model's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Charge {
    /// One request, when the model has a requests-per-minute limit.
    pub requests: Option<Step>,
    /// The call's estimated tokens, when the model has a tokens-per-minute limit.
    pub tokens: Option<Step>,
}

impl Charge {
    /// A charge of these steps.
    #[must_use]
    pub fn new(requests: Option<Step>, tokens: Option<Step>) -> Self {
        Self { requests, tokens }
    }
}

/// What the store answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The shared facts about the exchange's model, after the news.
    pub facts: Facts,
    /// The shared retry budget's balance, after the delta.
    pub budget: u32,
    /// `None` when the charge was made (or none was asked); otherwise nothing was charged
    /// and the limit named holds the attempt back this long.
    pub limited: Option<(RateLimit, Duration)>,
}

impl Verdict {
    /// A verdict with these parts.
    #[must_use]
    pub fn new(facts: Facts, budget: u32, limited: Option<(RateLimit, Duration)>) -> Self {
        Self {
            facts,
            budget,
            limited,
        }
    }
}

/// Why an exchange failed; the call goes on with the client's own state.
#[derive(Debug)]
pub struct StoreError(pub BoxError);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the shared state store failed: {}", self.0)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// A store for blocking clients (novita-ureq). An exchange must be bounded in time (tens
/// of milliseconds): a call waits for it.
pub trait BlockingStore: fmt::Debug + Send + Sync {
    /// Runs one exchange, atomically.
    ///
    /// # Errors
    /// Any trouble with the store; the call then goes on without it.
    fn exchange(&self, exchange: &Exchange) -> Result<Verdict, StoreError>;
}

/// The future an [`AsyncStore`] returns.
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Verdict, StoreError>> + Send + 'a>>;

/// A store for async clients (novita-reqwest). The adapter bounds each exchange in time,
/// so an implementation need not.
pub trait AsyncStore: fmt::Debug + Send + Sync {
    /// Runs one exchange, atomically.
    fn exchange<'a>(&'a self, exchange: &'a Exchange) -> StoreFuture<'a>;
}

/// The store a client shares its state through, as its adapter calls it.
#[derive(Clone, Debug)]
pub enum Store {
    /// Called from blocking code (novita-ureq).
    Blocking(Arc<dyn BlockingStore>),
    /// Awaited from async code (novita-reqwest), bounded by [`Timeouts::store`](crate::Timeouts::store).
    Async(Arc<dyn AsyncStore>),
}

/// Two stores are the same when they are the same object.
impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Store::Blocking(a), Store::Blocking(b)) => Arc::ptr_eq(a, b),
            (Store::Async(a), Store::Async(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The scope of an account's shared state: the first 128 bits of the key's SHA-256, in
/// hex. One-way, so whoever reads the store learns nothing of the key, and wide enough
/// that two accounts never meet.
#[must_use]
pub fn scope_of(key: &ApiKey) -> String {
    let digest = Sha256::digest(key.expose().as_bytes());
    digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A store in this process's memory: the reference for what an exchange does, and a way
/// for several clients of one process (say, one per worker runtime) to share their state
/// without Redis. Times are measured on its own monotonic clock.
#[derive(Debug)]
pub struct MemoryStore {
    origin: Instant,
    state: Mutex<HashMap<String, Scope>>,
}

/// One account's state in a [`MemoryStore`].
#[derive(Debug, Default)]
struct Scope {
    budget: Option<u32>,
    models: HashMap<String, ModelEntry>,
}

/// One model's shared state: when each fact ends and the limits' arrival times, on the
/// store's clock.
#[derive(Clone, Copy, Debug, Default)]
struct ModelEntry {
    blocked_until: Duration,
    maintenance_until: Duration,
    open_until: Duration,
    requests_tat: Duration,
    tokens_tat: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `exchange` as if the store's clock read `now`: for simulations on virtual
    /// time, whose clients share one store ([`BlockingStore::exchange`] reads the store's
    /// own monotonic clock instead). `now` must not go backwards between exchanges.
    pub fn exchange_at(&self, exchange: &Exchange, now: Duration) -> Verdict {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scope = state.entry(exchange.scope.clone()).or_default();
        for news in &exchange.news {
            match news {
                News::Facts { model, facts } => {
                    let entry = scope.models.entry(model.clone()).or_default();
                    let extend = |until: &mut Duration, lasts: Duration| {
                        if !lasts.is_zero() {
                            *until = (*until).max(now.saturating_add(lasts));
                        }
                    };
                    extend(&mut entry.blocked_until, facts.blocked_for);
                    extend(&mut entry.maintenance_until, facts.maintenance_for);
                    extend(&mut entry.open_until, facts.open_for);
                }
                News::Recovered { model } => {
                    let entry = scope.models.entry(model.clone()).or_default();
                    entry.maintenance_until = Duration::ZERO;
                    entry.open_until = Duration::ZERO;
                }
                News::Recharge {
                    model,
                    requests,
                    tokens,
                } => {
                    let entry = scope.models.entry(model.clone()).or_default();
                    for (tat, shift) in [
                        (&mut entry.requests_tat, requests),
                        (&mut entry.tokens_tat, tokens),
                    ] {
                        if let Some(shift) = shift {
                            *tat = shift.apply(*tat, now);
                        }
                    }
                }
            }
        }
        let capacity = exchange.budget_capacity;
        let balance = i64::from(scope.budget.unwrap_or(capacity)) + exchange.budget_delta;
        let balance = u32::try_from(balance.clamp(0, i64::from(capacity))).unwrap_or(capacity);
        scope.budget = Some(balance);
        let entry = scope.models.entry(exchange.model.clone()).or_default();
        let limited = exchange.charge.and_then(|charge| {
            let waits = [
                (
                    RateLimit::RequestsPerMinute,
                    charge.requests,
                    entry.requests_tat,
                ),
                (RateLimit::TokensPerMinute, charge.tokens, entry.tokens_tat),
            ]
            .map(|(limit, step, tat)| {
                (
                    limit,
                    step.map_or(Duration::ZERO, |step| step.wait(tat, now)),
                )
            });
            let [requests, tokens] = waits;
            let longest = if tokens.1 > requests.1 {
                tokens
            } else {
                requests
            };
            if !longest.1.is_zero() {
                return Some(longest);
            }
            if let Some(step) = charge.requests {
                entry.requests_tat = step.charge(entry.requests_tat, now);
            }
            if let Some(step) = charge.tokens {
                entry.tokens_tat = step.charge(entry.tokens_tat, now);
            }
            None
        });
        let left = |until: Duration| until.saturating_sub(now);
        Verdict::new(
            Facts::new(
                left(entry.blocked_until),
                left(entry.maintenance_until),
                left(entry.open_until),
            ),
            balance,
            limited,
        )
    }
}

impl Step {
    /// How long after `now` a call must wait given the TAT `tat`; zero when it conforms.
    #[must_use]
    pub fn wait(&self, tat: Duration, now: Duration) -> Duration {
        limits::step(tat, now, self.increment, self.tolerance).wait(now)
    }

    /// The TAT once a conforming call is charged at `now`.
    #[must_use]
    pub fn charge(&self, tat: Duration, now: Duration) -> Duration {
        limits::step(tat, now, self.increment, self.tolerance).new_tat
    }
}

impl Shift {
    /// A shift of `by`, backwards when `back`, bounded by `ceiling` past now.
    #[must_use]
    pub fn new(by: Duration, back: bool, ceiling: Duration) -> Self {
        Self { by, back, ceiling }
    }

    /// The TAT `tat` moved by this shift at `now`, within `now..=max(tat, now + ceiling)`.
    #[must_use]
    pub fn apply(&self, tat: Duration, now: Duration) -> Duration {
        limits::shift(tat, now, self.by, self.back, self.ceiling)
    }
}

impl BlockingStore for MemoryStore {
    fn exchange(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        Ok(self.exchange_at(exchange, self.origin.elapsed()))
    }
}

impl AsyncStore for MemoryStore {
    fn exchange<'a>(&'a self, exchange: &'a Exchange) -> StoreFuture<'a> {
        let verdict = self.exchange_at(exchange, self.origin.elapsed());
        Box::pin(async move { Ok(verdict) })
    }
}
