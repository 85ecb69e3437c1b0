//! Whether a step was sustained, and when the run stops: pure functions of
//! what was counted, so the rules can be read (and tested) in one place.
//!
//! A step fails on any of:
//! - **sending**: fewer than [`SENDING_FLOOR`] of the messages asked for
//!   left this tool by the time the step is judged (the chatters waited for
//!   acks, or for CPU);
//! - **delivery**: fewer than [`DELIVERY_FLOOR`] of the deliveries the
//!   step's messages sent ask for (one per recipient) had happened by the
//!   time the step is judged (refusals count against it too);
//! - **backlog**: deliveries of accepted messages still to come kept rising through the
//!   step: the mean of its second half is above that of its first half by
//!   more than [`BACKLOG_GROWTH`] of the step's messages (and at least
//!   [`BACKLOG_FLOOR`]);
//! - **latency**: the step's fan-out p99 passed the limit: more than 1% of
//!   its deliveries arrived slower than the limit, or had not arrived when
//!   the step was judged (a step is judged later than the limit after its end,
//!   so a message still missing then is slower than the limit).

use serde::Serialize;

use super::book::StepCounts;

/// Share of the asked messages that must have left the tool.
pub const SENDING_FLOOR: f64 = 0.95;
/// Share of the deliveries the sent messages ask for that must have happened.
pub const DELIVERY_FLOOR: f64 = 0.95;
/// Backlog growth over a step, as a share of its messages, that fails it.
pub const BACKLOG_GROWTH: f64 = 0.01;
/// Backlog growth, in messages, that is noise whatever the rate.
pub const BACKLOG_FLOOR: f64 = 20.0;
/// The quantile the latency limit applies to.
const QUANTILE: f64 = 0.99;

/// A reason for a step to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// The chatters could not send at the rate asked.
    Sending,
    /// Delivered per second fell noticeably below sent per second.
    Delivery,
    /// Accepted-but-undelivered kept rising.
    Backlog,
    /// Fan-out p99 passed the limit.
    Latency,
}

impl Criterion {
    /// Its name in `capacity.csv` and the table.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Sending => "sending",
            Criterion::Delivery => "delivery",
            Criterion::Backlog => "backlog",
            Criterion::Latency => "latency",
        }
    }

    /// In words, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Criterion::Sending => "sending fell behind the rate asked",
            Criterion::Delivery => "deliveries/s fell below sent/s (times the recipients)",
            Criterion::Backlog => "backlog (accepted, undelivered) kept rising",
            Criterion::Latency => "fan-out p99 passed the limit",
        }
    }
}

/// What a step did, as known when it is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed<'a> {
    /// The rate asked for, msg/s.
    pub asked: f64,
    /// The step's length, seconds.
    pub window_s: f64,
    /// The step's messages so far.
    pub counts: StepCounts,
    /// Recipients of each message: 1 in pairs, the room size - 1 in group
    /// rooms.
    pub recipients: u64,
    /// Accepted-but-undelivered messages, once a second through the step.
    pub backlog: &'a [u64],
}

/// The criteria the step failed; empty when it was sustained.
pub fn judge(observed: &Observed<'_>) -> Vec<Criterion> {
    let counts = &observed.counts;
    let mut failed = Vec::new();
    let asked = observed.asked * observed.window_s;
    if (counts.sent as f64) < SENDING_FLOOR * asked {
        failed.push(Criterion::Sending);
    }
    let recipients = observed.recipients;
    if (counts.delivered as f64) < DELIVERY_FLOOR * (counts.sent * recipients) as f64 {
        failed.push(Criterion::Delivery);
    }
    if backlog_rising(observed.backlog, counts.sent * recipients) {
        failed.push(Criterion::Backlog);
    }
    if tail_over_limit(counts, recipients) {
        failed.push(Criterion::Latency);
    }
    failed
}

