//! TLS as this crate's features set it up, in a test binary of its own: nothing else in it
//! installs a process-wide rustls provider, so finding none after a client was built and
//! used is this crate's doing.
//!
//! `novita_mock::tls` stands in for Novita over `https`: a local rustls server with a test
//! CA, and a way to rerun a test with that CA as the operating system's store.

#![cfg(any(
    feature = "rustls-ring",
    feature = "rustls-aws-lc",
    feature = "native-tls"
))]

use novita_mock::tls::{TlsServer, in_child, rerun_with_test_ca};
use novita_ureq::{Client, Stop, Transport};

fn client(base_url: &str) -> Client {
    Client::builder()
        .api_key("k")
        .base_url(base_url)
        .build()
        .unwrap()
}

fn no_process_wide_provider() -> bool {
    rustls::crypto::CryptoProvider::get_default().is_none()
}

#[test]
fn building_a_client_installs_no_process_wide_rustls_provider() {
    let _client = client("https://api.novita.ai/openai/v1");
    assert!(no_process_wide_provider());
}

#[test]
fn a_server_the_roots_do_not_vouch_for_is_refused_once_and_never_retried() {
    // Neither the OS store nor Mozilla's roots hold the test CA.
    let server = TlsServer::start();
    let error = client(&server.base_url()).models().unwrap_err();
    let give_up = error.give_up().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(give_up.transport, Some(Transport::Tls), "{error:?}");
    assert_eq!(give_up.stop, Stop::NotRetryable, "{error:?}");
    assert_eq!(give_up.attempts, 1);
    assert_eq!(server.connections(), 1);
    // A handshake ran on the client's own provider, and still none was installed.
    assert!(no_process_wide_provider());
}

/// The OS store is the default: a CA placed there (here through `SSL_CERT_FILE`) is
/// trusted. With `webpki-roots`, only Mozilla's roots count and the same call is refused.
#[cfg(target_os = "linux")]
#[test]
fn the_roots_are_the_os_store_unless_webpki_roots_is_on() {
    const NAME: &str = "the_roots_are_the_os_store_unless_webpki_roots_is_on";
    if !in_child() {
        rerun_with_test_ca(NAME);
        return;
    }
    let server = TlsServer::start();
    let result = client(&server.base_url()).models();
    if cfg!(feature = "webpki-roots") {
        let error = result.unwrap_err();
        let give_up = error.give_up().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(give_up.transport, Some(Transport::Tls), "{error:?}");
    } else {
        let models = result.unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(models.value[0].id, "deepseek/deepseek-v3");
    }
    assert!(no_process_wide_provider());
}
