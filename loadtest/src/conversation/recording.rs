//! The conversation as the recording client of the chaos mode: the
//! history of every send and every arrival, and what a lost socket, a
//! reconnect and a catch-up through history mean for them.

use std::sync::MutexGuard;

use serde_json::Value;

use super::{message_id, Conversation};
use crate::{
    history::{Path, StreamHistory, UnknownCause},
    latency::lock,
    payload,
    state::Counters,
};

impl Conversation {
    /// True in chaos mode once the socket is gone: the chatter should open
    /// another one.
    pub fn needs_reconnect(&self) -> bool {
        self.resilient && !self.socket_open
    }

    /// The current connection's number.
    pub fn connection(&self) -> u32 {
        self.connection
    }

    /// The instance the socket is (or was last) on.
    pub fn instance(&self) -> usize {
        self.instance
    }

    /// The highest message id of the room-mates' received so far.
    pub fn last_seen(&self) -> Option<u64> {
        self.last_seen
    }

    /// The socket is gone: the acks in flight will never come. Like a real
    /// client, the chatter sends that message again on its next socket,
    /// with the same `clientMessageId` (the contract makes that resend
    /// safe): a dead socket cannot carry an answer, so only the resend can.
    pub fn connection_lost(&mut self) {
        // Newest first onto the front: they leave again in their order.
        for flight in self.in_flight.drain().into_iter().rev() {
            if let Some(mut history) = self.history(self.index) {
                history.unknown(flight.seq, UnknownCause::SocketLost);
            }
            self.backlog.push_front((flight.seq, flight.scheduled_us));
        }
        if self.socket_open {
            self.socket_open = false;
            Counters::bump(&self.run.counters.disconnects);
            self.run.counters.socket_closed();
        }
    }

    /// A new socket, `connection`, is open on `instance` and joined.
    pub fn reconnected(&mut self, connection: u32, instance: usize) {
        self.connection = connection;
        self.instance = instance;
        if !self.socket_open {
            self.socket_open = true;
            self.run.counters.socket_opened();
        }
    }

    /// Messages of the room read over HTTP after a reconnect, oldest first:
    /// the room-mates' ones not seen yet are delivered "through history".
    pub(super) fn on_history(&mut self, messages: &[Value], at_us: u64) {
        for message in messages {
            let author_id = message["authorId"].as_str().unwrap_or_default();
            if author_id == self.user_id {
                continue;
            }
            let Some(author) = self.authors.get(author_id).copied() else {
                Counters::bump(&self.run.counters.foreign_replies);
                continue;
            };
            let seq = self.seq_of(author.index, message).or_else(|| {
                message["content"]["message"]
                    .as_str()
                    .and_then(payload::decode)
                    .map(|(seq, _)| seq)
            });
            let (Some(seq), Some(id)) = (seq, message_id(&message["id"])) else {
                Counters::bump(&self.run.counters.foreign_replies);
                continue;
            };
            if self.received(author.index, seq, &id, at_us, Path::History) {
                lock(&self.run.ledgers[author.index]).delivered(seq, author.slot);
            }
        }
    }

    /// Records the arrival of `author`'s message `seq` as `id` in the
    /// history; true when it had not arrived before (always true outside
    /// chaos mode, where the ledger alone judges).
    pub(super) fn received(
        &mut self,
        author: usize,
        seq: u64,
        id: &str,
        at_us: u64,
        path: Path,
    ) -> bool {
        if let Ok(numeric) = id.parse::<u64>() {
            self.last_seen = Some(self.last_seen.map_or(numeric, |seen| seen.max(numeric)));
        }
        match self.history(author) {
            Some(mut history) => history.received(seq, id, at_us, path),
            None => true,
        }
    }

    /// `author`'s sequence number from a message's `clientMessageId`.
    pub(super) fn seq_of(&self, author: usize, message: &Value) -> Option<u64> {
        let client_id = message["clientMessageId"].as_str()?;
        payload::parse_client_message_id(&self.run.settings.run_tag, client_id)
            .filter(|(index, _)| *index == author)
            .map(|(_, seq)| seq)
    }

    /// An `error` event about one of this chatter's accepted messages
    /// (`chat_500` once its attempts are spent) goes into the history.
    pub(super) fn on_server_error(&mut self, error: &Value) {
        let name = error["name"].as_str().unwrap_or("unnamed");
        let id = message_id(&error["messageId"]).or_else(|| {
            // "message <id> could not be stored"
            error["message"].as_str().and_then(|text| {
                text.split(|c: char| !c.is_ascii_digit())
                    .find(|digits| digits.len() >= 10)
                    .map(str::to_owned)
            })
        });
        if let (Some(id), Some(mut history)) = (id, self.history(self.index)) {
            history.later_error(&id, name);
        }
    }

    /// Chaos mode's history of `author`'s messages.
    pub(super) fn history(&self, author: usize) -> Option<MutexGuard<'_, StreamHistory>> {
        let chaos = self.run.chaos.as_ref()?;
        chaos.history.get(author).map(lock)
    }
}
