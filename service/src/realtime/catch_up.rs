//! Catch-up on `join {roomId, since}`: every message of the room newer than
//! `since`, oldest first, then the live stream, none missing and none twice.
//!
//! # Why there is no race
//!
//! Every `reply` a socket gets live passes through this instance's
//! [`LocalDelivery`](super::local_delivery::LocalDelivery), which holds the read
//! side of [`CatchUps`] while it records and emits a message. A catch-up:
//!
//! 1. takes the socket out of the room and registers it (write side): from
//!    here on, each delivery of the room is recorded for it, and none
//!    reaches it live. A delivery that finished before this point was
//!    stored before it (a message is delivered only once stored);
//! 2. reads the history newer than `since`: it holds every message stored
//!    before step 1, so every message is in the history, recorded, or both;
//! 3. emits the history, oldest first, then what was recorded so far but
//!    not replayed (by id: a message can be in both), each waiting for
//!    room in the socket's buffer, until nothing more was recorded;
//! 4. under the write side again (no delivery in flight): emits what was
//!    recorded since, then joins the socket to the room and unregisters
//!    it. Later deliveries reach it live.
//!
//! A message stored after step 2 is delivered after step 1, so it is
//! recorded; one delivered before step 1 is in the history. Nothing falls
//! between, and the id check keeps the overlap from arriving twice. One
//! stored before step 2 can still reach this instance after step 4 (the
//! relay from the instance that stored it takes a moment): it was
//! replayed, so the socket is left out of its live `reply` (the replayed
//! ids are kept for that, as long as `seen` remembers ids: see
//! [`super::replayed`]).
//!
//! While a socket catches up on a room, a plain `join` of it has nothing
//! to do, a second `join` with `since` is refused, and a `leave` makes the
//! catch-up end without joining. When an event cannot be written (the
//! client does not read, or left), the ack says `complete: false`, and
//! the client pages the rest over HTTP.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::value::RawValue;
use tokio::sync::{RwLock, RwLockReadGuard};

use super::replayed::Replays;
use crate::{
    config::CatchUpBounds,
    domain::{MessageId, RoomId},
    fanout::Delivery,
    locks::LockExt,
};

/// Most messages one catch-up replays; `complete: false` says there are more.
pub const MAX_REPLAY: usize = 1_000;

/// A delivery recorded for a socket that is catching up.
pub struct Recorded {
    /// The message's id.
    pub id: MessageId,
    /// The `reply` payload.
    pub reply: Box<RawValue>,
}

/// A socket catching up on a room.
pub struct Pending {
    socket: String,
    /// Deliveries up to it are not recorded: the client has them.
    since: MessageId,
    recorded: Mutex<Vec<Recorded>>,
    /// More deliveries came while it ran than it may hold
    /// ([`CatchUpBounds::max_held`]).
    overflowed: AtomicBool,
    /// The socket left the room (`leave`) while catching up: it is not
    /// joined at the end.
    cancelled: AtomicBool,
}

type Registry = HashMap<RoomId, Vec<Arc<Pending>>>;

/// How a catch-up's recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The socket left the room meanwhile: it is not joined.
    pub left: bool,
    /// Deliveries past [`CatchUpBounds::max_held`] were not kept:
    /// `complete: false`.
    pub overflowed: bool,
}

/// The sockets of this instance catching up, by room.
pub struct CatchUps {
    rooms: RwLock<Registry>,
    /// Written under the write side of `rooms`, read under its read side.
    replayed: Replays,
    bounds: CatchUpBounds,
}

impl Default for CatchUps {
    fn default() -> Self {
        Self::new(CatchUpBounds::default())
    }
}

/// Held by a delivery while it records and emits (see the module doc).
pub struct Delivering<'a>(RwLockReadGuard<'a, Registry>, &'a CatchUps);

impl Delivering<'_> {
    /// The sockets that must not get `delivery` live: they were replayed
    /// it. (A message stored before a catch-up read the history can reach
    /// this instance after the socket joined the room: the relay from the
    /// instance that stored it takes a moment, or longer through a Redis
    /// outage.)
    pub fn replayed_to(&self, delivery: &Delivery) -> Vec<String> {
        self.1.replayed.spared(delivery)
    }

    /// Records `delivery` for the sockets catching up on its room (but the
    /// one that sent it, which gets no `reply` of its own message).
    pub fn record(&self, delivery: &Delivery) {
        let Some(pending) = self.0.get(&delivery.room_id) else {
            return;
        };
        for socket in pending {
            if delivery.origin_socket.as_deref() == Some(socket.socket.as_str())
                || delivery.message_id <= socket.since
            {
                continue;
            }
            let mut recorded = socket.recorded.lock_or_recover();
            if recorded.len() >= self.1.bounds.max_held {
                socket.overflowed.store(true, Ordering::SeqCst);
                continue;
            }
            recorded.push(Recorded {
                id: delivery.message_id,
                reply: delivery.reply.clone(),
            });
            metrics::gauge!("catch_up_held_deliveries").increment(1.0);
        }
    }
}

