//! For the checker's tests: a fault window, and one author's history and
//! its room's, built message by message.

use std::collections::BTreeMap;

use super::{check, Observed, Row, Verdict};
use crate::history::{FaultWindow, Path, StreamHistory};

pub(super) const S: u64 = 1_000_000;

pub(super) fn window(target: &str, from_s: u64, to_s: u64) -> FaultWindow {
    FaultWindow {
        target: target.to_owned(),
        started_us: from_s * S,
        killed_us: Some(from_s * S + 1),
        restarting_us: None,
        up_us: Some(to_s * S - 1),
        ready_us: None,
        ended_us: to_s * S,
        failure: None,
        concurrent: false,
    }
}

/// A scale event's window, alongside the backend faults.
pub(super) fn scale(target: &str, from_s: u64, to_s: u64) -> FaultWindow {
    FaultWindow {
        concurrent: true,
        ..window(target, from_s, to_s)
    }
}

/// A stream and what the room's history holds, built message by message.
#[derive(Default)]
pub(super) struct Script {
    pub(super) stream: StreamHistory,
    pub(super) stored: BTreeMap<u64, Vec<String>>,
    next: u64,
}

impl Script {
    /// Emits a message at `at_s` and returns its sequence number.
    pub(super) fn send(&mut self, at_s: u64) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.stream.emitted(seq, at_s * S, at_s * S, 0);
        seq
    }
    pub(super) fn accepted(&mut self, at_s: u64) -> u64 {
        let seq = self.send(at_s);
        self.stream.accepted(seq, &format!("id{seq}"));
        seq
    }
    pub(super) fn store(&mut self, seq: u64) {
        self.stored.entry(seq).or_default().push(format!("id{seq}"));
    }
    pub(super) fn deliver(&mut self, seq: u64, at_s: u64, path: Path) {
        self.store(seq);
        self.stream
            .received(seq, &format!("id{seq}"), at_s * S, path);
    }
    pub(super) fn check(self, windows: &[FaultWindow]) -> Verdict {
        check(&Observed {
            streams: &[self.stream],
            stored: &[Some(self.stored)],
            windows,
            start_us: 0,
        })
    }
}

pub(super) fn row<'a>(verdict: &'a Verdict, fault: &str) -> &'a Row {
    verdict
        .rows
        .iter()
        .chain(&verdict.scale_rows)
        .find(|r| r.fault == fault)
        .unwrap()
}
