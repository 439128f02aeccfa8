//! Clients that share their state through a store: what one learns, the others act on.
//! The store here is novita-core's `MemoryStore` (the reference for novita-redis); the
//! clients run on virtual time, the store on its own clock, and facts cross as durations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use novita_core::policy::{Clock, ModelLimits, NO_HEADERS, PolicyConfig};
use novita_core::store::{BlockingStore, Exchange, MemoryStore, Store, StoreError, Verdict};
use novita_core::wire::ChatRequest;
use novita_core::{Attempt, CallDriver, ClientCore, Options, Poll, Request};

const MODEL: &str = "primary";
const FALLBACK: &str = "fallback";

fn client(store: Store, config: PolicyConfig, key: &str) -> Arc<ClientCore> {
    let mut options = Options::default();
    options.api_key = Some(key.to_owned());
    options.policy = Some(config);
    options.fallback_models = vec![FALLBACK.to_owned()];
    options.seed = Some(7);
    options.store = Some(store);
    Arc::new(ClientCore::new(options, |_| None).unwrap())
}

fn clock(now: Duration) -> Clock {
    Clock {
        now,
        wall: SystemTime::UNIX_EPOCH + now,
    }
}

/// What the driver asks for at `now` once every exchange it wants has been run.
enum Next {
    Send(Attempt),
    Wait(Duration),
}

fn next(driver: &mut CallDriver, core: &ClientCore, now: Duration) -> Next {
    loop {
        match driver.poll(now) {
            Poll::Share(exchange) => driver.handle_shared(core.exchange_blocking(&exchange), now),
            Poll::Send(attempt) => return Next::Send(attempt),
            Poll::Wait(wait) => return Next::Wait(wait),
            Poll::Failed(error) => panic!("the call failed: {error}"),
        }
    }
}

fn call(core: &Arc<ClientCore>, now: Duration) -> CallDriver {
    CallDriver::new(
        Arc::clone(core),
        Request::chat(&ChatRequest::new(MODEL, "hi")),
        now,
    )
}

fn memory() -> Store {
    Store::Blocking(Arc::new(MemoryStore::new()))
}

#[test]
fn a_hint_one_client_hears_holds_back_the_others() {
    let store = memory();
    let a = client(store.clone(), PolicyConfig::default(), "sk_account");
    let b = client(store, PolicyConfig::default(), "sk_account");
    let t0 = Duration::ZERO;
    let mut first = call(&a, t0);
    let Next::Send(_) = next(&mut first, &a, t0) else {
        panic!("the first call goes at once")
    };
    first.handle_response(429, &[("retry-after", "2")], b"", clock(t0));
    // The hint is published before the call even starts waiting.
    let Next::Wait(wait) = next(&mut first, &a, t0) else {
        panic!("the throttled call waits")
    };
    assert!(wait >= Duration::from_millis(1900), "{wait:?}");
    let mut other = call(&b, t0);
    let Next::Wait(held) = next(&mut other, &b, t0) else {
        panic!("the other client's call is held by the hint it never heard itself")
    };
    assert!(
        held >= Duration::from_millis(1900) && held <= Duration::from_secs(2),
        "{held:?}"
    );
}

#[test]
fn clients_of_other_accounts_share_nothing() {
    let store = memory();
    let a = client(store.clone(), PolicyConfig::default(), "sk_account_one");
    let b = client(store, PolicyConfig::default(), "sk_account_two");
    let mut first = call(&a, Duration::ZERO);
    let Next::Send(_) = next(&mut first, &a, Duration::ZERO) else {
        panic!()
    };
    first.handle_response(429, &[("retry-after", "2")], b"", clock(Duration::ZERO));
    let _ = next(&mut first, &a, Duration::ZERO);
    let mut other = call(&b, Duration::ZERO);
    assert!(matches!(
        next(&mut other, &b, Duration::ZERO),
        Next::Send(_)
    ));
}

#[test]
fn limits_hold_across_clients() {
    let mut config = PolicyConfig::default();
    config.limits.insert(
        MODEL.to_owned(),
        ModelLimits::new(Some(60), None).with_burst(Duration::ZERO),
    );
    let store = memory();
    let a = client(store.clone(), config.clone(), "sk_account");
    let b = client(store, config, "sk_account");
    let mut first = call(&a, Duration::ZERO);
    let Next::Send(_) = next(&mut first, &a, Duration::ZERO) else {
        panic!()
    };
    let _ = first.handle_success(200, clock(Duration::ZERO));
    // 60 a minute: the other client's call waits its second.
    let mut second = call(&b, Duration::ZERO);
    let Next::Wait(wait) = next(&mut second, &b, Duration::ZERO) else {
        panic!("the shared limit holds the second client")
    };
    assert!(
        wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
}

#[test]
fn a_model_in_maintenance_is_skipped_by_every_client() {
    let store = memory();
    let a = client(store.clone(), PolicyConfig::default(), "sk_account");
    let b = client(store, PolicyConfig::default(), "sk_account");
    let mut first = call(&a, Duration::ZERO);
    let Next::Send(_) = next(&mut first, &a, Duration::ZERO) else {
        panic!()
    };
    first.handle_response(
        500,
        &NO_HEADERS,
        br#"{"code":500,"reason":"MODEL_NOT_AVAILABLE","message":"maintenance"}"#,
        clock(Duration::ZERO),
    );
    // The call moves on to the fallback, telling the store first.
    let Next::Send(attempt) = next(&mut first, &a, Duration::ZERO) else {
        panic!()
    };
    assert_eq!(attempt.model, FALLBACK);
    let mut other = call(&b, Duration::ZERO);
    let Next::Send(attempt) = next(&mut other, &b, Duration::ZERO) else {
        panic!("the other client falls back at once")
    };
    assert_eq!(attempt.model, FALLBACK);
}

/// A store that always fails, counting how often it was asked.
#[derive(Debug, Default)]
struct Down(AtomicUsize);

impl BlockingStore for Down {
    fn exchange(&self, _: &Exchange) -> Result<Verdict, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError("connection refused".into()))
    }
}

