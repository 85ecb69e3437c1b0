//! The checker: reads the history after the run and says, per fault, what
//! became of every message sent.
//!
//! Each message sent ends in exactly one of four states:
//!
//! - **delivered**: the partner received it, live or through history after
//!   a reconnect (whatever the ack said);
//! - **refused**: not delivered, and the client was told so: an ack
//!   `error` (by name), or `chat_500` after an `accepted` ack;
//! - **lost**: not delivered, though the service took it: the ack said
//!   `accepted` (and no error followed), or no ack came but the room's
//!   history holds it. "stored" counts the lost messages that are in the
//!   room's history all the same: taken, never shown to the partner;
//! - **silent**: no ack, no error, not delivered, not in the history: the
//!   client was never told anything about it.
//!
//! A message belongs to the fault whose window (kill to end of settling)
//! holds the moment it was emitted, or to "no fault".
//!
//! [`classify`] says what became of each message, a [`Row`] adds them up
//! per fault; this file reads the history and gives the verdict.

mod row;
#[cfg(test)]
mod script;
mod status;

use std::collections::BTreeMap;

use serde::Serialize;

pub use self::{
    row::{Delay, Row},
    status::{classify, Status},
};
use crate::history::{FaultWindow, Outcome, StreamHistory};

/// The name of the row of messages sent outside every fault window.
pub const NO_FAULT: &str = "no fault";
/// Lost and silent messages listed one by one in the verdict, at most.
const LISTED: usize = 200;

/// What every room's history holds at the end, per author: sequence number
/// → message ids. `None` for the authors of a room that could not be read.
pub type Stored = Vec<Option<BTreeMap<u64, Vec<String>>>>;

/// What the run left behind, for the checker.
pub struct Observed<'a> {
    /// Each author's history, by chatter index.
    pub streams: &'a [StreamHistory],
    /// Per author: sequence number → the message ids its room's history
    /// holds for it at the end; `None` where the room could not be read.
    pub stored: &'a [Option<BTreeMap<u64, Vec<String>>>],
    /// The faults, in the order they happened.
    pub windows: &'a [FaultWindow],
    /// When sending started (process clock, µs), for the windows' offsets.
    pub start_us: u64,
}

/// A lost or silent message, for the post-mortem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// `lost` or `silent`.
    pub status: &'static str,
    /// The fault it belongs to.
    pub fault: String,
    /// Its author (chatter index).
    pub author: usize,
    /// Its sequence number (`clientMessageId` is `<run tag>-<author>-<seq>`).
    pub seq: u64,
    /// First emitted, seconds since sending started.
    pub emitted_s: f64,
    /// The instance its socket was last on.
    pub instance: usize,
    /// Emits.
    pub attempts: u32,
    /// How the send ended.
    pub outcome: Outcome,
    /// What the room's history holds for it.
    pub stored: Vec<String>,
}

/// The verdict: a row per fault, one for "no fault", the total.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// One row per backend fault, in schedule order, then [`NO_FAULT`].
    pub rows: Vec<Row>,
    /// One row per kind of scale event, alongside the faults: their
    /// messages are in `rows` too, and in the total once.
    pub scale_rows: Vec<Row>,
    /// Everything.
    pub total: Row,
    /// No message lost, none silent, every fault carried out.
    pub ok: bool,
    /// Why not, in words.
    pub problems: Vec<String>,
    /// Worth knowing, but not a failure (refused messages delivered anyway,
    /// duplicates).
    pub notes: Vec<String>,
    /// The first lost and silent messages, one by one.
    pub failures: Vec<Failure>,
}

