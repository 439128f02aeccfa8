//! Tests of the whole simulation: reproducibility, arguments, and the behaviour the
//! design promises under each scenario. Virtual time only; nothing here sleeps.

use super::*;

const CLIENTS: usize = 50;
const SEED: u64 = 42;

fn result(results: &[StrategyResult], strategy: Strategy) -> &StrategyResult {
    results
        .iter()
        .find(|result| result.strategy == strategy)
        .unwrap_or_else(|| panic!("no result for {}", strategy.name()))
}

fn args(clients: usize, scenario: Option<&str>) -> Args {
    Args {
        clients,
        scenario: scenario.map(str::to_owned),
        seed: SEED,
        markdown: false,
        processes: None,
    }
}

#[test]
fn the_same_seed_repeats_every_reproducible_strategy_exactly() {
    for scenario in Scenario::ALL {
        let first = simulate(scenario, 20, 7);
        let second = simulate(scenario, 20, 7);
        assert_eq!(first.len(), Strategy::ALL.len());
        for (a, b) in first.iter().zip(&second) {
            if a.strategy == Strategy::RetryPolicies {
                // Jitter from rand's thread RNG: same workload, similar load.
                assert_eq!(a.calls, b.calls, "{}", scenario.name());
                assert!(a.requests <= b.requests * 2 && b.requests <= a.requests * 2);
            } else {
                assert_eq!(a, b, "{} / {}", scenario.name(), a.strategy.name());
            }
        }
    }
}

#[test]
fn another_seed_gives_another_run() {
    let first = simulate(Scenario::Random503, 20, 1);
    let second = simulate(Scenario::Random503, 20, 2);
    let novita = |results: &[StrategyResult]| result(results, Strategy::Novita).clone();
    assert_ne!(novita(&first), novita(&second));
}

#[test]
fn every_strategy_sees_the_same_calls() {
    let results = simulate(Scenario::Outage, CLIENTS, SEED);
    let calls = result(&results, Strategy::NoRetry).calls;
    assert_eq!(calls, 50 * 90, "one call every 2 s for 180 s");
    assert!(results.iter().all(|result| result.calls == calls));
}

#[test]
fn an_unknown_scenario_names_the_valid_ones() {
    let error = run(&args(CLIENTS, Some("meltdown"))).unwrap_err();
    assert_eq!(error, Error::UnknownScenario("meltdown".to_owned()));
    let message = error.to_string();
    assert!(
        message.starts_with("unknown scenario `meltdown`"),
        "{message}"
    );
    for scenario in Scenario::ALL {
        assert!(message.contains(scenario.name()), "{message}");
    }
}

#[test]
fn zero_clients_is_an_error() {
    let error = run(&args(0, None)).unwrap_err();
    assert_eq!(error, Error::NoClients);
    assert!(error.to_string().contains("at least one client"));
}

#[test]
fn one_scenario_renders_one_table_with_our_row_marked() {
    let text = run(&args(5, Some("outage"))).unwrap_or_else(|error| panic!("{error}"));
    assert!(text.starts_with("outage: 5 clients, seed 42"), "{text}");
    assert!(!text.contains("random-503"), "{text}");
    assert!(text.contains("> novita "), "{text}");
    let markdown = run(&Args {
        markdown: true,
        ..args(5, Some("oversubscribed"))
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(markdown.contains("| **novita** (ours) |"), "{markdown}");
    assert!(markdown.contains("|:--|--:|"), "{markdown}");
}

#[test]
fn in_an_outage_novita_does_not_add_load_and_naive_retries_multiply_it() {
    let results = simulate(Scenario::Outage, CLIENTS, SEED);
    let load = |strategy| result(&results, strategy).outage_load.unwrap_or(f64::NAN);
    assert!((load(Strategy::NoRetry) - 1.0).abs() < f64::EPSILON);
    assert!(
        load(Strategy::Novita) <= 1.2,
        "novita: {}",
        load(Strategy::Novita)
    );
    assert!(
        load(Strategy::NaiveFixed) >= 3.0,
        "naive-fixed: {}",
        load(Strategy::NaiveFixed)
    );
}

#[test]
fn outage_load_is_only_reported_for_outages() {
    let results = simulate(Scenario::Oversubscribed, 5, SEED);
    assert!(results.iter().all(|result| result.outage_load.is_none()));
}

#[test]
fn novita_breaks_far_fewer_retry_afters_than_loops_that_ignore_them() {
    let results = simulate(Scenario::Oversubscribed, CLIENTS, SEED);
    let novita = result(&results, Strategy::Novita).violations;
    for strategy in [
        Strategy::NaiveFixed,
        Strategy::Exponential,
        Strategy::Backon,
        Strategy::RetryPolicies,
    ] {
        let theirs = result(&results, strategy).violations;
        assert!(
            novita * 20 < theirs,
            "novita {novita}, {}: {theirs}",
            strategy.name()
        );
    }
}

/// The design's promise. It holds because the call driver asks the policy to admit an
/// attempt again once any wait is over, so a `Retry-After` that another call of the same
/// client received meanwhile (the client's pacer is blocked until it elapses) still holds.
#[test]
fn novita_never_breaks_a_retry_after() {
    let results = simulate(Scenario::Oversubscribed, CLIENTS, SEED);
    assert_eq!(result(&results, Strategy::Novita).violations, 0);
}

/// The brief's target: with the default limits (6 attempts per call on 503s, a breaker
/// that opens after 10 consecutive failures) a call fails with probability 0.3^6 = 0.07 %
/// when 30 % of requests fail at random. For 50 clients, seed 42, the simulation shows
/// 99.98 %.
#[test]
fn novita_rides_out_random_503s() {
    let results = simulate(Scenario::Random503, CLIENTS, SEED);
    let novita = result(&results, Strategy::Novita);
    assert!(
        novita.success_rate() >= 99.9,
        "novita: {:.2} %",
        novita.success_rate()
    );
}

#[test]
fn processes_sharing_a_store_keep_the_accounts_limit_together() {
    let results = super::processes::compare(12, 7);
    let tally = |wanted| {
        results
            .iter()
            .find(|(sharing, _)| *sharing == wanted)
            .map(|(_, tally)| tally.clone())
            .expect("every way of keeping state runs")
    };
    let alone = tally(super::processes::Sharing::AloneWithLimit);
    let shared = tally(super::processes::Sharing::Shared);
    // Alone, each process keeps to the limit as if it were its own: together they cross it.
    assert!(alone.throttled > 100, "{alone:?}");
    // Shared, they keep to it together: no 429, no request while a hint holds, and every
    // request is a call that succeeds.
    assert_eq!(shared.throttled, 0, "{shared:?}");
    assert_eq!(shared.sent_during_account_hints, 0);
    assert_eq!(shared.requests, shared.successes);
    assert!(
        shared.successes > alone.successes,
        "{shared:?} vs {alone:?}"
    );
    let limit = f64::from(super::processes::limit_per_second(12));
    let rate = shared.successes as f64 / shared.last_request_at.as_secs_f64();
    assert!(
        rate <= limit * 1.01,
        "{rate}/s against a limit of {limit}/s"
    );
}
