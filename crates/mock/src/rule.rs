//! Conditional faults: a [`Rule`] hands its [`Fault`] to every request that meets its
//! conditions (a time window, a seeded chance, buffered or streamed delivery, the first
//! sight of a request body), for load tests and benchmarks that need faults by rate or by
//! time rather than by position in a queue.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::time::Duration;

use crate::seeded::{splitmix64, unit};
use crate::{Fault, Route};

/// A fault for every request that meets a set of conditions, installed with
/// [`MockServer::rule`](crate::MockServer::rule).
///
/// A rule with no condition but its route matches every request on the route, like
/// [`MockServer::always`](crate::MockServer::always). Each refinement narrows it; a
/// request must meet all of them. They are checked in this order, and a request that fails
/// one is not counted by the later ones: route and [`model`](Rule::model), then
/// [`buffered_only`](Rule::buffered_only) / [`streamed_only`](Rule::streamed_only), then
/// the time window ([`during`](Rule::during)), then [`once_per_body`](Rule::once_per_body),
/// then the seeded [`chance`](Rule::chance) (only requests that got this far draw a number).
///
/// ```
/// use std::time::Duration;
/// use novita_mock::{Fault, MockServer, Route, Rule};
///
/// let server = MockServer::start();
/// // 30 % of chat requests get a 503, drawn from a seeded sequence.
/// server.rule(Rule::new(Route::ChatCompletions, Fault::status(503)).chance(0.3, 42));
/// // Every chat request in the first 20 s after this line gets a 503 too.
/// server.rule(
///     Rule::new(Route::ChatCompletions, Fault::status(503))
///         .during(Duration::ZERO..Duration::from_secs(20)),
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Rule {
    route: Route,
    model: Option<String>,
    fault: Fault,
    streamed: Option<bool>,
    window: Option<Range<Duration>>,
    once_per_body: bool,
    chance: Option<(f64, u64)>,
}

impl Rule {
    /// A rule giving `fault` to every request on `route` (until refined).
    pub fn new(route: Route, fault: Fault) -> Rule {
        Rule {
            route,
            model: None,
            fault,
            streamed: None,
            window: None,
            once_per_body: false,
            chance: None,
        }
    }

    /// Only requests whose JSON body names this model.
    pub fn model(mut self, model: impl Into<String>) -> Rule {
        self.model = Some(model.into());
        self
    }

    /// Only requests that do not ask for a stream (no `"stream": true` in the body).
    pub fn buffered_only(mut self) -> Rule {
        self.streamed = Some(false);
        self
    }

    /// Only requests with `"stream": true` in the body.
    pub fn streamed_only(mut self) -> Rule {
        self.streamed = Some(true);
        self
    }

    /// Only requests arriving within `window`, measured from the moment the rule is
    /// installed (e.g. `Duration::ZERO..Duration::from_secs(20)`: the next 20 s). The start
    /// is included, the end is not.
    pub fn during(mut self, window: Range<Duration>) -> Rule {
        self.window = Some(window);
        self
    }

    /// Only the first request with a given body: a retry that resends the same bytes no
    /// longer matches, while a call with a different body does. Identifies "the same call"
    /// by a hash of its body, for faults that hit each call's first attempt only.
    pub fn once_per_body(mut self) -> Rule {
        self.once_per_body = true;
        self
    }

    /// Only a share of the requests, drawn from a sequence seeded with `seed`: the n-th
    /// request reaching this check gets the fault when the n-th draw falls below
    /// `probability`. The same seed gives the same sequence of draws, so a run whose requests
    /// arrive in the same order meets the same faults.
    ///
    /// # Panics
    ///
    /// Panics if `probability` is not within `0.0..=1.0`.
    pub fn chance(mut self, probability: f64, seed: u64) -> Rule {
        assert!(
            (0.0..=1.0).contains(&probability),
            "novita-mock: a rule's chance must be within 0.0..=1.0, not {probability}"
        );
        self.chance = Some((probability, seed));
        self
    }
}

/// A rule with the state it keeps while installed.
#[derive(Debug)]
pub(crate) struct ActiveRule {
    rule: Rule,
    /// When the rule was installed, on the server's clock.
    installed: Duration,
    /// The state of the chance draws (SplitMix64).
    draws: u64,
    /// Hashes of the bodies that already got the fault.
    seen: HashSet<u64>,
}

/// What a rule looks at in one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe<'a> {
    pub(crate) route: Route,
    pub(crate) model: Option<&'a str>,
    pub(crate) stream: bool,
    pub(crate) body: &'a [u8],
    /// Arrival on the server's clock.
    pub(crate) at: Duration,
}

impl ActiveRule {
    pub(crate) fn new(rule: Rule, installed: Duration) -> ActiveRule {
        let draws = rule.chance.map_or(0, |(_, seed)| seed);
        ActiveRule {
            rule,
            installed,
            draws,
            seen: HashSet::new(),
        }
    }

