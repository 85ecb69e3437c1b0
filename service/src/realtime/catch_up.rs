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
//! 3. emits the history, oldest first;
//! 4. under the write side again (no delivery in flight): emits what was
//!    recorded but not replayed in step 3 (by id: a message can be in
//!    both), then joins the socket to the room and unregisters it. Later
//!    deliveries reach it live.
//!
//! A message stored after step 2 is delivered after step 1, so it is
//! recorded; one delivered before step 1 is in the history. Nothing falls
//! between, and the id check keeps the overlap from arriving twice. One
//! stored before step 2 can still reach this instance after step 4 (the
//! relay from the instance that stored it takes a moment): it was
//! replayed, so the socket is left out of its live `reply` (the replayed
//! ids are kept for that, as long as `seen` remembers ids).
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
    time::{Duration, Instant},
};

use serde_json::value::RawValue;
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::{
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

/// Most deliveries recorded for one catch-up; past it the catch-up ends
/// `complete: false` (the client pages the rest), so a replay to a slow
/// reader in a busy room cannot grow without end.
pub const MAX_RECORDED: usize = MAX_REPLAY;

/// A socket catching up on a room.
pub struct Pending {
    socket: String,
    /// Deliveries up to it are not recorded: the client has them.
    since: MessageId,
    recorded: Mutex<Vec<Recorded>>,
    /// More than [`MAX_RECORDED`] deliveries came while it ran.
    overflowed: AtomicBool,
    /// The socket left the room (`leave`) while catching up: it is not
    /// joined at the end.
    cancelled: AtomicBool,
}

type Registry = HashMap<RoomId, Vec<Arc<Pending>>>;

/// How long a socket that caught up is kept from getting live what it
/// was replayed: as long as the fan-out remembers a message (`seen`),
/// which outlasts any delivery still on its way (a relay held through a
/// Redis outage, too).
const REPLAYED_FOR: Duration = super::seen::WINDOW;

/// Replayed ids kept, over all sockets; past it the oldest catch-ups'
/// are dropped first (about 16 bytes an id: a few MiB at most).
const MAX_KEPT_IDS: usize = 200_000;

/// What one socket was replayed, so the live stream does not bring it
/// again: the ids, and everything up to `since`, which the client had.
struct Replayed {
    socket: String,
    since: MessageId,
    ids: HashSet<MessageId>,
    until: Instant,
}

/// How a catch-up's recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The socket left the room meanwhile: it is not joined.
    pub left: bool,
    /// Deliveries past [`MAX_RECORDED`] were not kept: `complete: false`.
    pub overflowed: bool,
}

/// The sockets of this instance catching up, by room.
#[derive(Default)]
pub struct CatchUps {
    rooms: RwLock<Registry>,
    /// Written under the write side of `rooms`, read under its read side.
    replayed: Mutex<HashMap<RoomId, Vec<Replayed>>>,
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
        let replayed = self.1.replayed.lock_or_recover();
        replayed
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
            if recorded.len() >= MAX_RECORDED {
                socket.overflowed.store(true, Ordering::SeqCst);
                continue;
            }
            recorded.push(Recorded {
                id: delivery.message_id,
                reply: delivery.reply.clone(),
            });
        }
    }
}

