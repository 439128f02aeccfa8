//! End-to-end tests of the `novita` binary against `novita-mock`: what a user sees, and
//! the exit codes scripts rely on. The key never appears in anything printed.

use std::path::PathBuf;
use std::process::{Command, Output};

use novita_mock::{Fault, MockServer, Route, Rule};
use serde_json::{Value, json};

const MODEL: &str = novita_mock::DEFAULT_MODELS[0];
const FALLBACK: &str = novita_mock::DEFAULT_MODELS[1];
/// The mock's reasoning model: it answers with `reasoning_content` first.
const REASONER: &str = "deepseek/deepseek-r1";

fn novita(args: &[&str]) -> Output {
    run(args, &[])
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_novita"));
    command
        .args(args)
        .env_remove("NOVITA_API_KEY")
        .env_remove("NOVITA_BASE_URL")
        .env_remove("NOVITA_API_BASE")
        .env_remove("NOVITA_REDIS_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the novita binary runs")
}

/// Runs `novita chat` against `server` with its key, optionally on the blocking adapter.
fn chat(server: &MockServer, key: &str, args: &[&str]) -> Output {
    let base_url = server.base_url();
    let mut all = vec!["chat", "--model", MODEL];
    all.extend_from_slice(args);
    run(
        &all,
        &[
            ("NOVITA_API_KEY", key),
            ("NOVITA_BASE_URL", base_url.as_str()),
        ],
    )
}

/// Runs `novita chat --model MODEL ARGS` against `server` with its key.
fn chat_model(server: &MockServer, model: &str, args: &[&str]) -> Output {
    let base_url = server.base_url();
    let mut all = vec!["chat", "--model", model];
    all.extend_from_slice(args);
    run(
        &all,
        &[
            ("NOVITA_API_KEY", server.api_key()),
            ("NOVITA_BASE_URL", base_url.as_str()),
        ],
    )
}

