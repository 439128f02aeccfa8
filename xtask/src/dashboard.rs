//! The Grafana dashboard `ops/grafana/novita.json`, generated so that its queries follow the
//! metric names, the recording rules and the SLO of the spec.
//!
//! Every panel queries Prometheus through the dashboard's `datasource` variable and filters
//! on its `client` and `model` variables (the recording rules, which sum over clients, on
//! `model` alone). JSON has no comments, so the generated marker is the
//! dashboard's `description`, written as the first key.

use serde_json::{Value, json};

use crate::derived::{TPM_LIMIT, error_ratio};
use crate::spec::{SPEC, Spec};

/// The dashboard, relative to the workspace root.
pub(crate) const DASHBOARD: &str = "ops/grafana/novita.json";

/// The dashboard's stable uid, so that re-imports replace it and links keep working.
const UID: &str = "novita-errors";

/// Panel widths and heights on Grafana's 24-column grid.
const WIDTH: u64 = 12;
const HEIGHT: u64 = 8;

/// One panel: a title, what it shows, its kind and unit, and its queries with legends.
struct Panel {
    title: &'static str,
    description: String,
    kind: Kind,
    unit: &'static str,
    queries: Vec<(String, &'static str)>,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A graph over time.
    Series,
    /// The breaker's state over time, one band per model.
    States,
}

/// A selector of `metric` restricted to the dashboard's clients and models, with extra
/// `matchers`.
fn of(metric: &str, matchers: &str) -> String {
    let extra = if matchers.is_empty() {
        String::new()
    } else {
        format!(",{matchers}")
    };
    format!("{metric}{{client=~\"$client\",model=~\"$model\"{extra}}}")
}

/// A selector of the recording rule `record`, restricted to the dashboard's models: the
/// rules sum over clients, so they carry no `client` label to filter on.
fn rule(record: &str) -> String {
    format!("{record}{{model=~\"$model\"}}")
}

/// `sum by (labels) (rate(selector[$__rate_interval]))`.
fn rate_by(labels: &str, selector: &str) -> String {
    format!("sum by ({labels}) (rate({selector}[$__rate_interval]))")
}

fn quantile(q: &str, metric: &str, by: &str) -> String {
    format!(
        "histogram_quantile({q}, sum by ({by}) (rate({}[$__rate_interval])))",
        of(&format!("{metric}_bucket"), "")
    )
}

fn panels(spec: &Spec) -> Vec<Panel> {
    let budget = format!("(1 - {})", spec.slo.availability);
    vec![
        Panel {
            title: "Requests by status and class",
            description: "Attempts that ended per second (novita_requests_total): the HTTP \
                          status, or transport, and the catalog class."
                .to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("status, class", &of("novita_requests_total", "")),
                "{{status}} {{class}}",
            )],
        },
        Panel {
            title: "Calls by outcome",
            description: "Logical calls that ended per second (novita_calls_total), retries \
                          and fallbacks folded in: success, gave_up or error."
                .to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("model, outcome", &of("novita_calls_total", "")),
                "{{model}} {{outcome}}",
            )],
        },
        Panel {
            title: "Error budget burn rate",
            description: format!(
                "The error ratio of calls per model over 1 h and 5 min, divided by the error \
                 budget {budget}: 1 spends the 30-day budget in 30 days; the page alerts \
                 fire at 14.4 (1 h and 5 min) and 6 (6 h and 30 min)."
            ),
            kind: Kind::Series,
            unit: "none",
            queries: vec![
                (
                    format!("{} / {budget}", rule(&error_ratio(true, "1h"))),
                    "{{model}} 1h",
                ),
                (
                    format!("{} / {budget}", rule(&error_ratio(true, "5m"))),
                    "{{model}} 5m",
                ),
            ],
        },
        Panel {
            title: "429s by limit",
            description: "Throttled answers per second (novita_throttled_total): tpm, rpm \
                          or unknown."
                .to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("model, limit", &of("novita_throttled_total", "")),
                "{{model}} {{limit}}",
            )],
        },
        Panel {
            title: "Token rate and TPM limit",
            description: format!(
                "Tokens per minute from answers' usage (novita_tokens_total by kind; \
                 reasoning is part of completion), against each model's limit \
                 ({TPM_LIMIT}, from the spec's [ops.tpm])."
            ),
            kind: Kind::Series,
            unit: "short",
            queries: vec![
                (
                    format!(
                        "{} * 60",
                        rate_by("model, kind", &of("novita_tokens_total", ""))
                    ),
                    "{{model}} {{kind}}",
                ),
                (
                    format!(
                        "{} * 60",
                        rate_by("model", &of("novita_reasoning_tokens_total", ""))
                    ),
                    "{{model}} reasoning",
                ),
                (rule(TPM_LIMIT), "{{model}} limit"),
            ],
        },
        Panel {
            title: "Retries by class",
            description: "Retries the policy decided per second (novita_retries_total).".to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("model, class", &of("novita_retries_total", "")),
                "{{model}} {{class}}",
            )],
        },
        Panel {
            title: "Escalations by action",
            description: "Escalations per second (novita_escalations_total): \
                          switch_to_streaming, fall_back or reduce_rate."
                .to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("model, action", &of("novita_escalations_total", "")),
                "{{model}} {{action}}",
            )],
        },
        Panel {
            title: "Give-ups by reason",
            description: "Calls the policy gave up on per second (novita_give_ups_total), by \
                          why it stopped."
                .to_owned(),
            kind: Kind::Series,
            unit: "reqps",
            queries: vec![(
                rate_by("model, reason", &of("novita_give_ups_total", "")),
                "{{model}} {{reason}}",
            )],
        },
        Panel {
            title: "Circuit breakers",
            description: "Each client's breaker per model (novita_breaker_state, the state \
                          whose series is 1): closed, half-open (probing) or open (calls held \
                          or failing fast); the worst over the client's instances."
                .to_owned(),
            kind: Kind::States,
            unit: "none",
            // The state as a number for the state timeline: 0 closed, 1 half-open, 2 open.
            queries: vec![(
                format!(
                    "clamp_max(2 * max by (client, model) ({}) + max by (client, model) ({}), 2)",
                    of("novita_breaker_state", "state=\"open\""),
                    of("novita_breaker_state", "state=\"half_open\"")
                ),
                "{{client}} {{model}}",
            )],
        },
        Panel {
            title: "Retry budget",
            description: "Tokens left in each client's retry budget \
                          (novita_retry_budget_tokens); at 0, failures are no longer retried."
                .to_owned(),
            kind: Kind::Series,
            unit: "short",
            queries: vec![(
                "min by (client, instance) (novita_retry_budget_tokens{client=~\"$client\"})"
                    .to_owned(),
                "{{client}} {{instance}}",
            )],
        },
        Panel {
            title: "Call latency",
            description: "Wall time of calls, waits and retries included \
                          (novita_call_duration_seconds); needs the exporter's buckets \
                          (novita_core::metrics::HISTOGRAM_BUCKETS)."
                .to_owned(),
            kind: Kind::Series,
            unit: "s",
            queries: ["0.5", "0.95", "0.99"]
                .into_iter()
                .map(|q| {
                    (
                        quantile(q, "novita_call_duration_seconds", "le"),
                        match q {
                            "0.5" => "p50",
                            "0.95" => "p95",
                            _ => "p99",
                        },
                    )
                })
                .collect(),
        },
        Panel {
            title: "Attempt latency (p95)",
            description: "The 95th percentile of single attempts, by status \
                          (novita_attempt_duration_seconds)."
                .to_owned(),
            kind: Kind::Series,
            unit: "s",
            queries: vec![(
                quantile("0.95", "novita_attempt_duration_seconds", "le, status"),
                "{{status}}",
            )],
        },
        Panel {
            title: "Time spent waiting",
            description: "Seconds spent waiting per second, by kind (novita_wait_seconds): \
                          backoff and server hints, or client-side pacing; and the pacing \
                          interval of paced models (novita_pacing_interval_seconds)."
                .to_owned(),
            kind: Kind::Series,
            unit: "s",
            queries: vec![
                (
                    rate_by("model, kind", &of("novita_wait_seconds_sum", "")),
                    "{{model}} {{kind}}",
                ),
                (
                    format!(
                        "max by (client, model) ({}) > 0",
                        of("novita_pacing_interval_seconds", "")
                    ),
                    "{{client}} {{model}} pacing interval",
                ),
            ],
        },
        Panel {
            title: "Shared state store outages",
            description: "Outages of the shared state store (novita_store_fallbacks_total), \
                          each met by going on with the client's own state."
                .to_owned(),
            kind: Kind::Series,
            unit: "short",
            queries: vec![(
                "sum by (client, instance) \
                 (increase(novita_store_fallbacks_total{client=~\"$client\"}[$__rate_interval]))"
                    .to_owned(),
                "{{client}} {{instance}}",
            )],
        },
    ]
}

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

