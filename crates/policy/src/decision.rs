//! What the policy answers after an attempt, and the give-up a human reads.

use std::fmt;
use std::time::Duration;

use novita_catalog::{Entry, Escalation, RateLimit, Status};

use crate::Transport;

/// What to do after an attempt.
///
/// Exhaustive on purpose: whoever drives a call must handle every answer, so a new one is
/// a breaking change the compiler points out rather than a case silently ignored.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The call succeeded; nothing more to do.
    Done,
    /// Send the same request again after `delay`.
    Retry {
        /// How long to wait first; never less than the server asked.
        delay: Duration,
        /// What went wrong with the attempt.
        cause: Cause,
    },
    /// Change something about the call, then send it again after `delay`.
    Escalate {
        /// What to change.
        action: Action,
        /// How long to wait first.
        delay: Duration,
        /// What went wrong with the attempt.
        cause: Cause,
    },
    /// Stop: the error goes back to the caller with everything a human needs.
    GiveUp(Box<GiveUp>),
}

impl Decision {
    /// How long to wait before the next attempt, if there is one.
    #[must_use]
    pub fn delay(&self) -> Option<Duration> {
        match self {
            Decision::Retry { delay, .. } | Decision::Escalate { delay, .. } => Some(*delay),
            Decision::Done | Decision::GiveUp(_) => None,
        }
    }
}

/// A change the policy asks the adapter to make before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Re-issue the call with `stream: true` and assemble the chunks into the same answer.
    SwitchToStreaming,
    /// Send the call to the model at this index of the caller's model list.
    FallBack {
        /// Index into the model list: 0 is the primary, 1 the first fallback, and so on.
        model: usize,
    },
    /// Calls to this model are now paced; the next attempt (and every call after it)
    /// waits its turn through `admit`.
    ReduceRate {
        /// The new interval between call starts on this model.
        interval: Duration,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SwitchToStreaming => f.write_str("switch to streaming"),
            Action::FallBack { model } => write!(f, "fall back to model #{model}"),
            Action::ReduceRate { interval } => {
                write!(f, "pace calls to one per {}", Seconds(*interval))
            }
        }
    }
}

/// What went wrong with an attempt, in a form small enough to log on every retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Cause {
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// The transport failure, if no response arrived.
    pub transport: Option<Transport>,
    /// For 429s: which limit was hit, when it could be told.
    pub rate_limit: Option<RateLimit>,
    /// How long the server asked to wait, if it did.
    pub server_hint: Option<Duration>,
    /// The catalog entry of the error (refined by its reason), if it has one.
    pub entry: Option<&'static Entry>,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.transport) {
            (Some(status), _) => write!(f, "status {status}")?,
            (None, Some(transport)) => write!(f, "{transport}")?,
            (None, None) => f.write_str("no response")?,
        }
        if let Some(limit) = self.rate_limit {
            write!(f, " ({} limit)", limit.abbreviation())?;
        }
        if let Some(hint) = self.server_hint {
            write!(f, ", server asked to wait {}", Seconds(hint))?;
        }
        Ok(())
    }
}

/// Why the policy stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// The catalog says this error is not worth retrying (400, 401, 403, 404, …).
    NotRetryable,
    /// The attempts allowed for this kind of failure (or for the whole call) are used up.
    AttemptsExhausted,
    /// The server asked for a wait longer than the configured ceiling.
    HintAboveCeiling,
    /// The next wait would end past the call's deadline.
    PastDeadline,
    /// The client's retry budget is empty: the service is failing broadly, and retrying
    /// would only add load.
    BudgetExhausted,
    /// The model's circuit breaker is open and no fallback model is left.
    CircuitOpen,
    /// The status is not a valid HTTP status (600 or above).
    NotAnHttpStatus,
}

impl Stop {
    /// A short description for humans.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Stop::NotRetryable => "retrying cannot fix this error",
            Stop::AttemptsExhausted => "retries exhausted",
            Stop::HintAboveCeiling => "the server asked for a longer wait than the client accepts",
            Stop::PastDeadline => "the next wait would cross the call's deadline",
            Stop::BudgetExhausted => {
                "the retry budget is empty, so retries stop rather than add to an outage"
            }
            Stop::CircuitOpen => "the model keeps failing, so its circuit breaker is open",
            Stop::NotAnHttpStatus => "the server answered with an invalid HTTP status",
        }
    }
}

