//! The pure pieces both HTTP adapters share: the secret key, where settings come from, the
//! error a call ends with, and the report of how a call went.
//!
//! Keeping them here means `novita-ureq` and `novita-reqwest` expose the same types and
//! the same messages, and neither re-implements them. [`Run`] is the attempt loop's logic
//! without its I/O: admission, decisions, waits, the report, the error, and the `tracing`
//! events and metrics of every step.

use std::fmt;
use std::time::Duration;

use crate::{ConfigError, GiveUp, Stop, decision::Seconds};

pub use crate::run::{After, Go, Reassembly, Run, TRACING_TARGET};

/// An HTTP client's own error, kept as the source of a failed call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Novita's documented OpenAI-compatible base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.novita.ai/openai/v1";
/// The conventional variable holding the API key.
pub const API_KEY_VAR: &str = "NOVITA_API_KEY";
/// The variable that overrides the base URL.
pub const BASE_URL_VAR: &str = "NOVITA_BASE_URL";
/// LiteLLM's name for the base-URL variable, also accepted.
pub const LITELLM_BASE_URL_VAR: &str = "NOVITA_API_BASE";
/// The most bytes of an error body the adapters read by default; the rest is discarded.
pub const DEFAULT_MAX_ERROR_BODY: usize = 64 * 1024;

/// An API key. It can be used to build the `Authorization` header and never shows up in
/// `Debug`, `Display`, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (a stray newline from a file) is removed.
    /// `None` for an empty key.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        let trimmed = key.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    /// The `Authorization` header value: `Bearer <key>`.
    #[must_use]
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// The key itself, for callers that must hand it on.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where the API key was read from, so that a 401 can say where to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySource {
    /// Passed in code.
    Argument,
    /// Read from an environment variable.
    Environment(&'static str),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Argument => f.write_str("the key passed to the client builder"),
            KeySource::Environment(name) => write!(f, "the {name} environment variable"),
        }
    }
}

/// The key, its source and the base URL a client will use.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// [`CallError::MissingKey`] when no key is found; [`CallError::BaseUrl`] when the base
    /// URL is not an `http://` or `https://` URL.
    pub fn resolve(
        key: Option<String>,
        base_url: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CallError> {
        let (key, key_source) = match key {
            Some(key) => (
                ApiKey::new(key).ok_or(CallError::MissingKey)?,
                KeySource::Argument,
            ),
            None => {
                let key = env(API_KEY_VAR)
                    .and_then(ApiKey::new)
                    .ok_or(CallError::MissingKey)?;
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

fn normalize_base_url(url: &str) -> Result<String, CallError> {
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
        _ => Err(CallError::BaseUrl {
            url: url.to_owned(),
        }),
    }
}

/// How a call went: which model answered, how many attempts and how long it took, and what
/// the policy changed on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The model that produced the answer.
    pub model: String,
    /// The model the caller asked for, when a fallback answered instead.
    pub fell_back_from: Option<String>,
    /// Whether the policy re-issued the call as streaming after a timeout.
    pub switched_to_streaming: bool,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time spent waiting between attempts (backoff, server hints, pacing).
    pub waited: Duration,
    /// Time from the start of the call to the answer.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{} answered after {} attempt{plural} in {}",
            self.model,
            self.attempts,
            Seconds(self.elapsed)
        )?;
        if !self.waited.is_zero() {
            write!(f, " ({} waiting)", Seconds(self.waited))?;
        }
        if let Some(primary) = &self.fell_back_from {
            write!(f, ", falling back from {primary}")?;
        }
        if self.switched_to_streaming {
            f.write_str(", switched to streaming")?;
        }
        Ok(())
    }
}

/// A successful answer and the report of how it was obtained. Derefs to the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// How the call went.
    pub report: Report,
}

