//! Presence in Redis, under the service's key prefix:
//! - `presence:user:{user}`: a set of `{instance}/{socket}`;
//! - `presence:instance:{instance}`: a set of `{user}/{socket}`;
//! - `presence:alive:{instance}`: expires unless the instance renews it;
//! - `presence:instances`: the instances that have sockets.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::locks::LockExt;
use crate::{domain::UserId, redis_link::RedisLink, store::StoreError};

/// An instance's heartbeat lives this long unless renewed.
const ALIVE_FOR: Duration = Duration::from_secs(30);
/// How often each instance renews its heartbeat and sweeps the others.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A crashed instance's users are seen offline within this.
pub const OFFLINE_WITHIN: Duration = Duration::from_secs(40);

const CONNECT: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return redis.call('SCARD', KEYS[1])
";

const DISCONNECT: &str = r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if removed == 0 then return -1 end
return redis.call('SCARD', KEYS[1])
";

/// Presence shared by every instance through Redis.
pub struct RedisPresence {
    connection: RedisLink,
    prefix: String,
    instance: String,
    connect: redis::Script,
    disconnect: redis::Script,
    /// This instance's sockets, to write again when Redis lost them (a
    /// restart without persistence, or a sweep by another instance while
    /// this one could not renew its heartbeat).
    local: Mutex<HashSet<(UserId, String)>>,
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::unavailable("redis", error)
}

impl RedisPresence {
    /// Presence of this instance (a random id) in Redis under `prefix`.
    pub fn new(connection: RedisLink, prefix: String) -> Self {
        Self {
            connection,
            prefix,
            instance: uuid::Uuid::new_v4().to_string(),
            connect: redis::Script::new(CONNECT),
            disconnect: redis::Script::new(DISCONNECT),
            local: Mutex::default(),
        }
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}presence:user:{user}", self.prefix)
    }

    fn instance_key(&self, instance: &str) -> String {
        format!("{}presence:instance:{instance}", self.prefix)
    }

    fn alive_key(&self, instance: &str) -> String {
        format!("{}presence:alive:{instance}", self.prefix)
    }

    fn instances_key(&self) -> String {
        format!("{}presence:instances", self.prefix)
    }

    pub(super) async fn connected(&self, user: UserId, socket: &str) -> Result<bool, StoreError> {
        self.local_sockets().insert((user, socket.to_owned()));
        self.record(user, socket).await
    }

    fn local_sockets(&self) -> std::sync::MutexGuard<'_, HashSet<(UserId, String)>> {
        self.local.lock_or_recover()
    }

    /// Writes one socket of this instance; true when its user just came online.
    async fn record(&self, user: UserId, socket: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let count: i64 = self
            .connect
            .key(self.user_key(&user.to_string()))
            .key(self.instance_key(&self.instance))
            .key(self.instances_key())
            .arg(format!("{}/{socket}", self.instance))
            .arg(format!("{user}/{socket}"))
            .arg(&self.instance)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(count == 1)
    }

    pub(super) async fn disconnected(
        &self,
        user: UserId,
        socket: &str,
    ) -> Result<bool, StoreError> {
        self.local_sockets().remove(&(user, socket.to_owned()));
        self.remove(&self.instance, &user.to_string(), socket).await
    }

    /// Removes one socket of `instance`; true when its user has no socket left.
    async fn remove(&self, instance: &str, user: &str, socket: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let left: i64 = self
            .disconnect
            .key(self.user_key(user))
            .key(self.instance_key(instance))
            .arg(format!("{instance}/{socket}"))
            .arg(format!("{user}/{socket}"))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(left == 0)
    }

    pub(super) async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for user in users {
            pipe.exists(self.user_key(&user.to_string()));
        }
        let mut connection = self.connection.clone();
        let exists: Vec<bool> = pipe
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(users
            .iter()
            .zip(exists)
            .filter_map(|(user, online)| online.then_some(*user))
            .collect())
    }

    /// Renews this instance's heartbeat, writes its sockets again if Redis
    /// lost them, and clears instances whose heartbeat expired; calls
    /// `changed` with each user that came online or went offline so.
    pub async fn sweep(
        &self,
        changed: &(dyn Fn(UserId, bool) + Send + Sync),
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let local: Vec<(UserId, String)> = self.local_sockets().iter().cloned().collect();
        let known: usize = redis::cmd("SCARD")
            .arg(self.instance_key(&self.instance))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if known < local.len() {
            for (user, socket) in local {
                if self.record(user, &socket).await? {
                    changed(user, true);
                }
            }
        }
        redis::cmd("SET")
            .arg(self.alive_key(&self.instance))
            .arg(1)
            .arg("PX")
            .arg(ALIVE_FOR.as_millis() as u64)
            .query_async::<()>(&mut connection)
            .await
            .map_err(unavailable)?;
        let instances: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.instances_key())
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        for instance in instances.into_iter().filter(|i| *i != self.instance) {
            let alive: bool = redis::cmd("EXISTS")
                .arg(self.alive_key(&instance))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if alive {
                continue;
            }
            let sockets: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.instance_key(&instance))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            for entry in sockets {
                let Some((user, socket)) = entry.split_once('/') else {
                    continue;
                };
                if self.remove(&instance, user, socket).await? {
                    if let Ok(user) = UserId::parse(user) {
                        changed(user, false);
                    }
                }
            }
            redis::cmd("SREM")
                .arg(self.instances_key())
                .arg(&instance)
                .query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)?;
            tracing::info!(
                instance,
                "cleared the presence of an instance that stopped answering"
            );
        }
        Ok(())
    }

    /// Sweeps every [`SWEEP_EVERY`] for the life of the process.
    pub fn spawn_sweeper(self: Arc<Self>, changed: Arc<dyn Fn(UserId, bool) + Send + Sync>) {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                if let Err(error) = self.sweep(changed.as_ref()).await {
                    tracing::warn!(cause = %error, "presence sweep failed");
                }
            }
        });
    }
}
