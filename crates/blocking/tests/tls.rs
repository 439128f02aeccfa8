//! TLS as this crate's features set it up, in a test binary of its own: nothing else in it
//! installs a process-wide rustls provider, so finding none after a client was built and
//! used is this crate's doing.
//!
//! A local rustls server (on ring, handed to it explicitly) with a test CA stands in for
//! Novita over `https`. The OS-store test makes that CA the operating system's store through
//! `SSL_CERT_FILE`, which rustls-platform-verifier and OpenSSL both read on Linux; the test
//! re-runs itself as a child process with the variable set, because changing the
//! environment of a running test binary is unsafe.

#![cfg(any(
    feature = "rustls-ring",
    feature = "rustls-aws-lc",
    feature = "native-tls"
))]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use novita_ureq::{Client, Stop, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA, valid 2000–2100, that no real store holds.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBZTCCAQygAwIBAgICEAAwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwObm92aXRh
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBkxFzAV
BgNVBAMMDm5vdml0YSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
j6sGoviDMVr/IyqaLFU3/Zy6+vMLb52/58YsK9KafLt/2Oxrg7nN0lERsUGcbc+9
rn1fblvqXunwFGTwDH+ZcaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAQYwHQYDVR0OBBYEFJ/zIUhS7KoS9xUdew9UV9LAIKPiMAoGCCqGSM49BAMC
A0cAMEQCIHkrgy9bhZIGfm37DauUJcSAh5+EDBToCicyZCYlnWsTAiAhvu+DDztY
E/TQScBI45rgXxynJ1wsjv9THG06GCBJgA==
-----END CERTIFICATE-----
";

/// The server's certificate from [`TEST_CA`], for `localhost` and 127.0.0.1.
const SERVER_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBszCCAVigAwIBAgICEAEwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwObm92aXRh
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQ
BgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPHEQhtP
x/MF4AqgddMVjN59WEZKZCQqBjtWm99Tr4a2eK5uMc2eXyGrEi2AKLAiTF8nK5Kj
THQEN4RQNOuML3GjgZIwgY8wDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4Aw
EwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYIJbG9jYWxob3N0hwR/AAAB
MB8GA1UdIwQYMBaAFJ/zIUhS7KoS9xUdew9UV9LAIKPiMB0GA1UdDgQWBBTn+kqX
+H7aq70CQ2MSOASqT4FRZjAKBggqhkjOPQQDAgNJADBGAiEAvc2kLEFHsXG86Ny6
YeYEsYJx9SyNMad6228SeSm/mUYCIQCfKJ1c8ggp2H4RoFgA8WuUvvO9rZsfhxfb
GbQHydVTSg==
-----END CERTIFICATE-----
";

/// The key of [`SERVER_CERT`] (a throwaway made for these tests).
const SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgk4gphUEJjG2Ky0Cl
pSC65jHor0E2Tad1n3E/MB73W+qhRANCAATxxEIbT8fzBeAKoHXTFYzefVhGSmQk
KgY7VpvfU6+GtniubjHNnl8hqxItgCiwIkxfJyuSo0x0BDeEUDTrjC9x
-----END PRIVATE KEY-----
";

/// Set on the child process that runs the OS-store test with `SSL_CERT_FILE`.
const CHILD: &str = "NOVITA_TLS_TEST_CHILD";

/// An `https` server on 127.0.0.1 that answers every request with a one-model list.
struct TlsServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl TlsServer {
    fn start() -> Self {
        let chain = CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let config = Arc::clone(&config);
                // A refused handshake ends here with an error; the next client is served.
                thread::spawn(move || answer(tcp, config));
            }
        });
        TlsServer { port, connections }
    }

    fn base_url(&self) -> String {
        format!("https://localhost:{}/v1", self.port)
    }
}

fn answer(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let connection = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut request = Vec::new();
    let mut buffer = [0; 4096];
    while !request.windows(4).any(|end| end == b"\r\n\r\n") {
        let read = tls.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let body = r#"{"object":"list","data":[{"id":"deepseek/deepseek-v3","object":"model"}]}"#;
    write!(
        tls,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

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
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    // A handshake ran on the client's own provider, and still none was installed.
    assert!(no_process_wide_provider());
}

/// The OS store is the default: a CA placed there (here through `SSL_CERT_FILE`) is
/// trusted. With `webpki-roots`, only Mozilla's roots count and the same call is refused.
#[cfg(target_os = "linux")]
#[test]
fn the_roots_are_the_os_store_unless_webpki_roots_is_on() {
    const NAME: &str = "the_roots_are_the_os_store_unless_webpki_roots_is_on";
    if std::env::var_os(CHILD).is_none() {
        let ca_file =
            std::env::temp_dir().join(format!("novita-ureq-test-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, TEST_CA).unwrap();
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("SSL_CERT_FILE", &ca_file)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&ca_file);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
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
