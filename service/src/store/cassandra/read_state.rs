//! Read markers in Cassandra (`migrations/0005_read_state.cql`), written
//! `USING TIMESTAMP <message id>` so the larger id wins, plus a user's rooms.

use chrono::{DateTime, Utc};
use scylla::{client::session::Session, statement::prepared::PreparedStatement};
use uuid::Uuid;

use super::{prepare_idempotent, unavailable, CassandraStore};
use crate::{
    domain::{MessageId, RoomId, RoomKind, UserId},
    store::{ReadState, RoomEntry, StoreError},
};

pub(super) struct Statements {
    pub(super) message_exists: PreparedStatement,
    mark: PreparedStatement,
    marker: PreparedStatement,
    markers: PreparedStatement,
    rooms_of_user: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, keyspace: &str) -> anyhow::Result<Self> {
        let prepare = |cql: String| prepare_idempotent(session, cql);
        Ok(Self {
            message_exists: prepare(format!(
                "SELECT id FROM {keyspace}.messages_by_room \
                 WHERE room_id = ? AND bucket = ? AND id = ?"
            ))
            .await?,
            mark: prepare(format!(
                "INSERT INTO {keyspace}.read_markers (room_id, user_id, message_id) \
                 VALUES (?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            marker: prepare(format!(
                "SELECT message_id FROM {keyspace}.read_markers WHERE room_id = ? AND user_id = ?"
            ))
            .await?,
            markers: prepare(format!(
                "SELECT user_id, message_id FROM {keyspace}.read_markers WHERE room_id = ?"
            ))
            .await?,
            rooms_of_user: prepare(format!(
                "SELECT room_id, kind, created_at FROM {keyspace}.rooms_by_user WHERE user_id = ?"
            ))
            .await?,
        })
    }
}

impl CassandraStore {
    fn read(&self) -> &Statements {
        &self.statements.read
    }

    pub(super) async fn rooms_of_user(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError> {
        let rows = self
            .query_rows(&self.read().rooms_of_user, (user.0,))
            .await?;
        rows.rows::<(Uuid, Option<String>, Option<DateTime<Utc>>)>()
            .map_err(unavailable)?
            .map(|row| {
                let (room, kind, created_at) = row.map_err(unavailable)?;
                Ok(RoomEntry {
                    room_id: RoomId(room),
                    kind: match kind.as_deref() {
                        Some("group") => RoomKind::Group,
                        _ => RoomKind::Private,
                    },
                    created_at: created_at.unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl ReadState for CassandraStore {
    async fn mark_read(&self, room: RoomId, user: UserId, id: MessageId) -> Result<(), StoreError> {
        self.run(
            &self.read().mark,
            (room.0, user.0, id.as_i64(), id.as_i64()),
        )
        .await?;
        Ok(())
    }

    async fn marker(&self, room: RoomId, user: UserId) -> Result<Option<MessageId>, StoreError> {
        let rows = self
            .query_rows(&self.read().marker, (room.0, user.0))
            .await?;
        rows.maybe_first_row::<(i64,)>()
            .map_err(unavailable)?
            .map(|(id,)| MessageId::from_i64(id).map_err(unavailable))
            .transpose()
    }

    async fn markers(&self, room: RoomId) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let rows = self.query_rows(&self.read().markers, (room.0,)).await?;
        rows.rows::<(Uuid, i64)>()
            .map_err(unavailable)?
            .map(|row| {
                let (user, id) = row.map_err(unavailable)?;
                Ok((UserId(user), MessageId::from_i64(id).map_err(unavailable)?))
            })
            .collect()
    }
}
