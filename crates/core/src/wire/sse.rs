//! A server-sent-events decoder following the WHATWG event-stream rules, in linear time.
//!
//! The rules (HTML Living Standard, "Interpreting an event stream"): one leading UTF-8 BOM
//! is dropped; lines end at CRLF, LF or a lone CR, however reads split them; a line starting
//! with `:` is a comment; `field: value` loses one space after the colon and a line without
//! a colon is a field with an empty value; `data` lines append their value and a newline,
//! `event` names the event, `id` sets the last event id unless it holds NUL, `retry` sets
//! the reconnection time when it is all ASCII digits, other fields are ignored; a blank line
//! dispatches the event unless no `data` came, and the final newline of the data is
//! removed.
//!
//! Every byte is looked at once: lines are found with `memchr`, complete lines are read
//! straight from the caller's buffer, and only the unfinished tail of a read is copied. The
//! bytes of one event (its unfinished line and pending data) are bounded, so a server that
//! never ends a line or an event gets an error instead of the process's memory.

use std::time::Duration;

use super::limits::StreamDecodeError;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: the last `event` field, or `message` when none came.
    pub event: String,
    /// The `data` lines, joined with newlines (invalid UTF-8 replaced by U+FFFD).
    pub data: String,
    /// The last event id the stream set, if any (it carries over to later events).
    pub id: Option<String>,
}

