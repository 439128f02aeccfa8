//! Mapping reqwest's errors onto the policy's transport failures.

use std::error::Error as StdError;
use std::io;

use novita_core::policy::{Phase, Transport};

/// What reqwest's error means to the policy. reqwest exposes a few predicates; the rest is
/// found by walking the error's source chain (hyper, rustls and I/O errors).
pub(crate) fn classify(error: &reqwest::Error, phase: Phase) -> Transport {
    // TLS first: a failed handshake is also a connect error, but retrying cannot fix it.
    if chain(error).into_iter().any(is_tls) {
        return Transport::Tls;
    }
    // A connect timeout is a connect failure, as in novita-ureq.
    if error.is_connect() {
        return Transport::Connect;
    }
    if error.is_timeout() {
        return Transport::timeout(phase);
    }
    for source in chain(error) {
        if let Some(error) = source.downcast_ref::<io::Error>() {
            match classify_io(error, phase) {
                Transport::Other | Transport::BodyRead => {}
                transport => return transport,
            }
        }
        if let Some(error) = source.downcast_ref::<hyper::Error>() {
            if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
                return Transport::Reset;
            }
            if error.is_timeout() {
                return Transport::timeout(phase);
            }
        }
    }
    if phase == Phase::Body || error.is_body() || error.is_decode() {
        Transport::BodyRead
    } else {
        Transport::Other
    }
}

pub(crate) fn classify_io(error: &io::Error, phase: Phase) -> Transport {
    if let Some(inner) = error.get_ref()
        && (is_tls(inner) || chain(inner).into_iter().any(is_tls))
    {
        return Transport::Tls;
    }
    Transport::from_io(error.kind(), phase)
}

/// The error's sources, outermost first (the error itself excluded). An `io::Error`
/// wrapping another error reports that error's sources but not the error itself, so the
/// wrapped error is added explicitly (rustls' errors reach us that way).
fn chain<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut found = Vec::new();
    let mut next = error.source();
    while let Some(error) = next {
        found.push(error);
        next = match error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            // Visit the wrapped error next; its sources follow it.
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    found
}

/// Whether this error (not its sources) comes from TLS: a rustls error, or a message that
/// says so.
fn is_tls(error: &(dyn StdError + 'static)) -> bool {
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    if error.is::<rustls::Error>() {
        return true;
    }
    // native-tls' errors, unless the handshake broke on I/O (a reset, a timeout), which
    // the I/O error further down the chain says.
    #[cfg(feature = "native-tls")]
    if error.is::<native_tls::Error>() {
        return !chain(error)
            .into_iter()
            .any(<dyn StdError>::is::<io::Error>);
    }
    let text = error.to_string().to_ascii_lowercase();
    text.contains("rustls") || text.contains("tls handshake") || text.contains("certificate")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use novita_mock::{Fault, MockServer, Route};

    use super::*;

    async fn send_error(request: reqwest::RequestBuilder) -> reqwest::Error {
        match request.send().await {
            Ok(response) => panic!("expected an error, got {}", response.status()),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_failure() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let error =
            send_error(crate::test_http().get(format!("http://127.0.0.1:{port}/v1/models"))).await;
        assert_eq!(
            classify(&error, Phase::Headers),
            Transport::Connect,
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_reset_before_the_response_is_a_reset() {
        let server = MockServer::start();
        server.script(Route::Models, None, [Fault::reset()]);
        let request = crate::test_http()
            .get(format!("{}/models", server.base_url()))
            .bearer_auth(server.api_key());
        let error = send_error(request).await;
        assert_eq!(
            classify(&error, Phase::Headers),
            Transport::Reset,
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn no_headers_before_the_timeout_is_a_timeout_before_headers() {
        let server = MockServer::start();
        server.script(
            Route::Models,
            None,
            [Fault::ok().delay(Duration::from_secs(5))],
        );
        let request = crate::test_http()
            .get(format!("{}/models", server.base_url()))
            .bearer_auth(server.api_key())
            .timeout(Duration::from_millis(100));
        let error = send_error(request).await;
        assert_eq!(
            classify(&error, Phase::Headers),
            Transport::TimeoutBeforeHeaders,
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_outlasts_the_timeout_is_a_timeout_after_headers() {
        let server = MockServer::start();
        server.script(
            Route::Models,
            None,
            [Fault::slow_body(Duration::from_secs(5))],
        );
        let response = crate::test_http()
            .get(format!("{}/models", server.base_url()))
            .bearer_auth(server.api_key())
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .unwrap();
        let error = response.bytes().await.unwrap_err();
        assert_eq!(
            classify(&error, Phase::Body),
            Transport::TimeoutAfterHeaders,
            "{error:?}"
        );
    }

    #[cfg(any(
        feature = "rustls-ring",
        feature = "rustls-aws-lc",
        feature = "native-tls"
    ))]
    #[tokio::test]
    async fn tls_to_a_plain_http_port_is_a_tls_failure() {
        let server = MockServer::start();
        let url = format!("https://{}/openai/v1/models", server.addr());
        let error = send_error(crate::test_http().get(url)).await;
        assert_eq!(
            classify(&error, Phase::Headers),
            Transport::Tls,
            "{error:?}"
        );
    }
}
