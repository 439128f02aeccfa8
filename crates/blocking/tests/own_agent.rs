//! novita-ureq on the user's own `ureq::Agent`: their settings stay, the policy applies.

use std::time::Duration;

use novita_mock::{Fault, MockServer, Route};
use novita_ureq::{ChatRequest, Client, PolicyConfig};

#[test]
fn your_own_agent_carries_the_calls_under_the_same_policy() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    // An agent that treats error statuses as errors, as ureq does by default: the client
    // still sees the 503 as a response to decide on.
    let own: ureq::Agent = ureq::Agent::config_builder()
        .user_agent("my-app/1.0")
        .build()
        .into();
    let mut policy = PolicyConfig::default();
    policy.backoff.base = Duration::from_millis(5);
    policy.backoff.cap = Duration::from_millis(20);
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .policy(policy)
        .agent(own)
        .build()
        .unwrap();
    let answer = client
        .chat(&ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "hello"))
        .unwrap();
    assert_eq!(answer.report.attempts, 2, "the 503 was retried");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for sent in &requests {
        assert_eq!(sent.header("user-agent"), Some("my-app/1.0"));
        assert!(sent.authorized);
    }

    // A 401 is read as the server's answer, not as a failure of the agent.
    server.script(Route::ChatCompletions, None, [Fault::status(401)]);
    let error = client
        .chat(&ChatRequest::new(novita_mock::DEFAULT_MODELS[0], "hello"))
        .unwrap_err();
    assert_eq!(error.kind(), novita_ureq::ErrorKind::Auth, "{error}");
    assert_eq!(error.status(), Some(401));
}
