//! Which messages this instance has already delivered to its sockets, so
//! that a message handed over twice reaches each socket once.
//!
//! A message comes back when Kafka re-delivers the tail of a partition
//! after a consumer restart or a rebalance, or when a publish is retried
//! after an outage. Both happen within seconds to minutes of the first
//! delivery (a consumer stuck for longer than `max.poll.interval.ms`, ten
//! minutes, is the slowest case), so the ids of the last [`WINDOW`] to
//! 2 × [`WINDOW`] are kept, in two generations that rotate. A generation
//! also rotates when it holds [`CAPACITY`] ids, which bounds the memory to
//! about 40 MB; past 1,600 messages per second that shortens the window.
//!
//! An instance that restarts forgets, and that is right: its sockets are
//! new, and none of them has seen the message.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::domain::MessageId;

/// How long an id is remembered at least.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Ids one generation holds at most.
pub const CAPACITY: usize = 1_000_000;

/// The ids delivered recently.
pub struct Seen {
    generations: Mutex<Generations>,
    window: Duration,
    capacity: usize,
}

struct Generations {
    current: HashSet<MessageId>,
    previous: HashSet<MessageId>,
    started: Instant,
}

impl Default for Seen {
    fn default() -> Self {
        Self::new(WINDOW, CAPACITY)
    }
}

impl Seen {
    /// Remembers ids for `window` at least, `capacity` per generation at most.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            generations: Mutex::new(Generations {
                current: HashSet::new(),
                previous: HashSet::new(),
                started: Instant::now(),
            }),
            window,
            capacity,
        }
    }

    /// True the first time `id` is given (within the window).
    pub fn first_time(&self, id: MessageId) -> bool {
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if generations.started.elapsed() >= self.window
            || generations.current.len() >= self.capacity
        {
            let current = std::mem::take(&mut generations.current);
            generations.previous = current;
            generations.started = Instant::now();
        }
        if generations.previous.contains(&id) {
            return false;
        }
        generations.current.insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    #[test]
    fn an_id_is_new_once() {
        let seen = Seen::default();
        let ids = MessageIdGenerator::new(0);
        let (a, b) = (ids.next_id(), ids.next_id());
        assert!(seen.first_time(a));
        assert!(seen.first_time(b));
        assert!(!seen.first_time(a));
    }

    #[test]
    fn an_id_is_remembered_across_one_rotation_then_forgotten() {
        let seen = Seen::new(WINDOW, 2);
        let ids = MessageIdGenerator::new(0);
        let first = ids.next_id();
        assert!(seen.first_time(first));
        assert!(seen.first_time(ids.next_id()));
        // The third id rotates: `first` is in the previous generation.
        assert!(seen.first_time(ids.next_id()));
        assert!(!seen.first_time(first));
        assert!(seen.first_time(ids.next_id()));
        // Rotated twice: forgotten.
        assert!(seen.first_time(ids.next_id()));
        assert!(seen.first_time(first));
    }
}
