//! Sessions in this process's memory, for the embedded default.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;

use super::{Session, Sessions, Token};
use crate::locks::LockExt;
use crate::{domain::UserId, store::StoreError};

/// Digest to user and expiry. Expired entries are dropped when read and
/// swept whenever the map doubles, so it cannot grow without bound.
#[derive(Default)]
pub struct MemorySessions {
    sessions: Mutex<SessionMap>,
}

#[derive(Default)]
struct SessionMap {
    entries: HashMap<String, (UserId, Instant, SystemTime)>,
    sweep_at: usize,
}

impl MemorySessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.sessions.lock_or_recover()
    }
}

#[async_trait]
impl Sessions for MemorySessions {
    async fn issue(&self, user: UserId, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let mut map = self.lock();
        let now = Instant::now();
        if map.entries.len() >= map.sweep_at {
            map.entries.retain(|_, (_, expires, _)| *expires > now);
            map.sweep_at = (map.entries.len() * 2).max(1024);
        }
        let entry = (user, now + ttl, SystemTime::now() + ttl);
        map.entries.insert(token.digest(), entry);
        Ok(token)
    }

    async fn resolve(&self, token: &Token) -> Result<Option<Session>, StoreError> {
        let digest = token.digest();
        let mut map = self.lock();
        match map.entries.get(&digest) {
            Some((user, expires, expires_at)) if *expires > Instant::now() => Ok(Some(Session {
                user: *user,
                id: digest,
                expires_at: *expires_at,
            })),
            Some(_) => {
                map.entries.remove(&digest);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn revoke(&self, token: &Token) -> Result<String, StoreError> {
        let digest = token.digest();
        self.lock().entries.remove(&digest);
        Ok(digest)
    }

    async fn revoke_all(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .entries
            .iter()
            .filter(|(_, (owner, _, _))| *owner == user)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            map.entries.remove(id);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_session_lives_until_revoked() {
        let sessions = MemorySessions::default();
        let user = UserId::random();
        let token = sessions.issue(user, HOUR).await.unwrap();
        let session = sessions.resolve(&token).await.unwrap().unwrap();
        assert_eq!(session.user, user);
        assert_eq!(sessions.revoke(&token).await.unwrap(), session.id);
        assert_eq!(sessions.resolve(&token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_session_resolves_to_nobody() {
        let sessions = MemorySessions::default();
        let token = sessions
            .issue(UserId::random(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(sessions.resolve(&token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn revoking_all_of_a_user_leaves_other_users_alone() {
        let sessions = MemorySessions::default();
        let (ada, bob) = (UserId::random(), UserId::random());
        let ada_phone = sessions.issue(ada, HOUR).await.unwrap();
        let ada_laptop = sessions.issue(ada, HOUR).await.unwrap();
        let bob_phone = sessions.issue(bob, HOUR).await.unwrap();

        let ended = sessions.revoke_all(ada).await.unwrap();

        assert_eq!(ended.len(), 2);
        assert_eq!(sessions.resolve(&ada_phone).await.unwrap(), None);
        assert_eq!(sessions.resolve(&ada_laptop).await.unwrap(), None);
        assert!(sessions.resolve(&bob_phone).await.unwrap().is_some());
    }
}
