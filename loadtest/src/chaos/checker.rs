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

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    history::{Outcome, Path, Reception, Send, StreamHistory},
    nemesis::FaultWindow,
};

/// The name of the row of messages sent outside every fault window.
pub const NO_FAULT: &str = "no fault";
/// Lost and silent messages listed one by one in the verdict, at most.
const LISTED: usize = 200;

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

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The partner received it, first by this path.
    Delivered(Path),
    /// Not delivered; the client got this error.
    Refused(String),
    /// Not delivered though taken; `stored` when the room's history holds it.
    Lost {
        /// In the room's history at the end.
        stored: bool,
    },
    /// Not delivered, not stored, and the client was never told.
    Silent,
}

/// Delay from the scheduled send to the first delivery, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Delay {
    /// Messages delivered.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The ledger of one fault (or of "no fault", or of the whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// The fault's target, [`NO_FAULT`] or `total`.
    pub fault: String,
    /// The window, in seconds since sending started.
    pub from_s: Option<f64>,
    /// The end of the window.
    pub to_s: Option<f64>,
    /// Messages emitted.
    pub sent: u64,
    /// Acks `accepted`.
    pub accepted: u64,
    /// Acks `error`, by name.
    pub ack_errors: BTreeMap<String, u64>,
    /// Sent again after their socket died before the answer (the outcome
    /// counted is the last one).
    pub resent: u64,
    /// No ack (timed out, or the socket went away first).
    pub unknown: u64,
    /// Of those, found delivered or in the history: they were taken.
    pub unknown_resolved: u64,
    /// Delivered live.
    pub delivered_live: u64,
    /// Delivered through history after a reconnect.
    pub delivered_history: u64,
    /// Refused and not delivered, by error name (`chat_500` after an accept included).
    pub refused: BTreeMap<String, u64>,
    /// Delivered although the ack said `error`.
    pub refused_but_delivered: u64,
    /// Taken and never delivered.
    pub lost: u64,
    /// Of those, in the room's history at the end.
    pub lost_stored: u64,
    /// Never answered, never delivered, not stored.
    pub silent: u64,
    /// Extra copies: a second live `reply` of a message, or a second stored
    /// message for one `clientMessageId`.
    pub duplicates: u64,
    /// Scheduled send → first delivery.
    pub delay: Delay,
    /// Delays of the delivered messages (µs), for the percentiles.
    #[serde(skip)]
    delays_us: Vec<u64>,
}

impl Row {
    fn named(fault: &str) -> Self {
        Self {
            fault: fault.to_owned(),
            ..Self::default()
        }
    }

    /// Messages delivered, either way.
    pub fn delivered(&self) -> u64 {
        self.delivered_live + self.delivered_history
    }

    /// Messages refused and not delivered.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn count(&mut self, send: &Send, receptions: &[Reception], stored: &[String], status: &Status) {
        self.sent += 1;
        self.resent += u64::from(send.attempts > 1);
        match &send.outcome {
            Outcome::Accepted { .. } => self.accepted += 1,
            Outcome::Refused { name } => *self.ack_errors.entry(name.clone()).or_default() += 1,
            Outcome::Unknown { .. } | Outcome::Pending | Outcome::NotSent => {
                self.unknown += 1;
                if *status != Status::Silent {
                    self.unknown_resolved += 1;
                }
            }
        }
        match status {
            Status::Delivered(path) => {
                match path {
                    Path::Live => self.delivered_live += 1,
                    Path::History => self.delivered_history += 1,
                }
                if matches!(send.outcome, Outcome::Refused { .. }) {
                    self.refused_but_delivered += 1;
                }
                if let Some(first) = receptions.first() {
                    self.delays_us
                        .push(first.at_us.saturating_sub(send.scheduled_us));
                }
            }
            Status::Refused(name) => *self.refused.entry(name.clone()).or_default() += 1,
            Status::Lost { stored } => {
                self.lost += 1;
                self.lost_stored += u64::from(*stored);
            }
            Status::Silent => self.silent += 1,
        }
        self.duplicates += duplicates(receptions, stored);
    }

    fn add(&mut self, other: &Row) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.resent += other.resent;
        add_counts(&mut self.ack_errors, &other.ack_errors);
        self.unknown += other.unknown;
        self.unknown_resolved += other.unknown_resolved;
        self.delivered_live += other.delivered_live;
        self.delivered_history += other.delivered_history;
        add_counts(&mut self.refused, &other.refused);
        self.refused_but_delivered += other.refused_but_delivered;
        self.lost += other.lost;
        self.lost_stored += other.lost_stored;
        self.silent += other.silent;
        self.duplicates += other.duplicates;
        self.delays_us.extend_from_slice(&other.delays_us);
    }

    fn finish(&mut self) {
        self.delays_us.sort_unstable();
        self.delay = delay(&self.delays_us);
    }
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
    /// One row per fault, in schedule order, then [`NO_FAULT`].
    pub rows: Vec<Row>,
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

