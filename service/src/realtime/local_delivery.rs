//! Stored messages to this instance's sockets, each message once: the
//! `reply` to the room's joined sockets but the sending one, `sent` to the
//! author's sockets, `inbox` to the other members' sockets that have not
//! joined the room. Both the local and the relayed fan-out end here.

use std::sync::Arc;

use serde::Serialize;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators, SocketIo};

use super::{catch_up::CatchUps, seen::Seen, NAMESPACE};
use crate::{
    domain::{MessageId, RoomId, UserId},
    fanout::{room_channel, socket_channel, user_channel, Delivery, FanoutError},
};

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

    /// The `/chats` namespace's sockets on this instance.
    pub fn namespace(&self) -> Result<BroadcastOperators<A>, FanoutError> {
        self.io
            .of(NAMESPACE)
            .ok_or_else(|| FanoutError(format!("namespace {NAMESPACE} is not registered")))
    }

    /// The ids delivered here recently.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// The sockets of this instance catching up.
    pub fn catch_ups(&self) -> &CatchUps {
        &self.catch_ups
    }

    /// Disconnects every socket of this instance (at shutdown).
    pub async fn close(&self) {
        self.io.close().await;
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
