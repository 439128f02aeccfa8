//! The client core: what every call of one client shares, written once for both adapters.
//!
//! An adapter's client is its HTTP client plus an `Arc<ClientCore>`. The core holds the
//! resolved settings and the policy, and behind one lock the policy's shared state (retry
//! budget, per-model circuit breakers and pacing) and the seeded random stream the jitter
//! draws from. It also owns the client's monotonic clock, so every call of a client
//! measures time from the same origin.

use std::cell::OnceCell;
use std::collections::hash_map::RandomState;
use std::env::VarError;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use novita_policy::{BreakerState, ClientState, Clock, Policy, PolicyConfig, SplitMix64};

use crate::error::Error;
use crate::key::KeySource;
use crate::settings::{
    DEFAULT_MAX_ERROR_BODY, DEFAULT_MAX_SUCCESS_BODY, DEFAULT_NAME, Options, Settings, Timeouts,
    check_name,
};
use crate::store::{Exchange, News, Store, StoreError, StoreFuture, Verdict, scope_of};
use crate::wire::Limits;

/// What every call of one client shares: settings, policy, state, clock and randomness.
#[derive(Debug)]
pub struct ClientCore {
    settings: Settings,
    policy: Policy,
    fallback_models: Vec<String>,
    timeouts: Timeouts,
    max_error_body: usize,
    max_success_body: usize,
    stream_limits: Limits,
    origin: Instant,
    /// The state store shared with other processes, if any, and the account's scope in it.
    store: Option<(Store, String)>,
    /// The client's name, its metrics' `client` label.
    name: String,
    /// The `Authorization` header every request carries, built once from the key and
    /// marked sensitive (its `Debug` shows no key); `None` for a relaying core.
    #[cfg(feature = "http")]
    authorization: Option<http::HeaderValue>,
    /// The `client` and bounded `model` label values of its metrics.
    #[cfg(feature = "metrics")]
    metric_labels: crate::metrics::Labels,
    /// Locked only inside the driver's and the accessors' own methods, never across I/O.
    shared: Mutex<Shared>,
}

/// The state behind the lock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: ClientState,
    pub(crate) rng: SplitMix64,
    pub(crate) outbox: Outbox,
}

/// What this client's calls learnt for the shared store since the last exchange, and how
/// the store is doing. Unused without a store.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) news: Vec<News>,
    pub(crate) budget_delta: i64,
    /// The store failed: calls go on with the client's own state until then.
    pub(crate) store_down_until: Option<Duration>,
}

/// The most news an outbox keeps while no exchange takes it; beyond it the oldest go (the
/// facts they carry are the first to have expired).
const MAX_NEWS: usize = 256;

impl Outbox {
    pub(crate) fn push(&mut self, news: News) {
        if self.news.len() >= MAX_NEWS {
            self.news.remove(0);
        }
        self.news.push(news);
    }
}

impl ClientCore {
    /// Checks `options`, filling gaps from the process environment.
    ///
    /// # Errors
    /// No key, an unusable base URL, an invalid policy configuration, or an unusable
    /// client name.
    pub fn from_options(options: Options) -> Result<Self, Error> {
        // A variable that is set but not UTF-8 is neither used nor taken for unset: taking
        // it for unset would send the key to the default host.
        let unreadable = OnceCell::new();
        let core = Self::new(options, |name| match std::env::var(name) {
            Ok(value) => Some(value),
            Err(VarError::NotPresent) => None,
            Err(VarError::NotUnicode(_)) => {
                let _ = unreadable.set(name.to_owned());
                None
            }
        });
        match unreadable.into_inner() {
            Some(name) => Err(Error::Setting {
                setting: format!("the {name} environment variable"),
                problem: "it is set but is not valid UTF-8; fix or unset it".to_owned(),
            }),
            None => core,
        }
    }

    /// Checks `options`, filling gaps from the environment as `env` reads it (so tests
    /// need not touch the process environment).
    ///
    /// # Errors
    /// No key, an unusable base URL, an invalid policy configuration, or an unusable
    /// client name.
    pub fn new(mut options: Options, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let settings = Settings::resolve(options.api_key.take(), options.base_url.take(), env)?;
        Self::with_settings(settings, options)
    }

    /// A core for requests the application builds and authorises itself, such as a
    /// middleware relays: it holds no key ([`KeySource::Request`]) and no base URL, and each
    /// [`Request::relayed`](crate::Request::relayed) call goes to its own URL. Everything
    /// else in `options` applies as for a client.
    ///
    /// # Errors
    /// An invalid policy configuration, an unusable client name, or a key or base URL in
    /// `options`: a relaying core would not use them, and silently dropping them would hide
    /// a mistake.
    pub fn relay(options: Options) -> Result<Self, Error> {
        let unused = if options.api_key.is_some() {
            Some("an API key")
        } else if options.base_url.is_some() {
            Some("a base URL")
        } else {
            None
        };
        if let Some(unused) = unused {
            return Err(Error::Setting {
                setting: unused.to_owned(),
                problem: "a relaying core (a middleware) sends each request with its own URL \
                          and Authorization header; set them on the request instead"
                    .to_owned(),
            });
        }
        Self::with_settings(Settings::relayed(), options)
    }