/// True when the second half of the samples sits noticeably above the
/// first; `messages` is what the step asks for (deliveries, in group rooms).
pub fn backlog_rising(samples: &[u64], messages: u64) -> bool {
    let half = samples.len() / 2;
    if half == 0 {
        return false;
    }
    let mean = |part: &[u64]| part.iter().sum::<u64>() as f64 / part.len() as f64;
    let growth = mean(&samples[samples.len() - half..]) - mean(&samples[..half]);
    growth > (BACKLOG_GROWTH * messages as f64).max(BACKLOG_FLOOR)
}

/// True when more than 1% of the step's deliveries that should happen (each
/// message not refused, to each of its `recipients`) were slower than the
/// limit or are still missing.
pub fn tail_over_limit(counts: &StepCounts, recipients: u64) -> bool {
    let expected = counts.sent.saturating_sub(counts.rejected) * recipients;
    if expected == 0 {
        return false;
    }
    let missing = expected.saturating_sub(counts.delivered);
    (counts.slow + missing) as f64 > (1.0 - QUANTILE) * expected as f64
}

/// Why the run stopped stepping up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stop {
    /// A step failed.
    Failed {
        /// The step.
        step: usize,
        /// What it failed on.
        criteria: Vec<Criterion>,
    },
    /// Every step up to `LOAD_CAPACITY_MAX` passed.
    Ceiling,
    /// `LOAD_DURATION` had room for no more steps, and all passed.
    DurationCap,
    /// Sending never started, or no step could be judged.
    NotMeasured,
}

