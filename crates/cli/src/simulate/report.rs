//! The results of a run and their rendering, as aligned plain text or Markdown tables.

use std::fmt::Write as _;
use std::time::Duration;

use novita_policy::Seconds;

use super::fleet::Tally;
use super::scenario::{OUTAGE, Scenario};
use super::strategy::Strategy;
use super::workload::{CALL_INTERVAL, LATENCY, LOAD_WINDOW};

/// What one strategy achieved in one scenario.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StrategyResult {
    /// The strategy.
    pub(crate) strategy: Strategy,
    /// Calls started.
    pub(crate) calls: u64,
    /// Calls that succeeded.
    pub(crate) successes: u64,
    /// Requests the server received.
    pub(crate) requests: u64,
    /// Requests the server received during the outage window.
    pub(crate) outage_requests: u64,
    /// `Retry-After` hints broken (each hint a client received counts at most once).
    pub(crate) violations: u64,
    /// Median time from call start to success.
    pub(crate) p50: Option<Duration>,
    /// 99th percentile of the time from call start to success.
    pub(crate) p99: Option<Duration>,
    /// Requests during the outage relative to `no-retry`'s; `None` without an outage.
    pub(crate) outage_load: Option<f64>,
}

impl StrategyResult {
    /// The result of `strategy` from what its run counted (outage load is filled in once
    /// the baseline is known, by [`fill_outage_load`]).
    pub(crate) fn new(strategy: Strategy, tally: Tally) -> Self {
        let mut completions = tally.completions;
        completions.sort_unstable();
        Self {
            strategy,
            calls: tally.calls,
            successes: tally.successes,
            requests: tally.requests,
            outage_requests: tally.outage_requests,
            violations: tally.violations,
            p50: percentile(&completions, 50),
            p99: percentile(&completions, 99),
            outage_load: None,
        }
    }

    /// Successful calls, in percent of calls started.
    pub(crate) fn success_rate(&self) -> f64 {
        ratio(self.successes, self.calls).map_or(0.0, |share| share * 100.0)
    }

    /// Requests sent per successful call; `None` when no call succeeded.
    pub(crate) fn amplification(&self) -> Option<f64> {
        ratio(self.requests, self.successes)
    }
}

/// Sets every result's outage load relative to the `no-retry` result.
pub(crate) fn fill_outage_load(results: &mut [StrategyResult]) {
    let baseline = results
        .iter()
        .find(|result| result.strategy == Strategy::NoRetry)
        .map(|result| result.outage_requests);
    if let Some(baseline) = baseline {
        for result in results {
            result.outage_load = ratio(result.outage_requests, baseline);
        }
    }
}

/// `numerator / denominator`, or `None` when the denominator is zero.
fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
    let (numerator, denominator) = (numerator as f64, denominator as f64);
    (denominator > 0.0).then(|| numerator / denominator)
}

/// The nearest-rank `percent`-th percentile of `sorted`.
fn percentile(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One scenario's results, ready to render.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// The scenario.
    pub(crate) scenario: Scenario,
    /// Clients in the fleet.
    pub(crate) clients: usize,
    /// The seed of the run.
    pub(crate) seed: u64,
    /// One result per strategy.
    pub(crate) results: Vec<StrategyResult>,
}

/// The column headings.
const HEADINGS: [&str; 7] = [
    "strategy",
    "success",
    "amplification",
    "Retry-After violations",
    "p50",
    "p99",
    "outage load",
];

/// Renders every table, then a legend.
pub(crate) fn render(tables: &[Table], markdown: bool) -> String {
    let mut out = String::new();
    for table in tables {
        if markdown {
            render_markdown(&mut out, table);
        } else {
            render_plain(&mut out, table);
        }
        out.push('\n');
    }
    out.push_str(&legend(markdown));
    out
}

fn render_plain(out: &mut String, table: &Table) {
    let _ = writeln!(out, "{}", header(table));
    let _ = writeln!(out, "  {}", table.scenario.describe());
    let rows: Vec<(&str, Vec<String>)> = table
        .results
        .iter()
        .map(|result| {
            let marker = if result.strategy == Strategy::Novita {
                "> "
            } else {
                "  "
            };
            (marker, cells(result).to_vec())
        })
        .collect();
    out.push_str(&plain_table("  ", &HEADINGS, &rows));
}

