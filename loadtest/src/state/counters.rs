//! Everything the run counts besides the ledgers: sockets, setup failures,
//! acks and errors, and the reads (`LOAD_MARK_READ`) and reconnects
//! (`LOAD_RECONNECT`) of every chatter. Each has a plain-number copy for
//! the report.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use serde::Serialize;

use crate::latency::lock;

/// Where a chatter's setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStage {
    /// `POST /accounts/register` or `GET /accounts/me`.
    Register,
    /// The partner (a room-mate, for the first member of a group room)
    /// never registered.
    Partner,
    /// `GET /rooms?peerId=`, or `POST /rooms` (by the group room's first
    /// member, which the others wait for).
    Room,
    /// The Socket.IO connection.
    Connect,
    /// `join`.
    Join,
}

/// Counters besides the ledgers.
#[derive(Default)]
pub struct Counters {
    /// Sockets open now.
    pub sockets_open: AtomicU64,
    /// Most sockets open at once.
    pub sockets_peak: AtomicU64,
    setup_failed: [AtomicU64; 5],
    /// Chatters that did not send because their partner (a room-mate) was
    /// not in the room.
    pub partner_missing: AtomicU64,
    /// Sockets closed before their chatter finished.
    pub disconnects: AtomicU64,
    /// Emits that failed on the client side.
    pub emit_failures: AtomicU64,
    /// Acks that did not come within the ack timeout.
    pub ack_timeouts: AtomicU64,
    /// Acks that came after their timeout.
    pub late_acks: AtomicU64,
    /// Messages that waited for an ack before leaving (the ack window,
    /// `LOAD_PIPELINE`, was full when they were due).
    pub queued_behind_ack: AtomicU64,
    /// Messages due but never emitted (the socket had closed).
    pub unsent: AtomicU64,
    /// `sent` notifications received and matched.
    pub sent_notices: AtomicU64,
    /// Accepted messages whose `sent` notification never came.
    pub sent_notices_missing: AtomicU64,
    /// `inbox` notifications (the recipient was not in the room).
    pub inbox_notices: AtomicU64,
    /// `reply` events of the chatter's own messages (the contract excludes
    /// the sending socket).
    pub echoes: AtomicU64,
    /// `reply` events that are not a room-mate's load-test messages.
    pub foreign_replies: AtomicU64,
    /// Ack errors and `error` events by name.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// The reads of `LOAD_MARK_READ`.
    pub reads: ReadCounters,
    /// The reconnects of `LOAD_RECONNECT`.
    pub rejoins: RejoinCounters,
}

impl Counters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A socket opened.
    pub fn socket_opened(&self) {
        let open = self.sockets_open.fetch_add(1, Ordering::SeqCst) + 1;
        self.sockets_peak.fetch_max(open, Ordering::SeqCst);
    }

    /// A socket closed.
    pub fn socket_closed(&self) {
        let _ = self
            .sockets_open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                open.checked_sub(1)
            });
    }

    /// A setup failed at `stage`.
    pub fn setup_failed(&self, stage: SetupStage) {
        Self::bump(&self.setup_failed[stage as usize]);
    }

    /// An error named `name` (ack error code or `error` event name).
    pub fn error(&self, name: &str) {
        *lock(&self.errors).entry(name.to_owned()).or_default() += 1;
    }

    /// A copy for the report.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        CountersSnapshot {
            sockets_peak: get(&self.sockets_peak),
            setup_failed: SetupFailures {
                register: get(&self.setup_failed[SetupStage::Register as usize]),
                partner: get(&self.setup_failed[SetupStage::Partner as usize]),
                room: get(&self.setup_failed[SetupStage::Room as usize]),
                connect: get(&self.setup_failed[SetupStage::Connect as usize]),
                join: get(&self.setup_failed[SetupStage::Join as usize]),
            },
            partner_missing: get(&self.partner_missing),
            disconnects: get(&self.disconnects),
            emit_failures: get(&self.emit_failures),
            ack_timeouts: get(&self.ack_timeouts),
            late_acks: get(&self.late_acks),
            queued_behind_ack: get(&self.queued_behind_ack),
            unsent: get(&self.unsent),
            sent_notices: get(&self.sent_notices),
            sent_notices_missing: get(&self.sent_notices_missing),
            inbox_notices: get(&self.inbox_notices),
            echoes: get(&self.echoes),
            foreign_replies: get(&self.foreign_replies),
            errors: lock(&self.errors).clone(),
        }
    }
}

/// Setup failures by stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupFailures {
    /// Registration or `me`.
    pub register: u64,
    /// No partner in time.
    pub partner: u64,
    /// Room lookup.
    pub room: u64,
    /// Socket connection.
    pub connect: u64,
    /// `join`.
    pub join: u64,
}

