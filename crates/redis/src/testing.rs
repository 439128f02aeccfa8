//! A throwaway `redis-server` for tests (feature `testing`).
//!
//! ```no_run
//! use novita_redis::{RedisStore, testing::RedisServer};
//!
//! let mut server = RedisServer::start();
//! let store = RedisStore::open(&server.url()).unwrap();
//! // ... exchanges ...
//! server.stop(); // exchanges now fail fast
//! server.restart(); // and work again, on the same port
//! ```
//!
//! Tests that need Redis fail, loudly, when `redis-server` is missing: they never skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a starting server has to answer `PING`.
const STARTUP: Duration = Duration::from_secs(10);

/// How many free ports [`RedisServer::start`] tries, should another process take the one
/// it found before the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` of its own on a free 127.0.0.1 port, without persistence, killed when
/// dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not on `PATH` (the message says how to install it), or does
    /// not answer within ten seconds (the message quotes its log).
    #[must_use]
    pub fn start() -> Self {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let mut server = Self {
                port: free_port(),
                child: None,
                log: PathBuf::new(),
            };
            match server.launch() {
                Ok(()) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("redis-server did not start on any of {PORT_ATTEMPTS} free ports: {last_failure}");
    }

    /// The server's URL, database 0: `redis://127.0.0.1:<port>/0`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's port, kept across [`restart`](Self::restart)s.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server runs (it was not stopped, or was restarted since).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit; its data is lost.
    /// Does nothing when it is already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may have exited already; either way it is gone once waited for.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts a new, empty one on the same port, waiting
    /// until it answers `PING`: clients see the same address come back.
    ///
    /// # Panics
    /// When the new server does not answer within ten seconds.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.launch() {
            panic!(
                "redis-server did not restart on port {}: {failure}",
                self.port
            );
        }
    }

    /// Spawns the server on `self.port` and waits for its `PONG`.
    fn launch(&mut self) -> Result<(), String> {
        self.log = std::env::temp_dir().join(format!("novita-redis-{}.log", self.port));
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--logfile", &self.log.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH, and these tests need a real Redis (7 or later): \
                 install it (Debian/Ubuntu: `apt-get install redis-server`; macOS: \
                 `brew install redis`) or put its directory on PATH"
            ),
            Err(error) => panic!("redis-server did not start: {error}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("it exited with {status}; {}", self.log_tail()));
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        Err(format!(
            "it did not answer PING within {STARTUP:?}; {}",
            self.log_tail()
        ))
    }

    /// The end of the server's log, for a failure's message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("its log {} ends:\n{}", self.log.display(), tail.join("\n"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A loopback port no one listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free loopback port: {error}"))
}

/// Whether a Redis on `port` answers `PING` with `PONG`.
fn ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
