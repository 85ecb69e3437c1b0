//! A librdkafka client context that keeps the log readable: with the
//! brokers away, librdkafka reports the same failure several times a
//! second per client. The first report is a warning; repeats within
//! [`MUTE_FOR`](crate::telemetry::MUTE_FOR) go to debug. It also turns librdkafka's statistics into
//! the `kafka_consumer_lag` gauge, and notes when librdkafka dropped a
//! partition's leader change (see [`DroppedLeader`]).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc,
};

use rdkafka::{
    client::ClientContext, config::RDKafkaLogLevel, consumer::ConsumerContext, error::KafkaError,
    Statistics,
};

use crate::telemetry::Muted;

/// The context of every Kafka client of the service.
#[derive(Default)]
pub struct QuietContext {
    warnings: Muted,
    dropped_leader: DroppedLeader,
    /// The requests this client had sent to the brokers at its last
    /// statistics, so each report adds only what is new.
    requests_sent: AtomicU64,
}

impl QuietContext {
    /// True when no warning went out in the last
    /// [`MUTE_FOR`](crate::telemetry::MUTE_FOR).
    fn may_warn(&self) -> bool {
        self.warnings.may_log()
    }

    /// The flag this context sets when librdkafka skipped a leader change,
    /// for whoever holds the client (its context is not reachable through
    /// it).
    pub fn dropped_leader_flag(&self) -> DroppedLeader {
        self.dropped_leader.clone()
    }
}

/// Set when librdkafka skipped a partition's leader change it heard of in
/// a produce or fetch response because it does not know the new leader: a
/// leader of -1 while a broker is fenced, as after a pause of the broker
/// or the death of the only replica. librdkafka 2.12 then leaves the
/// partition without a leader for good (its issue 5430): every later
/// message to it times out, although the brokers answer. Only a new client
/// recovers.
#[derive(Clone, Default)]
pub struct DroppedLeader(Arc<AtomicBool>);

impl DroppedLeader {
    /// True once since librdkafka last skipped a leader change. Asked on
    /// every publish: a plain read while the flag is down.
    pub fn take(&self) -> bool {
        self.0.load(Ordering::Acquire) && self.0.swap(false, Ordering::AcqRel)
    }

    /// Notes a skipped leader change (again, when it was taken but not
    /// acted on).
    pub fn note(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Whether a log line of librdkafka says it skipped a leader change.
fn drops_a_leader(facility: &str, message: &str) -> bool {
    facility == "METADATAUPDATE"
        && message.contains("new leader")
        && message.contains("not found in cache")
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if drops_a_leader(facility, message) {
            self.dropped_leader_flag().note();
        }
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
    /// the partition; librdkafka reports -1 where it does not know it yet),
    /// and counts the requests the client sent to the brokers since its
    /// last statistics in `backend_requests_total{backend="kafka"}`.
    fn stats(&self, statistics: Statistics) {
        let sent: u64 = statistics.brokers.values().map(|broker| broker.tx).sum();
        let before = self.requests_sent.swap(sent, Ordering::Relaxed);
        metrics::counter!("backend_requests_total", "backend" => "kafka")
            .increment(sent.saturating_sub(before));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_leader_change_is_noted_once() {
        let context = QuietContext::default();
        context.log(
            RDKafkaLogLevel::Warning,
            "METADATAUPDATE",
            "[thrd:main]: Partition chats.message-created(1MjPI6suR7OT/v1B9QY86A)[0]: \
             new leader-1 not found in cache",
        );

        let flag = context.dropped_leader_flag();
        assert!(flag.take());
        assert!(!flag.take(), "taken");
    }

    #[test]
    fn other_lines_note_nothing() {
        let context = QuietContext::default();
        context.log(
            RDKafkaLogLevel::Warning,
            "METADATAUPDATE",
            "Topic t not found in cache",
        );
        context.log(
            RDKafkaLogLevel::Warning,
            "FAIL",
            "new leader-1 not found in cache",
        );

        assert!(!context.dropped_leader_flag().take());
    }
}
