//! Counting every message of one author's stream: sent, accepted, delivered,
//! lost, duplicated, out of order.
//!
//! Each chatter numbers its messages 0, 1, 2, ... and its partner is the only
//! other socket in their room, so the partner's `reply` events form one
//! stream whose sequence numbers must arrive once each, in order. The author
//! writes `sent`/`accepted` into the stream's ledger and the partner writes
//! `delivered`; the tally at the end says what went missing.

use serde::Serialize;

const SENT: u8 = 1;
const ACCEPTED: u8 = 2;
const REJECTED: u8 = 4;
const DELIVERED: u8 = 8;

/// What a delivery was, relative to what the stream had seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// First delivery of this message, after every earlier one delivered so far.
    InOrder,
    /// First delivery of this message, but a later one arrived before it.
    OutOfOrder,
    /// This message was already delivered.
    Duplicate,
    /// A sequence number the author never sent.
    Unknown,
}

/// The state of one author's messages.
#[derive(Debug, Default, Clone)]
pub struct StreamLedger {
    /// Flags per sequence number.
    states: Vec<u8>,
    /// The highest sequence number delivered so far.
    highest_delivered: Option<u64>,
    duplicates: u64,
    out_of_order: u64,
    /// Set when the author stopped sending and every ack came back or timed out.
    finished: bool,
}

impl StreamLedger {
    /// The author emitted message `seq`.
    pub fn sent(&mut self, seq: u64) {
        self.set(seq, SENT);
    }

    /// The service acknowledged message `seq` as accepted.
    pub fn accepted(&mut self, seq: u64) {
        self.set(seq, ACCEPTED);
    }

    /// The service refused message `seq` (its ack said `error`).
    pub fn rejected(&mut self, seq: u64) {
        self.set(seq, REJECTED);
    }

    /// The partner received message `seq`.
    pub fn delivered(&mut self, seq: u64) -> Delivery {
        let Some(state) = usize::try_from(seq)
            .ok()
            .and_then(|i| self.states.get_mut(i))
        else {
            return Delivery::Unknown;
        };
        if *state & SENT == 0 {
            return Delivery::Unknown;
        }
        if *state & DELIVERED != 0 {
            self.duplicates += 1;
            return Delivery::Duplicate;
        }
        *state |= DELIVERED;
        match self.highest_delivered {
            Some(highest) if seq < highest => {
                self.out_of_order += 1;
                Delivery::OutOfOrder
            }
            _ => {
                self.highest_delivered = Some(seq);
                Delivery::InOrder
            }
        }
    }

    /// The author will send nothing more and waits for no more acks.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// True when the author finished and every accepted message was delivered:
    /// the partner has nothing left to wait for.
    pub fn settled(&self) -> bool {
        self.finished
            && self
                .states
                .iter()
                .all(|state| state & ACCEPTED == 0 || state & DELIVERED != 0)
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally {
            duplicated: self.duplicates,
            out_of_order: self.out_of_order,
            ..Tally::default()
        };
        for &state in &self.states {
            let sent = state & SENT != 0;
            let accepted = state & ACCEPTED != 0;
            let rejected = state & REJECTED != 0;
            let delivered = state & DELIVERED != 0;
            tally.sent += u64::from(sent);
            tally.accepted += u64::from(accepted);
            tally.rejected += u64::from(rejected);
            tally.delivered += u64::from(delivered);
            tally.lost += u64::from(accepted && !delivered);
            tally.unconfirmed += u64::from(sent && !accepted && !rejected && !delivered);
            tally.delivered_unacked += u64::from(sent && !accepted && !rejected && delivered);
            tally.delivered_rejected += u64::from(rejected && delivered);
        }
        tally
    }

    fn set(&mut self, seq: u64, flag: u8) {
        let Ok(index) = usize::try_from(seq) else {
            return;
        };
        if index >= self.states.len() {
            self.states.resize(index + 1, 0);
        }
        self.states[index] |= flag;
    }
}

