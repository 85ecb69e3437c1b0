//! Who is in a room, without a Cassandra read per message. Private rooms
//! never change participants, so a cached answer never goes stale; the
//! cache is bounded, and unknown rooms are not cached (nothing to protect
//! against a flood of random ids but the rate limit).

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use crate::{
    domain::{RoomId, UserId},
    store::{Rooms, StoreError},
};

/// Room participants, read through an in-process cache.
pub struct Membership {
    rooms: Arc<dyn Rooms>,
    cache: Mutex<HashMap<RoomId, [UserId; 2]>>,
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

    /// The other participant when `user` is in `room`; `None` when the room
    /// is unknown or `user` is not in it.
    pub async fn peer_of(&self, room: RoomId, user: UserId) -> Result<Option<UserId>, StoreError> {
        let Some([a, b]) = self.participants(room).await? else {
            return Ok(None);
        };
        Ok(if user == a {
            Some(b)
        } else if user == b {
            Some(a)
        } else {
            None
        })
    }

    async fn participants(&self, room: RoomId) -> Result<Option<[UserId; 2]>, StoreError> {
        if let Some(pair) = self.cache().get(&room) {
            return Ok(Some(*pair));
        }
        let Some(pair) = self.rooms.participants(room).await? else {
            return Ok(None);
        };
        let mut cache = self.cache();
        if cache.len() >= self.capacity {
            // Any entry will do: a miss costs one read, and keeping no
            // recency order keeps the hit path a plain lookup.
            if let Some(victim) = cache.keys().next().copied() {
                cache.remove(&victim);
            }
        }
        cache.insert(room, pair);
        Ok(Some(pair))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, [UserId; 2]>> {
        self.cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn participants_see_each_other_and_others_see_nothing() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (UserId::random(), UserId::random());
        let room = store.private_room(a, b).await.unwrap();
        let membership = Membership::new(store, 1);
        assert_eq!(membership.peer_of(room, a).await.unwrap(), Some(b));
        assert_eq!(membership.peer_of(room, b).await.unwrap(), Some(a));
        assert_eq!(
            membership.peer_of(room, UserId::random()).await.unwrap(),
            None
        );
        assert_eq!(membership.peer_of(RoomId::random(), a).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let store = Arc::new(MemoryStore::default());
        let membership = Membership::new(store.clone(), 2);
        for _ in 0..5 {
            let (a, b) = (UserId::random(), UserId::random());
            let room = store.private_room(a, b).await.unwrap();
            membership.peer_of(room, a).await.unwrap();
        }
        assert!(membership.cache().len() <= 2);
    }
}
