//! Sessions in this process's memory, for the embedded default.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{Sessions, Token};
use crate::{domain::UserId, store::StoreError};

/// Digest to user and expiry. Expired entries are dropped when read and
/// swept whenever the map doubles, so it cannot grow without bound.
#[derive(Default)]
pub struct MemorySessions {
    sessions: Mutex<SessionMap>,
}

#[derive(Default)]
struct SessionMap {
    entries: HashMap<String, (UserId, Instant)>,
    sweep_at: usize,
}

impl MemorySessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl Sessions for MemorySessions {
    async fn issue(&self, user: UserId, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let mut map = self.lock();
        let now = Instant::now();
        if map.entries.len() >= map.sweep_at {
            map.entries.retain(|_, (_, expires)| *expires > now);
            map.sweep_at = (map.entries.len() * 2).max(1024);
        }
        map.entries.insert(token.digest(), (user, now + ttl));
        Ok(token)
    }

    async fn resolve(&self, token: &Token) -> Result<Option<UserId>, StoreError> {
        let digest = token.digest();
        let mut map = self.lock();
        match map.entries.get(&digest) {
            Some((user, expires)) if *expires > Instant::now() => Ok(Some(*user)),
            Some(_) => {
                map.entries.remove(&digest);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn revoke(&self, token: &Token) -> Result<(), StoreError> {
        self.lock().entries.remove(&token.digest());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_lives_until_revoked() {
        let sessions = MemorySessions::default();
        let user = UserId::random();
        let token = sessions.issue(user, Duration::from_secs(60)).await.unwrap();
        assert_eq!(sessions.resolve(&token).await.unwrap(), Some(user));
        sessions.revoke(&token).await.unwrap();
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
}
