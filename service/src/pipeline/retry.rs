//! The retry policy both buses share: a message whose store attempt
//! failed is tried again after a back-off that doubles with each attempt,
//! up to [`MAX_STORE_ATTEMPTS`]; then it is given up (parked, and its
//! author told `chat_500`). Kafka carries the next attempt on the retry
//! topic, the in-process bus sleeps it out.

use std::time::Duration;

use super::{now_ms, MessageCreated};

/// How many times the pipeline tries to store a message before parking it.
pub const MAX_STORE_ATTEMPTS: u32 = 3;

/// What to do with a message whose store attempt failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again: `next` is the next attempt, not to start before `delay`
    /// has passed (its `not_before_ms` says when).
    Retry {
        /// The message as its next attempt.
        next: Box<MessageCreated>,
        /// How long to wait before it.
        delay: Duration,
    },
    /// The attempts are spent: park it.
    GiveUp,
}

/// The next step for `event`, whose attempt just failed, with `base` the
/// wait before the second attempt.
pub fn after_failure(event: &MessageCreated, base: Duration) -> AfterFailure {
    if event.attempt >= MAX_STORE_ATTEMPTS {
        return AfterFailure::GiveUp;
    }
    let delay = backoff(base, event.attempt);
    let next = MessageCreated {
        attempt: event.attempt + 1,
        not_before_ms: now_ms()
            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        ..event.clone()
    };
    AfterFailure::Retry {
        next: Box::new(next),
        delay,
    }
}

/// The wait after attempt `attempt` failed: `base`, doubled for each
/// attempt past the first. A record that claims attempt 0 (none the
/// service writes) waits `base`.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::doubles::event;

    const BASE: Duration = Duration::from_millis(200);

    #[test]
    fn each_attempt_waits_twice_as_long_as_the_one_before() {
        let mut current = event();
        let mut delays = Vec::new();
        while let AfterFailure::Retry { next, delay } = after_failure(&current, BASE) {
            assert_eq!(next.attempt, current.attempt + 1);
            assert!(next.not_before_ms >= now_ms() + i64::try_from(delay.as_millis()).unwrap() - 5);
            delays.push(delay);
            current = *next;
        }
        assert_eq!(current.attempt, MAX_STORE_ATTEMPTS);
        assert_eq!(delays, [BASE, BASE * 2]);
    }

    #[test]
    fn odd_attempt_numbers_neither_underflow_nor_overflow() {
        assert_eq!(backoff(BASE, 0), BASE);
        assert!(backoff(BASE, u32::MAX) >= BASE * u32::MAX);
        let mut zeroth = event();
        zeroth.attempt = 0;
        assert!(matches!(
            after_failure(&zeroth, BASE),
            AfterFailure::Retry { delay: BASE, .. }
        ));
    }
}
