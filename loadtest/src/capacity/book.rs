//! Per-step accounting: every message belongs to the step it was due in,
//! whenever it was emitted, answered or delivered. A message still in flight
//! when its step ends is counted, and timed, with that step; so is each of
//! its deliveries (one per recipient: in a group room, each other member).

use std::{sync::Mutex, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::latency::lock;

/// Longest latency kept exactly, µs; longer ones are clamped to it.
const HIGHEST_MICROS: u64 = 600_000_000;

/// Counts of one step's messages at some moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// Emitted.
    pub sent: u64,
    /// Acknowledged `accepted`.
    pub accepted: u64,
    /// Acknowledged `error`.
    pub rejected: u64,
    /// Deliveries (first copies, one per message and recipient).
    pub delivered: u64,
    /// Of the deliveries, those slower than the latency limit asked about.
    pub slow: u64,
}

/// Fan-out and ack percentiles of one step's messages, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StepLatency {
    /// Scheduled send → a recipient's `reply` (every delivery), median.
    pub fanout_p50_ms: Option<f64>,
    /// Scheduled send → a recipient's `reply`, 99th percentile.
    pub fanout_p99_ms: Option<f64>,
    /// Scheduled send → ack `accepted`, median.
    pub ack_p50_ms: Option<f64>,
    /// Scheduled send → ack `accepted`, 99th percentile.
    pub ack_p99_ms: Option<f64>,
    /// Scheduled send → the message's first recipient's `reply`.
    pub fanout_first: Edge,
    /// Scheduled send → its last recipient's `reply` (every other member
    /// has the message). In a pair, the same as the first.
    pub fanout_last: Edge,
}

/// Fan-out to a message's first or last recipient, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Edge {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

/// One step's messages.
#[derive(Debug, Clone)]
struct StepTally {
    sent: u64,
    accepted: u64,
    rejected: u64,
    delivered: u64,
    fanout: Histogram<u64>,
    fanout_first: Histogram<u64>,
    fanout_last: Histogram<u64>,
    ack: Histogram<u64>,
}

impl StepTally {
    fn new() -> Self {
        // Two significant figures: plenty for p50/p99, and small enough
        // for a histogram pair per step.
        let histogram =
            || Histogram::new_with_bounds(1, HIGHEST_MICROS, 2).expect("constant bounds are valid");
        Self {
            sent: 0,
            accepted: 0,
            rejected: 0,
            delivered: 0,
            fanout: histogram(),
            fanout_first: histogram(),
            fanout_last: histogram(),
            ack: histogram(),
        }
    }
}

/// Every step's messages.
#[derive(Debug, Default)]
pub struct StepBook {
    steps: Mutex<Vec<StepTally>>,
}

impl StepBook {
    /// A message of step `step` was emitted.
    pub fn sent(&self, step: usize) {
        self.with(step, |tally| tally.sent += 1);
    }

    /// A message of step `step` was answered: accepted after `latency`, or
    /// refused.
    pub fn answered(&self, step: usize, accepted: bool, latency: Duration) {
        self.with(step, |tally| {
            if accepted {
                tally.accepted += 1;
                tally.ack.saturating_record(micros(latency));
            } else {
                tally.rejected += 1;
            }
        });
    }

    /// A message of step `step` reached a recipient after `latency`: its
    /// `first` recipient, its `last`, both (a pair) or neither.
    pub fn delivered(&self, step: usize, latency: Duration, first: bool, last: bool) {
        let micros = micros(latency);
        self.with(step, |tally| {
            tally.delivered += 1;
            tally.fanout.saturating_record(micros);
            if first {
                tally.fanout_first.saturating_record(micros);
            }
            if last {
                tally.fanout_last.saturating_record(micros);
            }
        });
    }