impl CatchUps {
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
        self.keep(room, pending, replayed);
        let recorded = std::mem::take(&mut *pending.recorded.lock_or_recover());
        finish(
            recorded,
            Ended {
                left: pending.cancelled.load(Ordering::SeqCst),
                overflowed: pending.overflowed.load(Ordering::SeqCst),
            },
        );
    }

    /// Keeps what `pending`'s socket was replayed, replacing what an
    /// earlier catch-up of the same room kept, dropping what expired and,
    /// past [`MAX_KEPT_IDS`], the oldest.
    fn keep(&self, room: RoomId, pending: &Pending, ids: HashSet<MessageId>) {
        let mut kept = self.replayed.lock_or_recover();
        let now = Instant::now();
        kept.retain(|_, sockets| {
            sockets.retain(|r| r.until > now);
            !sockets.is_empty()
        });
        let sockets = kept.entry(room).or_default();
        sockets.retain(|r| r.socket != pending.socket);
        sockets.push(Replayed {
            socket: pending.socket.clone(),
            since: pending.since,
            ids,
            until: now + REPLAYED_FOR,
        });
        let mut total: usize = kept.values().flatten().map(|r| r.ids.len() + 1).sum();
        while total > MAX_KEPT_IDS {
            let Some((room, index, size)) = kept
                .iter()
                .flat_map(|(room, sockets)| {
                    sockets
                        .iter()
                        .enumerate()
                        .map(move |(i, r)| (*room, i, r.until, r.ids.len() + 1))
                })
                .min_by_key(|(_, _, until, _)| *until)
                .map(|(room, i, _, size)| (room, i, size))
            else {
                break;
            };
            let sockets = kept.get_mut(&room).expect("just found");
            sockets.swap_remove(index);
            if sockets.is_empty() {
                kept.remove(&room);
            }
            total -= size;
        }
    }

    /// `socket` is gone: what it was replayed need not be kept.
    pub fn forget(&self, socket: &str) {
        self.replayed.lock_or_recover().retain(|_, sockets| {
            sockets.retain(|r| r.socket != socket);
            !sockets.is_empty()
        });
    }

    /// Gives up on `pending` (the history could not be read).
    pub async fn abandon(&self, room: RoomId, pending: &Arc<Pending>) {
        Self::unregister(&mut *self.rooms.write().await, room, pending);
    }

    fn unregister(rooms: &mut Registry, room: RoomId, pending: &Arc<Pending>) {
        if let Some(sockets) = rooms.get_mut(&room) {
            sockets.retain(|socket| !Arc::ptr_eq(socket, pending));
            if sockets.is_empty() {
                rooms.remove(&room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageIdGenerator, UserId};

    fn delivery(room: RoomId, id: MessageId, origin: Option<&str>) -> Delivery {
        Delivery {
            message_id: id,
            room_id: room,
            author_id: UserId::random(),
            inbox: Vec::new(),
            origin_socket: origin.map(str::to_owned),
            reply: serde_json::value::to_raw_value(&id.to_string()).unwrap(),
        }
    }

    #[tokio::test]
    async fn deliveries_are_recorded_only_while_catching_up_and_not_for_their_sender() {
        let ids = MessageIdGenerator::new(1);
        let (room, other) = (RoomId::random(), RoomId::random());
        let catch_ups = CatchUps::default();
        let before = ids.next_id();
        catch_ups
            .delivering()
            .await
            .record(&delivery(room, before, None));

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
            delivering.record(&delivery(room, mine, Some("s1")));
            delivering.record(&delivery(room, theirs, Some("s2")));
            delivering.record(&delivery(other, elsewhere, None));
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
            .record(&delivery(room, after, None));
        assert!(pending.recorded.lock().unwrap().is_empty());
        assert!(catch_ups.rooms.read().await.is_empty());
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
            delivering.record(&delivery(room, had, None));
            for _ in 0..MAX_RECORDED + 5 {
                delivering.record(&delivery(room, ids.next_id(), None));
            }
        }
        let (mut count, mut how) = (0, None);
        catch_ups
            .finish(room, &pending, HashSet::new(), |recorded, ended| {
                count = recorded.len();
                how = Some(ended);
            })
            .await;
        assert_eq!(count, MAX_RECORDED);
        assert!(how.unwrap().overflowed);

        // Live, the socket is spared what it had (up to since).
        let delivering = catch_ups.delivering().await;
        assert_eq!(
            delivering.replayed_to(&delivery(room, had, None)),
            vec!["s1"]
        );
        assert!(delivering
            .replayed_to(&delivery(room, ids.next_id(), None))
            .is_empty());
    }

    #[tokio::test]
    async fn what_sockets_were_replayed_is_bounded_and_forgotten_when_they_go() {
        let ids = MessageIdGenerator::new(1);
        let catch_ups = CatchUps::default();
        let per_socket = 50_000;
        for socket in 0..6 {
            let room = RoomId::random();
            let name = format!("s{socket}");
            let pending = catch_ups
                .start(room, name.clone(), ids.next_id())
                .await
                .unwrap();
            let replayed = (0..per_socket).map(|_| ids.next_id()).collect();
            catch_ups.finish(room, &pending, replayed, |_, _| {}).await;
        }
        let kept = |catch_ups: &CatchUps| -> Vec<String> {
            let kept = catch_ups.replayed.lock().unwrap();
            let mut sockets: Vec<_> = kept.values().flatten().map(|r| r.socket.clone()).collect();
            sockets.sort();
            sockets
        };
        assert_eq!(
            kept(&catch_ups),
            ["s3", "s4", "s5"],
            "the oldest dropped first"
        );
        catch_ups.forget("s4");
        assert_eq!(kept(&catch_ups), ["s3", "s5"]);
    }
}
