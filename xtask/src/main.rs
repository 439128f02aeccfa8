//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask codegen` regenerates the committed files derived from
//!   `crates/catalog/errors.toml`: the catalog's data, the Prometheus recording and alerting
//!   rules (the spec's alerts, the TPM headroom alert and the availability SLO's burn-rate
//!   alerts) with their promtool tests, the runbook `docs/runbook.md` the alerts link to,
//!   the Grafana dashboard `ops/grafana/novita.json`, the example Alertmanager routing
//!   `ops/alertmanager/routing.yml`, and the error reference `docs/errors.md`.
//! - `cargo xtask codegen --check` fails, naming the file, when a committed file differs
//!   from what the spec generates (CI runs it).
//! - `cargo xtask bench [--quick]` runs the benchmarks, the fleet simulation and the
//!   real-HTTP comparison with other clients, and regenerates `docs/BENCHMARKS.md`;
//!   `cargo xtask bench --peers-only` reruns the comparison alone and replaces only its
//!   section.
//! - `cargo xtask fuzz [--seconds N] [--target NAME]` runs the libFuzzer targets of `fuzz/`
//!   on the nightly toolchain, N seconds each (default 60), and reports runs, time and
//!   crashes per target; it exits 1 on a crash and 3, naming the install command, when
//!   the nightly toolchain or cargo-fuzz is missing (docs/RELIABILITY.md).
//!
//! The workspace's house rules (crate layering, banned dependencies, module docs, no
//! module cycles, builder parity) are tests in `tidy`, run by `cargo test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod alertmanager;
mod bench;
mod codegen;
mod dashboard;
mod derived;
mod fuzz;
mod ops;
mod spec;

const USAGE: &str = "usage: cargo xtask codegen [--check] | cargo xtask bench [--quick | \
                     --peers-only] | cargo xtask fuzz [--seconds N] [--target NAME]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mode = match args.as_slice() {
        ["codegen"] => codegen::Mode::Write,
        ["codegen", "--check"] => codegen::Mode::Check,
        ["bench", rest @ ..]
            if rest.iter().all(|arg| *arg == "--quick") || rest == ["--peers-only"] =>
        {
            let root = workspace_root();
            let result = if rest == ["--peers-only"] {
                bench::run_peers(&root)
            } else {
                bench::run(&root, !rest.is_empty())
            };
            return match result {
                Ok(path) => {
                    eprintln!("xtask: wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("xtask: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        ["fuzz", rest @ ..] => {
            return match fuzz::Options::parse(rest) {
                Ok(options) => fuzz::run(&workspace_root(), &options),
                Err(problem) => {
                    eprintln!("xtask: {problem}\n{USAGE}");
                    ExitCode::from(fuzz::EXIT_USAGE)
                }
            };
        }
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("xtask: unknown arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match codegen::run(&workspace_root(), mode) {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    codegen::Outcome::Unchanged(path) => {
                        eprintln!("xtask: {} is up to date", path.display());
                    }
                    codegen::Outcome::Updated(path) => {
                        eprintln!("xtask: wrote {}", path.display());
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod promql;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tidy;
