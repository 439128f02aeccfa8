//! What the server exposes about routes and the requests it received.

use std::time::Duration;

/// An API route the mock serves; faults are registered per route.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Route {
    /// `POST {prefix}/chat/completions`, with or without streaming.
    ChatCompletions,
    /// `POST {prefix}/completions`, the legacy text completion route.
    Completions,
    /// `GET {prefix}/models`, the list of known models.
    Models,
}

impl Route {
    /// The route's path below the prefix, e.g. `/chat/completions`.
    pub fn path(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/chat/completions",
            Route::Completions => "/completions",
            Route::Models => "/models",
        }
    }

    /// The HTTP method the route answers, e.g. `POST`.
    pub fn method(self) -> &'static str {
        match self {
            Route::ChatCompletions | Route::Completions => "POST",
            Route::Models => "GET",
        }
    }

    /// Finds the route for a method and a path that already had the prefix removed.
    pub(crate) fn find(method: &str, path: &str) -> Option<Route> {
        [Route::ChatCompletions, Route::Completions, Route::Models]
            .into_iter()
            .find(|route| route.method() == method && route.path() == path)
    }
}

/// One request the server received and what it answered, for assertions on attempts and timing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordedRequest {
    /// Arrival time (request head received), measured from server start on a monotonic clock.
    pub at: Duration,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The request path including the prefix, without the query string.
    pub path: String,
    /// The route the request matched, or `None` for unknown paths and methods.
    pub route: Option<Route>,
    /// The `"model"` string of the JSON body, if any.
    pub model: Option<String>,
    /// Whether the JSON body had `"stream": true`.
    pub stream: bool,
    /// Whether the request carried the server's key as a bearer token.
    pub authorized: bool,
    /// Request headers with lower-case names; the `authorization` value reads `<redacted>`.
    pub headers: Vec<(String, String)>,
    /// The raw request body.
    pub body: Vec<u8>,
    /// The status the mock answered, or 0 when it reset the connection instead.
    pub status: u16,
    /// The headers a fault added to the answer (`retry-after`, `retry-after-ms`, ...), with
    /// lower-case names, in the order they were added; empty for normal answers.
    pub response_headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of a header (name matched case-insensitively), if the request had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header a fault added to the answer (name matched
    /// case-insensitively), e.g. the `retry-after` a client was sent.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
