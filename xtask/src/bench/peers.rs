//! The real-HTTP comparison with other clients: reads `novita-peers`' output, renders its
//! section of the report, checks our client's targets, and splices the section into an
//! existing report for `cargo xtask bench --peers-only`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::{PEERS_BEGIN, PEERS_END, verdict};

/// The settings line: `peers calls=300 concurrency=16 ...`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Settings {
    calls: usize,
    concurrency: usize,
    deadline_ms: u64,
    latency_ms: u64,
    grace_ms: u64,
    seed: u64,
    outage_ms: u64,
    window_ms: u64,
    window_hint_s: u64,
    call_hint_ms: u64,
}

/// One `row ...` line: a client's run in one mode.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Row {
    mode: String,
    client: String,
    calls: usize,
    ok: usize,
    requests: usize,
    hints: usize,
    violations: usize,
    /// Violations counting requests within the grace too.
    strict_violations: usize,
    p50_ms: f64,
    p99_ms: f64,
    wall_ms: f64,
    asked_requests: usize,
    during_outage: Option<usize>,
}

impl Row {
    fn success(&self) -> f64 {
        ratio(self.ok, self.calls) * 100.0
    }

    fn is_ours(&self) -> bool {
        self.client.starts_with("novita-reqwest")
    }

    fn is_peer(&self) -> bool {
        !self.is_ours() && self.client != BASELINE
    }
}

/// The client that never retries, the yardstick of the outage load.
const BASELINE: &str = "no-retry";

#[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Everything one run of `novita-peers` printed on stdout.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PeersRun {
    settings: Settings,
    rows: Vec<Row>,
}

/// `key=value` pairs of one line, after its leading word.
struct Pairs(BTreeMap<String, String>);

impl Pairs {
    fn parse(words: std::str::SplitWhitespace<'_>) -> Result<Pairs, String> {
        let mut pairs = BTreeMap::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?} is not key=value"))?;
            pairs.insert(key.to_owned(), value.to_owned());
        }
        Ok(Pairs(pairs))
    }

    fn text(&self, key: &str) -> Result<String, String> {
        self.0.get(key).cloned().ok_or_else(|| format!("no {key}="))
    }

    fn get<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let text = self.text(key)?;
        text.parse()
            .map_err(|_| format!("{key}={text} is not a number"))
    }

    fn maybe<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        if self.0.contains_key(key) {
            self.get(key).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl PeersRun {
    /// Reads the `peers` line and the `row` lines; other lines are ignored.
    pub(super) fn parse(output: &str) -> Result<PeersRun, String> {
        let mut settings = None;
        let mut rows = Vec::new();
        for line in output.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("peers") => {
                    let p = Pairs::parse(words)?;
                    settings = Some(Settings {
                        calls: p.get("calls")?,
                        concurrency: p.get("concurrency")?,
                        deadline_ms: p.get("deadline_ms")?,
                        latency_ms: p.get("latency_ms")?,
                        grace_ms: p.get("grace_ms")?,
                        seed: p.get("seed")?,
                        outage_ms: p.get("outage_ms")?,
                        window_ms: p.get("window_ms")?,
                        window_hint_s: p.get("window_hint_s")?,
                        call_hint_ms: p.get("call_hint_ms")?,
                    });
                }
                Some("row") => {
                    let p = Pairs::parse(words)?;
                    rows.push(Row {
                        mode: p.text("mode")?,
                        client: p.text("client")?,
                        calls: p.get("calls")?,
                        ok: p.get("ok")?,
                        requests: p.get("requests")?,
                        hints: p.get("hints")?,
                        violations: p.get("violations")?,
                        strict_violations: p.get("strict_violations")?,
                        p50_ms: p.get("p50_ms")?,
                        p99_ms: p.get("p99_ms")?,
                        wall_ms: p.get("wall_ms")?,
                        asked_requests: p.get("asked_requests")?,
                        during_outage: p.maybe("during_outage")?,
                    });
                }
                _ => {}
            }
        }
        let settings = settings.ok_or("no `peers` settings line")?;
        if rows.is_empty() {
            return Err("no `row` lines".to_owned());
        }
        Ok(PeersRun { settings, rows })
    }

    /// The modes in the order they ran.
    fn modes(&self) -> Vec<&str> {
        let mut modes: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !modes.contains(&row.mode.as_str()) {
                modes.push(&row.mode);
            }
        }
        modes
    }

    fn rows_of<'a>(&'a self, mode: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |row| row.mode == mode)
    }
}

