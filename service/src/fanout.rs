//! The emitting side of Socket.IO as the layers below the gateway see it,
//! and the names of the Socket.IO rooms they emit to. The pipeline, groups,
//! presence, read state and session endings emit through [`Fanout`]; the
//! gateway (`realtime`) implements it on its `SocketIo`, local or
//! Redis-backed, so none of them cares how many instances there are.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Value};

use crate::domain::{MessageId, RoomId, UserId};

/// The Socket.IO room of a chat room's joined sockets.
pub fn room_channel(room: RoomId) -> String {
    format!("room:{room}")
}

/// The Socket.IO room of every socket (device) of a user.
pub fn user_channel(user: UserId) -> String {
    format!("user:{user}")
}

/// The Socket.IO room holding only one socket, so it can be named in
/// `except` on any instance.
pub fn socket_channel(socket: &str) -> String {
    format!("socket:{socket}")
}

/// The Socket.IO room of the sockets opened with one login session.
pub fn session_channel(session: &str) -> String {
    format!("session:{session}")
}

/// A stored message, ready to be told to the room, its author and the
/// other members: the `reply` to the room's joined sockets but the sending
/// one, `sent` to the author's sockets, `inbox` to the other members'
/// sockets that have not joined the room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub message_id: MessageId,
    pub room_id: RoomId,
    pub author_id: UserId,
    /// The members who get `inbox`: every member but the author.
    pub inbox: Vec<UserId>,
    /// The socket that sent it, which does not get the `reply`.
    pub origin_socket: Option<String>,
    /// The message as the `reply` event carries it, encoded once.
    pub reply: Box<RawValue>,
}

#[cfg(test)]
impl Delivery {
    /// A delivery of message `id` in `room` by a random author, sent from
    /// `origin` (a socket id), for tests.
    pub fn for_test(room: RoomId, id: MessageId, origin: Option<&str>) -> Self {
        Delivery {
            message_id: id,
            room_id: room,
            author_id: UserId::random(),
            inbox: Vec::new(),
            origin_socket: origin.map(str::to_owned),
            reply: serde_json::value::to_raw_value(&id.to_string()).unwrap(),
        }
    }
}

/// An emit failed (the adapter could not reach Redis, for one).
#[derive(Debug, Clone, thiserror::Error)]
#[error("emit failed: {0}")]
pub struct FanoutError(pub String);

/// Emits events to sockets on every instance.
#[async_trait]
pub trait Fanout: Send + Sync {
    /// Emits `event` with `payload` to the sockets in any of `to` but in
    /// none of `except`.
    async fn emit(
        &self,
        to: Vec<String>,
        except: Vec<String>,
        event: &str,
        payload: &Value,
    ) -> Result<(), FanoutError>;

    /// Delivers a stored message on every instance, at most once per socket
    /// even when it is handed over more than once (a Kafka re-delivery, a
    /// retry after an outage).
    async fn deliver(&self, delivery: &Delivery) -> Result<(), FanoutError>;

    /// Takes the sockets in any of `to` out of the Socket.IO room `room`,
    /// on every instance; returns once every instance has done it.
    async fn leave(&self, to: Vec<String>, room: String) -> Result<(), FanoutError>;

    /// Disconnects the sockets in any of `to`, on every instance.
    async fn disconnect(&self, to: Vec<String>) -> Result<(), FanoutError>;

    /// False while emits cannot reach every instance (the adapter lost
    /// Redis, or got it back too recently for the others to resubscribe):
    /// the pipeline holds its emits until this is true.
    fn settled(&self) -> bool {
        true
    }

    /// Disconnects every socket of this instance (at shutdown).
    async fn close(&self);
}
