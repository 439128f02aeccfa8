//! The discrete-event loop: a fleet of clients, one server, one virtual clock.
//!
//! Events sit in a min-heap ordered by virtual time, then by the order they were
//! scheduled, so that ties resolve the same way every run. Every call runs the adapters'
//! loop (see [`client`](super::client)) with the heap as its clock: the fleet polls it; a
//! [`Step::Send`] reaches the server at once and its answer comes back as a `Response`
//! event [`LATENCY`] later, a [`Step::Wait`] becomes a `Wake` event when the wait ends, and
//! either event feeds back or polls again. A call in flight always has exactly one event
//! pending (its `Wake` or its `Response`), so it never sends twice at once.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use super::client::{Call, Client, Fed, Step};
use super::server::{Answer, Server, ServerProfile};
use super::workload::{CALL_INTERVAL, LATENCY, LOAD_WINDOW, Workload, server_seed};

/// What one run counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Calls started.
    pub(crate) calls: u64,
    /// Calls that ended with a 200.
    pub(crate) successes: u64,
    /// Requests the server received.
    pub(crate) requests: u64,
    /// Requests the server received during its outage window.
    pub(crate) outage_requests: u64,
    /// `Retry-After` hints broken: each hint a client received counts once if the client
    /// sent any request before it elapsed.
    pub(crate) violations: u64,
    /// 429s the clients received.
    pub(crate) throttled: u64,
    /// When the server received its last request.
    pub(crate) last_request_at: Duration,
    /// Requests sent while a hint any client received still held: what a server counting
    /// per account, not per client, sees as ignoring its hints.
    pub(crate) sent_during_account_hints: u64,
    /// From call start to success, for every successful call, in completion order.
    pub(crate) completions: Vec<Duration>,
}

/// Runs a server behaving as `profile` against one client per workload phase, made by
/// `new_client` from its index, and counts what happened.
pub(crate) fn run<C: Client>(
    profile: ServerProfile,
    workload: &Workload,
    seed: u64,
    new_client: impl FnMut(usize) -> C,
) -> Tally {
    let mut fleet = Fleet {
        clients: (0..workload.clients()).map(new_client).collect(),
        calls: Vec::new(),
        hints: vec![Vec::new(); workload.clients()],
        account_hint_until: Duration::ZERO,
        queue: BinaryHeap::new(),
        scheduled: 0,
        server: Server::new(profile, server_seed(seed)),
        tally: Tally::default(),
    };
    for (client, &phase) in workload.phases().iter().enumerate() {
        fleet.schedule(phase, Kind::StartCall { client });
    }
    while let Some(Reverse(event)) = fleet.queue.pop() {
        fleet.handle(event);
    }
    fleet.tally.requests = fleet.server.received();
    fleet.tally.outage_requests = fleet.server.received_in_outage();
    fleet.tally
}

/// Something that happens at a point of virtual time.
#[derive(Clone, Copy, Debug)]
struct Event {
    at: Duration,
    /// The order of scheduling, to break ties between events at the same instant.
    sequence: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

/// The kinds of events.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A client starts its next call.
    StartCall { client: usize },
    /// A wait the call asked for is over: poll it again.
    Wake { call: usize },
    /// The server's answer reaches the client: feed it back.
    Response { call: usize, answer: Answer },
}

/// A call in flight.
struct Active<T> {
    client: usize,
    started: Duration,
    call: T,
}

/// The state of one run.
struct Fleet<C: Client> {
    clients: Vec<C>,
    /// Every call of the run by index; `None` once it ended.
    calls: Vec<Option<Active<C::Call>>>,
    /// Per client, the instants until which the `Retry-After` hints it received and has
    /// not yet broken hold.
    hints: Vec<Vec<Duration>>,
    /// Until when the latest hint any client received holds.
    account_hint_until: Duration,
    queue: BinaryHeap<Reverse<Event>>,
    scheduled: u64,
    server: Server,
    tally: Tally,
}

impl<C: Client> Fleet<C> {
    fn schedule(&mut self, at: Duration, kind: Kind) {
        self.scheduled += 1;
        let sequence = self.scheduled;
        self.queue.push(Reverse(Event { at, sequence, kind }));
    }

    fn handle(&mut self, event: Event) {
        let now = event.at;
        match event.kind {
            Kind::StartCall { client } => self.start_call(client, now),
            Kind::Wake { call } => self.poll(call, now),
            Kind::Response { call, answer } => self.respond(call, answer, now),
        }
    }

    fn start_call(&mut self, client: usize, now: Duration) {
        let next = now + CALL_INTERVAL;
        if next < LOAD_WINDOW {
            self.schedule(next, Kind::StartCall { client });
        }
        let Some(strategy) = self.clients.get_mut(client) else {
            return;
        };
        let state = strategy.start(now);
        let call = self.calls.len();
        self.calls.push(Some(Active {
            client,
            started: now,
            call: state,
        }));
        self.tally.calls += 1;
        self.poll(call, now);
    }