/// The peers' versions as locked in `Cargo.lock` (`?` when not found).
#[derive(Debug)]
pub(super) struct LockedVersions(BTreeMap<String, String>);

impl LockedVersions {
    pub(super) fn read(root: &Path) -> LockedVersions {
        let text = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
        LockedVersions::parse(&text)
    }

    fn parse(lock: &str) -> LockedVersions {
        let mut versions = BTreeMap::new();
        if let Ok(table) = lock.parse::<toml::Table>()
            && let Some(packages) = table.get("package").and_then(toml::Value::as_array)
        {
            for package in packages {
                if let (Some(name), Some(version)) = (
                    package.get("name").and_then(toml::Value::as_str),
                    package.get("version").and_then(toml::Value::as_str),
                ) {
                    // Several versions of one crate: the newest, which is the peer's.
                    let entry = versions.entry(name.to_owned()).or_insert_with(String::new);
                    if newer(version, entry) {
                        *entry = version.to_owned();
                    }
                }
            }
        }
        LockedVersions(versions)
    }

    fn of(&self, name: &str) -> &str {
        self.0.get(name).map_or("?", String::as_str)
    }
}

/// Whether version `a` is newer than `b` (numeric dotted parts; an empty `b` is oldest).
fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map_while(|part| part.parse().ok())
            .collect()
    };
    b.is_empty() || parts(a) > parts(b)
}

/// Milliseconds, read naturally.
fn ms(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1} ms")
    } else if value < 1_000.0 {
        format!("{value:.0} ms")
    } else {
        format!("{:.2} s", value / 1_000.0)
    }
}

/// The section, markers included.
pub(super) fn render_peers(run: &PeersRun, versions: &LockedVersions) -> String {
    let s = &run.settings;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{PEERS_BEGIN}");
    let _ = writeln!(
        w,
        "## Real HTTP: our client beside the clients users would otherwise pick\n"
    );
    let _ = writeln!(
        w,
        "`cargo run --release -p novita-peers`; `cargo xtask bench --peers-only` regenerates \
         this section alone. Real sockets and real sleeps, no virtual time: each client makes \
         {} chat calls per mode, {} at a time, against a `novita-mock` of its own on \
         127.0.0.1 (normal answers after {} ms, errors at once), and every call is cut off \
         after {} s. The clients:\n",
        s.calls,
        s.concurrency,
        s.latency_ms,
        s.deadline_ms / 1000
    );
    let _ = writeln!(
        w,
        "- `novita-reqwest`: ours, with `PolicyConfig::default()`; `+fallback` adds \
         `qwen/qwen-2.5-72b-instruct` as fallback model.\n\
         - `async-openai` {}: its default client, whose built-in retry layer retries 429 and \
         5xx three times after 100, 200 and 400 ms, or after the `Retry-After` seconds when \
         sent (it does not read `retry-after-ms`).\n\
         - `reqwest-retry` {} on `reqwest-middleware` {}: `RetryTransientMiddleware` over \
         `ExponentialBackoff::builder().build_with_max_retries(3)` (1 s base, doubling, full \
         jitter); it reads no hint.\n\
         - `no-retry`: plain reqwest, one attempt per call, the load of a client that never \
         retries.\n",
        versions.of("async-openai"),
        versions.of("reqwest-retry"),
        versions.of("reqwest-middleware"),
    );
    let _ = writeln!(
        w,
        "The modes (each starts when its client's run starts):\n\n\
         - `random-503`: 30 % of requests get 503 (seeded draws, seed {}).\n\
         - `outage-20s`: every request gets 503 for the first {} s, then normal answers.\n\
         - `429-window-10s`: every request gets 429 with `Retry-After: {}` for the first {} s, \
         then normal answers.\n\
         - `retry-after-ms-300`: each call's first attempt gets 429 with `retry-after-ms: {}` \
         (calls are told apart by their body: every call sends its own prompt), its retries \
         succeed.\n\
         - `504-unless-streaming`: buffered requests get 504 and streamed ones 200, on every \
         model; no client but ours streams on its own.\n\
         - `model-not-available`: the asked model answers 500 `MODEL_NOT_AVAILABLE`, the \
         fallback model works; only ours is configured with one.\n\n\
         Hinted 429s carry the OpenAI-style error body (`{{\"error\": {{...}}}}`), as the \
         gateways that send hints do (`async-openai` retries no 429 with another body); 5xx \
         carry Novita's flat body.\n",
        s.seed,
        s.outage_ms / 1000,
        s.window_hint_s,
        s.window_ms / 1000,
        s.call_hint_ms,
    );
    let _ = writeln!(
        w,
        "| mode | client | success | requests/call | Retry-After violations | p50 | p99 | wall |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    for row in &run.rows {
        let client = if row.is_ours() {
            format!("**{}**", row.client)
        } else {
            row.client.clone()
        };
        let within_grace = row.strict_violations.saturating_sub(row.violations);
        let violations = if within_grace > 0 {
            format!(
                "{} of {} (+{within_grace} within {} ms)",
                row.violations, row.hints, s.grace_ms
            )
        } else {
            format!("{} of {}", row.violations, row.hints)
        };
        let _ = writeln!(
            w,
            "| {} | {client} | {:.1} % | {:.2} | {violations} | {} | {} | {} |",
            row.mode,
            row.success(),
            ratio(row.requests, row.calls),
            ms(row.p50_ms),
            ms(row.p99_ms),
            ms(row.wall_ms),
        );
    }
    let _ = writeln!(
        w,
        "\n- success: calls that got a complete answer before their deadline.\n\
         - requests/call: requests the server received, per call.\n\
         - Retry-After violations: of the answers that carried a hint, those after which the \
         same client sent another request before the hint elapsed. A request arriving within \
         {} ms of the hinted answer was already on its way (concurrent calls sent together) \
         and does not count; \"+n within\" says how many more hints such requests would \
         break.\n\
         - p50, p99: call latency from start to end, over all calls, failures included.\n\
         - wall: from the first call's start to the last call's end.\n",
        s.grace_ms
    );
    let _ = writeln!(w, "### Targets for `novita-reqwest` on real HTTP\n");
    let _ = writeln!(w, "| mode | target | measured | verdict |");
    let _ = writeln!(w, "|---|---|---|---|");
    for target in targets(run) {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            target.mode, target.what, target.measured, target.verdict
        );
    }
    let _ = writeln!(w, "\n{PEERS_END}");
    out
}