/// Splits a byte stream into [`SseEvent`]s, however the bytes are chunked.
#[derive(Debug)]
pub struct SseDecoder {
    /// The unfinished line at the end of the bytes fed so far.
    line: Vec<u8>,
    /// The data buffer of the event being built, each `data` value followed by `\n`.
    data: Vec<u8>,
    /// The event type buffer.
    event: Vec<u8>,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    /// The last byte fed was a CR, so an LF starting the next read ends no line.
    after_cr: bool,
    /// How many bytes of a leading BOM have been seen; `None` once past the start.
    bom_seen: Option<usize>,
    max_event_bytes: usize,
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with nothing buffered and the default event bound
    /// ([`Limits::max_event_bytes`](super::limits::Limits::max_event_bytes)).
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_event_bytes(super::limits::Limits::default().max_event_bytes)
    }

    /// A decoder that fails once one event's unfinished line and data exceed `bytes`.
    #[must_use]
    pub fn with_max_event_bytes(bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            last_event_id: None,
            retry: None,
            after_cr: false,
            bom_seen: Some(0),
            max_event_bytes: bytes,
            failed: false,
        }
    }

    /// The reconnection time the stream asked for with `retry`, if any.
    #[must_use]
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Feeds bytes and returns the events they complete, in order.
    ///
    /// # Errors
    /// [`StreamDecodeError::EventTooLarge`] once an event outgrows the bound; the decoder
    /// then stays failed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, StreamDecodeError> {
        let mut events = Vec::new();
        self.feed_with(bytes, |event| events.push(event))?;
        Ok(events)
    }

    /// Feeds bytes and hands each event they complete to `on_event`, in order, without
    /// collecting them.
    ///
    /// # Errors
    /// As for [`feed`](Self::feed).
    pub fn feed_with(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(SseEvent),
    ) -> Result<(), StreamDecodeError> {
        if self.failed {
            return Err(self.too_large());
        }
        let Some(bytes) = self.skip_bom(bytes, &mut on_event)? else {
            return Ok(());
        };
        // An empty read says nothing: in particular not whether an LF follows a CR.
        if bytes.is_empty() {
            return Ok(());
        }
        self.feed_lines(bytes, &mut on_event)
    }

    /// Whether bytes of an unfinished event are buffered (a stream that ends here was cut).
    #[must_use]
    pub fn has_partial_event(&self) -> bool {
        !self.data.is_empty() || self.line.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// Drops a leading BOM, even one split across reads. `None` when every byte was
    /// (possibly) part of it.
    fn skip_bom<'a>(
        &mut self,
        bytes: &'a [u8],
        on_event: &mut impl FnMut(SseEvent),
    ) -> Result<Option<&'a [u8]>, StreamDecodeError> {
        let Some(seen) = self.bom_seen else {
            return Ok(Some(bytes));
        };
        let rest = &BOM[seen..];
        if rest.starts_with(bytes) {
            self.bom_seen = Some(seen + bytes.len());
            if seen + bytes.len() < BOM.len() {
                return Ok(None);
            }
            self.bom_seen = None;
            return Ok(Some(&[]));
        }
        self.bom_seen = None;
        if let Some(after) = bytes.strip_prefix(rest) {
            return Ok(Some(after));
        }
        // Not a BOM after all: what looked like its start is ordinary bytes.
        self.feed_lines(&BOM[..seen], on_event)?;
        Ok(Some(bytes))
    }

    fn feed_lines(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut impl FnMut(SseEvent),
    ) -> Result<(), StreamDecodeError> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
            if self.line.is_empty() {
                self.take_line(&bytes[..end], on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&bytes[..end]);
                self.take_line(&line, on_event)?;
                line.clear();
                self.line = line;
            }
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            if bytes[end] == b'\r' && end + 1 == bytes.len() {
                self.after_cr = true;
            }
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];
        }
        self.line.extend_from_slice(bytes);
        self.check_size()
    }

    fn take_line(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(SseEvent),
    ) -> Result<(), StreamDecodeError> {
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.check_size()?;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_event_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits beyond u64 mean "a very long time", not an error.
                let millis = std::str::from_utf8(value)
                    .ok()
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                self.retry = Some(Duration::from_millis(millis));
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop();
        let data = match String::from_utf8(std::mem::take(&mut self.data)) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        let event = if self.event.is_empty() {
            "message".to_owned()
        } else {
            String::from_utf8_lossy(&self.event).into_owned()
        };
        self.event.clear();
        on_event(SseEvent {
            event,
            data,
            id: self.last_event_id.clone(),
        });
    }

    fn check_size(&mut self) -> Result<(), StreamDecodeError> {
        if self.line.len() + self.data.len() + self.event.len() > self.max_event_bytes {
            self.failed = true;
            self.line = Vec::new();
            self.data = Vec::new();
            return Err(self.too_large());
        }
        Ok(())
    }

    fn too_large(&self) -> StreamDecodeError {
        StreamDecodeError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_read_between_cr_and_lf_changes_nothing() {
        let mut split = SseDecoder::new();
        let mut events = split.feed(b"data: a\r").unwrap();
        events.extend(split.feed(b"").unwrap());
        events.extend(split.feed(b"\ndata: b\n\n").unwrap());
        let whole = SseDecoder::new().feed(b"data: a\r\ndata: b\n\n").unwrap();
        assert_eq!(events, whole);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].data, "a\nb");
    }

    fn decode_split(bytes: &[u8], size: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for piece in bytes.chunks(size) {
            events.extend(decoder.feed(piece).unwrap());
        }
        events
    }

    fn datas(bytes: &[u8]) -> Vec<String> {
        let whole = decode_split(bytes, bytes.len().max(1));
        for size in 1..=7 {
            assert_eq!(decode_split(bytes, size), whole, "split every {size} bytes");
        }
        whole.into_iter().map(|event| event.data).collect()
    }

    #[test]
    fn every_line_ending_ends_a_line() {
        assert_eq!(
            datas(b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n\n"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            datas(b"data: x\r"),
            Vec::<String>::new(),
            "no blank line yet"
        );
        assert_eq!(datas(b"data: x\r\r"), ["x"]);
    }

    #[test]
    fn a_leading_bom_is_dropped_once() {
        assert_eq!(datas(b"\xEF\xBB\xBFdata: a\n\n"), ["a"]);
        // A second BOM is part of the first line, which is then no `data` field.
        assert_eq!(
            datas(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
            ["b"]
        );
        // Bytes that only start like a BOM are kept.
        assert_eq!(datas(b"\xEF\xBBdata: a\n\ndata: b\n\n"), ["b"]);
    }

    #[test]
    fn fields_follow_the_rules() {
        let stream = b": comment\nevent: update\nid: 7\ndata\ndata:x\ndata:  two spaces\nretry: 1500\nunknown: 1\n\n\
                       data: next\n\nid\n\nevent: lonely\n\ndata: after\n\nid: a\x00b\ndata: keeps\n\n";
        let mut decoder = SseDecoder::new();
        let events = decoder.feed(stream).unwrap();
        assert_eq!(
            events[0],
            SseEvent {
                event: "update".to_owned(),
                data: "\nx\n two spaces".to_owned(),
                id: Some("7".to_owned()),
            }
        );
        assert_eq!(events[1].event, "message", "the type resets after dispatch");
        assert_eq!(events[1].id.as_deref(), Some("7"), "the id carries over");
        assert_eq!(events[2].data, "after");
        assert_eq!(
            events[2].event, "message",
            "an event without data is dropped with its type"
        );
        assert_eq!(events[2].id.as_deref(), Some(""), "an empty id resets it");
        assert_eq!(
            events[3].id.as_deref(),
            Some(""),
            "an id holding NUL is ignored"
        );
        assert_eq!(events.len(), 4);
        assert_eq!(decoder.retry(), Some(Duration::from_millis(1500)));
        decoder
            .feed(b"retry: 1x\n\nretry: 99999999999999999999999\n\n")
            .unwrap();
        assert_eq!(decoder.retry(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(datas(b"data: \xFF\xFEok\n\n"), ["\u{FFFD}\u{FFFD}ok"]);
    }

    #[test]
    fn a_partial_event_is_noticed() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"data: {\"id\"").unwrap();
        assert!(decoder.has_partial_event());
        decoder.feed(b"\n").unwrap();
        assert!(decoder.has_partial_event(), "data without its blank line");
        decoder.feed(b"\n").unwrap();
        assert!(!decoder.has_partial_event());
    }

    #[test]
    fn events_are_bounded() {
        let mut decoder = SseDecoder::with_max_event_bytes(64);
        assert!(decoder.feed(&[b'a'; 64]).is_ok());
        let error = decoder.feed(b"b").unwrap_err();
        assert!(matches!(
            error,
            StreamDecodeError::EventTooLarge { limit: 64 }
        ));
        assert!(
            decoder.feed(b"\n\n").is_err(),
            "a failed decoder stays failed"
        );

        let mut decoder = SseDecoder::with_max_event_bytes(64);
        let line = format!("data: {}\n", "x".repeat(30));
        decoder.feed(line.as_bytes()).unwrap();
        decoder.feed(line.as_bytes()).unwrap();
        assert!(
            decoder.feed(line.as_bytes()).is_err(),
            "pending data counts too"
        );

        let mut decoder = SseDecoder::with_max_event_bytes(64);
        for _ in 0..100 {
            decoder.feed(line.as_bytes()).unwrap();
            decoder.feed(b"\n").unwrap();
        }
    }

    #[test]
    fn a_long_event_in_small_reads_is_linear() {
        // 4 MiB in 1 KiB reads: quadratic rescanning would take minutes, linear takes
        // milliseconds; this test only checks the answer, the bench measures the time.
        let payload = "y".repeat(4 * 1024 * 1024);
        let stream = format!("data: {payload}\n\n");
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for piece in stream.as_bytes().chunks(1024) {
            events.extend(decoder.feed(piece).unwrap());
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), payload.len());
    }
}
