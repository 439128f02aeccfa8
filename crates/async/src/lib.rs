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
#[cfg(feature = "middleware")]
pub mod middleware;
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
    /// [`Timeouts::connect`], bounds connecting. With the default `rustls-ring` feature,
    /// reqwest is built without a rustls provider of its own, so unless your own reqwest
    /// dependency brings one (its `rustls` feature) install one yourself before building
    /// your client, as the TLS section of the README says; this crate never does.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Shares the policy's state with every other client on the same store and account:
    /// server hints, maintenance marks and open breakers, the retry budget and the
    /// models' limits hold for all of them (`novita-redis` provides a Redis store;
    /// [`novita_core::store::MemoryStore`] one for the clients of one process). One round
    /// trip per attempt; a store in trouble never fails a call, the client goes on with
    /// its own state and tries the store again a second later. Each exchange is bounded by [`Timeouts::store`](novita_core::Timeouts::store). Default: none, every
    /// piece of state stays in this client.
    pub fn store(mut self, store: impl novita_core::store::AsyncStore + 'static) -> Self {
        self.options.store = Some(novita_core::store::Store::Async(std::sync::Arc::new(store)));
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

    /// Builds the client. Needs no async runtime; its calls do (tokio).
    ///
    /// TLS is set up on this client alone, as the crate's features choose (the README's TLS
    /// section): no process-wide rustls provider is installed.
    ///
    /// # Errors
    /// No key, an unusable base URL, an invalid policy configuration, an unusable name, or
    /// a TLS setup failure: the operating system's certificate store has no usable roots,
    /// or the crate was built without any TLS feature and the base URL is `https`.
    pub fn build(self) -> Result<Client, Error> {
        let core = ClientCore::from_options(self.options)?;
        let http = match self.http {
            Some(http) => http,
            None => tls::configure(
                reqwest::Client::builder()
                    .connect_timeout(core.timeouts().connect)
                    .user_agent(concat!("novita-reqwest/", env!("CARGO_PKG_VERSION"))),
                core.base_url(),
            )?
            .build()
            .map_err(|error| Error::Client(Box::new(error)))?,
        };
        Ok(Client {
            http,
            core: Arc::new(core),
        })
    }
}

/// The TLS stack the features select, set up on one `reqwest::ClientBuilder` and never
/// process-wide. Precedence when several are on: `native-tls`, then `rustls-aws-lc`, then
/// `rustls-ring`; the roots are the operating system's unless `webpki-roots` is on.
mod tls {
    use novita_core::Error;

    /// native-tls on this client: the platform's TLS library with the OS store, or with
    /// Mozilla's roots alone under `webpki-roots`.
    #[cfg(feature = "native-tls")]
    pub(crate) fn configure(
        builder: reqwest::ClientBuilder,
        _base_url: &str,
    ) -> Result<reqwest::ClientBuilder, Error> {
        let builder = builder.tls_backend_native();
        #[cfg(feature = "webpki-roots")]
        let builder = builder.tls_certs_only(
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| Error::Client(Box::new(error)))?,
        );
        Ok(builder)
    }

    /// rustls on this client, with the provider the features select handed to it
    /// explicitly.
    #[cfg(all(
        not(feature = "native-tls"),
        any(feature = "rustls-aws-lc", feature = "rustls-ring")
    ))]
    pub(crate) fn configure(
        builder: reqwest::ClientBuilder,
        _base_url: &str,
    ) -> Result<reqwest::ClientBuilder, Error> {
        Ok(builder.tls_backend_preconfigured(rustls_config()?))
    }

    /// No TLS feature: plain `http` works (a local gateway, a mock), `https` is refused
    /// here rather than on the first call.
    #[cfg(not(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    )))]
    pub(crate) fn configure(
        builder: reqwest::ClientBuilder,
        base_url: &str,
    ) -> Result<reqwest::ClientBuilder, Error> {
        if base_url
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
        {
            return Err(Error::Client(
                "novita-reqwest was built without TLS: enable one of its features \
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

    /// A rustls config on the selected provider, verifying servers against the operating
    /// system's store (rustls-platform-verifier; on Linux it honours `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR`), or against Mozilla's bundled roots under `webpki-roots`.
    #[cfg(all(
        not(feature = "native-tls"),
        any(feature = "rustls-aws-lc", feature = "rustls-ring")
    ))]
    fn rustls_config() -> Result<rustls::ClientConfig, Error> {
        use std::sync::Arc;

        let provider = Arc::new(provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Client(Box::new(error)))?;
        #[cfg(feature = "webpki-roots")]
        let mut config = builder
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
        #[cfg(not(feature = "webpki-roots"))]
        let mut config = {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|error| {
                Error::Client(
                    format!(
                        "the operating system's certificate store gave no usable roots \
                         ({error}): install its CA bundle (Debian: ca-certificates), point \
                         SSL_CERT_FILE at one, or enable novita-reqwest's `webpki-roots` \
                         feature for Mozilla's bundled roots"
                    )
                    .into(),
                )
            })?;
            builder
                .dangerous() // Only the name of the API for a custom verifier; this one verifies.
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        };
        config.alpn_protocols = if cfg!(feature = "http2") {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(config)
    }
}

/// A bare reqwest client with this crate's TLS setup, for tests that need raw errors.
#[cfg(test)]
pub(crate) fn test_http() -> reqwest::Client {
    tls::configure(reqwest::Client::builder(), "http://127.0.0.1")
        .unwrap()
        .build()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(any(
        feature = "native-tls",
        feature = "rustls-aws-lc",
        feature = "rustls-ring"
    )))]
    #[test]
    fn without_a_tls_feature_https_is_refused_at_build_and_http_works() {
        let error = Client::builder()
            .api_key("k")
            .base_url("https://api.novita.ai/openai/v1")
            .build()
            .unwrap_err();
        assert!(matches!(error, Error::Client(_)), "{error}");
        let source = std::error::Error::source(&error).unwrap().to_string();
        for feature in ["rustls-ring", "rustls-aws-lc", "native-tls"] {
            assert!(source.contains(feature), "{source}");
        }
        assert!(
            Client::builder()
                .api_key("k")
                .base_url("http://127.0.0.1:9")
                .build()
                .is_ok()
        );
    }

    #[cfg(feature = "rustls-aws-lc")]
    #[test]
    fn with_aws_lc_other_reqwest_clients_find_a_provider_without_installing_one() {
        // reqwest's own `rustls` feature is on with rustls-aws-lc: a plain client builds.
        let _ours = Client::builder()
            .api_key("k")
            .base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        assert!(reqwest::Client::builder().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
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

    #[cfg(any(
        feature = "rustls-ring",
        feature = "rustls-aws-lc",
        feature = "native-tls"
    ))] // Its default base URL is https.
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
        let error = Client::builder().api_key("k").name("").build().unwrap_err();
        assert!(matches!(error, Error::Setting { .. }), "{error}");
        assert!(
            Client::builder()
                .api_key("k")
                .name("checkout")
                .build()
                .is_ok()
        );

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
