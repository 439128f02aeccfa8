//! Tests of the operations outputs as a whole: every query names a metric the code emits,
//! every alert links its runbook section and is routed to its team's receiver for its
//! severity, and the external checkers (promtool, amtool) accept the files when installed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::alertmanager::{self, ROUTING, UNROUTED};
use crate::dashboard::DASHBOARD;
use crate::derived;
use crate::ops::{ALERT_TESTS, ALERTS, RUNBOOK, anchor};
use crate::promql::{self, Kind};
use crate::spec::{SPEC, Spec};
use crate::workspace_root;

const METRICS_RS: &str = "crates/core/src/metrics.rs";
const METRICS_MD: &str = "crates/core/METRICS.md";

fn read(relative: &str) -> String {
    fs::read_to_string(workspace_root().join(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

fn spec() -> Spec {
    derived::load(&read(SPEC)).unwrap_or_else(|problems| panic!("{SPEC}: {problems:?}"))
}

fn emitted() -> BTreeMap<String, Kind> {
    promql::emitted(&read(METRICS_RS)).unwrap_or_else(|problem| panic!("{METRICS_RS}: {problem}"))
}

/// Whether `tool` runs here; a note on stderr when it does not, so a skipped check shows.
fn installed(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed: its check is skipped");
    }
    found
}

#[test]
fn metrics_md_documents_exactly_the_emitted_metrics() {
    let emitted: BTreeSet<String> = emitted().into_keys().collect();
    let documented: BTreeSet<String> = promql::documented(&read(METRICS_MD)).into_iter().collect();
    let undocumented: Vec<&String> = emitted.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "{METRICS_RS} emits {undocumented:?}, which the table of {METRICS_MD} does not list"
    );
    let phantom: Vec<&String> = documented.difference(&emitted).collect();
    assert!(
        phantom.is_empty(),
        "{METRICS_MD} lists {phantom:?}, which {METRICS_RS} has no name constant for"
    );
}

#[test]
fn every_query_names_only_emitted_metrics_or_recording_rules() {
    let spec = spec();
    let emitted = emitted();
    let mut recorded: Vec<String> = spec
        .records
        .iter()
        .map(|record| record.name.clone())
        .collect();
    recorded.dedup();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut check = |place: String, expr: &str| {
        checked += 1;
        if let Err(problem) = promql::check(&place, expr, &emitted, &recorded) {
            problems.push(problem);
        }
    };
    for alert in &spec.alerts {
        check(format!("{ALERTS}: alert {}", alert.name), &alert.expr);
    }
    for record in &spec.records {
        check(
            format!("{ALERTS}: recording rule {}", record.name),
            &record.expr,
        );
    }
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a target's expr");
            check(format!("{DASHBOARD}: panel {title:?}"), expr);
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["definition"].as_str() {
            let metric = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split_once(','))
                .map(|(metric, _)| metric.trim())
                .unwrap_or_else(|| panic!("{DASHBOARD}: unexpected variable query {query:?}"));
            check(format!("{DASHBOARD}: variable query {query:?}"), metric);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 30, "only {checked} expressions were checked");
}

/// Every alert, recording rule and dashboard expression, each with where it is.
fn every_expression(spec: &Spec) -> Vec<(String, String)> {
    let mut exprs: Vec<(String, String)> = spec
        .alerts
        .iter()
        .map(|alert| (format!("alert {}", alert.name), alert.expr.clone()))
        .chain(spec.records.iter().map(|record| {
            (
                format!("recording rule {}", record.name),
                record.expr.clone(),
            )
        }))
        .collect();
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a target's expr");
            exprs.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    exprs
}

#[test]
fn the_breaker_is_read_by_its_state_label_and_the_gauges_per_client() {
    // `novita_breaker_state` is 1 on the series of the current state: a selector without
    // `state` would mix the three series (the old 0/1/2 encoding). The gauges hold one
    // client's state each, so an aggregation over them keeps `client`.
    let spec = spec();
    let mut read_breaker = 0;
    for (place, expr) in every_expression(&spec) {
        for (at, _) in expr.match_indices("novita_breaker_state") {
            read_breaker += 1;
            let selector = expr[at..]
                .split_once('}')
                .map_or("", |(selector, _)| selector);
            assert!(
                expr[at + "novita_breaker_state".len()..].starts_with('{')
                    && (selector.contains("state=\"open\"")
                        || selector.contains("state=\"half_open\"")
                        || selector.contains("state=\"closed\"")),
                "{place} reads novita_breaker_state without selecting a state: {expr}"
            );
        }
        for gauge in [
            "novita_breaker_state",
            "novita_retry_budget_tokens",
            "novita_pacing_interval_seconds",
        ] {
            if expr.contains(gauge) {
                assert!(
                    expr.contains("by (client,"),
                    "{place} aggregates {gauge} without keeping client: {expr}"
                );
            }
        }
    }
    assert!(
        read_breaker >= 2,
        "the alert and the dashboard read the breaker"
    );
}

#[test]
fn every_alert_links_its_runbook_section() {
    let spec = spec();
    let rules = read(ALERTS);
    let runbook = read(RUNBOOK);
    let headings: Vec<&str> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .collect();
    for alert in &spec.alerts {
        let url = format!("{}#{}", spec.ops.runbook_url, anchor(alert));
        assert!(
            rules.contains(&format!("runbook_url: \"{url}\"")),
            "{} has no runbook_url {url}",
            alert.name
        );
        assert!(
            headings.contains(&alert.name.as_str()),
            "{RUNBOOK} has no section `## {}`",
            alert.name
        );
        assert!(!alert.runbook.is_empty(), "{} has no actions", alert.name);
    }
    let alerts = rules.matches("\n      - alert: ").count();
    let links = rules.matches("\n          runbook_url: ").count();
    assert_eq!(alerts, links, "every alert rule carries a runbook_url");
    assert_eq!(alerts, spec.alerts.len());
}

