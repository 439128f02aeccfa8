//! The Lua script that runs one exchange, and the arguments it takes from an
//! [`Exchange`]: keys, arguments and the reply, in integer microseconds.

use std::time::Duration;

use novita_core::policy::catalog::RateLimit;
use novita_core::store::{Exchange, Facts, News, Shift, Step, StoreError, Verdict};

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

/// The script's keys (the budget, the exchange's model, then every other model the news
/// names, once each) and arguments, in the layout `exchange.lua` documents. `now` replaces
/// Redis `TIME` as the script's clock (a duration since the Unix epoch): for tests only,
/// which compare the store with the pure GCRA on a timeline they control; the stores pass
/// `None`.
pub(crate) fn keys_and_args(
    exchange: &Exchange,
    now: Option<Duration>,
) -> (Vec<String>, Vec<String>) {
    // Kinds of news this version does not know (`News` is non-exhaustive) are dropped
    // rather than failing the exchange.
    let news: Vec<_> = exchange.news.iter().filter_map(news_args).collect();
    let mut models = vec![exchange.model.as_str()];
    for (_, model, _) in &news {
        if !models.contains(model) {
            models.push(model);
        }
    }
    let index_of = |model: &str| {
        // KEYS is 1-based and KEYS[1] is the budget.
        models.iter().position(|known| *known == model).unwrap_or(0) + 2
    };

    let mut keys = Vec::with_capacity(models.len() + 1);
    keys.push(budget_key(&exchange.scope));
    keys.extend(models.iter().map(|model| model_key(&exchange.scope, model)));

    let mut args = Vec::with_capacity(8 + 8 * news.len());
    args.push(now.map_or_else(String::new, |now| micros_down(now).to_string()));
    // The balance is within 0..=capacity, so a larger move is the same as the largest.
    let most = i64::from(exchange.budget_capacity);
    args.push(exchange.budget_delta.clamp(-most, most).to_string());
    args.push(exchange.budget_capacity.to_string());
    let step = |step: Option<Step>| match step {
        Some(step) => [
            micros_up(step.increment).to_string(),
            micros_down(step.tolerance).to_string(),
        ],
        None => [String::new(), String::new()],
    };
    let (requests, tokens) = exchange
        .charge
        .map_or((None, None), |charge| (charge.requests, charge.tokens));
    args.extend(step(requests));
    args.extend(step(tokens));
    args.push(news.len().to_string());
    for (kind, model, rest) in news {
        args.extend([kind.to_owned(), index_of(model).to_string()]);
        args.extend(rest);
    }
    (keys, args)
}

/// One piece of news as the script takes it: its kind's letter, the model it is about
/// and the arguments after the model's key index; `None` for a kind the script does not
/// know.
fn news_args(news: &News) -> Option<(&'static str, &str, Vec<String>)> {
    Some(match news {
        News::Facts { model, facts } => (
            "F",
            model,
            vec![
                micros_up(facts.blocked_for).to_string(),
                micros_up(facts.maintenance_for).to_string(),
                micros_up(facts.open_for).to_string(),
            ],
        ),
        News::Recovered { model } => ("R", model, Vec::new()),
        News::Recharge {
            model,
            requests,
            tokens,
        } => (
            "C",
            model,
            shift_args(*requests)
                .into_iter()
                .chain(shift_args(*tokens))
                .collect(),
        ),
        _ => return None,
    })
}

/// A shift's three arguments: how far (refunds rounded down, debts up), back or not, and
/// the ceiling (rounded up, as a debt).
fn shift_args(shift: Option<Shift>) -> [String; 3] {
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
    use novita_core::store::Charge;

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
        let mut exchange = Exchange::new("abc", "m", 0);
        exchange.news = ["n", "m", "n"]
            .map(|model| News::Recovered {
                model: model.to_owned(),
            })
            .into();
        let (keys, args) = keys_and_args(&exchange, None);
        assert_eq!(
            keys,
            [
                "novita:{abc}:budget",
                "novita:{abc}:model:m",
                "novita:{abc}:model:n"
            ]
        );
        assert_eq!(args[0], "", "Redis's clock");
        assert_eq!(&args[7..], ["3", "R", "3", "R", "2", "R", "3"]);
    }

    #[test]
    fn the_arguments_follow_the_script_layout() {
        let mut exchange = Exchange::new("abc", "m", 5);
        exchange.budget_delta = -9;
        exchange.charge = Some(Charge::new(
            None,
            Some(Step::new(
                Duration::from_nanos(1_500),
                Duration::from_nanos(2_500),
            )),
        ));
        exchange.news = vec![
            News::Facts {
                model: "m".to_owned(),
                facts: Facts::new(
                    Duration::from_micros(1),
                    Duration::ZERO,
                    Duration::from_nanos(1),
                ),
            },
            News::Recharge {
                model: "n".to_owned(),
                requests: Some(Shift::new(
                    Duration::from_nanos(1_500),
                    true,
                    Duration::from_nanos(1_500),
                )),
                tokens: Some(Shift::new(
                    Duration::from_nanos(1_500),
                    false,
                    Duration::ZERO,
                )),
            },
        ];
        let (keys, args) = keys_and_args(&exchange, Some(Duration::from_nanos(7_900)));
        assert_eq!(keys.len(), 3);
        assert_eq!(
            args,
            [
                "7", "-5", "5", "", "", "2", "2", "2", // clock, budget, charge, news
                "F", "2", "1", "0", "1", // facts about m
                "C", "3", "1", "1", "2", "2", "0", "0", // a recharge of n
            ]
        );
    }
}
