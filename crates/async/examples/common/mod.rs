//! Where the examples send their calls: Novita itself when `NOVITA_API_KEY` is set,
//! otherwise a `novita-mock` server on 127.0.0.1, so every example runs anywhere.

use novita_mock::MockServer;
use novita_reqwest::{Client, ClientBuilder};

/// The model the examples ask: a reasoning model that also calls tools.
pub(crate) const MODEL: &str = "deepseek/deepseek-r1";

/// A builder aimed at Novita (with a key in the environment) or at a fresh mock, which the
/// caller keeps alive for as long as it calls.
pub(crate) fn target() -> (ClientBuilder, Option<MockServer>) {
    if std::env::var_os("NOVITA_API_KEY").is_some() {
        return (Client::builder(), None);
    }
    let server = MockServer::start();
    eprintln!(
        "(no NOVITA_API_KEY: calling a mock Novita API at {})",
        server.base_url()
    );
    let builder = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url());
    (builder, Some(server))
}
