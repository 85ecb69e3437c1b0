//! The consumer group: read `chats.message-created` (and, in a second
//! group, the retry topic), run [`Processor::process`], and mark a message
//! consumed only once that is done.
//!
//! Offsets: auto-commit is on but auto-*store* is off; a worker stores a
//! message's offset after processing it, so a commit never covers a message
//! that was not stored. A crash re-delivers the tail; the upsert by id and
//! the fan-out's memory of recent deliveries absorb it.
//!
//! Order: messages of one room (the record key) go to one worker and are
//! processed one after the other, so each room keeps its order while
//! different rooms of one partition proceed side by side. Workers finish
//! a partition's messages out of order, so [`InFlight`] keeps the stored
//! offset behind the oldest message still being processed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::KafkaError,
    message::{Message as _, OwnedMessage},
    types::RDKafkaErrorCode,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    client_config,
    in_flight::InFlight,
    member::MemberContext,
    ownership::{Lease, Ownership},
    producer::KafkaBus,
};
use crate::{
    config::KafkaSettings,
    pipeline::{
        now_ms,
        process::{ProcessError, Processor, Reading},
        retry::{after_failure, AfterFailure},
        BusError, MessageCreated,
    },
};

/// Messages a worker may have queued before the reader waits for it.
const WORKER_QUEUE: usize = 64;
/// How often a persisting consumer error is logged.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);
/// Longest pause between tries of a message whose retry/DLQ publish failed.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Starts the consumers of the created and the retry topics.
pub fn spawn(
    settings: &KafkaSettings,
    bus: KafkaBus,
    processor: Arc<Processor>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let workers = settings.consumer_workers.max(1);
    let session_ms = settings.session_timeout.as_millis();
    let commit_ms = settings.commit_interval.as_millis();
    let created = bus.topics().created.clone();
    let retry = bus.topics().retry.clone();
    // The main topic's fetches answer as the settings say. The retry topic
    // waits seconds anyway, and keeps librdkafka's defaults (an idle fetch
    // every 500 ms rather than 200 a second).
    let (min_bytes, wait_ms) = (
        settings.fetch_min_bytes.to_string(),
        settings.fetch_wait.as_millis().to_string(),
    );
    let batched = [
        ("fetch.min.bytes", min_bytes.as_str()),
        ("fetch.wait.max.ms", wait_ms.as_str()),
    ];
    let roles = [
        (
            created,
            settings.consumer_group.clone(),
            workers,
            &batched[..],
        ),
        // Its own group, so a retry waiting out its back-off never holds up
        // the main topic's partitions.
        (
            retry,
            format!("{}.retry", settings.consumer_group),
            1,
            &[][..],
        ),
    ];
    let mut tasks = Vec::new();
    for (topic, group, workers, fetch) in roles {
        let mut config = client_config(settings);
        for (key, value) in fetch {
            config.set(*key, *value);
        }
        let in_flight = Arc::new(InFlight::default());
        let ownership = Arc::new(Ownership::default());
        let consumer: StreamConsumer<MemberContext> = config
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", commit_ms.to_string())
            .set("enable.auto.offset.store", "false")
            // Messages published before this group first joined still count.
            .set("auto.offset.reset", "earliest")
            // A killed member's partitions wait for its session to lapse,
            // and a restarted broker waits for the members it knew: keep
            // it short (the brokers' minimum must allow it).
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", (session_ms / 4).max(1).to_string())
            // A worker holding a message through a backend outage stops the
            // reader from polling; give an outage ten minutes before the
            // group counts this member as stuck. (Past that, the member
            // rejoins and re-reads from the last commit: the upsert and the
            // memory of recent deliveries absorb the repeats.)
            .set("max.poll.interval.ms", "600000")
            // After a fetch fails (its broker died, or is no longer the
            // leader) the next one waits this long; the default, 500 ms,
            // was a quarter of the delay after a leader's death.
            .set("fetch.error.backoff.ms", "50")
            // Feeds the `kafka_consumer_lag` gauge and the request count
            // (see QuietContext::stats).
            .set("statistics.interval.ms", "1000")
            .create_with_context(MemberContext::new(ownership.clone(), in_flight.clone()))?;
        consumer.subscribe(&[&topic])?;
        let worker = Worker {
            consumer: Arc::new(consumer),
            processor: processor.clone(),
            bus: bus.clone(),
            backoff: settings.retry_backoff,
            stop: stop.clone(),
            in_flight,
            ownership,
        };
        tracing::info!(%topic, %group, workers, "consuming");
        tasks.push(tokio::spawn(read(worker, workers)));
    }
    Ok(tasks)
}

