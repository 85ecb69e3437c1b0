//! What chatters share: who registered as whom, which rooms exist, who
//! joined their room, and one start time for everybody.
//!
//! Chatters `k·n .. k·n + n - 1` share room `k` ([`Rooms`]; `n` is
//! `--room-size`, 2 by default: chatters `2k` and `2k+1` are partners).
//! Each publishes its state in its slot; the others wait on that slot with
//! a deadline, so a chatter whose room-mate failed gives up instead of
//! hanging the run. A group room's first member creates it and publishes
//! its id on the [`RoomBoard`].

use std::{
    ops::Range,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

/// How far along a chatter's setup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Not registered yet.
    Pending,
    /// Registered as this user id.
    Registered(String),
    /// Registered as this user id, connected and joined the pair's room.
    Joined(String),
    /// Setup failed; the partner should not wait.
    Failed,
}

/// How chatters are put in rooms: `size` consecutive chatters per room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rooms {
    size: usize,
}

impl Rooms {
    /// Rooms of `size` members (at least 2).
    pub fn new(size: usize) -> Self {
        Self { size: size.max(2) }
    }

    /// Members per room.
    pub fn size(self) -> usize {
        self.size
    }

    /// True for rooms of more than two: group rooms, made with
    /// `POST /rooms`, rather than the private room of a pair.
    pub fn is_group(self) -> bool {
        self.size > 2
    }

    /// How many receive each message: everybody in the room but its author.
    pub fn recipients(self) -> usize {
        self.size - 1
    }

    /// The room of chatter `index`.
    pub fn room_of(self, index: usize) -> usize {
        index / self.size
    }

    /// The members of chatter `index`'s room, itself included.
    pub fn members(self, index: usize) -> Range<usize> {
        let first = self.room_of(index) * self.size;
        first..first + self.size
    }

    /// The other members of chatter `index`'s room, in order.
    pub fn others(self, index: usize) -> impl Iterator<Item = usize> {
        self.members(index).filter(move |member| *member != index)
    }

    /// The member that creates a group room: its first.
    pub fn creator(self, index: usize) -> usize {
        self.members(index).start
    }

    /// Where `recipient` keeps its deliveries in `author`'s ledger: its
    /// place among the author's room-mates. `None` for the author itself
    /// and for a chatter of another room.
    pub fn slot(self, author: usize, recipient: usize) -> Option<usize> {
        if author == recipient || self.room_of(author) != self.room_of(recipient) {
            return None;
        }
        let place = recipient % self.size;
        Some(if recipient < author { place } else { place - 1 })
    }
}

/// Every chatter's [`SlotState`], each watchable.
pub struct Registry {
    slots: Vec<watch::Sender<SlotState>>,
}

impl Registry {
    /// Slots for `users` chatters.
    pub fn new(users: usize) -> Self {
        Self {
            slots: (0..users)
                .map(|_| watch::Sender::new(SlotState::Pending))
                .collect(),
        }
    }

    /// Publishes chatter `index`'s state.
    pub fn publish(&self, index: usize, state: SlotState) {
        if let Some(slot) = self.slots.get(index) {
            slot.send_replace(state);
        }
    }

    /// Waits until chatter `index` registered and returns its user id;
    /// `None` when it failed or the deadline passed.
    pub async fn user_id(&self, index: usize, deadline: Instant) -> Option<String> {
        let state = self
            .wait(index, deadline, |state| {
                !matches!(state, SlotState::Pending)
            })
            .await?;
        match state {
            SlotState::Registered(id) | SlotState::Joined(id) => Some(id),
            _ => None,
        }
    }

    /// Chatter `index`'s user id, if it registered.
    pub fn id_of(&self, index: usize) -> Option<String> {
        match &*self.slots.get(index)?.borrow() {
            SlotState::Registered(id) | SlotState::Joined(id) => Some(id.clone()),
            _ => None,
        }
    }

