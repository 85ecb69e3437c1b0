//! Counting every message of one author's stream: sent, accepted, and for
//! each recipient delivered, duplicated, out of order; lost at the end.
//!
//! Each chatter numbers its messages 0, 1, 2, ... and every other member of
//! its room receives them as `reply` events: per (recipient, author) they
//! form one stream whose sequence numbers must arrive once each, in order.
//! The author writes `sent`/`accepted` into its stream's ledger and each
//! recipient writes its `delivered`, under its slot (its place among the
//! author's room-mates, [`crate::coord::Rooms::slot`]); the tally at the
//! end says what went missing. In a pair there is one recipient.

mod tally;

pub use tally::Tally;

const SENT: u8 = 1;
const ACCEPTED: u8 = 2;
const REJECTED: u8 = 4;

/// What a delivery was, relative to what its recipient had seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// First delivery of this message to this recipient, after every
    /// earlier one it received so far.
    InOrder,
    /// First delivery of this message to this recipient, but a later one
    /// reached it first.
    OutOfOrder,
    /// This recipient already had this message.
    Duplicate,
    /// A sequence number the author never sent, or a recipient not in the
    /// room.
    Unknown,
}

/// One delivery as the ledger saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// How it stands in its recipient's stream.
    pub delivery: Delivery,
    /// The message's first recipient: fan-out to the first member.
    pub first: bool,
    /// The message's last recipient (every other member has it now):
    /// fan-out to the last member. In a pair, first and last at once.
    pub last: bool,
}

impl Arrival {
    fn only(delivery: Delivery) -> Self {
        Self {
            delivery,
            first: false,
            last: false,
        }
    }
}

/// What one recipient received of the author's messages.
#[derive(Debug, Default, Clone)]
struct RecipientLog {
    /// One bit per sequence number: delivered. A bit, not a byte: a room
    /// of a hundred holds 99 of these per author.
    delivered: Vec<u64>,
    /// The highest sequence number delivered so far.
    highest: Option<u64>,
    duplicates: u64,
    out_of_order: u64,
}

impl RecipientLog {
    fn has(&self, index: usize) -> bool {
        self.delivered
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    fn mark(&mut self, index: usize) {
        if self.delivered.len() <= index / 64 {
            self.delivered.resize(index / 64 + 1, 0);
        }
        self.delivered[index / 64] |= 1 << (index % 64);
    }
}

/// The state of one author's messages.
#[derive(Debug, Clone)]
pub struct StreamLedger {
    /// Flags per sequence number.
    states: Vec<u8>,
    /// Recipients reached per sequence number.
    reached: Vec<u32>,
    /// Per recipient slot.
    recipients: Vec<RecipientLog>,
    /// Set when the author stopped sending and every ack came back or timed out.
    finished: bool,
}

impl StreamLedger {
    /// A ledger for an author whose messages go to `recipients` others (1
    /// in a pair, `room size - 1` in a group room).
    pub fn new(recipients: usize) -> Self {
        Self {
            states: Vec::new(),
            reached: Vec::new(),
            recipients: vec![RecipientLog::default(); recipients],
            finished: false,
        }
    }

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

    /// The recipient in slot `recipient` received message `seq`.
    pub fn delivered(&mut self, seq: u64, recipient: usize) -> Arrival {
        let Some(index) = usize::try_from(seq)
            .ok()
            .filter(|&index| self.states.get(index).is_some_and(|s| s & SENT != 0))
        else {
            return Arrival::only(Delivery::Unknown);
        };
        let recipients = self.recipients.len();
        let Some(log) = self.recipients.get_mut(recipient) else {
            return Arrival::only(Delivery::Unknown);
        };
        if log.has(index) {
            log.duplicates += 1;
            return Arrival::only(Delivery::Duplicate);
        }
        log.mark(index);
        let delivery = match log.highest {
            Some(highest) if seq < highest => {
                log.out_of_order += 1;
                Delivery::OutOfOrder
            }
            _ => {
                log.highest = Some(seq);
                Delivery::InOrder
            }
        };
        // `set` keeps `reached` as long as `states`.
        let reached = &mut self.reached[index];
        *reached += 1;
        Arrival {
            delivery,
            first: *reached == 1,
            last: *reached as usize == recipients,
        }
    }

