//! The response body: pieces sent with optional pauses, ending cleanly or with an abort.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use socket2::Socket;
use tokio::time::Sleep;

/// The error that makes hyper drop a connection without (finishing) a response.
#[derive(Debug)]
pub(crate) struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection aborted by a scripted fault")
    }
}

impl Error for Aborted {}

/// Makes the next close of `socket` (and of every other handle to it) send a TCP reset.
pub(crate) fn arm_reset(socket: &Socket) {
    // Best effort: if the option cannot be set the client still sees the connection drop.
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// How a body ends after its last piece.
enum End {
    /// The body ends normally.
    Finish,
    /// The connection is reset, after one yield so hyper flushes the pieces already sent.
    Cut { socket: Arc<Socket>, flushed: bool },
}

/// A response body made of pieces, with `gap` between consecutive pieces.
pub(crate) struct MockBody {
    pieces: VecDeque<Bytes>,
    gap: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    announce_length: bool,
    end: End,
}

impl MockBody {
    /// A body sent in one piece, with a `content-length`.
    pub(crate) fn whole(bytes: Bytes) -> MockBody {
        MockBody::pieces(vec![bytes], Duration::ZERO, true)
    }

    /// A body sent as these pieces (chunked unless `announce_length`), pausing `gap` between them.
    pub(crate) fn pieces(pieces: Vec<Bytes>, gap: Duration, announce_length: bool) -> MockBody {
        MockBody {
            pieces: pieces.into(),
            gap,
            sleep: None,
            announce_length,
            end: End::Finish,
        }
    }

    /// Resets the connection after the last piece instead of ending the body.
    pub(crate) fn cut(mut self, socket: Arc<Socket>) -> MockBody {
        self.end = End::Cut {
            socket,
            flushed: false,
        };
        self.announce_length = false;
        self
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = self.get_mut();
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        if let Some(piece) = this.pieces.pop_front() {
            if !this.gap.is_zero() && !this.pieces.is_empty() {
                this.sleep = Some(Box::pin(tokio::time::sleep(this.gap)));
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        match &mut this.end {
            End::Finish => Poll::Ready(None),
            End::Cut { flushed, .. } if !*flushed => {
                // Returning Pending once lets hyper flush what it buffered before the abort.
                *flushed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            End::Cut { socket, .. } => {
                arm_reset(socket);
                Poll::Ready(Some(Err(Aborted)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty() && matches!(self.end, End::Finish)
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            let len = self.pieces.iter().map(Bytes::len).sum::<usize>();
            SizeHint::with_exact(len as u64)
        } else {
            SizeHint::default()
        }
    }
}
