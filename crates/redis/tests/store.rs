//! The store against a real `redis-server` (novita_redis::testing::RedisServer): the
//! script's semantics, the pure GCRA it must reproduce, keys and expiry, and failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use novita_core::policy::catalog::RateLimit;
use novita_core::policy::limits::{Gcra, PERIOD};
use novita_core::store::{Charge, Exchange, Facts, News, Shift, Step, Verdict};
use novita_redis::testing::RedisServer;
use novita_redis::{RedisStore, model_key};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const ZERO: Duration = Duration::ZERO;

/// The test clock's origin: the virtual timeline's zero is this Redis time.
const BASE: Duration = Duration::from_secs(1_000_000);

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A scope no other test or case uses, so each starts from empty state.
fn fresh_scope() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("scope{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An exchange about `model` that carries nothing yet, on a budget of 10.
fn call(scope: &str, model: &str) -> Exchange {
    Exchange::new(scope, model, 10)
}

/// Runs `exchange` at virtual time `at` (on the test clock).
fn run_at(store: &RedisStore, exchange: &Exchange, at: Duration) -> Verdict {
    store
        .run_blocking_at(exchange, BASE + at)
        .expect("the exchange")
}

fn facts_news(model: &str, blocked: Duration, maintenance: Duration, open: Duration) -> News {
    News::Facts {
        model: model.to_owned(),
        facts: Facts::new(blocked, maintenance, open),
    }
}

fn recovered(model: &str) -> News {
    News::Recovered {
        model: model.to_owned(),
    }
}

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url()).expect("the helper's URL parses")
}

fn redis_connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("a direct connection")
}

#[test]
fn facts_merge_by_the_later_end_and_run_out_with_time() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();

    let mut first = call(&scope, "m");
    first.news = vec![facts_news("m", secs(10), ms(200), ZERO)];
    let verdict = run_at(&store, &first, ZERO);
    assert_eq!(verdict.facts, Facts::new(secs(10), ms(200), ZERO));

    // Shorter and zero durations change nothing; longer ones extend.
    let mut second = call(&scope, "m");
    second.news = vec![facts_news("m", secs(5), secs(1), ZERO)];
    let verdict = run_at(&store, &second, ms(100));
    assert_eq!(
        verdict.facts,
        Facts::new(secs(10) - ms(100), secs(1), ZERO),
        "blocked keeps its end, maintenance moves to the later one"
    );

    // Later, what is left has shrunk by the time passed and what ended reads zero.
    let later = run_at(&store, &call(&scope, "m"), ms(1_500));
    assert_eq!(later.facts, Facts::new(ms(8_500), ZERO, ZERO));
    let after = run_at(&store, &call(&scope, "m"), secs(11));
    assert_eq!(after.facts, Facts::default());

    // Other models are untouched.
    let other = run_at(&store, &call(&scope, "n"), ZERO);
    assert_eq!(other.facts, Facts::default());
}

#[test]
fn facts_run_out_on_redis_time() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let mut exchange = call(&scope, "m");
    exchange.news = vec![facts_news("m", ms(150), ZERO, secs(60))];
    let verdict = store.run_blocking(&exchange).unwrap();
    assert!(verdict.facts.blocked_for <= ms(150) && verdict.facts.blocked_for > ms(100));
    std::thread::sleep(ms(200));
    let verdict = store.run_blocking(&call(&scope, "m")).unwrap();
    assert_eq!(verdict.facts.blocked_for, ZERO, "{verdict:?}");
    assert!(verdict.facts.open_for > secs(59), "{verdict:?}");
}

#[test]
fn recovery_ends_maintenance_and_the_open_breaker_but_not_a_hint() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let mut exchange = call(&scope, "m");
    exchange.news = vec![
        facts_news("m", secs(30), secs(60), secs(20)),
        recovered("m"),
    ];
    let verdict = run_at(&store, &exchange, ZERO);
    assert_eq!(verdict.facts, Facts::new(secs(30), ZERO, ZERO));

    // In order: facts told after the recovery stand.
    let mut exchange = call(&scope, "m");
    exchange.news = vec![recovered("m"), facts_news("m", ZERO, secs(5), ZERO)];
    let verdict = run_at(&store, &exchange, ZERO);
    assert_eq!(verdict.facts, Facts::new(secs(30), secs(5), ZERO));
}

