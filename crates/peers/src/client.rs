//! The contenders: our client and the clients users would otherwise pick, each behind one
//! `call` that sends one chat completion under the same deadline and says how it ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use novita_mock::MockServer;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use serde_json::{Value, json};

/// The model every benchmark call asks for.
pub(crate) const PRIMARY: &str = "deepseek/deepseek-v3";
/// The fallback model, for the contenders that are configured with one.
pub(crate) const FALLBACK: &str = "qwen/qwen-2.5-72b-instruct";

/// One client under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contender {
    /// `novita-reqwest` with its defaults (`PolicyConfig::default()`), no fallback model.
    Ours,
    /// `novita-reqwest` with its defaults and [`FALLBACK`] as fallback model.
    OursFallback,
    /// `async-openai`'s default client: its built-in retry layer (3 retries of 429 and 5xx,
    /// 100 ms doubling, or the `Retry-After` seconds when sent).
    AsyncOpenAi,
    /// `reqwest-middleware` with `reqwest-retry`'s `RetryTransientMiddleware` over
    /// `ExponentialBackoff::builder().build_with_max_retries(3)` (the crate's README setup).
    ReqwestRetry,
    /// Plain reqwest, one attempt per call: the load a client that never retries sends.
    NoRetry,
}

impl Contender {
    /// The name printed in the output (no spaces).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Contender::Ours => "novita-reqwest",
            Contender::OursFallback => "novita-reqwest+fallback",
            Contender::AsyncOpenAi => "async-openai",
            Contender::ReqwestRetry => "reqwest-retry",
            Contender::NoRetry => "no-retry",
        }
    }
}

/// How one call ended.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// Whether a complete chat completion came back.
    pub(crate) ok: bool,
    /// From the call's start to its end, success or not.
    pub(crate) latency: Duration,
    /// The model that answered, on success.
    pub(crate) model: Option<String>,
    /// What our client's report or give-up says (`None` for the peers).
    pub(crate) ours: Option<OurReport>,
    /// Why the call failed, in a few words.
    pub(crate) failure: Option<String>,
}

/// The parts of `novita-reqwest`'s report (or give-up) the benchmark explains misses with.
#[derive(Clone, Debug)]
pub(crate) struct OurReport {
    /// Attempts the call made.
    pub(crate) attempts: u32,
    /// Time spent waiting between attempts (successes only; zero on a give-up).
    pub(crate) waited: Duration,
    /// Whether the answer came from a fallback model.
    pub(crate) fell_back: bool,
    /// Whether the call was re-issued as streaming.
    pub(crate) switched_to_streaming: bool,
}

/// A contender's client, built against one mock server.
pub(crate) enum Client {
    Ours(novita_reqwest::Client),
    AsyncOpenAi(async_openai::Client<OpenAIConfig>),
    ReqwestRetry(Raw<reqwest_middleware::ClientWithMiddleware>),
    NoRetry(Raw<reqwest::Client>),
}

/// A bare HTTP client with the URL and key it posts to.
pub(crate) struct Raw<C> {
    http: C,
    url: String,
    auth: String,
}

impl Client {
    /// Builds `contender`'s client for `server`.
    ///
    /// # Panics
    ///
    /// Panics if a client cannot be built (a benchmark setup error).
    pub(crate) fn new(contender: Contender, server: &MockServer) -> Arc<Client> {
        let url = format!("{}/chat/completions", server.base_url());
        let auth = format!("Bearer {}", server.api_key());
        let client = match contender {
            Contender::Ours | Contender::OursFallback => {
                let mut builder = novita_reqwest::Client::builder()
                    .api_key(server.api_key())
                    .base_url(server.base_url());
                if contender == Contender::OursFallback {
                    builder = builder.fallback_models([FALLBACK]);
                }
                Client::Ours(builder.build().expect("novita-reqwest builds"))
            }
            Contender::AsyncOpenAi => {
                let config = OpenAIConfig::new()
                    .with_api_base(server.base_url())
                    .with_api_key(server.api_key());
                Client::AsyncOpenAi(async_openai::Client::build(http(), config))
            }
            Contender::ReqwestRetry => {
                let policy = ExponentialBackoff::builder().build_with_max_retries(3);
                let http = reqwest_middleware::ClientBuilder::new(http())
                    .with(RetryTransientMiddleware::new_with_policy(policy))
                    .build();
                Client::ReqwestRetry(Raw { http, url, auth })
            }
            Contender::NoRetry => Client::NoRetry(Raw {
                http: http(),
                url,
                auth,
            }),
        };
        Arc::new(client)
    }

