//! Test doubles of the pipeline's collaborators: a fan-out that records
//! (and can fail or be unsettled), a store that can be down or refuse.

use std::sync::{
    atomic::{AtomicBool, AtomicU32, Ordering},
    Arc, Mutex,
};

use async_trait::async_trait;
use serde_json::Value;

use super::MessageCreated;
use crate::{
    domain::{HistoryPage, Message, MessageId, MessageIdGenerator, MessageText, RoomId, UserId},
    fanout::{Delivery, Fanout, FanoutError},
    store::{memory::MemoryStore, Messages, Probe, Storage, StoreError},
};

/// One recorded emit: to, except, event name, payload.
pub type Emit = (Vec<String>, Vec<String>, String, Value);

/// Records every delivery and emit that succeeds.
#[derive(Default)]
pub struct RecordingFanout {
    pub deliveries: Mutex<Vec<Delivery>>,
    pub emits: Mutex<Vec<Emit>>,
    /// While set, `settled()` is false and emits fail.
    pub unsettled: AtomicBool,
    /// Emits to fail before the next one succeeds.
    pub fail_next: AtomicU32,
}

impl RecordingFanout {
    pub fn emits(&self) -> Vec<Emit> {
        self.emits.lock().unwrap().clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    fn failing(&self) -> bool {
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        failing || self.unsettled.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Fanout for RecordingFanout {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), FanoutError> {
        if self.failing() {
            return Err(FanoutError("broken pipe".to_owned()));
        }
        self.deliveries.lock().unwrap().push(delivery.clone());
        Ok(())
    }

    async fn emit(
        &self,
        to: Vec<String>,
        except: Vec<String>,
        event: &str,
        payload: &Value,
    ) -> Result<(), FanoutError> {
        if self.failing() {
            return Err(FanoutError("broken pipe".to_owned()));
        }
        let emit = (to, except, event.to_owned(), payload.clone());
        self.emits.lock().unwrap().push(emit);
        Ok(())
    }

    async fn leave(&self, _: Vec<String>, _: String) -> Result<(), FanoutError> {
        Ok(())
    }

    async fn disconnect(&self, _: Vec<String>) -> Result<(), FanoutError> {
        Ok(())
    }

    fn settled(&self) -> bool {
        !self.unsettled.load(Ordering::SeqCst)
    }

    async fn close(&self) {}
}

/// A message store that can be down (writes and probe fail) or refuse
/// writes while answering its probe.
#[derive(Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    pub down: AtomicBool,
    pub refusing: AtomicBool,
    pub saves: AtomicU32,
}

impl FlakyStore {
    pub fn saves(&self) -> u32 {
        self.saves.load(Ordering::SeqCst)
    }
}

impl FlakyStore {
    /// Storage whose messages and probe are this store's, the rest in memory.
    pub fn storage(self: &Arc<Self>) -> Storage {
        let memory = Arc::new(MemoryStore::default());
        Storage {
            accounts: memory.clone(),
            rooms: memory.clone(),
            messages: self.clone(),
            read_state: memory.clone(),
            outcomes: memory,
            probe: self.clone(),
        }
    }
}

#[async_trait]
impl Messages for FlakyStore {
    async fn save(&self, message: &Message) -> Result<(), StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) || self.refusing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("test", anyhow::anyhow!("no")));
        }
        self.inner.save(message).await
    }

    async fn history(&self, room: RoomId, page: HistoryPage) -> Result<Vec<Message>, StoreError> {
        self.inner.history(room, page).await
    }

    async fn contains(&self, room: RoomId, id: MessageId) -> Result<bool, StoreError> {
        self.inner.contains(room, id).await
    }

    async fn remove(&self, room: RoomId, id: MessageId) -> Result<(), StoreError> {
        self.inner.remove(room, id).await
    }
}

#[async_trait]
impl Probe for FlakyStore {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("test", anyhow::anyhow!("down")));
        }
        Ok(())
    }
}

/// A created message from socket `sid1`.
pub fn event() -> MessageCreated {
    let text = MessageText::parse("hi").unwrap();
    let id = MessageIdGenerator::new(0).next_id();
    MessageCreated {
        message: Message::new_text(id, RoomId::random(), UserId::random(), &text, None),
        recipient_id: Some(UserId::random()),
        origin_socket: Some("sid1".to_owned()),
        accepted_at_ms: 0,
        attempt: 1,
        not_before_ms: 0,
    }
}
