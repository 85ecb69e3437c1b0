//! The in-memory store: the embedded default. Nothing survives a restart,
//! and it serves one process only; the start-up log says so loudly.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::RwLock,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Account, Accounts, Added, Claimed, Messages, Outcome, Outcomes, Probe, ReadState, RoomEntry,
    Rooms, Storage, StoreError,
};
use crate::domain::{
    HistoryPage, Message, MessageId, Room, RoomId, RoomKind, RoomName, User, UserId, Username,
};

use crate::locks::RwLockExt;

/// All state in maps behind locks; no lock is held across an await.
#[derive(Default)]
pub struct MemoryStore {
    accounts: RwLock<AccountMaps>,
    rooms: RwLock<RoomMaps>,
    messages: RwLock<HashMap<RoomId, BTreeMap<MessageId, Message>>>,
    read: RwLock<ReadMaps>,
    outcomes: RwLock<HashMap<MessageId, (Outcome, String)>>,
}

#[derive(Default)]
struct ReadMaps {
    markers: HashMap<RoomId, BTreeMap<UserId, MessageId>>,
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
    by_id: HashMap<RoomId, ([UserId; 2], DateTime<Utc>)>,
    groups: HashMap<RoomId, Group>,
    by_user: HashMap<UserId, BTreeMap<RoomId, RoomEntry>>,
}

impl RoomMaps {
    fn record(&mut self, user: UserId, room: RoomId, kind: RoomKind, created_at: DateTime<Utc>) {
        self.by_user.entry(user).or_default().insert(
            room,
            RoomEntry {
                room_id: room,
                kind,
                created_at,
            },
        );
    }
}

struct Group {
    name: Option<RoomName>,
    created_at: DateTime<Utc>,
    members: BTreeSet<UserId>,
}

impl Storage {
    /// Everything in this process's memory.
    pub fn in_memory() -> Self {
        Self::on(MemoryStore::default())
    }
}

#[async_trait]
impl Accounts for MemoryStore {
    async fn create(&self, username: &Username, account: &Account) -> Result<(), StoreError> {
        let mut maps = self.accounts.write_or_recover();
        let key = username.canonical();
        if maps.by_username.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        maps.by_username.insert(key, account.clone());
        maps.by_id.insert(account.user.id, account.user.clone());
        Ok(())
    }

