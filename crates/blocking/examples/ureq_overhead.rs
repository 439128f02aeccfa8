//! The adapter's overhead, measured interleaved: each round calls raw ureq, raw ureq with
//! the adapter's request timeout, and `novita-ureq`, one after another, against the same
//! `novita-mock` on loopback, so drift on a shared machine hits all three alike. The order
//! rotates every round, so no variant always goes first.
//!
//! Prints one line, `raw=NS raw_timeout=NS ours=NS`, the median time per call of each;
//! `cargo xtask bench` reads it. Run with `cargo run --release -p novita-ureq --example ureq_overhead`.

use std::time::{Duration, Instant};

#[path = "../benches/common/mod.rs"]
mod common;

const ROUNDS: usize = 4000;

fn main() {
    let fixture = common::Fixture::new();
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS + 200 {
        for offset in 0..3 {
            let variant = (round + offset) % 3;
            let started = Instant::now();
            match variant {
                0 => drop(std::hint::black_box(fixture.raw_call(false))),
                1 => drop(std::hint::black_box(fixture.raw_call(true))),
                _ => drop(std::hint::black_box(fixture.ours())),
            }
            // The first rounds warm up connections and caches.
            if round >= 200 {
                samples[variant].push(started.elapsed());
            }
        }
        if round % 500 == 0 {
            fixture.server.clear_requests();
        }
    }
    let [raw, timed, ours] = samples.map(|mut times| {
        times.sort_unstable();
        times[times.len() / 2].as_nanos()
    });
    println!("raw={raw} raw_timeout={timed} ours={ours}");
}
