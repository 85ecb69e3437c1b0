//! The history of a fault scenario: every message a client started to send
//! and how it ended, and every `reply` a watching socket received, on one
//! clock. Recording only: the verdict is [`crate::checker`]'s.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// The scenario's clock: times are offsets from its start, so the fault
/// schedule and the operations line up in a report.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Time since the start.
    pub fn now(self) -> Duration {
        self.0.elapsed()
    }

    /// `instant` on this clock.
    pub fn at(self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.0)
    }
}

/// How a `message` a client sent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged `accepted` with this message id.
    Accepted(String),
    /// Answered with an error ack of this name (`chat_503`, ...).
    Refused(String),
    /// No ack within the client's timeout on a connection that still
    /// looked open: the silence the contract forbids.
    NoAck,
    /// The client's connection broke (it could not send, or its transport
    /// failed while it waited): the outcome is unknown, not a failure.
    ConnectionLost(String),
}

impl Outcome {
    /// Whether the message may have been published although the client
    /// was not told `accepted`: it may be delivered, at most once.
    /// `chat_503` is ambiguous by contract (the publish may finish after
    /// the service's timeout); other error names are definite refusals.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            Self::Accepted(_) => false,
            Self::Refused(name) => name == "chat_503",
            Self::NoAck | Self::ConnectionLost(_) => true,
        }
    }
}

/// One `message` a client sent.
#[derive(Debug, Clone)]
pub struct Op {
    /// The lane (sender and room) it belongs to.
    pub lane: usize,
    /// Its place in the lane's sending order, from 0.
    pub seq: usize,
    /// The `clientMessageId` it carried.
    pub client_message_id: String,
    /// When it was sent.
    pub sent_at: Duration,
    /// When the client learnt its outcome.
    pub ended_at: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// One `reply` a watching socket received (or one message found in a
/// room's history, for the storage check).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message id.
    pub id: String,
    /// Its `clientMessageId`, if it carried one.
    pub client_message_id: Option<String>,
    /// When it arrived.
    pub at: Duration,
}

impl Delivery {
    /// A delivery from a `reply` payload (or a history entry).
    pub fn from_message(message: &Value, at: Duration) -> Self {
        Self {
            id: message["id"].as_str().unwrap_or_default().to_owned(),
            client_message_id: message["clientMessageId"].as_str().map(str::to_owned),
            at,
        }
    }
}

/// What one watcher (a socket connected before the fault, or a room's
/// stored history) saw of one lane.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Who watched, for the report (e.g. `lane 0 peer @B`).
    pub label: String,
    /// The lane whose room it watched.
    pub lane: usize,
    /// Whether it must see every accepted message of the lane. False for a
    /// socket on an instance the scenario killed: what it did receive is
    /// still checked for duplicates and order.
    pub must_see_all: bool,
    /// What it received, in arrival order (history: oldest first).
    pub deliveries: Vec<Delivery>,
    /// The client library's transport error, if the socket broke.
    pub transport_error: Option<String>,
}

/// When the nemesis acted, for the report.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    /// `(time, what)` in order.
    pub events: Vec<(Duration, String)>,
}

impl FaultLog {
    /// Notes that `what` happened at `at`.
    pub fn note(&mut self, at: Duration, what: impl Into<String>) {
        self.events.push((at, what.into()));
    }
}

/// Everything a scenario recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every message sent, per lane in sending order.
    pub ops: Vec<Op>,
    /// What each watcher saw.
    pub watches: Vec<Watch>,
    /// The fault schedule as it ran.
    pub faults: FaultLog,
    /// Lanes whose sender's instance was killed, and when: a message of
    /// theirs left unanswered after that moment has an unknown outcome (the
    /// client's connection died with the instance), not a silent one.
    pub crashed_senders: Vec<(usize, Duration)>,
}
