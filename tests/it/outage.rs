//! A full outage never multiplies load: the retry budget and the breaker bound what the
//! client sends, one caller or many at once; and calls ride out a short outage behind the
//! breaker's probe.

use std::time::Duration;

use novita_mock::{Fault, Route};
use novita_ureq::{ChatRequest, PolicyConfig, WhenOpen};

use crate::{MODEL, for_each_adapter};

#[test]
fn a_full_outage_is_bounded_by_the_budget() {
    for_each_adapter(
        |server, setup| {
            server.always(Route::ChatCompletions, None, Fault::status(503));
            setup.policy.budget.capacity = 20;
            // Breakers that never open, so the budget alone has to hold the line.
            setup.policy.breaker.failure_threshold = u32::MAX;
        },
        |client, server| {
            let calls = 10;
            for _ in 0..calls {
                assert!(client.chat(&ChatRequest::new(MODEL, "hi")).is_err());
            }
            let sent = server.requests().len();
            let cost = PolicyConfig::default().budget.transient_cost;
            let most = calls + (20 / cost) as usize;
            assert!(
                sent <= most,
                "{}: {sent} requests for {calls} calls, budget allows {most}",
                client.name()
            );
            assert!(
                client.retry_budget() < cost,
                "{}: the budget is spent",
                client.name()
            );
        },
    );
}

#[test]
fn thirty_two_concurrent_calls_stay_within_the_budget() {
    for_each_adapter(
        |server, setup| {
            server.always(Route::ChatCompletions, None, Fault::status(503));
            setup.policy.budget.capacity = 40;
            setup.policy.breaker.when_open = WhenOpen::FailFast;
        },
        |client, server| {
            let results = client.concurrent_chats(&ChatRequest::new(MODEL, "hi"), 32);
            assert!(results.iter().all(Result::is_err), "{}", client.name());
            let sent = server.requests().len();
            let most = 32 + (40 / PolicyConfig::default().budget.transient_cost) as usize;
            assert!(
                sent <= most,
                "{}: {sent} requests, budget allows {most}",
                client.name()
            );
            let stops: Vec<_> = results
                .iter()
                .filter_map(|result| result.as_ref().err()?.give_up().map(|g| g.stop))
                .collect();
            assert!(
                stops.iter().any(|stop| matches!(
                    stop,
                    novita_ureq::Stop::BudgetExhausted | novita_ureq::Stop::CircuitOpen
                )),
                "{}: {stops:?}",
                client.name()
            );
        },
    );
}

#[test]
fn the_breaker_fails_fast_once_open() {
    for_each_adapter(
        |server, setup| {
            server.always(Route::ChatCompletions, None, Fault::status(503));
            setup.policy.breaker.failure_threshold = 3;
            setup.policy.breaker.when_open = WhenOpen::FailFast;
        },
        |client, server| {
            assert!(client.chat(&ChatRequest::new(MODEL, "hi")).is_err());
            let after_first = server.requests().len();
            let error = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
            assert_eq!(
                error.give_up().unwrap().stop,
                novita_ureq::Stop::CircuitOpen,
                "{}",
                client.name()
            );
            assert_eq!(
                server.requests().len(),
                after_first,
                "{}: no request while open",
                client.name()
            );
        },
    );
}

#[test]
fn concurrent_calls_ride_out_a_short_outage_behind_the_probe() {
    for_each_adapter(
        |server, setup| {
            // Twelve failures, then the model is back. The first eight answer slowly, so all
            // eight calls are in flight together however busy the machine is (with the
            // first answers back before the other calls start, one call would carry every
            // probe and spend its attempts, which is a lone call's fate, not this test's).
            server.script(
                Route::ChatCompletions,
                None,
                std::iter::repeat_n(Fault::status(503).delay(Duration::from_millis(300)), 8)
                    .chain(std::iter::repeat_n(Fault::status(503), 4)),
            );
            setup.policy.breaker.failure_threshold = 3;
            setup.policy.breaker.open_for = Duration::from_millis(50);
            setup.policy.breaker.max_open_for = Duration::from_millis(200);
        },
        |client, server| {
            let results = client.concurrent_chats(&ChatRequest::new(MODEL, "hi"), 8);
            let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
            assert!(failed.is_empty(), "{}: {failed:?}", client.name());
            let requests = server.requests().len();
            assert!(
                requests <= 12 + 8,
                "{}: {requests} requests: the held calls went once each",
                client.name()
            );
        },
    );
}
