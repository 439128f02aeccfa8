//! One exchange's latency on loopback, blocking and async: a charge against both limits
//! and a piece of news, the common case of a call about to go out.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use novita_core::policy::limits::Gcra;
use novita_core::store::{Charge, Exchange, Facts, News, Step};
use novita_redis::RedisStore;
use novita_redis::testing::RedisServer;

/// An exchange that charges one request and 500 tokens under limits far too high to hold
/// it, and tells of a short hint: every part of the script runs.
fn call() -> Exchange {
    let mut exchange = Exchange::new("bench", "model", 100);
    exchange.budget_delta = -1;
    exchange.news = vec![News::Facts {
        model: "model".to_owned(),
        facts: Facts::new(Duration::from_millis(1), Duration::ZERO, Duration::ZERO),
    }];
    let huge = Gcra::per_minute(10_000_000_000, Duration::from_secs(60));
    exchange.charge = Some(Charge::new(
        Some(Step::of(&huge, 1)),
        Some(Step::of(&huge, 500)),
    ));
    exchange
}

fn exchange(c: &mut Criterion) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).expect("a valid URL");
    let call = call();
    store.run_blocking(&call).expect("Redis answers");

    let mut group = c.benchmark_group("exchange");
    group.bench_function("blocking", |b| {
        b.iter(|| store.run_blocking(black_box(&call)).expect("Redis answers"));
    });

    // Four threads sharing the store: the time per exchange of the whole, which stays
    // near the single-threaded one divided by the parallelism if the pool never makes
    // callers queue behind each other.
    group.bench_function("blocking-4-threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|threads| {
                for _ in 0..4 {
                    threads.spawn(|| {
                        for _ in 0..iters.div_ceil(4) {
                            store.run_blocking(black_box(&call)).expect("Redis answers");
                        }
                    });
                }
            });
            started.elapsed()
        });
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(store.run_async(&call))
        .expect("Redis answers");
    group.bench_function("async", |b| {
        b.iter(|| {
            runtime
                .block_on(store.run_async(black_box(&call)))
                .expect("Redis answers")
        });
    });
    group.finish();
}

/// What Redis adds to a whole call: a chat completion through each adapter against
/// novita-mock on loopback, without a store and with one on Redis (one exchange per
/// attempt), run side by side.
fn per_call(c: &mut Criterion) {
    let server = RedisServer::start();
    let mock = novita_mock::MockServer::start();
    let request = novita_ureq::ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "hi");
    let ureq = |store: Option<RedisStore>| {
        let builder = novita_ureq::Client::builder()
            .api_key(mock.api_key())
            .base_url(mock.base_url());
        match store {
            Some(store) => builder.store(store),
            None => builder,
        }
        .build()
        .expect("a client")
    };
    let alone = ureq(None);
    let shared = ureq(Some(RedisStore::open(&server.url()).expect("a valid URL")));
    let mut group = c.benchmark_group("call");
    group.bench_function("ureq_alone", |b| {
        b.iter(|| alone.chat(black_box(&request)).expect("an answer"));
    });
    group.bench_function("ureq_redis", |b| {
        b.iter(|| shared.chat(black_box(&request)).expect("an answer"));
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let reqwest = |store: Option<RedisStore>| {
        runtime.block_on(async {
            let builder = novita_reqwest::Client::builder()
                .api_key(mock.api_key())
                .base_url(mock.base_url());
            match store {
                Some(store) => builder.store(store),
                None => builder,
            }
            .build()
            .expect("a client")
        })
    };
    let alone = reqwest(None);
    let shared = reqwest(Some(RedisStore::open(&server.url()).expect("a valid URL")));
    group.bench_function("reqwest_alone", |b| {
        b.iter(|| {
            runtime
                .block_on(alone.chat(black_box(&request)))
                .expect("an answer")
        });
    });
    group.bench_function("reqwest_redis", |b| {
        b.iter(|| {
            runtime
                .block_on(shared.chat(black_box(&request)))
                .expect("an answer")
        });
    });
    group.finish();
}

criterion_group!(benches, exchange, per_call);
criterion_main!(benches);
