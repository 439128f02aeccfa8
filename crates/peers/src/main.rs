//! A benchmark on real HTTP: `novita-reqwest` beside the clients users would otherwise pick
//! (`async-openai` with its built-in retry, `reqwest-middleware` with `reqwest-retry`, and
//! plain reqwest that never retries), each against its own `novita-mock` on 127.0.0.1, in
//! six fault modes: 300 chat calls per client and mode, 16 at a time, each cut off after
//! 120 s.
//!
//! `cargo run --release -p novita-peers` prints a `peers ...` line with the settings, then
//! one `row ...` line per client and mode (read by `cargo xtask bench`); progress and, for
//! our client, what its reports say (attempts, waits, fallbacks, give-ups) go to stderr.
//! `--mode NAME` (repeatable) runs only some modes, `--calls N` and `--concurrency N`
//! change the load. Nothing here asserts: `cargo xtask bench` checks the targets.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use novita_mock::{MockServer, RecordedRequest};

mod client;
mod measure;
mod mode;

use client::{Client, Contender, Outcome};
use measure::Row;
use mode::Mode;

/// Calls per client and mode.
const CALLS: usize = 300;
/// Calls in flight at once, per client.
const CONCURRENCY: usize = 16;
/// Every client's per-call deadline.
const DEADLINE: Duration = Duration::from_secs(120);
/// The mock's time for a normal answer (errors are immediate).
const LATENCY: Duration = Duration::from_millis(20);

const USAGE: &str = "usage: novita-peers [--mode NAME]... [--calls N] [--concurrency N]";

/// What to run.
#[derive(Debug)]
struct Args {
    modes: Vec<Mode>,
    calls: usize,
    concurrency: usize,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        modes: Vec::new(),
        calls: CALLS,
        concurrency: CONCURRENCY,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--mode" => {
                let name = value()?;
                let names: Vec<&str> = mode::ALL.iter().map(|m| m.name()).collect();
                parsed.modes.push(Mode::named(name).ok_or(format!(
                    "unknown mode {name:?}; the modes are {}",
                    names.join(", ")
                ))?);
            }
            "--calls" => parsed.calls = number(value()?)?,
            "--concurrency" => parsed.concurrency = number(value()?)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.modes.is_empty() {
        parsed.modes = mode::ALL.to_vec();
    }
    Ok(parsed)
}

fn number(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("novita-peers: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // reqwest is built with rustls but no crypto provider of its own (no aws-lc, no
    // OpenSSL): ring serves every client here, as in novita-reqwest. Loopback is plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "peers calls={} concurrency={} deadline_ms={} latency_ms={} grace_ms={} seed={} \
         outage_ms={} window_ms={} window_hint_s={} call_hint_ms={}",
        args.calls,
        args.concurrency,
        DEADLINE.as_millis(),
        LATENCY.as_millis(),
        measure::GRACE.as_millis(),
        mode::SEED,
        mode::OUTAGE.as_millis(),
        mode::WINDOW.as_millis(),
        mode::WINDOW_HINT_SECS,
        mode::CALL_HINT_MS,
    );
    let started = Instant::now();
    for mode in &args.modes {
        for contender in mode.contenders() {
            let row = runtime.block_on(run(*mode, contender, &args));
            println!("{}", row.line());
        }
    }
    eprintln!(
        "novita-peers: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// One contender's run in one mode, against a server of its own started for it.
async fn run(mode: Mode, contender: Contender, args: &Args) -> Row {
    let server = MockServer::builder().latency(LATENCY).start();
    mode.install(&server);
    let client = Client::new(contender, &server);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(args.calls)));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, next, outcomes) = (
            Arc::clone(&client),
            Arc::clone(&next),
            Arc::clone(&outcomes),
        );
        let (calls, name) = (args.calls, mode.name());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    break;
                }
                let prompt = format!("{name} call {i}: name one prime number.");
                let outcome = client.call(&prompt, DEADLINE).await;
                outcomes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(outcome);
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.expect("a benchmark worker panicked");
    }
    let wall = started.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(PoisonError::into_inner));
    let records = server.requests();
    let outage = (mode == Mode::Outage).then_some(mode::OUTAGE);
    let row = Row::new(
        mode.name(),
        contender.label(),
        &outcomes,
        &records,
        wall,
        outage,
    );
    explain(&row, &outcomes, &records);
    row
}

/// Stderr: the row in words, and for our client what its reports say and when its
/// requests arrived.
fn explain(row: &Row, outcomes: &[Outcome], records: &[RecordedRequest]) {
    eprintln!(
        "novita-peers: {:<22} {:<24} ok {:>3}/{} requests {:>4} hints {:>4} violations {:>3} \
         (strict {:>3}) p50 {:>8.1} ms p99 {:>8.1} ms wall {:>6.1} s",
        row.mode,
        row.client,
        row.ok,
        row.calls,
        row.requests,
        row.hints,
        row.violations,
        row.strict_violations,
        row.p50.as_secs_f64() * 1000.0,
        row.p99.as_secs_f64() * 1000.0,
        row.wall.as_secs_f64()
    );
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for failure in outcomes.iter().filter_map(|o| o.failure.as_deref()) {
        *failures.entry(failure).or_default() += 1;
    }
    for (failure, count) in &failures {
        eprintln!("    failed {count:>3}× {failure}");
    }
    let reports: Vec<_> = outcomes.iter().filter_map(|o| o.ours.as_ref()).collect();
    if reports.is_empty() {
        return;
    }
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for report in &reports {
        *attempts.entry(report.attempts).or_default() += 1;
    }
    let mut waits: Vec<Duration> = reports.iter().map(|r| r.waited).collect();
    waits.sort_unstable();
    let fell_back = reports.iter().filter(|r| r.fell_back).count();
    let switched = reports.iter().filter(|r| r.switched_to_streaming).count();
    eprintln!(
        "    ours: attempts per call {attempts:?}; waited p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         fell back {fell_back}, switched to streaming {switched}",
        measure::percentile(&waits, 0.5).as_secs_f64() * 1000.0,
        measure::percentile(&waits, 0.99).as_secs_f64() * 1000.0,
        waits.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    if row.hints > 0 {
        let graces: Vec<String> = [0, 1, 2, 5, 10, 20]
            .into_iter()
            .map(|ms| {
                let (_, violated) = measure::violations(records, Duration::from_millis(ms));
                format!("{ms} ms: {violated}")
            })
            .collect();
        eprintln!("    ours: hints violated by grace {}", graces.join(", "));
    }
    eprintln!("    ours: timeline {}", measure::timeline(records));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_run_every_mode_at_full_load() {
        let parsed = args(&[]).unwrap();
        assert_eq!(parsed.modes, mode::ALL.to_vec());
        assert_eq!((parsed.calls, parsed.concurrency), (CALLS, CONCURRENCY));
    }

    #[test]
    fn modes_and_load_can_be_chosen() {
        let parsed = args(&[
            "--mode",
            "outage-20s",
            "--mode",
            "random-503",
            "--calls",
            "10",
            "--concurrency",
            "2",
        ])
        .unwrap();
        assert_eq!(parsed.modes, [Mode::Outage, Mode::Random503]);
        assert_eq!((parsed.calls, parsed.concurrency), (10, 2));
        assert!(
            args(&["--mode", "nope"])
                .unwrap_err()
                .contains("random-503")
        );
        assert!(args(&["--calls", "0"]).is_err());
        assert!(args(&["--calls"]).is_err());
        assert!(args(&["--fast"]).is_err());
    }
}