#[test]
fn a_failing_store_never_fails_a_call_and_is_left_alone_for_a_while() {
    let down = Arc::new(Down::default());
    let mut config = PolicyConfig::default();
    config.limits.insert(
        MODEL.to_owned(),
        ModelLimits::new(Some(60), None).with_burst(Duration::ZERO),
    );
    let core = client(Store::Blocking(down.clone()), config, "sk_account");
    let mut first = call(&core, Duration::ZERO);
    let Next::Send(_) = next(&mut first, &core, Duration::ZERO) else {
        panic!("the call goes without the store")
    };
    let _ = first.handle_success(200, clock(Duration::ZERO));
    assert_eq!(down.0.load(Ordering::SeqCst), 1);
    // The client's own limits took over: the next call waits its second, and the store is
    // not asked again within a second of failing.
    let mut second = call(&core, Duration::from_millis(100));
    let Next::Wait(wait) = next(&mut second, &core, Duration::from_millis(100)) else {
        panic!("the client's own limit holds the call")
    };
    assert_eq!(wait, Duration::from_millis(900));
    assert_eq!(down.0.load(Ordering::SeqCst), 1);
    // After a second, the store is tried again.
    let _ = next(&mut second, &core, Duration::from_millis(1100));
    assert_eq!(down.0.load(Ordering::SeqCst), 2);
}

#[test]
fn the_retry_budget_is_one_for_all_clients() {
    let mut config = PolicyConfig::default();
    config.budget.capacity = 30;
    let store = memory();
    let a = client(store.clone(), config.clone(), "sk_account");
    let b = client(store, config, "sk_account");
    let mut failing = call(&a, Duration::ZERO);
    let Next::Send(_) = next(&mut failing, &a, Duration::ZERO) else {
        panic!()
    };
    failing.handle_response(503, &NO_HEADERS, b"", clock(Duration::ZERO));
    let spent = 30 - a.retry_budget();
    assert!(spent > 0, "a retry costs budget");
    // The urgent exchange is not due (no news outlasts anything): the delta goes with the
    // next exchange, and the other client's budget follows the shared balance.
    let _ = next(&mut failing, &a, Duration::from_secs(5));
    let mut other = call(&b, Duration::from_secs(5));
    let _ = next(&mut other, &b, Duration::from_secs(5));
    assert_eq!(b.retry_budget(), 30 - spent);
}

#[test]
fn a_hint_that_ends_a_call_still_reaches_the_others() {
    let mut config = PolicyConfig::default();
    config.max_attempts = 1;
    let store = memory();
    let a = client(store.clone(), config.clone(), "sk_account");
    let b = client(store, config, "sk_account");
    let mut first = call(&a, Duration::ZERO);
    let Next::Send(_) = next(&mut first, &a, Duration::ZERO) else {
        panic!()
    };
    first.handle_response(429, &[("retry-after", "2")], b"", clock(Duration::ZERO));
    let Poll::Share(exchange) = first.poll(Duration::ZERO) else {
        panic!("the hint is published before the error is handed over")
    };
    first.handle_shared(a.exchange_blocking(&exchange), Duration::ZERO);
    assert!(matches!(first.poll(Duration::ZERO), Poll::Failed(_)));
    let mut other = call(&b, Duration::ZERO);
    let Next::Wait(held) = next(&mut other, &b, Duration::ZERO) else {
        panic!("held by the hint")
    };
    assert!(held >= Duration::from_millis(1900), "{held:?}");
}

/// A memory store that counts its exchanges.
#[derive(Debug, Default)]
struct Counting {
    store: MemoryStore,
    exchanges: AtomicUsize,
}

impl BlockingStore for Counting {
    fn exchange(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        BlockingStore::exchange(&self.store, exchange)
    }
}

#[test]
fn a_successful_attempt_costs_one_round_trip() {
    let counting = Arc::new(Counting::default());
    let mut config = PolicyConfig::default();
    config
        .limits
        .insert(MODEL.to_owned(), ModelLimits::new(Some(600), Some(100_000)));
    let core = client(Store::Blocking(counting.clone()), config, "sk_account");
    for call_number in 1..=3 {
        let mut driver = call(&core, Duration::from_secs(call_number));
        let Next::Send(_) = next(&mut driver, &core, Duration::from_secs(call_number)) else {
            panic!()
        };
        let _ = driver.handle_success(200, clock(Duration::from_secs(call_number)));
        assert_eq!(
            counting.exchanges.load(Ordering::SeqCst),
            usize::try_from(call_number).unwrap(),
            "one exchange per successful call, news of the last one included"
        );
    }
}
