//! The Lua script that runs one exchange, and the call that feeds it: keys, arguments and
//! the reply, in integer microseconds.
//!
//! [`ScriptCall`] mirrors [`novita_core::store::Exchange`] field for field, with public
//! constructors (the core types are `#[non_exhaustive]`, so only `novita-core` builds
//! them) and one more field, a test clock. The stores turn each `Exchange` into one; the
//! `testing` feature lets tests build them directly.

use std::time::Duration;

use novita_core::policy::catalog::RateLimit;
use novita_core::store::{Charge, Exchange, Facts, News, Shift, Step, StoreError, Verdict};

/// The exchange script's source: `src/exchange.lua`, which documents its keys, arguments
/// and reply.
pub(crate) const SOURCE: &str = include_str!("exchange.lua");

/// The prefix of every key the store writes.
pub const KEY_PREFIX: &str = "novita";

/// The hash holding one model's shared state in one account's scope:
/// `novita:{<scope>}:model:<model>`. The braces are a Redis Cluster hash tag, so every key
/// of an account lives on one shard and one script may touch them all.
#[must_use]
pub fn model_key(scope: &str, model: &str) -> String {
    format!("{KEY_PREFIX}:{{{scope}}}:model:{model}")
}

/// The key holding one account's shared retry budget: `novita:{<scope>}:budget`.
#[must_use]
pub fn budget_key(scope: &str) -> String {
    format!("{KEY_PREFIX}:{{{scope}}}:budget")
}

/// The longest duration sent to the script, about a hundred years: with a Redis time of
/// about 2^50.6 µs, every sum the script makes stays below 2^53, where doubles are exact.
const MOST_MICROS: u64 = 100 * 365 * 24 * 60 * 60 * 1_000_000;

/// `duration` in whole microseconds, rounded up: for amounts that hold calls back longer
/// (increments, hints, debts), so rounding never lets a call through early.
fn micros_up(duration: Duration) -> u64 {
    let micros = duration.as_nanos().div_ceil(1_000);
    u64::try_from(micros).map_or(MOST_MICROS, |micros| micros.min(MOST_MICROS))
}

/// `duration` in whole microseconds, rounded down: for amounts that let calls through
/// sooner (tolerances, refunds), so rounding never lets a call through early.
fn micros_down(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).map_or(MOST_MICROS, |micros| micros.min(MOST_MICROS))
}

/// One exchange as the script runs it: [`Exchange`]'s fields, plus a test clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptCall {
    /// Whose state this is ([`Exchange::scope`]): a hash of the API key.
    pub scope: String,
    /// The model whose facts come back and whose limits are charged.
    pub model: String,
    /// What the client learnt since its last exchange, applied in order first.
    pub news: Vec<ScriptNews>,
    /// The change of the shared retry budget.
    pub budget_delta: i64,
    /// The budget's capacity, and its balance the first time the store sees it.
    pub budget_capacity: u32,
    /// The charge of the next attempt, if one is about to go.
    pub charge: Option<ScriptCharge>,
    /// The time the script takes as "now", as a duration since the Unix epoch, instead of
    /// Redis `TIME`. For tests only, which need a clock they control to compare the store
    /// with the pure GCRA on one timeline; the stores always leave it `None`.
    pub now: Option<Duration>,
}

impl ScriptCall {
    /// An exchange in `scope` about `model` that carries nothing yet: no news, no budget
    /// change (on a budget of capacity 0), no charge, Redis's clock.
    #[must_use]
    pub fn new(scope: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            model: model.into(),
            news: Vec::new(),
            budget_delta: 0,
            budget_capacity: 0,
            charge: None,
            now: None,
        }
    }
}

impl From<&Exchange> for ScriptCall {
    fn from(exchange: &Exchange) -> Self {
        Self {
            scope: exchange.scope.clone(),
            model: exchange.model.clone(),
            news: exchange.news.iter().filter_map(ScriptNews::of).collect(),
            budget_delta: exchange.budget_delta,
            budget_capacity: exchange.budget_capacity,
            charge: exchange.charge.as_ref().map(ScriptCharge::from),
            now: None,
        }
    }
}

