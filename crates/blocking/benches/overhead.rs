//! Adapter overhead on the success path: `novita-ureq` against raw ureq, all posting the
//! same chat completion to `novita-mock` on loopback. The raw client runs twice: bare, and
//! with the same 120 s request timeout the adapter sets (as Novita advises); ureq's
//! timeouts have a cost of their own on loopback, which the second baseline separates from
//! the adapter's. `examples/ureq_overhead.rs` runs the same three interleaved.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use novita_mock::MockServer;
use novita_policy::wire::{ChatCompletion, ChatRequest};

fn overhead(c: &mut Criterion) {
    let server = MockServer::start();
    let request = ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "benchmark");
    let url = format!("{}/chat/completions", server.base_url());
    let authorization = format!("Bearer {}", server.api_key());
    let timeout = novita_ureq::Timeouts::default().request;
    let raw: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let client = novita_ureq::Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()
        .expect("the client builds");

    let raw_call = |with_timeout: bool| {
        let body = serde_json::to_vec(&request).expect("serialisable");
        let builder = raw
            .post(&url)
            .header("authorization", &authorization)
            .content_type("application/json");
        let builder = if with_timeout {
            builder.config().timeout_global(Some(timeout)).build()
        } else {
            builder
        };
        let mut response = builder.send(&body[..]).expect("the mock answers");
        let bytes = response.body_mut().read_to_vec().expect("a body");
        serde_json::from_slice::<ChatCompletion>(&bytes).expect("a completion")
    };

    let mut group = c.benchmark_group("blocking");
    // The mock records every request; each benchmark starts from an empty log so that later
    // benchmarks do not pay for the ones before them.
    server.clear_requests();
    group.bench_function("raw_ureq", |b| b.iter(|| black_box(raw_call(false))));
    server.clear_requests();
    group.bench_function("raw_ureq_timeout", |b| b.iter(|| black_box(raw_call(true))));
    server.clear_requests();
    group.bench_function("novita_ureq", |b| {
        b.iter(|| black_box(client.chat(&request).expect("the mock answers")));
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
