//! A loopback Novita-compatible HTTP server with scripted faults.
//!
//! [`MockServer`] speaks enough of Novita's OpenAI-compatible API (chat completions with and
//! without streaming, text completions, the model list) on `127.0.0.1` for integration tests,
//! the CLI demo and benchmarks to run without an API key or a network. Tests script failures
//! with [`Fault`] values (error statuses and bodies, `Retry-After` forms, delays, slow bodies,
//! connection resets, broken streams, bodies written in pseudo-random pieces), queued per
//! request or handed out by a [`Rule`] (a time window, a seeded share of requests, buffered
//! or streamed only, each call's first attempt), and inspect what the server received with
//! [`MockServer::requests`].
//!
//! Chat answers cover the OpenAI-compatible payload shapes: a request with `tools` gets a
//! tool call (`finish_reason: "tool_calls"`) unless `tool_choice` is `"none"` or the last
//! message is a tool result; a reasoning model (an id containing `r1`, such as
//! `deepseek/deepseek-r1`) adds `reasoning_content` and `reasoning_tokens`; `n` asks for
//! several choices; [`Fault::completion`] serves any completion a test writes. Every chat
//! answer is built as the buffered `chat.completion` first, and a streamed answer is always
//! [`chat_chunks`] of it, so the two agree exactly; [`chat_chunks`] documents the rules of
//! that disassembly, for clients whose stream assemblers implement the inverse.
//!
//! The server runs on its own thread with its own tokio runtime, so it works the same from
//! plain `#[test]` functions and from async tests; dropping it shuts it down.
//!
//! ```
//! use novita_mock::{Fault, MockServer, Route};
//!
//! let server = MockServer::start();
//! server.script(
//!     Route::ChatCompletions,
//!     None,
//!     [Fault::status(503), Fault::status(429).retry_after_secs(2)],
//! );
//! // Point a client at `server.base_url()` with `server.api_key()`: the first call gets 503,
//! // the second 429 with `Retry-After: 2`, and later calls succeed.
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! ```

#[cfg(feature = "proptest")]
pub mod arbitrary;
mod body;
mod book;
mod chunks;
mod fault;
mod openai;
mod record;
mod rule;
mod seeded;
mod server;
#[cfg(feature = "tls")]
pub mod tls;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use chunks::{STREAM_PIECE_CHARS, chat_chunks, sse_body};
pub use fault::Fault;
pub use record::{RecordedRequest, Route};
pub use rule::Rule;

use server::{Config, Shared};

/// The API key a default server accepts, so tests and demos need no real credentials.
pub const DEFAULT_API_KEY: &str = "sk_mock_key";

/// The path prefix a default server serves its routes under, matching Novita's base URL.
pub const DEFAULT_PREFIX: &str = "/openai/v1";

/// The models a default server knows; requests for any other model get 404 `MODEL_NOT_FOUND`.
///
/// The last one, `deepseek/deepseek-r1`, is a reasoning model: like every model whose id
/// contains `r1`, it answers with `reasoning_content` before the content.
pub const DEFAULT_MODELS: [&str; 4] = [
    "meta-llama/llama-3.1-8b-instruct",
    "deepseek/deepseek-v3",
    "qwen/qwen-2.5-72b-instruct",
    "deepseek/deepseek-r1",
];

/// A running mock server on a loopback port; dropping it stops the server and joins its thread.
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server with the default key, prefix and models, panicking if it cannot bind.
    pub fn start() -> MockServer {
        Builder::default().start()
    }

    /// Returns a builder to change the key, prefix, models or latency before starting.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The base URL clients should use, prefix included (e.g. `http://127.0.0.1:41234/openai/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.config.prefix)
    }

    /// The loopback address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key the server accepts as `Authorization: Bearer <key>`.
    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// The models the server knows, in the order `GET /models` lists them.
    pub fn models(&self) -> &[String] {
        &self.shared.config.models
    }

    /// Queues faults for a route: each matching request consumes the next one, in order, and
    /// normal behaviour resumes once the queue is empty.
    ///
    /// With `model: Some(m)` only requests whose body names model `m` match; with `None` any
    /// request on the route does. Calling this again for the same route and model appends.
    pub fn script(
        &self,
        route: Route,
        model: Option<&str>,
        faults: impl IntoIterator<Item = Fault>,
    ) {
        self.shared.faults().script(route, model, faults);
    }

    /// Makes every matching request get this fault until [`MockServer::clear_faults`]; queued
    /// faults from [`MockServer::script`] still take precedence.
    pub fn always(&self, route: Route, model: Option<&str>, fault: Fault) {
        self.shared.faults().always(route, model, fault);
    }

    /// Installs a conditional fault: every request meeting the [`Rule`]'s conditions gets its
    /// fault, until [`MockServer::clear_faults`]. Queued faults from [`MockServer::script`]
    /// take precedence; rules are consulted in the order they were added, before faults from
    /// [`MockServer::always`]. A rule's time window counts from this call.
    pub fn rule(&self, rule: Rule) {
        let installed = self.shared.elapsed();
        self.shared
            .faults()
            .rule(rule::ActiveRule::new(rule, installed));
    }

    /// Removes every queued, conditional and permanent fault, so all requests get normal
    /// answers again.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Every request received so far, in arrival order, with what the server answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log().clone()
    }

    /// Forgets the recorded requests, for tests that reuse one server across phases.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("base_url", &self.base_url())
            .field("models", &self.shared.config.models)
            .finish_non_exhaustive()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loop, which aborts open connections and returns.
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            // A panicked server thread must not turn into a panic (or abort) in `drop`.
            let _ = thread.join();
        }
    }
}

