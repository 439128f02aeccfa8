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
    /// Its TLS settings are its own, not this crate's features (the README's TLS section).
    pub fn agent(mut self, agent: ureq::Agent) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Shares the policy's state with every other client on the same store and account:
    /// server hints, maintenance marks and open breakers, the retry budget and the
    /// models' limits hold for all of them (`novita-redis` provides a Redis store;
    /// [`novita_core::store::MemoryStore`] one for the clients of one process). One round
    /// trip per attempt; a store in trouble never fails a call, the client goes on with
    /// its own state and tries the store again a second later. Default: none, every
    /// piece of state stays in this client.
    pub fn store(mut self, store: impl novita_core::store::BlockingStore + 'static) -> Self {
        self.options.store = Some(novita_core::store::Store::Blocking(std::sync::Arc::new(
            store,
        )));
        self
    }

    /// The client's name: the `client` label of every metric it emits (feature `metrics`),
    /// so that several clients in one process keep their own series, gauges included. Not
    /// empty, at most 64 characters, no control characters or surrounding whitespace;
    /// checked by `build`. Default: `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Seeds the jitter, for reproducible runs. Default: a random seed per client.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Builds the client.
    ///
    /// TLS is set up on this client's agent alone, as the crate's features choose (the
    /// README's TLS section): no process-wide rustls provider is installed.
    ///
    /// # Errors
    /// No key, an unusable base URL, an invalid policy configuration, an unusable name, or
    /// a TLS setup failure: the operating system's certificate store has no usable roots,
    /// or the crate was built without any TLS feature and the base URL is `https`.
    pub fn build(self) -> Result<Client, Error> {
        let core = ClientCore::from_options(self.options)?;
        let agent = match self.agent {
            Some(agent) => agent,
            None => tls::configure(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_connect(Some(core.timeouts().connect))
                    .user_agent(concat!("novita-ureq/", env!("CARGO_PKG_VERSION"))),
                core.base_url(),
            )?
            .build()
            .into(),
        };
        Ok(Client {
            agent,
            core: Arc::new(core),
        })
    }
}

/// The TLS stack the features select, set on one agent's config and never process-wide.
/// Precedence when several are on: `native-tls`, then `rustls-aws-lc`, then `rustls-ring`;
/// the roots are the operating system's unless `webpki-roots` is on.
mod tls {
    use novita_core::Error;
    use ureq::config::ConfigBuilder;
    #[cfg(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    ))]
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    use ureq::typestate::AgentScope;

    /// The roots: Mozilla's bundled ones under `webpki-roots`, else the operating system's.
    #[cfg(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    ))]
    fn roots() -> RootCerts {
        if cfg!(feature = "webpki-roots") {
            RootCerts::WebPki
        } else {
            RootCerts::PlatformVerifier
        }
    }

    /// native-tls: the platform's TLS library.
    #[cfg(feature = "native-tls")]
    #[allow(clippy::unnecessary_wraps)] // The same signature under every feature set.
    pub(crate) fn configure(
        builder: ConfigBuilder<AgentScope>,
        _base_url: &str,
    ) -> Result<ConfigBuilder<AgentScope>, Error> {
        Ok(builder.tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .root_certs(roots())
                .build(),
        ))
    }

    /// rustls with the provider the features select, handed to ureq explicitly (so ureq
    /// never looks for a process default). ureq loads the OS store on the first `https`
    /// connection; it is loaded once here too, so an empty store fails `build` instead.
    #[cfg(all(
        not(feature = "native-tls"),
        any(feature = "rustls-aws-lc", feature = "rustls-ring")
    ))]
    pub(crate) fn configure(
        builder: ConfigBuilder<AgentScope>,
        _base_url: &str,
    ) -> Result<ConfigBuilder<AgentScope>, Error> {
        use std::sync::Arc;

        let provider = Arc::new(provider());
        #[cfg(not(feature = "webpki-roots"))]
        if let Err(error) = rustls_platform_verifier::Verifier::new(Arc::clone(&provider)) {
            return Err(Error::Client(
                format!(
                    "the operating system's certificate store gave no usable roots ({error}): \
                     install its CA bundle (Debian: ca-certificates), point SSL_CERT_FILE at \
                     one, or enable novita-ureq's `webpki-roots` feature for Mozilla's \
                     bundled roots"
                )
                .into(),
            ));
        }
        Ok(builder.tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .unversioned_rustls_crypto_provider(provider)
                .root_certs(roots())
                .build(),
        ))
    }

    /// No TLS feature: plain `http` works (a local gateway, a mock), `https` is refused
    /// here rather than on the first call.
    #[cfg(not(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    )))]
    pub(crate) fn configure(
        builder: ConfigBuilder<AgentScope>,
        base_url: &str,
    ) -> Result<ConfigBuilder<AgentScope>, Error> {
        if base_url
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
        {
            return Err(Error::Client(
                "novita-ureq was built without TLS: enable one of its features \
                 `rustls-ring` (the default), `rustls-aws-lc` or `native-tls` to call an \
                 https base URL"
                    .into(),
            ));
        }
        Ok(builder)
    }

    /// The rustls provider the features select; aws-lc-rs wins over ring.
    #[cfg(all(not(feature = "native-tls"), feature = "rustls-aws-lc"))]
    fn provider() -> rustls::crypto::CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    /// The rustls provider the features select; aws-lc-rs wins over ring.
    #[cfg(all(
        not(feature = "native-tls"),
        not(feature = "rustls-aws-lc"),
        feature = "rustls-ring"
    ))]
    fn provider() -> rustls::crypto::CryptoProvider {
        rustls::crypto::ring::default_provider()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    )))]
    #[test]
    fn without_a_tls_feature_https_is_refused_at_build_and_http_works() {
        let error = super::Client::builder()
            .api_key("k")
            .base_url("https://api.novita.ai/openai/v1")
            .build()
            .unwrap_err();
        assert!(matches!(error, super::Error::Client(_)), "{error}");
        let source = std::error::Error::source(&error).unwrap().to_string();
        for feature in ["rustls-ring", "rustls-aws-lc", "native-tls"] {
            assert!(source.contains(feature), "{source}");
        }
        assert!(
            super::Client::builder()
                .api_key("k")
                .base_url("http://127.0.0.1:9")
                .build()
                .is_ok()
        );
    }

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

    #[test]
    fn a_name_is_checked_by_build() {
        let named = |name: &str| {
            super::Client::builder()
                .api_key("k")
                .base_url("http://127.0.0.1:9")
                .name(name)
                .build()
        };
        assert!(named("checkout").is_ok());
        let error = named("two\nlines").unwrap_err();
        assert!(matches!(error, super::Error::Setting { .. }), "{error}");
        assert!(error.to_string().contains("client name"), "{error}");
    }
}
