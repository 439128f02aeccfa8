//! Proactive per-model limits on real HTTP: a call's token estimate is charged before it is
//! sent and corrected from the answer's `usage`, through `chat` and `post_json` alike, so a
//! generous `max_tokens` does not hold the next call back for what was never spent.

use std::time::Duration;

use novita_ureq::{ChatRequest, PolicyConfig};

use crate::{MODEL, for_each_adapter};

/// 1200 tokens a minute: an estimate of ~1000 tokens holds the model for ~50 s unless
/// corrected; the mock's answers use a few dozen.
fn tight_tpm(policy: &mut PolicyConfig) {
    let limits = novita_ureq::ModelLimits::new(None, Some(1200));
    policy.limits.insert(MODEL.to_owned(), limits);
}

#[test]
fn usage_corrects_the_token_estimate_through_chat_and_post_json() {
    for_each_adapter(
        |_, setup| tight_tpm(&mut setup.policy),
        |client, server| {
            let request = ChatRequest::new(MODEL, "hello").max_tokens(1000);
            let first = client.chat(&request).unwrap();
            let used = first.usage.as_ref().map(|usage| usage.total_tokens);
            assert!(used.is_some_and(|tokens| tokens < 100), "{used:?}");
            let body = serde_json::to_value(&request).unwrap();
            client.post_json("chat/completions", &body).unwrap();
            client.chat(&request).unwrap();
            let at: Vec<Duration> = server.requests().iter().map(|r| r.at).collect();
            assert_eq!(at.len(), 3, "{}", client.name());
            // Uncorrected, each call would wait ~50 s for the one before; corrected, about
            // the time of the tokens actually used.
            for pair in at.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    gap < Duration::from_secs(10),
                    "{}: waited {gap:?}",
                    client.name()
                );
            }
        },
    );
}

/// The README's policy example is a real configuration, so it stays true.
#[test]
fn the_readme_policy_example_reads_and_validates() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```toml\n")
        .expect("the README shows a policy file")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    let config = PolicyConfig::from_toml(&readme[start..end])
        .unwrap_or_else(|error| panic!("{error}\n{}", &readme[start..end]));
    let limits = &config.limits["deepseek/deepseek-r1"];
    assert_eq!((limits.rpm, limits.tpm), (Some(60), Some(100_000)));
}
