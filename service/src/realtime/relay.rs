//! Stored messages to every instance: one Redis publish per batch.
//!
//! Through the Socket.IO adapter, one message cost three publishes
//! (`reply`, `sent`, `inbox`), each awaited, each received, decoded and
//! matched against the rooms by every instance. The relay publishes the
//! message once instead, with what each instance needs to make the three
//! emits itself ([`Delivery`]), and publishes every message that queued
//! while the previous publish was on the wire in the same payload: under
//! load, one publish carries tens of messages.
//!
//! The publishing instance emits to its own sockets before publishing and
//! skips its own batches when Redis echoes them back. The channel lives on
//! the adapter's self-healing connection ([`HealingDriver`]), so it is
//! resubscribed after Redis restarts, and the pipeline holds its
//! deliveries while that connection is not settled, as it did for emits.
//!
//! A failed publish fails every delivery of the batch; the pipeline tries
//! them again, and [`LocalDelivery`]'s memory of recent ids keeps the
//! sockets that already had a message from getting it twice.

use std::{borrow::Cow, sync::Arc, time::Duration};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{mpsc, oneshot};

use super::{local_delivery::LocalDelivery, redis_driver::HealingDriver};
use crate::fanout::{Delivery, FanoutError};

/// Deliveries one publish carries at most.
const BATCH: usize = 256;
/// Deliveries waiting for a publish before `deliver` waits for room.
const QUEUE: usize = 4096;
/// Batches received and not yet emitted before the connection drops more.
const RECEIVED: usize = 1024;
/// How long one publish may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The publishing side of the relay.
pub struct Relay {
    queue: mpsc::Sender<Job>,
}

struct Job {
    delivery: Delivery,
    done: oneshot::Sender<Result<(), FanoutError>>,
}

/// One publish: the batches of an instance, which skips its own.
#[derive(Serialize, Deserialize)]
struct Batch<'a> {
    from: u64,
    deliveries: Cow<'a, [Delivery]>,
}

impl Relay {
    /// Subscribes to `channel` on `driver`, emitting what other instances
    /// publish there to `local`'s sockets, and starts the publisher.
    pub async fn start<A: Adapter>(
        driver: HealingDriver,
        channel: String,
        local: Arc<LocalDelivery<A>>,
    ) -> Result<Self, FanoutError> {
        let node = rand::random::<u64>();
        let received = driver
            .subscribe(channel.clone(), RECEIVED)
            .await
            .map_err(|error| FanoutError(error.to_string()))?;
        tokio::spawn(receive(received, node, local.clone()));
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(publish(jobs, driver, channel, node, local));
        Ok(Self { queue })
    }

    /// Delivers on this instance, then publishes to the others; returns
    /// once Redis took the publish.
    pub async fn deliver(&self, delivery: Delivery) -> Result<(), FanoutError> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Job { delivery, done })
            .await
            .map_err(|_| FanoutError("the relay has stopped".to_owned()))?;
        outcome
            .await
            .map_err(|_| FanoutError("the relay has stopped".to_owned()))?
    }
}

/// Takes whatever queued, emits it here, publishes it in one payload.
async fn publish<A: Adapter>(
    mut queue: mpsc::Receiver<Job>,
    driver: HealingDriver,
    channel: String,
    node: u64,
    local: Arc<LocalDelivery<A>>,
) {
    let mut jobs = Vec::with_capacity(BATCH);
    let mut deliveries = Vec::with_capacity(BATCH);
    let mut waiting = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut jobs, BATCH).await > 0 {
        for Job { delivery, done } in jobs.drain(..) {
            deliveries.push(delivery);
            waiting.push(done);
        }
        for delivery in &deliveries {
            local.deliver(delivery).await;
        }
        let batch = Batch {
            from: node,
            deliveries: Cow::Borrowed(&deliveries),
        };
        let outcome = match serde_json::to_vec(&batch) {
            Ok(payload) => {
                metrics::histogram!("relay_batch_size").record(deliveries.len() as f64);
                let published = driver.publish(channel.clone(), payload);
                match tokio::time::timeout(PUBLISH_TIMEOUT, published).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(FanoutError(error.to_string())),
                    Err(_) => Err(FanoutError("the relay's publish timed out".to_owned())),
                }
            }
            Err(error) => Err(FanoutError(error.to_string())),
        };
        deliveries.clear();
        for done in waiting.drain(..) {
            let _ = done.send(outcome.clone());
        }
    }
}

/// Emits other instances' batches to this instance's sockets.
async fn receive<A: Adapter>(
    mut received: MessageStream<ChanItem>,
    node: u64,
    local: Arc<LocalDelivery<A>>,
) {
    while let Some((_, payload)) = received.next().await {
        let batch: Batch<'_> = match serde_json::from_slice(&payload) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(cause = %error, "unreadable relay batch skipped");
                continue;
            }
        };
        if batch.from == node {
            continue;
        }
        for delivery in batch.deliveries.iter() {
            local.deliver(delivery).await;
        }
    }
}
