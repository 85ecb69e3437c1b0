//! The embedded bus: a bounded channel inside the process and one consumer
//! task. Same behaviour as Kafka on a single instance, without durability
//! across a restart (the in-memory store has none either).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    outage::Stopping,
    process::{ProcessError, Processor, Reading},
    retry::{after_failure, AfterFailure},
    Bus, BusError, MessageCreated,
};

/// Messages that may wait for the consumer before senders are pushed back.
const QUEUE: usize = 10_000;
/// Wait before the first store retry; doubled for the next.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// The sending half of the in-process bus.
#[derive(Clone)]
pub struct InProcessBus {
    sender: mpsc::Sender<MessageCreated>,
}

/// The receiving half, handed to [`spawn_consumer`].
pub struct InProcessQueue(mpsc::Receiver<MessageCreated>);

/// A connected bus and queue.
pub fn channel() -> (InProcessBus, InProcessQueue) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (InProcessBus { sender }, InProcessQueue(receiver))
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &MessageCreated) -> Result<(), BusError> {
        self.sender
            .send(event.clone())
            .await
            .map_err(|_| BusError::Unavailable("the in-process consumer has stopped".to_owned()))
    }
}

/// Consumes the queue one message at a time (so every room keeps its
/// order). When `stop` fires, new publishes are refused and what is queued
/// is still processed, since each of those was acknowledged `accepted`.
pub fn spawn_consumer(
    queue: InProcessQueue,
    processor: Arc<Processor>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let InProcessQueue(mut receiver) = queue;
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let next = if stopping {
                receiver.recv().await
            } else {
                tokio::select! {
                    next = receiver.recv() => next,
                    _ = stop.changed() => {
                        stopping = true;
                        receiver.close();
                        continue;
                    }
                }
            };
            let Some(event) = next else { break };
            if handle(&processor, event, &stop).await.is_err() {
                // Stopping in the middle of an outage: what is still queued
                // cannot be stored, and the process is going away with it.
                tracing::warn!("in-process consumer stopped during an outage");
                break;
            }
        }
        tracing::info!("in-process consumer stopped");
    })
}

async fn handle(
    processor: &Processor,
    mut event: MessageCreated,
    stop: &watch::Receiver<bool>,
) -> Result<(), Stopping> {
    loop {
        match processor.process(&event, Reading::First, stop).await {
            Ok(()) | Err(ProcessError::Parked) => return Ok(()),
            Err(ProcessError::Stopping) => return Err(Stopping),
            Err(ProcessError::Store(_)) => {}
        }
        match after_failure(&event, RETRY_BACKOFF) {
            AfterFailure::Retry { next, delay } => {
                tokio::time::sleep(delay).await;
                event = *next;
            }
            AfterFailure::GiveUp if processor.claim_parked(&event, "in-process", stop).await? => {
                return processor.give_up(&event, stop).await;
            }
            AfterFailure::GiveUp => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{
        domain::{HistoryPage, Message},
        pipeline::{
            doubles::{event, Emit, FlakyStore, RecordingFanout},
            retry::MAX_STORE_ATTEMPTS,
        },
        store::Messages,
    };

    async fn run(store: Arc<FlakyStore>, events: &[MessageCreated]) -> Arc<RecordingFanout> {
        let fanout = Arc::new(RecordingFanout::default());
        let processor = Arc::new(Processor::new(store.storage(), fanout.clone()));
        let (bus, queue) = channel();
        let (stop, stopped) = watch::channel(false);
        let consumer = spawn_consumer(queue, processor, stopped);
        for event in events {
            bus.publish(event).await.unwrap();
        }
        stop.send(true).unwrap();
        consumer.await.unwrap();
        fanout
    }

    #[tokio::test]
    async fn a_stored_message_goes_to_the_room_the_author_and_the_peer() {
        let store = Arc::new(FlakyStore::default());
        let event = event();
        let fanout = run(store.clone(), std::slice::from_ref(&event)).await;
        let message = &event.message;
        let history = store
            .history(message.room_id, HistoryPage::Latest { limit: 10 })
            .await
            .unwrap();
        assert_eq!(history, vec![message.clone()]);
        let deliveries = fanout.deliveries();
        assert_eq!(deliveries.len(), 1);
        let delivery = &deliveries[0];
        assert_eq!(delivery.message_id, message.id);
        assert_eq!(delivery.inbox, Vec::from_iter(event.recipient_id));
        assert_eq!(delivery.origin_socket.as_deref(), Some("sid1"));
        let reply: Message = serde_json::from_str(delivery.reply.get()).unwrap();
        assert_eq!(&reply, message);
        assert!(fanout.emits().is_empty());
    }

    #[tokio::test]
    async fn a_message_the_answering_store_refuses_is_tried_three_times_then_reported() {
        let store = Arc::new(FlakyStore::default());
        store.refusing.store(true, Ordering::SeqCst);
        let fanout = run(store.clone(), &[event()]).await;
        let emits: Vec<Emit> = fanout.emits();
        assert_eq!(store.saves(), MAX_STORE_ATTEMPTS);
        assert!(fanout.deliveries().is_empty());
        assert_eq!(emits.len(), 1, "no reply for what was not stored");
        let (to, _, name, payload) = &emits[0];
        assert_eq!((to[0].as_str(), name.as_str()), ("socket:sid1", "error"));
        assert_eq!(payload["name"], "chat_500");
    }
}
