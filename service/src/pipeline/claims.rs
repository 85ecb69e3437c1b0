//! Short-lived "first one wins" keys, shared by every instance through Redis
//! (or kept in this process in the embedded mode). They answer "was this
//! `clientMessageId` already accepted?".

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use crate::locks::LockExt;
use crate::redis_link::RedisLink;
use crate::store::StoreError;

const BACKEND: &str = "redis";

/// A key store where the first writer wins.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Sets `key` to `value` for `ttl` unless it is set; returns the value
    /// already there when it is (and changes nothing).
    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError>;
    /// Replaces the value of a key that is set, keeping its expiry.
    async fn confirm(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The value of a key, if it is set.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
}

/// Claims in Redis: `SET NX PX GET` makes claim-or-read one round trip.
#[derive(Clone)]
pub struct RedisClaims {
    connection: RedisLink,
    prefix: String,
}

impl RedisClaims {
    /// Keys are written under `prefix`.
    pub fn new(connection: RedisLink, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::unavailable(BACKEND, error)
}

#[async_trait]
impl Claims for RedisClaims {
    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // NX together with GET needs Redis 7.0, which the adapter needs anyway.
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .arg("GET")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }

    async fn confirm(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("XX")
            .arg("KEEPTTL")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }
}

/// Claims in this process, for the embedded single-instance mode. Bounded:
/// past `capacity` keys, expired ones are dropped, then arbitrary ones.
pub struct MemoryClaims {
    keys: Mutex<HashMap<String, (String, Instant)>>,
    capacity: usize,
}

impl MemoryClaims {
    /// Holds at most about `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.keys.lock_or_recover()
    }

    /// Claim at an explicit time, so tests need no clock.
    fn claim_at(&self, key: &str, value: &str, ttl: Duration, now: Instant) -> Option<String> {
        let mut keys = self.keys();
        if let Some((existing, expires)) = keys.get(key) {
            if *expires > now {
                return Some(existing.clone());
            }
        }
        if keys.len() >= self.capacity {
            // Amortised: one sweep frees at least half the map, so a full map
            // costs O(1) per claim on average rather than a scan each time.
            keys.retain(|_, (_, expires)| *expires > now);
            let excess = keys.len().saturating_sub(self.capacity / 2);
            let victims: Vec<String> = keys.keys().take(excess).cloned().collect();
            for victim in victims {
                keys.remove(&victim);
            }
        }
        keys.insert(key.to_owned(), (value.to_owned(), now + ttl));
        None
    }
}

#[async_trait]
impl Claims for MemoryClaims {
    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.claim_at(key, value, ttl, Instant::now()))
    }

    async fn confirm(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.keys().get_mut(key) {
            entry.0 = value.to_owned();
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(self
            .keys()
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_first_claim_wins_and_later_ones_read_its_value() {
        let claims = MemoryClaims::new(10);
        assert_eq!(claims.claim("k", "first", TTL).await.unwrap(), None);
        let second = claims.claim("k", "second", TTL).await.unwrap();
        assert_eq!(second.as_deref(), Some("first"));
    }

    #[tokio::test]
    async fn confirm_replaces_the_value_of_a_held_key_only() {
        let claims = MemoryClaims::new(10);
        claims.claim("k", "pending", TTL).await.unwrap();
        claims.confirm("k", "done").await.unwrap();
        claims.confirm("other", "done").await.unwrap();
        assert_eq!(claims.get("k").await.unwrap().as_deref(), Some("done"));
        assert_eq!(claims.get("other").await.unwrap(), None);
    }

    #[test]
    fn an_expired_claim_no_longer_blocks() {
        let claims = MemoryClaims::new(10);
        let start = Instant::now();
        claims.claim_at("k", "a", Duration::from_secs(1), start);
        let later = start + Duration::from_secs(2);
        assert_eq!(claims.claim_at("k", "b", TTL, later), None);
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let claims = MemoryClaims::new(3);
        let now = Instant::now();
        for i in 0..10 {
            claims.claim_at(&i.to_string(), "v", TTL, now);
        }
        assert!(claims.keys().len() <= 3);
    }
}