#[derive(Clone)]
struct Worker {
    consumer: Arc<StreamConsumer<MemberContext>>,
    processor: Arc<Processor>,
    bus: KafkaBus,
    backoff: Duration,
    stop: watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
    ownership: Arc<Ownership>,
}

/// Why a message was left for later.
enum Pause {
    /// The service is stopping; the message will be consumed again.
    Stopping,
    /// Its partition was revoked; the next owner will consume it again.
    Revoked,
    /// Publishing to the retry or dead-letter topic failed.
    Bus(BusError),
}

/// A record and the lease it was read under.
type Leased = (OwnedMessage, Lease);

/// Reads the topic and hands each message to its partition's worker; on
/// stop, lets the workers finish their queues and commits.
async fn read(worker: Worker, workers: usize) {
    let mut stop = worker.stop.clone();
    let (senders, handles): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| {
            let (sender, receiver) = mpsc::channel::<Leased>(WORKER_QUEUE);
            (sender, tokio::spawn(work(worker.clone(), receiver)))
        })
        .unzip();
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            received = worker.consumer.recv() => match received {
                Ok(message) => {
                    let message = message.detach();
                    // A record fetched before its partition was revoked.
                    let Some(lease) = worker.ownership.lease(message.topic(), message.partition()) else {
                        continue;
                    };
                    let index = worker_of(message.key(), workers);
                    worker.in_flight.start(message.topic(), message.partition(), message.offset());
                    if senders[index].send((message, lease)).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    // Brokers away report an error a second; one line in 30 s says it.
                    // No pause here: errors wait in the same queue as records and
                    // rebalances, one for each failed connection attempt, and a
                    // pause per error once kept a consumer minutes behind (and
                    // out of its group's rebalances) after a long outage.
                    if last_warning.is_none_or(|at| at.elapsed() > ERROR_LOG_EVERY) {
                        tracing::warn!(cause = %error, "consumer error (repeats are muted for 30 s)");
                        last_warning = Some(Instant::now());
                    }
                }
            },
        }
    }
    // Queued records are still finished; no wait starts or goes on.
    worker.ownership.wake_all();
    drop(senders);
    futures::future::join_all(handles).await;
    match worker.consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("consumer stopped; offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
            tracing::info!("consumer stopped; nothing new to commit");
        }
        Err(error) => tracing::warn!(cause = %error, "final offset commit failed"),
    }
}

