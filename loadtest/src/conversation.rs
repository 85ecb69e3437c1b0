//! One chatter's side of its conversation once it is set up: sending on
//! schedule with up to `LOAD_PIPELINE` acks in flight (one by default), and
//! making sense of what arrives ([`receive`]): every room-mate's messages,
//! each timed from its scheduled send to this recipient, and to its first
//! and last recipient.
//!
//! It knows nothing of goose: what goose should record comes back as
//! [`Timing`]s, which the transaction hands to
//! `GooseUser::record_custom_request_duration`.
//!
//! In chaos mode it is also the recording client: every send and how it
//! ended, and every arrival of the partner's messages, go into the
//! [`crate::history`]; a lost socket ends the ack in flight as
//! unknown and waits for the chatter to reconnect, and messages read
//! through history after a reconnect count as delivered that way.
//!
//! In capacity mode every send, answer and delivery is also accounted to
//! the step its message was due in ([`crate::capacity`]).
//!
//! With `LOAD_MARK_READ` it marks the room read as messages arrive, at most
//! once a second ([`reading`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde_json::{json, Value};
use tokio::time::Instant;

mod in_flight;
mod read_throttle;
mod reading;
mod receive;
mod recording;
mod rejoining;

use self::{
    in_flight::{AckWindow, InFlight},
    reading::Reading,
};
use crate::{
    capacity::CapacityRun,
    clock,
    history::UnknownCause,
    latency::{lock, Kind},
    payload,
    socket::{ChatSocket, Tag},
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

/// Another member of the chatter's room.
#[derive(Debug, Clone)]
pub struct RoomMate {
    /// Its chatter index.
    pub index: usize,
    /// Its user id, the `authorId` of its messages.
    pub user_id: String,
    /// This chatter's slot in its ledger ([`crate::coord::Rooms::slot`]).
    pub slot: usize,
}

/// A room-mate as a message's author: who, and where this chatter's
/// deliveries go in its ledger.
#[derive(Debug, Clone, Copy)]
struct Author {
    index: usize,
    slot: usize,
}

/// A chatter's sending and receiving state.
pub struct Conversation {
    run: Arc<RunState>,
    index: usize,
    /// The room-mates by user id.
    authors: HashMap<String, Author>,
    user_id: String,
    room_id: String,
    /// `"private"` in a pair's room, `"group"` in a group room.
    message_type: &'static str,
    /// When sending started (process clock, µs), for the per-second series.
    start_us: u64,
    next_seq: u64,
    /// Messages due and not emitted yet: sequence number, scheduled time.
    backlog: VecDeque<(u64, u64)>,
    /// The messages whose ack is awaited.
    in_flight: AckWindow,
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
    /// The highest id of the room-mates' messages received, where a
    /// catch-up starts.
    last_seen: Option<u64>,
    /// Marking the room read (`LOAD_MARK_READ`); `None` when off.
    reading: Option<Reading>,
    /// The reconnect mode (`LOAD_RECONNECT`) is on: events of a dropped
    /// socket are left out.
    rejoins: bool,
    /// After a replay cut short, the room's messages up to this id were
    /// read over HTTP: live replies up to it are left out.
    paged_through: Option<u64>,
}

impl Conversation {
    /// The conversation of chatter `index` (user `user_id`) with
    /// `room_mates` in `room_id`, sending from `start` on a socket to
    /// `instance`.
    pub fn new(
        run: Arc<RunState>,
        index: usize,
        room_mates: Vec<RoomMate>,
        user_id: String,
        room_id: String,
        start: Instant,
        instance: usize,
    ) -> Self {
        let resilient = run.chaos.is_some();
        let pipeline = run.settings.pipeline;
        let marks_read = run.settings.mark_read;
        let run_reconnects = run.settings.reconnect.is_some();
        let message_type = if run.settings.rooms().is_group() {
            "group"
        } else {
            "private"
        };
        let authors = room_mates
            .into_iter()
            .map(|mate| {
                let author = Author {
                    index: mate.index,
                    slot: mate.slot,
                };
                (mate.user_id, author)
            })
            .collect();
        Self {
            run,
            index,
            authors,
            user_id,
            room_id,
            message_type,
            start_us: clock::micros(start.into_std()),
            next_seq: 0,
            backlog: VecDeque::new(),
            in_flight: AckWindow::new(pipeline),
            awaiting_notice: HashMap::new(),
            early_notices: HashMap::new(),
            socket_open: true,
            finished: false,
            resilient,
            connection: 0,
            instance,
            last_seen: None,
            reading: marks_read.then(|| Reading::new(start)),
            rejoins: run_reconnects,
            paged_through: None,
        }
    }

    /// A message is due at `scheduled`.
    pub fn schedule(&mut self, scheduled: Instant) {
        if self.in_flight.is_full() {
            Counters::bump(&self.run.counters.queued_behind_ack);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.backlog
            .push_back((seq, clock::micros(scheduled.into_std())));
    }

    /// When the oldest ack in flight (of a message or a read) times out,
    /// if one is in flight.
    pub fn ack_deadline(&self) -> Option<Instant> {
        match (self.in_flight.next_deadline(), self.read_ack_deadline()) {
            (Some(message), Some(read)) => Some(message.min(read)),
            (message, read) => message.or(read),
        }
    }

    /// Emits the messages due, as far as the ack window allows.
    pub async fn pump(&mut self, socket: &ChatSocket, timings: &mut Vec<Timing>) {
        while self.socket_open && !self.in_flight.is_full() {
            let Some((seq, scheduled_us)) = self.backlog.pop_front() else {
                return;
            };
            if !self.emit(socket, seq, scheduled_us, timings).await {
                return;
            }
        }
    }

    /// Emits message `seq`; false when it could not leave.
    async fn emit(
        &mut self,
        socket: &ChatSocket,
        seq: u64,
        scheduled_us: u64,
        timings: &mut Vec<Timing>,
    ) -> bool {
        let settings = &self.run.settings;
        let data = json!({
            "type": self.message_type,
            "roomId": self.room_id,
            "content": {
                "type": "text",
                "message": payload::encode(seq, scheduled_us, settings.message_bytes),
            },
            "clientMessageId": payload::client_message_id(&settings.run_tag, self.index, seq),
        });
        // Counted as sent before it leaves: a room-mate may see it first.
        lock(&self.run.ledgers[self.index]).sent(seq);
        if let Some(mut history) = self.history(self.index) {
            history.emitted(seq, scheduled_us, clock::now_micros(), self.instance);
        }
        match socket
            .emit_tracked("message", data, settings.ack_timeout, Tag::Message(seq))
            .await
        {
            Ok(()) => {
                self.succeeded(Kind::SendLag, scheduled_us, clock::now_micros(), timings);
                self.in_flight.push(InFlight {
                    seq,
                    scheduled_us,
                    deadline: Instant::now() + settings.ack_timeout,
                });
                if let Some(capacity) = self.capacity() {
                    capacity.sent(self.start_us, scheduled_us);
                }
                true
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
                false
            }
        }
    }

    /// The acks in flight whose time is up did not come in time.
    pub fn ack_timed_out(&mut self, timings: &mut Vec<Timing>) {
        let now = Instant::now();
        self.read_acks_timed_out(now, timings);
        for flight in self.in_flight.expire(now) {
            Counters::bump(&self.run.counters.ack_timeouts);
            timings.push(failure(Kind::Ack, flight.scheduled_us, "ack_timeout"));
            if let Some(mut history) = self.history(self.index) {
                history.unknown(flight.seq, UnknownCause::AckTimeout);
            }
        }
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

    /// The capacity mode's per-step accounting, in that mode.
    fn capacity(&self) -> Option<&CapacityRun> {
        self.run.capacity.as_ref()
    }

    /// True while the chatter's socket is open.
    pub fn socket_open(&self) -> bool {
        self.socket_open
    }

    /// Nothing due and no ack awaited.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty() && (self.backlog.is_empty() || !self.socket_open)
    }

    /// Marks this chatter's stream finished once it is idle after sending.
    pub fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            lock(&self.run.ledgers[self.index]).finish();
        }
    }

    /// Finished, and nothing more is expected: every room-mate's stream is
    /// all delivered here, every `sent` notification came and every read
    /// was answered.
    pub fn done(&self) -> bool {
        // In chaos mode an unanswered message may still arrive: listen on
        // to the end of the grace period.
        !self.resilient
            && self.finished
            && self.awaiting_notice.is_empty()
            && self.reads_settled()
            && self
                .authors
                .values()
                .all(|author| lock(&self.run.ledgers[author.index]).settled_for(author.slot))
    }

    /// Accounts for what never happened, when the chatter stops.
    pub fn close(&mut self) {
        self.finish();
        self.close_reads();
        for flight in self.in_flight.drain() {
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

/// Message ids are decimal strings; accept a number too.
fn message_id(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}
