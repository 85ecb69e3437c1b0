//! The verdict on a [`History`]: read afterwards, apart from the clients
//! that recorded it and the nemesis that broke things.
//!
//! For each lane (one sender, one room) and each watcher of it:
//! - an `accepted` message must be seen exactly once, with its id (else
//!   lost or duplicated);
//! - an indeterminate one (`chat_503`, no ack, connection lost) may be
//!   seen, at most once;
//! - a definitely refused one (any other error) must not be seen;
//! - what is seen comes in the lane's sending order;
//! - nothing is seen that the lane never sent.
//!
//! And per client: no message ends in silence (no ack on an open
//! connection). A message left unanswered after its sender's instance was
//! killed has an unknown outcome instead, as one whose connection broke.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    time::Duration,
};

use crate::history::{History, Op, Outcome};

/// The verdict: counts, and each anomaly described in a line.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Messages sent.
    pub sent: usize,
    /// Acknowledged `accepted`.
    pub accepted: usize,
    /// Error acks by name.
    pub refused: BTreeMap<String, usize>,
    /// Indeterminate messages that were delivered anyway (allowed).
    pub indeterminate_delivered: usize,
    /// Longest time from sending an accepted message to its arrival at
    /// the last watcher that must see it.
    pub max_delivery_delay: Duration,
    /// Longest time a client waited for an ack it got.
    pub max_ack_wait: Duration,
    /// Per accepted message and watcher that must see it: when it was
    /// sent, and how long it took to arrive.
    pub delivery_delays: Vec<(Duration, Duration)>,
    /// Messages that ended without any ack on an open connection.
    pub silent: Vec<String>,
    /// Messages whose sender's connection broke before the outcome.
    pub connection_lost: Vec<String>,
    /// Accepted messages a watcher never saw.
    pub lost: Vec<String>,
    /// Messages a watcher saw more than once.
    pub duplicated: Vec<String>,
    /// Messages a watcher saw before one sent earlier.
    pub reordered: Vec<String>,
    /// Deliveries of refused or unknown messages, or under another id.
    pub unexpected: Vec<String>,
    /// Watchers whose socket broke.
    pub broken_watchers: Vec<String>,
}

impl Verdict {
    /// Asserts nothing was lost, duplicated, reordered, unexpected or
    /// silent, that no watcher's socket broke and, unless
    /// `connection_loss_allowed`, that no sender's connection broke.
    #[track_caller]
    pub fn assert_clean(&self, connection_loss_allowed: bool) {
        let mut problems: Vec<(&str, &[String])> = vec![
            ("silent", &self.silent),
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("reordered", &self.reordered),
            ("unexpected", &self.unexpected),
            ("broken watchers", &self.broken_watchers),
        ];
        if !connection_loss_allowed {
            problems.push(("connection lost", &self.connection_lost));
        }
        let found: Vec<String> = problems
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(name, list)| {
                let shown: Vec<&str> = list.iter().take(10).map(String::as_str).collect();
                format!("{name} ({}): {}", list.len(), shown.join("; "))
            })
            .collect();
        assert!(found.is_empty(), "{self}\n{}", found.join("\n"));
    }
}

impl Verdict {
    /// The `quantile` (0 to 1) of the delivery delays of the messages sent
    /// between `from` and `to`; zero when none was.
    pub fn delivery_delay_quantile(&self, from: Duration, to: Duration, quantile: f64) -> Duration {
        let mut delays: Vec<Duration> = self
            .delivery_delays
            .iter()
            .filter(|(sent_at, _)| (from..=to).contains(sent_at))
            .map(|(_, delay)| *delay)
            .collect();
        if delays.is_empty() {
            return Duration::ZERO;
        }
        delays.sort_unstable();
        let rank = ((delays.len() as f64 * quantile).ceil() as usize).clamp(1, delays.len());
        delays[rank - 1]
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, accepted {}, refused {:?}, indeterminate delivered {}, \
             silent {}, connection lost {}, lost {}, duplicated {}, reordered {}, \
             unexpected {}, broken watchers {}; max ack wait {:?}, max delivery delay {:?}",
            self.sent,
            self.accepted,
            self.refused,
            self.indeterminate_delivered,
            self.silent.len(),
            self.connection_lost.len(),
            self.lost.len(),
            self.duplicated.len(),
            self.reordered.len(),
            self.unexpected.len(),
            self.broken_watchers.len(),
            self.max_ack_wait,
            self.max_delivery_delay,
        )
    }
}

