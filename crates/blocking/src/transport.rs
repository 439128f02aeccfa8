//! Mapping ureq's errors onto the policy's transport failures.

use std::io;

use novita_policy::Transport;
use ureq::Timeout;

/// Where in the exchange an error happened: a timeout before the headers is a gateway-style
/// timeout, one while reading the body is a stalled body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Headers,
    Body,
}

pub(crate) fn classify(error: &ureq::Error, phase: Phase) -> Transport {
    match error {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => Transport::Connect,
        ureq::Error::Timeout(Timeout::RecvBody | Timeout::PerRead) | ureq::Error::BodyStalled => {
            Transport::TimeoutAfterHeaders
        }
        ureq::Error::Timeout(_) => timeout(phase),
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_) => Transport::Connect,
        ureq::Error::Io(error) => classify_io(error, phase),
        ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::TlsRequired => Transport::Tls,
        ureq::Error::Protocol(_) => Transport::Reset,
        _ if phase == Phase::Body => Transport::BodyRead,
        _ => Transport::Other,
    }
}

pub(crate) fn classify_io(error: &io::Error, phase: Phase) -> Transport {
    // ureq wraps its own errors (timeouts among them) in io::Error while a body is read.
    if let Some(inner) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return classify(inner, phase);
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::NotConnected
        | io::ErrorKind::AddrNotAvailable => Transport::Connect,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Transport::Reset,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timeout(phase),
        _ if phase == Phase::Body => Transport::BodyRead,
        _ => Transport::Other,
    }
}

fn timeout(phase: Phase) -> Transport {
    match phase {
        Phase::Headers => Transport::TimeoutBeforeHeaders,
        Phase::Body => Transport::TimeoutAfterHeaders,
    }
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
                classify_io(&io::Error::from(kind), phase),
                expected,
                "{kind:?} {phase:?}"
            );
        }
    }

    #[test]
    fn ureq_errors_map_to_the_policy_vocabulary() {
        assert_eq!(
            classify(&ureq::Error::Timeout(Timeout::Global), Phase::Headers),
            Transport::TimeoutBeforeHeaders
        );
        assert_eq!(
            classify(&ureq::Error::Timeout(Timeout::Connect), Phase::Headers),
            Transport::Connect
        );
        assert_eq!(
            classify(&ureq::Error::Timeout(Timeout::PerRead), Phase::Headers),
            Transport::TimeoutAfterHeaders
        );
        assert_eq!(
            classify(&ureq::Error::ConnectionFailed, Phase::Headers),
            Transport::Connect
        );
        assert_eq!(
            classify(&ureq::Error::Tls("handshake"), Phase::Headers),
            Transport::Tls
        );
        let wrapped = io::Error::other(ureq::Error::Timeout(Timeout::RecvBody));
        assert_eq!(
            classify_io(&wrapped, Phase::Body),
            Transport::TimeoutAfterHeaders
        );
    }
}
