//! `cargo xtask bench [--quick]`: runs the criterion benchmarks and the fleet simulation,
//! and regenerates `docs/BENCHMARKS.md` from what they measured.
//!
//! Figures are medians from criterion's own estimates, and the adapter overhead is a ratio
//! of two benchmarks run side by side in one process, so the numbers compare like with like
//! on a shared, noisy machine. Targets are checked here and reported as met or missed with
//! the margin; nothing is asserted in tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{fmt, fs, io};

/// Where the report goes, relative to the workspace root.
pub(crate) const REPORT: &str = "docs/BENCHMARKS.md";

/// The criterion benchmarks the report reads, as (package, bench target).
const BENCHES: &[(&str, &str)] = &[
    ("novita-catalog", "lookup"),
    ("novita-policy", "decide"),
    ("novita-ureq", "overhead"),
    ("novita-reqwest", "overhead"),
];

/// Why the bench run failed.
#[derive(Debug)]
pub(crate) enum Error {
    Command { what: String, status: Option<i32> },
    Io { path: PathBuf, source: io::Error },
    Missing { id: String },
    Parse { path: PathBuf, problem: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Command { what, status } => match status {
                Some(code) => write!(f, "`{what}` failed with exit code {code}"),
                None => write!(f, "`{what}` was killed by a signal"),
            },
            Error::Io { path, source } => write!(f, "cannot access {}: {source}", path.display()),
            Error::Missing { id } => {
                write!(f, "no criterion estimate for {id}; did its benchmark run?")
            }
            Error::Parse { path, problem } => {
                write!(f, "cannot read {}: {problem}", path.display())
            }
        }
    }
}

/// Runs everything and writes the report; `quick` asks criterion for short runs.
pub(crate) fn run(root: &Path, quick: bool) -> Result<PathBuf, Error> {
    for (package, bench) in BENCHES {
        let mut args = vec!["bench", "-p", package, "--bench", bench, "--"];
        if quick {
            args.push("--quick");
        }
        cargo(root, &args)?;
    }
    let mut interleaved = Vec::new();
    for (package, example) in [
        ("novita-ureq", "ureq_overhead"),
        ("novita-reqwest", "reqwest_overhead"),
    ] {
        let line = cargo_output(
            root,
            &[
                "run",
                "--release",
                "-q",
                "-p",
                package,
                "--example",
                example,
            ],
        )?;
        interleaved.push(Interleaved::parse(line.trim()).ok_or_else(|| Error::Parse {
            path: PathBuf::from(format!("{package} --example {example}")),
            problem: format!("unexpected output {:?}", line.trim()),
        })?);
    }
    let simulation = cargo_output(
        root,
        &[
            "run",
            "--release",
            "-q",
            "-p",
            "novita-cli",
            "--",
            "simulate",
            "--markdown",
            "--clients",
            "200",
        ],
    )?;
    let medians = Medians {
        root: root.join("target/criterion"),
    };
    let report = render(&medians, &interleaved, &simulation, quick)?;
    let path = root.join(REPORT);
    fs::create_dir_all(path.parent().expect("the report has a folder")).map_err(|source| {
        Error::Io {
            path: path.clone(),
            source,
        }
    })?;
    fs::write(&path, report).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(PathBuf::from(REPORT))
}

fn cargo(root: &Path, args: &[&str]) -> Result<(), Error> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|source| Error::Io {
            path: PathBuf::from("cargo"),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            what: format!("cargo {}", args.join(" ")),
            status: status.code(),
        })
    }
}

fn cargo_output(root: &Path, args: &[&str]) -> Result<String, Error> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|source| Error::Io {
            path: PathBuf::from("cargo"),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            what: format!("cargo {}", args.join(" ")),
            status: output.status.code(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Median nanoseconds per call from an adapter's interleaved overhead example.
struct Interleaved {
    raw: f64,
    raw_timeout: f64,
    ours: f64,
}

impl Interleaved {
    /// Reads `raw=NS raw_timeout=NS ours=NS`.
    fn parse(line: &str) -> Option<Self> {
        let mut values = [None; 3];
        for pair in line.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            let slot = ["raw", "raw_timeout", "ours"]
                .iter()
                .position(|name| *name == key)?;
            values[slot] = Some(value.parse().ok()?);
        }
        Some(Self {
            raw: values[0]?,
            raw_timeout: values[1]?,
            ours: values[2]?,
        })
    }
}

/// Criterion's median estimates, read from `target/criterion/<group>/<bench>/new/estimates.json`.
struct Medians {
    root: PathBuf,
}

impl Medians {
    /// The median time of benchmark `id` (`group/bench`), in nanoseconds.
    fn nanos(&self, id: &str) -> Result<f64, Error> {
        let path = self.root.join(id).join("new/estimates.json");
        let text = fs::read_to_string(&path).map_err(|_| Error::Missing { id: id.to_owned() })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| Error::Parse {
                path: path.clone(),
                problem: error.to_string(),
            })?;
        value["median"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| Error::Parse {
                path,
                problem: "no median point estimate".to_owned(),
            })
    }
}

