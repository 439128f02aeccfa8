//! `novita`: the command-line face of the project.
//!
//! - `novita explain CODE [REASON]` prints what a Novita API error means and how a client
//!   following the catalog reacts; `novita explain --all` prints the whole table.
//! - `novita chat` sends one chat completion through either adapter, policy applied.
//! - `novita demo` plays every row of the behaviour table through both adapters against
//!   the embedded mock: no key, no network.
//! - `novita simulate` runs the fleet simulation comparing retry strategies.
//! - `novita mock` runs the demo's fault server on its own, one scenario at a time.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat;
mod demo;
mod exit;
mod explain;
mod mock;
mod simulate;
mod style;

/// Novita API errors, explained and handled.
#[derive(Debug, Parser)]
#[command(name = "novita", version, about, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explain an error status (optionally refined by Novita's `reason`), or list them all.
    Explain(explain::Args),
    /// Send one chat completion (reads NOVITA_API_KEY and NOVITA_BASE_URL).
    Chat(chat::Args),
    /// Play every error scenario through both adapters against a built-in mock server.
    Demo(demo::Args),
    /// Compare retry strategies in a deterministic fleet simulation (virtual time).
    Simulate(simulate::Args),
    /// Run the demo's mock Novita API on its own, with one scenario's faults, and print its
    /// base URL.
    Mock(mock::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain(args) => match explain::run(&args) {
            Ok(report) => {
                print(&report.text);
                if let Some(note) = report.note {
                    eprintln!("novita: note: {note}");
                }
                ExitCode::from(exit::SUCCESS)
            }
            Err(error) => fail(&error.to_string(), error.exit_code()),
        },
        Command::Chat(args) => match chat::run(&args) {
            Ok(()) => ExitCode::from(exit::SUCCESS),
            Err(failure) => fail(&failure.advice(), failure.exit_code()),
        },
        Command::Demo(args) => match demo::run(&args) {
            Ok(outcome) => {
                print(&outcome.report);
                demo::linger(&args);
                let code = if outcome.all_as_designed {
                    exit::SUCCESS
                } else {
                    exit::DEMO_DEVIATION
                };
                ExitCode::from(code)
            }
            Err(message) => fail(&message, exit::CONFIG),
        },
        Command::Mock(args) => {
            if mock::wants_list(&args) {
                print(&mock::list());
                return ExitCode::from(exit::SUCCESS);
            }
            match mock::start(&args) {
                Ok((_server, banner)) => {
                    print(&banner);
                    let _ = std::io::stdout().flush();
                    // The server runs on its own thread until the process is interrupted.
                    loop {
                        std::thread::park();
                    }
                }
                Err(mock::Failure::UnknownScenario(message)) => fail(&message, exit::USAGE),
                Err(mock::Failure::Start(message)) => fail(&message, exit::CONFIG),
            }
        }
        Command::Simulate(args) => match simulate::run(&args) {
            Ok(report) => {
                print(&report);
                ExitCode::from(exit::SUCCESS)
            }
            Err(error) => fail(&error.to_string(), error.exit_code()),
        },
    }
}

/// Writes to stdout; a closed pipe (`novita explain --all | head`) is not worth reporting.
fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("novita: error: {message}");
    ExitCode::from(code)
}