    /// The author will send nothing more and waits for no more acks.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// True when the author finished and the recipient in slot `recipient`
    /// received every accepted message: it has nothing left to wait for.
    pub fn settled_for(&self, recipient: usize) -> bool {
        let Some(log) = self.recipients.get(recipient) else {
            return true;
        };
        self.finished
            && self
                .states
                .iter()
                .enumerate()
                .all(|(index, state)| state & ACCEPTED == 0 || log.has(index))
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let recipients = self.recipients.len() as u64;
        let mut tally = Tally::default();
        for log in &self.recipients {
            tally.duplicated += log.duplicates;
            tally.out_of_order += log.out_of_order;
        }
        for (&state, &reached) in self.states.iter().zip(&self.reached) {
            let reached = u64::from(reached);
            let sent = state & SENT != 0;
            let accepted = state & ACCEPTED != 0;
            let rejected = state & REJECTED != 0;
            let anybody = reached > 0;
            tally.sent += u64::from(sent);
            tally.accepted += u64::from(accepted);
            tally.rejected += u64::from(rejected);
            tally.delivered += u64::from(anybody && reached == recipients);
            tally.deliveries += reached;
            // A message one member received was taken by the service, ack
            // or no ack: the others should have it too.
            if accepted || (anybody && !rejected) {
                tally.lost += recipients - reached;
            }
            let unanswered = sent && !accepted && !rejected;
            tally.unconfirmed += u64::from(unanswered && !anybody);
            tally.delivered_unacked += u64::from(unanswered && anybody);
            tally.delivered_rejected += u64::from(rejected && anybody);
        }
        tally
    }

    fn set(&mut self, seq: u64, flag: u8) {
        let Ok(index) = usize::try_from(seq) else {
            return;
        };
        if index >= self.states.len() {
            self.states.resize(index + 1, 0);
            self.reached.resize(index + 1, 0);
        }
        self.states[index] |= flag;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with(sent: u64, recipients: usize) -> StreamLedger {
        let mut ledger = StreamLedger::new(recipients);
        for seq in 0..sent {
            ledger.sent(seq);
            ledger.accepted(seq);
        }
        ledger
    }

    fn delivery(ledger: &mut StreamLedger, seq: u64) -> Delivery {
        ledger.delivered(seq, 0).delivery
    }

    #[test]
    fn a_stream_delivered_in_order_is_clean() {
        let mut ledger = ledger_with(3, 1);
        for seq in 0..3 {
            assert_eq!(delivery(&mut ledger, seq), Delivery::InOrder);
        }
        ledger.finish();
        assert!(ledger.settled_for(0));
        let tally = ledger.tally();
        assert_eq!((tally.sent, tally.accepted, tally.delivered), (3, 3, 3));
        assert_eq!(tally.deliveries, 3);
        assert!(tally.is_clean());
    }

    #[test]
    fn an_accepted_message_never_delivered_is_lost() {
        let mut ledger = ledger_with(3, 1);
        ledger.delivered(0, 0);
        ledger.delivered(2, 0);
        ledger.finish();
        assert!(!ledger.settled_for(0));
        let tally = ledger.tally();
        assert_eq!(tally.lost, 1);
        assert!(!tally.is_clean());
    }

    #[test]
    fn a_second_copy_is_a_duplicate_and_counts_once_as_delivered() {
        let mut ledger = ledger_with(2, 1);
        ledger.delivered(0, 0);
        assert_eq!(delivery(&mut ledger, 0), Delivery::Duplicate);
        ledger.delivered(1, 0);
        let tally = ledger.tally();
        assert_eq!((tally.delivered, tally.duplicated, tally.lost), (2, 1, 0));
    }

    #[test]
    fn an_earlier_message_after_a_later_one_is_out_of_order() {
        let mut ledger = ledger_with(3, 1);
        assert_eq!(delivery(&mut ledger, 0), Delivery::InOrder);
        assert_eq!(delivery(&mut ledger, 2), Delivery::InOrder);
        assert_eq!(delivery(&mut ledger, 1), Delivery::OutOfOrder);
        let tally = ledger.tally();
        assert_eq!((tally.out_of_order, tally.lost, tally.delivered), (1, 0, 3));
    }

    #[test]
    fn a_message_never_sent_or_a_stranger_is_unknown_and_not_counted() {
        let mut ledger = ledger_with(1, 1);
        assert_eq!(delivery(&mut ledger, 5), Delivery::Unknown);
        assert_eq!(ledger.delivered(0, 1).delivery, Delivery::Unknown);
        assert_eq!(ledger.tally().deliveries, 0);
    }

    #[test]
    fn rejected_and_unacknowledged_messages_are_not_lost() {
        let mut ledger = StreamLedger::new(1);
        ledger.sent(0);
        ledger.rejected(0);
        ledger.sent(1); // ack timed out, never delivered
        ledger.sent(2); // ack timed out, delivered anyway
        ledger.delivered(2, 0);
        let tally = ledger.tally();
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.rejected, 1);
        assert_eq!(tally.unconfirmed, 1);
        assert_eq!(tally.delivered_unacked, 1);
        assert!(!tally.is_clean());
    }

