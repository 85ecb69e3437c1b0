//! The reads of `--mark-read` (`LOAD_MARK_READ`) in the summary: how many,
//! how they were answered, how fast, and what counts as a problem.

use serde::Serialize;

use crate::{
    latency::{Kind, Percentiles},
    ledger::Tally,
    state::{ReadCounts, RunState},
};

/// The reads of `LOAD_MARK_READ`: each chatter marked its room read up to
/// the newest message received, at most once a second.
#[derive(Debug, Clone, Serialize)]
pub struct Reads {
    /// Sent, and how they were answered.
    #[serde(flatten)]
    pub counts: ReadCounts,
    /// Reads sent per second of the sending window (they are sent only
    /// while the chatters send).
    pub sent_per_s: f64,
    /// Reads answered `ok` per second of the sending window.
    pub ok_per_s: f64,
    /// Reads sent per accepted message.
    pub per_message: Option<f64>,
    /// `read` emitted → ack `ok`.
    pub ack: Percentiles,
}

impl Reads {
    /// The run's reads, `window_s` being the sending window in seconds.
    pub fn build(run: &RunState, messages: &Tally, window_s: f64) -> Self {
        let counts = run.counters.reads.snapshot();
        let per_s = |count: u64| count as f64 / window_s.max(1e-9);
        Self {
            counts,
            sent_per_s: per_s(counts.sent),
            ok_per_s: per_s(counts.ok),
            per_message: (messages.accepted > 0)
                .then(|| counts.sent as f64 / messages.accepted as f64),
            ack: run.latencies.percentiles(Kind::ReadAck),
        }
    }

    /// The problems of these reads, for a run whose chatters received
    /// `deliveries` messages.
    pub fn problems(&self, deliveries: u64) -> Vec<String> {
        problems(&self.counts, deliveries)
    }
}

/// What went wrong with the reads: a `read` answered anything but `ok`, or
/// not at all, fails the run like any other problem; so does a run whose
/// chatters received messages (`deliveries`) but marked nothing read.
fn problems(reads: &ReadCounts, deliveries: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if reads.failed > 0 {
        problems.push(format!(
            "{} reads refused (their ack was not `ok`; see the errors named read:...)",
            reads.failed
        ));
    }
    if reads.unanswered > 0 {
        problems.push(format!(
            "{} reads never answered (no ack within LOAD_ACK_TIMEOUT)",
            reads.unanswered
        ));
    }
    if reads.sent == 0 && deliveries > 0 {
        problems.push("no read was sent although messages arrived".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_answered_ok_are_no_problem() {
        let reads = ReadCounts {
            sent: 10,
            ok: 10,
            ..ReadCounts::default()
        };
        assert!(problems(&reads, 50).is_empty());
        assert!(problems(&ReadCounts::default(), 0).is_empty());
    }

    #[test]
    fn a_refused_or_unanswered_read_is_a_problem_of_its_own() {
        let reads = ReadCounts {
            sent: 10,
            ok: 7,
            failed: 2,
            unanswered: 1,
            late: 1,
        };
        let problems = problems(&reads, 50);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("2 reads refused"), "{problems:?}");
        assert!(
            problems[1].starts_with("1 reads never answered"),
            "{problems:?}"
        );
    }

    #[test]
    fn marking_nothing_read_while_messages_arrived_is_a_problem() {
        let problems = problems(&ReadCounts::default(), 3);
        assert_eq!(problems, vec!["no read was sent although messages arrived"]);
    }
}
