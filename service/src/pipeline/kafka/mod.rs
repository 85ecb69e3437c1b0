//! The Kafka bus: an idempotent producer ([`producer`]), a consumer group
//! that stores and fans out ([`consumer`]), the dead-letter replay
//! ([`replay`]), the topics, and the `/ready` probe.

mod breaker;
pub mod consumer;
pub mod context;
mod in_flight;
mod member;
mod ownership;
pub mod producer;
pub mod replay;

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    config::ClientConfig,
    producer::Producer,
    types::RDKafkaErrorCode,
};

use self::{context::QuietContext, producer::KafkaBus};
use super::topics::Topics;
use crate::{
    config::KafkaSettings,
    store::{Probe, StoreError},
};

const BACKEND: &str = "kafka";
/// How long `/ready` waits for the brokers' metadata.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The settings every Kafka client of the service shares.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.service_name)
        // Kafka going away is reported by the calls that need it; librdkafka's
        // own reconnect chatter would only flood the log.
        .set("log.connection.close", "false")
        // Retries after a broker's death at most 200 ms apart (the default
        // backs off to 1 s): a message reaches the partition's new leader,
        // and a consumer its group's new coordinator, soon after the
        // controller named them. A consumer that finds no coordinator
        // within its 2 s session loses its partitions.
        .set("retry.backoff.max.ms", "200")
        .set(
            "topic.metadata.refresh.interval.ms",
            settings.metadata_refresh.as_millis().to_string(),
        );
    if let Some(contexts) = &settings.debug {
        config
            .set("debug", contexts)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    if let Some((username, password)) = &settings.credentials {
        // This build of librdkafka has no TLS: SASL/PLAIN over plaintext.
        config
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanisms", "PLAIN")
            .set("sasl.username", username)
            .set("sasl.password", password.expose());
    }
    config
}

/// Creates the three topics with the configured partitions; topics that
/// already exist are left as they are. Waits for the brokers to answer,
/// and for up to [`TOPICS_WITHIN`] while they refuse for a reason that
/// passes (a broker restarting leaves too few for the replication factor).
pub async fn create_topics(settings: &KafkaSettings, topics: &Topics) -> anyhow::Result<()> {
    let admin: AdminClient<QuietContext> =
        client_config(settings).create_with_context(QuietContext::default())?;
    // Replication -1 lets the cluster apply its default factor.
    let replication = || TopicReplication::Fixed(settings.replication);
    let new: Vec<NewTopic<'_>> = topics
        .all()
        .into_iter()
        .map(|name| NewTopic::new(name, settings.partitions, replication()))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut delay = Duration::from_millis(500);
    let give_up = tokio::time::Instant::now() + TOPICS_WITHIN;
    loop {
        let waiting_for = match admin.create_topics(&new, &options).await {
            Ok(results) => {
                let mut passing = None;
                for result in results {
                    match result {
                        Ok(name) => tracing::info!(topic = %name, "topic created"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) if passes(code) => {
                            passing = Some(format!("topic {name}: {code}"));
                        }
                        Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
                    }
                }
                match passing {
                    None => return Ok(()),
                    Some(passing) if tokio::time::Instant::now() >= give_up => anyhow::bail!(
                        "Kafka did not create the topics within {TOPICS_WITHIN:?}: {passing}"
                    ),
                    Some(passing) => passing,
                }
            }
            Err(error) => error.to_string(),
        };
        tracing::warn!(cause = %waiting_for, "waiting for Kafka to create the topics");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// How long an instance starting waits while Kafka refuses its topics for
/// a reason that passes.
const TOPICS_WITHIN: Duration = Duration::from_secs(120);

/// Whether a topic's creation failed for a reason that passes: the
/// cluster has fewer live brokers than the replication factor for now (a
/// broker restarting, or fenced after a pause), or no controller to ask.
fn passes(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::InvalidReplicationFactor
            | RDKafkaErrorCode::NotController
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
    )
}

/// Asks the brokers for a topic's metadata.
pub struct KafkaProbe {
    bus: KafkaBus,
    topic: String,
}

impl KafkaProbe {
    /// Probes with the connections of `bus`'s producer, on `topic`.
    pub fn new(bus: KafkaBus, topic: String) -> Self {
        Self { bus, topic }
    }
}

#[async_trait]
impl Probe for KafkaProbe {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let producer = self.bus.producer();
        let topic = self.topic.clone();
        // The metadata call blocks a thread; keep it off the runtime's.
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                .map(|_| ())
        })
        .await
        .map_err(|error| StoreError::unavailable(BACKEND, error))?
        .map_err(|error| StoreError::unavailable(BACKEND, error))
    }
}