/// One piece of news, as [`News`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptNews {
    /// [`News::Facts`]: each fact lasts at least this long from now.
    Facts {
        /// The model.
        model: String,
        /// How long each fact lasts from now.
        facts: Facts,
    },
    /// [`News::Recovered`]: the model's maintenance mark and open breaker end.
    Recovered {
        /// The model.
        model: String,
    },
    /// [`News::Recharge`]: the model's theoretical arrival times move.
    Recharge {
        /// The model.
        model: String,
        /// The requests dimension's move.
        requests: Option<ScriptShift>,
        /// The tokens dimension's move.
        tokens: Option<ScriptShift>,
    },
}

impl ScriptNews {
    /// The model the news is about.
    #[must_use]
    pub fn model(&self) -> &str {
        match self {
            ScriptNews::Facts { model, .. }
            | ScriptNews::Recovered { model }
            | ScriptNews::Recharge { model, .. } => model,
        }
    }

    /// The script's form of `news`; `None` for a kind of news this version does not know
    /// (`News` is non-exhaustive), which is dropped rather than failing the exchange.
    fn of(news: &News) -> Option<Self> {
        Some(match news {
            News::Facts { model, facts } => ScriptNews::Facts {
                model: model.clone(),
                facts: *facts,
            },
            News::Recovered { model } => ScriptNews::Recovered {
                model: model.clone(),
            },
            News::Recharge {
                model,
                requests,
                tokens,
            } => ScriptNews::Recharge {
                model: model.clone(),
                requests: requests.as_ref().map(ScriptShift::from),
                tokens: tokens.as_ref().map(ScriptShift::from),
            },
            _ => return None,
        })
    }
}

/// One move of a theoretical arrival time, as [`Shift`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScriptShift {
    /// How far.
    pub by: Duration,
    /// Back (a refund) rather than forward.
    pub back: bool,
    /// How far past now the TAT may be pushed.
    pub ceiling: Duration,
}

impl From<&Shift> for ScriptShift {
    fn from(shift: &Shift) -> Self {
        Self {
            by: shift.by,
            back: shift.back,
            ceiling: shift.ceiling,
        }
    }
}

/// The charge of the next attempt, as [`Charge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScriptCharge {
    /// One request's step, when the model has a requests-per-minute limit.
    pub requests: Option<Step>,
    /// The call's tokens' step, when the model has a tokens-per-minute limit.
    pub tokens: Option<Step>,
}

impl From<&Charge> for ScriptCharge {
    fn from(charge: &Charge) -> Self {
        Self {
            requests: charge.requests,
            tokens: charge.tokens,
        }
    }
}

impl ScriptCall {
    /// The script's keys (the budget, the exchange's model, then every other model the
    /// news names, once each) and arguments, in the layout `exchange.lua` documents.
    pub(crate) fn keys_and_args(&self) -> (Vec<String>, Vec<String>) {
        let mut models = vec![self.model.as_str()];
        for news in &self.news {
            if !models.contains(&news.model()) {
                models.push(news.model());
            }
        }
        let index_of = |model: &str| {
            // KEYS is 1-based and KEYS[1] is the budget.
            models.iter().position(|known| *known == model).unwrap_or(0) + 2
        };

        let mut keys = Vec::with_capacity(models.len() + 1);
        keys.push(budget_key(&self.scope));
        keys.extend(models.iter().map(|model| model_key(&self.scope, model)));

        let mut args = Vec::with_capacity(8 + 8 * self.news.len());
        args.push(
            self.now
                .map_or_else(String::new, |now| micros_down(now).to_string()),
        );
        // The balance is within 0..=capacity, so a larger move is the same as the largest.
        let most = i64::from(self.budget_capacity);
        args.push(self.budget_delta.clamp(-most, most).to_string());
        args.push(self.budget_capacity.to_string());
        let step = |step: Option<Step>| match step {
            Some(step) => [
                micros_up(step.increment).to_string(),
                micros_down(step.tolerance).to_string(),
            ],
            None => [String::new(), String::new()],
        };
        let charge = self.charge.unwrap_or_default();
        args.extend(step(charge.requests));
        args.extend(step(charge.tokens));
        args.push(self.news.len().to_string());
        for news in &self.news {
            let index = index_of(news.model()).to_string();
            match news {
                ScriptNews::Facts { facts, .. } => args.extend([
                    "F".to_owned(),
                    index,
                    micros_up(facts.blocked_for).to_string(),
                    micros_up(facts.maintenance_for).to_string(),
                    micros_up(facts.open_for).to_string(),
                ]),
                ScriptNews::Recovered { .. } => args.extend(["R".to_owned(), index]),
                ScriptNews::Recharge {
                    requests, tokens, ..
                } => {
                    args.extend(["C".to_owned(), index]);
                    args.extend(shift_args(*requests));
                    args.extend(shift_args(*tokens));
                }
            }
        }
        (keys, args)
    }
}

