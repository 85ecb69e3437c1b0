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
//! about 80 MB (an id and its room, in two generations); past 1,600
//! messages per second that shortens the window.
//!
//! An instance that restarts forgets; what keeps a re-delivered message
//! from reaching its new sockets is the relay, which publishes a message
//! once, as marks in Redis remember (see `relay`).
//!
//! Each id is kept with its room, which also answers "is this a stored
//! message of that room?" for recent messages without a Cassandra read
//! (a `read` marks the newest messages; see [`RecentMessages`]).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    domain::{MessageId, RoomId},
    locks::LockExt,
    read_state::RecentMessages,
};

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
    current: HashMap<MessageId, RoomId>,
    previous: HashMap<MessageId, RoomId>,
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
                current: HashMap::new(),
                previous: HashMap::new(),
                started: Instant::now(),
            }),
            window,
            capacity,
        }
    }

    /// True the first time `id` (a message of `room`) is given (within
    /// the window).
    pub fn first_time(&self, id: MessageId, room: RoomId) -> bool {
        let mut generations = self.generations();
        if generations.started.elapsed() >= self.window
            || generations.current.len() >= self.capacity
        {
            let current = std::mem::take(&mut generations.current);
            generations.previous = current;
            generations.started = Instant::now();
        }
        if generations.previous.contains_key(&id) {
            return false;
        }
        generations.current.insert(id, room).is_none()
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations.lock_or_recover()
    }
}

impl RecentMessages for Seen {
    fn room_of(&self, id: MessageId) -> Option<RoomId> {
        let generations = self.generations();
        generations
            .current
            .get(&id)
            .or_else(|| generations.previous.get(&id))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    const ROOM: RoomId = RoomId(uuid::Uuid::nil());

    #[test]
    fn a_delivered_id_knows_its_room() {
        let seen = Seen::default();
        let ids = MessageIdGenerator::new(0);
        let (id, room) = (ids.next_id(), RoomId::random());
        assert_eq!(seen.room_of(id), None);
        assert!(seen.first_time(id, room));
        assert_eq!(seen.room_of(id), Some(room));
    }

    #[test]
    fn an_id_is_new_once() {
        let seen = Seen::default();
        let ids = MessageIdGenerator::new(0);
        let (a, b) = (ids.next_id(), ids.next_id());
        assert!(seen.first_time(a, ROOM));
        assert!(seen.first_time(b, ROOM));
        assert!(!seen.first_time(a, ROOM));
    }

    #[test]
    fn an_id_is_remembered_across_one_rotation_then_forgotten() {
        let seen = Seen::new(WINDOW, 2);
        let ids = MessageIdGenerator::new(0);
        let first = ids.next_id();
        assert!(seen.first_time(first, ROOM));
        assert!(seen.first_time(ids.next_id(), ROOM));
        // The third id rotates: `first` is in the previous generation.
        assert!(seen.first_time(ids.next_id(), ROOM));
        assert!(!seen.first_time(first, ROOM));
        assert!(seen.first_time(ids.next_id(), ROOM));
        // Rotated twice: forgotten.
        assert!(seen.first_time(ids.next_id(), ROOM));
        assert!(seen.first_time(first, ROOM));
    }
}
