//! Several clients sharing their state through one real `redis-server` (started here, on a
//! free port, and stopped after), each with its own connection, as separate processes
//! would have, against one mock: what one learns, the others act on; Redis in trouble
//! never fails a call.

use std::time::Duration;

use novita_mock::{Fault, MockServer, Route};
use novita_redis::testing::RedisServer;
use novita_ureq::{ChatRequest, ModelLimits};

use crate::adapters::{Kind, Setup};
use crate::{KINDS, MODEL, adapter};

/// How long a client leaves a failed store alone (novita-core's retry period), and a margin.
const STORE_RETRY: Duration = Duration::from_millis(1200);

fn setup(server: &MockServer, redis: &RedisServer) -> Setup {
    let mut setup = Setup::new(server);
    setup.redis_url = Some(redis.url());
    setup
}

/// Runs `calls` chats on each of `clients` clients at once, each client on its own thread
/// with its own store; returns how many succeeded.
fn fleet(kind: Kind, setup: &Setup, clients: usize, calls: usize) -> usize {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    let client = adapter(kind, setup);
                    (0..calls)
                        .filter(|_| client.chat(&ChatRequest::new(MODEL, "hi")).is_ok())
                        .count()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("no panics"))
            .sum()
    })
}

/// The most arrivals in any window of `width`.
fn most_in_any_window(server: &MockServer, width: Duration) -> usize {
    let at: Vec<Duration> = server.requests().iter().map(|request| request.at).collect();
    (0..at.len())
        .map(|first| {
            at[first..]
                .iter()
                .take_while(|&&t| t - at[first] < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_429_one_client_hears_holds_back_every_other() {
    for kind in KINDS {
        let redis = RedisServer::start();
        let server = MockServer::start();
        server.script(
            Route::ChatCompletions,
            None,
            [Fault::status(429).retry_after_secs(2)],
        );
        let mut setup = setup(&server, &redis);
        setup.policy.max_attempts = 1;
        let first = adapter(kind, &setup);
        let error = first.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
        assert_eq!(error.status(), Some(429), "{kind:?}");
        // Three other clients, with stores of their own, never saw the 429.
        setup.policy.max_attempts = 3;
        assert_eq!(fleet(kind, &setup, 3, 1), 3, "{kind:?}");
        let requests = server.requests();
        assert_eq!(requests.len(), 4, "{kind:?}");
        for later in &requests[1..] {
            let gap = later.at - requests[0].at;
            assert!(
                gap >= Duration::from_millis(1950),
                "{kind:?}: a request went {gap:?} after the 429 that asked for 2 s"
            );
        }
    }
}

#[test]
fn the_configured_rpm_holds_for_the_whole_fleet() {
    for kind in KINDS {
        let redis = RedisServer::start();
        let server = MockServer::start();
        let mut setup = setup(&server, &redis);
        // Ten a second, no burst: three clients at full speed would send thirty.
        setup.policy.limits.insert(
            MODEL.to_owned(),
            ModelLimits::new(Some(600), None).with_burst(Duration::ZERO),
        );
        assert_eq!(fleet(kind, &setup, 3, 7), 21, "{kind:?}");
        let most = most_in_any_window(&server, Duration::from_secs(1));
        // The store's clock and the mock's are one machine's, but a request's arrival
        // trails its charge by a little: one of slack.
        assert!(
            most <= 11,
            "{kind:?}: {most} requests in one second under 600 RPM"
        );
    }
}

#[test]
fn calls_go_on_while_redis_is_down_and_sharing_resumes_when_it_is_back() {
    for kind in KINDS {
        let mut redis = RedisServer::start();
        let server = MockServer::start();
        let mut setup = setup(&server, &redis);
        setup.policy.max_attempts = 1;
        let one = adapter(kind, &setup);
        let other = adapter(kind, &setup);
        one.chat(&ChatRequest::new(MODEL, "hi")).unwrap();

        redis.stop();
        let started = std::time::Instant::now();
        for client in [&one, &other] {
            client.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{kind:?}: calls waited on a dead store for {:?}",
            started.elapsed()
        );

        redis.restart();
        // The clients try the store again once its retry period is over.
        std::thread::sleep(STORE_RETRY);
        server.clear_requests();
        server.script(
            Route::ChatCompletions,
            None,
            [Fault::status(429).retry_after_secs(2)],
        );
        one.chat(&ChatRequest::new(MODEL, "hi")).unwrap_err();
        other.chat(&ChatRequest::new(MODEL, "hi")).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{kind:?}");
        let gap = requests[1].at - requests[0].at;
        assert!(
            gap >= Duration::from_millis(1950),
            "{kind:?}: sharing did not resume ({gap:?} after the 429)"
        );
    }
}
