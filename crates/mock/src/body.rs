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

use crate::seeded;

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
    /// Whether to make hyper flush each piece before the next (see [`MockBody::in_pieces`]).
    flush_each: bool,
    /// Set after a piece when the next poll must return `Pending` once, so hyper flushes.
    yield_next: bool,
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
            flush_each: false,
            yield_next: false,
            announce_length,
            end: End::Finish,
        }
    }

    /// The same bytes re-cut into pieces of pseudo-random sizes from 1 to `max_piece` (drawn
    /// from `seed`), each flushed to the connection before the next is written.
    pub(crate) fn in_pieces(mut self, max_piece: usize, seed: u64) -> MockBody {
        let parts: Vec<&[u8]> = self.pieces.iter().map(Bytes::as_ref).collect();
        let whole = Bytes::from(parts.concat());
        self.pieces = cut_randomly(&whole, max_piece, seed).into();
        self.flush_each = true;
        self
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

/// `bytes` cut into consecutive pieces of 1 to `max_piece` bytes, sizes drawn from `seed`;
/// no piece for an empty body.
fn cut_randomly(bytes: &Bytes, max_piece: usize, seed: u64) -> Vec<Bytes> {
    let mut state = seed;
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = start
            .saturating_add(seeded::one_to(&mut state, max_piece))
            .min(bytes.len());
        pieces.push(bytes.slice(start..end));
        start = end;
    }
    pieces
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = self.get_mut();
        if this.yield_next {
            // hyper writes out what it buffered whenever the body is not ready.
            this.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        if let Some(piece) = this.pieces.pop_front() {
            if !this.gap.is_zero() && !this.pieces.is_empty() {
                this.sleep = Some(Box::pin(tokio::time::sleep(this.gap)));
            } else if this.flush_each && !this.pieces.is_empty() {
                this.yield_next = true;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(body: &mut MockBody) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(frame.into_data().ok()),
            Poll::Ready(Some(Err(_))) => panic!("the body aborted"),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    #[test]
    fn random_cuts_keep_every_byte_within_the_size_and_replay_from_the_seed() {
        let bytes =
            Bytes::from("data: {\"content\":\"héllo 🦀\"}\r\n\r\ndata: [DONE]\n\n".repeat(5));
        for max in [1, 2, 3, 7, 64, 10_000] {
            let pieces = cut_randomly(&bytes, max, 42);
            assert_eq!(pieces.concat(), bytes.to_vec());
            assert!(pieces.iter().all(|p| (1..=max).contains(&p.len())));
            assert_eq!(pieces, cut_randomly(&bytes, max, 42));
        }
        let sizes = |seed| {
            cut_randomly(&bytes, 5, seed)
                .iter()
                .map(Bytes::len)
                .collect::<Vec<_>>()
        };
        assert_ne!(sizes(1), sizes(2));
        let one_size = sizes(1);
        assert!(one_size.iter().any(|&n| n != one_size[0]), "{one_size:?}");
        assert!(cut_randomly(&Bytes::new(), 5, 1).is_empty());
    }

    #[test]
    fn random_cuts_land_inside_characters() {
        let text = "🦀é".repeat(50);
        let bytes = Bytes::from(text.clone());
        let mut at = 0;
        let mut inside = 0;
        for piece in cut_randomly(&bytes, 4, 9) {
            at += piece.len();
            inside += usize::from(!text.is_char_boundary(at));
        }
        assert!(inside > 0, "no cut fell inside a character");
    }

    #[test]
    fn pieces_are_flushed_one_by_one_and_keep_the_length() {
        let body = MockBody::whole(Bytes::from_static(b"abcdefghij"));
        let mut body = body.in_pieces(3, 5);
        assert_eq!(body.size_hint().exact(), Some(10));
        let mut seen = Vec::new();
        let mut pendings = 0;
        loop {
            match poll(&mut body) {
                Poll::Ready(Some(piece)) => {
                    assert!((1..=3).contains(&piece.len()));
                    seen.push(piece);
                }
                Poll::Ready(None) => break,
                Poll::Pending => pendings += 1,
            }
        }
        assert_eq!(seen.concat(), b"abcdefghij");
        assert_eq!(pendings, seen.len() - 1, "one flush between two pieces");

        let mut plain = MockBody::pieces(
            vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")],
            Duration::ZERO,
            false,
        );
        assert_eq!(
            poll(&mut plain),
            Poll::Ready(Some(Bytes::from_static(b"ab")))
        );
        assert_eq!(
            poll(&mut plain),
            Poll::Ready(Some(Bytes::from_static(b"cd")))
        );
        assert_eq!(poll(&mut plain), Poll::Ready(None));
    }
}
