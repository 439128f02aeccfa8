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
use crate::store::Store;
use crate::wire::Limits;

/// Novita's documented OpenAI-compatible base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.novita.ai/openai/v1";
/// The variable that overrides the base URL.
pub const BASE_URL_VAR: &str = "NOVITA_BASE_URL";
/// LiteLLM's name for the base-URL variable, also accepted.
pub const LITELLM_BASE_URL_VAR: &str = "NOVITA_API_BASE";
/// The most bytes of an error body the adapters read by default; the rest is discarded.
pub const DEFAULT_MAX_ERROR_BODY: usize = 64 * 1024;
/// The name a client carries in its metrics' `client` label unless its builder names it.
pub const DEFAULT_NAME: &str = "default";
/// The longest client name, in characters: a name is a label on every series a client
/// emits, meant to tell a process's few clients apart, not to describe them.
pub const MAX_NAME_CHARS: usize = 64;
/// The most bytes of a successful (non-streamed) body the adapters read by default: a chat
/// answer is kilobytes, a long one with log probabilities a few megabytes.
pub const DEFAULT_MAX_SUCCESS_BODY: usize = 64 * 1024 * 1024;

/// The key, its source and the base URL a client will use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The API key; `None` only for a relaying core ([`Settings::relayed`]), whose requests
    /// carry the application's own `Authorization` header.
    pub key: Option<ApiKey>,
    /// Where it came from.
    pub key_source: KeySource,
    /// The base URL, without a trailing slash; empty for a relaying core, which sends each
    /// request to its own URL.
    pub base_url: String,
}

impl Settings {
    /// Resolves settings: explicit values win, then the environment (read through `env`, so
    /// this stays testable), then Novita's default base URL. A value that is set but
    /// unusable is an error naming where it came from; it never falls back to the default.
    ///
    /// # Errors
    /// [`Error::MissingKey`] when no key is found; [`Error::Setting`] for a key that cannot
    /// go in an HTTP header; [`Error::BaseUrl`] for a base URL that is not an `http://` or
    /// `https://` URL with a valid host and port.
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
        if let Some(problem) = key_problem(key.expose()) {
            return Err(Error::Setting {
                setting: key_source.to_string(),
                problem,
            });
        }
        let set = |name: &'static str| {
            env(name)
                .filter(|url| !url.trim().is_empty())
                .map(|url| (url, name))
        };
        let (base_url, from) = base_url
            .map(|url| (url, "the client builder"))
            .or_else(|| set(BASE_URL_VAR))
            .or_else(|| set(LITELLM_BASE_URL_VAR))
            .unwrap_or_else(|| (DEFAULT_BASE_URL.to_owned(), "the default"));
        Ok(Self {
            key: Some(key),
            key_source,
            base_url: normalize_base_url(&base_url, from)?,
        })
    }

    /// The settings of a core that relays requests somebody else built (a middleware): no
    /// key of its own ([`KeySource::Request`]) and no base URL.
    #[must_use]
    pub fn relayed() -> Self {
        Self {
            key: None,
            key_source: KeySource::Request,
            base_url: String::new(),
        }
    }

    /// The `Authorization` header value, when the client holds the key itself.
    #[must_use]
    pub fn authorization(&self) -> Option<String> {
        self.key.as_ref().map(ApiKey::bearer)
    }

    /// The full URL of `route` (such as `chat/completions`) under the base URL.
    #[must_use]
    pub fn url(&self, route: &str) -> String {
        // Built by hand: once per attempt, and `format!` costs several times as much.
        let route = route.trim_start_matches('/');
        let mut url = String::with_capacity(self.base_url.len() + 1 + route.len());
        url.push_str(&self.base_url);
        url.push('/');
        url.push_str(route);
        url
    }
}

/// What keeps `key` out of an `Authorization` header, if anything; it says where, never
/// what the key is.
fn key_problem(key: &str) -> Option<String> {
    let (position, character) = key
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_graphic())?;
    let what = match character {
        '\n' | '\r' => "a line break",
        ' ' | '\t' => "a space",
        c if c.is_control() => "a control character",
        _ => "a non-ASCII character",
    };
    Some(format!(
        "the key has {what} at character {}; an API key is printable ASCII without spaces \
         (was it pasted with extra text?)",
        position + 1
    ))
}

