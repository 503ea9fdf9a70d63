//! The `NOTIFY` payloads that carry [`Signal`]s between instances, on the one channel [`CHANNEL`]: written inside the
//! transaction of the change they tell of (so they are delivered at its commit, and never for a change rolled back),
//! read by each instance's listener (`listener.rs`).
//!
//! A payload is short text: `e <last event id>`, `l <execution> <last seq>`, `i <execution> <seq>,<seq>…`,
//! `c <execution> [<by>]`, `d <approval>`. PostgreSQL folds identical payloads sent in one transaction into one. (The
//! `e` payload is also built in SQL, by transaction.rs's statement that takes the event ids: keep the two alike.)

use dashboard_core::{ApprovalId, ExecutionId};
use dashboard_store::Signal;

/// The channel every instance listens on.
pub(crate) const CHANNEL: &str = "dashboard";

/// The most item seqs one payload lists; a larger batch says only its last ones, which is enough to wake.
const MAX_SEQS: usize = 200;

/// The payload of `signal`; `None` for a signal that never travels (`Reconnected` is the listener's own).
pub(crate) fn payload(signal: &Signal) -> Option<String> {
    Some(match signal {
        Signal::Events { last_id } => format!("e {last_id}"),
        Signal::Logs { execution_id, last_seq } => format!("l {execution_id} {last_seq}"),
        Signal::Items { execution_id, seqs } => {
            let start = seqs.len().saturating_sub(MAX_SEQS);
            let seqs: Vec<String> = seqs[start..].iter().map(u64::to_string).collect();
            format!("i {execution_id} {}", seqs.join(","))
        }
        Signal::Cancel { execution_id, by: Some(by) } => format!("c {execution_id} {by}"),
        Signal::Cancel { execution_id, by: None } => format!("c {execution_id}"),
        Signal::Decided { approval_id } => format!("d {approval_id}"),
        Signal::Reconnected => return None,
    })
}

/// The signal a payload carries; `None` for one this build does not know (a newer instance's).
pub(crate) fn parse(payload: &str) -> Option<Signal> {
    let (kind, rest) = payload.split_once(' ')?;
    match kind {
        "e" => Some(Signal::Events { last_id: rest.parse().ok()? }),
        "l" => {
            let (id, seq) = rest.split_once(' ')?;
            Some(Signal::Logs { execution_id: id.parse::<ExecutionId>().ok()?, last_seq: seq.parse().ok()? })
        }
        "i" => {
            let (id, seqs) = rest.split_once(' ')?;
            let seqs = seqs.split(',').map(str::parse).collect::<Result<Vec<u64>, _>>().ok()?;
            Some(Signal::Items { execution_id: id.parse().ok()?, seqs })
        }
        "c" => {
            let (id, by) = match rest.split_once(' ') {
                Some((id, by)) => (id, Some(by.to_owned())),
                None => (rest, None),
            };
            Some(Signal::Cancel { execution_id: id.parse().ok()?, by })
        }
        "d" => Some(Signal::Decided { approval_id: rest.parse::<ApprovalId>().ok()? }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_that_travels_reads_back_as_itself() {
        let execution_id = ExecutionId::generate();
        let signals = [
            Signal::Events { last_id: 42 },
            Signal::Logs { execution_id, last_seq: 7 },
            Signal::Items { execution_id, seqs: vec![1, 2, 9] },
            Signal::Cancel { execution_id, by: Some("alice smith".into()) },
            Signal::Cancel { execution_id, by: None },
            Signal::Decided { approval_id: ApprovalId::generate() },
        ];
        for signal in signals {
            let text = payload(&signal).expect("it travels");
            assert_eq!(parse(&text), Some(signal), "{text}");
        }
        assert_eq!(payload(&Signal::Reconnected), None);
        assert_eq!(parse("z 1"), None);
        assert_eq!(parse("e not-a-number"), None);
    }
}
