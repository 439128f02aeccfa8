//! The API key and where it came from. The key can build the `Authorization` header and
//! never shows up in `Debug`, `Display`, logs or errors.

use std::fmt;

/// The conventional variable holding the API key.
pub const API_KEY_VAR: &str = "NOVITA_API_KEY";
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
    /// Sent by the application in each request's own `Authorization` header: a middleware
    /// relays requests it did not build.
    Request,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Argument => f.write_str("the key passed to the client builder"),
            KeySource::Environment(name) => write!(f, "the {name} environment variable"),
            KeySource::Request => f.write_str("the request's own Authorization header"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_and_never_shown() {
        let key = ApiKey::new(" sk_secret_456\n").unwrap();
        assert_eq!(key.expose(), "sk_secret_456");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(ApiKey::new("  \n"), None);
        assert_eq!(
            KeySource::Environment(API_KEY_VAR).to_string(),
            "the NOVITA_API_KEY environment variable"
        );
    }
}
