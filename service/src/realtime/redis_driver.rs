//! The Redis pub/sub driver of the Socket.IO adapter, on a connection that
//! heals itself and follows the master.
//!
//! socketioxide-redis's own `RedisDriver` holds one `MultiplexedConnection`:
//! once Redis restarts, every publish fails with "broken pipe" and every
//! subscription is gone, for the life of the process. This driver sits on
//! a [`RedisLink`] instead: redis-rs's `ConnectionManager`, which
//! reconnects on its own and, with automatic resubscription, restores the
//! channels it was subscribed to on the new connection; with Sentinel,
//! swapped for a manager on the new master after a failover, where this
//! driver subscribes again to every channel it holds. A [`watch`] task
//! pings twice a second so that a reconnect happens (and the
//! subscriptions come back) even on an instance that has nothing to
//! publish, and so that readiness and metrics reflect the adapter's own
//! connection rather than another one.
//!
//! Messages published while this instance's subscription was down are not
//! replayed by Redis (pub/sub keeps nothing). [`AdapterHealth::settled`]
//! lets the pipeline wait until every instance had the time to resubscribe
//! before it emits again after an outage, which narrows the gap; each end
//! of an outage is announced on [`AdapterHealth::outages`], and
//! [`super::mend`] makes the sockets whole from the history.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::locks::{LockExt, RwLockExt};
use crate::{
    config::RedisSettings,
    redis_link::{LinkOptions, RedisLink},
};

/// How often the adapter's connection is pinged.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How long a ping may take before the connection counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long subscribing again on a new master may take, and the wait
/// before the next try when it failed.
const RESUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
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
    connection: RedisLink,
    handlers: Handlers,
    health: AdapterHealth,
}

impl HealingDriver {
    /// Connects (waiting for Redis, or for Sentinel to name a master) and
    /// starts the ping task and the task that subscribes again after the
    /// master moved.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let handlers: Handlers = Arc::default();
        let pushed = handlers.clone();
        let options = LinkOptions {
            max_delay: Duration::from_secs(1),
            pushes: Some(Arc::new(move |push: PushInfo| route(push, &pushed))),
        };
        let connection = RedisLink::connect(settings, options).await?;
        let health = AdapterHealth::default();
        let resubscribed = Arc::new(AtomicU64::new(connection.generation()));
        tokio::spawn(resubscribe(
            connection.clone(),
            handlers.clone(),
            resubscribed.clone(),
        ));
        tokio::spawn(watch(connection.clone(), health.clone(), resubscribed));
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
    /// publish script). It follows the master as this driver does.
    pub fn connection(&self) -> RedisLink {
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
        self.connection.subscribe(&[channel]).await?;
        Ok(MessageStream::new(receiver))
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), Self::Error> {
        self.handlers.write_or_recover().remove(&channel);
        self.connection.unsubscribe(&[channel]).await?;
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
#[derive(Clone)]
pub struct AdapterHealth(Arc<Mutex<State>>, Arc<watch::Sender<Option<Outage>>>);

impl Default for AdapterHealth {
    fn default() -> Self {
        Self(Arc::default(), Arc::new(watch::channel(None).0))
    }
}

/// An outage of the adapter's connection that ended: messages relayed
/// from about `began_unix_ms` on may not have reached this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the subscription may have been lost, in milliseconds since the
    /// Unix epoch: a ping period and a ping timeout before the first failed
    /// ping noticed it, and a second more for what was on the wire.
    pub began_unix_ms: i64,
    /// How many outages this instance has had, this one included.
    pub count: u64,
}

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

    /// The last outage that ended; changes when the next one ends.
    pub fn outages(&self) -> watch::Receiver<Option<Outage>> {
        self.1.subscribe()
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
                let lost = since.elapsed() + PING_EVERY + PING_TIMEOUT + Duration::from_secs(1);
                let began = std::time::SystemTime::now() - lost;
                let began_unix_ms = began
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |at| at.as_millis() as i64);
                state.down_since = None;
                state.back_at = Some(Instant::now());
                metrics::gauge!("adapter_connected").set(1.0);
                self.1.send_modify(|last| {
                    let count = last.map_or(1, |outage| outage.count + 1);
                    *last = Some(Outage {
                        began_unix_ms,
                        count,
                    });
                });
            }
            _ => {}
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock_or_recover()
    }
}

/// Subscribes again to every channel this driver holds after each swap
/// to a new master (whose manager starts with no subscription), and
/// records in `resubscribed` the generation of the link that has them all.
///
/// A channel subscribed while this runs is safe: its handler is in place
/// before it subscribes on the link, which already is the new master's.
async fn resubscribe(connection: RedisLink, handlers: Handlers, resubscribed: Arc<AtomicU64>) {
    let mut swaps = connection.swaps();
    loop {
        let generation = *swaps.borrow_and_update();
        if resubscribed.load(Ordering::SeqCst) == generation {
            if swaps.changed().await.is_err() {
                return;
            }
            continue;
        }
        let channels: Vec<String> = handlers.read_or_recover().keys().cloned().collect();
        let subscribed = if channels.is_empty() {
            Ok(Ok(()))
        } else {
            tokio::time::timeout(RESUBSCRIBE_TIMEOUT, connection.subscribe(&channels)).await
        };
        match subscribed {
            Ok(Ok(())) => {
                tracing::info!(
                    channels = channels.len(),
                    master = %connection.master(),
                    "the Socket.IO adapter subscribed again on the new Redis master"
                );
                resubscribed.store(generation, Ordering::SeqCst);
            }
            failed => {
                let cause = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {RESUBSCRIBE_TIMEOUT:?}"),
                };
                tracing::warn!(%cause, "cannot subscribe again on the new Redis master; trying again");
                // A newer master cuts the wait short.
                let _ = tokio::time::timeout(RESUBSCRIBE_TIMEOUT, swaps.changed()).await;
            }
        }
    }
}

/// Pings forever: each failed ping also makes the manager reconnect (and
/// resubscribe) as soon as Redis answers again, and, with Sentinel, the
/// link look for a new master. A master that answers counts as up only
/// once this driver's channels are subscribed on it.
async fn watch(connection: RedisLink, health: AdapterHealth, resubscribed: Arc<AtomicU64>) {
    metrics::gauge!("adapter_connected").set(1.0);
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping = redis::cmd("PING");
    loop {
        ticks.tick().await;
        let mut connection = connection.clone();
        let generation = connection.generation();
        let pinged = ping.query_async::<String>(&mut connection);
        let answered = matches!(tokio::time::timeout(PING_TIMEOUT, pinged).await, Ok(Ok(_)));
        health.record(answered && resubscribed.load(Ordering::SeqCst) == generation);
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
