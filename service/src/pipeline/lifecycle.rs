//! Running pipeline tasks and their orderly stop: consumers finish what
//! they hold and commit, the producer flushes, the node id is released.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use super::{kafka::producer::KafkaBus, node_id::NodeLease};

/// How long the consumers may take to finish their queues at shutdown.
/// With the HTTP drain, the flush and the release this stays within the
/// process's stop timeout (`STOP_TIMEOUT_SECONDS`, 15 s by default).
const STOP_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the producer may take to deliver what it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long freeing the node id may take (Redis may be down).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// The pipeline's background work, stopped by [`Pipeline::shutdown`].
pub struct Pipeline {
    stop: watch::Sender<bool>,
    consumers: Vec<JoinHandle<()>>,
    kafka: Option<KafkaBus>,
    lease: Option<NodeLease>,
}

impl Pipeline {
    /// A pipeline whose consumers watch `stop`.
    pub fn new(
        stop: watch::Sender<bool>,
        kafka: Option<KafkaBus>,
        lease: Option<NodeLease>,
    ) -> Self {
        Self {
            stop,
            consumers: Vec::new(),
            kafka,
            lease,
        }
    }

    /// Adds running consumer tasks.
    pub fn with_consumers(mut self, consumers: Vec<JoinHandle<()>>) -> Self {
        self.consumers.extend(consumers);
        self
    }

    /// Stops consuming (committing what was stored), flushes the producer
    /// and frees the node id.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let consumers = futures::future::join_all(self.consumers);
        if tokio::time::timeout(STOP_TIMEOUT, consumers).await.is_err() {
            tracing::warn!("consumers still busy after the stop timeout; leaving them");
        }
        if let Some(kafka) = self.kafka {
            let kafka = Arc::new(kafka);
            let _ = tokio::task::spawn_blocking(move || kafka.flush(FLUSH_TIMEOUT)).await;
        }
        if let Some(lease) = self.lease {
            if tokio::time::timeout(RELEASE_TIMEOUT, lease.release())
                .await
                .is_err()
            {
                tracing::warn!("the node id was not released; its lease lapses by itself");
            }
        }
        tracing::info!("pipeline stopped");
    }
}