/// One target checked against one of our rows.
#[derive(Debug, PartialEq)]
pub(super) struct Target {
    mode: String,
    what: String,
    measured: String,
    verdict: String,
}

/// Our client's targets, mode by mode: at least the best peer's success and no Retry-After
/// violation everywhere, plus each mode's own.
pub(super) fn targets(run: &PeersRun) -> Vec<Target> {
    let s = &run.settings;
    let mut targets = Vec::new();
    for mode in run.modes() {
        let peers: Vec<&Row> = run.rows_of(mode).filter(|row| row.is_peer()).collect();
        let baseline = run.rows_of(mode).find(|row| row.client == BASELINE);
        let best_success = peers.iter().map(|row| row.success()).fold(0.0, f64::max);
        let best_p99 = peers
            .iter()
            .map(|row| row.p99_ms)
            .fold(f64::INFINITY, f64::min);
        for ours in run.rows_of(mode).filter(|row| row.is_ours()) {
            let mut add = |what: String, measured: String, verdict: String| {
                targets.push(Target {
                    mode: format!("{mode} ({})", ours.client),
                    what,
                    measured,
                    verdict,
                });
            };
            let success = ours.success();
            add(
                format!("success ≥ the best peer's ({best_success:.1} %)"),
                format!("{success:.1} %"),
                verdict(success >= best_success, success, best_success, " %"),
            );
            add(
                "0 Retry-After violations".to_owned(),
                format!("{} of {}", ours.violations, ours.hints),
                count_verdict(ours.violations, 0),
            );
            match mode {
                "429-window-10s" => {
                    #[allow(clippy::cast_precision_loss)] // Milliseconds of a short window.
                    let limit = 2.0 * s.window_ms as f64;
                    add(
                        format!("done within 2× the window ({})", ms(limit)),
                        format!("wall {}", ms(ours.wall_ms)),
                        seconds_verdict(ours.wall_ms, limit),
                    );
                }
                "retry-after-ms-300" => {
                    #[allow(clippy::cast_precision_loss)] // Milliseconds of a short hint.
                    let limit = 3.0 * s.call_hint_ms as f64;
                    add(
                        format!("p50 within 3× the hint ({})", ms(limit)),
                        format!("p50 {}", ms(ours.p50_ms)),
                        seconds_verdict(ours.p50_ms, limit),
                    );
                }
                "outage-20s" => {
                    add(
                        "≥ 95 % success".to_owned(),
                        format!("{success:.1} %"),
                        verdict(success >= 95.0, success, 95.0, " %"),
                    );
                    let during = ours.during_outage.unwrap_or(usize::MAX);
                    let limit = baseline.and_then(|row| row.during_outage).unwrap_or(0);
                    add(
                        format!("requests during the outage ≤ {BASELINE}'s ({limit})"),
                        format!("{during}"),
                        count_verdict(during, limit),
                    );
                }
                "random-503" => {
                    add(
                        "100 % success".to_owned(),
                        format!("{success:.1} %"),
                        verdict(success >= 100.0, success, 100.0, " %"),
                    );
                    add(
                        format!("p99 ≤ the best peer's ({})", ms(best_p99)),
                        format!("p99 {}", ms(ours.p99_ms)),
                        seconds_verdict(ours.p99_ms, best_p99),
                    );
                }
                "504-unless-streaming" if ours.client == "novita-reqwest" => {
                    add(
                        "100 % success without a fallback".to_owned(),
                        format!("{success:.1} %"),
                        verdict(success >= 100.0, success, 100.0, " %"),
                    );
                }
                "504-unless-streaming" => {
                    let share = ratio(ours.asked_requests, ours.requests) * 100.0;
                    add(
                        "with a fallback, ≥ 90 % of requests stay on the asked model".to_owned(),
                        format!("{share:.1} %"),
                        verdict(share >= 90.0, share, 90.0, " %"),
                    );
                }
                _ => {}
            }
        }
    }
    targets
}

