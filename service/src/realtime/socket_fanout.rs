//! [`Fanout`] on a `SocketIo`. A stored message reaches the sockets of
//! every instance through the [`Relay`] (one Redis publish for a whole
//! batch of messages, three local emits on each instance); the rarer
//! emits (errors, session ends) go through the Socket.IO adapter, which
//! with Redis reaches every instance, and without it this one.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators};

use super::{local_delivery::LocalDelivery, redis_driver::AdapterHealth, relay::Relay};
use crate::fanout::{Delivery, Fanout, FanoutError};

/// Emits on the `/chats` namespace of `io`.
pub struct SocketFanout<A: Adapter> {
    local: Arc<LocalDelivery<A>>,
    relay: Option<Relay>,
    adapter: Option<AdapterHealth>,
}

impl<A: Adapter> SocketFanout<A> {
    /// Emits on this instance only.
    pub fn local(local: Arc<LocalDelivery<A>>) -> Self {
        Self {
            local,
            relay: None,
            adapter: None,
        }
    }

    /// Emits on every instance: deliveries through `relay`, the rest
    /// through the Redis adapter whose health is `adapter`.
    pub fn relayed(local: Arc<LocalDelivery<A>>, relay: Relay, adapter: AdapterHealth) -> Self {
        Self {
            local,
            relay: Some(relay),
            adapter: Some(adapter),
        }
    }

    fn namespace(&self) -> Result<BroadcastOperators<A>, FanoutError> {
        self.local.namespace()
    }
}

#[async_trait]
impl<A: Adapter> Fanout for SocketFanout<A> {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), FanoutError> {
        match &self.relay {
            Some(relay) => relay.deliver(delivery.clone()).await,
            None => {
                self.local.deliver(delivery).await;
                Ok(())
            }
        }
    }

    async fn emit(
        &self,
        to: Vec<String>,
        except: Vec<String>,
        event: &str,
        payload: &Value,
    ) -> Result<(), FanoutError> {
        self.namespace()?
            .to(to)
            .except(except)
            .emit(event, payload)
            .await
            .map_err(|error| FanoutError(error.to_string()))
    }

    async fn leave(&self, to: Vec<String>, room: String) -> Result<(), FanoutError> {
        let sockets = self.namespace()?;
        sockets
            .clone()
            .to(to.clone())
            .leave(room)
            .await
            .map_err(|error| FanoutError(error.to_string()))?;
        if self.adapter.is_some() {
            // The adapter publishes the leave without waiting for the other
            // instances. Each of them handles its requests in order, so
            // once all have answered this fetch, all have left the room.
            sockets
                .to(to)
                .fetch_sockets()
                .await
                .map_err(|error| FanoutError(error.to_string()))?;
        }
        Ok(())
    }

    async fn disconnect(&self, to: Vec<String>) -> Result<(), FanoutError> {
        self.namespace()?
            .to(to)
            .disconnect()
            .await
            .map_err(|error| FanoutError(error.to_string()))
    }

    fn settled(&self) -> bool {
        self.adapter.as_ref().is_none_or(AdapterHealth::settled)
    }

    async fn close(&self) {
        self.local.close().await;
    }
}
