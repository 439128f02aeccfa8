//! End-to-end tests of the `novita` binary: what a user sees, and the exit codes scripts
//! rely on.

use std::process::{Command, Output};

fn novita(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_novita"))
        .args(args)
        .env_remove("NOVITA_API_KEY")
        .output()
        .expect("the novita binary runs")
}

#[test]
fn explain_prints_advice_and_exits_zero() {
    let output = novita(&["explain", "429"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
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
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("CODE"), "{stdout}");
    assert!(stdout.contains("NOT_ENOUGH_BALANCE"), "{stdout}");
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_two() {
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
        assert_eq!(String::from_utf8(output.stderr).unwrap(), expected);
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = novita(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("Exit codes:"), "{stdout}");
}
