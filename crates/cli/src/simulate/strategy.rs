//! The retry strategies under comparison, by the names the report uses, and how to run
//! the fleet with each: every client of a run gets its own instance of the strategy
//! ([`novita`](super::novita) for ours, [`peers`](super::peers) for the others).

use super::fleet::{self, Tally};
use super::novita::NovitaClient;
use super::peers::{BackonClient, RetryPoliciesClient, Schedule};
use super::server::ServerProfile;
use super::workload::{Workload, client_seed};

/// A retry strategy, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Strategy {
    /// Our policy through `novita-core`'s call driver: `PolicyConfig::default()` with a
    /// 120 s deadline, one `ClientCore` per client.
    Novita,
    /// One attempt per call: the load the fleet causes without retrying.
    NoRetry,
    /// Retry every second, up to 10 times, ignoring hints.
    NaiveFixed,
    /// 0.5 s doubling to a 30 s cap, no jitter, up to 5 retries, ignoring hints.
    Exponential,
    /// The `backon` crate: exponential from 0.5 s to 30 s with its jitter, up to 5 retries.
    Backon,
    /// The `retry-policies` crate: exponential from 0.5 s to 30 s with full jitter, up to 5
    /// retries.
    RetryPolicies,
}

impl Strategy {
    /// Every strategy, in report order (ours first, then the baseline).
    pub(crate) const ALL: [Strategy; 6] = [
        Strategy::Novita,
        Strategy::NoRetry,
        Strategy::NaiveFixed,
        Strategy::Exponential,
        Strategy::Backon,
        Strategy::RetryPolicies,
    ];

    /// The name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Strategy::Novita => "novita",
            Strategy::NoRetry => "no-retry",
            Strategy::NaiveFixed => "naive-fixed",
            Strategy::Exponential => "exponential",
            Strategy::Backon => "backon",
            Strategy::RetryPolicies => "retry-policies",
        }
    }

    /// Runs a server behaving as `profile` against every client of `workload`, each using
    /// this strategy; `seed` seeds the server and the clients that draw from a seed.
    pub(crate) fn run(self, profile: ServerProfile, workload: &Workload, seed: u64) -> Tally {
        match self {
            Strategy::Novita => fleet::run(profile, workload, seed, |client| {
                NovitaClient::new(client_seed(seed, client))
            }),
            Strategy::NoRetry => fleet::run(profile, workload, seed, |_| Schedule::NoRetry),
            Strategy::NaiveFixed => fleet::run(profile, workload, seed, |_| Schedule::NaiveFixed),
            Strategy::Exponential => fleet::run(profile, workload, seed, |_| Schedule::Exponential),
            Strategy::Backon => fleet::run(profile, workload, seed, |client| {
                BackonClient::new(seed ^ client as u64)
            }),
            Strategy::RetryPolicies => {
                fleet::run(profile, workload, seed, |_| RetryPoliciesClient::new())
            }
        }
    }
}
