//! Reading and validating `crates/catalog/errors.toml`.
//!
//! Parsing keeps the byte span of every table and field, so each problem is reported with
//! the line it is on and the entry it belongs to. Validation collects every problem before
//! failing, so one run shows them all.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

/// The spec, relative to the workspace root.
pub(crate) const SPEC: &str = "crates/catalog/errors.toml";

/// The classes a spec entry may name, in the order the catalog's `Class` declares them.
pub(crate) const CLASSES: &[(&str, &str)] = &[
    ("client_fault", "ClientFault"),
    ("auth", "Auth"),
    ("permission", "Permission"),
    ("throttled", "Throttled"),
    ("transient", "Transient"),
    ("server_fault", "ServerFault"),
    ("unknown", "Unknown"),
];

/// The reactions a spec entry may name, as the catalog's `Retry` declares them.
pub(crate) const RETRIES: &[(&str, &str)] = &[
    ("never", "Never"),
    ("after_server_hint", "AfterServerHint"),
    ("backoff", "Backoff"),
    ("limited", "Limited"),
];

/// The rate limits a 429 reason may name, as the catalog's `RateLimit` declares them.
pub(crate) const RATE_LIMITS: &[(&str, &str)] =
    &[("rpm", "RequestsPerMinute"), ("tpm", "TokensPerMinute")];

/// One problem in the spec, located by line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Which statuses a validated entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Codes {
    Exact(u16),
    OtherClientError,
    OtherServerError,
}

/// A validated escalation of the fixed vocabulary.
#[derive(Debug)]
pub(crate) struct Escalation {
    pub(crate) name: String,
    pub(crate) advice: String,
}

/// A validated entry: a status entry, or a reason entry with its status's fields filled in.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) codes: Codes,
    pub(crate) reason: Option<String>,
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) class: &'static str,
    pub(crate) retry: &'static str,
    pub(crate) rate_limit: Option<&'static str>,
    pub(crate) summary: String,
    pub(crate) causes: Vec<String>,
    pub(crate) user_actions: Vec<String>,
    pub(crate) ops_actions: Vec<String>,
    /// Indexes into the escalation vocabulary.
    pub(crate) escalations: Vec<usize>,
}

/// A validated alerting rule with its unit tests: written in the spec as an `[[alert]]`,
/// or derived from its `[ops.tpm]` and `[slo]` sections (see `derived`).
#[derive(Debug)]
pub(crate) struct Alert {
    pub(crate) name: String,
    pub(crate) severity: &'static str,
    pub(crate) for_: String,
    pub(crate) expr: String,
    pub(crate) summary: String,
    /// What the alert means, for the runbook, when the summary does not say it all.
    pub(crate) about: Option<String>,
    /// The ops actions of the runbook entries, in order, without repeats.
    pub(crate) runbook: Vec<String>,
    pub(crate) tests: Vec<AlertTest>,
}

/// A Prometheus recording rule derived from the spec.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) expr: String,
    /// Labels the rule adds to its result.
    pub(crate) labels: Vec<(String, String)>,
}

/// The `[ops]` section: what every generated alert carries.
#[derive(Debug)]
pub(crate) struct Ops {
    /// The `team` label of every alert.
    pub(crate) team: String,
    /// Where `docs/runbook.md` is published; an alert's `runbook_url` adds its anchor.
    pub(crate) runbook_url: String,
    pub(crate) tpm: Tpm,
}

/// The `[ops.tpm]` section: the TPM headroom alert.
#[derive(Debug)]
pub(crate) struct Tpm {
    /// Fire below this share of the limit left, in percent (1 to 99).
    pub(crate) headroom_percent: u64,
    pub(crate) for_: String,
    /// The account's tokens-per-minute limit per model, in spec order.
    pub(crate) limits: Vec<(String, u64)>,
    pub(crate) runbook: Vec<String>,
}

