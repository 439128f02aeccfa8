//! `novita chat`: one chat completion through either adapter, with the policy applied.

use std::io::Write as _;
use std::path::PathBuf;

use novita_core::wire::{ChatChunk, ChatCompletion, ChatRequest};
use novita_core::{Answer, Error as CallError, Report};

use crate::exit;

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
    /// Print every attempt and decision on stderr as it happens.
    #[arg(short, long)]
    verbose: bool,
    /// The prompt.
    prompt: String,
}

/// Why `chat` failed, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    PolicyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    Call(CallError),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::PolicyFile { .. } => exit::CONFIG,
            Failure::Call(error) => exit::for_error(error),
        }
    }

    /// What to print on stderr: for a give-up, the full advice.
    pub(crate) fn advice(&self) -> String {
        match self {
            Failure::PolicyFile { path, source } => {
                format!("cannot read policy file {}: {source}", path.display())
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
    if args.verbose {
        init_tracing();
    }
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
    let request = ChatRequest::new(&args.model, &args.prompt);
    if args.blocking {
        run_blocking(args, policy, &request)
    } else {
        run_async(args, policy, &request)
    }
}

fn run_blocking(args: &Args, policy: Option<String>, request: &ChatRequest) -> Result<(), Failure> {
    let mut builder = novita_ureq::Client::builder().fallback_models(args.fallback_models.clone());
    if let Some(policy) = policy {
        builder = builder.policy_toml(policy);
    }
    let client = builder.build()?;
    if args.stream {
        let mut stream = client.chat_stream(request)?;
        let mut printer = StreamPrinter::new();
        for chunk in stream.by_ref() {
            printer.print(chunk)?;
        }
        printer.finish();
        report(args, stream.report());
    } else {
        print_answer(args, &client.chat(request)?);
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
        let client = builder.build()?;
        if args.stream {
            let mut stream = client.chat_stream(request).await?;
            let mut printer = StreamPrinter::new();
            while let Some(chunk) = stream.next_chunk().await {
                printer.print(chunk)?;
            }
            printer.finish();
            report(args, stream.report());
        } else {
            print_answer(args, &client.chat(request).await?);
        }
        Ok(())
    })
}

/// Prints a streamed answer as it arrives, for either adapter's stream.
struct StreamPrinter {
    stdout: std::io::StdoutLock<'static>,
}

impl StreamPrinter {
    fn new() -> Self {
        Self {
            stdout: std::io::stdout().lock(),
        }
    }

    /// Prints one chunk; a broken stream ends the line and hands back its error.
    fn print(&mut self, chunk: Result<ChatChunk, CallError>) -> Result<(), CallError> {
        // A closed stdout (`novita chat ... | head`) is not worth reporting.
        match chunk {
            Ok(chunk) => {
                let _ = write!(self.stdout, "{}", chunk.text());
                let _ = self.stdout.flush();
                Ok(())
            }
            Err(error) => {
                let _ = writeln!(self.stdout);
                Err(error)
            }
        }
    }

    fn finish(mut self) {
        let _ = writeln!(self.stdout);
    }
}

fn print_answer(args: &Args, answer: &Answer<ChatCompletion>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", answer.text());
    report(args, &answer.report);
}

fn report(args: &Args, report: &Report) {
    if args.verbose || report.fell_back_from.is_some() {
        eprintln!("novita: {report}");
    }
}

/// Attempts and decisions on stderr: the `tracing` events of every call (target `novita`)
/// at debug level.
fn init_tracing() {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target(novita_core::TRACING_TARGET, tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    use tracing_subscriber::layer::SubscriberExt as _;
    let _ = tracing::subscriber::set_global_default(subscriber.with(filter));
}
