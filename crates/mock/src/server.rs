//! The server itself: its thread and runtime, the accept loop, and the per-request handler
//! that checks auth, applies faults, records the request and answers.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use socket2::{SockRef, Socket};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::body::{Aborted, MockBody, arm_reset};
use crate::book::FaultBook;
use crate::fault::Kind;
use crate::openai::{self, Answer, Payload};
use crate::rule::Probe;
use crate::{RecordedRequest, Route};

/// How many pieces [`Kind::SlowBody`] splits a non-streaming body into.
const SLOW_BODY_PIECES: usize = 8;

/// What a server was started with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) api_key: String,
    pub(crate) prefix: String,
    pub(crate) models: Vec<String>,
    pub(crate) latency: Duration,
    /// The loopback port to listen on; 0 picks a free one.
    pub(crate) port: u16,
}

/// State shared by the server thread and the [`crate::MockServer`] handle.
pub(crate) struct Shared {
    pub(crate) config: Config,
    started: Instant,
    faults: Mutex<FaultBook>,
    log: Mutex<Vec<RecordedRequest>>,
    requests_seen: AtomicU64,
}

impl Shared {
    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultBook> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time since the server started, the clock of [`RecordedRequest::at`].
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The parts of a started server that [`crate::MockServer`] keeps.
pub(crate) struct Running {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addr: SocketAddr,
    pub(crate) shutdown: oneshot::Sender<()>,
    pub(crate) thread: JoinHandle<()>,
}

/// Binds a loopback port and starts serving on a new thread with its own runtime.
pub(crate) fn spawn(config: Config) -> io::Result<Running> {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, config.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared {
        config,
        started: Instant::now(),
        faults: Mutex::default(),
        log: Mutex::default(),
        requests_seen: AtomicU64::new(0),
    });
    let (shutdown, stop) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("novita-mock-{}", addr.port()))
        .spawn({
            let shared = Arc::clone(&shared);
            move || runtime.block_on(serve(listener, shared, stop))
        })?;
    Ok(Running {
        shared,
        addr,
        shutdown,
        thread,
    })
}

/// Accepts connections until `stop` fires or its sender is dropped, then aborts them all.
async fn serve(listener: StdListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared)));
                }
                // Out of descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Serves HTTP/1.1 on one connection, keeping a second handle to the socket for resets.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(socket) = SockRef::from(&stream).try_clone() else {
        return;
    };
    let socket = Arc::new(socket);
    // Small SSE events should leave as soon as they are written.
    let _ = stream.set_nodelay(true);
    let service =
        service_fn(move |request| handle(Arc::clone(&shared), Arc::clone(&socket), request));
    // No timer: idle keep-alive connections stay open as long as clients keep them.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Answers one request: record it, wait if asked to, then respond (or reset).
async fn handle(
    shared: Arc<Shared>,
    socket: Arc<Socket>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Aborted> {
    let at = shared.started.elapsed();
    let (parts, incoming) = request.into_parts();
    let body = incoming.collect().await.map_err(|_| Aborted)?.to_bytes();
    let n = shared.requests_seen.fetch_add(1, Ordering::Relaxed) + 1;

    let path = parts.uri.path();
    let route = path
        .strip_prefix(shared.config.prefix.as_str())
        .and_then(|rest| Route::find(parts.method.as_str(), rest));
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| json.as_ref().and_then(|json| json.get(name));
    let model = field("model").and_then(Value::as_str).map(str::to_owned);
    let stream = field("stream").and_then(Value::as_bool) == Some(true);
    let auth = Auth::check(&parts.headers, &shared.config.api_key);

    let reply = decide(
        &shared,
        route,
        auth,
        model.as_deref(),
        stream,
        &body,
        n,
        at,
        &socket,
    );
    let response_headers = reply
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    shared.log().push(RecordedRequest {
        at,
        method: parts.method.to_string(),
        path: path.to_owned(),
        route,
        model,
        stream,
        authorized: auth == Auth::Ok,
        headers: recorded_headers(&parts.headers),
        body: body.to_vec(),
        status: reply.status,
        response_headers,
    });
    if !reply.wait.is_zero() {
        tokio::time::sleep(reply.wait).await;
    }
    reply.into_response(n, &socket)
}

/// Whether a request carried the server's key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Auth {
    Ok,
    Missing,
    NotBearer,
    Wrong,
}

