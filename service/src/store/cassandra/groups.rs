//! Groups in Cassandra: `groups_by_id`, `members_by_room` and
//! `rooms_by_user` (see `migrations/0004_groups.cql`).

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use scylla::{client::session::Session, statement::prepared::PreparedStatement};
use uuid::Uuid;

use super::{prepare_idempotent, unavailable, was_applied, CassandraStore};
use crate::{
    domain::{Room, RoomId, RoomKind, RoomName, UserId},
    store::{Added, StoreError},
};

/// Writes issued at once when a group gains many members.
const WRITES_IN_FLIGHT: usize = 32;
/// Additions that lose the race for a group's version try again this often.
const ADD_TRIES: usize = 8;

pub(super) struct Statements {
    private_by_id: PreparedStatement,
    group_by_id: PreparedStatement,
    insert_group: PreparedStatement,
    bump_version: PreparedStatement,
    member: PreparedStatement,
    members: PreparedStatement,
    insert_member: PreparedStatement,
    delete_member: PreparedStatement,
    insert_room_of_user: PreparedStatement,
    delete_room_of_user: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, keyspace: &str) -> anyhow::Result<Self> {
        let prepare = |cql: String| prepare_idempotent(session, cql);
        let mut bump_version = session
            .prepare(format!(
                "UPDATE {keyspace}.groups_by_id SET version = ? WHERE room_id = ? IF version = ?"
            ))
            .await?;
        bump_version.set_is_idempotent(false);
        Ok(Self {
            private_by_id: prepare(format!(
                "SELECT user_low, user_high, created_at FROM {keyspace}.rooms_by_id \
                 WHERE room_id = ?"
            ))
            .await?,
            group_by_id: prepare(format!(
                "SELECT name, created_at, version FROM {keyspace}.groups_by_id WHERE room_id = ?"
            ))
            .await?,
            insert_group: prepare(format!(
                "INSERT INTO {keyspace}.groups_by_id (room_id, name, created_at, version) \
                 VALUES (?, ?, ?, 0)"
            ))
            .await?,
            bump_version,
            member: prepare(format!(
                "SELECT user_id FROM {keyspace}.members_by_room WHERE room_id = ? AND user_id = ?"
            ))
            .await?,
            members: prepare(format!(
                "SELECT user_id FROM {keyspace}.members_by_room WHERE room_id = ?"
            ))
            .await?,
            insert_member: prepare(format!(
                "INSERT INTO {keyspace}.members_by_room (room_id, user_id, joined_at) \
                 VALUES (?, ?, ?)"
            ))
            .await?,
            delete_member: prepare(format!(
                "DELETE FROM {keyspace}.members_by_room WHERE room_id = ? AND user_id = ?"
            ))
            .await?,
            insert_room_of_user: prepare(format!(
                "INSERT INTO {keyspace}.rooms_by_user (user_id, room_id, kind, created_at) \
                 VALUES (?, ?, ?, ?)"
            ))
            .await?,
            delete_room_of_user: prepare(format!(
                "DELETE FROM {keyspace}.rooms_by_user WHERE user_id = ? AND room_id = ?"
            ))
            .await?,
        })
    }
}

/// A group's own row.
struct GroupRow {
    name: Option<String>,
    created_at: DateTime<Utc>,
    version: i64,
}

impl CassandraStore {
    fn groups(&self) -> &Statements {
        &self.statements.groups
    }

    pub(super) async fn private_room_row(&self, room: RoomId) -> Result<Option<Room>, StoreError> {
        let rows = self
            .query_rows(&self.groups().private_by_id, (room.0,))
            .await?;
        Ok(rows
            .maybe_first_row::<(Uuid, Uuid, DateTime<Utc>)>()
            .map_err(unavailable)?
            .map(|(low, high, created_at)| Room {
                room_id: room,
                kind: RoomKind::Private,
                name: None,
                participant_ids: vec![UserId(low), UserId(high)],
                created_at,
            }))
    }

    async fn group_row(&self, room: RoomId) -> Result<Option<GroupRow>, StoreError> {
        let rows = self
            .query_rows(&self.groups().group_by_id, (room.0,))
            .await?;
        Ok(rows
            .maybe_first_row::<(Option<String>, DateTime<Utc>, Option<i64>)>()
            .map_err(unavailable)?
            .map(|(name, created_at, version)| GroupRow {
                name,
                created_at,
                version: version.unwrap_or(0),
            }))
    }

