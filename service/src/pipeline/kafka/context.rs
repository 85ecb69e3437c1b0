//! A librdkafka client context that keeps the log readable: with the
//! brokers away, librdkafka reports the same failure several times a
//! second per client. The first report is a warning; repeats within
//! [`QUIET_FOR`] go to debug.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use rdkafka::{
    client::ClientContext, config::RDKafkaLogLevel, consumer::ConsumerContext, error::KafkaError,
};

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
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
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

    fn error(&self, error: KafkaError, reason: &str) {
        if self.may_warn() {
            tracing::warn!(cause = %error, "kafka: {reason} (repeats muted for 30 s)");
        } else {
            tracing::debug!(cause = %error, "kafka: {reason}");
        }
    }
}

impl ConsumerContext for QuietContext {}
