//! Failing fast while Kafka does not answer. The first publish that times
//! out opens the breaker; from then on a publish is refused at once,
//! without handing the record to librdkafka (so a refused message can never
//! land later), until a metadata request to the brokers answers again. A
//! sender whose messages queue behind an outage hears `chat_503` for each
//! of them in its order, at once, instead of each waiting out its own
//! timeout.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use rdkafka::producer::{FutureProducer, Producer};

use super::context::QuietContext;

/// How often an open breaker asks the brokers whether they answer.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one such question may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether publishes go to Kafka or are refused at once.
#[derive(Clone, Default)]
pub struct Breaker {
    open: Arc<AtomicBool>,
}

impl Breaker {
    /// True while Kafka is known not to answer.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker after a failed publish, and starts asking
    /// `producer`'s brokers for `topic`'s metadata until they answer.
    pub fn trip(&self, producer: &FutureProducer<QuietContext>, topic: &str) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::gauge!("kafka_breaker_open").set(1.0);
        tracing::warn!("Kafka does not answer; refusing messages until it does");
        let (open, producer, topic) = (self.open.clone(), producer.clone(), topic.to_owned());
        tokio::spawn(async move {
            // The first question goes at once: when one broker died and the
            // others answer, the breaker closes within a round trip, and
            // only the publishes to that broker's partitions wait for the
            // leadership to move.
            loop {
                let (producer, topic) = (producer.clone(), topic.clone());
                let answered = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if answered {
                    open.store(false, Ordering::Release);
                    metrics::gauge!("kafka_breaker_open").set(0.0);
                    tracing::info!("Kafka answers again; accepting messages");
                    return;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }
}
