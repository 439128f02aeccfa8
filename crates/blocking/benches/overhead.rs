//! Adapter overhead on the success path: `novita-ureq` against raw ureq, all posting the
//! same chat completion to `novita-mock` on loopback. The raw client runs twice: bare, and
//! with the same 120 s request timeout the adapter sets (as Novita advises), which
//! separates the timeout's own cost from the adapter's. `examples/ureq_overhead.rs` runs
//! the same three interleaved.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn overhead(c: &mut Criterion) {
    let fixture = common::Fixture::new();
    let mut group = c.benchmark_group("blocking");
    // The mock records every request; each benchmark starts from an empty log so that later
    // benchmarks do not pay for the ones before them.
    fixture.server.clear_requests();
    group.bench_function("raw_ureq", |b| {
        b.iter(|| black_box(fixture.raw_call(false)))
    });
    fixture.server.clear_requests();
    group.bench_function("raw_ureq_timeout", |b| {
        b.iter(|| black_box(fixture.raw_call(true)))
    });
    fixture.server.clear_requests();
    group.bench_function("novita_ureq", |b| b.iter(|| black_box(fixture.ours())));
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