/// Message counts, for one stream or summed over all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Emitted by the author.
    pub sent: u64,
    /// Acknowledged `accepted`.
    pub accepted: u64,
    /// Acknowledged `error`.
    pub rejected: u64,
    /// Received by the partner at least once (unique messages).
    pub delivered: u64,
    /// Accepted but never delivered within the grace period.
    pub lost: u64,
    /// Received by the partner more than once (extra copies).
    pub duplicated: u64,
    /// Received after a later message of the same author.
    pub out_of_order: u64,
    /// Sent, but neither acknowledged nor delivered (the ack timed out).
    pub unconfirmed: u64,
    /// Delivered although the ack never came (it timed out).
    pub delivered_unacked: u64,
    /// Delivered although the ack said `error`: a contract violation.
    pub delivered_rejected: u64,
}

impl Tally {
    /// Adds another tally to this one.
    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unconfirmed += other.unconfirmed;
        self.delivered_unacked += other.delivered_unacked;
        self.delivered_rejected += other.delivered_rejected;
    }

    /// True when nothing went missing, twice or out of order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unconfirmed == 0
            && self.delivered_rejected == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with(sent: u64) -> StreamLedger {
        let mut ledger = StreamLedger::default();
        for seq in 0..sent {
            ledger.sent(seq);
            ledger.accepted(seq);
        }
        ledger
    }

    #[test]
    fn a_stream_delivered_in_order_is_clean() {
        let mut ledger = ledger_with(3);
        for seq in 0..3 {
            assert_eq!(ledger.delivered(seq), Delivery::InOrder);
        }
        ledger.finish();
        assert!(ledger.settled());
        let tally = ledger.tally();
        assert_eq!((tally.sent, tally.accepted, tally.delivered), (3, 3, 3));
        assert!(tally.is_clean());
    }

    #[test]
    fn an_accepted_message_never_delivered_is_lost() {
        let mut ledger = ledger_with(3);
        ledger.delivered(0);
        ledger.delivered(2);
        ledger.finish();
        assert!(!ledger.settled());
        let tally = ledger.tally();
        assert_eq!(tally.lost, 1);
        assert!(!tally.is_clean());
    }

    #[test]
    fn a_second_copy_is_a_duplicate_and_counts_once_as_delivered() {
        let mut ledger = ledger_with(2);
        ledger.delivered(0);
        assert_eq!(ledger.delivered(0), Delivery::Duplicate);
        ledger.delivered(1);
        let tally = ledger.tally();
        assert_eq!((tally.delivered, tally.duplicated, tally.lost), (2, 1, 0));
    }

    #[test]
    fn an_earlier_message_after_a_later_one_is_out_of_order() {
        let mut ledger = ledger_with(3);
        assert_eq!(ledger.delivered(0), Delivery::InOrder);
        assert_eq!(ledger.delivered(2), Delivery::InOrder);
        assert_eq!(ledger.delivered(1), Delivery::OutOfOrder);
        let tally = ledger.tally();
        assert_eq!((tally.out_of_order, tally.lost, tally.delivered), (1, 0, 3));
    }

    #[test]
    fn a_message_never_sent_is_unknown_and_not_counted() {
        let mut ledger = ledger_with(1);
        assert_eq!(ledger.delivered(5), Delivery::Unknown);
        assert_eq!(ledger.tally().delivered, 0);
    }

    #[test]
    fn rejected_and_unacknowledged_messages_are_not_lost() {
        let mut ledger = StreamLedger::default();
        ledger.sent(0);
        ledger.rejected(0);
        ledger.sent(1); // ack timed out, never delivered
        ledger.sent(2); // ack timed out, delivered anyway
        ledger.delivered(2);
        let tally = ledger.tally();
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.rejected, 1);
        assert_eq!(tally.unconfirmed, 1);
        assert_eq!(tally.delivered_unacked, 1);
        assert!(!tally.is_clean());
    }

    #[test]
    fn tallies_add_up() {
        let mut total = Tally::default();
        let one = Tally {
            sent: 2,
            lost: 1,
            ..Tally::default()
        };
        total.add(&one);
        total.add(&one);
        assert_eq!((total.sent, total.lost), (4, 2));
    }
}
