//! Sessions in Redis, shared by every instance, expiring by Redis TTL.
//!
//! `<prefix>session:<digest>` holds the user id with the session's TTL;
//! `<prefix>user-sessions:<user>` is the set of a user's session digests,
//! for "log out everywhere". The set's TTL is pushed out to the longest
//! session it names, so it never outlives them by more than that; digests
//! of sessions that expired on their own are dropped when the set is read.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{Session, Sessions, Token};
use crate::{
    domain::UserId,
    redis_link::RedisLink,
    store::{Probe, StoreError},
};

const BACKEND: &str = "redis";

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::unavailable(BACKEND, error)
}

/// Sessions under `<prefix>session:<digest>`.
#[derive(Clone)]
pub struct RedisSessions {
    connection: RedisLink,
    prefix: String,
}

impl RedisSessions {
    /// Uses an open connection manager; keys start with `prefix`.
    pub fn new(connection: RedisLink, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
        }
    }

    fn key(&self, digest: &str) -> String {
        format!("{}session:{digest}", self.prefix)
    }

    fn user_key(&self, user: UserId) -> String {
        format!("{}user-sessions:{user}", self.prefix)
    }
}

#[async_trait]
impl Sessions for RedisSessions {
    async fn issue(&self, user: UserId, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let (digest, seconds) = (token.digest(), ttl.as_secs().max(1));
        let user_key = self.user_key(user);
        let _: () = redis::pipe()
            .atomic()
            .set_ex(self.key(&digest), user.to_string(), seconds)
            .sadd(&user_key, &digest)
            .ignore()
            // Only ever lengthens the set's life (NX for a new set, GT after).
            .cmd("EXPIRE")
            .arg(&user_key)
            .arg(seconds)
            .arg("NX")
            .ignore()
            .cmd("EXPIRE")
            .arg(&user_key)
            .arg(seconds)
            .arg("GT")
            .ignore()
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(token)
    }

    async fn resolve(&self, token: &Token) -> Result<Option<Session>, StoreError> {
        let digest = token.digest();
        let key = self.key(&digest);
        let (user, ttl_ms): (Option<String>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let Some(user) = user.and_then(|user| UserId::parse(&user).ok()) else {
            return Ok(None);
        };
        let left = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0));
        Ok(Some(Session {
            user,
            id: digest,
            expires_at: SystemTime::now() + left,
        }))
    }

    async fn revoke(&self, token: &Token) -> Result<String, StoreError> {
        let digest = token.digest();
        let key = self.key(&digest);
        let user: Option<String> = self
            .connection
            .clone()
            .get_del(&key)
            .await
            .map_err(unavailable)?;
        if let Some(user) = user.and_then(|user| UserId::parse(&user).ok()) {
            let _: () = self
                .connection
                .clone()
                .srem(self.user_key(user), &digest)
                .await
                .map_err(unavailable)?;
        }
        Ok(digest)
    }

    async fn revoke_all(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let user_key = self.user_key(user);
        let mut connection = self.connection.clone();
        let digests: Vec<String> = connection.smembers(&user_key).await.map_err(unavailable)?;
        if digests.is_empty() {
            return Ok(digests);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for digest in &digests {
            pipe.del(self.key(digest)).ignore();
        }
        pipe.srem(&user_key, &digests).ignore();
        let _: () = pipe
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(digests)
    }
}

#[async_trait]
impl Probe for RedisSessions {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
