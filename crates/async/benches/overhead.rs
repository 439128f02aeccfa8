//! Adapter overhead on the success path: `novita-reqwest` against raw reqwest, all posting
//! the same chat completion to `novita-mock` on loopback. The raw client runs twice: bare,
//! and with the same 120 s request timeout the adapter sets (as Novita advises), which
//! separates the timeout's own cost from the adapter's. `examples/reqwest_overhead.rs` runs
//! the same three interleaved.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use novita_mock::MockServer;
use novita_policy::wire::{ChatCompletion, ChatRequest};

fn overhead(c: &mut Criterion) {
    let server = MockServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let request = ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "benchmark");
    let url = format!("{}/chat/completions", server.base_url());
    let authorization = format!("Bearer {}", server.api_key());
    let timeout = novita_reqwest::Timeouts::default().request;
    let client = novita_reqwest::Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()
        .expect("the client builds");
    // Built after ours, which installs ring as the process's rustls provider: reqwest has
    // no provider of its own in this workspace (see crates/async/Cargo.toml).
    let raw = reqwest::Client::builder()
        .build()
        .expect("the raw client builds");

    let raw_call = |with_timeout: bool| {
        let body = serde_json::to_vec(&request).expect("serialisable");
        let builder = raw
            .post(&url)
            .header("authorization", &authorization)
            .header("content-type", "application/json")
            .body(body);
        let builder = if with_timeout {
            builder.timeout(timeout)
        } else {
            builder
        };
        runtime.block_on(async {
            let bytes = builder
                .send()
                .await
                .expect("the mock answers")
                .bytes()
                .await
                .expect("a body");
            serde_json::from_slice::<ChatCompletion>(&bytes).expect("a completion")
        })
    };

    let mut group = c.benchmark_group("async");
    // The mock records every request; each benchmark starts from an empty log so that later
    // benchmarks do not pay for the ones before them.
    server.clear_requests();
    group.bench_function("raw_reqwest", |b| b.iter(|| black_box(raw_call(false))));
    server.clear_requests();
    group.bench_function("raw_reqwest_timeout", |b| {
        b.iter(|| black_box(raw_call(true)))
    });
    server.clear_requests();
    group.bench_function("novita_reqwest", |b| {
        b.iter(|| {
            runtime.block_on(async {
                black_box(client.chat(&request).await.expect("the mock answers"))
            })
        });
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
