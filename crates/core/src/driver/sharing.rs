//! The driver's side of a shared state store (see [`store`](crate::store)): when to ask
//! for an exchange, what goes in it, and how its answer is folded into the client's state.
//!
//! Per attempt, one exchange before it goes (publishing the client's news, charging the
//! model's limits, learning the shared facts), and one right after a failed attempt whose
//! news the other processes must hear at once (a hint, a maintenance mark, an opened
//! breaker). The charge is given back when the client's own policy then holds the attempt
//! after all. A store in trouble is left alone for [`STORE_RETRY`], with one warning per
//! outage, and the client's own limits apply meanwhile.

use std::time::Duration;

use novita_policy::limits::{Gcra, PERIOD};
use novita_policy::{ClientState, Facts, ModelLimits};
use tracing::{info, warn};

use super::{CallDriver, Stage, TRACING_TARGET};
use crate::client::{ClientCore, Shared};
use crate::store::{Charge, Exchange, News, Shift, Step, StoreError, Verdict};

/// How long a client leaves a failed store alone before it tries it again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);

/// Where the call stands with the store for its next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Share {
    /// The next attempt needs an exchange first.
    Due,
    /// An exchange is out; this is what it charges.
    Asked(Option<Charge>),
    /// The exchange is done; the store charged this for the attempt about to go.
    Done(Option<Charge>),
}

impl CallDriver {
    /// The exchange to run before anything else at `now`, if one is due: the call's
    /// urgent news at once, otherwise, once any wait is over (`not_before`), the exchange
    /// of the next attempt. `None` without a store, or while the store is left alone after
    /// failing (urgent news then waits in the outbox for any later exchange).
    pub(super) fn exchange_due(&mut self, now: Duration, not_before: Duration) -> Option<Exchange> {
        let Some(scope) = self.core.store_scope() else {
            // Without a store nothing is ever published.
            self.urgent_news = false;
            return None;
        };
        let urgent = self.urgent_news;
        if !urgent && (now < not_before || self.share != Share::Due) {
            return None;
        }
        let model = &self.models[self.call.model()];
        let mut shared = self.core.lock();
        if shared
            .outbox
            .store_down_until
            .is_some_and(|until| now < until)
        {
            // The news waits in the outbox for the store's return.
            self.urgent_news = false;
            return None;
        }
        let charge = if urgent {
            None
        } else if shared.state.limit_hold(model, now).is_some() {
            // The store said when to ask again; admission waits until then.
            return None;
        } else {
            self.core
                .config()
                .limits
                .get(model)
                .map(|limits| charge_of(limits, self.call.estimated_tokens()))
        };
        let exchange = Exchange {
            scope: scope.to_owned(),
            model: model.clone(),
            news: std::mem::take(&mut shared.outbox.news),
            budget_delta: std::mem::take(&mut shared.outbox.budget_delta),
            budget_capacity: self.core.config().budget.capacity,
            charge,
        };
        drop(shared);
        if !urgent {
            self.share = Share::Asked(charge);
        }
        self.urgent_news = false;
        let stage = std::mem::replace(&mut self.stage, Stage::Answered);
        self.stage = Stage::Sharing(Box::new(stage));
        Some(exchange)
    }

    /// Feeds back the exchange the last [`poll`](Self::poll) asked for: its verdict, or
    /// the store's trouble (the call then goes on with the client's own state). Call it
    /// before polling again.
    ///
    /// # Panics
    /// When no exchange was asked for: a bug in the adapter.
    pub fn handle_shared(&mut self, result: Result<Verdict, StoreError>, now: Duration) {
        let Stage::Sharing(after) = std::mem::replace(&mut self.stage, Stage::Answered) else {
            panic!("CallDriver::handle_shared without an exchange asked for");
        };
        self.stage = *after;
        let asked = match self.share {
            Share::Asked(charge) => Some(charge),
            _ => None,
        };
        let model = self.models[self.call.model()].clone();
        let mut shared = self.core.lock();
        match result {
            Ok(verdict) => {
                if shared.outbox.store_down_until.take().is_some() {
                    info!(target: TRACING_TARGET, "the shared state store answers again");
                    shared.state.share_limits(true);
                }
                shared.state.learn(&model, &verdict.facts, now);
                let balance = i64::from(verdict.budget) + shared.outbox.budget_delta;
                shared
                    .state
                    .set_budget_tokens(u32::try_from(balance.max(0)).unwrap_or(u32::MAX));
                match (asked, verdict.limited) {
                    (Some(_), Some((limit, wait))) => {
                        let until = now.saturating_add(wait);
                        shared.state.hold_for_limit(&model, Some((limit, until)));
                        self.share = Share::Due;
                    }
                    (Some(charge), None) => {
                        shared.state.hold_for_limit(&model, None);
                        self.share = Share::Done(charge);
                    }
                    (None, _) => {}
                }
            }
            Err(error) => {
                if shared.outbox.store_down_until.is_none() {
                    warn!(
                        target: TRACING_TARGET,
                        %error,
                        "the shared state store failed; going on with this client's own state"
                    );
                    #[cfg(feature = "metrics")]
                    crate::metrics::store_failed(self.core.metric_labels());
                }
                shared.outbox.store_down_until = Some(now.saturating_add(STORE_RETRY));
                shared.state.share_limits(false);
                if asked.is_some() {
                    self.share = Share::Due;
                }
            }
        }
    }