    /// The fault for this request if the rule applies to it, updating the rule's state.
    pub(crate) fn apply(&mut self, probe: &Probe<'_>) -> Option<Fault> {
        let rule = &self.rule;
        if rule.route != probe.route
            || rule
                .model
                .as_deref()
                .is_some_and(|m| Some(m) != probe.model)
            || rule
                .streamed
                .is_some_and(|streamed| streamed != probe.stream)
        {
            return None;
        }
        if let Some(window) = &rule.window {
            let since = probe.at.checked_sub(self.installed)?;
            if !window.contains(&since) {
                return None;
            }
        }
        let body = rule.once_per_body.then(|| {
            let mut hasher = DefaultHasher::new();
            probe.body.hash(&mut hasher);
            hasher.finish()
        });
        if body.is_some_and(|hash| self.seen.contains(&hash)) {
            return None;
        }
        if let Some((probability, _)) = rule.chance
            && unit(splitmix64(&mut self.draws)) >= probability
        {
            return None;
        }
        if let Some(hash) = body {
            self.seen.insert(hash);
        }
        Some(self.rule.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: Route = Route::ChatCompletions;

    fn probe(at_ms: u64, body: &[u8]) -> Probe<'_> {
        Probe {
            route: CHAT,
            model: Some("m"),
            stream: false,
            body,
            at: Duration::from_millis(at_ms),
        }
    }

    fn fires(rule: &mut ActiveRule, probe: &Probe<'_>) -> bool {
        rule.apply(probe).is_some()
    }

    #[test]
    fn windows_count_from_installation() {
        let window = Duration::from_secs(1)..Duration::from_secs(2);
        let rule = Rule::new(CHAT, Fault::status(503)).during(window);
        let mut rule = ActiveRule::new(rule, Duration::from_secs(10));
        for (at_ms, expected) in [
            (5_000, false), // before the rule existed
            (10_500, false),
            (11_000, true),
            (11_999, true),
            (12_000, false),
        ] {
            assert_eq!(
                fires(&mut rule, &probe(at_ms, b"x")),
                expected,
                "{at_ms} ms"
            );
        }
    }

    #[test]
    fn once_per_body_lets_the_same_body_through_afterwards() {
        let rule = Rule::new(CHAT, Fault::status(429)).once_per_body();
        let mut rule = ActiveRule::new(rule, Duration::ZERO);
        assert!(fires(&mut rule, &probe(0, b"call 1")));
        assert!(!fires(&mut rule, &probe(1, b"call 1")));
        assert!(fires(&mut rule, &probe(2, b"call 2")));
        assert!(!fires(&mut rule, &probe(3, b"call 2")));
        assert!(!fires(&mut rule, &probe(4, b"call 1")));
    }

    #[test]
    fn a_body_outside_the_other_conditions_is_not_marked_seen() {
        let rule = Rule::new(CHAT, Fault::status(429))
            .once_per_body()
            .during(Duration::from_secs(1)..Duration::from_secs(2));
        let mut rule = ActiveRule::new(rule, Duration::ZERO);
        assert!(!fires(&mut rule, &probe(0, b"early")));
        assert!(fires(&mut rule, &probe(1_000, b"early")));
    }

    #[test]
    fn chance_is_seeded_and_close_to_its_probability() {
        let draw_all = |seed| {
            let rule = Rule::new(CHAT, Fault::status(503)).chance(0.3, seed);
            let mut rule = ActiveRule::new(rule, Duration::ZERO);
            (0..10_000)
                .map(|_| fires(&mut rule, &probe(0, b"x")))
                .collect::<Vec<_>>()
        };
        let first = draw_all(42);
        assert_eq!(first, draw_all(42));
        assert_ne!(first, draw_all(43));
        let hits = first.iter().filter(|hit| **hit).count();
        assert!((2_800..3_200).contains(&hits), "{hits} hits of 10 000");
    }

    #[test]
    fn chance_edges_are_never_and_always() {
        let mut never =
            ActiveRule::new(Rule::new(CHAT, Fault::ok()).chance(0.0, 1), Duration::ZERO);
        let mut always =
            ActiveRule::new(Rule::new(CHAT, Fault::ok()).chance(1.0, 1), Duration::ZERO);
        for _ in 0..1000 {
            assert!(!fires(&mut never, &probe(0, b"x")));
            assert!(fires(&mut always, &probe(0, b"x")));
        }
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0")]
    fn chance_outside_zero_to_one_panics() {
        let _ = Rule::new(CHAT, Fault::ok()).chance(1.5, 0);
    }

    #[test]
    fn delivery_route_and_model_filter() {
        let rule = Rule::new(CHAT, Fault::status(504))
            .model("m")
            .buffered_only();
        let mut rule = ActiveRule::new(rule, Duration::ZERO);
        assert!(fires(&mut rule, &probe(0, b"x")));
        let streamed = Probe {
            stream: true,
            ..probe(0, b"x")
        };
        assert!(!fires(&mut rule, &streamed));
        let other_model = Probe {
            model: Some("n"),
            ..probe(0, b"x")
        };
        assert!(!fires(&mut rule, &other_model));
        let no_model = Probe {
            model: None,
            ..probe(0, b"x")
        };
        assert!(!fires(&mut rule, &no_model));
        let other_route = Probe {
            route: Route::Completions,
            ..probe(0, b"x")
        };
        assert!(!fires(&mut rule, &other_route));
    }
}