/// Configures a [`MockServer`] before it starts: API key, route prefix, known models, latency.
#[derive(Clone, Debug)]
pub struct Builder {
    config: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: Config {
                api_key: DEFAULT_API_KEY.to_owned(),
                prefix: DEFAULT_PREFIX.to_owned(),
                models: DEFAULT_MODELS.iter().map(|&m| m.to_owned()).collect(),
                latency: Duration::ZERO,
                port: 0,
            },
        }
    }
}

impl Builder {
    /// Sets the API key the server accepts (default [`DEFAULT_API_KEY`]).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = key.into();
        self
    }

    /// Sets the path prefix of every route, e.g. `/v3/openai` or `""` (default [`DEFAULT_PREFIX`]).
    ///
    /// A missing leading slash is added and a trailing slash removed.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let trimmed = prefix.trim_end_matches('/');
        self.config.prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Sets the models the server knows (default [`DEFAULT_MODELS`]).
    pub fn models(mut self, models: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Adds this wait before every normal answer, to give benchmarks and demos a realistic
    /// server time (default zero).
    ///
    /// It also applies to faults that answer with a success ([`Fault::ok`],
    /// [`Fault::completion`], [`Fault::slow_body`] and the stream faults), on top of their
    /// delay, but not to scripted errors, malformed bodies or resets.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.config.latency = latency;
        self
    }

    /// Listens on this port of 127.0.0.1 instead of a free one (default 0: any free port),
    /// for a server people point other programs at; tests should keep the default.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Starts the server, panicking if the loopback port or the runtime cannot be set up.
    pub fn start(self) -> MockServer {
        match self.try_start() {
            Ok(server) => server,
            Err(err) => panic!("novita-mock: cannot start the mock server: {err}"),
        }
    }

    /// Starts the server, returning the I/O error if the loopback port or runtime cannot be set up.
    pub fn try_start(self) -> io::Result<MockServer> {
        let running = server::spawn(self.config)?;
        Ok(MockServer {
            shared: running.shared,
            addr: running.addr,
            shutdown: Some(running.shutdown),
            thread: Some(running.thread),
        })
    }
}
