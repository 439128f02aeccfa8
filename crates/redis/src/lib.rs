//! A Redis store for the state that clients of one Novita account share across processes
//! and hosts: [`RedisStore`] implements `novita-core`'s
//! [`BlockingStore`] (for novita-ureq) and
//! [`AsyncStore`] (for novita-reqwest).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use novita_redis::RedisStore;
//!
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0")
//!     .connect_timeout(Duration::from_millis(100))
//!     .build()?;
//! let store = Arc::new(store);
//! # Ok::<(), novita_redis::InvalidUrl>(())
//! ```
//!
//! # What is shared
//!
//! Per model: when a server's hint (`Retry-After` and friends) stops holding calls, when a
//! maintenance mark (`MODEL_NOT_AVAILABLE`) ends, when an open circuit breaker closes, and
//! the two GCRA theoretical arrival times of the model's requests-per-minute and
//! tokens-per-minute limits. Per account: the retry budget's balance. Every time is an
//! absolute Redis time (`TIME`, in microseconds), so hosts whose clocks disagree still
//! agree; it crosses to the client as a duration from now.
//!
//! # One exchange, one script
//!
//! Each [`Exchange`] runs as one Lua script (EVALSHA,
//! loading it on `NOSCRIPT`), atomically: the news is applied in order, the budget moves,
//! the charge is made against every limit or none, and the model's facts come back. The
//! GCRA arithmetic is `novita_policy::limits::Gcra`'s, in integer microseconds: amounts
//! that hold calls back are rounded up and those that let them through rounded down, so
//! rounding never lets a unit too many through.
//!
//! # Keys
//!
//! Every key carries the account's scope (a hash of the API key, never the key) as a
//! Redis Cluster hash tag, so an account's keys live on one shard and the script may
//! touch them all: `novita:{<scope>}:model:<model>`, a hash of `blocked`, `maintenance`,
//! `open`, `requests` and `tokens` ([`model_key`]), and `novita:{<scope>}:budget`
//! ([`budget_key`]). A model's hash expires two minutes after the last of its times has
//! passed, when it reads the same as no hash at all; the budget a day after the account's
//! last exchange.
//!
//! # When Redis is down
//!
//! The store only reports the trouble, fast: a blocking exchange is bounded by the
//! connect, read and write timeouts (50 ms each by default), an async one by their sum.
//! The adapter then goes on with the client's own state, the same decisions on what this
//! process alone knows, until the store answers again. Neither side is rebuilt: a blocking
//! exchange after a failure opens a new connection, and the async connection manager
//! reconnects on the next exchange.
//!
//! # Tests
//!
//! The `testing` feature adds `testing::RedisServer`, a throwaway `redis-server` on a
//! free loopback port, for this crate's tests and the workspace's, and
//! `RedisStore::run_blocking_at` and `run_async_at`, which run an exchange on a clock the
//! test sets rather than Redis's, to compare the store with the pure GCRA on one virtual
//! timeline.

mod script;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use novita_core::store::{AsyncStore, BlockingStore, Exchange, StoreError, StoreFuture, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use script::{KEY_PREFIX, budget_key, model_key};
pub use url::InvalidUrl;

/// The default connect, read and write timeouts: an exchange is a loopback or same-zone
/// round trip of well under a millisecond, and a call waits for it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// The default number of idle blocking connections a store keeps.
pub const DEFAULT_IDLE_CONNECTIONS: usize = 8;

/// How often the background reconnection tries a Redis that cannot be reached.
const RECONNECT_EVERY: Duration = Duration::from_millis(250);

/// The shortest timeout a connection accepts (the operating system refuses zero).
const SHORTEST_TIMEOUT: Duration = Duration::from_millis(1);

/// A Redis store for the shared state of one or many clients, blocking and async.
///
/// Blocking exchanges use plain connections from a small pool: each exchange takes an idle
/// connection (or opens one) and gives it back once answered, so concurrent callers never
/// wait for each other, only for Redis. When Redis cannot be reached, a background thread
/// reconnects (every 250 ms, one thread per store, ending with the store) and blocking
/// exchanges fail at once meanwhile, so no call waits on a connection attempt. Async
/// exchanges share one multiplexed connection, opened on the first async exchange, on the
/// Tokio runtime that runs it, and reopened by its manager after a failure. Both are
/// bounded in time (see [`RedisStoreBuilder`]).
pub struct RedisStore {
    client: redis::Client,
    /// The URL without its password, for messages.
    address: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    max_idle: usize,
    /// Shared with the background reconnection, which leaves its connection here.
    idle: Arc<Mutex<Vec<redis::Connection>>>,
    /// A background thread is reconnecting: blocking exchanges fail at once until it has.
    reconnecting: Arc<AtomicBool>,
    manager: OnceLock<ConnectionManager>,
    script: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`RedisStore`], from [`RedisStore::builder`].
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    max_idle: usize,
}

