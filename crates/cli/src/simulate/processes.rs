//! `novita simulate --processes N`: N processes behind one API key, whose account may send
//! `limit` requests a second, each process a client of ours. The same workload runs three
//! times:
//!
//! - each process on its own, not told the limit: the policy only reacts to 429s;
//! - each process on its own, told the limit: each keeps to it, unaware of the others;
//! - all sharing one store (novita-redis in production; here novita-core's `MemoryStore`
//!   on virtual time): the limit, the hints and the budget hold for all of them together.
//!
//! The server accepts `limit` requests per virtual second and answers the rest 429 with
//! `Retry-After: 1`, a hint for the whole account.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use novita_core::store::MemoryStore;
use novita_policy::ModelLimits;

use super::fleet::{self, Tally};
use super::novita::NovitaClient;
use super::report;
use super::server::{Answer, ServerProfile};
use super::workload::{CALL_INTERVAL, LOAD_WINDOW, Workload, client_seed};

/// How the processes of one run keep their state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// Each process alone, reacting to 429s only.
    Alone,
    /// Each process alone, keeping to the account's limit as if it were its own.
    AloneWithLimit,
    /// Every process on one store, the limit included.
    Shared,
}

impl Sharing {
    const ALL: [Sharing; 3] = [Sharing::Alone, Sharing::AloneWithLimit, Sharing::Shared];

    fn name(self) -> &'static str {
        match self {
            Sharing::Alone => "per process, limit unknown",
            Sharing::AloneWithLimit => "per process, limit known",
            Sharing::Shared => "shared store",
        }
    }
}

/// The account's limit for `processes` processes: a quarter of them can each start a call
/// every [`CALL_INTERVAL`], so together they ask for twice what the account may send.
pub(crate) fn limit_per_second(processes: usize) -> u32 {
    let per_second = processes as f64 / CALL_INTERVAL.as_secs_f64() / 2.0;
    (per_second.ceil() as u32).max(1)
}

/// Runs the workload of `processes` processes once per way of keeping state.
pub(crate) fn compare(processes: usize, seed: u64) -> Vec<(Sharing, Tally)> {
    let workload = Workload::new(processes, seed);
    let limit = limit_per_second(processes);
    let profile = ServerProfile {
        capacity: limit,
        outage: None,
        failure_rate: 0.0,
        over_capacity: Answer::Throttled { retry_after: 1 },
    };
    // The server counts fixed one-second windows, so the limit is kept without a burst: a
    // tolerance of a second would let two seconds' worth into one window.
    let limits = ModelLimits::new(Some(u64::from(limit) * 60), None).with_burst(Duration::ZERO);
    Sharing::ALL
        .into_iter()
        .map(|sharing| {
            let store = Arc::new(MemoryStore::new());
            let tally = fleet::run(profile.clone(), &workload, seed, |process| {
                let seed = client_seed(seed, process);
                match sharing {
                    Sharing::Alone => NovitaClient::new(seed),
                    Sharing::AloneWithLimit => NovitaClient::with(seed, Some(limits), None),
                    Sharing::Shared => {
                        NovitaClient::with(seed, Some(limits), Some(Arc::clone(&store)))
                    }
                }
            });
            (sharing, tally)
        })
        .collect()
}

/// The comparison as a table, plain or Markdown.
pub(crate) fn render(processes: usize, seed: u64, markdown: bool) -> String {
    let limit = limit_per_second(processes);
    let rows = compare(processes, seed);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{processes} processes, one key, a limit of {limit} requests/s (the server answers \
         the rest 429 with Retry-After: 1); each process starts a call every {} s for {} s \
         (seed {seed})\n",
        CALL_INTERVAL.as_secs(),
        LOAD_WINDOW.as_secs()
    );
    let header = [
        "state",
        "calls",
        "succeeded",
        "requests",
        "429s",
        "own hints broken",
        "sent during any hint",
        "succeeded/s",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|(sharing, tally)| {
            [
                sharing.name().to_owned(),
                tally.calls.to_string(),
                tally.successes.to_string(),
                tally.requests.to_string(),
                tally.throttled.to_string(),
                tally.violations.to_string(),
                tally.sent_during_account_hints.to_string(),
                format!(
                    "{:.2}",
                    tally.successes as f64 / tally.last_request_at.as_secs_f64().max(1.0)
                ),
            ]
        })
        .collect();
    if markdown {
        let rows: Vec<Vec<String>> = cells.into_iter().map(Vec::from).collect();
        out.push_str(&report::markdown_table(&header, &rows));
    } else {
        let rows: Vec<(&str, Vec<String>)> =
            cells.into_iter().map(|row| ("", Vec::from(row))).collect();
        out.push_str(&report::plain_table("", &header, &rows));
    }
    let _ = writeln!(
        out,
        "\nown hints broken: a process sent before a Retry-After it received had elapsed; \
         sent during any hint: a process sent while a hint any process received still held \
         (the account's view); succeeded/s: successful calls per second from the start to \
         the last request (the limit is {limit})."
    );
    out
}
