//! An `https` stand-in for Novita (feature `tls`): a rustls server on 127.0.0.1 whose
//! certificate comes from a test CA no real store holds, so adapters can test their TLS
//! setup without a network: which roots they trust, that a refused handshake is not
//! retried, that they install no process-wide provider.
//!
//! [`rerun_with_test_ca`] runs one test again in a child process whose OS store is the test
//! CA (through `SSL_CERT_FILE`, read by rustls-platform-verifier and OpenSSL on Linux),
//! since a running test binary cannot safely change its own environment.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA, valid 2000–2100, that no real store holds (PEM).
pub const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
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

/// An `https` server on 127.0.0.1 that answers every request with a one-model list.
pub struct TlsServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Starts the server on a free port; it lives until the process ends.
    ///
    /// # Panics
    /// If the port or the test certificate cannot be set up.
    #[must_use]
    pub fn start() -> Self {
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

    /// `https://localhost:PORT/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}/v1", self.port)
    }

    /// TCP connections accepted so far, handshakes refused included.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
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

/// Set on the child process [`rerun_with_test_ca`] starts.
pub const CHILD_VAR: &str = "NOVITA_MOCK_TLS_CHILD";

/// Whether this process is the child [`rerun_with_test_ca`] started.
#[must_use]
pub fn in_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Runs the test `name` of the current test binary again, alone, in a child process whose
/// `SSL_CERT_FILE` holds only [`TEST_CA`] (and with `SSL_CERT_DIR` unset).
///
/// # Panics
/// When the child fails or runs no test: the panic carries its output.
pub fn rerun_with_test_ca(name: &str) {
    let ca_file = std::env::temp_dir().join(format!(
        "novita-mock-test-ca-{}-{name}.pem",
        std::process::id()
    ));
    std::fs::write(&ca_file, TEST_CA).expect("the temporary directory is writable");
    let output = std::process::Command::new(std::env::current_exe().expect("a test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the test binary runs again");
    let _ = std::fs::remove_file(&ca_file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}
