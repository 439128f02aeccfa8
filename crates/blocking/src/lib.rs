//! A blocking Novita API client on [ureq] 3 that handles every error the way Novita
//! documents it.
//!
//! Every decision (retry or not, how long to wait, when to switch to streaming or to a
//! fallback model, when to stop and what to advise) comes from `novita-policy`, driven per
//! call by `novita-core`'s call driver; this crate sends requests, reads bounded bodies and
//! sleeps with `std::thread::sleep`. Every thread using one [`Client`] shares its retry
//! budget, circuit breakers and pacing. Pick it for synchronous programs; async programs
//! want `novita-reqwest`, which has the same API with `.await`.
//!
//! Everything needed to handle a failure is re-exported here ([`Error`], [`ErrorKind`],
//! [`GiveUp`], [`Stop`], the catalog's [`Class`] and [`Entry`]), so a program depends on
//! this crate alone.
//!
//! ```no_run
//! let client = novita_ureq::Client::from_env()?; // NOVITA_API_KEY, NOVITA_BASE_URL
//! let answer = client.chat(&novita_ureq::ChatRequest::new("deepseek/deepseek-v3", "Hello!"))?;
//! println!("{}", answer.text());
//! # Ok::<(), novita_ureq::Error>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use novita_core::{ClientCore, Options};

mod call;
mod stream;
mod transport;

pub use novita_core::policy::catalog::{Class, Entry, Escalation, RateLimit};
pub use novita_core::policy::{
    Action, BreakerState, Cause, GiveUp, ModelLimits, PolicyConfig, Stop, Transport, WhenOpen,
};
pub use novita_core::wire;
pub use novita_core::wire::{
    ChatChunk, ChatCompletion, ChatRequest, Content, ContentPart, FinishReason, Message, Model,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
};
pub use novita_core::{Answer, Error, ErrorKind, KeySource, Report, Timeouts};
pub use stream::ChatStream;

/// The policy's settings, under the name this crate's builder uses.
pub type Config = PolicyConfig;

/// A Novita client. Cheap to clone: clones share the connection pool and the policy's
/// state (retry budget, circuit breakers, pacing).
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    core: Arc<ClientCore>,
}

impl Client {
    /// A client with this key and every other setting from the environment or its default.
    ///
    /// # Errors
    /// An empty key, or an unusable `NOVITA_BASE_URL`.
    pub fn new(api_key: impl Into<String>) -> Result<Self, Error> {
        Self::builder().api_key(api_key).build()
    }

    /// A client configured from `NOVITA_API_KEY` and `NOVITA_BASE_URL` (or `NOVITA_API_BASE`).
    ///
    /// # Errors
    /// No key in the environment, or an unusable base URL.
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A builder for every setting.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.core.base_url()
    }

    /// Where the API key was read from.
    #[must_use]
    pub fn key_source(&self) -> KeySource {
        self.core.key_source()
    }

    /// The policy's settings.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        self.core.config()
    }

    /// Tokens left in the shared retry budget.
    #[must_use]
    pub fn retry_budget(&self) -> u32 {
        self.core.retry_budget()
    }

    /// The circuit breaker of `model` right now.
    #[must_use]
    pub fn breaker(&self, model: &str) -> BreakerState {
        self.core.breaker(model, self.core.now())
    }

    /// The pacing interval imposed on calls to `model` (zero when not paced).
    #[must_use]
    pub fn pacing(&self, model: &str) -> Duration {
        self.core.pacing(model, self.core.now())
    }
}

/// Builds a [`Client`]; every setting has a documented default.
#[derive(Debug, Default)]
#[must_use]
pub struct ClientBuilder {
    options: Options,
    agent: Option<ureq::Agent>,
}

impl ClientBuilder {
    /// The API key. Default: `NOVITA_API_KEY`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.options.api_key = Some(key.into());
        self
    }

    /// The base URL, any prefix included (`https://api.novita.ai/openai/v1`,
    /// `http://127.0.0.1:8080/v3/openai`). Default: `NOVITA_BASE_URL`, then
    /// `NOVITA_API_BASE`, then Novita's documented URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.options.base_url = Some(url.into());
        self
    }

    /// The policy's settings. Default: [`PolicyConfig::default`].
    pub fn policy(mut self, config: PolicyConfig) -> Self {
        self.options.policy = Some(config);
        self
    }

    /// The policy's settings as TOML (see [`PolicyConfig::from_toml`]); checked by `build`.
    #[cfg(feature = "toml")]
    pub fn policy_toml(mut self, toml: impl Into<String>) -> Self {
        self.options.policy_toml = Some(toml.into());
        self
    }

    /// Models to fall back to, in order, when the requested one keeps failing or is in
    /// maintenance. Default: none.
    pub fn fallback_models(mut self, models: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.options.fallback_models = models.into_iter().map(Into::into).collect();
        self
    }

    /// The HTTP timeouts. Default: [`Timeouts::default`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.options.timeouts = timeouts;
        self
    }

    /// The most bytes of an error body read; the rest is discarded. Default 64 KiB.
    pub fn max_error_body(mut self, bytes: usize) -> Self {
        self.options.max_error_body = Some(bytes);
        self
    }

    /// The most bytes of a successful, non-streamed body read. A larger one ends the call
    /// with [`Error::Decode`] instead of filling memory. Default 64 MiB.
    pub fn max_success_body(mut self, bytes: usize) -> Self {
        self.options.max_success_body = Some(bytes);
        self
    }

    /// Bounds on what a stream may make the client hold: the size of one event, the
    /// number of choices and of tool calls. Crossing one breaks the stream with a typed
    /// error. Default: [`wire::Limits::default`].
    pub fn stream_limits(mut self, limits: wire::Limits) -> Self {
        self.options.stream_limits = limits;
        self
    }

    /// Sends through your own `ureq::Agent` (proxy, TLS roots, client certificates,
    /// connection pool, user agent are then yours). Per request the client still sets
    /// what the policy needs: error statuses come back as responses, and each attempt's
    /// timeouts (its whole time limit, the wait for headers, the silence between stream
    /// reads). The agent's connect timeout, not [`Timeouts::connect`], bounds connecting.
    pub fn agent(mut self, agent: ureq::Agent) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Seeds the jitter, for reproducible runs. Default: a random seed per client.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// No key, an unusable base URL, or an invalid policy configuration.
    pub fn build(self) -> Result<Client, Error> {
        let core = ClientCore::from_options(self.options)?;
        let agent = self.agent.unwrap_or_else(|| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(core.timeouts().connect))
                .user_agent(concat!("novita-ureq/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        });
        Ok(Client {
            agent,
            core: Arc::new(core),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_never_shows_in_debug() {
        let builder = super::Client::builder()
            .api_key("sk_builder_secret")
            .base_url("http://127.0.0.1:9");
        let text = format!("{builder:?}");
        assert!(!text.contains("sk_builder_secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        let client = builder.build().unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("sk_builder_secret"), "{text}");
    }
}