/// What became of one message; `None` for a message that never left (the
/// client library refused to emit it and it was not sent again).
pub fn classify(
    send: &Send,
    receptions: &[Reception],
    stored: Option<&[String]>,
) -> Option<Status> {
    if let Some(first) = receptions.first() {
        return Some(Status::Delivered(first.path));
    }
    let in_history = |id: &str| stored.is_some_and(|ids| ids.iter().any(|s| s == id));
    let status = match &send.outcome {
        Outcome::NotSent => return None,
        Outcome::Accepted { message_id } => match &send.later_error {
            Some(name) => Status::Refused(name.clone()),
            None => Status::Lost {
                stored: in_history(message_id),
            },
        },
        Outcome::Refused { name } => Status::Refused(name.clone()),
        Outcome::Unknown { .. } | Outcome::Pending => {
            if stored.is_some_and(|ids| !ids.is_empty()) {
                Status::Lost { stored: true }
            } else {
                Status::Silent
            }
        }
    };
    Some(status)
}

/// Reads the history and gives the verdict.
pub fn check(observed: &Observed<'_>) -> Verdict {
    let mut rows: Vec<Row> = observed
        .windows
        .iter()
        .map(|window| Row {
            from_s: Some(seconds(window.started_us, observed.start_us)),
            to_s: Some(seconds(window.ended_us, observed.start_us)),
            ..Row::named(&window.target)
        })
        .collect();
    rows.push(Row::named(NO_FAULT));
    let no_fault = rows.len() - 1;
    let mut failures = Vec::new();
    for (author, stream) in observed.streams.iter().enumerate() {
        let stored_room = observed.stored.get(author).and_then(Option::as_ref);
        for send in stream.sends() {
            let receptions = stream.receptions(send.seq);
            let stored = stored_room.map(|room| room.get(&send.seq).map_or(&[][..], Vec::as_slice));
            let Some(status) = classify(send, receptions, stored) else {
                continue;
            };
            let row = observed
                .windows
                .iter()
                .position(|window| window.contains(send.emitted_us))
                .unwrap_or(no_fault);
            let stored = stored.unwrap_or_default();
            rows[row].count(send, receptions, stored, &status);
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
        total,
        problems,
        notes,
        failures,
    }
}

/// Extra copies of one message: live `reply` events beyond the first of an
/// id, and ids beyond the first for one `clientMessageId`.
fn duplicates(receptions: &[Reception], stored: &[String]) -> u64 {
    let mut ids: Vec<&str> = receptions
        .iter()
        .map(|r| r.message_id.as_str())
        .chain(stored.iter().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let extra_ids = ids.len().saturating_sub(1) as u64;
    let extra_live: u64 = ids
        .iter()
        .map(|id| {
            let live = receptions
                .iter()
                .filter(|r| r.path == Path::Live && r.message_id == *id)
                .count() as u64;
            live.saturating_sub(1)
        })
        .sum();
    extra_ids + extra_live
}

fn delay(sorted_us: &[u64]) -> Delay {
    let Some(&max) = sorted_us.last() else {
        return Delay::default();
    };
    let rank = |q: f64| {
        let index = ((q * sorted_us.len() as f64).ceil() as usize).saturating_sub(1);
        sorted_us[index.min(sorted_us.len() - 1)] as f64 / 1000.0
    };
    Delay {
        count: sorted_us.len() as u64,
        p50_ms: rank(0.5),
        p99_ms: rank(0.99),
        max_ms: max as f64 / 1000.0,
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (name, count) in from {
        *into.entry(name.clone()).or_default() += count;
    }
}

fn seconds(at_us: u64, start_us: u64) -> f64 {
    (at_us as f64 - start_us as f64) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::UnknownCause;

    const S: u64 = 1_000_000;

    fn window(target: &str, from_s: u64, to_s: u64) -> FaultWindow {
        FaultWindow {
            target: target.to_owned(),
            started_us: from_s * S,
            killed_us: Some(from_s * S + 1),
            restarting_us: None,
            up_us: Some(to_s * S - 1),
            ready_us: None,
            ended_us: to_s * S,
            failure: None,
        }
    }

    /// A stream and what the room's history holds, built message by message.
    #[derive(Default)]
    struct Script {
        stream: StreamHistory,
        stored: BTreeMap<u64, Vec<String>>,
        next: u64,
    }

    impl Script {
        /// Emits a message at `at_s` and returns its sequence number.
        fn send(&mut self, at_s: u64) -> u64 {
            let seq = self.next;
            self.next += 1;
            self.stream.emitted(seq, at_s * S, at_s * S, 0);
            seq
        }
        fn accepted(&mut self, at_s: u64) -> u64 {
            let seq = self.send(at_s);
            self.stream.accepted(seq, &format!("id{seq}"));
            seq
        }
        fn store(&mut self, seq: u64) {
            self.stored.entry(seq).or_default().push(format!("id{seq}"));
        }
        fn deliver(&mut self, seq: u64, at_s: u64, path: Path) {
            self.store(seq);
            self.stream
                .received(seq, &format!("id{seq}"), at_s * S, path);
        }
        fn check(self, windows: &[FaultWindow]) -> Verdict {
            check(&Observed {
                streams: &[self.stream],
                stored: &[Some(self.stored)],
                windows,
                start_us: 0,
            })
        }
    }

    fn row<'a>(verdict: &'a Verdict, fault: &str) -> &'a Row {
        verdict.rows.iter().find(|r| r.fault == fault).unwrap()
    }

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
    fn an_accepted_message_never_delivered_is_lost_even_when_stored() {
        let mut script = Script::default();
        let stored = script.accepted(12);
        script.store(stored);
        script.accepted(13);
        let verdict = script.check(&[window("redis", 10, 20)]);
        let redis = row(&verdict, "redis");
        assert_eq!((redis.lost, redis.lost_stored, redis.silent), (2, 1, 0));
        assert!(!verdict.ok);
        assert!(
            verdict.problems[0].contains("LOST"),
            "{:?}",
            verdict.problems
        );
    }

    #[test]
    fn an_unanswered_message_is_resolved_by_delivery_or_history_and_else_silent() {
        let mut script = Script::default();
        let delivered = script.send(11);
        script.stream.unknown(delivered, UnknownCause::SocketLost);
        script.deliver(delivered, 15, Path::History);
        let stored_only = script.send(12);
        script.stream.unknown(stored_only, UnknownCause::AckTimeout);
        script.store(stored_only);
        let nowhere = script.send(13);
        script.stream.unknown(nowhere, UnknownCause::AckTimeout);
        let verdict = script.check(&[window("instance-2", 10, 20)]);
        let fault = row(&verdict, "instance-2");
        assert_eq!(fault.unknown, 3);
        assert_eq!(fault.unknown_resolved, 2);
        assert_eq!(fault.delivered_history, 1);
        assert_eq!((fault.lost, fault.lost_stored), (1, 1));
        assert_eq!(fault.silent, 1);
        assert!(!verdict.ok);
        assert!(verdict.problems.iter().any(|p| p.contains("SILENT")));
    }

    #[test]
    fn errors_are_refusals_not_losses_and_a_chat_500_after_accept_counts_as_one() {
        let mut script = Script::default();
        let refused = script.send(11);
        script.stream.refused(refused, "chat_503");
        let parked = script.accepted(12);
        script
            .stream
            .later_error(&format!("id{parked}"), "chat_500");
        let verdict = script.check(&[window("kafka", 10, 20)]);
        let kafka = row(&verdict, "kafka");
        assert_eq!(kafka.ack_errors.get("chat_503"), Some(&1));
        assert_eq!(kafka.refused.get("chat_503"), Some(&1));
        assert_eq!(kafka.refused.get("chat_500"), Some(&1));
        assert_eq!((kafka.lost, kafka.silent), (0, 0));
        assert!(verdict.ok, "{:?}", verdict.problems);
    }

    #[test]
    fn a_refused_message_delivered_anyway_is_delivered_and_noted() {
        let mut script = Script::default();
        let seq = script.send(11);
        script.stream.refused(seq, "chat_503");
        script.deliver(seq, 16, Path::Live);
        let verdict = script.check(&[window("kafka", 10, 20)]);
        let kafka = row(&verdict, "kafka");
        assert_eq!((kafka.delivered_live, kafka.refused_total()), (1, 0));
        assert_eq!(kafka.refused_but_delivered, 1);
        assert!(verdict.ok);
        assert_eq!(verdict.notes.len(), 1);
    }

    #[test]
    fn every_message_ends_in_exactly_one_state() {
        let mut script = Script::default();
        let a = script.accepted(1);
        script.deliver(a, 2, Path::Live);
        script.accepted(3);
        let c = script.send(4);
        script.stream.refused(c, "rate_limited");
        let d = script.send(5);
        script.stream.unknown(d, UnknownCause::AckTimeout);
        let verdict = script.check(&[]);
        let t = &verdict.total;
        assert_eq!(t.sent, 4);
        assert_eq!(
            t.delivered() + t.refused_total() + t.lost + t.silent,
            t.sent
        );
        assert_eq!(
            t.accepted + t.ack_errors.values().sum::<u64>() + t.unknown,
            t.sent
        );
    }

    #[test]
    fn a_message_resent_after_its_socket_died_counts_once_with_its_last_answer() {
        let mut script = Script::default();
        let seq = script.send(11);
        script.stream.unknown(seq, UnknownCause::SocketLost);
        script.stream.emitted(seq, 11 * S, 14 * S, 1);
        script.stream.accepted(seq, &format!("id{seq}"));
        script.deliver(seq, 15, Path::Live);
        let verdict = script.check(&[window("instance-2", 10, 20)]);
        let fault = row(&verdict, "instance-2");
        assert_eq!(
            (fault.sent, fault.resent, fault.accepted, fault.unknown),
            (1, 1, 1, 0)
        );
        assert_eq!(fault.delivered_live, 1);
        assert!(verdict.ok);
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
    fn a_message_the_client_could_not_emit_and_never_resent_is_not_counted() {
        let mut script = Script::default();
        let seq = script.send(1);
        script.stream.not_sent(seq);
        let verdict = script.check(&[]);
        assert_eq!(verdict.total.sent, 0);
        assert!(!verdict.ok, "nothing sent is a problem of its own");
    }

    #[test]
    fn a_second_live_copy_or_a_second_stored_message_is_a_duplicate() {
        let mut script = Script::default();
        let a = script.accepted(1);
        script.deliver(a, 2, Path::Live);
        script
            .stream
            .received(a, &format!("id{a}"), 3 * S, Path::Live);
        let b = script.accepted(4);
        script.deliver(b, 5, Path::Live);
        script.stored.entry(b).or_default().push("other".to_owned());
        let verdict = script.check(&[]);
        assert_eq!(verdict.total.duplicates, 2);
        assert_eq!(verdict.total.delivered(), 2);
        assert!(verdict.ok);
    }

    #[test]
    fn delays_run_from_the_scheduled_send_to_the_first_delivery() {
        let mut script = Script::default();
        for (at_s, after_s) in [(1, 1), (2, 3), (3, 10)] {
            let seq = script.accepted(at_s);
            script.deliver(seq, at_s + after_s, Path::Live);
        }
        let verdict = script.check(&[]);
        let delay = verdict.total.delay;
        assert_eq!(delay.count, 3);
        assert_eq!(delay.p50_ms, 3_000.0);
        assert_eq!(delay.max_ms, 10_000.0);
    }

    #[test]
    fn an_unanswered_message_in_a_room_that_could_not_be_read_counts_as_silent() {
        let mut script = Script::default();
        let seq = script.send(1);
        script.stream.unknown(seq, UnknownCause::AckTimeout);
        let verdict = check(&Observed {
            streams: &[script.stream],
            stored: &[None],
            windows: &[],
            start_us: 0,
        });
        assert_eq!(verdict.total.silent, 1);
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
