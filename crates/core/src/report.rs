//! What a successful call returns: the answer and the report of how it was obtained.

use std::fmt;
use std::time::Duration;

use novita_policy::Seconds;

/// How a call went: which model answered, how many attempts and how long it took, and what
/// the policy changed on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

impl<T> Answer<T> {
    /// The answer `value`, obtained as `report` says.
    #[must_use]
    pub fn new(value: T, report: Report) -> Self {
        Self { value, report }
    }

    /// The answer, without its report.
    #[must_use]
    pub fn into_value(self) -> T {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let single = Report {
            model: "a".into(),
            attempts: 1,
            elapsed: Duration::from_millis(250),
            ..Report::default()
        };
        assert_eq!(single.to_string(), "a answered after 1 attempt in 250 ms");
    }
}
