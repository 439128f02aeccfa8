//! The discrete-event loop: a fleet of clients, one server, one virtual clock.
//!
//! Events sit in a min-heap ordered by virtual time, then by the order they were
//! scheduled, so that ties resolve the same way every run. A call moves through two events
//! per attempt: `Attempt` (the strategy sends it at once, refuses it, or asks to be asked
//! again later; a sent attempt is answered by the server on the spot) and `Response` (the
//! answer reaches the client [`LATENCY`] later and the strategy decides what follows).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use novita_policy::SplitMix64;

use super::scenario::Scenario;
use super::server::{Answer, Server};
use super::strategy::{Client, Gate, Next};

/// Each client starts one call this often.
pub(crate) const CALL_INTERVAL: Duration = Duration::from_secs(2);
/// Calls start during this long; calls still running afterwards run to their end.
pub(crate) const LOAD_WINDOW: Duration = Duration::from_secs(180);
/// From a request leaving the client to its answer arriving, whatever the answer.
pub(crate) const LATENCY: Duration = Duration::from_millis(100);

/// Salts that split one seed into independent random streams.
const WORKLOAD_STREAM: u64 = 0x574F_524B;
const SERVER_STREAM: u64 = 0x5345_5256;
const CLIENT_STREAMS: u64 = 0x434C_0000_0000;

/// A seed for the random stream `stream` of a run seeded with `seed`.
pub(crate) fn stream_seed(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// The seed of client `client`'s own random stream.
pub(crate) fn client_seed(seed: u64, client: usize) -> u64 {
    stream_seed(seed, CLIENT_STREAMS.wrapping_add(client as u64))
}

/// When each client starts its calls: the same for every strategy of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Workload {
    /// The offset of each client's first call, in `[0, CALL_INTERVAL)`.
    phases: Vec<Duration>,
}

impl Workload {
    /// `clients` clients with random phases drawn from `seed`.
    pub(crate) fn new(clients: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(stream_seed(seed, WORKLOAD_STREAM));
        let phases = (0..clients)
            .map(|_| CALL_INTERVAL.mul_f64(rng.draw().get()))
            .collect();
        Self { phases }
    }

    /// How many clients.
    pub(crate) fn clients(&self) -> usize {
        self.phases.len()
    }
}

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
    /// From call start to success, for every successful call, in completion order.
    pub(crate) completions: Vec<Duration>,
}

/// Simulates `scenario` with one client per workload phase, made by `new_client` from
/// its index, and counts what happened.
pub(crate) fn run<C: Client>(
    scenario: Scenario,
    workload: &Workload,
    seed: u64,
    new_client: impl FnMut(usize) -> C,
) -> Tally {
    let server = Server::new(
        scenario.profile(workload.clients()),
        stream_seed(seed, SERVER_STREAM),
    );
    let mut fleet = Fleet {
        clients: (0..workload.clients()).map(new_client).collect(),
        calls: Vec::new(),
        hints: vec![Vec::new(); workload.clients()],
        queue: BinaryHeap::new(),
        scheduled: 0,
        server,
        tally: Tally::default(),
    };
    for (client, &phase) in workload.phases.iter().enumerate() {
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
    /// A call wants to send an attempt: the strategy may hold it back or refuse it.
    Attempt { call: usize },
    /// The server's answer reaches the client.
    Response { call: usize, answer: Answer },
}

/// A call in flight.
struct Active<T> {
    client: usize,
    started: Duration,
    state: T,
}

/// The state of one run.
struct Fleet<C: Client> {
    clients: Vec<C>,
    /// Every call of the run by index; `None` once it ended.
    calls: Vec<Option<Active<C::Call>>>,
    /// Per client, the instants until which the `Retry-After` hints it received and has
    /// not yet broken hold.
    hints: Vec<Vec<Duration>>,
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
            Kind::Attempt { call } => self.attempt(call, now),
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
        let state = strategy.start_call(now);
        let call = self.calls.len();
        self.calls.push(Some(Active {
            client,
            started: now,
            state,
        }));
        self.tally.calls += 1;
        self.attempt(call, now);
    }

    fn attempt(&mut self, call: usize, now: Duration) {
        let Some((client, active)) = self.active(call) else {
            return;
        };
        match client.admit(&mut active.state, now) {
            Gate::Send => self.transmit(call, now),
            Gate::Wait(wait) => self.schedule(now.saturating_add(wait), Kind::Attempt { call }),
            Gate::Refuse => self.end(call, now, false),
        }
    }

    fn transmit(&mut self, call: usize, now: Duration) {
        let Some(client) = self
            .calls
            .get(call)
            .and_then(Option::as_ref)
            .map(|active| active.client)
        else {
            return;
        };
        self.check_hints(client, now);
        let answer = self.server.receive(now);
        self.schedule(now + LATENCY, Kind::Response { call, answer });
    }

    fn respond(&mut self, call: usize, answer: Answer, now: Duration) {
        let Some((client, active)) = self.active(call) else {
            return;
        };
        let next = client.on_answer(&mut active.state, answer, now);
        let client = active.client;
        if let Some(wait) = answer.retry_after()
            && let Some(hints) = self.hints.get_mut(client)
        {
            hints.push(now.saturating_add(wait));
        }
        match next {
            Next::Done => self.end(call, now, answer == Answer::Ok),
            Next::Retry { delay } => {
                self.schedule(now.saturating_add(delay), Kind::Attempt { call })
            }
            Next::GiveUp => self.end(call, now, false),
        }
    }

    /// The call's client strategy and its state, while the call runs.
    fn active(&mut self, call: usize) -> Option<(&mut C, &mut Active<C::Call>)> {
        let active = self.calls.get_mut(call)?.as_mut()?;
        let client = self.clients.get_mut(active.client)?;
        Some((client, active))
    }

    /// Counts the hints of `client` that a request sent at `now` breaks, each once.
    fn check_hints(&mut self, client: usize, now: Duration) {
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
