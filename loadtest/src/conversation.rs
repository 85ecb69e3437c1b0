//! One chatter's side of its conversation once it is set up: sending on
//! schedule with one ack in flight, and making sense of what arrives.
//!
//! It knows nothing of goose: what goose should record comes back as
//! [`Timing`]s, which the transaction hands to
//! `GooseUser::record_custom_request_duration`.
//!
//! In chaos mode it is also the recording client: every send and how it
//! ended, and every arrival of the partner's messages, go into the
//! [`crate::chaos::history`]; a lost socket ends the ack in flight as
//! unknown and waits for the chatter to reconnect, and messages read
//! through history after a reconnect count as delivered that way.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde_json::{json, Value};
use tokio::time::Instant;

mod recording;

use crate::{
    chaos::history::{Path, UnknownCause},
    clock,
    latency::{lock, Kind},
    ledger::Delivery,
    payload,
    socket::{ChatSocket, Inbound, Received},
    state::{Counters, RunState},
};

/// A latency (or failure) for goose's report.
#[derive(Debug, Clone)]
pub struct Timing {
    /// What was timed.
    pub kind: Kind,
    /// From the scheduled send time.
    pub latency: Duration,
    /// The error's name when it failed.
    pub error: Option<String>,
}

/// The message whose ack is awaited.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    scheduled_us: u64,
    deadline: Instant,
}

/// A chatter's sending and receiving state.
pub struct Conversation {
    run: Arc<RunState>,
    index: usize,
    partner: usize,
    user_id: String,
    room_id: String,
    /// When sending started (process clock, µs), for the per-second series.
    start_us: u64,
    next_seq: u64,
    /// Messages due and not emitted yet: sequence number, scheduled time.
    backlog: VecDeque<(u64, u64)>,
    in_flight: Option<InFlight>,
    /// Accepted message id → scheduled send time, until `sent` arrives.
    awaiting_notice: HashMap<String, u64>,
    /// `sent` notifications that beat their ack: message id → arrival.
    early_notices: HashMap<String, u64>,
    socket_open: bool,
    finished: bool,
    /// Chaos mode: survive a lost socket and record the history.
    resilient: bool,
    /// The chatter's current connection (see [`Received::connection`]).
    connection: u32,
    /// The instance (index into `LOAD_HOSTS`) the socket is on.
    instance: usize,
    /// The highest id of the partner's messages received, where a catch-up
    /// starts.
    last_seen: Option<u64>,
}

impl Conversation {
    /// The conversation of chatter `index` (user `user_id`) in `room_id`,
    /// sending from `start` on a socket to `instance`.
    pub fn new(
        run: Arc<RunState>,
        index: usize,
        partner: usize,
        user_id: String,
        room_id: String,
        start: Instant,
        instance: usize,
    ) -> Self {
        let resilient = run.chaos.is_some();
        Self {
            run,
            index,
            partner,
            user_id,
            room_id,
            start_us: clock::micros(start.into_std()),
            next_seq: 0,
            backlog: VecDeque::new(),
            in_flight: None,
            awaiting_notice: HashMap::new(),
            early_notices: HashMap::new(),
            socket_open: true,
            finished: false,
            resilient,
            connection: 0,
            instance,
            last_seen: None,
        }
    }

