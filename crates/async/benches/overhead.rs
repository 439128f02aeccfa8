//! Adapter overhead on the success path: `novita-reqwest` against raw reqwest, all posting
//! the same chat completion to `novita-mock` on loopback. The raw client runs twice: bare,
//! and with the same 120 s request timeout the adapter sets (as Novita advises), which
//! separates the timeout's own cost from the adapter's. `examples/reqwest_overhead.rs` runs
//! the same three interleaved.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let fixture = common::Fixture::new();
    let mut group = c.benchmark_group("async");
    // The mock records every request; each benchmark starts from an empty log so that later
    // benchmarks do not pay for the ones before them.
    fixture.server.clear_requests();
    group.bench_function("raw_reqwest", |b| {
        b.iter(|| black_box(runtime.block_on(fixture.raw_call(false))))
    });
    fixture.server.clear_requests();
    group.bench_function("raw_reqwest_timeout", |b| {
        b.iter(|| black_box(runtime.block_on(fixture.raw_call(true))))
    });
    fixture.server.clear_requests();
    group.bench_function("novita_reqwest", |b| {
        b.iter(|| black_box(runtime.block_on(fixture.ours())))
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
