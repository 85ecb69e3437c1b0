//! Which consumed offsets are still being processed, per partition, so the
//! offset stored for commit never passes a message that is in flight.
//!
//! Workers finish messages of one partition out of order (they are spread
//! by room, not by partition); the committed position may only advance
//! over a contiguous run of finished messages.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use crate::locks::LockExt;

/// Offsets handed to workers and not yet finished.
#[derive(Default)]
pub struct InFlight {
    partitions: Mutex<HashMap<(String, i32), Partition>>,
}

#[derive(Default)]
struct Partition {
    pending: BTreeSet<i64>,
    highest: i64,
}

impl InFlight {
    /// Records that the message at `offset` was handed to a worker.
    pub fn start(&self, topic: &str, partition: i32, offset: i64) {
        let mut partitions = self.lock();
        let entry = partitions.entry((topic.to_owned(), partition)).or_default();
        entry.pending.insert(offset);
        entry.highest = entry.highest.max(offset);
    }

    /// Records that the message at `offset` is done, and returns the
    /// highest offset at and below which every message is done: the one to
    /// store for the next commit.
    pub fn finish(&self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let mut partitions = self.lock();
        let entry = partitions.get_mut(&(topic.to_owned(), partition))?;
        entry.pending.remove(&offset);
        let done_through = match entry.pending.first() {
            Some(oldest) => oldest - 1,
            None => entry.highest,
        };
        (done_through >= 0).then_some(done_through)
    }

    /// Forgets a partition's offsets: it was revoked or assigned afresh,
    /// and what was in flight under the last assignment no longer counts.
    pub fn forget(&self, topic: &str, partition: i32) {
        self.lock().remove(&(topic.to_owned(), partition));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Partition>> {
        self.partitions.lock_or_recover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_offset_waits_for_the_oldest_unfinished_message() {
        let in_flight = InFlight::default();
        for offset in 10..=13 {
            in_flight.start("t", 0, offset);
        }

        assert_eq!(in_flight.finish("t", 0, 12), Some(9), "10 is still running");
        assert_eq!(
            in_flight.finish("t", 0, 10),
            Some(10),
            "11 is still running"
        );
        assert_eq!(in_flight.finish("t", 0, 11), Some(12));
        assert_eq!(in_flight.finish("t", 0, 13), Some(13));
    }

    #[test]
    fn partitions_are_tracked_apart() {
        let in_flight = InFlight::default();
        in_flight.start("t", 0, 5);
        in_flight.start("t", 1, 7);

        assert_eq!(in_flight.finish("t", 1, 7), Some(7));
        assert_eq!(in_flight.finish("t", 0, 5), Some(5));
        assert_eq!(in_flight.finish("u", 0, 5), None, "never started");
    }

    #[test]
    fn a_forgotten_partition_starts_afresh() {
        let in_flight = InFlight::default();
        in_flight.start("t", 0, 4);
        in_flight.start("t", 0, 5);
        in_flight.forget("t", 0);
        in_flight.start("t", 0, 9);

        assert_eq!(
            in_flight.finish("t", 0, 9),
            Some(9),
            "4 and 5 no longer hold it back"
        );
    }

    #[test]
    fn nothing_is_stored_before_the_first_message_is_done() {
        let in_flight = InFlight::default();
        in_flight.start("t", 0, 0);
        in_flight.start("t", 0, 1);

        assert_eq!(in_flight.finish("t", 0, 1), None);
    }
}
