//! An async Novita API client on [reqwest] 0.13 and tokio that handles every error the way
//! Novita documents it.
//!
//! Every decision (retry or not, how long to wait, when to switch to streaming or to a
//! fallback model, when to stop and what to advise) comes from `novita-policy`, driven per
//! call by `novita-core`'s call driver; this crate sends requests, reads bounded bodies and
//! waits with `tokio::time::sleep`. Every task using one [`Client`] shares its retry
//! budget, circuit breakers and pacing. Pick it for async programs; synchronous programs
//! want `novita-ureq`, which has the same API without `.await`.
//!
//! Everything needed to handle a failure is re-exported here ([`Error`], [`ErrorKind`],
//! [`GiveUp`], [`Stop`], the catalog's [`Class`] and [`Entry`]), so a program depends on
//! this crate alone.
//!
//! The futures it returns spawn nothing: dropping one (say, through
//! `tokio::time::timeout`) stops the call on the spot, even in the middle of a backoff.
//!
//! ```no_run
//! # async fn run() -> Result<(), novita_reqwest::Error> {
//! let client = novita_reqwest::Client::from_env()?; // NOVITA_API_KEY, NOVITA_BASE_URL
//! let request = novita_reqwest::ChatRequest::new("deepseek/deepseek-v3", "Hello!");
//! let answer = client.chat(&request).await?;
//! println!("{}", answer.text());
//!
//! let mut stream = client.chat_stream(&request).await?;
//! while let Some(chunk) = stream.next_chunk().await {
//!     print!("{}", chunk?.text());
//! }
//! # Ok(())
//! # }
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
    http: reqwest::Client,
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
    http: Option<reqwest::Client>,
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

    /// Sends through your own `reqwest::Client` (proxy, TLS roots and backend, client
    /// certificates, default headers, pool settings are then yours, and no TLS provider is
    /// installed). Per request the client still sets what the policy needs: each attempt's
    /// timeout (its whole time limit, body included), the wait for a stream's headers and
    /// the silence between its pieces. The client's connect timeout, not
    /// [`Timeouts::connect`], bounds connecting. reqwest is built here without a rustls
    /// provider of its own, so install one (`rustls::crypto::ring::default_provider()
    /// .install_default()`) before building your client, as the TLS section of the README
    /// says.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Seeds the jitter, for reproducible runs. Default: a random seed per client.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Builds the client. Needs no async runtime; its calls do (tokio).
    ///
    /// # Errors
    /// No key, an unusable base URL, an invalid policy configuration, or a TLS setup
    /// failure.
    pub fn build(self) -> Result<Client, Error> {
        let core = ClientCore::from_options(self.options)?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(core.timeouts().connect)
                .user_agent(concat!("novita-reqwest/", env!("CARGO_PKG_VERSION")))
                .tls_backend_preconfigured(tls_config()?)
                .build()
                .map_err(|error| Error::Client(Box::new(error)))?,
        };
        Ok(Client {
            http,
            core: Arc::new(core),
        })
    }
}

/// rustls on the ring provider, verifying servers against the platform's roots (as
/// reqwest's own default does), or against Mozilla's bundled roots where the system has
/// none installed (minimal containers).
fn tls_config() -> Result<rustls::ClientConfig, Error> {
    // Make ring the process-wide default when nothing else chose one. reqwest is built
    // without a provider of its own here, and reqwest falls back to the installed default,
    // so other reqwest clients in the same program keep working. An installed one is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Client(Box::new(error)))?;
    let mut config = match rustls_platform_verifier::Verifier::new(provider) {
        Ok(verifier) => builder
            .dangerous() // Only the name of the API for a custom verifier; this one verifies.
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
        Err(_) => builder
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
    };
    config.alpn_protocols = if cfg!(feature = "http2") {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// A bare reqwest client with this crate's TLS setup, for tests that need raw errors.
#[cfg(test)]
pub(crate) fn test_http() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config().unwrap())
        .build()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_reqwest_clients_in_the_program_keep_working() {
        // reqwest has no rustls provider of its own in this build; ours installs ring as
        // the process default, which a plain reqwest client then uses.
        let _ours = Client::builder()
            .api_key("k")
            .base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        assert!(reqwest::Client::builder().build().is_ok());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let secret = "sk_live_do_not_print_me";
        let builder = Client::builder()
            .api_key(secret)
            .base_url("http://127.0.0.1:9/v1");
        let debug = format!("{builder:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");

        let client = builder.build().unwrap();
        for text in [format!("{client:?}"), format!("{client:#?}")] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(client.key_source(), KeySource::Argument);
        assert_eq!(client.base_url(), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn builds_without_a_runtime_and_checks_its_settings() {
        let client = Client::new("k").unwrap();
        assert_eq!(client.retry_budget(), client.config().budget.capacity);
        assert_eq!(client.breaker("m"), BreakerState::Closed);
        assert_eq!(client.pacing("m"), Duration::ZERO);

        let error = Client::builder()
            .api_key("k")
            .base_url("api.novita.ai")
            .build()
            .unwrap_err();
        assert!(matches!(error, Error::BaseUrl { .. }), "{error}");
        let error = Client::builder()
            .api_key("k")
            .policy_toml("max_atempts = 3")
            .build()
            .unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{error}");
        let error = Client::builder().api_key("  ").build().unwrap_err();
        assert!(matches!(error, Error::MissingKey), "{error}");

        let client = Client::builder()
            .api_key("k")
            .policy_toml("max_attempts = 3")
            .build()
            .unwrap();
        assert_eq!(client.config().max_attempts, 3);
    }

    #[test]
    fn timeouts_default_as_documented() {
        let timeouts = Timeouts::default();
        assert_eq!(timeouts.connect, Duration::from_secs(10));
        assert_eq!(timeouts.request, Duration::from_secs(120));
        assert_eq!(timeouts.stream_idle, Duration::from_secs(60));
    }
}