    /// Step `step`'s counts now; `slow` counts deliveries slower than
    /// `limit`.
    pub fn counts(&self, step: usize, limit: Duration) -> StepCounts {
        let steps = lock(&self.steps);
        let Some(tally) = steps.get(step) else {
            return StepCounts::default();
        };
        let fast = tally.fanout.count_between(0, micros(limit));
        StepCounts {
            sent: tally.sent,
            accepted: tally.accepted,
            rejected: tally.rejected,
            delivered: tally.delivered,
            slow: tally.fanout.len().saturating_sub(fast),
        }
    }

    /// Step `step`'s percentiles now.
    pub fn latency(&self, step: usize) -> StepLatency {
        let steps = lock(&self.steps);
        let Some(tally) = steps.get(step) else {
            return StepLatency::default();
        };
        let at = |histogram: &Histogram<u64>, quantile: f64| {
            (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64 / 1000.0)
        };
        let edge = |histogram: &Histogram<u64>| Edge {
            p50_ms: at(histogram, 0.5),
            p95_ms: at(histogram, 0.95),
            p99_ms: at(histogram, 0.99),
            max_ms: (!histogram.is_empty()).then(|| histogram.max() as f64 / 1000.0),
        };
        StepLatency {
            fanout_p50_ms: at(&tally.fanout, 0.5),
            fanout_p99_ms: at(&tally.fanout, 0.99),
            ack_p50_ms: at(&tally.ack, 0.5),
            ack_p99_ms: at(&tally.ack, 0.99),
            fanout_first: edge(&tally.fanout_first),
            fanout_last: edge(&tally.fanout_last),
        }
    }

    fn with(&self, step: usize, change: impl FnOnce(&mut StepTally)) {
        let mut steps = lock(&self.steps);
        while steps.len() <= step {
            steps.push(StepTally::new());
        }
        change(&mut steps[step]);
    }
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, HIGHEST_MICROS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles_stay_with_their_step() {
        let book = StepBook::default();
        for ms in 1..=100 {
            book.sent(1);
            book.answered(1, true, Duration::from_millis(ms / 2 + 1));
            book.delivered(1, Duration::from_millis(ms), true, true);
        }
        book.sent(1);
        book.answered(1, false, Duration::from_millis(1));
        let counts = book.counts(1, Duration::from_millis(90));
        assert_eq!(
            counts,
            StepCounts {
                sent: 101,
                accepted: 100,
                rejected: 1,
                delivered: 100,
                slow: 10,
            }
        );
        let latency = book.latency(1);
        assert!(
            (latency.fanout_p50_ms.unwrap() - 50.0).abs() < 1.0,
            "{latency:?}"
        );
        assert!(
            (latency.fanout_p99_ms.unwrap() - 99.0).abs() < 1.0,
            "{latency:?}"
        );
        assert_eq!(
            book.counts(0, Duration::from_millis(90)),
            StepCounts::default()
        );
        assert_eq!(latency.fanout_first, latency.fanout_last);
        assert!(
            (latency.fanout_first.p95_ms.unwrap() - 95.0).abs() < 1.0,
            "{latency:?}"
        );
        assert_eq!(book.latency(0).fanout_p99_ms, None);
        assert_eq!(book.latency(7), StepLatency::default());
    }

    #[test]
    fn in_a_group_room_first_and_last_time_their_own_recipients() {
        let book = StepBook::default();
        // One message to three recipients, after 5, 10 and 40 ms.
        book.delivered(0, Duration::from_millis(5), true, false);
        book.delivered(0, Duration::from_millis(10), false, false);
        book.delivered(0, Duration::from_millis(40), false, true);
        let counts = book.counts(0, Duration::from_millis(20));
        assert_eq!((counts.delivered, counts.slow), (3, 1));
        let latency = book.latency(0);
        let ms = |value: Option<f64>| value.unwrap_or_default().round();
        assert_eq!(ms(latency.fanout_first.max_ms), 5.0);
        assert_eq!(ms(latency.fanout_last.p50_ms), 40.0);
        assert_eq!(ms(latency.fanout_p50_ms), 10.0);
    }
}