    /// One chat completion asking [`PRIMARY`] about `prompt`, cut off after `deadline`.
    pub(crate) async fn call(&self, prompt: &str, deadline: Duration) -> Outcome {
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, self.attempt(prompt)).await;
        let latency = started.elapsed();
        match result {
            Ok(Ended {
                model,
                ours,
                failure,
            }) => Outcome {
                ok: failure.is_none(),
                latency,
                model,
                ours,
                failure,
            },
            Err(_) => Outcome {
                ok: false,
                latency,
                model: None,
                ours: None,
                failure: Some("deadline".to_owned()),
            },
        }
    }

    async fn attempt(&self, prompt: &str) -> Ended {
        match self {
            Client::Ours(client) => {
                let request = novita_reqwest::ChatRequest::new(PRIMARY, prompt);
                match client.chat(&request).await {
                    Ok(answer) => {
                        let report = &answer.report;
                        Ended {
                            model: Some(report.model.clone()),
                            ours: Some(OurReport {
                                attempts: report.attempts,
                                waited: report.waited,
                                fell_back: report.fell_back_from.is_some(),
                                switched_to_streaming: report.switched_to_streaming,
                            }),
                            failure: None,
                        }
                    }
                    Err(error) => {
                        let ours = error.give_up().map(|give_up| OurReport {
                            attempts: give_up.attempts,
                            waited: Duration::ZERO,
                            fell_back: give_up.model > 0,
                            switched_to_streaming: false,
                        });
                        let failure = match error.give_up() {
                            Some(give_up) => format!(
                                "gave up ({:?}) after {} on {}",
                                give_up.stop,
                                give_up
                                    .status
                                    .map_or("no answer".to_owned(), |s| s.to_string()),
                                if give_up.model > 0 {
                                    "fallback"
                                } else {
                                    "primary"
                                }
                            ),
                            None => format!("{:?}", error.kind()),
                        };
                        Ended {
                            model: None,
                            ours,
                            failure: Some(failure),
                        }
                    }
                }
            }
            Client::AsyncOpenAi(client) => {
                let request = openai_request(prompt);
                match client.chat().create(request).await {
                    Ok(response) => Ended::ok(response.model),
                    Err(error) => Ended::failed(openai_failure(&error)),
                }
            }
            Client::ReqwestRetry(raw) => {
                let sent = raw
                    .http
                    .post(&raw.url)
                    .header(AUTHORIZATION, &raw.auth)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body(prompt))
                    .send()
                    .await;
                match sent {
                    Ok(response) => read(response).await,
                    Err(error) => Ended::failed(format!("error: {}", short(&error.to_string()))),
                }
            }
            Client::NoRetry(raw) => {
                let sent = raw
                    .http
                    .post(&raw.url)
                    .header(AUTHORIZATION, &raw.auth)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body(prompt))
                    .send()
                    .await;
                match sent {
                    Ok(response) => read(response).await,
                    Err(error) => Ended::failed(format!("error: {}", short(&error.to_string()))),
                }
            }
        }
    }
}

/// What an attempt loop (ours or a peer's) ended with, before the deadline.
struct Ended {
    model: Option<String>,
    ours: Option<OurReport>,
    failure: Option<String>,
}

impl Ended {
    fn ok(model: String) -> Ended {
        Ended {
            model: Some(model),
            ours: None,
            failure: None,
        }
    }

    fn failed(failure: String) -> Ended {
        Ended {
            model: None,
            ours: None,
            failure: Some(failure),
        }
    }
}

/// A plain reqwest client, as a user would build it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .build()
        .expect("a plain reqwest client builds")
}

/// The OpenAI-compatible body the raw clients send: one user message, no options.
fn body(prompt: &str) -> String {
    json!({
        "model": PRIMARY,
        "messages": [{ "role": "user", "content": prompt }],
    })
    .to_string()
}

fn openai_request(prompt: &str) -> async_openai::types::chat::CreateChatCompletionRequest {
    let message = ChatCompletionRequestUserMessageArgs::default()
        .content(prompt)
        .build()
        .expect("a user message builds");
    CreateChatCompletionRequestArgs::default()
        .model(PRIMARY)
        .messages([message.into()])
        .build()
        .expect("a chat request builds")
}

fn openai_failure(error: &async_openai::error::OpenAIError) -> String {
    use async_openai::error::OpenAIError;
    match error {
        OpenAIError::ApiError(api) => format!("status {}", api.status_code.as_u16()),
        OpenAIError::JSONDeserialize(..) => "unreadable body".to_owned(),
        other => format!("error: {}", short(&other.to_string())),
    }
}

/// Reads a raw client's final response: a 200 with a chat completion, or a failure.
async fn read(response: reqwest::Response) -> Ended {
    let status = response.status().as_u16();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return Ended::failed(format!("body: {}", short(&error.to_string()))),
    };
    if status != 200 {
        return Ended::failed(format!("status {status}"));
    }
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(_) => return Ended::failed("unreadable body".to_owned()),
    };
    match (value["choices"].as_array(), value["model"].as_str()) {
        (Some(choices), Some(model)) if !choices.is_empty() => Ended::ok(model.to_owned()),
        _ => Ended::failed("no choices".to_owned()),
    }
}

/// The first line of an error message, at most 60 characters.
fn short(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(60).collect()
}
