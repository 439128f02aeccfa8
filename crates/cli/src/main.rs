//! `novita`: the command-line face of the project.
//!
//! `novita explain CODE [REASON]` prints what a Novita API error means and how a client
//! following the catalog reacts to it; `novita explain --all` prints the whole table.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod exit;
mod explain;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(args) => explain::run(&args),
    };
    match result {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`novita explain --all | head`) is not an error worth reporting.
            let _ = stdout.write_all(report.text.as_bytes());
            if let Some(note) = report.note {
                eprintln!("novita: note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("novita: error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