impl SetupFailures {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.register + self.partner + self.room + self.connect + self.join
    }
}

/// [`Counters`] as plain numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountersSnapshot {
    /// Most sockets open at once.
    pub sockets_peak: u64,
    /// Setup failures by stage.
    pub setup_failed: SetupFailures,
    /// Chatters idle for want of a partner.
    pub partner_missing: u64,
    /// Sockets closed early.
    pub disconnects: u64,
    /// Client-side emit failures.
    pub emit_failures: u64,
    /// Acks that timed out.
    pub ack_timeouts: u64,
    /// Acks after their timeout.
    pub late_acks: u64,
    /// Messages that waited for the previous ack.
    pub queued_behind_ack: u64,
    /// Messages due but never emitted.
    pub unsent: u64,
    /// `sent` notifications matched.
    pub sent_notices: u64,
    /// `sent` notifications missing.
    pub sent_notices_missing: u64,
    /// `inbox` notifications.
    pub inbox_notices: u64,
    /// Own messages echoed back.
    pub echoes: u64,
    /// Replies that were not the partner's load-test messages.
    pub foreign_replies: u64,
    /// Errors by name.
    pub errors: BTreeMap<String, u64>,
}

/// The run's reads, counted by every chatter.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// `read` events emitted.
    pub sent: AtomicU64,
    /// Answered `{"status": "ok"}`.
    pub ok: AtomicU64,
    /// Answered anything else.
    pub failed: AtomicU64,
    /// No answer within `LOAD_ACK_TIMEOUT`, or none by the end.
    pub unanswered: AtomicU64,
    /// Answers that came after their read was given up as unanswered.
    pub late: AtomicU64,
}

/// [`ReadCounters`] as plain numbers. Every read sent ends as exactly one
/// of `ok`, `failed` or `unanswered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    /// `read` events emitted.
    pub sent: u64,
    /// Answered `{"status": "ok"}`.
    pub ok: u64,
    /// Answered anything else (an error, by name in the run's errors as
    /// `read:<name>`).
    pub failed: u64,
    /// No answer within `LOAD_ACK_TIMEOUT`, or none by the end.
    pub unanswered: u64,
    /// Answers that came after their read was given up as unanswered.
    pub late: u64,
}

impl ReadCounters {
    /// A copy for the report.
    pub fn snapshot(&self) -> ReadCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        ReadCounts {
            sent: get(&self.sent),
            ok: get(&self.ok),
            failed: get(&self.failed),
            unanswered: get(&self.unanswered),
            late: get(&self.late),
        }
    }
}

/// The run's reconnects, counted by every reconnecting chatter.
#[derive(Debug, Default)]
pub struct RejoinCounters {
    /// Sockets dropped and replaced, the new one joined.
    pub done: AtomicU64,
    /// Chatters that could not get a joined socket back before the end.
    pub failed: AtomicU64,
    /// `reply` events replayed by `join {"since"}` (the acks' `replayed`).
    pub replayed: AtomicU64,
    /// Joins whose ack said `complete: false`.
    pub incomplete: AtomicU64,
    /// Messages read over HTTP after an incomplete replay.
    pub paged: AtomicU64,
    /// Live `reply` events already read over HTTP, left out.
    pub paged_overlap: AtomicU64,
    /// Events of a dropped socket that came after the drop, left out.
    pub stale: AtomicU64,
    /// Messages due while their chatter reconnected, sent on the new socket.
    pub held: AtomicU64,
}

/// [`RejoinCounters`] as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RejoinCounts {
    /// Sockets dropped and replaced, the new one joined.
    pub done: u64,
    /// Chatters left without a socket.
    pub failed: u64,
    /// Messages replayed by `join {"since"}`.
    pub replayed: u64,
    /// Replays that stopped at the service's limit (`complete: false`).
    pub incomplete: u64,
    /// Messages read over HTTP after an incomplete replay.
    pub paged: u64,
    /// Live replies already read over HTTP, left out.
    pub paged_overlap: u64,
    /// Events of a dropped socket after the drop, left out.
    pub stale: u64,
    /// Messages that waited for a new socket.
    pub held: u64,
}

impl RejoinCounters {
    /// A copy for the report.
    pub fn snapshot(&self) -> RejoinCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        RejoinCounts {
            done: get(&self.done),
            failed: get(&self.failed),
            replayed: get(&self.replayed),
            incomplete: get(&self.incomplete),
            paged: get(&self.paged),
            paged_overlap: get(&self.paged_overlap),
            stale: get(&self.stale),
            held: get(&self.held),
        }
    }

    /// Adds `count` to `counter`.
    pub fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }
}
