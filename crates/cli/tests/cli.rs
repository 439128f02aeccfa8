//! End-to-end tests of the `novita` binary against `novita-mock`: what a user sees, and
//! the exit codes scripts rely on. The key never appears in anything printed.

use std::path::PathBuf;
use std::process::{Command, Output};

use novita_mock::{Fault, MockServer, Route};

const MODEL: &str = novita_mock::DEFAULT_MODELS[0];
const FALLBACK: &str = novita_mock::DEFAULT_MODELS[1];

fn novita(args: &[&str]) -> Output {
    run(args, &[])
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_novita"));
    command
        .args(args)
        .env_remove("NOVITA_API_KEY")
        .env_remove("NOVITA_BASE_URL")
        .env_remove("NOVITA_API_BASE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the novita binary runs")
}

/// Runs `novita chat` against `server` with its key, optionally on the blocking adapter.
fn chat(server: &MockServer, key: &str, args: &[&str]) -> Output {
    let base_url = server.base_url();
    let mut all = vec!["chat", "--model", MODEL];
    all.extend_from_slice(args);
    run(
        &all,
        &[
            ("NOVITA_API_KEY", key),
            ("NOVITA_BASE_URL", base_url.as_str()),
        ],
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A policy file with millisecond backoff, so failing scenarios end quickly.
fn fast_policy_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "novita-cli-test-policy-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, "[backoff]\nbase = \"5ms\"\ncap = \"20ms\"\n").unwrap();
    path
}

#[test]
fn explain_prints_advice_and_exits_zero() {
    let output = novita(&["explain", "429"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("429 Too Many Requests: "), "{stdout}");
    assert!(
        stdout.contains("RATE_LIMIT_EXCEEDED, TOKEN_LIMIT_EXCEEDED"),
        "{stdout}"
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn explain_all_prints_the_table() {
    let output = novita(&["explain", "--all"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("CODE"), "{stdout}");
    assert!(stdout.contains("NOT_ENOUGH_BALANCE"), "{stdout}");
}

#[test]
fn explain_bad_input_gets_one_clear_line_and_exit_two() {
    for (input, expected) in [
        (
            "abc",
            "novita: error: \"abc\" is not an HTTP status code; give a number such as 429\n",
        ),
        (
            "99999",
            "novita: error: 99999 is not an HTTP status code; statuses run from 100 to 599, errors from 400\n",
        ),
        (
            "200",
            "novita: error: 200 is not an error status; only 4xx and 5xx statuses have entries\n",
        ),
    ] {
        let output = novita(&["explain", input]);
        assert_eq!(output.status.code(), Some(2), "explain {input}");
        assert_eq!(text(&output.stderr), expected);
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = novita(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for line in [
        "Exit codes:",
        "  4  authentication",
        "  7  rate limited",
        "  8  overloaded",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

#[test]
fn chat_prints_the_reply_with_either_adapter() {
    let server = MockServer::start();
    for adapter in [&[][..], &["--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("Hello there");
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{adapter:?}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            text(&output.stdout),
            format!("Mock reply from {MODEL}: Hello there\n")
        );
    }
}

#[test]
fn chat_streams_with_either_adapter() {
    let server = MockServer::start();
    for adapter in [&["--stream"][..], &["--stream", "--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("stream this");
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            format!("Mock reply from {MODEL}: stream this\n")
        );
    }
    assert!(server.requests().iter().all(|request| request.stream));
}

#[test]
fn a_wrong_key_exits_four_with_advice_and_never_prints_the_key() {
    let server = MockServer::start();
    for adapter in [&[][..], &["--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("hi");
        let output = chat(&server, "sk_wrong_secret_42", &args);
        assert_eq!(output.status.code(), Some(4), "{adapter:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("401 Unauthorized"), "{stderr}");
        assert!(
            stderr.contains("the API key came from the NOVITA_API_KEY environment variable"),
            "{stderr}"
        );
        assert!(stderr.contains("Check the API key"), "{stderr}");
        assert!(
            !stderr.contains("sk_wrong_secret_42")
                && !text(&output.stdout).contains("sk_wrong_secret_42")
        );
    }
}

#[test]
fn a_missing_key_exits_three() {
    let output = novita(&["chat", "--model", MODEL, "hi"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        text(&output.stderr),
        "novita: error: no API key: set NOVITA_API_KEY or pass a key to the client builder\n"
    );
}

#[test]
fn each_class_has_its_exit_code() {
    let policy = fast_policy_file();
    let policy = policy.to_str().unwrap();
    let cases: [(Fault, i32); 5] = [
        (Fault::status(400), 6),
        (Fault::status(403).reason("NOT_ENOUGH_BALANCE"), 5),
        (Fault::status(429).retry_after_secs(3600), 7),
        (Fault::status(503), 8),
        (Fault::status(500), 9),
    ];
    for (fault, code) in cases {
        let server = MockServer::start();
        server.always(Route::ChatCompletions, None, fault.clone());
        let output = chat(&server, server.api_key(), &["--config", policy, "hi"]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{fault:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains("what to do:"),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn fallback_models_answer_and_say_so() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        Some(MODEL),
        [Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
    );
    let output = chat(
        &server,
        server.api_key(),
        &["--fallback-model", FALLBACK, "hi"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("Mock reply from {FALLBACK}: hi\n")
    );
    assert!(
        text(&output.stderr).contains(&format!("falling back from {MODEL}")),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn verbose_prints_attempts_and_decisions() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let policy = fast_policy_file();
    let output = chat(
        &server,
        server.api_key(),
        &["-v", "--config", policy.to_str().unwrap(), "hi"],
    );
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("sending"), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("status 503"), "{stderr}");
    assert!(!stderr.contains(server.api_key()), "{stderr}");
}

#[test]
fn a_bad_policy_file_exits_three() {
    let server = MockServer::start();
    let path =
        std::env::temp_dir().join(format!("novita-cli-bad-policy-{}.toml", std::process::id()));
    std::fs::write(&path, "max_atempts = 3\n").unwrap();
    let output = chat(
        &server,
        server.api_key(),
        &["--config", path.to_str().unwrap(), "hi"],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stderr).starts_with("novita: error: invalid policy config"),
        "{}",
        text(&output.stderr)
    );
    let output = chat(
        &server,
        server.api_key(),
        &["--config", "/nonexistent/policy.toml", "hi"],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("cannot read policy file /nonexistent/policy.toml"));
}

#[test]
fn the_demo_plays_every_scenario_as_designed() {
    let output = novita(&["demo"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("34/34 scenario runs behaved as designed"),
        "{stdout}"
    );
    assert!(
        text(&output.stderr).contains("[34/34]"),
        "progress is shown"
    );
}
