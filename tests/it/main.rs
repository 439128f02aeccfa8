//! Both adapters against `novita-mock`, one scenario per row of the behaviour table in
//! ARCHITECTURE.md, plus timing, outage, concurrency and stream scenarios.
//!
//! Every scenario runs once per adapter through the [`Adapter`] trait, so the blocking and
//! async clients are held to exactly the same behaviour. Timing is asserted on what the
//! mock recorded (arrival times), as lower bounds only; nothing here sleeps to synchronise.

mod adapters;
mod fleet;
mod hostile;
mod limits;
mod outage;
mod payloads;
mod scenarios;
mod soak;
mod streams;
mod timing;

use std::time::Duration;

use novita_mock::MockServer;
use novita_ureq::PolicyConfig;

pub(crate) use adapters::{Adapter, KINDS, Setup, adapter};

/// A policy with millisecond backoff, so retry scenarios run fast; every other setting is
/// the shipped default.
pub(crate) fn fast_policy() -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config.backoff.base = Duration::from_millis(5);
    config.backoff.throttled_base = Duration::from_millis(5);
    config.backoff.timeout_base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(20);
    config
}

/// The mock's first configured model.
pub(crate) const MODEL: &str = novita_mock::DEFAULT_MODELS[0];
/// The mock's second model, used as the fallback.
pub(crate) const FALLBACK: &str = novita_mock::DEFAULT_MODELS[1];

/// Runs `scenario` once per adapter, each against a fresh mock; `prepare` scripts the mock
/// and adjusts the setup before the client is built.
pub(crate) fn for_each_adapter(
    prepare: impl Fn(&MockServer, &mut Setup),
    scenario: impl Fn(&dyn Adapter, &MockServer),
) {
    for kind in KINDS {
        let server = MockServer::start();
        let mut setup = Setup::new(&server);
        prepare(&server, &mut setup);
        let client = adapter(kind, &setup);
        scenario(client.as_ref(), &server);
    }
}
