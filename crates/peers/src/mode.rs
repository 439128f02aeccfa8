//! The fault modes: what the mock does to the requests of one run, and which contenders
//! face it.

use std::time::Duration;

use novita_mock::{Fault, MockServer, Route, Rule};

use crate::client::{Contender, PRIMARY};

/// The seed of the random 503s.
pub(crate) const SEED: u64 = 42;
/// How long the full outage lasts.
pub(crate) const OUTAGE: Duration = Duration::from_secs(20);
/// How long the window of hinted 429s lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// The `Retry-After` (seconds) sent during the 429 window.
pub(crate) const WINDOW_HINT_SECS: u64 = 2;
/// The per-call `retry-after-ms`.
pub(crate) const CALL_HINT_MS: u64 = 300;

/// One way the server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 30 % of chat requests get 503, drawn from a seeded sequence.
    Random503,
    /// Every chat request gets 503 for [`OUTAGE`] from the start, then normal answers.
    Outage,
    /// Every chat request gets 429 with `Retry-After: 2` for [`WINDOW`], then normal answers.
    Window429,
    /// Each call's first attempt gets 429 with `retry-after-ms: 300`; resent bodies succeed.
    PerCallHint,
    /// Buffered chat requests get 504, streamed ones 200 (any model).
    Timeout504,
    /// The primary model answers 500 `MODEL_NOT_AVAILABLE`; the fallback model works.
    Maintenance,
}

/// Every mode, in report order.
pub(crate) const ALL: [Mode; 6] = [
    Mode::Random503,
    Mode::Outage,
    Mode::Window429,
    Mode::PerCallHint,
    Mode::Timeout504,
    Mode::Maintenance,
];

/// The peers and the baseline, in every mode.
const OTHERS: [Contender; 3] = [
    Contender::AsyncOpenAi,
    Contender::ReqwestRetry,
    Contender::NoRetry,
];

impl Mode {
    /// The name printed in the output and accepted by `--mode`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Random503 => "random-503",
            Mode::Outage => "outage-20s",
            Mode::Window429 => "429-window-10s",
            Mode::PerCallHint => "retry-after-ms-300",
            Mode::Timeout504 => "504-unless-streaming",
            Mode::Maintenance => "model-not-available",
        }
    }

    /// The mode called `name`.
    pub(crate) fn named(name: &str) -> Option<Mode> {
        ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// The contenders that face this mode, ours first. Where the mode is about falling back,
    /// ours runs with a fallback model (and, for the 504s, also without one).
    pub(crate) fn contenders(self) -> Vec<Contender> {
        let ours: &[Contender] = match self {
            Mode::Timeout504 => &[Contender::Ours, Contender::OursFallback],
            Mode::Maintenance => &[Contender::OursFallback],
            _ => &[Contender::Ours],
        };
        ours.iter().chain(&OTHERS).copied().collect()
    }

    /// Scripts the mode on a freshly started server; time windows start now.
    ///
    /// The hinted 429s use the OpenAI-style body (`{"error": {...}}` with a string `code`):
    /// Novita itself sends no hints, the gateways in front of it that do answer in that
    /// shape, and it is the shape `async-openai` needs to retry a 429 at all (a flat body or
    /// a numeric `code` fails to parse, and it gives up at once). The 5xx keep Novita's
    /// flat body.
    pub(crate) fn install(self, server: &MockServer) {
        let chat = Route::ChatCompletions;
        let rule = match self {
            Mode::Random503 => Rule::new(chat, Fault::status(503)).chance(0.3, SEED),
            Mode::Outage => Rule::new(chat, Fault::status(503)).during(Duration::ZERO..OUTAGE),
            Mode::Window429 => Rule::new(
                chat,
                Fault::status(429)
                    .reason("RATE_LIMIT_EXCEEDED")
                    .retry_after_secs(WINDOW_HINT_SECS)
                    .gateway_shape(),
            )
            .during(Duration::ZERO..WINDOW),
            Mode::PerCallHint => Rule::new(
                chat,
                Fault::status(429)
                    .reason("RATE_LIMIT_EXCEEDED")
                    .retry_after_ms(CALL_HINT_MS)
                    .gateway_shape(),
            )
            .once_per_body(),
            Mode::Timeout504 => Rule::new(chat, Fault::status(504)).buffered_only(),
            Mode::Maintenance => Rule::new(
                chat,
                Fault::status(500)
                    .reason("MODEL_NOT_AVAILABLE")
                    .message("The model is under maintenance."),
            )
            .model(PRIMARY),
        };
        server.rule(rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for mode in ALL {
            assert_eq!(Mode::named(mode.name()), Some(mode));
            assert!(!mode.name().contains(' '));
        }
        assert_eq!(Mode::named("nope"), None);
    }

    #[test]
    fn ours_runs_first_and_the_peers_everywhere() {
        for mode in ALL {
            let contenders = mode.contenders();
            assert!(matches!(
                contenders[0],
                Contender::Ours | Contender::OursFallback
            ));
            assert!(contenders.ends_with(&OTHERS));
        }
        assert!(Mode::Timeout504.contenders().contains(&Contender::Ours));
        assert!(
            Mode::Timeout504
                .contenders()
                .contains(&Contender::OursFallback)
        );
    }
}
