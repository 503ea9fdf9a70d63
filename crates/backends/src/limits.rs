//! The limits on what a backend reads from outside — answers, events, lines, error bodies — and the one sentence a
//! run fails with when one is passed, so every backend names its limit the same way.

/// The default of `max_response_bytes`: the most an answer (`http`) or an answer's text (`openai`) may hold.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The default of `max_event_bytes`: the most one event may hold (an SSE event of `openai`, a JSONL line of `codex`).
pub(crate) const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// How much of an error answer is read for its message; the rest is never read.
pub(crate) const ERROR_BODY_BYTES: usize = 4 * 1024;

/// The longest log line a backend writes at once; a longer line is written as several. It matches the engine's
/// default cut of a stored line (16 KiB), so a long line is kept whole, as several lines.
pub(crate) const LOG_LINE_BYTES: usize = 16 * 1024;

pub(crate) fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

pub(crate) fn default_max_event_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

/// The error of a run that passed a limit: "{what} is over the limit of 4 MiB (max_response_bytes)".
pub(crate) fn over_limit(what: &str, limit: usize, key: &str) -> String {
    format!("{what} is over the limit of {} ({key})", size(limit))
}

/// A size for people: "4 MiB", "16 KiB", "1000 bytes".
pub(crate) fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes {
        0 => "0 bytes".to_owned(),
        _ if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        _ if bytes.is_multiple_of(KIB) => format!("{} KiB", bytes / KIB),
        _ => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        let check = |bytes: usize, expected: &str| assert_eq!(size(bytes), expected, "{bytes}");
        check(4 * 1024 * 1024, "4 MiB");
        check(16 * 1024, "16 KiB");
        check(1536, "1536 bytes");
        check(0, "0 bytes");
        assert_eq!(
            over_limit("the answer", 1024 * 1024, "max_response_bytes"),
            "the answer is over the limit of 1 MiB (max_response_bytes)"
        );
    }
}
