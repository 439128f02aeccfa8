//! The metric names a PromQL expression reads, and the metrics `novita-core` emits: enough
//! of PromQL's lexical structure to tell a metric name from a function, a keyword, a label
//! or a string, so the tests can check every generated query against the code.

use std::collections::BTreeMap;

/// Words that are PromQL keywords, never metric names, when not followed by `(`.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
];

/// Aggregation operators, which may put `by (...)` or `without (...)` before their
/// parenthesised argument.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords whose parenthesised group is a list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Skips from `at`, which holds `open`, past its matching `close`, stepping over quoted
/// strings; the index after it.
fn skip_group(bytes: &[u8], mut at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' | b'\'' | b'`' => at = skip_string(bytes, at),
            byte if byte == open => {
                depth += 1;
                at += 1;
            }
            byte if byte == close => {
                depth -= 1;
                at += 1;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    at
}

/// Skips the string opening at `at`; the index after its closing quote.
fn skip_string(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    let mut at = at + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if quote != b'`' => at += 2,
            byte if byte == quote => return at + 1,
            _ => at += 1,
        }
    }
    at
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':'
}

/// The metric names `expr` selects, in order, with repeats.
pub(crate) fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b'"' | b'\'' | b'`' => at = skip_string(bytes, at),
            b'{' => at = skip_group(bytes, at, b'{', b'}'),
            b'[' => at = skip_group(bytes, at, b'[', b']'),
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            // A Grafana variable such as `$model` or `$__rate_interval`.
            b'$' => {
                at += 1;
                while at < bytes.len() && is_word(bytes[at]) {
                    at += 1;
                }
            }
            // A number or a duration.
            b'0'..=b'9' | b'.' => {
                while at < bytes.len() && (is_word(bytes[at]) || bytes[at] == b'.') {
                    at += 1;
                }
            }
            byte if byte.is_ascii_alphabetic() || byte == b'_' || byte == b':' => {
                let start = at;
                while at < bytes.len() && is_word(bytes[at]) {
                    at += 1;
                }
                let word = &expr[start..at];
                let mut next = at;
                while next < bytes.len() && bytes[next].is_ascii_whitespace() {
                    next += 1;
                }
                let called = bytes.get(next) == Some(&b'(');
                let grouped = AGGREGATIONS.contains(&word)
                    && ["by", "without"].iter().any(|keyword| {
                        expr[next..].starts_with(keyword)
                            && !expr[next + keyword.len()..].starts_with(|c: char| {
                                c.is_ascii_alphanumeric() || c == '_' || c == ':'
                            })
                    });
                if LABEL_LISTS.contains(&word) && called {
                    at = skip_group(bytes, next, b'(', b')');
                } else if !called && !grouped && !KEYWORDS.contains(&word) {
                    names.push(word.to_owned());
                }
            }
            _ => at += 1,
        }
    }
    names
}

/// What kind of metric a name constant of `metrics.rs` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The metrics `crates/core/src/metrics.rs` emits: every `pub const NAME: &str =
/// "novita_..."`, with the kind its doc comment opens with (`/// Counter`, `/// Gauge`,
/// `/// Histogram`).
pub(crate) fn emitted(source: &str) -> Result<BTreeMap<String, Kind>, String> {
    let mut metrics = BTreeMap::new();
    let mut doc = String::new();
    for line in source.lines() {
        let line = line.trim();
        if let Some(text) = line.strip_prefix("///") {
            if doc.is_empty() {
                doc = text.trim().to_owned();
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub const ")
            && let Some((_, value)) = rest.split_once(": &str = \"")
            && let Some(name) = value.strip_suffix("\";")
            && name.starts_with("novita_")
        {
            let kind = if doc.starts_with("Counter") {
                Kind::Counter
            } else if doc.starts_with("Gauge") {
                Kind::Gauge
            } else if doc.starts_with("Histogram") {
                Kind::Histogram
            } else {
                return Err(format!(
                    "the doc of the constant for {name} must open with Counter, Gauge or \
                     Histogram, not {doc:?}"
                ));
            };
            metrics.insert(name.to_owned(), kind);
        }
        doc.clear();
    }
    Ok(metrics)
}

/// The metric names of the table in `METRICS.md`: the first column's code spans.
pub(crate) fn documented(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("novita_"))
        .collect()
}

/// Checks that `expr` (found at `place`) reads only metrics in `emitted` (a histogram also
/// as its `_bucket`, `_sum` and `_count` series) or recording rules in `recorded`; the
/// problem, naming the metric, otherwise.
pub(crate) fn check(
    place: &str,
    expr: &str,
    emitted: &BTreeMap<String, Kind>,
    recorded: &[String],
) -> Result<(), String> {
    for name in metric_names(expr) {
        let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| emitted.get(base) == Some(&Kind::Histogram))
        });
        if emitted.contains_key(&name) || histogram_series || recorded.contains(&name) {
            continue;
        }
        let known: Vec<&str> = emitted.keys().map(String::as_str).collect();
        return Err(format!(
            "{place} names the metric `{name}`, which crates/core/src/metrics.rs does not emit \
             and no recording rule defines (emitted: {})",
            known.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_from_functions_keywords_labels_and_strings() {
        let expr = r#"histogram_quantile(0.95, sum by (le, model) (rate(novita_x_bucket{model=~"$model", le!="a b"}[$__rate_interval])))
            / on (model) group_left () novita:tpm_limit offset 5m
            and bool max without (instance) (other_metric) > 1e3 or vector(0) # novita_comment"#;
        assert_eq!(
            metric_names(expr),
            ["novita_x_bucket", "novita:tpm_limit", "other_metric"]
        );
    }

    #[test]
    fn constants_are_read_with_their_kinds() {
        let source = "/// Counter: calls.\npub const A: &str = \"novita_a_total\";\n\
                      /// Histogram, seconds: waits.\n/// More.\npub const B: &str = \"novita_b_seconds\";\n\
                      pub const OTHER: &str = \"target\";\n";
        let metrics = emitted(source).unwrap();
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics["novita_a_total"], Kind::Counter);
        assert_eq!(metrics["novita_b_seconds"], Kind::Histogram);
    }

    #[test]
    fn an_unknown_metric_is_named() {
        let emitted = BTreeMap::from([("novita_b_seconds".to_owned(), Kind::Histogram)]);
        let recorded = ["novita:ratio".to_owned()];
        for fine in [
            "rate(novita_b_seconds_bucket[5m])",
            "novita_b_seconds_count + novita:ratio",
        ] {
            check("here", fine, &emitted, &recorded).unwrap();
        }
        let problem = check(
            "panel \"P\"",
            "rate(novita_c_total[5m])",
            &emitted,
            &recorded,
        )
        .unwrap_err();
        assert!(
            problem.starts_with("panel \"P\" names the metric `novita_c_total`, which"),
            "{problem}"
        );
        let problem = check("x", "novita_a_total_bucket", &emitted, &recorded).unwrap_err();
        assert!(problem.contains("`novita_a_total_bucket`"), "{problem}");
    }
}
