//! Marking the room read (`LOAD_MARK_READ`): as a client with the room
//! open, a chatter sends `read {"roomId", "messageId"}` up to the newest
//! message it received, at most once a second ([`ReadThrottle`]), while
//! the chatters send. Each `read` asks for its ack; the answers are counted
//! (`ok`, anything else, none in time) and timed, and never hold up a
//! `message`: reads have no place in the ack window.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    failure,
    in_flight::{AckWindow, InFlight},
    read_throttle::{ReadThrottle, READ_INTERVAL},
    Conversation, Timing,
};
use crate::{
    clock,
    latency::Kind,
    socket::{ChatSocket, Tag},
    state::Counters,
};

/// A chatter's reads: what to mark next and the acks awaited.
#[derive(Debug)]
pub(super) struct Reading {
    throttle: ReadThrottle,
    /// The number of the next `read`, its ack's tag.
    next: u64,
    /// The reads whose ack is awaited (any number: they wait for nothing).
    in_flight: AckWindow,
}

impl Reading {
    /// Nothing read yet; the first `read` may leave from `now` on.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            throttle: ReadThrottle::new(READ_INTERVAL, now),
            next: 0,
            in_flight: AckWindow::new(usize::MAX),
        }
    }
}

impl Conversation {
    /// A room-mate's message `id` arrived: the room has something new to
    /// mark read.
    pub(super) fn saw(&mut self, id: &str) {
        if let (Some(reading), Ok(id)) = (self.reading.as_mut(), id.parse::<u64>()) {
            reading.throttle.received(id);
        }
    }

    /// When the next `read` is due, if one waits to be marked.
    pub fn read_due(&self) -> Option<Instant> {
        self.reading.as_ref()?.throttle.due()
    }

    /// Sends the `read` due, if any, while sending lasts (until
    /// `send_end`): reads per second are then over the same window as the
    /// messages and the CPU figures.
    pub async fn mark_read(
        &mut self,
        socket: &ChatSocket,
        send_end: Instant,
        timings: &mut Vec<Timing>,
    ) {
        let now = Instant::now();
        if !self.socket_open || now >= send_end {
            return;
        }
        let Some(reading) = self.reading.as_mut() else {
            return;
        };
        let Some(id) = reading.throttle.take(now) else {
            return;
        };
        let number = reading.next;
        reading.next += 1;
        let data = json!({ "roomId": self.room_id, "messageId": id.to_string() });
        let timeout = self.run.settings.ack_timeout;
        let sent_us = clock::now_micros();
        match socket
            .emit_tracked("read", data, timeout, Tag::Read(number))
            .await
        {
            Ok(()) => {
                Counters::bump(&self.run.counters.reads.sent);
                if let Some(reading) = self.reading.as_mut() {
                    reading.in_flight.push(InFlight {
                        seq: number,
                        scheduled_us: sent_us,
                        deadline: Instant::now() + timeout,
                    });
                }
            }
            Err(error) => {
                // The socket is going; its closing is counted as such.
                Counters::bump(&self.run.counters.emit_failures);
                timings.push(failure(Kind::ReadAck, sent_us, &format!("emit: {error}")));
            }
        }
    }

    /// The ack of read `number`.
    pub(super) fn on_read_ack(
        &mut self,
        number: u64,
        data: &Value,
        at_us: u64,
        timings: &mut Vec<Timing>,
    ) {
        let reads = &self.run.counters.reads;
        let flight = self
            .reading
            .as_mut()
            .and_then(|reading| reading.in_flight.take(number));
        let Some(flight) = flight else {
            // Already counted as unanswered.
            Counters::bump(&reads.late);
            return;
        };
        if data["status"] == "ok" {
            Counters::bump(&reads.ok);
            self.succeeded(Kind::ReadAck, flight.scheduled_us, at_us, timings);
            return;
        }
        Counters::bump(&reads.failed);
        let name = data["error"]["name"]
            .as_str()
            .or_else(|| data["status"].as_str())
            .unwrap_or("unknown");
        self.run.counters.error(&format!("read:{name}"));
        timings.push(failure(Kind::ReadAck, flight.scheduled_us, name));
    }

    /// When the oldest read ack in flight times out.
    pub(super) fn read_ack_deadline(&self) -> Option<Instant> {
        self.reading.as_ref()?.in_flight.next_deadline()
    }

    /// The reads whose ack is overdue at `now` are unanswered.
    pub(super) fn read_acks_timed_out(&mut self, now: Instant, timings: &mut Vec<Timing>) {
        let Some(reading) = self.reading.as_mut() else {
            return;
        };
        for flight in reading.in_flight.expire(now) {
            Counters::bump(&self.run.counters.reads.unanswered);
            timings.push(failure(Kind::ReadAck, flight.scheduled_us, "ack_timeout"));
        }
    }

    /// No read ack is awaited.
    pub(super) fn reads_settled(&self) -> bool {
        self.reading
            .as_ref()
            .is_none_or(|reading| reading.in_flight.is_empty())
    }

    /// The chatter stops: the reads still awaited are unanswered.
    pub(super) fn close_reads(&mut self) {
        let Some(reading) = self.reading.as_mut() else {
            return;
        };
        let left = reading.in_flight.drain().len() as u64;
        self.run
            .counters
            .reads
            .unanswered
            .fetch_add(left, Ordering::Relaxed);
    }
}
