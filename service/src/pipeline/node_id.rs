//! The Snowflake node id of this instance. Two running instances must never
//! share one, or they could mint the same message id in the same
//! millisecond. With Redis, each instance leases a free id in 0..1023
//! (`SET NX` with an expiry, refreshed well before it lapses); alone, in
//! the embedded mode, it is 0.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use rand::Rng;
use tokio::{sync::watch, task::JoinHandle};

use crate::domain::{MessageId, MessageIdGenerator};
use crate::locks::RwLockExt;
use crate::redis_link::RedisLink;

/// Node ids the Snowflake layout has room for (10 bits).
const MAX_NODES: u16 = 1024;

/// How long a lease lives without a refresh. A crashed instance's id is
/// free again after this.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the lease is refreshed: three chances before it lapses.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Refreshes the lease only if this instance still holds it.
const REFRESH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
/// Releases the lease only if this instance still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Hands out message ids; the generator is swapped if the lease is lost.
#[derive(Clone)]
pub struct IdSource {
    generator: Arc<RwLock<Arc<MessageIdGenerator>>>,
}

impl IdSource {
    /// A fixed node id, for a single instance.
    pub fn fixed(node: u16) -> Self {
        Self {
            generator: Arc::new(RwLock::new(Arc::new(MessageIdGenerator::new(node)))),
        }
    }

    /// The next message id.
    pub fn next_id(&self) -> MessageId {
        self.current().next_id()
    }

    /// The node id in use.
    pub fn node(&self) -> u16 {
        self.current().node()
    }

    fn current(&self) -> Arc<MessageIdGenerator> {
        self.generator.read_or_recover().clone()
    }

    fn replace(&self, node: u16) {
        *self.generator.write_or_recover() = Arc::new(MessageIdGenerator::new(node));
    }
}

/// A node id leased in Redis, kept alive by a background task.
pub struct NodeLease {
    ids: IdSource,
    refresher: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl NodeLease {
    /// Leases a free node id under `<prefix>node:<n>`, or fails when all
    /// 1024 are taken.
    pub async fn acquire(connection: RedisLink, prefix: &str) -> anyhow::Result<Self> {
        let owner = uuid::Uuid::new_v4().to_string();
        let node = lease_any(&connection, prefix, &owner).await?;
        tracing::info!(node, "leased a message id node");
        let ids = IdSource::fixed(node);
        let (stop, stopped) = watch::channel(false);
        let refresher = tokio::spawn(keep_alive(
            connection,
            prefix.to_owned(),
            owner,
            ids.clone(),
            stopped,
        ));
        Ok(Self {
            ids,
            refresher,
            stop,
        })
    }

    /// The id source backed by this lease.
    pub fn ids(&self) -> IdSource {
        self.ids.clone()
    }

    /// Stops refreshing and frees the id for the next instance.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.refresher.await;
    }
}

fn key(prefix: &str, node: u16) -> String {
    format!("{prefix}node:{node}")
}

/// Tries every node id once, from a random start so that instances starting
/// together rarely race for the same one.
async fn lease_any(connection: &RedisLink, prefix: &str, owner: &str) -> anyhow::Result<u16> {
    let start = rand::rng().random_range(0..MAX_NODES);
    for offset in 0..MAX_NODES {
        let node = (start + offset) % MAX_NODES;
        let taken: Option<String> = redis::cmd("SET")
            .arg(key(prefix, node))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_TTL.as_millis() as u64)
            .query_async(&mut connection.clone())
            .await
            .context("leasing a node id in Redis")?;
        if taken.is_some() {
            return Ok(node);
        }
    }
    anyhow::bail!("all {MAX_NODES} message id nodes are leased")
}

async fn keep_alive(
    connection: RedisLink,
    prefix: String,
    owner: String,
    ids: IdSource,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        let node = ids.node();
        let refreshed: Result<i64, _> = redis::Script::new(REFRESH)
            .key(key(&prefix, node))
            .arg(&owner)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async(&mut connection.clone())
            .await;
        match refreshed {
            Ok(1) => {}
            // Someone else holds it (our lease lapsed while Redis was away):
            // stop using it at once and lease another.
            Ok(_) => match lease_any(&connection, &prefix, &owner).await {
                Ok(new) => {
                    tracing::warn!(old = node, new, "node id lease was lost; switched");
                    ids.replace(new);
                }
                Err(error) => tracing::error!(cause = %error, "node id lease lost, none free"),
            },
            Err(error) => tracing::warn!(node, cause = %error, "cannot refresh the node id lease"),
        }
    }
    let node = ids.node();
    let released: Result<i64, _> = redis::Script::new(RELEASE)
        .key(key(&prefix, node))
        .arg(&owner)
        .invoke_async(&mut connection.clone())
        .await;
    if let Err(error) = released {
        tracing::warn!(node, cause = %error, "cannot release the node id lease");
    }
}
