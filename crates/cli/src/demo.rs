//! `novita demo`: every row of the behaviour table, live, through both adapters, against
//! the embedded mock. Needs no API key and no network.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use comfy_table::{Cell, CellAlignment, ColumnConstraint, Width};
use novita_core::wire::{ChatCompletion, ChatRequest, FinishReason, Tool};
use novita_core::{Answer, Error as CallError, Report};
use novita_mock::{Fault, MockServer, RecordedRequest, Route, Rule};
use novita_policy::{PolicyConfig, Seconds};

mod fleet;

const MODEL: &str = novita_mock::DEFAULT_MODELS[0];
const FALLBACK: &str = novita_mock::DEFAULT_MODELS[1];
/// The mock's reasoning model: its answers carry `reasoning_content`.
const REASONING_MODEL: &str = "deepseek/deepseek-r1";
/// The prompt of every scenario but the tool-calling one.
const PROMPT: &str = "Explain retries in one sentence.";
/// The prompt of the tool-calling scenario.
const WEATHER_PROMPT: &str = "What is the weather in Paris?";

/// Arguments of `novita demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serve the clients' Prometheus metrics at http://ADDR/metrics while the demo runs
    /// (ADDR is IP:PORT, for example 127.0.0.1:9184)
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// With --metrics-addr: keep serving /metrics for SECS seconds after the report is
    /// printed, so the final numbers can be scraped
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        requires = "metrics_addr"
    )]
    metrics_linger: u64,
    /// Also play the several-worker scenarios: four clients, each with its own connection
    /// to this Redis (as four processes would have), share hints and limits
    /// (`redis://[:PASSWORD@]HOST[:PORT][/DB]`; also NOVITA_REDIS_URL)
    #[arg(
        long,
        value_name = "URL",
        env = crate::chat::REDIS_URL_VAR,
        hide_env_values = true
    )]
    redis: Option<String>,
}

/// Installs the Prometheus recorder with its HTTP listener on `addr` (on the exporter's own
/// background thread), before any client records.
fn serve_metrics(addr: &str) -> Result<(), String> {
    let socket: SocketAddr = addr.trim().parse().map_err(|_| {
        format!("invalid --metrics-addr {addr:?}: expected IP:PORT, such as 127.0.0.1:9184")
    })?;
    let failed = |error| format!("cannot serve metrics at {socket}: {error}");
    let mut builder =
        metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(socket);
    // Histograms, not the exporter's default summaries: buckets chosen per metric.
    for (name, buckets) in novita_core::metrics::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.to_owned()),
                buckets,
            )
            .map_err(failed)?;
    }
    builder.install().map_err(failed)?;
    eprintln!("metrics at http://{socket}/metrics");
    Ok(())
}

/// After the report is printed: keeps the process (and so `/metrics`) up for
/// `--metrics-linger` seconds when metrics are served.
pub(crate) fn linger(args: &Args) {
    if args.metrics_addr.is_some() && args.metrics_linger > 0 {
        eprintln!(
            "novita demo: serving metrics for {} more seconds",
            args.metrics_linger
        );
        std::thread::sleep(Duration::from_secs(args.metrics_linger));
    }
}

/// What a scenario is designed to end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Answer,
    GiveUp,
}

/// How the client of a scenario differs from the default one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Default,
    WrongKey,
    WithFallback,
    SmallBudget,
}

/// What a scenario's answer must show beyond arriving, checked on the answer and the
/// requests the mock recorded: the row's detail, or what is wrong.
type Check = fn(&Answer<ChatCompletion>, &[RecordedRequest]) -> Result<String, String>;

/// One row of the behaviour table, played against the mock.
struct Scenario {
    title: &'static str,
    /// Faults queued for the scenario's model, in order.
    faults: fn() -> Vec<Fault>,
    /// Faults handed out by condition, consulted after the queue.
    rules: fn() -> Vec<Rule>,
    variant: Variant,
    /// Calls to make (more than one to show an outage's effect on load).
    calls: usize,
    stream: bool,
    model: &'static str,
    /// Offer the model a `get_weather` tool (and ask about the weather).
    tools: bool,
    /// For buffered calls: what the answer must show, beyond arriving.
    check: Option<Check>,
    expected: Expected,
}