    fn with_settings(settings: Settings, options: Options) -> Result<Self, Error> {
        let name = options.name.unwrap_or_else(|| DEFAULT_NAME.to_owned());
        check_name(&name)?;
        #[cfg(feature = "toml")]
        let from_toml = options
            .policy_toml
            .as_deref()
            .map(PolicyConfig::from_toml)
            .transpose()?;
        #[cfg(not(feature = "toml"))]
        let from_toml = None;
        let config = match (from_toml, options.policy) {
            (Some(config), _) => config,
            (None, Some(config)) => {
                config.validate()?;
                config
            }
            (None, None) => PolicyConfig::default(),
        };
        let policy = Policy::new(config);
        let seed = options
            .seed
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        let store = match (options.store, &settings.key) {
            (Some(store), Some(key)) => Some((store, scope_of(key))),
            (Some(_), None) => {
                return Err(Error::Setting {
                    setting: "a state store".to_owned(),
                    problem: "a relaying core has no key of its own to scope shared state by"
                        .to_owned(),
                });
            }
            (None, _) => None,
        };
        #[cfg(feature = "http")]
        let authorization = authorization_header(&settings)?;
        let mut state = policy.client_state();
        state.share_limits(store.is_some());
        // The models this client was configured with are labelled by name, whatever the
        // cap on the others.
        #[cfg(feature = "metrics")]
        let metric_labels = crate::metrics::Labels::new(
            &name,
            options
                .fallback_models
                .iter()
                .chain(policy.config().limits.keys())
                .map(String::as_str),
        );
        Ok(Self {
            shared: Mutex::new(Shared {
                state,
                rng: SplitMix64::new(seed),
                outbox: Outbox::default(),
            }),
            store,
            name,
            #[cfg(feature = "http")]
            authorization,
            #[cfg(feature = "metrics")]
            metric_labels,
            settings,
            policy,
            fallback_models: options.fallback_models,
            timeouts: options.timeouts,
            max_error_body: options.max_error_body.unwrap_or(DEFAULT_MAX_ERROR_BODY),
            max_success_body: options.max_success_body.unwrap_or(DEFAULT_MAX_SUCCESS_BODY),
            stream_limits: options.stream_limits,
            origin: Instant::now(),
        })
    }