impl CatchUps {
    /// No socket catching up yet, within `bounds`.
    pub fn new(bounds: CatchUpBounds) -> Self {
        Self {
            rooms: RwLock::default(),
            replayed: Replays::new(bounds.max_kept_ids),
            bounds,
        }
    }

    /// How long one replay may take.
    pub fn replay_within(&self) -> Duration {
        self.bounds.within
    }

    /// The read side, for one delivery.
    pub async fn delivering(&self) -> Delivering<'_> {
        Delivering(self.rooms.read().await, self)
    }

    /// Step 1: `socket` starts recording the deliveries of `room` newer
    /// than `since`; `None` when it is catching up on that room already.
    pub async fn start(
        &self,
        room: RoomId,
        socket: String,
        since: MessageId,
    ) -> Option<Arc<Pending>> {
        let mut rooms = self.rooms.write().await;
        let pending = rooms.entry(room).or_default();
        if pending.iter().any(|p| p.socket == socket) {
            return None;
        }
        let started = Arc::new(Pending {
            socket,
            since,
            recorded: Mutex::new(Vec::new()),
            overflowed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        });
        pending.push(started.clone());
        metrics::gauge!("catch_ups_running").increment(1.0);
        Some(started)
    }

    /// Whether `socket` is catching up on `room` (a plain `join` then has
    /// nothing to do: the catch-up joins it when it ends).
    pub async fn is_catching_up(&self, room: RoomId, socket: &str) -> bool {
        self.rooms
            .read()
            .await
            .get(&room)
            .is_some_and(|pending| pending.iter().any(|p| p.socket == socket))
    }

    /// `socket` left `room`: a catch-up running for it ends without joining.
    pub async fn cancel(&self, room: RoomId, socket: &str) {
        if let Some(pending) = self.rooms.read().await.get(&room) {
            for p in pending.iter().filter(|p| p.socket == socket) {
                p.cancelled.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Step 4: with no delivery in flight, hands `finish` what was
    /// recorded, in delivery order, and how it ended; unregisters
    /// `pending`, and keeps the socket from getting live any of the
    /// `replayed` ids or one up to its `since`.
    pub async fn finish(
        &self,
        room: RoomId,
        pending: &Arc<Pending>,
        replayed: HashSet<MessageId>,
        finish: impl FnOnce(Vec<Recorded>, Ended),
    ) {
        let mut rooms = self.rooms.write().await;
        Self::unregister(&mut rooms, room, pending);
        self.replayed
            .keep(room, &pending.socket, pending.since, replayed);
        let recorded = Self::release(pending);
        finish(
            recorded,
            Ended {
                left: pending.cancelled.load(Ordering::SeqCst),
                overflowed: pending.overflowed.load(Ordering::SeqCst),
            },
        );
    }

    /// `socket` is gone: what it was replayed need not be kept.
    pub fn forget(&self, socket: &str) {
        self.replayed.forget(socket);
    }

    /// Step 3b: takes what was recorded for `pending` so far, in delivery
    /// order, to be emitted paced like the replay; `None` when its socket
    /// left the room meanwhile. What is recorded later comes in a later
    /// call, or in [`Self::finish`].
    pub fn take_held(&self, pending: &Pending) -> Option<Vec<Recorded>> {
        if pending.cancelled.load(Ordering::SeqCst) {
            return None;
        }
        Some(Self::release(pending))
    }

    /// Gives up on `pending` (the history could not be read).
    pub async fn abandon(&self, room: RoomId, pending: &Arc<Pending>) {
        Self::unregister(&mut *self.rooms.write().await, room, pending);
        Self::release(pending);
    }

    /// Takes what `pending` held.
    fn release(pending: &Pending) -> Vec<Recorded> {
        let recorded = std::mem::take(&mut *pending.recorded.lock_or_recover());
        metrics::gauge!("catch_up_held_deliveries").decrement(recorded.len() as f64);
        recorded
    }

    fn unregister(rooms: &mut Registry, room: RoomId, pending: &Arc<Pending>) {
        if let Some(sockets) = rooms.get_mut(&room) {
            let before = sockets.len();
            sockets.retain(|socket| !Arc::ptr_eq(socket, pending));
            metrics::gauge!("catch_ups_running").decrement((before - sockets.len()) as f64);
            if sockets.is_empty() {
                rooms.remove(&room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageIdGenerator;

    #[tokio::test]
    async fn deliveries_are_recorded_only_while_catching_up_and_not_for_their_sender() {
        let ids = MessageIdGenerator::new(1);
        let (room, other) = (RoomId::random(), RoomId::random());
        let catch_ups = CatchUps::default();
        let before = ids.next_id();
        catch_ups
            .delivering()
            .await
            .record(&Delivery::for_test(room, before, None));

        let pending = catch_ups
            .start(room, "s1".to_owned(), MessageId::from_i64(1).unwrap())
            .await
            .unwrap();
        assert!(catch_ups
            .start(room, "s1".to_owned(), MessageId::from_i64(1).unwrap())
            .await
            .is_none());
        assert!(catch_ups.is_catching_up(room, "s1").await);
        let (mine, theirs, elsewhere) = (ids.next_id(), ids.next_id(), ids.next_id());
        {
            let delivering = catch_ups.delivering().await;
            delivering.record(&Delivery::for_test(room, mine, Some("s1")));
            delivering.record(&Delivery::for_test(room, theirs, Some("s2")));
            delivering.record(&Delivery::for_test(other, elsewhere, None));
        }
        let mut handed = Vec::new();
        catch_ups
            .finish(room, &pending, HashSet::new(), |recorded, ended| {
                assert!(!ended.left && !ended.overflowed);
                handed = recorded.iter().map(|r| r.id).collect();
            })
            .await;
        assert_eq!(handed, vec![theirs]);

        let after = ids.next_id();
        catch_ups
            .delivering()
            .await
            .record(&Delivery::for_test(room, after, None));
        assert!(pending.recorded.lock().unwrap().is_empty());
        assert!(catch_ups.rooms.read().await.is_empty());
    }

    #[tokio::test]
    async fn what_is_held_is_taken_in_order_and_what_comes_later_goes_to_the_end() {
        let ids = MessageIdGenerator::new(1);
        let room = RoomId::random();
        let catch_ups = CatchUps::default();
        let pending = catch_ups
            .start(room, "s1".to_owned(), MessageId::from_i64(1).unwrap())
            .await
            .unwrap();
        let (first, second, later) = (ids.next_id(), ids.next_id(), ids.next_id());
        {
            let delivering = catch_ups.delivering().await;
            delivering.record(&Delivery::for_test(room, first, None));
            delivering.record(&Delivery::for_test(room, second, None));
        }
        let taken = |held: Option<Vec<Recorded>>| -> Vec<MessageId> {
            held.expect("not cancelled").iter().map(|r| r.id).collect()
        };
        assert_eq!(taken(catch_ups.take_held(&pending)), vec![first, second]);
        assert!(taken(catch_ups.take_held(&pending)).is_empty());
        catch_ups
            .delivering()
            .await
            .record(&Delivery::for_test(room, later, None));
        let mut handed = Vec::new();
        catch_ups
            .finish(room, &pending, HashSet::new(), |recorded, _| {
                handed = recorded.iter().map(|r| r.id).collect();
            })
            .await;
        assert_eq!(handed, vec![later]);

        let left = catch_ups
            .start(room, "s2".to_owned(), MessageId::from_i64(1).unwrap())
            .await
            .unwrap();
        catch_ups.cancel(room, "s2").await;
        assert!(catch_ups.take_held(&left).is_none(), "it left the room");
    }

    #[tokio::test]
    async fn a_leave_while_catching_up_is_handed_to_the_end() {
        let room = RoomId::random();
        let catch_ups = CatchUps::default();
        let pending = catch_ups
            .start(room, "s1".to_owned(), MessageId::from_i64(1).unwrap())
            .await
            .unwrap();
        catch_ups.cancel(room, "s2").await;
        catch_ups.cancel(room, "s1").await;
        let mut cancelled = false;
        catch_ups
            .finish(room, &pending, HashSet::new(), |_, ended| {
                cancelled = ended.left
            })
            .await;
        assert!(cancelled);
        assert!(!catch_ups.is_catching_up(room, "s1").await);
    }

    #[tokio::test]
    async fn a_catch_up_records_at_most_its_bound_and_nothing_up_to_since() {
        let ids = MessageIdGenerator::new(1);
        let room = RoomId::random();
        let catch_ups = CatchUps::default();
        let had = ids.next_id();
        let since = ids.next_id();
        let pending = catch_ups.start(room, "s1".to_owned(), since).await.unwrap();
        {
            let delivering = catch_ups.delivering().await;
            delivering.record(&Delivery::for_test(room, had, None));
            for _ in 0..CatchUpBounds::default().max_held + 5 {
                delivering.record(&Delivery::for_test(room, ids.next_id(), None));
            }
        }
        let (mut count, mut how) = (0, None);
        catch_ups
            .finish(room, &pending, HashSet::new(), |recorded, ended| {
                count = recorded.len();
                how = Some(ended);
            })
            .await;
        assert_eq!(count, CatchUpBounds::default().max_held);
        assert!(how.unwrap().overflowed);

        // Live, the socket is spared what it had (up to since).
        let delivering = catch_ups.delivering().await;
        assert_eq!(
            delivering.replayed_to(&Delivery::for_test(room, had, None)),
            vec!["s1"]
        );
        assert!(delivering
            .replayed_to(&Delivery::for_test(room, ids.next_id(), None))
            .is_empty());
    }
}
