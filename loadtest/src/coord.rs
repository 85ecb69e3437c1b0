//! What chatters share: who registered as whom, who joined their room, and
//! one start time for everybody.
//!
//! Chatters `2k` and `2k+1` are partners. Each publishes its state in its
//! slot; the partner waits on that slot with a deadline, so a chatter whose
//! partner failed gives up instead of hanging the run.

use std::{
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

/// The partner of chatter `index`.
pub fn partner_of(index: usize) -> usize {
    index ^ 1
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
    fn partners_are_even_and_odd_neighbours() {
        assert_eq!(partner_of(0), 1);
        assert_eq!(partner_of(1), 0);
        assert_eq!(partner_of(6), 7);
    }

    #[tokio::test]
    async fn a_waiter_sees_the_partners_id_once_published() {
        let registry = Registry::new(2);
        let deadline = Instant::now() + Duration::from_secs(5);
        registry.publish(1, SlotState::Registered("id-1".to_owned()));
        assert_eq!(registry.user_id(1, deadline).await.as_deref(), Some("id-1"));
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
