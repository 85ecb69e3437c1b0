//! Who is in which room, and changes to groups.
//!
//! - [`Membership`]: the membership check of every `join` and `message`,
//!   without a Cassandra read per message for private rooms.
//! - [`groups`]: creating groups, adding members, leaving, with the
//!   `members` notification and the leaver's sockets taken out of the room
//!   on every instance.
//!
//! # Why groups are not cached
//!
//! A private room's participants never change, so a cached answer never
//! goes stale. A group's members do, on any instance; a cache here would
//! need an invalidation that reaches every instance before the change is
//! acknowledged. Instead a group check reads one row by its full primary
//! key (`members_by_room`), and the fan-out reads the member list once per
//! stored message, in the room's own ordered worker. What is cached for a
//! group is only that the id names a group, which never changes.

pub mod groups;

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use crate::{
    domain::{Audience, RoomId, UserId},
    locks::LockExt,
    store::{Rooms, StoreError},
};

/// What is known of a room for good.
#[derive(Debug, Clone, Copy)]
enum Known {
    Private([UserId; 2]),
    Group,
}

/// Room membership, read through an in-process cache of what never changes.
pub struct Membership {
    rooms: Arc<dyn Rooms>,
    cache: Mutex<HashMap<RoomId, Known>>,
    capacity: usize,
}

impl Membership {
    /// Reads `rooms`, remembering up to `capacity` rooms.
    pub fn new(rooms: Arc<dyn Rooms>, capacity: usize) -> Self {
        Self {
            rooms,
            cache: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Who hears of `user`'s messages in `room`, when `user` is in it;
    /// `None` when the room is unknown or `user` is not a member.
    pub async fn audience_of(
        &self,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<Audience>, StoreError> {
        let cached = self.cache().get(&room).copied();
        let known = match cached {
            Some(known) => known,
            None => match self.rooms.participants(room).await? {
                Some(pair) => self.remember(room, Known::Private(pair)),
                None => {
                    // Not private: a group if `user` is in it. Ids of
                    // neither kind are not cached (only the rate limit
                    // stands against a flood of random ids).
                    if !self.rooms.is_member(room, user).await? {
                        return Ok(None);
                    }
                    self.remember(room, Known::Group);
                    return Ok(Some(Audience::Group));
                }
            },
        };
        Ok(match known {
            Known::Private([a, b]) if user == a => Some(Audience::Peer(b)),
            Known::Private([a, b]) if user == b => Some(Audience::Peer(a)),
            Known::Private(_) => None,
            Known::Group => self
                .rooms
                .is_member(room, user)
                .await?
                .then_some(Audience::Group),
        })
    }

    fn remember(&self, room: RoomId, known: Known) -> Known {
        let mut cache = self.cache();
        if cache.len() >= self.capacity {
            // Any entry will do: a miss costs one read, and keeping no
            // recency order keeps the hit path a plain lookup.
            if let Some(victim) = cache.keys().next().copied() {
                cache.remove(&victim);
            }
        }
        cache.insert(room, known);
        known
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Known>> {
        self.cache.lock_or_recover()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{
        domain::{Room, RoomKind},
        store::memory::MemoryStore,
    };

    #[tokio::test]
    async fn participants_see_each_other_and_others_see_nothing() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (UserId::random(), UserId::random());
        let room = store.private_room(a, b).await.unwrap();
        let membership = Membership::new(store, 1);
        assert_eq!(
            membership.audience_of(room, a).await.unwrap(),
            Some(Audience::Peer(b))
        );
        assert_eq!(
            membership.audience_of(room, b).await.unwrap(),
            Some(Audience::Peer(a))
        );
        assert_eq!(
            membership
                .audience_of(room, UserId::random())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            membership.audience_of(RoomId::random(), a).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_group_member_who_leaves_is_refused_at_once() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (UserId::random(), UserId::random());
        let room = RoomId::random();
        store
            .create_group(&Room {
                room_id: room,
                kind: RoomKind::Group,
                name: None,
                participant_ids: vec![a, b],
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        let membership = Membership::new(store.clone(), 10);
        assert_eq!(
            membership.audience_of(room, b).await.unwrap(),
            Some(Audience::Group)
        );
        assert!(store.remove_member(room, b).await.unwrap());
        assert_eq!(membership.audience_of(room, b).await.unwrap(), None);
        assert_eq!(
            membership.audience_of(room, a).await.unwrap(),
            Some(Audience::Group)
        );
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let store = Arc::new(MemoryStore::default());
        let membership = Membership::new(store.clone(), 2);
        for _ in 0..5 {
            let (a, b) = (UserId::random(), UserId::random());
            let room = store.private_room(a, b).await.unwrap();
            membership.audience_of(room, a).await.unwrap();
        }
        assert!(membership.cache().len() <= 2);
    }
}
