//! `novita simulate`: a deterministic fleet simulation in virtual time.
//!
//! A fleet of clients calls one server whose capacity is finite and whose faults follow a
//! scenario. Every client of a run uses the same retry strategy; the run is repeated for
//! each strategy (our policy, two hand-written loops, a no-retry baseline and the
//! ecosystem's `backon` and `retry-policies` crates) on the same workload, and the
//! report compares them: how many calls succeeded, how many requests that took, how often
//! a server's `Retry-After` was broken, how long successful calls took, and how hard the
//! fleet hit the server while it was down.
//!
//! What it models:
//! - virtual time only: a discrete-event loop over a heap of `(time, sequence)` events,
//!   so nothing sleeps and a run of minutes of traffic takes milliseconds;
//! - each client starts one call every 2 s (at its own random phase) for 180 s, and every
//!   call runs through its strategy until it succeeds or gives up, however long that takes;
//! - the server answers each request after a fixed 100 ms with 200, 503, or 429 carrying
//!   `Retry-After` in seconds; it accepts at most `capacity` requests per virtual second
//!   (a fixed one-second window) and adds the scenario's faults;
//! - each client keeps its own strategy state; ours is `novita-core` itself, run as the
//!   adapters run it: one `ClientCore` per client (so the retry budget, circuit breaker
//!   and pacing are shared by that client's calls) and one `CallDriver` per call, polled
//!   on virtual time.
//!
//! What it leaves out: network latency that varies, request sizes and tokens, concurrency
//! limits on the client, timeouts and transport errors, streaming, fallback models (there
//! is one model), and clients that give up on their own before their strategy does.
//!
//! Reproducibility: the workload, the server and our clients' jitter draw from
//! [`SplitMix64`] streams derived from the seed, and `backon` is seeded through its own
//! API, so a run repeats bit for bit, except the `retry-policies` row: that crate draws its
//! jitter from `rand`'s thread RNG and returns wall-clock instants (see [`peers`]).
//!
//! The modules, each using only those listed before it: [`workload`] (timing and seeds),
//! [`server`], [`scenario`], [`client`] (the poll/feed-back shape every strategy takes),
//! [`novita`] and [`peers`] (the strategies), [`fleet`] (the event loop), [`strategy`]
//! (names and dispatch), [`report`]; this module parses the arguments and runs them.
//!
//! [`SplitMix64`]: novita_policy::SplitMix64

use std::fmt;

mod client;
mod fleet;
mod novita;
mod peers;
mod processes;
mod report;
mod scenario;
mod server;
mod strategy;
#[cfg(test)]
mod tests;
mod workload;

use report::StrategyResult;
use scenario::Scenario;
use strategy::Strategy;
use workload::Workload;

/// Arguments of `novita simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Clients in the fleet.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// One scenario (random-503, outage, oversubscribed, thundering-herd); all by default.
    #[arg(long)]
    scenario: Option<String>,
    /// Seed for every random draw, so runs repeat exactly.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print Markdown tables (for docs/BENCHMARKS.md) instead of plain text.
    #[arg(long)]
    markdown: bool,
    /// Instead of the scenarios: N processes behind one key and one limit, keeping their
    /// state alone and sharing it through a store (as novita-redis does): 429s received,
    /// hints broken, throughput against the limit.
    #[arg(long, value_name = "N", conflicts_with_all = ["clients", "scenario"])]
    processes: Option<usize>,
}

/// Why `novita simulate` could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// `--scenario` named no known scenario.
    UnknownScenario(String),
    /// `--clients 0`: a fleet needs at least one client.
    NoClients,
}

impl Error {
    /// The exit code: both errors are mistakes on the command line.
    pub(crate) fn exit_code(&self) -> u8 {
        crate::exit::USAGE
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownScenario(name) => {
                let valid: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                write!(
                    f,
                    "unknown scenario `{name}`; valid scenarios: {}",
                    valid.join(", ")
                )
            }
            Error::NoClients => f.write_str("the fleet needs at least one client (--clients 0)"),
        }
    }
}

impl std::error::Error for Error {}

/// Runs the scenarios `args` asks for and renders the report.
///
/// # Errors
/// [`Error::UnknownScenario`] for a `--scenario` that names none; [`Error::NoClients`] for
/// `--clients 0`.
pub(crate) fn run(args: &Args) -> Result<String, Error> {
    if let Some(processes) = args.processes {
        if processes == 0 {
            return Err(Error::NoClients);
        }
        return Ok(processes::render(processes, args.seed, args.markdown));
    }
    if args.clients == 0 {
        return Err(Error::NoClients);
    }
    let scenarios = match args.scenario.as_deref() {
        Some(name) => {
            vec![Scenario::from_name(name).ok_or_else(|| Error::UnknownScenario(name.to_owned()))?]
        }
        None => Scenario::ALL.to_vec(),
    };
    let tables: Vec<report::Table> = scenarios
        .into_iter()
        .map(|scenario| report::Table {
            scenario,
            clients: args.clients,
            seed: args.seed,
            results: simulate(scenario, args.clients, args.seed),
        })
        .collect();
    Ok(report::render(&tables, args.markdown))
}

/// Runs `scenario` with `clients` clients once per strategy, every run on the same
/// workload and server model, and returns one result per strategy in [`Strategy::ALL`]
/// order.
fn simulate(scenario: Scenario, clients: usize, seed: u64) -> Vec<StrategyResult> {
    let workload = Workload::new(clients, seed);
    let profile = scenario.profile(clients);
    let mut results: Vec<StrategyResult> = Strategy::ALL
        .into_iter()
        .map(|strategy| {
            let tally = strategy.run(profile.clone(), &workload, seed);
            StrategyResult::new(strategy, tally)
        })
        .collect();
    if scenario.has_outage() {
        report::fill_outage_load(&mut results);
    }
    results
}
