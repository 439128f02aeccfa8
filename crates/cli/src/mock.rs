//! `novita mock`: the demo's fault server on its own, for testing other programs (in any
//! language) against Novita's errors without a key or a network.

use std::fmt::Write as _;

use novita_mock::{MockServer, Route};

use crate::demo::{MockSetup, mock_setups};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serve this scenario of the demo (see --list); without it, every call is answered
    #[arg(long, value_name = "NAME", conflicts_with = "list")]
    scenario: Option<String>,
    /// Listen on this port of 127.0.0.1 (default: a free one)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    port: u16,
    /// List the scenarios the demo plays, one per line, and exit
    #[arg(long)]
    list: bool,
}

/// Why the mock could not start: an unknown scenario (a usage error) or a port in use.
pub(crate) enum Failure {
    UnknownScenario(String),
    Start(String),
}

/// The list of scenarios, for `--list`.
pub(crate) fn list() -> String {
    let setups = mock_setups();
    let width = setups
        .iter()
        .map(|setup| setup.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for setup in setups {
        let _ = writeln!(out, "{:<width$}  {}", setup.name, setup.title);
    }
    out
}

/// Whether `--list` was asked for.
pub(crate) fn wants_list(args: &Args) -> bool {
    args.list
}

/// Starts the server with the scenario's faults and returns it with what to print.
pub(crate) fn start(args: &Args) -> Result<(MockServer, String), Failure> {
    let setup = match &args.scenario {
        None => None,
        Some(name) => Some(
            mock_setups()
                .into_iter()
                .find(|setup| setup.name == *name)
                .ok_or_else(|| {
                    Failure::UnknownScenario(format!(
                        "no scenario {name:?}; `novita mock --list` lists them"
                    ))
                })?,
        ),
    };
    let server = MockServer::builder()
        .port(args.port)
        .try_start()
        .map_err(|error| {
            Failure::Start(format!("cannot listen on 127.0.0.1:{}: {error}", args.port))
        })?;
    let mut out = String::new();
    let _ = writeln!(out, "base URL: {}", server.base_url());
    let _ = writeln!(out, "API key:  {}", server.api_key());
    let _ = writeln!(out, "models:   {}", server.models().join(", "));
    match setup {
        None => {
            let _ = writeln!(out, "scenario: none (every call is answered)");
        }
        Some(MockSetup {
            title,
            model,
            faults,
            rules,
            client_note,
            ..
        }) => {
            let queued = faults.len();
            server.script(Route::ChatCompletions, Some(model), faults);
            let conditional = rules.len();
            for rule in rules {
                server.rule(rule);
            }
            let _ = writeln!(
                out,
                "scenario: {title}: {queued} queued fault(s) for chat calls to {model}, then \
                 normal answers; {conditional} standing rule(s)"
            );
            if let Some(note) = client_note {
                let _ = writeln!(out, "note:     {note}");
            }
        }
    }
    let _ = writeln!(out, "serving until interrupted (Ctrl-C)");
    Ok((server, out))
}
