//! The one place a created message is handled, whichever bus carried it:
//! store it, then tell the room, the author and the peer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tracing::Instrument;

use super::{
    claims::Claims,
    fanout::{room_channel, socket_channel, user_channel, Fanout},
    now_ms, MessageCreated,
};
use crate::store::{Messages, StoreError};

/// How long a "delivered" mark is kept. Kafka re-delivers within minutes
/// (a rebalance, a restart), so an hour covers it with a wide margin.
const DELIVERED_TTL: Duration = Duration::from_secs(3600);

/// Stores created messages and fans them out.
pub struct Processor {
    messages: Arc<dyn Messages>,
    fanout: Arc<dyn Fanout>,
    delivered: Arc<dyn Claims>,
}

impl Processor {
    /// A processor writing to `messages` and emitting through `fanout`;
    /// `delivered` remembers which messages were already emitted.
    pub fn new(
        messages: Arc<dyn Messages>,
        fanout: Arc<dyn Fanout>,
        delivered: Arc<dyn Claims>,
    ) -> Self {
        Self {
            messages,
            fanout,
            delivered,
        }
    }

    /// Stores the message (an idempotent upsert by id), then delivers it.
    /// Fails only when the store failed; the caller decides about retries.
    pub async fn process(&self, event: &MessageCreated) -> Result<(), StoreError> {
        let message = &event.message;
        let span = tracing::info_span!(
            "process",
            user_id = %message.author_id,
            room_id = %message.room_id,
            message_id = %message.id,
            attempt = event.attempt,
        );
        async {
            let started = Instant::now();
            if let Err(error) = self.messages.save(message).await {
                metrics::counter!("messages_failed_total", "stage" => "store").increment(1);
                tracing::warn!(cause = %error, "storing the message failed");
                return Err(error);
            }
            metrics::histogram!("message_store_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("messages_stored_total").increment(1);
            self.deliver(event).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Emits `reply`, `sent` and `inbox`, at most once per message even when
    /// the bus hands it over twice.
    async fn deliver(&self, event: &MessageCreated) {
        let message = &event.message;
        let key = format!("delivered:{}", message.id);
        match self.delivered.claim(&key, "1", DELIVERED_TTL).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                tracing::debug!("already delivered; not emitting again");
                return;
            }
            Err(error) => {
                // Without the mark a second emit cannot be ruled out; history
                // has the message, so skipping keeps "at most once".
                metrics::counter!("messages_failed_total", "stage" => "deliver").increment(1);
                tracing::warn!(cause = %error, "cannot mark the message delivered; not emitting");
                return;
            }
        }

        let room = room_channel(message.room_id);
        let except_origin: Vec<String> = event
            .origin_socket
            .iter()
            .map(|s| socket_channel(s))
            .collect();
        let reply = match serde_json::to_value(message) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::error!(cause = %error, "cannot encode the message");
                return;
            }
        };
        let sent = json!({
            "name": "sent",
            "content": {
                "roomId": message.room_id,
                "messageId": message.id,
                "message": "message sent",
            },
        });
        let inbox = json!({
            "name": "inbox",
            "content": {
                "roomId": message.room_id,
                "messageId": message.id,
                "authorId": message.author_id,
                "message": "new message received",
            },
        });
        let emits: [(Vec<String>, Vec<String>, &str, &Value); 3] = [
            (vec![room.clone()], except_origin, "reply", &reply),
            (
                vec![user_channel(message.author_id)],
                Vec::new(),
                "notification",
                &sent,
            ),
            (
                vec![user_channel(event.recipient_id)],
                vec![room],
                "notification",
                &inbox,
            ),
        ];
        let mut failed = false;
        for (to, except, name, payload) in emits {
            if let Err(error) = self.fanout.emit(to, except, name, payload).await {
                failed = true;
                tracing::warn!(cause = %error, event = name, "emit failed");
            }
        }
        if failed {
            metrics::counter!("messages_failed_total", "stage" => "deliver").increment(1);
            return;
        }
        let latency_ms = (now_ms() - event.accepted_at_ms).max(0);
        metrics::histogram!("fanout_latency_seconds").record(latency_ms as f64 / 1000.0);
        metrics::counter!("messages_delivered_total").increment(1);
        tracing::debug!(latency_ms, "delivered");
    }

    /// Tells the author that the message could not be stored after every
    /// attempt (`chat_500`), on the socket that sent it, or on all of the
    /// author's sockets when that one is unknown.
    pub async fn give_up(&self, event: &MessageCreated) {
        let message = &event.message;
        metrics::counter!("messages_failed_total", "stage" => "parked").increment(1);
        tracing::error!(
            user_id = %message.author_id,
            room_id = %message.room_id,
            message_id = %message.id,
            "message could not be stored after every attempt; parked"
        );
        let to = match &event.origin_socket {
            Some(socket) => socket_channel(socket),
            None => user_channel(message.author_id),
        };
        let payload = json!({
            "name": "chat_500",
            "message": format!("message {} could not be stored", message.id),
            "roomId": message.room_id,
        });
        if let Err(error) = self
            .fanout
            .emit(vec![to], Vec::new(), "error", &payload)
            .await
        {
            tracing::warn!(cause = %error, "cannot tell the author about the failure");
        }
    }
}
