//! Our strategy as the adapters run it: `novita-core`'s `CallDriver` over one
//! `ClientCore` per simulated client, on virtual time.
//!
//! Nothing of the policy is re-implemented here. Each simulated client owns an
//! `Arc<ClientCore>` (the policy, the shared retry budget, breaker and pacing, and the
//! seeded jitter), each call is a `CallDriver` for a chat request, and the fleet drives it
//! through [`Call`] exactly as `novita-ureq` and `novita-reqwest` drive theirs: poll, send or
//! sleep, feed the outcome back. The only difference is the clock: `now` is virtual time
//! and the wall clock is `UNIX_EPOCH + now`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use novita_core::store::{BlockingStore, MemoryStore, Store, StoreError};
use novita_core::wire::ChatRequest;
use novita_core::{CallDriver, ClientCore, Options, Poll, Request};
use novita_policy::{Clock, ModelLimits, PolicyConfig};

use super::client::{Call, Client, Fed, Step};
use super::server::Answer;

/// The one model every call goes to.
pub(crate) const MODEL: &str = "simulated-model";

/// How long a call may run before the policy gives up: the one setting that differs from
/// `PolicyConfig::default()`.
pub(crate) const DEADLINE: Duration = Duration::from_secs(120);

/// A client using `novita-core`: one [`ClientCore`] shared by its calls, seeded with the
/// client's own random stream, and one [`CallDriver`] per call.
#[derive(Debug)]
pub(crate) struct NovitaClient {
    core: Arc<ClientCore>,
    request: Request,
    /// The store this client shares its state through, run on virtual time.
    store: Option<Arc<MemoryStore>>,
}

impl NovitaClient {
    /// A client with fresh state, drawing its jitter from `seed`.
    ///
    /// # Panics
    /// Never in practice: the key is set and the policy is the defaults with a deadline,
    /// which always validate (a unit test builds one).
    pub(crate) fn new(seed: u64) -> Self {
        Self::with(seed, None, None)
    }

    /// A client that knows the account's limits on [`MODEL`] and, with a store, shares
    /// its state (hints, breaker, budget, the limits) with every client on that store, as
    /// processes sharing a Redis do.
    pub(crate) fn with(
        seed: u64,
        limits: Option<ModelLimits>,
        store: Option<Arc<MemoryStore>>,
    ) -> Self {
        let mut policy = PolicyConfig::default();
        policy.deadline = Some(DEADLINE);
        if let Some(limits) = limits {
            policy.limits.insert(MODEL.to_owned(), limits);
        }
        let mut options = Options::default();
        options.api_key = Some("sk_simulated".to_owned());
        options.seed = Some(seed);
        options.policy = Some(policy);
        options.store = store
            .clone()
            .map(|store| Store::Blocking(store as Arc<dyn BlockingStore>));
        let core = ClientCore::new(options, |_| None)
            .unwrap_or_else(|error| panic!("the simulation's client settings: {error}"));
        Self {
            core: Arc::new(core),
            request: Request::chat(&ChatRequest::new(MODEL, "simulated prompt")),
            store,
        }
    }
}

impl Client for NovitaClient {
    type Call = NovitaCall;

    fn start(&mut self, now: Duration) -> NovitaCall {
        NovitaCall {
            driver: CallDriver::new(Arc::clone(&self.core), self.request.clone(), now),
            store: self.store.clone(),
        }
    }
}

/// One call: the driver, and the store its exchanges run on (on virtual time, with no
/// round trip: the simulated store answers at once).
#[derive(Debug)]
pub(crate) struct NovitaCall {
    driver: CallDriver,
    store: Option<Arc<MemoryStore>>,
}

/// The driver's answers map one to one onto the fleet's.
impl Call for NovitaCall {
    fn poll(&mut self, now: Duration) -> Step {
        loop {
            match self.driver.poll(now) {
                // The simulated server does not read the attempt: every attempt is one
                // request to the one model, whatever its delivery.
                Poll::Send(_attempt) => return Step::Send,
                Poll::Wait(wait) => return Step::Wait(wait),
                Poll::Failed(_error) => return Step::Failed,
                Poll::Share(exchange) => {
                    let verdict = match &self.store {
                        Some(store) => Ok(store.exchange_at(&exchange, now)),
                        None => Err(StoreError("this simulated client has no store".into())),
                    };
                    self.driver.handle_shared(verdict, now);
                }
            }
        }
    }

    fn feed(&mut self, answer: Answer, now: Duration) -> Fed {
        let clock = Clock {
            now,
            wall: SystemTime::UNIX_EPOCH + now,
        };
        if answer == Answer::Ok {
            self.driver.handle_success(answer.status(), clock);
            return Fed::Answered;
        }
        let retry_after = answer.retry_after().map(|wait| wait.as_secs().to_string());
        let headers: Vec<(&str, &str)> = retry_after
            .as_deref()
            .map(|value| ("retry-after", value))
            .into_iter()
            .collect();
        self.driver
            .handle_response(answer.status(), &headers, b"", clock);
        Fed::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn the_client_settings_are_valid_and_as_described() {
        let client = NovitaClient::new(1);
        assert_eq!(client.core.config().deadline, Some(DEADLINE));
        assert_eq!(client.request.model(), Some(MODEL));
    }

    #[test]
    fn novita_waits_exactly_as_long_as_a_429_asks() {
        let mut client = NovitaClient::new(1);
        let mut call = client.start(Duration::ZERO);
        assert_eq!(Call::poll(&mut call, Duration::ZERO), Step::Send);
        let fed = call.feed(Answer::Throttled { retry_after: 1 }, ms(100));
        assert_eq!(fed, Fed::Pending);
        assert_eq!(Call::poll(&mut call, ms(100)), Step::Wait(ms(1_000)));
        assert_eq!(Call::poll(&mut call, ms(600)), Step::Wait(ms(500)));
        assert_eq!(Call::poll(&mut call, ms(1_100)), Step::Send);
        assert_eq!(call.feed(Answer::Ok, ms(1_200)), Fed::Answered);
    }

    #[test]
    fn calls_of_one_client_share_its_state() {
        let mut client = NovitaClient::new(1);
        let full = client.core.retry_budget();
        let mut first = client.start(Duration::ZERO);
        assert_eq!(Call::poll(&mut first, Duration::ZERO), Step::Send);
        assert_eq!(first.feed(Answer::Unavailable, ms(100)), Fed::Pending);
        assert!(
            client.core.retry_budget() < full,
            "the retry was paid from the client's budget"
        );
        let second = client.start(ms(100));
        assert_eq!(
            Arc::strong_count(&client.core),
            3,
            "both calls drive the client's one core"
        );
        drop((first, second));
    }
}
