//! [`Fanout`] on a `SocketIo`. A stored message reaches the sockets of
//! every instance through the [`Relay`] (one Redis publish for a whole
//! batch of messages, three local emits on each instance); the rarer
//! emits (errors, session ends) go through the Socket.IO adapter, which
//! with Redis reaches every instance, and without it this one.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators, SocketIo};

use super::{catch_up::CatchUps, redis_driver::AdapterHealth, relay::Relay, seen::Seen, NAMESPACE};
use crate::{
    domain::{MessageId, RoomId, UserId},
    pipeline::fanout::{room_channel, socket_channel, user_channel, Delivery, Fanout, FanoutError},
};

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
        self.local.io.close().await;
    }
}

/// Delivers messages to this instance's sockets, each message once.
pub struct LocalDelivery<A: Adapter> {
    io: SocketIo<A>,
    seen: Arc<Seen>,
    catch_ups: Arc<CatchUps>,
}

/// The `sent` and `inbox` notifications.
#[derive(Serialize)]
struct Notice {
    name: &'static str,
    content: NoticeContent,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoticeContent {
    room_id: RoomId,
    message_id: MessageId,
    #[serde(skip_serializing_if = "Option::is_none")]
    author_id: Option<UserId>,
    message: &'static str,
}

impl<A: Adapter> LocalDelivery<A> {
    /// Emits on `io`'s sockets, once per message as `seen` remembers,
    /// recording for the sockets in `catch_ups`.
    pub fn new(io: SocketIo<A>, catch_ups: Arc<CatchUps>, seen: Arc<Seen>) -> Self {
        Self {
            io,
            seen,
            catch_ups,
        }
    }

    fn namespace(&self) -> Result<BroadcastOperators<A>, FanoutError> {
        self.io
            .of(NAMESPACE)
            .ok_or_else(|| FanoutError(format!("namespace {NAMESPACE} is not registered")))
    }

    /// Emits `reply`, `sent` and `inbox` to this instance's sockets, unless
    /// this message was delivered here already.
    pub async fn deliver(&self, delivery: &Delivery) {
        if !self.seen.first_time(delivery.message_id, delivery.room_id) {
            metrics::counter!("deliveries_repeated_total").increment(1);
            return;
        }
        let Ok(sockets) = self.namespace() else {
            return;
        };
        // Held until the emits are made: a catch-up waits for it (see
        // `catch_up`), so a socket gets each message from one side only.
        let delivering = self.catch_ups.delivering().await;
        delivering.record(delivery);
        let room = room_channel(delivery.room_id);
        let mut except_origin: Vec<String> = delivery
            .origin_socket
            .as_deref()
            .map(socket_channel)
            .into_iter()
            .collect();
        except_origin.extend(
            delivering
                .replayed_to(delivery)
                .iter()
                .map(|socket| socket_channel(socket)),
        );
        let sent = Notice {
            name: "sent",
            content: NoticeContent {
                room_id: delivery.room_id,
                message_id: delivery.message_id,
                author_id: None,
                message: "message sent",
            },
        };
        let inbox = Notice {
            name: "inbox",
            content: NoticeContent {
                room_id: delivery.room_id,
                message_id: delivery.message_id,
                author_id: Some(delivery.author_id),
                message: "new message received",
            },
        };
        let emits = [
            sockets
                .clone()
                .local()
                .to(room.clone())
                .except(except_origin)
                .emit("reply", &delivery.reply)
                .await,
            sockets
                .clone()
                .local()
                .to(user_channel(delivery.author_id))
                .emit("notification", &sent)
                .await,
            if delivery.inbox.is_empty() {
                Ok(())
            } else {
                sockets
                    .local()
                    .to(delivery
                        .inbox
                        .iter()
                        .copied()
                        .map(user_channel)
                        .collect::<Vec<_>>())
                    .except(room)
                    .emit("notification", &inbox)
                    .await
            },
        ];
        drop(delivering);
        for error in emits.into_iter().filter_map(Result::err) {
            // Local emits fail only on a socket's full buffer (a client that
            // does not read); that socket misses the event, the rest get it.
            tracing::warn!(cause = %error, "a local emit failed");
        }
    }
}