    /// A message is due at `scheduled`.
    pub fn schedule(&mut self, scheduled: Instant) {
        if self.in_flight.is_some() {
            Counters::bump(&self.run.counters.queued_behind_ack);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.backlog
            .push_back((seq, clock::micros(scheduled.into_std())));
    }

    /// When the ack in flight times out, if one is in flight.
    pub fn ack_deadline(&self) -> Option<Instant> {
        self.in_flight.map(|flight| flight.deadline)
    }

    /// Emits the next due message unless an ack is still awaited.
    pub async fn pump(&mut self, socket: &ChatSocket, timings: &mut Vec<Timing>) {
        if self.in_flight.is_some() || !self.socket_open {
            return;
        }
        let Some((seq, scheduled_us)) = self.backlog.pop_front() else {
            return;
        };
        let settings = &self.run.settings;
        let data = json!({
            "type": "private",
            "roomId": self.room_id,
            "content": {
                "type": "text",
                "message": payload::encode(seq, scheduled_us, settings.message_bytes),
            },
            "clientMessageId": payload::client_message_id(&settings.run_tag, self.index, seq),
        });
        // Counted as sent before it leaves: the partner may see it first.
        lock(&self.run.ledgers[self.index]).sent(seq);
        if let Some(mut history) = self.history(self.index) {
            history.emitted(seq, scheduled_us, clock::now_micros(), self.instance);
        }
        match socket
            .emit_tracked("message", data, settings.ack_timeout, seq)
            .await
        {
            Ok(()) => {
                self.succeeded(Kind::SendLag, scheduled_us, clock::now_micros(), timings);
                self.in_flight = Some(InFlight {
                    seq,
                    scheduled_us,
                    deadline: Instant::now() + settings.ack_timeout,
                });
            }
            Err(error) => {
                Counters::bump(&self.run.counters.emit_failures);
                self.run.counters.error("emit_failed");
                timings.push(failure(Kind::Ack, scheduled_us, &format!("emit: {error}")));
                if self.resilient {
                    // It did not leave: send it again, same clientMessageId,
                    // once a new socket is open.
                    if let Some(mut history) = self.history(self.index) {
                        history.not_sent(seq);
                    }
                    self.backlog.push_front((seq, scheduled_us));
                    self.connection_lost();
                }
            }
        }
    }

    /// The ack in flight did not come in time.
    pub fn ack_timed_out(&mut self, timings: &mut Vec<Timing>) {
        if let Some(flight) = self.in_flight.take() {
            Counters::bump(&self.run.counters.ack_timeouts);
            timings.push(failure(Kind::Ack, flight.scheduled_us, "ack_timeout"));
            if let Some(mut history) = self.history(self.index) {
                history.unknown(flight.seq, UnknownCause::AckTimeout);
            }
        }
    }

    /// Makes sense of one event.
    pub fn receive(&mut self, received: Received, timings: &mut Vec<Timing>) {
        let at_us = received.at_us;
        match received.event {
            Inbound::Ack { tag, data } => self.on_ack(tag, &data, at_us, timings),
            Inbound::Reply(message) => self.on_reply(&message, at_us, timings),
            Inbound::Notification(notice) => self.on_notification(&notice, at_us, timings),
            Inbound::ServerError(error) => {
                let name = error["name"].as_str().unwrap_or("unnamed");
                self.run.counters.error(&format!("event:{name}"));
                self.on_server_error(&error);
            }
            // A replaced socket's last words.
            Inbound::Closed | Inbound::ClientError(_) if received.connection != self.connection => {
            }
            Inbound::Closed => {
                if self.resilient {
                    self.connection_lost();
                } else if self.socket_open {
                    self.socket_open = false;
                    Counters::bump(&self.run.counters.disconnects);
                    self.run.counters.socket_closed();
                }
            }
            Inbound::ClientError(text) => {
                self.run.counters.error("client_error");
                if self.resilient {
                    // rust_socketio reports a broken transport here, and may
                    // say nothing more: take the socket for dead.
                    let text: String = text.chars().take(60).collect();
                    self.run.counters.error(&format!("client_error:{text}"));
                    self.connection_lost();
                }
            }
            Inbound::History(messages) => self.on_history(&messages, at_us),
        }
    }

    fn on_ack(&mut self, tag: u64, data: &Value, at_us: u64, timings: &mut Vec<Timing>) {
        let flight = match self.in_flight {
            Some(flight) if flight.seq == tag => {
                self.in_flight = None;
                Some(flight)
            }
            _ => {
                Counters::bump(&self.run.counters.late_acks);
                None
            }
        };
        let mut ledger = lock(&self.run.ledgers[self.index]);
        if data["status"] == "accepted" {
            ledger.accepted(tag);
            drop(ledger);
            if let (Some(mut history), Some(id)) =
                (self.history(self.index), message_id(&data["messageId"]))
            {
                history.accepted(tag, &id);
            }
            let Some(flight) = flight else { return };
            self.succeeded(Kind::Ack, flight.scheduled_us, at_us, timings);
            if let Some(id) = message_id(&data["messageId"]) {
                match self.early_notices.remove(&id) {
                    Some(noticed_us) => {
                        self.notice_arrived(flight.scheduled_us, noticed_us, timings)
                    }
                    None => {
                        self.awaiting_notice.insert(id, flight.scheduled_us);
                    }
                }
            }
        } else {
            ledger.rejected(tag);
            drop(ledger);
            let code = data["error"]["name"]
                .as_str()
                .or_else(|| data["error"]["code"].as_str())
                .unwrap_or("unknown");
            self.run.counters.error(&format!("ack:{code}"));
            if let Some(mut history) = self.history(self.index) {
                history.refused(tag, code);
            }
            if let Some(flight) = flight {
                timings.push(failure(Kind::Ack, flight.scheduled_us, code));
            }
        }
    }

    fn on_reply(&mut self, message: &Value, at_us: u64, timings: &mut Vec<Timing>) {
        let decoded = message["content"]["message"]
            .as_str()
            .and_then(payload::decode);
        let Some((seq, scheduled_us)) = decoded else {
            Counters::bump(&self.run.counters.foreign_replies);
            return;
        };
        if message["authorId"].as_str() == Some(self.user_id.as_str()) {
            Counters::bump(&self.run.counters.echoes);
            return;
        }
        if let Some(id) = message_id(&message["id"]) {
            let seq = self.seq_of(message).unwrap_or(seq);
            if !self.received(seq, &id, at_us, Path::Live) {
                return;
            }
        }
        let delivery = lock(&self.run.ledgers[self.partner]).delivered(seq);
        match delivery {
            Delivery::InOrder | Delivery::OutOfOrder => {
                self.succeeded(Kind::Fanout, scheduled_us, at_us, timings);
                if let Some(created_us) = created_micros(&message["createdAt"]) {
                    let latency = clock::between(created_us, clock::wall_micros(at_us));
                    self.run.latencies.record(Kind::CreatedToReply, latency, 0);
                }
            }
            Delivery::Duplicate => {}
            Delivery::Unknown => Counters::bump(&self.run.counters.foreign_replies),
        }
    }

    fn on_notification(&mut self, notice: &Value, at_us: u64, timings: &mut Vec<Timing>) {
        match notice["name"].as_str() {
            Some("sent") => {
                let Some(id) = message_id(&notice["content"]["messageId"]) else {
                    return;
                };
                match self.awaiting_notice.remove(&id) {
                    Some(scheduled_us) => self.notice_arrived(scheduled_us, at_us, timings),
                    None => {
                        self.early_notices.insert(id, at_us);
                    }
                }
            }
            Some("inbox") => Counters::bump(&self.run.counters.inbox_notices),
            _ => self.run.counters.error("notification:unknown"),
        }
    }

    fn notice_arrived(&mut self, scheduled_us: u64, at_us: u64, timings: &mut Vec<Timing>) {
        Counters::bump(&self.run.counters.sent_notices);
        self.succeeded(Kind::SentNotice, scheduled_us, at_us, timings);
    }

    /// Records a success in the run's histograms and for goose.
    fn succeeded(&self, kind: Kind, scheduled_us: u64, at_us: u64, timings: &mut Vec<Timing>) {
        let latency = clock::between(scheduled_us, at_us);
        let second = at_us.saturating_sub(self.start_us) / 1_000_000;
        self.run.latencies.record(kind, latency, second);
        timings.push(Timing {
            kind,
            latency,
            error: None,
        });
    }

    /// Nothing due and no ack awaited.
    pub fn idle(&self) -> bool {
        self.in_flight.is_none() && (self.backlog.is_empty() || !self.socket_open)
    }

    /// Marks this chatter's stream finished once it is idle after sending.
    pub fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            lock(&self.run.ledgers[self.index]).finish();
        }
    }

    /// Finished, and nothing more is expected: the partner's stream is all
    /// delivered and every `sent` notification came.
    pub fn done(&self) -> bool {
        // In chaos mode an unanswered message may still arrive: listen on
        // to the end of the grace period.
        !self.resilient
            && self.finished
            && self.awaiting_notice.is_empty()
            && lock(&self.run.ledgers[self.partner]).settled()
    }

    /// Accounts for what never happened, when the chatter stops.
    pub fn close(&mut self) {
        self.finish();
        if let Some(flight) = self.in_flight.take() {
            if let Some(mut history) = self.history(self.index) {
                history.unknown(flight.seq, UnknownCause::AckTimeout);
            }
        }
        let counters = &self.run.counters;
        let missing = self.awaiting_notice.len() as u64;
        counters
            .sent_notices_missing
            .fetch_add(missing, std::sync::atomic::Ordering::Relaxed);
        if !self.backlog.is_empty() {
            counters.unsent.fetch_add(
                self.backlog.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if self.socket_open {
            self.socket_open = false;
            counters.socket_closed();
        }
    }
}

fn failure(kind: Kind, scheduled_us: u64, error: &str) -> Timing {
    Timing {
        kind,
        latency: clock::between(scheduled_us, clock::now_micros()),
        error: Some(error.to_owned()),
    }
}

/// `createdAt` (RFC 3339) as Unix microseconds.
fn created_micros(value: &Value) -> Option<u64> {
    let created = chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    u64::try_from(created.timestamp_micros()).ok()
}

/// Message ids are decimal strings; accept a number too.
fn message_id(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}