    /// Time since the client was built, on the monotonic clock every call shares.
    #[must_use]
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Both clocks a decision reads: [`now`](Self::now) and the wall clock (for HTTP-date
    /// hints).
    #[must_use]
    pub fn clock(&self) -> Clock {
        Clock {
            now: self.now(),
            wall: SystemTime::now(),
        }
    }

    /// The client's name: the `client` label of its metrics (`"default"` unless the
    /// builder named it).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label values of this client's metrics: its name and the bounded `model` labels
    /// (see [`metrics::Labels`](crate::metrics::Labels)).
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metric_labels(&self) -> &crate::metrics::Labels {
        &self.metric_labels
    }

    /// The key, its source and the base URL.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The `Authorization` header of every request, built once when the client was: the
    /// same value as [`Settings::authorization`], marked sensitive so that its `Debug`
    /// shows no key. `None` for a relaying core, whose requests carry their own.
    #[cfg(feature = "http")]
    #[must_use]
    pub fn authorization(&self) -> Option<&http::HeaderValue> {
        self.authorization.as_ref()
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    /// Where the API key was read from.
    #[must_use]
    pub fn key_source(&self) -> KeySource {
        self.settings.key_source
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy's settings.
    #[must_use]
    pub fn config(&self) -> &PolicyConfig {
        self.policy.config()
    }

    /// The models a call falls back to, in order.
    #[must_use]
    pub fn fallback_models(&self) -> &[String] {
        &self.fallback_models
    }

    /// The HTTP timeouts the adapter applies.
    #[must_use]
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The most bytes of an error body the adapter reads.
    #[must_use]
    pub fn max_error_body(&self) -> usize {
        self.max_error_body
    }

    /// The most bytes of a successful body the adapter reads.
    #[must_use]
    pub fn max_success_body(&self) -> usize {
        self.max_success_body
    }

    /// The bounds every stream of this client is held to.
    #[must_use]
    pub fn stream_limits(&self) -> Limits {
        self.stream_limits
    }

    /// The state store shared with other processes, if the client has one.
    #[must_use]
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref().map(|(store, _)| store)
    }

    /// Runs `exchange` on the client's blocking store. Without one the exchange fails, and
    /// the call goes on with the client's own state.
    ///
    /// # Errors
    /// The store's trouble, or no blocking store.
    pub fn exchange_blocking(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        match self.store() {
            Some(Store::Blocking(store)) => store.exchange(exchange),
            _ => Err(StoreError("this client has no blocking state store".into())),
        }
    }

    /// Runs `exchange` on the client's async store (the adapter bounds it with
    /// [`Timeouts::store`]). Without one the exchange fails, and the call goes on with the
    /// client's own state.
    pub fn exchange_async<'a>(&'a self, exchange: &'a Exchange) -> StoreFuture<'a> {
        match self.store() {
            Some(Store::Async(store)) => store.exchange(exchange),
            _ => Box::pin(async { Err(StoreError("this client has no async state store".into())) }),
        }
    }

    /// The account's scope in the shared store: a hash of the key, never the key.
    pub(crate) fn store_scope(&self) -> Option<&str> {
        self.store.as_ref().map(|(_, scope)| scope.as_str())
    }

    /// Tokens left in the shared retry budget.
    #[must_use]
    pub fn retry_budget(&self) -> u32 {
        self.lock().state.budget().tokens()
    }

    /// The circuit breaker of `model` at `now`.
    #[must_use]
    pub fn breaker(&self, model: &str, now: Duration) -> BreakerState {
        self.lock().state.breaker(model, now)
    }

    /// The interval between call starts imposed on `model` at `now` (zero when not paced).
    #[must_use]
    pub fn pacing(&self, model: &str, now: Duration) -> Duration {
        self.lock().state.pacing_interval(model, now)
    }

    /// The calls held behind `model`'s open circuit breaker.
    #[must_use]
    pub fn held(&self, model: &str) -> usize {
        self.lock().state.held(model)
    }

    /// The shared state. It stays consistent even if a thread panicked while holding the
    /// lock: every update is a single method call on plain data. The guard is `!Send`, so
    /// an async adapter cannot hold it across an `.await` without its futures turning
    /// `!Send`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `Authorization` header of `settings`, marked sensitive. [`Settings::resolve`] only
/// accepts keys made of printable ASCII, so a key that cannot go in a header is a bug
/// caught here rather than on the first call; the error names where the key came from,
/// never the key.
#[cfg(feature = "http")]
fn authorization_header(settings: &Settings) -> Result<Option<http::HeaderValue>, Error> {
    let Some(value) = settings.authorization() else {
        return Ok(None);
    };
    let mut value = http::HeaderValue::try_from(value).map_err(|_| Error::Setting {
        setting: settings.key_source.to_string(),
        problem: "the key cannot go in an HTTP header".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relaying_core_holds_no_key_and_refuses_one() {
        let core = ClientCore::relay(Options::default()).unwrap();
        assert_eq!(core.settings().authorization(), None);
        assert_eq!(core.key_source(), KeySource::Request);
        let options = Options {
            api_key: Some("sk_given_for_nothing".to_owned()),
            ..Options::default()
        };
        let error = ClientCore::relay(options).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("an API key"), "{message}");
        assert!(!message.contains("sk_given_for_nothing"), "{message}");
        let options = Options {
            base_url: Some("http://127.0.0.1:1".to_owned()),
            ..Options::default()
        };
        assert!(ClientCore::relay(options).is_err());
    }

    #[cfg(feature = "http")]
    #[test]
    fn the_authorization_header_is_built_once_and_never_shows_the_key() {
        let options = Options {
            api_key: Some("sk_header_secret".to_owned()),
            ..Options::default()
        };
        let core = ClientCore::new(options, |_| None).unwrap();
        let header = core.authorization().expect("a client holds its key");
        assert_eq!(header.to_str().unwrap(), "Bearer sk_header_secret");
        assert!(header.is_sensitive());
        let text = format!("{core:?}");
        assert!(!text.contains("sk_header_secret"), "{text}");
        assert_eq!(
            ClientCore::relay(Options::default())
                .unwrap()
                .authorization(),
            None
        );
    }

    #[test]
    fn a_client_is_named_default_unless_named_and_a_bad_name_is_refused() {
        let named = |name: Option<&str>| {
            let options = Options {
                api_key: Some("sk_unit_test".to_owned()),
                name: name.map(ToOwned::to_owned),
                ..Options::default()
            };
            ClientCore::new(options, |_| None)
        };
        assert_eq!(named(None).unwrap().name(), "default");
        assert_eq!(named(Some("checkout")).unwrap().name(), "checkout");
        assert_eq!(named(Some("batch EU · 2")).unwrap().name(), "batch EU · 2");
        let longest = "n".repeat(crate::settings::MAX_NAME_CHARS);
        assert!(named(Some(&longest)).is_ok());
        for (bad, problem) in [
            ("", "empty"),
            ("check\nout", "control character at character 6"),
            ("tab\t", "control character"),
            (" padded", "whitespace"),
            (&format!("{longest}n"), "longer than 64 characters"),
        ] {
            let error = named(Some(bad)).unwrap_err();
            assert!(matches!(error, Error::Setting { .. }), "{bad:?}: {error:?}");
            let message = error.to_string();
            assert!(message.starts_with("the client name"), "{message}");
            assert!(message.contains(problem), "{bad:?}: {message}");
        }
        // A relaying core (a middleware) is named the same way.
        let options = Options {
            name: Some(String::new()),
            ..Options::default()
        };
        assert!(ClientCore::relay(options).is_err());
    }
}
