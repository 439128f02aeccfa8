//! One interface over both adapters, so every scenario runs against each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use novita_mock::MockServer;
use novita_ureq::wire::Limits;
use novita_ureq::{
    Answer, ChatChunk, ChatCompletion, ChatRequest, Error as CallError, PolicyConfig,
};
use serde_json::Value;

/// How to build a client: the same settings for either adapter.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    pub(crate) base_url: String,
    pub(crate) api_key: String,
    pub(crate) fallback_models: Vec<String>,
    pub(crate) policy: PolicyConfig,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) stream_total: Option<Duration>,
    pub(crate) max_success_body: Option<usize>,
    pub(crate) stream_limits: Option<Limits>,
    /// A Redis URL: the client shares its state through a store of its own on it, as a
    /// separate process would.
    pub(crate) redis_url: Option<String>,
}

impl Setup {
    pub(crate) fn new(server: &MockServer) -> Self {
        Self {
            base_url: server.base_url(),
            api_key: server.api_key().to_owned(),
            fallback_models: Vec::new(),
            policy: crate::fast_policy(),
            request_timeout: None,
            stream_total: None,
            max_success_body: None,
            stream_limits: None,
            redis_url: None,
        }
    }
}

/// What a test needs from a client.
pub(crate) trait Adapter {
    /// `blocking` or `async`, for assertion messages.
    fn name(&self) -> &'static str;
    fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, CallError>;
    /// Starts a stream and reads it to the end: the chunks, then the error that ended it.
    fn stream(
        &self,
        request: &ChatRequest,
    ) -> Result<(Vec<ChatChunk>, Option<CallError>), CallError>;
    fn models(&self) -> Result<Vec<String>, CallError>;
    /// Any JSON `POST` on the API, such as `chat/completions`.
    fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, CallError>;
    /// Runs `calls` chats at once (threads or tasks) and returns their results.
    fn concurrent_chats(
        &self,
        request: &ChatRequest,
        calls: usize,
    ) -> Vec<Result<Answer<ChatCompletion>, CallError>>;
    /// Runs every request, at most `concurrency` at a time (threads or tasks), and returns
    /// each result with how long its call took, in the order of `requests`.
    fn chats_at_once(&self, requests: &[ChatRequest], concurrency: usize) -> Vec<Timed>;
    fn retry_budget(&self) -> u32;
    fn debug(&self) -> String;
}

/// A call's result and how long it took.
pub(crate) type Timed = (Result<Answer<ChatCompletion>, CallError>, Duration);

/// Results tagged with their request's index, put back in request order.
fn in_order(mut tagged: Vec<(usize, Timed)>) -> Vec<Timed> {
    tagged.sort_by_key(|(index, _)| *index);
    tagged.into_iter().map(|(_, timed)| timed).collect()
}

/// A store of its own on the Redis at `url`.
fn redis_store(url: &str) -> novita_redis::RedisStore {
    novita_redis::RedisStore::open(url).unwrap_or_else(|error| panic!("{error}"))
}

/// Which adapter to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Blocking,
    Async,
}

/// Every adapter, in the order scenarios run them.
pub(crate) const KINDS: [Kind; 2] = [Kind::Blocking, Kind::Async];

/// One adapter built from `setup`.
pub(crate) fn adapter(kind: Kind, setup: &Setup) -> Box<dyn Adapter> {
    try_adapter(kind, setup).unwrap_or_else(|error| panic!("the {kind:?} client builds: {error}"))
}

/// One adapter built from `setup`, or the builder's error.
pub(crate) fn try_adapter(kind: Kind, setup: &Setup) -> Result<Box<dyn Adapter>, CallError> {
    Ok(match kind {
        Kind::Blocking => Box::new(Blocking::new(setup)?),
        Kind::Async => Box::new(Async::new(setup)?),
    })
}

struct Blocking(novita_ureq::Client);

impl Blocking {
    fn new(setup: &Setup) -> Result<Self, CallError> {
        let mut timeouts = novita_ureq::Timeouts::default();
        if let Some(request) = setup.request_timeout {
            timeouts.request = request;
        }
        if let Some(total) = setup.stream_total {
            timeouts.stream_total = total;
        }
        let client = novita_ureq::Client::builder()
            .api_key(&setup.api_key)
            .base_url(&setup.base_url)
            .fallback_models(setup.fallback_models.clone())
            .policy(setup.policy.clone())
            .timeouts(timeouts)
            .max_success_body(setup.max_success_body.unwrap_or(64 << 20))
            .stream_limits(setup.stream_limits.unwrap_or_default())
            .seed(1);
        let client = match &setup.redis_url {
            Some(url) => client.store(redis_store(url)),
            None => client,
        };
        Ok(Self(client.build()?))
    }
}

