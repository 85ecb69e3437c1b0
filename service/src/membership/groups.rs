//! Changes to groups: create, add members, leave. Each change is stored
//! first, then every member's sockets hear `notification {"name":
//! "members"}`; a member who leaves has their sockets taken out of the
//! room on every instance before the call returns.

use std::sync::Arc;

use chrono::Utc;
use futures::{stream, StreamExt};
use serde::Serialize;

use crate::{
    domain::{Room, RoomId, RoomKind, RoomName, UserId},
    fanout::{room_channel, user_channel, Fanout, FanoutError},
    store::{Accounts, Added, Rooms, StoreError},
};

/// Why a change to a group was refused. The edge maps each to its answer.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A new group needs someone besides its creator.
    #[error("participantIds must name at least one other user")]
    TooFewMembers,
    /// The room is private: its members are fixed.
    #[error("the members of a private room do not change")]
    NotAGroup,
    /// The change would pass the member limit.
    #[error("a group has at most {0} members")]
    OverLimit(usize),
    /// The room is unknown or the caller is not in it.
    #[error("room not found")]
    RoomNotFound,
    /// A user named in the request has no account.
    #[error("user {0} not found")]
    UserNotFound(UserId),
    /// The sockets could not be taken out of the room (the adapter lost Redis).
    #[error("the sockets cannot be reached")]
    SocketsUnreachable(#[source] FanoutError),
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = GroupError> = std::result::Result<T, E>;

/// Account lookups issued at once when a request names many users.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// Creates and changes groups.
pub struct Groups {
    rooms: Arc<dyn Rooms>,
    accounts: Arc<dyn Accounts>,
    sockets: Arc<dyn Fanout>,
    max_members: usize,
}

/// `notification {"name": "members"}`.
#[derive(Serialize)]
struct MembersNotice<'a> {
    name: &'static str,
    content: MembersChange<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MembersChange<'a> {
    room_id: RoomId,
    added: &'a [UserId],
    left: &'a [UserId],
}

impl Groups {
    /// Groups in `rooms` of users in `accounts`, at most `max_members`
    /// each, whose members' sockets are reached through `sockets`.
    pub fn new(
        rooms: Arc<dyn Rooms>,
        accounts: Arc<dyn Accounts>,
        sockets: Arc<dyn Fanout>,
        max_members: usize,
    ) -> Self {
        Self {
            rooms,
            accounts,
            sockets,
            max_members,
        }
    }

    /// A new group of `caller` and `others` (repeats and the caller
    /// counted once).
    pub async fn create(&self, caller: UserId, name: RoomName, others: &[UserId]) -> Result<Room> {
        let mut members: Vec<UserId> = others.to_vec();
        members.push(caller);
        members.sort_unstable();
        members.dedup();
        if members.len() < 2 {
            return Err(GroupError::TooFewMembers);
        }
        self.within_limit(members.len())?;
        self.all_exist(others).await?;
        let room = Room {
            room_id: RoomId::random(),
            kind: RoomKind::Group,
            name: Some(name),
            participant_ids: members,
            created_at: Utc::now(),
        };
        self.rooms.create_group(&room).await?;
        metrics::counter!("groups_created_total").increment(1);
        self.tell(
            &room.participant_ids,
            room.room_id,
            &room.participant_ids,
            &[],
        )
        .await;
        Ok(room)
    }

    /// The room, when `caller` is in it.
    pub async fn get(&self, caller: UserId, room: RoomId) -> Result<Room> {
        match self.rooms.room(room).await? {
            Some(room) if room.participant_ids.contains(&caller) => Ok(room),
            _ => Err(GroupError::RoomNotFound),
        }
    }

    /// Adds `users` to the group `room`, of which `caller` is a member.
    pub async fn add(&self, caller: UserId, room: RoomId, users: &[UserId]) -> Result<Room> {
        let before = self.group_of(caller, room).await?;
        self.within_limit(users.len())?;
        self.all_exist(users).await?;
        let added = match self
            .rooms
            .add_members(room, users, self.max_members)
            .await?
        {
            Added::Members(added) => added,
            Added::OverLimit => return Err(GroupError::OverLimit(self.max_members)),
            Added::NoGroup => return Err(GroupError::RoomNotFound),
        };
        let after = self
            .rooms
            .room(room)
            .await?
            .ok_or(GroupError::RoomNotFound)?;
        if !added.is_empty() {
            let mut told = before.participant_ids;
            told.extend(&added);
            self.tell(&told, room, &added, &[]).await;
        }
        Ok(after)
    }

    /// Takes `caller` out of the group `room`. Their sockets leave the
    /// room on every instance before this returns, so they get nothing of
    /// it any more.
    pub async fn leave(&self, caller: UserId, room: RoomId) -> Result<()> {
        let group = self.group_of(caller, room).await?;
        let sockets = vec![user_channel(caller)];
        // Out of the Socket.IO room first: if that fails, nothing changed
        // and the call can be made again. Again after the store, for a
        // `join` that read the membership in between.
        self.sockets
            .leave(sockets.clone(), room_channel(room))
            .await
            .map_err(GroupError::SocketsUnreachable)?;
        if !self.rooms.remove_member(room, caller).await? {
            return Err(GroupError::RoomNotFound);
        }
        if let Err(error) = self.sockets.leave(sockets, room_channel(room)).await {
            tracing::warn!(cause = %error, "cannot repeat the leave of the room's sockets");
        }
        metrics::counter!("group_leaves_total").increment(1);
        self.tell(&group.participant_ids, room, &[], &[caller])
            .await;
        Ok(())
    }

    /// The group `room`: 404 unless `caller` is in it, 400 for a private room.
    async fn group_of(&self, caller: UserId, room: RoomId) -> Result<Room> {
        let room = self.get(caller, room).await?;
        if room.kind != RoomKind::Group {
            return Err(GroupError::NotAGroup);
        }
        Ok(room)
    }

    fn within_limit(&self, members: usize) -> Result<()> {
        if members > self.max_members {
            return Err(GroupError::OverLimit(self.max_members));
        }
        Ok(())
    }

    /// 404 naming the first of `users` without an account.
    async fn all_exist(&self, users: &[UserId]) -> Result<()> {
        let mut lookups = stream::iter(users.iter().copied())
            .map(|user| async move { (user, self.accounts.by_id(user).await) })
            .buffered(LOOKUPS_IN_FLIGHT);
        while let Some((user, found)) = lookups.next().await {
            if found?.is_none() {
                return Err(GroupError::UserNotFound(user));
            }
        }
        Ok(())
    }

    /// `members` to the sockets of `members`. The change is stored already,
    /// so a notice that cannot go out is logged, not failed.
    async fn tell(&self, members: &[UserId], room: RoomId, added: &[UserId], left: &[UserId]) {
        let notice = MembersNotice {
            name: "members",
            content: MembersChange {
                room_id: room,
                added,
                left,
            },
        };
        let Ok(payload) = serde_json::to_value(&notice) else {
            return;
        };
        let to = members.iter().copied().map(user_channel).collect();
        if let Err(error) = self
            .sockets
            .emit(to, Vec::new(), "notification", &payload)
            .await
        {
            tracing::warn!(cause = %error, room_id = %room, "cannot tell the members of a change");
        }
    }
}
