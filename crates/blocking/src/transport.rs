//! Mapping ureq's errors onto the policy's transport failures.

use std::io;

use novita_core::policy::{Phase, Transport};
use ureq::Timeout;

pub(crate) fn classify(error: &ureq::Error, phase: Phase) -> Transport {
    match error {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => Transport::Connect,
        ureq::Error::Timeout(Timeout::RecvBody | Timeout::PerRead) | ureq::Error::BodyStalled => {
            Transport::TimeoutAfterHeaders
        }
        ureq::Error::Timeout(_) => Transport::timeout(phase),
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_) => Transport::Connect,
        ureq::Error::Io(error) => classify_io(error, phase),
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => Transport::Tls,
        // Which of these exist depends on the TLS features (the README's TLS section).
        #[cfg(any(
            feature = "rustls-ring",
            feature = "rustls-aws-lc",
            feature = "native-tls"
        ))]
        ureq::Error::Pem(_) => Transport::Tls,
        #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
        ureq::Error::Rustls(_) => Transport::Tls,
        #[cfg(feature = "native-tls")]
        ureq::Error::NativeTls(_) | ureq::Error::Der(_) => Transport::Tls,
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
    // rustls' own errors (a certificate the roots do not vouch for) reach us inside an
    // io::Error from the handshake: TLS, never retried.
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    if matches!(error.get_ref(), Some(inner) if inner.is::<rustls::Error>()) {
        return Transport::Tls;
    }
    Transport::from_io(error.kind(), phase)
}

#[cfg(test)]
mod tests {
    use super::*;

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
