//! The chaos mode's history: every message a chatter sent and how it
//! ended, as the client saw it, every time its partner received it, and
//! each fault's window as the nemesis saw it.
//!
//! This is what the recording client writes (the chatters, through
//! [`crate::conversation::Conversation`]), what the nemesis
//! ([`crate::chaos::nemesis`]) writes and what the checker
//! ([`crate::chaos::checker`]) reads. It holds facts only: no verdict is
//! taken here. An ack that never came is [`Outcome::Unknown`], its own
//! state, not a failure.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How a send ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Emitted; no answer yet.
    Pending,
    /// The ack said `accepted`, with this message id.
    Accepted {
        /// The service's id for the message.
        message_id: String,
    },
    /// The ack said `error`, with this name (`chat_503`, `rate_limited`, ...).
    Refused {
        /// The error's name.
        name: String,
    },
    /// No answer: the ack timed out, or the socket went away first.
    Unknown {
        /// Which of the two.
        cause: UnknownCause,
    },
    /// The client library could not emit it (the socket was gone); the
    /// chatter sends it again, with the same `clientMessageId`, once it has
    /// reconnected.
    NotSent,
}

/// Why an outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCause {
    /// No ack within `LOAD_ACK_TIMEOUT`.
    AckTimeout,
    /// The socket closed while the ack was awaited.
    SocketLost,
}

/// One message a chatter sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Send {
    /// The author's sequence number (also in its `clientMessageId`).
    pub seq: u64,
    /// When it was due (process clock, µs).
    pub scheduled_us: u64,
    /// When it was first emitted (process clock, µs).
    pub emitted_us: u64,
    /// Emits: more than one when the socket died before the answer and the
    /// chatter sent it again, with the same `clientMessageId`.
    pub attempts: u32,
    /// The instance (index into `LOAD_HOSTS`) of the socket it last left on.
    pub instance: usize,
    /// How it ended.
    pub outcome: Outcome,
    /// An `error` event about it after it was accepted (`chat_500`).
    pub later_error: Option<String>,
}

/// How a message reached the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// A `reply` on the socket.
    Live,
    /// The history read over HTTP after a reconnect.
    History,
}

/// The partner received a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reception {
    /// The service's id of what arrived.
    pub message_id: String,
    /// When (process clock, µs).
    pub at_us: u64,
    /// Live or through history.
    pub path: Path,
}

/// One author's messages: what was sent and what the partner received.
#[derive(Debug, Default, Clone)]
pub struct StreamHistory {
    sends: BTreeMap<u64, Send>,
    receptions: BTreeMap<u64, Vec<Reception>>,
    /// Accepted message id → sequence number, to place a later `chat_500`.
    ids: HashMap<String, u64>,
}

impl StreamHistory {
    /// Message `seq` (due at `scheduled_us`) leaves on `instance` now. A
    /// second emit of the same message (a resend after its socket died)
    /// counts an attempt and waits for the new answer.
    pub fn emitted(&mut self, seq: u64, scheduled_us: u64, emitted_us: u64, instance: usize) {
        let send = self.sends.entry(seq).or_insert(Send {
            seq,
            scheduled_us,
            emitted_us,
            attempts: 0,
            instance,
            outcome: Outcome::Pending,
            later_error: None,
        });
        send.attempts += 1;
        send.instance = instance;
        send.outcome = Outcome::Pending;
    }

    /// The client library could not emit message `seq`.
    pub fn not_sent(&mut self, seq: u64) {
        self.set_outcome(seq, Outcome::NotSent, |_| true);
    }

    /// The ack of `seq` said `accepted` (even after the outcome was
    /// declared unknown: a late answer is still the answer).
    pub fn accepted(&mut self, seq: u64, message_id: &str) {
        self.ids.insert(message_id.to_owned(), seq);
        let outcome = Outcome::Accepted {
            message_id: message_id.to_owned(),
        };
        self.set_outcome(seq, outcome, |_| true);
    }

    /// The ack of `seq` said `error` with `name`.
    pub fn refused(&mut self, seq: u64, name: &str) {
        let outcome = Outcome::Refused {
            name: name.to_owned(),
        };
        self.set_outcome(seq, outcome, |_| true);
    }

    /// No ack for `seq`, for `cause`; an answer already recorded stays.
    pub fn unknown(&mut self, seq: u64, cause: UnknownCause) {
        self.set_outcome(seq, Outcome::Unknown { cause }, |outcome| {
            matches!(outcome, Outcome::Pending)
        });
    }

    /// An `error` event named `name` about the accepted message
    /// `message_id`; false when no message of this author has that id.
    pub fn later_error(&mut self, message_id: &str, name: &str) -> bool {
        let Some(seq) = self.ids.get(message_id) else {
            return false;
        };
        match self.sends.get_mut(seq) {
            Some(send) => {
                send.later_error = Some(name.to_owned());
                true
            }
            None => false,
        }
    }

