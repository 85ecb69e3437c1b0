//! What sockets that caught up were replayed, so the live stream does not
//! bring it again (see [`super::catch_up`]).
//!
//! A message stored before a catch-up read the history can reach this
//! instance after the socket joined the room: the relay from the instance
//! that stored it takes a moment, or longer through a Redis outage. So each
//! socket's replayed ids, and its `since`, are kept as long as the fan-out
//! remembers a message, within a bound of ids per instance.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    domain::{MessageId, RoomId},
    fanout::Delivery,
    locks::LockExt,
};

/// How long a socket that caught up is kept from getting live what it
/// was replayed: as long as the fan-out remembers a message (`seen`),
/// which outlasts any delivery still on its way (a relay held through a
/// Redis outage, too).
const REPLAYED_FOR: Duration = super::seen::WINDOW;

/// What one socket was replayed: the ids, and everything up to `since`,
/// which the client had.
struct Replayed {
    socket: String,
    since: MessageId,
    ids: HashSet<MessageId>,
    until: Instant,
}

impl Replayed {
    /// An id counts one, and the socket's `since` one more.
    fn size(&self) -> usize {
        self.ids.len() + 1
    }
}

/// What sockets were replayed, by room, and how many ids that is.
#[derive(Default)]
struct Kept {
    rooms: HashMap<RoomId, Vec<Replayed>>,
    ids: usize,
}

/// The replays of this instance's sockets, at most `max_ids` ids in all.
pub struct Replays {
    kept: Mutex<Kept>,
    max_ids: usize,
}

impl Kept {
    /// Drops the entries `drop` picks, keeping the count.
    fn drop_where(&mut self, mut drop: impl FnMut(&Replayed) -> bool) {
        let mut dropped = 0;
        self.rooms.retain(|_, sockets| {
            sockets.retain(|r| {
                let gone = drop(r);
                if gone {
                    dropped += r.size();
                }
                !gone
            });
            !sockets.is_empty()
        });
        self.ids -= dropped;
    }

    /// Drops the entry that expires first; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let oldest = self
            .rooms
            .iter()
            .flat_map(|(room, sockets)| {
                sockets
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (*room, i, r.until))
            })
            .min_by_key(|(_, _, until)| *until);
        let Some((room, index, _)) = oldest else {
            return false;
        };
        let sockets = self.rooms.get_mut(&room).expect("just found");
        self.ids -= sockets.swap_remove(index).size();
        if sockets.is_empty() {
            self.rooms.remove(&room);
        }
        true
    }

    fn report(&self) {
        metrics::gauge!("catch_up_kept_ids").set(self.ids as f64);
    }
}

impl Replays {
    /// Nothing kept yet; at most `max_ids` ids (`CATCH_UP_MAX_KEPT_IDS`).
    pub fn new(max_ids: usize) -> Self {
        Self {
            kept: Mutex::default(),
            max_ids,
        }
    }

    /// The sockets that must not get `delivery` live: they were replayed it.
    pub fn spared(&self, delivery: &Delivery) -> Vec<String> {
        let kept = self.kept.lock_or_recover();
        kept.rooms
            .get(&delivery.room_id)
            .map(|sockets| {
                sockets
                    .iter()
                    .filter(|r| {
                        delivery.message_id <= r.since || r.ids.contains(&delivery.message_id)
                    })
                    .map(|r| r.socket.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keeps what `socket` was replayed of `room` (`ids`, and all up to
    /// `since`), replacing what an earlier catch-up of the same room kept,
    /// dropping what expired and, past the bound, the oldest.
    pub fn keep(&self, room: RoomId, socket: &str, since: MessageId, ids: HashSet<MessageId>) {
        let mut kept = self.kept.lock_or_recover();
        let now = Instant::now();
        kept.drop_where(|r| r.until <= now);
        let sockets = kept.rooms.entry(room).or_default();
        let earlier = sockets
            .iter()
            .position(|r| r.socket == socket)
            .map(|i| sockets.swap_remove(i).size());
        let replayed = Replayed {
            socket: socket.to_owned(),
            since,
            ids,
            until: now + REPLAYED_FOR,
        };
        let size = replayed.size();
        sockets.push(replayed);
        kept.ids = kept.ids + size - earlier.unwrap_or(0);
        while kept.ids > self.max_ids && kept.drop_oldest() {}
        kept.report();
    }

    /// `socket` is gone: what it was replayed need not be kept.
    pub fn forget(&self, socket: &str) {
        let mut kept = self.kept.lock_or_recover();
        kept.drop_where(|r| r.socket == socket);
        kept.report();
    }

    /// How many ids are kept.
    #[cfg(test)]
    fn ids(&self) -> usize {
        self.kept.lock_or_recover().ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    #[test]
    fn a_socket_is_spared_what_it_was_replayed_and_all_up_to_its_since() {
        let ids = MessageIdGenerator::new(1);
        let (room, other) = (RoomId::random(), RoomId::random());
        let (had, since, replayed, live) =
            (ids.next_id(), ids.next_id(), ids.next_id(), ids.next_id());
        let replays = Replays::new(100);
        replays.keep(room, "s1", since, HashSet::from([replayed]));
        for id in [had, since, replayed] {
            assert_eq!(replays.spared(&Delivery::for_test(room, id, None)), ["s1"]);
        }
        assert!(replays
            .spared(&Delivery::for_test(room, live, None))
            .is_empty());
        assert!(replays
            .spared(&Delivery::for_test(other, had, None))
            .is_empty());

        // A second catch-up of the room replaces the first.
        replays.keep(room, "s1", live, HashSet::new());
        assert_eq!(replays.ids(), 1);
        assert_eq!(
            replays.spared(&Delivery::for_test(room, live, None)),
            ["s1"]
        );
    }

    #[test]
    fn what_sockets_were_replayed_is_bounded_and_forgotten_when_they_go() {
        let ids = MessageIdGenerator::new(1);
        let per_socket = 50_000;
        let replays = Replays::new(200_000);
        for socket in 0..6 {
            let replayed = (0..per_socket).map(|_| ids.next_id()).collect();
            replays.keep(
                RoomId::random(),
                &format!("s{socket}"),
                ids.next_id(),
                replayed,
            );
        }
        let kept = |replays: &Replays| -> Vec<String> {
            let kept = replays.kept.lock().unwrap();
            let mut sockets: Vec<_> = kept
                .rooms
                .values()
                .flatten()
                .map(|r| r.socket.clone())
                .collect();
            sockets.sort();
            sockets
        };
        assert_eq!(
            kept(&replays),
            ["s3", "s4", "s5"],
            "the oldest dropped first"
        );
        assert_eq!(replays.ids(), 3 * (per_socket + 1));
        replays.forget("s4");
        assert_eq!(kept(&replays), ["s3", "s5"]);
        assert_eq!(replays.ids(), 2 * (per_socket + 1));
    }
}
