//! The in-memory store: the embedded default. Nothing survives a restart,
//! and it serves one process only; the start-up log says so loudly.

use std::{
    collections::{BTreeMap, HashMap},
    sync::RwLock,
};

use async_trait::async_trait;

use super::{Account, Accounts, Messages, Probe, Rooms, StoreError};
use crate::domain::{HistoryPage, Message, MessageId, RoomId, User, UserId, Username};

/// All state in maps behind locks; no lock is held across an await.
#[derive(Default)]
pub struct MemoryStore {
    accounts: RwLock<AccountMaps>,
    rooms: RwLock<RoomMaps>,
    messages: RwLock<HashMap<RoomId, BTreeMap<MessageId, Message>>>,
}

#[derive(Default)]
struct AccountMaps {
    /// By canonical username; its order is the listing order.
    by_username: BTreeMap<String, Account>,
    by_id: HashMap<UserId, User>,
}

#[derive(Default)]
struct RoomMaps {
    by_pair: HashMap<(UserId, UserId), RoomId>,
    by_id: HashMap<RoomId, [UserId; 2]>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poison| poison.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poison| poison.into_inner())
}

#[async_trait]
impl Accounts for MemoryStore {
    async fn create(&self, username: &Username, account: &Account) -> Result<(), StoreError> {
        let mut maps = write(&self.accounts);
        let key = username.canonical();
        if maps.by_username.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        maps.by_username.insert(key, account.clone());
        maps.by_id.insert(account.user.id, account.user.clone());
        Ok(())
    }

    async fn by_username(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        Ok(read(&self.accounts)
            .by_username
            .get(&username.canonical())
            .cloned())
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(read(&self.accounts).by_id.get(&id).cloned())
    }

    async fn list(&self, after: Option<&Username>, limit: usize) -> Result<Vec<User>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let maps = read(&self.accounts);
        let start = after.map_or(Unbounded, |after| Excluded(after.canonical()));
        Ok(maps
            .by_username
            .range((start, Unbounded))
            .take(limit)
            .map(|(_, account)| account.user.clone())
            .collect())
    }
}

#[async_trait]
impl Rooms for MemoryStore {
    async fn private_room(&self, a: UserId, b: UserId) -> Result<RoomId, StoreError> {
        let pair = if a <= b { (a, b) } else { (b, a) };
        let mut maps = write(&self.rooms);
        if let Some(room) = maps.by_pair.get(&pair) {
            return Ok(*room);
        }
        let room = RoomId::random();
        maps.by_pair.insert(pair, room);
        maps.by_id.insert(room, [pair.0, pair.1]);
        Ok(room)
    }

    async fn participants(&self, room: RoomId) -> Result<Option<[UserId; 2]>, StoreError> {
        Ok(read(&self.rooms).by_id.get(&room).copied())
    }
}

#[async_trait]
impl Messages for MemoryStore {
    async fn save(&self, message: &Message) -> Result<(), StoreError> {
        write(&self.messages)
            .entry(message.room_id)
            .or_default()
            .entry(message.id)
            .or_insert_with(|| message.clone());
        Ok(())
    }

    async fn history(&self, room: RoomId, page: HistoryPage) -> Result<Vec<Message>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let rooms = read(&self.messages);
        let Some(messages) = rooms.get(&room) else {
            return Ok(Vec::new());
        };
        let page = match page {
            HistoryPage::Latest { limit } => messages.values().rev().take(limit).cloned().collect(),
            HistoryPage::Before { id, limit } => messages
                .range((Unbounded, Excluded(id)))
                .rev()
                .take(limit)
                .map(|(_, message)| message.clone())
                .collect(),
            HistoryPage::After { id, limit } => {
                let mut page: Vec<Message> = messages
                    .range((Excluded(id), Unbounded))
                    .take(limit)
                    .map(|(_, message)| message.clone())
                    .collect();
                page.reverse();
                page
            }
        };
        Ok(page)
    }
}

#[async_trait]
impl Probe for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
