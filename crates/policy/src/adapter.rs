//! The pure pieces both HTTP adapters share: the secret key, where settings come from, the
//! error a call ends with, and the report of how a call went.
//!
//! Keeping them here means `novita-ureq` and `novita-reqwest` expose the same types and
//! the same messages, and neither re-implements them. [`Run`] is the attempt loop's logic
//! without its I/O: admission, decisions, waits, the report, the error, and the `tracing`
//! events and metrics of every step.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::wire::{ChatRequest, StreamBreak};
use crate::{
    ConfigError, Delivery, GiveUp, Policy, PolicyConfig, Stop, Transport, decision::Seconds,
};

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

/// Timeouts of an adapter's HTTP client.
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

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            stream_idle: Duration::from_secs(60),
        }
    }
}

/// Everything an adapter's client builder collects, before it is checked and resolved.
/// Both adapters' builders wrap one, so they take the same settings and say the same
/// things about them.
#[derive(Clone, Default, PartialEq)]
pub struct Options {
    /// The API key; `None` reads `NOVITA_API_KEY`.
    pub api_key: Option<String>,
    /// The base URL; `None` reads `NOVITA_BASE_URL`, then `NOVITA_API_BASE`, then the default.
    pub base_url: Option<String>,
    /// The policy's settings; `None` is [`PolicyConfig::default`].
    pub policy: Option<PolicyConfig>,
    /// The policy's settings as TOML; wins over `policy`.
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
        f.debug_struct("Options")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("policy", &self.policy)
            .field("policy_toml", &self.policy_toml)
            .field("fallback_models", &self.fallback_models)
            .field("timeouts", &self.timeouts)
            .field("max_error_body", &self.max_error_body)
            .field("seed", &self.seed)
            .finish()
    }
}

/// Checked options, ready for an adapter to build its client from.
#[derive(Debug)]
pub struct Resolved {
    /// The key, where it came from, and the base URL.
    pub settings: Settings,
    /// The policy.
    pub policy: Policy,
    /// Models to fall back to, in order.
    pub fallback_models: Vec<String>,
    /// HTTP timeouts.
    pub timeouts: Timeouts,
    /// The most bytes of an error body read.
    pub max_error_body: usize,
    /// The jitter seed, if one was given.
    pub seed: Option<u64>,
}

impl Options {
    /// Checks the options, filling gaps from the environment (read through `env`).
    ///
    /// # Errors
    /// No key, an unusable base URL, or an invalid policy configuration.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<Resolved, CallError> {
        let settings = Settings::resolve(self.api_key, self.base_url, env)?;
        let config = match (self.policy, self.policy_toml) {
            (_, Some(toml)) => PolicyConfig::from_toml(&toml)?,
            (Some(config), None) => {
                config.validate()?;
                config
            }
            (None, None) => PolicyConfig::default(),
        };
        Ok(Resolved {
            settings,
            policy: Policy::new(config),
            fallback_models: self.fallback_models,
            timeouts: self.timeouts,
            max_error_body: self.max_error_body.unwrap_or(DEFAULT_MAX_ERROR_BODY),
            seed: self.seed,
        })
    }
}

/// What one call sends: its route, its JSON body (none for a `GET`), the models it may try,
/// and whether a switch to streaming can be honoured.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    route: String,
    body: Body,
    models: Vec<String>,
    reassembly: Reassembly,
}

/// A job's body. A chat request stays typed, so each attempt serialises the struct
/// directly (going through `serde_json::Value` costs more than the policy itself).
#[derive(Clone, Debug, PartialEq)]
enum Body {
    None,
    Chat(Box<ChatRequest>),
    Json(Value),
}

impl Job {
    /// A chat completion asking for `delivery`, trying `fallbacks` after the request's model.
    #[must_use]
    pub fn chat(request: &ChatRequest, delivery: Delivery, fallbacks: &[String]) -> Self {
        let mut request = request.clone();
        request.stream = delivery == Delivery::Streamed;
        Self {
            route: "chat/completions".to_owned(),
            models: model_chain(&request.model, fallbacks),
            body: Body::Chat(Box::new(request)),
            reassembly: Reassembly::Chat,
        }
    }

    /// Any JSON `POST`; a `model` field in the body takes part in fallback, and the chat
    /// route also in the switch to streaming.
    #[must_use]
    pub fn post(route: &str, body: &Value, fallbacks: &[String]) -> Self {
        let route = route.trim_start_matches('/').to_owned();
        let models = match body.get("model").and_then(Value::as_str) {
            Some(model) => model_chain(model, fallbacks),
            None => vec![route.clone()],
        };
        let reassembly = if route == "chat/completions" {
            Reassembly::Chat
        } else {
            Reassembly::Unsupported
        };
        Self {
            body: Body::Json(body.clone()),
            models,
            reassembly,
            route,
        }
    }

    /// A `GET` of `route`, which names no model.
    #[must_use]
    pub fn get(route: &str) -> Self {
        let route = route.trim_start_matches('/').to_owned();
        Self {
            body: Body::None,
            models: vec![route.clone()],
            reassembly: Reassembly::Unsupported,
            route,
        }
    }

    /// The route, such as `chat/completions`.
    #[must_use]
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Whether a switch to streaming can be honoured.
    #[must_use]
    pub fn reassembly(&self) -> Reassembly {
        self.reassembly
    }

