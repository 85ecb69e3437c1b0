//! Message and delivery counts, for one author's stream or summed over all.

use serde::Serialize;

/// Message counts, for one stream or summed over all.
///
/// `sent`, `accepted`, `rejected`, `delivered` and the last three count
/// messages; `deliveries`, `lost`, `duplicated` and `out_of_order` count
/// deliveries, one per message and recipient. In a pair (one recipient)
/// the two are the same.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Emitted by the author.
    pub sent: u64,
    /// Acknowledged `accepted`.
    pub accepted: u64,
    /// Acknowledged `error`.
    pub rejected: u64,
    /// Messages received by every other member of the room (the partner,
    /// in a pair).
    pub delivered: u64,
    /// First copies received, one per message and recipient.
    pub deliveries: u64,
    /// Deliveries that never happened within the grace period, of messages
    /// the service took: accepted, or received by another recipient.
    pub lost: u64,
    /// Extra copies received (a recipient's second `reply` of a message).
    pub duplicated: u64,
    /// Deliveries after a later message of the same author, per recipient.
    pub out_of_order: u64,
    /// Sent, but neither acknowledged nor received by anybody (the ack timed out).
    pub unconfirmed: u64,
    /// Received although the ack never came (it timed out).
    pub delivered_unacked: u64,
    /// Received although the ack said `error`: a contract violation.
    pub delivered_rejected: u64,
}

impl Tally {
    /// Adds another tally to this one.
    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.delivered += other.delivered;
        self.deliveries += other.deliveries;
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

    #[test]
    fn tallies_add_up() {
        let mut total = Tally::default();
        let one = Tally {
            sent: 2,
            deliveries: 6,
            lost: 1,
            ..Tally::default()
        };
        total.add(&one);
        total.add(&one);
        assert_eq!((total.sent, total.deliveries, total.lost), (4, 12, 2));
        assert!(!total.is_clean());
        assert!(Tally::default().is_clean());
    }
}
