//! The consumer's side of the group protocol: keeps [`Ownership`] and
//! [`InFlight`] in step with each rebalance, so that a revoked partition's
//! work stops at once and a newly assigned one starts from a clean slate.
//!
//! The group uses the cooperative-sticky assignor: in a rebalance only the
//! partitions that move are revoked, and the rest keep being consumed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    client::ClientContext,
    config::RDKafkaLogLevel,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    types::RDKafkaErrorCode,
    Statistics, TopicPartitionList,
};

use super::{
    context::QuietContext,
    in_flight::InFlight,
    ownership::{Ownership, Partition},
};

/// How long one rebalance may spend asking where its new partitions end.
/// Past it (the brokers are slow or away), the rest count as unknown, and
/// every record already in them claims its outcome (see
/// [`Ownership::assign`]).
const END_OFFSETS_WITHIN: Duration = Duration::from_millis(500);

/// The context of one consumer of the group.
pub struct MemberContext {
    quiet: QuietContext,
    ownership: Arc<Ownership>,
    in_flight: Arc<InFlight>,
}

impl MemberContext {
    /// A context that records assignments in `ownership` and resets
    /// `in_flight` for every partition that moves.
    pub fn new(ownership: Arc<Ownership>, in_flight: Arc<InFlight>) -> Self {
        Self {
            quiet: QuietContext::default(),
            ownership,
            in_flight,
        }
    }

    fn forget(&self, partitions: &[Partition]) {
        for (topic, partition) in partitions {
            self.in_flight.forget(topic, *partition);
        }
    }
}

/// Where each of `partitions` ends now (its high watermark), asked of the
/// brokers within [`END_OFFSETS_WITHIN`] in all; `None` for any not known
/// by then.
fn end_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[Partition],
) -> Vec<Option<i64>> {
    let deadline = Instant::now() + END_OFFSETS_WITHIN;
    partitions
        .iter()
        .map(|(topic, partition)| {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match consumer.fetch_watermarks(topic, *partition, left) {
                Ok((_, high)) => Some(high),
                Err(error) => {
                    tracing::warn!(cause = %error, topic, partition, "end offset not known; its records claim their outcome");
                    None
                }
            }
        })
        .collect()
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect()
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.quiet.log(level, facility, message);
    }

    fn stats(&self, statistics: Statistics) {
        self.quiet.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    /// Before partitions go: their leases end (queued and waiting work of
    /// theirs stops acting), and what was finished is committed, so the
    /// next owner starts right after it. The commit does not wait: this
    /// runs inside the consumer's poll, and a lost assignment (the brokers
    /// were away past the session) has nothing left to commit to.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = partitions(list);
                tracing::info!(partitions = ?revoked, "partitions revoked");
                self.ownership.revoke(revoked.iter().cloned());
                self.forget(&revoked);
                if consumer.assignment_lost() {
                    tracing::warn!("the assignment was lost; its partitions are another member's");
                    return;
                }
                match consumer.commit_consumer_state(CommitMode::Async) {
                    Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                    Err(error) => tracing::warn!(cause = %error, "commit before a revoke failed"),
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                // The member lost the group (its session lapsed): whatever
                // it held is another member's now.
                tracing::warn!(cause = %error, "rebalance failed; dropping every lease");
                self.ownership.revoke_all();
            }
        }
    }

    /// After partitions come: each gets a new lease, knowing where the
    /// partition ended (the records below may have been handled by the
    /// previous owner), and a clean record of offsets in flight.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned = partitions(list);
            tracing::info!(partitions = ?assigned, "partitions assigned");
            self.forget(&assigned);
            let ends = end_offsets(consumer, &assigned);
            self.ownership.assign(assigned.into_iter().zip(ends));
        }
    }
}
