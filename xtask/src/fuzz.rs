//! `cargo xtask fuzz [--seconds N] [--target NAME]`: runs the libFuzzer targets of `fuzz/`
//! (through cargo-fuzz, on the nightly toolchain) for N seconds each (default 60), and
//! says per target how many inputs ran, for how long, and whether one crashed, with the
//! crashing input's path.
//!
//! Nothing is installed behind the user's back: without a nightly toolchain, or without
//! cargo-fuzz, it prints the one command that installs the missing piece and exits with
//! [`EXIT_MISSING_TOOL`]. Runs never dirty the repository: each target starts from its
//! committed seeds (`fuzz/corpus/<target>/`), copied into a scratch corpus under
//! `fuzz/target/xtask-corpus/<target>/` that grows from run to run; crashing inputs land
//! in `fuzz/artifacts/<target>/` (cargo-fuzz's place for them) and full logs in
//! `fuzz/target/xtask-logs/`, all ignored by git.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use std::{fmt, fs, io};

/// Exit code when a target crashed (or could not run).
pub(crate) const EXIT_CRASH: u8 = 1;
/// Exit code for arguments xtask does not understand.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when the nightly toolchain or cargo-fuzz is missing.
pub(crate) const EXIT_MISSING_TOOL: u8 = 3;

/// The toolchain the fuzz targets build with: libFuzzer's instrumentation (sanitizer
/// coverage, `-Zsanitizer`) is nightly-only.
const TOOLCHAIN: &str = "nightly";

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    seconds: u64,
    target: Option<String>,
}