    /// Waits until chatter `index` joined its room; false when it failed or
    /// the deadline passed.
    pub async fn joined(&self, index: usize, deadline: Instant) -> bool {
        let state = self
            .wait(index, deadline, |state| {
                matches!(state, SlotState::Joined(_) | SlotState::Failed)
            })
            .await;
        matches!(state, Some(SlotState::Joined(_)))
    }

    async fn wait(
        &self,
        index: usize,
        deadline: Instant,
        done: impl Fn(&SlotState) -> bool,
    ) -> Option<SlotState> {
        let mut receiver = self.slots.get(index)?.subscribe();
        let state = tokio::time::timeout_at(deadline, receiver.wait_for(|state| done(state)))
            .await
            .ok()?
            .ok()?
            .clone();
        Some(state)
    }
}

/// Where a group room's id is, once its creator made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomState {
    /// Not created yet.
    Pending,
    /// Created with this id.
    Ready(String),
    /// Its creator failed: the other members should not wait.
    Failed,
}

/// Every group room's [`RoomState`], by room number, each watchable.
pub struct RoomBoard {
    rooms: Vec<watch::Sender<RoomState>>,
}

impl RoomBoard {
    /// Slots for `rooms` rooms.
    pub fn new(rooms: usize) -> Self {
        Self {
            rooms: (0..rooms)
                .map(|_| watch::Sender::new(RoomState::Pending))
                .collect(),
        }
    }

    /// Room `room` was created as `room_id`.
    pub fn ready(&self, room: usize, room_id: String) {
        if let Some(slot) = self.rooms.get(room) {
            slot.send_replace(RoomState::Ready(room_id));
        }
    }

    /// Room `room` will not be created (unless it already was).
    pub fn fail(&self, room: usize) {
        if let Some(slot) = self.rooms.get(room) {
            slot.send_if_modified(|state| {
                let pending = *state == RoomState::Pending;
                if pending {
                    *state = RoomState::Failed;
                }
                pending
            });
        }
    }

    /// Waits until room `room` exists and returns its id; `None` when its
    /// creator failed or the deadline passed.
    pub async fn room_id(&self, room: usize, deadline: Instant) -> Option<String> {
        let mut receiver = self.rooms.get(room)?.subscribe();
        let state = tokio::time::timeout_at(
            deadline,
            receiver.wait_for(|state| *state != RoomState::Pending),
        )
        .await
        .ok()?
        .ok()?
        .clone();
        match state {
            RoomState::Ready(id) => Some(id),
            _ => None,
        }
    }
}

/// One start time for every chatter: when all have finished their setup
/// (well or badly), or at a deadline, whichever comes first.
pub struct StartGate {
    expected: usize,
    arrived: AtomicUsize,
    start: watch::Sender<Option<Instant>>,
    /// Time between the decision and the start, so every chatter hears of
    /// it before its first message is due.
    lead: Duration,
}

impl StartGate {
    /// A gate for `expected` chatters.
    pub fn new(expected: usize, lead: Duration) -> Self {
        Self {
            expected,
            arrived: AtomicUsize::new(0),
            start: watch::Sender::new(None),
            lead,
        }
    }

    /// A chatter finished its setup, well or not.
    pub fn arrive(&self) {
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 >= self.expected {
            self.decide();
        }
    }

    /// Waits for the start time; at `deadline` the chatters that are ready
    /// go without the others.
    pub async fn start(&self, deadline: Instant) -> Instant {
        let mut receiver = self.start.subscribe();
        let decided = tokio::time::timeout_at(deadline, receiver.wait_for(Option::is_some)).await;
        if let Ok(Ok(start)) = decided {
            if let Some(start) = *start {
                return start;
            }
        }
        self.decide()
    }

    /// Waits until the start time is decided, without deciding it.
    pub async fn decided_start(&self) -> Instant {
        let mut receiver = self.start.subscribe();
        loop {
            if let Some(start) = *receiver.borrow_and_update() {
                return start;
            }
            if receiver.changed().await.is_err() {
                return Instant::now();
            }
        }
    }

    /// The start time, if it is decided.
    pub fn decided(&self) -> Option<Instant> {
        *self.start.borrow()
    }

