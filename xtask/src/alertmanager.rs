//! The example Alertmanager configuration `ops/alertmanager/routing.yml`, generated from the
//! spec's `[ops] team`, the alert severities and the SLO alerts, so that every alert the
//! rules can raise has a route.
//!
//! The routing is a small tree kept here as data: `route` follows it the way Alertmanager
//! does (depth first, the first matching child wins), which lets the tests check that every
//! generated alert reaches its team's receiver for its severity, and compare with
//! `amtool config routes test` where amtool is installed.

use std::fmt::Write as _;

use crate::spec::{SPEC, Spec};

/// The configuration, relative to the workspace root.
pub(crate) const ROUTING: &str = "ops/alertmanager/routing.yml";

/// The root's receiver: alerts of no known team, dropped (it has no notifier).
pub(crate) const UNROUTED: &str = "unrouted";

/// A node of the routing tree: labels that must equal these values, where matching alerts
/// go, and the children tried first.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) matchers: Vec<(&'static str, String)>,
    pub(crate) receiver: String,
    pub(crate) repeat_interval: Option<&'static str>,
    pub(crate) routes: Vec<Route>,
}

/// A receiver, with the webhook a real deployment replaces (or `None`: drop).
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) name: String,
    pub(crate) webhook: Option<String>,
}

/// An inhibition: while an alert named `source` fires, alerts named `target` with the same
/// `equal` labels are muted.
#[derive(Debug)]
pub(crate) struct Inhibit {
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) equal: &'static [&'static str],
}

/// The whole configuration as data.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) root: Route,
    pub(crate) receivers: Vec<Receiver>,
    pub(crate) inhibits: Vec<Inhibit>,
}

/// Each severity's receiver suffix and how often an unresolved alert is re-sent.
const BY_SEVERITY: [(&str, &str, &str); 3] = [
    ("critical", "pager", "1h"),
    ("warning", "chat", "4h"),
    ("info", "tickets", "24h"),
];

/// The routing of the spec's alerts.
pub(crate) fn config(spec: &Spec) -> Config {
    let team = &spec.ops.team;
    let receiver = |suffix: &str| format!("{team}-{suffix}");
    let routes = BY_SEVERITY
        .iter()
        .map(|(severity, suffix, repeat)| Route {
            matchers: vec![("severity", (*severity).to_owned())],
            receiver: receiver(suffix),
            repeat_interval: Some(repeat),
            routes: Vec::new(),
        })
        .collect();
    let root = Route {
        matchers: Vec::new(),
        receiver: UNROUTED.to_owned(),
        repeat_interval: None,
        routes: vec![Route {
            matchers: vec![("team", team.clone())],
            // An alert of the team without a known severity still reaches a human.
            receiver: receiver("tickets"),
            repeat_interval: None,
            routes,
        }],
    };
    let mut receivers = vec![Receiver {
        name: UNROUTED.to_owned(),
        webhook: None,
    }];
    receivers.extend(BY_SEVERITY.iter().map(|(_, suffix, _)| Receiver {
        name: receiver(suffix),
        webhook: Some(format!("https://alerts.example.com/{team}/{suffix}")),
    }));
    // A fast burn also trips the slow burn's windows: while the page is on, the ticket
    // says nothing new.
    let inhibits = if spec.slo.tickets {
        vec![
            Inhibit {
                source: "NovitaErrorBudgetFastBurn".to_owned(),
                target: "NovitaErrorBudgetSlowBurn".to_owned(),
                equal: &["team"],
            },
            Inhibit {
                source: "NovitaModelErrorBudgetFastBurn".to_owned(),
                target: "NovitaModelErrorBudgetSlowBurn".to_owned(),
                equal: &["team", "model"],
            },
        ]
    } else {
        Vec::new()
    };
    Config {
        root,
        receivers,
        inhibits,
    }
}

/// The receiver Alertmanager picks for an alert with `labels`: the deepest matching route,
/// trying children in order.
#[cfg(test)]
pub(crate) fn route<'a>(
    route: &'a Route,
    labels: &std::collections::BTreeMap<&str, &str>,
) -> &'a str {
    for child in &route.routes {
        let matches = child
            .matchers
            .iter()
            .all(|(name, value)| labels.get(name) == Some(&value.as_str()));
        if matches {
            return self::route(child, labels);
        }
    }
    &route.receiver
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("strings always serialise")
}

fn matcher(name: &str, value: &str) -> String {
    quoted(&format!("{name}={}", quoted(value)))
}

fn write_route(w: &mut String, route: &Route, indent: usize, in_list: bool) {
    let pad = " ".repeat(indent);
    let mut first = true;
    let mut line = |w: &mut String, text: String| {
        let lead = if in_list && first {
            format!("{}- ", " ".repeat(indent - 2))
        } else {
            pad.clone()
        };
        first = false;
        let _ = writeln!(w, "{lead}{text}");
    };
    if !route.matchers.is_empty() {
        let matchers: Vec<String> = route
            .matchers
            .iter()
            .map(|(name, value)| matcher(name, value))
            .collect();
        line(w, format!("matchers: [{}]", matchers.join(", ")));
    }
    line(w, format!("receiver: {}", quoted(&route.receiver)));
    if let Some(repeat) = route.repeat_interval {
        line(w, format!("repeat_interval: {repeat}"));
    }
    if !route.routes.is_empty() {
        line(w, "routes:".to_owned());
        for child in &route.routes {
            write_route(w, child, indent + 4, true);
        }
    }
}

/// `ops/alertmanager/routing.yml`.
pub(crate) fn render(spec: &Spec) -> String {
    let config = config(spec);
    let mut out = format!(
        "# \x40generated by `cargo xtask codegen` from {SPEC}. Do not edit.\n\
         # An example Alertmanager configuration for ops/prometheus/novita-alerts.yml: the\n\
         # team's alerts go to a pager (critical), a chat channel (warning) or a ticket queue\n\
         # (info); replace the webhooks with your pagerduty_configs, slack_configs or\n\
         # email_configs. Check it with: amtool check-config {ROUTING}\n"
    );
    let w = &mut out;
    let _ = writeln!(w, "route:");
    let _ = writeln!(w, "  group_by: [\"alertname\", \"model\"]");
    let _ = writeln!(w, "  group_wait: 30s");
    let _ = writeln!(w, "  group_interval: 5m");
    let _ = writeln!(w, "  repeat_interval: 4h");
    write_route(w, &config.root, 2, false);
    let _ = writeln!(w, "receivers:");
    for receiver in &config.receivers {
        let _ = writeln!(w, "  - name: {}", quoted(&receiver.name));
        if let Some(url) = &receiver.webhook {
            let _ = writeln!(w, "    webhook_configs:");
            let _ = writeln!(w, "      - url: {}", quoted(url));
        }
    }
    if config.inhibits.is_empty() {
        let _ = writeln!(w, "inhibit_rules: []");
    } else {
        let _ = writeln!(w, "inhibit_rules:");
        for inhibit in &config.inhibits {
            let equal: Vec<String> = inhibit.equal.iter().map(|name| quoted(name)).collect();
            let _ = writeln!(
                w,
                "  - source_matchers: [{}]",
                matcher("alertname", &inhibit.source)
            );
            let _ = writeln!(
                w,
                "    target_matchers: [{}]",
                matcher("alertname", &inhibit.target)
            );
            let _ = writeln!(w, "    equal: [{}]", equal.join(", "));
        }
    }
    out
}