/// Shows the URL without its password.
impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &url::redact(&self.url))
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// How long opening a connection (TCP, then `HELLO`/`AUTH`/`SELECT`) may take. Default
    /// 50 ms; at least 1 ms.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(SHORTEST_TIMEOUT);
        self
    }

    /// How long Redis may take to answer a command; for async exchanges, the response
    /// timeout. Default 50 ms; at least 1 ms.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout.max(SHORTEST_TIMEOUT);
        self
    }

    /// How long writing a command to a blocking connection may take. Default 50 ms; at
    /// least 1 ms.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(SHORTEST_TIMEOUT);
        self
    }

    /// How many idle blocking connections the store keeps for the next exchanges; more
    /// concurrent exchanges open more, closed once answered. Default 8.
    pub fn max_idle_connections(mut self, connections: usize) -> Self {
        self.max_idle = connections;
        self
    }

    /// The store. It connects on its first exchange, not here.
    ///
    /// # Errors
    /// The URL does not parse as a Redis URL (`redis://[user][:password@]host[:port][/db]`
    /// or `redis+unix:///path`); the message never shows its password.
    pub fn build(self) -> Result<RedisStore, InvalidUrl> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|error| InvalidUrl::new(&self.url, &error))?;
        Ok(RedisStore {
            client,
            address: url::redact(&self.url),
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            max_idle: self.max_idle,
            idle: Arc::new(Mutex::new(Vec::new())),
            reconnecting: Arc::new(AtomicBool::new(false)),
            manager: OnceLock::new(),
            script: redis::Script::new(script::SOURCE),
        })
    }
}

impl RedisStore {
    /// A store on the Redis at `url` with the default settings.
    ///
    /// # Errors
    /// The URL does not parse; the message never shows its password.
    pub fn open(url: &str) -> Result<Self, InvalidUrl> {
        Self::builder(url).build()
    }