    /// Fixes the start time (once) and returns it.
    fn decide(&self) -> Instant {
        let lead = self.lead;
        self.start.send_if_modified(|start| {
            if start.is_some() {
                return false;
            }
            *start = Some(Instant::now() + lead);
            true
        });
        self.decided().unwrap_or_else(|| Instant::now() + lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_pairs_partners_are_even_and_odd_neighbours() {
        let pairs = Rooms::new(2);
        assert!(!pairs.is_group());
        assert_eq!(pairs.others(0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(pairs.others(1).collect::<Vec<_>>(), vec![0]);
        assert_eq!(pairs.others(6).collect::<Vec<_>>(), vec![7]);
        assert_eq!((pairs.slot(6, 7), pairs.slot(7, 6)), (Some(0), Some(0)));
        assert_eq!(pairs.recipients(), 1);
    }

    #[test]
    fn group_rooms_hold_consecutive_chatters_each_in_its_own_slot() {
        let rooms = Rooms::new(4);
        assert!(rooms.is_group());
        assert_eq!(rooms.members(6), 4..8);
        assert_eq!(rooms.creator(6), 4);
        assert_eq!(rooms.others(5).collect::<Vec<_>>(), vec![4, 6, 7]);
        // Author 5's recipients 4, 6, 7 sit in slots 0, 1, 2.
        let slots: Vec<_> = rooms.others(5).map(|r| rooms.slot(5, r)).collect();
        assert_eq!(slots, vec![Some(0), Some(1), Some(2)]);
        assert_eq!(rooms.slot(5, 5), None);
        assert_eq!(rooms.slot(5, 8), None);
        assert_eq!(rooms.recipients(), 3);
    }

    #[tokio::test]
    async fn members_learn_the_room_once_its_creator_made_it_or_failed() {
        let board = RoomBoard::new(3);
        let deadline = Instant::now() + Duration::from_secs(5);
        board.ready(0, "room-0".to_owned());
        assert_eq!(board.room_id(0, deadline).await.as_deref(), Some("room-0"));
        board.fail(1);
        assert_eq!(board.room_id(1, deadline).await, None);
        // A failure after the room was made changes nothing.
        board.fail(0);
        assert_eq!(board.room_id(0, deadline).await.as_deref(), Some("room-0"));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(board.room_id(2, soon).await, None);
    }

    #[tokio::test]
    async fn a_waiter_sees_the_partners_id_once_published() {
        let registry = Registry::new(2);
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(registry.id_of(1), None);
        registry.publish(1, SlotState::Registered("id-1".to_owned()));
        assert_eq!(registry.user_id(1, deadline).await.as_deref(), Some("id-1"));
        assert_eq!(registry.id_of(1).as_deref(), Some("id-1"));
        registry.publish(1, SlotState::Joined("id-1".to_owned()));
        assert_eq!(registry.user_id(1, deadline).await.as_deref(), Some("id-1"));
        assert!(registry.joined(1, deadline).await);
    }

    #[tokio::test]
    async fn a_failed_or_silent_partner_ends_the_wait() {
        let registry = Registry::new(4);
        let deadline = Instant::now() + Duration::from_millis(50);
        registry.publish(1, SlotState::Failed);
        assert_eq!(registry.user_id(1, deadline).await, None);
        assert!(!registry.joined(3, deadline).await);
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn the_gate_opens_when_everybody_arrived() {
        let gate = StartGate::new(2, Duration::from_millis(10));
        let far = Instant::now() + Duration::from_secs(60);
        gate.arrive();
        assert!(gate.decided().is_none());
        gate.arrive();
        let start = gate.start(far).await;
        assert_eq!(gate.start(far).await, start);
        assert!(start < far);
    }

    #[tokio::test]
    async fn the_gate_opens_at_the_deadline_without_stragglers() {
        let gate = StartGate::new(3, Duration::from_millis(10));
        let deadline = Instant::now() + Duration::from_millis(50);
        gate.arrive();
        let start = gate.start(deadline).await;
        assert!(start >= deadline);
    }
}
