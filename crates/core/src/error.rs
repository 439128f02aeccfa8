//! The error a call ends with, and what kind of failure it was.
//!
//! [`Error`] holds the details (the policy's give-up with the catalog entry, the server's
//! message, the request id, the HTTP client's own error as the source); [`ErrorKind`] sorts
//! every error into the handful of reactions a program has, so code can branch without
//! matching variants that may grow.

use std::fmt;

use novita_policy::catalog::Class;
use novita_policy::{ConfigError, GiveUp, Stop};

use crate::key::{API_KEY_VAR, KeySource};

/// An HTTP client's own error, kept as the source of a failed call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What kind of failure an [`Error`] is: the reaction it calls for, in the terms of
/// Novita's error classes. New kinds may be added, so a `match` needs a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The setup is wrong: no API key, an unusable base URL, an invalid policy, an HTTP
    /// client that could not be built. Fix the configuration; retrying cannot help.
    Config,
    /// The API key is missing, wrong or expired (401, or 403 without a key).
    Auth,
    /// The account may not do this (403): verify identity, top up, or use another key.
    Permission,
    /// The request is wrong (400, 404, or a body that cannot be encoded): fix it first.
    BadRequest,
    /// A rate limit (429) outlasted the retries.
    RateLimited,
    /// The service is overloaded or unreachable (503, 504, timeouts, connection errors, an
    /// empty retry budget, an open circuit breaker): try again later.
    Unavailable,
    /// The platform failed (500) and no fallback model helped.
    ServerFault,
    /// A status Novita does not document; the message says more.
    Undocumented,
    /// The answer could not be read: a malformed body or a stream that broke off.
    InvalidResponse,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "configuration",
            ErrorKind::Auth => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ServerFault => "server fault",
            ErrorKind::Undocumented => "undocumented error",
            ErrorKind::InvalidResponse => "invalid response",
        })
    }
}

/// Why a call failed. The key never appears in any of it.
///
/// Match on [`kind`](Self::kind) to branch on what the failure means (a bad key, a rate
/// limit, an outage); the variants hold the details, and [`advice`](Self::advice) renders
/// them for a human.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
        source: Option<BoxError>,
    },
    /// No API key was given and `NOVITA_API_KEY` is unset or empty.
    #[error("no API key: set {API_KEY_VAR} or pass a key to the client builder")]
    MissingKey,
    /// The base URL is not usable. Never retried: no request is sent to a URL that cannot
    /// be right, and the default host is never used in its place.
    #[error("invalid base URL {url:?} from {from}: {problem}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// Where it came from: `the client builder` or the environment variable's name.
        from: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A setting cannot be used as given (a key that cannot go in an HTTP header, an
    /// environment variable that is not UTF-8). Names the setting, never its secret value.
    #[error("{setting} cannot be used: {problem}")]
    Setting {
        /// The setting, such as "the NOVITA_API_KEY environment variable".
        setting: String,
        /// What is wrong with it and how to fix it.
        problem: String,
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
        source: BoxError,
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
        source: Option<BoxError>,
    },
    /// The HTTP client could not be built (for example, TLS setup failed).
    #[error("could not build the HTTP client")]
    Client(#[source] BoxError),
}

impl Error {
    /// A successful body larger than the client's bound (`max_success_body`): the call ends
    /// here, with advice on which setting to raise if the size is legitimate.
    #[must_use]
    pub fn body_too_large(what: &'static str, status: u16, limit: u64) -> Self {
        Error::Decode {
            what,
            status,
            source: format!(
                "the body is larger than {limit} bytes, the client's bound; the server is \
                 misbehaving, or raise it with the builder's max_success_body"
            )
            .into(),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::GaveUp { give_up, .. } => kind_of_give_up(give_up),
            Error::MissingKey
            | Error::BaseUrl { .. }
            | Error::Setting { .. }
            | Error::Config(_)
            | Error::Client(_) => ErrorKind::Config,
            Error::Encode(_) => ErrorKind::BadRequest,
            Error::Decode { .. } | Error::Stream { .. } => ErrorKind::InvalidResponse,
        }
    }

    /// The policy's give-up, when the call failed that way.
    #[must_use]
    pub fn give_up(&self) -> Option<&GiveUp> {
        match self {
            Error::GaveUp { give_up, .. } => Some(give_up),
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
            Error::GaveUp {
                give_up,
                model,
                key_source,
                source,
            } => {
                let mut text = format!("{give_up:#}");
                text.push_str(&format!("\nmodel: {model}"));
                if is_auth_failure(give_up) {
                    text.push_str(&format!("\nthe API key came from {key_source}"));
                }
                // Below HTTP (refused, reset, TLS, DNS) the client's own words say which.
                if let Some(source) = source {
                    let mut said = String::new();
                    append_chain(&mut said, source.as_ref());
                    text.push_str(&format!(
                        "\nthe HTTP client said: {}",
                        said.trim_start_matches(": ")
                    ));
                }
                text
            }
            other => {
                // The causes carry the specifics (which key, which line): keep them all.
                let mut text = other.to_string();
                if let Some(source) = std::error::Error::source(other) {
                    append_chain(&mut text, source);
                }
                text
            }
        }
    }
}

/// An outage the client itself stopped on (budget, breaker, a transport failure) is
/// `Unavailable` whatever status came before; otherwise the class of the last answer.
/// Appends `error` and every cause below it, each after `": "`, skipping a line the text
/// already holds (HTTP clients often repeat their cause in their own message).
fn append_chain(text: &mut String, error: &(dyn std::error::Error + 'static)) {
    let mut next = Some(error);
    while let Some(cause) = next {
        let line = cause.to_string();
        if !text.contains(line.trim()) {
            text.push_str(": ");
            text.push_str(line.trim());
        }
        next = cause.source();
    }
}

fn kind_of_give_up(give_up: &GiveUp) -> ErrorKind {
    if matches!(give_up.stop, Stop::BudgetExhausted | Stop::CircuitOpen)
        || give_up.transport.is_some()
    {
        return ErrorKind::Unavailable;
    }
    match give_up.entry.map(|entry| entry.class) {
        Some(Class::Auth) => ErrorKind::Auth,
        Some(Class::Permission) => ErrorKind::Permission,
        Some(Class::ClientFault) => ErrorKind::BadRequest,
        Some(Class::Throttled) => ErrorKind::RateLimited,
        Some(Class::Transient) => ErrorKind::Unavailable,
        Some(Class::ServerFault) => ErrorKind::ServerFault,
        _ => ErrorKind::Undocumented,
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

    #[cfg(feature = "toml")]
    #[test]
    fn advice_keeps_the_whole_cause_chain() {
        let error =
            Error::from(novita_policy::PolicyConfig::from_toml("max_atempts = 3").unwrap_err());
        let advice = error.advice();
        assert!(advice.starts_with("invalid policy config: "), "{advice}");
        assert!(advice.contains("max_atempts"), "{advice}");
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn setup_errors_are_configuration_and_answers_invalid_responses() {
        assert_eq!(Error::MissingKey.kind(), ErrorKind::Config);
        let bad_url = Error::BaseUrl {
            url: "x".into(),
            from: "the client builder",
            problem: "no scheme",
        };
        assert_eq!(bad_url.kind(), ErrorKind::Config);
        let stream = Error::Stream {
            model: "m".into(),
            chunks: 3,
            problem: "cut".into(),
            source: None,
        };
        assert_eq!(stream.kind(), ErrorKind::InvalidResponse);
        assert_eq!(ErrorKind::RateLimited.to_string(), "rate limited");
    }
}