    /// The settings of a store on the Redis at `url`, such as `redis://127.0.0.1:6379/0`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            connect_timeout: DEFAULT_TIMEOUT,
            read_timeout: DEFAULT_TIMEOUT,
            write_timeout: DEFAULT_TIMEOUT,
            max_idle: DEFAULT_IDLE_CONNECTIONS,
        }
    }

    /// The Redis URL, its user and password replaced by `***`.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs `exchange` on a blocking connection: what [`BlockingStore::exchange`] does,
    /// without naming the trait (`RedisStore` is an [`AsyncStore`] too).
    ///
    /// # Errors
    /// Redis cannot be reached, answers too slowly or fails the script.
    pub fn run_blocking(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        self.blocking(exchange, None)
    }

    /// Runs `exchange` on the multiplexed async connection: what [`AsyncStore::exchange`]
    /// does, without naming the trait. Must run on a Tokio runtime with its timer.
    ///
    /// # Errors
    /// Redis cannot be reached, answers too slowly or fails the script.
    pub async fn run_async(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        self.asynchronous(exchange, None).await
    }

    /// For tests only (feature `testing`): [`run_blocking`](Self::run_blocking) as if
    /// Redis's clock read `now`, a duration since the Unix epoch. Tests use it to compare
    /// the store with the pure GCRA on a timeline they control; `now` must not go
    /// backwards between the exchanges of one scope.
    ///
    /// # Errors
    /// Redis cannot be reached, answers too slowly or fails the script.
    #[cfg(feature = "testing")]
    pub fn run_blocking_at(
        &self,
        exchange: &Exchange,
        now: Duration,
    ) -> Result<Verdict, StoreError> {
        self.blocking(exchange, Some(now))
    }

    /// For tests only (feature `testing`): [`run_async`](Self::run_async) as if Redis's
    /// clock read `now`, as [`run_blocking_at`](Self::run_blocking_at).
    ///
    /// # Errors
    /// Redis cannot be reached, answers too slowly or fails the script.
    #[cfg(feature = "testing")]
    pub async fn run_async_at(
        &self,
        exchange: &Exchange,
        now: Duration,
    ) -> Result<Verdict, StoreError> {
        self.asynchronous(exchange, Some(now)).await
    }

    /// Runs `exchange` on a blocking connection, on Redis's clock unless `now` is given.
    fn blocking(&self, exchange: &Exchange, now: Option<Duration>) -> Result<Verdict, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None if self.reconnecting.load(Ordering::Acquire) => {
                return Err(StoreError(
                    format!(
                        "Redis at {} cannot be reached; reconnecting in the background",
                        self.address
                    )
                    .into(),
                ));
            }
            None => match self.connect() {
                Ok(connection) => connection,
                Err(error) => {
                    self.reconnect_in_background();
                    return Err(error);
                }
            },
        };
        let (keys, args) = script::keys_and_args(exchange, now);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(keys).arg(args);
        match invocation.invoke::<Vec<i64>>(&mut connection) {
            Ok(reply) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < self.max_idle {
                    idle.push(connection);
                }
                drop(idle);
                script::verdict(&reply)
            }
            Err(error) => {
                // A timed-out connection may still receive the late answer, and the idle
                // ones most likely lost the same server: drop them all, and connect afresh
                // on the next exchange.
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                    self.reconnect_in_background();
                }
                Err(self.failed(&error))
            }
        }
    }

    /// Runs `exchange` on the multiplexed async connection, on Redis's clock unless `now`
    /// is given.
    async fn asynchronous(
        &self,
        exchange: &Exchange,
        now: Option<Duration>,
    ) -> Result<Verdict, StoreError> {
        let mut manager = self.manager()?;
        let (keys, args) = script::keys_and_args(exchange, now);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(keys).arg(args);
        // The response timeout bounds each command; this bounds the whole exchange,
        // waiting for a reconnection and reloading the script after a restart included.
        let bound = self.connect_timeout + self.read_timeout + self.write_timeout;
        let answer = async {
            match invocation.invoke_async::<Vec<i64>>(&mut manager).await {
                // A connection that broke since the last exchange (a restarted server)
                // fails this command and makes the manager reconnect: one more try finds
                // the server back, rather than the next exchange a retry period later.
                Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                    invocation.invoke_async::<Vec<i64>>(&mut manager).await
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(bound, answer).await {
            Ok(Ok(reply)) => script::verdict(&reply),
            Ok(Err(error)) => Err(self.failed(&error)),
            Err(_elapsed) => Err(StoreError(
                format!("Redis at {} did not answer within {bound:?}", self.address).into(),
            )),
        }
    }

    /// A new blocking connection, with the store's timeouts.
    fn connect(&self) -> Result<redis::Connection, StoreError> {
        self.timeouts()
            .connect(&self.client)
            .map_err(|error| self.failed(&error))
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            read: self.read_timeout,
            write: self.write_timeout,
        }
    }

    /// Starts the background reconnection, unless it runs already: a thread that tries
    /// Redis every [`RECONNECT_EVERY`] and leaves the first connection it gets in the pool.
    /// It ends then, or once the store is dropped. Should no thread start, exchanges go
    /// back to connecting themselves.
    fn reconnect_in_background(&self) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.client.clone();
        let timeouts = self.timeouts();
        let idle = Arc::downgrade(&self.idle);
        let reconnecting = Arc::clone(&self.reconnecting);
        let started = std::thread::Builder::new()
            .name("novita-redis-reconnect".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(RECONNECT_EVERY);
                    // The store is gone: nobody needs the connection.
                    let Some(idle) = idle.upgrade() else {
                        return;
                    };
                    if let Ok(connection) = timeouts.connect(&client) {
                        idle.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(connection);
                        reconnecting.store(false, Ordering::Release);
                        return;
                    }
                }
            });
        if started.is_err() {
            self.reconnecting.store(false, Ordering::Release);
        }
    }

    /// The async connection manager, created on the first async exchange (it needs the
    /// Tokio runtime that runs it); it connects lazily and reconnects after a failure.
    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.read_timeout))
            // One attempt per reconnection: the next exchange tries again, so a restarted
            // server is found at once rather than after a backoff.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|error| self.failed(&error))?;
        // Two first exchanges may race: one manager wins, the other is dropped unused.
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    /// `error` as a [`StoreError`] naming the server (without its password).
    fn failed(&self, error: &redis::RedisError) -> StoreError {
        StoreError(format!("Redis at {}: {error}", self.address).into())
    }
}

/// The timeouts of a blocking connection, for the store and its reconnecting thread.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    connect: Duration,
    read: Duration,
    write: Duration,
}

impl Timeouts {
    fn connect(self, client: &redis::Client) -> redis::RedisResult<redis::Connection> {
        let connection = client.get_connection_with_timeout(self.connect)?;
        connection.set_read_timeout(Some(self.read))?;
        connection.set_write_timeout(Some(self.write))?;
        Ok(connection)
    }
}

impl BlockingStore for RedisStore {
    fn exchange(&self, exchange: &Exchange) -> Result<Verdict, StoreError> {
        self.run_blocking(exchange)
    }
}

impl AsyncStore for RedisStore {
    fn exchange<'a>(&'a self, exchange: &'a Exchange) -> StoreFuture<'a> {
        Box::pin(self.run_async(exchange))
    }
}