/// A file in the temporary directory, unique to this test process and `name`.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("novita-cli-test-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// A tools file with one OpenAI tool object and one bare function definition.
fn tools_file() -> PathBuf {
    let tools = json!([
        {"type": "function", "function": {
            "name": "get_weather", "description": "The current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"name": "get_time", "description": "The local time in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    ]);
    temp_file("tools.json", &tools.to_string())
}

/// The four ways to run a call: buffered and streamed, on either adapter.
const DELIVERIES: [&[&str]; 4] = [
    &[],
    &["--blocking"],
    &["--stream"],
    &["--stream", "--blocking"],
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A policy file with millisecond backoff, so failing scenarios end quickly.
fn fast_policy_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "novita-cli-test-policy-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, "[backoff]\nbase = \"5ms\"\ncap = \"20ms\"\n").unwrap();
    path
}

#[test]
fn explain_prints_advice_and_exits_zero() {
    let output = novita(&["explain", "429"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("429 Too Many Requests: "), "{stdout}");
    assert!(
        stdout.contains("RATE_LIMIT_EXCEEDED, TOKEN_LIMIT_EXCEEDED"),
        "{stdout}"
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn explain_all_prints_the_table() {
    let output = novita(&["explain", "--all"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(
        stdout.lines().nth(1).unwrap_or_default().contains("CODE"),
        "{stdout}"
    );
    assert!(stdout.contains("NOT_ENOUGH_BALANCE"), "{stdout}");
    let widest = stdout.lines().map(|line| line.chars().count()).max();
    assert!(
        widest <= Some(120),
        "a line of {widest:?} characters:\n{stdout}"
    );
}

#[test]
fn explain_bad_input_gets_one_clear_line_and_exit_two() {
    for (input, expected) in [
        (
            "abc",
            "novita: error: \"abc\" is not an HTTP status code; give a number such as 429\n",
        ),
        (
            "99999",
            "novita: error: 99999 is not an HTTP status code; statuses run from 100 to 599, errors from 400\n",
        ),
        (
            "200",
            "novita: error: 200 is not an error status; only 4xx and 5xx statuses have entries\n",
        ),
    ] {
        let output = novita(&["explain", input]);
        assert_eq!(output.status.code(), Some(2), "explain {input}");
        assert_eq!(text(&output.stderr), expected);
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = novita(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for line in [
        "Exit codes:",
        "  4  authentication",
        "  7  rate limited",
        "  8  overloaded",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

#[test]
fn chat_help_documents_the_output_forms() {
    let output = novita(&["chat", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for expected in [
        "--tools <FILE>",
        "`tool call ID: NAME(ARGUMENTS)`",
        "--tool-choice <CHOICE>",
        "`[reasoning]` and `[end of reasoning]`",
        "--json",
        "With --stream it is the completion reassembled from the chunks",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
}

#[test]
fn chat_prints_the_reply_with_either_adapter() {
    let server = MockServer::start();
    for adapter in [&[][..], &["--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("Hello there");
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{adapter:?}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            text(&output.stdout),
            format!("Mock reply from {MODEL}: Hello there\n")
        );
    }
}

#[test]
fn chat_streams_with_either_adapter() {
    let server = MockServer::start();
    for adapter in [&["--stream"][..], &["--stream", "--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("stream this");
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            format!("Mock reply from {MODEL}: stream this\n")
        );
    }
    assert!(server.requests().iter().all(|request| request.stream));
}

#[test]
fn a_wrong_key_exits_four_with_advice_and_never_prints_the_key() {
    let server = MockServer::start();
    for adapter in [&[][..], &["--blocking"][..]] {
        let mut args = adapter.to_vec();
        args.push("hi");
        let output = chat(&server, "sk_wrong_secret_42", &args);
        assert_eq!(output.status.code(), Some(4), "{adapter:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("401 Unauthorized"), "{stderr}");
        assert!(
            stderr.contains("the API key came from the NOVITA_API_KEY environment variable"),
            "{stderr}"
        );
        assert!(stderr.contains("Check the API key"), "{stderr}");
        assert!(
            !stderr.contains("sk_wrong_secret_42")
                && !text(&output.stdout).contains("sk_wrong_secret_42")
        );
    }
}

#[test]
fn a_missing_key_exits_three() {
    let output = novita(&["chat", "--model", MODEL, "hi"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        text(&output.stderr),
        "novita: error: no API key: set NOVITA_API_KEY or pass a key to the client builder\n"
    );
}

#[test]
fn setup_mistakes_exit_three_naming_the_setting_and_send_nothing() {
    let server = MockServer::start();
    for (var, value, says) in [
        (
            "NOVITA_BASE_URL",
            "http://[::1",
            "from NOVITA_BASE_URL: an IPv6 host lacks",
        ),
        (
            "NOVITA_BASE_URL",
            "http://127.0.0.1:65536/v1",
            "from NOVITA_BASE_URL: the port must be a number from 1 to 65535",
        ),
        (
            "NOVITA_API_BASE",
            "api.novita.ai",
            "from NOVITA_API_BASE: it must start with",
        ),
    ] {
        for adapter in [&[][..], &["--blocking"][..]] {
            let mut args = vec!["chat", "--model", MODEL, "hi"];
            args.extend_from_slice(adapter);
            let output = run(&args, &[("NOVITA_API_KEY", server.api_key()), (var, value)]);
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(3), "{value}: {stderr}");
            assert!(stderr.contains(says), "{value}: {stderr}");
        }
    }
    let key_with_newline = format!("{}\nX-Injected: 1", server.api_key());
    let base_url = server.base_url();
    let output = run(
        &["chat", "--model", MODEL, "hi"],
        &[
            ("NOVITA_API_KEY", key_with_newline.as_str()),
            ("NOVITA_BASE_URL", base_url.as_str()),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "the NOVITA_API_KEY environment variable cannot be used: the key has a line break"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains(server.api_key()),
        "the key leaked: {stderr}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn each_class_has_its_exit_code() {
    let policy = fast_policy_file();
    let policy = policy.to_str().unwrap();
    let cases: [(Fault, i32); 5] = [
        (Fault::status(400), 6),
        (Fault::status(403).reason("NOT_ENOUGH_BALANCE"), 5),
        (Fault::status(429).retry_after_secs(3600), 7),
        (Fault::status(503), 8),
        (Fault::status(500), 9),
    ];
    for (fault, code) in cases {
        let server = MockServer::start();
        server.always(Route::ChatCompletions, None, fault.clone());
        let output = chat(&server, server.api_key(), &["--config", policy, "hi"]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{fault:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains("what to do:"),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn fallback_models_answer_and_say_so() {
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        Some(MODEL),
        [Fault::status(500).reason("MODEL_NOT_AVAILABLE")],
    );
    let output = chat(
        &server,
        server.api_key(),
        &["--fallback-model", FALLBACK, "hi"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("Mock reply from {FALLBACK}: hi\n")
    );
    assert!(
        text(&output.stderr).contains(&format!("falling back from {MODEL}")),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn verbose_prints_attempts_and_decisions() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let policy = fast_policy_file();
    let output = chat(
        &server,
        server.api_key(),
        &["-v", "--config", policy.to_str().unwrap(), "hi"],
    );
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("sending"), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("status 503"), "{stderr}");
    assert!(!stderr.contains(server.api_key()), "{stderr}");
}

#[test]
fn a_bad_policy_file_exits_three() {
    let server = MockServer::start();
    let path =
        std::env::temp_dir().join(format!("novita-cli-bad-policy-{}.toml", std::process::id()));
    std::fs::write(&path, "max_atempts = 3\n").unwrap();
    let output = chat(
        &server,
        server.api_key(),
        &["--config", path.to_str().unwrap(), "hi"],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stderr).starts_with("novita: error: invalid policy config"),
        "{}",
        text(&output.stderr)
    );
    let output = chat(
        &server,
        server.api_key(),
        &["--config", "/nonexistent/policy.toml", "hi"],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("cannot read policy file /nonexistent/policy.toml"));
}

#[test]
fn the_demo_plays_every_scenario_as_designed() {
    let output = novita(&["demo"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("36/36 scenario runs behaved as designed"),
        "{stdout}"
    );
    assert!(
        text(&output.stderr).contains("[36/36]"),
        "progress is shown"
    );
    // Off a terminal the table wraps to 120 columns and carries no colour codes.
    let widest = stdout.lines().map(|line| line.chars().count()).max();
    assert!(
        widest <= Some(120),
        "a line of {widest:?} characters:\n{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "colour codes in a pipe");
    assert!(stdout.contains("AS DESIGNED"), "{stdout}");
}

#[test]
fn with_redis_the_demo_adds_workers_that_share_hints_and_limits() {
    let redis = novita_redis::testing::RedisServer::start();
    let url = redis.url();
    let output = run(&["demo"], &[("NOVITA_REDIS_URL", url.as_str())]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("38/38 scenario runs behaved as designed"),
        "{stdout}"
    );
    for title in ["429 heard by one of 4", "600 RPM shared by 4"] {
        assert!(stdout.contains(title), "{title} missing:\n{stdout}");
    }
}

#[test]
fn tool_calls_are_printed_buffered_and_streamed() {
    let tools = tools_file();
    for delivery in DELIVERIES {
        let server = MockServer::start();
        let mut args = delivery.to_vec();
        args.extend(["--tools", tools.to_str().unwrap(), "Weather in Paris?"]);
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{delivery:?}: {}",
            text(&output.stderr)
        );
        assert_eq!(
            text(&output.stdout),
            "tool call call_mock_1_0: get_weather({\"input\":\"Weather in Paris?\"})\n",
            "{delivery:?}"
        );
        let sent: Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
        assert_eq!(
            sent["tools"],
            json!([
                {"type": "function", "function": {
                    "name": "get_weather", "description": "The current weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {
                    "name": "get_time", "description": "The local time in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            ]),
            "both shapes are sent as OpenAI tools"
        );
    }
}

#[test]
fn text_and_several_tool_calls_print_in_order() {
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check both.",
            "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"city\":\"Paris, France\"}"}},
            ]}}],
    });
    for delivery in DELIVERIES {
        let server = MockServer::start();
        server.script(
            Route::ChatCompletions,
            None,
            [Fault::completion(answer.clone())],
        );
        let mut args = delivery.to_vec();
        args.push("Weather and time in Paris?");
        let output = chat(&server, server.api_key(), &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            "Let me check both.\n\
             tool call call_a: get_weather({\"city\":\"Paris\"})\n\
             tool call call_b: get_time({\"city\":\"Paris, France\"})\n",
            "{delivery:?}"
        );
    }
}

#[test]
fn tool_choice_is_sent_and_checked() {
    let tools = tools_file();
    let tools = tools.to_str().unwrap();
    let server = MockServer::start();
    let output = chat(
        &server,
        server.api_key(),
        &[
            "--tools",
            tools,
            "--tool-choice",
            "get_time",
            "Time in Paris?",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "tool call call_mock_1_0: get_time({\"input\":\"Time in Paris?\"})\n"
    );
    let output = chat(
        &server,
        server.api_key(),
        &["--tools", tools, "--tool-choice", "none", "Time in Paris?"],
    );
    assert_eq!(
        text(&output.stdout),
        format!("Mock reply from {MODEL}: Time in Paris?\n")
    );
    let sent: Vec<Value> = server
        .requests()
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap())
        .collect();
    assert_eq!(
        sent[0]["tool_choice"],
        json!({"type": "function", "function": {"name": "get_time"}})
    );
    assert_eq!(sent[1]["tool_choice"], "none");

    server.clear_requests();
    let output = chat(
        &server,
        server.api_key(),
        &["--tools", tools, "--tool-choice", "get_tmie", "hi"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        format!(
            "novita: error: --tool-choice names `get_tmie`, which tools file {tools} does not \
             define (it defines: get_weather, get_time)\n"
        )
    );
    let output = chat(&server, server.api_key(), &["--tool-choice", "auto", "hi"]);
    assert_eq!(output.status.code(), Some(2), "--tool-choice needs --tools");
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn reasoning_is_shown_on_stderr_when_asked() {
    let server = MockServer::start();
    for delivery in DELIVERIES {
        let mut args = delivery.to_vec();
        args.extend(["--reasoning", "Why is the sky blue?"]);
        let output = chat_model(&server, REASONER, &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            format!("Mock reply from {REASONER}: Why is the sky blue?\n"),
            "{delivery:?}"
        );
        assert_eq!(
            text(&output.stderr),
            "[reasoning]\nThinking about: Why is the sky blue?\n[end of reasoning]\n",
            "{delivery:?}"
        );
        let output = chat_model(
            &server,
            REASONER,
            &delivery[..]
                .iter()
                .copied()
                .chain(["Why is the sky blue?"])
                .collect::<Vec<_>>(),
        );
        assert_eq!(output.status.code(), Some(0));
        assert!(
            output.stderr.is_empty(),
            "reasoning is shown only when asked: {}",
            text(&output.stderr)
        );
    }
    let output = chat(&server, server.api_key(), &["--reasoning", "hi"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        format!("Mock reply from {MODEL}: hi\n")
    );
    assert!(
        text(&output.stderr).starts_with("novita: note: the answer carries no reasoning"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn json_prints_the_whole_completion() {
    let tools = tools_file();
    let mut completions = Vec::new();
    for delivery in DELIVERIES {
        let server = MockServer::start();
        let mut args = delivery.to_vec();
        args.extend([
            "--json",
            "--tools",
            tools.to_str().unwrap(),
            "Weather in Oslo?",
        ]);
        let output = chat_model(&server, REASONER, &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
        let completion: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!("{delivery:?}: not JSON ({error}): {}", text(&output.stdout))
        });
        assert_eq!(completion["object"], "chat.completion", "{delivery:?}");
        let message = &completion["choices"][0]["message"];
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "call_mock_1_0", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"input\":\"Weather in Oslo?\"}"}}]),
            "{delivery:?}"
        );
        assert_eq!(
            message["reasoning_content"],
            "Thinking about: Weather in Oslo?"
        );
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            completion["usage"]["completion_tokens_details"]["reasoning_tokens"], 5,
            "the five words of the reasoning"
        );
        completions.push(completion);
    }
    for completion in &mut completions {
        completion.as_object_mut().unwrap().remove("created");
    }
    assert!(
        completions.iter().all(|c| *c == completions[0]),
        "streamed and buffered give the same document: {completions:#?}"
    );
}

#[test]
fn a_bad_tools_file_exits_three_and_names_the_file() {
    let server = MockServer::start();
    let missing = std::env::temp_dir().join("novita-cli-test-no-such-tools.json");
    let not_json = temp_file("not-json.json", "[{\"name\": \"get_weather\",]");
    let object = temp_file("object.json", "{\"name\": \"get_weather\"}");
    let nameless = temp_file("nameless.json", "[{\"description\": \"no name\"}]");
    let cases = [
        (
            &missing,
            format!(
                "novita: error: cannot read tools file {}: ",
                missing.display()
            ),
        ),
        (
            &not_json,
            format!(
                "novita: error: tools file {} is not JSON: key must be a string at line 1 column 25\n",
                not_json.display()
            ),
        ),
        (
            &object,
            format!(
                "novita: error: tools file {}: expected a JSON array of tools, found an object\n",
                object.display()
            ),
        ),
        (
            &nameless,
            format!(
                "novita: error: tools file {}: tools[0] is not a function definition \
                 ({{\"name\": ..., \"parameters\": {{...}}}}): missing field `name`",
                nameless.display()
            ),
        ),
    ];
    for (path, expected) in cases {
        for delivery in [&[][..], &["--stream"][..]] {
            let mut args = delivery.to_vec();
            args.extend(["--tools", path.to_str().unwrap(), "hi"]);
            let output = chat(&server, server.api_key(), &args);
            assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
            assert!(
                text(&output.stderr).starts_with(&expected),
                "expected {expected:?}, got {:?}",
                text(&output.stderr)
            );
            assert!(output.stdout.is_empty());
        }
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_504_switched_to_streaming_keeps_tool_call_and_reasoning_whole() {
    let tools = tools_file();
    let tools = tools.to_str().unwrap();
    for adapter in [&[][..], &["--blocking"][..]] {
        let server = MockServer::start();
        server.rule(Rule::new(Route::ChatCompletions, Fault::status(504)).buffered_only());
        let mut args = adapter.to_vec();
        args.extend(["--tools", tools, "--reasoning", "Weather in Lisbon?"]);
        let output = chat_model(&server, REASONER, &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            "tool call call_mock_2_0: get_weather({\"input\":\"Weather in Lisbon?\"})\n",
            "{adapter:?}"
        );
        assert_eq!(
            text(&output.stderr),
            "[reasoning]\nThinking about: Weather in Lisbon?\n[end of reasoning]\n",
            "{adapter:?}"
        );
        let deliveries: Vec<(bool, u16)> = server
            .requests()
            .iter()
            .map(|request| (request.stream, request.status))
            .collect();
        assert_eq!(deliveries, [(false, 504), (true, 200)], "{adapter:?}");

        server.clear_requests();
        let mut args = adapter.to_vec();
        args.extend(["--tools", tools, "--json", "Weather in Lisbon?"]);
        let output = chat_model(&server, REASONER, &args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let completion: Value = serde_json::from_slice(&output.stdout).unwrap();
        let message = &completion["choices"][0]["message"];
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "call_mock_4_0", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"input\":\"Weather in Lisbon?\"}"}}])
        );
        assert_eq!(
            message["reasoning_content"],
            "Thinking about: Weather in Lisbon?"
        );
        assert_eq!(server.requests().len(), 2, "again a 504, then the stream");
    }
}

#[test]
fn mock_lists_every_demo_scenario() {
    let output = novita(&["mock", "--list"]);
    assert_eq!(output.status.code(), Some(0));
    let listed = text(&output.stdout);
    assert_eq!(listed.lines().count(), 18, "{listed}");
    assert!(listed.contains("503-three-times  "), "{listed}");
    assert!(
        listed.contains("504-tool-call-on-a-reasoning-model"),
        "{listed}"
    );

    let output = novita(&["mock", "--scenario", "no-such-thing"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("`novita mock --list` lists them"));
}

#[test]
fn mock_serves_a_scenario_that_other_programs_can_call() {
    use std::io::{BufRead, BufReader};

    let mut mock = Command::new(env!("CARGO_BIN_EXE_novita"))
        .args(["mock", "--scenario", "503-three-times"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("novita mock starts");
    let mut lines = BufReader::new(mock.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let base_url = loop {
        let line = lines.next().expect("the banner").unwrap();
        banner.push(line.clone());
        if let Some(url) = line.strip_prefix("base URL: ") {
            break url.to_owned();
        }
    };
    let key_line = lines.next().unwrap().unwrap();
    let key = key_line.strip_prefix("API key:  ").unwrap().to_owned();
    let output = run(
        &["chat", "--model", MODEL, "-v", "hello"],
        &[("NOVITA_API_KEY", &key), ("NOVITA_BASE_URL", &base_url)],
    );
    let _ = mock.kill();
    let _ = mock.wait();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{banner:?}\n{stderr}");
    assert!(text(&output.stdout).contains("hello"));
    assert_eq!(
        stderr.matches("sending").count(),
        4,
        "three 503s, then the answer:\n{stderr}"
    );
}

#[test]
fn logs_follow_rust_log_and_never_colour_a_pipe() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let base_url = server.base_url();
    let env = [
        ("NOVITA_API_KEY", server.api_key()),
        ("NOVITA_BASE_URL", base_url.as_str()),
    ];
    // -v: every attempt and decision, as plain text (stderr is a pipe here).
    let verbose = run(&["chat", "--model", MODEL, "-v", "hi"], &env);
    let stderr = text(&verbose.stderr);
    assert_eq!(verbose.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sending") && stderr.contains("retrying"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );

    // RUST_LOG alone: only what it asks for.
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let mut with_filter = env.to_vec();
    with_filter.push(("RUST_LOG", "novita=info"));
    let filtered = run(&["chat", "--model", MODEL, "hi"], &with_filter);
    let stderr = text(&filtered.stderr);
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(
        !stderr.contains("sending"),
        "debug events at info level: {stderr}"
    );

    // Neither: no logs at all.
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let quiet = run(&["chat", "--model", MODEL, "hi"], &env);
    assert_eq!(text(&quiet.stderr), "");
}

#[test]
fn an_unusable_redis_url_is_a_configuration_error_that_hides_its_password() {
    let server = MockServer::start();
    let output = chat(
        &server,
        server.api_key(),
        &["--redis", "redis://:hunter2@[not-a-host", "hi"],
    );
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("NOVITA_REDIS_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(server.requests().is_empty());
}

#[test]
fn two_processes_on_one_redis_share_a_429s_hint() {
    let redis = novita_redis::testing::RedisServer::start();
    let server = MockServer::start();
    server.script(
        Route::ChatCompletions,
        None,
        [Fault::status(429).retry_after_secs(2)],
    );
    let one_attempt = temp_file("one-attempt.toml", "max_attempts = 1\n");
    let one_attempt = one_attempt.to_str().unwrap();
    let url = redis.url();
    // The first process hears the 429 and gives up; the second, another adapter in another
    // process, never hears it but waits it out.
    let first = chat(
        &server,
        server.api_key(),
        &["--config", one_attempt, "--blocking", "--redis", &url, "hi"],
    );
    assert_eq!(first.status.code(), Some(7), "{}", text(&first.stderr));
    let base_url = server.base_url();
    let second = run(
        &["chat", "--model", MODEL, "hi"],
        &[
            ("NOVITA_API_KEY", server.api_key()),
            ("NOVITA_BASE_URL", base_url.as_str()),
            ("NOVITA_REDIS_URL", url.as_str()),
        ],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= std::time::Duration::from_millis(1950),
        "the second process sent {gap:?} after the 429"
    );
}
