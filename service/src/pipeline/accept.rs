//! Accepting a message: give it an id, drop resends, publish it. The sender
//! hears `accepted` only once the bus holds the message.
//!
//! Resends are recognised by `(author, clientMessageId)`. The first send
//! claims the key with `p:<id>` (pending) before publishing and turns it
//! into `<id>` once the bus acknowledged. A resend that finds:
//! - `<id>`: is answered with that id and publishes nothing;
//! - `p:<id>`: publishes again *with the same id*. The first attempt may
//!   have failed, timed out, or died with its instance; publishing twice is
//!   harmless because storing is an upsert by id and delivery happens once
//!   per id.
//!
//! So a failed publish does not release the key: a timed-out publish may
//! still land in Kafka later, and a resend that took a fresh id would then
//! make a second message. Keeping `p:<id>` makes the resend reuse the id,
//! which is right whether or not the first attempt landed.

use std::{sync::Arc, time::Duration};

use super::{claims::Claims, node_id::IdSource, now_ms, Bus, BusError, MessageCreated};
use crate::{
    domain::{Audience, Message, MessageId, MessageText, RoomId, UserId},
    store::StoreError,
    telemetry::Steps,
};

/// Why a message could not be accepted; every case means "try later".
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The bus did not take the message.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The resend check could not be made.
    #[error(transparent)]
    Dedupe(#[from] StoreError),
}

/// A message a participant wants to send, already validated.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Who sends it.
    pub author: UserId,
    /// Who hears of it besides the room's joined sockets.
    pub audience: Audience,
    /// Where it goes.
    pub room: RoomId,
    /// What it says.
    pub text: MessageText,
    /// The client's own id for it, to recognise resends.
    pub client_message_id: Option<String>,
    /// The sending socket's id.
    pub origin_socket: String,
}

/// What the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The message's id.
    pub id: MessageId,
    /// True when this was a resend of an already accepted message.
    pub resend: bool,
}

/// Turns submissions into published messages.
pub struct Acceptor {
    bus: Arc<dyn Bus>,
    ids: IdSource,
    claims: Arc<dyn Claims>,
    remember_for: Duration,
}

enum Previous {
    None,
    Pending(MessageId),
    Published(MessageId),
}

impl Acceptor {
    /// Publishes on `bus`, with ids from `ids`, remembering client ids in
    /// `claims` for `remember_for`.
    pub fn new(
        bus: Arc<dyn Bus>,
        ids: IdSource,
        claims: Arc<dyn Claims>,
        remember_for: Duration,
    ) -> Self {
        Self {
            bus,
            ids,
            claims,
            remember_for,
        }
    }

    /// Accepts `submission`: returns once the bus holds it. Its steps are
    /// noted in `steps`.
    pub async fn accept(
        &self,
        submission: Submission,
        steps: &mut Steps,
    ) -> Result<Accepted, AcceptError> {
        let fresh = self.ids.next_id();
        let key = submission
            .client_message_id
            .as_ref()
            .map(|client_id| format!("cmid:{}:{client_id}", submission.author));
        let previous = match &key {
            Some(key) => {
                steps.begin("claim");
                self.previous(key, fresh).await?
            }
            None => Previous::None,
        };
        let (id, resend) = match previous {
            Previous::Published(id) => {
                metrics::counter!("messages_deduplicated_total").increment(1);
                return Ok(Accepted { id, resend: true });
            }
            Previous::Pending(id) => (id, true),
            Previous::None => (fresh, false),
        };

        let event = MessageCreated {
            message: Message::new_text(
                id,
                submission.room,
                submission.author,
                &submission.text,
                submission.client_message_id.clone(),
            )
            .in_room_of(submission.audience.kind()),
            recipient_id: match submission.audience {
                Audience::Peer(peer) => Some(peer),
                Audience::Group => None,
            },
            origin_socket: Some(submission.origin_socket),
            accepted_at_ms: now_ms(),
            attempt: 1,
            not_before_ms: 0,
        };
        steps.begin("publish");
        if let Err(error) = self.bus.publish(&event).await {
            metrics::counter!("messages_failed_total", "stage" => "publish").increment(1);
            // The key stays pending (see the module doc): a resend reuses the id.
            return Err(error.into());
        }
        if let Some(key) = &key {
            steps.begin("confirm");
            if let Err(error) = self.claims.confirm(key, &id.to_string()).await {
                // Harmless: a later resend publishes the same id again.
                tracing::warn!(cause = %error, "cannot confirm the clientMessageId");
            }
        }
        metrics::counter!("messages_accepted_total").increment(1);
        Ok(Accepted { id, resend })
    }

