//! What an attempt produced, as the policy sees it: a response, or a transport failure.

use std::{fmt, io};

use crate::Headers;

/// How one attempt ended.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// The server (or a proxy) answered with a status.
    Response {
        /// The HTTP status.
        status: u16,
        /// The response headers, borrowed from the HTTP client.
        headers: &'a dyn Headers,
        /// The error body as read (adapters read at most a bounded prefix); empty for
        /// successes, whose bodies the policy never needs.
        body: &'a [u8],
    },
    /// No usable response arrived.
    Transport(Transport),
}

impl fmt::Debug for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Response { status, body, .. } => f
                .debug_struct("Response")
                .field("status", status)
                .field("body_len", &body.len())
                .finish_non_exhaustive(),
            Outcome::Transport(failure) => f.debug_tuple("Transport").field(failure).finish(),
        }
    }
}

/// A failure below HTTP: the request did not produce a complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// The connection could not be made (refused, unreachable, DNS failure).
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No response headers arrived in time.
    TimeoutBeforeHeaders,
    /// Headers arrived but the body stalled past the timeout.
    TimeoutAfterHeaders,
    /// The TLS handshake failed: a configuration problem that retrying cannot fix.
    Tls,
    /// Reading the body failed for another reason.
    BodyRead,
    /// Anything else the HTTP client reported.
    Other,
}

impl Transport {
    /// Whether this failure is a timeout, which the policy treats like a 504.
    #[must_use]
    pub const fn is_timeout(self) -> bool {
        matches!(
            self,
            Transport::TimeoutBeforeHeaders | Transport::TimeoutAfterHeaders
        )
    }

    /// A short description for humans.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Transport::Connect => "could not connect to the server",
            Transport::Reset => "the connection was reset before the response was complete",
            Transport::TimeoutBeforeHeaders => "timed out waiting for the response",
            Transport::TimeoutAfterHeaders => "timed out reading the response body",
            Transport::Tls => "the TLS handshake failed",
            Transport::BodyRead => "reading the response body failed",
            Transport::Other => "the HTTP client failed",
        }
    }
}

/// Where in an exchange a transport failure happened: a timeout before the response headers
/// is a gateway-style timeout, one while reading the body is a stalled body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Connecting, sending, or waiting for the response headers.
    Headers,
    /// Reading the response body.
    Body,
}

impl Transport {
    /// The timeout of this phase.
    #[must_use]
    pub const fn timeout(phase: Phase) -> Self {
        match phase {
            Phase::Headers => Transport::TimeoutBeforeHeaders,
            Phase::Body => Transport::TimeoutAfterHeaders,
        }
    }

    /// What an I/O error of this kind stands for, in this phase: the part of every HTTP
    /// client's error mapping that does not depend on the client.
    #[must_use]
    pub fn from_io(kind: io::ErrorKind, phase: Phase) -> Self {
        match kind {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotConnected
            | io::ErrorKind::AddrNotAvailable => Transport::Connect,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Transport::Reset,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Transport::timeout(phase),
            _ if phase == Phase::Body => Transport::BodyRead,
            _ => Transport::Other,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Whether a call asks for the whole answer at once or streams it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// One JSON response at the end: long generations can hit the gateway timeout.
    Buffered,
    /// Server-sent events as tokens are generated.
    Streamed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_by_kind_and_phase() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                Phase::Headers,
                Transport::Connect,
            ),
            (
                io::ErrorKind::ConnectionReset,
                Phase::Headers,
                Transport::Reset,
            ),
            (io::ErrorKind::UnexpectedEof, Phase::Body, Transport::Reset),
            (
                io::ErrorKind::TimedOut,
                Phase::Headers,
                Transport::TimeoutBeforeHeaders,
            ),
            (
                io::ErrorKind::TimedOut,
                Phase::Body,
                Transport::TimeoutAfterHeaders,
            ),
            (io::ErrorKind::Other, Phase::Body, Transport::BodyRead),
            (io::ErrorKind::Other, Phase::Headers, Transport::Other),
        ];
        for (kind, phase, expected) in cases {
            assert_eq!(
                Transport::from_io(kind, phase),
                expected,
                "{kind:?} {phase:?}"
            );
        }
    }
}