#[test]
fn the_slo_and_tpm_alerts_are_derived_with_tests_that_fire_and_stay_quiet() {
    let spec = spec();
    let tests = read(ALERT_TESTS);
    for name in [
        "NovitaTpmHeadroomLow",
        "NovitaErrorBudgetFastBurn",
        "NovitaModelErrorBudgetFastBurn",
        "NovitaErrorBudgetSlowBurn",
        "NovitaModelErrorBudgetSlowBurn",
    ] {
        let alert = spec
            .alerts
            .iter()
            .find(|alert| alert.name == name)
            .unwrap_or_else(|| panic!("no alert {name}"));
        assert!(
            alert.tests.iter().any(|test| !test.fires.is_empty()),
            "{name}"
        );
        assert!(
            alert.tests.iter().any(|test| test.fires.is_empty()),
            "{name}"
        );
        assert!(tests.contains(&format!("alertname: {name}\n")), "{name}");
    }
    let fast = spec
        .alerts
        .iter()
        .find(|alert| alert.name == "NovitaErrorBudgetFastBurn")
        .unwrap();
    let budget = format!("(1 - {})", spec.slo.availability);
    for (long, short, factor) in [("1h", "5m", "14.4"), ("6h", "30m", "6")] {
        for window in [long, short] {
            let condition =
                format!("novita:calls_error_ratio:rate{window} > ({factor} * {budget})");
            assert!(
                fast.expr.contains(&condition),
                "{condition} in {}",
                fast.expr
            );
        }
    }
    let limits = spec
        .records
        .iter()
        .filter(|record| record.name == crate::derived::TPM_LIMIT)
        .count();
    assert_eq!(limits, spec.ops.tpm.limits.len());
}

#[test]
fn every_alert_is_routed_to_its_teams_receiver_for_its_severity() {
    let spec = spec();
    let config = alertmanager::config(&spec);
    let receivers: Vec<&str> = config
        .receivers
        .iter()
        .map(|receiver| receiver.name.as_str())
        .collect();
    let mut referenced = Vec::new();
    let mut stack = vec![&config.root];
    while let Some(route) = stack.pop() {
        referenced.push(route.receiver.as_str());
        stack.extend(&route.routes);
    }
    for name in &referenced {
        assert!(
            receivers.contains(name),
            "{ROUTING}: route to unknown receiver {name}"
        );
    }
    for name in &receivers {
        assert!(
            referenced.contains(name),
            "{ROUTING}: receiver {name} is never routed to"
        );
    }
    let text = read(ROUTING);
    let amtool = installed("amtool");
    for alert in &spec.alerts {
        let labels = BTreeMap::from([
            ("alertname", alert.name.as_str()),
            ("severity", alert.severity),
            ("team", spec.ops.team.as_str()),
        ]);
        let receiver = alertmanager::route(&config.root, &labels);
        assert_ne!(receiver, UNROUTED, "{} is not routed", alert.name);
        let suffix = match alert.severity {
            "critical" => "pager",
            "warning" => "chat",
            _ => "tickets",
        };
        assert_eq!(
            receiver,
            format!("{}-{suffix}", spec.ops.team),
            "{}",
            alert.name
        );
        assert!(text.contains(&format!("\"{receiver}\"")), "{receiver}");
        if amtool {
            let output = Command::new("amtool")
                .arg("config")
                .arg("routes")
                .arg("test")
                .arg(format!(
                    "--config.file={}",
                    workspace_root().join(ROUTING).display()
                ))
                .args(labels.iter().map(|(name, value)| format!("{name}={value}")))
                .output()
                .expect("amtool runs");
            let said = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                said.trim(),
                receiver,
                "amtool routes {} elsewhere",
                alert.name
            );
        }
    }
    for inhibit in &config.inhibits {
        for name in [&inhibit.source, &inhibit.target] {
            assert!(
                spec.alerts.iter().any(|alert| &alert.name == name),
                "{ROUTING}: inhibition names unknown alert {name}"
            );
        }
    }
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_tidy_panels() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "novita-errors");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "{panel}");
        let grid = &panel["gridPos"];
        let cell = (grid["x"].as_u64(), grid["y"].as_u64());
        assert!(cells.insert(cell), "two panels at {cell:?}");
        assert!(!panel["targets"].as_array().expect("targets").is_empty());
        assert_eq!(panel["datasource"]["uid"], "${datasource}");
    }
    let titles: Vec<&str> = panels
        .iter()
        .filter_map(|panel| panel["title"].as_str())
        .collect();
    for wanted in [
        "Requests by status and class",
        "429s by limit",
        "Retries by class",
        "Escalations by action",
        "Circuit breakers",
        "Retry budget",
        "Token rate and TPM limit",
        "Call latency",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted:?}");
    }
}

/// Runs `tool args` in `folder`, failing the test with its output unless it succeeds.
fn run(tool: &str, folder: &Path, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(folder)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {tool}: {error}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules() {
    // The unit tests take seconds of promtool's time; CI runs them (`.ci/run`).
    if installed("promtool") {
        run("promtool", &workspace_root(), &["check", "rules", ALERTS]);
    }
}

#[test]
fn amtool_accepts_the_routing() {
    if installed("amtool") {
        run("amtool", &workspace_root(), &["check-config", ROUTING]);
    }
}
