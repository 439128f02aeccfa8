//! The adapter's overhead, measured interleaved: each round calls raw ureq, raw ureq with
//! the adapter's request timeout, and `novita-ureq`, one after another, against the same
//! `novita-mock` on loopback, so drift on a shared machine hits all three alike. The order
//! rotates every round, so no variant always goes first.
//!
//! Prints one line, `raw=NS raw_timeout=NS ours=NS`, the median time per call of each;
//! `cargo xtask bench` reads it. Run with `cargo run --release -p novita-ureq --example ureq_overhead`.

use std::time::{Duration, Instant};

use novita_mock::MockServer;
use novita_policy::wire::{ChatCompletion, ChatRequest};

const ROUNDS: usize = 4000;

fn main() {
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

    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS + 200 {
        for offset in 0..3 {
            let variant = (round + offset) % 3;
            let started = Instant::now();
            match variant {
                0 => drop(std::hint::black_box(raw_call(false))),
                1 => drop(std::hint::black_box(raw_call(true))),
                _ => drop(std::hint::black_box(
                    client.chat(&request).expect("the mock answers"),
                )),
            }
            // The first rounds warm up connections and caches.
            if round >= 200 {
                samples[variant].push(started.elapsed());
            }
        }
        if round % 500 == 0 {
            server.clear_requests();
        }
    }
    let [raw, timed, ours] = samples.map(|mut times| {
        times.sort_unstable();
        times[times.len() / 2].as_nanos()
    });
    println!("raw={raw} raw_timeout={timed} ours={ours}");
}
