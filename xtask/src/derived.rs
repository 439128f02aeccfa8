//! The alerts and recording rules derived from the spec's `[ops.tpm]` and `[slo]` sections,
//! each alert with promtool unit tests that show it firing and a healthy series quiet.
//!
//! - **TPM headroom**: the fleet's token rate per model (`novita_tokens_total`, prompt plus
//!   completion) against the model's tokens-per-minute limit. Prometheus cannot know the
//!   limit, so each model's limit from the spec becomes a static recording rule,
//!   `novita:tpm_limit{model="..."}`: one place to change, visible on the dashboard.
//! - **Availability SLO**: multi-window, multi-burn-rate alerts over `novita_calls_total`
//!   (Google's SRE workbook, "Alerting on SLOs"), overall and per model. A page fires when
//!   the error ratio is above 14.4 times the error budget over both 1 h and 5 min (2 % of a
//!   30-day budget spent in an hour), or 6 times over both 6 h and 30 min (5 % in six
//!   hours); with `tickets`, a ticket fires at 3 times over 1 d and 2 h, or once over 3 d
//!   and 6 h. The long window makes an alert significant, the short one makes it stop soon
//!   after the failures do. The ratios are recording rules, so each window is computed
//!   once for every alert and panel that reads it.

use std::collections::BTreeMap;

use crate::spec::{self, Alert, AlertTest, Ops, Problem, Record, Slo, Spec, duration_minutes};

/// The recording rule holding each model's tokens-per-minute limit.
pub(crate) const TPM_LIMIT: &str = "novita:tpm_limit";
/// The window over which the TPM headroom alert averages the token rate.
const TPM_WINDOW: &str = "5m";

/// One burn-rate condition: the error ratio above `factor` times the budget over both
/// windows.
struct Burn {
    long: &'static str,
    short: &'static str,
    factor: &'static str,
}

/// The page conditions: 2 % of the budget in 1 h, 5 % in 6 h.
const PAGE: [Burn; 2] = [
    Burn {
        long: "1h",
        short: "5m",
        factor: "14.4",
    },
    Burn {
        long: "6h",
        short: "30m",
        factor: "6",
    },
];

/// The ticket conditions: 10 % of the budget in 1 d, and in 3 d.
const TICKET: [Burn; 2] = [
    Burn {
        long: "1d",
        short: "2h",
        factor: "3",
    },
    Burn {
        long: "3d",
        short: "6h",
        factor: "1",
    },
];

/// The recording rule of the error ratio over `window`, overall or per model.
pub(crate) fn error_ratio(per_model: bool, window: &str) -> String {
    if per_model {
        format!("model:novita_calls_error_ratio:rate{window}")
    } else {
        format!("novita:calls_error_ratio:rate{window}")
    }
}