impl Stop {
    /// In words, for the report.
    pub fn describe(&self) -> String {
        match self {
            Stop::Failed { step, criteria } => format!(
                "step {step} failed: {}",
                criteria
                    .iter()
                    .map(|criterion| criterion.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Stop::Ceiling => "every step up to LOAD_CAPACITY_MAX passed".to_owned(),
            Stop::DurationCap => "LOAD_DURATION had room for no more steps".to_owned(),
            Stop::NotMeasured => "no step could be judged".to_owned(),
        }
    }
}

/// After judging step `step` of `planned`: whether to stop, and why.
/// `at_ceiling` is true when the next step would pass `LOAD_CAPACITY_MAX`.
pub fn after_step(
    step: usize,
    failed: &[Criterion],
    planned: usize,
    at_ceiling: bool,
) -> Option<Stop> {
    if !failed.is_empty() {
        return Some(Stop::Failed {
            step,
            criteria: failed.to_vec(),
        });
    }
    (step + 1 >= planned).then_some(if at_ceiling {
        Stop::Ceiling
    } else {
        Stop::DurationCap
    })
}

/// The sustainable rate: the rate of the last step that passed before the
/// first that failed. Steps are `(rate, passed)` in order; `None` when the
/// first step failed (or none was judged).
pub fn sustainable(steps: &[(f64, bool)]) -> Option<f64> {
    steps
        .iter()
        .take_while(|(_, passed)| *passed)
        .last()
        .map(|(rate, _)| *rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(sent: u64) -> StepCounts {
        StepCounts {
            sent,
            accepted: sent,
            rejected: 0,
            delivered: sent,
            slow: 0,
        }
    }

    fn observed(counts: StepCounts, backlog: &[u64]) -> Observed<'_> {
        Observed {
            asked: 100.0,
            window_s: 10.0,
            counts,
            recipients: 1,
            backlog,
        }
    }

    #[test]
    fn a_step_that_kept_up_passes() {
        let backlog = [2, 3, 1, 2, 4, 2, 3, 2, 1, 3];
        assert!(judge(&observed(healthy(1_000), &backlog)).is_empty());
    }

    #[test]
    fn a_step_sent_short_of_the_rate_fails_on_sending() {
        assert_eq!(
            judge(&observed(healthy(940), &[])),
            vec![Criterion::Sending]
        );
        assert!(judge(&observed(healthy(950), &[])).is_empty());
    }

    #[test]
    fn a_step_delivered_short_of_what_was_sent_fails_on_delivery_and_latency() {
        let counts = StepCounts {
            delivered: 900,
            ..healthy(1_000)
        };
        // The 100 still missing when judged are slower than the limit too.
        assert_eq!(
            judge(&observed(counts, &[])),
            vec![Criterion::Delivery, Criterion::Latency]
        );
    }

    #[test]
    fn one_percent_slow_passes_and_a_little_more_fails_on_latency() {
        let at_limit = StepCounts {
            slow: 10,
            ..healthy(1_000)
        };
        assert!(judge(&observed(at_limit, &[])).is_empty());
        let over = StepCounts {
            slow: 6,
            delivered: 995,
            ..healthy(1_000)
        };
        assert_eq!(judge(&observed(over, &[])), vec![Criterion::Latency]);
    }

    #[test]
    fn refused_messages_count_against_delivery_but_not_the_tail() {
        let counts = StepCounts {
            accepted: 900,
            rejected: 100,
            delivered: 900,
            ..healthy(1_000)
        };
        assert_eq!(judge(&observed(counts, &[])), vec![Criterion::Delivery]);
    }

    #[test]
    fn in_group_rooms_delivery_and_the_tail_count_every_recipient() {
        // 1,000 messages to 9 recipients each: 9,000 deliveries asked for.
        let counts = StepCounts {
            delivered: 9_000,
            ..healthy(1_000)
        };
        let group = |counts| Observed {
            recipients: 9,
            ..observed(counts, &[])
        };
        assert!(judge(&group(counts)).is_empty());
        // Every message reached somebody, but 1,000 deliveries are missing.
        let short = StepCounts {
            delivered: 8_000,
            ..counts
        };
        assert_eq!(
            judge(&group(short)),
            vec![Criterion::Delivery, Criterion::Latency]
        );
        // 1% of 9,000 deliveries may be slow; 91 may not.
        let slow = |slow| StepCounts { slow, ..counts };
        assert!(!tail_over_limit(&slow(90), 9));
        assert!(tail_over_limit(&slow(91), 9));
    }

    #[test]
    fn a_backlog_that_keeps_rising_fails_the_step() {
        let rising: Vec<u64> = (0..10).map(|second| second * 10).collect();
        assert_eq!(
            judge(&observed(healthy(1_000), &rising)),
            vec![Criterion::Backlog]
        );
        // Growth under the floor of 20 messages is noise.
        let creeping: Vec<u64> = (0..10).map(|second| second * 3).collect();
        assert!(!backlog_rising(&creeping, 1_000));
        // A high but steady backlog is in flight, not falling behind.
        assert!(!backlog_rising(&[500; 10], 1_000));
        assert!(!backlog_rising(&[7], 1_000));
    }

    #[test]
    fn a_failed_step_stops_the_run_and_a_passed_one_goes_on_until_the_plan_ends() {
        assert_eq!(after_step(2, &[], 6, false), None);
        assert_eq!(
            after_step(2, &[Criterion::Latency], 6, false),
            Some(Stop::Failed {
                step: 2,
                criteria: vec![Criterion::Latency]
            })
        );
        assert_eq!(after_step(5, &[], 6, true), Some(Stop::Ceiling));
        assert_eq!(after_step(5, &[], 6, false), Some(Stop::DurationCap));
    }

    #[test]
    fn the_sustainable_rate_is_the_last_step_passed_before_the_first_failure() {
        let curve = [
            (250.0, true),
            (500.0, true),
            (750.0, false),
            (1_000.0, true),
        ];
        assert_eq!(sustainable(&curve), Some(500.0));
        assert_eq!(sustainable(&[(250.0, false)]), None);
        assert_eq!(sustainable(&[]), None);
        assert_eq!(sustainable(&[(250.0, true), (500.0, true)]), Some(500.0));
    }
}
