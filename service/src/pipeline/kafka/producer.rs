//! Publishing to Kafka: idempotent, `acks=all`, and bounded in time so a
//! sender whose brokers are down hears so within `KAFKA_PUBLISH_TIMEOUT_MS`.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use super::{breaker::Breaker, client_config, context::QuietContext};
use crate::{
    config::KafkaSettings,
    pipeline::{topics::Topics, Bus, BusError, MessageCreated},
};

/// The Kafka side of [`Bus`], also used by the consumer for the retry and
/// dead-letter topics.
#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer<QuietContext>,
    topics: Topics,
    timeout: Duration,
    breaker: Breaker,
}

impl KafkaBus {
    /// A producer on the configured brokers.
    pub fn new(settings: &KafkaSettings, topics: Topics) -> anyhow::Result<Self> {
        let timeout_ms = settings.publish_timeout.as_millis().to_string();
        let producer: FutureProducer<QuietContext> = client_config(settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The whole publish, queueing and retries included, ends by then.
            .set("message.timeout.ms", &timeout_ms)
            // Messages that arrive within 5 ms share one produce request
            // (and one wake-up of librdkafka's broker thread): at 1,000
            // msg/s that is several per request instead of one.
            .set("linger.ms", "5")
            .create_with_context(QuietContext::default())?;
        Ok(Self {
            producer,
            topics,
            timeout: settings.publish_timeout,
            breaker: Breaker::default(),
        })
    }

    /// The underlying producer (for the readiness probe).
    pub fn producer(&self) -> &FutureProducer<QuietContext> {
        &self.producer
    }

    /// The topic names.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Publishes `event` on `topic`, keyed by its room; `reason`, when
    /// given, travels as a header (why a message was parked).
    pub async fn send(
        &self,
        topic: &str,
        event: &MessageCreated,
        reason: Option<&str>,
    ) -> Result<(), BusError> {
        if self.breaker.is_open() {
            return Err(BusError::Unavailable("Kafka does not answer".to_owned()));
        }
        let payload = serde_json::to_vec(event)?;
        let key = event.message.room_id.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(&payload);
        if let Some(reason) = reason {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "error",
                value: Some(reason),
            }));
        }
        // librdkafka's own `message.timeout.ms` can overrun (measured: 10 to
        // 14 s for 5 s with the brokers down), so the bound is enforced here.
        let delivery = self.producer.send(record, Timeout::After(self.timeout));
        let error = match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err((error, _))) => error.to_string(),
            Err(_) => format!("no acknowledgement within {:?}", self.timeout),
        };
        self.breaker.trip(&self.producer, topic);
        Err(BusError::Unavailable(error))
    }

    /// Waits for queued messages to be acknowledged, for at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(cause = %error, "producer flush did not complete");
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, event: &MessageCreated) -> Result<(), BusError> {
        self.send(&self.topics.created, event, None).await
    }
}
