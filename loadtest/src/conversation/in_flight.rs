//! The messages of one socket whose ack is awaited: at most `LOAD_PIPELINE`
//! of them, oldest first.

use std::collections::VecDeque;

use tokio::time::Instant;

/// A message whose ack is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Its sequence number.
    pub seq: u64,
    /// When it was due (process clock, µs).
    pub scheduled_us: u64,
    /// When its ack times out.
    pub deadline: Instant,
}

/// The acks a socket awaits, in the order the messages left.
#[derive(Debug)]
pub struct AckWindow {
    limit: usize,
    flights: VecDeque<InFlight>,
}

impl AckWindow {
    /// A window of `limit` acks (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            flights: VecDeque::new(),
        }
    }

    /// True when the next message has to wait for an ack.
    pub fn is_full(&self) -> bool {
        self.flights.len() >= self.limit
    }

    /// True when no ack is awaited.
    pub fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    /// A message left.
    pub fn push(&mut self, flight: InFlight) {
        self.flights.push_back(flight);
    }

    /// The ack of `seq` came: its message, unless it had already timed out.
    pub fn take(&mut self, seq: u64) -> Option<InFlight> {
        let position = self.flights.iter().position(|flight| flight.seq == seq)?;
        self.flights.remove(position)
    }

    /// The earliest ack deadline (deadlines grow with the order of sending).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.flights.iter().map(|flight| flight.deadline).min()
    }

    /// The messages whose ack is overdue at `now`, oldest first.
    pub fn expire(&mut self, now: Instant) -> Vec<InFlight> {
        let (overdue, waiting): (VecDeque<_>, VecDeque<_>) = self
            .flights
            .drain(..)
            .partition(|flight| flight.deadline <= now);
        self.flights = waiting;
        overdue.into()
    }

    /// Every message still awaited, oldest first; the window is empty after.
    pub fn drain(&mut self) -> Vec<InFlight> {
        self.flights.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn flight(seq: u64, deadline: Instant) -> InFlight {
        InFlight {
            seq,
            scheduled_us: seq * 1_000,
            deadline,
        }
    }

    #[test]
    fn one_ack_in_flight_fills_the_default_window() {
        let mut window = AckWindow::new(1);
        assert!(!window.is_full());
        window.push(flight(0, Instant::now()));
        assert!(window.is_full());
    }

    #[test]
    fn acks_are_matched_by_sequence_number_whatever_their_order() {
        let now = Instant::now();
        let mut window = AckWindow::new(4);
        for seq in 0..3 {
            window.push(flight(seq, now));
        }
        assert_eq!(window.take(1).map(|f| f.seq), Some(1));
        assert_eq!(window.take(1), None);
        assert_eq!(window.take(0).map(|f| f.seq), Some(0));
        assert!(!window.is_empty());
        assert_eq!(window.take(2).map(|f| f.seq), Some(2));
        assert!(window.is_empty());
    }

    #[test]
    fn only_overdue_acks_expire_and_the_rest_keep_their_order() {
        let now = Instant::now();
        let mut window = AckWindow::new(8);
        window.push(flight(0, now));
        window.push(flight(1, now + Duration::from_secs(1)));
        window.push(flight(2, now + Duration::from_secs(2)));
        assert_eq!(window.next_deadline(), Some(now));
        let overdue = window.expire(now + Duration::from_secs(1));
        assert_eq!(
            overdue.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(window.next_deadline(), Some(now + Duration::from_secs(2)));
        assert_eq!(window.drain().len(), 1);
        assert!(window.is_empty());
    }
}
