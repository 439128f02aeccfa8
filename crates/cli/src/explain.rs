//! `novita explain`: the catalog, rendered for a human.

use std::fmt::{self, Write as _};

use novita_catalog::{ENTRIES, Entry, Status};

use crate::exit;

/// Arguments of `novita explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The HTTP status to explain, such as 429.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    code: Option<String>,
    /// Novita's machine-readable `reason` from the error body, such as TOKEN_LIMIT_EXCEEDED.
    #[arg(requires = "code")]
    reason: Option<String>,
    /// Print the whole catalog as a table.
    #[arg(long)]
    all: bool,
}

/// What `explain` prints: the text for stdout and an optional note for stderr.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) note: Option<String>,
}

/// Why `explain` could not answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Error {
    NotANumber(String),
    OutOfRange(String),
    NotAnErrorStatus(u16),
}

impl Error {
    pub(crate) fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotANumber(input) => {
                write!(
                    f,
                    "{input:?} is not an HTTP status code; give a number such as 429"
                )
            }
            Error::OutOfRange(input) => write!(
                f,
                "{input} is not an HTTP status code; statuses run from 100 to 599, errors from 400"
            ),
            Error::NotAnErrorStatus(status) => write!(
                f,
                "{status} is not an error status; only 4xx and 5xx statuses have entries"
            ),
        }
    }
}

pub(crate) fn run(args: &Args) -> Result<Report, Error> {
    if args.all {
        return Ok(Report {
            text: table(),
            note: None,
        });
    }
    let input = args.code.as_deref().unwrap_or_default();
    let status = parse_status(input)?;
    let base = novita_catalog::lookup(status).ok_or(Error::NotAnErrorStatus(status))?;
    let (entry, note) = match args.reason.as_deref() {
        None => (base, None),
        Some(reason) => {
            let entry = novita_catalog::lookup_reason(status, reason).unwrap_or(base);
            let note = (entry.reason.is_none()).then(|| {
                format!("reason {reason:?} is not known for {status}; showing the status's entry")
            });
            (entry, note)
        }
    };
    Ok(Report {
        text: explain(status, entry),
        note,
    })
}

fn parse_status(input: &str) -> Result<u16, Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::NotANumber(input.to_owned()));
    }
    match trimmed.parse::<u16>() {
        Ok(status) if (100..600).contains(&status) => Ok(status),
        _ => Err(Error::OutOfRange(trimmed.to_owned())),
    }
}

fn explain(status: u16, entry: &Entry) -> String {
    let mut out = String::new();
    if !matches!(entry.status, Status::Code(_)) {
        let _ = writeln!(
            out,
            "{status} is not documented by Novita; it is handled as {}.\n",
            entry.status
        );
    }
    let _ = writeln!(out, "{entry}");
    let _ = writeln!(out, "Class: {} (retry: {})", entry.class, entry.retry);
    if let Some(limit) = entry.rate_limit {
        let _ = writeln!(out, "Limit hit: {limit}");
    }
    let _ = writeln!(out, "Next steps:");
    for escalation in entry.escalations {
        let _ = writeln!(out, "  - {escalation}");
    }
    let reasons: Vec<&Entry> = ENTRIES
        .iter()
        .filter(|other| other.status == entry.status && other.reason.is_some())
        .collect();
    if entry.reason.is_none() && !reasons.is_empty() {
        let names: Vec<&str> = reasons.iter().filter_map(|other| other.reason).collect();
        let _ = writeln!(
            out,
            "Known reasons: {} (`novita explain {} REASON` for each)",
            names.join(", "),
            entry.status
        );
    }
    out
}

fn table() -> String {
    let mut table = crate::style::table(&["CODE", "REASON", "CLASS", "RETRY", "SUMMARY"]);
    for entry in &ENTRIES {
        table.add_row(vec![
            entry.status.to_string(),
            entry.reason.unwrap_or("-").to_owned(),
            entry.class.name().to_owned(),
            entry.retry.name().to_owned(),
            entry.summary.to_owned(),
        ]);
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(code: &str, reason: Option<&str>) -> Args {
        Args {
            code: Some(code.to_owned()),
            reason: reason.map(str::to_owned),
            all: false,
        }
    }

    #[test]
    fn bad_statuses_are_rejected_with_one_line() {
        let cases = [
            ("abc", Error::NotANumber("abc".into())),
            ("-1", Error::NotANumber("-1".into())),
            ("", Error::NotANumber(String::new())),
            ("4 29", Error::NotANumber("4 29".into())),
            ("99999", Error::OutOfRange("99999".into())),
            ("700", Error::OutOfRange("700".into())),
            ("99", Error::OutOfRange("99".into())),
            ("200", Error::NotAnErrorStatus(200)),
            ("304", Error::NotAnErrorStatus(304)),
        ];
        for (input, expected) in cases {
            let error = run(&args(input, None)).unwrap_err();
            assert_eq!(error, expected, "input {input:?}");
            assert!(!error.to_string().contains('\n'), "{error}");
            assert_eq!(error.exit_code(), exit::USAGE);
        }
    }

    #[test]
    fn explains_meaning_causes_actions_ops_and_reaction() {
        let report = run(&args("503", None)).unwrap();
        for needle in [
            "503 Service Unavailable: ",
            "Likely causes:",
            "What to do:",
            "For platform operators:",
            "Client reaction: retried with capped exponential backoff",
            "Known reasons: SERVICE_NOT_AVAILABLE",
        ] {
            assert!(
                report.text.contains(needle),
                "{needle:?} missing from:\n{}",
                report.text
            );
        }
        assert_eq!(report.note, None);
    }

    #[test]
    fn reasons_refine_the_explanation() {
        let report = run(&args("429", Some("token_limit_exceeded"))).unwrap();
        assert!(
            report.text.contains("(TOKEN_LIMIT_EXCEEDED)"),
            "{}",
            report.text
        );
        assert!(
            report.text.contains("Limit hit: tokens per minute (TPM)"),
            "{}",
            report.text
        );
        assert!(report.text.contains("lower max_tokens"), "{}", report.text);
    }

    #[test]
    fn unknown_reasons_fall_back_with_a_note() {
        let report = run(&args("429", Some("WHATEVER"))).unwrap();
        assert!(
            report.text.starts_with("429 Too Many Requests: "),
            "{}",
            report.text
        );
        assert!(
            report
                .note
                .unwrap()
                .contains("\"WHATEVER\" is not known for 429")
        );
    }

    #[test]
    fn undocumented_statuses_say_so() {
        let report = run(&args("418", None)).unwrap();
        assert!(
            report
                .text
                .starts_with("418 is not documented by Novita; it is handled as 4xx.")
        );
        let report = run(&args("502", None)).unwrap();
        assert!(report.text.contains("handled as 5xx"));
    }

    #[test]
    fn the_table_lists_every_entry() {
        let text = run(&Args {
            code: None,
            reason: None,
            all: true,
        })
        .unwrap()
        .text;
        // Each entry starts a row: its status and reason on one line (the summary may wrap).
        for entry in &ENTRIES {
            let status = format!(
                "│ {:<4} ┆ {}",
                entry.status.to_string(),
                entry.reason.unwrap_or("-")
            );
            assert!(
                text.lines().any(|line| line.starts_with(&status)),
                "no row for {status:?}:\n{text}"
            );
        }
    }
}
