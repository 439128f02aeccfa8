//! The demo's several-worker scenarios, played when a Redis URL is given (`--redis` or
//! `NOVITA_REDIS_URL`): four workers, two on each adapter, each a client with its own
//! connection to the Redis, as four processes would be, share what they learn.
//!
//! Each run uses a mock with a key of its own, so the state a previous run left in the
//! Redis (it expires within minutes) never meets this one's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use novita_core::wire::ChatRequest;
use novita_mock::{Fault, MockServer, RecordedRequest, Route};
use novita_policy::{ModelLimits, PolicyConfig, Seconds};
use novita_redis::RedisStore;

use super::{Client, Expected, MODEL, PROMPT, Row};

/// How many workers share the Redis.
const WORKERS: usize = 4;
/// The hint of the 429 one worker hears.
const HINT: Duration = Duration::from_secs(2);
/// The requests-per-minute limit the workers share: ten a second.
const RPM: u64 = 600;
/// Calls per worker under the shared limit.
const CALLS_EACH: usize = 5;

/// Plays both fleet scenarios on the Redis at `url`.
pub(super) fn play(url: &str, runtime: &tokio::runtime::Runtime) -> Result<Vec<Row>, String> {
    // Checked once here, so a bad URL is one clear error rather than one per worker.
    RedisStore::open(url).map_err(|error| format!("--redis / NOVITA_REDIS_URL: {error}"))?;
    Ok(vec![
        a_hint_holds_the_fleet(url, runtime)?,
        one_limit_for_the_fleet(url, runtime)?,
    ])
}

/// A mock whose key no earlier run used.
fn fresh_mock() -> MockServer {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    MockServer::builder()
        .api_key(format!("sk_demo_fleet_{}_{nanos}", std::process::id()))
        .start()
}

/// Worker `index`: even ones blocking, odd ones async, each with its own store.
fn worker<'a>(
    index: usize,
    server: &MockServer,
    url: &str,
    policy: PolicyConfig,
    runtime: &'a tokio::runtime::Runtime,
) -> Result<Client<'a>, String> {
    let store = || RedisStore::open(url).map_err(|error| error.to_string());
    let client = if index.is_multiple_of(2) {
        novita_ureq::Client::builder()
            .api_key(server.api_key())
            .base_url(server.base_url())
            .policy(policy)
            .store(store()?)
            .build()
            .map(Client::Blocking)
    } else {
        let store = store()?;
        runtime.block_on(async {
            novita_reqwest::Client::builder()
                .api_key(server.api_key())
                .base_url(server.base_url())
                .policy(policy)
                .store(store)
                .build()
                .map(|client| Client::Async(client, runtime))
        })
    };
    client.map_err(|error| error.to_string())
}

fn row(title: &'static str, calls: usize) -> Row {
    Row {
        title,
        adapter: "4 workers",
        expected: Expected::Answer,
        outcome: Expected::Answer,
        calls,
        requests: 0,
        attempts: 0,
        waited: Duration::ZERO,
        detail: String::new(),
        deviation: None,
    }
}

/// Runs `calls` chats on each worker at once (a thread each); adds what they did to `row`.
fn run_workers(workers: &[Client<'_>], calls: usize, row: &mut Row) {
    let request = ChatRequest::new(MODEL, PROMPT);
    let results: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = workers
            .iter()
            .map(|worker| {
                let request = &request;
                scope.spawn(move || (0..calls).map(|_| worker.chat(request)).collect::<Vec<_>>())
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap_or_default())
            .collect()
    });
    for result in results {
        match result {
            Ok(answer) => {
                row.attempts += answer.report.attempts;
                row.waited += answer.report.waited;
            }
            Err(error) => {
                row.outcome = Expected::GiveUp;
                row.deviation = Some(format!("a worker gave up: {error}"));
            }
        }
    }
}

/// One worker hears a 429 asking for two seconds and stops there; the three others never
/// hear it, yet none sends before the two seconds are over.
fn a_hint_holds_the_fleet(url: &str, runtime: &tokio::runtime::Runtime) -> Result<Row, String> {
    let server = fresh_mock();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(429).retry_after_secs(HINT.as_secs())],
    );
    let mut once = super::demo_policy(super::Variant::Default);
    once.max_attempts = 1;
    let first = worker(0, &server, url, once, runtime)?;
    let mut row = row("429 heard by one of 4 workers", WORKERS);
    // Worker 1 gives up on the 429, as designed: its hint is what the others must honour.
    let _ = first.chat(&ChatRequest::new(MODEL, PROMPT));
    let others = (1..WORKERS)
        .map(|index| {
            let policy = super::demo_policy(super::Variant::Default);
            worker(index, &server, url, policy, runtime)
        })
        .collect::<Result<Vec<_>, _>>()?;
    run_workers(&others, 1, &mut row);
    let requests = server.requests();
    row.requests = requests.len();
    let earliest = requests
        .iter()
        .skip(1)
        .map(|request| request.at.saturating_sub(requests[0].at))
        .min();
    match earliest {
        Some(gap) if gap + Duration::from_millis(50) >= HINT => {
            row.detail = format!(
                "worker 1 heard a 429 asking for {}; the 3 others, which never heard it, \
                 sent their first request {} after it",
                Seconds(HINT),
                Seconds(gap)
            );
        }
        Some(gap) => {
            row.detail = format!("a worker sent {} after a 429 asking for 2 s", Seconds(gap));
            row.deviation = Some(row.detail.clone());
        }
        None => {
            row.detail = "the other workers sent nothing".to_owned();
            row.deviation = Some(row.detail.clone());
        }
    }
    Ok(row)
}

/// Four workers at full speed under one shared limit of ten calls a second.
fn one_limit_for_the_fleet(url: &str, runtime: &tokio::runtime::Runtime) -> Result<Row, String> {
    let server = fresh_mock();
    let mut policy = super::demo_policy(super::Variant::Default);
    policy.limits.insert(
        MODEL.to_owned(),
        ModelLimits::new(Some(RPM), None).with_burst(Duration::ZERO),
    );
    let workers = (0..WORKERS)
        .map(|index| worker(index, &server, url, policy.clone(), runtime))
        .collect::<Result<Vec<_>, _>>()?;
    let mut row = row("600 RPM shared by 4 workers", WORKERS * CALLS_EACH);
    let started = Instant::now();
    run_workers(&workers, CALLS_EACH, &mut row);
    let took = started.elapsed();
    let requests = server.requests();
    row.requests = requests.len();
    let most = most_in_one_second(&requests);
    let allowed = usize::try_from(RPM / 60).unwrap_or(usize::MAX);
    row.detail = format!(
        "{} calls in {}, at most {most} in any second (the shared limit allows {allowed}; \
         alone, each worker would allow itself {allowed})",
        row.calls,
        Seconds(took)
    );
    // A request's arrival trails its charge a little: one of slack.
    if most > allowed + 1 {
        row.deviation = Some(format!("{most} requests in one second"));
    }
    Ok(row)
}

/// The most requests that arrived within any one second.
fn most_in_one_second(requests: &[RecordedRequest]) -> usize {
    (0..requests.len())
        .map(|first| {
            requests[first..]
                .iter()
                .take_while(|request| request.at - requests[first].at < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}