fn scenarios() -> Vec<Scenario> {
    let one = |title, faults, expected| Scenario {
        title,
        faults,
        rules: Vec::new,
        variant: Variant::Default,
        calls: 1,
        stream: false,
        model: MODEL,
        tools: false,
        check: None,
        expected,
    };
    vec![
        one(
            "400 bad request",
            || vec![Fault::status(400).message("max_tokens must be at most 4096")],
            Expected::GiveUp,
        ),
        Scenario {
            variant: Variant::WrongKey,
            ..one("401 wrong API key", Vec::new, Expected::GiveUp)
        },
        one(
            "403 not enough balance",
            || vec![Fault::status(403).reason("NOT_ENOUGH_BALANCE")],
            Expected::GiveUp,
        ),
        one(
            "403 identity not verified",
            || vec![Fault::status(403).reason("ACCESS_DENY")],
            Expected::GiveUp,
        ),
        Scenario {
            model: "no/such-model",
            ..one("404 unknown model", Vec::new, Expected::GiveUp)
        },
        one(
            "429 RPM, Retry-After: 1",
            || vec![Fault::status(429).retry_after_secs(1)],
            Expected::Answer,
        ),
        one(
            "429 TPM, retry-after-ms, repeated",
            || {
                vec![
                    Fault::status(429)
                        .reason("TOKEN_LIMIT_EXCEEDED")
                        .retry_after_ms(200);
                    2
                ]
            },
            Expected::Answer,
        ),
        one(
            "429 asks for an hour",
            || vec![Fault::status(429).retry_after_secs(3600)],
            Expected::GiveUp,
        ),
        Scenario {
            variant: Variant::WithFallback,
            ..one(
                "500 twice, fallback model",
                || vec![Fault::status(500); 2],
                Expected::Answer,
            )
        },
        Scenario {
            variant: Variant::WithFallback,
            ..one(
                "500 model in maintenance",
                || vec![Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
                Expected::Answer,
            )
        },
        one(
            "500 and no fallback",
            || vec![Fault::status(500).header("x-request-id", "req-demo-500"); 2],
            Expected::GiveUp,
        ),
        one(
            "503 three times",
            || vec![Fault::status(503); 3],
            Expected::Answer,
        ),
        one(
            "504 on a long call",
            || vec![Fault::status(504)],
            Expected::Answer,
        ),
        Scenario {
            model: REASONING_MODEL,
            rules: || {
                vec![
                    Rule::new(Route::ChatCompletions, Fault::status(504))
                        .model(REASONING_MODEL)
                        .buffered_only(),
                ]
            },
            tools: true,
            check: Some(tool_call_and_reasoning_whole),
            ..one(
                "504 tool call on a reasoning model",
                Vec::new,
                Expected::Answer,
            )
        },
        one(
            "418 undocumented",
            || vec![Fault::status(418).message("I'm a teapot")],
            Expected::GiveUp,
        ),
        one(
            "connection reset",
            || vec![Fault::reset()],
            Expected::Answer,
        ),
        Scenario {
            variant: Variant::SmallBudget,
            calls: 8,
            ..one(
                "full outage, 8 calls",
                || vec![Fault::status(503); 64],
                Expected::GiveUp,
            )
        },
        Scenario {
            stream: true,
            ..one(
                "error in mid-stream",
                || vec![Fault::stream_error_after(2)],
                Expected::GiveUp,
            )
        },
    ]
}

/// What the mock serves for one scenario of the demo, for `novita mock`.
pub(crate) struct MockSetup {
    /// The scenario's name on the command line: its title in lower case, words joined by
    /// `-` (`503 three times` is `503-three-times`).
    pub(crate) name: String,
    pub(crate) title: &'static str,
    /// The model the queued faults are for.
    pub(crate) model: &'static str,
    pub(crate) faults: Vec<Fault>,
    pub(crate) rules: Vec<Rule>,
    /// How a client must be set up to see what the demo shows, beyond the base URL and key.
    pub(crate) client_note: Option<&'static str>,
}

/// Every scenario the demo plays, as the mock serves it.
pub(crate) fn mock_setups() -> Vec<MockSetup> {
    scenarios()
        .into_iter()
        .map(|scenario| MockSetup {
            name: slug(scenario.title),
            title: scenario.title,
            model: scenario.model,
            faults: (scenario.faults)(),
            rules: (scenario.rules)(),
            client_note: match scenario.variant {
                Variant::Default => None,
                Variant::WrongKey => Some("send a key other than the mock's to get the 401"),
                Variant::WithFallback => Some("configure a fallback model, such as --fallback-model qwen/qwen-2.5-72b-instruct"),
                Variant::SmallBudget => Some("the demo plays it with a small retry budget; with the default one a client retries longer"),
            },
        })
        .collect()
}

/// `503 three times` → `503-three-times`.
fn slug(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

/// The policy the demo runs: the shipped defaults with a quicker backoff, so the whole
/// tour takes seconds; every rule is the same.
fn demo_policy(variant: Variant) -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config.backoff.base = Duration::from_millis(100);
    config.backoff.cap = Duration::from_secs(1);
    if variant == Variant::SmallBudget {
        config.budget.capacity = 20;
    }
    config
}

/// One of the two adapters, behind one interface.
enum Client<'a> {
    Blocking(novita_ureq::Client),
    Async(novita_reqwest::Client, &'a tokio::runtime::Runtime),
}

impl Client<'_> {
    fn adapter(&self) -> &'static str {
        match self {
            Client::Blocking(_) => "blocking",
            Client::Async(..) => "async",
        }
    }

    fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, CallError> {
        match self {
            Client::Blocking(client) => client.chat(request),
            Client::Async(client, runtime) => runtime.block_on(client.chat(request)),
        }
    }

    /// Streams to the end; a broken stream is an error even after some chunks arrived.
    fn stream(&self, request: &ChatRequest) -> Result<usize, CallError> {
        match self {
            Client::Blocking(client) => {
                let mut chunks = 0;
                for chunk in client.chat_stream(request)? {
                    chunk?;
                    chunks += 1;
                }
                Ok(chunks)
            }
            Client::Async(client, runtime) => runtime.block_on(async {
                let mut stream = client.chat_stream(request).await?;
                let mut chunks = 0;
                while let Some(chunk) = stream.next_chunk().await {
                    chunk?;
                    chunks += 1;
                }
                Ok(chunks)
            }),
        }
    }
}

