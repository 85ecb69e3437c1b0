//! The conversation list: a user's rooms, latest activity first, each with
//! its last message, the user's marker and how many messages by others
//! are newer than it.
//!
//! The list is made when it is read, so a message costs nothing more than
//! its own insert: one partition of `rooms_by_user`, then each room's
//! newest message (its newest bucket, then one row) to order them, then,
//! for the page only, the room, the marker and the unread count. Every
//! page reads the newest message of every room the user is in (two point
//! reads each, 32 rooms at a time), so a page costs about 2N reads for a
//! user in N rooms, and paging through all of them about 2N²/limit. That
//! suits the first page a client opens on. A user in thousands of rooms
//! would want an activity-ordered index per user, which costs a write per
//! member per message instead; a room-activity row per room (tried) cost
//! Cassandra a second write per message.

use std::{cmp::Reverse, sync::Arc};

use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::{
    domain::{HistoryPage, Message, MessageId, ParseError, Room, RoomId, UserId},
    store::{RoomEntry, Storage, StoreError},
};

/// Exact unread counts go this high; above, `unreadCapped` is set.
pub const UNREAD_CAP: u32 = 100;
/// Rows read at most to count one room's unread messages. The reader's own
/// messages are skipped, so counting to the cap can take more rows than
/// the cap; past this many, the count so far is answered with
/// `unreadCapped` ("at least").
const UNREAD_SCAN: usize = 5_000;
/// Point reads issued at once.
const READS_IN_FLIGHT: usize = 32;

/// Where a page of the list starts: after the item with this cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    activity: MessageId,
    room: RoomId,
}

impl Cursor {
    /// Parses the `cursor` of a list item.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::new("before must be the cursor of a list item");
        let (activity, room) = raw.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            activity: MessageId::parse(activity).map_err(|_| bad())?,
            room: RoomId::parse(room).map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.activity, self.room)
    }
}

/// One room of the list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    #[serde(flatten)]
    room: Room,
    last_message: Option<Message>,
    unread: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unread_capped: bool,
    read_up_to: Option<MessageId>,
    cursor: String,
}

/// Builds the list from the store.
pub struct Conversations {
    storage: Storage,
}

impl Conversations {
    /// Reads `storage`.
    pub fn new(storage: Storage) -> Arc<Self> {
        Arc::new(Self { storage })
    }

    /// Up to `limit` of `user`'s rooms older in activity than `before`,
    /// latest activity first.
    pub async fn list(
        &self,
        user: UserId,
        limit: usize,
        before: Option<Cursor>,
    ) -> Result<Vec<Conversation>, StoreError> {
        let entries = self.storage.rooms.rooms_of(user).await?;
        let mut ordered: Vec<(Cursor, Option<Message>)> = stream::iter(entries)
            .map(|entry| self.activity(entry))
            .buffer_unordered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        ordered.retain(|(cursor, _)| before.is_none_or(|before| *cursor < before));
        ordered.sort_unstable_by_key(|(cursor, _)| Reverse(*cursor));
        // A room whose details are gone (a group whose creation was cut
        // short) is skipped, and the page filled from the next ones, so
        // only the last page is short.
        let mut page = Vec::with_capacity(limit);
        let mut candidates = ordered.into_iter();
        while page.len() < limit {
            let chunk: Vec<_> = candidates.by_ref().take(limit - page.len()).collect();
            if chunk.is_empty() {
                break;
            }
            let found: Vec<Option<Conversation>> = stream::iter(chunk)
                .map(|(cursor, latest)| self.conversation(user, cursor, latest))
                .buffered(READS_IN_FLIGHT)
                .try_collect()
                .await?;
            page.extend(found.into_iter().flatten());
        }
        Ok(page)
    }

    /// The room's place in the list: its last message's id, or its
    /// creation time for a room without messages.
    async fn activity(&self, entry: RoomEntry) -> Result<(Cursor, Option<Message>), StoreError> {
        let latest = self
            .storage
            .messages
            .history(entry.room_id, HistoryPage::Latest { limit: 1 })
            .await?
            .pop();
        // A room without messages sorts by its creation: just below every
        // message of that millisecond (a message sent in the same
        // millisecond as a room was made is the later activity), above
        // every earlier one.
        let activity = latest.as_ref().map_or_else(
            || {
                let floor = MessageId::floor_at(entry.created_at.timestamp_millis());
                MessageId::from_i64(floor.as_i64() - 1).unwrap_or(floor)
            },
            |message| message.id,
        );
        Ok((
            Cursor {
                activity,
                room: entry.room_id,
            },
            latest,
        ))
    }

    async fn conversation(
        &self,
        user: UserId,
        cursor: Cursor,
        latest: Option<Message>,
    ) -> Result<Option<Conversation>, StoreError> {
        let room = cursor.room;
        let Some(details) = self.storage.rooms.room(room).await? else {
            return Ok(None);
        };
        let marker = self.storage.read_state.marker(room, user).await?;
        let (unread, unread_capped) = match &latest {
            Some(latest) if marker.is_none_or(|marker| marker < latest.id) => {
                self.unread(room, user, marker).await?
            }
            _ => (0, false),
        };
        Ok(Some(Conversation {
            room: details,
            last_message: latest,
            unread,
            unread_capped,
            read_up_to: marker,
            cursor: cursor.to_string(),
        }))
    }

    /// Messages by others newer than `marker`, exact up to [`UNREAD_CAP`].
    async fn unread(
        &self,
        room: RoomId,
        user: UserId,
        marker: Option<MessageId>,
    ) -> Result<(u32, bool), StoreError> {
        let mut after = marker.unwrap_or(MessageId::floor_at(0));
        let mut count = 0;
        let mut scanned = 0;
        while scanned < UNREAD_SCAN {
            let page = self
                .storage
                .messages
                .history(
                    room,
                    HistoryPage::After {
                        id: after,
                        limit: 100,
                    },
                )
                .await?;
            let Some(newest) = page.first() else {
                return Ok((count, false));
            };
            after = newest.id;
            scanned += page.len();
            count += page
                .iter()
                .filter(|message| message.author_id != user)
                .count() as u32;
            if count > UNREAD_CAP {
                return Ok((UNREAD_CAP, true));
            }
            if page.len() < 100 {
                return Ok((count, false));
            }
        }
        Ok((count.min(UNREAD_CAP), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order_by_activity_then_room() {
        let cursor = Cursor {
            activity: MessageId::floor_at(1_800_000_000_000),
            room: RoomId::random(),
        };
        assert_eq!(Cursor::parse(&cursor.to_string()).unwrap(), cursor);
        for bad in [
            "",
            "12",
            "x.y",
            "12.not-a-room",
            ".",
            "-1.00000000-0000-0000-0000-000000000000",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
        let later = Cursor {
            activity: MessageId::floor_at(1_800_000_000_001),
            ..cursor
        };
        assert!(later > cursor);
    }
}