impl Options {
    /// Reads the arguments after `fuzz`.
    pub(crate) fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Options {
            seconds: DEFAULT_SECONDS,
            target: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match *arg {
                "--seconds" => {
                    let value = args.next().ok_or("--seconds needs a number")?;
                    options.seconds = value
                        .parse()
                        .ok()
                        .filter(|seconds| *seconds > 0)
                        .ok_or_else(|| {
                            format!("--seconds takes a whole number above 0, not {value:?}")
                        })?;
                }
                "--target" => {
                    let value = args.next().ok_or("--target needs a target name")?;
                    options.target = Some((*value).to_owned());
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

/// Runs the fuzz targets as `options` say and reports on each.
pub(crate) fn run(root: &Path, options: &Options) -> ExitCode {
    let fuzz_dir = root.join("fuzz");
    let targets = match targets(&fuzz_dir) {
        Ok(targets) => targets,
        Err(error) => {
            eprintln!("xtask: {error}");
            return ExitCode::from(EXIT_CRASH);
        }
    };
    let chosen: Vec<&str> = match &options.target {
        Some(name) if targets.iter().any(|target| target == name) => vec![name.as_str()],
        Some(name) => {
            eprintln!(
                "xtask: no fuzz target {name:?}; the targets are {}",
                targets.join(", ")
            );
            return ExitCode::from(EXIT_USAGE);
        }
        None => targets.iter().map(String::as_str).collect(),
    };
    if let Err(missing) = check_tools() {
        eprintln!("xtask: {missing}");
        return ExitCode::from(EXIT_MISSING_TOOL);
    }

    eprintln!("xtask: building the fuzz targets (cargo +{TOOLCHAIN} fuzz build)");
    let built = cargo_fuzz(&fuzz_dir)
        .arg("build")
        .status()
        .is_ok_and(|status| status.success());
    if !built {
        eprintln!("xtask: the fuzz targets did not build (see cargo's output above)");
        return ExitCode::from(EXIT_CRASH);
    }

    let mut failed = Vec::new();
    for target in &chosen {
        eprintln!("xtask: {target}: fuzzing for {} s", options.seconds);
        match fuzz_one(&fuzz_dir, target, options.seconds) {
            Ok(report) => {
                println!("{report}");
                if report.failed() {
                    failed.push(*target);
                }
            }
            Err(error) => {
                println!("{target}: could not run: {error}");
                failed.push(*target);
            }
        }
    }
    if failed.is_empty() {
        println!(
            "no crash in {} target{} ({} s each)",
            chosen.len(),
            if chosen.len() == 1 { "" } else { "s" },
            options.seconds
        );
        ExitCode::SUCCESS
    } else {
        println!("crashed or failed: {}", failed.join(", "));
        ExitCode::from(EXIT_CRASH)
    }
}

/// The fuzz targets, as the `[[bin]]` names of `fuzz/Cargo.toml`.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>, String> {
    let path = fuzz_dir.join("Cargo.toml");
    let text = fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let manifest: toml::Table = toml::from_str(&text)
        .map_err(|error| format!("cannot parse {}: {error}", path.display()))?;
    let names: Vec<String> = manifest
        .get("bin")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|bin| bin.get("name")?.as_str().map(str::to_owned))
        .collect();
    if names.is_empty() {
        return Err(format!("{} declares no fuzz targets", path.display()));
    }
    Ok(names)
}

/// Whether `rustup toolchain list` shows the undated nightly that `cargo +nightly` uses.
fn lists_nightly(toolchains: &str) -> bool {
    toolchains.lines().any(|line| {
        let name = line.split_whitespace().next().unwrap_or("");
        name == TOOLCHAIN
            || name
                .strip_prefix("nightly-")
                .is_some_and(|host| !host.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Checks for the nightly toolchain and cargo-fuzz; the error says what to install.
fn check_tools() -> Result<(), String> {
    let no_nightly = "fuzzing needs the nightly Rust toolchain (libFuzzer's instrumentation \
                      is nightly-only), and it is not installed. Install it with `rustup \
                      toolchain install nightly`, then run `cargo xtask fuzz` again. Without \
                      it, the same properties still run on stable as proptests in `cargo \
                      test` (crates/core/tests/hostile_streams.rs, \
                      crates/policy/tests/fuzz_properties.rs)."
        .to_owned();
    match output(Command::new("rustup").args(["toolchain", "list"])) {
        Some(list) if !lists_nightly(&list) => return Err(no_nightly),
        Some(_) => {}
        // No rustup: `cargo +nightly` below can only work through some other proxy.
        None => {}
    }
    let Some(version) = output(cargo_nightly().arg("--version")) else {
        return Err(no_nightly);
    };
    let Some(fuzz_version) = output(cargo_nightly().args(["fuzz", "--version"])) else {
        return Err(
            "fuzzing runs through cargo-fuzz, which is not installed. Install it \
                    with `cargo install cargo-fuzz --locked` (a minute or two of building), \
                    then run `cargo xtask fuzz` again."
                .to_owned(),
        );
    };
    eprintln!(
        "xtask: fuzzing with {} and {}",
        version.trim(),
        fuzz_version.trim()
    );
    Ok(())
}

/// `cargo +nightly`, never installing a toolchain on the fly.
fn cargo_nightly() -> Command {
    let mut command = Command::new("cargo");
    command
        .arg(format!("+{TOOLCHAIN}"))
        .env("RUSTUP_AUTO_INSTALL", "0");
    command
}

/// `cargo +nightly fuzz`, run in `fuzz/`.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut command = cargo_nightly();
    command.arg("fuzz").current_dir(fuzz_dir);
    command
}

/// A command's standard output, when it ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What one target's run came to.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    target: String,
    elapsed: Duration,
    stats: Stats,
    /// Whether cargo-fuzz exited successfully.
    success: bool,
    log: PathBuf,
}

impl Report {
    fn failed(&self) -> bool {
        !self.success || self.stats.artifact.is_some()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let runs = self.stats.runs.map_or_else(
            || "an unknown number of".to_owned(),
            |runs| runs.to_string(),
        );
        let seconds = self.elapsed.as_secs();
        let target = &self.target;
        match (&self.stats.artifact, self.success) {
            (None, true) => write!(f, "{target}: {runs} runs in {seconds} s, 0 crashes"),
            (Some(artifact), _) => {
                let kind = self.stats.crash.as_deref().unwrap_or("crash");
                write!(
                    f,
                    "{target}: 1 crash ({kind}) after {runs} runs in {seconds} s\n  input: {}\n  \
                     reproduce: cargo +{TOOLCHAIN} fuzz run {target} {}\n  log: {}",
                    artifact.display(),
                    artifact.display(),
                    self.log.display()
                )
            }
            (None, false) => write!(
                f,
                "{target}: cargo fuzz failed after {seconds} s without a crashing input; see {}",
                self.log.display()
            ),
        }
    }
}

/// What libFuzzer's output says about a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    /// Inputs executed (`stat::number_of_executed_units`, or `Done N runs`).
    runs: Option<u64>,
    /// Where the crashing input was written.
    artifact: Option<PathBuf>,
    /// What kind of crash: the panic message, or libFuzzer's error line.
    crash: Option<String>,
}

/// Reads libFuzzer's output (its stderr, with cargo-fuzz's).
fn parse_log(log: &str) -> Stats {
    let mut stats = Stats::default();
    let mut lines = log.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(runs) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.runs = runs.trim().parse().ok().or(stats.runs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if stats.runs.is_none() {
                stats.runs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            stats.artifact = Some(PathBuf::from(path.trim()));
        } else if let Some((_, place)) = line.split_once("panicked at ") {
            // Since Rust 1.73 the message follows on its own line.
            let message = lines.next().unwrap_or("");
            let place = place.trim_end_matches(':');
            stats
                .crash
                .get_or_insert_with(|| format!("panicked at {place}: {message}"));
        } else if let Some((_, error)) = line.split_once("ERROR: libFuzzer: ") {
            stats
                .crash
                .get_or_insert_with(|| format!("libFuzzer: {error}"));
        }
    }
    stats
}

/// Fuzzes one target for `seconds` from its seeds, logging to `fuzz/target/xtask-logs/`.
fn fuzz_one(fuzz_dir: &Path, target: &str, seconds: u64) -> io::Result<Report> {
    let scratch = fuzz_dir.join("target/xtask-corpus").join(target);
    fs::create_dir_all(&scratch)?;
    let seeds = fuzz_dir.join("corpus").join(target);
    if seeds.is_dir() {
        for entry in fs::read_dir(&seeds)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::copy(entry.path(), scratch.join(entry.file_name()))?;
            }
        }
    }
    let logs = fuzz_dir.join("target/xtask-logs");
    fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path)?;

