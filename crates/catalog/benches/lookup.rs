//! Catalog lookup cost: by status, by status and reason, and for an unknown reason.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog");
    group.bench_function("lookup_status", |b| {
        b.iter(|| novita_catalog::lookup(black_box(503)))
    });
    group.bench_function("lookup_reason", |b| {
        b.iter(|| novita_catalog::lookup_reason(black_box(429), black_box("token_limit_exceeded")));
    });
    group.bench_function("lookup_unknown_reason", |b| {
        b.iter(|| novita_catalog::lookup_reason(black_box(403), black_box("SOMETHING_NEW")));
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
