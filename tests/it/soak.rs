//! A bounded soak: many concurrent calls through each adapter against a mock that mixes
//! every fault a hostile or overloaded server produces. Every call ends within its
//! deadline, every success on the client had exactly one good answer from the server and
//! every good answer is one success (nothing duplicated) or belongs to a call whose time ran
//! out while it was on its way (nothing lost otherwise), and memory stays flat from one
//! round to the next.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use novita_mock::{Fault, MockServer, Route, Rule};
use novita_ureq::{ChatRequest, ErrorKind, Stop, Transport};
use serde_json::json;

use crate::{KINDS, MODEL, Setup, adapter};

/// The response header that marks a 200 the client cannot use (garbage, oversized, cut,
/// trickled past the deadline), so the server's good answers can be counted.
const BAD: &str = "x-soak-bad";

const CALLS_PER_ROUND: usize = 120;
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 24;
const DEADLINE: Duration = Duration::from_secs(3);
/// Scheduling on a shared two-core machine: a call may overrun its deadline by this much
/// (the time to notice, unwind and return) and still count as bounded.
const SLACK: Duration = Duration::from_secs(2);

/// Every fault at once, each on a seeded share of the requests it applies to.
fn hostile(server: &MockServer) {
    let huge = json!({
        "id": "chatcmpl-huge", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "z".repeat(200_000)}}],
    });
    let chat = Route::ChatCompletions;
    let rules = [
        Rule::new(chat, Fault::status(503)).chance(0.12, 1),
        Rule::new(chat, Fault::status(429).retry_after_ms(40)).chance(0.08, 2),
        Rule::new(chat, Fault::status(429)).chance(0.04, 3),
        Rule::new(chat, Fault::reset()).chance(0.05, 4),
        Rule::new(chat, Fault::status(504))
            .buffered_only()
            .chance(0.08, 5),
        Rule::new(chat, Fault::stream_cut_after(2).header(BAD, "cut"))
            .streamed_only()
            .chance(0.3, 6),
        Rule::new(chat, Fault::malformed_success().header(BAD, "garbage")).chance(0.02, 7),
        // Buffered only: streamed, the same answer comes as small events, which is fine.
        Rule::new(chat, Fault::completion(huge).header(BAD, "oversized"))
            .buffered_only()
            .chance(0.02, 8),
        Rule::new(
            chat,
            Fault::slow_body(Duration::from_millis(300))
                .write_in_pieces(4, 9)
                .header(BAD, "trickle"),
        )
        .chance(0.02, 10),
        Rule::new(chat, Fault::status(500)).chance(0.03, 11),
    ];
    for rule in rules {
        server.rule(rule);
    }
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm's second field is resident pages");
    pages * 4096
}

#[test]
fn many_calls_against_every_fault_end_in_time_and_lose_nothing() {
    for kind in KINDS {
        let server = MockServer::start();
        hostile(&server);
        let mut setup = Setup::new(&server);
        setup.policy.deadline = Some(DEADLINE);
        // The default request timeout (120 s) is far past the deadline, so time runs out
        // only by the deadline, which ends the call: no attempt is retried after a good
        // answer came too late, and a good answer cut in flight belongs to a failed call.
        setup.max_success_body = Some(64 * 1024);
        let client = adapter(kind, &setup);
        let name = client.name();

        let mut resident = Vec::new();
        let mut successes: HashMap<String, usize> = HashMap::new();
        let mut failures: HashMap<ErrorKind, usize> = HashMap::new();
        // Calls that ended because time ran out: a good answer may have been on its way.
        let mut timed_out: HashSet<String> = HashSet::new();
        for round in 0..ROUNDS {
            let requests: Vec<ChatRequest> = (0..CALLS_PER_ROUND)
                .map(|call| ChatRequest::new(MODEL, format!("soak {round}-{call}")))
                .collect();
            for (request, (result, took)) in requests
                .iter()
                .zip(client.chats_at_once(&requests, CONCURRENCY))
            {
                assert!(
                    took <= DEADLINE + SLACK,
                    "{name}: a call took {took:?} against a {DEADLINE:?} deadline: {result:?}"
                );
                match result {
                    Ok(answer) => {
                        let prompt = request.messages[0].text().into_owned();
                        assert!(
                            answer.text().ends_with(&prompt),
                            "{name}: an answer to another prompt ({} bytes)",
                            answer.text().len()
                        );
                        *successes.entry(prompt).or_default() += 1;
                    }
                    Err(error) => {
                        if std::env::var_os("SOAK_DEBUG").is_some() {
                            eprintln!("{name}: {took:?} {}\n", error.advice());
                        }
                        let cut_by_time = error.give_up().is_some_and(|give_up| {
                            give_up.stop == Stop::PastDeadline
                                || give_up.transport.is_some_and(Transport::is_timeout)
                        });
                        if cut_by_time {
                            timed_out.insert(request.messages[0].text().into_owned());
                        }
                        *failures.entry(error.kind()).or_default() += 1;
                    }
                }
            }
            resident.push(resident_bytes());
        }

        // Every good answer the server sent is one success, and every success had one.
        let mut good: HashMap<String, usize> = HashMap::new();
        for request in server.requests() {
            if request.status == 200 && request.response_header(BAD).is_none() {
                let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                let prompt = body["messages"][0]["content"].as_str().unwrap().to_owned();
                *good.entry(prompt).or_default() += 1;
            }
        }
        for (prompt, count) in &successes {
            assert_eq!(
                (good.get(prompt), *count),
                (Some(&1), 1),
                "{name}: {prompt:?} succeeded without exactly one good answer from the server"
            );
        }
        for (prompt, count) in &good {
            assert_eq!(*count, 1, "{name}: {prompt:?} got {count} good answers");
            assert!(
                successes.contains_key(prompt) || timed_out.contains(prompt),
                "{name}: the server's good answer to {prompt:?} was lost (the call did not \
                 run out of time)"
            );
        }
        let cut_in_flight = good.keys().filter(|p| !successes.contains_key(*p)).count();
        let total = ROUNDS * CALLS_PER_ROUND;
        let succeeded = successes.len();
        // About 45 % of attempts meet a fault and the deadline is short, so many calls fail
        // by design (429s slow the whole client down); the floor only catches a collapse.
        assert!(
            succeeded * 10 >= total * 4,
            "{name}: only {succeeded} of {total} calls succeeded; failures {failures:?}"
        );

        // Flat: after the first round has warmed pools and caches, later rounds add little.
        let growth = resident[ROUNDS - 1].saturating_sub(resident[0]);
        assert!(
            growth < 32 << 20,
            "{name}: resident memory grew {} MiB over {} rounds: {resident:?}",
            growth >> 20,
            ROUNDS - 1
        );
        eprintln!(
            "soak {name}: {succeeded}/{total} succeeded, {cut_in_flight} good answers arrived \
             after their call's time ran out, {} requests, failures {failures:?}, \
             resident {:?} MiB",
            server.requests().len(),
            resident.iter().map(|bytes| bytes >> 20).collect::<Vec<_>>()
        );
    }
}