    /// The models the call may try, in order; the [`Run`] takes them over.
    #[must_use]
    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// The body of one attempt to `model` with `delivery`, as JSON bytes; `None` for a
    /// `GET`. The model (when the body names one) and, on the chat route, the stream flag
    /// are set for this attempt.
    ///
    /// # Errors
    /// [`CallError::Encode`] when the body cannot be written as JSON (a request whose
    /// extra parameters do not serialise).
    pub fn body_for(
        &mut self,
        model: &str,
        delivery: Delivery,
    ) -> Result<Option<Vec<u8>>, CallError> {
        let streamed = delivery == Delivery::Streamed;
        let bytes = match &mut self.body {
            Body::None => return Ok(None),
            Body::Chat(request) => {
                if request.model != model {
                    model.clone_into(&mut request.model);
                }
                request.stream = streamed;
                serde_json::to_vec(request)
            }
            Body::Json(body) => {
                if let Some(object) = body.as_object_mut() {
                    if object.contains_key("model") {
                        object.insert("model".to_owned(), Value::from(model));
                    }
                    if self.reassembly == Reassembly::Chat {
                        object.insert("stream".to_owned(), Value::from(streamed));
                    }
                }
                serde_json::to_vec(body)
            }
        };
        bytes.map(Some).map_err(CallError::Encode)
    }
}

fn model_chain(model: &str, fallbacks: &[String]) -> Vec<String> {
    let mut chain = vec![model.to_owned()];
    chain.extend(
        fallbacks
            .iter()
            .filter(|fallback| *fallback != model)
            .cloned(),
    );
    chain
}

impl Received<crate::wire::ChatCompletion> {
    /// A reassembled completion as JSON, for adapters' generic JSON calls.
    #[must_use]
    pub fn into_json(self) -> Received<Value> {
        match self {
            Received::Value(completion) => match serde_json::to_value(completion) {
                Ok(value) => Received::Value(value),
                Err(error) => Received::Invalid(CallError::Encode(error)),
            },
            Received::Broken(transport, error) => Received::Broken(transport, error),
            Received::ServerError { status, body } => Received::ServerError { status, body },
            Received::Invalid(error) => Received::Invalid(error),
        }
    }
}

/// What an adapter's handler made of a successful response.
#[derive(Debug)]
pub enum Received<T> {
    /// The answer.
    Value(T),
    /// The body broke off: fed back to the policy like any other failed attempt.
    Broken(Transport, Option<BoxError>),
    /// The server reported an error inside a stream: fed back like an error response.
    ServerError {
        /// The status the error event carries.
        status: u16,
        /// The event, an error body.
        body: Vec<u8>,
    },
    /// The answer cannot be used (malformed JSON): the call ends with this error.
    Invalid(CallError),
}

impl<T> Received<T> {
    /// Where a stream that broke while the adapter reassembled it goes: a cut or failed
    /// read back to the policy, a server error as an error response, a malformed event as
    /// a decode error.
    #[must_use]
    pub fn from_break(ending: StreamBreak, failure: Option<BoxError>, model: &str) -> Self {
        if let Some(transport) = ending.transport() {
            return Received::Broken(transport, failure);
        }
        match ending {
            StreamBreak::ServerError { status, body } => Received::ServerError { status, body },
            StreamBreak::Malformed(error) => Received::Invalid(CallError::Decode {
                what: "stream event",
                status: 200,
                source: Box::new(error),
            }),
            other => Received::Invalid(CallError::Stream {
                model: model.to_owned(),
                chunks: 0,
                problem: other.problem(),
                source: None,
            }),
        }
    }

    /// Applies `f` to the answer, keeping every other case as it is.
    #[must_use]
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Received<U> {
        match self {
            Received::Value(value) => Received::Value(f(value)),
            Received::Broken(transport, error) => Received::Broken(transport, error),
            Received::ServerError { status, body } => Received::ServerError { status, body },
            Received::Invalid(error) => Received::Invalid(error),
        }
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
    fn jobs_set_the_model_and_stream_flag_per_attempt() {
        let request = ChatRequest::new("a", "hi");
        let mut job = Job::chat(
            &request,
            Delivery::Buffered,
            &["b".to_owned(), "a".to_owned()],
        );
        assert_eq!(
            job.models(),
            ["a", "b"],
            "the requested model is not its own fallback"
        );
        let body: Value =
            serde_json::from_slice(&job.body_for("b", Delivery::Streamed).unwrap().unwrap())
                .unwrap();
        assert_eq!(
            (body["model"].as_str(), body["stream"].as_bool()),
            (Some("b"), Some(true))
        );

        let mut other = Job::post(
            "/completions",
            &serde_json::json!({"model": "a", "prompt": "x"}),
            &[],
        );
        let body: Value =
            serde_json::from_slice(&other.body_for("a", Delivery::Streamed).unwrap().unwrap())
                .unwrap();
        assert!(
            body.get("stream").is_none(),
            "only the chat route is switched to streaming"
        );
        assert_eq!(other.reassembly(), Reassembly::Unsupported);

        let mut list = Job::get("models");
        assert_eq!(
            (list.route(), list.models()),
            ("models", &["models".to_owned()][..])
        );
        assert!(
            list.body_for("models", Delivery::Buffered)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn options_resolve_and_hide_the_key() {
        let options = Options {
            api_key: Some("sk_options_secret".into()),
            ..Options::default()
        };
        assert!(!format!("{options:?}").contains("sk_options_secret"));
        let resolved = options.clone().resolve(|_| None).unwrap();
        assert_eq!(resolved.max_error_body, DEFAULT_MAX_ERROR_BODY);
        assert_eq!(resolved.settings.base_url, DEFAULT_BASE_URL);
        let bad = Options {
            policy_toml: Some("max_attempts = 0".into()),
            ..options
        };
        assert!(matches!(bad.resolve(|_| None), Err(CallError::Config(_))));
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<CallError>();
    }
}