#[test]
fn news_about_other_models_reaches_them() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let mut exchange = call(&scope, "m");
    exchange.news = vec![facts_news("n", secs(3), ZERO, ZERO)];
    assert_eq!(
        run_at(&store, &exchange, ZERO).facts,
        Facts::default(),
        "the exchange's own model"
    );
    let verdict = run_at(&store, &call(&scope, "n"), ZERO);
    assert_eq!(verdict.facts, Facts::new(secs(3), ZERO, ZERO));
}

#[test]
fn the_budget_starts_full_and_stays_within_zero_and_its_capacity() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let budget = |delta: i64, capacity: u32| {
        let mut exchange = Exchange::new(&scope, "m", capacity);
        exchange.budget_delta = delta;
        store.run_blocking(&exchange).unwrap().budget
    };
    assert_eq!(budget(0, 10), 10, "full the first time");
    assert_eq!(budget(-3, 10), 7);
    assert_eq!(budget(-100, 10), 0, "never below zero");
    assert_eq!(budget(-1, 10), 0);
    assert_eq!(budget(4, 10), 4);
    assert_eq!(budget(i64::MAX, 10), 10, "never above the capacity");
    assert_eq!(budget(0, 6), 6, "a smaller capacity holds at once");
    assert_eq!(budget(i64::MIN, 6), 0);
    // Another account's budget is its own.
    let other = Exchange::new(fresh_scope(), "m", 5);
    assert_eq!(store.run_blocking(&other).unwrap().budget, 5);
}

/// Limits whose emission interval is a whole number of microseconds, so the store's
/// microseconds and the reference's nanoseconds describe the same instants exactly.
const WHOLE_MICROSECOND_LIMITS: [u64; 14] = [
    1, 3, 8, 20, 60, 125, 600, 1_000, 6_000, 7_500, 60_000, 100_000, 1_000_000, 60_000_000,
];

/// Which of a model's limits a charge asks for.
#[derive(Clone, Copy, Debug)]
struct Dimensions {
    requests: Option<Gcra>,
    tokens: Option<Gcra>,
}

fn dimensions() -> impl Strategy<Value = Dimensions> {
    let gcra = (
        proptest::sample::select(WHOLE_MICROSECOND_LIMITS.to_vec()),
        0..=60_000_u64,
    )
        .prop_map(|(limit, tolerance_ms)| Gcra::per_minute(limit, ms(tolerance_ms)));
    (
        proptest::option::of(gcra.clone()),
        proptest::option::of(gcra),
    )
        .prop_filter("a limit at least", |(requests, tokens)| {
            requests.is_some() || tokens.is_some()
        })
        .prop_map(|(requests, tokens)| Dimensions { requests, tokens })
}

/// The reference: `Gcra::verdict` on every dimension, all charged or none, the longest
/// wait holding the call (requests on a tie), as `novita_policy`'s limiter decides.
fn reference(
    dimensions: Dimensions,
    tats: &mut (Duration, Duration),
    now: Duration,
    tokens: u64,
) -> Option<(RateLimit, Duration)> {
    let requests = dimensions.requests.map(|gcra| gcra.verdict(tats.0, now, 1));
    let token = dimensions
        .tokens
        .map(|gcra| gcra.verdict(tats.1, now, tokens));
    let requests_wait = requests.map_or(ZERO, |verdict| verdict.wait(now));
    let tokens_wait = token.map_or(ZERO, |verdict| verdict.wait(now));
    if requests_wait.is_zero() && tokens_wait.is_zero() {
        if let Some(verdict) = requests {
            tats.0 = verdict.new_tat;
        }
        if let Some(verdict) = token {
            tats.1 = verdict.new_tat;
        }
        None
    } else if tokens_wait > requests_wait {
        Some((RateLimit::TokensPerMinute, tokens_wait))
    } else {
        Some((RateLimit::RequestsPerMinute, requests_wait))
    }
}

fn charge(dimensions: Dimensions, tokens: u64) -> Charge {
    Charge::new(
        dimensions.requests.map(|gcra| Step::of(&gcra, 1)),
        dimensions.tokens.map(|gcra| Step::of(&gcra, tokens)),
    )
}