/// Parses and validates the spec text and adds the derived alerts and recording rules: the
/// whole spec the outputs are rendered from; on failure, every problem found.
pub(crate) fn load(text: &str) -> Result<Spec, Vec<Problem>> {
    let mut spec = spec::parse(text)?;
    let (alerts, records) = rules(&spec.ops, &spec.slo);
    let mut problems = Vec::new();
    for alert in alerts {
        if spec.alerts.iter().any(|written| written.name == alert.name) {
            problems.push(Problem {
                line: 1,
                message: format!(
                    "alert {:?}: the name is taken by a derived alert ([ops.tpm] or [slo])",
                    alert.name
                ),
            });
        }
        spec.alerts.push(alert);
    }
    spec.records = records;
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

/// Every derived alert, then every recording rule they read.
fn rules(ops: &Ops, slo: &Slo) -> (Vec<Alert>, Vec<Record>) {
    let mut alerts = vec![tpm_alert(ops)];
    let mut records: Vec<Record> = ops
        .tpm
        .limits
        .iter()
        .map(|(model, limit)| Record {
            name: TPM_LIMIT.to_owned(),
            expr: format!("vector({limit})"),
            labels: vec![("model".to_owned(), model.clone())],
        })
        .collect();

    let mut windows: Vec<&str> = Vec::new();
    let tiers: &[(&[Burn; 2], Tier)] = if slo.tickets {
        &[(&PAGE, Tier::Page), (&TICKET, Tier::Ticket)]
    } else {
        &[(&PAGE, Tier::Page)]
    };
    for (burns, _) in tiers {
        for burn in *burns {
            for window in [burn.short, burn.long] {
                if !windows.contains(&window) {
                    windows.push(window);
                }
            }
        }
    }
    windows.sort_by_key(|window| duration_minutes(window));
    for per_model in [false, true] {
        for window in &windows {
            records.push(Record {
                name: error_ratio(per_model, window),
                expr: ratio_expr(per_model, window),
                labels: Vec::new(),
            });
        }
    }
    for &(burns, tier) in tiers {
        for per_model in [false, true] {
            alerts.push(slo_alert(slo, burns, tier, per_model));
        }
    }
    (alerts, records)
}

/// Calls that did not succeed over all calls; 0, not nothing, for a model without a failed
/// call, so that panels show a healthy model too.
fn ratio_expr(per_model: bool, window: &str) -> String {
    let by = if per_model { "sum by (model)" } else { "sum" };
    format!(
        "(\n  {by} (rate(novita_calls_total{{outcome!=\"success\"}}[{window}]))\n    \
         or {by} (rate(novita_calls_total[{window}])) * 0\n)\n\
         / {by} (rate(novita_calls_total[{window}]))"
    )
}

fn tpm_alert(ops: &Ops) -> Alert {
    let tpm = &ops.tpm;
    let percent = tpm.headroom_percent;
    let expr = format!(
        "100 * (\n  1 - sum by (model) (rate(novita_tokens_total[{TPM_WINDOW}])) * 60\n    \
         / on (model) {TPM_LIMIT}\n) < {percent}"
    );
    let summary = format!(
        "{{{{ $labels.model }}}} has less than {percent} % of its tokens-per-minute limit left"
    );
    let about = format!(
        "The fleet's token rate for the model (`novita_tokens_total`, prompt plus completion \
         tokens, averaged over {TPM_WINDOW}) has left less than {percent} % of the model's \
         tokens-per-minute limit for {}. The limits are the `[ops.tpm] limits` of the spec, \
         recorded as `{TPM_LIMIT}`; they must match the account's tier. Next come 429s with \
         `TOKEN_LIMIT_EXCEEDED` and calls waiting for them. On the dashboard, compare the \
         token rate with the limit per model; cut tokens per call (lower `max_tokens`, \
         shorter prompts), move load to another model, or ask for a higher limit.",
        tpm.for_
    );
    let mut tests = Vec::new();
    if let Some((model, limit)) = tpm.limits.first() {
        let eval = duration_minutes(&tpm.for_).unwrap_or(0) + 10;
        let samples = eval + 5;
        // Headroom of half the threshold fires; half-way from the threshold to 100 % is quiet.
        let busy = limit - limit * percent / 200;
        let calm = limit * (100 - percent) / 200;
        for (description, per_minute, fires) in [
            (
                format!(
                    "tokens at {} % of {model}'s limit: fires",
                    100 - percent / 2
                ),
                busy,
                true,
            ),
            (
                format!("tokens well within {model}'s limit: quiet"),
                calm,
                false,
            ),
        ] {
            // Two clients share the model's limit: the alert adds up their tokens.
            let prompt = per_minute * 2 / 3;
            tests.push(AlertTest {
                description,
                series: vec![
                    (
                        format!(
                            "novita_tokens_total{{client=\"default\",model=\"{model}\",kind=\"prompt\"}}"
                        ),
                        format!("0+{prompt}x{samples}"),
                    ),
                    (
                        format!(
                            "novita_tokens_total{{client=\"batch\",model=\"{model}\",kind=\"completion\"}}"
                        ),
                        format!("0+{}x{samples}", per_minute - prompt),
                    ),
                ],
                eval_time: format!("{eval}m"),
                fires: if fires {
                    vec![BTreeMap::from([("model".to_owned(), model.clone())])]
                } else {
                    Vec::new()
                },
            });
        }
    }
    Alert {
        name: "NovitaTpmHeadroomLow".to_owned(),
        severity: "warning",
        for_: tpm.for_.clone(),
        expr,
        summary,
        about: Some(about),
        runbook: tpm.runbook.clone(),
        tests,
    }
}

/// Whether an SLO alert pages a human now or opens a ticket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    Page,
    Ticket,
}