/// Reads the history and gives the verdict.
///
/// A message counts in the row of the backend fault whose window holds its
/// emission, else in [`NO_FAULT`]; the total adds up those rows, so each
/// message once. Scale events ran alongside the backend faults: each kind
/// of them (`join extra-3`, `crash extra-3`, ...) has a row of its own
/// that counts the messages emitted in any of its windows again, outside
/// the total.
pub fn check(observed: &Observed<'_>) -> Verdict {
    let (scale, faults): (Vec<&FaultWindow>, Vec<&FaultWindow>) =
        observed.windows.iter().partition(|w| w.concurrent);
    let mut rows: Vec<Row> = faults
        .iter()
        .map(|window| Row {
            from_s: Some(seconds(window.started_us, observed.start_us)),
            to_s: Some(seconds(window.ended_us, observed.start_us)),
            ..Row::named(&window.target)
        })
        .collect();
    rows.push(Row::named(NO_FAULT));
    let no_fault = rows.len() - 1;
    let mut scale_rows: Vec<Row> = Vec::new();
    for window in &scale {
        if !scale_rows.iter().any(|row| row.fault == window.target) {
            scale_rows.push(Row::named(&window.target));
        }
    }
    let mut failures = Vec::new();
    for (author, stream) in observed.streams.iter().enumerate() {
        let stored_room = observed.stored.get(author).and_then(Option::as_ref);
        for send in stream.sends() {
            let receptions = stream.receptions(send.seq);
            let stored = stored_room.map(|room| room.get(&send.seq).map_or(&[][..], Vec::as_slice));
            let Some(status) = classify(send, receptions, stored) else {
                continue;
            };
            let row = faults
                .iter()
                .position(|window| window.contains(send.emitted_us))
                .unwrap_or(no_fault);
            let stored = stored.unwrap_or_default();
            rows[row].count(send, receptions, stored, &status);
            for scale_row in &mut scale_rows {
                let during = scale
                    .iter()
                    .any(|w| w.target == scale_row.fault && w.contains(send.emitted_us));
                if during {
                    scale_row.count(send, receptions, stored, &status);
                }
            }
            let failed = match status {
                Status::Lost { .. } => Some("lost"),
                Status::Silent => Some("silent"),
                _ => None,
            };
            if let Some(failed) = failed.filter(|_| failures.len() < LISTED) {
                failures.push(Failure {
                    status: failed,
                    fault: rows[row].fault.clone(),
                    author,
                    seq: send.seq,
                    emitted_s: seconds(send.emitted_us, observed.start_us),
                    instance: send.instance,
                    attempts: send.attempts,
                    outcome: send.outcome.clone(),
                    stored: stored.to_vec(),
                });
            }
        }
    }
    let mut total = Row::named("total");
    for row in &mut rows {
        total.add(row);
        row.finish();
    }
    total.finish();
    for row in &mut scale_rows {
        row.finish();
    }

    let mut problems = Vec::new();
    if total.lost > 0 {
        problems.push(format!(
            "{} messages LOST: taken by the service, never delivered ({} of them in the room's history)",
            total.lost, total.lost_stored
        ));
    }
    if total.silent > 0 {
        problems.push(format!(
            "{} messages SILENT: no ack, no error, never delivered, not stored",
            total.silent
        ));
    }
    if total.double_outcomes > 0 {
        problems.push(format!(
            "{} messages with TWO OUTCOMES: chat_500 after accepted, yet delivered or stored",
            total.double_outcomes
        ));
    }
    for window in observed.windows {
        if let Some(failure) = &window.failure {
            problems.push(format!("fault {}: {failure}", window.target));
        }
    }
    if total.sent == 0 {
        problems.push("no message was sent".to_owned());
    }
    let mut notes = Vec::new();
    if total.refused_but_delivered > 0 {
        notes.push(format!(
            "{} messages were delivered although their ack said error",
            total.refused_but_delivered
        ));
    }
    if total.duplicates > 0 {
        notes.push(format!(
            "{} duplicate deliveries or stored copies",
            total.duplicates
        ));
    }
    Verdict {
        ok: problems.is_empty(),
        rows,
        scale_rows,
        total,
        problems,
        notes,
        failures,
    }
}

fn seconds(at_us: u64, start_us: u64) -> f64 {
    (at_us as f64 - start_us as f64) / 1e6
}

