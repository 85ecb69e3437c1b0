//! The send plan: the total rate over the sending window (one fixed rate,
//! or the capacity mode's rising steps) and when each chatter's messages
//! are due under it.
//!
//! Every time here is an offset from the common start. In step `k` (rate
//! `r_k`, so one message per chatter every `users / r_k` seconds) chatter
//! `i` sends at `start_k + (phase_i + j) · users / r_k` for `j = 0, 1, ...`
//! while that falls inside the step. The phases spread the chatters evenly
//! over a period, so the total rate is smooth and exact in every step, and
//! the times are fixed in advance: a late chatter sends what it owes at once
//! and each message keeps its due time (open loop).

use std::time::Duration;

/// A step shorter than this would have most chatters skip it.
const MAX_STEPS_SKIPPED: usize = 10_000;

/// The total send rate over time.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    /// Messages per second in the first step, all chatters together.
    first: f64,
    /// Added to the rate at each step.
    increment: f64,
    /// Length of a step; `None` for one endless step (a fixed rate).
    step: Option<Duration>,
    /// Steps at the first rate before the rise begins (a warm-up).
    warmup: usize,
}

impl RatePlan {
    /// One rate for the whole run.
    pub fn fixed(rate: f64) -> Self {
        Self {
            first: rate,
            increment: 0.0,
            step: None,
            warmup: 0,
        }
    }

    /// `first` messages per second for `step`, then `increment` more for
    /// each following step.
    pub fn stepped(first: f64, increment: f64, step: Duration) -> Self {
        Self {
            first,
            increment,
            step: Some(step),
            warmup: 0,
        }
    }

    /// The same plan with `steps` more at the first rate before the rise
    /// (step `steps` is the first plan's step 0).
    pub fn with_warmup(self, steps: usize) -> Self {
        Self {
            warmup: steps,
            ..self
        }
    }

    /// The steps that warm the stack up: not judged.
    pub fn warmup(&self) -> usize {
        self.warmup
    }

    /// The rate of step `index`, msg/s.
    pub fn rate(&self, index: usize) -> f64 {
        self.first + self.increment * index.saturating_sub(self.warmup) as f64
    }

