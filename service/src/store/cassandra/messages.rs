use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{unavailable, CassandraStore};
use crate::{
    domain::{HistoryPage, Message, MessageContent, MessageId, RoomId, UserId},
    locks::LockExt,
    store::{Messages, StoreError},
};

pub(super) type MessageRow = (
    i64,
    Uuid,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);

/// How many `(room, bucket)` pairs to remember before starting afresh.
const KNOWN_BUCKETS_CAP: usize = 100_000;

impl CassandraStore {
    fn bucket_of(&self, id: MessageId) -> i64 {
        id.unix_millis().div_euclid(self.bucket_millis)
    }

    async fn buckets(&self, room: RoomId, page: HistoryPage) -> Result<Vec<i64>, StoreError> {
        let statements = &self.statements;
        let result = match page {
            HistoryPage::Latest { .. } => {
                self.session
                    .execute_unpaged(&statements.buckets_all, (room.0,))
                    .await
            }
            HistoryPage::Before { id, .. } => {
                self.session
                    .execute_unpaged(&statements.buckets_up_to, (room.0, self.bucket_of(id)))
                    .await
            }
            HistoryPage::After { id, .. } => {
                self.session
                    .execute_unpaged(&statements.buckets_from, (room.0, self.bucket_of(id)))
                    .await
            }
        };
        let rows = result
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let buckets = rows
            .rows::<(i64,)>()
            .map_err(unavailable)?
            .map(|row| row.map(|(bucket,)| bucket))
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        Ok(buckets)
    }

    async fn bucket_page(
        &self,
        room: RoomId,
        bucket: i64,
        page: HistoryPage,
        limit: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let statements = &self.statements;
        let result = match page {
            HistoryPage::Latest { .. } => {
                self.session
                    .execute_unpaged(&statements.messages_latest, (room.0, bucket, limit))
                    .await
            }
            HistoryPage::Before { id, .. } => {
                self.session
                    .execute_unpaged(
                        &statements.messages_before,
                        (room.0, bucket, id.as_i64(), limit),
                    )
                    .await
            }
            HistoryPage::After { id, .. } => {
                self.session
                    .execute_unpaged(
                        &statements.messages_after,
                        (room.0, bucket, id.as_i64(), limit),
                    )
                    .await
            }
        };
        let rows = result
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        rows.rows::<MessageRow>()
            .map_err(unavailable)?
            .map(|row| message_of(room, row.map_err(unavailable)?))
            .collect()
    }
}

/// A message of `room` from its stored columns.
pub(super) fn message_of(room: RoomId, row: MessageRow) -> Result<Message, StoreError> {
    let (id, author, kind, content_kind, text, client_message_id, created_at) = row;
    Ok(Message {
        id: MessageId::from_i64(id).map_err(unavailable)?,
        room_id: room,
        author_id: UserId(author),
        kind,
        content: MessageContent {
            kind: content_kind,
            message: text,
        },
        created_at,
        client_message_id,
    })
}

#[async_trait]
impl Messages for CassandraStore {
    async fn save(&self, message: &Message) -> Result<(), StoreError> {
        let room = message.room_id.0;
        let bucket = self.bucket_of(message.id);
        let known = self
            .known_buckets
            .lock_or_recover()
            .contains(&(room, bucket));
        // The bucket row goes first: a crash between the writes leaves an
        // empty bucket (harmless), never a message that history cannot reach.
        if !known {
            self.session
                .execute_unpaged(&self.statements.insert_bucket, (room, bucket))
                .await
                .map_err(unavailable)?;
            let mut known = self.known_buckets.lock_or_recover();
            if known.len() >= KNOWN_BUCKETS_CAP {
                known.clear();
            }
            known.insert((room, bucket));
        }
        self.session
            .execute_unpaged(
                &self.statements.insert_message,
                (
                    room,
                    bucket,
                    message.id.as_i64(),
                    message.author_id.0,
                    &message.kind,
                    &message.content.kind,
                    &message.content.message,
                    &message.client_message_id,
                    message.created_at,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn history(&self, room: RoomId, page: HistoryPage) -> Result<Vec<Message>, StoreError> {
        let limit = page.limit();
        let mut messages = Vec::with_capacity(limit);
        // Buckets come in reading order: newest first, or oldest first for
        // `After`, whose page is reversed at the end.
        for bucket in self.buckets(room, page).await? {
            let remaining = i32::try_from(limit - messages.len()).unwrap_or(i32::MAX);
            messages.extend(self.bucket_page(room, bucket, page, remaining).await?);
            if messages.len() >= limit {
                break;
            }
        }
        if matches!(page, HistoryPage::After { .. }) {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn remove(&self, room: RoomId, id: MessageId) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.statements.delete_message,
                (room.0, self.bucket_of(id), id.as_i64()),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn contains(&self, room: RoomId, id: MessageId) -> Result<bool, StoreError> {
        let rows = self
            .session
            .execute_unpaged(
                &self.statements.read.message_exists,
                (room.0, self.bucket_of(id), id.as_i64()),
            )
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        Ok(rows.rows_num() > 0)
    }
}
