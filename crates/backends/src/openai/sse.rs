//! The bounded front of the event-stream reader: splits the bytes of a model server's answer into whole lines, each
//! decoded as UTF-8 on its own, and fails once one event (its lines up to the blank line that ends it) passes
//! `max_event_bytes`. `eventsource-stream` then parses the lines, one at a time, so it never buffers more than a line
//! nor looks at one twice, and a garbage answer without line breaks costs at most the limit.

use futures_util::{Stream, StreamExt, stream};

use crate::limits::over_limit;

/// Why the answer could not be read as lines.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The connection failed.
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    /// An event passed the limit; the message names it.
    #[error("{0}")]
    OverLimit(String),
}

/// The lines of a response body, for `eventsource-stream`: each ends with `\n`, whatever line end it had.
pub(super) fn lines(
    response: reqwest::Response,
    max_event_bytes: usize,
) -> impl Stream<Item = Result<String, ReadError>> {
    let mut splitter = LineSplitter::new(max_event_bytes);
    response
        .bytes_stream()
        .map(move |chunk| {
            let result = match chunk {
                Ok(bytes) => splitter.push(&bytes),
                Err(error) => Err(ReadError::Transport(error)),
            };
            let items: Vec<Result<String, ReadError>> = match result {
                Ok(lines) => lines.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            stream::iter(items)
        })
        .flatten()
}

/// Splits bytes into lines (`\n`, `\r\n` or `\r`), counting the bytes of the current event.
#[derive(Debug)]
pub(super) struct LineSplitter {
    /// The line not ended yet.
    partial: Vec<u8>,
    /// The bytes of the current event so far, line ends not counted.
    n_event_bytes: usize,
    max_event_bytes: usize,
    /// Whether the last byte seen was a `\r`, so a `\n` right after it ends no further line.
    is_after_cr: bool,
}

impl LineSplitter {
    pub(super) fn new(max_event_bytes: usize) -> Self {
        Self { partial: Vec::new(), n_event_bytes: 0, max_event_bytes, is_after_cr: false }
    }

    /// Adds bytes; answers the lines they completed.
    pub(super) fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<String>, ReadError> {
        let mut lines = Vec::new();
        while let Some(&first) = bytes.first() {
            if std::mem::take(&mut self.is_after_cr) && first == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            let Some(end) = bytes.iter().position(|byte| *byte == b'\n' || *byte == b'\r') else {
                self.add(bytes)?;
                break;
            };
            self.add(&bytes[..end])?;
            self.is_after_cr = bytes[end] == b'\r';
            let line = std::mem::take(&mut self.partial);
            // A blank line ends the event.
            if line.is_empty() {
                self.n_event_bytes = 0;
            }
            let mut text = String::from_utf8_lossy(&line).into_owned();
            text.push('\n');
            lines.push(text);
            bytes = &bytes[end + 1..];
        }
        Ok(lines)
    }

    fn add(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        self.n_event_bytes += bytes.len();
        if self.n_event_bytes > self.max_event_bytes {
            let what = "an event of the model server's answer";
            return Err(ReadError::OverLimit(over_limit(what, self.max_event_bytes, "max_event_bytes")));
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&[u8]], max_event_bytes: usize) -> Result<Vec<String>, String> {
        let mut splitter = LineSplitter::new(max_event_bytes);
        let mut lines = Vec::new();
        for piece in pieces {
            lines.extend(splitter.push(piece).map_err(|error| error.to_string())?);
        }
        Ok(lines)
    }

    #[test]
    fn bytes_become_lines_whatever_their_line_ends() {
        let check = |pieces: &[&[u8]], expected: &[&str]| {
            assert_eq!(split(pieces, 100), Ok(expected.iter().map(|line| line.to_string()).collect()));
        };
        check(&[b"data: a\n\n"], &["data: a\n", "\n"]);
        check(&[b"data: a\r", b"\n\r\n"], &["data: a\n", "\n"]);
        check(&[b"data: a\rdata: b\r\r"], &["data: a\n", "data: b\n", "\n"]);
        check(&[b"da", b"ta: ", b"a", b"\n"], &["data: a\n"]);
        check(&[b"data: \xc3", b"\xa9\n"], &["data: \u{e9}\n"]);
        check(&[b"data: \xff\n"], &["data: \u{fffd}\n"]);
        check(&[b"no line end"], &[]);
    }

    #[test]
    fn an_event_over_the_limit_fails_naming_it() {
        let over = "an event of the model server's answer is over the limit of 10 bytes (max_event_bytes)";
        // Ten bytes per event are fine, event after event.
        assert!(split(&[b"data: 1234\n\ndata: 5678\n\n"], 10).is_ok());
        assert_eq!(split(&[b"data: 12345\n\n"], 10), Err(over.to_owned()));
        // Garbage without a line break, and many lines without a blank one, both pass it.
        assert_eq!(split(&[b"0123456", b"789abc"], 10), Err(over.to_owned()));
        assert_eq!(split(&[b"data: 1\ndata: 2\ndata: 3\n"], 10), Err(over.to_owned()));
    }
}