    /// After admission: a charge the store made is used by an attempt that goes, and given
    /// back when the client's own policy holds the attempt after all.
    pub(super) fn settle_charge(share: &mut Share, shared: &mut Shared, sent: bool, model: &str) {
        let Share::Done(charge) = *share else {
            return;
        };
        *share = Share::Due;
        if sent {
            return;
        }
        if let Some(charge) = charge {
            let back = |step: Step| Shift {
                by: step.increment,
                back: true,
                ceiling: PERIOD.saturating_add(step.tolerance),
            };
            shared.outbox.push(News::Recharge {
                model: model.to_owned(),
                requests: charge.requests.map(back),
                tokens: charge.tokens.map(back),
            });
        }
    }

    /// Whether admission must stop before following a fallback: the fallback model's
    /// limits and facts need their own exchange first.
    pub(super) fn exchange_before_fallback(&self, shared: &Shared, now: Duration) -> bool {
        self.core.store().is_some()
            && shared
                .outbox
                .store_down_until
                .is_none_or(|until| now >= until)
    }

    /// Notes what a decision on `model` taught that the other processes must know: the
    /// change of the retry budget, facts that now last longer (told at once), and a
    /// recovery.
    pub(super) fn note_news(
        urgent_news: &mut bool,
        shared: &mut Shared,
        model: &str,
        before: Option<Snapshot>,
        now: Duration,
    ) {
        let Some(before) = before else {
            return;
        };
        let after = Snapshot::of(&shared.state, model, now);
        shared.outbox.budget_delta += i64::from(after.budget) - i64::from(before.budget);
        if after.facts.outlasts(&before.facts) {
            shared.outbox.push(News::Facts {
                model: model.to_owned(),
                facts: after.facts,
            });
            *urgent_news = true;
        } else if (before.facts.maintenance_for > Duration::ZERO
            || before.facts.open_for > Duration::ZERO)
            && after.facts.maintenance_for.is_zero()
            && after.facts.open_for.is_zero()
        {
            shared.outbox.push(News::Recovered {
                model: model.to_owned(),
            });
        }
    }

    /// Tells the store how many tokens an answer took against what its attempt was charged.
    pub(super) fn note_usage(
        core: &ClientCore,
        shared: &mut Shared,
        model: &str,
        estimated: u64,
        actual: u64,
    ) {
        if core.store().is_none() || estimated == actual {
            return;
        }
        let Some(gcra) = core
            .config()
            .limits
            .get(model)
            .and_then(ModelLimits::tokens)
        else {
            return;
        };
        shared.outbox.push(News::Recharge {
            model: model.to_owned(),
            requests: None,
            tokens: Some(Shift {
                by: gcra.increment(estimated.abs_diff(actual)),
                back: actual < estimated,
                ceiling: PERIOD.saturating_add(gcra.tolerance()),
            }),
        });
    }
}

/// What of a client's state a decision may change that the store cares about.
#[derive(Clone, Copy, Debug)]
pub(super) struct Snapshot {
    facts: Facts,
    budget: u32,
}

impl Snapshot {
    /// The snapshot before a decision, for a client with a store (without one, nothing is
    /// compared and the success path pays nothing).
    pub(super) fn taken(
        core: &ClientCore,
        state: &ClientState,
        model: &str,
        now: Duration,
    ) -> Option<Self> {
        core.store().is_some().then(|| Self::of(state, model, now))
    }

    fn of(state: &ClientState, model: &str, now: Duration) -> Self {
        Self {
            facts: state.facts(model, now),
            budget: state.budget().tokens(),
        }
    }
}

/// One request and `tokens` tokens against `limits`, as the store charges them.
fn charge_of(limits: &ModelLimits, tokens: u64) -> Charge {
    Charge {
        requests: limits.requests().map(|gcra: Gcra| Step::of(&gcra, 1)),
        tokens: limits.tokens().map(|gcra| Step::of(&gcra, tokens)),
    }
}