/// Reads the history and returns the verdict.
pub fn check(history: &History) -> Verdict {
    let mut verdict = Verdict {
        sent: history.ops.len(),
        ..Verdict::default()
    };
    for op in &history.ops {
        let name = describe(op);
        match &op.outcome {
            Outcome::Accepted(_) => {
                verdict.accepted += 1;
                verdict.max_ack_wait = verdict.max_ack_wait.max(op.ended_at - op.sent_at);
            }
            Outcome::Refused(error) => {
                *verdict.refused.entry(error.clone()).or_default() += 1;
                verdict.max_ack_wait = verdict.max_ack_wait.max(op.ended_at - op.sent_at);
            }
            Outcome::NoAck if crashed_before(history, op) => verdict
                .connection_lost
                .push(format!("{name}: its instance was killed")),
            Outcome::NoAck => verdict.silent.push(name),
            Outcome::ConnectionLost(why) => verdict.connection_lost.push(format!("{name}: {why}")),
        }
    }
    let by_client_id: HashMap<(usize, &str), &Op> = history
        .ops
        .iter()
        .map(|op| ((op.lane, op.client_message_id.as_str()), op))
        .collect();
    let mut indeterminate_seen: HashSet<(usize, &str)> = HashSet::new();
    for watch in &history.watches {
        if let Some(error) = &watch.transport_error {
            verdict
                .broken_watchers
                .push(format!("{}: {error}", watch.label));
        }
        let mut times_seen: HashMap<&str, usize> = HashMap::new();
        let mut last_seq: Option<usize> = None;
        for delivery in &watch.deliveries {
            let op = delivery
                .client_message_id
                .as_deref()
                .and_then(|client_id| by_client_id.get(&(watch.lane, client_id)));
            let Some(op) = op else {
                verdict.unexpected.push(format!(
                    "{} got message {} (clientMessageId {:?}) that its lane never sent",
                    watch.label, delivery.id, delivery.client_message_id
                ));
                continue;
            };
            let seen = times_seen.entry(op.client_message_id.as_str()).or_default();
            *seen += 1;
            if *seen == 2 {
                verdict
                    .duplicated
                    .push(format!("{} to {}", describe(op), watch.label));
            }
            match &op.outcome {
                Outcome::Accepted(id) if *id != delivery.id => verdict.unexpected.push(format!(
                    "{} reached {} as message {}",
                    describe(op),
                    watch.label,
                    delivery.id
                )),
                Outcome::Refused(error) if !op.outcome.is_indeterminate() => {
                    verdict.unexpected.push(format!(
                        "{} was refused {error} yet reached {}",
                        describe(op),
                        watch.label
                    ))
                }
                outcome if outcome.is_indeterminate() && *seen == 1 => {
                    indeterminate_seen.insert((op.lane, op.client_message_id.as_str()));
                }
                _ => {}
            }
            if last_seq.is_some_and(|last| op.seq < last) {
                verdict.reordered.push(format!(
                    "{} reached {} after seq {}",
                    describe(op),
                    watch.label,
                    last_seq.unwrap_or_default()
                ));
            }
            last_seq = Some(last_seq.map_or(op.seq, |last| last.max(op.seq)));
        }
        if !watch.must_see_all {
            continue;
        }
        for op in history.ops.iter().filter(|op| op.lane == watch.lane) {
            if !matches!(op.outcome, Outcome::Accepted(_)) {
                continue;
            }
            match watch.deliveries.iter().find(|delivery| {
                delivery.client_message_id.as_deref() == Some(op.client_message_id.as_str())
            }) {
                Some(delivery) if delivery.at > Duration::ZERO => {
                    let delay = delivery.at.saturating_sub(op.sent_at);
                    verdict.max_delivery_delay = verdict.max_delivery_delay.max(delay);
                    verdict.delivery_delays.push((op.sent_at, delay));
                }
                // Found in the stored history, read afterwards: no time.
                Some(_) => {}
                None => {
                    verdict
                        .lost
                        .push(format!("{} never reached {}", describe(op), watch.label))
                }
            }
        }
    }
    verdict.indeterminate_delivered = indeterminate_seen.len();
    verdict
}