/// Everything a human needs when the policy gives up: what failed, what the server said,
/// how hard the client tried, and what to do next.
///
/// `Display` gives one line; the alternate form (`{:#}`) adds the server's message, the
/// request id and every piece of advice, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GiveUp {
    /// Why the policy stopped.
    pub stop: Stop,
    /// The last HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// The catalog entry for the last error, refined by its reason where known.
    pub entry: Option<&'static Entry>,
    /// Novita's machine-readable reason, verbatim (also when the catalog does not know it).
    pub reason: Option<String>,
    /// The server's message.
    pub message: Option<String>,
    /// The request id, from the body or the `x-request-id` header, for support.
    pub request_id: Option<String>,
    /// For 429s: which limit was hit.
    pub rate_limit: Option<RateLimit>,
    /// The server's requested wait, when there was one (notably when it was too long).
    pub server_hint: Option<Duration>,
    /// The transport failure, if the last attempt got no response.
    pub transport: Option<Transport>,
    /// Attempts made, the last one included.
    pub attempts: u32,
    /// Time from the start of the call to the give-up.
    pub elapsed: Duration,
    /// Index of the model the last attempt went to (0 is the primary).
    pub model: usize,
    /// What a human should do, most important first.
    pub advice: Vec<Escalation>,
}

impl GiveUp {
    /// The headline: which error, refined by reason, in words.
    fn headline(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.entry, self.transport) {
            (Some(status), Some(entry), _) => {
                let title = if matches!(entry.status, Status::Code(_)) {
                    entry.title
                } else {
                    ""
                };
                write!(f, "{status}")?;
                if !title.is_empty() {
                    write!(f, " {title}")?;
                }
                if let Some(reason) = &self.reason {
                    write!(f, " ({reason})")?;
                }
                let summary = entry.summary.trim_end_matches('.');
                write!(f, ": {}", lowercase_first(summary))?;
                if let (Some(limit), None) = (self.rate_limit, entry.rate_limit) {
                    write!(f, "; the {limit} limit")?;
                }
                Ok(())
            }
            (Some(status), None, _) => write!(f, "status {status}"),
            (None, _, Some(transport)) => f.write_str(transport.describe()),
            (None, _, None) => f.write_str("no attempt was sent"),
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.headline(f)?;
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "; gave up after {} attempt{plural} in {}: {}",
            self.attempts,
            Seconds(self.elapsed),
            self.stop.describe()
        )?;
        if let Some(hint) = self.server_hint
            && matches!(self.stop, Stop::HintAboveCeiling | Stop::PastDeadline)
        {
            write!(f, " (server asked to wait {})", Seconds(hint))?;
        }
        if !f.alternate() {
            return Ok(());
        }
        if let Some(message) = &self.message {
            write!(f, "\nserver said: {message}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\nrequest id: {id}")?;
        }
        if !self.advice.is_empty() {
            write!(f, "\nwhat to do:")?;
            for advice in &self.advice {
                write!(f, "\n  - {}", advice.advice())?;
            }
        }
        Ok(())
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if !text.starts_with("API") => first.to_lowercase().chain(chars).collect(),
        _ => text.to_owned(),
    }
}

/// A duration printed for humans: `850 ms`, `2.5 s`, `3 min 20 s`.
#[derive(Clone, Copy, Debug)]
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration == Duration::MAX {
            f.write_str("forever")
        } else if duration < Duration::from_secs(1) {
            write!(f, "{} ms", duration.as_millis())
        } else if duration < Duration::from_secs(120) {
            let tenths = duration.as_millis() / 100;
            if tenths.is_multiple_of(10) {
                write!(f, "{} s", tenths / 10)
            } else {
                write!(f, "{}.{} s", tenths / 10, tenths % 10)
            }
        } else {
            let secs = duration.as_secs();
            let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
            if hours > 0 {
                write!(f, "{hours} h {minutes} min")
            } else {
                write!(f, "{minutes} min {seconds} s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_naturally() {
        let cases = [
            (Duration::from_millis(850), "850 ms"),
            (Duration::from_millis(2500), "2.5 s"),
            (Duration::from_secs(3), "3 s"),
            (Duration::from_secs(200), "3 min 20 s"),
            (Duration::from_secs(86_400 + 60), "24 h 1 min"),
            (Duration::MAX, "forever"),
        ];
        for (duration, text) in cases {
            assert_eq!(Seconds(duration).to_string(), text);
        }
    }

    #[test]
    fn causes_and_actions_read_naturally() {
        let cause = Cause {
            status: Some(429),
            rate_limit: Some(RateLimit::TokensPerMinute),
            server_hint: Some(Duration::from_secs(2)),
            ..Cause::default()
        };
        assert_eq!(
            cause.to_string(),
            "status 429 (TPM limit), server asked to wait 2 s"
        );
        let cause = Cause {
            transport: Some(Transport::Reset),
            ..Cause::default()
        };
        assert_eq!(
            cause.to_string(),
            "the connection was reset before the response was complete"
        );
        assert_eq!(
            Action::FallBack { model: 1 }.to_string(),
            "fall back to model #1"
        );
        assert_eq!(
            Action::ReduceRate {
                interval: Duration::from_millis(400)
            }
            .to_string(),
            "pace calls to one per 400 ms"
        );
    }
}
