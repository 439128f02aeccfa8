//! `novita chat`: one chat completion through either adapter, with the policy applied.
//!
//! What it prints is in [`output`]: the text, tool calls and refusals on stdout (or the
//! whole completion as JSON), the reasoning on stderr when asked. Tools come from a JSON
//! file ([`tools`]).

use std::path::PathBuf;

use novita_core::wire::{ChatRequest, Tool, ToolChoice};
use novita_core::{Error as CallError, Report};

use crate::exit;

mod output;
mod tools;

pub(crate) use output::tool_call_line;
use output::{Show, StreamPrinter};

/// Arguments of `novita chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model to ask, such as deepseek/deepseek-v3.
    #[arg(long)]
    model: String,
    /// A model to fall back to when the first keeps failing; repeat for more, in order.
    #[arg(long = "fallback-model", value_name = "MODEL")]
    fallback_models: Vec<String>,
    /// Print the answer as it is generated.
    #[arg(long)]
    stream: bool,
    /// Use the blocking adapter (novita-ureq) instead of the async one (novita-reqwest).
    #[arg(long)]
    blocking: bool,
    /// A policy file (TOML); see novita-policy's PolicyConfig for the keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Offer the model the tools defined in FILE (JSON); tool calls print as
    /// `tool call ID: NAME(ARGUMENTS)`.
    ///
    /// FILE holds a JSON array of OpenAI tool objects ({"type": "function", "function":
    /// {"name": ...}}) or of bare function definitions ({"name": ..., "description": ...,
    /// "parameters": {...}}), mixed as you like. Each tool call the model makes is printed
    /// on stdout, after any text, as one line: `tool call ID: NAME(ARGUMENTS)`, the
    /// arguments being the JSON the model wrote (line breaks turned into spaces).
    #[arg(long, value_name = "FILE")]
    tools: Option<PathBuf>,
    /// Whether the model must call a tool: auto (it decides), none, required, or the name
    /// of the function to call.
    #[arg(
        long,
        value_name = "CHOICE",
        requires = "tools",
        value_parser = tools::parse_choice
    )]
    tool_choice: Option<ToolChoice>,
    /// Show a reasoning model's reasoning on stderr, before the answer.
    ///
    /// The reasoning of a model such as deepseek/deepseek-r1 goes to stderr between
    /// `[reasoning]` and `[end of reasoning]` lines, before the answer (with --stream, as it
    /// arrives), so stdout keeps only the answer.
    #[arg(long)]
    reasoning: bool,
    /// Print the whole answer as one JSON document (the chat.completion object).
    ///
    /// It replaces the text and tool-call lines on stdout. With --stream it is the
    /// completion reassembled from the chunks, printed once the stream has ended, so both
    /// deliveries print the same kind of document.
    #[arg(long)]
    json: bool,
    /// Share the policy's state (server hints, breakers, maintenance marks, limits, the
    /// retry budget) with every client of the same key on this Redis, other `novita`
    /// processes included: `redis://[:PASSWORD@]HOST[:PORT][/DB]`. Redis in trouble never
    /// fails the call.
    #[arg(long, value_name = "URL", env = REDIS_URL_VAR, hide_env_values = true)]
    redis: Option<String>,
    /// Print every attempt and decision on stderr as it happens.
    #[arg(short, long)]
    verbose: bool,
    /// The prompt.
    prompt: String,
}

impl Args {
    fn show(&self) -> Show {
        Show {
            json: self.json,
            reasoning: self.reasoning,
        }
    }
}

