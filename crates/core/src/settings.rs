//! Where a client's settings come from: the redacted API key, the base URL, timeouts, and
//! the options both adapters' builders collect.
//!
//! Explicit values win, then the environment (`NOVITA_API_KEY`, `NOVITA_BASE_URL`,
//! `NOVITA_API_BASE`), then Novita's documented defaults. The key never shows in `Debug`,
//! `Display`, logs or errors.

use std::fmt;
use std::time::Duration;

use novita_policy::PolicyConfig;

use crate::error::Error;
use crate::key::{API_KEY_VAR, ApiKey, KeySource};

/// Novita's documented OpenAI-compatible base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.novita.ai/openai/v1";
/// The variable that overrides the base URL.
pub const BASE_URL_VAR: &str = "NOVITA_BASE_URL";
/// LiteLLM's name for the base-URL variable, also accepted.
pub const LITELLM_BASE_URL_VAR: &str = "NOVITA_API_BASE";
/// The most bytes of an error body the adapters read by default; the rest is discarded.
pub const DEFAULT_MAX_ERROR_BODY: usize = 64 * 1024;

/// The key, its source and the base URL a client will use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The API key.
    pub key: ApiKey,
    /// Where it came from.
    pub key_source: KeySource,
    /// The base URL, without a trailing slash.
    pub base_url: String,
}

impl Settings {
    /// Resolves settings: explicit values win, then the environment (read through `env`, so
    /// this stays testable), then Novita's default base URL.
    ///
    /// # Errors
    /// [`Error::MissingKey`] when no key is found; [`Error::BaseUrl`] when the base
    /// URL is not an `http://` or `https://` URL.
    pub fn resolve(
        key: Option<String>,
        base_url: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let (key, key_source) = match key {
            Some(key) => (
                ApiKey::new(key).ok_or(Error::MissingKey)?,
                KeySource::Argument,
            ),
            None => {
                let key = env(API_KEY_VAR)
                    .and_then(ApiKey::new)
                    .ok_or(Error::MissingKey)?;
                (key, KeySource::Environment(API_KEY_VAR))
            }
        };
        let base_url = base_url
            .or_else(|| env(BASE_URL_VAR).filter(|url| !url.trim().is_empty()))
            .or_else(|| env(LITELLM_BASE_URL_VAR).filter(|url| !url.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        Ok(Self {
            key,
            key_source,
            base_url: normalize_base_url(&base_url)?,
        })
    }

    /// The full URL of `route` (such as `chat/completions`) under the base URL.
    #[must_use]
    pub fn url(&self, route: &str) -> String {
        format!("{}/{}", self.base_url, route.trim_start_matches('/'))
    }
}

fn normalize_base_url(url: &str) -> Result<String, Error> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(Error::BaseUrl {
            url: url.to_owned(),
        }),
    }
}

/// Timeouts of an adapter's HTTP client.
///
/// ```
/// # use std::time::Duration;
/// # use novita_core::Timeouts;
/// let timeouts = Timeouts::default().with_request(Duration::from_secs(300));
/// assert_eq!(timeouts.connect, Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Connection setup, TLS included. Default 10 s.
    pub connect: Duration,
    /// A whole non-streaming request, body included; for a streamed one, the wait for its
    /// headers. Default 120 s: Novita advises client timeouts above 60 s, since long
    /// generations take that long.
    pub request: Duration,
    /// The longest silence between two pieces of a stream. Default 60 s.
    pub stream_idle: Duration,
}

impl Timeouts {
    /// These timeouts with connection setup bounded by `connect`.
    #[must_use]
    pub fn with_connect(mut self, connect: Duration) -> Self {
        self.connect = connect;
        self
    }

    /// These timeouts with a non-streaming request bounded by `request`.
    #[must_use]
    pub fn with_request(mut self, request: Duration) -> Self {
        self.request = request;
        self
    }

    /// These timeouts with the silence inside a stream bounded by `stream_idle`.
    #[must_use]
    pub fn with_stream_idle(mut self, stream_idle: Duration) -> Self {
        self.stream_idle = stream_idle;
        self
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            stream_idle: Duration::from_secs(60),
        }
    }
}