/// Whether the op's sender's instance was killed before the op ended.
fn crashed_before(history: &History, op: &Op) -> bool {
    history
        .crashed_senders
        .iter()
        .any(|(lane, at)| *lane == op.lane && op.ended_at >= *at)
}

fn describe(op: &Op) -> String {
    let outcome = match &op.outcome {
        Outcome::Accepted(id) => format!("accepted {id}"),
        Outcome::Refused(error) => format!("refused {error}"),
        Outcome::NoAck => "no ack".to_owned(),
        Outcome::ConnectionLost(_) => "connection lost".to_owned(),
    };
    format!(
        "lane {} seq {} ({}, sent at {:.1?}, {outcome})",
        op.lane, op.seq, op.client_message_id, op.sent_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Delivery, Watch};

    fn op(seq: usize, outcome: Outcome) -> Op {
        Op {
            lane: 0,
            seq,
            client_message_id: format!("c{seq}"),
            sent_at: Duration::from_millis(seq as u64 * 100),
            ended_at: Duration::from_millis(seq as u64 * 100 + 10),
            outcome,
        }
    }

    fn accepted(seq: usize) -> Op {
        op(seq, Outcome::Accepted(format!("{}", 1000 + seq)))
    }

    fn seen(seqs: &[usize]) -> Watch {
        Watch {
            label: "peer".to_owned(),
            lane: 0,
            must_see_all: true,
            deliveries: seqs
                .iter()
                .map(|seq| Delivery {
                    id: format!("{}", 1000 + seq),
                    client_message_id: Some(format!("c{seq}")),
                    at: Duration::from_secs(1),
                })
                .collect(),
            transport_error: None,
        }
    }

    fn history(ops: Vec<Op>, watch: Watch) -> History {
        History {
            ops,
            watches: vec![watch],
            ..History::default()
        }
    }

    #[test]
    fn a_history_where_everything_arrived_once_in_order_is_clean() {
        let verdict = check(&history(vec![accepted(0), accepted(1)], seen(&[0, 1])));

        verdict.assert_clean(false);
        assert_eq!(verdict.accepted, 2);
    }

    #[test]
    fn an_accepted_message_that_never_arrives_is_lost() {
        let verdict = check(&history(vec![accepted(0), accepted(1)], seen(&[0])));

        assert_eq!(verdict.lost.len(), 1, "{verdict}");
    }

    #[test]
    fn twice_is_a_duplicate_and_backwards_is_a_reorder() {
        let verdict = check(&history(vec![accepted(0), accepted(1)], seen(&[1, 0, 0])));

        assert_eq!(verdict.duplicated.len(), 1, "{verdict}");
        assert_eq!(verdict.reordered.len(), 2, "{verdict}");
    }

    #[test]
    fn a_chat_503_may_arrive_once_but_a_definite_refusal_may_not() {
        let ops = vec![
            op(0, Outcome::Refused("chat_503".to_owned())),
            op(1, Outcome::Refused("rate_limited".to_owned())),
        ];
        let verdict = check(&history(ops, seen(&[0, 1])));

        assert_eq!(verdict.indeterminate_delivered, 1, "{verdict}");
        assert_eq!(verdict.unexpected.len(), 1, "{verdict}");
        assert!(verdict.lost.is_empty(), "{verdict}");
    }

    #[test]
    fn no_ack_is_silence_and_never_counts_as_lost() {
        let verdict = check(&history(vec![op(0, Outcome::NoAck)], seen(&[])));

        assert_eq!(verdict.silent.len(), 1, "{verdict}");
        assert!(verdict.lost.is_empty(), "{verdict}");
    }
}