fn panel_json(id: usize, panel: &Panel) -> Value {
    let column = u64::try_from(id % 2).unwrap_or(0);
    let row = u64::try_from(id / 2).unwrap_or(0);
    let targets: Vec<Value> = panel
        .queries
        .iter()
        .zip('A'..='Z')
        .map(|((expr, legend), reference)| {
            json!({
                "datasource": datasource(),
                "expr": expr,
                "legendFormat": legend,
                "refId": reference.to_string(),
            })
        })
        .collect();
    let (kind, defaults, options) = match panel.kind {
        Kind::Series => (
            "timeseries",
            json!({ "unit": panel.unit }),
            json!({ "legend": { "displayMode": "list", "placement": "bottom" },
                    "tooltip": { "mode": "multi" } }),
        ),
        Kind::States => (
            "state-timeline",
            json!({
                "unit": panel.unit,
                "mappings": [{
                    "type": "value",
                    "options": {
                        "0": { "text": "closed", "color": "green", "index": 0 },
                        "1": { "text": "half-open", "color": "yellow", "index": 1 },
                        "2": { "text": "open", "color": "red", "index": 2 },
                    },
                }],
                "color": { "mode": "thresholds" },
                "thresholds": { "mode": "absolute", "steps": [
                    { "color": "green", "value": null },
                    { "color": "yellow", "value": 1 },
                    { "color": "red", "value": 2 },
                ] },
            }),
            json!({ "showValue": "never", "legend": { "displayMode": "list" } }),
        ),
    };
    json!({
        "id": id + 1,
        "type": kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource(),
        "gridPos": { "h": HEIGHT, "w": WIDTH, "x": column * WIDTH, "y": row * HEIGHT },
        "fieldConfig": { "defaults": defaults, "overrides": [] },
        "options": options,
        "targets": targets,
    })
}