    pub(super) async fn group(&self, room: RoomId) -> Result<Option<Room>, StoreError> {
        let Some(row) = self.group_row(room).await? else {
            return Ok(None);
        };
        Ok(Some(Room {
            room_id: room,
            kind: RoomKind::Group,
            name: row
                .name
                .as_deref()
                .and_then(|name| RoomName::parse(name).ok()),
            participant_ids: self.group_members(room).await?,
            created_at: row.created_at,
        }))
    }

    pub(super) async fn is_group_member(
        &self,
        room: RoomId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        let rows = self
            .query_rows(&self.groups().member, (room.0, user.0))
            .await?;
        Ok(rows.rows_num() > 0)
    }

    pub(super) async fn group_members(&self, room: RoomId) -> Result<Vec<UserId>, StoreError> {
        let rows = self.query_rows(&self.groups().members, (room.0,)).await?;
        // Cassandra orders uuids its own way; callers get Rust's order.
        let mut members = rows
            .rows::<(Uuid,)>()
            .map_err(unavailable)?
            .map(|row| row.map(|(user,)| UserId(user)).map_err(unavailable))
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_unstable();
        Ok(members)
    }

    /// Records `user` in `room` (made at `created_at`) under both
    /// partition keys. Written on every call, so a retried addition heals
    /// a half-written one.
    pub(super) async fn record_room_of(
        &self,
        room: RoomId,
        kind: RoomKind,
        user: UserId,
        created_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if kind == RoomKind::Group {
            self.run(&self.groups().insert_member, (room.0, user.0, Utc::now()))
                .await?;
        }
        self.run(
            &self.groups().insert_room_of_user,
            (user.0, room.0, kind.as_str(), created_at),
        )
        .await?;
        Ok(())
    }

    async fn record_members(
        &self,
        room: RoomId,
        users: &[UserId],
        created_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        stream::iter(users.iter().copied())
            .map(|user| self.record_room_of(room, RoomKind::Group, user, created_at))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// The members first, the group's row last: a group whose creation was
    /// cut short does not exist for anyone.
    pub(super) async fn insert_group(&self, room: &Room) -> Result<(), StoreError> {
        self.record_members(room.room_id, &room.participant_ids, room.created_at)
            .await?;
        self.run(
            &self.groups().insert_group,
            (
                room.room_id.0,
                room.name.as_ref().map(RoomName::as_str),
                room.created_at,
            ),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn add_group_members(
        &self,
        room: RoomId,
        users: &[UserId],
        max: usize,
    ) -> Result<Added, StoreError> {
        for _ in 0..ADD_TRIES {
            let Some(group) = self.group_row(room).await? else {
                return Ok(Added::NoGroup);
            };
            let members = self.group_members(room).await?;
            let mut new: Vec<UserId> = users
                .iter()
                .copied()
                .filter(|user| members.binary_search(user).is_err())
                .collect();
            new.sort_unstable();
            new.dedup();
            if members.len() + new.len() > max {
                return Ok(Added::OverLimit);
            }
            if new.is_empty() {
                return Ok(Added::Members(new));
            }
            // Claims this version of the group: an addition that raced
            // this one and won makes this one read the members again.
            let claim = self
                .session
                .execute_unpaged(
                    &self.groups().bump_version,
                    (group.version + 1, room.0, group.version),
                )
                .await
                .map_err(unavailable)?;
            if !was_applied(claim)? {
                continue;
            }
            self.record_members(room, &new, group.created_at).await?;
            return Ok(Added::Members(new));
        }
        Err(unavailable(anyhow::anyhow!(
            "too many concurrent changes to group {room}"
        )))
    }

    pub(super) async fn remove_group_member(
        &self,
        room: RoomId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        if !self.is_group_member(room, user).await? {
            return Ok(false);
        }
        self.run(&self.groups().delete_member, (room.0, user.0))
            .await?;
        self.run(&self.groups().delete_room_of_user, (user.0, room.0))
            .await?;
        Ok(true)
    }
}
