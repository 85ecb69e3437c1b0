//! The Socket.IO gateway: namespace `/chats` on the HTTP port.
//!
//! - [`auth`]: the handshake guard (token from header or auth payload).
//! - [`handlers`]: `join`, `leave`, `message`.
//! - [`payload`]: hand-written parsing, so every bad shape is answered.
//! - [`membership`]: room participants, cached in process.
//! - [`respond`] and [`error`]: answers on the ack or as an `error` event.
//! - [`fanout`]: the pipeline's emits, through the local or Redis adapter.
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
pub mod respond;

use std::sync::Arc;

use anyhow::Context;
use socketioxide::{handler::ConnectHandler, SocketIo};
use socketioxide_redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use self::{fanout::SocketFanout, membership::Membership};
use crate::{
    config::RedisSettings,
    pipeline::{accept::Acceptor, fanout::Fanout, rate_limit::RateLimiter},
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
    /// Per-user message rate.
    pub limiter: Arc<RateLimiter>,
    /// Publishes accepted messages.
    pub acceptor: Arc<Acceptor>,
}

/// Adds the Socket.IO layer to `router` and returns the router and the
/// emitting side for the pipeline. With `redis`, sockets of every instance
/// are reached through the Redis adapter; otherwise only this instance's.
pub async fn attach(
    router: axum::Router,
    state: RealtimeState,
    redis: Option<&RedisSettings>,
) -> anyhow::Result<(axum::Router, Arc<dyn Fanout>)> {
    let Some(redis) = redis else {
        let (layer, io) = SocketIo::builder().with_state(state).build_layer();
        io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate));
        return Ok((router.layer(layer), Arc::new(SocketFanout(io))));
    };
    let client = redis::Client::open(redis.url()).context("invalid Redis settings")?;
    // The service's key prefix keeps deployments sharing a Redis apart.
    let config = RedisAdapterConfig::new().with_prefix(format!("{}socket.io", redis.prefix));
    let adapter = RedisAdapterCtr::new_with_redis_config(&client, config)
        .await
        .context("connecting the Socket.IO Redis adapter")?;
    let (layer, io) = SocketIo::builder()
        .with_adapter::<RedisAdapter<_>>(adapter)
        .with_state(state)
        .build_layer();
    io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate))
        .await
        .context("starting the Socket.IO Redis adapter")?;
    Ok((router.layer(layer), Arc::new(SocketFanout(io))))
}