/// Checks a client's name (see [`Options::name`]): not empty, at most [`MAX_NAME_CHARS`]
/// characters, no control characters and no surrounding whitespace. Any other UTF-8 is a
/// valid Prometheus label value; these rules keep a name readable in a query and on a
/// dashboard, and catch a name built from a stray variable.
///
/// # Errors
/// [`Error::Setting`] saying what is wrong with the name.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        Some("it is empty; leave it unset for \"default\", or give the client a name".to_owned())
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some(format!(
            "it is longer than {MAX_NAME_CHARS} characters; it labels every series the client \
             emits, so keep it short (\"checkout\", \"batch-eu\")"
        ))
    } else if let Some((position, _)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some(format!(
            "it has a control character at character {}; a name is one line of printable text",
            position + 1
        ))
    } else if name.trim() != name {
        Some("it starts or ends with whitespace".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Setting {
            setting: format!("the client name {name:?}"),
            problem,
        }),
        None => Ok(()),
    }
}

/// Checks a base URL the way an HTTP client will read it, so that a typo is a
/// configuration error at build time rather than a connection failure retried as an
/// outage; returns it without a trailing slash.
fn normalize_base_url(url: &str, from: &'static str) -> Result<String, Error> {
    let url = url.trim();
    let invalid = |problem| Error::BaseUrl {
        url: url.to_owned(),
        from,
        problem,
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with http:// or https://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(invalid("there is no host after the scheme"));
    }
    if authority.contains('@') {
        return Err(invalid(
            "credentials in the URL are not supported; the API key is sent as a header",
        ));
    }
    let port = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 host lacks its closing ']'"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("the host in brackets is not an IPv6 address"));
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("unexpected text after the IPv6 host"))?,
            ),
        }
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(invalid("there is no host after the scheme"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(invalid(
                "the host may hold only letters, digits, '-', '.' and '_' \
                 (write an international name in its xn-- form)",
            ));
        }
        port
    };
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|port| port > 0))
    {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid(
            "a base URL cannot carry a query or fragment: routes are appended to it",
        ));
    }
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(invalid(
            "the path may hold only printable ASCII without spaces (percent-encode the rest)",
        ));
    }
    let scheme = &url[..url.len() - rest.len()];
    Ok(format!("{scheme}{authority}{}", path.trim_end_matches('/')))
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
    /// The longest a streamed attempt may take in all, from sending the request to the last
    /// byte, however steadily the bytes trickle in. Default 30 min: a reasoning model
    /// writing tens of thousands of tokens takes minutes, not hours. A buffered call that
    /// switched to streaming is also held to the policy's `deadline`.
    pub stream_total: Duration,
    /// The longest one exchange with a shared state store may take before the call goes on
    /// with its client's own state. Default 50 ms: a store on the same network answers in
    /// well under a millisecond, and a call must never wait on a store in trouble.
    pub store: Duration,
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

    /// These timeouts with a whole stream bounded by `stream_total`.
    #[must_use]
    pub fn with_stream_total(mut self, stream_total: Duration) -> Self {
        self.stream_total = stream_total;
        self
    }

    /// These timeouts with each exchange with a shared state store bounded by `store`.
    #[must_use]
    pub fn with_store(mut self, store: Duration) -> Self {
        self.store = store;
        self
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            stream_idle: Duration::from_secs(60),
            stream_total: Duration::from_secs(30 * 60),
            store: Duration::from_millis(50),
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
    /// The most bytes of a successful body read; `None` is 64 MiB. A larger body ends the
    /// call with [`Error::Decode`] instead of filling memory.
    pub max_success_body: Option<usize>,
    /// Bounds on what a stream may make the client hold (event size, choices, tool calls).
    pub stream_limits: Limits,
    /// A seed for the jitter; `None` lets the adapter pick a random one.
    pub seed: Option<u64>,
    /// A state store shared with other processes (see [`store`](crate::store)); `None`
    /// keeps every piece of state in the client.
    pub store: Option<Store>,
    /// The client's name, the value of the `client` label on every metric it emits (feature
    /// `metrics`); `None` is [`DEFAULT_NAME`]. It must not be empty, may hold at most
    /// [`MAX_NAME_CHARS`] characters, and no control characters or surrounding whitespace.
    /// Clients in one process tell their gauges apart by it, so give each its own.
    pub name: Option<String>,
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
            .field("max_success_body", &self.max_success_body)
            .field("stream_limits", &self.stream_limits)
            .field("seed", &self.seed)
            .field("store", &self.store)
            .field("name", &self.name);
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
        assert_eq!(settings.key.as_ref().unwrap().expose(), "sk_arg");
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
        assert_eq!(settings.key.as_ref().unwrap().expose(), "sk_env");
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
        for (url, problem) in [
            ("api.novita.ai", "must start with http:// or https://"),
            ("ftp://x", "must start with http:// or https://"),
            ("https://", "no host"),
            ("http:///path", "no host"),
            ("https://a b", "only letters, digits"),
            ("http://[::1", "closing ']'"),
            ("http://[::g]:80", "not an IPv6 address"),
            ("http://[::1]x", "after the IPv6 host"),
            (
                "http://127.0.0.1:65536/v1",
                "port must be a number from 1 to 65535",
            ),
            (
                "http://127.0.0.1:0",
                "port must be a number from 1 to 65535",
            ),
            (
                "http://127.0.0.1:+80",
                "port must be a number from 1 to 65535",
            ),
            ("http://h:", "port must be a number from 1 to 65535"),
            ("http://:80", "no host"),
            ("https://user:pw@api.novita.ai", "credentials"),
            ("https://api.novita.ai/v1?x=1", "query or fragment"),
            ("https://api.novita.ai/a b", "printable ASCII"),
            ("https://növ.ai", "xn-- form"),
        ] {
            let error =
                Settings::resolve(Some("k".into()), Some(url.into()), env(&[])).unwrap_err();
            assert!(matches!(error, Error::BaseUrl { .. }), "{url}");
            let message = error.to_string();
            assert!(message.starts_with("invalid base URL"), "{message}");
            assert!(message.contains("from the client builder"), "{message}");
            assert!(message.contains(problem), "{url}: {message}");
        }
        for url in [
            "http://[::1]:8080/v3/openai",
            "http://[::1]",
            "https://api.novita.ai/openai/v1/",
            "http://127.0.0.1:1",
            "http://localhost:65535/a_b-c.d~e%20f",
        ] {
            assert!(
                Settings::resolve(Some("k".into()), Some(url.into()), env(&[])).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bad_variable_names_itself_and_never_falls_back_to_the_default_host() {
        let error = Settings::resolve(
            Some("k".into()),
            None,
            env(&[("NOVITA_BASE_URL", "http://127.0.0.1:99999")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid base URL \"http://127.0.0.1:99999\" from NOVITA_BASE_URL: \
             the port must be a number from 1 to 65535"
        );
        let error = Settings::resolve(
            Some("k".into()),
            None,
            env(&[("NOVITA_API_BASE", "novita.example")]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("from NOVITA_API_BASE"),
            "{error}"
        );
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused_without_showing_it() {
        for (key, what) in [
            ("sk_sec\nret", "a line break at character 7"),
            ("sk_sec ret", "a space at character 7"),
            ("sk_sec\u{7}ret", "a control character at character 7"),
            ("sk_séc", "a non-ASCII character at character 5"),
        ] {
            let error = Settings::resolve(None, None, env(&[("NOVITA_API_KEY", key)])).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(
                    "the NOVITA_API_KEY environment variable cannot be used: the key has"
                ),
                "{message}"
            );
            assert!(message.contains(what), "{key:?}: {message}");
            assert!(!message.contains("sk_"), "the key leaked: {message}");
            assert_eq!(error.kind(), crate::ErrorKind::Config);
        }
        let error = Settings::resolve(Some("a\r\nb".into()), None, env(&[])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the key passed to the client builder cannot be used"),
            "{error}"
        );
    }

    #[test]
    fn the_key_never_shows() {
        let settings = Settings::resolve(Some("sk_secret_123".into()), None, env(&[])).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("sk_secret_123"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert_eq!(settings.authorization().unwrap(), "Bearer sk_secret_123");
    }
}