#[test]
fn the_charge_is_the_pure_gcra_on_the_same_timeline() {
    let server = RedisServer::start();
    let store = store(&server);
    // Calls: the tokens each costs and the time since the previous one.
    let calls = proptest::collection::vec((0..=20_000_u64, 0..=2_000_000_u64), 1..40);
    let mut runner = TestRunner::new(Config {
        cases: 128,
        // The cases are generated afresh each run; no file of past failures.
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(dimensions(), calls), |(dimensions, calls)| {
            let scope = fresh_scope();
            let (mut tats, mut now) = ((ZERO, ZERO), ZERO);
            let (mut charged, mut held) = (0, 0);
            let calls_made = calls.len();
            for (tokens, elapsed_us) in calls {
                now += Duration::from_micros(elapsed_us);
                let expected = reference(dimensions, &mut tats, now, tokens);
                let mut exchange = call(&scope, "m");
                exchange.charge = Some(charge(dimensions, tokens));
                let verdict = run_at(&store, &exchange, now);
                prop_assert_eq!(verdict.limited, expected, "at {:?}", now);
                if expected.is_some() {
                    held += 1;
                } else {
                    charged += 1;
                }
            }
            prop_assert!(charged > 0, "the first call of a fresh scope goes");
            prop_assert_eq!(charged + held, calls_made);
            Ok(())
        })
        .unwrap();
}

#[test]
fn waiting_what_the_store_says_lets_the_call_through() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    // 60 RPM and 6,000 TPM without burst: one request a second, ten milliseconds a token.
    let dimensions = Dimensions {
        requests: Some(Gcra::per_minute(60, ZERO)),
        tokens: Some(Gcra::per_minute(6_000, ZERO)),
    };
    let mut now = ZERO;
    let mut exchange = call(&scope, "m");
    exchange.charge = Some(charge(dimensions, 300));
    assert_eq!(run_at(&store, &exchange, now).limited, None);
    // Tokens hold the next call 3 s, longer than the request's 1 s.
    exchange.charge = Some(charge(dimensions, 50));
    let Some((limit, wait)) = run_at(&store, &exchange, now).limited else {
        panic!("held");
    };
    assert_eq!((limit, wait), (RateLimit::TokensPerMinute, secs(3)));
    // Held calls charge nothing: the same wait, a second later, is a second shorter.
    now += secs(1);
    assert_eq!(
        run_at(&store, &exchange, now).limited,
        Some((RateLimit::TokensPerMinute, secs(2)))
    );
    now += secs(2);
    assert_eq!(run_at(&store, &exchange, now).limited, None);
    // A tie goes to requests: 1 s for the next request, and 50 tokens take 500 ms.
    exchange.charge = Some(charge(dimensions, 100));
    assert_eq!(
        run_at(&store, &exchange, now).limited,
        Some((RateLimit::RequestsPerMinute, secs(1)))
    );
}

/// Reads a model's TAT from Redis, on the virtual timeline (`None`: never set).
fn stored_tat(
    connection: &mut redis::Connection,
    scope: &str,
    model: &str,
    field: &str,
) -> Option<Duration> {
    let micros: Option<u64> = redis::cmd("HGET")
        .arg(model_key(scope, model))
        .arg(field)
        .query(connection)
        .unwrap();
    micros.map(|micros| Duration::from_micros(micros) - BASE)
}