    /// The step an offset falls in.
    pub fn step_of(&self, offset: Duration) -> usize {
        match self.step {
            Some(step) if !step.is_zero() => {
                usize::try_from(offset.as_micros() / step.as_micros()).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }

    /// Where step `index` begins and ends; the end is `None` for the
    /// endless step of a fixed rate.
    pub fn window(&self, index: usize) -> (Duration, Option<Duration>) {
        match self.step {
            Some(step) => {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                (step * index, Some(step * index.saturating_add(1)))
            }
            None => (Duration::ZERO, None),
        }
    }

    /// The mean rate over the first `window` of sending, msg/s.
    pub fn mean_rate(&self, window: Duration) -> f64 {
        let Some(step) = self.step.filter(|step| !step.is_zero()) else {
            return self.first;
        };
        if window.is_zero() {
            return self.first;
        }
        let mut messages = 0.0;
        let mut index = 0;
        loop {
            let (begin, end) = self.window(index);
            let end = end.unwrap_or(begin + step).min(window);
            messages += self.rate(index) * (end - begin).as_secs_f64();
            if end >= window {
                return messages / window.as_secs_f64();
            }
            index += 1;
        }
    }

    /// When the message after the one due at `after` is due, for a chatter
    /// at `phase` (in [0, 1)) among `users`; the first one when `after` is
    /// `None`. `None` when no step ahead is long enough for this chatter.
    pub fn next_due(&self, users: usize, phase: f64, after: Option<Duration>) -> Option<Duration> {
        let Some(after) = after else {
            return self.first_in(0, users, phase);
        };
        let index = self.step_of(after);
        let (begin, end) = self.window(index);
        let period = self.period(index, users);
        let since = (after - begin).as_secs_f64();
        let mut turn = ((since / period) - phase).floor().max(-1.0) + 1.0;
        let mut due = begin + Duration::from_secs_f64((phase + turn) * period);
        // Rounding may land on `after` itself.
        while due <= after {
            turn += 1.0;
            due = begin + Duration::from_secs_f64((phase + turn) * period);
        }
        if end.is_none_or(|end| due < end) {
            return Some(due);
        }
        (index + 1..index + 1 + MAX_STEPS_SKIPPED)
            .find_map(|next| self.first_in(next, users, phase))
    }

    /// A chatter's first message in step `index`, if the step is long enough
    /// to hold one.
    fn first_in(&self, index: usize, users: usize, phase: f64) -> Option<Duration> {
        let (begin, end) = self.window(index);
        let due = begin + Duration::from_secs_f64(phase * self.period(index, users));
        end.is_none_or(|end| due < end).then_some(due)
    }

    /// Seconds between two messages of one chatter in step `index`.
    fn period(&self, index: usize, users: usize) -> f64 {
        users as f64 / self.rate(index).max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_times(plan: &RatePlan, users: usize, phase: f64, until: Duration) -> Vec<Duration> {
        let mut times = Vec::new();
        let mut due = plan.next_due(users, phase, None);
        while let Some(at) = due.filter(|at| *at < until) {
            times.push(at);
            due = plan.next_due(users, phase, Some(at));
        }
        times
    }

    #[test]
    fn a_fixed_rate_sends_every_period_from_the_chatters_phase() {
        // 10 chatters at 5 msg/s: one message each every 2 s.
        let plan = RatePlan::fixed(5.0);
        let times = due_times(&plan, 10, 0.25, Duration::from_secs(7));
        let millis: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, vec![500, 2500, 4500, 6500]);
    }

    #[test]
    fn every_step_carries_its_rate_in_total() {
        // 100 chatters, 100 msg/s then 200 then 300, steps of 5 s.
        let plan = RatePlan::stepped(100.0, 100.0, Duration::from_secs(5));
        let users = 100;
        let mut per_step = [0usize; 3];
        for index in 0..users {
            let phase = (index as f64 * 0.618_033_988_749_895).fract();
            for due in due_times(&plan, users, phase, Duration::from_secs(15)) {
                per_step[plan.step_of(due)] += 1;
            }
        }
        assert_eq!(per_step, [500, 1000, 1500]);
    }

    #[test]
    fn a_chatter_starts_each_step_at_its_phase_of_the_new_period() {
        // 10 chatters: 5 msg/s (period 2 s), then 10 msg/s (period 1 s).
        let plan = RatePlan::stepped(5.0, 5.0, Duration::from_secs(3));
        let times = due_times(&plan, 10, 0.5, Duration::from_secs(6));
        let millis: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, vec![1000, 3500, 4500, 5500]);
    }

    #[test]
    fn offsets_map_to_steps_and_back() {
        let plan = RatePlan::stepped(250.0, 250.0, Duration::from_secs(20));
        assert_eq!(plan.step_of(Duration::from_millis(19_999)), 0);
        assert_eq!(plan.step_of(Duration::from_secs(20)), 1);
        assert_eq!(
            plan.window(2),
            (Duration::from_secs(40), Some(Duration::from_secs(60)))
        );
        assert_eq!(plan.rate(2), 750.0);
        assert_eq!(RatePlan::fixed(10.0).step_of(Duration::from_secs(3600)), 0);
    }

    #[test]
    fn the_mean_rate_weighs_each_step_by_its_time() {
        let plan = RatePlan::stepped(100.0, 100.0, Duration::from_secs(10));
        assert!((plan.mean_rate(Duration::from_secs(20)) - 150.0).abs() < 1e-9);
        // Half of the third step.
        assert!((plan.mean_rate(Duration::from_secs(25)) - 4_500.0 / 25.0).abs() < 1e-9);
        assert_eq!(
            RatePlan::fixed(42.0).mean_rate(Duration::from_secs(9)),
            42.0
        );
    }
}
