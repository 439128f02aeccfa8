//! `cargo xtask codegen [--check]`: turns the error spec into committed source files.
//!
//! Every output is rendered to a string first, so the spec is fully validated before a
//! single byte is written, and `--check` can compare against what is on disk without
//! touching it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::{fmt, fs, io};

use crate::spec::{self, CLASSES, Codes, RATE_LIMITS, RETRIES, SPEC, Spec};
use crate::{alertmanager, dashboard, derived, ops};

/// The generated catalog data, relative to the workspace root.
pub(crate) const CATALOG: &str = "crates/catalog/src/generated.rs";

/// Whether to write the outputs or only compare them with what is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Write,
    Check,
}

/// Why codegen failed.
#[derive(Debug)]
pub(crate) enum Error {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    Invalid {
        path: PathBuf,
        problems: Vec<spec::Problem>,
    },
    Rustfmt(String),
    Write {
        path: PathBuf,
        source: io::Error,
    },
    Stale {
        paths: Vec<PathBuf>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Invalid { path, problems } => {
                write!(f, "{} is invalid; nothing was written", path.display())?;
                for problem in problems {
                    write!(
                        f,
                        "\n  {}:{}: {}",
                        path.display(),
                        problem.line,
                        problem.message
                    )?;
                }
                Ok(())
            }
            Error::Rustfmt(message) => write!(f, "rustfmt failed on the generated code: {message}"),
            Error::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            Error::Stale { paths } => {
                let names: Vec<String> = paths
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                write!(
                    f,
                    "stale generated file(s): {}; run `cargo xtask codegen` and commit the result",
                    names.join(", ")
                )
            }
        }
    }
}

/// What a successful run did to each output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Unchanged(PathBuf),
    Updated(PathBuf),
}

/// Regenerates (or, with [`Mode::Check`], verifies) every output under `root`.
pub(crate) fn run(root: &Path, mode: Mode) -> Result<Vec<Outcome>, Error> {
    let outputs = render_all(root)?;
    let mut stale = Vec::new();
    let mut outcomes = Vec::new();
    for (relative, contents) in outputs {
        let path = root.join(&relative);
        let on_disk = fs::read_to_string(&path).ok();
        if on_disk.as_deref() == Some(contents.as_str()) {
            outcomes.push(Outcome::Unchanged(relative));
            continue;
        }
        match mode {
            Mode::Check => stale.push(relative),
            Mode::Write => {
                if let Some(folder) = path.parent() {
                    fs::create_dir_all(folder).map_err(|source| Error::Write {
                        path: path.clone(),
                        source,
                    })?;
                }
                fs::write(&path, contents).map_err(|source| Error::Write { path, source })?;
                outcomes.push(Outcome::Updated(relative));
            }
        }
    }
    if stale.is_empty() {
        Ok(outcomes)
    } else {
        Err(Error::Stale { paths: stale })
    }
}

/// Renders every output from the spec under `root`, as (relative path, contents) pairs.
pub(crate) fn render_all(root: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
    let spec_path = root.join(SPEC);
    let text = fs::read_to_string(&spec_path).map_err(|source| Error::Read {
        path: PathBuf::from(SPEC),
        source,
    })?;
    let spec = derived::load(&text).map_err(|problems| Error::Invalid {
        path: PathBuf::from(SPEC),
        problems,
    })?;
    let catalog = rustfmt(&render_catalog(&spec))?;
    Ok(vec![
        (PathBuf::from(CATALOG), catalog),
        (PathBuf::from(ops::ALERTS), ops::render_rules(&spec)),
        (
            PathBuf::from(ops::ALERT_TESTS),
            ops::render_rule_tests(&spec),
        ),
        (PathBuf::from(ops::REFERENCE), ops::render_reference(&spec)),
        (PathBuf::from(ops::RUNBOOK), ops::render_runbook(&spec)),
        (
            PathBuf::from(dashboard::DASHBOARD),
            dashboard::render(&spec),
        ),
        (
            PathBuf::from(alertmanager::ROUTING),
            alertmanager::render(&spec),
        ),
    ])
}