fn render_markdown(out: &mut String, table: &Table) {
    let _ = writeln!(out, "### {}\n", header(table));
    let _ = writeln!(out, "{}.\n", capitalize(table.scenario.describe()));
    let rows: Vec<Vec<String>> = table
        .results
        .iter()
        .map(|result| {
            let mut row = cells(result);
            if result.strategy == Strategy::Novita {
                row[0] = format!("**{}** (ours)", row[0]);
            }
            row.to_vec()
        })
        .collect();
    out.push_str(&markdown_table(&HEADINGS, &rows));
}

/// A plain-text table: the first column left-aligned and the others right-aligned, each as
/// wide as its widest cell; every row after its marker, the headings after `indent`.
pub(super) fn plain_table(indent: &str, headings: &[&str], rows: &[(&str, Vec<String>)]) -> String {
    let widths: Vec<usize> = (0..headings.len())
        .map(|column| {
            rows.iter()
                .map(|(_, row)| row[column].len())
                .chain([headings[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |marker: &str, row: &mut dyn Iterator<Item = &str>| {
        let mut text = String::from(marker);
        for (column, cell) in row.enumerate() {
            let width = widths[column];
            if column == 0 {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "  {cell:>width$}");
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(indent, &mut headings.iter().copied());
    for (marker, row) in rows {
        out.push_str(&line(marker, &mut row.iter().map(String::as_str)));
    }
    out
}

/// A Markdown table, the first column left-aligned and the others right-aligned.
pub(super) fn markdown_table(headings: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|:--|{}\n",
        headings.join(" | "),
        "--:|".repeat(headings.len() - 1)
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// The line naming the scenario, the fleet and the seed.
fn header(table: &Table) -> String {
    let profile = table.scenario.profile(table.clients);
    format!(
        "{}: {} clients, seed {}, server capacity {} requests/s",
        table.scenario.name(),
        table.clients,
        table.seed,
        profile.capacity
    )
}

/// A result's cells, in [`HEADINGS`] order.
fn cells(result: &StrategyResult) -> [String; 7] {
    [
        result.strategy.name().to_owned(),
        format!("{:.2} %", result.success_rate()),
        optional(result.amplification(), |value| format!("{value:.2}x")),
        result.violations.to_string(),
        optional(result.p50, |value| Seconds(value).to_string()),
        optional(result.p99, |value| Seconds(value).to_string()),
        optional(result.outage_load, |value| format!("{value:.2}x")),
    ]
}

fn optional<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// What the columns mean and what the runs assumed.
fn legend(markdown: bool) -> String {
    let (marker, bullet) = if markdown {
        ("**novita** (ours)", "- ")
    } else {
        ("> novita", "  ")
    };
    let lines = [
        format!(
            "{marker}: novita-core's CallDriver (the adapters' attempt loop) over \
             PolicyConfig::default() with a 120 s deadline; one ClientCore per client."
        ),
        format!(
            "Each client starts a call every {} for {} s of virtual time (calls then run to \
             their end); every answer takes {}.",
            Seconds(CALL_INTERVAL),
            LOAD_WINDOW.as_secs(),
            Seconds(LATENCY)
        ),
        "success: calls that got a 200. amplification: requests sent per successful call."
            .to_owned(),
        "Retry-After violations: hints a client broke by sending any request before they \
         elapsed (each hint counted once)."
            .to_owned(),
        "p50, p99: time from call start to success, over successful calls.".to_owned(),
        format!(
            "outage load: requests the server received from {} to {}, relative to no-retry.",
            Seconds(OUTAGE.start),
            Seconds(OUTAGE.end)
        ),
        "retry-policies draws from rand's thread RNG: its row varies slightly between runs."
            .to_owned(),
    ];
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "{bullet}{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50), Some(ms(50)));
        assert_eq!(percentile(&sorted, 99), Some(ms(99)));
        assert_eq!(percentile(&[ms(7)], 99), Some(ms(7)));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn ratios_need_a_denominator() {
        assert_eq!(ratio(3, 2), Some(1.5));
        assert_eq!(ratio(3, 0), None);
    }
}