/// `ops/grafana/novita.json`.
pub(crate) fn render(spec: &Spec) -> String {
    let panels: Vec<Value> = panels(spec)
        .iter()
        .enumerate()
        .map(|(id, panel)| panel_json(id, panel))
        .collect();
    let templating = json!({ "list": [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
        },
        {
            "name": "client",
            "label": "Client",
            "type": "query",
            "datasource": datasource(),
            "query": { "query": "label_values(novita_calls_total, client)", "refId": "clients" },
            "definition": "label_values(novita_calls_total, client)",
            "refresh": 2,
            "multi": true,
            "includeAll": true,
            "allValue": ".*",
            "current": { "text": "All", "value": "$__all" },
        },
        {
            "name": "model",
            "label": "Model",
            "type": "query",
            "datasource": datasource(),
            "query": { "query": "label_values(novita_calls_total, model)", "refId": "models" },
            "definition": "label_values(novita_calls_total, model)",
            "refresh": 2,
            "multi": true,
            "includeAll": true,
            "allValue": ".*",
            "current": { "text": "All", "value": "$__all" },
        },
    ] });
    // Keys in the order Grafana writes them, the marker first; serde_json sorts the keys
    // of nested objects, which keeps them stable.
    let fields: [(&str, Value); 13] = [
        (
            "description",
            Value::from(format!(
                "\x40generated by `cargo xtask codegen` from {SPEC}. Do not edit. Novita API \
                 clients (novita-ureq, novita-reqwest): requests, throttling, retries, \
                 escalations, breakers, tokens, latency and the availability SLO."
            )),
        ),
        ("title", Value::from("Novita API clients")),
        ("uid", Value::from(UID)),
        ("tags", json!(["novita", "llm"])),
        ("editable", Value::from(true)),
        ("schemaVersion", Value::from(39)),
        ("version", Value::from(1)),
        ("refresh", Value::from("30s")),
        ("time", json!({ "from": "now-6h", "to": "now" })),
        ("timezone", Value::from("browser")),
        ("annotations", json!({ "list": [] })),
        ("templating", templating),
        ("panels", Value::from(panels)),
    ];
    let mut out = String::from("{\n");
    for (index, (key, value)) in fields.iter().enumerate() {
        let text = serde_json::to_string_pretty(value).expect("values always serialise");
        let separator = if index + 1 < fields.len() { "," } else { "" };
        // JSON strings hold no raw newline, so indenting every line is safe.
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!("  {key:?}: {}{separator}\n", text.replace('\n', "\n  ")),
        );
    }
    out.push_str("}\n");
    out
}
