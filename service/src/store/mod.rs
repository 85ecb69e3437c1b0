//! Durable state behind small traits: accounts, rooms and messages.
//!
//! Two implementations sit side by side: [`cassandra`] for production and
//! [`memory`] for the embedded single-process default. Both pass the same
//! contract tests in `e2e/`.

pub mod cassandra;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::domain::{
    HistoryPage, Message, MessageId, Room, RoomId, RoomKind, User, UserId, Username,
};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record already exists (a username taken, without regard to case).
    #[error("already exists")]
    Conflict,
    /// The backend did not answer or refused the request.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend, as `/ready` names it.
        backend: &'static str,
        /// The driver's error, for the log only.
        #[source]
        source: anyhow::Error,
    },
}

impl StoreError {
    /// Wraps a driver error of `backend`.
    pub fn unavailable(backend: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }
}

/// An account together with its password hash, for login.
#[derive(Debug, Clone)]
pub struct Account {
    /// What clients see.
    pub user: User,
    /// The argon2id PHC string, when the account has a password.
    pub password_hash: Option<String>,
}

/// Accounts, unique by username without regard to case.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Stores a new account; [`StoreError::Conflict`] when the username is taken.
    async fn create(&self, username: &Username, account: &Account) -> Result<(), StoreError>;
    /// Looks an account up by username, without regard to case.
    async fn by_username(&self, username: &Username) -> Result<Option<Account>, StoreError>;
    /// Looks a user up by id.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Up to `limit` users in a stable order, starting after `after`.
    async fn list(&self, after: Option<&Username>, limit: usize) -> Result<Vec<User>, StoreError>;
}

/// What adding members to a group came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// These users were not members and are now (the others already were).
    Members(Vec<UserId>),
    /// The group would have more than the limit; nothing changed.
    OverLimit,
    /// There is no such group.
    NoGroup,
}

/// A room a user is in, as the user's own index holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room.
    pub room_id: RoomId,
    /// Private or group.
    pub kind: RoomKind,
    /// When the room was made.
    pub created_at: DateTime<Utc>,
}

/// Rooms: private rooms of two users, and groups.
#[async_trait]
pub trait Rooms: Send + Sync {
    /// The one room of the two users, created on first call. Concurrent
    /// calls, from either side, get the same id.
    async fn private_room(&self, a: UserId, b: UserId) -> Result<RoomId, StoreError>;
    /// The two participants of a private room, or `None` if there is no
    /// such private room.
    async fn participants(&self, room: RoomId) -> Result<Option<[UserId; 2]>, StoreError>;
    /// A room of either kind with its members, or `None` if it does not exist.
    async fn room(&self, room: RoomId) -> Result<Option<Room>, StoreError>;
    /// Stores a new group with its members.
    async fn create_group(&self, room: &Room) -> Result<(), StoreError>;
    /// Whether `user` is a member of the group `room` (false for private
    /// rooms and unknown ids).
    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;
    /// The members of the group `room`, in id order (empty when unknown).
    async fn members(&self, room: RoomId) -> Result<Vec<UserId>, StoreError>;
    /// Adds `users` to the group `room` unless it would then have more than
    /// `max` members. Concurrent calls cannot together pass the limit.
    async fn add_members(
        &self,
        room: RoomId,
        users: &[UserId],
        max: usize,
    ) -> Result<Added, StoreError>;
    /// Takes `user` out of the group `room`; true when they were a member.
    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;
    /// Every room `user` is in (one partition: bounded by their rooms).
    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError>;
}

/// Message history.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Stores a message; storing the same id again changes nothing.
    async fn save(&self, message: &Message) -> Result<(), StoreError>;
    /// A page of a room's history, newest first.
    async fn history(&self, room: RoomId, page: HistoryPage) -> Result<Vec<Message>, StoreError>;
    /// Whether `room` has a message `id`.
    async fn contains(&self, room: RoomId, id: MessageId) -> Result<bool, StoreError>;
    /// Takes message `id` out of `room`'s history (a write that lost its
    /// outcome claim to a park); removing an unknown one changes nothing.
    async fn remove(&self, room: RoomId, id: MessageId) -> Result<(), StoreError>;
}

/// What each member has read.
///
/// A marker only moves forward: it is replaced only by a larger message
/// id, whatever order the writes arrive in (two devices at once).
#[async_trait]
pub trait ReadState: Send + Sync {
    /// Moves `user`'s marker in `room` to `id`, unless it is past it.
    async fn mark_read(&self, room: RoomId, user: UserId, id: MessageId) -> Result<(), StoreError>;
    /// `user`'s marker in `room`.
    async fn marker(&self, room: RoomId, user: UserId) -> Result<Option<MessageId>, StoreError>;
    /// Every marker in `room`.
    async fn markers(&self, room: RoomId) -> Result<Vec<(UserId, MessageId)>, StoreError>;
}

/// The one outcome of a message whose first store attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was stored (and so delivered).
    Stored,
    /// It was parked in the dead-letter topic, and its author told `chat_500`.
    Parked,
}

/// The claim that holds for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// Its outcome.
    pub outcome: Outcome,
    /// Whether the one who asked made it (now or before).
    pub ours: bool,
}

/// Claims of outcomes: the first claim of a message holds, whichever
/// process makes it, so no message ends both stored and parked.
#[async_trait]
pub trait Outcomes: Send + Sync {
    /// Claims `outcome` for message `id` in the name of `claimant`, unless
    /// one was claimed before; returns the claim that holds.
    async fn claim(
        &self,
        id: MessageId,
        outcome: Outcome,
        claimant: &str,
    ) -> Result<Claimed, StoreError>;
}

/// Something `/ready` can ask whether it answers.
#[async_trait]
pub trait Probe: Send + Sync {
    /// The backend's name, as `/ready` reports it.
    fn name(&self) -> &'static str;
    /// Succeeds when the backend answers a trivial request.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The storage the service runs on: one handle per concern.
#[derive(Clone)]
pub struct Storage {
    /// Accounts.
    pub accounts: Arc<dyn Accounts>,
    /// Rooms.
    pub rooms: Arc<dyn Rooms>,
    /// Messages.
    pub messages: Arc<dyn Messages>,
    /// Read markers.
    pub read_state: Arc<dyn ReadState>,
    /// Outcomes of messages that failed a store attempt.
    pub outcomes: Arc<dyn Outcomes>,
    /// Readiness probe of the backend.
    pub probe: Arc<dyn Probe>,
}

impl Storage {
    /// Every concern served by one backend (see [`Storage::in_memory`] and
    /// [`Storage::cassandra`]).
    fn on<S>(store: S) -> Self
    where
        S: Accounts + Rooms + Messages + ReadState + Outcomes + Probe + 'static,
    {
        let store = Arc::new(store);
        Self {
            accounts: store.clone(),
            rooms: store.clone(),
            messages: store.clone(),
            read_state: store.clone(),
            outcomes: store.clone(),
            probe: store,
        }
    }
}
