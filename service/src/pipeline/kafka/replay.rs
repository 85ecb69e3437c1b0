//! `chat-service dlq replay [--dry-run]`: puts parked messages back through
//! the pipeline.
//!
//! The dead-letter topic is read by a consumer group of its own
//! (`<KAFKA_CONSUMER_GROUP>.dlq-replay`) from where its last replay stopped
//! to the end the topic had when this replay started. Each message goes
//! back on the created topic as a first attempt, and its offset is
//! committed right after Kafka acknowledged that publish, so a replay run
//! twice replays nothing twice. A crash between the two would publish one
//! message again on the next run; the store's upsert by id and the
//! fan-out's memory of recent deliveries make that repeat invisible, so each parked message is
//! stored and delivered exactly once.
//!
//! Copies of one message parked twice (Kafka delivers at least once) are
//! replayed once per run.
//!
//! The author already heard `chat_500` for a parked message; a replay
//! delivers it late, as `reply`, `sent` and `inbox` like any other.
//! `--dry-run` lists what would be replayed and changes nothing.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::Message as _,
    Offset, TopicPartitionList,
};

use super::{client_config, context::QuietContext, producer::KafkaBus};
use crate::{
    config::KafkaSettings,
    pipeline::{topics::Topics, MessageCreated},
};

/// How long Kafka may take to answer metadata and offset requests.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a poll waits for the next record before trying again.
const POLL: Duration = Duration::from_millis(500);
/// Polls in a row that may come back empty before the replay gives up on
/// reaching the end it saw at the start.
const EMPTY_POLLS: u32 = 20;

/// What a replay did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Messages put back on the created topic (or listed, in a dry run).
    pub messages: usize,
    /// Records that were not readable events, skipped (and committed).
    pub unreadable: usize,
    /// Second copies of a message already replayed in this run, skipped.
    pub duplicates: usize,
}

/// Replays the dead-letter topic once, printing one line per message.
pub async fn replay(settings: &KafkaSettings, dry_run: bool) -> anyhow::Result<Replayed> {
    let topics = Topics::new(&settings.topic_prefix);
    let bus = KafkaBus::new(settings, topics.clone())?;
    let group = format!("{}.dlq-replay", settings.consumer_group);
    let consumer: BaseConsumer<QuietContext> = client_config(settings)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create_with_context(QuietContext::default())?;
    let ends = assign_from_last_replay(&consumer, &topics.dlq)?;
    let mut remaining: HashMap<i32, i64> = ends;
    let mut done = Replayed::default();
    // Kafka delivers at least once, so one failing message can be parked
    // twice (a rebalance between its last attempt and the commit).
    let mut seen = HashSet::new();
    let mut empty = 0;
    while remaining.values().any(|left| *left > 0) {
        let Some(record) = consumer.poll(POLL) else {
            empty += 1;
            anyhow::ensure!(
                empty < EMPTY_POLLS,
                "the dead-letter topic stopped answering before its end"
            );
            continue;
        };
        empty = 0;
        let record = record.context("reading the dead-letter topic")?;
        let (partition, offset) = (record.partition(), record.offset());
        let end = remaining.get(&partition).copied().unwrap_or(0);
        let Ok(mut event) =
            serde_json::from_slice::<MessageCreated>(record.payload().unwrap_or_default())
        else {
            println!("partition {partition} offset {offset}: unreadable record skipped");
            done.unreadable += 1;
            commit(&consumer, &topics.dlq, partition, offset, dry_run)?;
            remaining.insert(partition, end - 1);
            continue;
        };
        let message = &event.message;
        if !seen.insert(message.id) {
            println!(
                "skipped a second copy of message {} (partition {partition} offset {offset})",
                message.id
            );
            done.duplicates += 1;
            commit(&consumer, &topics.dlq, partition, offset, dry_run)?;
            remaining.insert(partition, end - 1);
            continue;
        }
        let action = if dry_run { "would replay" } else { "replayed" };
        println!(
            "{action} message {} of room {} by {} (partition {partition} offset {offset}, parked after attempt {})",
            message.id, message.room_id, message.author_id, event.attempt
        );
        if !dry_run {
            event.attempt = 1;
            event.not_before_ms = 0;
            bus.send(&topics.created, &event, None)
                .await
                .context("publishing a replayed message")?;
        }
        commit(&consumer, &topics.dlq, partition, offset, dry_run)?;
        done.messages += 1;
        remaining.insert(partition, end - 1);
    }
    if !dry_run {
        bus.flush(KAFKA_TIMEOUT);
    }
    Ok(done)
}

/// Assigns every partition of `topic` at the group's committed offset (the
/// beginning when there is none) and returns how many records each holds
/// from there to its current end.
fn assign_from_last_replay(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
) -> anyhow::Result<HashMap<i32, i64>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .context("reading the dead-letter topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        // Nothing was ever parked: the topic was never created.
        return Ok(HashMap::new());
    }
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(wanted, KAFKA_TIMEOUT)
        .context("reading the replay group's offsets")?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, KAFKA_TIMEOUT)
            .context("reading the dead-letter topic's offsets")?;
        let start = match committed
            .find_partition(topic, partition)
            .map(|element| element.offset())
        {
            Some(Offset::Offset(offset)) => offset.max(low),
            _ => low,
        };
        assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
        remaining.insert(partition, (high - start).max(0));
    }
    consumer.assign(&assignment)?;
    Ok(remaining)
}

/// Marks everything up to `offset` of a partition replayed (not in a dry run).
fn commit(
    consumer: &BaseConsumer<QuietContext>,
    topic: &str,
    partition: i32,
    offset: i64,
    dry_run: bool,
) -> anyhow::Result<()> {
    if dry_run {
        return Ok(());
    }
    let mut next = TopicPartitionList::new();
    next.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    consumer
        .commit(&next, CommitMode::Sync)
        .context("committing the replay's offset")
}
