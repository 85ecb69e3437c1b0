//! Presence: a user is online while at least one of their sockets is
//! connected to any instance.
//!
//! - In memory: a count of sockets per user.
//! - With Redis ([`redis`]): a set of sockets per user, and per instance the
//!   set of its sockets and a heartbeat key that expires. Every instance
//!   sweeps the others: the sockets of an instance whose heartbeat expired
//!   (it crashed) are removed, so its users are seen offline within
//!   [`redis::OFFLINE_WITHIN`].
//!
//! Each socket's presence is kept by one task (connect, then wait for the
//! disconnect, then disconnect), so the two can never run in the wrong
//! order. Going online or offline is told to the users who share a room
//! of at most [`TELL_ROOMS_UP_TO`] members with the user.

pub mod redis;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
};

use serde_json::json;

use crate::{
    domain::{RoomKind, UserId},
    fanout::{user_channel, Fanout},
    locks::LockExt,
    store::{Rooms, StoreError},
};

/// Rooms larger than this do not hear their members come and go.
pub const TELL_ROOMS_UP_TO: usize = 100;

/// Where presence is kept.
pub enum Presence {
    /// This process only.
    Local(Mutex<HashMap<UserId, HashSet<String>>>),
    /// Shared through Redis.
    Shared(Arc<redis::RedisPresence>),
}

impl Presence {
    /// Presence in this process.
    pub fn local() -> Self {
        Self::Local(Mutex::default())
    }

    /// Records `socket` of `user`; true when the user just came online.
    pub async fn connected(&self, user: UserId, socket: &str) -> Result<bool, StoreError> {
        match self {
            Self::Local(users) => {
                let mut users = users.lock_or_recover();
                let sockets = users.entry(user).or_default();
                Ok(sockets.insert(socket.to_owned()) && sockets.len() == 1)
            }
            Self::Shared(redis) => redis.connected(user, socket).await,
        }
    }

    /// Forgets `socket` of `user`; true when the user just went offline.
    pub async fn disconnected(&self, user: UserId, socket: &str) -> Result<bool, StoreError> {
        match self {
            Self::Local(users) => {
                let mut users = users.lock_or_recover();
                let Some(sockets) = users.get_mut(&user) else {
                    return Ok(false);
                };
                let removed = sockets.remove(socket);
                if sockets.is_empty() {
                    users.remove(&user);
                }
                Ok(removed && !users.contains_key(&user))
            }
            Self::Shared(redis) => redis.disconnected(user, socket).await,
        }
    }

    /// Which of `users` are online.
    pub async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        match self {
            Self::Local(online) => {
                let online = online.lock_or_recover();
                Ok(users
                    .iter()
                    .copied()
                    .filter(|user| online.contains_key(user))
                    .collect())
            }
            Self::Shared(redis) => redis.online(users).await,
        }
    }
}

/// Keeps each socket's presence and tells users of changes.
pub struct Keeper {
    presence: Arc<Presence>,
    rooms: Arc<dyn Rooms>,
    sockets: OnceLock<Arc<dyn Fanout>>,
}

impl Keeper {
    /// Keeps `presence`; the audience of a change is read from `rooms`.
    pub fn new(presence: Arc<Presence>, rooms: Arc<dyn Rooms>) -> Arc<Self> {
        Arc::new(Self {
            presence,
            rooms,
            sockets: OnceLock::new(),
        })
    }

    /// Where changes are told: the gateway's fan-out, which exists only
    /// once the gateway (whose sockets this keeps) is built.
    pub fn tell_through(self: &Arc<Self>, sockets: Arc<dyn Fanout>) {
        let _ = self.sockets.set(sockets);
        if let Presence::Shared(redis) = self.presence.as_ref() {
            let keeper = self.clone();
            redis.clone().spawn_sweeper(Arc::new(move |user, online| {
                let keeper = keeper.clone();
                tokio::spawn(async move { keeper.tell(user, online).await });
            }));
        }
    }

    /// Which of `users` are online.
    pub async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        self.presence.online(users).await
    }

    /// One socket's presence for its life: connected now, disconnected
    /// when `gone` fires (or its sender is dropped).
    pub async fn keep(
        self: Arc<Self>,
        user: UserId,
        socket: String,
        gone: tokio::sync::oneshot::Receiver<()>,
    ) {
        match self.presence.connected(user, &socket).await {
            Ok(true) => self.tell(user, true).await,
            Ok(false) => {}
            Err(error) => tracing::warn!(cause = %error, "cannot record presence"),
        }
        let _ = gone.await;
        match self.presence.disconnected(user, &socket).await {
            Ok(true) => self.tell(user, false).await,
            Ok(false) => {}
            Err(error) => tracing::warn!(cause = %error, "cannot record presence"),
        }
    }

    /// Tells the users who share a room of at most [`TELL_ROOMS_UP_TO`]
    /// members with `user` that they came online or went offline.
    async fn tell(&self, user: UserId, online: bool) {
        let Some(sockets) = self.sockets.get() else {
            return;
        };
        let entries = match self.rooms.rooms_of(user).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(cause = %error, "cannot tell a presence change");
                return;
            }
        };
        let mut audience = BTreeSet::new();
        for entry in entries {
            let members = match entry.kind {
                RoomKind::Private => self
                    .rooms
                    .participants(entry.room_id)
                    .await
                    .map(|pair| pair.map(Vec::from).unwrap_or_default()),
                RoomKind::Group => self.rooms.members(entry.room_id).await,
            };
            match members {
                Ok(members) if members.len() <= TELL_ROOMS_UP_TO => audience.extend(members),
                Ok(_) => {}
                Err(error) => tracing::warn!(cause = %error, "cannot read a room for presence"),
            }
        }
        audience.remove(&user);
        if audience.is_empty() {
            return;
        }
        let payload = json!({
            "name": "presence",
            "content": { "userId": user, "online": online },
        });
        let to = audience.into_iter().map(user_channel).collect();
        if let Err(error) = sockets.emit(to, Vec::new(), "notification", &payload).await {
            tracing::warn!(cause = %error, "cannot tell a presence change");
        }
        metrics::counter!("presence_changes_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn online_while_any_socket_is_connected() {
        let presence = Presence::local();
        let (ada, bob) = (UserId::random(), UserId::random());
        assert!(presence.connected(ada, "s1").await.unwrap());
        assert!(!presence.connected(ada, "s2").await.unwrap());
        assert_eq!(presence.online(&[ada, bob]).await.unwrap(), vec![ada]);
        assert!(!presence.disconnected(ada, "s1").await.unwrap());
        assert!(presence.disconnected(ada, "s2").await.unwrap());
        assert!(!presence.disconnected(ada, "s2").await.unwrap());
        assert!(presence.online(&[ada]).await.unwrap().is_empty());
    }
}