fn slo_alert(slo: &Slo, burns: &[Burn; 2], tier: Tier, per_model: bool) -> Alert {
    let budget = format!("(1 - {})", slo.availability);
    let conditions: Vec<String> = burns
        .iter()
        .map(|burn| {
            format!(
                "(\n  {long} > ({factor} * {budget})\n  and\n  {short} > ({factor} * {budget})\n)",
                long = error_ratio(per_model, burn.long),
                short = error_ratio(per_model, burn.short),
                factor = burn.factor,
            )
        })
        .collect();
    let percent = round(slo.availability * 100.0, 4);
    let (speed, severity, for_, within) = match tier {
        Tier::Page => ("Fast", "critical", "2m", "in under 5 days"),
        Tier::Ticket => ("Slow", "warning", "15m", "before the 30 days are over"),
    };
    let (name, subject) = if per_model {
        (
            format!("NovitaModelErrorBudget{speed}Burn"),
            "calls to {{ $labels.model }}",
        )
    } else {
        (format!("NovitaErrorBudget{speed}Burn"), "calls")
    };
    let summary = format!(
        "{subject} fail fast enough to spend the 30-day error budget of the {percent} % \
         availability objective {within}"
    );
    let windows: Vec<String> = burns
        .iter()
        .map(|burn| {
            format!(
                "{} times the error budget over both {} and {}",
                burn.factor, burn.long, burn.short
            )
        })
        .collect();
    let about = format!(
        "The share of {} that did not succeed (`novita_calls_total` with `outcome` \
         `gave_up` or `error`) is above {}, against an objective of {percent} % successful \
         calls over 30 days. {} The runbook's actions below are the ones of the failures that \
         spend the budget; the dashboard's requests panel shows which status and class \
         dominate.",
        if per_model {
            "one model's calls"
        } else {
            "all calls"
        },
        windows.join(", or "),
        match tier {
            Tier::Page => {
                "At that rate the whole budget is gone within days: someone should look now."
            }
            Tier::Ticket => {
                "At that rate the budget runs out before the period ends: plan a fix this week."
            }
        }
    );
    Alert {
        name,
        severity,
        for_: for_.to_owned(),
        expr: conditions.join("\nor\n"),
        summary,
        about: Some(about),
        runbook: slo.runbook.clone(),
        tests: slo_tests(slo, tier, per_model),
    }
}

/// Counter series of `novita_calls_total` for `model`: `success` and `gave_up` values.
fn calls(model: &str, success: String, gave_up: String) -> [(String, String); 2] {
    [
        (
            format!(
                "novita_calls_total{{client=\"default\",model=\"{model}\",outcome=\"success\"}}"
            ),
            success,
        ),
        (
            format!(
                "novita_calls_total{{client=\"default\",model=\"{model}\",outcome=\"gave_up\"}}"
            ),
            gave_up,
        ),
    ]
}

/// Models `a` and `b` at 1000 calls a minute each, `ratio` of them failing, for `minutes`.
fn steady(ratio: f64, minutes: u64) -> Vec<(String, String)> {
    let errors = round(1000.0 * ratio, 6);
    let success = round(1000.0 - 1000.0 * ratio, 6);
    ["a", "b"]
        .into_iter()
        .flat_map(|model| {
            calls(
                model,
                format!("0+{success}x{minutes}"),
                format!("0+{errors}x{minutes}"),
            )
        })
        .collect()
}

/// A healthy series, a slow burn and a fast burn: which of them fire depends on the tier.
fn slo_tests(slo: &Slo, tier: Tier, per_model: bool) -> Vec<AlertTest> {
    let budget = 1.0 - slo.availability;
    let label = |model: &str| BTreeMap::from([("model".to_owned(), model.to_owned())]);
    let everywhere = if per_model {
        vec![label("a"), label("b")]
    } else {
        vec![BTreeMap::new()]
    };
    // Model `a` answers 10 calls a minute throughout; `b` 100 a minute, all of which fail
    // from minute 60 on.
    let mut outage = calls("a", "0+10x100".to_owned(), "0x100".to_owned()).to_vec();
    outage.extend(calls(
        "b",
        "0+100x60 6000x40".to_owned(),
        "0x60 100+100x39".to_owned(),
    ));
    let healthy = AlertTest {
        description: format!(
            "both models failing at a fifth of the error budget ({} % of calls) for 4 h: quiet",
            round(budget * 20.0, 6)
        ),
        series: steady(budget / 5.0, 250),
        eval_time: "240m".to_owned(),
        fires: Vec::new(),
    };
    let slow = AlertTest {
        description: format!(
            "both models failing at twice the error budget ({} % of calls) for 4 h: {}",
            round(budget * 200.0, 6),
            match tier {
                Tier::Page => "no page",
                Tier::Ticket => "a ticket",
            }
        ),
        series: steady(budget * 2.0, 250),
        eval_time: "240m".to_owned(),
        fires: match tier {
            Tier::Page => Vec::new(),
            Tier::Ticket => everywhere,
        },
    };
    // Both tiers fire: the ticket's windows see the same burn, and Alertmanager's
    // inhibition (ops/alertmanager/routing.yml) keeps the ticket quiet while the page is on.
    let fast = AlertTest {
        description: format!(
            "model b fails every call for 30 minutes, model a is healthy: fires{}",
            if per_model { " for b alone" } else { "" }
        ),
        series: outage,
        eval_time: "90m".to_owned(),
        fires: if per_model {
            vec![label("b")]
        } else {
            vec![BTreeMap::new()]
        },
    };
    vec![fast, slow, healthy]
}

/// `value` rounded to `places` decimals, printed without trailing zeros.
fn round(value: f64, places: i32) -> String {
    let scale = 10f64.powi(places);
    format!("{}", (value * scale).round() / scale)
}
