//! Decision cost: the success path, a 503 path and a 429-with-Retry-After path.
//!
//! Run with `cargo bench -p novita-policy`; the figures go in the crate README.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use novita_policy::{Clock, Delivery, Draw, NO_HEADERS, Outcome, Policy};

const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";

fn clock() -> Clock {
    Clock {
        now: Duration::from_secs(10),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_200),
    }
}

fn decide(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("decide");

    // The success path: the state is reused as a real client would reuse it.
    let mut state = policy.client_state();
    let success = Outcome::Response {
        status: 200,
        headers: &NO_HEADERS,
        body: b"",
    };
    group.bench_function("success", |b| {
        b.iter(|| {
            let mut call = policy.start_call(clock().now, Delivery::Buffered, 1);
            black_box(policy.decide(
                &mut state,
                &mut call,
                black_box(MODEL),
                &success,
                clock(),
                Draw::HALF,
            ))
        });
    });

    let overloaded =
        br#"{"code":503,"reason":"SERVICE_NOT_AVAILABLE","message":"busy","metadata":{}}"#;
    let outcome = Outcome::Response {
        status: 503,
        headers: &NO_HEADERS,
        body: overloaded,
    };
    let fresh = policy.client_state();
    group.bench_function("503", |b| {
        b.iter_batched_ref(
            || {
                (
                    fresh.clone(),
                    policy.start_call(clock().now, Delivery::Buffered, 1),
                )
            },
            |(state, call)| {
                black_box(policy.decide(state, call, MODEL, &outcome, clock(), Draw::HALF))
            },
            BatchSize::SmallInput,
        );
    });

    let headers = [("retry-after", "2"), ("x-request-id", "req-1")];
    let throttled =
        br#"{"code":429,"reason":"TOKEN_LIMIT_EXCEEDED","message":"slow down","metadata":{}}"#;
    let outcome = Outcome::Response {
        status: 429,
        headers: &headers,
        body: throttled,
    };
    group.bench_function("429_retry_after", |b| {
        b.iter_batched_ref(
            || {
                (
                    fresh.clone(),
                    policy.start_call(clock().now, Delivery::Buffered, 1),
                )
            },
            |(state, call)| {
                black_box(policy.decide(state, call, MODEL, &outcome, clock(), Draw::HALF))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
