//! Server hints are honoured to the letter: the retry never arrives before the hint ends.
//! Asserted on the mock's recorded arrival times, as lower bounds only.

use std::time::{Duration, SystemTime};

use novita_mock::{Fault, MockServer, Route};
use novita_ureq::ChatRequest;

use crate::{MODEL, for_each_adapter};

/// The gap between the first two requests the mock received.
fn gap(server: &MockServer) -> Duration {
    let requests = server.requests();
    assert!(
        requests.len() >= 2,
        "expected a retry, saw {} request(s)",
        requests.len()
    );
    requests[1].at - requests[0].at
}

#[test]
fn retry_after_seconds_is_honoured() {
    for_each_adapter(
        |server, _| {
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(429).retry_after_secs(1)],
            )
        },
        |client, server| {
            let answer = client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert_eq!(answer.report.attempts, 2);
            assert!(
                gap(server) >= Duration::from_secs(1),
                "{}: {:?}",
                client.name(),
                gap(server)
            );
            assert!(answer.report.waited >= Duration::from_secs(1));
        },
    );
}

#[test]
fn retry_after_ms_is_honoured() {
    for_each_adapter(
        |server, _| {
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(429).retry_after_ms(400)],
            )
        },
        |client, server| {
            client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert!(
                gap(server) >= Duration::from_millis(400),
                "{}: {:?}",
                client.name(),
                gap(server)
            );
        },
    );
}

#[test]
fn retry_after_http_date_is_honoured() {
    for_each_adapter(
        |_, _| {},
        |client, server| {
            // HTTP-dates have whole-second resolution: ask for a moment at least 1 s ahead.
            let before = SystemTime::now();
            let date = before + Duration::from_secs(2);
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(429).retry_after_date(date)],
            );
            client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            let truncated = SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    date.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                );
            // The retry may not arrive before the date; the first request's own travel time
            // (well under the tolerance) is the only slack.
            let must_wait = truncated.duration_since(before).unwrap_or_default();
            let tolerance = Duration::from_millis(250);
            assert!(
                gap(server) + tolerance >= must_wait,
                "{}: {:?} < {must_wait:?}",
                client.name(),
                gap(server)
            );
            assert!(SystemTime::now() >= truncated);
        },
    );
}

#[test]
fn a_hint_on_503_is_a_floor_for_the_backoff() {
    for_each_adapter(
        |server, _| {
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(503).retry_after_ms(300)],
            )
        },
        |client, server| {
            client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
            assert!(
                gap(server) >= Duration::from_millis(300),
                "{}: {:?}",
                client.name(),
                gap(server)
            );
        },
    );
}

#[test]
fn a_429_without_a_hint_paces_the_next_calls() {
    for_each_adapter(
        |server, setup| {
            // At most 5 calls a second once paced, so the test stays short.
            setup.policy.pacing.min_rate = 5.0;
            server.script(
                Route::ChatCompletions,
                None,
                [Fault::status(429), Fault::status(429)],
            );
        },
        |client, server| {
            client.chat(&ChatRequest::new(MODEL, "first")).unwrap();
            client.chat(&ChatRequest::new(MODEL, "second")).unwrap();
            let requests = server.requests();
            assert_eq!(requests.len(), 4, "{}", client.name());
            // The 429s cut the sending rate to the floor: calls start 200 ms apart.
            for pair in requests.windows(2).skip(1) {
                let gap = pair[1].at - pair[0].at;
                assert!(
                    gap >= Duration::from_millis(150),
                    "{}: {gap:?}",
                    client.name()
                );
            }
        },
    );
}