impl<T> std::ops::Deref for Answer<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Why a call through an adapter failed. The key never appears in any of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The policy gave up; the give-up holds the code, the catalog entry, the server's
    /// message, the request id, attempts, elapsed time and advice.
    #[error("{}", GaveUpDisplay { give_up, model, key_source: *key_source })]
    GaveUp {
        /// What the policy knew when it stopped.
        give_up: Box<GiveUp>,
        /// The model the last attempt went to.
        model: String,
        /// Where the key was read from (said on authentication errors).
        key_source: KeySource,
        /// The HTTP client's own error for the last attempt, if it failed below HTTP.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No API key was given and `NOVITA_API_KEY` is unset or empty.
    #[error("no API key: set {API_KEY_VAR} or pass a key to the client builder")]
    MissingKey,
    /// The base URL is not usable.
    #[error("invalid base URL {url:?}: expected http:// or https:// followed by a host")]
    BaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The policy configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The request could not be encoded as JSON.
    #[error("could not encode the request as JSON")]
    Encode(#[source] serde_json::Error),
    /// A successful response could not be decoded.
    #[error("could not decode the {what} from the server (status {status})")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The status of the response.
        status: u16,
        /// The decoding error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stream the caller was reading broke: the server reported an error in it, or it
    /// ended before `[DONE]`. What arrived before is not a complete answer.
    #[error("the stream from {model} broke after {chunks} chunk(s): {problem}")]
    Stream {
        /// The model that was streaming.
        model: String,
        /// Chunks delivered before the break.
        chunks: usize,
        /// What went wrong.
        problem: String,
        /// The HTTP client's error, if there was one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The HTTP client could not be built (for example, TLS setup failed).
    #[error("could not build the HTTP client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CallError {
    /// The policy's give-up, when the call failed that way.
    #[must_use]
    pub fn give_up(&self) -> Option<&GiveUp> {
        match self {
            CallError::GaveUp { give_up, .. } => Some(give_up),
            _ => None,
        }
    }

    /// The HTTP status of the last attempt, if a response arrived.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.give_up().and_then(|give_up| give_up.status)
    }

    /// The full advice for a human: the one-line summary, the server's message, the request
    /// id and what to do, one per line.
    #[must_use]
    pub fn advice(&self) -> String {
        match self {
            CallError::GaveUp {
                give_up,
                model,
                key_source,
                ..
            } => {
                let mut text = format!("{give_up:#}");
                text.push_str(&format!("\nmodel: {model}"));
                if is_auth_failure(give_up) {
                    text.push_str(&format!("\nthe API key came from {key_source}"));
                }
                text
            }
            other => {
                // The causes carry the specifics (which key, which line): keep them all.
                let mut text = other.to_string();
                let mut source = std::error::Error::source(other);
                while let Some(cause) = source {
                    let line = cause.to_string();
                    if !text.contains(&line) {
                        text.push_str(": ");
                        text.push_str(line.trim());
                    }
                    source = cause.source();
                }
                text
            }
        }
    }
}

fn is_auth_failure(give_up: &GiveUp) -> bool {
    give_up.stop == Stop::NotRetryable && matches!(give_up.status, Some(401 | 403))
}

struct GaveUpDisplay<'a> {
    give_up: &'a GiveUp,
    model: &'a str,
    key_source: KeySource,
}

impl fmt::Display for GaveUpDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (model {})", self.give_up, self.model)?;
        if is_auth_failure(self.give_up) {
            write!(f, "; the API key came from {}", self.key_source)?;
        }
        Ok(())
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
        assert!(matches!(error, CallError::MissingKey));
        for url in [
            "api.novita.ai",
            "ftp://x",
            "https://",
            "http:///path",
            "https://a b",
        ] {
            let error =
                Settings::resolve(Some("k".into()), Some(url.into()), env(&[])).unwrap_err();
            assert!(matches!(error, CallError::BaseUrl { .. }), "{url}");
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

    #[test]
    fn reports_read_naturally() {
        let report = Report {
            model: "b".into(),
            fell_back_from: Some("a".into()),
            switched_to_streaming: true,
            attempts: 3,
            waited: Duration::from_millis(1500),
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            report.to_string(),
            "b answered after 3 attempts in 2 s (1.5 s waiting), falling back from a, switched to streaming"
        );
    }

    #[test]
    fn advice_keeps_the_whole_cause_chain() {
        let error = CallError::from(crate::PolicyConfig::from_toml("max_atempts = 3").unwrap_err());
        let advice = error.advice();
        assert!(advice.starts_with("invalid policy config: "), "{advice}");
        assert!(advice.contains("max_atempts"), "{advice}");
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<CallError>();
    }
}
