//! The receiving side of a conversation: acks (of messages, and of reads,
//! see [`super::reading`]), the room-mates' `reply` events, `sent`
//! notifications and what the socket says about itself.

use serde_json::Value;

use super::{failure, message_id, Conversation, Timing};
use crate::{
    clock,
    history::Path,
    latency::{lock, Kind},
    ledger::Delivery,
    payload,
    socket::{Inbound, Received, Tag},
    state::Counters,
};

impl Conversation {
    /// Makes sense of one event.
    pub fn receive(&mut self, received: Received, timings: &mut Vec<Timing>) {
        let at_us = received.at_us;
        if self.stale(&received) {
            return;
        }
        match received.event {
            Inbound::Ack {
                tag: Tag::Message(seq),
                data,
            } => self.on_ack(seq, &data, at_us, timings),
            Inbound::Ack {
                tag: Tag::Read(number),
                data,
            } => self.on_read_ack(number, &data, at_us, timings),
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
        let flight = self.in_flight.take(tag);
        if flight.is_none() {
            Counters::bump(&self.run.counters.late_acks);
        }
        let accepted = data["status"] == "accepted";
        if let Some(capacity) = self.capacity() {
            let scheduled_us = flight.map(|flight| flight.scheduled_us);
            capacity.answered(self.start_us, scheduled_us, at_us, accepted);
        }
        let mut ledger = lock(&self.run.ledgers[self.index]);
        if accepted {
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
        let author_id = message["authorId"].as_str().unwrap_or_default();
        if author_id == self.user_id {
            Counters::bump(&self.run.counters.echoes);
            return;
        }
        let Some(author) = self.authors.get(author_id).copied() else {
            Counters::bump(&self.run.counters.foreign_replies);
            return;
        };
        if let Some(id) = message_id(&message["id"]) {
            if self.already_paged(&id) {
                return;
            }
            self.saw(&id);
            let seq = self.seq_of(author.index, message).unwrap_or(seq);
            if !self.received(author.index, seq, &id, at_us, Path::Live) {
                return;
            }
        }
        let arrival = lock(&self.run.ledgers[author.index]).delivered(seq, author.slot);
        match arrival.delivery {
            Delivery::InOrder | Delivery::OutOfOrder => {
                self.succeeded(Kind::Fanout, scheduled_us, at_us, timings);
                if arrival.first {
                    self.fan_out_edge(Kind::FanoutFirst, scheduled_us, at_us, timings);
                }
                if arrival.last {
                    self.fan_out_edge(Kind::FanoutLast, scheduled_us, at_us, timings);
                }
                if let Some(capacity) = self.capacity() {
                    capacity.delivered(self.start_us, scheduled_us, at_us, arrival);
                }
                if let Some(created_us) = created_micros(&message["createdAt"]) {
                    let latency = clock::between(created_us, clock::wall_micros(at_us));
                    self.run.latencies.record(Kind::CreatedToReply, latency, 0);
                }
            }
            Delivery::Duplicate => {}
            Delivery::Unknown => Counters::bump(&self.run.counters.foreign_replies),
        }
    }

    /// A message reached its first or its last recipient. In a pair both
    /// are the one delivery, already timed as `fanout`: goose hears of them
    /// only in group rooms, where they say something of their own.
    fn fan_out_edge(&self, kind: Kind, scheduled_us: u64, at_us: u64, timings: &mut Vec<Timing>) {
        if self.run.settings.rooms().is_group() {
            self.succeeded(kind, scheduled_us, at_us, timings);
        } else {
            let second = at_us.saturating_sub(self.start_us) / 1_000_000;
            let latency = clock::between(scheduled_us, at_us);
            self.run.latencies.record(kind, latency, second);
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
            // Room members, presence and read markers change around a load
            // run (sockets come and go): nothing to account for.
            Some("members" | "presence" | "read") => {}
            _ => self.run.counters.error("notification:unknown"),
        }
    }

    fn notice_arrived(&mut self, scheduled_us: u64, at_us: u64, timings: &mut Vec<Timing>) {
        Counters::bump(&self.run.counters.sent_notices);
        self.succeeded(Kind::SentNotice, scheduled_us, at_us, timings);
    }
}

/// `createdAt` (RFC 3339) as Unix microseconds.
fn created_micros(value: &Value) -> Option<u64> {
    let created = chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    u64::try_from(created.timestamp_micros()).ok()
}