/// The catalog's `generated.rs`, before rustfmt.
fn render_catalog(spec: &Spec) -> String {
    let mut out = String::new();
    let w = &mut out;
    // The marker is spelled with an escape so that this generator is not itself taken for
    // a generated file.
    let _ = writeln!(
        w,
        "// \x40generated by `cargo xtask codegen` from {SPEC}. Do not edit."
    );
    let _ = writeln!(
        w,
        "// Change the spec and run `cargo xtask codegen` instead."
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "//! The catalog's data, generated from the spec.");
    let _ = writeln!(w);
    let _ = writeln!(w, "use crate::{{Class, Entry, RateLimit, Retry, Status}};");
    let _ = writeln!(w);

    render_escalations(w, spec);

    let _ = writeln!(
        w,
        "/// Every catalog entry, ordered by status, each status entry followed by the reasons \
         that refine it."
    );
    let _ = writeln!(w, "pub static ENTRIES: [Entry; {}] = [", spec.entries.len());
    for entry in &spec.entries {
        render_entry(w, spec, entry);
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(w);

    render_status_index(w, spec);
    render_reason_index(w, spec);
    out
}

fn render_escalations(w: &mut String, spec: &Spec) {
    let _ = writeln!(
        w,
        "/// An action that fixes or works around an error, taken by the client or by a human."
    );
    let _ = writeln!(w, "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]");
    let _ = writeln!(
        w,
        "#[cfg_attr(feature = \"serde\", derive(serde::Serialize), serde(rename_all = \"snake_case\"))]"
    );
    let _ = writeln!(w, "#[non_exhaustive]");
    let _ = writeln!(w, "pub enum Escalation {{");
    for escalation in &spec.escalations {
        let _ = writeln!(w, "    /// {}", doc_text(&escalation.advice));
        let _ = writeln!(w, "    {},", camel_case(&escalation.name));
    }
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "impl Escalation {{");
    let _ = writeln!(w, "    /// Every escalation, in spec order.");
    let _ = write!(w, "    pub const ALL: &[Escalation] = &[");
    for escalation in &spec.escalations {
        let _ = write!(w, "Escalation::{}, ", camel_case(&escalation.name));
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(w);
    let _ = writeln!(w, "    /// The snake_case name used in the spec.");
    let _ = writeln!(w, "    #[must_use]");
    let _ = writeln!(w, "    pub const fn name(self) -> &'static str {{");
    let _ = writeln!(w, "        match self {{");
    for escalation in &spec.escalations {
        let _ = writeln!(
            w,
            "            Escalation::{} => {:?},",
            camel_case(&escalation.name),
            escalation.name
        );
    }
    let _ = writeln!(w, "        }}");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w);
    let _ = writeln!(w, "    /// One sentence a human can act on.");
    let _ = writeln!(w, "    #[must_use]");
    let _ = writeln!(w, "    pub const fn advice(self) -> &'static str {{");
    let _ = writeln!(w, "        match self {{");
    for escalation in &spec.escalations {
        let _ = writeln!(
            w,
            "            Escalation::{} => {:?},",
            camel_case(&escalation.name),
            escalation.advice
        );
    }
    let _ = writeln!(w, "        }}");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
}

fn render_entry(w: &mut String, spec: &Spec, entry: &spec::Entry) {
    let status = match entry.codes {
        Codes::Exact(code) => format!("Status::Code({code})"),
        Codes::OtherClientError => "Status::OtherClientError".to_owned(),
        Codes::OtherServerError => "Status::OtherServerError".to_owned(),
    };
    let _ = writeln!(w, "    Entry {{");
    let _ = writeln!(w, "        status: {status},");
    let _ = writeln!(w, "        reason: {:?},", entry.reason);
    let _ = writeln!(w, "        name: {:?},", entry.name);
    let _ = writeln!(w, "        title: {:?},", entry.title);
    let _ = writeln!(
        w,
        "        class: Class::{},",
        variant(CLASSES, entry.class)
    );
    let _ = writeln!(
        w,
        "        retry: Retry::{},",
        variant(RETRIES, entry.retry)
    );
    match entry.rate_limit {
        Some(limit) => {
            let _ = writeln!(
                w,
                "        rate_limit: Some(RateLimit::{}),",
                variant(RATE_LIMITS, limit)
            );
        }
        None => {
            let _ = writeln!(w, "        rate_limit: None,");
        }
    }
    let _ = writeln!(w, "        summary: {:?},", entry.summary);
    let _ = writeln!(w, "        causes: &{:?},", entry.causes);
    let _ = writeln!(w, "        user_actions: &{:?},", entry.user_actions);
    let _ = writeln!(w, "        ops_actions: &{:?},", entry.ops_actions);
    let escalations: Vec<String> = entry
        .escalations
        .iter()
        .map(|&index| format!("Escalation::{}", camel_case(&spec.escalations[index].name)))
        .collect();
    let _ = writeln!(w, "        escalations: &[{}],", escalations.join(", "));
    let _ = writeln!(w, "    }},");
}