    #[test]
    fn in_a_pair_the_one_delivery_is_first_and_last() {
        let mut ledger = ledger_with(1, 1);
        let arrival = ledger.delivered(0, 0);
        assert_eq!(
            arrival,
            Arrival {
                delivery: Delivery::InOrder,
                first: true,
                last: true
            }
        );
    }

    #[test]
    fn in_a_group_the_first_and_the_last_recipient_are_marked_once() {
        let mut ledger = ledger_with(1, 3);
        let first = ledger.delivered(0, 2);
        assert!(first.first && !first.last);
        // A copy to the first recipient again is neither first nor last.
        assert_eq!(ledger.delivered(0, 2), Arrival::only(Delivery::Duplicate));
        let middle = ledger.delivered(0, 0);
        assert!(!middle.first && !middle.last);
        let last = ledger.delivered(0, 1);
        assert_eq!(last.delivery, Delivery::InOrder);
        assert!(!last.first && last.last);
        let tally = ledger.tally();
        assert_eq!((tally.delivered, tally.deliveries), (1, 3));
        assert_eq!((tally.duplicated, tally.lost), (1, 0));
    }

    #[test]
    fn in_a_group_each_missing_recipient_is_a_lost_delivery() {
        let mut ledger = ledger_with(2, 4);
        for recipient in 0..4 {
            ledger.delivered(0, recipient);
        }
        ledger.delivered(1, 3);
        ledger.finish();
        let tally = ledger.tally();
        // Message 1 reached one member of four: three deliveries lost, and
        // the message does not count as delivered.
        assert_eq!((tally.delivered, tally.deliveries, tally.lost), (1, 5, 3));
        assert!(ledger.settled_for(3));
        assert!(!ledger.settled_for(0));
    }

    #[test]
    fn order_is_judged_per_recipient() {
        let mut ledger = ledger_with(2, 2);
        // Recipient 0 gets 1 then 0; recipient 1 gets 0 then 1: only the
        // first saw the author's messages out of order.
        assert_eq!(ledger.delivered(1, 0).delivery, Delivery::InOrder);
        assert_eq!(ledger.delivered(0, 1).delivery, Delivery::InOrder);
        assert_eq!(ledger.delivered(0, 0).delivery, Delivery::OutOfOrder);
        assert_eq!(ledger.delivered(1, 1).delivery, Delivery::InOrder);
        let tally = ledger.tally();
        assert_eq!((tally.out_of_order, tally.lost, tally.delivered), (1, 0, 2));
    }

    #[test]
    fn an_unacknowledged_message_one_member_received_was_taken_by_the_service() {
        let mut ledger = StreamLedger::new(3);
        ledger.sent(0); // ack timed out; one member got it
        ledger.delivered(0, 1);
        ledger.sent(1); // refused, and nobody got it
        ledger.rejected(1);
        let tally = ledger.tally();
        assert_eq!(tally.lost, 2);
        assert_eq!((tally.delivered_unacked, tally.unconfirmed), (1, 0));
        assert_eq!(tally.delivered_rejected, 0);
    }

    #[test]
    fn many_messages_keep_their_bits_apart() {
        let mut ledger = ledger_with(200, 2);
        for seq in (0..200).step_by(3) {
            assert_eq!(ledger.delivered(seq, 1).delivery, Delivery::InOrder);
        }
        for seq in (0..200).step_by(3) {
            assert_eq!(ledger.delivered(seq, 1).delivery, Delivery::Duplicate);
            assert_eq!(ledger.delivered(seq, 0).delivery, Delivery::InOrder);
        }
        let tally = ledger.tally();
        assert_eq!(tally.deliveries, 2 * 67);
        assert_eq!(tally.lost, 2 * (200 - 67));
    }
}
