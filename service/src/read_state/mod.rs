//! Read state: each member's read marker, and the conversation list with
//! unread counts ([`conversations`]).
//!
//! A marker only moves forward: the store keeps the larger message id
//! whatever order writes arrive in (see `migrations/0005_read_state.cql`),
//! so two devices marking at once cannot move it back.
//!
//! Costs: nothing per message. Unread counts are not kept per member,
//! which would be a write per member per message: they are counted from
//! history when the list is read, and only for rooms whose newest message
//! is past the reader's marker, so a Kafka re-delivery or a consumer
//! restart cannot skew them. Moving a marker costs a membership check, a
//! read of the marker and one write, plus a point read of the message when
//! this instance did not deliver it in the last ten minutes.

pub mod conversations;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{
    domain::{Audience, MessageId, RoomId, UserId},
    fanout::user_channel,
    membership::Membership,
    store::{Storage, StoreError},
};

/// Why a marker was not moved.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The room is unknown or the user is not a member.
    #[error("room not found")]
    RoomNotFound,
    /// The room has no such message.
    #[error("message not found")]
    MessageNotFound,
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Messages this instance knows were stored, with their room: each
/// instance delivers every message of every room, so the message a reader
/// marks (the newest they got) is almost always known without a read.
pub trait RecentMessages: Send + Sync {
    /// The room of message `id`, if it is known here.
    fn room_of(&self, id: MessageId) -> Option<RoomId>;
}

/// Moves read markers.
pub struct Reading {
    storage: Storage,
    membership: Arc<Membership>,
    recent: Arc<dyn RecentMessages>,
}

/// What the room's members' sockets are to hear after a marker moved:
/// `notification` with `payload` to the Socket.IO rooms `to`. The edge
/// that asked emits it (HTTP to every socket of the reader, a socket to
/// all but itself).
#[derive(Debug)]
pub struct Moved {
    /// The members' user channels.
    pub to: Vec<String>,
    /// `{"name": "read", "content": {"roomId", "userId", "messageId"}}`.
    pub payload: Value,
}

impl Reading {
    /// Markers in `storage`, for members per `membership`; messages
    /// delivered here lately are checked in `recent` first.
    pub fn new(
        storage: Storage,
        membership: Arc<Membership>,
        recent: Arc<dyn RecentMessages>,
    ) -> Self {
        Self {
            storage,
            membership,
            recent,
        }
    }

    /// Marks `room` read up to `message` for `user`; what the room should
    /// hear when that moved the marker, `None` when it was past it already.
    pub async fn mark(
        &self,
        user: UserId,
        room: RoomId,
        message: MessageId,
    ) -> Result<Option<Moved>, ReadError> {
        let audience = self
            .membership
            .audience_of(room, user)
            .await?
            .ok_or(ReadError::RoomNotFound)?;
        let known = self.recent.room_of(message) == Some(room);
        if !known && !self.storage.messages.contains(room, message).await? {
            return Err(ReadError::MessageNotFound);
        }
        let read_state = &self.storage.read_state;
        if read_state
            .marker(room, user)
            .await?
            .is_some_and(|marker| marker >= message)
        {
            return Ok(None);
        }
        read_state.mark_read(room, user, message).await?;
        metrics::counter!("read_markers_moved_total").increment(1);
        let members = match audience {
            Audience::Peer(peer) => vec![user, peer],
            Audience::Group => self.storage.rooms.members(room).await?,
        };
        let payload = json!({
            "name": "read",
            "content": { "roomId": room, "userId": user, "messageId": message },
        });
        Ok(Some(Moved {
            to: members.into_iter().map(user_channel).collect(),
            payload,
        }))
    }
}