fn render_status_index(w: &mut String, spec: &Spec) {
    let _ = writeln!(w, "/// The index in [`ENTRIES`] of the entry for `status`.");
    let _ = writeln!(
        w,
        "#[allow(clippy::match_overlapping_arm, reason = \"documented statuses take precedence over their range\")]"
    );
    let _ = writeln!(
        w,
        "pub(crate) const fn status_index(status: u16) -> Option<usize> {{"
    );
    let _ = writeln!(w, "    match status {{");
    let mut ranges = Vec::new();
    for (index, entry) in spec.entries.iter().enumerate() {
        if entry.reason.is_some() {
            continue;
        }
        match entry.codes {
            Codes::Exact(code) => {
                let _ = writeln!(w, "        {code} => Some({index}),");
            }
            Codes::OtherClientError => ranges.push(format!("        400..=499 => Some({index}),")),
            Codes::OtherServerError => ranges.push(format!("        500..=599 => Some({index}),")),
        }
    }
    for range in ranges {
        let _ = writeln!(w, "{range}");
    }
    let _ = writeln!(w, "        _ => None,");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
}

fn render_reason_index(w: &mut String, spec: &Spec) {
    let _ = writeln!(
        w,
        "/// The index in [`ENTRIES`] of the reason entry refining the status entry at \
         `status_index`, compared without regard to ASCII case."
    );
    let _ = writeln!(
        w,
        "pub(crate) fn reason_index(status_index: usize, reason: &str) -> Option<usize> {{"
    );
    let _ = writeln!(w, "    match status_index {{");
    let mut parent = None;
    let mut arms: Vec<(usize, Vec<(String, usize)>)> = Vec::new();
    for (index, entry) in spec.entries.iter().enumerate() {
        match &entry.reason {
            None => parent = Some(index),
            Some(reason) => {
                let parent = parent.expect("a reason entry always follows its status entry");
                match arms.last_mut() {
                    Some((last, reasons)) if *last == parent => {
                        reasons.push((reason.clone(), index));
                    }
                    _ => arms.push((parent, vec![(reason.clone(), index)])),
                }
            }
        }
    }
    for (parent, reasons) in arms {
        let _ = writeln!(w, "        {parent} => {{");
        for (reason, index) in reasons {
            let _ = writeln!(
                w,
                "            if reason.eq_ignore_ascii_case({reason:?}) {{ return Some({index}); }}"
            );
        }
        let _ = writeln!(w, "            None");
        let _ = writeln!(w, "        }}");
    }
    let _ = writeln!(w, "        _ => None,");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
}

/// Text for a doc comment: bare URLs become autolinks so rustdoc renders them as links.
fn doc_text(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let url_end = word.trim_end_matches(['.', ',', ';', ')']).len();
            if word.starts_with("https://") {
                format!("<{}>{}", &word[..url_end], &word[url_end..])
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn variant(table: &[(&str, &'static str)], name: &str) -> &'static str {
    table
        .iter()
        .find(|(spec_name, _)| *spec_name == name)
        .map(|(_, variant)| *variant)
        .expect("validated names are in the table")
}

fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Formats generated source with the toolchain's rustfmt, so the output is stable and
/// passes `cargo fmt --check`.
fn rustfmt(source: &str) -> Result<String, Error> {
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(rustfmt)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| Error::Rustfmt(format!("cannot start rustfmt: {error}")))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(source.as_bytes())
        .map_err(|error| Error::Rustfmt(error.to_string()))?;
    let output = child
        .wait_with_output()
        .map_err(|error| Error::Rustfmt(error.to_string()))?;
    if !output.status.success() {
        return Err(Error::Rustfmt(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    String::from_utf8(output.stdout).map_err(|error| Error::Rustfmt(error.to_string()))
}
