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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use novita_policy::catalog::RateLimit;
use novita_policy::limits::Gcra;

use crate::error::BoxError;

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

/// How long, from now, each shared fact about one model lasts; zero when it does not hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Facts {
    /// A server hint (`Retry-After` and friends) holds every call to the model.
    pub blocked_for: Duration,
    /// The model is in maintenance (`MODEL_NOT_AVAILABLE`): calls that can fall back skip it.
    pub maintenance_for: Duration,
    /// The model's circuit breaker is open: calls wait behind it or fall back.
    pub open_for: Duration,
}

impl Facts {
    /// Facts lasting these long.
    #[must_use]
    pub fn new(blocked_for: Duration, maintenance_for: Duration, open_for: Duration) -> Self {
        Self {
            blocked_for,
            maintenance_for,
            open_for,
        }
    }

    /// Whether any fact holds.
    #[must_use]
    pub fn any(&self) -> bool {
        !(self.blocked_for.is_zero() && self.maintenance_for.is_zero() && self.open_for.is_zero())
    }

    /// Whether any fact of `self` lasts longer than the same fact of `other`.
    #[must_use]
    pub fn outlasts(&self, other: &Facts) -> bool {
        self.blocked_for > other.blocked_for
            || self.maintenance_for > other.maintenance_for
            || self.open_for > other.open_for
    }
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