    async fn by_username(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        Ok(self
            .accounts
            .read_or_recover()
            .by_username
            .get(&username.canonical())
            .cloned())
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.accounts.read_or_recover().by_id.get(&id).cloned())
    }

    async fn list(&self, after: Option<&Username>, limit: usize) -> Result<Vec<User>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let maps = self.accounts.read_or_recover();
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
        let mut maps = self.rooms.write_or_recover();
        if let Some(room) = maps.by_pair.get(&pair) {
            return Ok(*room);
        }
        let room = RoomId::random();
        let now = Utc::now();
        maps.by_pair.insert(pair, room);
        maps.by_id.insert(room, ([pair.0, pair.1], now));
        maps.record(a, room, RoomKind::Private, now);
        maps.record(b, room, RoomKind::Private, now);
        Ok(room)
    }

    async fn participants(&self, room: RoomId) -> Result<Option<[UserId; 2]>, StoreError> {
        Ok(self
            .rooms
            .read_or_recover()
            .by_id
            .get(&room)
            .map(|(pair, _)| *pair))
    }

    async fn room(&self, room: RoomId) -> Result<Option<Room>, StoreError> {
        let maps = self.rooms.read_or_recover();
        if let Some((pair, created_at)) = maps.by_id.get(&room) {
            return Ok(Some(Room {
                room_id: room,
                kind: RoomKind::Private,
                name: None,
                participant_ids: pair.to_vec(),
                created_at: *created_at,
            }));
        }
        Ok(maps.groups.get(&room).map(|group| Room {
            room_id: room,
            kind: RoomKind::Group,
            name: group.name.clone(),
            participant_ids: group.members.iter().copied().collect(),
            created_at: group.created_at,
        }))
    }

    async fn create_group(&self, room: &Room) -> Result<(), StoreError> {
        let mut maps = self.rooms.write_or_recover();
        for user in &room.participant_ids {
            maps.record(*user, room.room_id, RoomKind::Group, room.created_at);
        }
        maps.groups.insert(
            room.room_id,
            Group {
                name: room.name.clone(),
                created_at: room.created_at,
                members: room.participant_ids.iter().copied().collect(),
            },
        );
        Ok(())
    }

    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        Ok(self
            .rooms
            .read_or_recover()
            .groups
            .get(&room)
            .is_some_and(|group| group.members.contains(&user)))
    }

    async fn members(&self, room: RoomId) -> Result<Vec<UserId>, StoreError> {
        Ok(self
            .rooms
            .read_or_recover()
            .groups
            .get(&room)
            .map(|group| group.members.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn add_members(
        &self,
        room: RoomId,
        users: &[UserId],
        max: usize,
    ) -> Result<Added, StoreError> {
        let mut maps = self.rooms.write_or_recover();
        let Some(group) = maps.groups.get_mut(&room) else {
            return Ok(Added::NoGroup);
        };
        let new: BTreeSet<UserId> = users
            .iter()
            .copied()
            .filter(|user| !group.members.contains(user))
            .collect();
        if group.members.len() + new.len() > max {
            return Ok(Added::OverLimit);
        }
        group.members.extend(new.iter().copied());
        let created_at = group.created_at;
        for user in &new {
            maps.record(*user, room, RoomKind::Group, created_at);
        }
        Ok(Added::Members(new.into_iter().collect()))
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let mut maps = self.rooms.write_or_recover();
        let removed = maps
            .groups
            .get_mut(&room)
            .is_some_and(|group| group.members.remove(&user));
        if let Some(rooms) = maps.by_user.get_mut(&user) {
            rooms.remove(&room);
        }
        Ok(removed)
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError> {
        Ok(self
            .rooms
            .read_or_recover()
            .by_user
            .get(&user)
            .map(|rooms| rooms.values().copied().collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl Messages for MemoryStore {
    async fn remove(&self, room: RoomId, id: MessageId) -> Result<(), StoreError> {
        if let Some(messages) = self.messages.write_or_recover().get_mut(&room) {
            messages.remove(&id);
        }
        Ok(())
    }

    async fn save(&self, message: &Message) -> Result<(), StoreError> {
        self.messages
            .write_or_recover()
            .entry(message.room_id)
            .or_default()
            .entry(message.id)
            .or_insert_with(|| message.clone());
        Ok(())
    }

    async fn history(&self, room: RoomId, page: HistoryPage) -> Result<Vec<Message>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let rooms = self.messages.read_or_recover();
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

    async fn contains(&self, room: RoomId, id: MessageId) -> Result<bool, StoreError> {
        Ok(self
            .messages
            .read_or_recover()
            .get(&room)
            .is_some_and(|messages| messages.contains_key(&id)))
    }
}

#[async_trait]
impl ReadState for MemoryStore {
    async fn mark_read(&self, room: RoomId, user: UserId, id: MessageId) -> Result<(), StoreError> {
        let mut maps = self.read.write_or_recover();
        let marker = maps
            .markers
            .entry(room)
            .or_default()
            .entry(user)
            .or_insert(id);
        *marker = (*marker).max(id);
        Ok(())
    }

    async fn marker(&self, room: RoomId, user: UserId) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .read
            .read_or_recover()
            .markers
            .get(&room)
            .and_then(|markers| markers.get(&user).copied()))
    }

    async fn markers(&self, room: RoomId) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        Ok(self
            .read
            .read_or_recover()
            .markers
            .get(&room)
            .map(|markers| markers.iter().map(|(user, id)| (*user, *id)).collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl Outcomes for MemoryStore {
    async fn claim(
        &self,
        id: MessageId,
        outcome: Outcome,
        claimant: &str,
    ) -> Result<Claimed, StoreError> {
        let mut outcomes = self.outcomes.write_or_recover();
        let (held, by) = outcomes
            .entry(id)
            .or_insert_with(|| (outcome, claimant.to_owned()));
        Ok(Claimed {
            outcome: *held,
            ours: by == claimant,
        })
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