/// A shift's three arguments: how far (refunds rounded down, debts up), back or not, and
/// the ceiling (rounded up, as a debt).
fn shift_args(shift: Option<ScriptShift>) -> [String; 3] {
    match shift {
        Some(shift) => [
            if shift.back {
                micros_down(shift.by)
            } else {
                micros_up(shift.by)
            }
            .to_string(),
            if shift.back { "1" } else { "0" }.to_owned(),
            micros_up(shift.ceiling).to_string(),
        ],
        None => [String::new(), String::new(), String::new()],
    }
}

/// The script's reply as a [`Verdict`].
pub(crate) fn verdict(reply: &[i64]) -> Result<Verdict, StoreError> {
    let &[blocked, maintenance, open, budget, held_by, wait] = reply else {
        return Err(StoreError(
            format!(
                "the exchange script answered {} numbers, not 6",
                reply.len()
            )
            .into(),
        ));
    };
    let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
    let facts = Facts::new(micros(blocked), micros(maintenance), micros(open));
    let budget = u32::try_from(budget.max(0)).unwrap_or(u32::MAX);
    let limited = match held_by {
        0 => None,
        1 => Some((RateLimit::RequestsPerMinute, micros(wait))),
        2 => Some((RateLimit::TokensPerMinute, micros(wait))),
        other => {
            return Err(StoreError(
                format!("the exchange script named limit {other}, not 0, 1 or 2").into(),
            ));
        }
    };
    Ok(Verdict::new(facts, budget, limited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_never_lets_a_call_through_early() {
        let odd = Duration::from_nanos(1_500);
        assert_eq!(micros_up(odd), 2);
        assert_eq!(micros_down(odd), 1);
        assert_eq!(micros_up(Duration::from_micros(7)), 7);
        assert_eq!(micros_up(Duration::MAX), MOST_MICROS);
        assert_eq!(micros_down(Duration::MAX), MOST_MICROS);
        // A hundred years past 2026 is still exact in a double.
        let now_2026: u64 = 1_800_000_000 * 1_000_000;
        assert!(now_2026 + MOST_MICROS + MOST_MICROS < 1 << 53);
    }

    #[test]
    fn every_model_the_news_names_is_a_key_once() {
        let mut call = ScriptCall::new("abc", "m");
        call.news = vec![
            ScriptNews::Recovered { model: "n".into() },
            ScriptNews::Recovered { model: "m".into() },
            ScriptNews::Recovered { model: "n".into() },
        ];
        let (keys, args) = call.keys_and_args();
        assert_eq!(
            keys,
            [
                "novita:{abc}:budget",
                "novita:{abc}:model:m",
                "novita:{abc}:model:n"
            ]
        );
        assert_eq!(&args[7..], ["3", "R", "3", "R", "2", "R", "3"]);
    }
}