    /// Asks the call what to do at `now` and does it: the one place a call is polled.
    fn poll(&mut self, call: usize, now: Duration) {
        let Some(active) = self.calls.get_mut(call).and_then(Option::as_mut) else {
            return;
        };
        match active.call.poll(now) {
            Step::Send => {
                let client = active.client;
                self.check_hints(client, now);
                self.tally.last_request_at = now;
                let answer = self.server.receive(now);
                self.schedule(now + LATENCY, Kind::Response { call, answer });
            }
            Step::Wait(wait) => self.schedule(now.saturating_add(wait), Kind::Wake { call }),
            Step::Failed => self.end(call, now, false),
        }
    }

    /// Feeds `answer` back to the call, then ends it or polls it again.
    fn respond(&mut self, call: usize, answer: Answer, now: Duration) {
        let Some(active) = self.calls.get_mut(call).and_then(Option::as_mut) else {
            return;
        };
        if let Answer::Throttled { .. } = answer {
            self.tally.throttled += 1;
        }
        if let Some(wait) = answer.retry_after()
            && let Some(hints) = self.hints.get_mut(active.client)
        {
            hints.push(now.saturating_add(wait));
            self.account_hint_until = self.account_hint_until.max(now.saturating_add(wait));
        }
        match active.call.feed(answer, now) {
            Fed::Answered => self.end(call, now, true),
            Fed::Pending => self.poll(call, now),
        }
    }

    /// Counts the hints of `client` that a request sent at `now` breaks, each once.
    fn check_hints(&mut self, client: usize, now: Duration) {
        if now < self.account_hint_until {
            self.tally.sent_during_account_hints += 1;
        }
        let Some(hints) = self.hints.get_mut(client) else {
            return;
        };
        hints.retain(|&until| until > now);
        self.tally.violations += hints.len() as u64;
        hints.clear();
    }

    fn end(&mut self, call: usize, now: Duration, success: bool) {
        let Some(active) = self.calls.get_mut(call).and_then(Option::take) else {
            return;
        };
        if success {
            self.tally.successes += 1;
            self.tally
                .completions
                .push(now.saturating_sub(active.started));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strategy that retries at once, `retries` times per call.
    struct Eager {
        retries: u32,
    }

    /// A call of [`Eager`]; it counts polls while a request is in flight.
    struct EagerCall {
        retries_left: u32,
        in_flight: bool,
        over: bool,
    }

    impl Client for Eager {
        type Call = EagerCall;

        fn start(&mut self, _now: Duration) -> EagerCall {
            EagerCall {
                retries_left: self.retries,
                in_flight: false,
                over: false,
            }
        }
    }

    impl Call for EagerCall {
        fn poll(&mut self, _now: Duration) -> Step {
            assert!(!self.in_flight, "polled with a request in flight");
            if self.over {
                return Step::Failed;
            }
            self.in_flight = true;
            Step::Send
        }

        fn feed(&mut self, answer: Answer, _now: Duration) -> Fed {
            assert!(self.in_flight, "fed an answer it did not ask for");
            self.in_flight = false;
            if answer == Answer::Ok {
                return Fed::Answered;
            }
            match self.retries_left.checked_sub(1) {
                Some(left) => self.retries_left = left,
                None => self.over = true,
            }
            Fed::Pending
        }
    }

    fn always_down() -> ServerProfile {
        ServerProfile {
            capacity: 1_000,
            outage: Some(Duration::ZERO..Duration::MAX),
            failure_rate: 0.0,
            over_capacity: Answer::Unavailable,
        }
    }

    #[test]
    fn a_retry_with_no_delay_sends_exactly_once_per_answer() {
        let workload = Workload::new(3, 1);
        let tally = run(always_down(), &workload, 1, |_| Eager { retries: 4 });
        assert_eq!(tally.calls, 3 * 90);
        assert_eq!(tally.requests, tally.calls * 5, "one try and four retries");
        assert_eq!(tally.successes, 0);
    }

    #[test]
    fn a_hint_broken_by_a_retry_at_once_counts_once() {
        let profile = ServerProfile {
            capacity: 0,
            outage: None,
            failure_rate: 0.0,
            over_capacity: Answer::Throttled { retry_after: 1 },
        };
        let workload = Workload::new(1, 1);
        let tally = run(profile, &workload, 1, |_| Eager { retries: 1 });
        // Each call's retry goes out with its first answer and breaks that answer's 1 s
        // hint; the second answer's hint has run out when the next call starts 1.8 s later.
        assert_eq!(tally.violations, tally.calls);
    }
}
