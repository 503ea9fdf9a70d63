//! How long a JSON value's text is, measured as it is written out — without building the text — and only up to a
//! limit: an output or a prompt's value over its limit costs no more than the limit to find out.

use std::io::{self, Write};

use serde_json::Value;

/// The length of `value` as JSON text (pretty-printed when `is_pretty`), or a number just past `limit` when it is
/// longer: the writing stops there.
pub(crate) fn json_len_up_to(value: &Value, limit: usize, is_pretty: bool) -> usize {
    let mut counter = Counter { n_bytes: 0, limit };
    let _ = if is_pretty {
        serde_json::to_writer_pretty(&mut counter, value)
    } else {
        serde_json::to_writer(&mut counter, value)
    };
    counter.n_bytes
}

/// Counts the bytes written to it, refusing to go on past the limit.
struct Counter {
    n_bytes: usize,
    limit: usize,
}

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.n_bytes += bytes.len();
        if self.n_bytes > self.limit {
            return Err(io::Error::other("over the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_is_measured_whole_within_the_limit_and_stops_past_it() {
        let value = json!({"text": "x".repeat(100)});
        let whole = value.to_string().len();
        assert_eq!(json_len_up_to(&value, 1000, false), whole);
        assert!(json_len_up_to(&value, 10, false) > 10);
        assert!(json_len_up_to(&value, 1000, true) > whole, "pretty text is longer");
    }
}
