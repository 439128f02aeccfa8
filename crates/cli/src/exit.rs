//! The exit codes of `novita`, one place so the help text and the code agree.
//!
//! Scripts branch on these: a distinct code per error class tells "fix your key" from
//! "try again later" without parsing text.

use novita_core::{Error, ErrorKind};

/// The command did what was asked.
pub(crate) const SUCCESS: u8 = 0;
/// `novita demo` saw a scenario behave otherwise than designed.
pub(crate) const DEMO_DEVIATION: u8 = 1;
/// The command line was wrong: a malformed or out-of-range argument (clap uses 2 too).
pub(crate) const USAGE: u8 = 2;
/// The setup is wrong: no API key, an unusable base URL, an invalid policy or tools file.
pub(crate) const CONFIG: u8 = 3;
/// The API key is missing, wrong or expired (401, or 403 without a key).
pub(crate) const AUTH: u8 = 4;
/// The account may not do this (403): verify identity, top up, or use another key.
pub(crate) const PERMISSION: u8 = 5;
/// The request is wrong (400, 404): fix it before trying again.
pub(crate) const CLIENT_FAULT: u8 = 6;
/// A rate limit was hit (429) and the retries ran out.
pub(crate) const THROTTLED: u8 = 7;
/// The service is overloaded or unreachable (503, 504, timeouts, connection errors, an
/// empty retry budget or an open circuit breaker): try again later.
pub(crate) const TRANSIENT: u8 = 8;
/// The platform failed (500) and no fallback model helped.
pub(crate) const SERVER_FAULT: u8 = 9;
/// An error Novita does not document; read the message.
pub(crate) const UNKNOWN: u8 = 10;
/// The answer could not be read: a broken stream or a malformed response.
pub(crate) const PROTOCOL: u8 = 11;

/// The exit-code table shown at the end of `novita --help`.
pub(crate) const HELP: &str = "\
Exit codes:
  0  success
  1  the demo saw a scenario behave otherwise than designed
  2  bad command line or argument (for example `explain abc`, `explain 99999`, `explain 200`)
  3  configuration: no API key, unusable base URL, invalid policy or tools file
  4  authentication: the API key is missing, wrong or expired (401)
  5  permission: the account may not do this (403)
  6  bad request: fix the request (400, 404)
  7  rate limited: retries ran out (429)
  8  overloaded or unreachable: try again later (503, 504, timeouts, open breaker)
  9  server fault: the platform failed and no fallback helped (500)
  10 undocumented error: read the message
  11 unreadable answer: broken stream or malformed response";

/// The exit code for a failed call: one per [`ErrorKind`], so the code and the library
/// agree on what each failure means.
pub(crate) fn for_error(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::Config => CONFIG,
        ErrorKind::Auth => AUTH,
        ErrorKind::Permission => PERMISSION,
        ErrorKind::BadRequest => CLIENT_FAULT,
        ErrorKind::RateLimited => THROTTLED,
        ErrorKind::Unavailable => TRANSIENT,
        ErrorKind::ServerFault => SERVER_FAULT,
        ErrorKind::InvalidResponse => PROTOCOL,
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code() {
        let codes = [
            SUCCESS,
            DEMO_DEVIATION,
            USAGE,
            CONFIG,
            AUTH,
            PERMISSION,
            CLIENT_FAULT,
            THROTTLED,
            TRANSIENT,
            SERVER_FAULT,
            UNKNOWN,
            PROTOCOL,
        ];
        for code in codes {
            let line = format!("\n  {code:<2} ");
            assert!(HELP.contains(&line), "{code} missing from the help");
        }
        let mut unique = codes.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "codes are distinct");
    }

    #[test]
    fn setup_errors_are_configuration() {
        assert_eq!(for_error(&Error::MissingKey), CONFIG);
        let bad_url = Error::BaseUrl {
            url: "x".into(),
            from: "the client builder",
            problem: "no scheme",
        };
        assert_eq!(for_error(&bad_url), CONFIG);
    }
}
