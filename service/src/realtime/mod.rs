//! The Socket.IO gateway: namespace `/chats` on the HTTP port.
//!
//! - [`gateway`]: builds Socket.IO on the HTTP port, local or on Redis.
//! - [`auth`]: the handshake guard (token from header or auth payload).
//! - [`catch_up`]: `join` with `since`, replay then live, with no race.
//! - [`handlers`]: `leave`, `message`, `read`; [`joining`]: `join`;
//!   [`typing`]: `typing`.
//! - [`payload`]: hand-written parsing, so every bad shape is answered.
//! - [`respond`] and [`error`]: answers on the ack or as an `error` event.
//! - [`session`]: a socket ends with its login session (logout, expiry).
//! - [`socket_fanout`]: the [`Fanout`](crate::fanout::Fanout) of the layers
//!   below, through the local or Redis adapter; [`local_delivery`]: a stored
//!   message to this instance's sockets, once each.
//! - [`relay`]: stored messages to every instance, a batch per publish.
//! - [`seen`]: each message reaches a socket once.
//! - [`redis_driver`]: the adapter's Redis connection, which reconnects and
//!   resubscribes by itself after Redis restarts.
//!
//! Every incoming frame is capped (`SOCKET_FRAME_LIMIT_BYTES`, see
//! [`DEFAULT_FRAME_LIMIT`](crate::config::DEFAULT_FRAME_LIMIT)): a larger one closes its connection before the
//! server reads it.
//!
//! With Redis configured, the instance that consumed a message reaches
//! sockets connected anywhere: stored messages go to every instance
//! through the [`relay`], and the other emits through the socketioxide
//! Redis adapter.

pub mod auth;
pub mod catch_up;
pub mod error;
pub mod gateway;
pub mod handlers;
pub mod joining;
pub mod local_delivery;
pub mod mend;
pub mod payload;
pub mod redis_driver;
pub mod relay;
pub mod replayed;
mod request_head;
pub mod respond;
pub mod seen;
pub mod session;
pub mod socket_fanout;
pub mod typing;

use std::sync::Arc;

use self::{catch_up::CatchUps, seen::Seen};
use crate::{
    limits::{sockets::SocketsPerUser, Limits},
    membership::Membership,
    pipeline::accept::Acceptor,
    presence::Keeper,
    read_state::Reading,
    sessions::Sessions,
    store::Messages,
};

/// The namespace of the chat.
pub const NAMESPACE: &str = "/chats";

/// What every socket handler can reach: cheap, cloneable handles.
#[derive(Clone)]
pub struct RealtimeState {
    /// Resolves handshake tokens.
    pub sessions: Arc<dyn Sessions>,
    /// Who is in which room.
    pub membership: Arc<Membership>,
    /// Read markers.
    pub reading: Arc<Reading>,
    /// Per-user message rate (and the login throttle), across instances.
    pub limits: Arc<Limits>,
    /// Publishes accepted messages.
    pub acceptor: Arc<Acceptor>,
    /// History, for catch-up.
    pub messages: Arc<dyn Messages>,
    /// Sockets of this instance catching up.
    pub catch_ups: Arc<CatchUps>,
    /// The messages this instance delivered recently.
    pub seen: Arc<Seen>,
    /// Who is online.
    pub presence: Arc<Keeper>,
    /// Sockets per user on this instance.
    pub sockets_per_user: Arc<SocketsPerUser>,
}
