//! Conditional faults (`Rule`): windows, seeded chance, delivery, first attempts, and how
//! they rank against queued and permanent faults; plus the record of the hints sent.

mod common;

use std::time::Duration;

use common::{chat, chat_body};
use novita_mock::{Fault, MockServer, Route, Rule};

const MODEL: &str = "deepseek/deepseek-v3";
const OTHER: &str = "qwen/qwen-2.5-72b-instruct";
const CHAT: Route = Route::ChatCompletions;

fn ask(server: &MockServer, content: &str) -> u16 {
    chat(server, &chat_body(MODEL, content, false)).status
}

#[test]
fn a_seeded_chance_hits_about_its_share_and_replays() {
    let statuses = |seed| {
        let server = MockServer::start();
        server.rule(Rule::new(CHAT, Fault::status(503)).chance(0.3, seed));
        (0..200)
            .map(|i| ask(&server, &format!("call {i}")))
            .collect::<Vec<_>>()
    };
    let first = statuses(7);
    assert_eq!(first, statuses(7), "the same seed gives the same faults");
    let failed = first.iter().filter(|status| **status == 503).count();
    assert!((35..=85).contains(&failed), "{failed} of 200 got 503");
    assert!(first.iter().all(|status| [200, 503].contains(status)));
}

#[test]
fn a_window_covers_requests_from_installation_until_its_end() {
    let server = MockServer::start();
    // A window that has started and lasts the whole test, and one that has not started.
    server.rule(
        Rule::new(CHAT, Fault::status(429).retry_after_secs(2))
            .model(MODEL)
            .during(Duration::ZERO..Duration::from_secs(3600)),
    );
    server.rule(
        Rule::new(CHAT, Fault::status(503))
            .model(OTHER)
            .during(Duration::from_secs(3600)..Duration::from_secs(7200)),
    );
    assert_eq!(ask(&server, "a"), 429);
    assert_eq!(ask(&server, "a"), 429);
    assert_eq!(chat(&server, &chat_body(OTHER, "b", false)).status, 200);

    let recorded = server.requests();
    assert_eq!(recorded[0].response_header("Retry-After"), Some("2"));
    assert_eq!(recorded[2].response_header("retry-after"), None);
    assert!(recorded[2].response_headers.is_empty());
}

#[test]
fn an_empty_window_never_fires() {
    let server = MockServer::start();
    server.rule(Rule::new(CHAT, Fault::status(503)).during(Duration::ZERO..Duration::ZERO));
    assert_eq!(ask(&server, "a"), 200);
}

#[test]
fn once_per_body_hits_each_calls_first_attempt_only() {
    let server = MockServer::start();
    server.rule(Rule::new(CHAT, Fault::status(429).retry_after_ms(300)).once_per_body());
    let statuses: Vec<u16> = ["one", "one", "two", "one", "two", "three"]
        .into_iter()
        .map(|content| ask(&server, content))
        .collect();
    assert_eq!(statuses, [429, 200, 429, 200, 200, 429]);
    let recorded = server.requests();
    let hints: Vec<Option<&str>> = recorded
        .iter()
        .map(|request| request.response_header("retry-after-ms"))
        .collect();
    assert_eq!(
        hints,
        [Some("300"), None, Some("300"), None, None, Some("300")]
    );
}

#[test]
fn buffered_only_spares_streams() {
    let server = MockServer::start();
    server.rule(Rule::new(CHAT, Fault::status(504)).buffered_only());
    assert_eq!(ask(&server, "a"), 504);
    let streamed = chat(&server, &chat_body(MODEL, "a", true));
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.events().last().map(String::as_str), Some("[DONE]"));

    let server = MockServer::start();
    server.rule(Rule::new(CHAT, Fault::status(503)).streamed_only());
    assert_eq!(ask(&server, "a"), 200);
    assert_eq!(chat(&server, &chat_body(MODEL, "a", true)).status, 503);
}

#[test]
fn rules_rank_between_queued_and_always_and_clear_with_them() {
    let server = MockServer::start();
    server.always(CHAT, None, Fault::status(500));
    server.rule(Rule::new(CHAT, Fault::status(500).reason("MODEL_NOT_AVAILABLE")).model(OTHER));
    server.rule(Rule::new(CHAT, Fault::status(503)).model(MODEL));
    server.script(CHAT, None, [Fault::status(502)]);

    assert_eq!(ask(&server, "a"), 502);
    assert_eq!(ask(&server, "a"), 503);
    let other = chat(&server, &chat_body(OTHER, "a", false));
    assert_eq!(other.status, 500);
    assert_eq!(other.json()["reason"], "MODEL_NOT_AVAILABLE");
    let third = chat(
        &server,
        &chat_body("meta-llama/llama-3.1-8b-instruct", "a", false),
    );
    assert_eq!(third.status, 500);
    assert_eq!(third.json()["reason"], "INTERNAL_SERVER_ERROR");

    server.clear_faults();
    assert_eq!(ask(&server, "a"), 200);
}
