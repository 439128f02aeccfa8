//! A blocking Novita API client on [ureq] 3 that handles every error the way Novita
//! documents it.
//!
//! Every decision (retry or not, how long to wait, when to switch to streaming or to a
//! fallback model, when to stop and what to advise) comes from `novita-policy`; this crate
//! sends requests, reads bounded error bodies, sleeps with `std::thread::sleep`, and shares
//! the retry budget, circuit breakers and pacing between every thread that uses one
//! [`Client`]. Pick it for synchronous programs; async programs want `novita-reqwest`.
//!
//! ```no_run
//! let client = novita_ureq::Client::from_env()?; // NOVITA_API_KEY, NOVITA_BASE_URL
//! let answer = client.chat(&novita_ureq::ChatRequest::new("deepseek/deepseek-v3", "Hello!"))?;
//! println!("{}", answer.text());
//! # Ok::<(), novita_ureq::Error>(())
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use novita_policy::adapter::{Options, Settings};
use novita_policy::{ClientState, Policy, PolicyConfig, SplitMix64};

mod call;
mod stream;
mod transport;

pub use novita_policy::adapter::{Answer, KeySource, Report, Timeouts};
pub use novita_policy::wire::{ChatChunk, ChatCompletion, ChatRequest, Message, Model};
pub use novita_policy::{BreakerState, GiveUp, PolicyConfig as Config};
pub use stream::ChatStream;

/// Why a call failed; see [`novita_policy::adapter::CallError`].
pub type Error = novita_policy::adapter::CallError;

/// A Novita client. Cheap to clone: clones share the connection pool and the policy's
/// state (retry budget, circuit breakers, pacing).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    agent: ureq::Agent,
    settings: Settings,
    fallback_models: Vec<String>,
    policy: Policy,
    shared: Mutex<Shared>,
    origin: Instant,
    timeouts: Timeouts,
    max_error_body: usize,
}

/// The state every thread using the client shares.
#[derive(Debug)]
struct Shared {
    state: ClientState,
    rng: SplitMix64,
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
        &self.inner.settings.base_url
    }

    /// Where the API key was read from.
    #[must_use]
    pub fn key_source(&self) -> KeySource {
        self.inner.settings.key_source
    }

    /// The policy's settings.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        self.inner.policy.config()
    }

    /// Tokens left in the shared retry budget.
    #[must_use]
    pub fn retry_budget(&self) -> u32 {
        self.lock().state.budget().tokens()
    }

    /// The circuit breaker of `model` right now.
    #[must_use]
    pub fn breaker(&self, model: &str) -> BreakerState {
        let now = self.now();
        self.lock().state.breaker(model, now)
    }

    /// The pacing interval imposed on calls to `model` (zero when not paced).
    #[must_use]
    pub fn pacing(&self, model: &str) -> Duration {
        self.lock().state.pacing_interval(model)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // The state stays consistent even if a thread panicked while holding the lock:
        // every update is a single method call on plain data.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.inner.origin.elapsed()
    }
}

/// Builds a [`Client`]; every setting has a documented default.
#[derive(Debug, Default)]
#[must_use]
pub struct ClientBuilder {
    options: Options,
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
        let resolved = self.options.resolve(|name| std::env::var(name).ok())?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(resolved.timeouts.connect))
            .user_agent(concat!("novita-ureq/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let seed = resolved
            .seed
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        Ok(Client {
            inner: Arc::new(Inner {
                agent,
                shared: Mutex::new(Shared {
                    state: resolved.policy.client_state(),
                    rng: SplitMix64::new(seed),
                }),
                settings: resolved.settings,
                fallback_models: resolved.fallback_models,
                policy: resolved.policy,
                origin: Instant::now(),
                timeouts: resolved.timeouts,
                max_error_body: resolved.max_error_body,
            }),
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
