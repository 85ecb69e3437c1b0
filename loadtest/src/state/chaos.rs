//! The chaos mode's part of the run's state: each chatter's history and
//! identity, the faults so far, and the clients' reconnects and catch-ups.
//! The chatters and the nemesis write it; [`crate::chaos`] reads it at the
//! end.

use std::{
    sync::{atomic::AtomicU64, Mutex, OnceLock},
    time::Duration,
};

use crate::history::{FaultWindow, StreamHistory};

/// Who a chatter is, for reading its room at the end.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its token.
    pub token: String,
    /// Its room with its partner.
    pub room_id: String,
}

/// The chaos mode's shared state.
pub struct ChaosRun {
    /// One history per author, by chatter index.
    pub history: Vec<Mutex<StreamHistory>>,
    /// Each chatter's identity once it is set up.
    pub identities: Vec<OnceLock<Identity>>,
    /// The faults so far.
    pub windows: Mutex<Vec<FaultWindow>>,
    /// For catch-ups, `/ready` probes and the final read of the rooms.
    pub http: reqwest::Client,
    /// Sockets opened again after one was lost.
    pub reconnects: AtomicU64,
    /// Chatters that could not reconnect before the end.
    pub reconnect_failures: AtomicU64,
    /// Catch-ups started.
    pub catch_ups: AtomicU64,
    /// Catch-ups that gave up.
    pub catch_up_failures: AtomicU64,
}

impl ChaosRun {
    /// Empty state for `users` chatters.
    pub fn new(users: usize) -> anyhow::Result<Self> {
        Ok(Self {
            history: (0..users).map(|_| Mutex::default()).collect(),
            identities: (0..users).map(|_| OnceLock::new()).collect(),
            windows: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            reconnects: AtomicU64::default(),
            reconnect_failures: AtomicU64::default(),
            catch_ups: AtomicU64::default(),
            catch_up_failures: AtomicU64::default(),
        })
    }
}