/// The `[slo]` section: the availability objective of calls.
#[derive(Debug)]
pub(crate) struct Slo {
    /// The share of calls that must succeed, such as 0.995.
    pub(crate) availability: f64,
    /// Whether the slow-burn ticket alerts are generated beside the page alerts.
    pub(crate) tickets: bool,
    pub(crate) runbook: Vec<String>,
}

/// One promtool unit test of an alert.
#[derive(Debug)]
pub(crate) struct AlertTest {
    pub(crate) description: String,
    pub(crate) series: Vec<(String, String)>,
    pub(crate) eval_time: String,
    pub(crate) fires: Vec<BTreeMap<String, String>>,
}

/// The severities an alert may carry.
const SEVERITIES: &[(&str, &str)] = &[
    ("info", "info"),
    ("warning", "warning"),
    ("critical", "critical"),
];

/// A validated spec: entries ordered by status, each status entry followed by its reasons.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) escalations: Vec<Escalation>,
    pub(crate) entries: Vec<Entry>,
    /// The spec's `[[alert]]`s, then the derived ones once `derived::extend` added them.
    pub(crate) alerts: Vec<Alert>,
    /// The recording rules the derived alerts read (see `derived::extend`).
    pub(crate) records: Vec<Record>,
    pub(crate) ops: Ops,
    pub(crate) slo: Slo,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    ops: Spanned<RawOps>,
    slo: Spanned<RawSlo>,
    #[serde(default)]
    escalation: Vec<Spanned<RawEscalation>>,
    #[serde(default)]
    entry: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    alert: Vec<Spanned<RawAlert>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOps {
    team: Spanned<String>,
    runbook_url: Spanned<String>,
    tpm: Spanned<RawTpm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTpm {
    headroom_percent: Spanned<i64>,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    runbook: Spanned<Vec<Spanned<String>>>,
    limits: Spanned<BTreeMap<String, Spanned<i64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    availability: Spanned<f64>,
    tickets: bool,
    runbook: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    name: Spanned<String>,
    severity: Spanned<String>,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    expr: Spanned<String>,
    summary: Spanned<String>,
    runbook: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    test: Vec<Spanned<RawAlertTest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    description: Spanned<String>,
    series: Vec<RawSeries>,
    eval_time: Spanned<String>,
    fires: Vec<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    name: Spanned<String>,
    advice: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    code: Spanned<toml::Value>,
    name: Spanned<String>,
    title: Spanned<String>,
    class: Spanned<String>,
    retry: Spanned<String>,
    summary: Spanned<String>,
    causes: Spanned<Vec<String>>,
    user_actions: Spanned<Vec<String>>,
    ops_actions: Spanned<Vec<String>>,
    escalations: Spanned<Vec<Spanned<String>>>,
    rate_limit: Option<Spanned<String>>,
    #[serde(default)]
    reason: Vec<Spanned<RawReason>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReason {
    reason: Spanned<String>,
    name: Spanned<String>,
    summary: Spanned<String>,
    title: Option<Spanned<String>>,
    class: Option<Spanned<String>>,
    retry: Option<Spanned<String>>,
    rate_limit: Option<Spanned<String>>,
    causes: Option<Spanned<Vec<String>>>,
    user_actions: Option<Spanned<Vec<String>>>,
    ops_actions: Option<Spanned<Vec<String>>>,
    escalations: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Parses and validates the spec text, without the derived alerts (`derived::load` adds
/// them); on failure returns every problem found.
pub(crate) fn parse(text: &str) -> Result<Spec, Vec<Problem>> {
    let lines = LineIndex::new(text);
    let raw: RawSpec = toml::from_str(text).map_err(|error| {
        let line = error.span().map_or(1, |span| lines.line(span.start));
        vec![Problem {
            line,
            message: format!("malformed spec: {}", error.message().trim()),
        }]
    })?;
    let mut validator = Validator {
        lines,
        problems: Vec::new(),
    };
    let spec = validator.spec(raw);
    if validator.problems.is_empty() {
        Ok(spec)
    } else {
        validator.problems.sort_by_key(|problem| problem.line);
        Err(validator.problems)
    }
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

struct Validator {
    lines: LineIndex,
    problems: Vec<Problem>,
}

impl Validator {
    fn report<T>(&mut self, at: &Spanned<T>, message: String) {
        let line = self.lines.line(at.span().start);
        self.problems.push(Problem { line, message });
    }

    fn spec(&mut self, raw: RawSpec) -> Spec {
        let escalations = self.escalations(raw.escalation);
        let vocabulary: BTreeMap<&str, usize> = escalations
            .iter()
            .enumerate()
            .map(|(index, escalation)| (escalation.name.as_str(), index))
            .collect();

        let mut entries: Vec<(Codes, Vec<Entry>)> = Vec::new();
        let mut codes_seen: BTreeMap<Codes, usize> = BTreeMap::new();
        let mut names_seen: BTreeMap<String, usize> = BTreeMap::new();
        for raw_entry in raw.entry {
            let raw_entry = raw_entry.into_inner();
            let line = self.lines.line(raw_entry.code.span().start);
            let label = format!(
                "entry {} ({})",
                describe_code(raw_entry.code.get_ref()),
                raw_entry.name.get_ref()
            );
            let Some(group) = self.entry(&label, raw_entry, &vocabulary, &mut names_seen) else {
                continue;
            };
            let codes = group[0].codes;
            if let Some(first) = codes_seen.insert(codes, line) {
                self.problems.push(Problem {
                    line,
                    message: format!("{label}: duplicate code, already defined on line {first}"),
                });
                continue;
            }
            entries.push((codes, group));
        }

        for (codes, what) in [
            (Codes::OtherClientError, "\"4xx\""),
            (Codes::OtherServerError, "\"5xx\""),
        ] {
            if !codes_seen.contains_key(&codes) {
                self.problems.push(Problem {
                    line: 1,
                    message: format!(
                        "no entry with code = {what}: undocumented statuses need an entry"
                    ),
                });
            }
        }

        entries.sort_by_key(|(codes, _)| *codes);
        let entries: Vec<Entry> = entries.into_iter().flat_map(|(_, group)| group).collect();
        let alerts = self.alerts(raw.alert, &entries, &names_seen);
        let ops = self.ops(raw.ops, &entries, &names_seen);
        let slo = self.slo(raw.slo, &entries, &names_seen);
        Spec {
            escalations,
            entries,
            alerts,
            records: Vec::new(),
            ops,
            slo,
        }
    }

    /// Validates `[ops]`, its `[ops.tpm]` and their runbooks.
    fn ops(
        &mut self,
        raw: Spanned<RawOps>,
        entries: &[Entry],
        names_seen: &BTreeMap<String, usize>,
    ) -> Ops {
        let raw = raw.into_inner();
        self.one_line_text("[ops]", "team", &raw.team);
        let team = raw.team.get_ref();
        if !team
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            self.report(
                &raw.team,
                format!("[ops]: team {team:?} must be lower case letters, digits, - and _"),
            );
        }
        let url = raw.runbook_url.get_ref();
        if !url.starts_with("https://") || url.contains(['#', ' ', '"']) {
            self.report(
                &raw.runbook_url,
                format!("[ops]: runbook_url must be an https URL without a fragment, not {url:?}"),
            );
        }
        let tpm = raw.tpm.into_inner();
        let label = "[ops.tpm]";
        let percent = *tpm.headroom_percent.get_ref();
        if !(1..=99).contains(&percent) {
            self.report(
                &tpm.headroom_percent,
                format!("{label}: headroom_percent must be from 1 to 99, not {percent}"),
            );
        }
        self.duration(label, &tpm.for_);
        if tpm.limits.get_ref().is_empty() {
            self.report(
                &tpm.limits,
                format!("{label}: limits needs at least one model"),
            );
        }
        let mut limits = Vec::new();
        for (model, limit) in tpm.limits.get_ref() {
            let value = *limit.get_ref();
            if model.trim().is_empty() || model.contains(['"', '\\', '\n']) {
                self.report(
                    limit,
                    format!("{label}: model name {model:?} cannot be a label"),
                );
            }
            match u64::try_from(value) {
                Ok(tokens) if tokens > 0 => limits.push((model.clone(), tokens)),
                _ => self.report(
                    limit,
                    format!("{label}: the limit of {model:?} must be a positive number of tokens per minute, not {value}"),
                ),
            }
        }
        let runbook = self.runbook(label, &tpm.runbook, entries, names_seen);
        Ops {
            team: raw.team.into_inner(),
            runbook_url: raw.runbook_url.into_inner(),
            tpm: Tpm {
                headroom_percent: u64::try_from(percent.clamp(1, 99)).unwrap_or(1),
                for_: tpm.for_.into_inner(),
                limits,
                runbook,
            },
        }
    }

    /// Validates `[slo]` and its runbook.
    fn slo(
        &mut self,
        raw: Spanned<RawSlo>,
        entries: &[Entry],
        names_seen: &BTreeMap<String, usize>,
    ) -> Slo {
        let raw = raw.into_inner();
        let availability = *raw.availability.get_ref();
        // Below 0.97, 14.4 times the error budget is over 40 % failures: the page alerts
        // would wait for an outage and their unit tests could not show a burn.
        if !(0.97..1.0).contains(&availability) {
            self.report(
                &raw.availability,
                format!(
                    "[slo]: availability must be at least 0.97 and below 1, not {availability}"
                ),
            );
        }
        let runbook = self.runbook("[slo]", &raw.runbook, entries, names_seen);
        Slo {
            availability,
            tickets: raw.tickets,
            runbook,
        }
    }

    /// The ops actions of the entries a runbook names, in order, without repeats; reports
    /// unknown entries and entries without ops actions.
    fn runbook(
        &mut self,
        label: &str,
        names: &Spanned<Vec<Spanned<String>>>,
        entries: &[Entry],
        names_seen: &BTreeMap<String, usize>,
    ) -> Vec<String> {
        let mut runbook: Vec<String> = Vec::new();
        if names.get_ref().is_empty() {
            self.report(names, format!("{label}: runbook needs at least one entry"));
        }
        for entry_name in names.get_ref() {
            match entries
                .iter()
                .find(|entry| &entry.name == entry_name.get_ref())
            {
                Some(entry) if entry.ops_actions.is_empty() => self.report(
                    entry_name,
                    format!(
                        "{label}: entry {:?} has no ops_actions for a runbook",
                        entry_name.get_ref()
                    ),
                ),
                Some(entry) => {
                    for action in &entry.ops_actions {
                        if !runbook.contains(action) {
                            runbook.push(action.clone());
                        }
                    }
                }
                None if names_seen.contains_key(entry_name.get_ref()) => {}
                None => self.report(
                    entry_name,
                    format!(
                        "{label}: runbook names unknown entry {:?}",
                        entry_name.get_ref()
                    ),
                ),
            }
        }
        runbook
    }

    /// Checks a Prometheus `for` duration: digits then `s`, `m` or `h`.
    fn duration(&mut self, label: &str, value: &Spanned<String>) {
        if duration_minutes(value.get_ref()).is_none() {
            self.report(
                value,
                format!(
                    "{label}: for must be a duration such as \"5m\", not {:?}",
                    value.get_ref()
                ),
            );
        }
    }

    /// Validates the alerts; `names_seen` holds every entry name, valid or not, so that an
    /// invalid entry (already reported) does not also fail the alerts that point to it.
    fn alerts(
        &mut self,
        raw: Vec<Spanned<RawAlert>>,
        entries: &[Entry],
        names_seen: &BTreeMap<String, usize>,
    ) -> Vec<Alert> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut alerts = Vec::new();
        for item in raw {
            let line = self.lines.line(item.span().start);
            let item = item.into_inner();
            let name = item.name.get_ref().clone();
            let label = format!("alert {name:?}");
            let camel = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric());
            if !camel {
                self.report(&item.name, format!("{label}: name must be CamelCase"));
            }
            if let Some(first) = seen.insert(name.clone(), line) {
                self.report(
                    &item.name,
                    format!("{label}: duplicate name, already defined on line {first}"),
                );
            }
            let severity = self.choice(&label, "severity", &item.severity, SEVERITIES);
            self.duration(&label, &item.for_);
            if item.expr.get_ref().trim().is_empty() {
                self.report(&item.expr, format!("{label}: expr is empty"));
            }
            self.one_line_text(&label, "summary", &item.summary);
            let placeholders = placeholders(item.summary.get_ref());
            let runbook = self.runbook(&label, &item.runbook, entries, names_seen);
            let mut tests = Vec::new();
            let (mut fires, mut quiet) = (false, false);
            for test in item.test {
                let test = test.into_inner();
                for expected in &test.fires {
                    for placeholder in &placeholders {
                        if !expected.contains_key(placeholder) {
                            self.report(
                                &test.eval_time,
                                format!("{label}: a test's `fires` lacks the label {placeholder:?} the summary uses"),
                            );
                        }
                    }
                }
                if test.series.is_empty() {
                    self.report(
                        &test.description,
                        format!("{label}: a test needs input series"),
                    );
                }
                fires |= !test.fires.is_empty();
                quiet |= test.fires.is_empty();
                tests.push(AlertTest {
                    description: test.description.into_inner(),
                    series: test
                        .series
                        .into_iter()
                        .map(|series| (series.series, series.values))
                        .collect(),
                    eval_time: test.eval_time.into_inner(),
                    fires: test.fires,
                });
            }
            if !(fires && quiet) {
                self.report(
                    &item.name,
                    format!("{label}: needs a test that fires and a test that stays quiet"),
                );
            }
            alerts.push(Alert {
                name,
                severity: severity.unwrap_or("warning"),
                for_: item.for_.into_inner(),
                expr: item.expr.into_inner().trim().to_owned(),
                summary: item.summary.into_inner(),
                about: None,
                runbook,
                tests,
            });
        }
        alerts
    }

    fn escalations(&mut self, raw: Vec<Spanned<RawEscalation>>) -> Vec<Escalation> {
        if raw.is_empty() {
            self.problems.push(Problem {
                line: 1,
                message: "no [[escalation]] vocabulary: entries need actions to point to".into(),
            });
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut escalations = Vec::new();
        for item in raw {
            let line = self.lines.line(item.span().start);
            let item = item.into_inner();
            let name = item.name.get_ref().clone();
            let label = format!("escalation {name:?}");
            self.identifier(&label, &item.name);
            self.one_line_text(&label, "advice", &item.advice);
            if let Some(first) = seen.insert(name.clone(), line) {
                self.report(
                    &item.name,
                    format!("{label}: duplicate name, already defined on line {first}"),
                );
                continue;
            }
            escalations.push(Escalation {
                name,
                advice: item.advice.into_inner(),
            });
        }
        escalations
    }

    /// Validates one `[[entry]]` and its reasons; `None` when the code itself is unusable.
    fn entry(
        &mut self,
        label: &str,
        raw: RawEntry,
        vocabulary: &BTreeMap<&str, usize>,
        names_seen: &mut BTreeMap<String, usize>,
    ) -> Option<Vec<Entry>> {
        let codes = self.codes(label, &raw.code);
        self.unique_name(label, &raw.name, names_seen);
        self.one_line_text(label, "title", &raw.title);
        self.one_line_text(label, "summary", &raw.summary);
        self.list(label, "causes", &raw.causes, Required::NonEmpty);
        self.list(label, "user_actions", &raw.user_actions, Required::NonEmpty);
        self.list(label, "ops_actions", &raw.ops_actions, Required::MayBeEmpty);
        let class = self.choice(label, "class", &raw.class, CLASSES);
        let retry = self.choice(label, "retry", &raw.retry, RETRIES);
        let rate_limit = raw.rate_limit.as_ref().and_then(|value| {
            if let Some(class) = class {
                self.rate_limit_fits_class(label, value, class);
            }
            self.choice(label, "rate_limit", value, RATE_LIMITS)
        });
        let escalations = self.escalation_list(label, &raw.escalations, vocabulary);

        let parent = Entry {
            codes: codes?,
            reason: None,
            name: raw.name.into_inner(),
            title: raw.title.into_inner(),
            class: class?,
            retry: retry?,
            rate_limit,
            summary: raw.summary.into_inner(),
            causes: raw.causes.into_inner(),
            user_actions: raw.user_actions.into_inner(),
            ops_actions: raw.ops_actions.into_inner(),
            escalations: escalations?,
        };

        let mut group = vec![parent.clone()];
        let mut reasons_seen: BTreeMap<String, usize> = BTreeMap::new();
        for raw_reason in raw.reason {
            let raw_reason = raw_reason.into_inner();
            let line = self.lines.line(raw_reason.reason.span().start);
            let reason_label = format!("{label} reason {:?}", raw_reason.reason.get_ref());
            if let Some(reason) =
                self.reason(&reason_label, &parent, raw_reason, vocabulary, names_seen)
            {
                let key = reason
                    .reason
                    .clone()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                if let Some(first) = reasons_seen.insert(key, line) {
                    self.problems.push(Problem {
                        line,
                        message: format!(
                            "{reason_label}: duplicate reason, already defined on line {first}"
                        ),
                    });
                    continue;
                }
                group.push(reason);
            }
        }
        Some(group)
    }

    fn reason(
        &mut self,
        label: &str,
        parent: &Entry,
        raw: RawReason,
        vocabulary: &BTreeMap<&str, usize>,
        names_seen: &mut BTreeMap<String, usize>,
    ) -> Option<Entry> {
        let reason = raw.reason.get_ref();
        if reason.is_empty()
            || !reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            self.report(
                &raw.reason,
                format!("{label}: reason must be UPPER_SNAKE_CASE, as Novita sends it"),
            );
        }
        self.unique_name(label, &raw.name, names_seen);
        self.one_line_text(label, "summary", &raw.summary);
        let mut entry = parent.clone();
        entry.reason = Some(raw.reason.into_inner());
        entry.name = raw.name.into_inner();
        entry.summary = raw.summary.into_inner();
        if let Some(title) = raw.title {
            self.one_line_text(label, "title", &title);
            entry.title = title.into_inner();
        }
        if let Some(class) = raw.class {
            entry.class = self.choice(label, "class", &class, CLASSES)?;
        }
        if let Some(retry) = raw.retry {
            entry.retry = self.choice(label, "retry", &retry, RETRIES)?;
        }
        if let Some(rate_limit) = raw.rate_limit {
            entry.rate_limit = Some(self.choice(label, "rate_limit", &rate_limit, RATE_LIMITS)?);
            self.rate_limit_fits_class(label, &rate_limit, entry.class);
        }
        for (field, value, slot, required) in [
            ("causes", raw.causes, &mut entry.causes, Required::NonEmpty),
            (
                "user_actions",
                raw.user_actions,
                &mut entry.user_actions,
                Required::NonEmpty,
            ),
            (
                "ops_actions",
                raw.ops_actions,
                &mut entry.ops_actions,
                Required::MayBeEmpty,
            ),
        ] {
            if let Some(value) = value {
                self.list(label, field, &value, required);
                *slot = value.into_inner();
            }
        }
        if let Some(escalations) = raw.escalations {
            entry.escalations = self.escalation_list(label, &escalations, vocabulary)?;
        }
        Some(entry)
    }

    fn codes(&mut self, label: &str, code: &Spanned<toml::Value>) -> Option<Codes> {
        let codes = match code.get_ref() {
            toml::Value::Integer(status) if (400..600).contains(status) => {
                u16::try_from(*status).ok().map(Codes::Exact)
            }
            toml::Value::String(range) if range == "4xx" => Some(Codes::OtherClientError),
            toml::Value::String(range) if range == "5xx" => Some(Codes::OtherServerError),
            _ => None,
        };
        if codes.is_none() {
            self.report(
                code,
                format!(
                    "{label}: code must be an error status from 400 to 599, or \"4xx\" / \"5xx\""
                ),
            );
        }
        codes
    }

    fn rate_limit_fits_class(&mut self, label: &str, rate_limit: &Spanned<String>, class: &str) {
        if class != "throttled" {
            self.report(
                rate_limit,
                format!("{label}: rate_limit only applies to throttled entries, not {class}"),
            );
        }
    }

    fn unique_name(
        &mut self,
        label: &str,
        name: &Spanned<String>,
        names_seen: &mut BTreeMap<String, usize>,
    ) {
        self.identifier(label, name);
        let line = self.lines.line(name.span().start);
        if let Some(first) = names_seen.insert(name.get_ref().clone(), line) {
            self.report(
                name,
                format!("{label}: duplicate name, already used on line {first}"),
            );
        }
    }

    fn identifier(&mut self, label: &str, name: &Spanned<String>) {
        let text = name.get_ref();
        let valid = text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !text.ends_with('_')
            && !text.contains("__");
        if !valid {
            self.report(name, format!("{label}: name {text:?} must be snake_case"));
        }
    }

    fn one_line_text(&mut self, label: &str, field: &str, value: &Spanned<String>) {
        let text = value.get_ref();
        if text.trim().is_empty() {
            self.report(value, format!("{label}: {field} is empty"));
        } else if text.contains('\n') {
            self.report(value, format!("{label}: {field} must be one line"));
        }
    }

    fn list(&mut self, label: &str, field: &str, value: &Spanned<Vec<String>>, required: Required) {
        if required == Required::NonEmpty && value.get_ref().is_empty() {
            self.report(value, format!("{label}: {field} needs at least one item"));
        }
        if value.get_ref().iter().any(|item| item.trim().is_empty()) {
            self.report(value, format!("{label}: {field} has an empty item"));
        }
    }

    fn choice(
        &mut self,
        label: &str,
        field: &str,
        value: &Spanned<String>,
        allowed: &[(&'static str, &'static str)],
    ) -> Option<&'static str> {
        let found = allowed
            .iter()
            .find(|(name, _)| name == value.get_ref())
            .map(|(name, _)| *name);
        if found.is_none() {
            let expected: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            self.report(
                value,
                format!(
                    "{label}: unknown {field} {:?} (expected one of: {})",
                    value.get_ref(),
                    expected.join(", ")
                ),
            );
        }
        found
    }

    fn escalation_list(
        &mut self,
        label: &str,
        value: &Spanned<Vec<Spanned<String>>>,
        vocabulary: &BTreeMap<&str, usize>,
    ) -> Option<Vec<usize>> {
        if value.get_ref().is_empty() {
            self.report(
                value,
                format!("{label}: escalations needs at least one item"),
            );
            return None;
        }
        let mut indexes = Vec::new();
        let mut valid = true;
        for name in value.get_ref() {
            match vocabulary.get(name.get_ref().as_str()) {
                Some(index) if indexes.contains(index) => {
                    self.report(
                        name,
                        format!("{label}: escalation {:?} listed twice", name.get_ref()),
                    );
                    valid = false;
                }
                Some(index) => indexes.push(*index),
                None => {
                    self.report(
                        name,
                        format!(
                            "{label}: unknown escalation {:?} (not in the [[escalation]] vocabulary)",
                            name.get_ref()
                        ),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(indexes)
    }
}

/// A Prometheus duration of digits and one unit, `s`, `m`, `h` or `d`, in whole minutes
/// rounded up; `None` when it is not one.
pub(crate) fn duration_minutes(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    match unit {
        "s" => Some(value.div_ceil(60)),
        "m" => Some(value),
        "h" => value.checked_mul(60),
        "d" => value.checked_mul(24 * 60),
        _ => None,
    }
}

/// The label names a summary template uses: `{{ $labels.NAME }}`.
pub(crate) fn placeholders(template: &str) -> Vec<String> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .filter_map(|(inside, _)| inside.trim().strip_prefix("$labels."))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    NonEmpty,
    MayBeEmpty,
}

fn describe_code(code: &toml::Value) -> String {
    match code {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