/// The worker of a record: by its key (the room id), so one room's
/// messages are handled in order by one worker.
fn worker_of(key: Option<&[u8]>, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

/// Processes its rooms' messages in order. A record whose partition was
/// revoked is dropped where it stands: its next owner reads it again.
async fn work(worker: Worker, mut queue: mpsc::Receiver<Leased>) {
    while let Some((message, lease)) = queue.recv().await {
        if !worker.ownership.holds(&lease) {
            continue;
        }
        let mut pause = Duration::from_millis(250);
        let claimant = uuid::Uuid::new_v4().to_string();
        loop {
            match worker.handle(&message, &lease, &claimant).await {
                Ok(()) => break,
                Err(Pause::Stopping) => return,
                Err(Pause::Revoked) => break,
                Err(Pause::Bus(error)) => {
                    tracing::warn!(cause = %error, "cannot forward a failed message; will retry");
                    if worker.halted(&lease).is_err() || !pause_for(pause, &lease).await {
                        if *worker.stop.borrow() {
                            return;
                        }
                        break;
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
        // Checked again: the partition may have moved while it was handled.
        if !worker.ownership.holds(&lease) {
            continue;
        }
        let (topic, partition) = (message.topic(), message.partition());
        let Some(done_through) = worker.in_flight.finish(topic, partition, message.offset()) else {
            continue;
        };
        let stored = worker.consumer.store_offset(topic, partition, done_through);
        if let Err(error) = stored {
            // The partition moved to another member; it will see the message.
            tracing::debug!(cause = %error, "offset not stored");
        }
    }
}

/// Sleeps `pause` unless the lease ends first; true when it slept through.
async fn pause_for(pause: Duration, lease: &Lease) -> bool {
    let mut ended = lease.ended().clone();
    if *ended.borrow_and_update() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(pause) => true,
        _ = ended.changed() => false,
    }
}

impl Worker {
    /// `Err` with why the lease's work ends: the service stops, or the
    /// partition moved.
    fn halted(&self, lease: &Lease) -> Result<(), Pause> {
        if *self.stop.borrow() {
            return Err(Pause::Stopping);
        }
        if !self.ownership.holds(lease) {
            return Err(Pause::Revoked);
        }
        Ok(())
    }

    /// Why a wait of the lease ended early.
    fn ended(&self, lease: &Lease) -> Pause {
        if *self.stop.borrow() || self.ownership.holds(lease) {
            Pause::Stopping
        } else {
            Pause::Revoked
        }
    }

    /// Handles one record; `claimant` names this handling in an outcome
    /// claim, the same across its tries.
    async fn handle(
        &self,
        message: &OwnedMessage,
        lease: &Lease,
        claimant: &str,
    ) -> Result<(), Pause> {
        let Some(payload) = message.payload() else {
            tracing::warn!(offset = message.offset(), "empty record skipped");
            return Ok(());
        };
        let event: MessageCreated = match serde_json::from_slice(payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(cause = %error, offset = message.offset(), "unreadable record skipped");
                metrics::counter!("messages_failed_total", "stage" => "decode").increment(1);
                return Ok(());
            }
        };
        let wait_ms = event.not_before_ms - now_ms();
        if wait_ms > 0 && !pause_for(Duration::from_millis(wait_ms as u64), lease).await {
            return Err(self.ended(lease));
        }
        self.halted(lease)?;
        let reading = if lease.may_have_been_read(message.offset()) {
            Reading::Again
        } else {
            Reading::First
        };
        let error = match self.processor.process(&event, reading, lease.ended()).await {
            Ok(()) | Err(ProcessError::Parked) => return Ok(()),
            Err(ProcessError::Stopping) => return Err(self.ended(lease)),
            Err(ProcessError::Store(error)) => error,
        };
        self.halted(lease)?;
        let reason = error.to_string();
        let topics = self.bus.topics();
        match after_failure(&event, self.backoff) {
            AfterFailure::Retry { next, .. } => {
                tracing::info!(
                    attempt = next.attempt,
                    "message queued for another store attempt"
                );
                self.bus
                    .send(&topics.retry, &next, Some(&reason))
                    .await
                    .map_err(Pause::Bus)
            }
            AfterFailure::GiveUp => {
                let parked = self
                    .processor
                    .claim_parked(&event, claimant, lease.ended())
                    .await
                    .map_err(|_| self.ended(lease))?;
                if !parked {
                    return Ok(());
                }
                self.bus
                    .send(&topics.dlq, &event, Some(&reason))
                    .await
                    .map_err(Pause::Bus)?;
                self.halted(lease)?;
                self.processor
                    .give_up(&event, lease.ended())
                    .await
                    .map_err(|_| self.ended(lease))
            }
        }
    }
}