#[cfg(test)]
mod tests {
    use super::{
        script::{row, scale, window, Script},
        *,
    };
    use crate::history::{Path, UnknownCause};

    #[test]
    fn each_message_belongs_to_the_window_it_was_emitted_in() {
        let mut script = Script::default();
        for at_s in [5, 10, 19, 20, 35, 50] {
            let seq = script.accepted(at_s);
            script.deliver(seq, at_s + 1, Path::Live);
        }
        let verdict = script.check(&[window("redis", 10, 20), window("kafka", 30, 40)]);
        assert_eq!(
            row(&verdict, "redis").sent,
            2,
            "10 and 19; 20 is after the window"
        );
        assert_eq!(row(&verdict, "kafka").sent, 1);
        assert_eq!(row(&verdict, NO_FAULT).sent, 3);
        assert_eq!(verdict.total.sent, 6);
        assert_eq!(row(&verdict, "redis").from_s, Some(10.0));
        assert!(verdict.ok, "{:?}", verdict.problems);
    }

    #[test]
    fn a_scale_event_counts_its_messages_again_outside_the_total() {
        let mut script = Script::default();
        for at_s in [5, 12, 15, 25, 32] {
            let seq = script.accepted(at_s);
            script.deliver(seq, at_s + 1, Path::Live);
        }
        let verdict = script.check(&[
            window("kafka", 10, 20),
            scale("join extra-3", 14, 26),
            scale("join extra-3", 30, 40),
            scale("crash extra-3", 0, 6),
        ]);
        assert_eq!(row(&verdict, "kafka").sent, 2, "12 and 15");
        assert_eq!(row(&verdict, NO_FAULT).sent, 3, "5, 25 and 32");
        assert_eq!(row(&verdict, "join extra-3").sent, 3, "15, 25 and 32");
        assert_eq!(row(&verdict, "crash extra-3").sent, 1, "5");
        assert_eq!(verdict.total.sent, 5, "each message once");
        assert_eq!(
            verdict.scale_rows.len(),
            2,
            "one row per kind of scale event"
        );
        assert!(verdict.ok, "{:?}", verdict.problems);
    }

    #[test]
    fn a_parked_message_that_was_delivered_has_two_outcomes_and_fails_the_run() {
        let mut script = Script::default();
        let seq = script.accepted(12);
        assert!(script.stream.later_error(&format!("id{seq}"), "chat_500"));
        script.deliver(seq, 13, Path::Live);
        let parked_but_stored = script.accepted(14);
        script
            .stream
            .later_error(&format!("id{parked_but_stored}"), "chat_500");
        script.store(parked_but_stored);
        let parked = script.accepted(15);
        script
            .stream
            .later_error(&format!("id{parked}"), "chat_500");
        let verdict = script.check(&[window("kafka", 10, 20)]);
        assert_eq!(row(&verdict, "kafka").double_outcomes, 2);
        assert!(!verdict.ok);
        assert!(
            verdict.problems.iter().any(|p| p.contains("TWO OUTCOMES")),
            "{:?}",
            verdict.problems
        );
    }

    #[test]
    fn lost_and_silent_messages_are_listed_for_the_post_mortem() {
        let mut script = Script::default();
        script.accepted(12);
        let silent = script.send(13);
        script.stream.unknown(silent, UnknownCause::AckTimeout);
        let verdict = script.check(&[window("redis", 10, 20)]);
        let listed: Vec<_> = verdict.failures.iter().map(|f| (f.status, f.seq)).collect();
        assert_eq!(listed, vec![("lost", 0), ("silent", 1)]);
        assert_eq!(verdict.failures[0].fault, "redis");
    }

    #[test]
    fn a_fault_that_could_not_be_carried_out_fails_the_run() {
        let mut script = Script::default();
        let seq = script.accepted(1);
        script.deliver(seq, 2, Path::Live);
        let mut broken = window("cassandra", 10, 20);
        broken.failure = Some("start: no answer".to_owned());
        let verdict = script.check(&[broken]);
        assert!(!verdict.ok);
    }
}
