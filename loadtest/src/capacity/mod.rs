//! The capacity mode (`LOAD_CAPACITY=1`): the total send rate rises in
//! steps until the service stops keeping up, and the report is the curve,
//! one row per step, with the last step that passed as the sustainable
//! rate.
//!
//! - [`crate::plan`] says when each chatter's messages are due as the rate
//!   steps up;
//! - [`book`] accounts every message, and each of its deliveries (one per
//!   recipient: more than one in group rooms), to the step it was due in
//!   (written by [`crate::conversation`]);
//! - [`controller`] watches the steps as they run (backlog once a second,
//!   CPU at each boundary), judges each one shortly after it ends and ends
//!   the sending at the first failure;
//! - [`judge`] holds the rules: when a step fails and when the run stops;
//! - [`curve`] is the curve, one row per step; [`report`] builds it from
//!   the steps and writes `capacity.csv` ([`csv`]) and `capacity.svg`
//!   ([`plot`]); it is also the `capacity` section of `summary.json`, and
//!   [`table`] prints it.

pub mod book;
pub mod controller;
pub mod csv;
pub mod curve;
pub mod judge;
pub mod plot;
pub mod report;
pub mod table;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{clock, config::CapacitySettings, ledger::Arrival, plan::RatePlan};

use self::book::StepBook;

/// The capacity mode's shared state.
pub struct CapacityRun {
    /// The rates and step times.
    pub plan: RatePlan,
    /// Every step's messages.
    pub book: StepBook,
    /// Recipients of each message: 1 in pairs, the room size - 1 in group
    /// rooms. Delivery is judged by deliveries, this many per message.
    pub recipients: u64,
    /// Acks `accepted`, all steps.
    accepted: AtomicU64,
    /// Deliveries (first copies per recipient), all steps.
    delivered: AtomicU64,
}

impl CapacityRun {
    /// Empty accounts for `settings`, each message going to `recipients`.
    pub fn new(settings: &CapacitySettings, recipients: usize) -> Self {
        Self {
            plan: settings.plan(),
            book: StepBook::default(),
            recipients: recipients as u64,
            accepted: AtomicU64::default(),
            delivered: AtomicU64::default(),
        }
    }

    /// A message due at `scheduled_us` was emitted; sending started at
    /// `start_us` (process clock, µs).
    pub fn sent(&self, start_us: u64, scheduled_us: u64) {
        self.book.sent(self.step(start_us, scheduled_us));
    }

    /// A message was answered at `at_us`. Its due time is unknown when the
    /// ack came after its timeout: then only the backlog hears of it.
    pub fn answered(&self, start_us: u64, scheduled_us: Option<u64>, at_us: u64, accepted: bool) {
        if accepted {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(scheduled_us) = scheduled_us {
            let latency = clock::between(scheduled_us, at_us);
            self.book
                .answered(self.step(start_us, scheduled_us), accepted, latency);
        }
    }

    /// A message due at `scheduled_us` reached a recipient at `at_us` (its
    /// first copy there); `arrival` says whether it was the message's first
    /// or last recipient.
    pub fn delivered(&self, start_us: u64, scheduled_us: u64, at_us: u64, arrival: Arrival) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let latency = clock::between(scheduled_us, at_us);
        self.book.delivered(
            self.step(start_us, scheduled_us),
            latency,
            arrival.first,
            arrival.last,
        );
    }

    /// Deliveries of accepted messages still to come, all steps. (A
    /// delivery can beat its own ack; the difference is floored at zero.)
    pub fn backlog(&self) -> u64 {
        let expected = self.accepted.load(Ordering::Relaxed) * self.recipients;
        expected.saturating_sub(self.delivered.load(Ordering::Relaxed))
    }

    fn step(&self, start_us: u64, scheduled_us: u64) -> usize {
        self.plan.step_of(clock::between(start_us, scheduled_us))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ledger::Delivery;

    fn run_for(recipients: u64) -> CapacityRun {
        CapacityRun {
            plan: RatePlan::stepped(100.0, 100.0, Duration::from_secs(5)),
            book: StepBook::default(),
            recipients,
            accepted: AtomicU64::default(),
            delivered: AtomicU64::default(),
        }
    }

    fn run() -> CapacityRun {
        run_for(1)
    }

    /// The one delivery of a pair: first and last.
    fn only() -> Arrival {
        Arrival {
            delivery: Delivery::InOrder,
            first: true,
            last: true,
        }
    }

    #[test]
    fn a_message_in_flight_at_the_end_of_its_step_counts_for_that_step() {
        let capacity = run();
        let start_us = 1_000_000;
        // Due 4.99 s into step 0; answered and delivered in step 1.
        let due = start_us + 4_990_000;
        capacity.sent(start_us, due);
        capacity.answered(start_us, Some(due), due + 20_000, true);
        capacity.delivered(start_us, due, due + 30_000, only());
        let limit = Duration::from_millis(50);
        let first = capacity.book.counts(0, limit);
        assert_eq!((first.sent, first.accepted, first.delivered), (1, 1, 1));
        assert_eq!(capacity.book.counts(1, limit), Default::default());
        let latency = capacity.book.latency(0);
        assert!(
            (latency.fanout_p99_ms.unwrap() - 30.0).abs() < 0.5,
            "{latency:?}"
        );
    }

    #[test]
    fn the_backlog_is_what_was_accepted_and_not_yet_delivered() {
        let capacity = run();
        for seq in 0..5 {
            capacity.answered(0, Some(seq * 1_000), seq * 1_000 + 500, true);
        }
        capacity.answered(0, Some(9_000), 9_500, false);
        capacity.delivered(0, 0, 800, only());
        assert_eq!(capacity.backlog(), 4);
        // A late ack, due time unknown, still counts as accepted.
        capacity.answered(0, None, 20_000_000, true);
        assert_eq!(capacity.backlog(), 5);
        assert_eq!(capacity.book.counts(0, Duration::from_secs(1)).accepted, 5);
    }

    #[test]
    fn in_group_rooms_the_backlog_counts_deliveries_to_come() {
        let capacity = run_for(3);
        capacity.answered(0, Some(0), 500, true);
        capacity.answered(0, Some(1_000), 1_500, true);
        assert_eq!(capacity.backlog(), 6);
        let mut arrival = Arrival {
            delivery: Delivery::InOrder,
            first: true,
            last: false,
        };
        capacity.delivered(0, 0, 800, arrival);
        arrival.first = false;
        capacity.delivered(0, 0, 900, arrival);
        assert_eq!(capacity.backlog(), 4);
        let counts = capacity.book.counts(0, Duration::from_secs(1));
        assert_eq!((counts.accepted, counts.delivered), (2, 2));
    }
}
