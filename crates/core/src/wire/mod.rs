//! The OpenAI-compatible wire format Novita speaks, and the streaming decoder.
//!
//! Pure data and parsing shared by both adapters:
//! - [`ChatRequest`] and its parts ([`Message`], [`Content`], [`Tool`], [`ToolChoice`],
//!   [`ResponseFormat`], …): every parameter of Novita's chat API, with builders;
//! - [`ChatCompletion`] (a buffered answer: text, tool calls, reasoning, refusals, log
//!   probabilities, usage with its details) and [`ChatChunk`] (one streamed piece);
//! - [`SseDecoder`], a WHATWG event-stream decoder in linear time, and [`StreamParser`],
//!   which turns its events into chunks, the end of the stream, or one break;
//! - [`Assembler`], which rebuilds the buffered answer from the chunks, losslessly, when
//!   the policy switches a buffered call to streaming, so the caller never notices.
//!
//! Every object keeps the fields it does not know in a flattened `extra` map, so what the
//! server adds survives a round trip; structs that may grow are `#[non_exhaustive]` and are
//! built with constructors and `with_*`-style setters. Everything read from the network is
//! bounded (see [`Limits`]): crossing a bound is a [`StreamDecodeError`], never an abort.

mod assemble;
mod chat;
mod chunk;
mod completion;
mod labels;
mod limits;
mod sse;
mod stream;

pub use assemble::Assembler;
pub use chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDefinition, ImageUrl, JsonSchema,
    Message, ResponseFormat, StopSequences, StreamOptions, Tool, ToolCall, ToolChoice,
};
pub use chunk::{ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};
pub use completion::{
    ChatCompletion, Choice, CompletionTokensDetails, Logprobs, Model, ModelList,
    PromptTokensDetails, TokenLogprob, TopLogprob, Usage,
};
pub use labels::{FinishReason, Role};
pub use limits::{Limits, StreamDecodeError};
pub use sse::{SseDecoder, SseEvent};
pub use stream::{Next, StreamBreak, StreamEvent, StreamParser};
