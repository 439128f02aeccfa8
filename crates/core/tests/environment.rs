//! Settings read from the process environment: a variable that is set but unusable is a
//! configuration error naming it, never taken for unset. The checks run in a child process
//! started with the environment under test, so no test changes its own environment.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use novita_core::{ClientCore, ErrorKind, Options};

/// Runs the ignored test `name` of this binary in a child process with `vars` set.
fn run_child(name: &str, vars: &[(&str, &[u8])]) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in ["NOVITA_API_KEY", "NOVITA_BASE_URL", "NOVITA_API_BASE"] {
        command.env_remove(var);
    }
    for (var, value) in vars {
        command.env(var, OsStr::from_bytes(value));
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} failed in the child:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_non_utf8_base_url_is_an_error_not_the_default_host() {
    run_child(
        "child_non_utf8_base_url",
        &[
            ("NOVITA_API_KEY", b"sk_from_env"),
            ("NOVITA_BASE_URL", b"http://h\xff:1"),
        ],
    );
}

#[test]
fn a_non_utf8_key_is_an_error_naming_the_variable() {
    run_child("child_non_utf8_key", &[("NOVITA_API_KEY", b"sk_\xfe")]);
}

#[test]
#[ignore = "runs in a child process started by a_non_utf8_base_url_is_an_error_not_the_default_host"]
fn child_non_utf8_base_url() {
    let error = ClientCore::from_options(Options::default()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(
        error.to_string(),
        "the NOVITA_BASE_URL environment variable cannot be used: \
         it is set but is not valid UTF-8; fix or unset it"
    );
    // An explicit base URL never reads the variable, so its bad value does not matter.
    let mut options = Options::default();
    options.base_url = Some("http://127.0.0.1:9".into());
    let core = ClientCore::from_options(options).unwrap();
    assert_eq!(core.base_url(), "http://127.0.0.1:9");
}

#[test]
#[ignore = "runs in a child process started by a_non_utf8_key_is_an_error_naming_the_variable"]
fn child_non_utf8_key() {
    let error = ClientCore::from_options(Options::default()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        error
            .to_string()
            .starts_with("the NOVITA_API_KEY environment variable cannot be used"),
        "{error}"
    );
}
