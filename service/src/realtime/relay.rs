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
//! The publishing instance emits to its own sockets itself and skips its
//! own batches when Redis echoes them back. The channel lives on
//! the adapter's self-healing connection ([`HealingDriver`]), so it is
//! resubscribed after Redis restarts or Sentinel names a new master (the
//! publish script runs on that same connection, so it follows too), and
//! the pipeline holds its deliveries while that connection is not
//! settled, as it did for emits.
//!
//! # Once, across restarts
//!
//! A message can be handed to the relay twice: the pipeline tries a
//! failed publish again, and Kafka re-delivers the tail of a partition
//! after a crash or a rebalance, to this instance or another. Each
//! instance remembers the ids it emitted ([`LocalDelivery`]'s `seen`), but
//! an instance that restarted remembers nothing, and its new sockets would
//! get a re-delivered message a second time. So the publish itself is
//! once per message: a script marks each message in Redis (`SET NX`, for
//! as long as `seen` remembers ids) and publishes, in one atomic step,
//! only the messages that had no mark. The instance emits to its own
//! sockets what it published, after the script; a message marked by an
//! earlier publish of this same instance (whose answer was lost) is
//! emitted here too, since its echo is skipped, and `seen` keeps that from
//! reaching a socket twice. The marks cost Redis about 110 bytes per
//! message for ten minutes: some 66 MB at 1,000 messages a second.
//!
//! A failed publish fails every delivery of the batch; the pipeline tries
//! them again.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use redis::Script;
use serde::Deserialize;
use socketioxide::adapter::Adapter;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{mpsc, oneshot};

use super::{local_delivery::LocalDelivery, redis_driver::HealingDriver};
use crate::{
    fanout::{Delivery, FanoutError},
    redis_link::RedisLink,
};

/// Deliveries one publish carries at most.
const BATCH: usize = 256;
/// Deliveries waiting for a publish before `deliver` waits for room.
const QUEUE: usize = 4096;
/// Batches received and not yet emitted before the connection drops more.
const RECEIVED: usize = 1024;
/// How long one publish may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a message's mark keeps it from being published again: as long
/// as the instances remember the ids they emitted.
const MARKED_FOR: Duration = super::seen::WINDOW;

/// Marks and publishes, atomically, the deliveries of a batch that have
/// no mark yet (see "Once, across restarts").
///
/// `KEYS[i]` is delivery i's mark; `ARGV[1]` the channel, `ARGV[2]` this
/// instance, `ARGV[3]` the seconds a mark lives, `ARGV[4]` the batch's
/// opening, `ARGV[4 + i]` delivery i as JSON. Returns the positions,
/// counted from one, of the deliveries this instance published: now, or
/// in an earlier call whose answer it lost.
const PUBLISH_ONCE: &str = r#"
local fresh, mine = {}, {}
for i, key in ipairs(KEYS) do
  local before = redis.call('SET', key, ARGV[2], 'NX', 'GET', 'EX', ARGV[3])
  if not before then
    fresh[#fresh + 1] = ARGV[4 + i]
    mine[#mine + 1] = i
  elseif before == ARGV[2] then
    mine[#mine + 1] = i
  end
end
if #fresh > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[4] .. table.concat(fresh, ',') .. ']}')
end
return mine
"#;

/// The publishing side of the relay.
pub struct Relay {
    queue: mpsc::Sender<Job>,
}

struct Job {
    delivery: Delivery,
    done: oneshot::Sender<Result<(), FanoutError>>,
}

/// One publish, as `PUBLISH_ONCE` writes it: the deliveries of an
/// instance, which skips its own.
#[derive(Deserialize)]
struct Batch {
    from: u64,
    deliveries: Vec<Delivery>,
}

impl Relay {
    /// Subscribes to `channel` on `driver`, emitting what other instances
    /// publish there to `local`'s sockets, and starts the publisher, which
    /// marks what it published under `marks` (a key prefix).
    pub async fn start<A: Adapter>(
        driver: HealingDriver,
        channel: String,
        marks: String,
        local: Arc<LocalDelivery<A>>,
    ) -> Result<Self, FanoutError> {
        let node = rand::random::<u64>();
        let received = driver
            .subscribe(channel.clone(), RECEIVED)
            .await
            .map_err(|error| FanoutError(error.to_string()))?;
        tokio::spawn(receive(received, node, local.clone()));
        let (queue, jobs) = mpsc::channel(QUEUE);
        let publisher = Publisher {
            connection: driver.connection(),
            script: Script::new(PUBLISH_ONCE),
            channel,
            marks,
            node,
        };
        tokio::spawn(publish(jobs, publisher, local));
        Ok(Self { queue })
    }

    /// Publishes to the other instances and delivers on this one, unless
    /// the message was published before; returns once Redis took it.
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

/// What one instance publishes with.
struct Publisher {
    connection: RedisLink,
    script: Script,
    channel: String,
    marks: String,
    node: u64,
}

impl Publisher {
    /// Publishes the deliveries that were never published; returns the
    /// ones this instance published (positions in `deliveries`).
    async fn publish(&self, deliveries: &[Delivery]) -> Result<Vec<usize>, FanoutError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(&self.channel)
            .arg(self.node)
            .arg(MARKED_FOR.as_secs())
            .arg(format!(r#"{{"from":{},"deliveries":["#, self.node));
        for delivery in deliveries {
            let json =
                serde_json::to_string(delivery).map_err(|error| FanoutError(error.to_string()))?;
            invocation
                .key(format!("{}{}", self.marks, delivery.message_id))
                .arg(json);
        }
        let mut connection = self.connection.clone();
        let published = invocation.invoke_async::<Vec<usize>>(&mut connection);
        match tokio::time::timeout(PUBLISH_TIMEOUT, published).await {
            Ok(Ok(mine)) => Ok(mine
                .into_iter()
                .filter_map(|at| at.checked_sub(1))
                .collect()),
            Ok(Err(error)) => Err(FanoutError(error.to_string())),
            Err(_) => Err(FanoutError("the relay's publish timed out".to_owned())),
        }
    }
}

/// Takes whatever queued, publishes it in one payload, emits it here.
async fn publish<A: Adapter>(
    mut queue: mpsc::Receiver<Job>,
    publisher: Publisher,
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
        metrics::histogram!("relay_batch_size").record(deliveries.len() as f64);
        let outcome = match publisher.publish(&deliveries).await {
            Ok(mine) => {
                let repeats = deliveries.len() - mine.len();
                metrics::counter!("deliveries_repeated_total").increment(repeats as u64);
                for at in mine {
                    if let Some(delivery) = deliveries.get(at) {
                        local.deliver(delivery).await;
                    }
                }
                Ok(())
            }
            Err(error) => Err(error),
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
        let batch: Batch = match serde_json::from_slice(&payload) {
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
