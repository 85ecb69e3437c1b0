use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{unavailable, was_applied, CassandraStore};
use crate::{
    domain::{Room, RoomId, RoomKind, UserId},
    store::{Added, RoomEntry, Rooms, StoreError},
};

impl CassandraStore {
    async fn room_of_pair(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        pair: (Uuid, Uuid),
    ) -> Result<Option<(Uuid, DateTime<Utc>)>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(statement, pair)
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        rows.maybe_first_row::<(Uuid, DateTime<Utc>)>()
            .map_err(unavailable)
    }
}

#[async_trait]
impl Rooms for CassandraStore {
    async fn private_room(&self, a: UserId, b: UserId) -> Result<RoomId, StoreError> {
        let pair = if a <= b { (a.0, b.0) } else { (b.0, a.0) };
        let (room, created_at) = match self
            .room_of_pair(&self.statements.room_by_pair, pair)
            .await?
        {
            Some(room) => room,
            None => {
                // The lightweight transaction makes racing callers agree:
                // one claim wins, the others read the winner serially.
                let candidate = (Uuid::new_v4(), Utc::now());
                let claim = self
                    .session
                    .execute_unpaged(
                        &self.statements.claim_room,
                        (pair.0, pair.1, candidate.0, candidate.1),
                    )
                    .await
                    .map_err(unavailable)?;
                if was_applied(claim)? {
                    candidate
                } else {
                    self.room_of_pair(&self.statements.room_by_pair_serial, pair)
                        .await?
                        .ok_or_else(|| unavailable(anyhow::anyhow!("claimed room not readable")))?
                }
            }
        };
        // Written on every call, so a crash between the writes heals.
        self.session
            .execute_unpaged(
                &self.statements.insert_room_by_id,
                (room, pair.0, pair.1, created_at),
            )
            .await
            .map_err(unavailable)?;
        let room = RoomId(room);
        for user in [a, b] {
            self.record_room_of(room, RoomKind::Private, user, created_at)
                .await?;
        }
        Ok(room)
    }

    async fn participants(&self, room: RoomId) -> Result<Option<[UserId; 2]>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.statements.room_by_id, (room.0,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        Ok(rows
            .maybe_first_row::<(Uuid, Uuid)>()
            .map_err(unavailable)?
            .map(|(low, high)| [UserId(low), UserId(high)]))
    }

    async fn room(&self, room: RoomId) -> Result<Option<Room>, StoreError> {
        match self.private_room_row(room).await? {
            Some(private) => Ok(Some(private)),
            None => self.group(room).await,
        }
    }

    async fn create_group(&self, room: &Room) -> Result<(), StoreError> {
        self.insert_group(room).await
    }

    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        self.is_group_member(room, user).await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<UserId>, StoreError> {
        self.group_members(room).await
    }

    async fn add_members(
        &self,
        room: RoomId,
        users: &[UserId],
        max: usize,
    ) -> Result<Added, StoreError> {
        self.add_group_members(room, users, max).await
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        self.remove_group_member(room, user).await
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError> {
        self.rooms_of_user(user).await
    }
}
