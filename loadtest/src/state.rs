//! The state every chatter shares with the run: settings, the registry of
//! who is who, the group rooms made, the start gate, the message ledgers,
//! latencies and counters.
//!
//! Goose transactions are plain functions of `&mut GooseUser`, so this
//! lives in a process-wide cell set once before the attack starts.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;

use crate::{
    capacity::CapacityRun,
    chaos::ChaosRun,
    config::Settings,
    conversation::{ReadCounters, RejoinCounters},
    coord::{Registry, RoomBoard, StartGate},
    latency::{lock, Latencies},
    ledger::{StreamLedger, Tally},
};

/// Time between the start decision and the first message.
const START_LEAD: Duration = Duration::from_secs(2);

static RUN: OnceLock<Arc<RunState>> = OnceLock::new();

/// Installs the run's state; the first call wins.
pub fn install(state: RunState) -> Arc<RunState> {
    RUN.get_or_init(|| Arc::new(state)).clone()
}

/// The run's state; `None` before [`install`].
pub fn current() -> Option<Arc<RunState>> {
    RUN.get().cloned()
}

/// Everything shared by the chatters of one run.
pub struct RunState {
    /// The run's settings.
    pub settings: Settings,
    /// When the run began.
    pub began: Instant,
    /// Who registered and joined.
    pub registry: Registry,
    /// The group rooms, as their creators make them (unused for pairs).
    pub rooms: RoomBoard,
    /// One start time for all.
    pub gate: StartGate,
    /// One ledger per author, indexed by chatter, with a slot for each of
    /// its room-mates.
    pub ledgers: Vec<Mutex<StreamLedger>>,
    /// Latency histograms.
    pub latencies: Latencies,
    /// Everything else that is counted.
    pub counters: Counters,
    /// The chaos mode's history and faults; `None` outside it.
    pub chaos: Option<ChaosRun>,
    /// The capacity mode's per-step accounts; `None` outside it.
    pub capacity: Option<CapacityRun>,
    /// When sending ends, if decided before `LOAD_DURATION` (the nemesis
    /// decides it in chaos mode).
    sending_ends: Mutex<Option<Instant>>,
}

impl RunState {
    /// Fresh state for `settings`.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let users = settings.users;
        let rooms = settings.rooms();
        let chaos = match settings.chaos {
            Some(_) => Some(ChaosRun::new(users)?),
            None => None,
        };
        let capacity = settings
            .capacity
            .as_ref()
            .map(|capacity| CapacityRun::new(capacity, rooms.recipients()));
        Ok(Self {
            began: Instant::now(),
            registry: Registry::new(users),
            rooms: RoomBoard::new(if rooms.is_group() {
                users / rooms.size()
            } else {
                0
            }),
            gate: StartGate::new(users, START_LEAD),
            ledgers: (0..users)
                .map(|_| Mutex::new(StreamLedger::new(rooms.recipients())))
                .collect(),
            latencies: Latencies::new(),
            counters: Counters::default(),
            chaos,
            capacity,
            sending_ends: Mutex::new(None),
            settings,
        })
    }

    /// When sending ends for a run that started sending at `start`.
    pub fn send_end(&self, start: Instant) -> Instant {
        let planned = start + self.settings.duration;
        lock(&self.sending_ends).map_or(planned, |end| end.min(planned))
    }

    /// Ends sending at `end` (if before `LOAD_DURATION`): the nemesis
    /// decides it in chaos mode, the first failed step in capacity mode.
    pub fn end_sending_at(&self, end: Instant) {
        *lock(&self.sending_ends) = Some(end);
    }

    /// How long the chatters send (or sent): `LOAD_DURATION`, or less when
    /// the end was decided during the run.
    pub fn sending_window(&self) -> Duration {
        match self.gate.decided() {
            Some(start) => self.send_end(start).saturating_duration_since(start),
            None => self.settings.duration,
        }
    }

    /// The latest time sending may start: the expected end of the ramp plus
    /// the setup timeout.
    pub fn start_deadline(&self) -> Instant {
        self.began + self.settings.expected_ramp() + self.settings.setup_timeout
    }

    /// The messages of every stream, added up.
    pub fn tally(&self) -> Tally {
        let mut total = Tally::default();
        for ledger in &self.ledgers {
            total.add(&lock(ledger).tally());
        }
        total
    }
}

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
