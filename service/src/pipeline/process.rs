//! The one place a created message is handled, whichever bus carried it:
//! store it, then tell the room, the author and the other members.
//!
//! # Outages and failures
//!
//! Each step tells a backend that is down from a message that fails:
//! - the store: a failed write is followed by a probe of the store; if the
//!   probe fails too, Cassandra is down and the message waits ([`Outage`])
//!   without spending an attempt; if the probe answers, the write failed
//!   for this message and the caller spends an attempt (retry topic, DLQ);
//! - the delivery: Redis down means waiting too; a delivery is held while
//!   the adapter is not [`Fanout::settled`].
//!
//! # One outcome
//!
//! During a rebalance two members of the consumer group can hold the same
//! record for a moment, one finishing what it started while the other
//! reads it again. A message that failed a store attempt therefore claims
//! its outcome in the store ([`Outcomes`](crate::store::Outcomes)): a later attempt that stored it
//! claims `stored` before it delivers, and the path that parks it claims
//! `parked` before it tells the author. The first claim holds; a write
//! that loses to a park is taken back out of history and not delivered,
//! and a park that loses to a store tells nobody anything.
//!
//! A first attempt makes no claim (the hot path stays one write) unless
//! its record may have been handled before ([`Reading::Again`]): a member
//! that takes a partition over reads again what the previous owner had
//! not committed, and that owner may have failed a first attempt there
//! and forwarded it to the retry chain, which could park it later. Such a
//! re-read claims `stored` like a retry.
//!
//! # At most one `reply`
//!
//! A message can be processed twice: Kafka re-delivers the tail of a
//! partition after a restart or a rebalance, and a delivery is tried again
//! after an outage. The fan-out publishes a message once, as marks in
//! Redis remember for ten minutes, also across instance restarts (see
//! `realtime::relay`), so no mark needs to be written to the store.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use super::{
    now_ms,
    outage::{Outage, Stopping},
    MessageCreated,
};
use crate::{
    domain::UserId,
    fanout::{socket_channel, user_channel, Delivery, Fanout, FanoutError},
    store::{Claimed, Outcome, Storage, StoreError},
};

/// How long the store's probe may take to tell an outage.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The claimant of every `stored` claim: stores need not exclude each
/// other (the write is an upsert, the delivery happens once per socket).
const STORING: &str = "store";
/// Tries of one emit while the adapter says it is connected.
const EMIT_TRIES: u32 = 3;

/// Why a message was not processed.
#[derive(Debug)]
pub enum ProcessError {
    /// The service is stopping; the message will be consumed again.
    Stopping,
    /// The store refused this message while it answered otherwise: an
    /// attempt is spent.
    Store(StoreError),
    /// Another process parked this message first: it is done, undelivered.
    Parked,
}

impl From<Stopping> for ProcessError {
    fn from(_: Stopping) -> Self {
        Self::Stopping
    }
}

/// Whether a record may have been handled before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Never handled before: its first attempt claims no outcome.
    First,
    /// Possibly handled by an earlier owner of its partition that did not
    /// commit it: storing it claims `stored`, as a retry does.
    Again,
}

/// Stores created messages and fans them out.
pub struct Processor {
    storage: Storage,
    fanout: Arc<dyn Fanout>,
}

impl Processor {
    /// A processor writing messages and room activity to `storage`,
    /// reading groups' members from it, and delivering through `fanout`.
    pub fn new(storage: Storage, fanout: Arc<dyn Fanout>) -> Self {
        Self { storage, fanout }
    }