/// What one scenario did on one adapter.
struct Row {
    title: &'static str,
    adapter: &'static str,
    expected: Expected,
    outcome: Expected,
    calls: usize,
    requests: usize,
    attempts: u32,
    waited: Duration,
    detail: String,
    /// What the answer lacked, when a scenario's check found it wanting.
    deviation: Option<String>,
}

impl Row {
    fn as_designed(&self) -> bool {
        self.expected == self.outcome && self.deviation.is_none()
    }
}

/// What the demo printed and whether every run behaved as designed, decided from the runs
/// themselves rather than from the printed text.
pub(crate) struct Outcome {
    pub(crate) report: String,
    pub(crate) all_as_designed: bool,
}

pub(crate) fn run(args: &Args) -> Result<Outcome, String> {
    if let Some(addr) = &args.metrics_addr {
        serve_metrics(addr)?;
    }
    let started = Instant::now();
    let server = MockServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let scenarios = scenarios();
    let total = scenarios.len() * 2;
    eprintln!(
        "novita demo: mock Novita API at {} (no key, no network)",
        server.base_url()
    );
    let mut rows = Vec::with_capacity(total);
    for (index, scenario) in scenarios.iter().enumerate() {
        for (offset, asynchronous) in [false, true].into_iter().enumerate() {
            let client = build(&server, scenario.variant, asynchronous, &runtime)?;
            server.clear_faults();
            server.clear_requests();
            server.script(
                Route::ChatCompletions,
                Some(scenario.model),
                (scenario.faults)(),
            );
            for rule in (scenario.rules)() {
                server.rule(rule);
            }
            let row = play(scenario, &client, &server);
            progress(&format!("{:>2}/{total}", index * 2 + offset + 1), &row);
            rows.push(row);
        }
    }
    if let Some(url) = args.redis.as_deref().filter(|url| !url.trim().is_empty()) {
        eprintln!("novita demo: four workers sharing state through Redis");
        for row in fleet::play(url.trim(), &runtime)? {
            progress("fleet", &row);
            rows.push(row);
        }
    }
    Ok(Outcome {
        report: render(&rows, started.elapsed()),
        all_as_designed: rows.iter().all(Row::as_designed),
    })
}

