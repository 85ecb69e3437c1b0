//! The recording side of a sender: each message a client sends, and how
//! it ended, into the history, whether the client waits for each answer
//! ([`Recorder::send`]) or pipelines ([`Recorder::emit`], then
//! [`Recorder::answered`]).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use e2e::{
    chat::text_message,
    pipelined::{Answer, PipelinedSocket},
    ChatSocket,
};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::history::{Clock, Op, Outcome};

/// How long a sender waits for an ack before it calls the message silent.
/// Well above the service's answer deadline (2 s).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends a lane's messages and records each one's outcome in the history.
#[derive(Clone)]
pub struct Recorder {
    lane: usize,
    room: String,
    clock: Clock,
    ops: Arc<Mutex<Vec<Op>>>,
    next_seq: Arc<AtomicUsize>,
}

impl Recorder {
    /// Records lane `lane`'s messages to `room` into `ops`, on `clock`.
    pub fn new(lane: usize, room: String, clock: Clock, ops: Arc<Mutex<Vec<Op>>>) -> Self {
        Self {
            lane,
            room,
            clock,
            ops,
            next_seq: Arc::default(),
        }
    }

    /// Sends one `message` with `client_message_id`, waits for its ack (up
    /// to [`ACK_TIMEOUT`]), records the outcome and returns it.
    pub async fn send(
        &self,
        socket: &mut ChatSocket,
        client_message_id: &str,
        text: &str,
    ) -> Outcome {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let payload = text_message(&self.room, text, Some(client_message_id));
        let sent_at = self.clock.now();
        let answer = socket
            .emit_with_ack_within("message", payload, ACK_TIMEOUT)
            .await;
        let outcome = match answer {
            Err(error) => Outcome::ConnectionLost(error),
            Ok(None) => match socket.transport_error() {
                Some(error) => Outcome::ConnectionLost(error),
                None => Outcome::NoAck,
            },
            Ok(Some(ack)) => outcome_of(&ack),
        };
        self.ops.lock().unwrap().push(Op {
            lane: self.lane,
            seq,
            client_message_id: client_message_id.to_owned(),
            sent_at,
            ended_at: self.clock.now(),
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// A message emitted on a pipelining socket, its answer still to come.
pub struct InFlight {
    seq: usize,
    client_message_id: String,
    sent_at: Duration,
    answer: Result<oneshot::Receiver<Answer>, String>,
}

impl Recorder {
    /// The lane it records for.
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// Emits one `message` with `client_message_id` without waiting for its
    /// answer.
    pub async fn emit(
        &self,
        socket: &mut PipelinedSocket,
        client_message_id: &str,
        text: &str,
    ) -> InFlight {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let payload = text_message(&self.room, text, Some(client_message_id));
        let sent_at = self.clock.now();
        InFlight {
            seq,
            client_message_id: client_message_id.to_owned(),
            sent_at,
            answer: socket.emit("message", &payload).await,
        }
    }

    /// Waits for the answer to `in_flight` (up to [`ACK_TIMEOUT`] from its
    /// emit), records the outcome with the time the answer arrived, and
    /// returns it.
    pub async fn answered(&self, in_flight: InFlight) -> Outcome {
        let waited = self.clock.now().saturating_sub(in_flight.sent_at);
        let wait = ACK_TIMEOUT.saturating_sub(waited);
        let (outcome, ended_at) = match in_flight.answer {
            Err(error) => (Outcome::ConnectionLost(error), self.clock.now()),
            Ok(receiver) => match tokio::time::timeout(wait, receiver).await {
                Err(_) => (Outcome::NoAck, self.clock.now()),
                Ok(Err(_)) => (
                    Outcome::ConnectionLost("the connection closed".to_owned()),
                    self.clock.now(),
                ),
                Ok(Ok((ack, at))) => (outcome_of(&ack), self.clock.at(at)),
            },
        };
        self.ops.lock().unwrap().push(Op {
            lane: self.lane,
            seq: in_flight.seq,
            client_message_id: in_flight.client_message_id,
            sent_at: in_flight.sent_at,
            ended_at,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// The outcome an ack says.
fn outcome_of(ack: &Value) -> Outcome {
    if ack["status"] == "accepted" {
        Outcome::Accepted(ack["messageId"].as_str().unwrap_or_default().to_owned())
    } else {
        Outcome::Refused(
            ack["error"]["name"]
                .as_str()
                .map_or_else(|| format!("malformed ack {ack}"), str::to_owned),
        )
    }
}
