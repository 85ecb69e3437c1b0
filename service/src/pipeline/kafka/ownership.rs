//! Which partitions this member of the consumer group owns, and since when.
//!
//! Each assignment of a partition gets a new generation. A record read
//! from a partition carries the [`Lease`] of the assignment it was read
//! under, and its worker checks that lease before every step another
//! member could also take: processing it, publishing it to the retry or
//! dead-letter topic, telling its author, storing its offset. A revoke
//! ends the lease at once: queued records are dropped unprocessed,
//! back-off and outage waits end, and the member that now owns the
//! partition reads them again from the last commit. So a record is acted
//! on by one owner at a time, except for a step already under way when the
//! revoke came (a write on the wire), which the per-message outcome claim
//! settles (see `pipeline::process`).
//!
//! A lease also knows where the partition ended when it was assigned.
//! Records below that offset may have been handled already by the member
//! that owned the partition before (one that died, or lost the partition,
//! before it committed them); their first attempt is then no first
//! handling, and claims its outcome as a retry does.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use tokio::sync::watch;

use crate::locks::LockExt;

/// A topic and partition.
pub type Partition = (String, i32);

/// The partitions this member owns.
#[derive(Default)]
pub struct Ownership {
    held: Mutex<HashMap<Partition, Held>>,
    generations: AtomicU64,
}

struct Held {
    generation: u64,
    ended: watch::Sender<bool>,
    fresh_from: Option<i64>,
}

/// One assignment of one partition to this member.
#[derive(Clone, Debug)]
pub struct Lease {
    partition: Partition,
    generation: u64,
    ended: watch::Receiver<bool>,
    fresh_from: Option<i64>,
}

impl Lease {
    /// Becomes true when the partition is revoked (or the service stops):
    /// waits on behalf of this lease's records end then.
    pub fn ended(&self) -> &watch::Receiver<bool> {
        &self.ended
    }

    /// Whether the record at `offset` may have been handled by an earlier
    /// owner: it lies below the partition's end at the assignment, or that
    /// end is not known.
    pub fn may_have_been_read(&self, offset: i64) -> bool {
        self.fresh_from.is_none_or(|fresh_from| offset < fresh_from)
    }
}

impl Ownership {
    /// Records `partitions` as assigned to this member, each under a new
    /// generation, with the offset its records were first produced from
    /// (the partition's end at the assignment; `None` when not known).
    pub fn assign(&self, partitions: impl IntoIterator<Item = (Partition, Option<i64>)>) {
        let mut held = self.held.lock_or_recover();
        for (partition, fresh_from) in partitions {
            let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
            let (ended, _) = watch::channel(false);
            let lease = Held {
                generation,
                ended,
                fresh_from,
            };
            if let Some(previous) = held.insert(partition, lease) {
                previous.ended.send_replace(true);
            }
        }
    }

    /// Ends this member's leases on `partitions`.
    pub fn revoke(&self, partitions: impl IntoIterator<Item = Partition>) {
        let mut held = self.held.lock_or_recover();
        for partition in partitions {
            if let Some(gone) = held.remove(&partition) {
                gone.ended.send_replace(true);
            }
        }
    }

    /// Ends every lease (the member left the group, or lost it).
    pub fn revoke_all(&self) {
        let mut held = self.held.lock_or_recover();
        for (_, gone) in held.drain() {
            gone.ended.send_replace(true);
        }
    }

    /// Wakes every wait of every lease, which stay held (the service is
    /// stopping: what is queued may still be finished, nothing waits).
    pub fn wake_all(&self) {
        for held in self.held.lock_or_recover().values() {
            held.ended.send_replace(true);
        }
    }

    /// The lease under which a record of `partition` is read now, if this
    /// member owns it.
    pub fn lease(&self, topic: &str, partition: i32) -> Option<Lease> {
        let held = self.held.lock_or_recover();
        let key = (topic.to_owned(), partition);
        held.get(&key).map(|held| Lease {
            generation: held.generation,
            ended: held.ended.subscribe(),
            fresh_from: held.fresh_from,
            partition: key,
        })
    }

    /// Whether `lease` is still this member's current assignment.
    pub fn holds(&self, lease: &Lease) -> bool {
        self.held
            .lock_or_recover()
            .get(&lease.partition)
            .is_some_and(|held| held.generation == lease.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(partition: i32) -> (Partition, Option<i64>) {
        (("t".to_owned(), partition), Some(0))
    }

    #[test]
    fn a_lease_ends_with_the_revoke_of_its_partition_only() {
        let ownership = Ownership::default();
        ownership.assign([p(0), p(1)]);
        let (zero, one) = (
            ownership.lease("t", 0).unwrap(),
            ownership.lease("t", 1).unwrap(),
        );

        ownership.revoke([p(0).0]);

        assert!(!ownership.holds(&zero));
        assert!(*zero.ended().borrow());
        assert!(ownership.holds(&one));
        assert!(!*one.ended().borrow());
        assert!(ownership.lease("t", 0).is_none(), "not owned any more");
    }

    #[test]
    fn a_partition_assigned_again_is_a_new_lease() {
        let ownership = Ownership::default();
        ownership.assign([p(0)]);
        let before = ownership.lease("t", 0).unwrap();
        ownership.revoke([p(0).0]);
        ownership.assign([p(0)]);

        let after = ownership.lease("t", 0).unwrap();

        assert!(!ownership.holds(&before), "the old generation acts no more");
        assert!(ownership.holds(&after));
    }

    #[test]
    fn waking_for_a_stop_keeps_the_leases() {
        let ownership = Ownership::default();
        ownership.assign([p(0)]);
        let lease = ownership.lease("t", 0).unwrap();

        ownership.wake_all();

        assert!(*lease.ended().borrow());
        assert!(ownership.holds(&lease));
        ownership.revoke_all();
        assert!(!ownership.holds(&lease));
    }

    #[test]
    fn records_below_the_end_at_the_assignment_may_have_been_read_before() {
        let ownership = Ownership::default();
        ownership.assign([(("t".to_owned(), 0), Some(40)), (("t".to_owned(), 1), None)]);
        let (known, unknown) = (
            ownership.lease("t", 0).unwrap(),
            ownership.lease("t", 1).unwrap(),
        );

        assert!(known.may_have_been_read(39));
        assert!(
            !known.may_have_been_read(40),
            "produced after the assignment"
        );
        assert!(
            unknown.may_have_been_read(1_000_000),
            "an unknown end counts every record"
        );
    }
}
