//! Read markers and each room's latest message in Cassandra
//! (`migrations/0005_read_state.cql`), plus a user's rooms. Both tables are
//! written `USING TIMESTAMP <message id>`, so the larger id wins.

use chrono::{DateTime, Utc};
use scylla::{client::session::Session, statement::prepared::PreparedStatement};
use uuid::Uuid;

use super::{
    messages::{message_of, MessageRow},
    unavailable, CassandraStore,
};
use crate::{
    domain::{Message, MessageId, RoomId, RoomKind, UserId},
    store::{ReadState, RoomEntry, StoreError},
};

pub(super) struct Statements {
    pub(super) message_exists: PreparedStatement,
    touch: PreparedStatement,
    latest: PreparedStatement,
    mark: PreparedStatement,
    marker: PreparedStatement,
    markers: PreparedStatement,
    rooms_of_user: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, keyspace: &str) -> anyhow::Result<Self> {
        let prepare = |cql: String| async move {
            let mut statement = session.prepare(cql).await?;
            statement.set_is_idempotent(true);
            anyhow::Ok(statement)
        };
        let columns = "id, author_id, type, content_type, message, client_message_id, created_at";
        Ok(Self {
            message_exists: prepare(format!(
                "SELECT id FROM {keyspace}.messages_by_room \
                 WHERE room_id = ? AND bucket = ? AND id = ?"
            ))
            .await?,
            touch: prepare(format!(
                "INSERT INTO {keyspace}.room_activity (room_id, {columns}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            latest: prepare(format!(
                "SELECT {columns} FROM {keyspace}.room_activity WHERE room_id = ?"
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
            .session
            .execute_unpaged(&self.read().rooms_of_user, (user.0,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
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
    async fn touch(&self, message: &Message) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.read().touch,
                (
                    message.room_id.0,
                    message.id.as_i64(),
                    message.author_id.0,
                    &message.kind,
                    &message.content.kind,
                    &message.content.message,
                    &message.client_message_id,
                    message.created_at,
                    message.id.as_i64(),
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn latest(&self, room: RoomId) -> Result<Option<Message>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.read().latest, (room.0,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        rows.maybe_first_row::<MessageRow>()
            .map_err(unavailable)?
            .map(|row| message_of(room, row))
            .transpose()
    }

    async fn mark_read(&self, room: RoomId, user: UserId, id: MessageId) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.read().mark,
                (room.0, user.0, id.as_i64(), id.as_i64()),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn marker(&self, room: RoomId, user: UserId) -> Result<Option<MessageId>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.read().marker, (room.0, user.0))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        rows.maybe_first_row::<(i64,)>()
            .map_err(unavailable)?
            .map(|(id,)| MessageId::from_i64(id).map_err(unavailable))
            .transpose()
    }

    async fn markers(&self, room: RoomId) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.read().markers, (room.0,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        rows.rows::<(Uuid, i64)>()
            .map_err(unavailable)?
            .map(|row| {
                let (user, id) = row.map_err(unavailable)?;
                Ok((UserId(user), MessageId::from_i64(id).map_err(unavailable)?))
            })
            .collect()
    }
}
