//! The state every chatter shares with the run: settings, the registry of
//! who is who, the group rooms made, the start gate, the message ledgers,
//! latencies and counters ([`Counters`]), and the chaos mode's history
//! and faults ([`ChaosRun`]).
//!
//! Goose transactions are plain functions of `&mut GooseUser`, so this
//! lives in a process-wide cell set once before the attack starts.

mod chaos;
mod counters;

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tokio::time::Instant;

pub use self::{
    chaos::{ChaosRun, Identity},
    counters::{
        Counters, CountersSnapshot, ReadCounters, ReadCounts, RejoinCounters, RejoinCounts,
        SetupFailures, SetupStage,
    },
};
use crate::{
    capacity::CapacityRun,
    config::Settings,
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
