//! The policy inside your own reqwest-middleware chain, beside reqwest-tracing:
//! `cargo run -p novita-reqwest --features middleware --example middleware`.
//!
//! With `NOVITA_API_KEY` set it calls Novita; otherwise a mock on 127.0.0.1 that first
//! answers 429 with `Retry-After: 1` and then puts the model in maintenance, so the
//! middleware waits, then moves the request to the fallback model.

use std::sync::Arc;

use novita_mock::{Fault, MockServer, Route};
use novita_reqwest::middleware::NovitaMiddleware;
use novita_reqwest::{Error, Report};
use reqwest_tracing::TracingMiddleware;

const MODEL: &str = "deepseek/deepseek-r1";
const FALLBACK: &str = "qwen/qwen-2.5-72b-instruct";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base_url, key, _mock) = match std::env::var("NOVITA_API_KEY") {
        Ok(key) => ("https://api.novita.ai/openai/v1".to_owned(), key, None),
        Err(_) => {
            let mock = MockServer::start();
            mock.script(
                Route::ChatCompletions,
                Some(MODEL),
                [
                    Fault::status(429).retry_after_secs(1),
                    Fault::status(500).reason("MODEL_NOT_AVAILABLE"),
                ],
            );
            eprintln!(
                "(no NOVITA_API_KEY: calling a mock Novita API at {})",
                mock.base_url()
            );
            (mock.base_url(), mock.api_key().to_owned(), Some(mock))
        }
    };
    // reqwest is built here without a TLS provider of its own: install one first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Tracing first, so its span covers the whole call; after the policy it would see
    // every attempt.
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::default())
        .with(
            NovitaMiddleware::builder()
                .fallback_models([FALLBACK])
                .build()?,
        )
        .build();
    let response = http
        .post(format!("{base_url}/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say hello in French."}],
        }))
        .send()
        .await?;
    if let Some(error) = response.extensions().get::<Arc<Error>>() {
        // The policy gave up on this response: what a human should do about it.
        eprintln!("{}", error.advice());
        return Err(format!("HTTP {}", response.status()).into());
    }
    let report = response.extensions().get::<Report>().cloned();
    let answer: serde_json::Value = response.json().await?;
    println!("{}", answer["choices"][0]["message"]["content"]);
    if let Some(report) = report {
        // Attempts, waits and fallback, in one line.
        println!("({report})");
    }
    Ok(())
}