fn count_verdict(measured: usize, limit: usize) -> String {
    if measured <= limit {
        "met".to_owned()
    } else {
        format!("missed by {}", measured - limit)
    }
}

fn seconds_verdict(measured_ms: f64, limit_ms: f64) -> String {
    if measured_ms <= limit_ms {
        "met".to_owned()
    } else {
        format!("missed by {}", ms(measured_ms - limit_ms))
    }
}

/// The report with its peers section replaced by `section` (which carries the markers), or
/// inserted before `## Targets` (else at the end) when the report has none yet.
pub(super) fn splice_peers(report: &str, section: &str) -> String {
    let section = section.trim_end();
    if let (Some(begin), Some(end)) = (report.find(PEERS_BEGIN), report.find(PEERS_END))
        && begin < end
    {
        let after = end + PEERS_END.len();
        return format!("{}{section}{}", &report[..begin], &report[after..]);
    }
    match report.find("\n## Targets\n") {
        Some(at) => format!(
            "{}{section}\n\n{}",
            &report[..=at],
            &report[at..].trim_start_matches('\n')
        ),
        None => format!("{}\n\n{section}\n", report.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
peers calls=300 concurrency=16 deadline_ms=120000 latency_ms=20 grace_ms=20 seed=42 outage_ms=20000 window_ms=10000 window_hint_s=2 call_hint_ms=300
row mode=random-503 client=novita-reqwest calls=300 ok=300 requests=424 hints=0 violations=0 strict_violations=0 p50_ms=21.7 p99_ms=420.4 wall_ms=1500 asked_requests=424 asked_calls=300
row mode=random-503 client=async-openai calls=300 ok=297 requests=420 hints=0 violations=0 strict_violations=0 p50_ms=21.7 p99_ms=724.9 wall_ms=1900 asked_requests=420 asked_calls=297
row mode=random-503 client=no-retry calls=300 ok=215 requests=300 hints=0 violations=0 strict_violations=0 p50_ms=21.5 p99_ms=22.9 wall_ms=300 asked_requests=300 asked_calls=215
row mode=outage-20s client=novita-reqwest calls=300 ok=290 requests=400 hints=7 violations=1 strict_violations=4 p50_ms=9000 p99_ms=21000 wall_ms=25000 asked_requests=400 asked_calls=290 during_outage=350
row mode=outage-20s client=no-retry calls=300 ok=0 requests=300 hints=0 violations=0 strict_violations=0 p50_ms=1 p99_ms=2 wall_ms=30 asked_requests=300 asked_calls=0 during_outage=300
row mode=504-unless-streaming client=novita-reqwest+fallback calls=300 ok=300 requests=600 hints=0 violations=0 strict_violations=0 p50_ms=300 p99_ms=500 wall_ms=9000 asked_requests=570 asked_calls=300
";

    fn run() -> PeersRun {
        PeersRun::parse(OUTPUT).unwrap()
    }

    fn verdict_of<'a>(targets: &'a [Target], mode: &str, what: &str) -> &'a str {
        &targets
            .iter()
            .find(|t| t.mode.starts_with(mode) && t.what.starts_with(what))
            .unwrap_or_else(|| panic!("no target {what:?} in {mode}"))
            .verdict
    }

    #[test]
    fn output_is_parsed_strictly() {
        let run = run();
        assert_eq!(run.settings.calls, 300);
        assert_eq!(run.settings.call_hint_ms, 300);
        assert_eq!(run.rows.len(), 6);
        assert_eq!(run.rows[3].during_outage, Some(350));
        assert_eq!(run.rows[0].during_outage, None);
        assert_eq!(
            run.modes(),
            ["random-503", "outage-20s", "504-unless-streaming"]
        );
        assert!(PeersRun::parse("row mode=x").is_err());
        assert!(PeersRun::parse(OUTPUT.lines().next().unwrap()).is_err());
        let broken = OUTPUT.replace("ok=300 requests=424", "ok=many requests=424");
        assert!(PeersRun::parse(&broken).unwrap_err().contains("ok=many"));
    }

    #[test]
    fn targets_compare_ours_with_the_peers_and_the_baseline() {
        let targets = targets(&run());
        assert_eq!(verdict_of(&targets, "random-503", "success ≥"), "met");
        assert_eq!(verdict_of(&targets, "random-503", "p99"), "met");
        assert_eq!(verdict_of(&targets, "random-503", "0 Retry-After"), "met");
        assert_eq!(verdict_of(&targets, "outage-20s", "≥ 95 %"), "met");
        assert_eq!(
            verdict_of(&targets, "outage-20s", "requests during"),
            "missed by 50"
        );
        assert_eq!(
            verdict_of(&targets, "504-unless-streaming", "with a fallback"),
            "met"
        );
        // Only our rows get targets.
        assert!(targets.iter().all(|t| t.mode.contains("novita-reqwest")));
    }

    #[test]
    fn the_section_has_its_markers_a_row_per_run_and_the_versions() {
        let versions = LockedVersions::parse(
            "version = 4\n\n[[package]]\nname = \"async-openai\"\nversion = \"0.43.0\"\n\n\
             [[package]]\nname = \"reqwest-retry\"\nversion = \"0.9.1\"\n\n\
             [[package]]\nname = \"reqwest-retry\"\nversion = \"0.10.0\"\n",
        );
        let section = render_peers(&run(), &versions);
        assert!(section.starts_with(PEERS_BEGIN));
        assert!(section.trim_end().ends_with(PEERS_END));
        assert!(section.contains("`async-openai` 0.43.0"));
        assert!(section.contains("`reqwest-retry` 0.10.0"));
        assert!(section.contains("`reqwest-middleware` ?"));
        assert!(section.contains("| random-503 | **novita-reqwest** | 100.0 % | 1.41 | 0 of 0 |"));
        assert_eq!(section.matches("| outage-20s |").count(), 2);
        assert!(section.contains("| 1 of 7 (+3 within 20 ms) |"));
    }

    #[test]
    fn splicing_replaces_the_section_or_inserts_it_before_the_targets() {
        let section = format!("{PEERS_BEGIN}\nnew\n{PEERS_END}\n");
        let fresh = "# B\n\n## Fleet\n\nx\n\n## Targets\n\nt\n";
        let inserted = splice_peers(fresh, &section);
        assert_eq!(
            inserted,
            format!("# B\n\n## Fleet\n\nx\n\n{PEERS_BEGIN}\nnew\n{PEERS_END}\n\n## Targets\n\nt\n")
        );
        let again = splice_peers(&inserted, &section.replace("new", "newer"));
        assert_eq!(again, inserted.replace("\nnew\n", "\nnewer\n"));
        assert_eq!(
            splice_peers("# B\n", &section),
            format!("# B\n\n{PEERS_BEGIN}\nnew\n{PEERS_END}\n")
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(newer("0.10.0", "0.9.1"));
        assert!(!newer("0.9.1", "0.10.0"));
        assert!(newer("1.0.0", ""));
    }
}
