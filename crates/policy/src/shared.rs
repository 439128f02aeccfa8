//! What of a client's state other processes sharing its account must know: the facts a
//! state store (Redis, through `novita-core`'s store exchange) carries between them.
//!
//! Each fact is a duration from "now", so processes whose clocks disagree still agree on
//! when it ends. [`ClientState::facts`](crate::ClientState::facts) reads them out of one
//! process's state and [`ClientState::learn`](crate::ClientState::learn) folds another's
//! into it, after which every decision is still this crate's, on the union of what every
//! process knows.

use std::time::Duration;

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

    /// Whether any fact of `self` lasts longer than the same fact of `other`: news worth
    /// telling the others.
    #[must_use]
    pub fn outlasts(&self, other: &Facts) -> bool {
        self.blocked_for > other.blocked_for
            || self.maintenance_for > other.maintenance_for
            || self.open_for > other.open_for
    }
}
