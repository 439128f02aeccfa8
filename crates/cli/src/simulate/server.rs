//! The server: finite capacity per virtual second, plus the scenario's faults.

use std::ops::Range;
use std::time::Duration;

use novita_policy::SplitMix64;

/// What the server answers to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200: the call succeeded.
    Ok,
    /// 503: overloaded or down, no hint.
    Unavailable,
    /// 429 with `Retry-After` in whole seconds.
    Throttled {
        /// The `Retry-After` value, in seconds.
        retry_after: u32,
    },
}

impl Answer {
    /// The HTTP status of the answer.
    pub(crate) fn status(self) -> u16 {
        match self {
            Answer::Ok => 200,
            Answer::Unavailable => 503,
            Answer::Throttled { .. } => 429,
        }
    }

    /// How long the server asked the client to wait, if it asked.
    pub(crate) fn retry_after(self) -> Option<Duration> {
        match self {
            Answer::Throttled { retry_after } => Some(Duration::from_secs(retry_after.into())),
            Answer::Ok | Answer::Unavailable => None,
        }
    }
}

/// How a server behaves in a scenario.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServerProfile {
    /// Requests accepted per virtual second (a fixed window starting on each whole second).
    pub(crate) capacity: u32,
    /// While the virtual clock is in this window, every request gets 503.
    pub(crate) outage: Option<Range<Duration>>,
    /// The share of accepted requests that fail with 503 anyway, at random.
    pub(crate) failure_rate: f64,
    /// The answer to a request over capacity.
    pub(crate) over_capacity: Answer,
}

/// The server of one run: its profile, its capacity window, its random faults and what it
/// received.
#[derive(Debug)]
pub(crate) struct Server {
    profile: ServerProfile,
    window: u64,
    accepted_in_window: u32,
    rng: SplitMix64,
    received: u64,
    received_in_outage: u64,
}

impl Server {
    /// A server behaving as `profile`, drawing its random faults from `seed`.
    pub(crate) fn new(profile: ServerProfile, seed: u64) -> Self {
        Self {
            profile,
            window: 0,
            accepted_in_window: 0,
            rng: SplitMix64::new(seed),
            received: 0,
            received_in_outage: 0,
        }
    }

    /// Receives one request at `now` and answers it.
    pub(crate) fn receive(&mut self, now: Duration) -> Answer {
        self.received += 1;
        if self.in_outage(now) {
            self.received_in_outage += 1;
            return Answer::Unavailable;
        }
        if !self.accept(now) {
            return self.profile.over_capacity;
        }
        if self.profile.failure_rate > 0.0 && self.rng.draw().get() < self.profile.failure_rate {
            return Answer::Unavailable;
        }
        Answer::Ok
    }

    /// Requests received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Requests received during the outage window.
    pub(crate) fn received_in_outage(&self) -> u64 {
        self.received_in_outage
    }

    fn in_outage(&self, now: Duration) -> bool {
        self.profile
            .outage
            .as_ref()
            .is_some_and(|outage| outage.contains(&now))
    }

    /// Takes a slot in the current one-second window, if one is left.
    fn accept(&mut self, now: Duration) -> bool {
        let window = now.as_secs();
        if window != self.window {
            self.window = window;
            self.accepted_in_window = 0;
        }
        if self.accepted_in_window >= self.profile.capacity {
            return false;
        }
        self.accepted_in_window += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(capacity: u32) -> ServerProfile {
        ServerProfile {
            capacity,
            outage: Some(Duration::from_secs(10)..Duration::from_secs(20)),
            failure_rate: 0.0,
            over_capacity: Answer::Throttled { retry_after: 1 },
        }
    }

    #[test]
    fn capacity_is_per_second() {
        let mut server = Server::new(profile(2), 1);
        let at = Duration::from_millis(1_100);
        assert_eq!(server.receive(at), Answer::Ok);
        assert_eq!(server.receive(at), Answer::Ok);
        assert_eq!(server.receive(at), Answer::Throttled { retry_after: 1 });
        assert_eq!(server.receive(Duration::from_secs(2)), Answer::Ok);
        assert_eq!(server.received(), 4);
    }

    #[test]
    fn the_outage_fails_everything_and_is_counted() {
        let mut server = Server::new(profile(100), 1);
        assert_eq!(server.receive(Duration::from_secs(10)), Answer::Unavailable);
        assert_eq!(
            server.receive(Duration::from_millis(19_999)),
            Answer::Unavailable
        );
        assert_eq!(server.receive(Duration::from_secs(20)), Answer::Ok);
        assert_eq!(server.received_in_outage(), 2);
    }
}
