//! The bounds a stream is held to, and what goes wrong when decoding one: a server
//! that breaks a bound gets a typed error with advice, never an abort.

/// Bounds on what a server may make a client hold: each one caps a size or an index read
/// from the network, so a hostile or broken server gets a typed error instead of making the
/// process allocate without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most bytes of one server-sent event (its lines and pending `data` together).
    /// Default 16 MiB: a chat chunk is a few hundred bytes, a whole answer in one event a
    /// few megabytes at most.
    pub max_event_bytes: usize,
    /// The highest choice index plus one a stream may use (`n` is at most 128 in the
    /// OpenAI API). Default 128.
    pub max_choices: usize,
    /// The most tool calls one streamed choice may carry. Default 1024.
    pub max_tool_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 16 * 1024 * 1024,
            max_choices: 128,
            max_tool_calls: 1024,
        }
    }
}

impl Limits {
    /// These limits with events bounded by `bytes`.
    #[must_use]
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// These limits with at most `choices` choices per stream.
    #[must_use]
    pub fn with_max_choices(mut self, choices: usize) -> Self {
        self.max_choices = choices;
        self
    }

    /// These limits with at most `calls` tool calls per streamed choice.
    #[must_use]
    pub fn with_max_tool_calls(mut self, calls: usize) -> Self {
        self.max_tool_calls = calls;
        self
    }
}

/// Why a stream could not be decoded: malformed data, or a server that went past one of the
/// [`Limits`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamDecodeError {
    /// An event's data is not a chunk, an error object or `[DONE]`.
    #[error("malformed stream event")]
    Json(#[source] serde_json::Error),
    /// One event grew past the bound without ending.
    #[error(
        "a stream event grew past {limit} bytes without ending; the server is misbehaving \
         (raise Limits::max_event_bytes only if it legitimately sends events this large)"
    )]
    EventTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// A chunk named a choice index at or past the bound.
    #[error(
        "a stream chunk names choice {index}, past the limit of {limit} choices; \
         the server is misbehaving (raise Limits::max_choices if you ask for more with `n`)"
    )]
    TooManyChoices {
        /// The index the chunk named.
        index: u64,
        /// The bound.
        limit: usize,
    },
    /// A streamed choice carried more tool calls than the bound.
    #[error(
        "a streamed choice carries more than {limit} tool calls; the server is misbehaving \
         (raise Limits::max_tool_calls if a model legitimately makes this many)"
    )]
    TooManyToolCalls {
        /// The bound.
        limit: usize,
    },
}