impl Auth {
    fn check(headers: &HeaderMap, key: &str) -> Auth {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Auth::Missing;
        };
        let value = String::from_utf8_lossy(value.as_bytes());
        let value = value.trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if value.is_empty() {
            Auth::Missing
        } else if !scheme.eq_ignore_ascii_case("bearer") {
            Auth::NotBearer
        } else {
            match token.trim() {
                "" => Auth::Missing,
                token if token == key => Auth::Ok,
                _ => Auth::Wrong,
            }
        }
    }

    /// The 401 message for a failed check; it never repeats the key that was sent.
    fn problem(self) -> Option<&'static str> {
        match self {
            Auth::Ok => None,
            Auth::Missing => {
                Some("No API key was provided: send it as `Authorization: Bearer <key>`.")
            }
            Auth::NotBearer => Some("The Authorization header must use the Bearer scheme."),
            Auth::Wrong => Some("The API key is wrong or has been revoked."),
        }
    }
}

fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if name == AUTHORIZATION {
                "<redacted>".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// The decided response, before it is turned into a hyper response.
struct Reply {
    /// The status to record: 0 for a reset.
    status: u16,
    /// How long to wait before sending the headers (or resetting).
    wait: Duration,
    /// The content type and body, or `None` to reset the connection.
    content: Option<(&'static str, MockBody)>,
    /// Extra headers from the fault, replacing the server's own of the same name.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    fn new(
        status: StatusCode,
        content_type: &'static str,
        body: MockBody,
        wait: Duration,
    ) -> Reply {
        Reply {
            status: status.as_u16(),
            wait,
            content: Some((content_type, body)),
            headers: Vec::new(),
        }
    }

    /// An answer sent as it is: whole bodies with a length, event streams chunked.
    fn plain(answer: Answer, wait: Duration) -> Reply {
        let body = match answer.payload {
            Payload::Whole(bytes) => MockBody::whole(bytes),
            Payload::Events(events) => MockBody::pieces(events, Duration::ZERO, false),
        };
        Reply::new(answer.status, answer.content_type, body, wait)
    }

    fn into_response(self, n: u64, socket: &Socket) -> Result<Response<MockBody>, Aborted> {
        let Some((content_type, body)) = self.content else {
            arm_reset(socket);
            return Err(Aborted);
        };
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(id) = HeaderValue::try_from(format!("mock-req-{n}")) {
            headers.insert("x-request-id", id);
        }
        for (name, _) in &self.headers {
            headers.remove(name);
        }
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        Ok(response)
    }
}

/// Chooses the response: unknown route, then auth, then faults, then the normal answer.
#[allow(clippy::too_many_arguments)] // One request's facts, each used once.
fn decide(
    shared: &Shared,
    route: Option<Route>,
    auth: Auth,
    model: Option<&str>,
    stream: bool,
    body: &[u8],
    n: u64,
    at: Duration,
    socket: &Arc<Socket>,
) -> Reply {
    let latency = shared.config.latency;
    let Some(route) = route else {
        return Reply::plain(Answer::page_not_found(), latency);
    };
    if let Some(message) = auth.problem() {
        let answer = Answer::error(StatusCode::UNAUTHORIZED, "FAILED_TO_AUTH", message);
        return Reply::plain(answer, latency);
    }
    let normal = || openai::answer(route, body, &shared.config.models, n);
    let probe = Probe {
        route,
        model,
        stream,
        body,
        at,
    };
    let Some(fault) = shared.faults().take_for(&probe) else {
        return Reply::plain(normal(), latency);
    };
    // Faults that still produce the normal answer also keep the configured latency.
    let slow = fault.delay + latency;
    let mut reply = match fault.kind {
        Kind::Status(status) => Reply::plain(fault.error_answer(status), fault.delay),
        Kind::MalformedSuccess => Reply::plain(openai::malformed_success(), fault.delay),
        Kind::Ok => Reply::plain(normal(), slow),
        Kind::Completion(completion) => Reply::plain(openai::scripted(&completion, stream), slow),
        Kind::Reset => Reply {
            status: 0,
            wait: fault.delay,
            content: None,
            headers: Vec::new(),
        },
        Kind::SlowBody(gap) => {
            let answer = normal();
            let body = match answer.payload {
                Payload::Whole(bytes) => MockBody::pieces(split(&bytes), gap, true),
                Payload::Events(events) => MockBody::pieces(events, gap, false),
            };
            Reply::new(answer.status, answer.content_type, body, slow)
        }
        Kind::StreamErrorAfter(chunks) => match normal() {
            Answer {
                status,
                content_type,
                payload: Payload::Events(mut events),
            } => {
                truncate_before_done(&mut events, chunks);
                events.push(openai::stream_error_event());
                let body = MockBody::pieces(events, Duration::ZERO, false);
                Reply::new(status, content_type, body, slow)
            }
            whole => Reply::plain(whole, slow),
        },
        Kind::StreamCutAfter(chunks) => match normal() {
            Answer {
                status,
                content_type,
                payload: Payload::Events(mut events),
            } => {
                truncate_before_done(&mut events, chunks);
                let body = MockBody::pieces(events, Duration::ZERO, false);
                let body = body.cut(Arc::clone(socket));
                Reply::new(status, content_type, body, slow)
            }
            whole => Reply::plain(whole, slow),
        },
    };
    if let Some((max_piece, seed)) = fault.pieces {
        reply.content = reply
            .content
            .map(|(content_type, body)| (content_type, body.in_pieces(max_piece, seed)));
    }
    reply.headers = fault.headers;
    reply
}

/// Keeps at most `chunks` events, and never the final `data: [DONE]`.
fn truncate_before_done(events: &mut Vec<Bytes>, chunks: usize) {
    let without_done = events.len().saturating_sub(1);
    events.truncate(chunks.min(without_done));
}

/// Splits a body into [`SLOW_BODY_PIECES`] roughly equal pieces.
fn split(bytes: &Bytes) -> Vec<Bytes> {
    let size = bytes.len().div_ceil(SLOW_BODY_PIECES).max(1);
    (0..bytes.len().max(1))
        .step_by(size)
        .map(|start| bytes.slice(start.min(bytes.len())..(start + size).min(bytes.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_byte() {
        for len in [0, 1, 7, 8, 9, 100, 1001] {
            let bytes = Bytes::from(vec![b'a'; len]);
            let pieces = split(&bytes);
            assert!(pieces.len() <= SLOW_BODY_PIECES);
            assert_eq!(pieces.concat(), bytes.to_vec());
        }
        assert_eq!(split(&Bytes::from(vec![0; 800])).len(), SLOW_BODY_PIECES);
    }

    #[test]
    fn auth_distinguishes_missing_wrong_and_other_schemes() {
        let check = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            Auth::check(&headers, "sk_k")
        };
        assert_eq!(check(None), Auth::Missing);
        assert_eq!(check(Some("Bearer ")), Auth::Missing);
        assert_eq!(check(Some("Bearer sk_k")), Auth::Ok);
        assert_eq!(check(Some("bearer  sk_k")), Auth::Ok);
        assert_eq!(check(Some("Bearer sk_other")), Auth::Wrong);
        assert_eq!(check(Some("Basic sk_k")), Auth::NotBearer);
    }
}
