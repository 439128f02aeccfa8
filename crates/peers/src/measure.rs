//! What one run measured: the calls' outcomes as the client saw them and the requests as the
//! mock recorded them, reduced to one row (success, load, Retry-After violations, latency).

use std::fmt::Write as _;
use std::time::Duration;

use novita_mock::RecordedRequest;

use crate::client::{Outcome, PRIMARY};

/// A request arriving this soon after a hinted answer was already on its way when the client
/// read the hint, so it does not count as a violation.
pub(crate) const GRACE: Duration = Duration::from_millis(10);

/// One contender's run in one mode.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) mode: &'static str,
    pub(crate) client: &'static str,
    pub(crate) calls: usize,
    pub(crate) ok: usize,
    /// Requests the server received.
    pub(crate) requests: usize,
    /// Answers that carried `Retry-After` or `retry-after-ms`.
    pub(crate) hints: usize,
    /// Hints before whose end the client sent another request (after [`GRACE`]).
    pub(crate) violations: usize,
    /// The same without the grace: every request that arrived inside a hint's wait.
    pub(crate) strict_violations: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) wall: Duration,
    /// Requests that arrived within the outage, when the mode has one.
    pub(crate) during_outage: Option<usize>,
    /// Requests that named the asked model.
    pub(crate) asked_requests: usize,
    /// Successful calls answered by the asked model.
    pub(crate) asked_calls: usize,
}

impl Row {
    /// Reduces one run. `outage` is the outage's length for the mode that has one; the mock's
    /// clock and the outage both start when the server starts.
    pub(crate) fn new(
        mode: &'static str,
        client: &'static str,
        outcomes: &[Outcome],
        records: &[RecordedRequest],
        wall: Duration,
        outage: Option<Duration>,
    ) -> Row {
        let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
        latencies.sort_unstable();
        let (hints, violations) = violations(records, GRACE);
        let (_, strict_violations) = violations_strict(records);
        Row {
            mode,
            client,
            calls: outcomes.len(),
            ok: outcomes.iter().filter(|o| o.ok).count(),
            requests: records.len(),
            hints,
            violations,
            strict_violations,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            wall,
            during_outage: outage.map(|outage| records.iter().filter(|r| r.at < outage).count()),
            asked_requests: records
                .iter()
                .filter(|r| r.model.as_deref() == Some(PRIMARY))
                .count(),
            asked_calls: outcomes
                .iter()
                .filter(|o| o.ok && o.model.as_deref() == Some(PRIMARY))
                .count(),
        }
    }

    /// The line `cargo xtask bench` reads: `row key=value ...`, times in milliseconds.
    pub(crate) fn line(&self) -> String {
        let mut line = format!(
            "row mode={} client={} calls={} ok={} requests={} hints={} violations={} \
             strict_violations={} p50_ms={:.1} p99_ms={:.1} wall_ms={:.0} asked_requests={} \
             asked_calls={}",
            self.mode,
            self.client,
            self.calls,
            self.ok,
            self.requests,
            self.hints,
            self.violations,
            self.strict_violations,
            millis(self.p50),
            millis(self.p99),
            millis(self.wall),
            self.asked_requests,
            self.asked_calls,
        );
        if let Some(during) = self.during_outage {
            let _ = write!(line, " during_outage={during}");
        }
        line
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The nearest-rank percentile of sorted values (zero for none).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // A rank between 1 and len.
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The wait a recorded answer asked for: `retry-after-ms`, else `Retry-After` in seconds.
pub(crate) fn hint(record: &RecordedRequest) -> Option<Duration> {
    if let Some(ms) = record.response_header("retry-after-ms") {
        return ms
            .trim()
            .parse::<f64>()
            .ok()
            .map(Duration::from_secs_f64)
            .map(|d| d / 1000);
    }
    let secs = record.response_header("retry-after")?;
    secs.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `(hints, violated)`: how many answers carried a hint, and for how many of them another
/// request of the same client arrived after `grace` and before the hint's end.
pub(crate) fn violations(records: &[RecordedRequest], grace: Duration) -> (usize, usize) {
    let mut arrivals: Vec<Duration> = records.iter().map(|r| r.at).collect();
    arrivals.sort_unstable();
    let mut hints = 0;
    let mut violated = 0;
    for record in records {
        let Some(wait) = hint(record) else {
            continue;
        };
        hints += 1;
        let from = record.at + grace;
        let until = record.at + wait;
        // The first arrival strictly after `from`.
        let next = arrivals.partition_point(|at| *at <= from);
        if arrivals.get(next).is_some_and(|at| *at < until) {
            violated += 1;
        }
    }
    (hints, violated)
}

/// When requests arrived, per second of the run: `second: requests (failed)`, for the
/// seconds that saw any; a failed request is one not answered 200.
pub(crate) fn timeline(records: &[RecordedRequest]) -> String {
    let mut seconds: std::collections::BTreeMap<u64, (usize, usize)> =
        std::collections::BTreeMap::new();
    for record in records {
        let entry = seconds.entry(record.at.as_secs()).or_default();
        entry.0 += 1;
        if record.status != 200 {
            entry.1 += 1;
        }
    }
    seconds
        .iter()
        .map(|(second, (all, failed))| format!("{second}s: {all} ({failed})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`violations`] without a grace: any request after the hinted one and inside its wait.
fn violations_strict(records: &[RecordedRequest]) -> (usize, usize) {
    violations(records, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64, headers: &[(&str, &str)]) -> RecordedRequest {
        RecordedRequest {
            at: Duration::from_millis(at_ms),
            method: "POST".to_owned(),
            path: "/openai/v1/chat/completions".to_owned(),
            route: Some(novita_mock::Route::ChatCompletions),
            model: Some(PRIMARY.to_owned()),
            stream: false,
            authorized: true,
            headers: Vec::new(),
            body: Vec::new(),
            status: if headers.is_empty() { 200 } else { 429 },
            response_headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_timeline_counts_requests_and_failures_per_second() {
        let mut late = record(2_500, &[("retry-after", "2")]);
        late.status = 503;
        let records = [record(10, &[]), record(900, &[]), late];
        assert_eq!(timeline(&records), "0s: 2 (0), 2s: 1 (1)");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn hints_read_both_headers() {
        assert_eq!(
            hint(&record(0, &[("retry-after-ms", "300")])),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            hint(&record(0, &[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(hint(&record(0, &[])), None);
    }

    #[test]
    fn a_request_inside_a_hint_after_the_grace_is_a_violation() {
        let hinted = [("retry-after-ms", "300")];
        // Hint at 0 ms; a request at 5 ms is within the grace, one at 250 ms violates it.
        let records = [record(0, &hinted), record(5, &[]), record(250, &[])];
        assert_eq!(violations(&records, GRACE), (1, 1));
        // Waiting the hint out is fine, and so is a request already in flight.
        let records = [record(0, &hinted), record(5, &[]), record(300, &[])];
        assert_eq!(violations(&records, GRACE), (1, 0));
        assert_eq!(violations_strict(&records), (1, 1));
        // Each hint counts once, however many requests break it.
        let records = [
            record(0, &hinted),
            record(100, &hinted),
            record(150, &[]),
            record(200, &[]),
            record(500, &[]),
        ];
        assert_eq!(violations(&records, GRACE), (2, 2));
    }
}