/// One line on stderr per run, as it ends.
fn progress(position: &str, row: &Row) {
    eprintln!(
        "[{position}] {:<9} {:<36} {}",
        row.adapter,
        row.title,
        if row.as_designed() {
            "as designed"
        } else {
            "NOT AS DESIGNED"
        }
    );
}

fn build<'a>(
    server: &MockServer,
    variant: Variant,
    asynchronous: bool,
    runtime: &'a tokio::runtime::Runtime,
) -> Result<Client<'a>, String> {
    let key = if variant == Variant::WrongKey {
        "sk_wrong_demo_key"
    } else {
        server.api_key()
    };
    let fallbacks: Vec<&str> = if variant == Variant::WithFallback {
        vec![FALLBACK]
    } else {
        Vec::new()
    };
    let policy = demo_policy(variant);
    let client = if asynchronous {
        let client = runtime.block_on(async {
            novita_reqwest::Client::builder()
                .name(DEMO_REQWEST)
                .api_key(key)
                .base_url(server.base_url())
                .fallback_models(fallbacks)
                .policy(policy)
                .build()
        });
        Client::Async(client.map_err(|error| error.to_string())?, runtime)
    } else {
        let client = novita_ureq::Client::builder()
            .name(DEMO_UREQ)
            .api_key(key)
            .base_url(server.base_url())
            .fallback_models(fallbacks)
            .policy(policy)
            .build();
        Client::Blocking(client.map_err(|error| error.to_string())?)
    };
    Ok(client)
}

/// The names of the demo's clients, their metrics' `client` label: one per adapter, so the
/// scrape tells the adapters' series apart.
const DEMO_REQWEST: &str = "demo-reqwest";
const DEMO_UREQ: &str = "demo-ureq";

fn play(scenario: &Scenario, client: &Client<'_>, server: &MockServer) -> Row {
    let request = if scenario.tools {
        ChatRequest::new(scenario.model, WEATHER_PROMPT).tool(weather_tool())
    } else {
        ChatRequest::new(scenario.model, PROMPT)
    };
    let mut row = Row {
        title: scenario.title,
        adapter: client.adapter(),
        expected: scenario.expected,
        outcome: Expected::Answer,
        calls: scenario.calls,
        requests: 0,
        attempts: 0,
        waited: Duration::ZERO,
        detail: String::new(),
        deviation: None,
    };
    for _ in 0..scenario.calls {
        let result = if scenario.stream {
            client
                .stream(&request)
                .map(|chunks| format!("streamed {chunks} chunks"))
        } else {
            client.chat(&request).map(|answer| {
                row.attempts += answer.report.attempts;
                row.waited += answer.report.waited;
                match scenario.check {
                    None => describe_answer(&answer.report),
                    Some(check) => check(&answer, &server.requests()).unwrap_or_else(|problem| {
                        let detail = format!("answered, but {problem}");
                        row.deviation = Some(problem);
                        detail
                    }),
                }
            })
        };
        match result {
            Ok(detail) => row.detail = detail,
            Err(error) => {
                row.outcome = Expected::GiveUp;
                if let Some(give_up) = error.give_up() {
                    row.attempts += give_up.attempts;
                }
                row.detail = describe_error(&error);
            }
        }
    }
    row.requests = server.requests().len();
    row
}

