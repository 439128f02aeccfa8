//! Redis URLs in messages, without their passwords.

use std::fmt;

/// A Redis URL that does not parse. Its message shows the URL with everything before the
/// `@` of its authority (user and password) replaced by `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidUrl {
    /// The URL, redacted.
    url: String,
    /// Why it does not parse, as the redis crate says it (never quoting the URL).
    reason: String,
}

impl InvalidUrl {
    pub(crate) fn new(url: &str, error: &redis::RedisError) -> Self {
        let redacted = redact(url);
        let mut reason = error.to_string();
        // The redis crate does not quote URLs in its errors; should a version do, its
        // message is not worth a password.
        if let Some(secret) = userinfo(url).filter(|secret| reason.contains(secret)) {
            reason = reason.replace(secret, "***");
        }
        Self {
            url: redacted,
            reason,
        }
    }

    /// The URL, its user and password replaced by `***`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a Redis URL (redis://[user][:password@]host[:port][/db]): {}",
            self.url, self.reason
        )
    }
}

impl std::error::Error for InvalidUrl {}

/// Where the user information of `url` (`user:password`, before the authority's last `@`)
/// lies in it, if it has any.
fn userinfo_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    (at > 0).then_some(start..start + at)
}

/// The user information of `url`, if any.
fn userinfo(url: &str) -> Option<&str> {
    userinfo_range(url).map(|range| &url[range])
}

/// `url` with its user information replaced by `***`: `redis://***@host:6379/0`.
pub(crate) fn redact(url: &str) -> String {
    match userinfo_range(url) {
        Some(range) => format!("{}***{}", &url[..range.start], &url[range.end..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://:hunter2@host/0"), "redis://***@host/0");
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        // An @ in the path is not user information.
        assert_eq!(redact("redis://host/0?x=a@b"), "redis://host/0?x=a@b");
        // Without a scheme, whatever precedes the last @ is hidden all the same.
        assert_eq!(redact("user:p@ss@host"), "***@host");
        assert_eq!(redact("redis://redis@host"), "redis://***@host");
    }
}