    async fn previous(&self, key: &str, fresh: MessageId) -> Result<Previous, StoreError> {
        let pending = format!("p:{fresh}");
        let Some(value) = self.claims.claim(key, &pending, self.remember_for).await? else {
            return Ok(Previous::None);
        };
        Ok(match value.strip_prefix("p:") {
            Some(id) => MessageId::parse(id).map_or(Previous::None, Previous::Pending),
            None => MessageId::parse(&value).map_or(Previous::None, Previous::Published),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::pipeline::claims::MemoryClaims;

    #[derive(Default)]
    struct RecordingBus {
        published: Mutex<Vec<MessageCreated>>,
        down: bool,
    }

    #[async_trait]
    impl Bus for RecordingBus {
        async fn publish(&self, event: &MessageCreated) -> Result<(), BusError> {
            if self.down {
                return Err(BusError::Unavailable("down".to_owned()));
            }
            self.published.lock().unwrap().push(event.clone());
            Ok(())
        }
    }

    fn acceptor(bus: Arc<RecordingBus>, claims: Arc<MemoryClaims>) -> Acceptor {
        Acceptor::new(bus, IdSource::fixed(0), claims, Duration::from_secs(60))
    }

    fn steps() -> Steps {
        Steps::since(std::time::Instant::now(), "test")
    }

    fn submission(author: UserId, client_id: Option<&str>) -> Submission {
        Submission {
            author,
            audience: Audience::Peer(UserId::random()),
            room: RoomId::random(),
            text: MessageText::parse("hi").unwrap(),
            client_message_id: client_id.map(str::to_owned),
            origin_socket: "sid".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_resend_gets_the_same_id_and_publishes_nothing() {
        let bus = Arc::new(RecordingBus::default());
        let acceptor = acceptor(bus.clone(), Arc::new(MemoryClaims::new(100)));
        let author = UserId::random();
        let first = acceptor
            .accept(submission(author, Some("c1")), &mut steps())
            .await
            .unwrap();
        let again = acceptor
            .accept(submission(author, Some("c1")), &mut steps())
            .await
            .unwrap();
        assert_eq!(first.id, again.id);
        assert!(again.resend && !first.resend);
        assert_eq!(bus.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_same_client_id_from_another_author_is_another_message() {
        let bus = Arc::new(RecordingBus::default());
        let acceptor = acceptor(bus.clone(), Arc::new(MemoryClaims::new(100)));
        let a = acceptor
            .accept(submission(UserId::random(), Some("c1")), &mut steps())
            .await
            .unwrap();
        let b = acceptor
            .accept(submission(UserId::random(), Some("c1")), &mut steps())
            .await
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(bus.published.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_resend_after_a_failed_publish_publishes_the_same_id() {
        let claims = Arc::new(MemoryClaims::new(100));
        let author = UserId::random();
        let down = Arc::new(RecordingBus {
            down: true,
            ..RecordingBus::default()
        });
        let failed = acceptor(down, claims.clone())
            .accept(submission(author, Some("c1")), &mut steps())
            .await;
        assert!(failed.is_err());
        let up = Arc::new(RecordingBus::default());
        let resent = acceptor(up.clone(), claims.clone())
            .accept(submission(author, Some("c1")), &mut steps())
            .await
            .unwrap();
        let key = format!("cmid:{author}:c1");
        assert_eq!(claims.get(&key).await.unwrap(), Some(resent.id.to_string()));
        assert_eq!(up.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_resend_of_a_pending_message_publishes_the_same_id_again() {
        let claims = Arc::new(MemoryClaims::new(100));
        let author = UserId::random();
        let key = format!("cmid:{author}:c1");
        claims
            .claim(&key, "p:123456789", Duration::from_secs(60))
            .await
            .unwrap();
        let bus = Arc::new(RecordingBus::default());
        let accepted = acceptor(bus.clone(), claims.clone())
            .accept(submission(author, Some("c1")), &mut steps())
            .await
            .unwrap();
        assert_eq!(accepted.id.to_string(), "123456789");
        assert_eq!(bus.published.lock().unwrap()[0].message.id, accepted.id);
        assert_eq!(
            claims.get(&key).await.unwrap().as_deref(),
            Some("123456789")
        );
    }
}
