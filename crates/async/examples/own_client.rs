//! The client on your own `reqwest::Client` (proxy, certificates, default headers):
//! `cargo run -p novita-reqwest --example own_client`.

mod common;

use novita_reqwest::ChatRequest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (builder, _mock) = common::target();
    // reqwest is built here without a TLS provider of its own: install one first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .user_agent("my-app/1.0")
        .build()?;
    let client = builder.http_client(http).build()?;
    let answer = client
        .chat(&ChatRequest::new(common::MODEL, "Hello"))
        .await?;
    println!("{} ({})", answer.text(), answer.report);
    Ok(())
}
