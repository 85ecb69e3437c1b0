//! The Redis pub/sub driver of the Socket.IO adapter, on a connection that
//! heals itself.
//!
//! socketioxide-redis's own `RedisDriver` holds one `MultiplexedConnection`:
//! once Redis restarts, every publish fails with "broken pipe" and every
//! subscription is gone, for the life of the process. This driver sits on
//! redis-rs's `ConnectionManager` instead, which reconnects on its own and,
//! with automatic resubscription, restores the channels it was subscribed
//! to on the new connection. A [`watch`] task pings Redis twice a second so
//! that a reconnect happens (and the subscriptions come back) even on an
//! instance that has nothing to publish, and so that readiness and metrics
//! reflect the adapter's own connection rather than another one.
//!
//! Messages published while this instance's subscription was down are not
//! replayed (Redis pub/sub keeps nothing). [`AdapterHealth::settled`] lets
//! the pipeline wait until every instance had the time to resubscribe
//! before it emits again after an outage.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    AsyncCommands, FromRedisValue, PushInfo, PushKind,
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::{sync::mpsc, time::Instant};

use crate::locks::{LockExt, RwLockExt};

/// How often the adapter's connection is pinged.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How long a ping may take before the connection counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// After the connection comes back, how long to wait before emitting:
/// two ping periods and a margin, so the other instances have noticed the
/// outage, reconnected and resubscribed too.
const SETTLE_AFTER_RECONNECT: Duration = Duration::from_millis(1500);

/// A driver error (the redis-rs error).
#[derive(Debug)]
pub struct DriverError(redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {}

impl From<redis::RedisError> for DriverError {
    fn from(error: redis::RedisError) -> Self {
        Self(error)
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// A [`Driver`] on a self-healing, self-resubscribing connection.
#[derive(Clone)]
pub struct HealingDriver {
    connection: ConnectionManager,
    handlers: Handlers,
    health: AdapterHealth,
}

impl HealingDriver {
    /// Connects (waiting for Redis with the manager's retries) and starts
    /// the ping task.
    pub async fn connect(client: redis::Client) -> Result<Self, redis::RedisError> {
        let handlers: Handlers = Arc::default();
        let pushed = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1))
            .set_push_sender(move |push: PushInfo| {
                route(push, &pushed);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let connection = ConnectionManager::new_with_config(client, config).await?;
        let health = AdapterHealth::default();
        tokio::spawn(watch(connection.clone(), health.clone()));
        Ok(Self {
            connection,
            handlers,
            health,
        })
    }

    /// What the ping task knows about the connection.
    pub fn health(&self) -> AdapterHealth {
        self.health.clone()
    }

    /// The connection, for commands other than pub/sub (the relay's
    /// publish script).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// Hands a pushed pub/sub message to the stream of its channel.
fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        String::from_redis_value(channel),
        Vec::<u8>::from_redis_value(payload),
    ) else {
        tracing::warn!("unreadable message on the adapter's connection");
        return;
    };
    let handlers = handlers.read_or_recover();
    if let Some(sender) = handlers.get(&channel) {
        if let Err(error) = sender.try_send((channel, payload)) {
            metrics::counter!("adapter_messages_dropped_total").increment(1);
            tracing::warn!(cause = %error, "adapter stream full; a remote emit was dropped");
        }
    }
}

impl Driver for HealingDriver {
    type Error = DriverError;

    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), Self::Error> {
        self.connection
            .clone()
            .publish::<_, _, redis::Value>(channel, payload)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        channel: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (sender, receiver) = mpsc::channel(size);
        self.handlers
            .write_or_recover()
            .insert(channel.clone(), sender);
        self.connection.clone().subscribe(channel).await?;
        Ok(MessageStream::new(receiver))
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), Self::Error> {
        self.handlers.write_or_recover().remove(&channel);
        self.connection.clone().unsubscribe(channel).await?;
        Ok(())
    }

    async fn num_serv(&self, channel: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(count)
    }
}

/// Whether the adapter's Redis connection answers, as its ping task saw it.
#[derive(Clone, Default)]
pub struct AdapterHealth(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Set while the last ping failed.
    down_since: Option<Instant>,
    /// When the connection last came back after being down.
    back_at: Option<Instant>,
}

impl AdapterHealth {
    /// True when the last ping answered.
    pub fn is_up(&self) -> bool {
        self.state().down_since.is_none()
    }

    /// True when the connection is up and has been for long enough after
    /// an outage that every instance has resubscribed.
    pub fn settled(&self) -> bool {
        let state = self.state();
        state.down_since.is_none()
            && state
                .back_at
                .is_none_or(|at| at.elapsed() >= SETTLE_AFTER_RECONNECT)
    }

    fn record(&self, answered: bool) {
        let mut state = self.state();
        match (answered, state.down_since) {
            (false, None) => {
                tracing::warn!("the Socket.IO adapter lost Redis; emits wait until it is back");
                state.down_since = Some(Instant::now());
                metrics::gauge!("adapter_connected").set(0.0);
            }
            (true, Some(since)) => {
                tracing::info!(
                    down_ms = since.elapsed().as_millis() as u64,
                    "the Socket.IO adapter is connected to Redis again"
                );
                state.down_since = None;
                state.back_at = Some(Instant::now());
                metrics::gauge!("adapter_connected").set(1.0);
            }
            _ => {}
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock_or_recover()
    }
}

/// Pings forever: each failed ping also makes the manager reconnect (and
/// resubscribe) as soon as Redis answers again.
async fn watch(connection: ConnectionManager, health: AdapterHealth) {
    metrics::gauge!("adapter_connected").set(1.0);
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping = redis::cmd("PING");
    loop {
        ticks.tick().await;
        let mut connection = connection.clone();
        let ping = ping.query_async::<String>(&mut connection);
        let answered = matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)));
        health.record(answered);
    }
}

/// `/ready` names the adapter's connection on its own: the session store
/// answering says nothing about it.
#[async_trait::async_trait]
impl crate::store::Probe for AdapterHealth {
    fn name(&self) -> &'static str {
        "redis-adapter"
    }

    async fn ping(&self) -> Result<(), crate::store::StoreError> {
        if self.is_up() {
            return Ok(());
        }
        Err(crate::store::StoreError::unavailable(
            "redis-adapter",
            anyhow::anyhow!("the adapter's last ping to Redis failed"),
        ))
    }
}
