//! The loopback setup shared by the overhead benchmark and `examples/ureq_overhead.rs`:
//! a mock, our client, and a raw ureq client doing the same JSON work by hand.
//!
//! Each variant sends through an agent of its own, so each keeps its own connection. The
//! interleaved runs switch variant on every call, and a call on the connection the call
//! before it used finds that connection (and the mock's task serving it) warm: when both
//! raw variants shared one agent, a raw call with the timeout ran up to ~10 % faster than
//! the same call through a second, identical agent, and that difference was counted as
//! the adapter's overhead.

use novita_mock::MockServer;
use novita_ureq::{ChatCompletion, ChatRequest};

pub(crate) struct Fixture {
    pub(crate) server: MockServer,
    pub(crate) request: ChatRequest,
    pub(crate) client: novita_ureq::Client,
    raw: ureq::Agent,
    raw_with_timeout: ureq::Agent,
    url: String,
    authorization: String,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let server = MockServer::start();
        let client = novita_ureq::Client::builder()
            .api_key(server.api_key())
            .base_url(server.base_url())
            .build()
            .expect("the client builds");
        Self {
            request: ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "benchmark"),
            client,
            raw: raw_agent(),
            raw_with_timeout: raw_agent(),
            url: format!("{}/chat/completions", server.base_url()),
            authorization: format!("Bearer {}", server.api_key()),
            server,
        }
    }

    /// One raw call, bare or with the same request timeout the adapter sets.
    pub(crate) fn raw_call(&self, with_timeout: bool) -> ChatCompletion {
        let body = serde_json::to_vec(&self.request).expect("serialisable");
        let agent = if with_timeout {
            &self.raw_with_timeout
        } else {
            &self.raw
        };
        let builder = agent
            .post(&self.url)
            .header("authorization", &self.authorization)
            .content_type("application/json");
        let builder = if with_timeout {
            builder
                .config()
                .timeout_global(Some(novita_ureq::Timeouts::default().request))
                .build()
        } else {
            builder
        };
        let mut response = builder.send(&body[..]).expect("the mock answers");
        let bytes = response.body_mut().read_to_vec().expect("a body");
        serde_json::from_slice(&bytes).expect("a completion")
    }

    /// One call through the adapter.
    pub(crate) fn ours(&self) -> ChatCompletion {
        self.client
            .chat(&self.request)
            .expect("the mock answers")
            .value
    }
}

/// A raw agent: ureq's defaults, error statuses as responses (as the adapter's).
fn raw_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}