    /// The partner received message `seq` as `message_id`. Returns true
    /// when it is the first time this message id arrives (an earlier copy
    /// through the other path does not count as a second delivery).
    pub fn received(&mut self, seq: u64, message_id: &str, at_us: u64, path: Path) -> bool {
        let receptions = self.receptions.entry(seq).or_default();
        let first = !receptions.iter().any(|r| r.message_id == message_id);
        // A history copy of what already arrived is expected after a
        // reconnect and is not recorded; a second live copy is.
        if first || path == Path::Live {
            receptions.push(Reception {
                message_id: message_id.to_owned(),
                at_us,
                path,
            });
        }
        first
    }

    /// Whether message `seq` was received already.
    pub fn was_received(&self, seq: u64) -> bool {
        self.receptions.get(&seq).is_some_and(|r| !r.is_empty())
    }

    /// Every message sent, by sequence number.
    pub fn sends(&self) -> impl Iterator<Item = &Send> {
        self.sends.values()
    }

    /// What the partner received of message `seq`, in arrival order.
    pub fn receptions(&self, seq: u64) -> &[Reception] {
        self.receptions.get(&seq).map_or(&[], Vec::as_slice)
    }

    /// Sequence numbers received that were never recorded as sent.
    pub fn received_unsent(&self) -> impl Iterator<Item = u64> + '_ {
        self.receptions
            .keys()
            .copied()
            .filter(|seq| !self.sends.contains_key(seq))
    }

    fn set_outcome(&mut self, seq: u64, outcome: Outcome, when: impl Fn(&Outcome) -> bool) {
        if let Some(send) = self.sends.get_mut(&seq) {
            if when(&send.outcome) {
                send.outcome = outcome;
            }
        }
    }
}

/// One fault, on the process clock (µs, see [`crate::clock`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// What was killed: `redis`, `cassandra`, `kafka`, `instance-2`, ...
    pub target: String,
    /// When the kill was issued: the window opens.
    pub started_us: u64,
    /// When the kill command returned (the process is gone).
    pub killed_us: Option<u64>,
    /// When the restart was issued.
    pub restarting_us: Option<u64>,
    /// When the restarted target answered.
    pub up_us: Option<u64>,
    /// When every instance answered `/ready` again, if within the settling time.
    pub ready_us: Option<u64>,
    /// When the window closes: up (or the failed start) plus the settling time.
    pub ended_us: u64,
    /// What went wrong with the fault itself (a command that failed).
    pub failure: Option<String>,
    /// A scale event (an instance joining or leaving) that ran alongside
    /// the backend faults rather than in turn with them.
    pub concurrent: bool,
}

impl FaultWindow {
    /// Whether a message emitted at `at_us` belongs to this fault.
    pub fn contains(&self, at_us: u64) -> bool {
        (self.started_us..self.ended_us).contains(&at_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_ack_replaces_an_unknown_outcome_but_a_timeout_never_replaces_an_ack() {
        let mut history = StreamHistory::default();
        history.emitted(0, 10, 11, 0);
        history.unknown(0, UnknownCause::AckTimeout);
        history.accepted(0, "42");
        history.unknown(0, UnknownCause::SocketLost);
        let send = history.sends().next().unwrap();
        assert_eq!(
            send.outcome,
            Outcome::Accepted {
                message_id: "42".to_owned()
            }
        );
    }

    #[test]
    fn a_resend_counts_an_attempt_and_keeps_the_first_emit_time() {
        let mut history = StreamHistory::default();
        history.emitted(0, 10, 11, 1);
        history.unknown(0, UnknownCause::SocketLost);
        history.emitted(0, 10, 50, 0);
        let send = history.sends().next().unwrap();
        assert_eq!((send.attempts, send.emitted_us, send.instance), (2, 11, 0));
        assert_eq!(send.outcome, Outcome::Pending);
    }

    #[test]
    fn a_later_error_lands_on_the_message_with_that_id() {
        let mut history = StreamHistory::default();
        history.emitted(0, 10, 11, 0);
        history.accepted(0, "42");
        assert!(history.later_error("42", "chat_500"));
        assert!(!history.later_error("43", "chat_500"));
        assert_eq!(
            history.sends().next().unwrap().later_error.as_deref(),
            Some("chat_500")
        );
    }

    #[test]
    fn a_history_copy_of_a_live_message_is_not_a_second_reception() {
        let mut history = StreamHistory::default();
        history.emitted(0, 10, 11, 0);
        assert!(history.received(0, "42", 20, Path::Live));
        assert!(!history.received(0, "42", 30, Path::History));
        assert_eq!(history.receptions(0).len(), 1);
        assert!(!history.received(0, "42", 40, Path::Live));
        assert_eq!(history.receptions(0).len(), 2);
    }

    #[test]
    fn a_window_holds_what_was_sent_from_the_kill_to_the_end_of_settling() {
        let window = FaultWindow {
            target: "redis".to_owned(),
            started_us: 100,
            killed_us: Some(110),
            restarting_us: Some(200),
            up_us: Some(250),
            ready_us: None,
            ended_us: 300,
            failure: None,
            concurrent: false,
        };
        assert!(!window.contains(99));
        assert!(window.contains(100));
        assert!(window.contains(299));
        assert!(!window.contains(300));
    }
}
