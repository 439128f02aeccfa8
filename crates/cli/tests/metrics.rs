//! End-to-end: `novita demo --metrics-addr` serves the adapters' Prometheus metrics, with
//! the names and labels the alert rules rely on, and refuses a bad address as a
//! configuration error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the whole demo may take before the test gives up on it (it takes seconds).
const DEMO_BOUND: Duration = Duration::from_secs(180);

/// Kills the demo when the test ends, also when it fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Forwards every line of `stream` to `lines`, tagged with `name`.
fn forward(
    name: &'static str,
    stream: impl Read + Send + 'static,
    lines: mpsc::Sender<(&'static str, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if lines.send((name, line)).is_err() {
                break;
            }
        }
    });
}

/// `GET /metrics` over a plain HTTP/1.1 connection. Retries the connection (at most 50
/// times, 100 ms apart) only in case the listener is not accepting yet.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = None;
    for _ in 0..50 {
        match TcpStream::connect(addr) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut stream = stream.unwrap_or_else(|| panic!("nothing listens on {addr}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("the whole response");
    String::from_utf8(response).expect("UTF-8 metrics")
}

/// Whether `text` starts with `N/N` (the last of N progress lines, or N of N runs as
/// designed), spaces before N allowed.
fn all_of(text: &str) -> bool {
    let mut parts = text.trim_start().split(['/', ' ', ']']);
    matches!(
        (parts.next(), parts.next()),
        (Some(done), Some(total)) if !done.is_empty() && done == total
    )
}

#[test]
fn the_demo_serves_prometheus_metrics() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_novita"))
        .args([
            "demo",
            "--metrics-addr",
            &addr.to_string(),
            "--metrics-linger",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the novita binary runs");
    let (sender, lines) = mpsc::channel();
    forward("stdout", child.stdout.take().unwrap(), sender.clone());
    forward("stderr", child.stderr.take().unwrap(), sender);
    let _running = Running(child);

    // Wait for the report: the last progress line on stderr (`[36/36] ...`) and the summary
    // on stdout (`36/36 scenario runs behaved as designed; ...`).
    let (mut announced, mut last_run, mut summary) = (false, false, None);
    let mut seen = Vec::new();
    while !(last_run && summary.is_some()) {
        let (name, line) = lines
            .recv_timeout(DEMO_BOUND)
            .unwrap_or_else(|_| panic!("the demo did not finish; it printed {seen:#?}"));
        announced |= name == "stderr" && line == format!("metrics at http://{addr}/metrics");
        last_run |= name == "stderr" && line.starts_with('[') && all_of(&line[1..]);
        if name == "stdout" && line.contains("scenario runs behaved as designed") {
            summary = Some(line.clone());
        }
        seen.push((name, line));
    }
    assert!(announced, "no `metrics at` line in {seen:#?}");
    let summary = summary.unwrap();
    assert!(all_of(&summary), "{summary}");

    let response = scrape(addr);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for expected in [
        "novita_requests_total{",
        "status=\"429\"",
        "novita_throttled_total{",
        "novita_escalations_total{",
        "action=\"switch_to_streaming\"",
        "novita_give_ups_total{",
        "novita_breaker_state{",
        "novita_retry_budget_tokens",
        "novita_call_duration_seconds_bucket",
        "novita_calls_total{",
        "novita_retries_total{",
        "novita_wait_seconds_bucket",
        "novita_pacing_interval_seconds{",
        "novita_attempt_duration_seconds_bucket",
        "novita_tokens_total{",
        "kind=\"completion\"",
        "novita_reasoning_tokens_total{",
        "# HELP novita_requests_total ",
    ] {
        assert!(body.contains(expected), "no {expected} in\n{body}");
    }
    // Every series names the client it came from: the demo names one per adapter.
    for line in body.lines().filter(|line| line.starts_with("novita_")) {
        assert!(
            line.contains("client=\"demo-ureq\"") || line.contains("client=\"demo-reqwest\""),
            "no client label: {line}"
        );
    }
    // The breaker is one series per state (1 on the current one, 0 on the others).
    for state in ["closed", "half_open", "open"] {
        assert!(
            body.lines()
                .any(|line| line.starts_with("novita_breaker_state{")
                    && line.contains(&format!("state=\"{state}\""))),
            "no {state} series in\n{body}"
        );
    }
    // The labels of a 429 TPM retry, as the alert rules select them.
    assert!(
        body.lines()
            .any(|line| line.starts_with("novita_throttled_total{")
                && line.contains("limit=\"tpm\"")),
        "{body}"
    );
}

#[test]
fn a_bad_metrics_address_is_a_configuration_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let in_use = taken.local_addr().unwrap().to_string();
    for addr in ["not-an-address", in_use.as_str()] {
        let output = Command::new(env!("CARGO_BIN_EXE_novita"))
            .args(["demo", "--metrics-addr", addr])
            .stdin(Stdio::null())
            .output()
            .expect("the novita binary runs");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(3), "{addr}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{addr}: {stderr}");
        assert!(stderr.starts_with("novita: error: "), "{stderr}");
        assert!(stderr.contains("metrics"), "{stderr}");
        assert!(output.stdout.is_empty(), "{addr}: the demo ran");
    }
    drop(taken);
}
