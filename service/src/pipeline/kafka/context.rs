//! A librdkafka client context that keeps the log readable: with the
//! brokers away, librdkafka reports the same failure several times a
//! second per client. The first report is a warning; repeats within
//! [`QUIET_FOR`] go to debug. It also turns librdkafka's statistics into
//! the `kafka_consumer_lag` gauge.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use rdkafka::{
    client::ClientContext, config::RDKafkaLogLevel, consumer::ConsumerContext, error::KafkaError,
    Statistics,
};

use crate::locks::LockExt;

/// How long repeated errors stay at debug level after a warning.
const QUIET_FOR: Duration = Duration::from_secs(30);

/// The context of every Kafka client of the service.
#[derive(Default)]
pub struct QuietContext {
    last_warning: Mutex<Option<Instant>>,
}

impl QuietContext {
    /// True when no warning went out in the last [`QUIET_FOR`].
    fn may_warn(&self) -> bool {
        let mut last = self.last_warning.lock_or_recover();
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < QUIET_FOR) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                if self.may_warn() {
                    tracing::warn!(facility, "librdkafka: {message} (repeats muted for 30 s)");
                } else {
                    tracing::debug!(facility, "librdkafka: {message}");
                }
            }
            _ => tracing::debug!(facility, "librdkafka: {message}"),
        }
    }

    /// Publishes each assigned partition's lag (messages behind the end of
    /// the partition); librdkafka reports -1 where it does not know it yet.
    fn stats(&self, statistics: Statistics) {
        for (topic, details) in &statistics.topics {
            for (partition, state) in &details.partitions {
                if *partition >= 0 && state.consumer_lag >= 0 {
                    metrics::gauge!(
                        "kafka_consumer_lag",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(state.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.may_warn() {
            tracing::warn!(cause = %error, "kafka: {reason} (repeats muted for 30 s)");
        } else {
            tracing::debug!(cause = %error, "kafka: {reason}");
        }
    }
}

impl ConsumerContext for QuietContext {}