impl Adapter for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, CallError> {
        self.0.chat(request)
    }

    fn stream(
        &self,
        request: &ChatRequest,
    ) -> Result<(Vec<ChatChunk>, Option<CallError>), CallError> {
        let stream = self.0.chat_stream(request)?;
        let mut chunks = Vec::new();
        for item in stream {
            match item {
                Ok(chunk) => chunks.push(chunk),
                Err(error) => return Ok((chunks, Some(error))),
            }
        }
        Ok((chunks, None))
    }

    fn models(&self) -> Result<Vec<String>, CallError> {
        Ok(self
            .0
            .models()?
            .value
            .into_iter()
            .map(|model| model.id)
            .collect())
    }

    fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, CallError> {
        self.0.post_json(route, body)
    }

    fn concurrent_chats(
        &self,
        request: &ChatRequest,
        calls: usize,
    ) -> Vec<Result<Answer<ChatCompletion>, CallError>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..calls)
                .map(|_| scope.spawn(|| self.0.chat(request)))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("no panics"))
                .collect()
        })
    }

    fn chats_at_once(&self, requests: &[ChatRequest], concurrency: usize) -> Vec<Timed> {
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::with_capacity(requests.len()));
        std::thread::scope(|scope| {
            for _ in 0..concurrency {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(index) else {
                            break;
                        };
                        let started = Instant::now();
                        let result = self.0.chat(request);
                        let took = started.elapsed();
                        results.lock().unwrap().push((index, (result, took)));
                    }
                });
            }
        });
        in_order(results.into_inner().unwrap())
    }

    fn retry_budget(&self) -> u32 {
        self.0.retry_budget()
    }

    fn debug(&self) -> String {
        format!("{:?}", self.0)
    }
}

struct Async {
    client: novita_reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Async {
    fn new(setup: &Setup) -> Result<Self, CallError> {
        let mut timeouts = novita_reqwest::Timeouts::default();
        if let Some(request) = setup.request_timeout {
            timeouts.request = request;
        }
        if let Some(total) = setup.stream_total {
            timeouts.stream_total = total;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let client = runtime.block_on(async {
            let client = novita_reqwest::Client::builder()
                .api_key(&setup.api_key)
                .base_url(&setup.base_url)
                .fallback_models(setup.fallback_models.clone())
                .policy(setup.policy.clone())
                .timeouts(timeouts)
                .max_success_body(setup.max_success_body.unwrap_or(64 << 20))
                .stream_limits(setup.stream_limits.unwrap_or_default())
                .seed(1);
            match &setup.redis_url {
                Some(url) => client.store(redis_store(url)),
                None => client,
            }
            .build()
        })?;
        Ok(Self { client, runtime })
    }
}

impl Adapter for Async {
    fn name(&self) -> &'static str {
        "async"
    }

    fn chat(&self, request: &ChatRequest) -> Result<Answer<ChatCompletion>, CallError> {
        self.runtime.block_on(self.client.chat(request))
    }

    fn stream(
        &self,
        request: &ChatRequest,
    ) -> Result<(Vec<ChatChunk>, Option<CallError>), CallError> {
        self.runtime.block_on(async {
            let mut stream = self.client.chat_stream(request).await?;
            let mut chunks = Vec::new();
            while let Some(item) = stream.next_chunk().await {
                match item {
                    Ok(chunk) => chunks.push(chunk),
                    Err(error) => return Ok((chunks, Some(error))),
                }
            }
            Ok((chunks, None))
        })
    }

    fn models(&self) -> Result<Vec<String>, CallError> {
        let models = self.runtime.block_on(self.client.models())?;
        Ok(models.value.into_iter().map(|model| model.id).collect())
    }

    fn post_json(&self, route: &str, body: &Value) -> Result<Answer<Value>, CallError> {
        self.runtime.block_on(self.client.post_json(route, body))
    }

    fn concurrent_chats(
        &self,
        request: &ChatRequest,
        calls: usize,
    ) -> Vec<Result<Answer<ChatCompletion>, CallError>> {
        self.runtime.block_on(async {
            let tasks: Vec<_> = (0..calls)
                .map(|_| {
                    let client = self.client.clone();
                    let request = request.clone();
                    tokio::spawn(async move { client.chat(&request).await })
                })
                .collect();
            let mut results = Vec::with_capacity(calls);
            for task in tasks {
                results.push(task.await.expect("no panics"));
            }
            results
        })
    }

    fn chats_at_once(&self, requests: &[ChatRequest], concurrency: usize) -> Vec<Timed> {
        self.runtime.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let tasks: Vec<_> = requests
                .iter()
                .cloned()
                .map(|request| {
                    let client = self.client.clone();
                    let permits = Arc::clone(&permits);
                    tokio::spawn(async move {
                        let _permit = permits.acquire_owned().await.expect("never closed");
                        let started = Instant::now();
                        let result = client.chat(&request).await;
                        (result, started.elapsed())
                    })
                })
                .collect();
            let mut results = Vec::with_capacity(requests.len());
            for task in tasks {
                results.push(task.await.expect("no panics"));
            }
            results
        })
    }

    fn retry_budget(&self) -> u32 {
        self.client.retry_budget()
    }

    fn debug(&self) -> String {
        format!("{:?}", self.client)
    }
}
