//! What every HTTP handler can reach.

use std::{sync::Arc, time::Duration};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    fanout::Fanout,
    limits::Limits,
    membership::{groups::Groups, Membership},
    presence::Keeper,
    read_state::{conversations::Conversations, Reading},
    sessions::Sessions,
    store::{Probe, Storage},
};

/// What every handler can reach: cheap, cloneable handles.
#[derive(Clone)]
pub struct AppState {
    /// Accounts, rooms, messages.
    pub storage: Storage,
    /// Who is in which room.
    pub membership: Arc<Membership>,
    /// Changes to groups.
    pub groups: Arc<Groups>,
    /// Read markers.
    pub reading: Arc<Reading>,
    /// The conversation list.
    pub conversations: Arc<Conversations>,
    /// Who is online.
    pub presence: Arc<Keeper>,
    /// Login sessions.
    pub sessions: Arc<dyn Sessions>,
    /// The sockets of every instance, to end a session's sockets.
    pub sockets: Arc<dyn Fanout>,
    /// Backends that `/ready` asks.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Lifetime of a new token.
    pub token_ttl: Duration,
    /// Whether accounts without a password exist (`PASSWORDLESS_ACCOUNTS`).
    pub passwordless_accounts: bool,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Failed logins by username (and the message rate), across instances.
    pub limits: Arc<Limits>,
}
