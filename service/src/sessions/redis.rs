//! Sessions in Redis, shared by every instance, expiring by Redis TTL.

use std::time::Duration;

use async_trait::async_trait;
use redis::{aio::ConnectionManager, AsyncCommands};

use super::{Sessions, Token};
use crate::{
    domain::UserId,
    store::{Probe, StoreError},
};

const BACKEND: &str = "redis";

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::unavailable(BACKEND, error)
}

/// Sessions under `<prefix>session:<digest>`.
#[derive(Clone)]
pub struct RedisSessions {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisSessions {
    /// Uses an open connection manager; keys start with `prefix`.
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
        }
    }

    fn key(&self, token: &Token) -> String {
        format!("{}session:{}", self.prefix, token.digest())
    }
}

#[async_trait]
impl Sessions for RedisSessions {
    async fn issue(&self, user: UserId, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let mut connection = self.connection.clone();
        let _: () = connection
            .set_ex(self.key(&token), user.to_string(), ttl.as_secs().max(1))
            .await
            .map_err(unavailable)?;
        Ok(token)
    }

    async fn resolve(&self, token: &Token) -> Result<Option<UserId>, StoreError> {
        let mut connection = self.connection.clone();
        let user: Option<String> = connection.get(self.key(token)).await.map_err(unavailable)?;
        Ok(user.and_then(|user| UserId::parse(&user).ok()))
    }

    async fn revoke(&self, token: &Token) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: () = connection.del(self.key(token)).await.map_err(unavailable)?;
        Ok(())
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