#[test]
fn a_recharge_moves_the_tat_like_gcra_correct() {
    let server = RedisServer::start();
    let store = store(&server);
    // The runner takes a `Fn`; the connection is borrowed mutably one query at a time.
    let connection = std::cell::RefCell::new(redis_connection(&server));
    let mut runner = TestRunner::new(Config {
        cases: 128,
        // The cases are generated afresh each run; no file of past failures.
        failure_persistence: None,
        ..Config::default()
    });
    let case = (
        proptest::sample::select(WHOLE_MICROSECOND_LIMITS.to_vec()),
        0..=60_000_u64,
        0..=100_000_u64,
        0..=100_000_u64,
        0..=100_000_u64,
        0..=200_000_u64,
    );
    runner
        .run(
            &case,
            |(limit, tolerance_ms, charged, estimated, actual, later_ms)| {
                let gcra = Gcra::per_minute(limit, ms(tolerance_ms));
                let scope = fresh_scope();
                // Charge `charged` tokens at 1 s, then correct an estimate later.
                let start = secs(1);
                let tat = gcra.verdict(ZERO, start, charged).new_tat;
                let mut exchange = call(&scope, "m");
                exchange.charge = Some(Charge::new(None, Some(Step::of(&gcra, charged))));
                prop_assert_eq!(run_at(&store, &exchange, start).limited, None);
                prop_assert_eq!(
                    stored_tat(&mut connection.borrow_mut(), &scope, "m", "tokens"),
                    Some(tat)
                );

                let now = start + ms(later_ms);
                let expected = gcra.correct(tat, now, estimated, actual);
                let shift = Shift::new(
                    gcra.increment(estimated.abs_diff(actual)),
                    actual < estimated,
                    PERIOD + gcra.tolerance(),
                );
                let mut exchange = call(&scope, "m");
                exchange.news = vec![News::Recharge {
                    model: "m".to_owned(),
                    requests: None,
                    tokens: Some(shift),
                }];
                run_at(&store, &exchange, now);
                prop_assert_eq!(
                    stored_tat(&mut connection.borrow_mut(), &scope, "m", "tokens"),
                    Some(expected)
                );
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn every_key_carries_the_scope_as_a_hash_tag() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let mut exchange = call(&scope, "m");
    exchange.news = vec![
        facts_news("n", secs(1), ZERO, ZERO),
        facts_news("{odd}model", secs(1), ZERO, ZERO),
    ];
    exchange.charge = Some(charge(
        Dimensions {
            requests: Some(Gcra::per_minute(60, ZERO)),
            tokens: None,
        },
        0,
    ));
    run_at(&store, &exchange, ZERO);

    let mut connection = redis_connection(&server);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    keys.sort();
    let tag = format!("novita:{{{scope}}}:");
    assert_eq!(
        keys,
        [
            format!("{tag}budget"),
            format!("{tag}model:m"),
            format!("{tag}model:n"),
            format!("{tag}model:{{odd}}model"),
        ]
    );
    // Redis Cluster hashes only what is inside the first braces: the scope.
    for key in &keys {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        assert_eq!(&key[open + 1..close], scope, "{key}");
        assert_ne!(key, &scope);
    }
}

#[test]
fn state_expires_two_minutes_after_its_last_time() {
    let server = RedisServer::start();
    let store = store(&server);
    let mut connection = redis_connection(&server);
    let scope = fresh_scope();
    let mut exchange = call(&scope, "m");
    exchange.news = vec![facts_news("m", secs(30), ZERO, secs(10))];
    run_at(&store, &exchange, ZERO);
    let mut ttl =
        |key: String| -> i64 { redis::cmd("PTTL").arg(key).query(&mut connection).unwrap() };
    let model_ttl = ttl(model_key(&scope, "m"));
    assert!(
        (149_000..=150_000).contains(&model_ttl),
        "30 s + 120 s, got {model_ttl} ms"
    );
    let budget_ttl = ttl(novita_redis::budget_key(&scope));
    assert!(
        (86_399_000..=86_400_000).contains(&budget_ttl),
        "{budget_ttl}"
    );
    // A model whose times are all past keeps only the margin.
    let mut exchange = call(&scope, "idle");
    exchange.news = vec![recovered("idle")];
    run_at(&store, &exchange, ZERO);
    assert_eq!(ttl(model_key(&scope, "idle")), -2, "nothing to remember");
    let mut exchange = call(&scope, "paced");
    exchange.charge = Some(charge(
        Dimensions {
            requests: Some(Gcra::per_minute(1, ZERO)),
            tokens: None,
        },
        0,
    ));
    run_at(&store, &exchange, ZERO);
    let paced_ttl = ttl(model_key(&scope, "paced"));
    assert!(
        (179_000..=180_000).contains(&paced_ttl),
        "a 60 s TAT + 120 s, got {paced_ttl} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_and_blocking_paths_agree() {
    let server = RedisServer::start();
    let store = store(&server);
    let (blocking_scope, async_scope) = (fresh_scope(), fresh_scope());
    let dimensions = Dimensions {
        requests: Some(Gcra::per_minute(600, secs(1))),
        tokens: Some(Gcra::per_minute(60_000, ms(500))),
    };
    let mut now = ZERO;
    for step in 0..60_u64 {
        now += ms(step * 37 % 250);
        let make = |scope: &str| {
            let mut exchange = call(scope, "m");
            exchange.budget_delta = if step % 3 == 0 { -2 } else { 1 };
            exchange.charge = Some(charge(dimensions, step * 97 % 800));
            if step % 10 == 0 {
                exchange.news = vec![facts_news("m", ms(step * 10), ms(step), ZERO)];
            }
            if step % 15 == 7 {
                exchange.news.push(News::Recharge {
                    model: "m".to_owned(),
                    requests: Some(Shift::new(ms(50), true, secs(61))),
                    tokens: None,
                });
            }
            exchange
        };
        let blocking_call = make(&blocking_scope);
        let blocking: Verdict =
            tokio::task::block_in_place(|| store.run_blocking_at(&blocking_call, BASE + now))
                .expect("the blocking exchange");
        let asynchronous = store
            .run_async_at(&make(&async_scope), BASE + now)
            .await
            .unwrap();
        assert_eq!(blocking, asynchronous, "step {step}");
    }
}

#[test]
fn concurrent_blocking_exchanges_share_a_small_pool() {
    let server = RedisServer::start();
    let store = store(&server);
    let scope = fresh_scope();
    let started = Instant::now();
    std::thread::scope(|threads| {
        for _ in 0..8 {
            threads.spawn(|| {
                for _ in 0..200 {
                    let mut exchange = Exchange::new(&scope, "m", 1_000);
                    exchange.budget_delta = -1;
                    store.run_blocking(&exchange).unwrap();
                }
            });
        }
    });
    // 1,600 exchanges on loopback; serialized behind one connection they would still
    // finish, so this checks correctness under contention, and the time only loosely.
    assert!(started.elapsed() < secs(20), "{:?}", started.elapsed());
    assert_eq!(
        store
            .run_blocking(&Exchange::new(&scope, "m", 1_000))
            .unwrap()
            .budget,
        0,
        "every withdrawal counted once"
    );
}

#[test]
fn a_url_that_does_not_parse_fails_at_once_without_its_password() {
    for url in [
        "redis://user:hunter2@host:notaport/0",
        "http://user:hunter2@host:6379/0",
        "user:hunter2@nowhere",
    ] {
        let error = RedisStore::open(url).expect_err(url);
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("***@"), "{message}");
        assert!(message.contains("not a Redis URL"), "{message}");
    }
    let store = RedisStore::open("redis://user:hunter2@127.0.0.1:1/0").unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    assert_eq!(store.address(), "redis://***@127.0.0.1:1/0");
}

#[test]
fn a_script_error_is_a_store_error_and_the_store_goes_on() {
    let server = RedisServer::start();
    let store = store(&server);
    let mut connection = redis_connection(&server);
    let scope = fresh_scope();
    // A budget key of the wrong type makes the script fail.
    let () = redis::cmd("HSET")
        .arg(novita_redis::budget_key(&scope))
        .arg("f")
        .arg("v")
        .query(&mut connection)
        .unwrap();
    let error = store.run_blocking(&call(&scope, "m")).unwrap_err();
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
    store.run_blocking(&call(&fresh_scope(), "m")).unwrap();
}

/// Whether `attempt` succeeds within a second of tries 20 ms apart.
fn recovers(mut attempt: impl FnMut() -> bool) -> bool {
    // Up to a second: the blocking pool's background reconnection tries every 250 ms.
    (0..50).any(|_| {
        let ok = attempt();
        if !ok {
            std::thread::sleep(ms(20));
        }
        ok
    })
}

#[test]
fn a_dead_server_fails_exchanges_fast_and_a_restarted_one_is_found_again() {
    let mut server = RedisServer::start();
    let store = store(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let exchange = || call("restart", "m");
    store.run_blocking(&exchange()).unwrap();
    runtime.block_on(store.run_async(&exchange())).unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let error = store.run_blocking(&exchange()).unwrap_err();
        assert!(started.elapsed() < ms(500), "{:?}", started.elapsed());
        assert!(error.to_string().contains("shared state store"), "{error}");
        let started = Instant::now();
        runtime.block_on(store.run_async(&exchange())).unwrap_err();
        assert!(started.elapsed() < ms(500), "{:?}", started.elapsed());
    }

    // The first failure started the background reconnection: the blocking exchanges since
    // then fail without trying to connect themselves.
    let error = store.run_blocking(&exchange()).unwrap_err();
    assert!(
        error.to_string().contains("reconnecting in the background"),
        "{error}"
    );

    server.restart();
    assert!(recovers(|| store.run_blocking(&exchange()).is_ok()));
    assert!(recovers(|| runtime
        .block_on(store.run_async(&exchange()))
        .is_ok()));
    // And they stay up: the script was loaded again into the new, empty server.
    let verdict = store.run_blocking(&exchange()).unwrap();
    assert_eq!(verdict.facts, Facts::default());
    runtime.block_on(store.run_async(&exchange())).unwrap();
}

#[test]
fn an_unresponsive_server_fails_exchanges_within_the_timeouts() {
    // A listener that accepts connections but never answers, like a hung Redis.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", listener.local_addr().unwrap());
    let store = RedisStore::builder(url)
        .connect_timeout(ms(50))
        .read_timeout(ms(50))
        .write_timeout(ms(50))
        .build()
        .unwrap();
    let started = Instant::now();
    store.run_blocking(&call("hung", "m")).unwrap_err();
    assert!(started.elapsed() < ms(400), "{:?}", started.elapsed());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime
        .block_on(store.run_async(&call("hung", "m")))
        .unwrap_err();
    assert!(started.elapsed() < ms(400), "{:?}", started.elapsed());
    drop(listener);
}
