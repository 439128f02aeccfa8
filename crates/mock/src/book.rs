//! The fault book: the queued, conditional and permanent faults of a server, and which one
//! a request gets.

use std::collections::{HashMap, VecDeque};
#[cfg(test)]
use std::time::Duration;

use crate::rule::{ActiveRule, Probe};
use crate::{Fault, Route};

type Key = (Route, Option<String>);

/// The registered faults, consulted once per authorized request on a known route.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    queued: HashMap<Key, VecDeque<Fault>>,
    rules: Vec<ActiveRule>,
    always: HashMap<Key, Fault>,
}

impl FaultBook {
    pub(crate) fn script(
        &mut self,
        route: Route,
        model: Option<&str>,
        faults: impl IntoIterator<Item = Fault>,
    ) {
        let key = (route, model.map(str::to_owned));
        self.queued.entry(key).or_default().extend(faults);
    }

    pub(crate) fn always(&mut self, route: Route, model: Option<&str>, fault: Fault) {
        self.always.insert((route, model.map(str::to_owned)), fault);
    }

    pub(crate) fn rule(&mut self, rule: ActiveRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        self.rules.clear();
        self.always.clear();
    }

    /// [`take_for`](Self::take_for) a buffered request with an empty body, at time zero.
    #[cfg(test)]
    pub(crate) fn take(&mut self, route: Route, model: Option<&str>) -> Option<Fault> {
        self.take_for(&Probe {
            route,
            model,
            stream: false,
            body: b"",
            at: Duration::ZERO,
        })
    }

    /// The fault for this request, if any: queued first, then the first rule that applies
    /// (in the order they were added), then permanent; model-specific before model-agnostic.
    /// Queued faults are consumed.
    pub(crate) fn take_for(&mut self, probe: &Probe<'_>) -> Option<Fault> {
        let (route, model) = (probe.route, probe.model);
        let keys = [(route, model.map(str::to_owned)), (route, None)];
        // Without a model in the body both keys are the same; looking twice is harmless.
        for key in &keys {
            if let Some(fault) = self.queued.get_mut(key).and_then(VecDeque::pop_front) {
                return Some(fault);
            }
        }
        if let Some(fault) = self.rules.iter_mut().find_map(|rule| rule.apply(probe)) {
            return Some(fault);
        }
        keys.iter().find_map(|key| self.always.get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Kind;

    #[test]
    fn book_prefers_queued_then_model_specific() {
        let mut book = FaultBook::default();
        let code = |fault: Option<Fault>| match fault.map(|f| f.kind) {
            Some(Kind::Status(status)) => status.as_u16(),
            Some(_) => 1,
            None => 0,
        };
        book.always(Route::ChatCompletions, None, Fault::status(500));
        book.always(Route::ChatCompletions, Some("a"), Fault::status(501));
        book.script(Route::ChatCompletions, None, [Fault::status(502)]);
        book.script(Route::ChatCompletions, Some("a"), [Fault::status(503)]);
        let chat = Route::ChatCompletions;
        assert_eq!(code(book.take(chat, Some("a"))), 503);
        assert_eq!(code(book.take(chat, Some("a"))), 502);
        assert_eq!(code(book.take(chat, Some("a"))), 501);
        assert_eq!(code(book.take(chat, Some("b"))), 500);
        assert_eq!(code(book.take(chat, None)), 500);
        assert_eq!(code(book.take(Route::Models, None)), 0);
        book.clear();
        assert_eq!(code(book.take(chat, Some("a"))), 0);
    }

    #[test]
    fn rules_come_after_queued_and_before_always() {
        use crate::rule::Rule;

        let mut book = FaultBook::default();
        let chat = Route::ChatCompletions;
        let code = |fault: Option<Fault>| match fault.map(|f| f.kind) {
            Some(Kind::Status(status)) => status.as_u16(),
            _ => 0,
        };
        book.always(chat, None, Fault::status(500));
        book.rule(ActiveRule::new(
            Rule::new(chat, Fault::status(504)).model("a"),
            Duration::ZERO,
        ));
        book.rule(ActiveRule::new(
            Rule::new(chat, Fault::status(503)),
            Duration::ZERO,
        ));
        book.script(chat, None, [Fault::status(502)]);
        assert_eq!(code(book.take(chat, Some("a"))), 502);
        assert_eq!(code(book.take(chat, Some("a"))), 504);
        assert_eq!(code(book.take(chat, Some("b"))), 503);
        assert_eq!(code(book.take(Route::Models, None)), 0);
        book.clear();
        assert_eq!(code(book.take(chat, Some("a"))), 0);
    }
}
