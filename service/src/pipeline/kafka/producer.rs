//! Publishing to Kafka: `acks=all`, one request in flight per broker (so a
//! retry keeps a partition's order), and bounded in time so a sender whose
//! brokers are down hears so within `KAFKA_PUBLISH_TIMEOUT_MS`.
//!
//! Not librdkafka's idempotent producer. When a partition's leader dies,
//! the idempotent producer must settle the requests it had sent there
//! (they may have been written) before it sends to the new leader, and it
//! settles them only when they time out: every message of the first
//! second and a half after the death timed out with it (measured on the
//! replicated stack: 44 of 60 at 40 msg/s, each answered `chat_503`).
//! Without it, librdkafka sends them again to the new leader as soon as
//! the controller moved the leadership (the same run: 0 of 1,600 failed,
//! the slowest took 0.87 s). A message written twice that way is stored
//! once (an upsert by id) and delivered once (the relay's marks), as a
//! resend after `chat_503` already is.
//!
//! The producer is replaced by a new one when librdkafka dropped a
//! partition's leader change (see [`DroppedLeader`]): the old one would
//! never publish to that partition again. Its queued messages time out as
//! they would have; their senders were answered `chat_503` already or are
//! then.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rdkafka::{
    config::ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use super::{
    breaker::Breaker,
    client_config,
    context::{DroppedLeader, QuietContext},
};
use crate::{
    config::KafkaSettings,
    locks::RwLockExt,
    pipeline::{topics::Topics, Bus, BusError, MessageCreated},
};

/// The least time between two replacements of the producer.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The Kafka side of [`Bus`], also used by the consumer for the retry and
/// dead-letter topics.
#[derive(Clone)]
pub struct KafkaBus {
    producer: Arc<RwLock<Current>>,
    config: Arc<ClientConfig>,
    topics: Topics,
    timeout: Duration,
    breaker: Breaker,
}

/// The producer in use, the flag its context sets, and when it was made.
struct Current {
    producer: FutureProducer<QuietContext>,
    dropped_leader: DroppedLeader,
    created: Instant,
}

impl Current {
    fn new(config: &ClientConfig) -> rdkafka::error::KafkaResult<Self> {
        let context = QuietContext::default();
        let dropped_leader = context.dropped_leader_flag();
        Ok(Self {
            producer: config.create_with_context(context)?,
            dropped_leader,
            created: Instant::now(),
        })
    }
}

impl KafkaBus {
    /// A producer on the configured brokers.
    pub fn new(settings: &KafkaSettings, topics: Topics) -> anyhow::Result<Self> {
        let timeout_ms = settings.publish_timeout.as_millis().to_string();
        let mut config = client_config(settings);
        config
            .set("enable.idempotence", "false")
            .set("acks", "all")
            // A retried request cannot overtake the one behind it.
            .set("max.in.flight.requests.per.connection", "1")
            // The whole publish, queueing and retries included, ends by then.
            .set("message.timeout.ms", &timeout_ms)
            .set("linger.ms", settings.linger.as_millis().to_string())
            // Feeds the request count (QuietContext::stats).
            .set("statistics.interval.ms", "1000");
        let current = Current::new(&config)?;
        Ok(Self {
            producer: Arc::new(RwLock::new(current)),
            config: Arc::new(config),
            topics,
            timeout: settings.publish_timeout,
            breaker: Breaker::default(),
        })
    }

    /// The producer to publish with: the current one, or a new one when
    /// librdkafka dropped a leader change in the current one.
    pub fn producer(&self) -> FutureProducer<QuietContext> {
        {
            let current = self.producer.read_or_recover();
            if !current.dropped_leader.take() {
                return current.producer.clone();
            }
        }
        let mut current = self.producer.write_or_recover();
        if current.created.elapsed() < REPLACE_AT_MOST_EVERY {
            // Replaced a moment ago; a later publish asks again.
            current.dropped_leader.note();
            return current.producer.clone();
        }
        match Current::new(&self.config) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut *current, fresh);
                metrics::counter!("kafka_producer_replaced_total").increment(1);
                tracing::warn!(
                    "librdkafka dropped a partition's leader change; publishing with a new producer"
                );
                // Destroying a client waits for its queued messages.
                std::thread::spawn(move || drop(old));
                current.producer.clone()
            }
            Err(error) => {
                tracing::warn!(cause = %error, "cannot create a new producer");
                current.dropped_leader.note();
                current.producer.clone()
            }
        }
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
        let producer = self.producer();
        let delivery = producer.send(record, Timeout::After(self.timeout));
        let error = match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err((error, _))) => error.to_string(),
            Err(_) => format!("no acknowledgement within {:?}", self.timeout),
        };
        self.breaker.trip(&producer, topic);
        Err(BusError::Unavailable(error))
    }

    /// Waits for queued messages to be acknowledged, for at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer().flush(timeout) {
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
