//! The adapter's overhead, measured interleaved: raw reqwest, raw reqwest with the adapter's
//! request timeout, and `novita-reqwest`, call after call against the same `novita-mock` on
//! loopback, so drift on a shared machine hits all three alike. Each variant has a
//! connection of its own, and each round runs them in the order of [`ORDER`], in which
//! every variant follows each of the others equally often: a call runs measurably faster
//! or slower depending on the call before it (on the same connection, it finds it warm),
//! and a plain rotation let one variant follow the same neighbour twice as often as
//! another.
//!
//! Prints one line, `raw=NS raw_timeout=NS ours=NS`, the median time per call of each;
//! `cargo xtask bench` reads it. Run with `cargo run --release -p novita-reqwest --example reqwest_overhead`.

use std::time::{Duration, Instant};

#[path = "../benches/common/mod.rs"]
mod common;

/// Rounds measured after the warm-up; each variant runs twice a round, so 4000 samples each.
const ROUNDS: usize = 2000;
/// Warm-up rounds (connections, caches), not measured.
const WARM_UP: usize = 100;
/// The variants of one round (0 raw, 1 raw with the timeout, 2 the adapter): every ordered
/// pair of different variants appears once, the wrap-around to the next round included.
const ORDER: [usize; 6] = [0, 1, 2, 0, 2, 1];

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let fixture = common::Fixture::new();
    let mut samples: [Vec<Duration>; 3] = Default::default();
    runtime.block_on(async {
        for round in 0..WARM_UP + ROUNDS {
            for variant in ORDER {
                let started = Instant::now();
                match variant {
                    0 => drop(std::hint::black_box(fixture.raw_call(false).await)),
                    1 => drop(std::hint::black_box(fixture.raw_call(true).await)),
                    _ => drop(std::hint::black_box(fixture.ours().await)),
                }
                // The first rounds warm up connections and caches.
                if round >= WARM_UP {
                    samples[variant].push(started.elapsed());
                }
            }
            if round % 250 == 0 {
                fixture.server.clear_requests();
            }
        }
    });
    let [raw, timed, ours] = samples.map(|mut times| {
        times.sort_unstable();
        times[times.len() / 2].as_nanos()
    });
    println!("raw={raw} raw_timeout={timed} ours={ours}");
}