/// Everything an adapter's client builder collects, before [`ClientCore::new`] checks it
/// and fills the gaps from the environment. Both adapters' builders wrap one, so they take
/// the same settings and say the same things about them.
///
/// [`ClientCore::new`]: crate::ClientCore::new
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// The API key; `None` reads `NOVITA_API_KEY`.
    pub api_key: Option<String>,
    /// The base URL; `None` reads `NOVITA_BASE_URL`, then `NOVITA_API_BASE`, then the default.
    pub base_url: Option<String>,
    /// The policy's settings; `None` is [`PolicyConfig::default`].
    pub policy: Option<PolicyConfig>,
    /// The policy's settings as TOML; wins over `policy`.
    #[cfg(feature = "toml")]
    pub policy_toml: Option<String>,
    /// Models to fall back to, in order.
    pub fallback_models: Vec<String>,
    /// HTTP timeouts.
    pub timeouts: Timeouts,
    /// The most bytes of an error body read; `None` is 64 KiB.
    pub max_error_body: Option<usize>,
    /// A seed for the jitter; `None` lets the adapter pick a random one.
    pub seed: Option<u64>,
}

/// Shows every setting but the key, which prints as `<redacted>`.
impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Options");
        debug
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("policy", &self.policy)
            .field("fallback_models", &self.fallback_models)
            .field("timeouts", &self.timeouts)
            .field("max_error_body", &self.max_error_body)
            .field("seed", &self.seed);
        #[cfg(feature = "toml")]
        debug.field("policy_toml", &self.policy_toml);
        debug.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn explicit_values_win_over_the_environment() {
        let settings = Settings::resolve(
            Some("sk_arg".into()),
            Some("http://127.0.0.1:9/v3/openai/".into()),
            env(&[
                ("NOVITA_API_KEY", "sk_env"),
                ("NOVITA_BASE_URL", "https://x.invalid"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.key.expose(), "sk_arg");
        assert_eq!(settings.key_source, KeySource::Argument);
        assert_eq!(
            settings.url("/chat/completions"),
            "http://127.0.0.1:9/v3/openai/chat/completions"
        );
    }

    #[test]
    fn the_environment_fills_in_then_the_default() {
        let settings =
            Settings::resolve(None, None, env(&[("NOVITA_API_KEY", " sk_env\n")])).unwrap();
        assert_eq!(settings.key.expose(), "sk_env");
        assert_eq!(
            settings.key_source,
            KeySource::Environment("NOVITA_API_KEY")
        );
        assert_eq!(settings.base_url, DEFAULT_BASE_URL);
        let settings = Settings::resolve(
            None,
            None,
            env(&[("NOVITA_API_KEY", "k"), ("NOVITA_API_BASE", "http://h:1")]),
        )
        .unwrap();
        assert_eq!(settings.base_url, "http://h:1");
        let settings = Settings::resolve(
            None,
            None,
            env(&[
                ("NOVITA_API_KEY", "k"),
                ("NOVITA_BASE_URL", "http://a:1"),
                ("NOVITA_API_BASE", "http://b:2"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.base_url, "http://a:1", "the official name wins");
    }

    #[test]
    fn missing_keys_and_bad_urls_are_clear() {
        let error = Settings::resolve(None, None, env(&[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no API key: set NOVITA_API_KEY or pass a key to the client builder"
        );
        let error = Settings::resolve(None, None, env(&[("NOVITA_API_KEY", "   ")])).unwrap_err();
        assert!(matches!(error, Error::MissingKey));
        for url in [
            "api.novita.ai",
            "ftp://x",
            "https://",
            "http:///path",
            "https://a b",
        ] {
            let error =
                Settings::resolve(Some("k".into()), Some(url.into()), env(&[])).unwrap_err();
            assert!(matches!(error, Error::BaseUrl { .. }), "{url}");
            assert!(error.to_string().starts_with("invalid base URL"), "{error}");
        }
    }

    #[test]
    fn the_key_never_shows() {
        let settings = Settings::resolve(Some("sk_secret_123".into()), None, env(&[])).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("sk_secret_123"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert_eq!(settings.key.bearer(), "Bearer sk_secret_123");
    }
}