/// Why `chat` failed, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    PolicyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The tools file cannot be read or is not an array of tools; the message says which.
    ToolsFile(String),
    /// The Redis URL cannot be used (the message never shows its password).
    Redis(String),
    /// The command line contradicts itself (a `--tool-choice` no tool answers to).
    Usage(String),
    Call(CallError),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::PolicyFile { .. } | Failure::ToolsFile(_) | Failure::Redis(_) => exit::CONFIG,
            Failure::Usage(_) => exit::USAGE,
            Failure::Call(error) => exit::for_error(error),
        }
    }

    /// What to print on stderr: for a give-up, the full advice.
    pub(crate) fn advice(&self) -> String {
        match self {
            Failure::PolicyFile { path, source } => {
                format!("cannot read policy file {}: {source}", path.display())
            }
            Failure::ToolsFile(message) | Failure::Usage(message) | Failure::Redis(message) => {
                message.clone()
            }
            Failure::Call(error) => error.advice(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(error: CallError) -> Self {
        Failure::Call(error)
    }
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    init_tracing(args.verbose);
    let policy = match &args.config {
        Some(path) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| Failure::PolicyFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let request = request(args)?;
    if args.blocking {
        run_blocking(args, policy, &request)
    } else {
        run_async(args, policy, &request)
    }
}

/// The request `args` describe, with the tools of `--tools`.
fn request(args: &Args) -> Result<ChatRequest, Failure> {
    let mut request = ChatRequest::new(&args.model, &args.prompt);
    if let Some(path) = &args.tools {
        let tools: Vec<Tool> = tools::load(path).map_err(Failure::ToolsFile)?;
        if let Some(choice) = &args.tool_choice {
            tools::check_choice(choice, &tools, path).map_err(Failure::Usage)?;
            request = request.tool_choice(choice.clone());
        }
        request = request.tools(tools);
    }
    Ok(request)
}

fn run_blocking(args: &Args, policy: Option<String>, request: &ChatRequest) -> Result<(), Failure> {
    let mut builder = novita_ureq::Client::builder().fallback_models(args.fallback_models.clone());
    if let Some(policy) = policy {
        builder = builder.policy_toml(policy);
    }
    if let Some(store) = store(args)? {
        builder = builder.store(store);
    }
    let client = builder.build()?;
    if args.stream {
        let mut stream = client.chat_stream(request)?;
        let mut printer = StreamPrinter::new(args.show(), stream.model());
        for chunk in stream.by_ref() {
            printer.print(chunk)?;
        }
        printer.finish();
        report(args, stream.report());
    } else {
        let answer = client.chat(request)?;
        output::print_completion(args.show(), &answer);
        report(args, &answer.report);
    }
    Ok(())
}

fn run_async(args: &Args, policy: Option<String>, request: &ChatRequest) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CallError::Client(Box::new(error)))?;
    runtime.block_on(async {
        let mut builder =
            novita_reqwest::Client::builder().fallback_models(args.fallback_models.clone());
        if let Some(policy) = policy {
            builder = builder.policy_toml(policy);
        }
        if let Some(store) = store(args)? {
            builder = builder.store(store);
        }
        let client = builder.build()?;
        if args.stream {
            let mut stream = client.chat_stream(request).await?;
            let mut printer = StreamPrinter::new(args.show(), stream.model());
            while let Some(chunk) = stream.next_chunk().await {
                printer.print(chunk)?;
            }
            printer.finish();
            report(args, stream.report());
        } else {
            let answer = client.chat(request).await?;
            output::print_completion(args.show(), &answer);
            report(args, &answer.report);
        }
        Ok(())
    })
}

/// The variable `--redis` falls back to.
pub(crate) const REDIS_URL_VAR: &str = "NOVITA_REDIS_URL";

/// The shared state store `--redis` (or `NOVITA_REDIS_URL`) names, if any.
fn store(args: &Args) -> Result<Option<novita_redis::RedisStore>, Failure> {
    args.redis
        .as_deref()
        .filter(|url| !url.trim().is_empty())
        .map(|url| {
            novita_redis::RedisStore::open(url.trim())
                .map_err(|error| Failure::Redis(format!("--redis / {REDIS_URL_VAR}: {error}")))
        })
        .transpose()
}

fn report(args: &Args, report: &Report) {
    if args.verbose || report.fell_back_from.is_some() {
        eprintln!("novita: {report}");
    }
}

/// Attempts and decisions on stderr: the `tracing` events of every call (target `novita`)
/// at debug level.
/// Logs to stderr: what `RUST_LOG` asks for, and with `-v` every attempt and decision
/// (`novita=debug`) on top; nothing when neither is given. Colour only on a terminal and
/// never with `NO_COLOR` set (<https://no-color.org>).
fn init_tracing(verbose: bool) {
    use std::io::IsTerminal as _;

    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty());
    if from_env.is_none() && !verbose {
        return;
    }
    let mut filter = tracing_subscriber::EnvFilter::new(from_env.unwrap_or_default());
    if verbose {
        let directive = format!("{}=debug", novita_core::TRACING_TARGET);
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .with_env_filter(filter)
        .try_init();
}