fn describe_answer(report: &Report) -> String {
    let mut detail = String::from("answered");
    if let Some(primary) = &report.fell_back_from {
        let _ = write!(detail, " by {} (fell back from {primary})", report.model);
    }
    if report.switched_to_streaming {
        detail.push_str(", switched to streaming");
    }
    detail
}

/// The tool the tool-calling scenario offers.
fn weather_tool() -> Tool {
    Tool::function(
        "get_weather",
        "The current weather in a city",
        serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }),
    )
}

/// The check of "504 tool call on a reasoning model": the buffered attempt got its 504,
/// the call came back through the switch to streaming, and the reassembled answer holds
/// the tool call and the reasoning whole. The mock's tool call passes the prompt on as
/// `{"input": prompt}` and its reasoning quotes the prompt, so a piece lost or garbled in
/// reassembly shows as a mismatch.
fn tool_call_and_reasoning_whole(
    answer: &Answer<ChatCompletion>,
    requests: &[RecordedRequest],
) -> Result<String, String> {
    let deliveries: Vec<(bool, u16)> = requests
        .iter()
        .map(|request| (request.stream, request.status))
        .collect();
    if deliveries != [(false, 504), (true, 200)] {
        return Err(format!(
            "expected a buffered 504 then a streamed 200, the mock saw (streamed, status) {deliveries:?}"
        ));
    }
    if !answer.report.switched_to_streaming {
        return Err("the report does not say it switched to streaming".to_owned());
    }
    let [call] = answer.tool_calls() else {
        return Err(format!(
            "expected one tool call, got {}",
            answer.tool_calls().len()
        ));
    };
    if call.id.is_empty() || call.function.name != "get_weather" {
        return Err(format!(
            "expected a call of get_weather with an id, got {:?} named {:?}",
            call.id, call.function.name
        ));
    }
    let arguments: serde_json::Value = call
        .function
        .parse_arguments()
        .map_err(|error| format!("the tool call's arguments are not JSON ({error})"))?;
    if arguments != serde_json::json!({ "input": WEATHER_PROMPT }) {
        return Err(format!(
            "the tool call's arguments are {}",
            call.function.arguments
        ));
    }
    if answer.finish_reason() != Some(&FinishReason::ToolCalls) {
        return Err(format!(
            "the finish reason is {:?}, not tool_calls",
            answer.finish_reason()
        ));
    }
    let reasoning = answer.reasoning().unwrap_or("");
    if reasoning.is_empty() || !reasoning.contains(WEATHER_PROMPT) {
        return Err(format!("the reasoning is {reasoning:?}"));
    }
    Ok(format!(
        "{}; {} after {} chars of reasoning, both whole",
        describe_answer(&answer.report),
        crate::chat::tool_call_line(call),
        reasoning.chars().count()
    ))
}

fn describe_error(error: &CallError) -> String {
    let Some(give_up) = error.give_up() else {
        return error.to_string();
    };
    let mut detail = format!("gave up: {}", give_up.stop.describe());
    if let Some(limit) = give_up.rate_limit {
        let _ = write!(detail, " [{}]", limit.abbreviation());
    }
    if let Some(id) = &give_up.request_id {
        let _ = write!(detail, " [request id {id}]");
    }
    if let Some(first) = give_up.advice.first() {
        let _ = write!(detail, "; next: {}", first.advice());
    }
    detail
}