fn render(
    medians: &Medians,
    interleaved: &[Interleaved],
    simulation: &str,
    quick: bool,
) -> Result<String, Error> {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `cargo xtask bench{}` on {}; do not edit by hand (the notes at the end \
         come from `xtask/src/bench_notes.md`). Medians from criterion; ratios from two \
         benchmarks run side by side in one process. The machine is shared and noisy: compare \
         ratios, not absolute times, across runs.\n",
        if quick { " --quick" } else { "" },
        machine()
    );

    let _ = writeln!(w, "## Catalog and policy\n");
    let _ = writeln!(w, "| benchmark | median |");
    let _ = writeln!(w, "|---|---|");
    for id in [
        "catalog/lookup_status",
        "catalog/lookup_reason",
        "catalog/lookup_unknown_reason",
        "decide/success",
        "decide/503",
        "decide/429_retry_after",
    ] {
        let _ = writeln!(w, "| `{id}` | {} |", nanos(medians.nanos(id)?));
    }

    let _ = writeln!(
        w,
        "\n## Adapter overhead on the success path (loopback, `novita-mock`)\n"
    );
    let _ = writeln!(
        w,
        "Each adapter against a raw client doing the same JSON work, bare and with the same \
         120 s request timeout the adapter sets (Novita advises timeouts above 60 s). The three \
         run interleaved, call after call, 4000 rounds (`cargo run --release -p novita-ureq \
         --example ureq_overhead`, `-p novita-reqwest --example reqwest_overhead`); medians per call. The overhead is \
         measured against the raw client with the timeout: the timeout's own cost belongs to \
         the HTTP client, not to the policy.\n"
    );
    let _ = writeln!(
        w,
        "| adapter | raw | raw + timeout | with the policy | overhead | vs bare raw |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    let mut overheads = Vec::new();
    for (name, run) in ["blocking (ureq)", "async (reqwest)"]
        .into_iter()
        .zip(interleaved)
    {
        let overhead = (run.ours / run.raw_timeout - 1.0) * 100.0;
        let versus_bare = (run.ours / run.raw - 1.0) * 100.0;
        overheads.push((name, overhead));
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} | {overhead:+.1} % | {versus_bare:+.1} % |",
            nanos(run.raw),
            nanos(run.raw_timeout),
            nanos(run.ours)
        );
    }
    let _ = writeln!(
        w,
        "\nThe same comparisons as criterion benchmarks, run one after another (medians; drift \
         between them is noise):\n"
    );
    let _ = writeln!(w, "| benchmark | median |");
    let _ = writeln!(w, "|---|---|");
    for id in [
        "blocking/raw_ureq",
        "blocking/raw_ureq_timeout",
        "blocking/novita_ureq",
        "async/raw_reqwest",
        "async/raw_reqwest_timeout",
        "async/novita_reqwest",
    ] {
        let _ = writeln!(w, "| `{id}` | {} |", nanos(medians.nanos(id)?));
    }

    let _ = writeln!(w, "\n## Fleet simulation\n");
    let _ = writeln!(
        w,
        "`cargo run --release -p novita-cli -- simulate --clients 200` (virtual time, seed 42). \
         Amplification is requests sent per successful call; outage load is requests received \
         during the outage relative to a client that never retries.\n"
    );
    let _ = writeln!(w, "{}", simulation.trim());

    let _ = writeln!(w, "\n## Targets\n");
    let _ = writeln!(w, "| target | measured | verdict |");
    let _ = writeln!(w, "|---|---|---|");
    let decide = medians.nanos("decide/success")?;
    let _ = writeln!(
        w,
        "| decision < 100 ns, no allocation | {} (allocation-free: see `crates/policy/tests/allocations.rs`) | {} |",
        nanos(decide),
        verdict(decide < 100.0, decide, 100.0, " ns")
    );
    for (name, overhead) in overheads {
        let _ = writeln!(
            w,
            "| adapter overhead ≤ 5 % ({name}) | {overhead:+.1} % | {} |",
            verdict(overhead <= 5.0, overhead, 5.0, " %")
        );
    }
    let _ = writeln!(
        w,
        "| outage load ≤ 1.2× no-retry (naive ≥ 3×), zero Retry-After violations, ≥ 99.9 % \
         success under 30 % 503s, p99 no worse than the best peer | see the simulation tables \
         above | read per scenario |"
    );

    let notes = include_str!("bench_notes.md");
    let _ = writeln!(w, "\n{}", notes.trim());
    Ok(out)
}

fn verdict(met: bool, measured: f64, target: f64, unit: &str) -> String {
    if met {
        "met".to_owned()
    } else {
        format!("missed by {:.1}{unit}", measured - target)
    }
}

fn nanos(value: f64) -> String {
    if value < 1_000.0 {
        format!("{value:.1} ns")
    } else if value < 1_000_000.0 {
        format!("{:.2} µs", value / 1_000.0)
    } else {
        format!("{:.2} ms", value / 1_000_000.0)
    }
}

/// A short description of the machine and toolchain the figures come from.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc (unknown version)".to_owned());
    format!("a {cores}-core machine with {rustc}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_read_naturally() {
        assert_eq!(nanos(12.34), "12.3 ns");
        assert_eq!(nanos(45_600.0), "45.60 µs");
        assert_eq!(nanos(3_200_000.0), "3.20 ms");
    }

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(verdict(true, 50.0, 100.0, " ns"), "met");
        assert_eq!(verdict(false, 7.25, 5.0, " %"), "missed by 2.2 %");
    }

    #[test]
    fn interleaved_lines_are_read_strictly() {
        let run = Interleaved::parse("raw=100 raw_timeout=120 ours=125").unwrap();
        assert!((run.ours / run.raw_timeout - 1.0 - 0.041_666).abs() < 1e-3);
        assert!(Interleaved::parse("raw=100 ours=125").is_none());
        assert!(Interleaved::parse("raw=x raw_timeout=1 ours=1").is_none());
        assert!(Interleaved::parse("speed=1 raw=1 raw_timeout=1 ours=1").is_none());
    }

    #[test]
    fn missing_estimates_name_the_benchmark() {
        let medians = Medians {
            root: std::env::temp_dir().join("novita-no-such-criterion-dir"),
        };
        let error = medians.nanos("decide/success").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no criterion estimate for decide/success; did its benchmark run?"
        );
    }
}