    /// Stores the message (an idempotent upsert by id), then delivers it,
    /// waiting out backend outages until `stop` fires.
    pub async fn process(
        &self,
        event: &MessageCreated,
        reading: Reading,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), ProcessError> {
        let message = &event.message;
        let span = tracing::info_span!(
            "process",
            user_id = %message.author_id,
            room_id = %message.room_id,
            message_id = %message.id,
            attempt = event.attempt,
        );
        async {
            let inbox = self.store(event, reading, stop).await?;
            self.deliver(event, inbox, stop).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Stores the message and reads who gets its `inbox`: the peer of a
    /// private room, or the group's members at this moment (in the room's
    /// ordered worker, so a member who left before is not told).
    async fn store(
        &self,
        event: &MessageCreated,
        reading: Reading,
        stop: &watch::Receiver<bool>,
    ) -> Result<Vec<UserId>, ProcessError> {
        let claims = event.attempt > 1 || reading == Reading::Again;
        let mut outage = Outage::new(self.storage.probe.name(), stop);
        loop {
            let started = Instant::now();
            let stored = async {
                self.storage.messages.save(&event.message).await?;
                if claims
                    && self.claim(event, Outcome::Stored, STORING).await?.outcome == Outcome::Parked
                {
                    let message = &event.message;
                    self.storage
                        .messages
                        .remove(message.room_id, message.id)
                        .await?;
                    return Ok(None);
                }
                self.inbox_of(event).await.map(Some)
            };
            let error = match stored.await {
                Ok(None) => {
                    tracing::warn!("parked by another consumer meanwhile; not delivered");
                    return Err(ProcessError::Parked);
                }
                Ok(Some(inbox)) => {
                    metrics::histogram!("message_store_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("messages_stored_total").increment(1);
                    return Ok(inbox);
                }
                Err(error) => error,
            };
            if self.store_answers().await {
                metrics::counter!("messages_failed_total", "stage" => "store").increment(1);
                tracing::warn!(cause = %error, "storing the message failed");
                return Err(ProcessError::Store(error));
            }
            outage.wait(&error).await?;
        }
    }

    /// Claims `outcome` for the message in the name of `claimant`.
    async fn claim(
        &self,
        event: &MessageCreated,
        outcome: Outcome,
        claimant: &str,
    ) -> Result<Claimed, StoreError> {
        self.storage
            .outcomes
            .claim(event.message.id, outcome, claimant)
            .await
    }

    /// Claims the message's outcome as parked in the name of `claimant`
    /// (one handling of one record), waiting out store outages. True when
    /// the park is `claimant`'s to carry out; false when the message was
    /// stored instead, or another consumer that raced this one parks it:
    /// then there is nothing to park and nobody to tell.
    pub async fn claim_parked(
        &self,
        event: &MessageCreated,
        claimant: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, Stopping> {
        let mut outage = Outage::new(self.storage.probe.name(), stop);
        loop {
            match self.claim(event, Outcome::Parked, claimant).await {
                Ok(Claimed {
                    outcome: Outcome::Parked,
                    ours,
                }) => return Ok(ours),
                Ok(Claimed {
                    outcome: Outcome::Stored,
                    ..
                }) => {
                    tracing::warn!(
                        message_id = %event.message.id,
                        "stored by another consumer meanwhile; not parked"
                    );
                    return Ok(false);
                }
                Err(error) => outage.wait(&error).await?,
            }
        }
    }

    async fn inbox_of(&self, event: &MessageCreated) -> Result<Vec<UserId>, StoreError> {
        let author = event.message.author_id;
        Ok(match event.recipient_id {
            Some(peer) => vec![peer],
            None => {
                let mut members = self.storage.rooms.members(event.message.room_id).await?;
                members.retain(|member| *member != author);
                members
            }
        })
    }

    async fn store_answers(&self) -> bool {
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.storage.probe.ping()).await,
            Ok(Ok(()))
        )
    }

    /// Hands the message to the fan-out, which emits `reply`, `sent` and
    /// `inbox` on every instance, at most once per socket.
    async fn deliver(
        &self,
        event: &MessageCreated,
        inbox: Vec<UserId>,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), Stopping> {
        let message = &event.message;
        let reply = match serde_json::value::to_raw_value(message) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::error!(cause = %error, "cannot encode the message");
                return Ok(());
            }
        };
        let delivery = Delivery {
            message_id: message.id,
            room_id: message.room_id,
            author_id: message.author_id,
            inbox,
            origin_socket: event.origin_socket.clone(),
            reply,
        };
        let delivered = self
            .until_sent("delivery", stop, || self.fanout.deliver(&delivery))
            .await?;
        if !delivered {
            metrics::counter!("messages_failed_total", "stage" => "deliver").increment(1);
            return Ok(());
        }
        let latency_ms = (now_ms() - event.accepted_at_ms).max(0);
        metrics::histogram!("fanout_latency_seconds").record(latency_ms as f64 / 1000.0);
        metrics::counter!("messages_delivered_total").increment(1);
        tracing::debug!(latency_ms, "delivered");
        Ok(())
    }