fn render(rows: &[Row], elapsed: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "novita demo: every row of the behaviour table, through both adapters\n"
    );
    let colour = crate::style::colour_stdout();
    let mut table = crate::style::table(&[
        "SCENARIO",
        "ADAPTER",
        "CALLS",
        "REQUESTS",
        "WAITED",
        "AS DESIGNED",
        "OUTCOME",
    ]);
    // The outcome is the long column: the others take what they need, it takes the rest.
    if let Some(scenario) = table.column_mut(0) {
        scenario.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(24)));
    }
    for row in rows {
        let verdict = if row.as_designed() {
            crate::style::good("yes", colour)
        } else {
            crate::style::bad("NO", colour)
        };
        table.add_row(vec![
            Cell::new(row.title),
            Cell::new(row.adapter),
            Cell::new(row.calls).set_alignment(CellAlignment::Right),
            Cell::new(row.requests).set_alignment(CellAlignment::Right),
            Cell::new(Seconds(row.waited)).set_alignment(CellAlignment::Right),
            verdict,
            Cell::new(&row.detail),
        ]);
    }
    let _ = writeln!(out, "{table}");
    let calls: usize = rows.iter().map(|row| row.calls).sum();
    let requests: usize = rows.iter().map(|row| row.requests).sum();
    let waited: Duration = rows.iter().map(|row| row.waited).sum();
    let designed = rows.iter().filter(|row| row.as_designed()).count();
    let _ = writeln!(
        out,
        "\n{designed}/{} scenario runs behaved as designed; {calls} calls sent {requests} requests; \
         {} spent waiting; {} in all",
        rows.len(),
        Seconds(waited),
        Seconds(elapsed)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_behaviour_row_is_played() {
        let titles: Vec<&str> = scenarios().iter().map(|scenario| scenario.title).collect();
        for code in [
            "400", "401", "403", "404", "429", "500", "503", "504", "418",
        ] {
            assert!(
                titles.iter().any(|title| title.starts_with(code)),
                "no scenario for {code}"
            );
        }
        assert!(titles.iter().any(|title| title.contains("reset")));
        assert!(titles.iter().any(|title| title.contains("outage")));
        assert!(titles.iter().any(|title| title.contains("stream")));
        assert!(titles.iter().any(|title| title.contains("tool call")));
    }

    fn recorded(stream: bool, status: u16) -> RecordedRequest {
        RecordedRequest {
            at: Duration::ZERO,
            method: "POST".to_owned(),
            path: "/openai/v1/chat/completions".to_owned(),
            route: Some(Route::ChatCompletions),
            model: Some(REASONING_MODEL.to_owned()),
            stream,
            authorized: true,
            headers: Vec::new(),
            body: Vec::new(),
            status,
            response_headers: Vec::new(),
        }
    }

    /// A switched answer with this message, as the mock would send it.
    fn switched(message: &serde_json::Value) -> Answer<ChatCompletion> {
        let completion = serde_json::from_value(serde_json::json!({
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
        }))
        .unwrap();
        let mut report = Report::default();
        report.switched_to_streaming = true;
        Answer::new(completion, report)
    }

    #[test]
    fn the_tool_call_check_finds_what_is_missing() {
        let call = |arguments: &str| {
            serde_json::json!([{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": arguments}}])
        };
        let whole_arguments = serde_json::json!({ "input": WEATHER_PROMPT }).to_string();
        let reasoning = format!("Thinking about: {WEATHER_PROMPT}");
        let whole = switched(&serde_json::json!({
            "role": "assistant", "tool_calls": call(&whole_arguments),
            "reasoning_content": reasoning,
        }));
        let switch = [recorded(false, 504), recorded(true, 200)];
        let detail = tool_call_and_reasoning_whole(&whole, &switch).unwrap();
        assert!(
            detail.contains("get_weather({\"input\":\"What is the weather in Paris?\"})"),
            "{detail}"
        );

        let no_switch = [recorded(false, 200)];
        assert!(tool_call_and_reasoning_whole(&whole, &no_switch).is_err());
        let no_reasoning = switched(&serde_json::json!({
            "role": "assistant", "tool_calls": call(&whole_arguments),
        }));
        assert_eq!(
            tool_call_and_reasoning_whole(&no_reasoning, &switch).unwrap_err(),
            "the reasoning is \"\""
        );
        let cut = switched(&serde_json::json!({
            "role": "assistant", "tool_calls": call(r#"{"input":"What is the"#),
            "reasoning_content": reasoning,
        }));
        assert!(
            tool_call_and_reasoning_whole(&cut, &switch)
                .unwrap_err()
                .starts_with("the tool call's arguments are not JSON")
        );
        let text = switched(&serde_json::json!({"role": "assistant", "content": "sunny"}));
        assert_eq!(
            tool_call_and_reasoning_whole(&text, &switch).unwrap_err(),
            "expected one tool call, got 0"
        );
    }
}