    let mut command = cargo_fuzz(fuzz_dir);
    command
        .args(["run", target])
        .arg(&scratch)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // A single input running this long is a hang, reported like a crash.
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    let dict = fuzz_dir.join("dict").join(format!("{target}.dict"));
    if dict.is_file() {
        command.arg(format!("-dict={}", dict.display()));
    }
    let started = Instant::now();
    let status = command
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    let mut stats = parse_log(&fs::read_to_string(&log_path)?);
    // libFuzzer names the artifact relative to the directory it ran in (`fuzz/`).
    stats.artifact = stats.artifact.map(|path| shown(&fuzz_dir.join(path)));
    Ok(Report {
        target: target.to_owned(),
        elapsed,
        stats,
        success: status.success(),
        log: shown(&log_path),
    })
}

/// `path` relative to the workspace root, for messages.
fn shown(path: &Path) -> PathBuf {
    let root = crate::workspace_root();
    path.strip_prefix(&root)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(
            Options::parse(&[]),
            Ok(Options {
                seconds: 60,
                target: None
            })
        );
        assert_eq!(
            Options::parse(&["--seconds", "5", "--target", "hints"]),
            Ok(Options {
                seconds: 5,
                target: Some("hints".to_owned())
            })
        );
        assert!(Options::parse(&["--seconds"]).is_err());
        assert!(Options::parse(&["--seconds", "0"]).is_err());
        assert!(Options::parse(&["--seconds", "-3"]).is_err());
        assert!(Options::parse(&["--quick"]).is_err());
    }

    #[test]
    fn nightly_is_found_only_undated() {
        let listed = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                      nightly-x86_64-unknown-linux-gnu\n1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(lists_nightly(listed));
        assert!(!lists_nightly(
            "stable-x86_64-unknown-linux-gnu (default)\n"
        ));
        assert!(!lists_nightly(
            "nightly-2026-05-01-x86_64-unknown-linux-gnu\n"
        ));
        assert!(!lists_nightly(""));
    }

    #[test]
    fn the_declared_targets_are_found() {
        let targets = targets(&crate::workspace_root().join("fuzz")).unwrap();
        for expected in [
            "hints",
            "error_body",
            "sse_assembler",
            "config_toml",
            "admit_decide",
        ] {
            assert!(targets.iter().any(|t| t == expected), "{targets:?}");
        }
        for target in &targets {
            let seeds = crate::workspace_root().join("fuzz/corpus").join(target);
            assert!(
                fs::read_dir(&seeds).is_ok_and(|mut dir| dir.next().is_some()),
                "fuzz target {target} has no committed seeds in {}",
                seeds.display()
            );
        }
    }

    #[test]
    fn a_clean_run_is_read() {
        let log = "INFO: Running with entropic power schedule (0xFF, 100).\n\
                   #170852\tDONE   cov: 3525 ft: 11023 corp: 1342/438Kb exec/s: 8135 rss: 477Mb\n\
                   Done 170852 runs in 21 second(s)\n\
                   stat::number_of_executed_units: 170852\n\
                   stat::average_exec_per_sec:     8135\n";
        assert_eq!(
            parse_log(log),
            Stats {
                runs: Some(170_852),
                artifact: None,
                crash: None
            }
        );
    }

    #[test]
    fn a_crash_is_read() {
        let log = "thread '<unnamed>' panicked at fuzz_targets/hints.rs:61:9:\n\
                   Retry-After \"7\" read as 7s but no hint\n\
                   ==4242== ERROR: libFuzzer: deadly signal\n\
                   MS: 2 ChangeBit-InsertByte-; base unit: 0123\n\
                   artifact_prefix='/work/main/fuzz/artifacts/hints/'; Test unit written to \
                   /work/main/fuzz/artifacts/hints/crash-da39a3ee\n\
                   stat::number_of_executed_units: 99\n";
        let stats = parse_log(log);
        assert_eq!(stats.runs, Some(99));
        assert_eq!(
            stats.artifact,
            Some(PathBuf::from(
                "/work/main/fuzz/artifacts/hints/crash-da39a3ee"
            ))
        );
        assert_eq!(
            stats.crash.as_deref(),
            Some(
                "panicked at fuzz_targets/hints.rs:61:9: Retry-After \"7\" read as 7s but no hint"
            )
        );
        let report = Report {
            target: "hints".to_owned(),
            elapsed: Duration::from_secs(3),
            stats,
            success: false,
            log: PathBuf::from("fuzz/target/xtask-logs/hints.log"),
        };
        assert!(report.failed());
        let text = report.to_string();
        assert!(text.starts_with("hints: 1 crash"), "{text}");
        assert!(text.contains("crash-da39a3ee"), "{text}");
    }
}
