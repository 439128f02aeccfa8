//! The loopback setup shared by the overhead benchmark and `examples/reqwest_overhead.rs`:
//! a mock, our client, and a raw reqwest client doing the same JSON work by hand.
//!
//! Each variant sends through a client of its own, so each keeps its own connection: the
//! interleaved runs switch variant on every call, and a call on the connection the call
//! before it used finds it (and the mock's task serving it) warm, which would favour
//! whichever variants shared one.

use novita_mock::MockServer;
use novita_reqwest::{ChatCompletion, ChatRequest};

pub(crate) struct Fixture {
    pub(crate) server: MockServer,
    pub(crate) request: ChatRequest,
    pub(crate) client: novita_reqwest::Client,
    raw: reqwest::Client,
    raw_with_timeout: reqwest::Client,
    url: String,
    authorization: String,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let server = MockServer::start();
        let client = novita_reqwest::Client::builder()
            .api_key(server.api_key())
            .base_url(server.base_url())
            .build()
            .expect("the client builds");
        // reqwest has no rustls provider of its own in this workspace and ours installs
        // none (see crates/async/Cargo.toml): the raw client needs the process's default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let raw = || {
            reqwest::Client::builder()
                .build()
                .expect("the raw client builds")
        };
        Self {
            request: ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "benchmark"),
            client,
            raw: raw(),
            raw_with_timeout: raw(),
            url: format!("{}/chat/completions", server.base_url()),
            authorization: format!("Bearer {}", server.api_key()),
            server,
        }
    }

    /// One raw call, bare or with the same request timeout the adapter sets.
    pub(crate) async fn raw_call(&self, with_timeout: bool) -> ChatCompletion {
        let body = serde_json::to_vec(&self.request).expect("serialisable");
        let raw = if with_timeout {
            &self.raw_with_timeout
        } else {
            &self.raw
        };
        let builder = raw
            .post(&self.url)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(body);
        let builder = if with_timeout {
            builder.timeout(novita_reqwest::Timeouts::default().request)
        } else {
            builder
        };
        let bytes = builder
            .send()
            .await
            .expect("the mock answers")
            .bytes()
            .await
            .expect("a body");
        serde_json::from_slice(&bytes).expect("a completion")
    }

    /// One call through the adapter.
    pub(crate) async fn ours(&self) -> ChatCompletion {
        self.client
            .chat(&self.request)
            .await
            .expect("the mock answers")
            .value
    }
}
