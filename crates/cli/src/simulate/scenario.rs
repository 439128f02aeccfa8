//! The four scenarios: how much the server can take and how it fails.

use std::ops::Range;
use std::time::Duration;

use super::server::{Answer, ServerProfile};
use super::workload::CALL_INTERVAL;

/// When the server is down in `outage` and `thundering-herd`.
pub(crate) const OUTAGE: Range<Duration> = Duration::from_secs(30)..Duration::from_secs(90);

/// The share of requests `random-503` fails.
const RANDOM_FAILURE_RATE: f64 = 0.3;

/// A fault pattern and a capacity, scaled to the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scenario {
    /// Ample capacity; 30 % of requests get 503 at random.
    Random503,
    /// Ample capacity; every request gets 503 from 30 s to 90 s, then full recovery.
    Outage,
    /// Demand is about twice the capacity; requests over it get 429 with `Retry-After: 1`.
    Oversubscribed,
    /// The outage of `outage`, with capacity just above the steady demand afterwards:
    /// requests over it get 503, so retries that pile up at recovery overload the server.
    ThunderingHerd,
}

impl Scenario {
    /// Every scenario, in report order.
    pub(crate) const ALL: [Scenario; 4] = [
        Scenario::Random503,
        Scenario::Outage,
        Scenario::Oversubscribed,
        Scenario::ThunderingHerd,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Random503 => "random-503",
            Scenario::Outage => "outage",
            Scenario::Oversubscribed => "oversubscribed",
            Scenario::ThunderingHerd => "thundering-herd",
        }
    }

    /// The scenario called `name`, if there is one.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scenario| scenario.name() == name)
    }

    /// One line saying what the server does.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Scenario::Random503 => "ample capacity; 30 % of requests get 503 at random",
            Scenario::Outage => "every request gets 503 from 30 s to 90 s, then full recovery",
            Scenario::Oversubscribed => {
                "demand is about 2x capacity; requests over it get 429 with Retry-After: 1"
            }
            Scenario::ThunderingHerd => {
                "503 from 30 s to 90 s; afterwards capacity is just above the steady demand \
                 and requests over it get 503"
            }
        }
    }

    /// Whether the scenario has an outage window, so that outage load means something.
    pub(crate) fn has_outage(self) -> bool {
        self.profile(1).outage.is_some()
    }

    /// The server for a fleet of `clients`.
    pub(crate) fn profile(self, clients: usize) -> ServerProfile {
        let demand = steady_demand(clients);
        let ample = ServerProfile {
            capacity: per_second(demand * 10.0),
            outage: None,
            failure_rate: 0.0,
            over_capacity: Answer::Unavailable,
        };
        match self {
            Scenario::Random503 => ServerProfile {
                failure_rate: RANDOM_FAILURE_RATE,
                ..ample
            },
            Scenario::Outage => ServerProfile {
                outage: Some(OUTAGE),
                ..ample
            },
            Scenario::Oversubscribed => ServerProfile {
                capacity: per_second(demand / 2.0),
                over_capacity: Answer::Throttled { retry_after: 1 },
                ..ample
            },
            Scenario::ThunderingHerd => ServerProfile {
                capacity: per_second(demand * 1.2),
                outage: Some(OUTAGE),
                ..ample
            },
        }
    }
}

/// Calls per second the fleet starts in steady state.
fn steady_demand(clients: usize) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "fleet sizes are far below 2^52")]
    let clients = clients as f64;
    clients / CALL_INTERVAL.as_secs_f64()
}

/// A capacity in whole requests per second, at least one.
fn per_second(rate: f64) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to the u32 range first"
    )]
    let rate = rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
    rate
}
