//! Failing fast while Kafka does not answer. A publish that times out makes
//! the breaker ask the brokers for the topic's metadata; if they do not
//! answer within [`FIRST_PROBE_TIMEOUT`], the breaker opens, and from then
//! on a publish is refused at once, without handing the record to
//! librdkafka (so a refused message can never land later), until a
//! metadata request answers again. A sender whose messages queue behind an
//! outage hears `chat_503` for each of them in its order, at once, instead
//! of each waiting out its own timeout.
//!
//! When the brokers do answer, the breaker stays closed: one broker of a
//! replicated cluster died, and only the publishes to its partitions wait
//! until the controller moves their leadership (each still bounded by the
//! publish timeout). Opening on the first timeout refused every room's
//! sends for the probe's round trip (measured on the replicated stack: 16
//! of 1,347 in one run of six, all after one publish that outran its
//! timeout).

use std::{
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use rdkafka::producer::{FutureProducer, Producer};

use super::context::QuietContext;

/// How long the brokers have to answer after a publish timed out before
/// the breaker opens. A broker that is up answers metadata in a few
/// milliseconds, even on a loaded machine.
const FIRST_PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// How often an open breaker asks the brokers whether they answer.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one such question may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const CLOSED: u8 = 0;
const PROBING: u8 = 1;
const OPEN: u8 = 2;

/// Whether publishes go to Kafka or are refused at once.
#[derive(Clone, Default)]
pub struct Breaker {
    state: Arc<AtomicU8>,
}

impl Breaker {
    /// True while Kafka is known not to answer.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// After a failed publish: asks `producer`'s brokers for `topic`'s
    /// metadata, opens the breaker if they do not answer, and then keeps
    /// asking until they do. One question at a time.
    pub fn trip(&self, producer: &FutureProducer<QuietContext>, topic: &str) {
        if self
            .state
            .compare_exchange(CLOSED, PROBING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let (state, producer, topic) = (self.state.clone(), producer.clone(), topic.to_owned());
        tokio::spawn(async move {
            if answers(&producer, &topic, FIRST_PROBE_TIMEOUT).await {
                tracing::info!("a publish timed out, but the brokers answer");
                state.store(CLOSED, Ordering::Release);
                return;
            }
            state.store(OPEN, Ordering::Release);
            metrics::gauge!("kafka_breaker_open").set(1.0);
            tracing::warn!("Kafka does not answer; refusing messages until it does");
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if answers(&producer, &topic, PROBE_TIMEOUT).await {
                    state.store(CLOSED, Ordering::Release);
                    metrics::gauge!("kafka_breaker_open").set(0.0);
                    tracing::info!("Kafka answers again; accepting messages");
                    return;
                }
            }
        });
    }
}

/// Whether the brokers answer a metadata request for `topic` in `timeout`.
async fn answers(producer: &FutureProducer<QuietContext>, topic: &str, timeout: Duration) -> bool {
    let (producer, topic) = (producer.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), timeout)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}