    /// Sends with `send`, holding it while the adapter is not settled and
    /// waiting out Redis outages. True when it went out; false when it
    /// failed [`EMIT_TRIES`] times while the adapter was fine.
    async fn until_sent<F, Sent>(
        &self,
        what: &str,
        stop: &watch::Receiver<bool>,
        mut send: F,
    ) -> Result<bool, Stopping>
    where
        F: FnMut() -> Sent,
        Sent: Future<Output = Result<(), FanoutError>>,
    {
        let mut outage = Outage::new("redis", stop);
        let mut tries = 0;
        loop {
            if !self.fanout.settled() {
                outage
                    .wait(&"the Socket.IO adapter is reconnecting")
                    .await?;
                continue;
            }
            match send().await {
                Ok(()) => return Ok(true),
                Err(error) => {
                    tries += 1;
                    if tries >= EMIT_TRIES && self.fanout.settled() {
                        tracing::warn!(cause = %error, what, "emit failed");
                        return Ok(false);
                    }
                    outage.wait(&error).await?;
                }
            }
        }
    }

    /// Tells the author that the message could not be stored after every
    /// attempt (`chat_500`), on the socket that sent it, or on all of the
    /// author's sockets when that one is unknown.
    pub async fn give_up(
        &self,
        event: &MessageCreated,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), Stopping> {
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
        let emitted = self
            .until_sent("chat_500", stop, || {
                self.fanout
                    .emit(vec![to.clone()], Vec::new(), "error", &payload)
            })
            .await?;
        if !emitted {
            tracing::warn!("cannot tell the author about the failure");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::pipeline::doubles::{event, FlakyStore, RecordingFanout};

    struct Setup {
        store: Arc<FlakyStore>,
        storage: Storage,
        fanout: Arc<RecordingFanout>,
        processor: Arc<Processor>,
    }

    fn setup() -> Setup {
        let store = Arc::new(FlakyStore::default());
        let storage = store.storage();
        let fanout = Arc::new(RecordingFanout::default());
        let processor = Arc::new(Processor::new(storage.clone(), fanout.clone()));
        Setup {
            store,
            storage,
            fanout,
            processor,
        }
    }

    /// Runs `process` in a task, lets it retry `until` holds, then returns it.
    async fn spawn_until(
        processor: &Arc<Processor>,
        event: &MessageCreated,
        until: impl Fn() -> bool,
    ) -> tokio::task::JoinHandle<Result<(), ProcessError>> {
        let (processor, event) = (processor.clone(), event.clone());
        let handle = tokio::spawn(async move {
            let (_stop, stopped) = watch::channel(false);
            processor.process(&event, Reading::First, &stopped).await
        });
        while !until() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_outage_holds_the_message_without_spending_an_attempt() {
        let Setup {
            store,
            fanout,
            processor,
            ..
        } = setup();
        store.down.store(true, Ordering::SeqCst);
        let event = event();

        let running = spawn_until(&processor, &event, || store.saves() >= 10).await;
        store.down.store(false, Ordering::SeqCst);
        let outcome = running.await.unwrap();

        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            fanout.deliveries().len(),
            1,
            "delivered once the store is back"
        );
    }

    #[tokio::test]
    async fn a_write_refused_while_the_store_answers_spends_an_attempt() {
        let Setup {
            store,
            fanout,
            processor,
            ..
        } = setup();
        store.refusing.store(true, Ordering::SeqCst);
        let (_stop, stopped) = watch::channel(false);

        let outcome = processor.process(&event(), Reading::First, &stopped).await;

        assert!(
            matches!(outcome, Err(ProcessError::Store(_))),
            "{outcome:?}"
        );
        assert_eq!(store.saves(), 1);
        assert!(fanout.deliveries().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_waits_for_the_adapter_to_settle() {
        let Setup {
            store,
            fanout,
            processor,
            ..
        } = setup();
        fanout.unsettled.store(true, Ordering::SeqCst);
        let event = event();

        let running = spawn_until(&processor, &event, || store.saves() == 1).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(fanout.deliveries().is_empty(), "held while unsettled");
        fanout.unsettled.store(false, Ordering::SeqCst);
        running.await.unwrap().unwrap();

        assert_eq!(fanout.deliveries().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delivery_is_tried_again() {
        let Setup {
            fanout, processor, ..
        } = setup();
        fanout.fail_next.store(2, Ordering::SeqCst);
        let (_stop, stopped) = watch::channel(false);

        processor
            .process(&event(), Reading::First, &stopped)
            .await
            .unwrap();

        assert_eq!(fanout.deliveries().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_during_an_outage_leaves_the_message_unconsumed() {
        let Setup {
            store, processor, ..
        } = setup();
        store.down.store(true, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        let event = event();
        let running =
            tokio::spawn(async move { processor.process(&event, Reading::First, &stopped).await });
        while store.saves() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        stop.send(true).unwrap();

        assert!(matches!(
            running.await.unwrap(),
            Err(ProcessError::Stopping)
        ));
    }

    fn retried() -> MessageCreated {
        MessageCreated {
            attempt: 2,
            ..event()
        }
    }

    #[tokio::test]
    async fn a_retried_write_that_loses_to_a_park_is_taken_back_and_not_delivered() {
        let Setup {
            storage,
            fanout,
            processor,
            ..
        } = setup();
        let event = retried();
        let message = &event.message;
        storage
            .outcomes
            .claim(message.id, Outcome::Parked, "another consumer")
            .await
            .unwrap();
        let (_stop, stopped) = watch::channel(false);

        let outcome = processor.process(&event, Reading::First, &stopped).await;

        assert!(matches!(outcome, Err(ProcessError::Parked)), "{outcome:?}");
        assert!(
            fanout.deliveries().is_empty(),
            "a parked message is not delivered"
        );
        let history = storage
            .messages
            .history(
                message.room_id,
                crate::domain::HistoryPage::Latest { limit: 10 },
            )
            .await
            .unwrap();
        assert!(history.is_empty(), "and not left in history");
    }

    #[tokio::test]
    async fn a_park_that_loses_to_a_retried_write_tells_nobody() {
        let Setup {
            storage,
            fanout,
            processor,
            ..
        } = setup();
        let event = retried();
        let (_stop, stopped) = watch::channel(false);
        processor
            .process(&event, Reading::First, &stopped)
            .await
            .unwrap();

        let parked = processor
            .claim_parked(&event, "a late park", &stopped)
            .await
            .unwrap();

        assert!(!parked);
        assert_eq!(fanout.deliveries().len(), 1);
        let held = storage
            .outcomes
            .claim(event.message.id, Outcome::Parked, "x")
            .await;
        assert_eq!(held.unwrap().outcome, Outcome::Stored);
    }

    #[tokio::test]
    async fn of_two_parks_only_the_first_tells_and_it_may_ask_again() {
        let Setup { processor, .. } = setup();
        let event = event();
        let (_stop, stopped) = watch::channel(false);

        let first = processor
            .claim_parked(&event, "one", &stopped)
            .await
            .unwrap();
        let again = processor
            .claim_parked(&event, "one", &stopped)
            .await
            .unwrap();
        let second = processor
            .claim_parked(&event, "two", &stopped)
            .await
            .unwrap();

        assert!(first && again, "the first park stays its own");
        assert!(!second, "the second parks nothing and tells no one");
    }

    #[tokio::test]
    async fn a_first_attempt_claims_nothing() {
        let Setup {
            storage, processor, ..
        } = setup();
        let event = event();
        let (_stop, stopped) = watch::channel(false);
        processor
            .process(&event, Reading::First, &stopped)
            .await
            .unwrap();

        let held = storage
            .outcomes
            .claim(event.message.id, Outcome::Parked, "x")
            .await;

        assert_eq!(
            held.unwrap(),
            Claimed {
                outcome: Outcome::Parked,
                ours: true
            },
            "no claim was left by the first write"
        );
    }

    #[tokio::test]
    async fn a_first_attempt_read_again_after_a_takeover_loses_to_a_park_and_is_not_delivered() {
        let Setup {
            storage,
            fanout,
            processor,
            ..
        } = setup();
        let event = event();
        storage
            .outcomes
            .claim(event.message.id, Outcome::Parked, "the retry chain")
            .await
            .unwrap();
        let (_stop, stopped) = watch::channel(false);

        let outcome = processor.process(&event, Reading::Again, &stopped).await;

        assert!(matches!(outcome, Err(ProcessError::Parked)), "{outcome:?}");
        assert!(fanout.deliveries().is_empty());
    }

    #[tokio::test]
    async fn a_first_attempt_read_again_claims_stored_so_a_later_park_tells_nobody() {
        let Setup { processor, .. } = setup();
        let event = event();
        let (_stop, stopped) = watch::channel(false);
        processor
            .process(&event, Reading::Again, &stopped)
            .await
            .unwrap();

        let parked = processor
            .claim_parked(&event, "the retry chain", &stopped)
            .await
            .unwrap();

        assert!(!parked, "the message was stored and delivered: no chat_500");
    }
}
