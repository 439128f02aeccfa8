//! What the client logs through `tracing`: the attempt loop's events, never the key.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use novita_mock::{Fault, MockServer, Route};
use novita_reqwest::{ChatRequest, Client, Config};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes every span name, event and field it sees into one string.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut log));
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "\n{}", event.metadata().level());
        event.record(&mut Fields(&mut log));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn the_attempt_loop_is_logged_without_the_key() {
    let secret = "sk_secret_that_must_not_be_logged";
    let server = MockServer::builder().api_key(secret).start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());

    let mut config = Config::default();
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(20);
    let client = Client::builder()
        .api_key(secret)
        .base_url(server.base_url())
        .policy(config.clone())
        .build()
        .unwrap();
    let request = ChatRequest::new("deepseek/deepseek-v3", "hi");
    client.chat(&request).await.unwrap();

    let wrong = Client::builder()
        .api_key(format!("{secret}_wrong"))
        .base_url(server.base_url())
        .policy(config)
        .build()
        .unwrap();
    wrong.chat(&request).await.unwrap_err();

    let log = recorder.0.lock().unwrap().clone();
    for expected in [
        "span novita.call",
        "message=sending",
        "message=retrying",
        "message=done",
        "message=giving up",
    ] {
        assert!(log.contains(expected), "{expected:?} missing from:{log}");
    }
    assert!(!log.contains(secret), "the key was logged:{log}");
}

/// Beside reqwest-tracing, the policy's place in the chain decides what tracing sees: before
/// it, one span for the whole call; after it, one span per attempt.
#[cfg(feature = "middleware")]
#[tokio::test]
async fn in_a_chain_with_reqwest_tracing_each_layer_sees_what_its_place_gives_it() {
    use novita_reqwest::middleware::NovitaMiddleware;
    use reqwest_tracing::TracingMiddleware;

    let secret = "sk_secret_that_must_not_be_logged";
    let server = MockServer::builder().api_key(secret).start();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = Config::default();
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(20);
    let policy = NovitaMiddleware::builder().policy(config).build().unwrap();
    let body = serde_json::json!({
        "model": "deepseek/deepseek-v3",
        "messages": [{"role": "user", "content": "hi"}],
    });
    let mut logs = Vec::new();
    for tracing_first in [true, false] {
        server.script(Route::ChatCompletions, None, [Fault::status(503)]);
        let chain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
        let chain = if tracing_first {
            chain
                .with(TracingMiddleware::default())
                .with(policy.clone())
        } else {
            chain
                .with(policy.clone())
                .with(TracingMiddleware::default())
        };
        let http = chain.build();
        let recorder = Recorder::default();
        let _default = tracing::subscriber::set_default(recorder.clone());
        let response = http
            .post(format!("{}/chat/completions", server.base_url()))
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let log = recorder.0.lock().unwrap().clone();
        assert!(!log.contains(secret), "the key was logged:{log}");
        assert_eq!(log.matches("span novita.call").count(), 1, "{log}");
        logs.push(log);
    }
    let [whole, per_attempt] = &logs[..] else {
        unreachable!()
    };
    assert_eq!(whole.matches("span HTTP request").count(), 1, "{whole}");
    assert!(!whole.contains("status_code=503"), "{whole}");
    assert_eq!(
        per_attempt.matches("span HTTP request").count(),
        2,
        "{per_attempt}"
    );
    assert!(per_attempt.contains("status_code=503"), "{per_attempt}");
    assert!(per_attempt.contains("status_code=200"), "{per_attempt}");
}
