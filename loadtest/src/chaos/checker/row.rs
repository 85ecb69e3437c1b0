//! The ledger of one fault (or of "no fault", or of the whole run): the
//! messages sent in its window counted by how their send ended and what
//! became of them, and the delay to their first delivery.

use std::collections::BTreeMap;

use serde::Serialize;

use super::status::{double_outcome, duplicates, Status};
use crate::history::{Outcome, Path, Reception, Send};

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
    /// The fault's target, [`super::NO_FAULT`] or `total`.
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
    /// Two outcomes: `chat_500` after an `accepted` ack, and yet delivered
    /// or in the room's history.
    pub double_outcomes: u64,
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
    pub(super) delays_us: Vec<u64>,
}

impl Row {
    pub(super) fn named(fault: &str) -> Self {
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

    pub(super) fn count(
        &mut self,
        send: &Send,
        receptions: &[Reception],
        stored: &[String],
        status: &Status,
    ) {
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
        self.double_outcomes += u64::from(double_outcome(send, status, stored));
    }

    pub(super) fn add(&mut self, other: &Row) {
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
        self.double_outcomes += other.double_outcomes;
        self.lost += other.lost;
        self.lost_stored += other.lost_stored;
        self.silent += other.silent;
        self.duplicates += other.duplicates;
        self.delays_us.extend_from_slice(&other.delays_us);
    }

    pub(super) fn finish(&mut self) {
        self.delays_us.sort_unstable();
        self.delay = delay(&self.delays_us);
    }
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

#[cfg(test)]
mod tests {
    use crate::{
        chaos::checker::script::{row, window, Script, S},
        history::{Path, UnknownCause},
    };

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
}
