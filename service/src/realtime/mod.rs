//! The Socket.IO gateway: namespace `/chats` on the HTTP port.
//!
//! - [`auth`]: the handshake guard (token from header or auth payload).
//! - [`handlers`]: `join`, `leave`, `message`.
//! - [`payload`]: hand-written parsing, so every bad shape is answered.
//! - [`membership`]: room participants, cached in process.
//! - [`respond`] and [`error`]: answers on the ack or as an `error` event.
//! - [`session`]: a socket ends with its login session (logout, expiry).
//! - [`fanout`]: the pipeline's emits, through the local or Redis adapter.
//! - [`redis_driver`]: the adapter's Redis connection, which reconnects and
//!   resubscribes by itself after Redis restarts.
//!
//! With Redis configured, the socketioxide Redis adapter relays every emit
//! to the other instances, so the instance that consumed a message reaches
//! sockets connected anywhere.

pub mod auth;
pub mod error;
pub mod fanout;
pub mod handlers;
pub mod membership;
pub mod payload;
pub mod redis_driver;
pub mod respond;
pub mod session;

use std::sync::Arc;

use anyhow::Context;
use socketioxide::{handler::ConnectHandler, SocketIo};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use self::{
    fanout::SocketFanout,
    membership::Membership,
    redis_driver::{AdapterHealth, HealingDriver},
};
use crate::{
    config::RedisSettings,
    limits::Limits,
    pipeline::{accept::Acceptor, fanout::Fanout},
    sessions::Sessions,
};

/// The namespace of the chat.
pub const NAMESPACE: &str = "/chats";

/// What every socket handler can reach: cheap, cloneable handles.
#[derive(Clone)]
pub struct RealtimeState {
    /// Resolves handshake tokens.
    pub sessions: Arc<dyn Sessions>,
    /// Who is in which room.
    pub membership: Arc<Membership>,
    /// Per-user message rate (and the login throttle), across instances.
    pub limits: Arc<Limits>,
    /// Publishes accepted messages.
    pub acceptor: Arc<Acceptor>,
}

/// The gateway as the rest of the service sees it.
pub struct Gateway {
    /// The emitting side, for the pipeline and for ending sessions.
    pub fanout: Arc<dyn Fanout>,
    layer: Box<dyn FnOnce(axum::Router) -> axum::Router + Send>,
}

impl Gateway {
    /// Serves Socket.IO on `router`'s port.
    pub fn serve_on(self, router: axum::Router) -> axum::Router {
        (self.layer)(router)
    }
}

/// The Redis side of the Socket.IO adapter, connected before the gateway
/// so that readiness can watch it from the start.
pub struct RedisLink {
    driver: HealingDriver,
    prefix: String,
}

impl RedisLink {
    /// Connects the adapter's own Redis connection.
    pub async fn connect(redis: &RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis.url()).context("invalid Redis settings")?;
        let driver = HealingDriver::connect(client)
            .await
            .context("connecting the Socket.IO Redis adapter")?;
        Ok(Self {
            driver,
            prefix: redis.prefix.clone(),
        })
    }

    /// What the adapter's ping task knows about its connection.
    pub fn health(&self) -> AdapterHealth {
        self.driver.health()
    }
}

/// Builds the Socket.IO gateway. With `redis`, sockets of every instance
/// are reached through the Redis adapter; otherwise only this instance's.
pub async fn build(state: RealtimeState, redis: Option<RedisLink>) -> anyhow::Result<Gateway> {
    let Some(redis) = redis else {
        let (layer, io) = SocketIo::builder().with_state(state).build_layer();
        io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate));
        return Ok(Gateway {
            fanout: Arc::new(SocketFanout::new(io, None)),
            layer: Box::new(move |router| router.layer(layer)),
        });
    };
    let health = redis.health();
    // The service's key prefix keeps deployments sharing a Redis apart.
    let config = RedisAdapterConfig::new().with_prefix(format!("{}socket.io", redis.prefix));
    let adapter = RedisAdapterCtr::new_with_driver(redis.driver, config);
    let (layer, io) = SocketIo::builder()
        .with_adapter::<CustomRedisAdapter<_, HealingDriver>>(adapter)
        .with_state(state)
        .build_layer();
    io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate))
        .await
        .context("starting the Socket.IO Redis adapter")?;
    Ok(Gateway {
        fanout: Arc::new(SocketFanout::new(io, Some(health))),
        layer: Box::new(move |router| router.layer(layer)),
    })
}
